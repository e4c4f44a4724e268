"""LeRobotDataset export: a demonstrations folder in the layout `lerobot` reads (v3.0).

    to_lerobot("data/demo", "exports/demo_lerobot")
    # in lerobot's environment: LeRobotDataset("local/demo", root="exports/demo_lerobot")

The layout, as lerobot 0.4's `LeRobotDataset` reads it (codebase_version "v3.0")::

    meta/info.json                           fps, features, paths, totals
    meta/stats.json                          min, max, mean, std, count of every feature
    meta/tasks.parquet                       the task strings (index) and their task_index
    meta/episodes/chunk-000/file-000.parquet one row per episode: length, tasks, where its rows
                                             (dataset_from_index..to) and video lie
    data/chunk-000/file-000.parquet          one row per frame (columns below)
    videos/observation.images.camera/chunk-CCC/file-FFF.mp4   one H.264 video per episode

Columns of the frame rows: `action` (2,) float32, the expert's [steering, throttle] (the
imitation target, as a teleoperator's command is in LeRobot), `observation.state` float32, the
speed [m/s], `executed_action` (2,) float32 (expert + DART noise), `lateral_offset` [m],
`heading_error` [rad], and lerobot's `timestamp` [s] (frame_index / fps), `frame_index`,
`episode_index`, `index`, `task_index`. The frames are in the videos (lossy H.264, CRF 18, a
keyframe every 2 frames for fast seeking, faststart). Shifted-view episodes are views, not
trajectories, and are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np

from driving.data.extras import require
from driving.data.format import VIEWPOINT_DRIVER, DatasetError, Episode
from driving.data.read import read_episode, scan
from driving.files import write_json

CODEBASE_VERSION = "v3.0"
CAMERA = "observation.images.camera"
CHUNKS_SIZE = 1000  # files per chunk folder (lerobot's default)
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
TASKS = {
    "winding-road": "keep the lane of the winding road at the speed limit",
    "winding-traffic": "drive the winding road among other cars",
    "highway-traffic": "drive the highway among other cars",
}
_SCALARS = {"observation.state": "speed", "lateral_offset": "lateral_offset",
            "heading_error": "heading_error"}  # fmt: skip


def features(height: int, width: int, fps: int) -> dict[str, dict]:
    """The `features` of info.json for frames of `height` x `width` [px] at `fps` [Hz]."""
    scalar = {"dtype": "float32", "shape": [1], "names": None}
    index = {"dtype": "int64", "shape": [1], "names": None}
    video_info = {
        "video.height": height, "video.width": width, "video.codec": "h264",
        "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
        "video.channels": 3, "has_audio": False,
    }  # fmt: skip
    pair = {"dtype": "float32", "shape": [2], "names": ["steering", "throttle"]}
    return {
        CAMERA: {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": video_info,
        },  # fmt: skip
        "observation.state": {"dtype": "float32", "shape": [1], "names": ["speed"]},
        "action": pair,
        "executed_action": pair,
        "lateral_offset": scalar,
        "heading_error": scalar,
        "timestamp": scalar,
        "frame_index": index,
        "episode_index": index,
        "index": index,
        "task_index": index,
    }


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as an H.264 mp4 lerobot's decoders seek in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
        macro_block_size=1, ffmpeg_log_level="error",
        output_params=["-crf", "18", "-g", "2", "-movflags", "+faststart"],
    )  # fmt: skip
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def frame_table(pa, episode: Episode, episode_index: int, first: int, task: int, fps: int):
    """The frame rows of one episode as a pyarrow Table (columns: module docstring)."""
    steps = len(episode.frames)

    def pairs(values: np.ndarray):
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), 2)

    columns = {
        "observation.state": pa.array(episode.speed, pa.float32()),
        "action": pairs(episode.labels),
        "executed_action": pairs(episode.actions),
        "lateral_offset": pa.array(episode.lateral_offset, pa.float32()),
        "heading_error": pa.array(episode.heading_error, pa.float32()),
        "timestamp": pa.array(np.arange(steps, dtype=np.float32) / np.float32(fps)),
        "frame_index": pa.array(np.arange(steps, dtype=np.int64)),
        "episode_index": pa.array(np.full(steps, episode_index, np.int64)),
        "index": pa.array(np.arange(first, first + steps, dtype=np.int64)),
        "task_index": pa.array(np.full(steps, task, np.int64)),
    }
    return pa.table(columns)


class _Stats:
    """Running min, max, sum and sum of squares of each feature (for meta/stats.json)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, name: str, values: np.ndarray) -> None:
        """`values`: (N, D) rows of a feature (images: per-channel values in [0, 1])."""
        values = values.astype(np.float64).reshape(len(values), -1)
        part = np.stack([values.min(0), values.max(0), values.sum(0), (values**2).sum(0)])
        count = np.full((1, values.shape[1]), len(values), np.float64)
        self.parts.setdefault(name, []).append(np.concatenate([part, count]))

    def result(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, parts in self.parts.items():
            low = np.min([p[0] for p in parts], 0)
            high = np.max([p[1] for p in parts], 0)
            total, squares, count = (np.sum([p[i] for p in parts], 0) for i in (2, 3, 4))
            mean = total / count
            std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
            shape = (3, 1, 1) if name == CAMERA else (-1,)
            out[name] = {k: v.reshape(shape).tolist() for k, v in
                         {"min": low, "max": high, "mean": mean, "std": std}.items()}  # fmt: skip
            out[name]["count"] = [int(count[0])]
        return out


def to_lerobot(root: Path, out: Path) -> dict[str, Any]:
    """Write the trajectories of a demonstrations folder in the LeRobotDataset v3.0 layout.

    One episode is in memory at a time.

    Returns:
        {"out", "episodes", "frames", "fps"}.

    Raises:
        DatasetError: pyarrow or pandas missing, `out` not empty, a folder that is not a
            dataset, episodes of different frame sizes or frame rates.
    """
    pa, pq, pd = require("pyarrow"), require("pyarrow.parquet"), require("pandas")
    root, out = Path(root), Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} is not empty: choose a new folder for the LeRobot dataset")
    paths = scan(root)[0]
    writer, stats, rows, tasks, episodes = None, _Stats(), 0, {}, []
    shape = fps = None
    for path in paths:
        episode = read_episode(path)
        if episode.meta.get("driver") == VIEWPOINT_DRIVER:
            continue
        rate = int(episode.meta.get("fps", 10))  # episodes before meta["fps"]: 10 Hz
        if shape is None:
            shape, fps = episode.frames.shape[1:3], rate
        if episode.frames.shape[1:3] != shape or rate != fps:
            raise DatasetError(f"{path} differs in frame size or rate: export it on its own")
        task = TASKS.get(episode.world.scenario, f"drive {episode.world.scenario}")
        task_index = tasks.setdefault(task, len(tasks))
        index = len(episodes)
        table = frame_table(pa, episode, index, rows, task_index, fps)
        if writer is None:
            data = out / DATA_PATH.format(chunk_index=0, file_index=0)
            data.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(data, table.schema, compression="snappy")
        writer.write_table(table)
        chunk, file = divmod(index, CHUNKS_SIZE)
        video = VIDEO_PATH.format(video_key=CAMERA, chunk_index=chunk, file_index=file)
        write_video(out / video, episode.frames, fps)
        episodes.append(_episode_row(index, task, len(episode.frames), rows, chunk, file, fps))
        episodes[-1]["seed"] = int(episode.seed)
        _add_stats(stats, episode, table)
        rows += len(episode.frames)
    if writer is None:
        raise DatasetError(f"{root} holds only shifted-view episodes: nothing to export")
    writer.close()
    _write_meta(pd, out, episodes, tasks, stats, shape, fps, rows)
    return {"out": out, "episodes": len(episodes), "frames": rows, "fps": fps}


