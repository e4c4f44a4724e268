"""highway-env's driver models, IDM and MOBIL, as array expressions over many cars at once.

    cars = Cars(local, s, rows, speed, heading, target_speed, delta)   # every car, (N,)
    accel = idm(table, cars, who, fronts, delta)          # IDMVehicle.acceleration, per pair
    drivers, leaders = mobil_pairs(table, cars, front, rear, who, lanes)  # what MOBIL weighs
    wants = mobil(table, cars, who, lanes, self_a, self_pred_a, others)   # IDMVehicle.mobil

MOBIL's last step, the decision of each of the few cars that weigh a lane change in a step, is
plain floats. Used by `envs.traffic_fast.FastTrafficRoad`. Each expression is highway-env's
(`highway_env/vehicle/behavior.py`, version 1.12), operation for operation and in the same
order, so that the results are the same floats as its car-by-car code; the replay test in
tests/envs/test_traffic_fast.py compares whole drives both ways.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from highway_env.road.lane import AbstractLane
from highway_env.vehicle.behavior import IDMVehicle

from envs.lane_table import LaneCoordinates, LaneTable


def not_zero(x: np.ndarray, eps: float = 1e-2) -> np.ndarray:
    """highway-env's `utils.not_zero`, element-wise."""
    return np.where(np.abs(x) > eps, x, np.where(x >= 0, eps, -eps))


def clip(x: np.ndarray, low, high) -> np.ndarray:
    """`np.clip` for low <= high (the same floats, NaN included), without its Python-level
    overhead, which on arrays of a few dozen cars costs more than the arithmetic."""
    return np.minimum(np.maximum(x, low), high)


@dataclass
class Cars:
    """Every car of a road frame as arrays, in the frame's order."""

    local: LaneCoordinates  # (s, r) [m] of any car in any lane: local(cars, rows)
    s: np.ndarray  # (N,) longitudinal coordinate in the car's own lane [m]
    rows: np.ndarray  # (N,) LaneTable row of the car's lane
    speed: np.ndarray  # (N,) [m/s]
    heading: np.ndarray  # (N,) [rad]
    target_speed: np.ndarray  # (N,) [m/s] (0 for a car without one, as highway-env reads it)
    delta: np.ndarray  # (N,) IDM's acceleration exponent of each car (0 if it has none)
    direction: np.ndarray = field(init=False)  # (N, 2) unit vector of each car's heading
    velocity: np.ndarray = field(init=False)  # (N, 2) [m/s] speed times direction

    def __post_init__(self) -> None:
        self.direction = np.empty((len(self.heading), 2))  # column by column: np.stack's floats
        self.direction[:, 0], self.direction[:, 1] = np.cos(self.heading), np.sin(self.heading)
        self.velocity = self.speed[:, None] * self.direction


def idm(
    table: LaneTable, cars: Cars, who: np.ndarray, fronts: np.ndarray, delta: np.ndarray
) -> np.ndarray:
    """`IDMVehicle.acceleration(ego_vehicle=who, front_vehicle=fronts)` [m/s^2] of a driver
    whose exponent is `delta`, for each (who, front, delta); indices into `cars`, -1: none (no
    car: 0, as highway-env returns; no front car: the free-road term only)."""
    c = IDMVehicle
    here = np.maximum(who, 0)
    own, speed = cars.rows[here], cars.speed[here]
    target = clip(cars.target_speed[here], 0, table.speed_limit[own])
    accel = c.COMFORT_ACC_MAX * (
        1 - np.power(np.maximum(speed, 0) / np.abs(not_zero(target)), delta)
    )
    led = ((fronts >= 0) & (who >= 0)).nonzero()[0]
    if len(led):
        f, driver, speed = fronts[led], here[led], speed[led]
        # `lane_distance_to`: both cars' longitudinal coordinates in the follower's lane.
        d = cars.local(f, own[led])[0] - cars.s[driver]
        velocity = cars.velocity.take(driver, axis=0) - cars.velocity.take(f, axis=0)
        dv = np.vecdot(velocity, cars.direction.take(driver, axis=0))
        gap = c.DISTANCE_WANTED + speed * c.TIME_WANTED + speed * dv / _TWO_SQRT_AB
        accel[led] -= c.COMFORT_ACC_MAX * np.power(gap / not_zero(d), 2)
    return np.where(who >= 0, accel, 0.0)


