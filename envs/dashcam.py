"""Driver's-eye perspective camera ("dashcam"): the road as seen from behind the windscreen.

A pinhole camera `mount_height_m` above the ground and `mount_forward_m` ahead of the ego's
centre, pitched down by `pitch_deg`, with a horizontal field of view `fov_deg` (focal length
f = (W / 2) / tan(fov / 2) [px], principal point at the frame centre); 66x200 by default, like
PilotNet's input. It has the top-down `envs.camera.Camera`'s interface (`reset`, `render`,
`render_mask`, `config`); `make_camera(config)` builds the camera `config.kind` asks for.

How a frame is made, fast enough for collection (flat ground, as PilotNet's viewpoint transform):
- Ground: the road is drawn into two local top-down maps (`envs.ground.LocalMap`, turned to the
  car's heading and redrawn ahead of it every few dozen metres), each seen through one
  ground-plane homography per frame (`cv2.warpPerspective`). Rows near the horizon
  cover metres of road each and would alias markings into noise, so the near rows come from a
  fine map (dashes, world-anchored texture) and the far rows from a coarse map on which dashes are
  drawn as the faint solid line they average to, sampled twice per row and averaged. The two
  blend over a few rows, and the ground fades into haze towards `view_m`; every per-row weight is
  computed once, from the settings.
- Sky above the horizon: a gradient by elevation, drawn once per road.
- Other cars: solid boxes (LENGTH x WIDTH x `BOX_HEIGHT_M`) with dark windows, only the faces
  turned to the camera, shaded per face, painted far to near, clipped at `NEAR_PLANE_M` in front
  of the camera. Nothing drawn depends on the action (no wheels): no label leak.
- The look of each road (colours, texture, light) comes from `envs.appearance`.
- Rear-view mirror (`CameraConfig.rear_mirror`): a second `Dashcam` at the same mount, turned to
  look backwards (`MIRROR_FOV_DEG`, pitched down `MIRROR_PITCH_DEG`, ground and cars up to
  `MIRROR_REACH_M` behind), draws the view behind the car with all of the above; it is flipped
  left to right, as a mirror shows it (a car behind to the left is on the left), and set in a
  1 px frame into the sky at the top of the frame, centred like an interior mirror. Its maps lie
  behind the car in the direction of travel, so that driving on does not leave them.

World convention: highway-env's, y points down, heading h means direction (cos h, sin h) and the
car's right is (-sin h, cos h). Frame pixel (u, v) has its centre at integer coordinates (OpenCV).

    camera = make_camera(CameraConfig(kind="dashcam", appearance="train"))
    camera.reset(env.unwrapped.road, seed=3)  # the road seed picks the look
    frame = camera.render(env.unwrapped.road, env.unwrapped.vehicle)  # (66, 200, 3) uint8 RGB
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from envs.appearance import (
    AMPLITUDE_UNIT,
    Appearance,
    draw_appearance,
    map_colours,
    sky_colours,
    texture_tile,
)
from envs.camera import (
    EGO_RGB,
    MASK_EGO,
    MASK_GROUND,
    MASK_MARKING,
    MASK_ROAD,
    MASK_SKY,
    MASK_VEHICLE,
    VEHICLE_RGB,
    Camera,
    CameraConfig,
    CameraError,
    road_shapes,
)
from envs.ground import SHIFT, LocalMap

if TYPE_CHECKING:
    from highway_env.road.road import Road
    from highway_env.vehicle.kinematics import Vehicle

BOX_HEIGHT_M = 1.5
"""Height of the boxes drawn for other cars [m]."""
NEAR_PLANE_M = 0.2
"""Car faces are clipped this far in front of the camera [m]."""
MIRROR_FOV_DEG = 60.0
"""Horizontal field of view of the rear-view mirror [deg]."""
MIRROR_PITCH_DEG = 4.0
"""Downward tilt of the mirror's view [deg]: on 66x200 the horizon 2 rows below its top, the
ground seen from 7.5 m behind the camera (4.5 m behind the car's back) on."""
MIRROR_REACH_M = 60.0
"""The mirror shows ground and cars up to this far behind the camera [m] (its `view_m`)."""

_NEAR_PX_PER_M, _FAR_PX_PER_M = 8.0, 4.0  # resolution of the near and far maps [px/m]
_NEAR_TRAVEL_M, _FAR_TRAVEL_M = 50.0, 100.0  # room to drive in each map before a redraw [m]
_NEAR_SIDE_M, _FAR_SIDE_M = 8.0, 20.0  # room on either side of each map, for bends [m]
_MAP_MAX_SIDE_PX = 4096  # bounds memory (64 MiB) whatever the settings
_BLEND_FOOTPRINT_M = (1.0, 2.5)  # [m] of road per row: near map up to the first, far from the 2nd
_FAR_SUPERSAMPLE = 2  # far rows: two samples per pixel down the rows (metres of road), averaged
_HAZE_START = 0.35  # haze starts at this share of view_m and is complete at view_m
_SKY_TOP_DEG = 30.0  # elevation where the sky gradient reaches its top colour [deg]
# Box corners 0-3 on the ground, 4-7 above them: front-right, front-left, back-left, back-right,
# as (along the car, across it, 1).
_CORNERS = np.array([[1, 1, -1, -1] * 2, [1, -1, -1, 1] * 2, [1] * 8], dtype=float)
_FACE_INDEX = ((0, 1, 5, 4), (2, 3, 7, 6), (1, 2, 6, 5), (3, 0, 4, 7), (4, 5, 6, 7))
_FACE_SHADE = (0.8, 0.8, 0.62, 0.62, 1.2)  # front, back, left, right, top: reads as 3D
_GLASS_RGB = (40, 50, 64)  # car windows
_WINDOW_SPAN = ((0.12, 0.88), (0.12, 0.88), (0.2, 0.8), (0.2, 0.8))  # along faces 0-3
_WINDOW_ROWS = (0.55, 0.88)  # bottom and top of the windows, shares of the box's height
_MIRROR_SHARE = (0.18, 0.31)  # the mirror's view: shares of the frame's height and width
_MIRROR_RGB = (30, 30, 34)  # its frame: dark plastic


def _window_corners() -> np.ndarray:
    """(8, 16) box corners -> the corners of a window on each of faces 0-3, `_WINDOW_ROWS` up."""
    weights = np.zeros((8, 16))
    for j, (u0, u1) in enumerate(_WINDOW_SPAN):
        corners = [_FACE_INDEX[j][k] for k in (0, 1, 3)]  # a bottom corner, the next, above it
        low, high = _WINDOW_ROWS
        for k, (u, w) in enumerate(((u0, low), (u1, low), (u1, high), (u0, high))):
            weights[corners, 4 * j + k] = (1 - u - w, u, w)
    return weights


_WINDOWS = _window_corners()  # corners 8-23 of a box
_POLYGONS = np.array([*_FACE_INDEX, *(range(8 + 4 * j, 12 + 4 * j) for j in range(4))])
_BONNET = ((-0.05, 1.05), (0.08, 0.9), (0.3, 0.85), (0.7, 0.85), (0.92, 0.9), (1.05, 1.05))
_CLASSES = ((MASK_GROUND,), (MASK_ROAD,), (MASK_MARKING,))  # draw_map's colours for the mask
_ONE = 1 << SHIFT


def make_camera(config: CameraConfig) -> Camera | Dashcam:
    """The camera `config.kind` asks for: `Camera` (top-down) or `Dashcam`."""
    return Dashcam(config) if config.kind == "dashcam" else Camera(config)


def ground_to_frame(config: CameraConfig) -> np.ndarray:
    """(3, 3) homography of the dashcam: ground point (forward a, right b) [m] from the camera,
    homogeneous (a, b, 1) -> homogeneous frame pixel (u, v, 1); flat ground, the settings'
    pinhole (its inverse is the bird's-eye warp of `driving.modular`)."""
    f = (config.width / 2) / math.tan(math.radians(config.fov_deg) / 2)  # [px]
    cu, cv = (config.width - 1) / 2, (config.height - 1) / 2
    pitch, h = math.radians(config.pitch_deg), config.mount_height_m
    c, s = math.cos(pitch), math.sin(pitch)
    return np.array(
        [[cu * c, f, cu * h * s], [cv * c - f * s, 0.0, h * (f * c + cv * s)], [c, 0.0, h * s]]
    )


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


class Dashcam:
    """Driver's-eye perspective camera; see the module docstring."""

    def __init__(
        self, config: CameraConfig = CameraConfig(kind="dashcam"), *, backwards: bool = False
    ) -> None:
        """Check the settings, build the pinhole model and size the local maps.

        Args:
            config: the camera's settings.
            backwards: look out of the back of the car instead, unflipped (the mirror's camera).

        Raises:
            CameraError: a setting is nonsense, `config.kind` is not "dashcam", or the mirror
                does not fit in the sky.
        """
        config.validate()
        if config.kind != "dashcam":
            raise CameraError(f"Dashcam needs CameraConfig.kind='dashcam', got {config.kind!r}")
        self.config = config
        self._facing = -1.0 if backwards else 1.0  # 1: the view looks where the car drives
        width, height = config.width, config.height
        self._half_fov_tan = math.tan(math.radians(config.fov_deg) / 2)  # [m across / m depth]
        self.focal_px = (width / 2) / self._half_fov_tan
        """Focal length [px]."""
        cu, cv = (width - 1) / 2, (height - 1) / 2
        self._cv, self._centre_fixed = cv, np.array([cu, cv]) * _ONE
        pitch, h = math.radians(config.pitch_deg), config.mount_height_m
        self._cos, self._sin = c, s = math.cos(pitch), math.sin(pitch)
        self._frame_to_ground = np.linalg.inv(ground_to_frame(config))
        self.horizon_row = cv - self.focal_px * math.tan(pitch)
        """Row of the horizon [px] (fractional; rows below it see the ground)."""
        self._rows(config)
        top, far_end, near_start = self._bands
        self._far_band, self._near_band = _band(top, _FAR_SUPERSAMPLE), _band(near_start, 1)
        self._far_size = (width, (far_end - top) * _FAR_SUPERSAMPLE)
        self._car_points = _car_points(c, s, h)
        # `_nearby_cars`' test. A box's points (height >= 0) at ground point (ahead, right) lie
        # at depth <= ahead cos(pitch) + h sin(pitch); all of them outside |right| < spread *
        # that depth, the frame's sides 1.5 px (anti-aliasing) further out, draw nothing.
        spread = (width / 2 + 1.5) / self.focal_px  # [m across / m depth]
        self._wedge = (spread * c, spread * h * s, math.hypot(1.0, spread * c))

        def reach(near_m: float, far_m: float) -> np.ndarray:  # ground seen, camera frame [m]
            near_m, far_m = min(near_m, config.view_m), min(far_m, config.view_m)
            b_near, b_far = (self._half_fov_tan * (a * c + h * s) + 1.0 for a in (near_m, far_m))
            return np.array([[near_m, -b_near], [near_m, b_near], [far_m, -b_far], [far_m, b_far]])

        # The maps' polygons in the car's direction of travel: behind the car for a rear view.
        near = reach(self._distance(height - 0.5), self._distance(near_start - 1.5)) * self._facing
        far = reach(self._distance(far_end + 0.5), config.view_m) * self._facing
        self._near = LocalMap(near, _NEAR_TRAVEL_M, _NEAR_SIDE_M, _NEAR_PX_PER_M, _MAP_MAX_SIDE_PX)
        self._far = LocalMap(far, _FAR_TRAVEL_M, _FAR_SIDE_M, _FAR_PX_PER_M, _MAP_MAX_SIDE_PX)
        self._buffer = np.zeros((height, width, 4), np.uint8)  # RGBA frame being composed
        self._road: Road | None = None
        self.look: Appearance = draw_appearance(0, "plain")
        """The current road's look (`envs.appearance`), drawn at `reset`."""
        bonnet = np.array(_BONNET) * (width, height) - 0.5
        self._bonnet = np.round(bonnet * _ONE).astype(np.int32)
        self.mirror_box: tuple[int, int, int, int] | None = None
        """Rows [top, bottom) and columns [left, right) of the rear-view mirror, its frame
        included; None without one."""
        self._mirror: Dashcam | None = None
        if config.rear_mirror:
            self.mirror_box, self._mirror = self._rear_view(config)

    def _rear_view(self, config: CameraConfig) -> tuple[tuple[int, int, int, int], Dashcam]:
        """The mirror's place in the frame and the camera of its view."""
        top, bottom, left, right = box = _mirror_box(config.height, config.width)
        if left < 0 or bottom > self.ground_top:
            raise CameraError(
                f"CameraConfig.rear_mirror=True: a {bottom - top}x{right - left} px mirror does "
                f"not fit in the {self.ground_top} rows of sky of this {config.height}x"
                f"{config.width} frame; lower pitch_deg or view_m, or set rear_mirror=False"
            )
        view = replace(
            config,
            height=bottom - top - 2,
            width=right - left - 2,
            pitch_deg=MIRROR_PITCH_DEG,
            fov_deg=MIRROR_FOV_DEG,
            view_m=MIRROR_REACH_M,
            bonnet=False,
            rear_mirror=False,
        )
        return box, Dashcam(view, backwards=True)

    def _distance(self, row: float) -> float:
        """Forward distance [m] from the camera to the ground seen at `row` (inf: none)."""
        angle = math.radians(self.config.pitch_deg) + math.atan((row - self._cv) / self.focal_px)
        return self.config.mount_height_m / math.tan(angle) if angle > 1e-9 else math.inf

    def _rows(self, config: CameraConfig) -> None:
        """Per-row weights, once: far-map share, haze, and the row bands that need each map."""
        rows = np.arange(config.height, dtype=float)
        distance = np.array([self._distance(v) for v in rows])  # [m]
        footprint = np.array([self._distance(v - 0.5) - self._distance(v + 0.5) for v in rows])
        low, high = _BLEND_FOOTPRINT_M
        with np.errstate(invalid="ignore"):  # inf - inf above the horizon: nan, then 1
            far_share = np.nan_to_num(_smoothstep((footprint - low) / (high - low)), nan=1.0)
        start = _HAZE_START * config.view_m
        haze = _smoothstep((distance - start) / (config.view_m - start))
        # Both fall row by row: rows [top, far_end) need the far map, [near_start, H) the near
        # map, [top, haze_end) haze; rows above `top` show only sky and haze.
        top = int(np.count_nonzero(haze >= 1.0))
        far_end = top + int(np.count_nonzero(far_share[top:] > 0))
        near_start = config.height - int(np.count_nonzero(far_share[top:] < 1))
        self._bands, self.ground_top = (top, far_end, near_start), top
        """Rows [0, ground_top) show only sky and haze: no ground within `view_m`."""
        self._split = top + int(np.count_nonzero(far_share[top:] >= 0.5))  # render_mask's
        self._haze_end = top + int(np.count_nonzero(haze[top:] > 0))

        def weights(share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # per pixel, blendLinear's
            share = np.repeat(share.astype(np.float32)[:, None], config.width, axis=1)
            return 1 - share, share

        self._blend_weights = weights(far_share[max(near_start, top) : far_end])
        self._haze_weights = weights(haze[top : self._haze_end])
        self._elevation = -np.degrees(
            math.radians(config.pitch_deg) + np.arctan((rows - self._cv) / self.focal_px)
        )

    def reset(self, road: Road, seed: int | None = None) -> None:
        """Take a new road and draw its look from `seed` (the road seed; None: 0).

        Raises:
            CameraError: `road` is not a highway-env Road, or `seed` is negative.
        """
        shapes = road_shapes(road, "Dashcam")
        try:
            look = draw_appearance(0 if seed is None else seed, self.config.appearance)
        except ValueError as error:
            raise CameraError(f"Dashcam.reset: {error}") from None
        self._road, self.look = road, look
        if self._mirror is not None:
            self._mirror.reset(road, seed)
            self._mirror_rgb = look.tone(_MIRROR_RGB)
        textured = max(look.asphalt_texture, look.marking_wear, look.grass_texture) > 0
        tile = texture_tile(0 if seed is None else seed) / AMPLITUDE_UNIT if textured else None
        near, far, dashes = map_colours(look, self._far.px_per_m)
        self._near.set_road(shapes, near, texture=tile)
        self._far.set_road(shapes, far, dashes)
        self._buffer[:] = sky_colours(look, self._elevation, _SKY_TOP_DEG)[:, None, :]
        self._haze_rgb = np.array(look.tone(look.haze_rgb), float)
        rows = (self._haze_end - self.ground_top, self.config.width, 4)
        self._haze_rows = np.full(rows, (*self._haze_rgb, 0), np.uint8)
        shades = [tuple(min(255, k * c) for c in VEHICLE_RGB) for k in _FACE_SHADE]
        glass = [tuple(k * c for c in _GLASS_RGB) for k in _FACE_SHADE[:4]]
        self._colours = np.array([look.tone(rgb) for rgb in shades + glass], float)  # _POLYGONS
        self._bonnet_rgb = look.tone(tuple(0.75 * c for c in EGO_RGB))

    def render(self, road: Road, ego: Vehicle) -> np.ndarray:
        """Draw the frame seen from the ego's driving seat.

        Resets lazily (look of seed 0) when given a road it has not seen.

        Args:
            road: a highway-env ``Road`` (``env.unwrapped.road``).
            ego: the ego vehicle (``env.unwrapped.vehicle``); only its pose is used.

        Returns:
            (height, width, 3) uint8 RGB frame.
        """
        if road is not self._road:
            self.reset(road)
        to_world, pose = self._view(ego)
        frame = self._draw_ground(to_world, pose)
        self._draw_cars(frame, self._nearby_cars(road, ego, pose), cv2.LINE_AA, None)
        if self.config.bonnet:
            cv2.fillConvexPoly(frame, self._bonnet, self._bonnet_rgb, cv2.LINE_AA, SHIFT)
        if self._mirror is not None:
            self._show_mirror(frame, self._mirror.render(road, ego), self._mirror_rgb)
        return frame

    def render_mask(self, road: Road, ego: Vehicle) -> np.ndarray:
        """Where the road cues are in the frame `render` draws for the same pose.

        Drawn from the geometry, pixel-aligned with `render`: `MASK_SKY` above the horizon and
        where the ground has faded into haze, `MASK_MARKING` for lane markings and a band about
        2 px wide along the road's edges, `MASK_ROAD`, `MASK_GROUND`, `MASK_VEHICLE` for the
        faces of other cars (in the same painter's order) and `MASK_EGO` for the bonnet and the
        mirror's frame; inside the mirror, the classes of its view.

        Returns:
            (height, width) uint8 class ids.
        """
        if road is not self._road:
            self.reset(road)
        cfg = self.config
        to_world, pose = self._view(ego)
        mask = np.full((cfg.height, cfg.width), MASK_SKY, np.uint8)
        bands = ((self._far, self.ground_top, self._split), (self._near, self._split, cfg.height))
        flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
        for local, top, bottom in bands:  # the far map above the blend's middle, the near below
            if bottom > top:
                local.ensure(*pose)
                m, classes = local.from_world @ to_world @ _band(top, 1), local.class_map(_CLASSES)
                size, out = (cfg.width, bottom - top), mask[top:bottom]
                cv2.warpPerspective(classes, m, size, out, flags, cv2.BORDER_CONSTANT, MASK_GROUND)
        ground = mask[self.ground_top :]  # road edges: either side of the road/ground boundary
        if ground.size:
            on_road, kernel = (ground != MASK_GROUND).astype(np.uint8), np.ones((3, 3), np.uint8)
            ground[cv2.dilate(on_road, kernel) != cv2.erode(on_road, kernel)] = MASK_MARKING
        self._draw_cars(mask, self._nearby_cars(road, ego, pose), cv2.LINE_8, MASK_VEHICLE)
        if cfg.bonnet:
            cv2.fillConvexPoly(mask, self._bonnet, MASK_EGO, cv2.LINE_8, SHIFT)
        if self._mirror is not None:
            self._show_mirror(mask, self._mirror.render_mask(road, ego), MASK_EGO)
        return mask

    def _show_mirror(self, image: np.ndarray, view: np.ndarray, frame_colour) -> None:
        """Set the rear view into the mirror, flipped left to right as a mirror shows it, inside
        a 1 px frame of `frame_colour`."""
        top, bottom, left, right = self.mirror_box
        mirror = cv2.flip(view, 1)  # flip and frame with cv2: 3 us, with numpy 9 us
        border = (1, 1, 1, 1, cv2.BORDER_CONSTANT)
        image[top:bottom, left:right] = cv2.copyMakeBorder(mirror, *border, value=frame_colour)

    def _view(self, ego: Vehicle) -> tuple[np.ndarray, tuple[float, float, float]]:
        """(3, 3) frame pixel -> world ground point [m]; the camera's x, y [m] and heading [rad]."""
        heading = float(ego.heading)
        x, y = np.asarray(ego.position, dtype=float).tolist()
        if not all(map(math.isfinite, (x, y, heading))):
            raise CameraError(f"ego pose is not finite: position={(x, y)}, heading={heading}")
        c, s = math.cos(heading), math.sin(heading)
        x, y = x + self.config.mount_forward_m * c, y + self.config.mount_forward_m * s
        c, s = self._facing * c, self._facing * s  # the view's direction
        camera_to_world = np.array([[c, -s, x], [s, c, y], [0.0, 0.0, 1.0]])
        return camera_to_world @ self._frame_to_ground, (x, y, heading)

    def _draw_ground(self, to_world: np.ndarray, pose: tuple[float, float, float]) -> np.ndarray:
        """The frame's sky and ground (RGB): far and near maps (the texture is baked into the
        near one, so it fades with it), their blend, haze."""
        buffer, (top, far_end, near_start) = self._buffer, self._bands
        flags, border = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, cv2.BORDER_CONSTANT
        haze = (*self._haze_rgb.tolist(), 0)
        if far_end > top:
            self._far.ensure(*pose)
            m = self._far.from_world @ to_world @ self._far_band
            far = cv2.warpPerspective(self._far.image, m, self._far_size, None, flags, border, haze)
            # The mean of each pair of rows: INTER_AREA's result, 6x faster than cv2.resize.
            far = cv2.addWeighted(far[0::2], 0.5, far[1::2], 0.5, 0.0)
        if self.config.height > near_start:
            self._near.ensure(*pose)
            near, to_world = buffer[near_start:], to_world @ self._near_band
            m = self._near.from_world @ to_world
            cv2.warpPerspective(self._near.image, m, near.shape[1::-1], near, flags, border, haze)
        if far_end > top:  # far rows, then the band where the two maps blend
            overlap = max(near_start, top)
            buffer[top:overlap] = far[: overlap - top]
            rows, (keep, add) = buffer[overlap:far_end], self._blend_weights
            cv2.blendLinear(rows, far[overlap - top :], keep, add, rows)
        if self._haze_end > top:
            rows, (keep, add) = buffer[top : self._haze_end], self._haze_weights
            cv2.blendLinear(rows, self._haze_rows, keep, add, rows)
        return cv2.cvtColor(buffer, cv2.COLOR_RGBA2RGB)

    def _nearby_cars(self, road: Road, ego: Vehicle, pose: tuple) -> list[tuple]:
        """The other cars that may show: before the haze, a part of the box in the field of
        view (those beside the camera are clipped). Per car: squared distance [m^2], distance
        ahead [m], the camera's position in the car's frame (along, across [m]), half length and
        half width [m], then the car's ground pose in the camera frame (`_CORNERS` -> ahead,
        right: 6). Ahead and right are the view's (for a rear view: behind the ego, its left)."""
        x, y, heading = pose
        facing = self._facing
        c, s = facing * math.cos(heading), facing * math.sin(heading)
        (slope, offset, scale), far = self._wedge, self.config.view_m + 5.0
        cars = []
        for vehicle in road.vehicles:  # plain floats: numpy per car costs more than the maths
            if vehicle is ego:
                continue
            px, py = vehicle.position.tolist()
            dx, dy = px - x, py - y
            ahead, side, size = dx * c + dy * s, dy * c - dx * s, vehicle.LENGTH
            radius = math.hypot(size, vehicle.WIDTH) / 2  # [m] the footprint lies within it
            # Further than that outside the wedge (its line's distance, scaled): not seen.
            if not (-size < ahead < far and abs(side) - slope * ahead < offset + scale * radius):
                continue
            turn = float(vehicle.heading) - heading
            ca, sa = facing * math.cos(turn), facing * math.sin(turn)
            half_l, half_w = vehicle.LENGTH / 2, vehicle.WIDTH / 2
            along, across = -(ahead * ca + side * sa), ahead * sa - side * ca
            ground = (ca * half_l, -sa * half_w, ahead, sa * half_l, ca * half_w, side)
            cars.append((ahead**2 + side**2, ahead, along, across, half_l, half_w, *ground))
        return cars

    def _draw_cars(self, image: np.ndarray, cars: list[tuple], line_type: int, cls) -> None:
        """Cars (`_nearby_cars`) as boxes, far to near, in face colours or class id `cls`."""
        if not cars:
            return
        start, fade = _HAZE_START * self.config.view_m, (1 - _HAZE_START) * self.config.view_m
        shown = []  # (car, haze [0..1]), far to near; cars lost in the haze are not drawn
        for car in sorted(cars, reverse=True):
            h = min(max((car[1] - start) / fade, 0.0), 1.0)
            h = h * h * (3 - 2 * h)  # as `_smoothstep`
            if h < 1.0:
                shown.append((car, h))
        if not shown:
            return
        # One product gives every box corner and window corner in 3D (few numpy calls: they,
        # not the arithmetic, are the cost for a handful of cars).
        poses = np.array([(*car[6:], 1.0) for car, _ in shown])  # (N, 7)
        points = (poses @ self._car_points).reshape(-1, 24, 3)  # right, down, depth [m]
        # (N, 24, 3) [m] -> (N, 9, 4, 2) px; take, unlike [:, _POLYGONS], returns C order.
        polygons = np.take(self._project(points), _POLYGONS, axis=1)
        clipped = (points[..., 2].min(axis=1) < NEAR_PLANE_M).tolist()
        top = self.config.mount_height_m > BOX_HEIGHT_M
        # Windows less than a pixel tall (cars beyond ~50 m, mostly haze) are not drawn.
        window_m = (_WINDOW_ROWS[1] - _WINDOW_ROWS[0]) * BOX_HEIGHT_M * self.focal_px  # [m]
        for i, ((_, ahead, along, across, half_l, half_w, *_), h) in enumerate(shown):
            faces = (along > half_l, along < -half_l, across < -half_w, across > half_w, top)
            colours = self._colours if h == 0.0 else (self._colours * (1 - h) + self._haze_rgb * h)
            colours = colours.tolist()
            windows = cls is None and ahead < window_m
            for j in (j for j in range(5) if faces[j]):
                for k in (j, j + 5) if windows and j < 4 else (j,):  # face, then window
                    polygon = polygons[i, k]
                    if clipped[i]:
                        polygon = self._project(_clip_near(points[i, _POLYGONS[k]].tolist()))
                    colour = (cls,) if cls is not None else colours[k]
                    if len(polygon) >= 3:
                        cv2.fillConvexPoly(image, polygon, colour, line_type, SHIFT)

    def _project(self, points: np.ndarray) -> np.ndarray:
        """Camera-frame points (..., 3) [m] (right, down, depth) -> (..., 2) fixed-point pixels."""
        scale = self.focal_px * _ONE / np.maximum(points[..., 2:], NEAR_PLANE_M)
        uv = points[..., :2] * scale + self._centre_fixed
        np.minimum(np.maximum(uv, -1e6, out=uv), 1e6, out=uv)  # np.clip: 3x the overhead
        return uv.round().astype(np.int32)


def _car_points(cos_pitch: float, sin_pitch: float, height_m: float) -> np.ndarray:
    """(7, 72): a car's ground pose in the camera frame and 1 (`_nearby_cars`'s last six
    numbers, then 1) -> its 24 box and window corners (right, down, depth [m]), flattened."""

    def corners(pose: np.ndarray) -> np.ndarray:  # (7,) -> (24, 3), affine in the pose
        ground = pose[:6].reshape(2, 3) @ _CORNERS  # (2, 8) ahead, right [m]
        below = (height_m - np.array([0.0] * 4 + [BOX_HEIGHT_M] * 4)) * pose[6]  # [m]
        ahead, right = ground
        points = np.array(
            [right, below * cos_pitch - ahead * sin_pitch, ahead * cos_pitch + below * sin_pitch]
        )
        return np.concatenate([points, points @ _WINDOWS], axis=1).T

    return np.array([corners(row).ravel() for row in np.eye(7)])


def _mirror_box(height: int, width: int) -> tuple[int, int, int, int]:
    """Rows [top, bottom) and columns [left, right) of the mirror in a frame of this size, its
    1 px frame included: hung 1 px below the top, centred to the pixel (a frame flipped left to
    right keeps it in place)."""
    rows = max(1, round(_MIRROR_SHARE[0] * height))
    columns = 2 * max(1, round(_MIRROR_SHARE[1] * width / 2)) + width % 2
    left = (width - columns) // 2 - 1
    return 1, rows + 3, left, width - left


def _band(first_row: int, supersample: int) -> np.ndarray:
    """(3, 3) pixel of a band image (from row `first_row`, `supersample` rows a row) -> frame px."""
    k = 1.0 / supersample
    return np.array([[1.0, 0.0, 0.0], [0.0, k, 0.5 * k - 0.5 + first_row], [0.0, 0.0, 1.0]])


def _clip_near(polygon: list[list[float]]) -> np.ndarray:
    """The part of a convex polygon (K points, 3) at depth >= NEAR_PLANE_M (Sutherland-Hodgman);
    plain floats for its few points."""
    out = []
    for a, b in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if a[2] >= NEAR_PLANE_M:
            out.append(a)
        if (a[2] >= NEAR_PLANE_M) != (b[2] >= NEAR_PLANE_M):
            t = (NEAR_PLANE_M - a[2]) / (b[2] - a[2])
            out.append([p + t * (q - p) for p, q in zip(a, b, strict=True)])
    return np.array(out).reshape(-1, 3)
