"""End-to-end against modular: every driver on the same held-out roads, one table.

    python scripts/compare_drivers.py --out logs/compare --roads 100 \
        --pilotnet logs/demo/run/best.pt logs/demo-s1/run/best.pt logs/demo-s2/run/best.pt \
        --direct logs/dp0/best.pt logs/dp1/best.pt logs/dp2/best.pt
    python scripts/compare_drivers.py --out /tmp/compare --roads 3 --quick      # a smoke test
    python scripts/compare_drivers.py --out logs/compare-traffic --scenario winding-traffic \
        --worlds "as trained" --pilotnet ... --direct ...       # in traffic (default density)

Drivers (each sees the same dashcam frames and speedometer, on the same roads):
    expert     privileged: drives from ground truth (the reference row)
    modular    hand-built: OpenCV lane finding on the frame (and the car ahead in traffic), the
               expert's control law (and the traffic expert's IDM, in its lane)
    pilotnet   end-to-end: the PilotNet checkpoints given (one per training seed)
    direct     direct perception: checkpoints of a net that predicts the lane quantities, driven
               by the expert's control law (one per training seed), when given
Worlds (`--worlds`, names of the generalisation suite's worlds, `driving.rollout.suite`): the
driver's own world ('as trained'), and shifts away from it: the dashcam's held-out looks, tighter
bends, narrower lanes. Each (driver, checkpoint, world) is one evaluation into its own folder
OUT/<driver>/<world> (a learned driver's i-th checkpoint: <driver>-<i>), so a re-run continues
where it stopped (evaluation caches every road). Each table gives the mean and the spread
(min-max) over training seeds. Then the four classic claims about end-to-end learning, answered
from these runs: data (labelled frames each trained on; the hand-built driver's hand-set
constants and lines), compute (training time from each run's TensorBoard events, per-frame cost
timed side by side in this process on the same frames), interpretability (what each driver
exposes) and error propagation (interventions that followed a perception error against those on
good estimates). Writes OUT/comparison.md and comparison.json.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

os.environ.setdefault("TQDM_DISABLE", "1")

from driving.learn.checkpoint import load_checkpoint  # noqa: E402
from driving.rollout.drivers import BUILT_IN, drivers, policy_world  # noqa: E402
from driving.rollout.evaluate import EvalConfig, evaluate  # noqa: E402
from driving.rollout.suite import SUITES, folder_name  # noqa: E402
from envs.world import World  # noqa: E402

ROWS = (  # (metrics.json key, row label, format)
    ("success_rate", "success", "{:.1%}"),
    ("autonomy", "autonomy", "{:.2%}"),  # a fraction in metrics.json
    ("mean_abs_lateral_offset", "mean abs lateral offset [m]", "{:.3f}"),
    ("speed_ratio_to_expert", "speed / expert's", "{:.3f}"),
    ("crashes", "crashes", "{:.1f}"),
    ("interventions", "interventions", "{:.1f}"),
    ("clean_share", "clean: no collision, on the road", "{:.1%}"),
    ("collisions_per_km", "collisions / km", "{:.3f}"),
    ("lane_changes_per_km", "lane changes / km", "{:.2f}"),
    ("perception_lateral_offset_mean", "perception: abs offset error [m]", "{:.3f}"),
    ("perception_heading_error_mean", "perception: abs heading error [rad]", "{:.4f}"),
    ("perception_curvature_mean", "perception: abs curvature error [1/m]", "{:.4f}"),
    ("perception_gap_ahead_mean", "perception: abs gap ahead error [m]", "{:.2f}"),
    ("perception_closing_speed_mean", "perception: abs closing speed error [m/s]", "{:.2f}"),
    ("interventions_perception", "interventions: perception first", "{:.1f}"),
    ("interventions_control", "interventions: control on good estimates", "{:.1f}"),
)
MODULAR_CODE = Path(__file__).resolve().parents[1] / "driving" / "modular"
"""The hand-built driver's code, whose constants and lines the data claim counts."""
EXPOSES = {
    "expert": "ground truth (privileged)",
    "modular": "every stage: the bird's-eye warp, the markings found, the lane model, its "
    "offset / heading / curvature (and the car ahead in traffic) against the truth",
    "pilotnet": "only where it looks (VisualBackProp saliency, `drive saliency`)",
    "direct": "its lane quantities (and the car ahead in traffic), each against the truth; "
    "saliency of its trunk",
}
"""What each driver shows of why it drove as it did (the interpretability claim)."""


