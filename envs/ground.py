"""The camera's top-down road map: lane geometry sampled into polylines and drawn with OpenCV.

`envs.camera.Camera` cuts every frame out of a local map of a few hundred metres around the ego;
this module makes that map. `shape_lane` samples a lane's edges once per episode (every ~1 m;
straight lanes keep only their ends and are sampled inside the window on demand, so 10 km highways
cost nothing). `draw_map` paints the window of the world it is given: ground, the road surface of
every lane, then the lane markings each lane's `LineType`s ask for (striped lines: the first
`DASH_ON_M` of every `DASH_PERIOD_M` along the lane, `MARKING_WIDTH_M` wide). `LocalMap` keeps
such a map ahead of a moving viewer, turned to its heading, and redraws it only when the
viewer's sight would leave it (`envs.dashcam.Dashcam` keeps two, and bakes a world-anchored
texture into one).

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
_TEXTURE_MAX_TEXELS = 2048  # side of the repeated texture tile at most (16 MiB)
_ONE = 1 << SHIFT
_HALF = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])  # half-resolution px -> px


@dataclass
class LaneShape:
    """Sampled geometry of one lane, in world coordinates [m]."""

    lane: AbstractLane
    line_types: tuple[int, int]  # (left, right) = sides at lateral -w/2 and +w/2
    bbox: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max [m]
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
    bbox = tuple(np.concatenate([points.min(axis=0), points.max(axis=0)]).tolist())
    if s is None:
        return LaneShape(lane, types, bbox)
    return LaneShape(lane, types, bbox, s, left, right)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the runs of True in a 1-D boolean mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _pieces_in_window(
    shape: LaneShape, lo: tuple[float, float], hi: tuple[float, float]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The parts of a lane inside the world window [lo, hi]: list of (s, left, right)."""
    x_min, y_min, x_max, y_max = shape.bbox  # plain floats: most lanes stop here
    if x_min > hi[0] or y_min > hi[1] or x_max < lo[0] or y_max < lo[1]:
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
    axes: np.ndarray | None = None,
) -> None:
    """Draw into `image` the top view whose top-left pixel corner is at `origin` [m].

    `colours` are (ground, road, markings): RGBA for the camera's map, class ids for the cue
    mask (drawn with `line_type` LINE_8 so that no blended values appear, and markings 2 px
    wider to cover the anti-aliased fringe that the camera draws around them). With `striped`,
    striped lines are drawn solid in that colour instead of dashed: what a distant view, whose
    pixels each cover several dashes, averages them to (the dashcam's far map). `axes` (2, 2)
    holds, as rows, the world directions of the image's columns and rows (a map turned to a
    viewer's heading); None: the world's x and y.
    """
    height_px, width_px = image.shape[:2]
    ground, road, marking = colours
    # cv2 fills 3-channel images ~50x faster than numpy broadcasting a colour.
    cv2.rectangle(image, (0, 0), (width_px, height_px), ground, cv2.FILLED)
    margin = 2.0  # [m] so that edges straddling the border are drawn
    size = np.array([width_px, height_px]) / px_per_m  # [m]
    if axes is None:
        lo, hi = origin - margin, origin + size + margin
    else:  # the world box around the turned rectangle
        corners = origin + np.array([[0.0, 0.0], [size[0], 0.0], [0.0, size[1]], size]) @ axes
        lo, hi = corners.min(axis=0) - margin, corners.max(axis=0) + margin
    lo, hi = tuple(lo.tolist()), tuple(hi.tolist())

    def to_px(points: np.ndarray) -> np.ndarray:
        offset = points - origin
        if axes is not None:
            offset = offset @ axes.T
        # Pixel centres sit at integer coordinates in OpenCV, hence the half-pixel offset.
        return np.round((offset * px_per_m - 0.5) * _ONE).astype(np.int32)

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
    """A top-down map of the road ahead of a moving viewer, turned to its heading at each redraw.

    The viewer sees the ground points of a fixed polygon `reach` (in its own frame: metres
    forward, metres to the right). At a redraw the map is a rectangle aligned with the viewer:
    the polygon's bounding box plus `travel_m` of room to drive into and `side_m` on either side
    (for bends and lane changes, which turn and shift the polygon). It is redrawn only when part
    of the polygon would leave it. Frame rows, seen through it, run along map rows: a
    perspective warp then reads memory in order.

        near = LocalMap(reach, travel_m=40.0, side_m=6.0, px_per_m=10.0, max_side_px=4096)
        near.set_road(shapes, colours)
        near.ensure(x, y, heading)        # before every frame
        near.from_world                   # (3, 3) world [m] -> map pixel (pixel centres)
    """

    def __init__(
        self,
        reach: np.ndarray,
        travel_m: float,
        side_m: float,
        px_per_m: float,
        max_side_px: int,
    ) -> None:
        """Size the map for the polygon `reach` ((K, 2) forward, right [m]) and its margins."""
        reach = np.asarray(reach, dtype=float)
        self._reach = reach.tolist()
        (back, left), (ahead, right) = reach.min(axis=0), reach.max(axis=0)
        # The map's top-left corner in the viewer's frame at a redraw (forward, right) [m]; 1 m
        # behind the polygon, so that it starts inside `ensure`'s 1 m border.
        self._corner = (ahead + travel_m, left - side_m)
        width_m, height_m = right - left + 2 * side_m, ahead + travel_m - back + 2.0
        # Past the memory bound the map gets coarser (blurrier frames) rather than huge.
        self.px_per_m = min(px_per_m, max_side_px / max(width_m, height_m))
        self.shape = tuple(2 * math.ceil(n * self.px_per_m / 2) for n in (height_m, width_m))
        """(rows, columns) of the map [px], even: `_lay_texture` works at half resolution."""
        self.image: np.ndarray | None = None
        self.origin = np.zeros(2)  # world point of the map's top-left corner [m]
        self.axes = np.eye(2)  # world directions of the map's columns and rows (rows of axes)
        self._from_world = np.eye(3)
        self._shapes: list[LaneShape] = []
        self._colours: tuple = ()
        self._striped: tuple | None = None
        self._valid = False
        self._texture: np.ndarray | None = None  # periodic tile, repeated to cover the map
        self._period = 1  # of the texture [texels]
        self._scratch: tuple = ()  # buffers of `_lay_texture`
        self._redraws = 0  # counts redraws: `class_map` follows them
        self._classes: np.ndarray | None = None  # class ids, drawn on demand by `class_map`
        self._classes_drawn = -1  # `_redraws` when `_classes` was drawn

    def set_road(
        self,
        shapes: list[LaneShape],
        colours: tuple,
        striped: tuple | None = None,
        texture: np.ndarray | None = None,
    ) -> None:
        """A new road or look: `draw_map`'s colours (RGBA) and `striped`; redrawn on `ensure`.

        `texture`, a periodic tile at `TEXTURE_PX_PER_M`, is laid on the map at each redraw,
        anchored to the world: each pixel's colour gets the tile's value times the pixel's
        alpha (RGB +- tile x alpha; the alpha channel is left as drawn).
        """
        self._shapes, self._colours, self._striped = shapes, colours, striped
        if self.image is None:
            self.image = np.empty((*self.shape, len(colours[0])), np.uint8)
        self._texture = None
        if texture is not None:
            # Repeated to cover the map at any heading, plus one period to start in: sampling
            # then stays inside the image, where OpenCV's warp is ~7x faster than wrapping
            # (which still serves maps too large for the bound on memory).
            self._period = period = texture.shape[0]  # [texels]
            diagonal = math.hypot(*self.shape) / self.px_per_m  # [m]
            repeats = math.ceil((diagonal * TEXTURE_PX_PER_M + 2) / period) + 1
            repeats = max(1, min(repeats, _TEXTURE_MAX_TEXELS // period))
            self._texture = np.tile(texture, (repeats, repeats))
            if not self._scratch:  # kept: fresh buffers of this size cost page faults
                single = np.empty(self.shape, np.uint8)
                self._scratch = (
                    np.empty([n // 2 for n in self.shape], np.float32),  # the texture, half res
                    np.empty(self.shape, np.float32),  # the texture over the map
                    single,  # alpha
                    np.empty_like(single),  # amount to add or take away
                    np.empty_like(self.image),  # that amount in RGB
                    np.zeros_like(single),  # nothing, in alpha
                )
        self._valid = False
        self._classes_drawn = -1

    def ensure(self, x: float, y: float, heading: float) -> bool:
        """Redraw the map if the viewer at (x, y) [m] facing `heading` [rad] would leave it.

        Returns:
            Whether the map was redrawn (at a new origin and heading).
        """
        c, s = math.cos(heading), math.sin(heading)
        ox, oy = self.origin.tolist()
        (rx, ry), (dx, dy) = self.axes.tolist()  # the map's column and row directions
        high_u, high_v = (n / self.px_per_m - 1.0 for n in self.shape[::-1])  # [m]
        if self._valid:  # plain floats: this runs every frame
            inside = True
            for a, b in self._reach:
                px, py = x + a * c - b * s - ox, y + a * s + b * c - oy
                u, v = px * rx + py * ry, px * dx + py * dy
                inside = inside and 1.0 < u < high_u and 1.0 < v < high_v
            if inside:
                return False
        a, b = self._corner
        self.origin = np.array([x + a * c - b * s, y + a * s + b * c])
        self.axes = np.array([[-s, c], [-c, -s]])  # columns: to the right; rows: backwards
        k, (ox, oy) = self.px_per_m, self.origin.tolist()
        self._from_world = np.array(
            [
                [-k * s, k * c, k * (s * ox - c * oy) - 0.5],
                [-k * c, -k * s, k * (c * ox + s * oy) - 0.5],
                [0.0, 0.0, 1.0],
            ]
        )
        args = (self.origin, k, self._colours, cv2.LINE_AA, self._striped, self.axes)
        draw_map(self.image, self._shapes, *args)
        if self._texture is not None:
            self._lay_texture()
        self._valid = True
        self._redraws += 1
        return True

    def _lay_texture(self) -> None:
        """Lay the texture, anchored to the world, on the RGB of the freshly drawn `image`."""
        # Half-resolution map pixel -> world [m] -> texel (texel i covers [i, i + 1) / k),
        # shifted by whole periods so that the map's corners land in the first period and
        # beyond. The texture is smooth at the map's scale: sampled at half resolution, then
        # enlarged (half the time of a full-resolution warp).
        k = TEXTURE_PX_PER_M
        to_tile = np.array([[k, 0.0, -0.5], [0.0, k, -0.5], [0.0, 0.0, 1.0]])
        m = (to_tile @ np.linalg.inv(self._from_world) @ _HALF)[:2]
        rows, columns = (n // 2 for n in self.shape)
        corners = m @ np.array([[0, columns, 0, columns], [0, 0, rows, rows], [1, 1, 1, 1]])
        m[:, 2] -= np.floor(corners.min(axis=1) / self._period) * self._period
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        half, noise, alpha, amount, shade, zero = self._scratch
        cv2.warpAffine(self._texture, m, half.shape[::-1], half, flags, cv2.BORDER_WRAP)
        cv2.resize(half, self.shape[::-1], noise, 0, 0, cv2.INTER_LINEAR)
        cv2.extractChannel(self.image, 3, alpha)
        # RGB + noise x alpha, clipped, in 8-bit steps (twice as fast as in floats, the same
        # result): add the positive part (negatives saturate to 0), then take away the negative.
        cv2.multiply(noise, alpha, amount, 1.0, cv2.CV_8U)
        cv2.add(self.image, cv2.merge([amount, amount, amount, zero], shade), self.image)
        cv2.multiply(noise, alpha, amount, -1.0, cv2.CV_8U)
        cv2.subtract(self.image, cv2.merge([amount, amount, amount, zero], shade), self.image)

    @property
    def from_world(self) -> np.ndarray:
        """(3, 3) world point [m] -> map pixel (OpenCV pixel-centre coordinates)."""
        return self._from_world

    def class_map(self, classes: tuple[tuple, tuple, tuple]) -> np.ndarray:
        """The map drawn in class ids `classes` (ground, road, markings) where it lies now."""
        if self._classes_drawn != self._redraws:
            if self._classes is None:
                self._classes = np.empty(self.shape, np.uint8)
            marking = classes[2] if self._striped is not None else None
            args = (self.origin, self.px_per_m, classes, cv2.LINE_8, marking, self.axes)
            draw_map(self._classes, self._shapes, *args)
            self._classes_drawn = self._redraws
        return self._classes
