"""Demonstrations on disk: one HDF5 file per driven episode, plus a manifest.

Collection calls `write_episode` once per finished episode, training calls `load_split`, and
`drive info DIR` prints `info(DIR)`. Writing is crash-safe and several processes may write into one
folder at once. POSIX only (uses `fcntl`).

Format, version 2 (HDF5 + JSON; the frames are Zstandard-compressed, so plain h5py needs
``import hdf5plugin`` first, and other HDF5 tools the plugin path ``hdf5plugin.PLUGIN_PATH``)::

    DIR/manifest.json                  index of the episodes, see below
    DIR/episode_<seed:07d>_<hex8>.h5   one file per episode; <seed> = the road's seed,
                                       <hex8> = 8 random hex digits so that names never collide
    DIR/.lock                          empty; writers hold an exclusive flock on it
    DIR/*.tmp                          files being written, or left by a killed writer: ignore them

Every episode file holds T >= 1 steps (one row per policy step; row t's label is the expert's
answer to frame t) as root-level datasets:

    frames          (T, H, W, 3) uint8   camera frames, RGB, row 0 = top of the image;
                                         chunks of 16 frames, Zstandard level 1 (HDF5 filter
                                         32015); version 1 files: one frame per chunk, gzip 1
    labels          (T, 2) float32       the expert's [steering, throttle], finite, in [-1, 1]:
                                         the training target
    actions         (T, 2) float32       the [steering, throttle] actually executed (expert + noise)
    speed           (T,) float32         ego speed [m/s]
    lateral_offset  (T,) float32         signed distance from the lane centre [m]
    heading_error   (T,) float32         heading minus lane direction [rad]

and root attributes:

    format_version  int   2 (1 in older files, still read); readers refuse higher numbers
    seed            int   the road's seed (>= 0)
    num_frames      int   T
    meta            str   JSON object: scenario, camera, driver, noise, outcome...;
                          meta["driver"] is a short string naming who drove ("expert", ...)

manifest.json::

    {"format": "pixels-to-pedals/demonstrations", "format_version": 2,
     "episodes": [{"file": "episode_0000003_ab12cd34.h5", "seed": 3, "frames": 300,
                   "driver": "expert"}, ...]}

Reading one episode without this package::

    import hdf5plugin  # noqa: F401  (registers the Zstandard filter with h5py)

    with h5py.File(path, "r") as f:
        frames, labels = f["frames"][:], f["labels"][:]  # (T, H, W, 3) uint8, (T, 2) float32
        meta = json.loads(f.attrs["meta"])

Why version 2: version 1 stored one gzip-compressed frame per chunk, 2.8 KB a frame read back
at about 10,000 frames/s on one core; Zstandard in chunks of 16 frames takes 2.4 KB a frame and
reads back at about 4x that speed, and writes faster too. The number went up because a version-1
reader cannot decode these frames and would call a good file corrupt; with 2 it says "upgrade".
Version 1 files are still read, and folders may mix both.

A writer writes `<name>.h5.tmp`, fsyncs it, renames it to `<name>.h5` and adds it to the manifest
(rename and manifest update under the lock; the manifest is replaced atomically). The episode
files are the truth: readers warn when the manifest disagrees with them, and the next writer adds
files whose writer was killed between the rename and the manifest update.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from driving.files import write_json

FORMAT_VERSION = 2
FRAMES_PER_CHUNK = 16  # frames compressed together: fewer, larger chunks decode much faster
FRAME_COMPRESSION = hdf5plugin.Zstd(clevel=1)  # measured best size x speed (module docstring)
FORMAT_NAME = "pixels-to-pedals/demonstrations"
MANIFEST = "manifest.json"
LOCK = ".lock"
STALE_TMP_AGE = 3600.0  # [s] a writer's .tmp older than this was left by a killed process
_STEP_ARRAYS = ("labels", "actions", "speed", "lateral_offset", "heading_error")
_PAIRS = ("labels", "actions")  # (T, 2) [steering, throttle]; the other per-step arrays are (T,)
_ARRAYS = ("frames", *_STEP_ARRAYS)
_NAME = re.compile(r"episode_(\d+)_[0-9a-f]{8}\.h5")
_COLLECT_HINT = "create one with `drive collect --out DIR`"
VIEWPOINT_DRIVER = "viewpoint"
"""meta["driver"] of shifted-view episodes: each row is a view of its own, not a trajectory step."""


class DatasetError(ValueError):
    """One-line, user-facing problem with a dataset (names the file/folder and what to do)."""


class _Invalid(Exception):
    """Why one episode file (or episode) is unusable; the caller adds the name."""


@dataclass(eq=False)
class Episode:
    """One driven episode, T steps long (compare fields with `np.array_equal`)."""

    frames: np.ndarray  # (T, H, W, 3) uint8 camera frames, RGB
    labels: np.ndarray  # (T, 2) float32, the expert's [steering, throttle] in [-1, 1] (the target)
    actions: np.ndarray  # (T, 2) float32, the [steering, throttle] executed (expert + noise)
    speed: np.ndarray  # (T,) float32 [m/s]
    lateral_offset: np.ndarray  # (T,) float32 [m] from the lane centre
    heading_error: np.ndarray  # (T,) float32 [rad]
    seed: int  # the road's seed, >= 0
    meta: dict  # JSON-serialisable settings (driver, scenario, camera, noise...); read back as JSON


@dataclass(eq=False)
class Frames:
    """Training arrays from several episodes; frames stay uint8.

    The rows of one episode are consecutive and in time order.
    """

    frames: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N, 2) float32
    speed: np.ndarray  # (N,) float32 [m/s]
    episode: np.ndarray  # (N,) int32 index into `scan(root)[0]` of each frame's episode
    viewpoint: np.ndarray  # (N,) bool, row of a shifted-view episode (driver "viewpoint")

    def __len__(self) -> int:
        return len(self.frames)


def stack_indices(frames: Frames, k: int, stride: int) -> np.ndarray:
    """Rows of the `k` frames a frame-stacking net sees for each row, oldest first.

    Column k-1 is the row itself, column j the row (k-1-j) * `stride` steps earlier in the same
    episode. Before an episode's first row there is no frame: its first row is repeated, as
    `driving.learn.policy.NetPolicy` does at the start of a drive. Rows of a shifted-view episode
    (driver "viewpoint") are separate views, not steps of a trajectory, so their stack repeats
    the row's own frame (a still scene).

    Args:
        frames: arrays from `load_split`.
        k: frames per sample, >= 1.
        stride: steps between two stacked frames, >= 1.

    Returns:
        (N, k) int64 row indices into `frames`.
    """
    rows = np.arange(len(frames), dtype=np.int64)
    new_episode = np.ones(len(frames), bool)
    new_episode[1:] = frames.episode[1:] != frames.episode[:-1]
    first = np.maximum.accumulate(np.where(new_episode, rows, 0))  # first row of each row's episode
    back = stride * np.arange(k - 1, -1, -1, dtype=np.int64)  # (k,) steps back, oldest first
    out = np.maximum(rows[:, None] - back, first[:, None])  # (N, k)
    out[frames.viewpoint] = rows[frames.viewpoint, None]
    return out


@dataclass
class _Header:
    """What `scan` learns about one readable episode file."""

    path: Path
    num_frames: int
    seed: int
    frame_size: tuple[int, int]  # (H, W) [px]
    driver: str
    labels: np.ndarray


# ---------------------------------------------------------------- validation (shared by both sides)


def _check_layout(arrays: Any, num_frames: int) -> tuple[int, int]:
    """Check the dtypes and shapes of numpy arrays or h5py datasets, reading no data; (H, W)."""
    for name in _ARRAYS:
        array = arrays.get(name)
        if array is None or not hasattr(array, "dtype"):
            raise _Invalid(f"missing array '{name}'")
        kind, size, want = ("u", 1, "uint8") if name == "frames" else ("f", 4, "float32")
        if array.dtype.kind != kind or array.dtype.itemsize != size:
            raise _Invalid(f"'{name}' has dtype {array.dtype}, expected {want}")
        shape = tuple(array.shape)
        if name == "frames":
            ok, expected = len(shape) == 4 and shape[3] == 3 and min(shape) > 0, "(T, H, W, 3)"
        else:
            tail = (2,) if name in _PAIRS else ()
            ok, expected = len(shape) >= 1 and shape[1:] == tail, str(("T", *tail)).replace("'", "")
        if not ok:
            raise _Invalid(f"'{name}' has shape {shape}, expected {expected}")
        if shape[0] != num_frames:
            raise _Invalid(f"'{name}' has {shape[0]} steps, expected {num_frames}")
    return int(arrays["frames"].shape[1]), int(arrays["frames"].shape[2])


def _check_values(small: dict[str, np.ndarray]) -> None:
    """Every per-step array finite; labels in [-1, 1]."""
    for name, array in small.items():
        bad = ~np.isfinite(array)
        if bad.any():
            step = int(np.argwhere(bad)[0][0])
            raise _Invalid(f"'{name}' contains NaN or inf (first at step {step})")
    outside = np.abs(small["labels"]) > 1
    if outside.any():
        step = int(np.argwhere(outside)[0][0])
        raise _Invalid(f"'labels' outside [-1, 1] (first at step {step}: {small['labels'][step]})")


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _Invalid(f"{what} must be an integer, got {value!r}")
    return int(value)


def _json_default(value: Any) -> Any:
    """Let numpy scalars and arrays into meta (collectors often hold them)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _newer(path: Path, version: int) -> DatasetError:
    return DatasetError(
        f"{path} was written by a newer version of pixels-to-pedals (format_version {version},"
        f" this one reads {FORMAT_VERSION}): upgrade with `pip install -U pixels-to-pedals`"
    )


