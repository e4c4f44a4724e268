"""The simulated world: the winding-road scenario and the camera wrapper for any highway-env env.

    env = make_env("winding-road")          # or "highway-v0", "racetrack-v1", ...
    obs, info = env.reset(seed=3)   # obs = {"image": (66, 200, 3) uint8, "speed": (1,) [m/s]}
    obs, reward, terminated, truncated, info = env.step([steering, throttle])   # both in [-1, 1]

`info` carries the per-step ground truth the metrics need: lateral_offset [m],
heading_error [rad], on_road, crashed, distance [m] travelled, progress [m] along the road,
speed [m/s], speed_limit [m/s], curvature [1/m] of the ego's lane.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from highway_env.envs.common.abstract import AbstractEnv
from highway_env.road.lane import AbstractLane, CircularLane, StraightLane
from highway_env.road.road import Road as HighwayRoad
from highway_env.utils import wrap_to_pi

from envs import EVAL_SEED_START
from envs.camera import Camera, CameraConfig
from envs.lane_lookup import use_fast_lane_lookup
from envs.road import Road, RoadSettings, make_road

SIMULATION_FREQUENCY = 10  # [Hz]; the policy acts every step (highway-env drifts below 5 Hz)
STEERING_RANGE = np.pi / 12  # [rad] at action +-1: 15 deg, so that labels use the range
ACCELERATION_RANGE = 5.0  # [m/s^2] at action +-1
MAX_SPEED = 30.0  # [m/s]
FINISH_MARGIN = 15.0  # the episode is finished this far before the road's end [m]
START_ANYWHERE_LEFT_M = 400.0  # start "anywhere" starts at least this far before the end [m]
BEND_LEAD_M = (60.0, 120.0)  # start "bend" starts this far before the sharpest arc [m]
STARTS = ("beginning", "anywhere", "bend")
CHEAP_OBSERVATION = {"type": "AttributesObservation", "attributes": ["time"]}
ACTION_CONFIG = {
    "type": "ContinuousAction",
    "longitudinal": True,
    "lateral": True,
    "steering_range": [-STEERING_RANGE, STEERING_RANGE],
    "acceleration_range": [-ACCELERATION_RANGE, ACCELERATION_RANGE],
    # Without a floor on speed, braking drives the car backwards.
    "speed_range": [0.0, MAX_SPEED],
}


class WindingRoadEnv(AbstractEnv):
    """One car on a winding road generated from the reset seed; it must reach the road's end.

    Terminates on reaching the end, a crash, or (if `terminate_off_road`) leaving the road;
    truncates after `duration` seconds (default: the time to drive the road at half the limit).
    """

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update(
            {
                "observation": CHEAP_OBSERVATION,
                "action": ACTION_CONFIG,
                "simulation_frequency": SIMULATION_FREQUENCY,
                "policy_frequency": SIMULATION_FREQUENCY,
                "road": RoadSettings(),
                "initial_speed": [8.0, 12.0],  # [m/s]
                "duration": None,  # [s]; None: 2 x length / speed limit
                "terminate_off_road": True,
                # Where the drive starts: the road's beginning; "anywhere": a point drawn along
                # it; "bend": a drawn distance (BEND_LEAD_M) before its sharpest arc.
                "start": "beginning",
            }
        )
        return config

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        # The road is drawn from the reset seed alone, so a seed names a road (see `envs`).
        # Unseeded resets draw a training road from the env's own generator.
        self.road_seed = (
            int(seed) if seed is not None else int(self.np_random.integers(0, EVAL_SEED_START))
        )
        return super().reset(seed=seed, options=options)

    def _reset(self) -> None:
        settings: RoadSettings = self.config["road"]
        settings.validate()
        self.road_map: Road = make_road(self.road_seed, settings)
        network = use_fast_lane_lookup(self.road_map.network)  # long roads step as fast as short
        self.road = HighwayRoad(network=network, np_random=self.np_random)
        rng = np.random.default_rng(self.road_seed + 7_919)  # start state, independent of the road
        lane_id = int(rng.integers(self.road_map.lanes))
        speed = float(rng.uniform(*self.config["initial_speed"]))
        lane, longitudinal = self.road_map.network.get_lane(("0", "1", lane_id)), 5.0
        start = self.config["start"]
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        if start == "anywhere":
            last = max(self.road_map.length - START_ANYWHERE_LEFT_M, 0.0)  # leave a road to drive
            lane, longitudinal = self.road_map.point_along(rng.uniform(0.0, last), lane_id)
        elif start == "bend":
            distance = self.road_map.sharpest_arc() - rng.uniform(*BEND_LEAD_M)
            lane, longitudinal = self.road_map.point_along(max(distance, 0.0), lane_id)
        ego = self.action_type.vehicle_class(
            self.road, lane.position(longitudinal, 0.0), lane.heading_at(longitudinal), speed
        )
        self.road.vehicles.append(ego)
        self.controlled_vehicles = [ego]

    @property
    def duration(self) -> float:
        """Time limit of the episode [s]."""
        if self.config["duration"] is not None:
            return float(self.config["duration"])
        return 2.0 * self.road_map.length / self.config["road"].speed_limit

    def progress(self) -> float:
        """Distance of the ego along the road [m]."""
        lane_index = self.vehicle.lane_index
        longitudinal, _ = self.vehicle.lane.local_coordinates(self.vehicle.position)
        return self.road_map.progress(lane_index, longitudinal)

    def reached_end(self) -> bool:
        return self.progress() >= self.road_map.length - FINISH_MARGIN

    def _reward(self, action: np.ndarray) -> float:
        # Not a quality metric (the evaluator computes those): progress while on the road.
        return float(self.vehicle.on_road) * self.vehicle.speed / self.config["road"].speed_limit

    def _rewards(self, action: np.ndarray) -> dict[str, float]:
        return {}

    def _is_terminated(self) -> bool:
        off_road = self.config["terminate_off_road"] and not self.vehicle.on_road
        return bool(self.vehicle.crashed or off_road or self.reached_end())

    def _is_truncated(self) -> bool:
        # Compare steps, not accumulated float time (which overshoots by one step).
        return self.steps >= round(self.duration * self.config["simulation_frequency"])

    def _info(self, obs: Any, action: Any = None) -> dict:
        info = super()._info(obs, action)
        info.update(
            {
                "seed": self.road_seed,
                "progress": self.progress(),
                "road_length": self.road_map.length,
                "reached_end": self.reached_end(),
                # The traffic scenarios' keys, neutral on an empty road: no car ahead.
                "gap_ahead": float("inf"),
                "time_headway": float("inf"),
                "lane_changes": 0,
            }
        )
        return info


def lane_curvature(lane: AbstractLane, longitudinal: float) -> float:
    """Signed curvature of a lane's centre line at `longitudinal` [1/m]: d heading / d s.

    1 / radius on a `CircularLane`, positive when it turns right (heading grows, clockwise on
    screen), 0 on a `StraightLane`; any other lane by a finite difference of its heading.
    """
    if isinstance(lane, CircularLane):
        return lane.direction / lane.radius
    if type(lane) is StraightLane:  # exact type: SineLane subclasses it but bends
        return 0.0
    step = 0.5  # [m]
    s = min(max(longitudinal, step), max(float(lane.length) - step, step))
    return float(wrap_to_pi(lane.heading_at(s + step) - lane.heading_at(s - step)) / (2 * step))


def ground_truth(env: AbstractEnv) -> dict[str, Any]:
    """Per-step ground truth of any highway-env scenario, read from the ego and its lane."""
    ego = env.vehicle
    lane = ego.lane
    longitudinal, lateral = lane.local_coordinates(ego.position)
    return {
        "lateral_offset": float(lateral),
        "heading_error": float(wrap_to_pi(ego.heading - lane.heading_at(longitudinal))),
        "on_road": bool(ego.on_road),
        "crashed": bool(ego.crashed),
        "speed": float(ego.speed),
        "speed_limit": float(lane.speed_limit),
        "heading": float(ego.heading),
        "curvature": float(lane_curvature(lane, longitudinal)),
    }


class DrivingWrapper(gym.Wrapper):
    """Camera frames in, [steering, throttle] out, ground truth in `info`, for any highway-env env.

    highway-env's ContinuousAction takes [acceleration, steering]; this wrapper takes the field's
    [steering, throttle] order. The observation is the heading-up camera frame and the speedometer.
    """

    def __init__(self, env: gym.Env, camera: CameraConfig = CameraConfig()) -> None:
        super().__init__(env)
        camera.validate()
        self.camera = Camera(camera)
        self.camera_config = camera
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (camera.height, camera.width, 3), dtype=np.uint8),
                "speed": gym.spaces.Box(-MAX_SPEED, MAX_SPEED, (1,), dtype=np.float32),
            }
        )
        self.distance = 0.0

    def _observe(self) -> dict[str, np.ndarray]:
        base = self.env.unwrapped
        image = self.camera.render(base.road, base.vehicle)
        speed = np.clip(np.array([base.vehicle.speed], dtype=np.float32), -MAX_SPEED, MAX_SPEED)
        return {"image": image, "speed": speed}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        _, info = self.env.reset(seed=seed, options=options)
        self.distance = 0.0
        base = self.env.unwrapped
        use_fast_lane_lookup(base.road.network)  # any scenario: same lanes found, found faster
        self.camera.reset(base.road)
        info.update(ground_truth(base), distance=0.0)
        info.setdefault("progress", 0.0)
        return self._observe(), info

    def step(self, action):
        steering, throttle = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1, 1)
        _, reward, terminated, truncated, info = self.env.step(np.array([throttle, steering]))
        base = self.env.unwrapped
        # highway-env's speed floor is soft (it lets speed dip below 0, i.e. reverse): make it hard.
        base.vehicle.speed = max(base.vehicle.speed, 0.0)
        self.distance += base.vehicle.speed / base.config["policy_frequency"]
        info.update(ground_truth(base), distance=self.distance)
        info.setdefault("progress", self.distance)
        return self._observe(), float(reward), bool(terminated), bool(truncated), info


SCENARIO = "winding-road"
TRAFFIC_SCENARIOS = ("winding-traffic", "highway-traffic")


def scenario_config(scenario: str, density: str = "default") -> dict[str, Any]:
    """`make_env` config entries for a scenario: the traffic density where there is traffic.

    Raises:
        ValueError: a density other than the default for a scenario without traffic, or a
            density that is neither a level name nor a number of vehicles/km/lane.
    """
    if scenario not in TRAFFIC_SCENARIOS:
        if density != "default":
            raise ValueError(
                f"--density is for the traffic scenarios {list(TRAFFIC_SCENARIOS)}, "
                f"not {scenario!r}"
            )
        return {}
    from envs.traffic import parse_density

    return {"density": parse_density(density)}


def make_expert(env: gym.Env):
    """The expert for `env`'s scenario: `TrafficExpert` among other cars, else the lane keeper."""
    from envs.expert import Expert
    from envs.traffic import TrafficEnv
    from envs.traffic_expert import TrafficExpert

    return TrafficExpert(env) if isinstance(env.unwrapped, TrafficEnv) else Expert(env)


