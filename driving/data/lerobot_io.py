"""LeRobotDataset export and import: a demonstrations folder in the layout `lerobot` reads
(v3.0), and back.

    to_lerobot("data/demo", "exports/demo_lerobot")
    # in lerobot's environment: LeRobotDataset("local/demo", root="exports/demo_lerobot")
    from_lerobot("exports/demo_lerobot", "data/back")  # a demonstrations folder again

The layout, as lerobot 0.4's `LeRobotDataset` reads it (codebase_version "v3.0")::

    meta/info.json                           fps, features, paths, totals
    meta/stats.json                          min, max, mean, std, count of every feature
    meta/tasks.parquet                       the task strings (index) and their task_index
    meta/episodes/chunk-000/file-000.parquet one row per episode: length, tasks, where its rows
                                             (dataset_from_index..to) and video lie; our
                                             `seed` and `pixels_to_pedals` (its meta, JSON)
    data/chunk-000/file-000.parquet          one row per frame (columns below)
    videos/observation.images.camera/chunk-CCC/file-FFF.mp4   one H.264 video per episode

Columns of the frame rows: `action` (2,) float32, the expert's [steering, throttle] (the imitation
target, as a teleoperator's command is in LeRobot), `observation.state` float32, the speed [m/s]
(and, in a dataset whose every episode records it, the road's speed limit [m/s] second: (2,) named
["speed", "speed_limit"]), `executed_action` (2,) float32 (expert + DART noise), `lateral_offset`
[m], `heading_error` [rad], and lerobot's `timestamp` [s] (frame_index / fps), `frame_index`,
`episode_index`, `index`, `task_index`. The frames are in the videos (lossy H.264, CRF 18, a
keyframe every 2 frames for fast seeking, faststart). Shifted-view episodes are views, not
trajectories, and are left out. On the way back (`from_lerobot`) every array and the meta come back
exactly, the frames within a few grey levels, and the episode's last observation is lost (LeRobot
keeps none).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np

from driving.data.extras import require
from driving.data.format import VIEWPOINT_DRIVER, DatasetError, Episode
from driving.data.read import read_episode, scan_headers
from driving.data.store import write_episode
from driving.files import write_json

CODEBASE_VERSION = "v3.0"
CAMERA = "observation.images.camera"
STATE = ("speed",)
LIMIT_STATE = ("speed", "speed_limit")
"""`observation.state`'s names: the speed [m/s], and the limit [m/s] where every episode has it."""
CHUNKS_SIZE = 1000  # files per chunk folder (lerobot's default)
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
TASKS = {
    "winding-road": "keep the lane of the winding road at the speed limit",
    "winding-traffic": "drive the winding road among other cars",
    "highway-traffic": "drive the highway among other cars",
}
META_COLUMN = "pixels_to_pedals"
"""The column of meta/episodes holding each episode's own meta (JSON), for the way back."""


def features(height: int, width: int, fps: int, limit: bool = False) -> dict[str, dict]:
    """The `features` of info.json for frames of `height` x `width` [px] at `fps` [Hz], the
    speed limit in `observation.state` if `limit`."""
    scalar = {"dtype": "float32", "shape": [1], "names": None}
    index = {"dtype": "int64", "shape": [1], "names": None}
    video_info = {
        "video.height": height, "video.width": width, "video.codec": "h264",
        "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
        "video.channels": 3, "has_audio": False,
    }  # fmt: skip
    pair = {"dtype": "float32", "shape": [2], "names": ["steering", "throttle"]}
    state = list(LIMIT_STATE if limit else STATE)
    return {
        CAMERA: {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": video_info,
        },  # fmt: skip
        "observation.state": {"dtype": "float32", "shape": [len(state)], "names": state},
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


def frame_table(
    pa, episode: Episode, episode_index: int, first: int, task: int, fps: int, limit: bool = False
):
    """The frame rows of one episode as a pyarrow Table (columns: module docstring); the speed
    limit beside the speed in `observation.state` if `limit`."""
    steps = len(episode.frames)

    def pairs(values: np.ndarray):
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), 2)

    columns = {
        "observation.state": (
            pairs(np.stack([episode.speed, episode.speed_limit], axis=1))
            if limit
            else pa.array(episode.speed, pa.float32())
        ),
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
    headers = [h for h in scan_headers(root)[0] if h.driver != VIEWPOINT_DRIVER]
    limit = bool(headers) and all(h.speed_limit is not None for h in headers)
    paths = [h.path for h in headers]
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
        table = frame_table(pa, episode, index, rows, task_index, fps, limit)
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
        episodes[-1][META_COLUMN] = json.dumps(episode.meta)
        _add_stats(stats, episode, table)
        rows += len(episode.frames)
    if writer is None:
        raise DatasetError(f"{root} holds only shifted-view episodes: nothing to export")
    writer.close()
    _write_meta(pd, out, episodes, tasks, stats, (*shape, fps, limit), rows)
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


def _write_meta(pd, out: Path, episodes: list, tasks: dict, stats: _Stats, video: tuple, rows):
    """meta/: episodes, tasks, stats and info (written last: a folder without it is no dataset);
    `video`: the `features` arguments (height, width, fps, limit)."""
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
        "fps": video[2],
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features(*video),
    }
    write_json(out / "meta" / "info.json", info, indent=4)


