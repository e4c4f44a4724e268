"""Lane perception of the modular driver: markings and road edges on the bird's-eye grid, a lane
model fitted to them, and the lane-frame state the controllers need.

Per frame, with nothing learned and no ground truth:
1. `BirdsEye.warp`: the frame onto the metric grid (`driving.modular.birdseye`).
2. `extract`: boundary evidence (none on or beside another car: `driving.modular.cars`).
   Markings: a white-top-hat across the rows (grey level above the darkest of its `TOPHAT_M`
   neighbourhood: a bright line narrower than that), kept above a share of the frame's strongest
   response, so that the threshold follows the look's contrast. Road
   edges: where the grey-level saturation (asphalt is grey, verges are green or brown) jumps
   across a row. Both are boundaries of a lane; a marking is drawn on every road edge.
3. `fit_lane`: the ego lane's two boundaries start at the strongest evidence nearest the car on
   either side (`START_M` ahead), are followed ahead in windows `WINDOW_M` wide, and one model
   y = a_k + b x + c x^2 (x ahead, y right [m]; a_k per boundary, b and c shared: parallel
   boundaries) is fitted to both by weighted least squares, c pulled gently to 0 when the
   points are near only.
4. The lane-frame state at the car's centre (x = 0) from the centre line y_c = (a_l + a_r) / 2 +
   b x + c x^2: lateral offset -y_c(0) cos(atan b) [m, positive right of the centre], heading
   error -atan(b) [rad, positive right of the lane], curvature 2c / (1 + b^2)^1.5 [1/m, positive
   turning right]: the conventions of `envs.wrapper.ground_truth`.

    lanes = LanePerception(CameraConfig(kind="dashcam"))
    estimate = lanes.estimate(obs["image"])   # LaneEstimate(lateral_offset, heading_error, ...)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from driving.modular.birdseye import PX_PER_M, BirdsEye
from driving.modular.cars import car_pixels
from envs.camera import CameraConfig

TOPHAT_M = 1.2
"""Markings are bright lines narrower than this [m] (0.25 m painted, blurred far ahead)."""
MARKING_SHARE = 0.35
"""A marking pixel's top-hat response is at least this share of the frame's strong ones."""
MARKING_FLOOR = 6.0
"""... and at least this many grey levels (a frame without markings yields no evidence)."""
EDGE_SATURATION = 0.12
"""Road edge: saturation jumps by at least this across 2 px (asphalt ~0.05, verges > 0.2)."""
EDGE_EVIDENCE = 0.25
"""Evidence of a road-edge pixel; `_follow` takes edges only where a window has no marking."""
START_M = (3.0, 12.0)
"""Boundaries are looked for first this far ahead of the car's centre [m]: a dash period."""
WINDOW_M = 1.0
"""Width of the window that follows a boundary ahead [m]."""
STEP_M = 1.0
"""Length of each window along the boundary [m]."""
MIN_POINTS = 3
"""A window with fewer evidence pixels has lost its boundary (a gap between dashes)."""
LANE_WIDTH_M = (2.8, 4.6)
"""Plausible lane widths [m] (roads are drawn with 3.2 to 4.0 m)."""
DEFAULT_WIDTH_M = 3.6
"""Lane width assumed until both boundaries of a lane have been seen [m]."""
CURVATURE_PRIOR = 50.0
"""Pull of c to 0 [m^2]: as much as one point ~7 m ahead (x^2 = 50), against hundreds."""
FAR_CUBIC_M = 15.0
"""d x^3 is pulled to 0 as much as c x^2, at this distance [m]."""
CAR_MARGIN = np.ones((5, 5), np.uint8)
"""Evidence this close to another car's pixels on the grid is dropped (+-2 px: 0.4 m)."""


@dataclass(frozen=True)
class LaneEstimate:
    """The lane-frame state the controllers need, as perceived in one frame."""

    lateral_offset: float
    """car's centre from the lane centre [m], positive right"""
    heading_error: float
    """car's heading minus the lane's [rad], positive right"""
    curvature: float
    """curvature of the lane ahead [1/m], positive turning right"""
    curvature_rate: float
    """its change per metre ahead [1/m^2] (the lane model's cubic term): a bend coming"""
    lane_width: float
    """distance between the two boundaries [m] (remembered when one is not seen)"""
    boundaries: int
    """boundaries of the ego lane found: 2, 1, or 0 (then the numbers are the last frame's)"""

    def curvature_at(self, distance: float) -> float:
        """The lane model's curvature `distance` [m] ahead [1/m]: curvature + rate * distance."""
        return self.curvature + self.curvature_rate * distance

    def centre_y(self, x: np.ndarray) -> np.ndarray:
        """The lane centre [m] right of the car `x` [m] ahead of its centre: the lane model
        y = a + b x + c x^2 + d x^3 that these numbers were read from (module docstring)."""
        b = -math.tan(self.heading_error)
        stretch = (1 + b * b) ** 1.5
        a = -self.lateral_offset * math.sqrt(1 + b * b)
        c, d = self.curvature * stretch / 2, self.curvature_rate * stretch / 6
        return a + x * (b + x * (c + x * d))

    def as_dict(self) -> dict[str, float]:
        """The three quantities of `envs.wrapper.ground_truth` that this estimates."""
        return {
            "lateral_offset": self.lateral_offset,
            "heading_error": self.heading_error,
            "curvature": self.curvature,
        }


