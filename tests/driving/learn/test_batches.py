"""Batches come straight from one uint8 tensor: the right frames, no copy, a reproducible order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from driving.data import Frames
from driving.learn.batches import curve_weights, epoch_order, to_device

ROOT = Path(__file__).resolve().parents[3]


def _frames(count: int = 50) -> Frames:
    rng = np.random.default_rng(0)
    return Frames(
        frames=rng.integers(0, 256, (count, 66, 200, 3), dtype=np.uint8),
        labels=rng.uniform(-1, 1, (count, 2)).astype(np.float32),
        speed=rng.uniform(0, 20, count).astype(np.float32),
        episode=np.zeros(count, np.int32),
        viewpoint=np.zeros(count, bool),
    )


def test_a_batch_holds_exactly_the_indexed_frames_labels_and_speeds():
    frames = _frames()
    tensors = to_device(frames, torch.device("cpu"))
    idx = torch.tensor([7, 0, 7, 49])
    image, speed, label, limit = tensors.batch(idx)
    assert limit is None  # not asked for
    assert image.dtype == torch.uint8 and image.shape == (4, 66, 200, 3)  # normalised in the net
    np.testing.assert_array_equal(image.numpy(), frames.frames[[7, 0, 7, 49]])
    np.testing.assert_array_equal(speed.numpy(), frames.speed[[7, 0, 7, 49]])
    np.testing.assert_array_equal(label.numpy(), frames.labels[[7, 0, 7, 49]])


def test_a_stacked_batch_puts_the_earlier_frame_first_and_the_samples_own_last():
    # given two episodes of 25 frames, stacked by 2 frames 3 steps apart
    frames = _frames()
    frames.episode[25:] = 1
    tensors = to_device(frames, torch.device("cpu"), stack=2, stride=3)
    idx = torch.tensor([7, 0, 25, 49])
    image, speed, label, _ = tensors.batch(idx)
    assert image.dtype == torch.uint8 and image.shape == (4, 66, 200, 6)
    # then channels 3:6 hold the sample's own frame, 0:3 the frame 3 steps earlier (clamped to
    # the episode's first one); speed and label are the sample's own
    np.testing.assert_array_equal(image[..., 3:].numpy(), frames.frames[[7, 0, 25, 49]])
    np.testing.assert_array_equal(image[..., :3].numpy(), frames.frames[[4, 0, 25, 46]])
    np.testing.assert_array_equal(speed.numpy(), frames.speed[[7, 0, 25, 49]])
    np.testing.assert_array_equal(label.numpy(), frames.labels[[7, 0, 25, 49]])
    # and the GPU gather (its torch ops run here too) and the pinned upload's gather agree
    assert torch.equal(tensors._gather_cuda(idx), image)
    staging = np.empty((4, 66, 200, 6), np.uint8)
    tensors._gather_host(idx.numpy(), out=staging)
    np.testing.assert_array_equal(staging, image.numpy())


def test_asked_for_the_limit_a_batch_holds_each_samples_own():
    # given frames whose speed limit differs per row, stacked by 2
    frames = _frames()
    frames.speed_limit = np.linspace(8.0, 22.0, 50, dtype=np.float32)
    tensors = to_device(frames, torch.device("cpu"), stack=2, limit=True)
    idx = torch.tensor([7, 0, 7, 49])
    # then the fourth tensor is the limit of each sample's own (newest) row
    np.testing.assert_array_equal(tensors.batch(idx)[3].numpy(), frames.speed_limit[[7, 0, 7, 49]])
    # and the GPU gather (its torch ops run here too) and the pinned upload's take the same
    cuda = torch.index_select(tensors.limit, 0, idx)
    assert torch.equal(cuda, tensors.batch(idx)[3]) and torch.equal(
        tensors._limit(idx.numpy()), cuda
    )


def test_frames_recorded_without_the_limit_cannot_give_it():
    with pytest.raises(ValueError, match="recorded without the speed limit"):
        to_device(_frames(), torch.device("cpu"), limit=True)


def test_on_the_cpu_the_set_is_shared_with_numpy_not_copied():
    frames = _frames()
    tensors = to_device(frames, torch.device("cpu"))
    assert tensors.on_device and tensors.index_device == torch.device("cpu")
    assert tensors.images.data_ptr() == frames.frames.ctypes.data
    assert len(tensors) == 50


def test_epoch_order_is_reproducible_per_epoch_and_follows_the_weights():
    weights = curve_weights(np.concatenate([np.zeros(90), np.full(10, 0.5)]))
    cpu = torch.device("cpu")
    first = epoch_order(100, weights, seed=3, epoch=0, device=cpu)
    assert first.dtype == torch.int64 and len(first) == 100
    assert torch.equal(first, epoch_order(100, weights, seed=3, epoch=0, device=cpu))  # resume
    assert not torch.equal(first, epoch_order(100, weights, seed=3, epoch=1, device=cpu))
    # 10 curve frames of 100 get half the weight: about half of the draws
    assert 30 <= int((first >= 90).sum()) <= 70
    plain = epoch_order(100, None, seed=3, epoch=0, device=cpu)
    assert torch.equal(plain.sort().values, torch.arange(100))  # a permutation without weights


@pytest.mark.slow
def test_the_benchmark_prints_each_ratio_with_its_target():
    script = ROOT / "scripts" / "benchmark_training.py"
    env = {"PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--batch-size", "32"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    real = next(line for line in lines if line.strip().startswith("real data path"))
    assert "target >= 0.90" in real and ("PASS" in real or "FAIL" in real)
    latency = [line for line in lines if "target p50 <= 2 ms" in line]
    assert len(latency) == 2 and all("p99" in line for line in latency)
