"""The privileged expert: the teacher must be good on held-out roads, and slow for bends."""

import numpy as np
import pytest

from envs import eval_seeds
from envs.expert import Expert
from envs.world import WindingRoadEnv


def drive(seed: int):
    """Run the expert on one road without the camera (the expert does not look at it)."""
    env = WindingRoadEnv(config={"terminate_off_road": False})
    expert = Expert(env)
    env.reset(seed=seed)
    offsets, speeds, on_road, throttles = [], [], [], []
    while True:
        steering, throttle = expert.act()
        _, _, terminated, truncated, info = env.step(np.array([throttle, steering]))
        _, lateral = env.vehicle.lane.local_coordinates(env.vehicle.position)
        offsets.append(abs(lateral))
        speeds.append(env.vehicle.speed)
        on_road.append(env.vehicle.on_road)
        throttles.append(throttle)
        if terminated or truncated:
            return info, np.array(offsets), np.array(speeds), all(on_road), np.array(throttles)


@pytest.mark.slow
def test_expert_stays_on_held_out_roads():
    results = [drive(seed) for seed in eval_seeds(20)]
    assert all(info["reached_end"] and stayed for info, _, _, stayed, _ in results)
    mean_offset = np.mean([offsets.mean() for _, offsets, _, _, _ in results])
    assert mean_offset < 0.2
    assert max(offsets.max() for _, offsets, _, _, _ in results) < 0.8


def test_expert_slows_for_bends_so_throttle_carries_information():
    info, _, speeds, stayed, throttles = drive(eval_seeds(1)[0])
    assert stayed and info["reached_end"]
    limit = 15.0
    assert speeds.max() <= limit + 1e-6
    assert speeds.min() < 0.85 * limit  # it braked for at least one bend
    assert throttles.min() < -0.1 and throttles.max() > 0.1
