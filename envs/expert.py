"""The privileged expert: drives from ground truth (lane geometry, own pose and speed).

Lateral: a linear controller on the lane frame. With e the lateral offset [m] and psi the angle
between the direction of motion and the lane [rad], commanding the path curvature
    kappa = kappa_lane - (2 zeta omega v psi + omega^2 e) / v^2
gives e'' + 2 zeta omega e' + omega^2 e = 0: the car settles on the lane centre in about 2/omega
seconds without overshoot, and tracks curves exactly thanks to the lane-curvature feed-forward.
The curvature is turned into a steering angle with highway-env's kinematic bicycle model.

Longitudinal: a target speed, the cruise speed lowered for bends ahead so that the lateral
acceleration stays under `max_lateral_accel` and braking stays gentle; throttle is proportional to
the speed error. The look-ahead equals what the camera shows ahead, so the label is a function of
the frame and the speedometer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from highway_env.envs.common.abstract import AbstractEnv
from highway_env.road.lane import StraightLane
from highway_env.utils import wrap_to_pi

from envs.winding import ACCELERATION_RANGE, STEERING_RANGE, lane_curvature, steering_range


@dataclass(frozen=True)
class ExpertConfig:
    """How the expert drives."""

    cruise_speed: float | None = None
    """speed on straights [m/s]; None: the lane's speed limit"""
    max_lateral_accel: float = 3.0
    """lateral acceleration allowed in bends [m/s^2]"""
    comfort_decel: float = 2.0
    """deceleration used to slow before bends [m/s^2]"""
    lookahead: float = 40.0
    """how far ahead bends are anticipated [m]"""
    omega: float = 1.0
    """lateral natural frequency [rad/s]"""
    zeta: float = 1.0
    """lateral damping ratio"""
    speed_gain: float = 1.0
    """acceleration per m/s of speed error [1/s]"""


CURVATURE_STEP = 1.0
"""The experts measure lane curvature by differences of headings over +-this [m]
(`lane_curvature`'s `step`)."""
CURVATURE_AHEAD_M = (0.0, 10.0, 20.0, 30.0, 40.0)
"""Distances along the route [m] at which collection records the lane's curvature
(`Expert.curvature_ahead`): now, and every 10 m up to the expert's look-ahead."""


def _clip(value: float, limit: float) -> float:
    """np.clip(value, -limit, limit) for one float, without numpy's per-call cost."""
    return min(max(float(value), -limit), limit)


class Expert:
    """Privileged driver for any highway-env scenario; `act()` returns [steering, throttle]."""

    def __init__(self, env, config: ExpertConfig = ExpertConfig()) -> None:
        self.env = env
        self.config = config

    def reset(self) -> None:
        """Nothing to forget between episodes: the expert is a function of the state."""

    @property
    def _base(self) -> AbstractEnv:
        return self.env.unwrapped

    def _lanes_ahead(self, distance: float, step: float = 2.0):
        """Yield (lane, longitudinal) every `step` [m] along the route from the ego up to
        `distance` [m]."""
        base = self._base
        ego = base.vehicle
        network = base.road.network
        index = ego.lane_index
        lane = network.get_lane(index)
        s, _ = lane.local_coordinates(ego.position)
        travelled = 0.0
        while travelled <= distance:
            if s > lane.length:
                nxt = network.next_lane(
                    index, position=lane.position(lane.length, 0), np_random=None
                )
                if (
                    nxt is None
                    or nxt[:2] == index[:2]
                    or nxt[1] not in network.graph.get(nxt[0], {})
                ):
                    return
                s -= lane.length
                index, lane = nxt, network.get_lane(nxt)
            yield lane, s
            s += step
            travelled += step

    def target_speed(self) -> float:
        """Cruise speed, lowered so that every bend within the look-ahead can be taken [m/s]."""
        cfg = self.config
        ego = self._base.vehicle
        cruise = cfg.cruise_speed if cfg.cruise_speed is not None else ego.lane.speed_limit
        target = cruise
        for i, (lane, s) in enumerate(self._lanes_ahead(cfg.lookahead)):
            if type(lane) is StraightLane:  # curvature exactly 0 (cheap skip, same result)
                continue
            kappa = abs(lane_curvature(lane, s, CURVATURE_STEP))
            if kappa < 1e-6:
                continue
            target = min(target, bend_speed(kappa, 2.0 * i, cruise, cfg))
        return float(target)

    def curvature_ahead(self, distances: tuple[float, ...] = CURVATURE_AHEAD_M) -> np.ndarray:
        """(K,) signed curvature [1/m] of the ego's lane, as the expert measures it, at each of
        `distances` [m] (ascending, a common step apart from 0) along the route ahead; 0 past
        the road's end, where the expert sees no bend either."""
        step = distances[1] - distances[0] if len(distances) > 1 else 1.0
        found = [
            lane_curvature(lane, s, CURVATURE_STEP)
            for lane, s in self._lanes_ahead(distances[-1], step)
        ]
        found += [0.0] * (len(distances) - len(found))
        return np.asarray(found[: len(distances)], dtype=np.float32)

    def truth(self) -> tuple[np.ndarray, np.ndarray | None, float | None]:
        """(`curvature_ahead()`, `leader()`, `lane_change()`) now: what a recorded step keeps
        beside its frame (`driving.record.steps`)."""
        return self.curvature_ahead(), self.leader(), self.lane_change()

    def leader(self) -> np.ndarray | None:
        """What the expert reads about a car ahead: nothing on an empty road (the traffic
        expert's `leader` gives the gap and closing speed)."""
        return None

    def lane_change(self) -> float | None:
        """The expert's lane plan: nothing on an empty road (the traffic expert's
        `lane_change` gives -1, 0 or +1)."""
        return None

    def steering(self, offset: float = 0.0, offset_rate: float = 0.0) -> float:
        """Steering angle [rad] that brings the car to the lane centre.

        Args:
            offset: lateral reference from the centre of the ego's lane [m], positive right
                (a lane change moves it gradually from one lane centre to the next).
            offset_rate: its time derivative [m/s], fed forward as a heading reference.
        """
        cfg = self.config
        ego = self._base.vehicle
        lane = ego.lane
        s, e = lane.local_coordinates(ego.position)
        e -= offset
        v = max(abs(ego.speed), 2.0)
        # Direction of motion = heading + slip angle beta of the bicycle model.
        beta = slip_angle(ego.action.get("steering", 0.0))
        psi_reference = math.asin(_clip(offset_rate / v, 0.5))
        psi = wrap_to_pi(ego.heading + beta - lane.heading_at(s) - psi_reference)
        # Feed-forward a little ahead: the command acts during the coming step.
        dt = 1.0 / self._base.config["policy_frequency"]
        kappa_lane = lane_curvature(lane, s + 0.5 * v * dt, CURVATURE_STEP)
        return lane_steering(e, psi, kappa_lane, v, ego.LENGTH, cfg)

    def act(self, obs=None) -> np.ndarray:
        """[steering, throttle] in [-1, 1] for the current state (the observation is not used)."""
        ego = self._base.vehicle
        target = self.target_speed()
        return controls(self.steering(), target, ego.speed, self.config, steering_range(self._base))


