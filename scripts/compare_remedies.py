"""Which remedy for covariate shift works, at the same budget of expert-labelled frames.

    python scripts/compare_remedies.py --out logs/remedies                 # the full comparison
    python scripts/compare_remedies.py --out /tmp/remedies --quick         # a smoke test

Methods, each trained from the same number of expert-labelled frames (every frame in the training
set carries a label from the expert, whether the car was really there or not):
    plain       behaviour cloning from clean expert driving
    dart        the expert drives with correlated noise on its actions, labels stay clean (DART)
    viewpoint   clean driving, half of the budget spent on views rendered from a camera shifted
                sideways and turned, labelled to steer back (PilotNet's augmentation)
    dagger      DAgger: round 0 clean expert driving, then rounds where the policy drives
                (beta = 0.5**round), every visited frame labelled by the expert
    viewpoint+dart  both: the expert drives with DART noise, half of the budget is shifted views

Every road contributes its first `--steps-per-road` labelled frames, so a budget of B frames is
B / steps-per-road training roads (the same roads for every method; DAgger's later rounds drive
further roads); `--start anywhere` starts each of those drives at a point drawn along its road,
`--start bend` 60 to 120 m before its tightest arc.
Every policy trains for the same number of samples (`--samples`; DAgger: half of that per round,
warm-started) with `--val-fraction 0` (no frame is spent on validation), and is evaluated on the
same held-out roads. Everything is cached on disk: re-running continues.

Writes OUT/remedies.md (table: mean and spread over training seeds of success rate, autonomy and
mean |lateral offset| at each budget, and the fewest labelled frames with which each method
reaches 95 % success), OUT/remedies.json and OUT/remedies.png (success vs labelled frames).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

os.environ.setdefault("TQDM_DISABLE", "1")

from driving.data import Episode, read_episode, scan, used_seeds, write_episode  # noqa: E402
from driving.data.format import ARRAYS, OPTIONAL_STEP_ARRAYS  # noqa: E402
from driving.helptext import reflow_field_docs  # noqa: E402
from driving.learn.train import TrainConfig, train  # noqa: E402
from driving.record.collect import CollectConfig, NoiseConfig, collect  # noqa: E402
from driving.record.viewpoint import ViewpointConfig  # noqa: E402
from driving.rollout.evaluate import EvalConfig, evaluate  # noqa: E402
from driving.tools.dagger import DaggerConfig, dagger  # noqa: E402
from envs.camera import CameraConfig  # noqa: E402
from envs.world import World  # noqa: E402

METHODS = ("plain", "dart", "viewpoint", "dagger", "viewpoint+dart")
METRICS = ("success_rate", "autonomy", "mean_abs_lateral_offset")
CLEAN = NoiseConfig(0.0, 0.0, 0.0)
POOLS = {  # method -> how its demonstrations are collected
    "plain": {"noise": CLEAN},
    "dart": {"noise": NoiseConfig()},
    "viewpoint": {"noise": CLEAN, "viewpoint": ViewpointConfig(views=1.0)},
    "viewpoint+dart": {"noise": NoiseConfig(), "viewpoint": ViewpointConfig(views=1.0)},
}


@dataclass(frozen=True)
class CompareConfig:
    """Train every method at every budget for every seed, evaluate on the same held-out roads."""

    out: Path = Path("logs/remedies")
    """output folder (pools/, budgets/, runs/, remedies.md, remedies.png)"""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """methods to compare"""
    budgets: list[int] = field(default_factory=lambda: [2_500, 5_000, 10_000])
    """expert-labelled frames per policy"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """training seeds"""
    steps_per_road: int = 250
    """labelled frames taken from each road (its first steps)"""
    samples: int = 80_000
    """training samples drawn per policy"""
    dagger_rounds: int = 4
    """DAgger rounds after round 0"""
    eval_roads: int = 50
    """held-out roads every policy is evaluated on"""
    workers: int = 2
    """processes for collection and evaluation"""
    quick: bool = False
    """a smoke test: one small budget, one seed, 2 held-out roads"""
    stratify: bool = False
    """choose the training roads so that every (lanes, starting lane) pair is as common as the
    others, from a pool of 4x as many roads (default: the first roads)"""
    start: Literal["beginning", "anywhere", "bend"] = "beginning"
    """where each training road's drive starts (DAgger's rollouts too):
    'anywhere' is a point drawn along the road, so its first steps are not the first straight;
    'bend' is 60 to 120 m before the road's tightest arc, so every drive takes one"""
    camera: CameraConfig = CameraConfig()
    """the camera every pool is recorded with (--camera.kind dashcam --camera.appearance train:
    the driver's-eye camera); the dagger method runs with the top-down camera only"""
    colour_jitter: float = 0.0
    """strength of the colour augmentation in training (see `drive train --help`)"""
    mask_sky: bool = False
    """hide the dashcam's sky from the nets (see `drive train --help`; dashcam pools only)"""
    mirror: bool = False
    """mirror half of every training batch left to right (see `drive train --help`; not the
    dagger method's); the runs' names end in '+mirror'"""
    target: Literal["controls", "perception"] = "controls"
    """what every net learns: 'controls' (end-to-end) or 'perception' (the lane state, driven
    by the expert's control law: direct perception, see `drive train --help`); the dagger
    method learns controls only"""

    def resolved(self) -> CompareConfig:
        if not self.quick:
            return self
        return replace(
            self, budgets=[400], seeds=[0], steps_per_road=100, samples=2_000, dagger_rounds=1,
            eval_roads=2, quick=False,
        )  # fmt: skip


