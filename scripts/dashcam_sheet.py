"""A contact sheet of driver's-eye camera frames, for people: does it look like a road from a car?

    python scripts/dashcam_sheet.py                          # writes docs/dashcam_frames.png
    python scripts/dashcam_sheet.py --out /tmp/sheet.png --scale 3

Nine frames in a 3x3 grid, each enlarged `scale` times and captioned: the plain look, training
looks (`--camera.appearance train`) of several roads, held-out looks (the range no training frame
shows), and a drive among other cars. Each frame is taken after the expert has driven a few
seconds from 60-120 m before the road's sharpest bend, so most show a curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tyro

from driving.draw.video import write_png
from envs.camera import CameraConfig
from envs.world import World, make_world

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


def shot(scenario: str, appearance: str, seed: int, bonnet: bool, seconds: float) -> np.ndarray:
    """One dashcam frame (66, 200, 3) of road `seed`, after the expert drove `seconds`."""
    camera = CameraConfig(kind="dashcam", appearance=appearance, bonnet=bonnet)
    start = "bend" if scenario == "winding-road" else "beginning"
    env, expert = make_world(World(scenario=scenario, start=start, camera=camera))
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


def main(cfg: SheetConfig) -> Path:
    tiles = []
    for text, scenario, appearance, seed, bonnet in SHOTS:
        frame = shot(scenario, appearance, seed, bonnet, cfg.seconds)
        big = cv2.resize(frame, None, fx=cfg.scale, fy=cfg.scale, interpolation=cv2.INTER_NEAREST)
        label = f"{text}{', bonnet' if bonnet else ''}"
        tiles.append(np.pad(caption(big, label), ((2, 2), (2, 2), (0, 0)), constant_values=255))
    rows = [np.concatenate(tiles[i : i + 3], axis=1) for i in range(0, len(tiles), 3)]
    return write_png(cfg.out, np.concatenate(rows, axis=0))


if __name__ == "__main__":
    print(main(tyro.cli(SheetConfig)))
