"""The camera's top-down road map: lane geometry sampled into polylines and drawn with OpenCV.

`envs.camera.Camera` cuts every frame out of a local map of a few hundred metres around the ego;
this module makes that map. `shape_lane` samples a lane's edges once per episode (every ~1 m;
straight lanes keep only their ends and are sampled inside the window on demand, so 10 km highways
cost nothing). `draw_map` paints the window of the world it is given: ground, the road surface of
every lane, then the lane markings each lane's `LineType`s ask for (striped lines: the first
`DASH_ON_M` of every `DASH_PERIOD_M` along the lane, `MARKING_WIDTH_M` wide).

Geometry is drawn in OpenCV's fixed point, `SHIFT` fractional bits, so that it is sub-pixel
accurate. The world uses highway-env's screen convention: y points down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from highway_env.road.lane import AbstractLane, CircularLane, LineType, StraightLane

DASH_ON_M = 3.0
"""Painted part of a striped line [m]."""
DASH_PERIOD_M = 9.0
"""One painted part plus one gap of a striped line [m]."""
MARKING_WIDTH_M = 0.25
"""Width of a lane marking [m]."""
SHIFT = 4
"""Fractional bits of OpenCV's fixed-point drawing: sub-pixel accurate geometry."""

_SAMPLE_STEP_M = 1.0  # [m] spacing of lane samples along s
_ONE = 1 << SHIFT


@dataclass
class LaneShape:
    """Sampled geometry of one lane, in world coordinates [m]."""

    lane: AbstractLane
    line_types: tuple[int, int]  # (left, right) = sides at lateral -w/2 and +w/2
    bbox: np.ndarray  # (4,) x_min, y_min, x_max, y_max [m]
    s: np.ndarray | None = None  # (N,) arc length of the samples; None: straight, sampled later
    left: np.ndarray | None = None  # (N, 2) edge at lateral -w/2
    right: np.ndarray | None = None  # (N, 2) edge at lateral +w/2


def _s_grid(s_lo: float, s_hi: float) -> np.ndarray:
    """Arc lengths every _SAMPLE_STEP_M on multiples of it (dashes line up), ends included."""
    inner = np.arange(math.ceil(s_lo / _SAMPLE_STEP_M), math.floor(s_hi / _SAMPLE_STEP_M) + 1)
    s = np.concatenate([[s_lo], inner * _SAMPLE_STEP_M, [s_hi]])
    return np.unique(s)


