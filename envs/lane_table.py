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

from envs.lane_lookup import _centre_line_box

_TOLERANCE = 1e-6  # [m] a lane whose bound is this close to the upper bound is evaluated exactly
_TWO_PI = 2 * np.pi  # as highway-env's wrap_to_pi writes it
# Columns of `LaneTable.params`.
_START, _DIRECTION, _LATERAL, _CENTER = slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)
_RADIUS, _PHASE, _TURN, _CIRCULAR, _HEADING = 8, 9, 10, 11, 12
_COLUMNS = 13


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
        # One row of parameters per lane (gathered once per call): a straight lane's start,
        # direction and lateral direction, a circular lane's centre, radius, start phase and
        # turn (+1 clockwise); the other kind's entries are harmless and masked by _CIRCULAR.
        self.params = np.zeros((len(self.lanes), _COLUMNS))
        self.params[:, _RADIUS] = self.params[:, _TURN] = 1.0
        for row, lane in enumerate(self.lanes):
            p = self.params[row]
            if type(lane) is StraightLane:
                p[_START], p[_DIRECTION], p[_LATERAL] = (
                    lane.start,
                    lane.direction,
                    lane.direction_lateral,
                )
                p[_HEADING] = lane.heading
            elif type(lane) is CircularLane:
                p[_CENTER], p[_RADIUS], p[_PHASE] = lane.center, lane.radius, lane.start_phase
                p[_TURN], p[_CIRCULAR] = lane.direction, 1.0
        # The road's measure of progress (`envs.road.Road.progress`): each lane's segment and
        # the row of its segment's lane 0.
        self.segment = np.array(
            [int(i[0]) if str(i[0]).isdigit() else -1 for i in self.indexes], dtype=np.int64
        )
        self.lane_0 = np.array(
            [self.rows.get((*index[:2], 0), row) for row, index in enumerate(self.indexes)],
            dtype=np.int64,
        )
        self.boxes = np.array([_centre_line_box(lane) for lane in self.lanes]).reshape(-1, 4)
        self.nearby = self._nearby()

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
        p = self.params[rows]
        delta = positions - p[:, _START]
        s = np.vecdot(delta, p[:, _DIRECTION])
        r = np.vecdot(delta, p[:, _LATERAL])
        delta = positions - p[:, _CENTER]
        phase, turn, radius = p[:, _PHASE], p[:, _TURN], p[:, _RADIUS]
        phi = phase + wrap_to_pi(np.arctan2(delta[:, 1], delta[:, 0]) - phase)
        arc = p[:, _CIRCULAR] > 0
        s = np.where(arc, turn * (phi - phase) * radius, s)
        r = np.where(arc, turn * (radius - np.sqrt(np.vecdot(delta, delta))), r)
        return s, r

    def heading_at(self, rows: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Lane heading [rad] at longitudinal `s` [m] of lanes `rows`: `lane.heading_at`."""
        p = self.params[rows]
        turn = p[:, _TURN]
        phi = turn * s / p[:, _RADIUS] + p[:, _PHASE]
        return np.where(p[:, _CIRCULAR] > 0, phi + np.pi / 2 * turn, p[:, _HEADING])

    def distance(self, rows: np.ndarray, positions: np.ndarray, headings: np.ndarray):
        """`lane.distance_with_heading(position, heading)` of each (row, position, heading),
        and the lane coordinates (s, r) [m] it was computed from."""
        s, r = self.local(rows, positions)
        angle = np.abs(wrap_to_pi(headings - self.heading_at(rows, s)))
        d = np.abs(r) + np.maximum(s - self.length[rows], 0) + np.maximum(0 - s, 0) + angle
        return d, s, r

    def closest(
        self, positions: np.ndarray, headings: np.ndarray, guesses: np.ndarray
    ) -> tuple[np.ndarray, LaneCoordinates] | None:
        """Rows of the lanes `get_closest_lane_index` picks for each car, given a guess (its
        previous lane) per car, and the cars' lane coordinates, those computed on the way
        remembered; None if a distance is not finite (let highway-env decide)."""
        count = len(positions)
        distances = np.full((count, len(self.lanes)), np.inf)  # inf: not evaluated
        coordinates = np.full((2, count, len(self.lanes)), np.nan)  # (s, r) where evaluated
        rows = self.nearby[guesses].ravel()  # the lanes around the previous one, first
        cars = np.repeat(np.arange(count), self.nearby.shape[1])
        exact, *local = self.distance(rows, positions[cars], headings[cars])
        distances[cars, rows], coordinates[:, cars, rows] = exact, local
        upper = distances.min(axis=1)  # (N,) the answer is no further
        x, y = positions[:, :1], positions[:, 1:]
        b = self.boxes
        dx = np.maximum(np.maximum(b[:, 0] - x, x - b[:, 2]), 0.0)
        dy = np.maximum(np.maximum(b[:, 1] - y, y - b[:, 3]), 0.0)
        bound = np.hypot(dx, dy)  # (N, L) never more than the lane's distance
        cars, rows = np.nonzero((bound <= upper[:, None] + _TOLERANCE) & np.isinf(distances))
        if len(cars):  # lanes further away that might still be closer
            more, *local = self.distance(rows, positions[cars], headings[cars])
            distances[cars, rows], coordinates[:, cars, rows] = more, local
            exact = np.concatenate([exact, more])
        if not np.isfinite(exact).all():
            return None
        chosen = np.argmin(distances, axis=1)  # the first minimum in the network's order
        return chosen, LaneCoordinates(self, positions, coordinates)


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

    def __call__(self, cars: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s, r) [m] of each car `cars` (indices, (M,)) in its lane `rows` (table rows)."""
        s, r = self.known[:, cars, rows]
        missing = np.flatnonzero(np.isnan(s))
        if len(missing):
            cars, rows = cars[missing], rows[missing]
            s[missing], r[missing] = self.table.local(rows, self.positions[cars])
            self.known[:, cars, rows] = s[missing], r[missing]
        return s, r
