"""LeRobotDataset export: the v3.0 layout checked file by file here, and loaded by lerobot's own
`LeRobotDataset` in its own virtual environment when there is one (scripts/lerobot_check.sh)."""

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import write_drives

from driving.data import DatasetError, read_episode, scan, write_episode
from driving.data.lerobot_io import CAMERA, from_lerobot, to_lerobot, write_video

REPO = Path(__file__).parents[3]
LEROBOT_PYTHON = Path(os.environ.get("LEROBOT_PYTHON", REPO / ".venv-lerobot" / "bin" / "python"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Two 3-second drives (30 frames each at 10 Hz), exported; (episodes, folder)."""
    root = tmp_path_factory.mktemp("lerobot")
    episodes = write_drives(root / "data", [4, 5])
    summary = to_lerobot(root / "data", root / "out")
    assert summary == {"out": root / "out", "episodes": 2, "frames": 60, "fps": 10}
    return episodes, root / "out"


def _video_frames(path: Path) -> np.ndarray:
    """Every frame of an mp4, decoded by ffmpeg: (T, H, W, 3) uint8."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


def test_info_describes_the_features_fps_and_paths(exported):
    _, out = exported
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 60, 1)
    assert info["features"][CAMERA]["dtype"] == "video"
    assert info["features"][CAMERA]["shape"] == [66, 200, 3]
    assert info["features"]["action"]["names"] == ["steering", "throttle"]
    assert info["features"]["observation.state"]["names"] == ["speed", "speed_limit"]
    assert info["splits"] == {"train": "0:2"}


def test_frame_rows_have_lerobots_columns_and_dtypes(exported):
    episodes, out = exported
    table = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet")
    types = {name: str(table.schema.field(name).type) for name in table.column_names}
    assert types == {
        "observation.state": "fixed_size_list<element: float>[2]",
        "action": "fixed_size_list<element: float>[2]",
        "executed_action": "fixed_size_list<element: float>[2]", "lateral_offset": "float",
        "heading_error": "float", "timestamp": "float", "frame_index": "int64",
        "episode_index": "int64", "index": "int64", "task_index": "int64",
    }  # fmt: skip
    rows = table.to_pydict()
    assert rows["index"] == list(range(60))
    assert rows["episode_index"] == [0] * 30 + [1] * 30
    assert rows["timestamp"][:3] == pytest.approx([0.0, 0.1, 0.2])
    labels = np.concatenate([e.labels for e in episodes])
    np.testing.assert_array_equal(np.array(rows["action"], np.float32), labels)  # the target
    state = np.concatenate([np.stack([e.speed, e.speed_limit], axis=1) for e in episodes])
    np.testing.assert_array_equal(np.array(rows["observation.state"], np.float32), state)


def test_episodes_tasks_and_stats_agree_with_the_rows(exported):
    episodes, out = exported
    rows = pq.read_table(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [(r["dataset_from_index"], r["dataset_to_index"], r["length"]) for r in rows] == [
        (0, 30, 30),
        (30, 60, 30),
    ]
    assert rows[1][f"videos/{CAMERA}/file_index"] == 1
    assert rows[1][f"videos/{CAMERA}/to_timestamp"] == pytest.approx(3.0)
    tasks = pq.read_table(out / "meta" / "tasks.parquet").to_pandas()
    assert tasks.loc[rows[0]["tasks"][0], "task_index"] == 0
    stats = json.loads((out / "meta" / "stats.json").read_text())
    labels = np.concatenate([e.labels for e in episodes])
    assert stats["action"]["mean"] == pytest.approx(labels.mean(0), abs=1e-6)
    assert stats["action"]["count"] == [60]
    assert np.array(stats[CAMERA]["max"]).shape == (3, 1, 1)


def test_each_episode_has_a_video_of_all_its_frames_close_to_the_originals(exported):
    episodes, out = exported
    for index, episode in enumerate(episodes):
        path = out / "videos" / CAMERA / "chunk-000" / f"file-{index:03d}.mp4"
        frames = _video_frames(path)
        assert frames.shape == episode.frames.shape  # 30 frames of 66 x 200
        error = np.abs(frames.astype(np.int16) - episode.frames).mean()
        assert error < 3.0  # H.264 at CRF 18: lossy, a few grey levels on average


def test_export_refuses_a_folder_that_is_not_empty(exported, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="is not empty"):
        to_lerobot(exported[1], tmp_path / "out")


def _back(folder: Path) -> list:
    """The episodes of a demonstrations folder, in seed order."""
    return sorted((read_episode(p) for p in scan(folder)[0]), key=lambda e: e.seed)


def _assert_same_drives(back: list, episodes: list) -> None:
    """Every array and the meta exactly as recorded; the frames within H.264's few grey levels."""
    assert [e.seed for e in back] == [e.seed for e in episodes]
    for got, want in zip(back, episodes, strict=True):
        for name in ("labels", "actions", "speed", "lateral_offset", "heading_error"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        if want.speed_limit is None:
            assert got.speed_limit is None
        else:
            np.testing.assert_array_equal(got.speed_limit, want.speed_limit)
        assert got.meta == want.meta and got.world == want.world
        assert got.frames.shape == want.frames.shape
        assert np.abs(got.frames.astype(np.int16) - want.frames).mean() < 3.0


def test_an_export_comes_back_as_the_same_drives(exported, tmp_path):
    episodes, out = exported
    summary = from_lerobot(out, tmp_path / "back")
    assert summary == {"out": tmp_path / "back", "episodes": 2, "frames": 60}
    _assert_same_drives(_back(tmp_path / "back"), episodes)


def test_drives_recorded_without_the_limit_export_the_speed_alone_and_come_back(tmp_path):
    drives = write_drives(tmp_path / "drives", [6])
    episodes = [replace(episode, speed_limit=None) for episode in drives]  # as before 2026-12-07
    for episode in episodes:
        write_episode(tmp_path / "data", episode)
    to_lerobot(tmp_path / "data", tmp_path / "out")
    info = json.loads((tmp_path / "out" / "meta" / "info.json").read_text())
    assert info["features"]["observation.state"] == {
        "dtype": "float32",
        "shape": [1],
        "names": ["speed"],
    }
    table = pq.read_table(tmp_path / "out" / "data" / "chunk-000" / "file-000.parquet")
    assert str(table.schema.field("observation.state").type) == "float"
    from_lerobot(tmp_path / "out", tmp_path / "back")
    _assert_same_drives(_back(tmp_path / "back"), episodes)


def test_episodes_sharing_one_video_file_are_cut_apart(exported, tmp_path):
    """lerobot's own writer puts many episodes in one mp4, back to back: each is cut out by its
    from_timestamp and length."""
    episodes, out = exported
    shared = tmp_path / "shared"
    shutil.copytree(out, shared)
    videos = shared / "videos" / CAMERA / "chunk-000"
    (videos / "file-001.mp4").unlink()
    write_video(videos / "file-000.mp4", np.concatenate([e.frames for e in episodes]), fps=10)
    rows_path = shared / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    rows = pd.read_parquet(rows_path)
    rows.loc[1, [f"videos/{CAMERA}/file_index", f"videos/{CAMERA}/from_timestamp"]] = [0, 3.0]
    rows.loc[1, f"videos/{CAMERA}/to_timestamp"] = 6.0
    rows.to_parquet(rows_path)
    from_lerobot(shared, tmp_path / "back")
    _assert_same_drives(_back(tmp_path / "back"), episodes)


def test_a_lerobot_dataset_of_another_robot_is_refused_in_one_line(exported, tmp_path):
    other = tmp_path / "arm"
    shutil.copytree(exported[1], other)
    info = json.loads((other / "meta" / "info.json").read_text())
    info["features"]["action"]["shape"] = [7]  # a 7-joint arm
    (other / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="is not a driving dataset: it needs a video feature"):
        from_lerobot(other, tmp_path / "back")
    assert not (tmp_path / "back").exists()


LOAD = """
import json, sys
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
# pyav: torchcodec needs the system's FFmpeg libraries, which a plain machine lacks
dataset = LeRobotDataset("local/export", root=sys.argv[1], video_backend="pyav")
items = [dataset[i] for i in (0, 29, 30, 59)]
print(json.dumps({
    "len": len(dataset), "episodes": dataset.num_episodes, "fps": dataset.fps,
    "images": [(it["observation.images.camera"].numpy() * 255).round().tolist() for it in items],
    "actions": [item["action"].tolist() for item in items],
    "states": [item["observation.state"].tolist() for item in items],
    "tasks": [item["task"] for item in items],
}))
"""


@pytest.mark.skipif(
    not LEROBOT_PYTHON.exists(),
    reason=f"no lerobot environment at {LEROBOT_PYTHON}: run scripts/lerobot_check.sh",
)
def test_lerobots_own_loader_reads_the_export(exported):
    episodes, out = exported
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(LEROBOT_PYTHON), "-c", LOAD, str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert (got["len"], got["episodes"], got["fps"]) == (60, 2, 10)
    wanted = [episodes[0].frames[0], episodes[0].frames[29], episodes[1].frames[0],
              episodes[1].frames[29]]  # fmt: skip
    labels = [episodes[0].labels[0], episodes[0].labels[29], episodes[1].labels[0],
              episodes[1].labels[29]]  # fmt: skip
    for image, frame, action, label in zip(
        got["images"], wanted, got["actions"], labels, strict=True
    ):
        chw = np.asarray(image).transpose(1, 2, 0)  # lerobot gives (3, H, W) in [0, 1]
        assert np.abs(chw - frame).mean() < 3.0
        np.testing.assert_allclose(action, label, rtol=0, atol=1e-7)
    states = [[e.speed[i], e.speed_limit[i]] for e in episodes for i in (0, 29)]
    np.testing.assert_allclose(got["states"], states, rtol=0, atol=1e-6)
    assert set(got["tasks"]) == {"keep the lane of the winding road at the speed limit"}
