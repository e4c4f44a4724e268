"""Does a net keep the speed the expert keeps? Its throttle beside the expert's law, open loop.

    python scripts/throttle_check.py logs/runs/A/best.pt logs/runs/B/best.pt --roads 5

The expert drives each held-out road of the net's world, without noise. Every `--every` steps
each net is shown the frame as it is and told a speed some metres per second off the expert's
target speed there (the road's limit, lowered for the bends ahead); its throttle is set beside
the throttle the expert's law gives at that speed ((target - speed) / 5, clipped to [-1, 1]).
The frame does not depend on the speed, so this asks what the net would do if the car were
going that fast here. A net that was shown only the expert's own speeds tends to answer well
at and below the target and too weakly above it: `drive train --speed-shift` is meant for it.
Prints one markdown table: a row per speed offset, the expert's mean throttle and each net's
mean throttle and mean absolute error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driving.rollout.drivers import drivers, policy_world  # noqa: E402
from envs import eval_seeds  # noqa: E402
from envs.expert import controls  # noqa: E402

OFFSETS = (-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0)
"""Speeds asked about, relative to the expert's target speed [m/s]."""


def throttles(spec: str, roads: int, every: int, offsets=OFFSETS) -> dict[float, np.ndarray]:
    """{offset: (N, 2) [expert's law, net] throttles} of policy `spec` over `roads` held-out
    roads of its world, asked every `every` steps of the expert's drive."""
    world = policy_world(spec)
    env, policy, expert = drivers(spec, world)
    if policy.model.config.frames > 1:
        raise SystemExit(f"error: {spec} stacks frames; this check asks about one frame")
    found: dict[float, list] = {offset: [] for offset in offsets}
    for seed in eval_seeds(roads):
        obs, _ = env.reset(seed=seed)
        done, step = False, 0
        while not done:
            action = expert.act()
            if step % every == 0:
                target = expert.target_speed()
                for offset in offsets:
                    speed = max(target + offset, 0.0)
                    law = controls(0.0, target, speed, expert.config, 1.0)[1]
                    told = obs | {"speed": np.array([speed], np.float32)}
                    found[offset].append((law, policy.act(told)[1]))
            obs, _, terminated, truncated, _ = env.step(action)
            done, step = terminated or truncated, step + 1
    env.close()
    return {offset: np.asarray(rows) for offset, rows in found.items()}


def table(specs: list[str], roads: int, every: int) -> str:
    """The markdown table of `specs` (see the module docstring)."""
    results = [throttles(spec, roads, every) for spec in specs]
    head = "| speed - target | expert's law |"
    head += "".join(f" net {i + 1}: throttle | net {i + 1}: abs error |" for i in range(len(specs)))
    lines = [head, "|---" * (2 + 2 * len(specs)) + "|"]
    for offset in OFFSETS:
        law = results[0][offset][:, 0].mean()
        cells = ""
        for result in results:
            law_net = result[offset]
            error = np.abs(law_net[:, 1] - law_net[:, 0]).mean()
            cells += f" {law_net[:, 1].mean():+.3f} | {error:.3f} |"
        lines.append(f"| {offset:+.0f} m/s | {law:+.3f} |{cells}")
    names = "; ".join(f"net {i + 1}: {spec}" for i, spec in enumerate(specs))
    samples = len(results[0][0.0])
    return "\n".join([*lines, "", f"{names}; {roads} held-out roads, {samples} frames each"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policies", nargs="+", help="checkpoints (.pt) of nets trained alike")
    parser.add_argument("--roads", type=int, default=5, help="held-out roads driven (default 5)")
    parser.add_argument("--every", type=int, default=5, help="ask every N steps (default 5)")
    args = parser.parse_args()
    if args.roads < 1 or args.every < 1:
        raise SystemExit("error: --roads and --every must be at least 1")
    for spec in args.policies:
        if not Path(spec).is_file():
            raise SystemExit(f"error: {spec} is not a checkpoint file")
    print(table(args.policies, args.roads, args.every))


if __name__ == "__main__":
    main()
