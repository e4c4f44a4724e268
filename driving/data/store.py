"""Crash-safe writing of a demonstrations folder: the writer lock, the manifest, episode files.

A writer builds `<name>.h5.tmp`, fsyncs it, and under the folder's lock renames it to `<name>.h5`
and rewrites the manifest atomically (the format: `driving.data.format`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from filelock import FileLock, Timeout

from driving.data.format import (
    ARRAYS,
    CHECKSUM,
    FORMAT_NAME,
    FORMAT_VERSION,
    FRAME_COMPRESSION,
    FRAMES_PER_CHUNK,
    HDF5_FORMAT,
    LOCK,
    MANIFEST,
    OPTIONAL_STEP_ARRAYS,
    STALE_TMP_AGE,
    STEP_ARRAYS,
    DatasetError,
    Episode,
    Invalid,
    as_int,
    check_layout,
    check_values,
    json_default,
    newer_version,
    opened,
    read_header,
)
from driving.files import unfinished, write_json

# ---------------------------------------------------------------- manifest and folder


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the folder's exclusive writer lock (blocks until other writers are done).

    An OS lock (`filelock`: flock on POSIX, msvcrt on Windows), released by the OS when its
    process dies, so a killed writer never leaves the folder locked."""
    with FileLock(root / LOCK):
        yield


def load_manifest(root: Path) -> tuple[list[dict], str | None]:
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
        raise newer_version(path, version)
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
        # (`write_json` writes the manifest as "manifest.<pid>.<random>.tmp.json", then renames it.)
        others = sorted(p.name for p in root.iterdir() if p.name != LOCK and not _manifest_tmp(p))
        if others and not (root / MANIFEST).exists():
            raise DatasetError(
                f"{root} is not a dataset folder (it holds {others[0]!r} but no {MANIFEST}): "
                "choose a new or empty folder for --out"
            )
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if not (root / MANIFEST).exists():
            _write_manifest(root, [])
        elif (problem := load_manifest(root)[1]) is not None:
            raise DatasetError(f"{problem}: repair it, or collect into a new folder")


