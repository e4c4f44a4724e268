"""Collect expert demonstrations: camera frames labelled with the expert's [steering, throttle].

    drive collect --out data/demo --roads 60 --workers 2

Noise injection (DART, Laskey et al. 2017): the executed action is the expert's plus temporally
correlated noise, so the car really drifts off the lane centre; the stored label is always the
expert's clean action for the state the car is in, so the data teaches recoveries.

The command is idempotent: `--roads N` asks for the seeds `first_seed .. first_seed + N - 1`,
and seeds already in the dataset are skipped. Re-running after a kill completes the set; asking
for more episodes extends it; nothing is overwritten.

Scale: `--workers N` collects N roads at a time in N processes; `--shard i/N` takes only the
seeds of the range whose position in it is i modulo N, so N machines given the same command with
shards 0/N .. N-1/N collect disjoint roads that together cover the range, into one shared folder
or into folders merged afterwards (each episode records the host and process that drove it).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro
from filelock import FileLock
from tqdm import tqdm

from driving.config import save_config
from driving.data import VIEWPOINT_DRIVER, Episode, prepare_folder, used_seeds, write_episode
from driving.data.read import has_episode
from driving.data.store import claim_road
from driving.flags import Roads
from driving.parallel import per_process, run_parallel
from driving.record.steps import StepRows, drive_meta, truth_ranges
from driving.record.viewpoint import ViewpointConfig, ViewSampler, render_shifted
from envs import train_seeds
from envs.expert import Expert
from envs.world import World, make_world

CONFIG_FILE = "collect.json"
"""The settings of the dataset's latest collection, a valid `drive collect --config`."""


@dataclass(frozen=True)
class NoiseConfig:
    """Temporally correlated (AR(1)) noise added to the executed action, never to the label."""

    steering: float = 0.07
    """std of the steering noise (action units; 0.07 drifts the car up to ~1 m off centre)"""
    throttle: float = 0.15
    """standard deviation of the throttle noise (action units)"""
    correlation: float = 0.9
    """AR(1) coefficient per step: 0 = white noise, 0.9 = about 1 s memory at 10 Hz"""

    def validate(self) -> None:
        if self.steering < 0 or self.throttle < 0:
            raise ValueError(
                f"noise must be >= 0, got steering={self.steering}, throttle={self.throttle}"
            )
        if not 0 <= self.correlation < 1:
            raise ValueError(f"noise correlation must be in [0, 1), got {self.correlation}")


@dataclass(frozen=True)
class CollectConfig:
    """Record expert demonstrations into a dataset folder."""

    out: Path
    """dataset folder (created if missing; an existing dataset is extended, never overwritten)"""
    episodes: Roads = 60
    """number of roads: the seeds first_seed .. first_seed + episodes - 1"""
    first_seed: int = 0
    """first road seed (training seeds are below 1,000,000; evaluation roads are never used)"""
    workers: int = 1
    """processes collecting in parallel"""
    shard: str = "0/1"
    """'i/N': only the seeds whose position in the range is i modulo N (one machine of N)"""
    world: Annotated[World, tyro.conf.arg(name="")] = World()
    """the world to drive in (its flags stand without a prefix: --scenario, --camera.height)"""
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    """DART noise on the executed action (set both to 0 for clean demonstrations)"""
    viewpoint: ViewpointConfig = field(default_factory=ViewpointConfig)
    """extra views from a camera shifted sideways and rotated, labelled to steer back (PilotNet)"""
    driver: Literal["expert", "keyboard"] = "expert"
    """who drives: the expert, or you ('keyboard': arrow keys or gamepad, in a window, at 10 Hz)"""

    def validate(self) -> list[int]:
        """Check the settings once; return the seeds to collect."""
        if self.episodes < 1:
            raise ValueError(f"--roads must be >= 1, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        index, count = parse_shard(self.shard)
        self.world.validate()
        self.noise.validate()
        self.viewpoint.validate()
        check_training_world(self.world)
        if self.driver == "keyboard" and self.viewpoint.enabled:
            raise ValueError(
                "--viewpoint.views and --viewpoint.rig-m need the expert to label the shifted "
                "views; use them with --driver expert"
            )
        return train_seeds(self.first_seed, self.episodes)[index::count]


def check_training_world(world: World) -> None:
    """ValueError if `world` may not give training data: the held-out appearance range is kept
    for measuring robustness, so no training frame ever shows it."""
    if world.camera.appearance == "held-out":
        raise ValueError(
            "--camera.appearance held-out is kept out of training data; collect with 'train' "
            "and drive the held-out range with drive evaluate --appearance held-out"
        )


def parse_shard(shard: str) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N; ValueError with one line otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
    if match is None or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"--shard must be 'i/N' with 0 <= i < N (e.g. 0/4), got {shard!r}")
    return int(match[1]), int(match[2])


