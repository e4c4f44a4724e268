"""The lanes of a road network as arrays: every car's lane coordinates and closest lane at once.

    table = LaneTable(network)             # straight and circular lanes only (`supported`)
    s, r = table.local(rows, positions)    # (N,) lane rows, (N, 2) world positions [m]
    rows, local = table.closest(positions, headings, rows)  # and every car's (s, r) ...
    s, r = local(cars, rows)               # ... in any lane, remembered where computed

highway-env computes these car by car (`lane.local_coordinates`, `RoadNetwork.
get_closest_lane_index`), a few numpy calls on 2-vectors each; here each is one expression over
all cars. The arithmetic is highway-env's, operation for operation (`np.vecdot` is the same dot
product as `np.dot` on a 2-vector, where a hand-written a0 * b0 + a1 * b1 differs in the last bit
a quarter of the time), so the answers are the same floats, not just close ones:
tests/envs/test_traffic_fast.py replays whole drives both ways and compares every car.

The closest lane is found as `envs.lane_lookup.FastLaneNetwork` finds it, for all cars at once:
a lower bound of every lane's distance from its centre line's bounding box, the exact distance of
each car's previous lane as an upper bound, then the exact distance of every lane whose bound is
within it, and the first minimum in the network's order (highway-env's `np.argmin`). The lane
coordinates it computes on the way (every car's in the lanes around it) are kept in a
`LaneCoordinates`, which answers the later questions of a step (a leader's coordinate in its
follower's lane, a car's in the lane beside it) without computing them again.
"""

from __future__ import annotations

import numpy as np
from highway_env.road.lane import CircularLane, StraightLane
from highway_env.road.road import LaneIndex, RoadNetwork

from envs.lane_lookup import centre_line_box

_TOLERANCE = 1e-6  # [m] a lane whose bound is this close to the upper bound is evaluated exactly
_TWO_PI = 2 * np.pi  # as highway-env's wrap_to_pi writes it
# Columns of `LaneTable.vectors`, rows of `LaneTable.scalars`.
_START, _DIRECTION, _LATERAL, _CENTER = slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)
_RADIUS, _PHASE, _TURN, _QUARTER, _HEADING, _LENGTH = range(6)


def wrap_to_pi(x: np.ndarray) -> np.ndarray:
    """highway-env's `utils.wrap_to_pi`, element-wise [rad]."""
    return ((x + np.pi) % _TWO_PI) - np.pi


