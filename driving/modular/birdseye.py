"""The bird's-eye view of the modular driver: any camera frame resampled onto one metric grid.

The grid is the ground around the car, seen from above, heading up: row 0 is `FAR_M` ahead of the
car's centre, the bottom row `NEAR_M` ahead, the columns span `HALF_SPAN_M` either side, at
`PX_PER_M`. On the dashcam (`envs.dashcam`) it is the inverse perspective mapping: each grid
pixel is a ground point, `envs.dashcam.ground_to_frame` says where that point is in the frame
(flat ground, the camera's own settings, nothing learned). The top-down camera (`envs.camera`) is
a bird's-eye view already: the same grid is one scaling of it (an affine map, no perspective).

    view = BirdsEye(CameraConfig(kind="dashcam"))
    top = view.warp(frame)        # (GRID_ROWS, GRID_COLS, 3) uint8, view.valid says where it saw
    x, y = view.ground(rows, cols)   # grid pixels -> [m] ahead of the car's centre, right of it
"""

from __future__ import annotations

import cv2
import numpy as np

from envs.camera import CameraConfig
from envs.dashcam import ground_to_frame

NEAR_M = 3.0
"""Nearest ground in the grid, ahead of the car's centre [m] (the dashcam sees from ~2.9 m;
the top-down camera's ego ends at 2.5 m)."""
FAR_M = 30.0
"""Farthest ground in the grid [m]: beyond it the dashcam's rows blur metres into a pixel."""
HALF_SPAN_M = 10.0
"""Lateral extent of the grid either side of the car [m]: a 40 m bend is 8 m off at 25 m."""
PX_PER_M = 5.0
"""Grid resolution [px/m]: a marking (0.25 m) is about a pixel wide, like the far frame rows."""
GRID_ROWS = round((FAR_M - NEAR_M) * PX_PER_M)
GRID_COLS = round(2 * HALF_SPAN_M * PX_PER_M)


def _grid_to_car() -> np.ndarray:
    """(3, 3) grid pixel (col, row, 1) -> car ground point (x ahead, y right, 1) [m]."""
    k = 1.0 / PX_PER_M
    return np.array([[0.0, -k, FAR_M - 0.5 * k], [k, 0.0, -HALF_SPAN_M + 0.5 * k], [0, 0, 1.0]])


def car_to_frame(camera: CameraConfig) -> np.ndarray:
    """(3, 3) car ground point (x ahead of the centre, y right) [m] -> frame pixel (u, v), for
    either camera kind."""
    if camera.kind == "dashcam":
        to_camera = np.array([[1.0, 0.0, -camera.mount_forward_m], [0, 1, 0], [0, 0, 1]])
        return ground_to_frame(camera) @ to_camera
    sx = camera.width / camera.span_m  # [px/m] as `envs.camera.Camera` draws
    sy = camera.height / (camera.ahead_m + camera.behind_m)
    u0, v0 = camera.width / 2 - 0.5, sy * camera.ahead_m - 0.5
    return np.array([[0.0, sx, u0], [-sy, 0.0, v0], [0.0, 0.0, 1.0]])


class BirdsEye:
    """Resamples frames of one camera onto the metric grid (see the module docstring)."""

    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self._grid_to_frame = car_to_frame(camera) @ _grid_to_car()
        full = np.full((camera.height, camera.width), 255, np.uint8)
        seen = self._warp(full, cv2.INTER_NEAREST)
        self.valid = cv2.erode(seen, np.ones((3, 3), np.uint8)) > 0
        """(GRID_ROWS, GRID_COLS) bool: grid pixels the camera sees (away from the frame's edge)."""
        rows, cols = np.mgrid[0:GRID_ROWS, 0:GRID_COLS]
        self.x, self.y = self.ground(rows, cols)
        """Per grid pixel: [m] ahead of the car's centre, [m] right of it."""

    def _warp(self, image: np.ndarray, interpolation: int) -> np.ndarray:
        flags = interpolation | cv2.WARP_INVERSE_MAP
        size = (GRID_COLS, GRID_ROWS)
        return cv2.warpPerspective(image, self._grid_to_frame, size, None, flags, 0)

    def warp(self, frame: np.ndarray) -> np.ndarray:
        """The grid seen in `frame` ((H, W, 3) uint8 RGB of this camera): (GRID_ROWS, GRID_COLS,
        3) uint8."""
        return self._warp(frame, cv2.INTER_LINEAR)

    def warp_mask(self, mask: np.ndarray) -> np.ndarray:
        """The grid seen in a (H, W) bool mask of this camera's frame: (GRID_ROWS, GRID_COLS)
        bool, True where the nearest frame pixel is."""
        return self._warp(mask.astype(np.uint8), cv2.INTER_NEAREST) > 0

    @staticmethod
    def ground(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid pixels -> (x ahead of the car's centre, y right of it) [m]."""
        return FAR_M - (rows + 0.5) / PX_PER_M, -HALF_SPAN_M + (cols + 0.5) / PX_PER_M
