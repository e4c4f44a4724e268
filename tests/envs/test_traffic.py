"""Traffic scenarios and the traffic expert, on real highway-env roads with hand-placed cars."""

from dataclasses import replace

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from envs import eval_seeds
from envs.camera import VEHICLE_RGB, Camera, CameraConfig
from envs.traffic import DENSITIES, HIGHWAY_ROAD, HighwayTrafficEnv, TrafficEnv
from envs.traffic_expert import TrafficExpert, TrafficExpertConfig, _LaneChange, _quintic
from envs.winding import STEERING_RANGE

TWO_LANES = replace(HIGHWAY_ROAD, lanes=(2, 2))


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped")
@pytest.mark.parametrize("env_id", ["WindingTraffic-v0", "HighwayTraffic-v0"])
def test_registered_traffic_envs_pass_gymnasium_check(env_id):
    env = gymnasium.make(env_id)
    check_env(env, skip_render_check=True)
    _, info = env.reset(seed=eval_seeds(1)[0])
    for key in ("gap_ahead", "time_headway", "lane_changes", "crashed", "density"):
        assert key in info


@pytest.mark.parametrize("level", list(DENSITIES))
def test_density_drawn_per_seed_within_range_and_reproducible(level):
    low, high = DENSITIES[level]
    densities = []
    for seed in eval_seeds(4):
        a, b = TrafficEnv(config={"density": level}), TrafficEnv(config={"density": level})
        a.reset(seed=seed)
        b.reset(seed=seed)
        assert low <= a.density <= high
        assert a.density == b.density
        assert [tuple(v.position) for v in a.road.vehicles] == [
            tuple(v.position) for v in b.road.vehicles
        ]
        assert len(a.waiting) == len(b.waiting)
        densities.append(a.density)
        # Cars on the road plus cars waiting ahead: the drawn density over the whole road.
        cars = len(a.road.vehicles) - 1 + len(a.waiting)
        expected = a.density * a.road_map.lanes * (a.road_map.length + 100.0) / 1000.0
        assert cars == pytest.approx(expected, abs=1.0)
    assert len(set(densities)) == 4  # a different draw per seed


def test_density_setting_is_validated_and_a_number_fixes_it():
    env = TrafficEnv(config={"density": 12.5})
    env.reset(seed=3)
    assert env.density == 12.5
    for bad in ("jammed", -1.0):
        with pytest.raises(ValueError, match="density"):
            TrafficEnv(config={"density": bad}).reset(seed=3)


@pytest.mark.parametrize("seed", eval_seeds(10))
def test_ego_never_starts_inside_or_next_to_another_car(seed):
    env = TrafficEnv(config={"density": "dense"})
    env.reset(seed=seed)
    ego = env.vehicle
    others = [v for v in env.road.vehicles if v is not ego]
    assert others
    assert min(np.linalg.norm(v.position - ego.position) for v in others) >= 9.0
    _, _, _, _, info = env.step(np.array([0.0, 0.0]))
    assert not info["crashed"]


def scene(lane_offset_cars, initial_speed=10.0, seed=0):
    """Empty two-lane highway; cars placed at (metres ahead of the ego, lane offset, speed, cls)."""
    env = HighwayTrafficEnv(
        config={"density": 0.0, "road": TWO_LANES, "initial_speed": [initial_speed] * 2}
    )
    env.reset(seed=seed)
    ego_at, _ = env.road.place(env.vehicle)
    ego_lane = env.ego_lane()
    cars = []
    for ahead, lane_offset, speed, cls in lane_offset_cars:
        lane = ego_lane if lane_offset == 0 else 1 - ego_lane
        position, heading = env.road_pose(ego_at + ahead, lane)
        if cls is IDMVehicle:
            car = IDMVehicle(env.road, position, heading, speed, target_speed=speed)
            car.enable_lane_change = False
        else:
            car = Vehicle(env.road, position, heading, speed)
        env.road.vehicles.append(car)
        cars.append(car)
    env.road.invalidate()
    return env, cars


def test_gap_and_headway_ground_truth_on_a_hand_placed_car():
    env, _ = scene([(30.0, 0, 10.0, Vehicle), (12.0, 1, 10.0, Vehicle)])
    truth = env.traffic_truth()
    # 30 m centre to centre, two 5 m cars: 25 m bumper to bumper; the car in the other lane
    # does not count.
    assert truth["gap_ahead"] == pytest.approx(25.0, abs=1e-6)
    assert truth["time_headway"] == pytest.approx(25.0 / env.vehicle.speed)
    empty, _ = scene([(-20.0, 0, 10.0, Vehicle)])  # only a car behind
    assert empty.traffic_truth()["gap_ahead"] == np.inf
    assert empty.traffic_truth()["time_headway"] == np.inf


