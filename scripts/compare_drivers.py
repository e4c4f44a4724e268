"""End-to-end against modular: every driver on the same held-out roads, one table.

    python scripts/compare_drivers.py --out logs/compare --roads 100 \
        --pilotnet logs/demo/run/best.pt logs/demo-s1/run/best.pt \
        --appearance train held-out
    python scripts/compare_drivers.py --out /tmp/compare --roads 3 --quick      # a smoke test

Drivers (each sees the same dashcam frames and speedometer, on the same roads):
    expert     privileged: drives from ground truth (the reference row)
    modular    hand-built: OpenCV lane finding on the frame, the expert's control law
    pilotnet   end-to-end: the PilotNet checkpoints given (one per training seed)
    direct     direct perception: checkpoints of a net that predicts the lane quantities, driven
               by the expert's control law (one per training seed), when given
Each (driver, checkpoint, appearance) is one `drive evaluate` into its own folder under OUT, so a
re-run continues where it stopped (evaluation caches every road). The table gives the mean and
the spread (min-max) over training seeds; the per-frame cost of each driver is measured side by
side in this process on the same frames. Writes OUT/comparison.md and OUT/comparison.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

os.environ.setdefault("TQDM_DISABLE", "1")

from driving.rollout.drivers import drivers, policy_world  # noqa: E402

EVALUATE = [sys.executable, "-m", "driving.cli", "evaluate"]
ROADS_FLAG = "--episodes"
"""`drive evaluate`'s flag for the number of held-out roads."""
ROWS = (  # (metrics.json key, row label, format)
    ("success_rate", "success", "{:.1%}"),
    ("autonomy", "autonomy [%]", "{:.2f}"),
    ("mean_abs_lateral_offset", "mean abs lateral offset [m]", "{:.3f}"),
    ("speed_ratio_to_expert", "speed / expert's", "{:.3f}"),
    ("crashes", "crashes", "{:.1f}"),
    ("interventions", "interventions", "{:.1f}"),
    ("perception_lateral_offset_mean", "perception: abs offset error [m]", "{:.3f}"),
    ("perception_heading_error_mean", "perception: abs heading error [rad]", "{:.4f}"),
    ("perception_curvature_mean", "perception: abs curvature error [1/m]", "{:.4f}"),
    ("interventions_perception", "interventions: perception first", "{:.1f}"),
    ("interventions_control", "interventions: control on good estimates", "{:.1f}"),
)


@dataclass
class CompareConfig:
    """Drive every driver on the same held-out roads and print one table."""

    out: Path = Path("logs/compare")
    """folder for each evaluation and the table"""
    roads: int = 100
    """held-out roads per evaluation"""
    pilotnet: list[Path] = field(default_factory=list)
    """end-to-end checkpoints, one per training seed"""
    direct: list[Path] = field(default_factory=list)
    """direct-perception checkpoints, one per training seed"""
    appearance: list[str] = field(default_factory=lambda: ["train", "held-out"])
    """the dashcam's appearance ranges to drive in ('train', 'held-out')"""
    workers: int = 2
    """processes per evaluation"""
    cost_frames: int = 200
    """frames on which each driver's per-frame cost is timed"""
    quick: bool = False
    """a smoke test: no videos, no clips, no expert beside each evaluation"""


def evaluate_one(cfg: CompareConfig, name: str, spec: str, appearance: str) -> dict:
    """`drive evaluate` of one driver in one appearance range; its metrics.json 'overall'."""
    out = cfg.out / name / appearance
    command = [*EVALUATE, "--policy", spec, ROADS_FLAG, str(cfg.roads), "--out", str(out)]
    command += ["--appearance", appearance, "--workers", str(cfg.workers), "--video", "0"]
    if spec == "modular" or spec == "expert":
        command += ["--camera", "dashcam"]
    if cfg.quick:
        command += ["--no-clips", "--no-compare-expert"]
    print(f"[{name} / {appearance}]", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())["overall"]


def frame_cost(specs: dict[str, str], frames: int) -> dict[str, float]:
    """Per-frame time [ms] of each driver's act(), on the same dashcam frames (the expert drives
    one held-out road to make them), timed side by side in this process on one thread."""
    import torch

    torch.set_num_threads(1)
    world = policy_world("modular", camera="dashcam")
    env, _, expert = drivers("expert", world)
    obs, _ = env.reset(seed=1_000_000)
    expert.reset()
    observations = []
    for _ in range(frames):
        observations.append(obs)
        obs, _, terminated, truncated, _ = env.step(expert.act(obs))
        if terminated or truncated:
            obs, _ = env.reset(seed=1_000_001)
    env.close()
    cost = {}
    for name, spec in specs.items():
        env, policy, _ = drivers(spec, policy_world(spec) if spec.endswith(".pt") else world)
        policy.reset()
        start = time.perf_counter()
        for o in observations:
            policy.act(o)
        cost[name] = 1e3 * (time.perf_counter() - start) / len(observations)
        env.close()
    return cost


def _cell(values: list[float], fmt: str) -> str:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "-"
    text = fmt.format(float(np.mean(values)))
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return text


def table(results: dict[str, dict[str, list[dict]]], cost: dict[str, float]) -> str:
    """Markdown: one column per (driver, appearance), mean (min-max over seeds) per metric."""
    columns = [(d, a) for d in results for a in results[d]]
    head = "| metric | " + " | ".join(f"{d} ({a} looks)" for d, a in columns) + " |"
    lines = [head, "|---" * (len(columns) + 1) + "|"]
    seeds = " | ".join(str(len(results[d][a])) for d, a in columns)
    lines.append(f"| checkpoints (training seeds) | {seeds} |")
    for key, label, fmt in ROWS:
        cells = [_cell([r.get(key) for r in results[d][a]], fmt) for d, a in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    costs = " | ".join(f"{cost[d]:.2f}" if d in cost else "-" for d, _ in columns)
    lines.append(f"| per-frame cost [ms, 1 core] | {costs} |")
    return "\n".join(lines)


def main(cfg: CompareConfig) -> None:
    """Run every evaluation (cached), then the frame-cost timing, then print the table."""
    entries = {"expert": ["expert"], "modular": ["modular"]}
    if cfg.pilotnet:
        entries["pilotnet"] = [str(p) for p in cfg.pilotnet]
    if cfg.direct:
        entries["direct"] = [str(p) for p in cfg.direct]
    results: dict[str, dict[str, list[dict]]] = {}
    for name, specs in entries.items():
        results[name] = {}
        for appearance in cfg.appearance:
            runs = [
                evaluate_one(cfg, name if len(specs) == 1 else f"{name}-{i}", spec, appearance)
                for i, spec in enumerate(specs)
            ]
            results[name][appearance] = runs
    cost = frame_cost({name: specs[0] for name, specs in entries.items()}, cfg.cost_frames)
    text = table(results, cost)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "comparison.md").write_text(text + "\n")
    summary = {"roads": cfg.roads, "entries": entries, "results": results, "cost_ms": cost}
    (cfg.out / "comparison.json").write_text(json.dumps(summary, indent=1))
    print(text)
    print(f"table: {cfg.out / 'comparison.md'}")


if __name__ == "__main__":
    main(tyro.cli(CompareConfig))
