"""Helpers shared by the tests: a recording policy, checkpoints of untrained nets in a world,
synthetic learnable episodes and real drives recorded step by step."""

import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from driving.data import Episode
from driving.learn.checkpoint import save_checkpoint
from driving.learn.model import ModelConfig, PilotNet
from driving.learn.policy import NetPolicy
from driving.record.steps import StepRows
from envs.world import World

# A test run started in the background without job control (`pytest &` in a script, `nohup`)
# inherits Ctrl-C ignored, and the interrupt tests would see no KeyboardInterrupt: give the run
# (and the processes it starts) Ctrl-C as at a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _own_expert_cache(tmp_path_factory, monkeypatch):
    """Each test its own cache of the expert's evaluation drives (`expert_cache`): none reads
    another's, nor the user's."""
    monkeypatch.setenv("PIXELS_TO_PEDALS_CACHE", str(tmp_path_factory.mktemp("cache")))


TRAFFIC = World(scenario="highway-traffic", density="dense")
"""The world of `traffic_checkpoint`: other cars close by from the first step."""


class Recording(NetPolicy):
    """A network policy that keeps every observation it takes in."""

    def __init__(self, model: PilotNet) -> None:
        super().__init__(model)
        self.seen: list[dict] = []

    def observe(self, obs: dict) -> None:
        self.seen.append(obs)
        super().observe(obs)


def save_untrained(path: Path, extra: dict | None = None, config: ModelConfig | None = None):
    """A checkpoint of an untrained PilotNet (seeded; the default ModelConfig unless `config`),
    with `extra` as its world record."""
    config = ModelConfig() if config is None else config
    torch.manual_seed(0)
    return save_checkpoint(
        path,
        model=PilotNet(config),
        model_config=config,
        optimizer=None,
        step=0,
        epoch=0,
        best_val=None,
        config={},
        extra=extra,
    )


@pytest.fixture(params=["world", "before-world"])
def traffic_checkpoint(request, tmp_path) -> Path:
    """A net that learned in dense highway traffic, by its checkpoint: recorded as a World, or
    as a checkpoint written before the World record (scenario, density and camera apart)."""
    if request.param == "world":
        extra = {"world": TRAFFIC.to_dict()}
    else:
        camera = {"height": 66, "width": 200, "ahead_m": 40.0, "behind_m": 6.0, "span_m": 30.0}
        extra = {"scenario": "highway-traffic", "density": "dense", "camera": camera}
    return save_untrained(tmp_path / "traffic.pt", extra)


def learnable_episode(
    seed: int, frames: int = 40, height: int = 66, width: int = 200, meta: dict | None = None
) -> Episode:
    """A toy task a net learns in a few epochs: noise with a bright vertical bar whose x position
    is the steering, and throttle = speed / 10 - 1 (so it is learned only from the speed input).
    `meta` defaults to an expert's drive."""
    rng = np.random.default_rng(seed)
    steering = rng.uniform(-0.8, 0.8, frames).astype(np.float32)
    speed = rng.uniform(0.0, 20.0, frames).astype(np.float32)  # [m/s]
    throttle = speed / 10.0 - 1.0
    images = rng.integers(0, 40, (frames, height, width, 3), dtype=np.uint8)
    for image, value in zip(images, steering, strict=True):
        x = int(round(width / 2 + value * width * 0.4))
        image[:, x - 4 : x + 4] = 255
    labels = np.stack([steering, throttle], axis=1)
    zeros = np.zeros(frames, np.float32)
    return Episode(
        frames=images,
        labels=labels,
        actions=labels.copy(),
        speed=speed,
        lateral_offset=zeros,
        heading_error=zeros,
        seed=seed,
        meta={"driver": "expert"} if meta is None else meta,
    )


def told_episode(seed: int, limit: float, frames: int = 40) -> Episode:
    """`learnable_episode` on a road whose speed limit is `limit` [m/s], recorded with every
    step, and throttle = (limit - speed) / 10: only a net told the limit can learn it."""
    episode = learnable_episode(seed, frames)
    speed = np.random.default_rng(seed + 1).uniform(0.0, 25.0, frames).astype(np.float32)
    labels = episode.labels.copy()
    labels[:, 1] = np.clip((limit - speed) / 10.0, -1.0, 1.0)
    limits = np.full(frames, limit, np.float32)
    return replace(episode, labels=labels, actions=labels.copy(), speed=speed, speed_limit=limits)


def record_drive(
    env,
    seed: int,
    steps: int,
    drive: Callable[[dict], tuple[np.ndarray, np.ndarray]],
    meta: dict | None = None,
) -> Episode:
    """The first `steps` steps of road `seed` in `env`, as an Episode: `drive(obs)` gives each
    step's (label, executed action); each frame is stored with the speed, lateral offset and
    heading error of the moment it was seen. `meta` defaults to an expert's drive."""
    obs, info = env.reset(seed=seed)
    rows = StepRows()
    for _ in range(steps):
        label, action = drive(obs)
        rows.add(
            obs["image"],
            label,
            action,
            info["speed"],
            info["lateral_offset"],
            info["heading_error"],
        )
        obs, _, _, _, info = env.step(action)
    return rows.episode(seed, {"driver": "expert"} if meta is None else meta)


def write_drives(root: Path, seeds: list[int], seconds: float = 3.0) -> list[Episode]:
    """Drive roads `seeds` for `seconds` [s] each (10 steps a second) with the noisy expert in
    the default World, write them into `root`; returns the episodes, in seed order."""
    from driving.data import write_episode
    from driving.record.collect import NoiseConfig, run_expert_episode
    from envs.world import World, make_world

    env, expert = make_world(World(), duration=seconds)
    episodes = [run_expert_episode(env, expert, seed, NoiseConfig())[0] for seed in seeds]
    for episode in episodes:
        write_episode(root, episode)
    return episodes
