"""The traffic road stepped for all cars at once: highway-env's IDM/MOBIL traffic, same floats.

`FastTrafficRoad` is `envs.traffic.TrafficRoad` (the one the scenarios build unless their config
says `"fast_traffic": False`) with three steps computed as array expressions over all cars
instead of car by car:

- `frame`: every car's place on the road (its lane coordinates, via `envs.lane_table`);
- `act`: every IDM car's steering (highway-env's `steering_control`), its leaders in every lane
  (`TrafficRoad.neighbours` for all cars: an N x N comparison per lane) and its IDM
  acceleration behind each, evaluated once with the other accelerations MOBIL weighs. The
  lane-change decisions stay highway-env's own code (`change_lane_policy`), called car by car
  in the road's order as before for the few cars that can decide something (near a lane's end,
  changing lanes, or with the decision timer due: once a second per car), MOBIL's answers
  computed beforehand; `follow_road`'s next lane is read from the lane table where the road
  ahead is one road with as many lanes;
- `step`: the bicycle model of every car, then every car's lane (`LaneTable.closest`, the answer
  of highway-env's full scan), then collisions, tested only on the pairs that pass highway-env's
  own distance pre-check (give or take a rounding margin: its own check trims those, in the
  same order, so the same impacts).

A car's coordinates in a lane are computed once per step (`LaneCoordinates`): those `closest`
computes on the way (every car's in the lanes around it) answer the frame, IDM (a leader's
coordinate in its follower's lane), MOBIL and the steering, and a frame rebuilt after cars enter
or leave the scene keeps those of the cars that did not move.

Everything else (crashed cars, impacts, other vehicle classes, lane shapes other than straight
and circular, recorded histories) goes through highway-env's code: a road with a vehicle of
another class steps the slow way. The arithmetic is highway-env's, operation for operation, so a
drive replays identically either way (tests/envs/test_traffic_fast.py compares every car).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from math import cos, sin
from operator import attrgetter

import numpy as np
from highway_env.road.lane import AbstractLane
from highway_env.road.road import LaneIndex
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from envs.lane_table import LaneCoordinates, LaneTable, wrap_to_pi
from envs.road import Road
from envs.traffic import LANE_MARGIN, RoadFrame, TrafficRoad
from envs.traffic_models import Cars, clip, idm, mobil, mobil_pairs, not_zero

_END_SLACK = 1e-6  # [m] `follow_road` is called this much earlier than needed; it re-checks
_CLEAR = 1e-6  # [m] margin for rounding: pairs further apart skip highway-env's collision tests
_STEPPED = frozenset({Vehicle, IDMVehicle})  # exact classes whose step is computed here
_CAR = AbstractLane.VEHICLE_LENGTH  # [m] `after_end`: past a lane's end within half this of it


@dataclass
class _Where:
    """What the frame was computed from: positions (N, 2) [m], each car's lane (table rows),
    longitudinal and lateral coordinates in it (N,) [m], each car's index (by id), and the
    cars' coordinates in any lane (None without a frame of arrays)."""

    positions: np.ndarray
    rows: np.ndarray
    s: np.ndarray
    r: np.ndarray
    order: dict[int, int]
    local: LaneCoordinates | None = None

    @classmethod
    def empty(cls) -> _Where:
        return cls(np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), {})


@dataclass
class _Neighbours:
    """Every car's nearest car ahead and behind in every lane (frame indices, -1: none)."""

    vehicles: list[Vehicle]
    front: np.ndarray  # (N, lanes)
    rear: np.ndarray  # (N, lanes)


@cache
def _others(count: int) -> np.ndarray:
    """(count, count) True off the diagonal (read only)."""
    others = ~np.eye(count, dtype=bool)
    others.flags.writeable = False
    return others


@cache
def _above(count: int) -> np.ndarray:
    """(count, count) True above the diagonal (read only)."""
    above = np.triu(np.ones((count, count), dtype=bool), k=1)
    above.flags.writeable = False
    return above


