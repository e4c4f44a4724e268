"""Atomic file writes: a run killed mid-write leaves the old file or the new one, never half of one.

with replacing(path) as tmp:      # tmp sits beside path, with the same extension
    torch.save(ckpt, tmp)         # on success tmp replaces path; on an error it is removed
write_json(path, {"a": 1})
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout


@contextmanager
def replacing(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` that replaces it when the block ends without an error.

    The temporary name is this writer's own (`best.<pid>.<random>.tmp.pt`): two processes
    replacing one file never write into the same temporary file, so the last rename wins with a
    whole file. It keeps the extension, since some writers choose the format from it
    (matplotlib, video encoders). Parent folders are created. `fsync`: flush the file to disk
    before the rename, so that the new content survives a power cut too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        with unfinished(tmp):
            yield tmp
            if fsync:
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_unfinished: set[Path] = set()  # this process's temporary files being written


@contextmanager
def unfinished(tmp: Path) -> Iterator[Path]:
    """Mark `tmp` as a file this process is writing while the block runs, so that a worker whose
    command died removes it before it exits (`remove_unfinished`), rather than leave it behind."""
    _unfinished.add(tmp)
    try:
        yield tmp
    finally:
        _unfinished.discard(tmp)


def remove_unfinished() -> None:
    """Delete the temporary files this process is writing (`unfinished`): its last act when it
    is told to exit in the middle of a write."""
    for tmp in list(_unfinished):
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, payload: Any, indent: int = 2, fsync: bool = False) -> Path:
    """Write `payload` as JSON to `path` atomically; returns the path."""
    with replacing(path, fsync=fsync) as tmp:
        tmp.write_text(json.dumps(payload, indent=indent), encoding="utf-8")
    return Path(path)


def hold_folder(folder: str | Path) -> FileLock | None:
    """Lock `folder` (its `.lock` file) for this process; None if another process holds it.

    An OS lock, held until `release()` or until this process dies (the kernel releases it then):
    a killed run never leaves its folder locked, and the lock holds across PID namespaces.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock
