"""The traffic stepped for all cars at once replays highway-env's car-by-car traffic exactly, and
the traffic's own rules: cars leave past the road's end, a car enters only where it is safe."""

import numpy as np
import pytest
from highway_env.road.lane import CircularLane
from highway_env.road.road import RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle

from envs import eval_seeds
from envs.lane_table import LaneCoordinates
from envs.traffic import TOW_AFTER, TrafficEnv, TrafficRoad, _Car
from envs.traffic_expert import TrafficExpert
from envs.traffic_fast import FastTrafficRoad, _apart


def cars_of(env) -> list[tuple]:
    """Every car's full state, in the road's order."""
    return [
        (
            *v.position,
            v.heading,
            v.speed,
            v.lane_index,
            getattr(v, "target_lane_index", None),
            getattr(v, "timer", None),
            v.crashed,
        )
        for v in env.road.vehicles
    ]


@pytest.mark.parametrize(
    "seed",
    [eval_seeds(1)[0], *(pytest.param(s, marks=pytest.mark.slow) for s in eval_seeds(3)[1:])],
)
def test_all_cars_at_once_replay_highway_envs_traffic_exactly(seed):
    # Given the same road and traffic stepped both ways, the expert driving the ego in both,
    fast = TrafficEnv(config={"density": "default"})
    slow = TrafficEnv(config={"density": "default", "fast_traffic": False})
    fast.reset(seed=seed)
    slow.reset(seed=seed)
    assert isinstance(fast.road, FastTrafficRoad) and not isinstance(slow.road, FastTrafficRoad)
    expert = TrafficExpert(fast)
    lane_changes = 0
    for step in range(200):
        steering, throttle = expert.act()
        for env in (fast, slow):
            *_, terminated, truncated, _ = env.step(np.array([throttle, steering]))
        # then every car is where highway-env's own code puts it, to the last bit.
        assert cars_of(fast) == cars_of(slow), f"step {step}"
        lane_changes += sum(
            v.target_lane_index[2] != v.lane_index[2]
            for v in fast.road.vehicles
            if isinstance(v, IDMVehicle)
        )
        if terminated or truncated:
            break
    assert step == 199 and len(fast.road.vehicles) > 10
    assert lane_changes > 0  # MOBIL's decisions were part of the replay


def test_a_crash_replays_exactly_both_ways():
    # Given the ego at full throttle into dense traffic (the expert steering), stepped both ways,
    fast = TrafficEnv(config={"density": "dense"})
    slow = TrafficEnv(config={"density": "dense", "fast_traffic": False})
    seed = eval_seeds(1)[0]
    fast.reset(seed=seed)
    slow.reset(seed=seed)
    expert = TrafficExpert(fast)
    for _ in range(200):
        steering, _ = expert.act()
        for env in (fast, slow):
            *_, terminated, truncated, _ = env.step(np.array([1.0, steering]))
        assert cars_of(fast) == cars_of(slow)
        if terminated or truncated:
            break
    assert fast.vehicle.crashed
    # then the impact, and the crashed cars' steps after it, are highway-env's to the last bit.
    for _ in range(5):
        for env in (fast, slow):
            env.road.act()
            env.road.step(1 / env.config["simulation_frequency"])
        assert cars_of(fast) == cars_of(slow)


def test_a_frame_of_no_cars_then_of_some_places_them_as_the_car_by_car_road_does():
    # Given the fast road of a reset scenario, emptied, framed, then given its cars back,
    env = TrafficEnv()
    env.reset(seed=eval_seeds(1)[0])
    road, cars = env.road, list(env.road.vehicles)
    road.vehicles = []
    road.invalidate()
    assert len(road.frame().vehicles) == 0
    road.vehicles = cars
    # then every car's place is the one the car-by-car road computes.
    frame = road.frame()
    for v, at, lateral in zip(frame.vehicles, frame.progress, frame.lateral, strict=True):
        assert (at, lateral) == TrafficRoad.place(road, v)


