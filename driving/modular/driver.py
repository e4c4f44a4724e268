"""The modular driver: lane perception on the camera frame, then the expert's own control law.

    driver = ModularDriver(CameraConfig(kind="dashcam", appearance="train"))
    driver.reset(); action = driver.act(obs)      # [steering, throttle] from obs alone
    driver.estimate                               # what it perceived in that frame (a dict)

Perception (`driving.modular.lanes`) estimates the lateral offset, heading error and curvature
of the lane ahead from the frame, and in traffic `driving.modular.cars` the gap and closing speed
to the car ahead in that lane; `envs.expert`'s `lane_steering`, `bend_speed` and `controls`
turn them into a command with the expert's gains, exactly as the expert turns ground truth into
one. What the expert reads from the simulator and this driver cannot see is replaced by what a
driver knows: its own last steering command (for the slip angle), the speedometer, the speed
limit (`CRUISE_SPEED`: a sign, 15 m/s on every road of `envs.road`) and the car's length.
Nothing is learned and no ground truth is read. The control law on a perceived lane state is
`LaneControl`, shared with the direct-perception driver (`driving.learn.perception`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np
from highway_env.vehicle.kinematics import Vehicle

from driving.modular.birdseye import FAR_M
from driving.modular.cars import CarEstimate, CarPerception
from driving.modular.lanes import LaneEstimate, LanePerception
from envs.camera import CameraConfig
from envs.expert import ExpertConfig, bend_speed, controls, lane_steering, slip_angle
from envs.traffic_expert import TrafficExpertConfig, free_acceleration, idm_braking
from envs.winding import ACCELERATION_RANGE, SIMULATION_FREQUENCY, STEERING_RANGE

CRUISE_SPEED = 15.0
"""Speed on straights [m/s]: the speed limit of every road (`envs.road.RoadSettings`)."""
BEND_STEP_M = 2.0
"""The lane model's curvature is checked for bends every this many metres ahead [m]."""


class LaneState(Protocol):
    """A perceived lane state: what the control law reads (`LaneEstimate`, or the direct-
    perception net's `driving.learn.perception.LaneProfile`)."""

    lateral_offset: float
    """car's centre from the lane centre [m], positive right"""
    heading_error: float
    """car's heading minus the lane's [rad], positive right"""

    def curvature_at(self, distance: float) -> float:
        """The lane's curvature [1/m] `distance` [m] ahead, positive turning right."""
        ...


class LaneControl:
    """The expert's control law (`envs.expert`) driven from a perceived lane state: one copy,
    for every driver that perceives the lane (the modular one, the direct-perception net). Given
    a perceived car ahead, the throttle is the traffic expert's (`envs.traffic_expert`: its
    free-road law plus IDM's braking on the perceived gap and closing speed); the lane is kept
    (no lane changes: the camera does not see behind the car)."""

    def __init__(self, config: ExpertConfig, frequency: float, reach: float) -> None:
        """Args: config: the expert's gains; frequency: how often it acts [Hz] (the steering
        feed-forward looks one step on); reach: how far ahead the perceived curvature is
        trusted for bends [m]."""
        self.config = config
        self.dt = 1.0 / frequency
        self.reach = reach
        self.steering = 0.0  # last steering angle commanded [rad]
        self.steering_range = STEERING_RANGE
        """the steering angle [rad] at action +-1: the world's (`driving.rollout.drivers`)"""
        self.traffic = TrafficExpertConfig(lane_keeping=config)
        """the traffic expert's car-following settings (IDM), with these gains"""

    def act(
        self, lane: LaneState, speed: float, leader: tuple[float, float] | None = None
    ) -> np.ndarray:
        """[steering, throttle] in [-1, 1] for the perceived `lane` at `speed` [m/s], and the
        perceived car ahead `leader` (gap [m], closing speed [m/s]; a gap at or beyond the
        traffic expert's `sensing_range`: no car) in traffic, None on an empty road."""
        v = max(abs(speed), 2.0)
        psi = lane.heading_error + slip_angle(self.steering)
        ahead = 0.5 * v * self.dt  # feed forward the curvature where the command acts
        kappa = lane.curvature_at(ahead)
        steering = lane_steering(lane.lateral_offset, psi, kappa, v, Vehicle.LENGTH, self.config)
        target = self.target_speed(lane)
        action = controls(steering, target, speed, self.config, self.steering_range)
        if leader is not None:  # traffic: the traffic expert's longitudinal law
            gap, closing = leader
            braking = idm_braking(speed, gap, closing, self.traffic)
            if gap >= self.traffic.sensing_range:
                braking = 0.0
            accel = free_acceleration(speed, target, self.traffic) + braking
            action[1] = np.clip(accel / ACCELERATION_RANGE, -1.0, 1.0)
        self.steering = float(action[0]) * self.steering_range
        return action

    def target_speed(self, lane: LaneState) -> float:
        """The expert's bend-aware speed [m/s] on the perceived curvature up to `reach` (or the
        expert's look-ahead if shorter), checked every `BEND_STEP_M`."""
        target = CRUISE_SPEED
        reach = min(self.config.lookahead, self.reach)
        for distance in np.arange(0.0, reach + 1e-9, BEND_STEP_M):
            kappa = abs(lane.curvature_at(float(distance)))
            if kappa > 1e-6:
                target = min(target, bend_speed(kappa, float(distance), CRUISE_SPEED, self.config))
        return float(target)


