"""The camera's top-down road map: lane geometry sampled into polylines and drawn with OpenCV.

`envs.camera.Camera` cuts every frame out of a local map of a few hundred metres around the ego;
this module makes that map. `shape_lane` samples a lane's edges once per episode (every ~1 m;
straight lanes keep only their ends and are sampled inside the window on demand, so 10 km highways
cost nothing). `draw_map` paints the window of the world it is given: ground, the road surface of
every lane, then the lane markings each lane's `LineType`s ask for (striped lines: the first
`DASH_ON_M` of every `DASH_PERIOD_M` along the lane, `MARKING_WIDTH_M` wide). `LocalMap` keeps
such a map around a moving viewer and redraws it only when the viewer's sight would leave it
(`envs.dashcam.Dashcam` keeps two, and lays a world-anchored texture on one).

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
TEXTURE_PX_PER_M = 5.0
"""Resolution of the ground texture tiles that `LocalMap` lays [px/m]."""

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


def _solid_type(line_type: int) -> int:
    """The LineType drawn instead of `line_type` when striped lines are drawn solid."""
    return LineType.CONTINUOUS if line_type == LineType.STRIPED else LineType.NONE


def draw_map(
    image: np.ndarray,
    shapes: list[LaneShape],
    origin: np.ndarray,
    px_per_m: float,
    colours: tuple[tuple, tuple, tuple],
    line_type: int = cv2.LINE_AA,
    striped: tuple | None = None,
) -> None:
    """Draw into square `image` the top view whose top-left pixel corner is at `origin` [m].

    `colours` are (ground, road, markings): RGBA for the camera's map, class ids for the cue
    mask (drawn with `line_type` LINE_8 so that no blended values appear, and markings 2 px
    wider to cover the anti-aliased fringe that the camera draws around them). With `striped`,
    striped lines are drawn solid in that colour instead of dashed: what a distant view, whose
    pixels each cover several dashes, averages them to (the dashcam's far map).
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

    surfaces, markings, solid = [], [], []
    for shape in shapes:
        types = shape.line_types
        if striped is not None:
            types = tuple(t if t != LineType.STRIPED else LineType.NONE for t in types)
        for s, left, right in _pieces_in_window(shape, lo, hi):
            left_px, right_px = to_px(left), to_px(right)
            surfaces.append(np.concatenate([left_px, right_px[::-1]]))
            markings += _marking_polylines(s, left_px, types[0])
            markings += _marking_polylines(s, right_px, types[1])
            if striped is not None:
                solid += _marking_polylines(s, left_px, _solid_type(shape.line_types[0]))
                solid += _marking_polylines(s, right_px, _solid_type(shape.line_types[1]))
    # One call per polygon: a single fillPoly over overlapping polygons XORs them into holes.
    for polygon in surfaces:
        cv2.fillPoly(image, [polygon], road, cv2.LINE_8, SHIFT)
    thickness = max(1, round(MARKING_WIDTH_M * px_per_m))
    thickness += 0 if line_type == cv2.LINE_AA else 2
    for lines, colour in ((solid, striped), (markings, marking)):
        if lines:
            cv2.polylines(image, lines, False, colour, thickness, line_type, SHIFT)


class LocalMap:
    """A square top-down map of the road around a moving viewer, redrawn only when needed.

    The viewer sees the ground points of a fixed polygon `reach` (in its own frame: metres
    forward, metres to the right). The map holds that polygon plus `travel_m` of room to drive
    into and is redrawn, ahead of the viewer, only when part of the polygon would leave it.

        near = LocalMap(reach, travel_m=40.0, px_per_m=10.0, max_side_px=4096)
        near.set_road(shapes, colours)
        near.ensure(x, y, heading)        # before every frame
        near.from_world                   # (3, 3) world [m] -> map pixel (pixel centres)
    """

    def __init__(
        self, reach: np.ndarray, travel_m: float, px_per_m: float, max_side_px: int
    ) -> None:
        """Size the map for the polygon `reach` ((K, 2) forward, right [m]) and `travel_m`."""
        reach = np.asarray(reach, dtype=float)
        self._reach = reach.tolist()
        centre = (reach.min(axis=0) + reach.max(axis=0)) / 2
        radius = float(np.max(np.hypot(*(reach - centre).T)))
        self._centre = centre + np.array([travel_m / 2, 0.0])  # viewer frame [m]
        half = radius + travel_m  # [m]
        # Past the memory bound the map gets coarser (blurrier frames) rather than huge.
        self.px_per_m = min(px_per_m, max_side_px / (2 * half))
        self.side_px = int(math.ceil(2 * half * self.px_per_m))
        self.image: np.ndarray | None = None
        self.origin = np.zeros(2)  # world point of the map's top-left corner [m]
        self._from_world = np.eye(3)
        self._shapes: list[LaneShape] = []
        self._colours: tuple = ()
        self._striped: tuple | None = None
        self._valid = False
        self.texture: np.ndarray | None = None  # periodic tile [TEXTURE_PX_PER_M], see set_road
        self.noise = np.zeros((1, 1), np.float32)  # the tile over the map's window
        self.noise_from_world = np.eye(3)  # world [m] -> `noise` pixel
        self._classes: np.ndarray | None = None  # class ids, drawn on demand by `class_map`
        self._classes_origin: np.ndarray | None = None

    def set_road(
        self,
        shapes: list[LaneShape],
        colours: tuple,
        striped: tuple | None = None,
        texture: np.ndarray | None = None,
    ) -> None:
        """A new road or look: `draw_map`'s colours (RGBA) and `striped`; redrawn on `ensure`.

        `texture`, a periodic tile at `TEXTURE_PX_PER_M`, is laid over the map's window at each
        redraw (`noise`, `noise_from_world`), rolled so that it stays fixed to the world.
        """
        self._shapes, self._colours, self._striped = shapes, colours, striped
        self.texture = texture
        if self.image is None:
            self.image = np.empty((self.side_px, self.side_px, len(colours[0])), np.uint8)
        self._valid = False
        self._classes_origin = None

    def ensure(self, x: float, y: float, heading: float) -> bool:
        """Redraw the map if the viewer at (x, y) [m] facing `heading` [rad] would leave it.

        Returns:
            Whether the map was redrawn (at a new origin).
        """
        c, s = math.cos(heading), math.sin(heading)
        ox, oy = self.origin.tolist()
        low, high = 1.0, self.side_px / self.px_per_m - 1.0  # [m] from the origin
        if self._valid and all(  # plain floats: this runs every frame
            low < x + a * c - b * s - ox < high and low < y + a * s + b * c - oy < high
            for a, b in self._reach
        ):
            return False
        (a, b), half = self._centre.tolist(), self.side_px / self.px_per_m / 2
        self.origin = np.array([x + a * c - b * s - half, y + a * s + b * c - half])
        k, (ox, oy) = self.px_per_m, self.origin.tolist()
        self._from_world = np.array([[k, 0, -k * ox - 0.5], [0, k, -k * oy - 0.5], [0, 0, 1.0]])
        draw_map(
            self.image,
            self._shapes,
            self.origin,
            self.px_per_m,
            self._colours,
            cv2.LINE_AA,
            self._striped,
        )
        self._valid = True
        if self.texture is not None:
            self._lay_texture()
        return True

    def _lay_texture(self) -> None:
        """`noise`: the texture tile wrapped around over the map's window, world-anchored."""
        k, period = TEXTURE_PX_PER_M, self.texture.shape[0]
        ox, oy = np.floor(self.origin * k).astype(int).tolist()  # texel of the top-left corner
        side = int(math.ceil(self.side_px / self.px_per_m * k)) + 2
        rolled = np.roll(self.texture, (-(oy % period), -(ox % period)), axis=(0, 1))
        grown = max(0, side - period)
        self.noise = cv2.copyMakeBorder(rolled, 0, grown, 0, grown, cv2.BORDER_WRAP)
        self.noise_from_world = np.array([[k, 0, -ox - 0.5], [0, k, -oy - 0.5], [0, 0, 1.0]])

    @property
    def from_world(self) -> np.ndarray:
        """(3, 3) world point [m] -> map pixel (OpenCV pixel-centre coordinates)."""
        return self._from_world

    def class_map(self, classes: tuple[tuple, tuple, tuple]) -> np.ndarray:
        """The map drawn in class ids `classes` (ground, road, markings) at the current origin."""
        if self._classes_origin is None or not np.array_equal(self._classes_origin, self.origin):
            if self._classes is None:
                self._classes = np.empty((self.side_px, self.side_px), np.uint8)
            marking = classes[2] if self._striped is not None else None
            draw_map(
                self._classes,
                self._shapes,
                self.origin,
                self.px_per_m,
                classes,
                cv2.LINE_8,
                marking,
            )
            self._classes_origin = self.origin.copy()
        return self._classes
