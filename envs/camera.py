"""Ego-centric, heading-up bird's-eye camera drawn with OpenCV from highway-env road geometry.

The policy sees this camera or, with `CameraConfig.kind="dashcam"`, the driver's-eye
`envs.dashcam.Dashcam`; `CameraConfig` (here) sets up both. Both replace highway-env's pygame
renderer, which is world-aligned, draws road and ground in the same grey, draws the ego's front
wheels turned by the steering command (a label leak) and returns black frames under
``SDL_VIDEODRIVER=dummy``. This module never imports pygame and never calls ``env.render()``.

It works on any highway-env scenario: everything is read from ``env.unwrapped.road`` (lanes of
``road.network``, ``road.vehicles``) and ``env.unwrapped.vehicle`` (the ego). The world uses
highway-env's screen convention: y points down and a heading h means direction (cos h, sin h), so
the frame is highway-env's top view rotated (never mirrored) until the ego points up.

How it stays fast: lane edges are sampled once per episode and a local top-down map of a few
hundred metres around the ego is drawn from them (both in `envs.ground`); the map is redrawn only
when the ego nears its border. Each frame is one ``cv2.warpAffine`` out of that map plus a filled
rectangle per nearby vehicle. This module holds the camera itself, its settings and its colours.

Usage::

    camera = Camera(CameraConfig())
    obs, info = env.reset()
    camera.reset(env.unwrapped.road)
    frame = camera.render(env.unwrapped.road, env.unwrapped.vehicle)  # (66, 200, 3) uint8 RGB
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from envs.ground import SHIFT, LaneShape, draw_map, shape_lane

if TYPE_CHECKING:
    from highway_env.road.road import Road
    from highway_env.vehicle.kinematics import Vehicle

GROUND_RGB = (76, 124, 60)
"""Off-road ground colour (green)."""
ROAD_RGB = (64, 64, 64)
"""Road surface colour (dark grey)."""
MARKING_RGB = (255, 255, 255)
"""Lane marking colour (white)."""
VEHICLE_RGB = (60, 120, 235)
"""Other vehicles (blue)."""
EGO_RGB = (225, 50, 45)
"""The ego vehicle (red)."""

MASK_GROUND, MASK_ROAD, MASK_MARKING, MASK_VEHICLE, MASK_EGO, MASK_SKY = 0, 1, 2, 3, 4, 5
"""Classes of `Camera.render_mask` (and `envs.dashcam.Dashcam.render_mask`): ground, road surface,
lane markings and road edges, other vehicles, the ego (the dashcam's bonnet and mirror frame), sky
and haze (the dashcam only)."""

_MAP_MIN_RADIUS_M = 120.0  # [m] half side of the local map
_MAP_MIN_PX_PER_M = 8.0  # [px/m]
_MAP_MAX_SIDE_PX = 4096  # bounds memory (64 MiB) whatever the camera resolution
_ONE = 1 << SHIFT  # fixed-point 1 px
_FRAME_MAX_SIDE_PX = 4096  # a frame side beyond this is a typo, not a camera


def _rgba(rgb: tuple[int, int, int]) -> tuple[int, int, int, int]:
    return (*rgb, 255)


_MAP_COLOURS = (_rgba(GROUND_RGB), _rgba(ROAD_RGB), _rgba(MARKING_RGB))  # ground, road, markings
_MASK_CLASSES = ((MASK_GROUND,), (MASK_ROAD,), (MASK_MARKING,))  # the same for `render_mask`


class CameraError(ValueError):
    """A camera setting or input that cannot work; the message says which and what to do."""


KINDS = ("topdown", "dashcam")
"""`CameraConfig.kind`: the heading-up bird's-eye camera (`Camera`) or the driver's-eye
perspective camera (`envs.dashcam.Dashcam`)."""
APPEARANCES = ("plain", "train", "held-out")
"""`CameraConfig.appearance`: fixed colours, or per-road looks drawn from the training range or
from the held-out range (`envs.appearance`)."""

# Ranges of the dashcam's numeric settings: (name, lowest, highest, unit).
_DASHCAM_RANGES = (
    ("mount_height_m", 0.3, 10.0, "m"),
    ("mount_forward_m", -10.0, 10.0, "m"),
    ("pitch_deg", 0.0, 60.0, "deg"),
    ("fov_deg", 20.0, 150.0, "deg"),
    ("view_m", 10.0, 500.0, "m"),
)


@dataclass(frozen=True)
class CameraConfig:
    """What the camera sees and at which resolution.

    `kind` picks the camera: "topdown" (heading-up bird's-eye view, `Camera`; uses height, width,
    ahead_m, behind_m, span_m) or "dashcam" (driver's-eye perspective view, `envs.dashcam.Dashcam`;
    uses height, width and the mount_*, pitch, fov, view, bonnet, rear_mirror and appearance
    settings).
    Top-down pixels may be anisotropic on purpose: lateral detail matters most for steering.
    """

    height: int = 66
    """Frame height [px] (PilotNet's input is 66x200)."""
    width: int = 200
    """Frame width [px]."""
    ahead_m: float = 40.0
    """How far the top edge of the frame is ahead of the ego's centre [m]."""
    behind_m: float = 6.0
    """How far the bottom edge of the frame is behind the ego's centre [m]."""
    span_m: float = 30.0
    """Lateral extent of the frame, left edge to right edge [m]."""
    kind: Literal["topdown", "dashcam"] = "topdown"
    """Camera: 'topdown' (heading-up bird's-eye view) or 'dashcam' (driver's-eye perspective)."""
    mount_height_m: float = 1.3
    """Dashcam: height of the camera above the ground [m]."""
    mount_forward_m: float = 0.5
    """Dashcam: camera position ahead of the ego's centre [m]."""
    pitch_deg: float = 10.0
    """Dashcam: downward tilt of the camera [deg] (0 puts the horizon on the centre row)."""
    fov_deg: float = 90.0
    """Dashcam: horizontal field of view [deg]."""
    view_m: float = 70.0
    """Dashcam: ground is drawn up to this distance ahead [m]; beyond it, it fades into haze."""
    bonnet: bool = False
    """Dashcam: draw the ego's bonnet at the bottom of the frame (a fixed shape)."""
    appearance: Literal["plain", "train", "held-out"] = "plain"
    """Dashcam: 'plain' (fixed colours), or a look per road drawn from the 'train' range or
    from the 'held-out' range that no training frame may show. The top-down camera draws its
    fixed colours for 'plain' and 'train' alike and has no 'held-out' look."""
    rear_mirror: bool = False
    """Dashcam: a rear-view mirror in the sky at the top of the frame, showing the road and the
    cars behind as a driver sees them before changing lanes (`envs.dashcam`)."""

    def validate(self) -> None:
        """Raise CameraError (a ValueError) with one clear line if a setting is nonsense."""
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise CameraError(f"CameraConfig.{name}={value!r} must be an integer number of px")
            if not 1 <= value <= _FRAME_MAX_SIDE_PX:
                limit = _FRAME_MAX_SIDE_PX
                raise CameraError(f"CameraConfig.{name}={value} must be in [1, {limit}] px")
        for name in ("ahead_m", "behind_m", "span_m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise CameraError(f"CameraConfig.{name}={value!r} must be a number of metres")
            if not math.isfinite(value):
                raise CameraError(f"CameraConfig.{name}={value} must be finite")
        if self.ahead_m <= 0:
            raise CameraError(f"CameraConfig.ahead_m={self.ahead_m} must be > 0 [m]")
        if self.behind_m < 0:
            raise CameraError(f"CameraConfig.behind_m={self.behind_m} must be >= 0 [m]")
        if self.span_m <= 0:
            raise CameraError(f"CameraConfig.span_m={self.span_m} must be > 0 [m]")
        self._validate_dashcam()

    def _validate_dashcam(self) -> None:
        """The kind, the dashcam's settings, and no dashcam-only look on the top-down camera."""
        for name, choices in (("kind", KINDS), ("appearance", APPEARANCES)):
            value = getattr(self, name)
            if value not in choices:
                raise CameraError(f"CameraConfig.{name}={value!r} must be one of {choices}")
        for name in ("bonnet", "rear_mirror"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise CameraError(f"CameraConfig.{name}={value!r} must be true or false")
        for name, low, high, unit in _DASHCAM_RANGES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise CameraError(f"CameraConfig.{name}={value!r} must be a number [{unit}]")
            if not low <= value <= high:  # also refuses nan
                raise CameraError(f"CameraConfig.{name}={value} must be in [{low}, {high}] {unit}")
        # The top-down camera has one look, fixed colours: its 'plain' is its 'train' look (so a
        # world may switch camera with kind alone); it has no held-out look, bonnet or mirror
        # (`behind_m` is its rear view).
        dashcam_only = {
            "bonnet": self.bonnet,
            "rear_mirror": self.rear_mirror,
            "appearance": self.appearance == "held-out",
        }
        for name, used in dashcam_only.items():
            if used and self.kind == "topdown":
                raise CameraError(
                    f"CameraConfig.{name}={getattr(self, name)!r} is for kind='dashcam'; the "
                    "top-down camera draws fixed colours, no bonnet and no mirror (behind_m is "
                    "its rear view): set kind='dashcam' or leave it at its default"
                )

    @property
    def view_radius_m(self) -> float:
        """Distance from the ego's centre to the farthest frame corner [m]."""
        return math.hypot(max(self.ahead_m, self.behind_m), self.span_m / 2)


class Camera:
    """Heading-up bird's-eye camera centred on the ego; see the module docstring."""

    def __init__(self, config: CameraConfig = CameraConfig()) -> None:
        """Check the settings and size the local map.

        Args:
            config: frame size and field of view.

        Raises:
            CameraError: a setting is nonsense.
        """
        config.validate()
        self.config = config
        self._px_per_m_x = config.width / config.span_m  # lateral [px/m]
        self._px_per_m_y = config.height / (config.ahead_m + config.behind_m)  # forward [px/m]
        self._map_radius = max(_MAP_MIN_RADIUS_M, 2.0 * config.view_radius_m)  # [m]
        finest = max(_MAP_MIN_PX_PER_M, self._px_per_m_x, self._px_per_m_y)
        # Past the memory bound the map gets coarser (blurrier frames) rather than huge.
        self._map_px_per_m = min(finest, _MAP_MAX_SIDE_PX / (2 * self._map_radius))
        self._map_side = int(math.ceil(2 * self._map_radius * self._map_px_per_m))
        self._road: Road | None = None
        self._shapes: list[LaneShape] = []
        # RGBA although alpha is unused: OpenCV's bilinear warp of 4 channels is vectorised,
        # of 3 it is not (measured 4.7x faster, the same pixels).
        self._map = np.empty((self._map_side, self._map_side, 4), np.uint8)
        self._map_valid = False  # False until drawn for the current road
        self._map_origin = np.zeros(2)  # world point of the map's top-left corner [m]
        self._mask_map: np.ndarray | None = None  # class ids, drawn on demand by render_mask
        self._mask_origin: np.ndarray | None = None  # the map origin the mask map was drawn at

    def reset(self, road: Road, seed: int | None = None) -> None:
        """Precompute the static road drawing for a new episode (call after env.reset).

        Args:
            road: a highway-env ``Road`` (``env.unwrapped.road``).
            seed: the road's seed; unused (the top-down camera has one fixed look), accepted so
                that every camera resets alike (`envs.dashcam.Dashcam` draws its look from it).

        Raises:
            CameraError: the object has no lane network.
        """
        self._shapes = road_shapes(road, "Camera")
        self._road = road
        self._map_valid = False
        self._mask_origin = None

    def render(self, road: Road, ego: Vehicle) -> np.ndarray:
        """Draw the frame: the ego points up, centred laterally.

        Resets lazily when given a road it has not seen. Nothing drawn depends on the ego's
        action (no wheels), so the picture cannot leak the steering label.

        Args:
            road: a highway-env ``Road`` (``env.unwrapped.road``).
            ego: the ego vehicle (``env.unwrapped.vehicle``); it is drawn but not as "other".

        Returns:
            (height, width, 3) uint8 RGB frame.
        """
        if road is not self._road:
            self.reset(road)
        position = np.asarray(ego.position, dtype=float)
        heading = float(ego.heading)
        if not all(map(math.isfinite, (*position.tolist(), heading))):
            raise CameraError(f"ego pose is not finite: position={position}, heading={heading}")
        self._ensure_map(position, heading)
        cfg = self.config
        world_to_frame = self._world_to_frame(position, heading)
        rgba = cv2.warpAffine(
            self._map,
            self._frame_to_map(world_to_frame),
            (cfg.width, cfg.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=_rgba(GROUND_RGB),
        )
        frame = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)
        reach = cfg.view_radius_m + 10.0  # [m] long vehicles straddling the edge stay visible
        ego_x, ego_y = position.tolist()
        for vehicle in road.vehicles:
            x, y = vehicle.position  # plain floats: numpy per 2-vector is slow for 50 vehicles
            if vehicle is not ego and abs(x - ego_x) < reach and abs(y - ego_y) < reach:
                _fill_vehicle(frame, vehicle, world_to_frame, VEHICLE_RGB)
        _fill_vehicle(frame, ego, world_to_frame, EGO_RGB)
        return frame

    def render_mask(self, road: Road, ego: Vehicle) -> np.ndarray:
        """Where the road cues are in the frame `render` draws for the same pose.

        Drawn from the geometry, not from the frame's colours, pixel-aligned with `render`:
        `MASK_MARKING` for the painted lane markings and a band about 2 px wide along the road's
        edges, `MASK_VEHICLE` for other vehicles, `MASK_EGO` for the ego, `MASK_ROAD` for the
        rest of the road surface and `MASK_GROUND` elsewhere.

        Returns:
            (height, width) uint8 class ids.
        """
        if road is not self._road:
            self.reset(road)
        position = np.asarray(ego.position, dtype=float)
        heading = float(ego.heading)
        self._ensure_map(position, heading)
        if self._mask_origin is None or not np.array_equal(self._mask_origin, self._map_origin):
            if self._mask_map is None:
                self._mask_map = np.empty(self._map.shape[:2], np.uint8)
            origin, k = self._map_origin, self._map_px_per_m
            draw_map(self._mask_map, self._shapes, origin, k, _MASK_CLASSES, cv2.LINE_8)
            self._mask_origin = self._map_origin.copy()
        cfg = self.config
        world_to_frame = self._world_to_frame(position, heading)
        mask = cv2.warpAffine(
            self._mask_map,
            self._frame_to_map(world_to_frame),
            (cfg.width, cfg.height),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=MASK_GROUND,
        )
        # Road edges: the pixels on either side of the road/ground boundary.
        on_road = (mask != MASK_GROUND).astype(np.uint8)
        kernel = np.ones((3, 3), np.uint8)
        edge = cv2.dilate(on_road, kernel) != cv2.erode(on_road, kernel)
        mask[edge] = MASK_MARKING
        for vehicle in road.vehicles:
            if vehicle is not ego:
                _fill_vehicle(mask, vehicle, world_to_frame, (MASK_VEHICLE,), cv2.LINE_8)
        _fill_vehicle(mask, ego, world_to_frame, (MASK_EGO,), cv2.LINE_8)
        return mask

    def _ensure_map(self, position: np.ndarray, heading: float) -> None:
        """Redraw the local map when the view would leave it."""
        half = self._map_side / self._map_px_per_m / 2  # [m]
        keep = half - self.config.view_radius_m  # [m] how far the ego may wander off centre
        (x, y), (ox, oy) = position.tolist(), self._map_origin.tolist()
        if self._map_valid and max(abs(x - ox - half), abs(y - oy - half)) < keep:
            return
        # Centre ahead of the ego: it drives into the fresh map, which then lasts longer.
        ahead = 0.5 * keep * np.array([math.cos(heading), math.sin(heading)])
        self._map_origin = position + ahead - half
        draw_map(self._map, self._shapes, self._map_origin, self._map_px_per_m, _MAP_COLOURS)
        self._map_valid = True

    def _world_to_frame(self, position: np.ndarray, heading: float) -> np.ndarray:
        """(2, 3) affine matrix: world point [m] -> frame pixel (OpenCV pixel-centre coords)."""
        cfg = self.config
        sx, sy = self._px_per_m_x, self._px_per_m_y
        forward = np.array([math.cos(heading), math.sin(heading)])
        right = np.array([-forward[1], forward[0]])  # +lateral, drawn to the right
        u0 = cfg.width / 2 - 0.5 - sx * (right @ position)
        v0 = sy * cfg.ahead_m - 0.5 + sy * (forward @ position)
        return np.array([[*(sx * right), u0], [*(-sy * forward), v0]])

    def _frame_to_map(self, world_to_frame: np.ndarray) -> np.ndarray:
        """(2, 3) affine matrix: frame pixel -> local map pixel, for WARP_INVERSE_MAP."""
        # world_to_frame's 2x2 part is [sx * right; -sy * forward] with right, forward
        # orthonormal, so its inverse is [right / sx, -forward / sy] as columns. Plain floats:
        # numpy's per-call overhead on 2x3 matrices cost more than the arithmetic.
        (a, b, u0), (c, d, v0) = world_to_frame.tolist()
        sx2, sy2 = self._px_per_m_x**2, self._px_per_m_y**2
        i00, i01, i10, i11 = a / sx2, c / sy2, b / sx2, d / sy2
        k = self._map_px_per_m
        ox, oy = self._map_origin.tolist()
        tx = k * (-(i00 * u0 + i01 * v0) - ox) - 0.5
        ty = k * (-(i10 * u0 + i11 * v0) - oy) - 0.5
        return np.array([[k * i00, k * i01, tx], [k * i10, k * i11, ty]])


def road_shapes(road: Road, camera: str) -> list[LaneShape]:
    """Every lane of `road`, sampled for `draw_map`; CameraError if `road` is not a Road."""
    network = getattr(road, "network", None)
    if network is None or not hasattr(network, "graph"):
        raise CameraError(
            f"{camera}.reset got {type(road).__name__}, not a highway-env Road: "
            "pass env.unwrapped.road"
        )
    lanes = [lane for tos in network.graph.values() for ids in tos.values() for lane in ids]
    return [shape for shape in map(shape_lane, lanes) if shape is not None]


def _fill_vehicle(
    frame: np.ndarray,
    vehicle: Vehicle,
    world_to_frame: np.ndarray,
    colour: tuple,
    line_type: int = cv2.LINE_AA,
) -> None:
    """Draw a vehicle as a plain filled rotated rectangle (no wheels: nothing action-dependent)."""
    c, s = math.cos(vehicle.heading), math.sin(vehicle.heading)
    half_l, half_w = vehicle.LENGTH / 2, vehicle.WIDTH / 2
    fx, fy, rx, ry = c * half_l, s * half_l, -s * half_w, c * half_w
    x, y = vehicle.position.tolist()
    corners = np.array(
        [
            [x + fx + rx, y + fy + ry],
            [x + fx - rx, y + fy - ry],
            [x - fx - rx, y - fy - ry],
            [x - fx + rx, y - fy + ry],
        ]
    )
    px = corners @ world_to_frame[:, :2].T + world_to_frame[:, 2]
    cv2.fillConvexPoly(frame, np.round(px * _ONE).astype(np.int32), colour, line_type, SHIFT)
