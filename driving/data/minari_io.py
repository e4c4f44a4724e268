"""Minari export and import: a demonstrations folder as a Minari dataset, and back.

    to_minari("data/demo", "pixels-to-pedals/demo-v0")  # into MINARI_DATASETS_PATH
    dataset = minari.load_dataset("pixels-to-pedals/demo-v0")
    from_minari("pixels-to-pedals/demo-v0", "data/back")  # a demonstrations folder again

Minari (Farama's format for datasets of gymnasium envs, read by d3rlpy, TorchRL and other
offline-RL tools) keeps a dataset in `MINARI_DATASETS_PATH` (default `~/.minari/datasets`) under
its id. One Minari episode per driven episode, written without re-running the env
(`minari.create_dataset_from_buffers`), stored losslessly (parquet, no JPEG):

    observations  {"image": (T+1, H, W, 3) uint8, "speed": (T+1, 1) float32 [m/s],
                  "speed_limit": (T+1, 1) float32 [m/s]}: the T frames and the episode's last
                  observation (`last_frame`, meta["last_speed"]; its limit is the last step's,
                  not recorded apart); "speed_limit" only where every episode records it
    actions       (T, 2) float32: the executed [steering, throttle] (the expert's + DART noise)
    rewards       (T,) float32, NaN: the demonstrations do not record the env's reward
    terminations  (T,) bool: True at the last step if the drive crashed, left the road or
                  reached the end (meta["outcome"]); truncations: True at the last step otherwise
    infos         {"expert_action": (T+1, 2), "lateral_offset": (T+1,) [m],
                   "heading_error": (T+1,) [rad]}: per observation; the last row is NaN (the
                  expert is not asked about the last observation)
    episode seed  the road's seed; episode metadata "pixels_to_pedals": the episode's meta,
                  "pixels_to_pedals_file": its file name

The env spec is the scenario's registered id with the World as a kwarg, so
`dataset.recover_environment()` rebuilds the world the data was recorded in. Episodes recorded
before the last observation was kept end one step early (their last frame becomes the last
observation); shifted-view episodes are views, not trajectories, and are left out.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from driving.data.extras import require
from driving.data.format import VIEWPOINT_DRIVER, DatasetError, Episode, opened, read_header
from driving.data.read import read_episode, scan
from driving.data.store import write_episode
from envs.winding import MAX_SPEED
from envs.world import World, world_spec

META_KEY = "pixels_to_pedals"
"""The key of each Minari episode's metadata that holds the episode's own meta."""


def observation_space(height: int, width: int, limit: bool = True) -> gym.spaces.Dict:
    """The observation space of frames of `height` x `width` [px], the speedometer and (with
    `limit`) the lane's speed limit, as `envs.wrapper.DrivingWrapper` gives them."""
    spaces = {
        "image": gym.spaces.Box(0, 255, (height, width, 3), dtype=np.uint8),
        "speed": gym.spaces.Box(-MAX_SPEED, MAX_SPEED, (1,), dtype=np.float32),
    }
    if limit:
        spaces["speed_limit"] = gym.spaces.Box(0.0, MAX_SPEED, (1,), dtype=np.float32)
    return gym.spaces.Dict(spaces)


ACTION_SPACE = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
"""[steering, throttle] in [-1, 1], as `envs.wrapper.DrivingWrapper` takes them."""


def terminated(meta: dict) -> bool:
    """Whether the drive ended in a terminal state (crash, off the road, end of the road)."""
    outcome = meta.get("outcome", {})
    return bool(
        outcome.get("crashed") or outcome.get("reached_end") or not outcome.get("on_road", 1)
    )


