"""`drive convert`: demonstrations to the formats other tools read, and back.

    drive convert data/demo --to minari --out pixels-to-pedals/demo-v0   # minari.load_dataset(...)
    drive convert minari:pixels-to-pedals/demo-v0 --to folder --out data/back
    drive convert data/demo --to lerobot --out exports/demo_lerobot      # LeRobotDataset(...)
    drive convert exports/demo_lerobot --to folder --out data/back2

(`drive export` exports a policy to ONNX; `drive convert` converts a dataset.) Needs the
`export` extra: `pip install 'pixels-to-pedals[export]'`. The formats: docs/dataset.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

MINARI_PREFIX = "minari:"


@dataclass(frozen=True)
class ConvertConfig:
    """Convert demonstrations: to a Minari or LeRobot dataset, or either one back to a folder."""

    source: Annotated[str, tyro.conf.Positional]
    """a demonstrations folder; minari:ID for a Minari dataset, or a LeRobot dataset folder
    (with meta/info.json), to bring it back with --to folder"""
    to: Literal["minari", "lerobot", "folder"] = "minari"
    """minari: a Minari dataset named --out, in MINARI_DATASETS_PATH (default
    ~/.minari/datasets); lerobot: a LeRobotDataset v3.0 folder --out; folder: a demonstrations
    folder --out (from a minari:ID or LeRobot source)"""
    out: str = ""
    """the Minari dataset id, (namespace/)name-vN (default: pixels-to-pedals/<folder>-v0);
    or the folder to write (a new or empty one)"""

    def source_kind(self) -> Literal["minari", "lerobot", "folder"]:
        """What the source is: a Minari id, a LeRobot dataset folder, or a demonstrations folder."""
        from driving.data.lerobot_io import is_lerobot

        if self.source.startswith(MINARI_PREFIX):
            return "minari"
        return "lerobot" if is_lerobot(Path(self.source)) else "folder"

    def validate(self) -> None:
        """ValueError naming the bad combination of source, --to and --out."""
        kind = self.source_kind()
        if kind != "folder" and self.to != "folder":
            what = "a Minari" if kind == "minari" else "a LeRobot"
            raise ValueError(f"{self.source} is {what} dataset: convert it with --to folder")
        if kind == "folder" and self.to == "folder":
            raise ValueError(
                f"--to folder takes a Minari source (minari:ID) or a LeRobot dataset folder, "
                f"not {self.source}"
            )
        if self.to != "minari" and not self.out:
            raise ValueError(f"--to {self.to} needs --out, the folder to write")
        if self.to != "minari" and _has_files(Path(self.out)):
            raise ValueError(f"--out {self.out} is not empty: choose a new folder")


def _has_files(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def convert(cfg: ConvertConfig) -> dict[str, Any]:
    """Run one conversion; returns its summary (what was written, where, and "to").

    Raises:
        ValueError: a bad combination of settings (DatasetError: a bad source, an extra missing).
    """
    from driving.data.lerobot_io import from_lerobot, to_lerobot
    from driving.data.minari_io import from_minari, to_minari

    cfg.validate()
    kind, out = cfg.source_kind(), Path(cfg.out)
    if kind == "minari":
        summary = from_minari(cfg.source[len(MINARI_PREFIX) :], out)
    elif kind == "lerobot":
        summary = from_lerobot(Path(cfg.source), out)
    elif cfg.to == "lerobot":
        summary = to_lerobot(Path(cfg.source), out)
    else:
        root = Path(cfg.source)
        summary = to_minari(root, cfg.out or f"pixels-to-pedals/{root.resolve().name}-v0")
    return {**summary, "to": cfg.to}


def format_summary(summary: dict[str, Any]) -> str:
    """One line saying what a conversion wrote, and how to load it."""
    if summary["to"] == "minari":
        skipped = f", {summary['skipped']} too short to export" if summary["skipped"] else ""
        return (
            f"wrote Minari dataset {summary['id']}: {summary['episodes']} episodes, "
            f"{summary['steps']} steps{skipped}, in {summary['path']}; "
            f"load it with minari.load_dataset({summary['id']!r})"
        )
    if summary["to"] == "lerobot":
        return (
            f"wrote LeRobot dataset {summary['out']}: {summary['episodes']} episodes, "
            f"{summary['frames']} frames at {summary['fps']} Hz; load it with "
            f"LeRobotDataset('local/{Path(summary['out']).name}', root={str(summary['out'])!r})"
        )
    return f"wrote {summary['episodes']} episodes, {summary['frames']} frames into {summary['out']}"
