"""The traffic road stepped for all cars at once: highway-env's IDM/MOBIL traffic, same floats.

`FastTrafficRoad` is `envs.traffic.TrafficRoad` (the one the scenarios build unless their config
says `"fast_traffic": False`) with three steps computed as array expressions over all cars
instead of car by car:

- `frame`: every car's place on the road (its lane coordinates, via `envs.lane_table`);
- `act`: every IDM car's steering (highway-env's `steering_control`), its leaders in its lane
  and target lane (`TrafficRoad.neighbours` for all cars: an N x N comparison per lane) and its
  IDM acceleration. The lane-change decisions stay highway-env's own code (`follow_road`,
  `change_lane_policy`, MOBIL), called car by car in the road's order as before, but only on
  the steps where they can do something: near a lane's end, during a lane change, or when the
  car's decision timer is due (MOBIL runs once a second per car);
- `step`: the bicycle model of every car, then every car's lane (`LaneTable.closest`, the answer
  of highway-env's full scan), then collisions, tested only on the pairs that pass highway-env's
  own distance pre-check (the same pairs, in the same order, so the same impacts).

Everything else (crashed cars, impacts, other vehicle classes, lane shapes other than straight
and circular, recorded histories) goes through highway-env's code: a road with a vehicle of
another class steps the slow way. The arithmetic is highway-env's, operation for operation, so a
drive replays identically either way (tests/envs/test_traffic_fast.py compares every car).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from highway_env.road.road import LaneIndex
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from envs.lane_table import LaneTable, wrap_to_pi
from envs.road import Road
from envs.traffic import LANE_MARGIN, RoadFrame, TrafficRoad
from envs.traffic_models import Cars, clip, idm, mobil, not_zero

_END_SLACK = 1e-6  # [m] `follow_road` is called this much earlier than needed; it re-checks
_CLEAR = 1e-6  # [m] pairs further apart than this skip highway-env's polygon test
_STEPPED = (Vehicle, IDMVehicle)  # exact classes whose step is computed here


@dataclass
class _Where:
    """What the frame was computed from: positions (N, 2) [m], each car's lane (table rows)
    and longitudinal coordinate in it (N,) [m], and each car's index (by id)."""

    positions: np.ndarray
    rows: np.ndarray
    s: np.ndarray
    order: dict[int, int]


@dataclass
class _Neighbours:
    """Every car's nearest car ahead and behind in every lane (frame indices, -1: none)."""

    vehicles: list[Vehicle]
    front: np.ndarray  # (N, lanes)
    rear: np.ndarray  # (N, lanes)


def _neighbour_table(frame: RoadFrame, road_map: Road) -> _Neighbours:
    """`TrafficRoad.neighbours(progress, lane, exclude=car)` for every car and lane at once."""
    progress, width = frame.progress, road_map.lane_width
    centres = np.arange(road_map.lanes)[:, None] * width  # (L, 1) [m]
    in_lane = np.abs(frame.lateral[None, :] - centres) <= width / 2 + LANE_MARGIN  # (L, N)
    in_lane = in_lane[:, None, :] & ~np.eye(len(progress), dtype=bool)  # (L, i, j): j not i
    ahead = in_lane & (progress[None, :] >= progress[:, None])  # j level with or ahead of i
    behind = in_lane & (progress[None, :] < progress[:, None])
    nearest = np.argmin(np.where(ahead, progress, np.inf), axis=2)  # the first minimum
    last = np.argmax(np.where(behind, progress, -np.inf), axis=2)
    front = np.where(ahead.any(axis=2), nearest, -1).T  # (N, L)
    rear = np.where(behind.any(axis=2), last, -1).T
    return _Neighbours(frame.vehicles, front, rear)