def _driver(meta: dict) -> str:
    driver = meta.get("driver", "unknown")
    return driver if isinstance(driver, str) else json.dumps(driver, default=_json_default)


# ---------------------------------------------------------------- manifest and folder


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the folder's exclusive writer lock (blocks until other writers are done)."""
    with open(root / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_manifest(root: Path) -> tuple[list[dict], str | None]:
    """Manifest entries and a problem (None if fine); raise for a foreign or newer manifest."""
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return [], f"{path} is unreadable ({error})"
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise DatasetError(f"{path} is not a pixels-to-pedals dataset manifest: use another folder")
    version = data.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise _newer(root, version)
    entries = data.get("episodes")
    types = {"file": str, "seed": int, "frames": int, "driver": str}
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and all(isinstance(e.get(k), t) for k, t in types.items())
        for e in entries
    ):
        return [], f"{path} has a malformed 'episodes' list"
    return entries, None


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's renames, to the disk (survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_manifest(root: Path, entries: list[dict]) -> None:
    """Replace the manifest atomically; call with the lock held."""
    data = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "episodes": entries}
    write_json(root / MANIFEST, data, indent=1, fsync=True)
    _fsync(root)


def prepare_folder(root: Path) -> None:
    """Create `root` as an empty dataset if needed; refuse folders that are not datasets."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root} is a file, not a dataset folder: choose another --out")
    if root.is_dir() and not (root / MANIFEST).exists():
        # Before the manifest exists a concurrent first writer may leave only these two; its
        # episode files come after the manifest, so look at the manifest again after listing.
        ours = (LOCK, MANIFEST + ".tmp")
        others = sorted(p.name for p in root.iterdir() if p.name not in ours)
        if others and not (root / MANIFEST).exists():
            raise DatasetError(
                f"{root} is not a dataset folder (it holds {others[0]!r} but no {MANIFEST}): "
                "choose a new or empty folder for --out"
            )
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if not (root / MANIFEST).exists():
            _write_manifest(root, [])
        elif (problem := _load_manifest(root)[1]) is not None:
            raise DatasetError(f"{problem}: repair it, or collect into a new folder")


# ---------------------------------------------------------------- writing


def write_episode(root: Path, episode: Episode) -> Path:
    """Validate `episode` and add it to the dataset in `root` (created if missing).

    Never overwrites: every call adds one new file. Safe against being killed at any moment (at
    most a `.tmp` file is left) and against other processes writing into the same folder.

    Args:
        root: dataset folder.
        episode: the episode to store.

    Returns:
        The path of the new episode file.

    Raises:
        DatasetError: the episode is invalid, or `root` cannot hold a dataset.
    """
    root = Path(root)
    try:
        seed, arrays = _check_episode(episode)
        meta_json = json.dumps(episode.meta, allow_nan=False, default=_json_default)
    except _Invalid as error:
        raise DatasetError(f"cannot write episode (seed {episode.seed}): {error}") from None
    except (TypeError, ValueError) as error:
        raise DatasetError(
            f"cannot write episode (seed {episode.seed}): meta is not JSON-serialisable ({error}): "
            "use str/int/float/bool/None, lists and dicts"
        ) from None
    try:
        return _store(root, seed, arrays, meta_json)
    except OSError as error:
        raise DatasetError(
            f"cannot write into {root}: {error}: check its permissions and the free disk space"
        ) from None


def _check_episode(episode: Episode) -> tuple[int, dict[str, np.ndarray]]:
    """The episode's seed and arrays, all validated."""
    seed = _as_int(episode.seed, "seed")
    if seed < 0:
        raise _Invalid(f"seed must be >= 0, got {seed}")
    arrays = {name: getattr(episode, name) for name in _ARRAYS}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise _Invalid(f"'{name}' must be a numpy array, got {type(array).__name__}")
    num_frames = len(arrays["frames"]) if arrays["frames"].ndim else 0
    if num_frames < 1:
        raise _Invalid("it has no frames (T must be >= 1)")
    _check_layout(arrays, num_frames)
    _check_values({name: arrays[name] for name in _STEP_ARRAYS})
    if not isinstance(episode.meta, dict):
        raise _Invalid(f"meta must be a dict, got {type(episode.meta).__name__}")
    return seed, arrays