def episode_buffer(episode: Episode, minari_id: int | None = None, limit: bool = False):
    """The Minari `EpisodeBuffer` of one driven episode (mapping: module docstring); None for an
    episode too short to hold a step (one frame and no last observation). `limit`: with the
    speed limit observations (the episode must record them)."""
    from minari.data_collector import EpisodeBuffer

    frames, speed, limits = episode.frames, episode.speed, episode.speed_limit
    steps = len(frames)
    if episode.last_frame is not None:
        frames = np.concatenate([frames, episode.last_frame[None]])
        speed = np.append(speed, np.float32(episode.meta.get("last_speed", math.nan)))
        limits = None if limits is None else np.append(limits, limits[-1])  # the last step's
    else:
        steps -= 1  # the last frame stands in for the last observation
    if steps < 1:
        return None
    nan = np.full((1,), np.nan, np.float32)
    infos = {
        "expert_action": np.concatenate([episode.labels[:steps], np.full((1, 2), np.nan)]),
        "lateral_offset": np.concatenate([episode.lateral_offset[:steps], nan]),
        "heading_error": np.concatenate([episode.heading_error[:steps], nan]),
    }
    ends = np.zeros(steps, bool)
    ends[-1] = True
    done = terminated(episode.meta) and episode.last_frame is not None
    observations = {"image": frames, "speed": speed.reshape(-1, 1).astype(np.float32)}
    if limit:
        observations["speed_limit"] = limits.reshape(-1, 1).astype(np.float32)
    return EpisodeBuffer(
        id=minari_id,
        seed=int(episode.seed),
        observations=observations,
        actions=episode.actions[:steps].astype(np.float32),
        rewards=np.full(steps, np.nan, np.float32),
        terminations=ends & done,
        truncations=ends & (not done),
        # Minari's parquet reader cannot decode 1-D arrays in infos: per-step scalars go as lists
        infos={k: v.tolist() if v.ndim == 1 else v.astype(np.float32) for k, v in infos.items()},
    )


def _trajectories(root: Path) -> tuple[list[Path], World]:
    """The episode files of `root` that are trajectories, and the one World they share."""
    metas = {path: _meta(path) for path in scan(root)[0]}
    paths = [p for p, meta in metas.items() if meta.get("driver") != VIEWPOINT_DRIVER]
    if not paths:
        raise DatasetError(f"{root} holds only shifted-view episodes: nothing to export")
    worlds = {json.dumps(metas[p].get("world"), sort_keys=True) for p in paths}
    if len(worlds) > 1:
        raise DatasetError(
            f"{root} mixes episodes of {len(worlds)} worlds; a Minari dataset has one env: "
            "export the episodes of each world from a folder of their own"
        )
    return paths, read_episode(paths[0]).world


def _meta(path: Path) -> dict:
    """An episode file's meta, read from its header (no frame is decoded)."""
    with opened(path) as f:
        return read_header(f, path)[1]