def _episode_row(index: int, task: str, length: int, first: int, chunk: int, file: int, fps: int):
    """One row of meta/episodes: where the episode's frame rows and video lie."""
    return {
        "episode_index": index, "tasks": [task], "length": length,
        "data/chunk_index": 0, "data/file_index": 0,
        "dataset_from_index": first, "dataset_to_index": first + length,
        f"videos/{CAMERA}/chunk_index": chunk, f"videos/{CAMERA}/file_index": file,
        f"videos/{CAMERA}/from_timestamp": 0.0, f"videos/{CAMERA}/to_timestamp": length / fps,
        "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
    }  # fmt: skip


def _add_stats(stats: _Stats, episode: Episode, table) -> None:
    """Add one episode's values to the running statistics."""
    stats.add(CAMERA, episode.frames.reshape(-1, 3) / 255.0)  # per channel, in [0, 1]
    for name in table.column_names:
        values = np.asarray(table.column(name).to_pylist(), np.float64)
        stats.add(name, values.reshape(len(table), -1))


def _write_meta(pd, out: Path, episodes: list, tasks: dict, stats: _Stats, shape, fps, rows):
    """meta/: episodes, tasks, stats and info (written last: a folder without it is no dataset)."""
    (out / EPISODES_PATH).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(episodes).to_parquet(out / EPISODES_PATH)
    frame = pd.DataFrame({"task_index": list(tasks.values())}, index=list(tasks))
    frame.index.name = "task"
    frame.to_parquet(out / "meta" / "tasks.parquet")
    write_json(out / "meta" / "stats.json", stats.result(), indent=2)
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": "highway-env car",
        "total_episodes": len(episodes),
        "total_frames": rows,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features(*shape, fps),
    }
    write_json(out / "meta" / "info.json", info, indent=4)


def read_info(out: Path) -> dict:
    """meta/info.json of an exported dataset."""
    return json.loads((Path(out) / "meta" / "info.json").read_text(encoding="utf-8"))
