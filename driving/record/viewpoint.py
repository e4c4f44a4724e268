"""Viewpoint-shift augmentation (PilotNet): views from a camera moved sideways and turned, with the
steering label that brings the car back.

PilotNet synthesised such views by warping real images (flat ground assumed) and corrected the
label so that the car would regain the lane centre and heading in about 2 s. Here the simulator
renders the view from the shifted pose for real, and the label is the expert's action at that
pose: its lateral controller settles on the lane centre and heading in about 2 s without
overshoot (`envs/expert.py`), which is PilotNet's correction rule. Nothing is executed from a
shifted pose; the car drives on from its real one.

PilotNet's car also carried fixed left and right cameras beside the centre one; `rig_m` adds
their views to every frame (the side cameras `rig_m` to each side, looking ahead), labelled the
same way, so that the two recipes can be compared.

Shifted views are stored as an episode of their own, `driver = "viewpoint"`, beside the real one
(same road seed, same format; `actions` holds the label, as nothing was executed). Its rows are
not a trajectory: each is one real step seen from a shifted pose.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from envs.expert import Expert
from envs.wrapper import ground_truth


@dataclass(frozen=True)
class ViewpointConfig:
    """Extra training views rendered from a camera shifted sideways and rotated."""

    views: float = 0.0
    """shifted views per real frame (0 = off, 0.5 = one for every other frame, 1 = one each)"""
    lateral_m: float = 0.6
    """standard deviation of the sideways shift [m]"""
    yaw_deg: float = 3.0
    """standard deviation of the rotation [deg]"""
    max_lateral_m: float = 1.2
    """largest sideways shift [m] (stays inside a 3.2 m lane's neighbourhood)"""
    rig_m: float = 0.0
    """PilotNet's fixed camera rig: every frame also gets the views of a left and a right camera
    mounted this far to each side [m] (0 = no rig)"""

    @property
    def enabled(self) -> bool:
        """Whether any extra view is rendered."""
        return self.views > 0 or self.rig_m > 0

    def validate(self) -> None:
        if not 0 <= self.views <= 10:
            raise ValueError(f"--viewpoint.views must be in [0, 10], got {self.views}")
        if not 0 <= self.rig_m <= 2:
            raise ValueError(f"--viewpoint.rig-m must be in [0, 2] m, got {self.rig_m}")
        if self.lateral_m < 0 or self.yaw_deg < 0 or self.max_lateral_m < 0:
            raise ValueError(
                "--viewpoint.lateral-m, --viewpoint.yaw-deg and --viewpoint.max-lateral-m "
                "must be >= 0"
            )


@contextmanager
def shifted_pose(vehicle, lateral_m: float, yaw_rad: float) -> Iterator[None]:
    """Move `vehicle` `lateral_m` across its lane (positive: towards the lane's right on screen)
    and turn it by `yaw_rad`, for the duration of the block; its true pose is restored after."""
    lane = vehicle.lane
    longitudinal, lateral = lane.local_coordinates(vehicle.position)
    position, heading = vehicle.position.copy(), vehicle.heading
    vehicle.position = np.asarray(lane.position(longitudinal, lateral + lateral_m), dtype=float)
    vehicle.heading = heading + yaw_rad
    try:
        yield
    finally:
        vehicle.position, vehicle.heading = position, heading


def render_shifted(env, expert: Expert, lateral_m: float, yaw_rad: float) -> dict:
    """The camera frame, the expert's label and the ground truth from a shifted pose of the ego.

    Returns:
        {"frame": (H, W, 3) uint8, "label": (2,) float32, "lateral_offset": m,
        "heading_error": rad, "curvature_ahead": (K,) [1/m], "leader": (2,) [m, m/s] or None,
        "lane_change": -1, 0, +1 or None, "speed_limit": m/s} at the shifted pose.
    """
    base = env.unwrapped
    with shifted_pose(base.vehicle, lateral_m, yaw_rad):
        frame = env.camera.render(base.road, base.vehicle)
        label = expert.act()
        truth = ground_truth(base)
        curvature, leader, lane_change = expert.truth()
    return {
        "frame": frame,
        "label": label,
        "lateral_offset": truth["lateral_offset"],
        "heading_error": truth["heading_error"],
        "curvature_ahead": curvature,
        "leader": leader,
        "lane_change": lane_change,
        "speed_limit": truth["speed_limit"],
    }


class ViewSampler:
    """Draws how many shifted views each real step gets, and their shifts, reproducibly per road."""

    def __init__(self, cfg: ViewpointConfig, seed: int) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng([seed, 0x5EE])  # a stream apart from the DART noise

    def shifts(self) -> list[tuple[float, float]]:
        """(lateral [m], yaw [rad]) of the views to render at this step (possibly none): the
        rig's left and right cameras, then the randomly shifted ones."""
        rig = [(-self.cfg.rig_m, 0.0), (self.cfg.rig_m, 0.0)] if self.cfg.rig_m > 0 else []
        if self.cfg.views == 0:
            return rig  # no draw: the random stream stays as it was without views
        whole, part = divmod(self.cfg.views, 1.0)
        count = int(whole) + int(self.rng.random() < part)
        limit = self.cfg.max_lateral_m
        return rig + [
            (
                float(np.clip(self.rng.normal(0, self.cfg.lateral_m), -limit, limit)),
                float(self.rng.normal(0, math.radians(self.cfg.yaw_deg))),
            )
            for _ in range(count)
        ]