@dataclass
class CompareConfig:
    """Drive every driver on the same held-out roads and print one table per world."""

    out: Path = Path("logs/compare")
    """folder for each evaluation and the tables"""
    roads: int = 100
    """held-out roads per evaluation"""
    pilotnet: list[Path] = field(default_factory=list)
    """end-to-end checkpoints, one per training seed"""
    direct: list[Path] = field(default_factory=list)
    """direct-perception checkpoints, one per training seed"""
    scenario: str = ""
    """scenario every driver drives in (e.g. winding-traffic); empty: each driver's own (the
    built-in drivers: winding-road)"""
    density: str = ""
    """traffic density in the traffic scenarios; empty: each driver's own (default)"""
    worlds: list[str] = field(
        default_factory=lambda: ["as trained", "held-out looks", "bends 20-40 m", "lanes 2.8-3.2 m"]
    )
    """worlds of the generalisation suite to drive in, by name"""
    workers: int = 2
    """processes per evaluation"""
    cost_frames: int = 200
    """frames on which each driver's per-frame cost is timed"""
    quick: bool = False
    """a smoke test: no clips, no expert beside each evaluation"""


def shifted(name: str, trained: World) -> World:
    """The generalisation suite's world `name`, made from the driver's own world.

    Raises:
        ValueError: no such world, or one that does not apply (held-out looks on top-down).
    """
    chosen = {w.name: w for w in SUITES["generalisation"]}
    if name not in chosen:
        raise ValueError(f"--worlds: unknown world {name!r}; use some of {list(chosen)}")
    world = chosen[name].change(trained)
    if world is None:
        raise ValueError(f"--worlds: {name!r} does not apply to a {trained.camera.kind} camera")
    return world


def evaluate_one(cfg: CompareConfig, name: str, spec: str, world_name: str) -> dict:
    """Evaluate one driver in one world (cached per road); its metrics.json 'overall'."""
    run = EvalConfig(
        policy=spec,
        episodes=cfg.roads,
        out=cfg.out / name / folder_name(world_name),
        workers=cfg.workers,
        video=0,
        compare_expert=not cfg.quick,
        clips=not cfg.quick,
        camera="dashcam" if spec in BUILT_IN else "",
        scenario=cfg.scenario,
        density=cfg.density,
    )
    world = shifted(world_name, run.validate())
    print(f"[{name} / {world_name}] {spec} -> {run.out}", flush=True)
    if name != "expert":
        reuse_expert(cfg.out / "expert" / folder_name(world_name), run.out)
    return evaluate(run, world)["overall"]


def reuse_expert(expert_out: Path, out: Path) -> None:
    """Offer the expert's drives of one world (its evaluation in `expert_out`) as the expert
    beside the evaluation in `out`: its cache takes a road only where the world and the road are
    the same (`driving.rollout.evaluate`), so the expert drives each road once, not once per
    driver."""
    target = out / "episodes" / "expert"
    for path in sorted((expert_out / "episodes" / "policy").glob("*.json")):
        if not (target / path.name).exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / path.name)


def frame_cost(specs: dict[str, str], frames: int, world: World) -> dict[str, float]:
    """Per-frame time [ms] of each driver's act(), on the same dashcam frames of `world` (the
    expert drives one held-out road to make them), timed side by side in this process on one
    thread."""
    import torch

    torch.set_num_threads(1)
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