def _pool(cfg: CompareConfig, method: str) -> Path:
    """Whole-road demonstrations of `method`, enough roads for the largest budget."""
    path = cfg.out / "pools" / method
    roads = math.ceil(max(cfg.budgets) / cfg.steps_per_road) * (4 if cfg.stratify else 1)
    setup = {"episodes": roads, "workers": cfg.workers, **POOLS[method]}
    collect(CollectConfig(out=path, world=World(start=cfg.start, camera=cfg.camera), **setup))
    return path


def _cut(episode: Episode, steps: int) -> Episode:
    """The first `steps` rows of an episode."""
    names = (*ARRAYS, *OPTIONAL_STEP_ARRAYS)  # the optional ones: direct-perception targets
    arrays = {k: a[:steps] for k in names if (a := getattr(episode, k)) is not None}
    return Episode(seed=episode.seed, meta={**episode.meta, "cut_to": steps}, **arrays)


def choose_roads(seeds: list[int], count: int, stratify: bool) -> list[int]:
    """The first `count` seeds; stratified: taken in turn from each (lanes, starting lane) group."""
    if not stratify:
        return seeds[:count]
    from envs.world import make_env

    env, groups = make_env(), {}
    for seed in seeds:
        env.reset(seed=seed)
        base = env.unwrapped
        groups.setdefault((base.road_map.lanes, base.vehicle.lane_index[2]), []).append(seed)
    queues = [groups[key] for key in sorted(groups)]
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return sorted(chosen)


