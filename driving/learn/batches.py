"""Training batches straight from memory: the dataset as one uint8 tensor where the model runs.

`load_split` gives numpy arrays; `to_device` turns them into torch tensors once (no copy on the
CPU, one upload on a GPU), and every batch is then one gather with a tensor of indices on the
same device (`index_select` on a GPU, numpy's one-thread `take` in host memory). Frames stay
uint8 until the network's own normalisation, so a GPU holds 40 KB per 66x200 frame and no batch
ever crosses PCIe. When the frames do not fit in GPU memory they stay in host memory and each
batch is gathered into pinned memory and copied asynchronously.

    tensors = to_device(train_set, torch.device("cuda"))
    order = epoch_order(len(tensors), weights, seed=0, epoch=0, device=tensors.index_device)
    image, speed, label, limit = tensors.batch(order[:128])  # limit: None unless asked for

For a net that stacks K frames (`ModelConfig.frames`), `to_device(..., stack=K, stride=S)` keeps
each sample's K rows (`driving.data.stack_indices`) and `batch` gathers them into one
(B, H, W, 3K) image, oldest frame first; the frames are still stored once. For a net told the
road's speed limit (`ModelConfig.limit_input`), `to_device(..., limit=True)` keeps each row's
limit beside its speed, and `batch` gives it as a fourth tensor.

The CUDA branches (gathering on the GPU, the pinned upload) are untested: no GPU was available.
The CPU tests cover the host gather that the upload shares, and run the GPU gather's torch
indexing on CPU tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from driving.data import Frames, stack_indices
from driving.data.lazy import EpisodeRows, SampleDataset, speed_limit

GPU_HEADROOM = 0.8
"""Share of the GPU's free memory the dataset may take; the rest is for the model and batches."""


