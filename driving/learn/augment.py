"""Augmentation of training batches: looks the camera never rendered, roads mirrored, speeds
the expert never drove at.

The dashcam draws every road in a look from a training range (`envs.appearance`); a net trained on
those looks alone learns their colours (grey road, green verge) rather than the road's shape, and
fails on looks outside the range. Jittering the colours of every training frame is the standard
remedy. `colour_jitter` follows SimCLR's colour distortion (Chen et al. 2020), whose ranges were
set for natural images, not tuned here: with strength s, brightness, contrast and saturation are
each scaled by a factor drawn from [1 - 0.8 s, 1 + 0.8 s], the hue is rotated by up to 0.2 s of a
turn, and one frame in five becomes grey. One draw per sample, the same for all of a sample's
stacked frames (they are one moment's light), and the labels are untouched: a frame's colours do
not change where the road goes.

    generator = torch.Generator().manual_seed(seed)
    image = colour_jitter(image, strength=0.5, generator=generator)  # (B, H, W, 3K) uint8

`mirror` flips half of a batch left to right, the classic remedy for a small dataset's lopsided
coverage (used by donkeycar and many PilotNet notebooks): a road bending left becomes one bending
right, the right lane of three the left one, a car left of its lane one right of it. The labels
that change sign under a mirror (steering; lateral offset, heading error, curvature) are negated,
the others (throttle, the car ahead's gap and closing speed) kept.

`speed_shift` is the speedometer's version of the shifted views: each sample's speed is moved by
up to +-`spread` m/s and its throttle label moved as the expert's law moves it. The lane-keeping
expert's throttle is (target - speed) x `speed_gain` / `ACCELERATION_RANGE` = (target - speed) / 5,
with a target (the limit, lowered for the bends ahead) that depends on what lies ahead, not on the
speed, so an unclipped label holds the target and gives the exact label at any other speed. An
expert that drives at its target leaves few frames above it, and a net trained on them barely
brakes there (measured: 0.01-0.07 where the law says 0.4 at 2 m/s over the limit); this fills them
in. Labels at +-1 only bound the target and are left as they are; the steering is kept (its
feed-back terms change a little with the speed: at 0.3 m off centre, 10 -> 13 m/s moves it by
about 0.02 of its range).

In traffic the throttle is the traffic expert's: the same speed law, capped at IDM's comfortable
acceleration (2 m/s^2), plus IDM's braking behind the car ahead, which reads the speed and the
closing speed (`envs.traffic_expert`). Each recorded step holds that car's gap and closing speed
(`leader`), so `traffic_throttle_table` works the law backwards at load time: the braking at the
recorded speed off the label leaves the free-road term, which gives the target speed (unless it
was capped: then only slower speeds are known), and the label at each shifted speed on a grid of
`SHIFT_STEP` is that term plus the braking at that speed, computed with the expert's own
`idm_braking`. The car ahead is shifted with the ego (its closing speed kept): the frames show
it closing in as fast as it did, and the label stays true to them. Only steps near a lane
centre count (within `LANE_CENTRE_M`: in a lane change the expert also brakes for the target
lane's car, which is not recorded), only steps whose label is not clipped, and only shifts
whose mirror image (the same shift the other way) is known too: following a slower car the
free-road term is mostly capped, so only slower speeds are known there, and shifting those steps
one way only leans the shifted samples to "slower than it is" (that version crashed more:
docs/traffic.md). Elsewhere the table holds NaN and `table_shift` leaves the sample as it is. A
frame stack shows the true speed in the motion between its frames; shifting only the
speedometer asks the net to take the speed from the speedometer.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from driving.data import Frames, scan
from driving.data.read import read_steps
from envs.expert import ExpertConfig
from envs.traffic_expert import TrafficExpertConfig, idm_braking
from envs.winding import ACCELERATION_RANGE

THROTTLE_PER_MPS = ExpertConfig().speed_gain / ACCELERATION_RANGE
"""The lane-keeping expert's throttle per m/s of speed below its target (`envs.expert.controls`)."""
MAX_SPEED_SHIFT = 10.0
"""The largest `speed_shift` spread accepted [m/s]."""


def speed_shift_problem(
    shift: float, speed_input: bool = True, target: str = "controls"
) -> str | None:
    """Why `--speed-shift shift` cannot train with these settings (one line), or None."""
    if not 0.0 <= shift <= MAX_SPEED_SHIFT:
        return f"--speed-shift must be in [0, {MAX_SPEED_SHIFT:g}] m/s, got {shift}"
    if shift and (not speed_input or target == "perception"):
        return (
            "--speed-shift moves the speedometer and the throttle label: it needs the speed "
            "input and --target controls or plan"
        )
    return None


GREY_SHARE = 0.2
"""Share of frames turned grey (SimCLR's)."""
_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601 grey


