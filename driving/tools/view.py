"""Look at a dataset: a contact sheet of labelled frames, the label distributions, an episode video.

    drive view data/demo                           # writes data/demo/view/
    drive view data/demo --out /tmp/view --samples 36 --episode 12

Writes into `--out` (default `DIR/view`):
    contact_sheet.png   frames sampled evenly across all episodes, each with its road seed, step
                        and label: a steering arrow (green), a throttle bar (green up: throttle,
                        red down: brake) and the numbers
    distributions.png   histograms of the steering and throttle labels, with the executed actions
                        (label + noise) beside them when they differ
    coverage.png        what the data covers: frames by the bend radius at the car and by speed,
                        and the throttle labels below -0.5 (hard braking)
    episode_<seed>.mp4  one episode with its labels (green) and executed actions (red) drawn on
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import cv2
import h5py
import numpy as np
import tyro
from tqdm import tqdm

from driving.data import DatasetError, Episode, read_episode, scan
from driving.draw.video import GREEN, RED, WHITE, overlay, write_mp4, write_png
from driving.files import replacing

CELL_SCALE = 2  # camera pixels -> contact sheet pixels
CAPTION = 20  # [px] text strip under each contact sheet frame
COLUMNS = 4
FPS = 10.0  # [Hz] the rate episodes are recorded at


@dataclass(frozen=True)
class ViewConfig:
    """Write a contact sheet, label distribution plots and an episode video of a dataset."""

    path: Annotated[Path, tyro.conf.Positional]
    """dataset folder"""
    out: Path | None = None
    """folder for the PNGs and the mp4 (default: DIR/view)"""
    samples: int = 24
    """frames on the contact sheet, sampled evenly across all episodes"""
    episode: int | None = None
    """road seed of the episode to render as mp4 (default: the first episode)"""

    def validate(self) -> None:
        if self.samples < 1:
            raise ValueError(f"--samples must be >= 1, got {self.samples}")


@dataclass
class _Index:
    """The labels of every readable episode (frames are read only where needed)."""

    paths: list[Path]
    seeds: list[int]
    labels: list[np.ndarray]  # per episode, (T, 2) float32
    actions: list[np.ndarray]  # per episode, (T, 2) float32
    curvature: list[np.ndarray]  # per episode, (T,) the lane's curvature at the car [1/m]; NaN
    # where the file does not record it
    speed: list[np.ndarray]  # per episode, (T,) [m/s]


def _index(root: Path) -> _Index:
    """Scan the dataset (which validates every file) and read the per-step labels and actions."""
    paths, warnings = scan(root)
    for warning in warnings:
        print(f"warning: {warning}")
    index = _Index(paths, [], [], [], [], [])
    for path in paths:
        with h5py.File(path, "r") as f:
            index.seeds.append(int(f.attrs["seed"]))
            index.labels.append(np.asarray(f["labels"][...], np.float32))
            index.actions.append(np.asarray(f["actions"][...], np.float32))
            steps = len(index.labels[-1])
            recorded = "curvature_ahead" in f  # not in files written before it was recorded
            curvature = f["curvature_ahead"][:, 0] if recorded else np.full(steps, np.nan)
            index.curvature.append(np.asarray(curvature, np.float32))
            index.speed.append(np.asarray(f["speed"][...], np.float32).reshape(-1))
    return index


def sample_positions(lengths: list[int], count: int) -> list[tuple[int, int]]:
    """`count` (episode, step) pairs spread evenly over all frames of all episodes."""
    total = sum(lengths)
    starts = np.cumsum([0, *lengths[:-1]])
    picks = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))
    episodes = np.searchsorted(starts, picks, side="right") - 1
    return [(int(e), int(p - starts[e])) for e, p in zip(episodes, picks, strict=True)]


def label_cell(frame: np.ndarray, label: np.ndarray, caption: str) -> np.ndarray:
    """One contact sheet frame: enlarged, with a steering arrow, a throttle bar and a caption."""
    big = cv2.resize(frame, None, fx=CELL_SCALE, fy=CELL_SCALE, interpolation=cv2.INTER_NEAREST)
    height, width = big.shape[:2]
    steer, throttle = (float(v) for v in np.clip(label, -1, 1))
    # Steering arrow from the bottom centre: full lock (+-1) drawn as +-90 deg from straight up.
    base = np.array([width / 2, height - 6])
    angle = np.deg2rad(90 * steer)
    tip = base + 0.45 * height * np.array([np.sin(angle), -np.cos(angle)])
    cv2.arrowedLine(big, _pt(base), _pt(tip), GREEN, 3, cv2.LINE_AA, tipLength=0.25)
    # Throttle bar on the right edge, from the middle: up = throttle, down = brake.
    middle, half = height // 2, height // 2 - 6
    end = middle - int(throttle * half)
    cv2.rectangle(big, (width - 14, middle - half), (width - 4, middle + half), WHITE, 1)
    colour = GREEN if throttle >= 0 else RED
    cv2.rectangle(big, (width - 13, min(middle, end)), (width - 5, max(middle, end)), colour, -1)
    strip = np.zeros((CAPTION, width, 3), np.uint8)
    cv2.putText(strip, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, WHITE, 1, cv2.LINE_AA)
    return np.concatenate([big, strip], axis=0)


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return int(round(xy[0])), int(round(xy[1]))


def contact_sheet(cells: list[np.ndarray], columns: int = COLUMNS) -> np.ndarray:
    """Cells (all one size) in a grid, row by row, 2 px apart on black."""
    height, width = cells[0].shape[:2]
    rows = -(-len(cells) // columns)
    columns = min(columns, len(cells))
    sheet = np.zeros((rows * (height + 2) - 2, columns * (width + 2) - 2, 3), np.uint8)
    for i, cell in enumerate(cells):
        y, x = (i // columns) * (height + 2), (i % columns) * (width + 2)
        sheet[y : y + height, x : x + width] = cell
    return sheet


def plot_distributions(labels: np.ndarray, actions: np.ndarray, path: Path, title: str) -> Path:
    """Histograms of steering and throttle: labels filled, executed actions outlined if different.

    Args:
        labels: (N, 2) [steering, throttle] labels of all frames.
        actions: (N, 2) executed actions of the same frames.
        path: the PNG to write (atomically).
        title: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    bins = np.linspace(-1, 1, 41)
    show_actions = not np.array_equal(labels, actions)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for k, (ax, name) in enumerate(zip(axes, ("steering", "throttle"), strict=True)):
        ax.hist(labels[:, k], bins=bins, color="tab:green", alpha=0.7, label="label")
        if show_actions:
            ax.hist(actions[:, k], bins=bins, histtype="step", color="tab:red", label="executed")
        ax.set_yscale("log")
        ax.set_xlabel(f"{name} [-1, 1]")
        ax.set_ylabel("frames")
        ax.set_title(f"{name}: mean {labels[:, k].mean():+.2f}, std {labels[:, k].std():.2f}")
        ax.legend(fontsize=8)
    return _save_figure(fig, title, path)


