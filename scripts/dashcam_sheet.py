"""A contact sheet of driver's-eye camera frames, for people: does it look like a road from a car?

    python scripts/dashcam_sheet.py                          # writes docs/dashcam_frames.png
    python scripts/dashcam_sheet.py --out /tmp/sheet.png --scale 3
    python scripts/dashcam_sheet.py --suite --out docs/suite_worlds.png   # the suite's worlds
    python scripts/dashcam_sheet.py --rear-mirror --out docs/dashcam_mirror.png

Nine frames in a 3x3 grid, each enlarged `scale` times and captioned: the plain look, training
looks (`--camera.appearance train`) of several roads, held-out looks (the range no training frame
shows), and a drive among other cars. Each frame is taken after the expert has driven a few
seconds from 60-120 m before the road's sharpest bend, so most show a curve.

With `--suite`, one frame of each world of the generalisation suite (`driving.rollout.suite`)
as a policy trained on the wide ranges (`envs.world.WIDE_WORLD`, training looks) meets them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import tyro

from driving.draw.video import write_png
from driving.rollout.suite import worlds
from envs.camera import CameraConfig
from envs.world import WIDE_WORLD, World, make_world

SHOTS = (  # (caption, scenario, appearance, seed, bonnet)
    ("plain", "winding-road", "plain", 3, False),
    ("train, road 3", "winding-road", "train", 3, False),
    ("train, road 11", "winding-road", "train", 11, True),
    ("train, road 27", "winding-road", "train", 27, False),
    ("train, road 42", "winding-road", "train", 42, False),
    ("held-out, road 3", "winding-road", "held-out", 3, False),
    ("held-out, road 11", "winding-road", "held-out", 11, False),
    ("held-out, road 42", "winding-road", "held-out", 42, True),
    ("train, traffic", "winding-traffic", "train", 4, False),
)


@dataclass(frozen=True)
class SheetConfig:
    """Where the sheet goes and how it is drawn."""

    out: Path = Path("docs/dashcam_frames.png")
    """PNG file to write"""
    scale: int = 2
    """enlargement of every frame [x]"""
    seconds: float = 3.0
    """how long the expert drives before the frame is taken [s]"""
    suite: bool = False
    """draw the generalisation suite's worlds instead (one frame each, 4 per row)"""
    rear_mirror: bool = False
    """draw the nine frames with the dashcam's rear-view mirror (`--camera.rear-mirror`)"""


def shot(
    scenario: str, appearance: str, seed: int, bonnet: bool, seconds: float, mirror: bool = False
) -> np.ndarray:
    """One dashcam frame (66, 200, 3) of road `seed`, after the expert drove `seconds`, with the
    rear-view mirror if `mirror`."""
    camera = CameraConfig(kind="dashcam", appearance=appearance, bonnet=bonnet, rear_mirror=mirror)
    return world_shot(World(scenario=scenario, camera=camera), seed, seconds)


def world_shot(world: World, seed: int, seconds: float) -> np.ndarray:
    """One frame of `world`'s road `seed` after the expert drove `seconds` (on the winding
    roads from 60-120 m before the sharpest bend)."""
    if world.scenario == "winding-road":
        world = replace(world, start="bend")
    env, expert = make_world(world)
    obs, _ = env.reset(seed=seed)
    for _ in range(round(seconds * env.unwrapped.config["policy_frequency"])):
        obs, _, terminated, truncated, _ = env.step(expert.act())
        if terminated or truncated:
            break
    env.close()
    return obs["image"]


def caption(tile: np.ndarray, text: str) -> np.ndarray:
    """`tile` with `text` in white on a dark box in its top-left corner."""
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    (width, height), _ = cv2.getTextSize(text, font, size, 1)
    tile[: height + 8, : width + 8] //= 3
    cv2.putText(tile, text, (4, height + 4), font, size, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def tile(frame: np.ndarray, label: str, scale: int) -> np.ndarray:
    """`frame` enlarged `scale` times, captioned, with a white border."""
    big = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return np.pad(caption(big, label), ((2, 2), (2, 2), (0, 0)), constant_values=255)


def main(cfg: SheetConfig) -> Path:
    if cfg.suite:
        trained = replace(WIDE_WORLD, camera=CameraConfig(kind="dashcam", appearance="train"))
        made = worlds("generalisation", trained)  # on the winding roads, 6 s: into the bend
        shots = [(name, world_shot(w, 1_000_000 + i, 6.0)) for i, (name, w) in enumerate(made)]
        per_row = 4
    else:
        shots = [
            (
                f"{text}{', bonnet' if bonnet else ''}",
                shot(scenario, look, seed, bonnet, cfg.seconds, cfg.rear_mirror),
            )
            for text, scenario, look, seed, bonnet in SHOTS
        ]
        per_row = 3
    tiles = [tile(frame, label, cfg.scale) for label, frame in shots]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % per_row)
    rows = [np.concatenate(tiles[i : i + per_row], axis=1) for i in range(0, len(tiles), per_row)]
    return write_png(cfg.out, np.concatenate(rows, axis=0))


if __name__ == "__main__":
    print(main(tyro.cli(SheetConfig)))