def read_info(out: Path) -> dict:
    """meta/info.json of an exported dataset."""
    return json.loads((Path(out) / "meta" / "info.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the way back


def is_lerobot(path: Path) -> bool:
    """Whether `path` is a LeRobotDataset folder (it has meta/info.json)."""
    return (Path(path) / "meta" / "info.json").is_file()


def from_lerobot(source: Path, out: Path) -> dict[str, Any]:
    """Write a LeRobotDataset v3.0 folder into the demonstrations folder `out`.

    The inverse of `to_lerobot` (frames come back through H.264, so close to but not exactly
    the originals; the rest exactly). Datasets of other origins need one video feature of RGB
    frames, `action` (2,) [steering, throttle] and `observation.state` whose first value is the
    speed [m/s]; ground truth they lack is stored as zeros and named in meta["lerobot"]["missing"].
    One episode is in memory at a time.

    Returns:
        {"out", "episodes", "frames"} written.

    Raises:
        DatasetError: pyarrow missing, not a v3.0 dataset, or not one of frames and 2 actions.
    """
    pq = require("pyarrow.parquet")
    source, out = Path(source), Path(out)
    info = read_info(source)
    camera, fps = _check_info(source, info), int(info["fps"])
    columns = _read_columns(pq, sorted((source / "data").glob("**/*.parquet")))
    rows = pq.read_table(sorted((source / "meta" / "episodes").glob("**/*.parquet"))).to_pylist()
    limit = info["features"]["observation.state"].get("names") == list(LIMIT_STATE)
    frames = 0
    for row, clip in zip(rows, _episode_clips(source, info, camera, rows), strict=True):
        episode = _episode(row, clip, columns, fps, limit)
        write_episode(out, episode)
        frames += len(episode.frames)
    return {"out": out, "episodes": len(rows), "frames": frames}


def _check_info(source: Path, info: dict) -> str:
    """The video feature of a dataset `from_lerobot` can read; DatasetError otherwise."""
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DatasetError(
            f"{source} is a LeRobot {info.get('codebase_version')} dataset; only "
            f"{CODEBASE_VERSION} is read: convert it with lerobot's own tools first"
        )
    feats = info.get("features", {})
    videos = [name for name, feat in feats.items() if feat.get("dtype") == "video"]
    pairs = feats.get("action", {}).get("shape") == [2]
    if not videos or not pairs or "observation.state" not in feats:
        raise DatasetError(
            f"{source} is not a driving dataset: it needs a video feature, action (2,) "
            "[steering, throttle] and observation.state (speed first)"
        )
    return CAMERA if CAMERA in videos else videos[0]


def _read_columns(pq, files: list[Path]) -> dict[str, np.ndarray]:
    """The frame rows' numeric columns (no images), sorted by their global `index`."""
    table = pq.read_table(files)
    order = np.argsort(np.asarray(table.column("index")))
    return {name: np.asarray(table.column(name).to_pylist())[order] for name in table.column_names}


def _episode_clips(source: Path, info: dict, camera: str, rows: list[dict]):
    """Each episode's frames (T, H, W, 3) uint8, in the order of `rows`, cut from its video file
    (one file may hold several episodes back to back); each file is decoded once, streaming."""
    fps = float(info["fps"])
    current, reader, position = None, None, 0
    for row in rows:
        key = (row[f"videos/{camera}/chunk_index"], row[f"videos/{camera}/file_index"])
        start = round(row[f"videos/{camera}/from_timestamp"] * fps)
        if key != current or start < position:  # a new file, or a step back: decode afresh
            path = source / info["video_path"].format(
                video_key=camera, chunk_index=key[0], file_index=key[1]
            )
            reader, current, position = _decode(path), key, 0
        for _ in range(start - position):  # frames of episodes not listed
            next(reader)
        clip = [next(reader) for _ in range(row["length"])]
        position = start + row["length"]
        yield np.stack(clip)


def _decode(path: Path):
    """The frames of an mp4 one by one, as (H, W, 3) uint8 RGB."""
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return (np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader)


def _episode(
    row: dict, frames: np.ndarray, columns: dict[str, np.ndarray], fps: int, limit: bool
) -> Episode:
    """Our Episode of one meta/episodes row, its frames and the frame rows' columns; the speed
    limit from `observation.state`'s second value if `limit`."""
    span = slice(row["dataset_from_index"], row["dataset_to_index"])
    steps = span.stop - span.start

    def column(name: str, width: int, default: np.ndarray) -> np.ndarray:
        values = columns[name][span] if name in columns else default
        return np.asarray(values, np.float32).reshape(steps, width)

    meta = json.loads(row[META_COLUMN]) if row.get(META_COLUMN) else {"driver": "lerobot"}
    meta.setdefault("fps", fps)
    missing = [name for name in ("executed_action", "lateral_offset", "heading_error")
               if name not in columns]  # fmt: skip
    if missing:
        meta["lerobot"] = {"missing": missing}
    labels = column("action", 2, None)
    zeros = np.zeros(steps, np.float32)
    state = column("observation.state", -1, None)
    return Episode(
        frames=frames,
        labels=labels,
        actions=column("executed_action", 2, labels),
        speed=state[:, 0],  # speed first, whatever follows
        lateral_offset=column("lateral_offset", 1, zeros)[:, 0],
        heading_error=column("heading_error", 1, zeros)[:, 0],
        seed=int(row.get("seed", row["episode_index"])),
        meta=meta,
        speed_limit=state[:, 1].copy() if limit else None,
    )
