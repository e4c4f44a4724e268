"""Reading a demonstrations folder: one episode, the list of episodes, the train/val split.

Episode files are validated as they are opened (`driving.data.format`); the manifest is only
checked against them: the files are the truth.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from driving.data.format import (
    MANIFEST,
    VIEWPOINT_DRIVER,
    DatasetError,
    Episode,
    Frames,
    Header,
    Invalid,
    has_checksums,
    memory_bytes,
    opened,
    read_header,
    verify_frames,
)
from driving.data.store import load_manifest

_NAME = re.compile(r"episode_(\d+)_[0-9a-f]{8}\.h5")
_COLLECT_HINT = "create one with `drive collect --out DIR`"


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


def read_episode(path: Path) -> Episode:
    """Read and validate one episode file.

    Raises:
        DatasetError: naming the file, when it is unreadable, invalid or from a newer version.
    """
    path = Path(path)
    try:
        with opened(path) as f:
            header, meta, small = read_header(f, path)
            frames = np.asarray(f["frames"][...], dtype=np.uint8)
            last = np.asarray(f["last_frame"][...], np.uint8) if "last_frame" in f else None
    except Invalid as error:
        raise DatasetError(f"cannot read episode {path}: {error}") from None
    return Episode(frames=frames, seed=header.seed, meta=meta, last_frame=last, **small)


def read_steps(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The per-step arrays of one episode file (all but the frames, which are not decoded), by
    name, and its meta.

    Raises:
        DatasetError: as `read_episode`.
    """
    path = Path(path)
    try:
        with opened(path) as f:
            _, meta, small = read_header(f, path)
    except Invalid as error:
        raise DatasetError(f"cannot read episode {path}: {error}") from None
    return small, meta


def step_arrays(root: Path, frames: Frames, name: str) -> tuple[np.ndarray, list[dict]] | None:
    """The per-step array `name` of every row of `frames` (loaded from `root` by `load_split`;
    at least one row), read from the episode files (no frame is decoded), and the meta of each
    of their episodes; None when an episode does not record it.

    Raises:
        DatasetError: an episode file changed since `frames` was loaded.
    """
    paths = scan(root)[0]  # Frames.episode indexes this list
    parts, metas = [], []
    starts = np.flatnonzero(np.r_[True, frames.episode[1:] != frames.episode[:-1]])
    for start, end in zip(starts, [*starts[1:], len(frames)], strict=True):
        steps, meta = read_steps(paths[int(frames.episode[start])])
        if name not in steps:
            return None
        if len(steps[name]) != end - start:
            raise DatasetError(f"{paths[int(frames.episode[start])]} changed while loading")
        parts.append(steps[name])
        metas.append(meta)
    return np.concatenate(parts), metas


def scan_headers(root: Path, verify: bool = False) -> tuple[list[Header], list[str], int]:
    """Readable episodes (sorted by file name), warnings, and the number of skipped files.

    The work behind `scan`, keeping each file's header (for `load_split` and `info`). With
    `verify`, every frame is decoded too, so that a damaged frame chunk (checksum mismatch) is
    found and its file skipped by name.

    Raises:
        DatasetError: as `scan`.
    """
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
    entries, problem = load_manifest(root) if has_manifest else ([], None)
    if problem:
        problems.append(f"{problem}: using the episode files found")
    headers = []
    for path in paths:
        try:
            with opened(path) as f:
                header = read_header(f, path)[0]
                header.checksummed = has_checksums(f)
                if verify:
                    verify_frames(f)
            headers.append(header)
        except Invalid as error:
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
    headers, problems, _ = scan_headers(root)
    return [h.path for h in headers], problems


def count_frames(root: Path) -> int:
    """Frames in the dataset's readable episodes (headers only: no frame is decoded)."""
    return sum(h.num_frames for h in scan_headers(Path(root))[0])


def used_seeds(root: Path) -> set[int]:
    """Road seeds already recorded in the dataset: those of its intact episode files.

    Every file is checked, frames included (checksums), so that a road whose file was deleted or
    damaged counts as not recorded and is collected again. A missing folder has none.
    """
    root = Path(root)
    if not root.is_dir():
        return set()
    return {seed for seed in _named_seeds(root) if has_episode(root, seed)}


def has_episode(root: Path, seed: int) -> bool:
    """Whether `root` holds an intact episode file of road `seed` (frames checked too)."""
    for path in sorted(Path(root).glob(f"episode_{seed:07d}_*.h5")):
        try:
            with opened(path) as f:
                read_header(f, path)
                verify_frames(f)
            return True
        except (Invalid, DatasetError):
            continue
    return False