@pytest.mark.parametrize(
    "car, throttle, steer, kind",
    [
        ((12.0, 0, 0.0), 1.0, 0.0, "ahead"),  # a stopped car in the ego's lane, full throttle
        ((-12.0, 0, 20.0), -1.0, 0.0, "behind"),  # a fast car behind it, the ego brakes
        ((0.0, 1, 10.0), 0.0, 1.0, "side"),  # a car alongside, the ego steers into it
    ],
)
def test_a_crash_is_told_by_where_the_car_hit_was(car, throttle, steer, kind):
    # Given a car that the ego will hit (or be hit by) on an empty two-lane highway,
    env, (other,) = scene([(*car, Vehicle)])
    if steer:  # towards the other car's lane (lane 0 is the leftmost; steering right is +)
        steer = 1.0 if other.lane_index[2] > env.vehicle.lane_index[2] else -1.0
    assert env.traffic_truth()["collision"] == ""
    for _ in range(30):
        *_, info = env.step(np.array([throttle, steer]))
        if info["crashed"]:
            break
    # then the crash is told by the face of the ego that was hit.
    assert info["crashed"] and info["collision"] == kind


def test_camera_shows_the_car_ahead_in_blue():
    def blue_pixels(cars):
        env, _ = scene(cars)
        camera = Camera(CameraConfig())  # what DrivingWrapper renders
        camera.reset(env.road)
        image = camera.render(env.road, env.vehicle)
        return int(np.sum(np.all(image == VEHICLE_RGB, axis=-1)))

    assert blue_pixels([]) == 0
    assert blue_pixels([(15.0, 0, 10.0, Vehicle)]) > 20


def drive(env, expert, seconds):
    """Run the expert; per-step lane, gap, crashed."""
    log = []
    for _ in range(int(seconds * env.config["policy_frequency"])):
        steering, throttle = expert.act()
        _, _, terminated, truncated, info = env.step(np.array([throttle, steering]))
        log.append(info)
        if terminated or truncated:
            break
    return log


def test_expert_brakes_behind_a_stopped_car_and_stops_short_of_it():
    # A stopped car ahead in each lane: nowhere to pass, the expert must stop.
    env, _ = scene([(70.0, 0, 0.0, Vehicle), (70.0, 1, 0.0, Vehicle)], initial_speed=14.0)
    log = drive(env, TrafficExpert(env), 25.0)
    assert not any(info["crashed"] for info in log)
    assert log[-1]["speed"] < 0.1
    assert 1.0 < log[-1]["gap_ahead"] < 8.0
    assert min(info["gap_ahead"] for info in log) > 1.0
    assert log[-1]["lane_changes"] == 0


def test_expert_passes_a_slow_car_when_the_next_lane_is_free():
    env, (slow,) = scene([(40.0, 0, 6.0, IDMVehicle)])
    start_lane = env.ego_lane()
    log = drive(env, TrafficExpert(env), 30.0)
    assert not any(info["crashed"] for info in log)
    assert log[-1]["lane_changes"] >= 1
    assert any(info["lane"] != start_lane for info in log)
    assert env.road.place(env.vehicle)[0] > env.road.place(slow)[0] + 10.0  # now ahead of it


@pytest.mark.parametrize("beside", [True, False])
def test_expert_does_not_change_lanes_into_an_occupied_gap(beside):
    # A slow car ahead makes the other lane attractive; a car alongside, just behind the
    # ego's centre, at the same speed, occupies the gap. Without it (control) the expert goes.
    cars = [(25.0, 0, 8.0, IDMVehicle)] + ([(-3.0, 1, 8.0, IDMVehicle)] if beside else [])
    env, placed = scene(cars, initial_speed=8.0)
    expert = TrafficExpert(env)
    log = drive(env, expert, 8.0)
    assert not any(info["crashed"] for info in log)
    if beside:
        alongside = placed[1]
        assert abs(env.road.place(alongside)[0] - env.road.place(env.vehicle)[0]) < 10.0
        assert all(info["lane_changes"] == 0 for info in log)
        assert expert.change is None
    else:
        assert log[-1]["lane_changes"] == 1


