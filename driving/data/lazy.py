"""Frames read from the episode files on demand, and a torch `Dataset` of training samples.

For datasets larger than memory: `load_split(root, lazy=True)` keeps only the small per-step
arrays in memory (labels, speed, speed limit: 16 bytes a frame) and gives an `EpisodeRows` as
the frames, which reads the rows it is indexed with from the HDF5 files (each file opened once
per process, so it works in `DataLoader` workers; HDF5 decodes a chunk of 16 frames and keeps
it cached, so neighbouring rows cost one decode). `SampleDataset` turns a split, lazy or in
memory, into PilotNet's samples:

    train, val = load_split("data/demo", lazy=True)
    loader = DataLoader(SampleDataset(train), batch_size=128, shuffle=True, num_workers=2)
    for image, speed, label in loader:  # (B, H, W, 3K) uint8, (B,) [m/s], (B, 2) [steer, thr]
        ...  # SampleDataset(train, limit=True): a 4th, the speed limit (B,) [m/s]

`drive train --data-loading lazy` trains from it (`driving.learn.batches.to_device`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np
import torch

from driving.data.format import DatasetError, Frames
from driving.data.read import stack_indices

OPEN_FILES = 16  # episode files a process keeps open (least recently used closed first)
CHUNK_CACHE = 2 * 2**20  # [B] HDF5's cache of decoded chunks, per open file: a 16-frame chunk


class EpisodeRows:
    """The frames of a split's episodes as one (N, H, W, 3) uint8 array read on demand.

    Indexing with an int or an array of row indices (any order, repeats allowed) reads those
    rows; `len`, `shape` and `dtype` are those of the array it stands for.
    """

    def __init__(self, paths: list[Path], lengths: list[int], size: tuple[int, int]) -> None:
        self.paths = list(paths)
        self.shape = (int(sum(lengths)), *size, 3)
        self.dtype = np.dtype(np.uint8)
        self.file = np.repeat(np.arange(len(paths), dtype=np.int32), lengths)  # (N,) file of row
        starts = np.cumsum([0, *lengths[:-1]]) if lengths else np.zeros(0, np.int64)
        self.local = np.arange(self.shape[0], dtype=np.int64) - np.repeat(starts, lengths)
        self._files: OrderedDict[int, h5py.Dataset] = OrderedDict()  # file -> its frames
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        flat = rows.reshape(-1)
        out = np.empty((len(flat), *self.shape[1:]), np.uint8)
        order = np.lexsort((self.local[flat], self.file[flat]))  # file by file, in row order
        for at in order:
            file, local = self.file[flat[at]], self.local[flat[at]]
            try:
                self._frames(file).read_direct(out, np.s_[local : local + 1], np.s_[at : at + 1])
            except (OSError, KeyError, ValueError) as error:
                text = str(error).lower()
                damaged = "checksum" in text or "filter returned failure" in text
                reason = (
                    "damaged data (checksum mismatch or undecodable chunk)" if damaged else error
                )
                raise DatasetError(
                    f"cannot load {self.paths[file]}: {reason}; delete or move it away "
                    "(`drive collect` records its road again)"
                ) from None
        return out.reshape(*rows.shape, *self.shape[1:])

    def _frames(self, file: int) -> h5py.Dataset:
        """This process's handle on the frames of file `file` (a forked worker opens its own).

        The dataset handle is kept, not just the file's: HDF5's chunk cache belongs to an open
        dataset, so reopening it per row would decode the row's 16-frame chunk every time."""
        if self._pid != os.getpid():  # inherited from the parent: HDF5 handles do not fork
            self._files, self._pid = OrderedDict(), os.getpid()
        if file in self._files:
            self._files.move_to_end(file)
            return self._files[file]
        if len(self._files) >= OPEN_FILES:
            self._files.popitem(last=False)[1].file.close()
        handle = h5py.File(self.paths[file], "r", locking=False, rdcc_nbytes=CHUNK_CACHE)
        self._files[file] = handle["frames"]
        return self._files[file]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_files": OrderedDict()}  # handles stay in their process


class SampleDataset(torch.utils.data.Dataset):
    """PilotNet's samples of a split (`load_split`, lazy or in memory), one per row.

    Sample i is (image (H, W, 3K) uint8, speed [m/s] (), label (2,) float32), and with `limit`
    the speed limit [m/s] () too: the row's frame with the K-1 earlier ones of its stack
    (`stack_indices`, oldest first) on the channel axis, exactly as
    `driving.learn.batches.DeviceFrames.batch` gathers them. `batch(idx)` gives a whole batch on
    `device` (its limit None without `limit`), so training uses it where it uses `DeviceFrames`.
    """

    def __init__(
        self,
        frames: Frames,
        device: torch.device | str = "cpu",
        stack: int = 1,
        stride: int = 1,
        limit: bool = False,
    ) -> None:
        self.frames = frames
        self.device = torch.device(device)
        self.stack = stack_indices(frames, stack, stride) if stack > 1 else None  # (N, K)
        self.labels = torch.from_numpy(frames.labels)  # (N, 2), in host memory
        self.speed = torch.from_numpy(frames.speed)  # (N,) [m/s]
        self.limit = torch.from_numpy(speed_limit(frames)) if limit else None  # (N,) [m/s]
        self.images = _TensorRows(frames.frames)  # images[idx]: rows as a tensor

    def __len__(self) -> int:
        return len(self.frames.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        sample = self._gather(np.array([i], np.int64))
        return tuple(part[0] for part in sample if part is not None)

    @property
    def index_device(self) -> torch.device:
        """Where index tensors for `batch` live: host memory (the rows are read there)."""
        return torch.device("cpu")

    @property
    def on_device(self) -> bool:
        """Whether the frames live where the model runs (never on a GPU: they are on disk)."""
        return self.device.type == "cpu"

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(image uint8 (B, H, W, 3K), speed (B,) [m/s], label (B, 2), speed limit (B,) [m/s]
        or None) of samples `idx`, on `device`."""
        sample = self._gather(idx.cpu().numpy())
        return tuple(None if part is None else part.to(self.device) for part in sample)

    def _gather(self, pick: np.ndarray) -> tuple[torch.Tensor | None, ...]:
        rows = pick[:, None] if self.stack is None else self.stack[pick]  # (B, K)
        frames = self.frames.frames[rows]  # (B, K, H, W, 3)
        batch, k, height, width, channels = frames.shape
        # A sample's K frames side by side on the channel axis, in the stack's order.
        image = np.ascontiguousarray(frames.transpose(0, 2, 3, 1, 4))
        image = image.reshape(batch, height, width, k * channels)
        limit = None if self.limit is None else self.limit[pick]
        return torch.from_numpy(image), self.speed[pick], self.labels[pick], limit


def speed_limit(frames: Frames) -> np.ndarray:
    """(N,) float32 the speed limit [m/s] of each row of `frames`, for a net told the limit.

    Raises:
        DatasetError: an episode of the set was recorded without it.
    """
    if frames.speed_limit is None:
        raise DatasetError(
            "an episode was recorded without the speed limit (before 2026-12-07, or converted "
            "from another format): collect the data again to train with the limit input"
        )
    return frames.speed_limit


class _TensorRows:
    """`rows[idx]` as a torch tensor (what `DeviceFrames.images[idx]` gives)."""

    def __init__(self, rows) -> None:
        self.rows = rows

    def __getitem__(self, idx) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.rows[idx]))