def make_env(
    scenario: str = SCENARIO, camera: CameraConfig = CameraConfig(), **config: Any
) -> DrivingWrapper:
    """Build a scenario with the camera wrapper.

    Args:
        scenario: "winding-road", "winding-traffic", "highway-traffic" (ours) or any registered
            highway-env id ("highway-v0", ...).
        camera: camera settings.
        **config: highway-env config entries that override the scenario's defaults.

    Raises:
        ValueError: unknown scenario name.
    """
    if scenario == SCENARIO:
        base: gym.Env = WindingRoadEnv(config=config)
    elif scenario in TRAFFIC_SCENARIOS:
        from envs.traffic import TRAFFIC_ENVS  # here: envs.traffic builds on this module

        base = TRAFFIC_ENVS[scenario](config=config)
    else:
        if scenario not in gym.registry:
            known = ", ".join(
                sorted(
                    k
                    for k in gym.registry
                    if "-v" in k and "highway" in str(gym.registry[k].entry_point)
                )
            )
            ours = ", ".join(repr(name) for name in (SCENARIO, *TRAFFIC_SCENARIOS))
            raise ValueError(f"unknown scenario {scenario!r}; use {ours} or one of: {known}")
        config = {"observation": CHEAP_OBSERVATION, "action": ACTION_CONFIG, **config}
        base = gym.make(scenario, config=config).unwrapped
    base.enable_auto_render = False  # highway-env would redraw on every sub-step
    return DrivingWrapper(base, camera)


def make_winding_road(camera: CameraConfig = CameraConfig(), **config: Any) -> DrivingWrapper:
    """gymnasium entry point of `WindingRoad-v0`."""
    return make_env(SCENARIO, camera, **config)