def extract(top: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(rows, cols) float32 boundary evidence on the bird's-eye grid `top` (RGB uint8): markings
    in [0.5, 1] by their brightness over the neighbourhood, road edges 0.25 (the saturation
    jump between asphalt and verge), 0 elsewhere and where the camera does not see."""
    grey = cv2.cvtColor(top, cv2.COLOR_RGB2GRAY)
    width = 2 * round(TOPHAT_M * PX_PER_M / 2) + 1
    tophat = cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, np.ones((1, width), np.uint8))
    tophat = tophat.astype(np.float32) * valid
    strong = float(np.percentile(tophat[valid], 99.5)) if valid.any() else 0.0
    threshold = max(MARKING_FLOOR, MARKING_SHARE * strong)
    marking = np.clip((tophat - threshold) / max(threshold, 1.0) + 0.5, 0.0, 1.0) * (
        tophat >= threshold
    )
    saturation = cv2.cvtColor(top, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32) / 255.0
    jump = np.abs(saturation[:, 2:] - saturation[:, :-2])
    edge = np.zeros_like(marking)
    edge[:, 1:-1] = (jump >= EDGE_SATURATION) * EDGE_EVIDENCE
    edge *= cv2.erode(valid.astype(np.uint8), np.ones((1, 5), np.uint8))
    return np.maximum(marking, edge)


def _shape(shape: tuple[float, float, float], x: np.ndarray) -> np.ndarray:
    """Lateral displacement b x + c x^2 + d x^3 [m] of a lane model at `x` [m] ahead."""
    b, c, d = shape
    return x * (b + x * (c + x * d))


def _start_peaks(evidence: np.ndarray, view: BirdsEye, rows: slice, shape: tuple) -> np.ndarray:
    """Lateral positions [m] at the car (x = 0) of the boundaries seen in `rows`: the evidence
    moved back along the last frame's lane `shape`, so that a bend does not slant the lines
    across the band, summed per column; its local maxima."""
    band = evidence[rows]
    hits = np.nonzero(band)
    x, y = view.x[rows][hits], view.y[rows][hits]
    cols = np.round((y - _shape(shape, x) - view.y[0, 0]) * PX_PER_M).astype(int)
    keep = (cols >= 0) & (cols < band.shape[1])
    profile = np.bincount(cols[keep], band[hits][keep], band.shape[1]).astype(np.float32)
    profile = cv2.GaussianBlur(profile[None, :], (5, 1), 0)[0]
    if profile.max() <= 0:
        return np.array([])
    inner = profile[1:-1]
    peaks = (inner >= profile[:-2]) & (inner > profile[2:]) & (inner >= 0.25 * profile.max())
    return view.y[0, np.flatnonzero(peaks) + 1]


def _follow(
    evidence: np.ndarray, view: BirdsEye, starts: tuple[float | None, float | None], shape: tuple
) -> list[np.ndarray | None]:
    """Per boundary at `starts` [m] at the car (None: not seen), its (N, 3) points (x, y [m],
    weight), followed ahead window by window. Until a boundary is first found it is looked for
    along the last frame's lane `shape`; then the boundaries are parallel: one direction,
    updated from whichever boundary a window finds, carries the other across the gaps between
    dashes."""
    points: list[list[np.ndarray]] = [[], []]
    centres = list(starts)
    seen = [False, False]
    slope, last_x = None, None
    half, rows_per = WINDOW_M / 2, max(1, round(STEP_M * PX_PER_M))
    for bottom in range(evidence.shape[0], 0, -rows_per):
        band = slice(max(bottom - rows_per, 0), bottom)
        xs = view.x[band, 0]
        x = float(xs.mean())
        if slope is None:  # the nearest row: the direction of the last frame's lane there
            b, c, d = shape
            slope = b + x * (2 * c + 3 * d * x)
        dx = x - last_x if last_x is not None else 0.0
        moves = []
        for k, centre in enumerate(centres):
            if centre is None:
                continue
            if seen[k]:
                predicted = centre + slope * dx
            else:
                predicted = starts[k] + float(_shape(shape, np.array(x)))
            cols = np.flatnonzero(np.abs(view.y[0] - predicted) <= half)
            window = evidence[band, cols]
            rows, hits = np.nonzero(window > EDGE_EVIDENCE)  # markings
            if rows.size < MIN_POINTS:  # else the road's edge, on a road without its edge line
                rows, hits = np.nonzero(window > 0)
            if rows.size < MIN_POINTS:
                centres[k] = predicted  # a gap between dashes: on along the direction
                continue
            w, ys = window[rows, hits], view.y[0, cols[hits]]
            found = float(np.average(ys, weights=w))
            if dx > 0 and seen[k]:
                moves.append((found - centre) / dx)
            centres[k], seen[k] = found, True
            points[k].append(np.stack([xs[rows], ys, w], axis=1))
        if moves:
            slope = 0.5 * slope + 0.5 * float(np.mean(moves)) if last_x is not None else slope
        last_x = x
    return [np.concatenate(p) if p else None for p in points]


def _fit(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(a_left, a_right, b, c, d) of y = a_k + b x + c x^2 + d x^3 fitted to both boundaries'
    points, c and d pulled gently to 0 (`CURVATURE_PRIOR`)."""
    rows, targets = [], []
    for k, points in enumerate((left, right)):
        x, y, w = points.T
        root = np.sqrt(w)
        design = np.zeros((len(x), 5))
        design[:, k] = 1.0
        design[:, 2], design[:, 3], design[:, 4] = x, x * x, x**3
        rows.append(design * root[:, None])
        targets.append(y * root)
    prior = np.zeros((2, 5))
    prior[0, 3], prior[1, 4] = CURVATURE_PRIOR, CURVATURE_PRIOR * FAR_CUBIC_M
    design, target = np.concatenate([*rows, prior]), np.concatenate([*targets, [0.0, 0.0]])
    return np.linalg.lstsq(design, target, rcond=None)[0]


class LanePerception:
    """Estimates the ego lane's state from frames of one camera (see the module docstring)."""

    def __init__(self, camera: CameraConfig) -> None:
        self.view = BirdsEye(camera)
        self._start_rows = np.flatnonzero(
            (self.view.x[:, 0] >= START_M[0]) & (self.view.x[:, 0] <= START_M[1])
        )
        self.reset()

    def reset(self) -> None:
        """Forget the last road: lane width back to the default, no last estimate."""
        self.width = DEFAULT_WIDTH_M
        self.last = LaneEstimate(0.0, 0.0, 0.0, 0.0, DEFAULT_WIDTH_M, 0)
        self.shape = (0.0, 0.0, 0.0)  # the last lane model's b, c, d: straight ahead
        self.cars: np.ndarray | None = None  # the last frame's car pixels (`car_pixels`)

    def estimate(self, frame: np.ndarray) -> LaneEstimate:
        """The lane-frame state seen in `frame` ((H, W, 3) uint8 RGB of the camera)."""
        evidence = extract(self.view.warp(frame), self.view.valid)
        cars = self.cars = car_pixels(frame)
        if cars.any():  # a car's outline is no lane boundary (nor is the road it hides)
            hidden = cv2.dilate(self.view.warp_mask(cars).astype(np.uint8), CAR_MARGIN)
            evidence[hidden > 0] = 0.0
        rows = slice(self._start_rows[0], self._start_rows[-1] + 1)
        peaks = _start_peaks(evidence, self.view, rows, self.shape)
        left = [y for y in peaks if y < 0]
        right = [y for y in peaks if y >= 0]
        start = (max(left) if left else None, min(right) if right else None)
        if None not in start and not LANE_WIDTH_M[0] <= start[1] - start[0] <= LANE_WIDTH_M[1]:
            start = _plausible_pair(start, left, right, self.width)
        sides = _follow(evidence, self.view, start, self.shape)
        sides = [s if s is not None and len(s) >= 2 * MIN_POINTS else None for s in sides]
        found = sum(s is not None for s in sides)
        if found == 0:
            self.last = LaneEstimate(**{**self.last.__dict__, "boundaries": 0})
            return self.last
        if found == 1:  # the other boundary: the seen one shifted by the lane width
            k = 0 if sides[0] is not None else 1
            other = sides[k].copy()
            other[:, 1] += self.width if k == 0 else -self.width
            sides[1 - k] = other
        a_left, a_right, b, c, d = _fit(*sides)
        self.shape = (b, c, d)
        width = a_right - a_left
        if found == 2 and LANE_WIDTH_M[0] <= width <= LANE_WIDTH_M[1]:
            self.width = width
        centre = 0.5 * (a_left + a_right)
        slope = math.atan(b)
        self.last = LaneEstimate(
            lateral_offset=-centre * math.cos(slope),
            heading_error=-slope,
            curvature=2 * c / (1 + b * b) ** 1.5,
            curvature_rate=6 * d / (1 + b * b) ** 1.5,
            lane_width=self.width,
            boundaries=found,
        )
        return self.last


def _plausible_pair(
    start: tuple[float, float], left: list[float], right: list[float], width: float
) -> tuple[float | None, float | None]:
    """The nearest left and right candidates were no lane apart (a blob, a gap between dashes):
    the pair about `width` apart either side of the car that centres it best, or the nearer
    one alone."""
    best, best_cost = None, math.inf
    for a in left:
        for b in right:
            if LANE_WIDTH_M[0] <= b - a <= LANE_WIDTH_M[1]:
                cost = abs((a + b) / 2) + abs(b - a - width)
                if cost < best_cost:
                    best, best_cost = (a, b), cost
    if best is not None:
        return best
    near_left, near_right = start
    return (near_left, None) if -near_left < near_right else (None, near_right)