class FastTrafficRoad(TrafficRoad):
    """`TrafficRoad` whose frame, IDM actions and vehicle steps are computed for all cars at
    once."""

    def __init__(self, road_map: Road, np_random: np.random.Generator) -> None:
        super().__init__(road_map, np_random)
        self.table = LaneTable(self.network)
        self._neighbours: _Neighbours | None = None  # set while `act` runs
        self._where = _Where(np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0), {})

    def _arrays_apply(self) -> bool:
        """Whether this step can be computed here (else highway-env's code runs)."""
        return (
            self.table.supported
            and not self.record_history
            and all(type(v) in _STEPPED for v in self.vehicles)
        )

    def _rows(self, vehicles: list[Vehicle], attribute: str = "lane_index") -> np.ndarray:
        """Table rows of each vehicle's lane (or of another lane index attribute)."""
        rows = self.table.rows
        return np.array([rows[getattr(v, attribute)] for v in vehicles], dtype=np.int64)

    def frame(self) -> RoadFrame:
        """Places of all vehicles (as `TrafficRoad.place` computes them), once per step."""
        if self._frame is not None and len(self._frame.vehicles) == len(self.vehicles):
            return self._frame
        if not self.table.supported:
            self._where = _Where(np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0), {})
            return super().frame()
        vehicles = list(self.vehicles)
        positions = np.array([v.position for v in vehicles], dtype=float).reshape(-1, 2)
        return self._make_frame(vehicles, self._rows(vehicles), positions)

    def _make_frame(
        self, vehicles: list[Vehicle], rows: np.ndarray, positions: np.ndarray
    ) -> RoadFrame:
        """The frame of `vehicles` in lanes `rows` at `positions` (N, 2) [m]."""
        t = self.table
        s, r = t.local(rows, positions)
        starts = self.road_map.segment_starts[t.segment[rows]]
        progress = starts + s * t.length[t.lane_0[rows]] / t.length[rows]
        lateral = t.lane_id[rows] * self.road_map.lane_width + r
        self._frame = RoadFrame(vehicles, progress, lateral)
        self._where = _Where(positions, rows, s, {id(v): i for i, v in enumerate(vehicles)})
        return self._frame

    def place(self, vehicle: Vehicle) -> tuple[float, float]:
        """`TrafficRoad.place`, read from the frame while the vehicle has not moved."""
        frame, where = self._frame, self._where
        i = None if frame is None else where.order.get(id(vehicle))
        if i is None or frame.vehicles[i] is not vehicle:
            return super().place(vehicle)
        x, y = where.positions[i]
        if x != vehicle.position[0] or y != vehicle.position[1]:
            return super().place(vehicle)
        return float(frame.progress[i]), float(frame.lateral[i])

    def neighbour_vehicles(
        self, vehicle: Vehicle, lane_index: LaneIndex | None = None
    ) -> tuple[Vehicle | None, Vehicle | None]:
        """`TrafficRoad.neighbour_vehicles`, looked up in the table `act` computes."""
        table = self._neighbours
        i = None if table is None else self._where.order.get(id(vehicle))
        if i is None:
            return super().neighbour_vehicles(vehicle, lane_index)
        lane = (lane_index or vehicle.lane_index)[2]
        front, rear = table.front[i, lane], table.rear[i, lane]
        vehicles = table.vehicles
        return (vehicles[front] if front >= 0 else None, vehicles[rear] if rear >= 0 else None)

    # --- act ----------------------------------------------------------------------------------

    def act(self) -> None:
        """Every vehicle's action: IDM cars' steering and acceleration computed together."""
        if not self._arrays_apply():
            return super().act()
        frame = self.frame()
        self._neighbours = table = _neighbour_table(frame, self.road_map)  # for MOBIL too
        try:
            idm = [v for v in self.vehicles if type(v) is IDMVehicle and not v.crashed]
            for v in self.vehicles:
                if not (type(v) is IDMVehicle and not v.crashed):
                    v.act()  # the ego's action is already set; crashed cars keep theirs
            if idm:
                self._act_idm(idm, table, frame)
        finally:
            self._neighbours = None  # positions change in `step`

    def _act_idm(self, idm_cars: list[IDMVehicle], table: _Neighbours, frame: RoadFrame) -> None:
        """IDMVehicle.act of every car in `idm_cars` (none crashed)."""
        where = self._where
        who = np.array([where.order[id(v)] for v in idm_cars], dtype=np.int64)
        state = np.array([
            (v.speed, v.heading, getattr(v, "target_speed", 0.0), getattr(v, "DELTA", 0.0))
            for v in frame.vehicles
        ])  # fmt: skip
        cars = Cars(where.positions, where.s, where.rows, *state.T)
        positions = where.positions[who]
        before = self._rows(idm_cars, "target_lane_index")
        s, r = self.table.local(before, positions)  # in the target lanes before the decisions
        targets = self._decide(idm_cars, who, cars, table, before, s)
        if not np.array_equal(targets, before):  # usually no car has changed its target lane
            s, r = self.table.local(targets, positions)
        steering = self._steering(targets, state[who], s, r)
        own = where.rows[who]
        changing = np.flatnonzero(targets != own)
        lanes = self.table.lane_id
        # IDM behind the leader in the own lane, and in the target lane during a lane change.
        ids = np.concatenate([np.arange(len(idm_cars)), changing])
        fronts = table.front[who[ids], np.concatenate([lanes[own], lanes[targets[changing]]])]
        accel = idm(self.table, cars, who[ids], fronts, cars.delta[who[ids]])
        accel, during = accel[: len(idm_cars)], accel[len(idm_cars) :]
        accel[changing] = np.minimum(accel[changing], during)
        accel = clip(accel, -IDMVehicle.ACC_MAX, IDMVehicle.ACC_MAX)
        for v, steer, acceleration in zip(idm_cars, steering.tolist(), accel.tolist(), strict=True):
            v.action = {"steering": steer, "acceleration": acceleration}

    def _decide(
        self,
        idm_cars: list[IDMVehicle],
        who: np.ndarray,
        cars: Cars,
        table: _Neighbours,
        rows: np.ndarray,
        s: np.ndarray,
    ) -> np.ndarray:
        """highway-env's lane decisions (`follow_road`, `change_lane_policy`), car by car in
        the road's order where they can act, MOBIL's arithmetic done for all cars first;
        `rows`: the target lanes before them, `s` [m]: each car's coordinate in its target
        lane; returns the table rows of the target lanes after them."""
        near_end = s > self.table.length[rows] - Vehicle.LENGTH / 2 - _END_SLACK
        # Cars that may weigh a lane change this step (the loop below re-checks each):
        # MOBIL reads only positions, speeds and lanes, which no decision changes.
        due = (rows == cars.rows[who]) & np.array([v.LANE_CHANGE_DELAY < v.timer for v in idm_cars])
        wants = np.zeros((len(idm_cars), 2), dtype=bool)
        k, side = np.nonzero((self.table.sides[rows] >= 0) & due[:, None])
        if len(k):
            lanes = self.table.sides[rows[k], side]
            wants[k, side] = mobil(self.table, cars, table.front, table.rear, who[k], lanes)
        sides = self.table.sides[rows].tolist()
        for v, end, want, side in zip(
            idm_cars, near_end.tolist(), wants.tolist(), sides, strict=True
        ):
            if end:
                v.follow_road()  # checks `after_end` itself
            if not v.enable_lane_change:
                continue
            if v.lane_index != v.target_lane_index:
                v.change_lane_policy()  # a lane change under way: highway-env's abort check
            elif v.LANE_CHANGE_DELAY < v.timer:  # `change_lane_policy` with MOBIL's answers
                v.timer = 0
                for row, yes in zip(side, want, strict=True):  # left, then right: right wins
                    if yes:
                        v.target_lane_index = self.table.indexes[row]
        return self._rows(idm_cars, "target_lane_index")

    def _steering(
        self, rows: np.ndarray, state: np.ndarray, s: np.ndarray, r: np.ndarray
    ) -> np.ndarray:
        """`ControlledVehicle.steering_control` towards lanes `rows` of cars with `state`
        (speed, heading, ...) at lane coordinates `s`, `r` in them [m]; [rad]."""
        c = IDMVehicle
        speed, heading = state[:, 0], state[:, 1]
        future_heading = self.table.heading_at(rows, s + speed * c.TAU_PURSUIT)
        lateral_speed = -c.KP_LATERAL * r
        heading_command = np.arcsin(clip(lateral_speed / not_zero(speed), -1, 1))
        heading_ref = future_heading + clip(heading_command, -np.pi / 4, np.pi / 4)
        heading_rate = c.KP_HEADING * wrap_to_pi(heading_ref - heading)
        slip = np.arcsin(clip(c.LENGTH / 2 / not_zero(speed) * heading_rate, -1, 1))
        steering = np.arctan(2 * np.tan(slip))
        return clip(steering, -c.MAX_STEERING_ANGLE, c.MAX_STEERING_ANGLE)

    # --- step ---------------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Every vehicle's bicycle model, lane and collisions, as highway-env steps them."""
        if not self._arrays_apply() or not self.vehicles:
            return super().step(dt)
        vehicles = self.vehicles
        for v in vehicles:
            if type(v) is IDMVehicle:
                v.timer += dt
            v.clip_actions()
        action = np.array([(v.action["steering"], v.action["acceleration"]) for v in vehicles])
        state = np.array([(v.heading, v.speed, v.LENGTH) for v in vehicles], dtype=float)
        heading, speed, length = state.T
        positions = np.array([v.position for v in vehicles], dtype=float)
        beta = np.arctan(1 / 2 * np.tan(action[:, 0]))
        velocity = speed[:, None] * np.stack([np.cos(heading + beta), np.sin(heading + beta)], 1)
        positions = positions + velocity * dt
        for i, v in enumerate(vehicles):
            if v.impact is not None:
                positions[i] += v.impact
                v.crashed, v.impact = True, None
        heading = heading + speed * np.sin(beta) / (length / 2) * dt
        speed = speed + action[:, 1] * dt
        rows = self.table.closest(positions, heading, self._rows(vehicles))
        for v, position, h, u in zip(
            vehicles, positions, heading.tolist(), speed.tolist(), strict=True
        ):
            v.position[:] = position
            v.heading, v.speed = h, u
        if rows is None:  # a distance that is not finite: highway-env's own scan decides
            for v in vehicles:
                v.lane_index = self.network.get_closest_lane_index(v.position, v.heading)
                v.lane = self.network.get_lane(v.lane_index)
            rows = self._rows(vehicles)
        else:
            indexes, lanes = self.table.indexes, self.table.lanes
            for v, row in zip(vehicles, rows.tolist(), strict=True):
                v.lane_index, v.lane = indexes[row], lanes[row]
        self._collide(positions, speed, dt)
        self._make_frame(list(vehicles), rows, positions)

    def _collide(self, positions: np.ndarray, speed: np.ndarray, dt: float) -> None:
        """highway-env's collision checks on the pairs that pass its distance pre-check."""
        vehicles = self.vehicles
        if len(vehicles) > 1:
            diagonal = np.array([v.diagonal for v in vehicles])
            offset = positions[None, :, :] - positions[:, None, :]  # (i, j): j's from i's
            distance = np.sqrt(np.vecdot(offset, offset))
            reach = (diagonal[:, None] + diagonal[None, :]) / 2 + speed[:, None] * dt
            pairs = np.nonzero(np.triu(~(distance > reach), k=1))
            apart = _apart(positions, speed, vehicles, pairs, dt)
            for i, j in zip(pairs[0][~apart].tolist(), pairs[1][~apart].tolist(), strict=True):
                vehicles[i].handle_collisions(vehicles[j], dt)
        for vehicle in vehicles:
            for other in self.objects:
                vehicle.handle_collisions(other, dt)


