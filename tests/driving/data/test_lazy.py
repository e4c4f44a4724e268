"""Frames read from the files on demand (`load_split(lazy=True)`, `SampleDataset`): the same
samples as the in-memory loader, in DataLoader workers too, and the same training."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import learnable_episode
from torch.utils.data import DataLoader

from driving.data import DatasetError, load_split, write_episode
from driving.data.lazy import EpisodeRows, SampleDataset
from driving.learn.batches import to_device
from tests.driving.data.test_integrity import _flip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Six roads of different lengths (not multiples of HDF5's 16-frame chunks) and a road of
    shifted views."""
    root = tmp_path_factory.mktemp("lazy") / "data"
    for seed, frames in [(1, 37), (2, 50), (3, 16), (4, 23), (5, 41), (6, 9)]:
        write_episode(root, learnable_episode(seed, frames=frames, height=24, width=40))
    views = learnable_episode(7, frames=12, height=24, width=40, meta={"driver": "viewpoint"})
    write_episode(root, views)
    return root


def _both(root: Path):
    """(memory, lazy) train and val splits of the same folder."""
    return load_split(root, val_fraction=0.3), load_split(root, val_fraction=0.3, lazy=True)


def test_a_lazy_split_holds_the_same_rows_without_reading_the_frames(dataset):
    memory, lazy = _both(dataset)
    for want, got in zip(memory, lazy, strict=True):
        assert isinstance(got.frames, EpisodeRows) and len(got.frames) == len(want.frames) > 0
        assert got.frames.shape == want.frames.shape
        for name in ("labels", "speed", "episode", "viewpoint"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        np.testing.assert_array_equal(got.frames[np.arange(len(want.frames))], want.frames)
    rows = np.array([[5, 5], [len(want.frames) - 1, 0]])  # any shape, order and repeats
    np.testing.assert_array_equal(lazy[0].frames[rows], memory[0].frames[rows])


@pytest.mark.parametrize("stack, stride", [(1, 1), (3, 2)])
def test_dataloader_workers_yield_exactly_the_in_memory_samples(dataset, stack, stride):
    # given the same split in memory (as training gathers it) and lazy, in a Dataset
    (train, _), (lazy_train, _) = _both(dataset)
    memory = to_device(train, torch.device("cpu"), stack=stack, stride=stride)
    samples = SampleDataset(lazy_train, stack=stack, stride=stride)
    samples[0]  # the parent holds an open file when the workers fork
    # when two workers read it in an epoch's shuffled order, in batches
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(samples)))
    loader = DataLoader(
        samples, batch_size=16, sampler=order.tolist(), num_workers=2, persistent_workers=False
    )
    got = [torch.cat(parts) for parts in zip(*loader, strict=True)]
    # then every image, speed and label is the in-memory loader's, bit for bit
    want = memory.batch(order)
    assert got[0].shape == (len(samples), 24, 40, 3 * stack) and got[0].dtype == torch.uint8
    assert want[3] is None and len(got) == 3  # no speed limit asked for
    for name, a, b in zip(("image", "speed", "label"), got, want[:3], strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(samples.batch(order[:40])[0], want[0][:40])


def test_a_lazy_split_gives_each_samples_speed_limit_as_the_memory_one_does(tmp_path):
    # given roads that record their limit [m/s]
    for seed, limit in [(1, 9.0), (2, 21.0)]:
        episode = learnable_episode(seed, frames=20, height=24, width=40)
        write_episode(tmp_path, replace(episode, speed_limit=np.full(20, limit, np.float32)))
    memory = to_device(load_split(tmp_path, 0.0)[0], torch.device("cpu"), stack=2, limit=True)
    samples = SampleDataset(load_split(tmp_path, 0.0, lazy=True)[0], stack=2, limit=True)
    # then a lazy batch holds the same limits, and a sample carries its own
    order = torch.tensor([0, 39, 20, 19])
    assert torch.equal(samples.batch(order)[3], memory.batch(order)[3])
    assert samples.batch(order)[3].tolist() == [9.0, 21.0, 21.0, 9.0]
    assert len(samples[25]) == 4 and samples[25][3] == 21.0


@pytest.mark.slow  # two short trainings: 33 s on the shared 2-core machine (load 10)
def test_training_from_the_files_is_training_from_memory(tmp_path):
    from driving.learn.train import TrainConfig, train

    data = tmp_path / "data"
    for seed, frames in [(1, 30), (2, 25), (3, 20)]:  # 66 x 200: PilotNet's input
        write_episode(data, learnable_episode(seed, frames=frames))
    settings = dict(val_fraction=0.34, epochs=2, batch_size=24, frames=2, threads=2)
    results = {}
    for loading in ("memory", "lazy"):
        run = tmp_path / loading
        cfg = TrainConfig(data, run, data_loading=loading, **settings)
        results[loading] = train(cfg)
        weights = torch.load(run / "last.pt", weights_only=True)["model"]
        results[loading]["weights"] = weights
    memory, lazy = results["memory"], results["lazy"]
    assert lazy["steps"] == memory["steps"] > 0
    assert lazy["best_val"] == memory["best_val"] and lazy["last_val"] == memory["last_val"]
    for name, value in memory["weights"].items():
        assert torch.equal(lazy["weights"][name], value), name


def test_a_file_damaged_after_the_split_is_named(dataset, tmp_path):
    root = tmp_path / "data"
    paths = [
        write_episode(root, learnable_episode(s, frames=40, height=24, width=40)) for s in (1, 2)
    ]
    train, _ = load_split(root, val_fraction=0.0, lazy=True)
    _flip(paths[1], paths[1].stat().st_size // 2)
    samples = SampleDataset(train)
    with pytest.raises(DatasetError, match=f"cannot load {paths[1]}: damaged data"):
        samples.batch(torch.arange(len(samples)))