class CorrelatedNoise:
    """AR(1) noise with stationary standard deviation `scale`, per action component."""

    _BLOCK = 256  # innovations drawn at once: the same stream as one draw per step, cheaper

    def __init__(self, cfg: NoiseConfig, seed: int) -> None:
        self.scale = np.array([cfg.steering, cfg.throttle])
        self.rho = cfg.correlation
        self.rng = np.random.default_rng(seed)
        self.value = self.rng.normal(0, 1, 2) * self.scale
        self._innovations = np.empty((0, 2))
        self._next = 0

    def sample(self) -> np.ndarray:
        if self._next == len(self._innovations):
            block = self.rng.normal(0, 1, (self._BLOCK, 2))
            self._innovations, self._next = block * self.scale * np.sqrt(1 - self.rho**2), 0
        self.value = self.rho * self.value + self._innovations[self._next]
        self._next += 1
        return self.value


def run_expert_episode(
    env,
    expert: Expert,
    seed: int,
    noise: NoiseConfig,
    viewpoint: ViewpointConfig = ViewpointConfig(),
) -> tuple[Episode, Episode | None]:
    """Drive one road with the (noisy) expert; every frame is labelled with its clean action.

    Returns:
        (the driven episode, the shifted views rendered along it or None when
        `viewpoint.views` is 0; see `driving.record.viewpoint`).
    """
    obs, info = env.reset(seed=seed)
    expert.reset()
    perturb = CorrelatedNoise(noise, seed)
    views = ViewSampler(viewpoint, seed)
    rows, shifted = StepRows(), StepRows()
    done = False
    while not done:
        label = expert.act(obs)
        action = np.clip(label + perturb.sample(), -1, 1).astype(np.float32)
        limit = info["speed_limit"]  # [m/s] of the ego's lane, what the observation tells
        rows.add(obs["image"], label, action, info["speed"], *pose(info), *expert.truth(), limit)
        for lateral_m, yaw_rad in views.shifts():
            view = render_shifted(env, expert, lateral_m, yaw_rad)
            # a view is labelled, nothing is executed from it: action = label
            shifted.add(
                view["frame"], view["label"], view["label"], info["speed"], *pose(view),
                view["curvature_ahead"], view["leader"], view["lane_change"], view["speed_limit"],
            )  # fmt: skip
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    meta = drive_meta(env, "expert", info, noise=asdict(noise), **truth_ranges(expert))
    driven = rows.episode(seed, meta, last=obs)
    if not len(shifted):
        return driven, None
    view_meta = {**meta, "driver": VIEWPOINT_DRIVER, "viewpoint": asdict(viewpoint)}
    return driven, shifted.episode(seed, view_meta)


def pose(state: dict) -> tuple[float, float]:
    """(lateral offset [m], heading error [rad]) of a step's ground truth."""
    return state["lateral_offset"], state["heading_error"]


def claim_seed(root: Path, seed: int) -> FileLock | None:
    """Reserve road `seed` for this process (`driving.data.store.claim_road`); None if it is
    recorded already or another live collection holds it. Release the lock when done."""
    return claim_road(root, seed, has_episode)


def _collect_one(cfg: CollectConfig, seed: int) -> tuple[int, int]:
    """Collect and write one episode (in a worker process); returns (seed, frames saved)."""
    if (claim := claim_seed(cfg.out, seed)) is None:
        return seed, 0
    try:
        env, expert = per_process("collect", cfg.world, lambda: make_world(cfg.world))
        episode, views = run_expert_episode(env, expert, seed, cfg.noise, cfg.viewpoint)
        for part in (episode, views) if views is not None else (episode,):
            write_episode(cfg.out, part)
    finally:
        claim.release()
    return seed, len(episode.frames)


def collect(cfg: CollectConfig) -> dict:
    """Collect the missing episodes of `cfg`; returns a summary."""
    wanted = cfg.validate()
    prepare_folder(cfg.out)  # fail fast on a folder that is not a dataset or not writable
    save_config(cfg.out / CONFIG_FILE, cfg)
    have = used_seeds(cfg.out)
    todo = [s for s in wanted if s not in have]
    if len(todo) < len(wanted):
        print(
            f"{len(wanted) - len(todo)} of {len(wanted)} episodes already in {cfg.out}; "
            f"collecting the other {len(todo)}"
        )
    frames, saved, start = 0, 0, time.perf_counter()
    bar = tqdm(total=len(todo), unit="episode", desc="collect")

    def finished(result: tuple[int, int]) -> None:
        nonlocal frames, saved
        frames, saved = frames + result[1], saved + (result[1] > 0)
        bar.update(1)
        bar.set_postfix(frames=frames, fps=f"{frames / (time.perf_counter() - start):.0f}")

    try:
        run_parallel(_collect_one, [(cfg, seed) for seed in todo], cfg.workers, finished)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted: {saved} new episodes saved in {cfg.out} "
            f"({len(wanted) - len(todo) + saved} of {len(wanted)}); "
            "re-run the same command to finish"
        ) from None
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    return {
        "episodes": saved,
        "left_to_others": len(todo) - saved,  # seeds another process was collecting
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": frames / max(seconds, 1e-9),
        "out": str(cfg.out),
    }
