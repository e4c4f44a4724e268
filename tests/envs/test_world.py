"""The road world: generated roads, the gymnasium env, ground truth, other scenarios."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from highway_env.road.lane import CircularLane, StraightLane

import envs
from envs import EVAL_SEED_START, eval_seeds, train_seeds
from envs.camera import CameraConfig
from envs.road import WIDE_ROADS, RoadSettings, make_road
from envs.winding import STEERING_RANGE
from envs.world import World, make_env, make_world


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped")
def test_registered_env_passes_gymnasium_check():
    # The camera wrapper is part of the registered env: it is what makes observations frames.
    env = gymnasium.make("WindingRoad-v0")
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert obs["image"].shape == (66, 200, 3) and obs["image"].dtype == np.uint8


@pytest.mark.parametrize("cfg", [RoadSettings(), WIDE_ROADS], ids=["default", "wide"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 17, 123456])
def test_roads_are_long_winding_and_within_ranges(seed, cfg):
    road = make_road(seed, cfg)
    lanes = [road.network.get_lane(idx) for idx in road.network.lanes_dict()]
    assert road.length >= cfg.min_length
    assert cfg.lanes[0] <= road.lanes <= cfg.lanes[1]
    assert cfg.lane_width[0] <= road.lane_width <= cfg.lane_width[1]
    assert any(isinstance(lane, CircularLane) for lane in lanes)
    assert all(isinstance(lane, (CircularLane, StraightLane)) for lane in lanes)
    for lane in lanes:
        if isinstance(lane, CircularLane):
            assert lane.radius >= cfg.radius[0] - 1e-9
            assert abs(lane.end_phase - lane.start_phase) < np.pi
    # Consecutive segments join without a gap or a kink, lane by lane.
    segments = len(road.segment_starts)
    for k in range(segments - 1):
        for i in range(road.lanes):
            a = road.network.get_lane((str(k), str(k + 1), i))
            b = road.network.get_lane((str(k + 1), str(k + 2), i))
            assert np.allclose(a.position(a.length, 0), b.position(0, 0), atol=1e-6)
            assert a.heading_at(a.length) == pytest.approx(b.heading_at(0), abs=1e-6)


def test_default_roads_are_the_roads_every_published_number_was_measured_on():
    # The wide ranges' new draws (S-bends, tightening bends) must not shift the default roads.
    for seed, length, segments, lanes, width in [
        (0, 1011.3141686766082, 7, 3, 3.4158293710110965),
        (1_000_000, 1014.4672660561095, 10, 3, 3.3668250076014523),
    ]:
        road = make_road(seed)
        assert (road.length, len(road.segment_starts)) == (pytest.approx(length), segments)
        assert (road.lanes, road.lane_width) == (lanes, pytest.approx(width))


def _arcs(road) -> list[tuple[int, float]]:
    """(turn direction, innermost radius) of each segment, (0, inf) for a straight."""
    arcs = []
    for k in range(len(road.segment_starts)):
        lanes = [road.network.get_lane((str(k), str(k + 1), i)) for i in range(road.lanes)]
        if isinstance(lanes[0], CircularLane):
            arcs.append((lanes[0].direction, min(lane.radius for lane in lanes)))
        else:
            arcs.append((0, np.inf))
    return arcs


def test_wide_roads_have_tight_s_and_tightening_bends_and_a_limit_the_width_shows():
    roads = [make_road(seed, WIDE_ROADS) for seed in range(60)]
    pairs = [(a, b) for road in roads for a, b in zip(_arcs(road), _arcs(road)[1:], strict=False)]
    s_bends = [p for p in pairs if p[0][0] * p[1][0] == -1]
    tightening = [p for p in pairs if p[0][0] == p[1][0] != 0 and p[1][1] < 0.75 * p[0][1]]
    assert len(s_bends) > 20 and len(tightening) > 10
    radii = [r for road in roads for turn, r in _arcs(road) if turn]
    assert min(radii) >= 15.0 - 1e-9 and np.mean(np.array(radii) < 40) > 0.2
    assert {road.lanes for road in roads} == {1, 2, 3, 4}
    for road in roads:
        limit = road.network.get_lane(("0", "1", 0)).speed_limit
        assert limit == pytest.approx(15.0 * road.lane_width / 3.6)
    widths = [road.lane_width for road in roads]
    assert min(widths) < 3.0 and max(widths) > 4.7


def test_steering_range_is_a_world_setting_that_reaches_the_car_and_the_expert():
    turns = {}
    for degrees in (15.0, 30.0):
        env, expert = make_world(World(steering_deg=degrees))
        assert env.world.steering_deg == degrees
        assert env.unwrapped.config["action"]["steering_range"][1] == pytest.approx(
            np.deg2rad(degrees)
        )
        env.reset(seed=3)
        env.unwrapped.vehicle.position[1] += 0.5  # off the centre: the expert steers back
        label = float(expert.act()[0])
        heading = env.unwrapped.vehicle.heading
        env.step([0.5, 0.0])
        turns[degrees] = (label, env.unwrapped.vehicle.heading - heading)
    # the same wheel angle is half the action at 30 deg; the same action turns the car more
    assert turns[30.0][0] == pytest.approx(turns[15.0][0] / 2, rel=0.05)
    assert abs(turns[30.0][1]) > 1.9 * abs(turns[15.0][1])
    assert World.from_dict(World(steering_deg=30.0, duration_s=9.0).to_dict()).steering_deg == 30
    with pytest.raises(ValueError, match="--steering-deg"):
        World(steering_deg=90.0).validate()


def test_highway_env_scenarios_run_at_10_hz_and_density_none_removes_their_cars():
    for scenario in ("highway-v0", "racetrack-v1"):
        env, _ = make_world(World(scenario, density="none"))
        env.reset(seed=0)
        assert env.unwrapped.config["policy_frequency"] == 10
        assert env.unwrapped.config["simulation_frequency"] == 10
        assert env.unwrapped.road.vehicles == [env.unwrapped.vehicle]
        env, _ = make_world(World(scenario))
        env.reset(seed=0)
        assert len(env.unwrapped.road.vehicles) > 1  # their own traffic, by default
    with pytest.raises(ValueError, match="--density"):
        World("winding-road", density="none").validate()


def test_a_timed_drive_that_lasts_its_duration_reaches_the_end():
    env, expert = make_world(World("racetrack-v1", density="none", duration_s=3.0))
    obs, info = env.reset(seed=1)
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        done, steps = terminated or truncated, steps + 1
    assert steps == 30 and truncated and info["reached_end"]


def test_same_seed_same_road_other_seed_other_road():
    a, b, c = make_road(5), make_road(5), make_road(6)
    assert a.length == b.length and a.lanes == b.lanes
    assert (a.length, a.lanes, a.lane_width) != (c.length, c.lanes, c.lane_width)


def test_training_and_evaluation_seeds_are_disjoint():
    assert max(train_seeds(0, 1000)) < EVAL_SEED_START <= min(eval_seeds(1000))
    with pytest.raises(ValueError, match="below"):
        train_seeds(EVAL_SEED_START - 5, 10)
    with pytest.raises(ValueError):
        train_seeds(-1, 3)


def test_action_is_steering_then_throttle():
    env = make_env()
    env.reset(seed=4)
    v0 = env.unwrapped.vehicle.speed
    env.step([0.0, 1.0])  # full throttle, no steering
    ego = env.unwrapped.vehicle
    assert ego.speed == pytest.approx(v0 + 5.0 * 0.1, abs=1e-6)
    assert ego.action["steering"] == pytest.approx(0.0)
    env.step([1.0, 0.0])
    assert ego.action["steering"] == pytest.approx(STEERING_RANGE)


def test_braking_stops_instead_of_reversing():
    env = make_env()
    env.reset(seed=4)
    for _ in range(60):
        env.step([0.0, -1.0])
    assert env.unwrapped.vehicle.speed == pytest.approx(0.0, abs=1e-6)


def test_info_carries_ground_truth():
    env = make_env()
    _, info = env.reset(seed=8)
    for key in (
        "lateral_offset",
        "heading_error",
        "on_road",
        "crashed",
        "distance",
        "progress",
        "speed",
    ):
        assert key in info
    assert info["lateral_offset"] == pytest.approx(0.0, abs=1e-6)
    assert info["on_road"] and not info["crashed"]
    # The traffic scenarios' keys, neutral on an empty road.
    assert info["gap_ahead"] == info["time_headway"] == np.inf and info["lane_changes"] == 0
    start = info["progress"]
    for _ in range(20):
        _, _, _, _, info = env.step([0.0, 0.0])
    travelled = info["distance"]
    assert travelled == pytest.approx(20 * 0.1 * info["speed"], rel=1e-6)
    assert info["progress"] - start == pytest.approx(travelled, rel=0.05)


def test_start_anywhere_starts_on_the_lane_at_a_seeded_point_along_the_road():
    beginning, anywhere = make_env(), make_env(start="anywhere")
    starts = []
    for seed in range(8):
        _, first = beginning.reset(seed=seed)
        _, info = anywhere.reset(seed=seed)
        ego, lane = anywhere.unwrapped.vehicle, beginning.unwrapped.vehicle.lane_index[2]
        assert first["progress"] == pytest.approx(5.0)
        assert 0 <= info["progress"] <= info["road_length"] - 400 + 1e-6
        # Same lane and speed as the beginning's start, on the lane's centre line, heading along.
        assert ego.lane_index[2] == lane
        assert ego.speed == beginning.unwrapped.vehicle.speed
        assert info["lateral_offset"] == pytest.approx(0.0, abs=1e-6)
        assert info["heading_error"] == pytest.approx(0.0, abs=1e-6)
        assert anywhere.reset(seed=seed)[1]["progress"] == info["progress"]  # seeded by the road
        starts.append(info["progress"])
    assert np.std(starts) > 100  # spread along the roads, not piled up at one point


def test_start_bend_starts_60_to_120_m_before_the_roads_tightest_arc():
    beginning, bend = make_env(), make_env(start="bend")
    for seed in range(8):
        beginning.reset(seed=seed)
        _, info = bend.reset(seed=seed)
        road = bend.unwrapped.road_map
        arcs = {  # inner radius of every arc -> where it starts
            min(
                road.network.get_lane((str(i), str(i + 1), j)).radius for j in range(road.lanes)
            ): road.segment_starts[i]
            for i in range(len(road.segment_starts))
            if hasattr(road.network.get_lane((str(i), str(i + 1), 0)), "radius")
        }
        tightest = arcs[min(arcs)]
        assert road.sharpest_arc() == pytest.approx(tightest)
        lead = tightest - info["progress"]
        assert 60 - 1e-6 <= lead <= 120 + 1e-6 or (info["progress"] == 0 and lead < 120)
        assert bend.unwrapped.vehicle.lane_index[2] == beginning.unwrapped.vehicle.lane_index[2]
        assert info["lateral_offset"] == pytest.approx(0.0, abs=1e-6)


def test_an_unknown_start_is_refused_in_one_line():
    with pytest.raises(ValueError, match="start must be one of"):
        make_env(start="middle").reset(seed=0)


def test_leaving_the_road_terminates():
    env = make_env()
    env.reset(seed=3)
    for _ in range(200):
        _, _, terminated, truncated, info = env.step([1.0, 0.0])
        if terminated or truncated:
            break
    assert terminated and not info["on_road"]


@pytest.mark.parametrize("scenario", ["highway-v0", "racetrack-v1"])
def test_other_highway_env_scenarios_work_with_the_camera(scenario):
    env = make_env(scenario, CameraConfig(height=66, width=200))
    obs, info = env.reset(seed=0)
    for _ in range(5):
        obs, *_, info = env.step([0.0, 0.2])
    assert obs["image"].std() > 5  # not blank
    assert "lateral_offset" in info


def test_unknown_scenario_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown scenario 'nowhere-v9'"):
        make_env("nowhere-v9")


def test_package_states_the_seed_rule_once():
    assert envs.EVAL_SEED_START == 1_000_000


def test_curvature_in_info_is_the_ego_lanes_signed_inverse_radius():
    # Given a known road: drive it with the expert and compare with the lane the ego is on
    from envs.expert import Expert

    env = make_env(terminate_off_road=False)
    expert = Expert(env)
    obs, info = env.reset(seed=4)
    seen = {"straight": 0, "right": 0, "left": 0}
    for _ in range(600):
        lane = env.unwrapped.vehicle.lane
        if isinstance(lane, CircularLane):
            expected = (1 if lane.clockwise else -1) / lane.radius
            seen["right" if lane.clockwise else "left"] += 1
        else:
            expected = 0.0
            seen["straight"] += 1
        assert info["curvature"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    assert seen["straight"] > 0 and seen["right"] + seen["left"] > 0


def test_curvature_sign_follows_the_heading_rate():
    # On a right-hand arc (clockwise on screen) the heading grows along the lane: curvature > 0.
    from envs.winding import lane_curvature

    right = CircularLane([0, 0], 50.0, 0.0, 1.0, clockwise=True)
    left = CircularLane([0, 0], 80.0, 1.0, 0.0, clockwise=False)
    assert lane_curvature(right, 10.0) == pytest.approx(1 / 50)
    assert lane_curvature(left, 10.0) == pytest.approx(-1 / 80)
    assert right.heading_at(11.0) - right.heading_at(10.0) == pytest.approx(1 / 50)
    assert lane_curvature(StraightLane([0, 0], [10, 0]), 3.0) == 0.0


@pytest.mark.parametrize("scenario", ["winding-traffic", "highway-traffic"])
def test_a_road_flag_in_traffic_changes_that_setting_of_the_traffic_roads_only(scenario):
    # given a traffic world whose roads draw their limits from a range (--road.limit-range)
    world = World(scenario=scenario, road=RoadSettings(limit_range=(8.0, 22.0)))
    env, _ = make_world(world)
    own = make_env(scenario).unwrapped.config["road"]  # the scenario's roads: 2-3 lanes
    # then the roads are the scenario's own, with that one setting changed
    road = env.unwrapped.config["road"]
    assert road.lanes == own.lanes == (2, 3) and road.straight_share == own.straight_share
    assert road.limit_range == (8.0, 22.0) and own.limit_range is None
    limits = set()
    for seed in (0, 1, 2):
        env.reset(seed=seed)
        assert len(env.unwrapped.road.network.graph["0"]["1"]) >= 2  # lanes: never one
        limits.add(env.unwrapped.limit)
    assert len(limits) == 3 and all(8.0 <= limit <= 22.0 for limit in limits)
    env.close()
