"""The privileged expert: the teacher must be good on held-out roads, and slow for bends."""

import numpy as np
import pytest
from highway_env.road.lane import CircularLane, SineLane, StraightLane
from highway_env.utils import wrap_to_pi

from driving.rollout.metrics import INFO_KEYS, episode_metrics
from envs import eval_seeds
from envs.expert import CURVATURE_STEP, Expert
from envs.road import RoadSettings
from envs.winding import WindingRoadEnv, lane_curvature
from envs.world import World, make_world


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


@pytest.mark.parametrize("seed, limit", [(20, 8.14), (14, 15.40), (4, 20.43)])
def test_the_expert_keeps_each_roads_drawn_limit(seed, limit):
    # given a short road whose limit was drawn from 8-22 m/s (8.14, 15.4 and 20.4 m/s here)
    road = RoadSettings(min_length=400.0, limit_range=(8.0, 22.0))
    env, expert = make_world(World(road=road), terminate_off_road=False)
    obs, info = env.reset(seed=seed)
    record = {key: [] for key in INFO_KEYS}
    done = False
    while not done:  # when the expert drives it to the end
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        for key in INFO_KEYS:
            record[key].append(info[key])
        done = terminated or truncated
    steps = len(record["speed"])
    record |= {"autonomous": np.ones(steps, bool), "intervention": np.zeros(steps, bool)}
    metrics = episode_metrics(record, 0.1, info["reached_end"])
    # then the road's limit is the one the env reports at every step, and its limit is the
    # expert's cruise speed: reached on the straights, never passed, no speeding violation
    assert record["speed_limit"] == [pytest.approx(limit, abs=0.005)] * steps
    assert info["reached_end"] and all(record["on_road"])
    assert max(record["speed"]) == pytest.approx(limit, rel=0.01)
    assert max(record["speed"]) <= limit + 0.005
    assert metrics["success"] and metrics["speeding_share"] == 0.0
    assert obs["speed_limit"] == pytest.approx([limit], abs=0.005)


LANES = [
    StraightLane([0, 0], [100, 30]),
    CircularLane([0, 0], 50.0, 0.0, 1.0, clockwise=True),
    CircularLane([5, -3], 80.0, 2.0, 0.5, clockwise=False),
    SineLane([0, 0], [100, 0], amplitude=2.0, pulsation=0.2, phase=0.3),
]


@pytest.mark.parametrize("lane", LANES, ids=lambda lane: type(lane).__name__)
def test_the_experts_lane_curvature_is_their_former_difference_bit_for_bit(lane):
    # The experts' curvature (feed-forward, bend speeds, lane-change veto) was a centred
    # difference of headings over +-1 m; the merged `lane_curvature` keeps it exactly, also past
    # the lane's ends, so that the experts' drives replay identically.
    for s in [-3.0, 0.0, 0.4, 7.3, 25.0, float(lane.length) - 0.2, float(lane.length) + 4.0]:
        ds = CURVATURE_STEP
        former = float(wrap_to_pi(lane.heading_at(s + ds) - lane.heading_at(s - ds)) / (2 * ds))
        assert lane_curvature(lane, s, CURVATURE_STEP) == former  # exact, not approx


@pytest.mark.parametrize("lane", LANES[:3], ids=lambda lane: type(lane).__name__)
def test_the_experts_lane_curvature_equals_the_exact_one_up_to_rounding(lane):
    exact = lane_curvature(lane, 10.0)
    assert exact == (0.0 if isinstance(lane, StraightLane) else lane.direction / lane.radius)
    assert lane_curvature(lane, 10.0, CURVATURE_STEP) == pytest.approx(exact, rel=1e-9, abs=1e-15)
