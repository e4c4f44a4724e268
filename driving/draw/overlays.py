"""Frames composed for people: the watch/keyboard heads-up frame, saliency heat overlays.

The watch frame: a top-down overview of the road on the left, the camera frame the policy sees on
the right (enlarged, with both drivers' commands), lines of text below it.
"""

from __future__ import annotations

import cv2
import numpy as np

from driving.draw.video import GREY, WHITE, overlay
from envs.camera import Camera, CameraConfig

OVERVIEW = CameraConfig(height=320, width=320, ahead_m=70.0, behind_m=30.0, span_m=100.0)
"""The top-down overview beside the camera frame: 3.2 px/m, the car 30 % up from the bottom."""
FPS = 10.0  # [Hz] the policy's rate: windows play in real time
TEXT_ROW = 22  # [px] height of one line of text
YELLOW = (250, 210, 60)


def compose(overview: np.ndarray, panel: np.ndarray, lines: list[str]) -> np.ndarray:
    """Overview on the left; on the right `panel` (camera + bars) above lines of text.

    Returns an (H, W, 3) uint8 RGB frame with even sides (as H.264 needs).
    """
    text = np.zeros((TEXT_ROW * len(lines) + 6, panel.shape[1], 3), np.uint8)
    for i, line in enumerate(lines):
        colour = YELLOW if "EXPERT" in line or "REC" in line else WHITE
        y = TEXT_ROW * (i + 1) - 4
        cv2.putText(text, line, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    right = np.concatenate([panel, text], axis=0)
    height = max(overview.shape[0], right.shape[0])
    height += height % 2
    frame = np.zeros((height, overview.shape[1] + right.shape[1], 3), np.uint8)
    frame[: overview.shape[0], : overview.shape[1]] = overview
    frame[: right.shape[0], overview.shape[1] :] = right
    frame[:, overview.shape[1] - 2 : overview.shape[1]] = GREY  # separator
    return frame[:, : frame.shape[1] // 2 * 2]


def draw_overview(top: Camera, base) -> np.ndarray:
    """The top-down overview around the ego, captioned with its scale."""
    image = top.render(base.road, base.vehicle)
    caption = f"top view, {OVERVIEW.span_m:.0f} m across"
    cv2.putText(image, caption, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, WHITE, 1, cv2.LINE_AA)
    return image


def frame_size(height: int, width: int) -> tuple[int, int]:
    """(width, height) [px] of the composed frames for camera frames of `height` x `width`."""
    dummy = np.zeros((height, width, 3), np.uint8)
    zero = np.zeros(2, np.float32)
    panel = overlay(dummy, zero, zero, 0.0, 0.0)
    frame = compose(np.zeros((OVERVIEW.height, OVERVIEW.width, 3), np.uint8), panel, ["", ""])
    return frame.shape[1], frame.shape[0]


def saliency_overlay(frame: np.ndarray, saliency_map: np.ndarray) -> np.ndarray:
    """The frame with its saliency drawn on in a heat colour map, opaque where saliency is high.

    Args:
        frame: (H, W, 3) uint8 RGB camera frame.
        saliency_map: (H, W) float in [0, 1], as VisualBackProp gives it.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if saliency_map.shape != frame.shape[:2]:
        raise ValueError(f"saliency map {saliency_map.shape} != frame size {frame.shape[:2]}")
    level = np.clip(saliency_map, 0.0, 1.0)
    heat = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB).astype(np.float32)
    alpha = 0.8 * level[..., None]
    return (frame.astype(np.float32) * (1 - alpha) + heat * alpha).round().astype(np.uint8)


def overlay_grid(
    frames: np.ndarray, maps: np.ndarray, columns: int = 3, scale: int = 2
) -> np.ndarray:
    """Overlays of several frames tiled in a grid, each enlarged `scale` times, 2 px apart."""
    cells = [
        cv2.resize(saliency_overlay(f, m), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for f, m in zip(frames, maps, strict=True)
    ]
    height, width = cells[0].shape[:2]
    rows = -(-len(cells) // columns)
    grid = np.full((rows * (height + 2) - 2, columns * (width + 2) - 2, 3), 255, np.uint8)
    for i, cell in enumerate(cells):
        top, left = (i // columns) * (height + 2), (i % columns) * (width + 2)
        grid[top : top + height, left : left + width] = cell
    return grid