def budget_dataset(cfg: CompareConfig, method: str, budget: int) -> Path:
    """A dataset of exactly `budget` labelled frames: the first roads of the method's pool (or a
    stratified choice, see `choose_roads`), each cut to its first steps (viewpoint*: half real
    frames, half shifted views of those steps)."""
    path = cfg.out / "budgets" / f"{method}-{budget}"
    if (path / "complete").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    pool = _pool(cfg, method)
    roads = set(choose_roads(sorted(used_seeds(pool)), budget // cfg.steps_per_road, cfg.stratify))
    real = cfg.steps_per_road // 2 if "viewpoint" in method else cfg.steps_per_road
    for episode_path in scan(pool)[0]:  # one episode in memory at a time
        episode = read_episode(episode_path)
        if episode.seed in roads:
            views = episode.meta["driver"] == "viewpoint"
            write_episode(path, _cut(episode, cfg.steps_per_road - real if views else real))
    (path / "complete").write_text("")
    return path


def train_policy(cfg: CompareConfig, method: str, budget: int, seed: int) -> tuple[Path, int]:
    """Train (or resume) one policy; returns its checkpoint and the labelled frames it used."""
    run = cfg.out / "runs" / f"{label(cfg, method)}-{budget}-seed{seed}"
    if method == "dagger":
        roads = budget // cfg.steps_per_road
        per_round = roads // (cfg.dagger_rounds + 1)
        dagger(
            DaggerConfig(
                out=run,
                rounds=cfg.dagger_rounds,
                episodes=per_round,
                max_steps=cfg.steps_per_road,
                samples=cfg.samples // 2,
                eval_episodes=0,
                workers=cfg.workers,
                seed=seed,
                start=cfg.start,
            )
        )
        last = run / f"round_{cfg.dagger_rounds}"
        return last / "best.pt", json.loads((last / "gathered.json").read_text())["labelled_frames"]
    data = budget_dataset(cfg, method, budget)
    frames = sum(len(read_episode(p).labels) for p in scan(data)[0])
    epochs = max(1, math.ceil(cfg.samples / frames))
    jitter = cfg.colour_jitter
    train(
        TrainConfig(
            data=data, run=run, epochs=epochs, val_fraction=0.0, seed=seed, resume=True,
            colour_jitter=jitter, mask_sky=cfg.mask_sky, target=cfg.target, mirror=cfg.mirror,
        )
    )  # fmt: skip
    return run / "best.pt", frames


def run_one(cfg: CompareConfig, method: str, budget: int, seed: int) -> dict:
    checkpoint, frames = train_policy(cfg, method, budget, seed)
    out = checkpoint.parent / "eval"
    report = evaluate(EvalConfig(str(checkpoint), cfg.eval_roads, out, cfg.workers, 0, False))
    row = {"method": label(cfg, method), "budget": budget, "seed": seed, "labelled_frames": frames}
    return {**row, **report["overall"]}


def label(cfg: CompareConfig, method: str) -> str:
    """A method's name in the table and its runs' folders: with the target when not controls,
    and '+mirror' when mirrored."""
    name = method if cfg.target == "controls" else f"{method}-{cfg.target}"
    return f"{name}+mirror" if cfg.mirror else name


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def table(rows: list[dict], budgets: list[int], target: float = 0.95) -> str:
    """Markdown: one line per (method, budget), and the fewest frames reaching `target` success."""
    lines = [
        "| method | labelled frames | seeds | success rate | autonomy | mean abs offset [m] |",
        "|---|---|---|---|---|---|",
    ]
    reached = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        for budget in budgets:
            group = [r for r in rows if r["method"] == method and r["budget"] == budget]
            if not group:
                continue
            cells = [_spread([r[m] for r in group]) for m in METRICS]
            lines.append(f"| {method} | {budget:,} | {len(group)} | " + " | ".join(cells) + " |")
            if method not in reached and np.mean([r["success_rate"] for r in group]) >= target:
                reached[method] = budget
    lines += ["", f"| method | fewest labelled frames with mean success >= {target:.0%} |"]
    lines.append("|---|---|")
    for method in dict.fromkeys(r["method"] for r in rows):
        tried = max(r["budget"] for r in rows if r["method"] == method)
        found = f"{reached[method]:,}" if method in reached else f"not reached (tried <= {tried:,})"
        lines.append(f"| {method} | {found} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Success rate vs labelled frames, mean and spread over seeds, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for method in dict.fromkeys(r["method"] for r in rows):
        budgets = sorted({r["budget"] for r in rows if r["method"] == method})
        values = [
            [r["success_rate"] * 100 for r in rows if r["method"] == method and r["budget"] == b]
            for b in budgets
        ]
        means = [np.mean(v) for v in values]
        ax.errorbar(budgets, means, yerr=[np.std(v) for v in values], marker="o", capsize=3,
                    label=method)  # fmt: skip
    ax.axhline(95, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("expert-labelled frames")
    ax.set_ylabel("success rate on held-out roads [%]")
    ax.set_ylim(0, 102)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(cfg: CompareConfig) -> None:
    cfg = cfg.resolved()
    unknown = set(cfg.methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"error: unknown methods {sorted(unknown)}; choose from {list(METHODS)}")
    if "dagger" in cfg.methods and cfg.camera != CameraConfig():
        raise SystemExit("error: the dagger method runs with the top-down camera only; drop it")
    if "dagger" in cfg.methods and cfg.target != "controls":
        raise SystemExit("error: the dagger method learns controls only; drop it or --target")
    unit = cfg.steps_per_road * (cfg.dagger_rounds + 1)
    if any(b % unit for b in cfg.budgets):
        raise SystemExit(
            f"error: every budget must be a multiple of {unit} frames (steps per road x DAgger "
            "rounds + 1), so that each method gets exactly the budget"
        )
    rows = []
    for seed in cfg.seeds:  # seed by seed, so that a partial run already covers every cell
        for budget in cfg.budgets:
            for method in cfg.methods:
                rows.append(run_one(cfg, method, budget, seed))
                row = rows[-1]
                print(
                    f"{row['method']} {budget} seed {seed}: success {row['success_rate']:.0%}, "
                    f"autonomy {row['autonomy']:.2%}",
                    flush=True,
                )
                (cfg.out / "remedies.json").write_text(json.dumps(rows, indent=2))
                (cfg.out / "remedies.md").write_text(table(rows, cfg.budgets) + "\n")
                plot(rows, cfg.out / "remedies.png")
    print(table(rows, cfg.budgets))


if __name__ == "__main__":
    reflow_field_docs()
    main(tyro.cli(CompareConfig))