def _save_figure(fig, title: str, path: Path) -> Path:
    """Title `fig`, write it to `path` atomically and close it; returns `path`."""
    from matplotlib import pyplot as plt

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


RADIUS_BINS = (15.0, 20.0, 40.0, 100.0, 250.0, 1000.0)
"""Edges of the bend-radius bins of the coverage plot [m]; past the last: straight."""


def radius_shares(curvature: np.ndarray) -> dict[str, float]:
    """Share of frames by the bend radius at the car (|1 / curvature|), in `RADIUS_BINS`, among
    the frames that record it (NaN: not recorded); all 0 when none does."""
    curvature = curvature[np.isfinite(curvature)]
    radius = 1.0 / np.maximum(np.abs(curvature), 1e-9)
    edges = (0.0, *RADIUS_BINS, np.inf)
    names = [f"< {RADIUS_BINS[0]:.0f} m"]
    names += [f"{a:.0f}-{b:.0f} m" for a, b in zip(RADIUS_BINS, RADIUS_BINS[1:], strict=False)]
    names += ["straight"]
    counts = np.histogram(radius, bins=edges)[0]
    return {name: float(c) / max(len(radius), 1) for name, c in zip(names, counts, strict=True)}


def plot_coverage(curvature: np.ndarray, speed: np.ndarray, throttle: np.ndarray, path: Path,
                  title: str) -> Path:  # fmt: skip
    """Frames by bend radius at the car and by speed, and the hard-braking labels (throttle
    below -0.5), as one PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shares = radius_shares(curvature)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), dpi=100)
    axes[0].bar(list(shares), [100 * v for v in shares.values()], color="tab:blue")
    axes[0].set_ylabel("frames [%]")
    axes[0].set_title("bend radius at the car")
    axes[0].tick_params(axis="x", labelrotation=30, labelsize=8)
    axes[1].hist(speed, bins=np.arange(0, max(float(speed.max()), 1.0) + 1.0, 1.0))
    axes[1].set_xlabel("speed [m/s]")
    axes[1].set_title(f"speed: {speed.min():.1f} to {speed.max():.1f} m/s")
    hard = float(np.mean(throttle < -0.5))
    axes[2].hist(throttle, bins=np.linspace(-1, 1, 41), color="tab:green")
    axes[2].axvline(-0.5, color="tab:red")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("throttle label")
    axes[2].set_title(f"hard braking (< -0.5): {hard:.2%} of frames")
    return _save_figure(fig, title, path)


def episode_frames(episode: Episode) -> Iterator[np.ndarray]:
    """An episode's frames with its labels (green) and executed actions (red) drawn on."""
    note = f"road {episode.seed}, {episode.meta.get('driver', '?')}"
    for t, frame in enumerate(episode.frames):
        speed = float(episode.speed[t])
        pair = episode.actions[t], episode.labels[t]
        yield overlay(frame, *pair, speed, t / FPS, note, names=("executed", "label"))


