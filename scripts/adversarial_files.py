"""Hostile files for `scripts/adversarial.py`: damaged episode files, datasets, checkpoints.

Each maker takes a copy (never the shared fixture) and damages it in place, the way bad luck
(a flipped bit, a full disk, a killed copy) or bad intent (a forged header, a pickle that runs
code) would. The checks that read a dataset back decode every frame, so that a checksum that
does not hold counts as a damaged file, not a finished episode.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import torch

from driving.data import DatasetError, read_episode

GOOD_EPISODE = "episode_0000000_*.h5"
"""The fixture dataset's episode of road 0: the one the file cases damage."""


def episode_of_road(folder: Path, seed: int = 0) -> Path:
    """The (first) episode file of road `seed` in `folder`."""
    return sorted(folder.glob(f"episode_{seed:07d}_*.h5"))[0]


def finished_roads(folder: Path) -> Counter:
    """Road seed -> number of intact episode files (every frame decoded, checksums checked)."""
    roads: Counter = Counter()
    for path in sorted(Path(folder).glob("*.h5")):
        try:
            roads[read_episode(path).seed] += 1
        except DatasetError:
            continue
    return roads


# ---------------------------------------------------------------- raw bytes


def flip_bytes(path: Path, where: float, count: int = 16) -> None:
    """Invert `count` bytes starting at fraction `where` of the file (0 = its first byte)."""
    data = bytearray(path.read_bytes())
    start = min(int(where * len(data)), len(data) - count)
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float) -> None:
    """Cut the file to fraction `keep` of its size (a killed copy, a full disk)."""
    os.truncate(path, int(keep * path.stat().st_size))


def garbage(path: Path, size: int = 7000, hdf5_signature: bool = False) -> None:
    """Write `size` random bytes (after HDF5's 8-byte signature if asked) to `path`."""
    head = b"\x89HDF\r\n\x1a\n" if hdf5_signature else b""
    path.write_bytes(head + np.random.default_rng(0).bytes(size - len(head)))


# ---------------------------------------------------------------- forged episode files


def edit_attrs(path: Path, **attrs) -> None:
    """Overwrite root attributes of an episode file (a str value is stored as fixed-length bytes,
    as the writer stores `meta`)."""
    with h5py.File(path, "r+", locking=False) as f:
        for key, value in attrs.items():
            del f.attrs[key]
            f.attrs[key] = np.bytes_(value.encode()) if isinstance(value, str) else value


def edit_meta(path: Path, change) -> None:
    """Replace the episode's `meta` JSON by `change(meta)`."""
    with h5py.File(path, "r", locking=False) as f:
        raw = f.attrs["meta"]
    meta = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    edit_attrs(path, meta=json.dumps(change(meta)))


def set_label(path: Path, value: float) -> None:
    """Rewrite label row 0 (a valid checksum over an invalid value)."""
    with h5py.File(path, "r+", locking=False) as f:
        f["labels"][0, 0] = value


def forge_shapes(path: Path, steps: int, height: int, width: int) -> None:
    """Replace `path` by a small valid HDF5 file declaring `steps` frames of `height` x `width`:
    chunked arrays with no chunk stored, so a few KB declare terabytes."""
    with h5py.File(path, "r", locking=False) as f:
        attrs = dict(f.attrs)
    path.unlink()
    with h5py.File(path, "w", libver=("v110", "v110")) as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["num_frames"] = steps
        frames = (steps, height, width, 3)
        chunks = (1, min(height, 1000), min(width, 1000), 3)  # HDF5 caps a chunk at 4 GB
        f.create_dataset("frames", shape=frames, dtype="u1", chunks=chunks)
        for name in ("labels", "actions"):
            f.create_dataset(name, shape=(steps, 2), dtype="f4", chunks=(min(steps, 1024), 2))
        for name in ("speed", "lateral_offset", "heading_error"):
            f.create_dataset(name, shape=(steps,), dtype="f4", chunks=(min(steps, 1024),))


# ---------------------------------------------------------------- checkpoints


class RunsCode:
    """A pickled object that runs a shell command when unpickled (what weights_only refuses)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def edit_checkpoint(source: Path, target: Path, change) -> Path:
    """Copy a checkpoint with `change(ckpt)` applied to its dict (it edits in place)."""
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    change(ckpt)
    torch.save(ckpt, target)
    return target


def code_checkpoint(target: Path, marker: Path) -> Path:
    """A checkpoint-looking file whose unpickling creates `marker` (proof that code ran)."""
    torch.save({"kind": "pixels-to-pedals/pilotnet", "model": RunsCode(f"touch {marker}")}, target)
    return target


def poison_weights(value: float):
    """A checkpoint change that sets the first weight of the first layer to `value`."""

    def change(ckpt: dict) -> None:
        first = next(iter(ckpt["model"]))
        weights = ckpt["model"][first].clone().contiguous()
        weights.view(-1)[0] = value
        ckpt["model"][first] = weights

    return change


def huge_layer(ckpt: dict) -> None:
    """Declare the first layer 100000 x 100000 (stored as one element: stride 0)."""
    first = next(iter(ckpt["model"]))
    ckpt["model"][first] = torch.zeros(1).expand(100_000, 100_000)


def bad_optimizer_shapes(ckpt: dict) -> None:
    """Give every optimizer moment the wrong shape."""
    for state in ckpt["optimizer"]["state"].values():
        state["exp_avg"] = torch.zeros(3)
        state["exp_avg_sq"] = torch.zeros(3)
