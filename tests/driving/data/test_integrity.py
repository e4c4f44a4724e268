"""Integrity of episode files: checksums, forged headers and metadata, damaged roads recollected."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from driving.data import DatasetError, info, load_split, read_episode, scan, used_seeds
from driving.data.store import write_episode
from tests.driving.data.test_dataset import FIELDS, make_episode


def _flip(path: Path, position: int, count: int = 16) -> None:
    """Invert `count` bytes of a file from `position` on (a damaged disk or copy)."""
    data = bytearray(path.read_bytes())
    for i in range(position, min(position + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_anywhere_in_an_episode_are_never_read_as_data(tmp_path):
    # given an episode file (noise frames: the file is mostly compressed frame chunks)
    good = make_episode(3, steps=40, size=(66, 200))
    path = write_episode(tmp_path / "data", good)
    original = path.read_bytes()
    positions = np.linspace(0, len(original) - 16, 40).astype(int)
    for position in positions:
        # when 16 bytes at one position are inverted
        path.write_bytes(original)
        _flip(path, int(position))
        # then reading it either refuses in one line naming the file, or gives the same data
        try:
            back = read_episode(path)
        except DatasetError as error:
            assert path.name in str(error) and "\n" not in str(error)
            continue
        assert all(np.array_equal(getattr(back, k), getattr(good, k)) for k in FIELDS), position
        assert back.meta == good.meta and back.seed == good.seed


def test_a_damaged_frame_chunk_is_named_by_info_and_train_and_its_road_recollectable(tmp_path):
    # given a dataset of two roads, one of whose files has damaged frames in the middle
    root = tmp_path / "data"
    write_episode(root, make_episode(1, steps=40, size=(66, 200)))
    damaged = write_episode(root, make_episode(2, steps=40, size=(66, 200)))
    _flip(damaged, damaged.stat().st_size // 2)
    # when the dataset is reported, trained on, and asked which roads are recorded
    report = info(root)
    with pytest.raises(DatasetError) as error:
        load_split(root, val_fraction=0.0)
    # then info and training name the file, and road 2 counts as not recorded
    assert f"skipping {damaged.name}: damaged data (checksum mismatch" in report
    assert "episodes:    1 readable, 1 skipped" in report
    assert damaged.name in str(error.value) and "damaged data" in str(error.value)
    assert used_seeds(root) == {1}
    from driving.data.store import claim_road

    claim = claim_road(root, 2, lambda root, seed: seed in used_seeds(root))
    assert claim is not None  # a collector may record it again
    claim.release()


def test_files_without_checksums_still_read(tmp_path):
    # given an episode written as before checksums (plain h5py, no filter)
    episode = make_episode(4, steps=10)
    root = tmp_path / "old"
    root.mkdir()
    path = root / "episode_0000004_0badc0de.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(format_version=2, seed=4, num_frames=10, meta=json.dumps(episode.meta))
        for name in FIELDS:
            f.create_dataset(name, data=getattr(episode, name))
    # then it reads back, and info says it carries no checksums
    assert np.array_equal(read_episode(path).frames, episode.frames)
    assert "checksums:   0 of 1 episodes" in info(root)
    assert used_seeds(root) == {4}


def _forged(path: Path, steps: int, size: tuple[int, int], chunks: bool) -> None:
    """A few-kilobyte episode file whose header declares `steps` steps of `size` frames."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format_version=2, seed=9, num_frames=steps, meta='{"driver": "expert"}')
        shapes = {"frames": (steps, *size, 3), "labels": (steps, 2), "actions": (steps, 2)}
        for name in FIELDS:
            shape = shapes.get(name, (steps,))
            dtype = np.uint8 if name == "frames" else np.float32
            chunk = (1, *shape[1:]) if chunks else None
            f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunk)


@pytest.mark.parametrize(
    "steps, size, chunks",
    [(5_000_000_000, (4, 5), True), (1, (60000, 60000), True), (5_000_000_000, (4, 5), False)],
)
def test_a_forged_header_is_refused_before_anything_is_allocated(tmp_path, steps, size, chunks):
    # given a dataset holding one good episode and a tiny file declaring an enormous one
    root = tmp_path / "data"
    write_episode(root, make_episode(1))
    forged = root / "episode_0000009_0badc0de.h5"
    _forged(forged, steps, size, chunks)
    assert forged.stat().st_size < 100_000
    # when it is read, reported and listed
    with pytest.raises(DatasetError) as error:
        read_episode(forged)
    paths, problems = scan(root)
    # then it is refused in one line naming it, and the rest of the dataset is usable
    assert forged.name in str(error.value) and "\n" not in str(error.value)
    assert len(paths) == 1 and any(forged.name in p for p in problems)
    assert "1 readable, 1 skipped" in info(root)


def test_metadata_with_an_unknown_camera_setting_is_refused_when_read(tmp_path):
    # given an episode whose world record names a camera setting that does not exist
    root = tmp_path / "data"
    write_episode(root, make_episode(1))
    world = {"scenario": "winding-road", "camera": {"kind": "topdown", "zoom": 3}}
    bad = write_episode(root, make_episode(2, world=world))
    # then every reader skips it by name and says which field is wrong
    paths, problems = scan(root)
    assert len(paths) == 1
    assert any(bad.name in p and "meta.world" in p and "zoom" in p for p in problems), problems