def at_the_end(seed=1_000_000):
    """A road ending in an arc (seed 1,000,000), no traffic, the ego 150 m before the end."""
    env = TrafficEnv(config={"density": 0.0})
    env.reset(seed=seed)
    ego = env.vehicle
    ego.position, ego.heading = env.road_pose(env.road_map.length - 150.0, 0)
    ego.lane_index = env.road.network.get_closest_lane_index(ego.position, ego.heading)
    ego.lane = env.road.network.get_lane(ego.lane_index)
    ego.speed = 0.0
    env.road.invalidate()
    return env


def test_a_car_leaves_the_simulation_past_the_roads_end_instead_of_driving_round_the_arc():
    env = at_the_end()
    segments = len(env.road_map.segment_starts)
    last = env.road.network.get_lane((str(segments - 1), str(segments), 1))
    assert isinstance(last, CircularLane)  # highway-env extends it round its circle
    position, heading = env.road_pose(env.road_map.length - 20.0, 1)
    car = IDMVehicle(env.road, position, heading, 15.0, target_speed=15.0)
    env.road.vehicles.append(car)
    env.road.invalidate()
    furthest = -np.inf
    for _ in range(100):  # 10 s: 5 s to the end and 50 m beyond, then round the circle
        env.step(np.array([-1.0, 0.0]))  # the ego stays back, the scene stays where it is
        if car not in env.road.vehicles:
            break
        furthest = max(furthest, env.road.place(car)[0])
    assert car not in env.road.vehicles
    assert env.road_map.length + TOW_AFTER - 2.0 < furthest <= env.road_map.length + TOW_AFTER


def waiting(env, ahead: float, lane: int, speed: float) -> bool:
    """Whether a car waiting `ahead` [m] of the ego in `lane` enters when the scene reaches it."""
    before = len(env.road.vehicles)
    ego_at = env.road.place(env.vehicle)[0]
    env.waiting = [_Car(ego_at + ahead, lane, speed, 4.0)]
    env._admit()
    return len(env.road.vehicles) == before + 1


def with_car(ahead: float, lane: int, speed: float, target_lane: int | None = None):
    """The road of `at_the_end` with one car `ahead` [m] of the ego in `lane` (moving into
    `target_lane` if given)."""
    env = at_the_end()
    ego_at = env.road.place(env.vehicle)[0]
    position, heading = env.road_pose(ego_at + ahead, lane)
    car = IDMVehicle(env.road, position, heading, speed, target_speed=speed)
    if target_lane is not None:
        car.target_lane_index = (*car.lane_index[:2], target_lane)
    env.road.vehicles.append(car)
    env.road.invalidate()
    return env


def test_a_car_enters_only_where_it_can_match_the_speed_of_the_car_ahead():
    # 12 m behind a car at 5 m/s (7 m bumper to bumper): at 15 m/s it would close 10 m/s,
    # more than braking at 3 m/s^2 takes back in 7 m; at 6 m/s it enters.
    assert not waiting(with_car(100.0, 1, 5.0), 88.0, 1, 15.0)
    assert waiting(with_car(100.0, 1, 5.0), 88.0, 1, 6.0)
    # The same for the car behind it: a fast car 12 m behind a slow entering one.
    assert not waiting(with_car(88.0, 1, 15.0), 100.0, 1, 5.0)
    # Far enough ahead, it enters at any speed.
    assert waiting(with_car(100.0, 1, 5.0), 40.0, 1, 15.0)


def test_a_car_does_not_enter_beside_a_car_moving_into_its_lane():
    assert not waiting(with_car(100.0, 0, 12.0, target_lane=1), 102.0, 1, 12.0)
    assert waiting(with_car(100.0, 0, 12.0), 102.0, 1, 12.0)  # staying in its lane


def _car(x: float, y: float, heading: float = 0.0, speed: float = 20.0) -> IDMVehicle:
    env = TrafficEnv()
    env.reset(seed=eval_seeds(1)[0])
    return IDMVehicle(env.road, np.array([x, y]), heading, speed)