class LaneTable:
    """Geometry of every lane of a network, in the network's order (highway-env's scan order)."""

    def __init__(self, network: RoadNetwork) -> None:
        self.indexes: list[LaneIndex] = [
            (_from, _to, _id)
            for _from, to_dict in network.graph.items()
            for _to, lanes in to_dict.items()
            for _id in range(len(lanes))
        ]
        self.lanes = [network.get_lane(index) for index in self.indexes]
        self.rows = {index: row for row, index in enumerate(self.indexes)}
        self.supported = all(type(lane) in (StraightLane, CircularLane) for lane in self.lanes)
        self.length = np.array([float(lane.length) for lane in self.lanes])
        self.speed_limit = np.array(
            [np.inf if lane.speed_limit is None else lane.speed_limit for lane in self.lanes]
        )
        self.lane_id = np.array([index[2] for index in self.indexes], dtype=np.int64)
        self.width = np.array([lane.width_at(0.0) for lane in self.lanes])
        self.forbidden = np.array([lane.forbidden for lane in self.lanes], dtype=bool)
        # `RoadNetwork.side_lanes`: the rows of the lanes left and right of each (-1: none).
        self.sides = np.array(
            [[self.rows.get((a, b, i + step), -1) for step in (-1, 1)] for a, b, i in self.indexes],
            dtype=np.int64,
        ).reshape(-1, 2)
        # The lanes' parameters, gathered once per call (`take`, a contiguous copy: numpy's
        # fancy indexing of a 2-D array costs several times more): a straight lane's start,
        # direction and lateral direction, a circular lane's centre (one row per lane); a
        # circular lane's radius, start phase, turn (+1 clockwise) and quarter turn [rad], a
        # straight lane's heading, every lane's length (one row per parameter). The other
        # kind's entries are harmless and masked by `arc`.
        self.vectors = np.zeros((len(self.lanes), 8))
        self.scalars = np.zeros((6, len(self.lanes)))
        self.scalars[_RADIUS] = self.scalars[_TURN] = 1.0
        self.scalars[_LENGTH] = self.length
        self.arc = np.array([type(lane) is CircularLane for lane in self.lanes], dtype=bool)
        for row, lane in enumerate(self.lanes):
            v = self.vectors[row]
            if type(lane) is StraightLane:
                v[_START], v[_DIRECTION], v[_LATERAL] = (
                    lane.start,
                    lane.direction,
                    lane.direction_lateral,
                )
                self.scalars[_HEADING, row] = lane.heading
            elif type(lane) is CircularLane:
                v[_CENTER] = lane.center
                self.scalars[[_RADIUS, _PHASE, _TURN, _QUARTER], row] = (
                    lane.radius,
                    lane.start_phase,
                    lane.direction,
                    np.pi / 2 * lane.direction,  # as `heading_at` computes it
                )
        # The road's measure of progress (`envs.road.Road.progress`): each lane's segment and
        # the row of its segment's lane 0.
        self.segment = np.array(
            [int(i[0]) if str(i[0]).isdigit() else -1 for i in self.indexes], dtype=np.int64
        )
        self.lane_0 = np.array(
            [self.rows.get((*index[:2], 0), row) for row, index in enumerate(self.indexes)],
            dtype=np.int64,
        )
        # Each lane's centre line's bounding box, by column: x_min, y_min, x_max, y_max [m].
        boxes = np.array([centre_line_box(lane) for lane in self.lanes]).reshape(-1, 4)
        self.boxes = np.ascontiguousarray(boxes.T)
        self.nearby = self._nearby()
        # `RoadNetwork.next_lane(row)` without a route, where it is known without searching:
        # one road ahead with as many lanes, the lane of the same index (-1: not known).
        self.next = np.array([self._next(network, index) for index in self.indexes], np.int64)
        # (L, L) whether a lane is outside `nearby` of another.
        self.far = np.ones((len(self.lanes), len(self.lanes)), dtype=bool)
        self.far[np.arange(len(self.lanes))[:, None], self.nearby] = False

    def _next(self, network: RoadNetwork, index: LaneIndex) -> int:
        """The row of `network.next_lane(index)` (route None) if there is one road ahead with as
        many lanes, or none (the lane itself, as highway-env answers); else -1."""
        _from, _to, _id = index
        if _to not in network.graph:
            return self.rows[index]
        ahead = network.graph[_to]
        if len(ahead) != 1:
            return -1
        ((next_to, lanes),) = ahead.items()
        return (
            self.rows[(_to, next_to, _id)] if len(lanes) == len(network.graph[_from][_to]) else -1
        )

    def _nearby(self) -> np.ndarray:
        """(L, K) rows of the lanes of each lane's segment and the segments either side (padded
        with the lane itself): where a car's next lane usually is."""
        rows = np.arange(len(self.lanes))
        if (self.segment < 0).any():
            return np.tile(rows, (len(rows), 1))
        groups = [rows[np.abs(self.segment - k) <= 1] for k in self.segment]
        width = max(len(g) for g in groups)
        return np.array([np.pad(g, (0, width - len(g)), mode="edge") for g in groups])

    def local(self, rows: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(longitudinal, lateral) [m] of `positions` (N, 2) in lanes `rows` (N,):
        `lane.local_coordinates` of each."""
        return self._local(rows, positions, self.scalars.take(rows, axis=1), self.arc[rows])

    def heading_at(self, rows: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Lane heading [rad] at longitudinal `s` [m] of lanes `rows`: `lane.heading_at`."""
        return self._heading_at(s, self.scalars.take(rows, axis=1), self.arc[rows])

    def distance(self, rows: np.ndarray, positions: np.ndarray, headings: np.ndarray):
        """`lane.distance_with_heading(position, heading)` of each (row, position, heading),
        and the lane coordinates (s, r) [m] it was computed from."""
        scalars, arc = self.scalars.take(rows, axis=1), self.arc[rows]
        s, r = self._local(rows, positions, scalars, arc)
        angle = np.abs(wrap_to_pi(headings - self._heading_at(s, scalars, arc)))
        # highway-env adds max(s - length, 0) and max(0 - s, 0): at most one is not 0.
        beyond = np.maximum(np.maximum(s - scalars[_LENGTH], 0 - s), 0)
        return np.abs(r) + beyond + angle, s, r

    def _local(
        self, rows: np.ndarray, positions: np.ndarray, scalars: np.ndarray, arc: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`local`, given the lanes' `scalars` and `arc` (gathered once for several uses)."""
        v = self.vectors.take(rows, axis=0)
        radius, phase, turn = scalars[_RADIUS], scalars[_PHASE], scalars[_TURN]
        delta = positions - v[:, _START]
        s = np.vecdot(delta, v[:, _DIRECTION])
        r = np.vecdot(delta, v[:, _LATERAL])
        delta = positions - v[:, _CENTER]
        phi = phase + wrap_to_pi(np.arctan2(delta[:, 1], delta[:, 0]) - phase)
        s = np.where(arc, turn * (phi - phase) * radius, s)
        r = np.where(arc, turn * (radius - np.sqrt(np.vecdot(delta, delta))), r)
        return s, r

    @staticmethod
    def _heading_at(s: np.ndarray, scalars: np.ndarray, arc: np.ndarray) -> np.ndarray:
        """`heading_at`, given the lanes' `scalars` and `arc`."""
        phi = scalars[_TURN] * s / scalars[_RADIUS] + scalars[_PHASE]
        return np.where(arc, phi + scalars[_QUARTER], scalars[_HEADING])

    def closest(
        self, positions: np.ndarray, headings: np.ndarray, guesses: np.ndarray
    ) -> tuple[np.ndarray, LaneCoordinates] | None:
        """Rows of the lanes `get_closest_lane_index` picks for each car, given a guess (its
        previous lane) per car, and the cars' lane coordinates, those computed on the way
        remembered; None if a distance is not finite (let highway-env decide)."""
        count = len(positions)
        nearby = self.nearby.take(
            guesses, axis=0
        )  # (N, K) the lanes around the previous one, in order
        cars, rows = np.arange(count).repeat(nearby.shape[1]), nearby.ravel()
        exact, s, r = self.distance(rows, positions.take(cars, axis=0), headings[cars])
        known = np.full((2, count, len(self.lanes)), np.nan)  # (s, r) where evaluated
        known[0, cars, rows], known[1, cars, rows] = s, r
        upper = np.minimum.reduce(exact.reshape(count, -1), axis=1)  # the answer is no further
        x, y = positions[:, :1], positions[:, 1:]
        x_min, y_min, x_max, y_max = self.boxes
        dx, dy = (
            x - np.minimum(np.maximum(x, x_min), x_max),
            y - np.minimum(np.maximum(y, y_min), y_max),
        )
        bound = np.hypot(dx, dy)  # (N, L) never more than the lane's distance
        more = ((bound <= upper[:, None] + _TOLERANCE) & self.far.take(guesses, axis=0)).nonzero()
        if len(more[0]):  # lanes further away that might still be closer
            distances = np.full((count, len(self.lanes)), np.inf)  # inf: not evaluated
            distances[cars, rows] = exact
            cars, rows = more
            further, s, r = self.distance(rows, positions.take(cars, axis=0), headings[cars])
            distances[cars, rows], known[0, cars, rows], known[1, cars, rows] = further, s, r
            exact = np.concatenate([exact, further])
            chosen = distances.argmin(axis=1)  # the first minimum in the network's order
        else:  # the first minimum of the lanes around (in the network's order too)
            chosen = nearby[np.arange(count), exact.reshape(count, -1).argmin(axis=1)]
        if not np.isfinite(exact).all():
            return None
        return chosen, LaneCoordinates(self, positions, known)


class LaneCoordinates:
    """Cars' coordinates (s, r) [m] in the lanes of a `LaneTable`: `LaneTable.local` of their
    positions, each computed once, on first demand (or handed over by `LaneTable.closest`).
    The same floats as computing them again: the same expression on the same position and
    lane, element by element."""

    def __init__(
        self, table: LaneTable, positions: np.ndarray, known: np.ndarray | None = None
    ) -> None:
        self.table, self.positions = table, positions  # (N, 2) [m]
        shape = (2, len(positions), len(table.lanes))
        self.known = np.full(shape, np.nan) if known is None else known  # NaN: not computed
        self._flat = self.known.reshape(2, -1)  # (2, N * L), the same memory

    def __call__(self, cars: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s, r) [m] of each car `cars` (indices, (M,)) in its lane `rows` (table rows)."""
        at = cars * len(self.table.lanes) + rows
        s, r = self._flat.take(at, axis=1)
        missing = np.isnan(s).nonzero()[0]
        if len(missing):
            rows, at = rows[missing], at[missing]
            s[missing], r[missing] = self.table.local(rows, self.positions.take(cars[missing], 0))
            self._flat[:, at] = s[missing], r[missing]
        return s, r