def _store(root: Path, seed: int, arrays: dict[str, np.ndarray], meta_json: str) -> Path:
    """Write the episode file under a fresh name, then publish it: rename + manifest, locked."""
    prepare_folder(root)
    for _ in range(10):
        stem = f"episode_{seed:07d}_{secrets.token_hex(4)}"
        tmp, final = root / f"{stem}.h5.tmp", root / f"{stem}.h5"
        if final.exists():
            continue
        try:
            _write_h5(tmp, arrays, seed, meta_json)
        except FileExistsError:  # another writer drew the same name: its file, leave it
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)  # our own half-written file
            raise
        break
    else:
        raise DatasetError(f"cannot find a free episode file name in {root}")
    with _locked(root):
        while final.exists():  # a finished file took our name meanwhile: pick another
            final = root / f"episode_{seed:07d}_{secrets.token_hex(4)}.h5"
        os.replace(tmp, final)
        _fsync(root)
        _write_manifest(root, _list_new_files(root, _load_manifest(root)[0]))
        _remove_stale_tmp(root)
    return final


def _list_new_files(root: Path, entries: list[dict]) -> list[dict]:
    """Append the readable episode files missing from `entries`: the one just written, and any
    whose writer was killed between renaming and listing it (call with the lock held)."""
    listed = {entry["file"] for entry in entries}
    for path in sorted(root.glob("*.h5")):
        if path.name in listed:
            continue
        with contextlib.suppress(_Invalid, DatasetError):  # `scan` reports unreadable files
            with _opened(path) as f:
                header = _read_header(f, path)[0]
            entry = {"file": path.name, "seed": header.seed, "frames": header.num_frames}
            entries.append({**entry, "driver": header.driver})
    return entries