def _neighbour_table(frame: RoadFrame, road_map: Road) -> _Neighbours:
    """`TrafficRoad.neighbours(progress, lane, exclude=car)` for every car and lane at once."""
    progress, width = frame.progress, road_map.lane_width
    centres = np.arange(road_map.lanes)[:, None] * width  # (L, 1) [m]
    in_lane = np.abs(frame.lateral - centres) <= width / 2 + LANE_MARGIN  # (L, N)
    in_lane, others = in_lane[:, None, :], _others(len(progress))  # (L, i, j): j not i
    ahead = in_lane & ((progress >= progress[:, None]) & others)  # j level with or ahead of i
    behind = in_lane & ((progress < progress[:, None]) & others)
    nearest = np.where(ahead, progress, np.inf).argmin(axis=2)  # the first minimum
    last = np.where(behind, progress, -np.inf).argmax(axis=2)
    front = np.where(np.logical_or.reduce(ahead, axis=2), nearest, -1).T  # (N, L)
    rear = np.where(np.logical_or.reduce(behind, axis=2), last, -1).T
    return _Neighbours(frame.vehicles, front, rear)


class FastTrafficRoad(TrafficRoad):
    """`TrafficRoad` whose frame, IDM actions and vehicle steps are computed for all cars at
    once."""

    def __init__(self, road_map: Road, np_random: np.random.Generator) -> None:
        super().__init__(road_map, np_random)
        self.table = t = LaneTable(self.network)
        # Per lane, for `Road.progress` and the lateral offset: its segment's start [m], the
        # length of its segment's lane 0 [m] and its centre's offset from lane 0's [m].
        self._start = road_map.segment_starts[t.segment]
        self._length_0 = t.length[t.lane_0]
        self._offset = t.lane_id * road_map.lane_width
        # Per lane, as lists for the few cars `_decide` visits a step: length [m], the row of the
        # next lane (-1: highway-env's `next_lane` decides), the rows of the lanes beside.
        self._length, self._next, self._sides = t.length.tolist(), t.next.tolist(), t.sides.tolist()
        self._neighbours: _Neighbours | None = None  # set while `act` runs
        self._where = _Where.empty()

    def _arrays_apply(self) -> bool:
        """Whether this step can be computed here (else highway-env's code runs)."""
        return (
            self.table.supported
            and not self.record_history
            and set(map(type, self.vehicles)) <= _STEPPED
        )

    def _rows(self, vehicles: list[Vehicle], attribute: str = "lane_index") -> np.ndarray:
        """Table rows of each vehicle's lane (or of another lane index attribute)."""
        lanes = map(attrgetter(attribute), vehicles)
        return np.fromiter(map(self.table.rows.__getitem__, lanes), np.int64, len(vehicles))

    def frame(self) -> RoadFrame:
        """Places of all vehicles (as `TrafficRoad.place` computes them), once per step."""
        if self._frame is not None and len(self._frame.vehicles) == len(self.vehicles):
            return self._frame
        if not self.table.supported:
            self._where = _Where.empty()
            return super().frame()
        vehicles = list(self.vehicles)
        positions = np.array([v.position for v in vehicles], dtype=float).reshape(-1, 2)
        local = self._carried(vehicles, positions)
        return self._make_frame(vehicles, self._rows(vehicles), positions, local)

    def _carried(self, vehicles: list[Vehicle], positions: np.ndarray) -> LaneCoordinates:
        """Lane coordinates of `vehicles` at `positions` (N, 2) [m], with those the last frame
        computed for the same cars at the same positions carried over (a car entering or
        leaving the scene does not make the others' computed again)."""
        local, where = LaneCoordinates(self.table, positions), self._where
        if where.local is None or not len(where.positions):
            return local
        old = np.array([where.order.get(id(v), -1) for v in vehicles], dtype=np.int64)
        before = where.positions.take(np.maximum(old, 0), axis=0)  # (N, 2), junk where -1
        same = (old >= 0) & (before[:, 0] == positions[:, 0]) & (before[:, 1] == positions[:, 1])
        same = same.nonzero()[0]
        local.known[:, same] = where.local.known[:, old[same]]
        return local

    def _make_frame(
        self,
        vehicles: list[Vehicle],
        rows: np.ndarray,
        positions: np.ndarray,
        local: LaneCoordinates | None = None,
    ) -> RoadFrame:
        """The frame of `vehicles` in lanes `rows` at `positions` (N, 2) [m]; `local`: their
        lane coordinates, those already computed."""
        t = self.table
        local = LaneCoordinates(t, positions) if local is None else local
        s, r = local(np.arange(len(vehicles)), rows)
        progress = self._start[rows] + s * self._length_0[rows] / t.length[rows]
        lateral = self._offset[rows] + r
        self._frame = RoadFrame(vehicles, progress, lateral)
        order = {id(v): i for i, v in enumerate(vehicles)}
        self._where = _Where(positions, rows, s, r, order, local)
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

    def _indexes(self, frame: RoadFrame, vehicle: Vehicle) -> list[int]:
        """`TrafficRoad._indexes`, looked up by id in the frame's order."""
        i = self._where.order.get(id(vehicle)) if frame is self._frame else None
        if i is None or frame.vehicles[i] is not vehicle:
            return super()._indexes(frame, vehicle)
        return [i]

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
            idm = []
            for v in self.vehicles:
                if type(v) is IDMVehicle and not v.crashed:
                    idm.append(v)
                else:
                    v.act()  # the ego's action is already set; crashed cars keep theirs
            if idm:
                self._act_idm(idm, table, frame)
        finally:
            self._neighbours = None  # positions change in `step`

    def _act_idm(self, idm_cars: list[IDMVehicle], table: _Neighbours, frame: RoadFrame) -> None:
        """IDMVehicle.act of every car in `idm_cars` (none crashed)."""
        where = self._where
        who = np.fromiter(map(where.order.__getitem__, map(id, idm_cars)), np.int64, len(idm_cars))
        state = np.array([
            (v.speed, v.heading, getattr(v, "target_speed", 0.0), getattr(v, "DELTA", 0.0))
            for v in frame.vehicles
        ])  # fmt: skip
        cars = Cars(where.local, where.s, where.rows, *state.T)
        before = self._rows(idm_cars, "target_lane_index")
        changing = before != where.rows[who]
        timers = np.array([v.LANE_CHANGE_DELAY < v.timer for v in idm_cars], dtype=bool)
        # IDM of every car behind its leader in every lane (its own lane's, and a target lane's
        # during a lane change), and the other cars' that MOBIL weighs: all in one evaluation.
        n, count, lanes = len(idm_cars), self.road_map.lanes, self.table.lane_id
        k, side, candidates = self._candidates(before, timers & ~changing)
        drivers, leaders = mobil_pairs(
            self.table, cars, table.front, table.rear, who[k], candidates
        )
        # MOBIL's four other accelerations with the exponent of the car weighing them.
        followers = who.repeat(count)
        delta = cars.delta[np.concatenate([followers, *[who[k]] * 4])]
        drivers = np.concatenate([followers, drivers])
        leaders = np.concatenate([table.front.take(who, axis=0).ravel(), leaders])
        accelerations = idm(self.table, cars, drivers, leaders, delta)
        follow = accelerations[: n * count].reshape(n, count)  # (car, lane)
        own_lane, everyone = lanes[where.rows[who]], np.arange(n)
        wants = np.zeros((n, 2), dtype=bool)
        if len(k):
            own, aside = follow[k, own_lane[k]], follow[k, lanes[candidates]]
            others = accelerations[n * count :].reshape(4, -1)
            wants[k, side] = mobil(self.table, cars, who[k], candidates, own, aside, others)
        if changing.any():  # coordinates in the target lanes before the decisions
            s, r = where.local(who, before)
        else:  # the frame's, in each car's own lane
            s, r = where.s[who], where.r[who]
        targets = self._decide(idm_cars, before, s, wants, timers | changing)
        if (targets != before).any():  # usually no car has changed its target lane
            s, r = where.local(who, targets)
        steering = self._steering(targets, state.take(who, axis=0), s, r)
        # During a lane change, the lower of the IDMs behind the leaders in both lanes (the
        # same one twice for a car in its target lane: min(a, a) is a).
        accel = np.minimum(follow[everyone, own_lane], follow[everyone, lanes[targets]])
        accel = clip(accel, -IDMVehicle.ACC_MAX, IDMVehicle.ACC_MAX)
        for v, steer, acceleration in zip(idm_cars, steering.tolist(), accel.tolist(), strict=True):
            v.action = {"steering": steer, "acceleration": acceleration}

    def _candidates(
        self, rows: np.ndarray, due: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (car, side) pairs MOBIL weighs this step, as index arrays (k into the IDM cars,
        side 0 = left, 1 = right), and the table rows of those side lanes: cars whose decision
        timer is `due` and that are not changing lanes (target lanes `rows`), beside a lane.
        MOBIL reads only positions, speeds and lanes, which no decision changes, so it can run
        before them."""
        sides = self.table.sides.take(rows, axis=0)
        k, side = ((sides >= 0) & due[:, None]).nonzero()
        return k, side, sides[k, side]

    def _decide(
        self,
        idm_cars: list[IDMVehicle],
        rows: np.ndarray,
        s: np.ndarray,
        wants: np.ndarray,
        busy: np.ndarray,
    ) -> np.ndarray:
        """highway-env's lane decisions (`follow_road`, `change_lane_policy`), car by car in
        the road's order where they can act, MOBIL's answers `wants` (cars, left/right) given;
        `rows`: the target lanes before them, `s` [m]: each car's coordinate in its target
        lane, `busy`: cars changing lanes or whose decision timer is due (the others' decide
        nothing unless near their lane's end); returns the table rows of the target lanes
        after them."""
        t = self.table
        near_end = s > t.length[rows] - Vehicle.LENGTH / 2 - _END_SLACK
        targets = rows.copy()
        for i in (near_end | busy).nonzero()[0].tolist():  # a few cars a step: plain floats
            v, row = idm_cars[i], int(rows[i])
            if near_end[i]:
                ahead = self._next[row]
                if ahead < 0 or v.route:
                    v.follow_road()  # checks `after_end` itself
                elif s[i] > self._length[row] - _CAR / 2:  # `lane.after_end`: `follow_road`'s
                    v.target_lane_index = t.indexes[ahead]  # answer where the road ahead is known
            if v.enable_lane_change:
                if v.lane_index != v.target_lane_index:
                    v.change_lane_policy()  # a lane change under way: highway-env's abort check
                elif v.LANE_CHANGE_DELAY < v.timer:  # `change_lane_policy` with MOBIL's answers
                    v.timer = 0
                    for side, yes in zip(self._sides[row], wants[i].tolist(), strict=True):
                        if yes:  # left, then right: right wins
                            v.target_lane_index = t.indexes[side]
            targets[i] = t.rows[v.target_lane_index]
        return targets

    def _steering(
        self, rows: np.ndarray, state: np.ndarray, s: np.ndarray, r: np.ndarray
    ) -> np.ndarray:
        """`ControlledVehicle.steering_control` towards lanes `rows` of cars with `state`
        (speed, heading, ...) at lane coordinates `s`, `r` in them [m]; [rad]."""
        c = IDMVehicle
        speed, heading = state[:, 0], state[:, 1]
        future_heading = self.table.heading_at(rows, s + speed * c.TAU_PURSUIT)
        lateral_speed, moving = -c.KP_LATERAL * r, not_zero(speed)
        heading_command = np.arcsin(clip(lateral_speed / moving, -1, 1))
        heading_ref = future_heading + clip(heading_command, -np.pi / 4, np.pi / 4)
        heading_rate = c.KP_HEADING * wrap_to_pi(heading_ref - heading)
        slip = np.arcsin(clip(c.LENGTH / 2 / moving * heading_rate, -1, 1))
        steering = np.arctan(2 * np.tan(slip))
        return clip(steering, -c.MAX_STEERING_ANGLE, c.MAX_STEERING_ANGLE)

    # --- step ---------------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Every vehicle's bicycle model, lane and collisions, as highway-env steps them."""
        if not self._arrays_apply() or not self.vehicles:
            return super().step(dt)
        vehicles, hit = self.vehicles, []
        for i, v in enumerate(vehicles):
            if type(v) is IDMVehicle:
                v.timer += dt
            v.clip_actions()
            if v.impact is not None:
                hit.append(i)
        state = np.array([
            (a["steering"], a["acceleration"], v.heading, v.speed, v.LENGTH)
            for v in vehicles
            for a in (v.action,)
        ])  # fmt: skip
        positions = np.array([v.position for v in vehicles], dtype=float)  # (N, 2) [m]
        steering, acceleration, heading, speed, length = state.T
        beta = np.arctan(1 / 2 * np.tan(steering))
        course, angle = np.empty((len(vehicles), 2)), heading + beta  # [rad] of the motion
        course[:, 0], course[:, 1] = np.cos(angle), np.sin(angle)  # np.stack's floats
        positions += speed[:, None] * course * dt
        for i in hit:
            positions[i] += vehicles[i].impact
            vehicles[i].crashed, vehicles[i].impact = True, None
        heading = heading + speed * np.sin(beta) / (length / 2) * dt
        speed = speed + acceleration * dt
        # Any guess gives the same lanes; the lanes of the last frame are good ones.
        guesses = self._where.rows
        if len(guesses) != len(vehicles):
            guesses = self._rows(vehicles)
        found = self.table.closest(positions, heading, guesses)
        # None: a distance that is not finite, highway-env's own scan decides.
        rows, local = found or (None, None)
        indexes, lanes = self.table.indexes, self.table.lanes
        for v, (x, y), h, u, row in zip(
            vehicles,
            positions.tolist(),
            heading.tolist(),
            speed.tolist(),
            [None] * len(vehicles) if rows is None else rows.tolist(),
            strict=True,
        ):
            position = v.position
            position[0], position[1], v.heading, v.speed = x, y, h, u
            if row is None:
                v.lane_index = self.network.get_closest_lane_index(position, h)
                v.lane = self.network.get_lane(v.lane_index)
            else:
                v.lane_index, v.lane = indexes[row], lanes[row]
        if rows is None:
            rows = self._rows(vehicles)
        self._collide(positions, speed, dt)
        self._make_frame(list(vehicles), rows, positions, local)

    def _collide(self, positions: np.ndarray, speed: np.ndarray, dt: float) -> None:
        """highway-env's collision checks on the pairs that pass its distance pre-check (in
        `_is_colliding`: no contact if the centres are further apart than half of both
        diagonals plus the first car's step), here with a margin of `_CLEAR`: every pair it
        keeps, and any pair at the margin's edge, which its own check drops again."""
        vehicles = self.vehicles
        if len(vehicles) > 1:
            half = np.array([v.diagonal for v in vehicles]) / 2  # [m]
            x, y = positions[:, 0], positions[:, 1]
            distance = np.hypot(x - x[:, None], y - y[:, None])  # (i, j) [m]
            reach = (half + speed * dt + _CLEAR)[:, None] + half
            close = ~(distance > reach) & _above(len(vehicles))  # row by row, as np.triu's
            for i, j in zip(*(pair.tolist() for pair in close.nonzero()), strict=True):
                if not _apart(vehicles[i], vehicles[j], dt):
                    vehicles[i].handle_collisions(vehicles[j], dt)
        if self.objects:
            for vehicle in vehicles:
                for other in self.objects:
                    vehicle.handle_collisions(other, dt)


def _apart(a: Vehicle, b: Vehicle, dt: float) -> bool:
    """True if the rectangles of cars `a` and `b`, each swept by its step of motion, are more
    than `_CLEAR` apart along one of their four axes: highway-env's separating-axis test (its
    `are_polygons_intersecting`) would find them neither intersecting nor about to, so the
    check would do nothing. The test is conservative (the whole relative motion is subtracted,
    whichever way it points), so a pair it does not clear goes to highway-env's check. Plain
    floats: a step has a handful of close pairs, too few for arrays to pay."""
    ca, sa, cb, sb = cos(a.heading), sin(a.heading), cos(b.heading), sin(b.heading)
    c, s = abs(ca * cb + sa * sb), abs(ca * sb - sa * cb)  # |cos|, |sin| of the angle between
    la, wa, lb, wb = a.LENGTH / 2, a.WIDTH / 2, b.LENGTH / 2, b.WIDTH / 2
    ox, oy = b.position[0] - a.position[0], b.position[1] - a.position[1]
    mx, my = (a.speed * ca - b.speed * cb) * dt, (a.speed * sa - b.speed * sb) * dt
    # Each axis (a's along and across, b's along and across) with the two rectangles' reach.
    for x, y, reach in (
        (ca, sa, la + c * lb + s * wb),
        (-sa, ca, wa + s * lb + c * wb),
        (cb, sb, lb + c * la + s * wa),
        (-sb, cb, wb + s * la + c * wa),
    ):
        if abs(x * ox + y * oy) - reach - abs(x * mx + y * my) > _CLEAR:
            return True
    return False
