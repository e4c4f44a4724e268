"""Training batches straight from memory: the dataset as one uint8 tensor where the model runs.

`load_split` gives numpy arrays; `to_device` turns them into torch tensors once (no copy on the
CPU, one upload on a GPU), and every batch is then one gather with a tensor of indices on the
same device (`index_select` on a GPU, numpy's one-thread `take` in host memory). Frames stay
uint8 until the network's own normalisation, so a GPU holds 40 KB per 66x200 frame and no batch
ever crosses PCIe. When the frames do not fit in GPU memory they stay in host memory and each
batch is gathered into pinned memory and copied asynchronously.

    tensors = to_device(train_set, torch.device("cuda"))
    order = epoch_order(len(tensors), weights, seed=0, epoch=0, device=tensors.index_device)
    image, speed, label = tensors.batch(order[:128])

The CUDA branches (gathering on the GPU, the pinned upload) are untested: no GPU was available.
The CPU tests cover the host gather that the upload shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from driving.dataset import Frames

GPU_HEADROOM = 0.8
"""Share of the GPU's free memory the dataset may take; the rest is for the model and batches."""


@dataclass(eq=False)
class DeviceFrames:
    """A training or validation set as tensors, ready to be indexed into batches."""

    images: torch.Tensor  # (N, H, W, 3) uint8, on `device` (or in host memory, see `to_device`)
    speed: torch.Tensor  # (N,) float32 [m/s], next to `images`
    labels: torch.Tensor  # (N, 2) float32 [steering, throttle], next to `images`
    device: torch.device  # where the batches are used

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

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image uint8 (B, H, W, 3), speed [m/s] (B,), label (B, 2)) of the frames `idx`.

        Args:
            idx: (B,) int64 frame indices, on the same device as the frames (`index_device`).
        """
        arrays = (self.images, self.speed, self.labels)
        if self.images.is_cuda:
            return tuple(torch.index_select(a, 0, idx) for a in arrays)
        # In host memory numpy gathers on one thread. torch.index_select splits the 5 MB over the
        # intra-op threads, and on a busy machine one descheduled thread stalls the batch
        # (measured under load 10 on 2 cores: mean 60 ms, worst 1 s, against 1 ms for numpy).
        pick = idx.numpy()
        if self.device.type == "cpu":
            return tuple(torch.from_numpy(np.take(a.numpy(), pick, axis=0)) for a in arrays)
        return self._upload(pick)

    def _upload(self, pick: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gather on the host into pinned memory, then copy without blocking the CPU.

        PyTorch's caching pinned allocator keeps a buffer until its copy has finished, so a fresh
        buffer per batch is both cheap and safe.
        """
        shape = (len(pick), *self.images.shape[1:])
        staging = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        np.take(self.images.numpy(), pick, axis=0, out=staging.numpy())
        image = staging.to(self.device, non_blocking=True)
        speed = torch.from_numpy(np.take(self.speed.numpy(), pick, axis=0)).to(self.device)
        labels = torch.from_numpy(np.take(self.labels.numpy(), pick, axis=0)).to(self.device)
        return image, speed, labels


def to_device(frames: Frames, device: torch.device, verbose: bool = True) -> DeviceFrames:
    """Wrap `frames` as tensors on `device`: shared with numpy on the CPU, uploaded once on a GPU.

    On CUDA the frames go to GPU memory if they take at most `GPU_HEADROOM` of what is free;
    otherwise they stay in host memory (a line says so) and batches are uploaded one by one.

    Args:
        frames: arrays from `load_split`.
        device: where the model runs.
        verbose: print where the frames went (CUDA only).
    """
    images = torch.from_numpy(frames.frames)  # no copy
    speed, labels = torch.from_numpy(frames.speed), torch.from_numpy(frames.labels)
    if device.type != "cuda":
        return DeviceFrames(images.to(device), speed.to(device), labels.to(device), device)
    size = images.nbytes + speed.nbytes + labels.nbytes
    free, _ = torch.cuda.mem_get_info(device)
    if size <= GPU_HEADROOM * free:
        if verbose:
            print(f"{len(frames)} frames on {device} as uint8: {size / 1e9:.2f} GB")
        return DeviceFrames(images.to(device), speed.to(device), labels.to(device), device)
    if verbose:
        print(
            f"{len(frames)} frames ({size / 1e9:.1f} GB) do not fit in the {free / 1e9:.1f} GB "
            f"free on {device}: batches are gathered in pinned host memory and uploaded one by one"
        )
    return DeviceFrames(images, speed, labels, device)


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
