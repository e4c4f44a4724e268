"""The winding-road scenario: one car on a road generated from the reset seed, and its settings.

`WindingRoadEnv` is the highway-env environment (no camera: `envs.world.make_env` wraps it); the
constants here set the physics and the action space that every scenario of the project shares.
`lane_curvature` is the one measure of a lane's curvature, for the ground truth and the experts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from highway_env.envs.common.abstract import AbstractEnv
from highway_env.road.lane import AbstractLane, CircularLane, StraightLane
from highway_env.road.road import Road as HighwayRoad
from highway_env.utils import wrap_to_pi

from envs import EVAL_SEED_START
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


def action_config(steering_range: float = STEERING_RANGE) -> dict[str, Any]:
    """highway-env's action config of the project: [acceleration, steering] continuous, the
    steering angle at +-1 being `steering_range` [rad]."""
    return {
        "type": "ContinuousAction",
        "longitudinal": True,
        "lateral": True,
        "steering_range": [-steering_range, steering_range],
        "acceleration_range": [-ACCELERATION_RANGE, ACCELERATION_RANGE],
        # Without a floor on speed, braking drives the car backwards.
        "speed_range": [0.0, MAX_SPEED],
    }


ACTION_CONFIG = action_config()


def steering_range(env) -> float:
    """The steering angle [rad] at action +-1 of highway-env env `env` (its action config)."""
    return float(env.unwrapped.config["action"].get("steering_range", [0, STEERING_RANGE])[1])


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
        self._ego_coordinates = (None, np.nan, np.nan, None)  # see `ego_lane_coordinates`
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
        if settings.limit_range:  # a drawn limit may lie below the start speed
            speed = min(speed, self.limit)
        ego = self.action_type.vehicle_class(
            self.road, lane.position(longitudinal, 0.0), lane.heading_at(longitudinal), speed
        )
        self.road.vehicles.append(ego)
        self.controlled_vehicles = [ego]

    @property
    def limit(self) -> float:
        """The speed limit [m/s] the drive is planned around (its duration, the reward's scale,
        the other cars' speeds; a drawn limit caps the start speed too): the road's own where it
        is drawn (`RoadSettings.limit_range`), else `speed_limit` (also where the limit follows
        the lane width, as before)."""
        settings: RoadSettings = self.config["road"]
        return self.road_map.speed_limit if settings.limit_range else settings.speed_limit

    @property
    def duration(self) -> float:
        """Time limit of the episode [s]."""
        if self.config["duration"] is not None:
            return float(self.config["duration"])
        return 2.0 * self.road_map.length / self.limit

    def ego_lane_coordinates(self) -> tuple[float, float]:
        """(longitudinal, lateral) [m] of the ego in its lane: `lane.local_coordinates`, computed
        once per lane and position (the reward, the termination and the info each ask)."""
        ego, (x, y) = self.vehicle, self.vehicle.position
        lane, at_x, at_y, coordinates = self._ego_coordinates
        if lane is not ego.lane or at_x != x or at_y != y:
            coordinates = ego.lane.local_coordinates(ego.position)
            self._ego_coordinates = (ego.lane, x, y, coordinates)
        return coordinates

    def ego_on_road(self) -> bool:
        """highway-env's `vehicle.on_road` of the ego, from `ego_lane_coordinates`."""
        return self.vehicle.lane.on_lane(self.vehicle.position, *self.ego_lane_coordinates())

    def progress(self) -> float:
        """Distance of the ego along the road [m]."""
        longitudinal, _ = self.ego_lane_coordinates()
        return self.road_map.progress(self.vehicle.lane_index, longitudinal)

    def reached_end(self, progress: float | None = None) -> bool:
        """Whether the ego is at the finish (given its `progress` [m], if already known)."""
        progress = self.progress() if progress is None else progress
        return progress >= self.road_map.length - FINISH_MARGIN

    def _reward(self, action: np.ndarray) -> float:
        # Not a quality metric (the evaluator computes those): progress while on the road.
        return float(self.ego_on_road()) * self.vehicle.speed / self.limit

    def _rewards(self, action: np.ndarray) -> dict[str, float]:
        return {}

    def _is_terminated(self) -> bool:
        off_road = self.config["terminate_off_road"] and not self.ego_on_road()
        return bool(self.vehicle.crashed or off_road or self.reached_end())

    def _is_truncated(self) -> bool:
        # Compare steps, not accumulated float time (which overshoots by one step).
        return self.steps >= round(self.duration * self.config["simulation_frequency"])

    def _info(self, obs: Any, action: Any = None) -> dict:
        info = super()._info(obs, action)
        progress = self.progress()
        info.update(
            {
                "seed": self.road_seed,
                "progress": progress,
                "road_length": self.road_map.length,
                "reached_end": self.reached_end(progress),
                # The traffic scenarios' keys, neutral on an empty road: no car ahead.
                "gap_ahead": float("inf"),
                "closing_speed": 0.0,
                "time_headway": float("inf"),
                "lane_changes": 0,
            }
        )
        return info


def lane_curvature(lane: AbstractLane, longitudinal: float, step: float | None = None) -> float:
    """Signed curvature of a lane's centre line at `longitudinal` [1/m]: d heading / d s.

    Positive when the lane turns right (heading grows, clockwise on screen). By default exact
    where the geometry gives it, 1 / radius on a `CircularLane` and 0 on a `StraightLane`, and on
    any other lane the centred difference of headings over +-0.5 m, kept inside the lane.

    Args:
        lane: any highway-env lane.
        longitudinal: where along the lane [m].
        step: if given, the centred difference of headings over +-`step` [m] at `longitudinal`
            itself (not kept inside the lane) on every lane, 0 on a `StraightLane` (where the
            difference is exactly 0 too). The experts' numerics: on an arc it equals
            1 / radius only to rounding, and the experts' drives must replay bit for bit.
    """
    if type(lane) is StraightLane:  # exact type: SineLane subclasses it but bends
        return 0.0
    if step is None:
        if isinstance(lane, CircularLane):
            return lane.direction / lane.radius
        step = 0.5  # [m]
        s = min(max(longitudinal, step), max(float(lane.length) - step, step))
    else:
        s = longitudinal
    return float(wrap_to_pi(lane.heading_at(s + step) - lane.heading_at(s - step)) / (2 * step))
