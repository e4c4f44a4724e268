"""The car ahead, hand-built: the modular driver's estimate of the gap and closing speed to the
car ahead in its lane, from the frame alone (traffic only; nothing learned, no ground truth).

Per frame:
1. `car_pixels`: the other cars' colour. Cars are painted blue (`envs.camera.VEHICLE_RGB`, faces
   shaded, under the road's light): a pixel is a car's where its hue is blue and its colour
   saturated; asphalt, markings and windows are grey, verges green or brown, and the sky (blue
   too) lies above the horizon, where no pixel touches the ground.
2. Ground contact: each frame pixel (at `CONTACT_ROW`), seen through the camera's ground homography
   (`driving.modular.birdseye.car_to_frame`, flat ground), is a point ahead of the car. The
   lowest car pixels of a car are where it stands on the road (its rear bumper, seen from
   behind); the pixels above it map farther away. So the nearest such point within the ego
   lane's corridor (the lane model's centre line +- half the lane width) is the rear of the car
   ahead; the gap is its distance less the car's own half length (bumper to bumper).
3. Closing speed: a straight line fitted to the gaps of the last `TRACK_S` seconds (the frames
   give the distance only to a row, metres far ahead: the fit averages it out). A gap that
   jumps from the track by more than `NEW_CAR_SHARE` of itself (plus `NEW_CAR_M`) is another
   car: its track starts afresh.

No car in the corridor, or none nearer than `LEADER_RANGE`: the gap is `LEADER_RANGE`, closing 0
(what the traffic expert reads without a car within its sensing range).

    cars = CarPerception(CameraConfig(kind="dashcam"), frequency=10)
    estimate = cars.estimate(frame, lane)     # lane: the LaneEstimate of the same frame
    estimate.gap, estimate.closing_speed
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from highway_env.vehicle.kinematics import Vehicle

from driving.modular.birdseye import car_to_frame
from envs.camera import CameraConfig
from envs.traffic_expert import TrafficExpertConfig

LEADER_RANGE = TrafficExpertConfig().sensing_range
"""The farthest car ahead estimated [m]: what the traffic expert's IDM reads."""
CAR_HUE_DEG = (195.0, 250.0)
"""Hue of a car's pixel [deg] (blue: 218 deg painted; green verges < 140, sky above horizon)."""
CAR_SATURATION = 0.3
"""... and its least saturation ((max - min) / max: car faces ~0.5-0.75, asphalt < 0.1)."""
CONTACT_ROW = -0.5
"""Where in its lowest car pixel a car stands [px from the pixel's centre, down]: its upper
edge. Measured on training roads (seeds 500-502, cars 8-25 m ahead): that pixel's centre lies
0.49 px (std 0.23) below the true ground contact; the renderer's smoothed edges bleed."""
TRACK_S = 1.0
"""The closing speed is the slope of the gaps over this long [s]."""
NEW_CAR_SHARE, NEW_CAR_M = 0.35, 3.0
"""A gap this far from the track's (share of the gap + metres) is another car."""


@dataclass(frozen=True)
class CarEstimate:
    """The car ahead, as perceived in one frame."""

    gap: float
    """bumper to bumper [m]; `LEADER_RANGE` when no car is seen nearer"""
    closing_speed: float
    """own speed minus the car's [m/s] (positive: closing in); 0 when none is seen"""


def car_pixels(frame: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of `frame` (RGB uint8) in the other cars' colour."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)  # H in [0, 180), S and V in [0, 255]
    hue, saturation = hsv[..., 0], hsv[..., 1]
    low, high = (round(h / 2) for h in CAR_HUE_DEG)
    return (hue >= low) & (hue <= high) & (saturation >= CAR_SATURATION * 255)


class CarPerception:
    """Estimates the car ahead from frames of one camera (see the module docstring)."""

    def __init__(self, camera: CameraConfig, frequency: float) -> None:
        """Args: camera: the settings of the camera whose frames it gets; frequency: frames
        per second [Hz] (the closing speed's time base)."""
        self.dt = 1.0 / frequency
        rows, cols = np.mgrid[0 : camera.height, 0 : camera.width].astype(float)
        pixels = np.stack([cols, rows + CONTACT_ROW, np.ones_like(rows)])
        ground = np.tensordot(np.linalg.inv(car_to_frame(camera)), pixels, axes=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.x, self.y = ground[0] / ground[2], ground[1] / ground[2]
        front = Vehicle.LENGTH / 2
        self.x[~(ground[2] > 0) | ~(self.x > front)] = np.inf  # above the horizon, or not ahead
        """Per frame pixel: where it meets the ground (`CONTACT_ROW`), [m] ahead of the car's
        centre (inf: not on the ground ahead) and [m] right of it."""
        self.front = front
        self.reset()

    def reset(self) -> None:
        """A new road: no car tracked."""
        self.track: list[tuple[float, float]] = []  # (time [s], gap [m]) of the car tracked
        self.time = 0.0
        self.last = CarEstimate(LEADER_RANGE, 0.0)

    def gap(self, cars: np.ndarray, lane) -> float:
        """Bumper-to-bumper distance [m] to the nearest of the car pixels `cars` ((H, W) bool,
        `car_pixels`) on the ground in the lane corridor of `lane` (a
        `driving.modular.lanes.LaneEstimate`), or `LEADER_RANGE`."""
        x, y = self.x[cars], self.y[cars]
        near = x - self.front < LEADER_RANGE
        x, y = x[near], y[near]
        inside = np.abs(y - lane.centre_y(x)) < lane.lane_width / 2
        if not inside.any():
            return LEADER_RANGE
        return float(x[inside].min() - self.front)

    def estimate(self, frame: np.ndarray, lane, cars: np.ndarray | None = None) -> CarEstimate:
        """The car ahead in `frame` ((H, W, 3) uint8 RGB), in the lane `lane` perceived in it;
        `cars`: its `car_pixels` where already found (the lane finder finds them too)."""
        self.time += self.dt
        gap = self.gap(car_pixels(frame) if cars is None else cars, lane)
        if gap >= LEADER_RANGE:
            self.track = []
            self.last = CarEstimate(LEADER_RANGE, 0.0)
            return self.last
        if self.track and abs(gap - self._predicted()) > NEW_CAR_SHARE * gap + NEW_CAR_M:
            self.track = []  # another car
        self.track = [(t, g) for t, g in self.track if self.time - t < TRACK_S] + [(self.time, gap)]
        times, gaps = np.array(self.track).T
        closing = -float(np.polyfit(times, gaps, 1)[0]) if len(self.track) >= 3 else 0.0
        self.last = CarEstimate(gap, closing)
        return self.last

    def _predicted(self) -> float:
        """The tracked car's gap now, from its last gap and the last closing speed [m]."""
        t, gap = self.track[-1]
        return gap - self.last.closing_speed * (self.time - t)