class ModularDriver:
    """Hand-built driver: `act(obs)` -> [steering, throttle] from the frame and the speedometer."""

    def __init__(
        self,
        camera: CameraConfig,
        config: ExpertConfig = ExpertConfig(),
        frequency: float = SIMULATION_FREQUENCY,
        traffic: bool = False,
    ) -> None:
        """Args: camera: the settings of the camera whose frames it gets; config: the expert's
        gains; frequency: how often it acts [Hz] (the steering feed-forward looks one step on);
        traffic: other cars are about: follow the one ahead (the traffic expert's IDM)."""
        self.lanes = LanePerception(camera)
        self.cars = CarPerception(camera, frequency) if traffic else None
        # bends are looked for as far as the bird's-eye grid reaches (`FAR_M`)
        self.control = LaneControl(config, frequency, reach=FAR_M)
        self.reset()

    def reset(self) -> None:
        """A new road: forget the lane and the last command."""
        self.lanes.reset()
        if self.cars is not None:
            self.cars.reset()
        self.control.steering = 0.0
        self.lane: LaneEstimate = self.lanes.last
        self.car: CarEstimate | None = None
        """The car ahead perceived in the last frame (traffic only)."""
        self.estimate: dict[str, float] | None = None
        """The quantities perceived in the last frame (`LaneEstimate.as_dict`); None before one."""

    def observe(self, obs: dict) -> None:
        """Perceive a frame without driving it (the expert drove): the estimate is still logged."""
        self._perceive(obs)
        self.control.steering = 0.0  # the expert's command is not known to this driver

    def _perceive(self, obs: dict) -> LaneEstimate:
        self.lane = self.lanes.estimate(obs["image"])
        self.estimate = self.lane.as_dict()
        if self.cars is not None:
            self.car = self.cars.estimate(obs["image"], self.lane, self.lanes.cars)
            self.estimate |= {"gap_ahead": self.car.gap, "closing_speed": self.car.closing_speed}
        return self.lane

    def act(self, obs: dict) -> np.ndarray:
        """[steering, throttle] in [-1, 1] for the frame and speed of `obs`."""
        lane = self._perceive(obs)
        leader = None if self.car is None else (self.car.gap, self.car.closing_speed)
        return self.control.act(lane, float(np.asarray(obs["speed"]).reshape(-1)[0]), leader)

    def target_speed(self, lane: LaneEstimate) -> float:
        """The expert's bend-aware speed [m/s] on the lane model's curvature up to what the
        camera shows ahead (`FAR_M`, or the expert's look-ahead if shorter)."""
        return self.control.target_speed(lane)


def source_hash(*more: Path) -> str:
    """sha256 of this driver's code (this package and the expert's control law, and the files
    `more`): evaluation caches its episodes under it, so that a changed driver is measured
    again."""
    files = sorted(Path(__file__).parent.glob("*.py")) + [
        Path(__file__).parents[2] / "envs/expert.py",
        Path(__file__).parents[2] / "envs/traffic_expert.py",
        *more,
    ]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()