# The control law, as functions of the lane-frame state: the expert feeds them ground truth,
# the modular driver (`driving.modular`) its estimates from the camera frame.


def slip_angle(steering: float) -> float:
    """Angle between the direction of motion and the heading [rad] of highway-env's kinematic
    bicycle at steering angle `steering` [rad]."""
    return math.atan(0.5 * math.tan(steering))


def lane_steering(
    offset: float, psi: float, kappa_lane: float, speed: float, length: float, cfg: ExpertConfig
) -> float:
    """Steering angle [rad] of the expert's lateral law (the module docstring).

    Args:
        offset: lateral offset e from the reference [m], positive right.
        psi: angle of the direction of motion to the lane [rad], positive right.
        kappa_lane: lane curvature fed forward [1/m], positive turning right.
        speed: speed v [m/s], at least 2 (the law divides by v^2).
        length: the car's length [m] (highway-env's bicycle has its axles L/2 from the centre).
        cfg: omega and zeta.
    """
    v = speed
    kappa = (
        kappa_lane - (2 * cfg.zeta * cfg.omega * v * math.sin(psi) + cfg.omega**2 * offset) / v**2
    )
    # Kinematic bicycle: yaw rate = v sin(beta) / (L/2), beta = atan(tan(delta) / 2).
    sin_beta = _clip(kappa * length / 2, 0.99)
    return math.atan(2 * math.tan(math.asin(sin_beta)))


def bend_speed(kappa: float, distance: float, cruise: float, cfg: ExpertConfig) -> float:
    """Fastest speed [m/s] now from which a bend of curvature |`kappa`| [1/m] `distance` [m]
    ahead is entered at `max_lateral_accel`, braking at `comfort_decel` over the gap."""
    in_bend = min(cruise, math.sqrt(cfg.max_lateral_accel / kappa))
    return math.sqrt(in_bend**2 + 2 * cfg.comfort_decel * distance)


def controls(
    steering: float,
    target_speed: float,
    speed: float,
    cfg: ExpertConfig,
    steering_range: float = STEERING_RANGE,
) -> np.ndarray:
    """[steering, throttle] in [-1, 1]: a steering angle [rad] scaled to the action range
    (`steering_range` [rad] at +-1), and the throttle proportional to the speed error
    (target_speed - speed) [m/s]."""
    accel = cfg.speed_gain * (target_speed - speed)
    throttle = _clip(accel / ACCELERATION_RANGE, 1.0)
    return np.array([_clip(steering / steering_range, 1.0), throttle], dtype=np.float32)