def _uniform(count: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def colour_matrices(count: int, strength: float, generator: torch.Generator) -> torch.Tensor:
    """(count, 3, 3) per-sample RGB maps: a hue rotation about the grey axis, then saturation."""
    angle = _uniform(count, -0.2 * strength, 0.2 * strength, generator) * 2 * math.pi
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    ones = torch.full((3, 3), 1.0 / 3.0)
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) / math.sqrt(3.0)
    rotation = cos * torch.eye(3) + (1 - cos) * ones + sin * cross  # Rodrigues, axis (1,1,1)/√3
    saturation = _uniform(count, 1 - 0.8 * strength, 1 + 0.8 * strength, generator)
    grey = torch.rand(count, generator=generator) < GREY_SHARE
    saturation = torch.where(grey, torch.zeros_like(saturation), saturation)[:, None, None]
    to_grey = _LUMA.expand(3, 3)  # every output channel = the luma of the input
    return (saturation * torch.eye(3) + (1 - saturation) * to_grey) @ rotation


def colour_jitter(image: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """`image` (B, H, W, 3K) uint8 with each sample's colours jittered; strength 0: unchanged.

    Brightness scales every channel, contrast scales the distance from the sample's mean grey,
    and `colour_matrices` turns the hue and scales the saturation. The result is rounded back
    to uint8, so the network's own input normalisation is unchanged.
    """
    if strength <= 0:
        return image
    batch, height, width, channels = image.shape
    matrices = colour_matrices(batch, strength, generator).to(image.device)
    brightness = _uniform(batch, 1 - 0.8 * strength, 1 + 0.8 * strength, generator)
    contrast = _uniform(batch, 1 - 0.8 * strength, 1 + 0.8 * strength, generator)
    x = image.reshape(batch, -1, 3).float()  # stacked frames: more pixels of the same sample
    x = torch.bmm(x, matrices.transpose(1, 2))
    mean = (x @ _LUMA.to(x.device)).mean(dim=1)[:, None, None]  # (B, 1, 1) mean grey
    contrast, brightness = contrast.to(x.device), brightness.to(x.device)
    x = (mean + contrast[:, None, None] * (x - mean)) * brightness[:, None, None]
    return x.clamp_(0, 255).round_().to(torch.uint8).reshape(batch, height, width, channels)


MIRRORED = ("steering", "lateral_offset", "heading_error", "curvature_", "lane_change")
"""Outputs (or prefixes of outputs) that change sign when the world is mirrored left to right."""


def with_throttle(labels: torch.Tensor, throttle: torch.Tensor) -> torch.Tensor:
    """`labels` (B, 2 or more) with `throttle` (B,) as column 1; a new tensor."""
    return torch.cat([labels[:, :1], throttle[:, None].to(labels.dtype), labels[:, 2:]], dim=1)


def mirror_signs(outputs: tuple[str, ...]) -> torch.Tensor:
    """(O,) bool: which of `outputs` change sign in a mirrored world (`MIRRORED`)."""
    return torch.tensor([name.startswith(MIRRORED) for name in outputs])


def mirror(
    image: torch.Tensor,
    labels: torch.Tensor,
    odd: torch.Tensor,
    shift: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Half the samples of a batch, drawn by `generator`, mirrored left to right.

    Args:
        image: (B, H, W, 3K) frames (all of a sample's stacked frames flip together).
        labels: (B, O) labels, raw or normalised as (raw - mean) / std.
        odd: (O,) bool, the outputs that change sign (`mirror_signs`).
        shift: (O,) 2 mean / std of normalised labels (zeros for raw ones): a mirrored raw value
            -raw is -label - shift once normalised.

    Returns:
        (image, labels) with the drawn samples mirrored.
    """
    pick = (torch.rand(len(image), generator=generator) < 0.5).to(image.device)
    image = torch.where(pick[:, None, None, None], image.flip(2), image)
    flips = pick[:, None] & odd.to(labels.device)
    return image, torch.where(flips, -labels - shift.to(labels.device), labels)


def speed_shift(
    speed: torch.Tensor, labels: torch.Tensor, spread: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's speed moved by a draw from [-`spread`, `spread`] m/s (not below 0) and its
    throttle label by -`THROTTLE_PER_MPS` per m/s, unless the label is at +-1 (module docstring).

    Args:
        speed: (B,) speeds [m/s].
        labels: (B, 2) [steering, throttle] labels of the lane-keeping expert.
        spread: the largest shift [m/s], > 0.
        generator: draws the shifts.

    Returns:
        (speed, labels), new tensors.
    """
    delta = _uniform(len(speed), -spread, spread, generator).to(speed.device, speed.dtype)
    throttle = labels[:, 1]
    free = throttle.abs() < 1.0 - 1e-6  # a clipped label only bounds the expert's target
    moved = torch.where(free, (speed + delta).clamp(min=0.0), speed)
    throttle = (throttle - (moved - speed) * THROTTLE_PER_MPS).clamp(-1.0, 1.0)
    return moved, with_throttle(labels, throttle)


SHIFT_STEP = 0.25
"""[m/s] between the shifted speeds of `traffic_throttle_table`."""
TRAFFIC_EXPERT = TrafficExpertConfig()
"""The traffic expert `drive collect` labels with."""
LANE_CENTRE_M = 0.5
"""[m] a traffic step this close to its lane's centre is not in a lane change (module docstring)."""


def shift_grid(spread: float) -> np.ndarray:
    """The speed shifts [m/s] of a traffic table: -`spread` to `spread` every `SHIFT_STEP`."""
    half = max(1, round(spread / SHIFT_STEP))
    return np.arange(-half, half + 1) * SHIFT_STEP


def traffic_throttle_table(
    steps: dict[str, np.ndarray],
    leader_range: float,
    spread: float,
    cfg: TrafficExpertConfig = TRAFFIC_EXPERT,
) -> np.ndarray:
    """(T, G) the traffic expert's throttle label of each recorded step with its speed, and the
    car ahead's, moved by each shift of `shift_grid(spread)`; NaN where it is not known (module
    docstring).

    Args:
        steps: an episode's step arrays (`read_steps`): labels, speed, leader (gap [m] capped at
            `leader_range`, closing speed [m/s]), lateral_offset [m].
        leader_range: the gap [m] the recorder writes when no car is within the expert's range.
        spread: the largest shift [m/s].
        cfg: the expert that labelled the steps.
    """
    grid = shift_grid(spread)
    speed = steps["speed"].astype(np.float64)
    labels = steps["labels"][:, 1].astype(np.float64)
    leader = steps["leader"].astype(np.float64)
    gap = np.where(leader[:, 0] >= leader_range - 1e-3, np.inf, leader[:, 0])
    braking = np.vectorize(lambda v, g, c: idm_braking(v, g, c, cfg), otypes=[float])
    free = labels * ACCELERATION_RANGE - braking(speed, gap, leader[:, 1])
    capped = free >= cfg.max_accel - 1e-4  # only bounds the target: shift down only
    gain = cfg.lane_keeping.speed_gain
    target = speed + free / gain
    moved = speed[:, None] + grid
    own = np.minimum(cfg.max_accel, gain * (target[:, None] - moved))
    free_there = np.where(capped[:, None], cfg.max_accel, own)
    there = free_there + braking(np.maximum(moved, 0.0), gap[:, None], leader[:, 1:])
    known = (np.abs(steps["lateral_offset"]) < LANE_CENTRE_M) & (np.abs(labels) < 1 - 1e-6)
    valid = known[:, None] & (~capped[:, None] | (grid <= 0)) & (moved >= 0)
    valid &= valid[:, ::-1]  # a shift only where its mirror image is known: no lean either way
    return np.where(valid, np.clip(there / ACCELERATION_RANGE, -1, 1), np.nan).astype(np.float32)


def traffic_throttle_tables(data: Path, frames: Frames, spread: float) -> torch.Tensor:
    """(N, G) `traffic_throttle_table` for the rows of `frames` (loaded from `data` by
    `load_split`), episode by episode; NaN rows for episodes without the car ahead recorded
    (DAgger's, the keyboard's)."""
    paths = scan(data)[0]  # Frames.episode indexes this list
    width = len(shift_grid(spread))
    parts = []
    starts = np.flatnonzero(np.r_[True, frames.episode[1:] != frames.episode[:-1]])
    for start, end in zip(starts, [*starts[1:], len(frames)], strict=True):
        steps, meta = read_steps(paths[int(frames.episode[start])])
        leader_range = meta.get("leader_range_m")
        if "leader" in steps and "lateral_offset" in steps and leader_range is not None:
            parts.append(traffic_throttle_table(steps, float(leader_range), spread))
        else:
            parts.append(np.full((end - start, width), np.nan, np.float32))
    return torch.from_numpy(np.concatenate(parts) if parts else np.zeros((0, width), np.float32))


def table_shift(
    speed: torch.Tensor,
    labels: torch.Tensor,
    table: torch.Tensor,
    spread: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`speed_shift` for traffic: each sample's speed moved by a shift drawn from
    `shift_grid(spread)` and its throttle label read from its row of `table`
    (`traffic_throttle_tables`); a sample whose entry is NaN is left as it is.

    Args:
        speed: (B,) speeds [m/s].
        labels: (B, 2) [steering, throttle] labels.
        table: (B, G) the batch's rows of the table.
        spread: the largest shift [m/s], as the table was made with.
        generator: draws the shifts.
    """
    grid = torch.from_numpy(shift_grid(spread)).to(speed.device, speed.dtype)
    column = torch.randint(len(grid), (len(speed),), generator=generator).to(speed.device)
    there = table.to(speed.device)[torch.arange(len(speed), device=speed.device), column]
    known = ~torch.isnan(there)
    moved = torch.where(known, speed + grid[column], speed)
    throttle = torch.where(known, there.to(labels.dtype), labels[:, 1])
    return moved, with_throttle(labels, throttle)
