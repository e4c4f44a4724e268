"""The privileged traffic expert: car following and smooth, safe lane changes.

    expert = TrafficExpert(env)      # env: a traffic scenario (envs.traffic), wrapped or not
    steering, throttle = expert.act()

Longitudinal: the Intelligent Driver Model (Treiber). With v the speed, s the bumper-to-bumper
gap to the leader and dv the closing speed,
    a = free(v) - a_max (s* / s)^2,    s* = s0 + max(0, v T + v dv / (2 sqrt(a_max b)))
keeps a time gap T, brakes for a slower or braking leader, and returns to the target speed when
free. The free-road term is the lane-keeping expert's bend-aware speed controller (`Expert`), so
that without traffic the two experts drive alike. Braking down to -5 m/s^2 (the full pedal) is
allowed when the gap demands it.

Lateral: the lane-keeping controller of `Expert`, tracking a lateral reference. A lane change
moves that reference from one lane centre to the next along a minimum-jerk profile over
`change_duration` seconds (its rate is fed forward), so the steering has no spike. Lane changes
are decided MOBIL-style (Kesting, Treiber, Helbing): the expert's IDM acceleration in the next
lane must beat the current one by `change_gain` (plus `keep_right` towards the right lane, minus
it towards the left, and `politeness` times the followers' gains and losses); safety: the new
follower's IDM braking stays under `safe_decel`, so does the expert's own behind the new leader,
both gaps exceed `min_change_gap`, and no other car is moving into that lane nearby. No lane
change while one is under way, within `change_cooldown` seconds of the last, below 5 m/s, near the
road's end, or when a bend tighter than `min_change_radius` lies within the manoeuvre's length. If
the target lane turns unsafe in the first half of a change, the expert steers back along a
minimum-jerk path that starts where the reference is, at its rate and acceleration (no jump).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from highway_env.vehicle.kinematics import Vehicle

from envs.expert import CURVATURE_STEP, Expert, ExpertConfig
from envs.traffic import TrafficEnv
from envs.winding import ACCELERATION_RANGE, WindingRoadEnv, lane_curvature, steering_range

MIN_CHANGE_SPEED = 5.0  # [m/s] no lane change slower than this
CHANGE_END_MARGIN = 30.0  # [m] a lane change must end this far before the road's end


@dataclass(frozen=True)
class TrafficExpertConfig:
    """How the traffic expert drives."""

    lane_keeping: ExpertConfig = field(default_factory=ExpertConfig)
    """steering and bend-speed settings (the lane-keeping expert's)"""
    time_gap: float = 1.5
    """desired time gap to the leader, T [s]"""
    min_gap: float = 3.0
    """bumper-to-bumper gap kept when stopped, s0 [m]"""
    max_accel: float = 2.0
    """IDM acceleration, a_max [m/s^2]"""
    comfort_decel: float = 3.0
    """IDM comfortable deceleration, b [m/s^2]"""
    sensing_range: float = 60.0
    """other cars are seen this far ahead and behind [m]"""
    change_gain: float = 0.3
    """acceleration gain a lane change must bring [m/s^2]"""
    keep_right: float = 0.1
    """bias towards the right lane (lanes count from the left) [m/s^2]"""
    politeness: float = 0.3
    """weight of the followers' acceleration changes in the decision"""
    safe_decel: float = 2.0
    """most braking a lane change may impose on the new follower or on the expert [m/s^2]"""
    min_change_gap: float = 5.0
    """smallest bumper-to-bumper gap to the new leader and follower [m]"""
    change_duration: float = 4.0
    """time over which the lateral reference moves to the next lane [s]"""
    steer_back_duration: float = 2.5
    """time to return to the original lane when the target lane turns unsafe [s] (the path
    starts at the reference's position, rate and acceleration, so it overshoots a little)"""
    change_cooldown: float = 3.0
    """no new lane change within this time after one ends [s]"""
    min_change_radius: float = 60.0
    """no lane change starts if a bend tighter than this lies within the manoeuvre [m]"""
    follow_tolerance: float = 1.2
    """a car this far [m] from the expert's lateral reference was not driven by the expert (its
    own lane changes lag by at most 0.75 m): the expert then takes the car's lane as its own
    (DAgger labels, a takeover after a policy drove; `TrafficExpert._follow_the_car`)"""
    lane_hysteresis: float = 0.5
    """a car someone else drives becomes the expert's car of another lane only this far [m]
    past the line between them: a car hanging on the line gets labels that all point one way,
    not labels that flip with every step across it"""


def idm_braking(speed: float, gap: float, closing: float, cfg: TrafficExpertConfig) -> float:
    """IDM's braking term [m/s^2] (<= 0) for a follower at `speed` [m/s] `gap` [m] behind a
    leader it closes on at `closing` [m/s]; 0 beyond `cfg.sensing_range`."""
    if not np.isfinite(gap) or gap > cfg.sensing_range:
        return 0.0
    braking = speed * closing / (2 * np.sqrt(cfg.max_accel * cfg.comfort_decel))
    s_star = cfg.min_gap + max(0.0, speed * cfg.time_gap + braking)
    return -cfg.max_accel * (s_star / max(gap, 0.1)) ** 2


def free_acceleration(speed: float, target: float, cfg: TrafficExpertConfig) -> float:
    """Acceleration on a free road [m/s^2]: the lane-keeping expert's speed law towards
    `target` [m/s], capped at IDM's `max_accel`."""
    return min(cfg.max_accel, cfg.lane_keeping.speed_gain * (target - speed))


def _quintic(start: tuple[float, float, float], end: float, duration: float) -> np.ndarray:
    """Coefficients (t^0 .. t^5) of the minimum-jerk path from `start` = (position, rate,
    acceleration) to rest at `end` after `duration` [s]."""
    x0, v0, a0 = start
    distance, t = end - x0, duration
    return np.array([
        x0,
        v0,
        a0 / 2,
        (20 * distance - 12 * v0 * t - 3 * a0 * t**2) / (2 * t**3),
        (-30 * distance + 16 * v0 * t + 3 * a0 * t**2) / (2 * t**4),
        (12 * distance - 6 * v0 * t - a0 * t**2) / (2 * t**5),
    ])  # fmt: skip


@dataclass
class _LaneChange:
    start: float  # [s] simulation time
    path: np.ndarray  # quintic coefficients of the lateral reference [m from the leftmost lane]
    lane: int  # target lane
    origin_lane: int  # the lane it left
    duration: float  # [s]
    abortable: bool = True  # a change back to the original lane is not aborted again

    def at(self, elapsed: float) -> tuple[float, float, float]:
        """(position [m], rate [m/s], acceleration [m/s^2]) of the reference `elapsed` s in."""
        t = min(max(elapsed, 0.0), self.duration)
        c = self.path
        position = c[0] + t * (c[1] + t * (c[2] + t * (c[3] + t * (c[4] + t * c[5]))))
        rate = c[1] + t * (2 * c[2] + t * (3 * c[3] + t * (4 * c[4] + t * 5 * c[5])))
        accel = 2 * c[2] + t * (6 * c[3] + t * (12 * c[4] + t * 20 * c[5]))
        return position, rate, accel


class TrafficExpert(Expert):
    """Privileged driver for the traffic scenarios; `act()` returns [steering, throttle]."""

    def __init__(self, env, config: TrafficExpertConfig = TrafficExpertConfig()) -> None:
        super().__init__(env, config.lane_keeping)
        self.traffic = config
        self.reset()

    def reset(self) -> None:
        """Forget the lane plan (called between episodes; also done when time goes back)."""
        self.lane: int | None = None  # lane kept when not changing
        self.change: _LaneChange | None = None
        self.last_change_end = -np.inf
        self.last_time = np.inf

    @property
    def _env(self) -> TrafficEnv:
        return self._base  # type: ignore[return-value]

    # --- longitudinal -------------------------------------------------------------------------

    def _interaction(self, speed: float, gap: float, leader_speed: float) -> float:
        """IDM's braking term for a follower at `speed` behind a leader `gap` ahead [m/s^2]."""
        return idm_braking(speed, gap, speed - leader_speed, self.traffic)

    def _free(self, speed: float, target: float) -> float:
        """Acceleration on a free road: the lane-keeping expert's speed law, capped [m/s^2]."""
        return free_acceleration(speed, target, self.traffic)

    def leader(self) -> np.ndarray:
        """(2,) float32 what the expert's IDM reads about the car ahead in the ego's lane: the
        gap [m] bumper to bumper, capped at `sensing_range`, and the closing speed [m/s] (0
        without a car within range): the labels a direct-perception net learns in traffic."""
        gap, closing = self._env.leader()
        if gap > self.traffic.sensing_range:
            return np.array([self.traffic.sensing_range, 0.0], np.float32)
        return np.array([gap, closing], np.float32)

    def lane_change(self) -> float:
        """The lane plan as of the last `act()`: -1 while the expert heads for the lane on its
        left, +1 for the one on its right, 0 otherwise (keeping its lane, the second half of a
        change once the car is in the new lane, a steer back into the lane it is in). The label
        of a policy that chooses a plan before it steers (`ModelConfig.outputs` with
        "lane_change")."""
        if self.change is None:
            return 0.0
        _, lateral = self._env.road.place(self._env.vehicle)
        return float(np.sign(self.change.lane - self._env.road.lane_of(lateral)))

    def _other_free(self, vehicle: Vehicle) -> float:
        """IDM free-road term of another car, from its own target speed [m/s^2]."""
        target = max(getattr(vehicle, "target_speed", vehicle.speed), 0.1)
        return self.traffic.max_accel * (1 - (max(vehicle.speed, 0.0) / target) ** 4)

    def _follow(self, follower: Vehicle, leader: Vehicle | None, free: float) -> float:
        """Acceleration of `follower` behind `leader` (None: free road) [m/s^2]."""
        if leader is None:
            return free
        gap = self._env.road.gap(follower, leader)
        return free + self._interaction(follower.speed, gap, leader.speed)

    def acceleration(self, lanes: list[int]) -> float:
        """The expert's IDM acceleration behind the leaders in all of `lanes` [m/s^2]."""
        road, ego = self._env.road, self._env.vehicle
        progress, _ = road.place(ego)
        free = self._free(ego.speed, self.target_speed())
        return min(
            self._follow(ego, road.neighbours(progress, lane, exclude=ego)[0], free)
            for lane in lanes
        )

    # --- lane-change decision -----------------------------------------------------------------

    def _may_start_change(self, progress: float) -> bool:
        """No change under way or just ended, enough speed, road, and no tight bend ahead."""
        env, ego, cfg = self._env, self._env.vehicle, self.traffic
        if self.change is not None or env.time - self.last_change_end < cfg.change_cooldown:
            return False
        if ego.speed < MIN_CHANGE_SPEED:
            return False
        manoeuvre = ego.speed * cfg.change_duration
        if progress + manoeuvre + CHANGE_END_MARGIN > env.road_map.length:
            return False
        for lane, s in self._lanes_ahead(manoeuvre):
            if abs(lane_curvature(lane, s, CURVATURE_STEP)) * cfg.min_change_radius > 1.0:
                return False
        return True

    def _lane_is_safe(self, lane: int, progress: float) -> bool:
        """The gap in `lane` beside the ego is free and no one is moving into it nearby."""
        road, ego, cfg = self._env.road, self._env.vehicle, self.traffic
        front, rear = road.neighbours(progress, lane, exclude=ego)
        if front is not None:
            if road.gap(ego, front) < cfg.min_change_gap:
                return False
            own = self._follow(ego, front, self._free(ego.speed, self.target_speed()))
            if own < -cfg.safe_decel:
                return False
        if rear is not None:
            if road.gap(rear, ego) < cfg.min_change_gap:
                return False
            if self._follow(rear, ego, self._other_free(rear)) < -cfg.safe_decel:
                return False
        frame = road.frame()
        for other, at in zip(frame.vehicles, frame.progress, strict=True):
            target = getattr(other, "target_lane_index", None)
            moving_in = target is not None and target[2] == lane and other.lane_index[2] != lane
            if other is not ego and moving_in and abs(at - progress) < cfg.sensing_range / 2:
                return False
        return True

    def _incentive(self, lane: int, current: int, progress: float) -> float:
        """MOBIL's incentive to move from `current` to `lane` [m/s^2]."""
        road, ego, cfg = self._env.road, self._env.vehicle, self.traffic
        free = self._free(ego.speed, self.target_speed())
        front_now, rear_now = road.neighbours(progress, current, exclude=ego)
        front_new, rear_new = road.neighbours(progress, lane, exclude=ego)
        gain = self._follow(ego, front_new, free) - self._follow(ego, front_now, free)
        followers = 0.0
        if rear_new is not None:  # the new follower gets the ego as leader
            rear_free = self._other_free(rear_new)
            followers += self._follow(rear_new, ego, rear_free) - self._follow(
                rear_new, front_new, rear_free
            )
        if rear_now is not None:  # the old follower gets the ego's leader
            rear_free = self._other_free(rear_now)
            followers += self._follow(rear_now, front_now, rear_free) - self._follow(
                rear_now, ego, rear_free
            )
        bias = cfg.keep_right if lane > current else -cfg.keep_right
        return gain + cfg.politeness * followers + bias

    def _follow_the_car(self) -> None:
        """Make the lane plan the car's when someone else drove it: a policy whose frames the
        expert labels (DAgger) or hands over to it. Without a change under way, the car's lane
        becomes the kept lane (a policy changed lanes on its own: its label is not "go back");
        with one, a car further than `follow_tolerance` from the reference (the policy did not
        follow) drops the change, keeps its own lane and gets the cooldown of a finished change
        (its label is not "swerve after a reference long gone"). The expert's own drives never
        get there. Either way the car's lane changes only `lane_hysteresis` past a line."""
        env, cfg = self._env, self.traffic
        _, lateral = env.road.place(env.vehicle)
        if self.change is None:
            self.lane = self._car_lane(lateral, self.lane)
        elif abs(self._reference()[0] - lateral) > cfg.follow_tolerance:
            self.lane = self._car_lane(lateral, self.change.origin_lane)
            self.change, self.last_change_end = None, env.time

    def _car_lane(self, lateral: float, kept: int) -> int:
        """The lane of a car `lateral` [m] from the leftmost lane's centre: `kept` until the
        car is `lane_hysteresis` past its line, then the nearest."""
        width = self._env.road_map.lane_width
        if abs(lateral - kept * width) <= width / 2 + self.traffic.lane_hysteresis:
            return kept
        return self._env.road.lane_of(lateral)

    def _decide(self) -> None:
        """Start, finish or abort a lane change."""
        env, cfg = self._env, self.traffic
        road = env.road
        progress, _ = road.place(env.vehicle)
        if self.change is not None:
            elapsed = env.time - self.change.start
            if (
                self.change.abortable
                and elapsed < cfg.change_duration / 2
                and not self._lane_is_safe(self.change.lane, progress)
            ):
                # Steer back from where the reference is, as fast as it moves: no steering jump.
                now = self.change.at(elapsed)
                back = self.change.origin_lane
                path = _quintic(now, back * env.road_map.lane_width, cfg.steer_back_duration)
                self.change = _LaneChange(
                    env.time, path, back, back, cfg.steer_back_duration, abortable=False
                )
            elif elapsed >= self.change.duration:
                self.lane, self.change = self.change.lane, None
                self.last_change_end = env.time
            return
        if not self._may_start_change(progress):
            return
        current = self.lane
        best, best_incentive = None, cfg.change_gain
        for lane in (current - 1, current + 1):
            if 0 <= lane < env.road_map.lanes and self._lane_is_safe(lane, progress):
                incentive = self._incentive(lane, current, progress)
                if incentive > best_incentive:
                    best, best_incentive = lane, incentive
        if best is not None:
            width = env.road_map.lane_width
            path = _quintic((current * width, 0.0, 0.0), best * width, cfg.change_duration)
            self.change = _LaneChange(env.time, path, best, current, cfg.change_duration)

    def _reference(self) -> tuple[float, float]:
        """Lateral reference from the leftmost lane's centre [m] and its rate [m/s]."""
        if self.change is None:
            return self.lane * self._env.road_map.lane_width, 0.0
        elapsed = self._env.time - self.change.start
        position, rate, _ = self.change.at(elapsed)
        return position, rate

    # --- the command --------------------------------------------------------------------------

    def act(self, obs=None) -> np.ndarray:
        """[steering, throttle] in [-1, 1] for the current state (the observation is not used)."""
        env = self._env
        if not isinstance(env, WindingRoadEnv) or not hasattr(env.road, "neighbours"):
            raise TypeError("TrafficExpert drives the traffic scenarios (envs.traffic) only")
        ego = env.vehicle
        if env.time < self.last_time or self.lane is None:
            self.reset()
            self.lane = env.ego_lane()
        self.last_time = env.time
        self._follow_the_car()
        self._decide()
        _, lateral = env.road.place(ego)
        reference, rate = self._reference()
        width = env.road_map.lane_width
        offset = reference - ego.lane_index[2] * width
        steering = np.clip(self.steering(offset, rate) / steering_range(env), -1, 1)
        lanes = [env.road.lane_of(lateral)]
        if self.change is not None:
            lanes.append(self.change.lane)
        accel = self.acceleration(lanes)
        throttle = np.clip(accel / ACCELERATION_RANGE, -1, 1)
        return np.array([steering, throttle], dtype=np.float32)