def test_a_steer_back_starts_where_the_lane_change_was_at_its_rate_and_acceleration():
    width, change = 3.5, 4.0
    going = _LaneChange(0.0, _quintic((0.0, 0.0, 0.0), width, change), 1, 0, change)
    assert going.at(0.0) == pytest.approx((0.0, 0.0, 0.0))
    assert going.at(change) == pytest.approx((width, 0.0, 0.0), abs=1e-9)
    now = going.at(1.6)  # 40 % of the way: moving out fast
    back = _LaneChange(1.6, _quintic(now, 0.0, 2.5), 0, 0, 2.5)
    assert back.at(0.0) == pytest.approx(now)  # no jump in position, rate or acceleration
    assert back.at(2.5) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)


def test_the_expert_steers_back_without_a_steering_spike():
    # On this held-out road the expert aborts a lane change (the target lane turns unsafe).
    # Reversing the lateral reference's rate at once made a 2.87 rad/s steering spike here.
    env = TrafficEnv(config={"density": "default"})
    expert = TrafficExpert(env)
    env.reset(seed=eval_seeds(13)[12])
    steering, steer_backs, crashed = [], 0, False
    while True:
        action = expert.act()
        change = expert.change
        steer_backs += change is not None and not change.abortable and change.start == env.time
        steering.append(action[0] * STEERING_RANGE)
        _, _, terminated, truncated, info = env.step(np.array([action[1], action[0]]))
        crashed |= info["crashed"]
        if terminated or truncated:
            break
    assert steer_backs >= 1 and not crashed
    assert np.abs(np.diff(steering)).max() * env.config["policy_frequency"] < 1.2  # [rad/s]


def _label_another_drive(driver, labeller, env, seconds):
    """`driver` drives; `labeller` labels every step (as in DAgger); per-step |steering gap|."""
    gaps = []
    for _ in range(int(seconds * env.config["policy_frequency"])):
        label, action = labeller.act(), driver.act()
        gaps.append(abs(label[0] - action[0]))
        env.step(np.array([action[1], action[0]]))
    return np.array(gaps)


NEVER_CHANGES = TrafficExpertConfig(change_gain=np.inf)


def test_the_expert_labels_a_lane_change_it_did_not_make_as_the_new_lane():
    # A driver passes a slow car; a labeller that never changes lanes itself must take the
    # new lane as the one to keep, not steer back to the old one for the rest of the drive.
    env, _ = scene([(40.0, 0, 6.0, IDMVehicle)])
    start = env.ego_lane()
    gaps = _label_another_drive(TrafficExpert(env), TrafficExpert(env, NEVER_CHANGES), env, 20.0)
    assert env.ego_lane() != start
    assert gaps[-50:].max() < 0.05  # both keep the new lane (before: steered back, saturated)


def test_the_expert_drops_a_lane_change_the_car_does_not_follow():
    # The labeller wants to pass the slow car; the driver keeps its lane. Once the car is
    # `follow_tolerance` off the labeller's reference, the labeller keeps the car's lane.
    env, _ = scene([(40.0, 0, 6.0, IDMVehicle)])
    start = env.ego_lane()
    labeller = TrafficExpert(env)
    gaps = _label_another_drive(TrafficExpert(env, NEVER_CHANGES), labeller, env, 20.0)
    assert env.ego_lane() == start and labeller.lane == start
    # it tries, lags, drops the change, tries again after the cooldown; before: it swerved for good
    assert 0 < (gaps > 0.5).mean() < 0.25


def test_the_expert_keeps_its_lane_for_a_car_hanging_on_the_line():
    # A car someone else drove sits on the line between two lanes. Its labels must all point
    # one way until it is clearly past the line (before: the kept lane flipped with the nearest
    # lane, so the labels flipped from step to step and a cloned net learnt to hang there).
    env, _ = scene([])
    labeller = TrafficExpert(env, NEVER_CHANGES)
    labeller.act()
    kept = env.ego_lane()
    other = 1 - kept
    width = env.road_map.lane_width
    progress, _ = env.road.place(env.vehicle)
    near, _ = env.road_pose(progress, kept)
    far, _ = env.road_pose(progress, other)

    def label_at(past_the_line):
        env.vehicle.position = near + (far - near) * (0.5 + past_the_line / width)
        env.road.invalidate()
        return labeller.act()[0]

    steer_back = label_at(0.0)
    for past in (0.1, 0.3, 0.45):
        label_at(past)
        assert labeller.lane == kept
        assert np.sign(label_at(past)) == np.sign(steer_back)
    label_at(0.6)
    assert labeller.lane == other
