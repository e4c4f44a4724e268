"""One drive, step by step, into an Episode: shared by expert collection, keyboard driving, DAgger.

rows = StepRows()
rows.add(obs["image"], label, action, info["speed"], info["lateral_offset"], info["heading_error"],
         *expert.truth(),   # optional: the lane's curvature ahead, the car ahead, the lane plan
         speed_limit=info["speed_limit"])  # optional: the ego lane's limit [m/s]
episode = rows.episode(seed, drive_meta(env, "expert", info), last=obs)  # obs after the last step
"""

from __future__ import annotations

import os
import socket

import numpy as np

from driving.data import Episode
from envs.expert import CURVATURE_AHEAD_M, Expert

COLUMNS = ("frames", "labels", "actions", "speed", "lateral_offset", "heading_error")
"""The Episode arrays a drive fills, one row per step."""
OPTIONAL = ("curvature_ahead", "leader", "lane_change", "speed_limit")
"""The optional Episode arrays a drive may fill (`driving.data.format.OPTIONAL_STEP_ARRAYS`)."""


class StepRows:
    """Per-step values of one drive, turned into an `Episode` at its end."""

    def __init__(self) -> None:
        self.rows: dict[str, list] = {k: [] for k in COLUMNS}
        self.optional: dict[str, list[np.ndarray | None]] = {k: [] for k in OPTIONAL}

    def __len__(self) -> int:
        return len(self.rows["frames"])

    def add(
        self,
        frame: np.ndarray,
        label: np.ndarray,
        action: np.ndarray,
        speed: float,
        lateral_offset: float,
        heading_error: float,
        curvature_ahead: np.ndarray | None = None,
        leader: np.ndarray | None = None,
        lane_change: float | None = None,
        speed_limit: float | None = None,
    ) -> None:
        """One step: the frame seen, the expert's label, the executed action, the ground truth
        ([m/s], [m], [rad]) when the frame was seen, and optionally the lane's curvature ahead
        ((K,) [1/m]), the car ahead ((2,) gap [m], closing speed [m/s]), the traffic expert's
        lane plan (-1 left, 0, +1 right) and the lane's speed limit [m/s]: the episode keeps an
        optional array if every step has it."""
        for name, value in zip(
            COLUMNS, (frame, label, action, speed, lateral_offset, heading_error), strict=True
        ):
            self.rows[name].append(value)
        optional = (curvature_ahead, leader, lane_change, speed_limit)
        for name, value in zip(OPTIONAL, optional, strict=True):
            self.optional[name].append(value)

    def episode(self, seed: int, meta: dict, last: dict | None = None) -> Episode:
        """The rows as an Episode of road `seed`; `last`, the observation after the last step,
        becomes its `last_frame` and meta["last_speed"] [m/s]."""
        arrays = {
            k: np.asarray(v, dtype=np.uint8 if k == "frames" else np.float32)
            for k, v in self.rows.items()
        }
        for name, values in self.optional.items():
            if values and all(v is not None for v in values):
                arrays[name] = np.asarray(values, dtype=np.float32)
        if last is None:
            return Episode(seed=seed, meta=meta, **arrays)
        meta = {**meta, "last_speed": float(np.asarray(last["speed"]).reshape(-1)[0])}
        frame = np.asarray(last["image"], np.uint8)
        return Episode(seed=seed, meta=meta, last_frame=frame, **arrays)


def truth_ranges(expert: Expert) -> dict:
    """What the optional arrays of `expert.truth()` mean, for an episode's meta: the distances
    of the curvature ahead [m], and in traffic the range its gap ahead is capped at [m]."""
    ranges = {"curvature_ahead_m": list(CURVATURE_AHEAD_M)}
    traffic = getattr(expert, "traffic", None)  # the traffic expert's settings
    if traffic is not None:
        ranges["leader_range_m"] = traffic.sensing_range
    return ranges


def drive_meta(env, driver: str, info: dict, **extra) -> dict:
    """Episode metadata of a drive in `env` that ended with `info`: who drove, the world
    (`env.world`, the record every later stage reads), the host and process, the outcome."""
    meta = {
        "driver": driver,
        "fps": env.unwrapped.config["policy_frequency"],  # [Hz] steps per second
        "world": env.world.to_dict(),
        "scenario": env.unwrapped.__class__.__name__,
        "collector": {"host": socket.gethostname(), "pid": os.getpid()},
        **({"density": info["density"]} if "density" in info else {}),  # the drawn vehicles/km
        "outcome": {
            "on_road": info["on_road"],
            "crashed": info["crashed"],
            "reached_end": bool(info.get("reached_end", False)),
        },
    }
    return meta | extra