def _straight_edges(lane: StraightLane, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised edges of a straight lane at arc lengths s: (left, right), each (N, 2) [m]."""
    half = lane.width / 2
    centre = lane.start + s[:, None] * lane.direction
    return centre - half * lane.direction_lateral, centre + half * lane.direction_lateral


def _arc_edges(lane: CircularLane, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `CircularLane.position` of both edges at arc lengths s (same arithmetic)."""
    phi = lane.direction * s / lane.radius + lane.start_phase
    unit = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    half = lane.width / 2
    left = lane.center + (lane.radius - -half * lane.direction) * unit
    right = lane.center + (lane.radius - half * lane.direction) * unit
    return left, right


def shape_lane(lane: AbstractLane) -> LaneShape | None:
    """Sample one lane; None for a degenerate lane that draws nothing."""
    length = float(lane.length)
    if not math.isfinite(length) or length <= 0:
        return None
    types = tuple(lane.line_types) if lane.line_types is not None else (LineType.NONE,) * 2
    if type(lane) is StraightLane:  # exact type: SineLane subclasses it but bends
        s = None
        left, right = _straight_edges(lane, np.array([0.0, length]))
    elif type(lane) is CircularLane:
        s = _s_grid(0.0, length)
        left, right = _arc_edges(lane, s)
    else:
        s = _s_grid(0.0, length)
        # Lane classes only take scalar s (StraightLane would mis-broadcast an array of 2).
        pairs = [(si, lane.width_at(si) / 2) for si in s]
        left = np.array([lane.position(si, -h) for si, h in pairs], dtype=float)
        right = np.array([lane.position(si, h) for si, h in pairs], dtype=float)
    points = np.concatenate([left, right])
    if not np.isfinite(points).all():
        return None
    bbox = np.concatenate([points.min(axis=0), points.max(axis=0)])
    if s is None:
        return LaneShape(lane, types, bbox)
    return LaneShape(lane, types, bbox, s, left, right)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the runs of True in a 1-D boolean mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _pieces_in_window(
    shape: LaneShape, lo: np.ndarray, hi: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The parts of a lane inside the world window [lo, hi]: list of (s, left, right)."""
    if np.any(shape.bbox[:2] > hi) or np.any(shape.bbox[2:] < lo):
        return []
    lane = shape.lane
    if shape.s is None:
        corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
        along = (corners - lane.start) @ lane.direction
        across = (corners - lane.start) @ lane.direction_lateral
        if across.min() > lane.width or across.max() < -lane.width:
            return []  # a long diagonal lane whose bounding box alone overlaps the window
        s_lo, s_hi = max(along.min(), 0.0), min(along.max(), float(lane.length))
        if s_hi <= s_lo:
            return []
        s = _s_grid(s_lo, s_hi)
        return [(s, *_straight_edges(lane, s))]
    inside = np.all((shape.left >= lo) & (shape.left <= hi), axis=1)
    inside |= np.all((shape.right >= lo) & (shape.right <= hi), axis=1)
    # Grow each run by one sample so the drawing reaches across the window border.
    inside[:-1] |= inside[1:].copy()
    inside[1:] |= inside[:-1].copy()
    return [
        (shape.s[a:b], shape.left[a:b], shape.right[a:b]) for a, b in _runs(inside) if b - a >= 2
    ]


def _marking_polylines(s: np.ndarray, edge_px: np.ndarray, line_type: int) -> list[np.ndarray]:
    """Polylines [fixed-point px] painting one lane side of the given LineType."""
    if line_type in (LineType.CONTINUOUS, LineType.CONTINUOUS_LINE):
        return [edge_px]
    if line_type == LineType.STRIPED:
        on = np.mod(s, DASH_PERIOD_M) <= DASH_ON_M + 1e-6
        return [edge_px[a:b] for a, b in _runs(on) if b - a >= 2]
    return []


def draw_map(
    image: np.ndarray,
    shapes: list[LaneShape],
    origin: np.ndarray,
    px_per_m: float,
    colours: tuple[tuple, tuple, tuple],
    line_type: int = cv2.LINE_AA,
) -> None:
    """Draw into square `image` the top view whose top-left pixel corner is at `origin` [m].

    `colours` are (ground, road, markings): RGBA for the camera's map, class ids for the cue
    mask (drawn with `line_type` LINE_8 so that no blended values appear, and markings 2 px
    wider to cover the anti-aliased fringe that the camera draws around them).
    """
    side_px = image.shape[0]
    ground, road, marking = colours
    # cv2 fills 3-channel images ~50x faster than numpy broadcasting a colour.
    cv2.rectangle(image, (0, 0), (side_px, side_px), ground, cv2.FILLED)
    margin = 2.0  # [m] so that edges straddling the border are drawn
    lo = origin - margin
    hi = origin + side_px / px_per_m + margin

    def to_px(points: np.ndarray) -> np.ndarray:
        # Pixel centres sit at integer coordinates in OpenCV, hence the half-pixel offset.
        return np.round(((points - origin) * px_per_m - 0.5) * _ONE).astype(np.int32)

    surfaces, markings = [], []
    for shape in shapes:
        for s, left, right in _pieces_in_window(shape, lo, hi):
            left_px, right_px = to_px(left), to_px(right)
            surfaces.append(np.concatenate([left_px, right_px[::-1]]))
            markings += _marking_polylines(s, left_px, shape.line_types[0])
            markings += _marking_polylines(s, right_px, shape.line_types[1])
    # One call per polygon: a single fillPoly over overlapping polygons XORs them into holes.
    for polygon in surfaces:
        cv2.fillPoly(image, [polygon], road, cv2.LINE_8, SHIFT)
    if markings:
        thickness = max(1, round(MARKING_WIDTH_M * px_per_m))
        thickness += 0 if line_type == cv2.LINE_AA else 2
        cv2.polylines(image, markings, False, marking, thickness, line_type, SHIFT)
