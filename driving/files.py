"""Atomic file writes: a run killed mid-write leaves the old file or the new one, never half of one.

with replacing(path) as tmp:      # tmp sits beside path, with the same extension
    torch.save(ckpt, tmp)         # on success tmp replaces path; on an error it is removed
write_json(path, {"a": 1})
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def replacing(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` that replaces it when the block ends without an error.

    The temporary name keeps the extension (`best.tmp.pt`), since some writers choose the format
    from it (matplotlib, video encoders). Parent folders are created. `fsync`: flush the file to
    disk before the rename, so that the new content survives a power cut too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
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
