"""A slow, obviously-correct rendering of the camera's view, to check the fast camera against.

`envs.camera.Camera` is fast because it draws the road once into a cached top-down map and cuts
every frame out of it with one bilinear warp. This module renders the same view the plain way:
for every frame pixel it asks, at `supersample` x `supersample` points spread over the pixel's
footprint on the ground, what is there (the lane equations of highway-env, vectorised, no map, no
warp, no OpenCV drawing) and averages their colours. What is there, in drawing order:

    ground        everywhere
    road          0 <= s <= length and |lateral| <= width / 2 on some lane
    marking       within `MARKING_WIDTH_M` / 2 of a lane side whose LineType paints it
                  (striped: the first `DASH_ON_M` of every `DASH_PERIOD_M` along the lane)
    vehicle, ego  inside the vehicle's LENGTH x WIDTH rectangle

`compare` measures the agreement of two frames: the share of pixels of the same class (ground,
road, marking, vehicle, ego: see `classes`) and the mean absolute difference [grey levels].
About 1 s a frame: for tests and the benchmark, never for collection.

    reference = reference_frame(road, ego, CameraConfig())
    same_class, mean_abs_diff = compare(Camera().render(road, ego), reference)
"""

from __future__ import annotations

import numpy as np
from highway_env.road.lane import AbstractLane, CircularLane, LineType, StraightLane
from highway_env.utils import wrap_to_pi

from envs.camera import (
    EGO_RGB,
    GROUND_RGB,
    MARKING_RGB,
    ROAD_RGB,
    VEHICLE_RGB,
    CameraConfig,
)
from envs.ground import DASH_ON_M, DASH_PERIOD_M, MARKING_WIDTH_M

PALETTE = np.array([GROUND_RGB, ROAD_RGB, MARKING_RGB, VEHICLE_RGB, EGO_RGB], dtype=float)
"""The camera's colours; a pixel's class is the index of its nearest one."""


def ground_points(config: CameraConfig, ego, supersample: int) -> np.ndarray:
    """World points [m] sampled over every pixel's footprint: (H, W, k*k, 2), row 0 = far."""
    k = supersample
    sx = config.width / config.span_m  # [px/m]
    sy = config.height / (config.ahead_m + config.behind_m)
    offsets = (np.arange(k) + 0.5) / k  # inside a pixel, in pixel units
    u = (np.arange(config.width)[:, None] + offsets).reshape(-1)  # (W*k,) from the left edge
    v = (np.arange(config.height)[:, None] + offsets).reshape(-1)  # (H*k,) from the top edge
    right_m = (u - config.width / 2) / sx
    forward_m = config.ahead_m - v / sy
    c, s = np.cos(ego.heading), np.sin(ego.heading)
    forward, right = np.array([c, s]), np.array([-s, c])  # screen y points down (highway-env)
    points = (
        np.asarray(ego.position, float)
        + forward_m[:, None, None] * forward
        + right_m[None, :, None] * right
    )  # (H*k, W*k, 2)
    points = points.reshape(config.height, k, config.width, k, 2).transpose(0, 2, 1, 3, 4)
    return points.reshape(config.height, config.width, k * k, 2)


def lane_coordinates(lane: AbstractLane, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """highway-env's `lane.local_coordinates` for many points (..., 2): (s, lateral) [m]."""
    if type(lane) is StraightLane:
        delta = points - lane.start
        return delta @ lane.direction, delta @ lane.direction_lateral
    if type(lane) is CircularLane:
        delta = points - lane.center
        phi = np.arctan2(delta[..., 1], delta[..., 0])
        phi = lane.start_phase + wrap_to_pi(phi - lane.start_phase)
        radius = np.linalg.norm(delta, axis=-1)
        return lane.direction * (phi - lane.start_phase) * lane.radius, lane.direction * (
            lane.radius - radius
        )
    flat = points.reshape(-1, 2)  # any other lane: highway-env's own code, point by point
    coordinates = np.array([lane.local_coordinates(p) for p in flat], dtype=float)
    return coordinates[:, 0].reshape(points.shape[:-1]), coordinates[:, 1].reshape(
        points.shape[:-1]
    )


def _painted(line_type: int, s: np.ndarray) -> np.ndarray | bool:
    if line_type in (LineType.CONTINUOUS, LineType.CONTINUOUS_LINE):
        return True
    if line_type == LineType.STRIPED:
        return np.mod(s, DASH_PERIOD_M) <= DASH_ON_M
    return False


def _inside_vehicle(vehicle, points: np.ndarray) -> np.ndarray:
    c, s = np.cos(vehicle.heading), np.sin(vehicle.heading)
    delta = points - np.asarray(vehicle.position, float)
    along, across = delta @ np.array([c, s]), delta @ np.array([-s, c])
    return (np.abs(along) <= vehicle.LENGTH / 2) & (np.abs(across) <= vehicle.WIDTH / 2)


def reference_frame(road, ego, config: CameraConfig = CameraConfig(), supersample: int = 4):
    """The camera's view of `road` around `ego`, rendered point by point (see module docstring).

    Returns:
        (height, width, 3) uint8 RGB frame.
    """
    points = ground_points(config, ego, supersample)  # (H, W, k*k, 2)
    label = np.zeros(points.shape[:-1], np.int8)  # class index into PALETTE, ground
    reach = np.hypot(max(config.ahead_m, config.behind_m), config.span_m / 2) + 5.0
    centre = np.asarray(ego.position, float)
    marking = np.zeros(points.shape[:-1], bool)
    for lane in road.network.lanes_list():
        s, lateral = lane_coordinates(lane, points)
        along = (s >= 0) & (s <= lane.length)
        if not along.any():
            continue
        half = lane.width_at(0.0) / 2
        label[along & (np.abs(lateral) <= half)] = 1
        for side, line_type in zip((-1, 1), lane.line_types or (), strict=False):
            near = along & (np.abs(lateral - side * half) <= MARKING_WIDTH_M / 2)
            marking |= near & _painted(line_type, s)
    label[marking] = 2
    for vehicle in road.vehicles:
        if vehicle is not ego and np.linalg.norm(vehicle.position - centre) < reach:
            label[_inside_vehicle(vehicle, points)] = 3
    label[_inside_vehicle(ego, points)] = 4
    return np.round(PALETTE[label].mean(axis=2)).astype(np.uint8)


def classes(frame: np.ndarray) -> np.ndarray:
    """(H, W) index into PALETTE of each pixel's class: its nearest palette colour, except that
    greys (blends of road and marking, which can lie nearer the vehicle blue) are road up to the
    midpoint of the two and marking above it."""
    pixels = frame.astype(float)
    label = np.linalg.norm(pixels[..., None, :] - PALETTE, axis=-1).argmin(axis=-1)
    grey = np.ptp(pixels, axis=-1) < 16
    light = pixels.mean(axis=-1) >= (PALETTE[1].mean() + PALETTE[2].mean()) / 2
    label[grey] = np.where(light[grey], 2, 1)
    return label


def compare(frame: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(share of pixels of the same class, mean absolute difference [grey levels])."""
    same = float((classes(frame) == classes(reference)).mean())
    return same, float(np.abs(frame.astype(float) - reference.astype(float)).mean())
