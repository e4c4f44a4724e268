"""Tests of the demonstrations dataset: real HDF5 files in a temporary folder, synthetic data."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from driving.data import (
    FORMAT_VERSION,
    DatasetError,
    Episode,
    Frames,
    info,
    load_split,
    read_episode,
    scan,
    stack_indices,
    used_seeds,
    write_episode,
)

ZSTD_FILTER = "32015"  # HDF5's registered id of the Zstandard filter
FIELDS = ("frames", "labels", "actions", "speed", "lateral_offset", "heading_error")


def make_episode(seed: int, steps: int = 6, size: tuple[int, int] = (4, 5), **meta) -> Episode:
    """A small synthetic episode whose values depend on `seed`."""
    rng = np.random.default_rng(seed)
    labels = rng.uniform(-1, 1, (steps, 2)).astype(np.float32)
    return Episode(
        frames=rng.integers(0, 256, (steps, *size, 3), dtype=np.uint8),
        labels=labels,
        actions=np.clip(labels + rng.normal(0, 0.1, labels.shape), -1, 1).astype(np.float32),
        speed=rng.uniform(0, 15, steps).astype(np.float32),
        lateral_offset=rng.normal(0, 0.3, steps).astype(np.float32),
        heading_error=rng.normal(0, 0.05, steps).astype(np.float32),
        seed=seed,
        meta={"driver": "expert", **meta},
    )


def write_by_hand(path: Path, episode: Episode, **overrides) -> None:
    """Write an episode file with plain h5py, replacing some datasets or attributes."""
    with h5py.File(path, "w") as f:
        for name in FIELDS:
            f.create_dataset(name, data=overrides.get(name, getattr(episode, name)))
        f.attrs["format_version"] = overrides.get("format_version", FORMAT_VERSION)
        f.attrs["seed"] = episode.seed
        f.attrs["num_frames"] = len(episode.frames)
        f.attrs["meta"] = json.dumps(episode.meta)


def manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def test_round_trip_keeps_every_field(tmp_path):
    # given an episode with nested meta
    meta = {"camera": {"size": [66, 200], "fov": 0.5}, "noise": None, "ok": True, "name": "röad"}
    episode = make_episode(7, steps=9, **meta)
    # when it is written into a new (nested) folder and read back
    path = write_episode(tmp_path / "new" / "data", episode)
    back = read_episode(path)
    # then every field is equal, with the documented dtypes
    assert re.fullmatch(r"episode_0000007_[0-9a-f]{8}\.h5", path.name)
    for name in FIELDS:
        assert np.array_equal(getattr(back, name), getattr(episode, name)), name
        assert getattr(back, name).dtype == getattr(episode, name).dtype, name
    assert back.seed == 7 and back.meta == episode.meta
    # and the file is plain HDF5 laid out as documented
    with h5py.File(path, "r") as f:
        assert sorted(f.attrs) == ["format_version", "meta", "num_frames", "seed"]
        assert (f.attrs["format_version"], f.attrs["seed"], f.attrs["num_frames"]) == (2, 7, 9)
        assert json.loads(f.attrs["meta"]) == episode.meta
        assert f["frames"].chunks == (9, 4, 5, 3)  # up to 16 frames per chunk
        assert ZSTD_FILTER in f["frames"]._filters  # Zstandard, registered by hdf5plugin


def test_version_1_files_gzip_one_frame_per_chunk_are_still_read_beside_version_2(tmp_path):
    # given a folder holding a version-1 episode (as the previous release wrote it) and a new one
    new = make_episode(2, steps=40, size=(6, 8))
    write_episode(tmp_path, new)
    old = make_episode(1, steps=40, size=(6, 8))
    with h5py.File(tmp_path / "episode_0000001_0123abcd.h5", "w") as f:
        f.attrs.update(format_version=1, seed=1, num_frames=40, meta=json.dumps(old.meta))
        f.create_dataset(
            "frames", data=old.frames, chunks=(1, 6, 8, 3), compression="gzip", compression_opts=1
        )
        for name in FIELDS[1:]:
            f.create_dataset(name, data=getattr(old, name))
    # when the folder is read back episode by episode and for training
    paths, warnings = scan(tmp_path)
    with pytest.warns(UserWarning, match="not in manifest.json"):
        train, _ = load_split(tmp_path, val_fraction=0.0)
    # then both are intact (the hand-written file is not in the manifest: one warning)
    assert len(paths) == 2 and len(warnings) == 1
    assert np.array_equal(read_episode(paths[0]).frames, old.frames)
    assert np.array_equal(read_episode(paths[1]).frames, new.frames)
    assert np.array_equal(train.frames, np.concatenate([old.frames, new.frames]))


def test_numpy_values_in_meta_are_stored_as_json(tmp_path):
    episode = make_episode(1, crashed=np.bool_(False), gain=np.float32(0.5), lanes=np.arange(2))
    back = read_episode(write_episode(tmp_path, episode))
    assert back.meta == {"driver": "expert", "crashed": False, "gain": 0.5, "lanes": [0, 1]}


def test_rerun_appends_never_overwrites(tmp_path):
    first = write_episode(tmp_path, make_episode(3))
    second = write_episode(tmp_path, make_episode(3, driver="dagger-1"))
    assert first != second and first.exists() and second.exists()
    data = manifest(tmp_path)
    assert data["format"] == "pixels-to-pedals/demonstrations" and data["format_version"] == 2
    assert data["episodes"] == [
        {"file": first.name, "seed": 3, "frames": 6, "driver": "expert"},
        {"file": second.name, "seed": 3, "frames": 6, "driver": "dagger-1"},
    ]
    assert scan(tmp_path) == (sorted([first, second]), [])


def test_leftover_tmp_files_are_ignored_and_old_ones_cleaned(tmp_path):
    good = write_episode(tmp_path, make_episode(1))
    fresh = tmp_path / "episode_0000002_0123abcd.h5.tmp"  # a live writer's
    stale = tmp_path / "episode_0000003_89abcdef.h5.tmp"  # a writer killed 2 h ago
    for path in (fresh, stale):
        path.write_bytes(b"half an HDF5 file")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert scan(tmp_path) == ([good], [])
    write_episode(tmp_path, make_episode(4))
    assert fresh.exists() and not stale.exists()


def test_truncated_and_empty_files_are_skipped_with_a_warning(tmp_path):
    good, cut, empty = (write_episode(tmp_path, make_episode(seed)) for seed in (1, 2, 3))
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    empty.write_bytes(b"")
    paths, problems = scan(tmp_path)
    assert paths == [good]
    assert f"skipping {cut.name}: truncated or corrupt HDF5 file" in problems
    assert any(p.startswith(f"skipping {empty.name}: empty file") for p in problems)
    with pytest.raises(DatasetError, match=re.escape(cut.name)):
        read_episode(cut)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"labels": np.zeros((6, 2), np.float64)}, "'labels' has dtype float64, expected float32"),
        ({"frames": np.zeros((6, 4, 5), np.uint8)}, "'frames' has shape (6, 4, 5)"),
        ({"frames": np.zeros((6, 4, 5, 3), np.float32)}, "'frames' has dtype float32"),
        ({"speed": np.zeros(5, np.float32)}, "'speed' has 5 steps, expected 6"),
    ],
)
def test_file_with_wrong_dtype_or_shape_is_skipped(tmp_path, override, reason):
    good = write_episode(tmp_path, make_episode(1))
    bad = tmp_path / "episode_0000002_0badf11e.h5"
    write_by_hand(bad, make_episode(2), **override)
    paths, problems = scan(tmp_path)
    assert paths == [good]
    assert any(p.startswith(f"skipping {bad.name}: {reason}") for p in problems), problems
    with pytest.raises(DatasetError, match=re.escape(reason)):
        read_episode(bad)


def test_nan_label_is_refused_at_write_and_detected_at_read(tmp_path):
    episode = make_episode(5)
    episode.labels[2, 0] = np.nan
    with pytest.raises(DatasetError, match=r"seed 5.*'labels' contains NaN or inf \(.*step 2\)"):
        write_episode(tmp_path / "data", episode)
    assert not (tmp_path / "data").exists()  # refused before anything was created
    write_episode(tmp_path, make_episode(1))
    bad = tmp_path / "episode_0000005_00000000.h5"
    write_by_hand(bad, episode)
    with pytest.raises(DatasetError, match=f"{bad.name}.*NaN"):
        read_episode(bad)
    assert any(bad.name in p and "NaN" in p for p in scan(tmp_path)[1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: setattr(e, "frames", e.frames[:0]), "no frames"),
        (lambda e: setattr(e, "actions", e.actions[:-1]), "'actions' has 5 steps, expected 6"),
        (lambda e: setattr(e, "labels", e.labels * 3), r"'labels' outside \[-1, 1\]"),
        (lambda e: setattr(e, "speed", e.speed.astype(float)), "'speed' has dtype float64"),
        (lambda e: setattr(e, "frames", e.frames.tolist()), "'frames' must be a numpy array"),
        (lambda e: setattr(e, "seed", -1), "seed must be >= 0"),
        (
            lambda e: setattr(e, "speed_limit", np.zeros((6, 1), np.float32)),
            r"'speed_limit' has shape \(6, 1\), expected \(6,\)",
        ),
        (
            lambda e: setattr(e, "speed_limit", np.full(6, np.nan, np.float32)),
            "'speed_limit' contains NaN",
        ),
        (lambda e: e.meta.update(when=object()), "meta is not JSON-serialisable"),
    ],
)
def test_invalid_episode_is_refused_before_writing(tmp_path, change, message):
    episode = make_episode(1)
    change(episode)
    with pytest.raises(DatasetError, match=message):
        write_episode(tmp_path / "data", episode)
    assert not (tmp_path / "data").exists()


def test_manifest_that_disagrees_with_the_files_is_warned(tmp_path):
    kept, gone = (write_episode(tmp_path, make_episode(seed)) for seed in (1, 2))
    gone.unlink()
    data = manifest(tmp_path)
    data["episodes"][0]["frames"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    paths, problems = scan(tmp_path)
    assert paths == [kept]
    assert any(f"lists {gone.name}, which is missing" in p for p in problems)
    assert any(f"says {kept.name} has 99 frames, the file has 6" in p for p in problems)


def test_file_missing_from_the_manifest_is_warned_then_listed_by_the_next_writer(tmp_path):
    # given a writer killed between renaming its file and listing it
    orphan = write_episode(tmp_path, make_episode(1))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest(tmp_path) | {"episodes": []}))
    paths, problems = scan(tmp_path)
    assert paths == [orphan] and len(problems) == 1
    assert problems[0].startswith(f"{orphan.name} is not in manifest.json")
    # when the next episode is written, then the manifest lists both
    newer = write_episode(tmp_path, make_episode(2))
    assert [e["file"] for e in manifest(tmp_path)["episodes"]] == [orphan.name, newer.name]
    assert scan(tmp_path) == (sorted([orphan, newer]), [])


def test_missing_empty_and_foreign_folders_give_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist: create one with `drive collect"):
        scan(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"is not a dataset \(no manifest.json\): create one"):
        scan(tmp_path)
    (tmp_path / "notes.txt").write_text("my holiday photos")
    with pytest.raises(DatasetError, match="is not a dataset"):
        load_split(tmp_path)
    with pytest.raises(DatasetError, match="is not a dataset folder .*'notes.txt'.* new or empty"):
        write_episode(tmp_path, make_episode(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # left untouched
    with pytest.raises(DatasetError, match="is not a directory"):
        scan(tmp_path / "notes.txt")


def test_dataset_without_readable_episodes_is_an_error(tmp_path):
    write_episode(tmp_path, make_episode(1)).write_bytes(b"")
    with pytest.raises(DatasetError, match=r"contains no readable episode \(1 unreadable"):
        info(tmp_path)


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    write_episode(tmp_path, make_episode(1))
    newer = tmp_path / "episode_0000002_0000000f.h5"
    write_by_hand(newer, make_episode(2), format_version=FORMAT_VERSION + 1)
    for call in (read_episode, lambda _: scan(tmp_path)):
        with pytest.raises(DatasetError, match=r"newer version .*upgrade"):
            call(newer)
    newer.unlink()
    data = manifest(tmp_path) | {"format_version": FORMAT_VERSION + 1}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"manifest.json was written by a newer version .*upgr"):
        write_episode(tmp_path, make_episode(3))


def test_split_is_by_road_and_deterministic(tmp_path):
    # given 10 roads, road 0 driven twice (e.g. by the expert and a DAgger round)
    for seed in [0, *range(10)]:
        write_episode(tmp_path, make_episode(seed, steps=4 + seed))
    paths = scan(tmp_path)[0]
    seeds = [read_episode(p).seed for p in paths]
    # when split
    train, val = load_split(tmp_path, val_fraction=0.3, seed=0)
    # then no episode (and no road) is on both sides
    train_eps, val_eps = set(train.episode.tolist()), set(val.episode.tolist())
    assert not train_eps & val_eps and train_eps | val_eps == set(range(len(paths)))
    assert len({seeds[i] for i in val_eps}) == 3
    assert not {seeds[i] for i in train_eps} & {seeds[i] for i in val_eps}
    # and each frame keeps its episode's label, speed and pixels, as uint8
    for part in (train, val):
        assert part.frames.dtype == np.uint8 and part.episode.dtype == np.int32
        for i in set(part.episode.tolist()):
            episode, rows = read_episode(paths[i]), part.episode == i
            assert np.array_equal(part.frames[rows], episode.frames)
            assert np.array_equal(part.labels[rows], episode.labels)
            assert np.array_equal(part.speed[rows], episode.speed)
    assert len(train) + len(val) == sum(4 + s for s in seeds)
    # and the same seed gives the same split, another seed (usually) another
    again = load_split(tmp_path, val_fraction=0.3, seed=0)[1]
    assert np.array_equal(again.episode, val.episode) and np.array_equal(again.frames, val.frames)
    others = {tuple(load_split(tmp_path, 0.3, seed=s)[1].episode.tolist()) for s in range(1, 5)}
    assert others - {tuple(val.episode.tolist())}


def test_split_of_a_single_road_warns_that_validation_is_empty(tmp_path):
    write_episode(tmp_path, make_episode(4, steps=5))
    with pytest.warns(UserWarning, match="only one road .*validation set is empty"):
        train, val = load_split(tmp_path)
    assert len(train) == 5 and val.frames.shape == (0, 4, 5, 3)
    with pytest.raises(DatasetError, match="val_fraction must be in"):
        load_split(tmp_path, val_fraction=1.0)


def test_mixed_frame_sizes_name_the_odd_file(tmp_path):
    for seed in (1, 2):
        write_episode(tmp_path, make_episode(seed))
    odd = write_episode(tmp_path, make_episode(3, size=(8, 5)))
    with pytest.raises(DatasetError, match=f"{odd.name} has 8x5 px frames, most .* 4x5"):
        load_split(tmp_path)


def test_info_reports_counts_statistics_and_warnings(tmp_path):
    for seed in (2, 5, 9):
        write_episode(tmp_path, make_episode(seed))
    (tmp_path / "episode_0000011_00000000.h5").write_bytes(b"junk")
    report = info(tmp_path)
    assert "3 readable, 1 skipped" in report and "18 (" in report  # 3 x 6 frames
    assert "4x5 px" in report and "2..9 (3 distinct roads)" in report and "expert (3" in report
    assert re.search(r"steering: +mean [+-]\d\.\d{3}", report) and "throttle:" in report
    assert report.count("|") == 2 * 2 * 10  # two histograms of ten bars
    assert "skipping episode_0000011_00000000.h5: truncated or corrupt HDF5 file" in report
    assert "speed limit: not recorded" in report
    limits = np.linspace(8.0, 22.0, 6, dtype=np.float32)
    write_episode(tmp_path, replace(make_episode(12), speed_limit=limits))
    assert "speed limit: 8.0..22.0 m/s, recorded in 1 of 4 episodes" in info(tmp_path)


def test_used_seeds_are_the_roads_of_intact_files(tmp_path):
    assert used_seeds(tmp_path / "new") == set()
    for seed in (3, 1, 3, 5):
        write_episode(tmp_path, make_episode(seed))
    (tmp_path / "episode_0000042_00000000.h5").write_bytes(b"")  # unreadable: not recorded
    next(tmp_path.glob("episode_0000005_*.h5")).unlink()  # deleted, still in the manifest
    assert used_seeds(tmp_path) == {1, 3}


def _write_five(root: Path, first_seed: int, barrier) -> None:
    barrier.wait()  # start both writers at the same moment
    for seed in range(first_seed, first_seed + 5):
        write_episode(root, make_episode(seed))


def test_two_processes_writing_at_once_keep_the_dataset_consistent(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=_write_five, args=(tmp_path, s, barrier)) for s in (0, 5)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0
    paths, problems = scan(tmp_path)
    assert len(paths) == 10 and problems == []
    entries = manifest(tmp_path)["episodes"]
    assert sorted(e["file"] for e in entries) == [p.name for p in paths]
    assert sorted(e["seed"] for e in entries) == list(range(10))
    assert not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------- frame stacking


def _rows(episode: list[int], viewpoint: list[bool]) -> Frames:
    """Frames whose pixels do not matter: only the episode of each row and its kind."""
    count = len(episode)
    return Frames(
        frames=np.zeros((count, 1, 1, 3), np.uint8),
        labels=np.zeros((count, 2), np.float32),
        speed=np.zeros(count, np.float32),
        episode=np.asarray(episode, np.int32),
        viewpoint=np.asarray(viewpoint, bool),
    )


def test_stack_indices_look_back_within_the_episode_oldest_first():
    # given episodes of 4 and 3 steps, then a shifted-view episode of 2 rows
    frames = _rows([0, 0, 0, 0, 1, 1, 1, 2, 2], [False] * 7 + [True] * 2)
    # then each row stacks earlier rows of its own episode, the first row repeated before it
    stride_1 = [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [4, 4, 4], [4, 4, 5], [4, 5, 6]]
    stride_2 = [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 3], [4, 4, 4], [4, 4, 5], [4, 4, 6]]
    views = [[7, 7, 7], [8, 8, 8]]  # separate views, not a trajectory: the row's own frame
    for stride, expected in ((1, stride_1), (2, stride_2)):
        got = stack_indices(frames, k=3, stride=stride)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected + views)
    np.testing.assert_array_equal(stack_indices(frames, k=1, stride=3), np.arange(9)[:, None])


def test_loaded_rows_know_whether_they_are_shifted_views(tmp_path):
    write_episode(tmp_path, make_episode(0, steps=3))
    write_episode(tmp_path, make_episode(0, steps=2, driver="viewpoint"))
    train, _ = load_split(tmp_path, val_fraction=0.0)
    driver = [read_episode(p).meta["driver"] for p in scan(tmp_path)[0]]
    expected = [driver[i] == "viewpoint" for i in train.episode]
    assert train.viewpoint.tolist() == expected and sum(expected) == 2


def test_the_speed_limit_is_an_optional_array_read_back_for_training(tmp_path):
    # given two episodes that record the lane's speed limit [m/s] at every step
    for seed in (1, 2):
        limit = np.full(6, 8.0 + seed, np.float32)
        write_episode(tmp_path, replace(make_episode(seed), speed_limit=limit))
    # then it is stored as a (T,) float32 array and read back with the episode and for training
    paths = scan(tmp_path)[0]
    with h5py.File(paths[0], "r") as f:
        assert f["speed_limit"].shape == (6,) and f["speed_limit"].dtype == np.float32
    np.testing.assert_array_equal(read_episode(paths[1]).speed_limit, np.full(6, 10.0))
    for lazy in (False, True):
        train, _ = load_split(tmp_path, val_fraction=0.0, lazy=lazy)
        np.testing.assert_array_equal(train.speed_limit, np.repeat([9.0, 10.0], 6))
    # and an episode recorded before the limit was (no such array) still reads: the set then
    # has no limit, rather than a made-up one
    write_episode(tmp_path, make_episode(3))
    assert read_episode(scan(tmp_path)[0][2]).speed_limit is None
    for lazy in (False, True):
        train, _ = load_split(tmp_path, val_fraction=0.0, lazy=lazy)
        assert len(train) == 18 and train.speed_limit is None
