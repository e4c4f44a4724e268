"""The simulated road world: roads from seeds, the camera, the privileged expert.

Held-out roads, the one rule: seeds below `EVAL_SEED_START` are for collection and training,
seeds from `EVAL_SEED_START` on are for evaluation only. Collection refuses evaluation seeds and
evaluation draws only from them, so no training step ever sees an evaluation road.
"""

import gymnasium

EVAL_SEED_START = 1_000_000
"""First evaluation seed; every seed below it is a training seed."""


def train_seeds(first: int, count: int) -> list[int]:
    """`count` training seeds from `first` on; ValueError if they would reach evaluation seeds."""
    if first < 0 or count < 0:
        raise ValueError(f"seeds must be >= 0, got first={first}, count={count}")
    if first + count > EVAL_SEED_START:
        raise ValueError(
            f"training seeds must stay below {EVAL_SEED_START:,} (evaluation roads), "
            f"got {first}..{first + count - 1}"
        )
    return list(range(first, first + count))


def eval_seeds(count: int, offset: int = 0) -> list[int]:
    """The first `count` held-out evaluation seeds (after skipping `offset`)."""
    if count < 0 or offset < 0:
        raise ValueError(f"evaluation seed count and offset must be >= 0, got {count}, {offset}")
    return list(range(EVAL_SEED_START + offset, EVAL_SEED_START + offset + count))


if "WindingRoad-v0" not in gymnasium.registry:
    gymnasium.register(id="WindingRoad-v0", entry_point="envs.world:make_winding_road")
if "WindingTraffic-v0" not in gymnasium.registry:
    gymnasium.register(id="WindingTraffic-v0", entry_point="envs.world:make_winding_traffic")
if "HighwayTraffic-v0" not in gymnasium.registry:
    gymnasium.register(id="HighwayTraffic-v0", entry_point="envs.world:make_highway_traffic")
