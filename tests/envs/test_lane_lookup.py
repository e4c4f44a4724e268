"""The fast lane lookup gives highway-env's answer: same lane indices, same trajectories."""

import gymnasium
import highway_env  # noqa: F401  (registers the environments)
import numpy as np
import pytest
from highway_env.road.lane import CircularLane, SineLane, StraightLane
from highway_env.road.road import RoadNetwork

from envs.expert import Expert
from envs.lane_lookup import FastLaneNetwork, use_fast_lane_lookup
from envs.road import RoadSettings, make_road
from envs.winding import CHEAP_OBSERVATION
from envs.world import make_env


def random_poses(network: RoadNetwork, rng: np.random.Generator, count: int):
    """Positions on, beside, past the end of and far from the lanes, with random headings."""
    lanes = network.lanes_list()
    for _ in range(count):
        lane = lanes[rng.integers(len(lanes))]
        s = rng.uniform(-20.0, float(lane.length) + 20.0)
        lateral = rng.normal(0.0, 6.0) if rng.random() < 0.9 else rng.uniform(-200, 200)
        heading = None if rng.random() < 0.1 else float(rng.uniform(-np.pi, np.pi))
        yield lane.position(s, lateral), heading


def assert_same_answers(network: RoadNetwork, count: int = 600, seed: int = 0) -> None:
    fast = use_fast_lane_lookup(network)
    assert isinstance(fast, FastLaneNetwork)
    for position, heading in random_poses(network, np.random.default_rng(seed), count):
        expected = RoadNetwork.get_closest_lane_index(fast, position, heading)
        assert fast.get_closest_lane_index(position, heading) == expected, (position, heading)


@pytest.mark.parametrize("seed", [0, 1, 7, 42])
def test_same_lane_as_the_full_scan_on_winding_roads(seed):
    assert_same_answers(make_road(seed).network, seed=seed)


def test_same_lane_as_the_full_scan_on_a_10x_longer_road():
    assert_same_answers(make_road(3, RoadSettings(min_length=10_000.0)).network, count=300)


@pytest.mark.parametrize("name", ["highway-v0", "racetrack-v1", "roundabout-v1", "merge-v1"])
def test_same_lane_as_the_full_scan_on_stock_scenarios(name):
    # Sine lanes (merge), many arcs (racetrack, roundabout), 10 km lanes (highway).
    env = gymnasium.make(name, config={"observation": CHEAP_OBSERVATION})
    env.reset(seed=0)
    assert_same_answers(env.unwrapped.road.network)
    env.close()


def test_lanes_added_after_a_lookup_are_found():
    network = FastLaneNetwork()
    network.add_lane("a", "b", StraightLane([0, 0], [100, 0]))
    assert network.get_closest_lane_index(np.array([50.0, 80.0]), 0.0) == ("a", "b", 0)
    network.add_lane("c", "d", CircularLane([50, 100], 20, 0, np.pi / 2))
    network.add_lane("d", "e", SineLane([0, 200], [100, 200], 2.0, 0.1, 0.0))
    assert network.get_closest_lane_index(np.array([50.0, 80.0]), 0.0) == ("c", "d", 0)
    assert network.get_closest_lane_index(np.array([50.0, 199.0]), 0.0) == ("d", "e", 0)


def test_ties_go_to_the_first_lane_in_network_order_like_highway_env():
    network = FastLaneNetwork()
    for name in ("x", "y", "z"):  # three identical lanes: every distance ties
        network.add_lane(name, name + "1", StraightLane([0, 0], [100, 0]))
    assert network.get_closest_lane_index(np.array([60.0, 1.0]), 0.0) == ("x", "x1", 0)


@pytest.mark.parametrize("scenario", ["winding-road", "highway-v0"])
def test_same_trajectory_with_and_without_the_fast_lookup(scenario, monkeypatch):
    def drive() -> list[tuple]:
        config = {"road": RoadSettings(min_length=3000.0)} if scenario == "winding-road" else {}
        env = make_env(scenario, duration=8, **config)
        expert = Expert(env)
        obs, _ = env.reset(seed=5)
        expert.reset()
        rows, done = [], False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs) + [0.05, 0.0])
            ego = env.unwrapped.vehicle
            rows.append((ego.lane_index, *ego.position, ego.heading, info["lateral_offset"]))
            rows += [(v.lane_index, *v.position) for v in env.unwrapped.road.vehicles]
            done = terminated or truncated
        return rows

    fast = drive()
    monkeypatch.setattr("envs.winding.use_fast_lane_lookup", lambda network: network)
    monkeypatch.setattr("envs.wrapper.use_fast_lane_lookup", lambda network: network)
    full_scan = RoadNetwork.get_closest_lane_index
    monkeypatch.setattr(FastLaneNetwork, "get_closest_lane_index", full_scan)
    slow = drive()
    assert len(fast) > 50
    assert fast == slow
