"""Closed-loop evaluation on held-out roads: camera frame in, action out, expert as safety driver.

    drive evaluate --policy logs/demo/best.pt --roads 50 --out logs/demo/eval

Every episode runs on an evaluation seed (see `envs`), never seen in training, in the scenario
the policy was trained in (its checkpoint says which; `--scenario` and `--density` choose another).
When the policy gets more than 1 m off the lane centre (in traffic: for more than 3 s, since a lane
change crosses a lane line), leaves the road or crashes, the expert takes over until the car is
back on the centre; each takeover counts as an intervention (metrics in
`driving.rollout.metrics`; in traffic also `driving.rollout.traffic_metrics`: collisions/km,
headway under 1 s, driving score).
Writes `metrics.json` (overall and per episode, with the seeds, and the interventions broken down
by road curvature and speed, also drawn in `breakdown.png`; rates as fractions; what produced it
in `provenance`), mp4 videos of the first episodes, a short clip of every intervention and
failure (`clips/`), `report.html` (all of it on one page, `driving.rollout.html`), and prints a
table with the expert's numbers beside the policy's. With `--run` it is also recorded in the
training run (TensorBoard, HParams, the model card: `driving.rollout.report.publish_to_run`).
With `--suite generalisation` it drives a suite of worlds instead (`driving.rollout.suite`,
`run_suite`): each with the safety driver and alone, one table in `suite.md`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

import envs
from driving.config import plain, save_config
from driving.files import replacing, write_json
from driving.flags import Roads
from driving.learn import perception
from driving.learn.perception import DirectDriver
from driving.learn.policy import NetPolicy
from driving.learn.saliency import VisualBackProp
from driving.learn.state import resolve_device
from driving.modular.driver import source_hash
from driving.parallel import per_process, run_parallel
from driving.rollout import breakdown
from driving.rollout.drivers import BUILT_IN, EXPERT, MODULAR, drivers, load_policy, policy_world
from driving.rollout.html import write_report_page
from driving.rollout.loop import rollout
from driving.rollout.metrics import METRICS_VERSION
from driving.rollout.report import format_table, overall, provenance, publish_to_run
from driving.rollout.suite import (
    SUITES,
    folder_name,
    inside_training,
    suite_row,
    worlds,
    write_suite,
)
from envs import eval_seeds
from envs.world import World

MAX_CLIPS = 30  # clips of interventions and failures kept per run (the first roads')
CACHE_ENV = "PIXELS_TO_PEDALS_CACHE"
"""Environment variable naming the folder of the expert's shared episodes (default
~/.cache/pixels-to-pedals): `expert_cache`."""


@dataclass(frozen=True)
class EvalConfig:
    """Run a policy closed-loop on held-out roads and report the driving metrics."""

    policy: str = ""
    """a checkpoint file (.pt), 'expert' or 'modular' (the hand-built driver: `driving.modular`);
    empty: the latest run's best.pt (the newest under logs/: `driving.runs`)"""
    episodes: Roads = 50
    """number of held-out roads"""
    out: Path = Path("logs/eval")
    """folder for metrics.json and videos"""
    workers: int = 2
    """processes running episodes in parallel"""
    video: int = 1
    """record an mp4 of this many episodes (the first ones)"""
    compare_expert: bool = True
    """also run the expert on the same roads and print both"""
    seed_offset: int = 0
    """skip this many evaluation seeds (to use other held-out roads)"""
    clips: bool = True
    """keep a clip of every intervention and failure (3 s before to 1 s after) in OUT/clips"""
    saliency: bool = False
    """draw where the network looks (VisualBackProp) on the videos (clips always show it)"""
    scenario: str = ""
    """world to drive in; empty: the policy's own (from its checkpoint; 'winding-road' for the
    expert)"""
    density: str = ""
    """traffic density in the traffic scenarios: light, default, dense or vehicles/km/lane;
    empty: the policy's own"""
    appearance: str = ""
    """the dashcam's appearance range: 'train', 'held-out' (colours and light no training frame
    shows: a robustness test) or 'plain'; empty: the policy's own"""
    device: str = "cpu"
    """where the network runs: auto (a GPU if there is one), cpu, cuda or cuda:N"""
    camera: str = ""
    """for 'expert' and 'modular': 'topdown' (the default) or 'dashcam' (the demo's camera,
    'train' looks unless --appearance says otherwise)"""
    run: Path | None = None
    """the checkpoint's training run folder: log this evaluation to its TensorBoard (eval/*
    scalars and videos, the metrics of the HParams tab) and write the numbers into the model
    card beside the checkpoint (<checkpoint>.md); needs a checkpoint --policy"""
    suite: str = ""
    """run a suite of worlds instead of one: 'generalisation' (tighter bends, other lane widths
    and counts, the held-out looks, highway-env's racetracks and highway; `driving.rollout.suite`),
    each with the expert as safety driver and alone, --roads drives per world; one table in
    OUT/suite.md"""

    def world(self) -> World:
        """The world to drive in (`driving.rollout.drivers.policy_world`)."""
        return policy_world(self.policy, self.scenario, self.density, self.appearance, self.camera)

    def validate(self) -> World:
        """Check the settings once (a bad checkpoint is refused before any work); returns the
        world to drive in."""
        if not self.policy:
            raise ValueError("--policy: give a checkpoint (.pt), 'expert' or 'modular'")
        if self.episodes < 1:
            raise ValueError(f"--roads must be >= 1, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        if self.video < 0:
            raise ValueError(f"--video must be >= 0, got {self.video}")
        resolve_device(self.device)
        if self.run is not None and self.policy in BUILT_IN:
            raise ValueError(f"--run is for a checkpoint's run; {self.policy!r} has none")
        if self.suite and self.suite not in SUITES:
            raise ValueError(f"unknown --suite {self.suite!r}; use one of {list(SUITES)}")
        if self.suite and self.run is not None:
            raise ValueError("--run records one evaluation; a --suite writes OUT/suite.md")
        return self.world()


def _build(spec: str, world: World, device: str) -> dict:
    """The env, policy, expert and (for a network) its saliency of one worker process."""
    env, policy, expert = drivers(spec, world, device, terminate_off_road=False)
    vbp = VisualBackProp(policy.model) if isinstance(policy, (NetPolicy, DirectDriver)) else None
    return {"env": env, "policy": policy, "expert": expert, "vbp": vbp}


def _run_seed(
    spec: str,
    world: World,
    seed: int,
    video: Path | None,
    clips: Path | None,
    saliency: bool,
    device: str,
    alone: bool = False,
) -> dict:
    """Evaluate one seed in a worker process (the env and policy are built once per process)."""
    w = per_process("evaluate", (spec, world, device), lambda: _build(spec, world, device))
    # clips show the saliency whenever the policy is a network
    args = (w["env"], w["policy"], w["expert"], seed, video, clips, w["vbp"], saliency)
    return rollout(*args, alone=alone)


def policy_id(spec: str, world: World = World()) -> str:
    """Identity of a policy in a world for the episode cache: 'expert', 'modular' and its code's
    sha256 (a change to it is a new driver), or the checkpoint's sha256 (and, for a direct-
    perception net, that code's: it drives with it), followed by the world when it is not the
    default one."""
    if spec in BUILT_IN:
        name = f"{MODULAR}|{source_hash()}" if spec == MODULAR else spec
    else:
        name = hashlib.sha256(Path(spec).read_bytes()).hexdigest()
        if isinstance(load_policy(spec), DirectDriver):  # drives with the modular control code
            name = f"{name}|{source_hash(Path(perception.__file__))}"
    return name if world == World() else f"{name}|{json.dumps(world.to_dict(), sort_keys=True)}"


def _digest(result: dict) -> str:
    """sha256 of a result's JSON: a cached result edited or damaged since is not trusted."""
    return hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()


def _cached(path: Path, identity: str, seed: int) -> dict | None:
    """A finished episode's result from an earlier (possibly killed) run of the same policy;
    None (the road is driven again) if absent, edited, damaged or of another policy or road."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("policy_id") != identity:
        return None
    if saved.get("metrics_version") != METRICS_VERSION:
        return None
    result = saved.get("result")
    if not isinstance(result, dict) or saved.get("sha256") != _digest(result):
        return None
    return result if result.get("seed") == seed else None


def expert_cache(world: World) -> Path:
    """The folder of the expert's episodes in `world` shared by every evaluation that compares
    with it (the expert drives a held-out road the same way whichever policy is evaluated):
    named by the world, the metrics version and the code of the simulation and the expert
    (envs/), so a change to any of them drives the roads again."""
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pixels-to-pedals"
    digest = hashlib.sha256(json.dumps(world.to_dict(), sort_keys=True).encode())
    digest.update(f"metrics {METRICS_VERSION}".encode())
    for path in sorted(Path(envs.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return Path(base) / "expert" / digest.hexdigest()[:20]


def _copy_missing(source: Path, target: Path, seeds: list[int]) -> None:
    """Copy the episode files of `seeds` from `source` to `target` where `target` has none (a
    damaged or foreign one is not trusted when read: `_cached`). A cache that cannot be
    written is skipped: the evaluation does not depend on it."""
    try:
        for seed in seeds:
            there, here = source / f"{seed}.json", target / f"{seed}.json"
            if there.is_file() and not here.exists():
                with replacing(here) as tmp:
                    shutil.copyfile(there, tmp)
    except OSError:
        pass


def run_episodes(
    spec: str,
    seeds: list[int],
    workers: int,
    videos: dict[int, Path],
    desc: str,
    cache: Path,
    clips: Path | None = None,
    saliency: bool = False,
    world: World = World(),
    device: str = "cpu",
    alone: bool = False,
) -> list[dict]:
    """Evaluate `spec` in `world` on `seeds` in `workers` processes, with a progress bar.

    Each finished episode is saved in `cache` at once; a re-run of the same policy skips them,
    so a killed evaluation loses at most the episodes in progress. `clips`: folder for the clips
    of interventions and failures (None: no clips); `saliency`: draw it on the videos; `device`:
    where a network runs; `alone`: no safety driver (`driving.rollout.loop.drive`).
    """
    identity = policy_id(spec, world) + ("|alone" if alone else "")
    done = {}
    for seed in seeds:
        result = _cached(cache / f"{seed}.json", identity, seed)
        if result is None or "breakdown" not in result:  # missing, or cached by an older version
            continue
        if seed not in videos or videos[seed].exists():
            done[seed] = result
    todo = [s for s in seeds if s not in done]
    bar = tqdm(total=len(seeds), initial=len(done), unit="road", desc=desc)

    def finished(result: dict) -> None:
        done[result["seed"]] = result
        saved = {
            "policy_id": identity,
            "metrics_version": METRICS_VERSION,
            "result": result,
            "sha256": _digest(result),
        }
        write_json(cache / f"{result['seed']}.json", saved)
        bar.update(1)
        bar.set_postfix(success=f"{np.mean([r['success'] for r in done.values()]):.0%}")

    try:
        tasks = [(spec, world, s, videos.get(s), clips, saliency, device, alone) for s in todo]
        run_parallel(_run_seed, tasks, workers, finished)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted: {len(done)} of {len(seeds)} roads evaluated and saved in {cache}; "
            "re-run the same command to finish"
        ) from None
    finally:
        bar.close()
    return [done[s] for s in seeds]


def evaluate(cfg: EvalConfig, world: World | None = None) -> dict:
    """Evaluate `cfg.policy` on held-out roads; writes `out/metrics.json` and videos; returns it
    all (the policy's and the expert's metrics, per episode and overall, and the table).
    `world`: drive there instead of in `cfg.world()` (a suite's worlds)."""
    chosen = cfg.validate()  # reads the checkpoint: a bad one is refused before any work
    world = chosen if world is None else world
    seeds = eval_seeds(cfg.episodes, cfg.seed_offset)
    report_config = plain(cfg)  # typed: a valid `drive evaluate --config`
    save_config(cfg.out / "config.json", cfg)  # also fails fast on a read-only --out
    videos = {s: cfg.out / "videos" / f"road_{s}.mp4" for s in seeds[: cfg.video]}
    clip_folder = cfg.out / "clips" if cfg.clips else None
    cache = cfg.out / "episodes" / "policy"
    per_episode = run_episodes(
        cfg.policy, seeds, cfg.workers, videos, "evaluate", cache, clip_folder, cfg.saliency, world,
        cfg.device,
    )  # fmt: skip
    table_by_bin = breakdown.merge([e["breakdown"] for e in per_episode])
    name = cfg.policy if cfg.policy in BUILT_IN else Path(cfg.policy).name
    breakdown.plot(table_by_bin, cfg.out / "breakdown.png", f"interventions of {name}")
    report = {
        "policy": cfg.policy,
        "provenance": provenance(cfg.policy),
        "config": report_config,
        "world": world.to_dict(),
        "scenario": world.scenario,
        "density": world.density,
        "seeds": seeds,
        "overall": overall(per_episode),
        "episodes": per_episode,
        "videos": [str(p) for p in videos.values()],
        "clips": _cap_clips(per_episode, MAX_CLIPS) if cfg.clips else [],
        "breakdown": table_by_bin,
        "breakdown_table": breakdown.format_breakdown(table_by_bin),
    }
    table = {"policy": report["overall"]}
    if cfg.compare_expert and cfg.policy != EXPERT:
        local, shared = cfg.out / "episodes" / "expert", expert_cache(world)
        _copy_missing(shared, local, seeds)  # the expert's drives of earlier evaluations
        expert_episodes = run_episodes(EXPERT, seeds, cfg.workers, {}, "expert", local, world=world)
        _copy_missing(local, shared, seeds)
        report["expert"] = {"overall": overall(expert_episodes), "episodes": expert_episodes}
        report["overall"]["speed_ratio_to_expert"] = (
            report["overall"]["mean_speed"] / report["expert"]["overall"]["mean_speed"]
        )
        table["expert"] = report["expert"]["overall"]
    report["table"] = format_table(table)
    write_json(cfg.out / "metrics.json", report)
    write_report_page(cfg.out, report)
    if cfg.run is not None:
        publish_to_run(report, Path(cfg.run))
    return report


def _cap_clips(episodes: list[dict], limit: int) -> list[str]:
    """The clips of the run, by road; past `limit` the extra files are deleted."""
    paths = [p for e in sorted(episodes, key=lambda e: e["seed"]) for p in e.get("clips", [])]
    for extra in paths[limit:]:
        Path(extra).unlink(missing_ok=True)
    return [p for p in paths[:limit] if Path(p).exists()]


def run_suite(cfg: EvalConfig) -> dict:
    """Run `cfg.suite` for `cfg.policy` (`driving.rollout.suite`): each world evaluated with the
    safety driver and alone, one table in OUT/suite.md; returns {"rows", "table"}."""
    trained = cfg.validate()
    chosen = worlds(cfg.suite, trained)
    seeds = eval_seeds(cfg.episodes, cfg.seed_offset)
    rows = []
    for index, (name, world) in enumerate(chosen, 1):
        out = cfg.out / folder_name(name)
        print(f"[{index}/{len(chosen)}] {name}: {world.scenario}, results in {out}")
        report = evaluate(replace(cfg, out=out, suite="", run=None), world)
        alone = run_episodes(
            cfg.policy, seeds, cfg.workers, {}, "alone", out / "episodes" / "alone",
            world=world, device=cfg.device, alone=True,
        )  # fmt: skip
        rows.append(suite_row(name, inside_training(world, trained), report, alone))
        write_suite(cfg.out, cfg, rows)  # the table so far: a killed suite keeps its rows
    return write_suite(cfg.out, cfg, rows)
