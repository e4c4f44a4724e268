"""The camera wrapper's observation: the frame, the speedometer and the lane's speed limit."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.road import RoadSettings
from envs.winding import MAX_SPEED
from envs.world import World, make_world

TOLD = World(road=RoadSettings(limit_range=(8.0, 22.0)))
"""Winding roads, each with a limit of its own."""


def _limit(obs: dict) -> np.ndarray:
    limit = obs["speed_limit"]
    assert limit.shape == (1,) and limit.dtype == np.float32
    return limit


def test_the_observation_tells_the_speed_limit_of_the_egos_lane_on_our_roads():
    env, expert = make_world(TOLD)
    limits = []
    for seed in (1, 4):
        obs, info = env.reset(seed=seed)
        road_limit = env.unwrapped.road_map.speed_limit
        for _ in range(5):
            assert _limit(obs)[0] == np.float32(road_limit) == np.float32(info["speed_limit"])
            assert env.observation_space.contains(obs)
            obs, _, _, _, info = env.step(expert.act(obs))
        limits.append(road_limit)
    assert limits[0] != limits[1]  # roads of the range, each with its own


def test_the_default_roads_tell_their_fixed_limit():
    env, _ = make_world()
    obs, _ = env.reset(seed=0)
    assert _limit(obs)[0] == 15.0


def test_highway_envs_racetrack_tells_its_lanes_10_m_s():
    env, expert = make_world(World("racetrack-v1", density="none"))
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        assert _limit(obs)[0] == 10.0
        obs, *_ = env.step(expert.act(obs))


def test_a_lane_without_a_limit_reports_the_cars_top_speed():
    env, _ = make_world()
    env.reset(seed=0)
    env.unwrapped.vehicle.lane.speed_limit = None  # as some of highway-env's lanes have
    obs, _, _, _, info = env.step([0.0, 0.0])
    assert _limit(obs)[0] == info["speed_limit"] == MAX_SPEED


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped")
@pytest.mark.filterwarnings("error")
def test_a_world_with_drawn_limits_passes_check_env():
    env = gymnasium.make("WindingRoad-v0", world=TOLD.to_dict())
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert 8.0 <= _limit(obs)[0] <= 22.0