def claim_road(root: Path, seed: int, recorded) -> FileLock | None:
    """Reserve road `seed` of the dataset in `root` for this process; None if it is taken.

    The claim is an OS lock on `.claims/<seed>.lock`, held until the caller releases the returned
    lock or dies (the kernel then releases it): it names no process id, so it holds across PID
    namespaces (containers) and a claim left by a killed process never blocks the road. None
    when another live collector holds the road or `recorded(root, seed)` says it is recorded.
    """
    claims = Path(root) / ".claims"
    claims.mkdir(exist_ok=True)
    lock = FileLock(claims / f"{seed}.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    if recorded(root, seed):  # checked under the claim: its writer published before releasing
        lock.release()
        return None
    return lock


def _manifest_tmp(path: Path) -> bool:
    """Whether `path` is a writer's temporary manifest (`driving.files.replacing`'s name)."""
    return path.name.startswith("manifest.") and path.name.endswith(".tmp.json")


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
        meta_json = json.dumps(episode.meta, allow_nan=False, default=json_default)
    except Invalid as error:
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
    seed = as_int(episode.seed, "seed")
    if seed < 0:
        raise Invalid(f"seed must be >= 0, got {seed}")
    arrays = {name: getattr(episode, name) for name in ARRAYS}
    arrays |= {n: a for n in OPTIONAL_STEP_ARRAYS if (a := getattr(episode, n)) is not None}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise Invalid(f"'{name}' must be a numpy array, got {type(array).__name__}")
    num_frames = len(arrays["frames"]) if arrays["frames"].ndim else 0
    if num_frames < 1:
        raise Invalid("it has no frames (T must be >= 1)")
    check_layout(arrays, num_frames)
    check_values({name: array for name, array in arrays.items() if name != "frames"})
    if not isinstance(episode.meta, dict):
        raise Invalid(f"meta must be a dict, got {type(episode.meta).__name__}")
    last = episode.last_frame
    if last is not None:
        if not isinstance(last, np.ndarray) or last.dtype != np.uint8:
            raise Invalid("'last_frame' must be a uint8 numpy array")
        if last.shape != arrays["frames"].shape[1:]:
            raise Invalid(
                f"'last_frame' has shape {last.shape}, the frames {arrays['frames'].shape}"
            )
        arrays = {**arrays, "last_frame": last}
    return seed, arrays


def _store(root: Path, seed: int, arrays: dict[str, np.ndarray], meta_json: str) -> Path:
    """Write the episode file under a fresh name, then publish it: rename + manifest, locked."""
    prepare_folder(root)
    for _ in range(10):
        stem = f"episode_{seed:07d}_{secrets.token_hex(4)}"
        tmp, final = root / f"{stem}.h5.tmp", root / f"{stem}.h5"
        if final.exists():
            continue
        with unfinished(tmp):  # a worker orphaned mid-write removes it as it exits
            try:
                _write_h5(tmp, arrays, seed, meta_json)
            except FileExistsError:  # another writer drew the same name: its file, leave it
                continue
            except BaseException:
                tmp.unlink(missing_ok=True)  # our own half-written file
                raise
            return _publish(root, tmp, final, seed)
    raise DatasetError(f"cannot find a free episode file name in {root}")


def _publish(root: Path, tmp: Path, final: Path, seed: int) -> Path:
    """Rename the written `tmp` to `final` (or another free name) and list it, locked."""
    with _locked(root):
        while final.exists():  # a finished file took our name meanwhile: pick another
            final = root / f"episode_{seed:07d}_{secrets.token_hex(4)}.h5"
        os.replace(tmp, final)
        _fsync(root)
        _write_manifest(root, _list_new_files(root, load_manifest(root)[0]))
        _remove_stale_tmp(root)
    return final


def link_episodes(paths: list[Path], root: Path) -> int:
    """Add the episode files `paths` (another dataset's, as `scan` lists them) to the dataset in
    `root` (created if missing) under their own names: hard links, copies where the two folders
    are on different disks. A name `root` already holds is skipped, so a second call adds nothing.
    Returns the episodes added."""
    root = Path(root)
    prepare_folder(root)
    added = 0
    with _locked(root):
        for path in paths:
            final = root / path.name
            if final.exists():
                continue
            tmp = root / f"{path.name}.tmp"
            tmp.unlink(missing_ok=True)
            try:
                os.link(path, tmp)
            except OSError:  # another disk, or a file system without hard links
                shutil.copy2(path, tmp)
            os.replace(tmp, final)
            added += 1
        _fsync(root)
        _write_manifest(root, _list_new_files(root, load_manifest(root)[0]))
    return added


def _list_new_files(root: Path, entries: list[dict]) -> list[dict]:
    """Append the readable episode files missing from `entries`: the one just written, and any
    whose writer was killed between renaming and listing it (call with the lock held)."""
    listed = {entry["file"] for entry in entries}
    for path in sorted(root.glob("*.h5")):
        if path.name in listed:
            continue
        with contextlib.suppress(Invalid, DatasetError):  # `scan` reports unreadable files
            with opened(path) as f:
                header = read_header(f, path)[0]
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
    with h5py.File(buffer, "w", libver=HDF5_FORMAT) as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["seed"] = seed
        f.attrs["num_frames"] = len(arrays["frames"])
        # Fixed-length bytes live in the object header, which carries a checksum; a str would be
        # stored in the global heap, which has none.
        f.attrs["meta"] = np.bytes_(meta_json.encode())
        frames = arrays["frames"]
        chunks = (min(FRAMES_PER_CHUNK, len(frames)), *frames.shape[1:])
        f.create_dataset("frames", data=frames, chunks=chunks, **FRAME_COMPRESSION, **CHECKSUM)
        for name in (*STEP_ARRAYS, *(n for n in OPTIONAL_STEP_ARRAYS if n in arrays)):
            data = arrays[name].astype(np.float32, copy=False)
            f.create_dataset(name, data=data, chunks=data.shape, **CHECKSUM)
        if "last_frame" in arrays:
            f.create_dataset("last_frame", data=arrays["last_frame"], **CHECKSUM)
    with open(tmp, "xb") as handle:
        handle.write(buffer.getbuffer())
        handle.flush()
        os.fsync(handle.fileno())


def _remove_stale_tmp(root: Path) -> None:
    """Delete temporary files left by writers killed more than an hour ago (not live writers')."""
    now = time.time()
    for path in [*root.glob("*.h5.tmp"), *filter(_manifest_tmp, root.glob("manifest.*"))]:
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_TMP_AGE:
                path.unlink()