def _named_seeds(root: Path) -> set[int]:
    """The road seeds in the names of `root`'s episode files (no file is opened)."""
    return {int(m.group(1)) for p in root.glob("*.h5") if (m := _NAME.fullmatch(p.name))}


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


def _load_frames(headers: list[Header], chosen: list[int], size: tuple[int, int]) -> Frames:
    """Read the chosen episodes into arrays allocated once (no concatenation of big arrays)."""
    total = sum(headers[i].num_frames for i in chosen)
    need, have = total * size[0] * size[1] * 3, memory_bytes()
    if need > have:
        raise DatasetError(
            f"the dataset's {total:,} frames need {need / 1e9:.1f} GB, more than this machine's "
            f"{have / 1e9:.1f} GB of memory: train on a smaller dataset"
        )
    out = Frames(
        frames=np.empty((total, *size, 3), np.uint8),
        labels=np.empty((total, 2), np.float32),
        speed=np.empty(total, np.float32),
        episode=np.empty(total, np.int32),
        viewpoint=np.empty(total, bool),
        speed_limit=np.empty(total, np.float32) if _all_limited(headers, chosen) else None,
    )
    start = 0
    for i in chosen:
        header = headers[i]
        end = start + header.num_frames
        try:
            with opened(header.path) as f:
                if f["frames"].shape != (header.num_frames, *size, 3):
                    raise Invalid("it changed while loading")
                f["frames"].read_direct(out.frames[start:end])  # straight into place
                out.speed[start:end] = f["speed"][...]
        except Invalid as error:
            raise DatasetError(
                f"cannot load {header.path}: {error}; delete or move it away (`drive collect` "
                "records its road again)"
            ) from None
        out.labels[start:end] = header.labels
        if out.speed_limit is not None:
            out.speed_limit[start:end] = header.speed_limit
        out.episode[start:end] = i
        out.viewpoint[start:end] = header.driver == VIEWPOINT_DRIVER
        start = end
    return out


def _all_limited(headers: list[Header], chosen: list[int]) -> bool:
    """Whether every chosen episode records the speed limit (files before 2026-12-07 don't)."""
    return all(headers[i].speed_limit is not None for i in chosen)


def load_split(
    root: Path, val_fraction: float = 0.1, seed: int = 0, lazy: bool = False
) -> tuple[Frames, Frames]:
    """Load a dataset for training, split into train and validation sets by road.

    Episodes of the same road (seed) always land on the same side, so validation frames never
    share a road, let alone an episode, with training frames. Deterministic given the files and
    `seed`. Problems found by `scan` are emitted with `warnings.warn`.

    Args:
        root: dataset folder.
        val_fraction: share of the roads held out for validation, in [0, 1).
        seed: salt of the split.
        lazy: leave the frames in the files: `frames` is then an `EpisodeRows`, which reads the
            rows it is indexed with (for datasets larger than memory; `driving.data.lazy`).

    Returns:
        (train, val). Train holds at least one episode; val is empty when there is only one road.
        The same rows in the same order, lazy or not. A set's `speed_limit` is None when one of
        its episodes was recorded without it.

    Raises:
        DatasetError: as `scan`, or when episodes have different frame sizes.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    headers, problems, _ = scan_headers(Path(root))
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
    load = _lazy_frames if lazy else _load_frames
    return load(headers, train, size), load(headers, val, size)


def _lazy_frames(headers: list[Header], chosen: list[int], size: tuple[int, int]) -> Frames:
    """The chosen episodes' small arrays in memory, their frames left in the files."""
    from driving.data.lazy import EpisodeRows  # lazy imports read: keep the import one-way

    def rows(name: str, dtype, shape=()) -> np.ndarray:
        parts = [getattr(headers[i], name).reshape(-1, *shape) for i in chosen]
        return np.concatenate(parts).astype(dtype) if parts else np.empty((0, *shape), dtype)

    lengths = [headers[i].num_frames for i in chosen]
    return Frames(
        frames=EpisodeRows([headers[i].path for i in chosen], lengths, size),
        labels=rows("labels", np.float32, (2,)),
        speed=rows("speed", np.float32),
        episode=np.repeat(np.asarray(chosen, np.int32), lengths),
        viewpoint=np.repeat(
            np.array([headers[i].driver == VIEWPOINT_DRIVER for i in chosen], bool), lengths
        ),
        speed_limit=rows("speed_limit", np.float32) if _all_limited(headers, chosen) else None,
    )
