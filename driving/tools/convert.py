"""`drive convert`: demonstrations to the formats other tools read, and back.

    drive convert data/demo --to minari --out pixels-to-pedals/demo-v0   # minari.load_dataset(...)
    drive convert minari:pixels-to-pedals/demo-v0 --to folder --out data/back

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
    """Convert demonstrations: to a Minari dataset, or a Minari dataset back to a folder."""

    source: Annotated[str, tyro.conf.Positional]
    """a demonstrations folder, or minari:ID for a Minari dataset (to bring it back)"""
    to: Literal["minari", "folder"] = "minari"
    """minari: a Minari dataset named --out, in MINARI_DATASETS_PATH (default
    ~/.minari/datasets); folder: a demonstrations folder --out (from a minari:ID source)"""
    out: str = ""
    """the Minari dataset id, (namespace/)name-vN (default: pixels-to-pedals/<folder>-v0);
    or the folder to write"""

    def validate(self) -> None:
        """ValueError naming the bad combination of source, --to and --out."""
        from_minari = self.source.startswith(MINARI_PREFIX)
        if from_minari and self.to != "folder":
            raise ValueError(f"{self.source} is a Minari dataset: convert it with --to folder")
        if not from_minari and self.to == "folder":
            raise ValueError(f"--to folder takes a Minari source (minari:ID), not {self.source}")
        if self.to == "folder" and not self.out:
            raise ValueError("--to folder needs --out, the demonstrations folder to write")


def convert(cfg: ConvertConfig) -> dict[str, Any]:
    """Run one conversion; returns its summary (what was written, where)."""
    from driving.data.minari_io import from_minari, to_minari

    cfg.validate()
    if cfg.to == "folder":
        return from_minari(cfg.source[len(MINARI_PREFIX) :], Path(cfg.out))
    root = Path(cfg.source)
    return to_minari(root, cfg.out or f"pixels-to-pedals/{root.resolve().name}-v0")


def format_summary(summary: dict[str, Any]) -> str:
    """One line saying what a conversion wrote."""
    if "id" in summary:
        skipped = f", {summary['skipped']} too short to export" if summary["skipped"] else ""
        return (
            f"wrote Minari dataset {summary['id']}: {summary['episodes']} episodes, "
            f"{summary['steps']} steps{skipped}, in {summary['path']}; "
            f"load it with minari.load_dataset({summary['id']!r})"
        )
    return f"wrote {summary['episodes']} episodes, {summary['frames']} frames into {summary['out']}"