def _apart(
    positions: np.ndarray,
    speed: np.ndarray,
    vehicles: list[Vehicle],
    pairs: tuple[np.ndarray, np.ndarray],
    dt: float,
) -> np.ndarray:
    """(P,) True for the pairs whose rectangles, each swept by its step of motion, are more than
    `_CLEAR` apart along one of their four axes: highway-env's separating-axis test (its
    `are_polygons_intersecting`) would find them neither intersecting nor about to, so the
    check would do nothing. The test is conservative (the whole relative motion is subtracted,
    whichever way it points), so a pair it does not clear goes to highway-env's check."""
    i, j = pairs
    if not len(i):
        return np.zeros(0, bool)
    size = np.array([(v.heading, v.LENGTH / 2, v.WIDTH / 2) for v in vehicles])
    heading, half_length, half_width = size[:, 0], size[:, 1], size[:, 2]
    along = np.stack([np.cos(heading), np.sin(heading)], axis=1)  # (N, 2)
    across = np.stack([-along[:, 1], along[:, 0]], axis=1)
    axes = np.stack([along[i], across[i], along[j], across[j]], axis=1)  # (P, 4, 2)
    extents = (
        axes
        * np.stack([half_length[i], half_width[i], half_length[j], half_width[j]], 1)[..., None]
    )  # the half sides of both rectangles (P, 4, 2) [m]
    offset = positions[j] - positions[i]  # (P, 2)
    motion = (speed[i, None] * along[i] - speed[j, None] * along[j]) * dt
    reach = np.abs(np.einsum("pad,pkd->pak", axes, extents)).sum(axis=2)  # (P, 4)
    gap = np.abs(np.einsum("pad,pd->pa", axes, offset)) - reach
    gap -= np.abs(np.einsum("pad,pd->pa", axes, motion))
    return (gap > _CLEAR).any(axis=1)
