"""Run folders: a new name for each `drive train` not told where, and "the latest run" for the rest.

    new_run_folder(Path("data/demo"))   # logs/runs/20261203-150412-demo (-2, -3, ... if taken)
    latest_checkpoint()                  # the newest best.pt under logs/, or a ValueError

`drive train` without `--run` writes to `logs/runs/<date>-<time>-<dataset folder name>`, so a
second run never collides with the first and the folders sort by start time. `drive evaluate`,
`watch`, `export` and `saliency` without `--policy` take the latest run's `best.pt`: the most
recently written `best.pt` in `logs/` or up to three folders below it (`logs/runs/*/`,
`logs/demo/run/`, `logs/dagger/round_*/`, a `--run logs/mine`), and say which one they took.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

LOGS = Path("logs")
"""Where runs, datasets and videos go (relative to the working folder; not committed)."""
RUNS = LOGS / "runs"
"""The parent of the automatically named run folders."""


def new_run_folder(data: Path, root: Path = RUNS, now: float | None = None) -> Path:
    """A run folder under `root` that does not exist yet, named by the local start time and the
    dataset folder's name: `<YYYYmmdd>-<HHMMSS>-<data name>`, then `-2`, `-3`, ... if taken.

    Not created here: the training's folder lock creates it (and refuses a second process that
    picked the same name in the same second)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(data).resolve().name).strip("._") or "run"
    folder = root / f"{stamp}-{label}"
    count = 1
    while folder.exists():
        count += 1
        folder = root / f"{stamp}-{label}-{count}"
    return folder


def checkpoints(root: Path = LOGS, name: str = "best.pt") -> list[Path]:
    """The `name` files in `root` and up to three folders below it, newest (modified) first."""
    found = [p for depth in range(4) for p in root.glob("*/" * depth + name) if p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)), reverse=True)


def latest_checkpoint(root: Path = LOGS) -> Path:
    """The latest run's checkpoint: the most recently written best.pt in `root` or up to three
    folders below it.

    Raises:
        ValueError: there is none, with what to do.
    """
    found = checkpoints(root)
    if not found:
        raise ValueError(
            f"no --policy given and no best.pt in {root}/ (or below) to take as the latest run: "
            "train one (drive train --data DATA) or pass --policy"
        )
    return found[0]


def latest_run(root: Path = RUNS) -> Path | None:
    """The last automatically named run folder (by name, i.e. by start time), or None."""
    folders = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
    return folders[-1] if folders else None