def training_record(checkpoint: Path) -> dict:
    """What a checkpoint cost to make: the labelled frames it trained on (its data record) and,
    from its run's TensorBoard events, optimizer steps and wall time [min] from the run's first
    event to its last training scalar (None where the run folder has no events)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = load_checkpoint(checkpoint)["extra"].get("data") or {}
    record = {"train_frames": data.get("train_frames"), "steps": None, "train_min": None}
    if not list(checkpoint.parent.glob("events.out.tfevents.*")):
        return record
    events = EventAccumulator(str(checkpoint.parent), size_guidance={"scalars": 0})
    events.Reload()
    if "train/loss" not in events.Tags()["scalars"]:
        return record
    losses = events.Scalars("train/loss")
    minutes = (losses[-1].wall_time - events.FirstEventTimestamp()) / 60
    return {**record, "steps": losses[-1].step, "train_min": minutes}


def hand_set(folder: Path = MODULAR_CODE) -> dict:
    """The hand-built driver's hand-set numbers (module constants given as number literals or
    tuples of them) and its lines of code, counted in its source."""
    constants, lines = 0, 0
    for path in sorted(folder.glob("*.py")):
        source = path.read_text()
        lines += len(source.splitlines())
        for node in ast.parse(source).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            literals = value.elts if isinstance(value, ast.Tuple) else [value]
            if value is not None and all(_number(v) for v in literals):
                constants += len(literals)
    return {"constants": constants, "lines": lines}


def _number(node: ast.AST | None) -> bool:
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _cell(values: list, fmt: str) -> str:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "-"
    text = fmt.format(float(np.mean(values)))
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return text


def table(results: dict[str, list[dict]], cost: dict[str, float]) -> str:
    """Markdown for one world: one column per driver, mean (min-max over seeds) per metric."""
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines.append("| checkpoints (training seeds) | " + " | ".join(
        str(len(results[d])) for d in names) + " |")  # fmt: skip
    for key, label, fmt in ROWS:
        cells = [_cell([r.get(key) for r in results[d]], fmt) for d in names]
        if any(cell != "-" for cell in cells):  # traffic rows only in traffic
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    costs = " | ".join(f"{cost[d]:.2f}" if d in cost else "-" for d in names)
    lines.append(f"| per-frame cost [ms, 1 core] | {costs} |")
    return "\n".join(lines)


def attribution_share(runs: list[dict]) -> str:
    """'P of N (x %)': interventions that followed a perception error, over every run given."""
    first = sum(r.get("interventions_perception") or 0 for r in runs)
    control = sum(r.get("interventions_control") or 0 for r in runs)
    if first + control == 0:
        return "no interventions"
    return f"{first} of {first + control} ({first / (first + control):.0%})"


def claims(
    results: dict[str, dict[str, list[dict]]],
    records: dict[str, list[dict]],
    cost: dict[str, float],
    hand: dict,
) -> str:
    """Markdown: the four claims, one column per driver (learned drivers: mean over seeds)."""
    names = [d for d in results if d != "expert"]
    every = {d: [r for runs in results[d].values() for r in runs] for d in names}

    def learned(d: str, key: str, fmt: str) -> str:
        return _cell([r[key] for r in records[d]], fmt) if d in records else "-"

    data = {d: learned(d, "train_frames", "{:,.0f}") for d in names}
    data["modular"] = f"none; {hand['constants']} hand-set constants, {hand['lines']} lines"
    train = {d: learned(d, "train_min", "{:.0f}") for d in names}
    train["modular"] = "0"
    per_frame = {d: f"{cost[d]:.2f}" if d in cost else "-" for d in names}
    errors = {d: attribution_share(every[d]) for d in names}
    errors["pilotnet"] = "not separable: one net from pixels to pedals"
    rows = [
        ("data: labelled frames trained on", data),
        ("compute: training [min, wall, from its events]", train),
        ("compute: per frame [ms, 1 core]", per_frame),
        ("interpretability: what it exposes", {d: EXPOSES.get(d, "-") for d in names}),
        ("error propagation: interventions after a perception error", errors),
    ]
    lines = ["| claim | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, cells in rows:
        lines.append(f"| {label} | " + " | ".join(cells.get(d, "-") for d in names) + " |")
    return "\n".join(lines)


def main(cfg: CompareConfig) -> None:
    """Run every evaluation (cached), time each driver's frame cost, write the tables."""
    try:  # a bad world fails before any drive, in one line
        world = policy_world("modular", cfg.scenario, cfg.density, camera="dashcam")
        for name in cfg.worlds:
            shifted(name, world)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    entries = {"expert": ["expert"], "modular": ["modular"]}
    if cfg.pilotnet:
        entries["pilotnet"] = [str(p) for p in cfg.pilotnet]
    if cfg.direct:
        entries["direct"] = [str(p) for p in cfg.direct]
    results: dict[str, dict[str, list[dict]]] = {name: {} for name in entries}
    for world_name in cfg.worlds:
        for name, specs in entries.items():
            results[name][world_name] = [
                evaluate_one(cfg, name if name in BUILT_IN else f"{name}-{i}", spec, world_name)
                for i, spec in enumerate(specs)
            ]
    cost = frame_cost({name: specs[0] for name, specs in entries.items()}, cfg.cost_frames, world)
    records = {
        name: [training_record(Path(s)) for s in specs]
        for name, specs in entries.items()
        if name not in BUILT_IN
    }
    hand = hand_set()
    sections = [f"# End-to-end against modular: {cfg.roads} held-out roads per world\n"]
    for world_name in cfg.worlds:
        by_driver = {name: results[name][world_name] for name in entries}
        sections.append(f"## {world_name}\n\n{table(by_driver, cost)}\n")
    sections.append(f"## The four claims\n\n{claims(results, records, cost, hand)}\n")
    text = "\n".join(sections)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "comparison.md").write_text(text)
    summary = {
        "roads": cfg.roads,
        "worlds": cfg.worlds,
        "entries": entries,
        "results": results,
        "cost_ms": cost,
        "training": records,
        "hand_set": hand,
    }
    (cfg.out / "comparison.json").write_text(json.dumps(summary, indent=1))
    print(text)
    print(f"tables: {cfg.out / 'comparison.md'}")


if __name__ == "__main__":
    main(tyro.cli(CompareConfig))