def view(cfg: ViewConfig) -> dict:
    """Write the contact sheet, the distributions plot and one episode video; returns the paths."""
    cfg.validate()
    index = _index(cfg.path)
    if cfg.episode is None:
        chosen = 0
    elif cfg.episode in index.seeds:
        chosen = index.seeds.index(cfg.episode)
    else:
        raise DatasetError(
            f"no episode with seed {cfg.episode} in {cfg.path}: it holds seeds "
            f"{min(index.seeds)}..{max(index.seeds)} ({len(index.seeds)} episodes)"
        )
    out = cfg.out if cfg.out is not None else cfg.path / "view"
    out.mkdir(parents=True, exist_ok=True)

    cells, cache = [], {}
    positions = sample_positions([len(x) for x in index.labels], cfg.samples)
    for e, t in tqdm(positions, desc="contact sheet", unit="frame"):
        if e not in cache:
            cache = {e: read_episode(index.paths[e])}  # positions are sorted: one at a time
        label = index.labels[e][t]
        caption = f"road {index.seeds[e]} step {t}  {label[0]:+.2f} {label[1]:+.2f}"
        cells.append(label_cell(cache[e].frames[t], label, caption))
    sheet = write_png(out / "contact_sheet.png", contact_sheet(cells))

    labels, actions = np.concatenate(index.labels), np.concatenate(index.actions)
    title = f"{cfg.path.name}: {len(labels):,} frames, {len(index.paths)} episodes"
    plots = plot_distributions(labels, actions, out / "distributions.png", title)
    curvature, speed = np.concatenate(index.curvature), np.concatenate(index.speed)
    coverage = plot_coverage(curvature, speed, labels[:, 1], out / "coverage.png", title)

    episode = read_episode(index.paths[chosen])
    video = write_mp4(out / f"episode_{episode.seed}.mp4", episode_frames(episode), fps=FPS)
    frames = len(episode.frames)
    return {
        "contact_sheet": sheet,
        "distributions": plots,
        "coverage": coverage,
        "radius_shares": radius_shares(curvature),
        "hard_braking_share": float(np.mean(labels[:, 1] < -0.5)),
        "video": video,
        "frames": frames,
    }