def to_minari(root: Path, dataset_id: str, description: str | None = None) -> dict[str, Any]:
    """Write the trajectories of a demonstrations folder as the Minari dataset `dataset_id`.

    One episode is in memory at a time. A failed export leaves no dataset behind.

    Args:
        root: demonstrations folder.
        dataset_id: Minari id, `(namespace/)name-vN` (e.g. "pixels-to-pedals/demo-v0").
        description: the dataset's description (default: one saying where it came from).

    Returns:
        {"id", "path", "episodes", "steps", "skipped"} of the dataset written.

    Raises:
        DatasetError: minari missing, a bad or taken id, a folder that is not a dataset.
    """
    minari = require("minari")
    root = Path(root)
    paths, world = _trajectories(root)
    frame = read_episode(paths[0]).frames.shape[1:3]
    limit = all(_has_limit(path) for path in paths)
    spec = world_spec(world)
    args = {
        "env": spec,
        "observation_space": observation_space(*frame, limit),
        "action_space": ACTION_SPACE,
        "algorithm_name": "pixels-to-pedals demonstrations",
        "description": description or f"pixels-to-pedals demonstrations exported from {root}",
        "data_format": "parquet",
        "jpeg_encoding": False,  # lossless: the frames the policy was trained on
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*is set to None", UserWarning)  # author, email...
        dataset, skipped = _write_episodes(minari, dataset_id, paths, args, limit)
    if dataset is None:
        raise DatasetError(f"{root} holds no episode with a step to export")
    return {
        "id": dataset_id,
        "path": Path(dataset.storage.data_path).parent,
        "episodes": dataset.total_episodes,
        "steps": dataset.total_steps,
        "skipped": skipped,
    }


def _has_limit(path: Path) -> bool:
    """Whether an episode file records the speed limit (files before 2026-12-07 don't)."""
    with opened(path) as f:
        return "speed_limit" in f


def _write_episodes(minari, dataset_id: str, paths: list[Path], args: dict, limit: bool):
    """Create the dataset from the first episode and add the others one at a time (`limit`:
    with the speed limit observations); on any failure delete what was written. Returns (the
    dataset or None, episodes skipped)."""
    dataset, skipped = None, 0
    try:
        for path in paths:
            episode = read_episode(path)
            index = 0 if dataset is None else dataset.total_episodes
            buffer = episode_buffer(episode, index, limit)
            if buffer is None:
                skipped += 1
                continue
            if dataset is None:
                dataset = minari.create_dataset_from_buffers(dataset_id, [buffer], **args)
            else:
                dataset.update_dataset_from_buffer([buffer])
            meta = {META_KEY: episode.meta, f"{META_KEY}_file": path.name}
            dataset.storage.update_episode_metadata([meta], [index])
    except BaseException as error:
        if dataset is not None:
            minari.delete_dataset(dataset_id)
        if isinstance(error, ValueError) and not isinstance(error, DatasetError):
            raise DatasetError(f"cannot write Minari dataset {dataset_id!r}: {error}") from None
        raise
    return dataset, skipped


def episode_from_minari(data, metadata: dict) -> Episode:
    """Our Episode of one Minari episode (`EpisodeData`) and its episode metadata.

    Datasets of other origins need image (H, W, 3) uint8 and speed observations and
    [steering, throttle] actions; ground truth missing from their infos is stored as zeros and
    named in meta["minari"]["missing"].
    """
    obs, steps = data.observations, len(data.actions)
    if not isinstance(obs, dict) or "image" not in obs or "speed" not in obs:
        raise DatasetError("Minari observations must be a dict with 'image' and 'speed'")
    infos = data.infos or {}
    missing = [k for k in ("expert_action", "lateral_offset", "heading_error") if k not in infos]
    zeros = np.zeros(steps, np.float32)
    actions = np.asarray(data.actions, np.float32).reshape(steps, 2)
    meta = dict(metadata.get(META_KEY) or {"driver": "minari"})
    meta["last_speed"] = float(np.asarray(obs["speed"]).reshape(-1)[steps])
    if missing:
        meta["minari"] = {"missing": missing}
    limit = obs.get("speed_limit")
    return Episode(
        frames=np.asarray(obs["image"][:steps], np.uint8),
        labels=np.asarray(infos.get("expert_action", actions)[:steps], np.float32),
        actions=actions,
        speed=np.asarray(obs["speed"], np.float32).reshape(-1)[:steps],
        lateral_offset=np.asarray(infos.get("lateral_offset", zeros)[:steps], np.float32),
        heading_error=np.asarray(infos.get("heading_error", zeros)[:steps], np.float32),
        seed=int(metadata.get("seed", data.id)),
        meta=meta,
        last_frame=np.asarray(obs["image"][steps], np.uint8),
        speed_limit=None if limit is None else np.asarray(limit, np.float32).reshape(-1)[:steps],
    )


def from_minari(dataset_id: str, out: Path) -> dict[str, Any]:
    """Write the Minari dataset `dataset_id` into the demonstrations folder `out`.

    Returns:
        {"out", "episodes", "frames"} written.

    Raises:
        DatasetError: minari missing, no such dataset, observations not image + speed.
    """
    minari = require("minari")
    try:
        dataset = minari.load_dataset(dataset_id)
    except (FileNotFoundError, ValueError) as error:
        raise DatasetError(f"cannot load Minari dataset {dataset_id!r}: {error}") from None
    indices = [int(i) for i in dataset.episode_indices]
    metadata = dataset.storage.get_episode_metadata(indices)
    frames = 0
    for data, meta in zip(dataset.iterate_episodes(indices), metadata, strict=True):
        episode = episode_from_minari(data, meta)
        write_episode(Path(out), episode)
        frames += len(episode.frames)
    return {"out": Path(out), "episodes": len(indices), "frames": frames}
