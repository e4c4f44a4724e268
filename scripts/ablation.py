"""Which design choices matter, measured closed-loop on held-out roads.

Trains the demo's PilotNet with one choice changed at a time, for several training seeds, and
evaluates every policy on the same held-out roads. Writes `OUT/ablation.md` (a markdown table:
mean and spread over seeds) and `OUT/ablation.json`.

    python scripts/ablation.py --out logs/ablation --seeds 0 1 --episodes 80 --epochs 5

Variants:
    baseline      speed input, curve over-sampling, DART noise while collecting (the demo)
    no-speed      image only: throttle must be guessed from one frame
    no-curves     frames sampled uniformly (no over-sampling of curves)
    no-noise      clean demonstrations (plain behaviour cloning)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

os.environ.setdefault("TQDM_DISABLE", "1")

from driving.helptext import reflow_field_docs  # noqa: E402
from driving.learn.train import TrainConfig, train  # noqa: E402
from driving.record.collect import CollectConfig, NoiseConfig, collect  # noqa: E402
from driving.rollout.evaluate import EvalConfig, evaluate  # noqa: E402

VARIANTS = {
    "baseline": {},
    "no-speed": {"speed_input": False},
    "no-curves": {"curve_weighting": False},
    "no-noise": {"noise": False},
}
METRICS = (
    "success_rate",
    "autonomy",
    "mean_abs_lateral_offset",
    "mean_speed",
    "speed_ratio_to_expert",
    "speeding_share",
    "mean_peak_lateral_accel",
)


@dataclass(frozen=True)
class AblationConfig:
    """Train and evaluate each variant for each seed."""

    out: Path = Path("logs/ablation")
    """output folder"""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """training seeds"""
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    """which variants to run"""
    episodes: int = 80
    """training roads"""
    epochs: int = 5
    """training epochs"""
    eval_roads: int = 50
    """held-out roads"""


def run_variant(cfg: AblationConfig, name: str, seed: int) -> dict:
    """Train (or resume) one variant for one seed and evaluate it; cached on disk."""
    options = VARIANTS[name]
    noise = NoiseConfig() if options.get("noise", True) else NoiseConfig(0.0, 0.0, 0.0)
    data = cfg.out / ("data-clean" if not options.get("noise", True) else "data")
    collect(CollectConfig(out=data, episodes=cfg.episodes, workers=2, noise=noise))
    run = cfg.out / f"{name}-seed{seed}"
    metrics_file = run / "eval" / "metrics.json"
    if metrics_file.exists():
        return json.loads(metrics_file.read_text())
    train_options = {k: v for k, v in options.items() if k != "noise"}
    summary = train(
        TrainConfig(
            data=data,
            run=run,
            epochs=cfg.epochs,
            seed=seed,
            resume=(run / "last.pt").exists(),
            **train_options,
        )
    )
    return evaluate(EvalConfig(str(summary["best"]), cfg.eval_roads, run / "eval", 2, video=1))


def table(results: dict[str, list[dict]]) -> str:
    """Mean +- std over seeds for each variant."""
    lines = ["| variant | seeds | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 2) + "|"]
    for name, reports in results.items():
        cells = []
        for metric in METRICS:
            values = np.array([r["overall"][metric] for r in reports], dtype=float)
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
        lines.append(f"| {name} | {len(reports)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(cfg: AblationConfig) -> None:
    unknown = set(cfg.variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"error: unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    results: dict[str, list[dict]] = {}
    for name in cfg.variants:
        for seed in cfg.seeds:
            report = run_variant(cfg, name, seed)
            results.setdefault(name, []).append(report)
            print(
                f"{name} seed {seed}: success {report['overall']['success_rate']:.2%}, "
                f"autonomy {report['overall']['autonomy']:.2%}",
                flush=True,
            )
            (cfg.out / "ablation.md").write_text(table(results) + "\n")
    (cfg.out / "ablation.json").write_text(
        json.dumps({k: [r["overall"] for r in v] for k, v in results.items()}, indent=2)
    )
    print(table(results))


if __name__ == "__main__":
    reflow_field_docs()
    main(tyro.cli(AblationConfig))