@dataclass(eq=False)
class DeviceFrames:
    """A training or validation set as tensors, ready to be indexed into batches."""

    images: torch.Tensor  # (N, H, W, 3) uint8, on `device` (or in host memory, see `to_device`)
    speed: torch.Tensor  # (N,) float32 [m/s], next to `images`
    labels: torch.Tensor  # (N, 2) float32 [steering, throttle], next to `images`
    device: torch.device  # where the batches are used
    stack: torch.Tensor | None = None  # (N, K) int64 rows of each sample's frames, next to `images`
    limit: torch.Tensor | None = None  # (N,) float32 speed limit [m/s], next to `images`

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def on_device(self) -> bool:
        """Whether the frames live where the model runs (always true on the CPU)."""
        return self.images.device == self.device

    @property
    def index_device(self) -> torch.device:
        """Where index tensors for `batch` must live (next to the frames)."""
        return self.images.device

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(image uint8 (B, H, W, 3K), speed [m/s] (B,), label (B, 2), speed limit [m/s] (B,)
        or None without `limit`) of the samples `idx`.

        The speed, label and limit are those of the sample's own (newest) frame.

        Args:
            idx: (B,) int64 sample indices, on the same device as the frames (`index_device`).
        """
        if self.images.is_cuda:
            speed, labels = (torch.index_select(a, 0, idx) for a in (self.speed, self.labels))
            limit = None if self.limit is None else torch.index_select(self.limit, 0, idx)
            return self._gather_cuda(idx), speed, labels, limit
        # In host memory numpy gathers on one thread. torch.index_select splits the 5 MB over the
        # intra-op threads, and on a busy machine one descheduled thread stalls the batch
        # (measured under load 10 on 2 cores: mean 60 ms, worst 1 s, against 1 ms for numpy).
        pick = idx.numpy()
        if self.device.type == "cpu":
            image = torch.from_numpy(self._gather_host(pick))
            speed, labels = (np.take(a.numpy(), pick, axis=0) for a in (self.speed, self.labels))
            return image, torch.from_numpy(speed), torch.from_numpy(labels), self._limit(pick)
        return self._upload(pick)

    def _limit(self, pick: np.ndarray) -> torch.Tensor | None:
        """The speed limits [m/s] of samples `pick` from host memory (None without `limit`)."""
        return None if self.limit is None else torch.from_numpy(np.take(self.limit.numpy(), pick))

    def _gather_cuda(self, idx: torch.Tensor) -> torch.Tensor:
        """The images of samples `idx` from frames in GPU memory (B, H, W, 3K)."""
        if self.stack is None:
            return torch.index_select(self.images, 0, idx)
        batch, k = len(idx), self.stack.shape[1]
        height, width, channels = self.images.shape[1:]
        rows = torch.index_select(self.stack, 0, idx).flatten()  # (B * K,)
        frames = torch.index_select(self.images, 0, rows).view(batch, k, height, width, channels)
        # A sample's K frames side by side on the channel axis, in the stack's order.
        image = frames.permute(0, 2, 3, 1, 4).contiguous()  # (B, H, W, K, 3)
        return image.view(batch, height, width, k * channels)

    def _gather_host(self, pick: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The images of samples `pick` from frames in host memory (B, H, W, 3K), into `out`."""
        images = self.images.numpy()
        if self.stack is None:
            return np.take(images, pick, axis=0, out=out)
        batch, k = len(pick), self.stack.shape[1]
        height, width, channels = images.shape[1:]
        rows = np.take(self.stack.numpy(), pick, axis=0).ravel()  # (B * K,)
        frames = np.take(images, rows, axis=0).reshape(batch, k, height, width, channels)
        if out is None:
            out = np.empty((batch, height, width, k * channels), np.uint8)
        # A sample's K frames side by side on the channel axis, in the stack's order.
        np.copyto(out.reshape(batch, height, width, k, channels), frames.transpose(0, 2, 3, 1, 4))
        return out

    def _upload(self, pick: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Gather on the host into pinned memory, then copy without blocking the CPU.

        PyTorch's caching pinned allocator keeps a buffer until its copy has finished, so a fresh
        buffer per batch is both cheap and safe.
        """
        height, width, channels = self.images.shape[1:]
        k = 1 if self.stack is None else self.stack.shape[1]
        shape = (len(pick), height, width, channels * k)
        staging = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self._gather_host(pick, out=staging.numpy())
        image = staging.to(self.device, non_blocking=True)
        speed = torch.from_numpy(np.take(self.speed.numpy(), pick, axis=0)).to(self.device)
        labels = torch.from_numpy(np.take(self.labels.numpy(), pick, axis=0)).to(self.device)
        limit = self._limit(pick)
        return image, speed, labels, None if limit is None else limit.to(self.device)


def to_device(
    frames: Frames,
    device: torch.device,
    verbose: bool = True,
    stack: int = 1,
    stride: int = 1,
    limit: bool = False,
) -> DeviceFrames | SampleDataset:
    """Wrap `frames` as tensors on `device`: shared with numpy on the CPU, uploaded once on a GPU.

    On CUDA the frames go to GPU memory if they take at most `GPU_HEADROOM` of what is free;
    otherwise they stay in host memory (a line says so) and batches are uploaded one by one.
    Frames left in the files (`load_split(lazy=True)`) give a `SampleDataset`, whose batches
    are read from the files (same samples, same `batch` interface).

    Args:
        frames: arrays from `load_split`.
        device: where the model runs.
        verbose: print where the frames went (CUDA only).
        stack: frames per sample (`ModelConfig.frames`); 1 gathers single frames.
        stride: steps between a sample's frames (`ModelConfig.frame_stride`).
        limit: keep each row's speed limit for the batches (`ModelConfig.limit_input`).

    Raises:
        DatasetError: `limit` for frames of an episode recorded without the limit.
    """
    if isinstance(frames.frames, EpisodeRows):  # `load_split(lazy=True)`: the frames stay on disk
        return SampleDataset(frames, device, stack, stride, limit)
    images = torch.from_numpy(frames.frames)  # no copy
    speed, labels = torch.from_numpy(frames.speed), torch.from_numpy(frames.labels)
    rows = torch.from_numpy(stack_indices(frames, stack, stride)) if stack > 1 else None
    limits = torch.from_numpy(speed_limit(frames)) if limit else None
    size = images.nbytes + speed.nbytes + labels.nbytes + (0 if rows is None else rows.nbytes)
    size += 0 if limits is None else limits.nbytes
    where = device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if size > GPU_HEADROOM * free:
            where = torch.device("cpu")
            if verbose:
                print(
                    f"{len(frames)} frames ({size / 1e9:.1f} GB) do not fit in the "
                    f"{free / 1e9:.1f} GB free on {device}: batches are gathered in pinned host "
                    "memory and uploaded one by one"
                )
        elif verbose:
            print(f"{len(frames)} frames on {device} as uint8: {size / 1e9:.2f} GB")
    rows = None if rows is None else rows.to(where)
    limits = None if limits is None else limits.to(where)
    return DeviceFrames(images.to(where), speed.to(where), labels.to(where), device, rows, limits)


def epoch_order(
    n: int, weights: np.ndarray | None, seed: int, epoch: int, device: torch.device
) -> torch.Tensor:
    """Frame indices of one epoch as an int64 tensor on `device`.

    A generator seeded by (seed, epoch) makes resuming exact and gives every DDP rank the same
    global order. With `weights` (see `curve_weights`), frames are drawn with replacement.
    """
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        order = rng.permutation(n)
    else:
        order = rng.choice(n, size=n, replace=True, p=weights)
    return torch.from_numpy(order.astype(np.int64)).to(device)


def curve_weights(steering: np.ndarray, bins: int = 15, cap: float = 10.0) -> np.ndarray:
    """Sampling probabilities that over-represent curves.

    Demonstrations are mostly straight driving, so a net trained on them learns to go straight.
    Each frame is weighted by the inverse frequency of its |steering| bin (`bins` equal bins over
    [0, max |steering|]), which makes every bin about equally likely. The weight is capped at
    `cap` times the weight of the most common bin, so that a bin holding a handful of frames is
    not repeated hundreds of times per epoch (that would overfit those few frames).

    Args:
        steering: (N,) steering labels in [-1, 1].
        bins: number of |steering| bins.
        cap: largest weight, relative to the most common bin's.

    Returns:
        (N,) float64 probabilities summing to 1.
    """
    magnitude = np.abs(np.asarray(steering, dtype=np.float64))
    top = magnitude.max(initial=0.0)
    if top == 0.0:
        return np.full(len(magnitude), 1.0 / len(magnitude))
    counts, edges = np.histogram(magnitude, bins=bins, range=(0.0, top))
    which = np.digitize(magnitude, edges[1:-1])  # bin index 0..bins-1 of every frame
    weight = np.minimum(1.0 / counts[which], cap / counts.max())
    return weight / weight.sum()


def speed_weights(speed: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Sampling probabilities `weights` (None: uniform) times each frame's speed squared.

    A steering error e commands a path curvature off by about e / L, which moves the car
    sideways at v^2 e / L: the same error costs four times as much at twice the speed. Speeds
    under 1 m/s count as 1 m/s, so that a car at a standstill is still drawn.

    Args:
        speed: (N,) speed of each frame [m/s].
        weights: (N,) probabilities to scale, e.g. `curve_weights`'s.

    Returns:
        (N,) float64 probabilities summing to 1.
    """
    weight = np.maximum(np.asarray(speed, dtype=np.float64), 1.0) ** 2
    if weights is not None:
        weight = weight * weights
    return weight / weight.sum()