def mobil_pairs(
    table: LaneTable,
    cars: Cars,
    front: np.ndarray,
    rear: np.ndarray,
    who: np.ndarray,
    lanes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(drivers, leaders) (4K,) of the four accelerations of other cars `IDMVehicle.mobil`
    weighs for car `who[k]` moving to the side lane of table row `lanes[k]`: the new rear car
    behind the new front car and behind `who`, the old rear car behind `who` and behind the old
    front car (indices into `cars`, -1: none). `front`, `rear` (N, lanes): every car's
    nearest car ahead and behind in every lane. The other two (`who` behind the new and the old
    front car) are its own IDM in the side lane and in its lane."""
    own_lane, side_lane = table.lane_id[cars.rows[who]], table.lane_id[lanes]
    new_front, new_rear = front[who, side_lane], rear[who, side_lane]
    old_front, old_rear = front[who, own_lane], rear[who, own_lane]
    drivers = np.concatenate([new_rear, new_rear, old_rear, old_rear])
    return drivers, np.concatenate([new_front, who, who, old_front])


def mobil(
    table: LaneTable,
    cars: Cars,
    who: np.ndarray,
    lanes: np.ndarray,
    self_a: np.ndarray,
    self_pred_a: np.ndarray,
    others: np.ndarray,
) -> np.ndarray:
    """(K,) whether car `who[k]` would change to the side lane of table row `lanes[k]`:
    `change_lane_policy`'s per-lane tests (the lane is reachable, the car moves) and
    `IDMVehicle.mobil` without a route, from the ten accelerations it weighs: `self_a`,
    `self_pred_a` (K,): `who`'s IDM in its lane and in the side lane; `others` (4, K): those
    of `mobil_pairs`, all with `who`'s exponent (as highway-env computes them)."""
    s, r = cars.local(who, lanes)
    # Plain floats, car by car: a step weighs a few lane changes, too few for arrays to pay.
    columns = (s, r, lanes, cars.speed[who], self_a, self_pred_a, *others)
    per_car = zip(*map(np.ndarray.tolist, columns), strict=True)
    return np.array([_mobil(table, *car) for car in per_car], dtype=bool)


def _mobil(
    table: LaneTable,
    s: float,
    r: float,
    lane: int,
    speed: float,
    self_a: float,
    self_pred_a: float,
    new_rear_a: float,
    new_rear_pred_a: float,
    old_rear_a: float,
    old_rear_pred_a: float,
) -> bool:
    """`mobil` of one car at lane coordinates `s`, `r` [m] in the side lane of row `lane`,
    driving at `speed` [m/s], from the accelerations it weighs [m/s^2]."""
    c = IDMVehicle
    reachable = not table.forbidden[lane] and (
        abs(r) <= 2 * table.width[lane] and 0 <= s < table.length[lane] + _CAR
    )
    jerk = (
        self_pred_a
        - self_a
        + c.POLITENESS * (new_rear_pred_a - new_rear_a + old_rear_pred_a - old_rear_a)
    )
    return bool(
        reachable
        and not abs(speed) < 1  # the car moves
        and not new_rear_pred_a < -c.LANE_CHANGE_MAX_BRAKING_IMPOSED  # safe for the new rear
        and not jerk < c.LANE_CHANGE_MIN_ACC_GAIN
    )


_CAR = AbstractLane.VEHICLE_LENGTH  # [m] `is_reachable_from`'s slack past a lane's end
_TWO_SQRT_AB = 2 * np.sqrt(-IDMVehicle.COMFORT_ACC_MAX * IDMVehicle.COMFORT_ACC_MIN)  # [m/s^2]
"""`desired_gap`'s 2 sqrt(ab), as it computes it."""
