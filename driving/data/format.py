"""Demonstrations on disk: one HDF5 file per driven episode, plus a manifest.

Collection calls `write_episode` once per finished episode, training calls `load_split`, and
`drive info DIR` prints `info(DIR)`. Writing is crash-safe and several processes may write into one
folder at once (OS file locks through `filelock`: POSIX and Windows).

This module holds the format: its constants, the record types and the checks shared by the
writer (`driving.data.store`) and the readers (`driving.data.read`, `driving.data.report`).

Format, version 2 (HDF5 + JSON; the frames are Zstandard-compressed, so plain h5py needs
``import hdf5plugin`` first, and other HDF5 tools the plugin path ``hdf5plugin.PLUGIN_PATH``)::

    DIR/manifest.json                  index of the episodes, see below
    DIR/episode_<seed:07d>_<hex8>.h5   one file per episode; <seed> = the road's seed,
                                       <hex8> = 8 random hex digits so that names never collide
    DIR/.lock                          empty; writers hold an exclusive OS lock on it
    DIR/*.tmp                          files being written, or left by a killed writer: ignore them
    DIR/manifest.*.tmp.json            the same, for the manifest
    DIR/.claims/<seed>.lock            a collector holds an OS lock on it while it drives a road

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
    curvature_ahead (T, K) float32       optional: signed curvature of the ego's lane [1/m],
                                         positive turning right, at K distances along the
                                         route ahead, meta["curvature_ahead_m"] [m] (the
                                         labels of a direct-perception net; absent in files
                                         before 2026-12-03 and in DAgger, keyboard episodes)
    leader          (T, 2) float32       optional, traffic only: the car ahead in the ego's
                                         lane as the traffic expert reads it, [gap bumper to
                                         bumper [m], closing speed [m/s]], the gap capped at
                                         meta["leader_range_m"] (closing 0 without a car
                                         within it); absent before 2026-12-06
    lane_change     (T,) float32         optional, traffic only: the traffic expert's lane
                                         plan, -1 heading for the lane on the left, +1 for the
                                         one on the right, 0 otherwise (keeping its lane, or
                                         once the car is in the new one); absent before
                                         2026-12-08
    speed_limit     (T,) float32         optional: the speed limit of the ego's lane [m/s]
                                         (the observation's speed_limit: the limit a map or
                                         a sign reader tells the driver); absent before
                                         2026-12-07 and in files converted from other formats
    last_frame      (H, W, 3) uint8      optional: the frame seen after the last step (the
                                         episode's last observation; absent in older files,
                                         shifted-view and DAgger episodes)

Every array carries HDF5's Fletcher-32 checksum on each chunk (the filter is built into HDF5, so
any HDF5 reader verifies it), and the file uses HDF5 1.10's format (``libver="v110"``), whose
object headers and chunk indexes carry checksums too; `meta` is stored as fixed-length bytes in the
object header for that reason. Readers decode nothing whose checksum fails: the file is skipped by
name. Files written before 2026-12-03 have no checksums and are still read.

and root attributes:

    format_version  int   2 (1 in older files, still read); readers refuse higher numbers
    seed            int   the road's seed (>= 0)
    num_frames      int   T
    meta            str   JSON object (bytes since checksums came: `json.loads` takes
                          both): world, driver, noise, outcome...;
                          meta["driver"] is a short string naming who drove ("expert", ...);
                          meta["fps"] the policy rate [Hz] (steps per second), and
                          meta["last_speed"] the speed [m/s] of the last observation
                          (both absent in older files)

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
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from envs.world import SCENARIO, World

FORMAT_VERSION = 2
FRAMES_PER_CHUNK = 16  # frames compressed together: fewer, larger chunks decode much faster
FRAME_COMPRESSION = hdf5plugin.Zstd(clevel=1)  # measured best size x speed (module docstring)
CHECKSUM = {"fletcher32": True}  # every chunk of every array carries a Fletcher-32 checksum
HDF5_FORMAT = ("v110", "v110")  # object headers and chunk indexes with checksums (HDF5 >= 1.10)
MAX_CHUNK_BYTES = 256 * 2**20  # [B] a decoded chunk larger than this is refused before reading
FORMAT_NAME = "pixels-to-pedals/demonstrations"
MANIFEST = "manifest.json"
LOCK = ".lock"
STALE_TMP_AGE = 3600.0  # [s] a writer's .tmp older than this was left by a killed process
STEP_ARRAYS = ("labels", "actions", "speed", "lateral_offset", "heading_error")
"""The per-step float32 arrays of an episode file (all but the frames)."""
OPTIONAL_STEP_ARRAYS = ("curvature_ahead", "leader", "lane_change", "speed_limit")
"""Per-step float32 arrays an episode file may hold, (T, K) or (T,) (`OPTIONAL_SCALARS`);
readers take them when present."""
OPTIONAL_SCALARS = ("lane_change", "speed_limit")
"""The optional per-step arrays of one value a step, (T,)."""
_PAIRS = ("labels", "actions")  # (T, 2) [steering, throttle]; the other per-step arrays are (T,)
ARRAYS = ("frames", *STEP_ARRAYS)
"""Every array of an episode file, frames first."""
VIEWPOINT_DRIVER = "viewpoint"
"""meta["driver"] of shifted-view episodes: each row is a view of its own, not a trajectory step."""


class DatasetError(ValueError):
    """One-line, user-facing problem with a dataset (names the file/folder and what to do)."""


class Invalid(Exception):
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
    meta: dict  # JSON-serialisable settings (driver, world, noise...); read back as JSON
    last_frame: np.ndarray | None = None  # (H, W, 3) uint8, the frame after the last step
    curvature_ahead: np.ndarray | None = None  # (T, K) float32 [1/m] at meta["curvature_ahead_m"]
    leader: np.ndarray | None = None  # (T, 2) float32 [gap m, closing m/s], traffic only
    lane_change: np.ndarray | None = None  # (T,) float32 -1 / 0 / +1, traffic only
    speed_limit: np.ndarray | None = None  # (T,) float32 [m/s], the ego lane's limit

    @property
    def world(self) -> World:
        """The world this episode was recorded in (`meta["world"]`, see `meta_world`).

        Raises:
            DatasetError: the stored world is not a world description.
        """
        try:
            return meta_world(self.meta)
        except Invalid as err:
            raise DatasetError(f"episode of road {self.seed}: {err}") from None


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
    speed_limit: np.ndarray | None = None  # (N,) float32 [m/s]; None: an episode lacks it

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class Header:
    """What `scan` learns about one readable episode file."""

    path: Path
    num_frames: int
    seed: int
    frame_size: tuple[int, int]  # (H, W) [px]
    driver: str
    labels: np.ndarray  # (T, 2) float32
    speed: np.ndarray  # (T,) float32 [m/s]
    checksummed: bool = False  # every array carries Fletcher-32 checksums
    speed_limit: np.ndarray | None = None  # (T,) float32 [m/s]; None in files without it


# ---------------------------------------------------------------- validation (shared by both sides)


def check_layout(arrays: Any, num_frames: int) -> tuple[int, int]:
    """Check the dtypes and shapes of numpy arrays or h5py datasets, reading no data; (H, W)."""
    for name in ARRAYS:
        array = arrays.get(name)
        if array is None or not hasattr(array, "dtype"):
            raise Invalid(f"missing array '{name}'")
        kind, size, want = ("u", 1, "uint8") if name == "frames" else ("f", 4, "float32")
        if array.dtype.kind != kind or array.dtype.itemsize != size:
            raise Invalid(f"'{name}' has dtype {array.dtype}, expected {want}")
        shape = tuple(array.shape)
        if name == "frames":
            ok, expected = len(shape) == 4 and shape[3] == 3 and min(shape) > 0, "(T, H, W, 3)"
        else:
            tail = (2,) if name in _PAIRS else ()
            ok, expected = len(shape) >= 1 and shape[1:] == tail, str(("T", *tail)).replace("'", "")
        if not ok:
            raise Invalid(f"'{name}' has shape {shape}, expected {expected}")
        if shape[0] != num_frames:
            raise Invalid(f"'{name}' has {shape[0]} steps, expected {num_frames}")
    for name in OPTIONAL_STEP_ARRAYS:
        array = arrays.get(name)
        if array is None:
            continue
        if not hasattr(array, "dtype") or array.dtype.kind != "f" or array.dtype.itemsize != 4:
            raise Invalid(f"'{name}' has dtype {getattr(array, 'dtype', None)}, expected float32")
        if name in OPTIONAL_SCALARS:
            if tuple(array.shape) != (num_frames,):
                raise Invalid(f"'{name}' has shape {tuple(array.shape)}, expected ({num_frames},)")
        elif len(array.shape) != 2 or array.shape[0] != num_frames or array.shape[1] < 1:
            raise Invalid(f"'{name}' has shape {tuple(array.shape)}, expected ({num_frames}, K)")
    return int(arrays["frames"].shape[1]), int(arrays["frames"].shape[2])


def present(arrays: Any) -> tuple[str, ...]:
    """The names of every array `arrays` (an h5py file or a dict) holds: `ARRAYS` and the
    optional ones present."""
    return (*ARRAYS, *(n for n in OPTIONAL_STEP_ARRAYS if arrays.get(n) is not None))


def check_values(small: dict[str, np.ndarray]) -> None:
    """Every per-step array finite; labels in [-1, 1]."""
    for name, array in small.items():
        bad = ~np.isfinite(array)
        if bad.any():
            step = int(np.argwhere(bad)[0][0])
            raise Invalid(f"'{name}' contains NaN or inf (first at step {step})")
    outside = np.abs(small["labels"]) > 1
    if outside.any():
        step = int(np.argwhere(outside)[0][0])
        raise Invalid(f"'labels' outside [-1, 1] (first at step {step}: {small['labels'][step]})")


def as_int(value: Any, what: str) -> int:
    """`value` as an int; raise `Invalid` naming `what` if it is no integer (bools are not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise Invalid(f"{what} must be an integer, got {value!r}")
    return int(value)


def json_default(value: Any) -> Any:
    """Let numpy scalars and arrays into meta (collectors often hold them)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def newer_version(path: Path, version: int) -> DatasetError:
    """The error for a file or folder written in a newer `format_version` than this reader's."""
    return DatasetError(
        f"{path} was written by a newer version of pixels-to-pedals (format_version {version},"
        f" this one reads {FORMAT_VERSION}): upgrade with `pip install -U pixels-to-pedals`"
    )


def meta_world(meta: dict) -> World:
    """The validated World of an episode's meta (`meta["world"]`).

    Episodes recorded before the World record kept the camera, the scenario's name, the density
    setting and the start rule under separate keys: they are read back the same way.

    Raises:
        Invalid: the stored world is not a valid world description (names the field).
    """
    stored = meta.get("world")
    if stored is None:
        camera = meta.get("camera")
        stored = {
            "scenario": meta.get("scenario_name", SCENARIO),
            "density": meta.get("density_setting", "default"),
            "start": meta.get("start", "beginning"),
            "camera": camera if isinstance(camera, dict) else {},
        }
    if not isinstance(stored, dict):
        raise Invalid(f"meta.world is a {type(stored).__name__}, expected an object")
    try:
        return World.from_dict(stored).validate()
    except (TypeError, ValueError) as err:
        raise Invalid(f"meta.world: {str(err).split(': {')[0]}") from None


def memory_bytes() -> int:
    """This machine's physical memory [B] (a bound on what one read may allocate)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: no bound from here
        return 2**62


def check_storage(f: h5py.File, file_size: int) -> None:
    """Check that each array's declared size is backed by the file, before reading any of it.

    A forged header can declare billions of steps or 60000x60000 frames in a file of a few
    kilobytes; reading it would allocate the declared size. Here each array must fit in memory,
    a chunk must stay under `MAX_CHUNK_BYTES`, every chunk must be stored (the writer stores all)
    and a contiguous array must lie inside the file.
    """
    limit = memory_bytes()
    for name in present(f):
        dataset = f[name]
        size = dataset.dtype.itemsize * math.prod(dataset.shape)  # [B] decoded
        if size > limit:
            raise Invalid(
                f"'{name}' declares {dataset.shape} ({size / 1e9:.1f} GB), more than this "
                f"machine's memory ({limit / 1e9:.1f} GB): a forged or damaged header"
            )
        if dataset.chunks is None:
            offset = dataset.id.get_offset()
            if offset is None or offset + size > file_size:
                raise Invalid(f"'{name}' declares {dataset.shape} but the file is too short")
            continue
        chunk = dataset.dtype.itemsize * math.prod(dataset.chunks)
        if chunk > MAX_CHUNK_BYTES:
            raise Invalid(f"'{name}' has chunks of {chunk / 1e6:.0f} MB: a forged or damaged file")
        counts = zip(dataset.shape, dataset.chunks, strict=True)
        expected = math.prod(math.ceil(n / c) for n, c in counts)
        stored = dataset.id.get_num_chunks()
        if stored != expected:
            raise Invalid(f"'{name}' stores {stored} of its {expected} chunks (truncated, forged)")


def verify_frames(f: h5py.File) -> None:
    """Decode every chunk of the frames, one chunk at a time, so that HDF5 checks its checksum.

    Raises:
        OSError: a checksum mismatch or a corrupt chunk (`opened` turns it into `Invalid`).
    """
    frames = f["frames"]
    step = frames.chunks[0] if frames.chunks else FRAMES_PER_CHUNK
    for start in range(0, frames.shape[0], step):
        frames[start : start + step]


def has_checksums(f: h5py.File) -> bool:
    """Whether every array of an episode file carries checksums (files before 2026-12-03 don't)."""
    return all(f[name].fletcher32 for name in present(f))


def _driver(meta: dict) -> str:
    """meta["driver"] as a string ("unknown" if absent, JSON if not a string)."""
    driver = meta.get("driver", "unknown")
    return driver if isinstance(driver, str) else json.dumps(driver, default=json_default)


# ---------------------------------------------------------------- reading one file's header


@contextlib.contextmanager
def opened(path: Path) -> Iterator[h5py.File]:
    """Open an episode file for reading; any h5py/OS failure becomes `Invalid`."""
    try:
        if path.stat().st_size == 0:
            raise Invalid("empty file (0 bytes)")
        # Finished episode files never change, so HDF5's file locking (which fails on some
        # network filesystems) buys nothing here.
        with h5py.File(path, "r", locking=False) as f:
            yield f
    except (Invalid, DatasetError):
        raise
    except FileNotFoundError:
        raise Invalid("file disappeared (deleted while reading?)") from None
    except PermissionError:
        raise Invalid("permission denied: check the file's permissions") from None
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        if "checksum" in str(err).lower() or "filter returned failure" in str(err):
            raise Invalid("damaged data (checksum mismatch or undecodable chunk)") from None
        raise Invalid("truncated or corrupt HDF5 file") from None


def read_header(f: h5py.File, path: Path) -> tuple[Header, dict, dict[str, np.ndarray]]:
    """Validate attributes, layout and the small arrays; the frames are not read."""
    for key in ("format_version", "seed", "num_frames", "meta"):
        if key not in f.attrs:
            raise Invalid(f"no '{key}' attribute (not a pixels-to-pedals episode file)")
    version = as_int(f.attrs["format_version"], "format_version")
    if version > FORMAT_VERSION:
        raise newer_version(path, version)
    if version < 1:
        raise Invalid(f"unknown format_version {version}")
    num_frames = as_int(f.attrs["num_frames"], "num_frames")
    if num_frames < 1:
        raise Invalid(f"num_frames is {num_frames}, expected >= 1")
    meta = f.attrs["meta"]
    try:
        meta = json.loads(meta.decode() if isinstance(meta, bytes) else str(meta))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Invalid("attribute 'meta' is not valid JSON") from None
    if not isinstance(meta, dict):
        raise Invalid("attribute 'meta' is not a JSON object")
    if not isinstance(meta.get("driver", ""), str):
        raise Invalid(f"meta.driver is a {type(meta['driver']).__name__}, expected a string")
    if "world" in meta:  # what the recorders write; older, free-form meta is checked when used
        meta_world(meta)
    frame_size = check_layout(f, num_frames)
    check_storage(f, path.stat().st_size)
    steps = [n for n in present(f) if n != "frames"]
    small = {name: np.asarray(f[name][...], dtype=np.float32) for name in steps}
    check_values(small)
    seed = as_int(f.attrs["seed"], "seed")
    labels, speed, limit = small["labels"], small["speed"], small.get("speed_limit")
    driver = _driver(meta)
    header = Header(path, num_frames, seed, frame_size, driver, labels, speed, speed_limit=limit)
    return header, meta, small