def _write_h5(tmp: Path, arrays: dict[str, np.ndarray], seed: int, meta_json: str) -> None:
    """Write and fsync one episode file; fails with FileExistsError if the name is taken.

    The HDF5 file is built in memory and written with plain file I/O: on a full disk the
    HDF5 library was seen to crash the process (segmentation fault) instead of raising, while a
    plain write raises OSError (ENOSPC) and the caller removes the partial file.
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["seed"] = seed
        f.attrs["num_frames"] = len(arrays["frames"])
        f.attrs["meta"] = meta_json
        frames = arrays["frames"]
        chunks = (min(FRAMES_PER_CHUNK, len(frames)), *frames.shape[1:])
        f.create_dataset("frames", data=frames, chunks=chunks, **FRAME_COMPRESSION)
        for name in _STEP_ARRAYS:
            f.create_dataset(name, data=arrays[name].astype(np.float32, copy=False))
    with open(tmp, "xb") as handle:
        handle.write(buffer.getbuffer())
        handle.flush()
        os.fsync(handle.fileno())


def _remove_stale_tmp(root: Path) -> None:
    """Delete `.h5.tmp` files left by writers killed more than an hour ago (not live writers')."""
    now = time.time()
    for path in root.glob("*.h5.tmp"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_TMP_AGE:
                path.unlink()


# ---------------------------------------------------------------- reading


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[h5py.File]:
    """Open an episode file for reading; any h5py/OS failure becomes `_Invalid`."""
    try:
        if path.stat().st_size == 0:
            raise _Invalid("empty file (0 bytes)")
        # Finished episode files never change, so HDF5's file locking (which fails on some
        # network filesystems) buys nothing here.
        with h5py.File(path, "r", locking=False) as f:
            yield f
    except (_Invalid, DatasetError):
        raise
    except FileNotFoundError:
        raise _Invalid("file disappeared (deleted while reading?)") from None
    except PermissionError:
        raise _Invalid("permission denied: check the file's permissions") from None
    except (OSError, KeyError, ValueError, TypeError, RuntimeError):
        raise _Invalid("truncated or corrupt HDF5 file") from None


def _read_header(f: h5py.File, path: Path) -> tuple[_Header, dict, dict[str, np.ndarray]]:
    """Validate attributes, layout and the small arrays; the frames are not read."""
    for key in ("format_version", "seed", "num_frames", "meta"):
        if key not in f.attrs:
            raise _Invalid(f"no '{key}' attribute (not a pixels-to-pedals episode file)")
    version = _as_int(f.attrs["format_version"], "format_version")
    if version > FORMAT_VERSION:
        raise _newer(path, version)
    if version < 1:
        raise _Invalid(f"unknown format_version {version}")
    num_frames = _as_int(f.attrs["num_frames"], "num_frames")
    if num_frames < 1:
        raise _Invalid(f"num_frames is {num_frames}, expected >= 1")
    meta = f.attrs["meta"]
    try:
        meta = json.loads(meta.decode() if isinstance(meta, bytes) else str(meta))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Invalid("attribute 'meta' is not valid JSON") from None
    if not isinstance(meta, dict):
        raise _Invalid("attribute 'meta' is not a JSON object")
    frame_size = _check_layout(f, num_frames)
    small = {name: np.asarray(f[name][...], dtype=np.float32) for name in _STEP_ARRAYS}
    _check_values(small)
    seed = _as_int(f.attrs["seed"], "seed")
    header = _Header(path, num_frames, seed, frame_size, _driver(meta), small["labels"])
    return header, meta, small


def read_episode(path: Path) -> Episode:
    """Read and validate one episode file.

    Raises:
        DatasetError: naming the file, when it is unreadable, invalid or from a newer version.
    """
    path = Path(path)
    try:
        with _opened(path) as f:
            header, meta, small = _read_header(f, path)
            frames = np.asarray(f["frames"][...], dtype=np.uint8)
    except _Invalid as error:
        raise DatasetError(f"cannot read episode {path}: {error}") from None
    return Episode(frames=frames, seed=header.seed, meta=meta, **small)


def _scan(root: Path) -> tuple[list[_Header], list[str], int]:
    """Readable episodes (sorted by file name), warnings, and the number of skipped files."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root} does not exist: {_COLLECT_HINT}")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory: pass the dataset folder")
    paths = sorted(p for p in root.glob("*.h5") if p.is_file())
    has_manifest = (root / MANIFEST).exists()
    if not has_manifest and not paths:
        raise DatasetError(f"{root} is not a dataset (no {MANIFEST}): {_COLLECT_HINT}")
    problems: list[str] = []
    entries, problem = _load_manifest(root) if has_manifest else ([], None)
    if problem:
        problems.append(f"{problem}: using the episode files found")
    headers = []
    for path in paths:
        try:
            with _opened(path) as f:
                headers.append(_read_header(f, path)[0])
        except _Invalid as error:
            problems.append(f"skipping {path.name}: {error}")
    skipped = len(paths) - len(headers)
    frames = {h.path.name: h.num_frames for h in headers}
    for entry in entries:
        name = entry["file"]
        if not (root / name).is_file():
            problems.append(f"{MANIFEST} lists {name}, which is missing (deleted or moved?)")
        elif name in frames and frames[name] != entry["frames"]:
            problems.append(
                f"{MANIFEST} says {name} has {entry['frames']} frames, the file has {frames[name]}"
            )
    if has_manifest and not problem:
        listed = {entry["file"] for entry in entries}
        for name in sorted(set(frames) - listed):
            problems.append(f"{name} is not in {MANIFEST} (copied in, or writer killed): using it")
    if not headers:
        detail = f" ({skipped} unreadable; first: {problems[0]})" if skipped else ""
        raise DatasetError(f"{root} contains no readable episode{detail}: {_COLLECT_HINT}")
    return headers, problems, skipped


def scan(root: Path) -> tuple[list[Path], list[str]]:
    """List the readable episode files of a dataset and explain the unreadable ones.

    Each `*.h5` file is opened and validated (header, layout, per-step arrays; frames are not
    decoded); `.tmp` files are ignored. The manifest is checked against the files.

    Returns:
        The readable episode files, sorted by name, and one warning line per problem.

    Raises:
        DatasetError: `root` is missing, not a dataset, holds no readable episode, or was written
            by a newer version.
    """
    headers, problems, _ = _scan(root)
    return [h.path for h in headers], problems


def count_frames(root: Path) -> int:
    """Frames in the dataset's readable episodes (headers only: no frame is decoded)."""
    return sum(h.num_frames for h in _scan(Path(root))[0])


def used_seeds(root: Path) -> set[int]:
    """Road seeds already in the dataset (readable or not), from file names and the manifest.

    A missing folder has none. Cheap: no episode file is opened.
    """
    root = Path(root)
    if not root.is_dir():
        return set()
    seeds = {int(m.group(1)) for p in root.glob("*.h5") if (m := _NAME.fullmatch(p.name))}
    if (root / MANIFEST).exists():
        seeds |= {entry["seed"] for entry in _load_manifest(root)[0]}
    return seeds


# ---------------------------------------------------------------- report


def _histogram(values: np.ndarray, bins: int = 10, width: int = 30) -> list[str]:
    """Text histogram over [-1, 1]: one line per bin with a bar, the count and the share."""
    counts, edges = np.histogram(values, bins=bins, range=(-1.0, 1.0))
    scale = width / max(int(counts.max()), 1)
    lines = []
    for count, low, high in zip(counts, edges[:-1], edges[1:], strict=True):
        bar = "#" * int(np.ceil(count * scale))
        share = 100.0 * count / max(len(values), 1)
        lines.append(f"    {low:+.1f}..{high:+.1f} |{bar:<{width}}| {count:>8,} {share:5.1f} %")
    return lines


def info(root: Path) -> str:
    """Human-readable report on a dataset: counts, sizes, seeds, drivers, label statistics.

    Raises:
        DatasetError: as `scan`.
    """
    headers, problems, skipped = _scan(Path(root))
    labels = np.concatenate([h.labels for h in headers])
    sizes = Counter(h.frame_size for h in headers)
    size_text = ", ".join(f"{h}x{w} px ({n} episodes)" for (h, w), n in sizes.most_common())
    size_text = f"MIXED {size_text}" if len(sizes) > 1 else size_text.split(" (")[0]
    seeds = sorted({h.seed for h in headers})
    drivers = Counter(h.driver for h in headers)
    disk = sum(h.path.stat().st_size for h in headers)
    lines = [
        f"folder:      {Path(root).resolve()}",
        f"episodes:    {len(headers)} readable, {skipped} skipped",
        f"frames:      {len(labels):,} ({disk / 1e6:.1f} MB, {disk / len(labels):,.0f} B/frame)",
        f"frame size:  {size_text} (H x W), RGB uint8",
        f"seeds:       {seeds[0]}..{seeds[-1]} ({len(seeds)} distinct roads)",
        f"drivers:     {', '.join(f'{d} ({n} episodes)' for d, n in drivers.most_common())}",
    ]
    for column, name in enumerate(("steering", "throttle")):
        values = labels[:, column]
        lines.append(
            f"{name + ':':<12} mean {values.mean():+.3f}  std {values.std():.3f}"
            f"  min {values.min():+.3f}  max {values.max():+.3f}"
        )
        lines += _histogram(values)
    lines.append(f"warnings:    {len(problems)}")
    lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines)


# ---------------------------------------------------------------- training split


def _val_roads(seeds: set[int], val_fraction: float, seed: int) -> set[int]:
    """Pick the validation roads: a fixed pseudo-random ranking of the road seeds, salted by `seed`.

    An episode's side depends only on its road and `seed`, so it is the same whatever order the
    files are listed in, and adding episodes of known roads never moves a road across sides.
    """
    if len(seeds) < 2 or val_fraction <= 0:
        return set()
    count = min(max(1, round(val_fraction * len(seeds))), len(seeds) - 1)
    rank = sorted(seeds, key=lambda road: hashlib.sha256(f"{seed}/{road}".encode()).digest())
    return set(rank[:count])


def _load_frames(headers: list[_Header], chosen: list[int], size: tuple[int, int]) -> Frames:
    """Read the chosen episodes into arrays allocated once (no concatenation of big arrays)."""
    total = sum(headers[i].num_frames for i in chosen)
    out = Frames(
        frames=np.empty((total, *size, 3), np.uint8),
        labels=np.empty((total, 2), np.float32),
        speed=np.empty(total, np.float32),
        episode=np.empty(total, np.int32),
        viewpoint=np.empty(total, bool),
    )
    start = 0
    for i in chosen:
        header = headers[i]
        end = start + header.num_frames
        try:
            with _opened(header.path) as f:
                if f["frames"].shape != (header.num_frames, *size, 3):
                    raise _Invalid("it changed while loading")
                f["frames"].read_direct(out.frames[start:end])  # straight into place
                out.speed[start:end] = f["speed"][...]
        except _Invalid as error:
            raise DatasetError(f"cannot load {header.path}: {error}") from None
        out.labels[start:end] = header.labels
        out.episode[start:end] = i
        out.viewpoint[start:end] = header.driver == VIEWPOINT_DRIVER
        start = end
    return out


def load_split(root: Path, val_fraction: float = 0.1, seed: int = 0) -> tuple[Frames, Frames]:
    """Load a dataset for training, split into train and validation sets by road.

    Episodes of the same road (seed) always land on the same side, so validation frames never
    share a road, let alone an episode, with training frames. Deterministic given the files and
    `seed`. Problems found by `scan` are emitted with `warnings.warn`.

    Args:
        root: dataset folder.
        val_fraction: share of the roads held out for validation, in [0, 1).
        seed: salt of the split.

    Returns:
        (train, val). Train holds at least one episode; val is empty when there is only one road.

    Raises:
        DatasetError: as `scan`, or when episodes have different frame sizes.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    headers, problems, _ = _scan(Path(root))
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    size = Counter(h.frame_size for h in headers).most_common(1)[0][0]
    for header in headers:
        if header.frame_size != size:
            raise DatasetError(
                f"{header.path} has {header.frame_size[0]}x{header.frame_size[1]} px frames, most "
                f"episodes have {size[0]}x{size[1]}: move it to a dataset of its own camera size"
            )
    roads = {h.seed for h in headers}
    val_roads = _val_roads(roads, val_fraction, seed)
    if not val_roads and val_fraction > 0:
        warnings.warn(
            f"{root} has only one road (seed {min(roads)}): the validation set is empty; "
            "collect more episodes for a meaningful validation loss",
            stacklevel=2,
        )
    train = [i for i, h in enumerate(headers) if h.seed not in val_roads]
    val = [i for i, h in enumerate(headers) if h.seed in val_roads]
    return _load_frames(headers, train, size), _load_frames(headers, val, size)