@pytest.mark.parametrize(
    "other, speed, apart",
    [
        ((0.0, 3.5), 20.0, True),  # beside, in the next lane
        ((12.0, 0.0), 20.0, True),  # ahead at the same speed: no contact within the step
        ((0.0, 1.5), 20.0, False),  # overlapping sideways
        ((5.5, 0.0), 10.0, False),  # bumpers 0.5 m apart, closing at 10 m/s: contact in 0.1 s
    ],
)
def test_the_pair_precheck_clears_only_cars_that_cannot_touch_within_the_step(other, speed, apart):
    # Given a car at 20 m/s and another one at `other` [m] driving at `speed` [m/s],
    a, b = _car(0.0, 0.0), _car(*other, speed=speed)
    # then the pre-check clears the pair exactly when highway-env's own test finds no contact.
    assert _apart(a, b, dt=0.1) is apart
    intersecting, will_intersect, _ = a._is_colliding(b, 0.1)
    assert (intersecting or will_intersect) is not apart


def test_the_neighbour_query_answers_as_the_car_by_car_road_does():
    # Given a road in traffic after 60 steps of the expert,
    env = TrafficEnv(config={"density": "dense"})
    env.reset(seed=eval_seeds(1)[0])
    expert = TrafficExpert(env)
    for _ in range(60):
        steering, throttle = expert.act()
        env.step(np.array([throttle, steering]))
    road = env.road
    # then for every car and lane, with and without the car itself, the fast road's nearest cars
    # ahead and behind are the reference road's.
    asked = 0
    for v in road.vehicles:
        progress, _ = road.place(v)
        for lane in range(road.road_map.lanes):
            for exclude in (v, None):
                fast = road.neighbours(progress, lane, exclude)
                assert fast == TrafficRoad.neighbours(road, progress, lane, exclude)
                asked += fast[0] is not None and fast[1] is not None
    assert asked > 10  # cars on both sides were part of it


def test_the_lane_table_answers_as_highway_envs_network():
    # Given points scattered around a winding road, with headings off the lane's by up to 1 rad,
    # and a previous lane guessed at random (often far away: the bounds must find the lane),
    env = TrafficEnv()
    env.reset(seed=eval_seeds(1)[0])
    table, network = env.road.table, env.road.network
    rng = np.random.default_rng(0)
    lanes = rng.integers(len(table.lanes), size=300)
    positions, headings = [], []
    for row in lanes:
        lane = table.lanes[row]
        s = rng.uniform(-10.0, lane.length + 10.0)
        positions.append(lane.position(s, rng.uniform(-6.0, 6.0)))
        headings.append(lane.heading_at(s) + rng.uniform(-1.0, 1.0))
    positions, headings = np.array(positions), np.array(headings)
    guesses = rng.integers(len(table.lanes), size=len(lanes))
    # then each is the lane highway-env's full scan picks,
    rows, local = table.closest(positions, headings, guesses)
    for row, position, heading in zip(rows, positions, headings, strict=True):
        assert table.indexes[row] == RoadNetwork.get_closest_lane_index(network, position, heading)
    # and the lane after each lane's end, where the table knows it, is highway-env's,
    for row, lane in enumerate(table.lanes):
        if table.next[row] >= 0:
            end = lane.position(lane.length, 0.0)
            assert table.indexes[table.next[row]] == network.next_lane(
                table.indexes[row], None, end
            )
    # and the coordinates in any lane, computed on the way or asked for later (fresh or not),
    # are highway-env's floats.
    cars = np.arange(len(lanes)).repeat(4)
    others = rng.integers(len(table.lanes), size=len(cars))
    for asked in (local, LaneCoordinates(table, positions)):
        for car_rows in (rows[cars], others, others):
            s, r = asked(cars, car_rows)
            expected = [
                table.lanes[row].local_coordinates(positions[car])
                for car, row in zip(cars, car_rows, strict=True)
            ]
            assert list(zip(s.tolist(), r.tolist(), strict=True)) == [
                (float(a), float(b)) for a, b in expected
            ]
