"""Demonstrations on disk: the format, crash-safe writing, reading, and the `drive info` report.

    from driving.data import read_episode, scan
    paths, problems = scan("data/demo")
    episode = read_episode(paths[0])  # frames (T, H, W, 3) uint8, labels (T, 2) [steer, throttle]

Modules: `format` (the on-disk format, documented in its docstring; records and checks), `store`
(locking, manifest, crash-safe writing), `read` (episodes, scan, train/val split, frame stacking),
`report` (`drive info`).
"""

from driving.data.format import FORMAT_VERSION, VIEWPOINT_DRIVER, DatasetError, Episode, Frames
from driving.data.read import (
    count_frames,
    load_split,
    read_episode,
    scan,
    stack_indices,
    used_seeds,
)
from driving.data.report import info
from driving.data.store import prepare_folder, write_episode

__all__ = [
    "FORMAT_VERSION",
    "VIEWPOINT_DRIVER",
    "DatasetError",
    "Episode",
    "Frames",
    "count_frames",
    "info",
    "load_split",
    "prepare_folder",
    "read_episode",
    "scan",
    "stack_indices",
    "used_seeds",
    "write_episode",
]
