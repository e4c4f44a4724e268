"""DAgger (Ross, Gordon and Bagnell 2011): let the policy drive, label what it sees with the expert.

    drive dagger --out logs/dagger --rounds 4 --roads 4

Round 0 records the expert's own driving. Each later round r rolls out the policy trained in the
round before on new training roads, executing the expert's action instead of the policy's with
probability beta**r; the expert, as a safety driver, also takes over after an intervention (as in
evaluation), so an episode never ends in a ditch. Every visited frame is labelled with the
expert's action and added to the dataset (same format and writer as `drive collect`, driver
"dagger"); PilotNet is then retrained on everything gathered so far (warm-started from the last
round's weights) and evaluated on held-out roads. Each round's closed-loop metrics go to
TensorBoard (`OUT/summary`, tags dagger/*) and to the table `OUT/dagger.md`.

From a trained policy (`--policy P.pt`) round 0 already rolls P out (beta**1), every round trains
with P's own recipe (frame stack, augmentations, inputs: the settings its checkpoint records), and
`--demos DIR` (e.g. the demonstrations P was trained on) joins the gathered data, as DAgger
aggregates everything the expert labelled:

    drive dagger --policy logs/traffic/run/best.pt --demos logs/traffic/data --first-seed 120

Every stage is idempotent: roads already recorded are skipped, training resumes from `last.pt`,
evaluation reuses finished roads. Re-running the same command after a kill continues the run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from driving.data import (
    DatasetError,
    Episode,
    count_frames,
    prepare_folder,
    scan,
    write_episode,
)
from driving.data.read import has_episode, scan_headers
from driving.data.store import link_episodes
from driving.files import write_json
from driving.flags import EvalRoads, Roads, flag
from driving.learn.checkpoint import load_checkpoint
from driving.learn.policy import observe
from driving.learn.state import resolve_device
from driving.learn.train import TrainConfig, train
from driving.parallel import per_process, run_parallel
from driving.record.collect import check_training_world
from driving.record.steps import StepRows, drive_meta, truth_ranges
from driving.rollout.drivers import EXPERT, drivers, policy_world
from driving.rollout.evaluate import EvalConfig, evaluate
from driving.rollout.loop import drive
from envs import train_seeds
from envs.expert import Expert

TABLE_KEYS = ("success_rate", "autonomy", "interventions_per_km", "mean_abs_lateral_offset")


@dataclass(frozen=True)
class DaggerConfig:
    """Run DAgger rounds: roll out, label with the expert, aggregate, retrain, evaluate."""

    out: Path = Path("logs/dagger")
    """run folder: data/ (all labelled episodes), round_<r>/ (checkpoints, eval/), dagger.md"""
    rounds: int = 4
    """rounds after round 0 (the expert's own demonstrations)"""
    episodes: Roads = 4
    """roads recorded per round, round 0 included"""
    max_steps: int | None = None
    """steps recorded per road at most (default: the whole road): sets the labelled-frame budget"""
    beta: float = 0.5
    """round r executes the expert's action with probability beta**r (round 0: always), or
    beta**(r+1) from a --policy (round 0 rolls it out)"""
    samples: int = 60_000
    """training samples drawn per round (epochs = samples / frames gathered so far)"""
    warm_start: bool = True
    """start each round's training from the previous round's weights"""
    val_fraction: float = 0.0
    """share of roads held out for validation (0: every labelled frame trains; best = last)"""
    eval_episodes: EvalRoads = 50
    """held-out roads each round's policy is evaluated on"""
    workers: int = 2
    """processes for rollouts and evaluation"""
    seed: int = 0
    """training seed (initial weights, sampling) and seed of the beta coin"""
    first_seed: int = 0
    """first training road; round r uses the next `episodes` roads after round r-1's"""
    start: Literal["beginning", "anywhere", "bend"] = "beginning"
    """where each training road's drive starts (as `drive collect --start`): its beginning, a
    point drawn along it, or 60 to 120 m before its tightest arc; evaluation always starts at
    the beginning"""
    policy: str = ""
    """start from this checkpoint instead of the expert's demonstrations: round 0 rolls it out
    (in the world it was trained in), round 0's training warm-starts from it, and every round
    trains with its recipe (frame stack, augmentations, inputs)"""
    demos: Path | None = None
    """a dataset to train on beside the gathered episodes, e.g. the demonstrations --policy was
    trained on: its episodes are linked into OUT/data before round 0 (its roads must not be
    among the rounds' roads: see --first-seed)"""
    scenario: str = ""
    """world to drive in; empty: the policy's own ('winding-road' without --policy)"""
    density: str = ""
    """traffic density in the traffic scenarios; empty: the policy's own"""
    device: str = "auto"
    """where the network trains: auto (a GPU if there is one), cpu, cuda or cuda:N; it drives
    (rollouts, evaluation) on the CPU, as `drive evaluate` does by default"""

    def validate(self) -> None:
        for name in ("episodes", "workers", "samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{flag(name)} must be >= 1, got {getattr(self, name)}")
        for name in ("rounds", "eval_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(
                f"--max-steps must be >= 1, got {self.max_steps}; omit it for no limit"
            )
        resolve_device(self.device)
        if not 0 <= self.beta <= 1:
            raise ValueError(f"--beta must be in [0, 1], got {self.beta}")
        train_seeds(self.first_seed, self.episodes * (self.rounds + 1))  # refuses held-out roads
        if self.policy and not Path(self.policy).is_file():
            # a built-in driver ('expert', 'modular') has no weights to warm-start round 0 from
            raise ValueError(f"--policy must be a checkpoint file (.pt), got {self.policy!r}")
        self.world()
        if self.demos is not None:
            shared = _demo_seeds(self.demos) & set(self.round_seeds(range(self.rounds + 1)))
            if shared:
                raise ValueError(
                    f"--demos {self.demos} already holds roads the rounds would drive (e.g. "
                    f"{min(shared)}): start the rounds after them with --first-seed"
                )

    def round_seeds(self, rounds) -> list[int]:
        """The training roads rolled out in `rounds`."""
        first = self.first_seed
        return [s for r in rounds for s in train_seeds(first + r * self.episodes, self.episodes)]

    def beta_of(self, round_: int) -> float:
        """The probability that round `round_` executes the expert's action."""
        return self.beta ** (round_ + bool(self.policy))

    def world(self):
        """The world the rollouts drive in: --policy's own (the default world without one),
        with --scenario, --density and --start applied."""
        world = policy_world(self.policy or EXPERT, self.scenario, self.density)
        world = replace(world, start=self.start).validate()
        check_training_world(world)
        return world


RECIPE_SKIPPED = {
    "data", "run", "epochs", "val_fraction", "seed", "device", "resume", "init", "threads",
    "eval_episodes", "eval_workers", "log_every", "wandb", "data_loading",
}  # fmt: skip
"""`drive train` settings that DAgger sets per round itself; the others are the policy's recipe."""


def _demo_seeds(demos: Path) -> set[int]:
    """The roads of the dataset `demos` (refused in one line if it is not one)."""
    try:
        return {h.seed for h in scan_headers(Path(demos))[0]}
    except DatasetError as error:
        raise ValueError(f"--demos: {error}") from None


def recipe(policy: str) -> dict:
    """The training settings the checkpoint `policy` was trained with, less those DAgger sets
    per round (`RECIPE_SKIPPED`); {} without a policy (`drive train`'s defaults)."""
    if not policy:
        return {}
    config = load_checkpoint(policy)["config"]
    names = {f.name for f in fields(TrainConfig)} - RECIPE_SKIPPED
    return {name: value for name, value in config.items() if name in names}


class MixedPolicy:
    """Executes the expert's action with probability beta, the policy's otherwise (per step)."""

    def __init__(self, policy, expert: Expert, beta: float, seed: int) -> None:
        self.policy, self.expert, self.beta = policy, expert, beta
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self.policy.reset()

    def observe(self, obs: dict) -> None:
        observe(self.policy, obs)

    def act(self, obs: dict) -> np.ndarray:
        if self.rng.random() < self.beta:
            observe(self.policy, obs)  # a net stacking frames needs this one later
            return self.expert.act(obs)
        return self.policy.act(obs)


def record_episode(env, policy, expert: Expert, seed: int, max_steps: int | None = None) -> Episode:
    """Drive one road with `policy` (the expert taking over after interventions) and label every
    visited frame with the expert's action; `max_steps` (if given) stops early."""
    rows, interventions, step = StepRows(), 0, None
    for count, step in enumerate(drive(env, policy, expert, seed, truth=True), start=1):
        state = step.state
        rows.add(
            step.obs["image"],
            step.expert_action,
            step.action,
            state["speed"],
            state["lateral_offset"],
            state["heading_error"],
            *step.truth,
            speed_limit=state["speed_limit"],
        )
        interventions += step.intervention
        if count == max_steps:  # never, without a limit
            break
    meta = drive_meta(env, "dagger", step.info, interventions=interventions, **truth_ranges(expert))
    return rows.episode(seed, meta)


def _record_one(
    out: Path, spec: str, world, seed: int, round_: int, beta: float, max_steps: int | None
) -> int:
    """Record and write one road (in a worker process); returns the frames saved."""
    built = per_process(
        "dagger", (spec, world), lambda: drivers(spec, world, terminate_off_road=False)
    )
    env, net, expert = built
    policy = expert if net is expert else MixedPolicy(net, expert, beta, seed)
    episode = record_episode(env, policy, expert, seed, max_steps)
    episode.meta.update(round=round_, beta=beta, policy=spec, start=world.start)
    write_episode(out, episode)
    return len(episode.frames)


def _gather(cfg: DaggerConfig, round_: int, spec: str) -> None:
    """Record this round's roads that the dataset does not hold yet."""
    data = cfg.out / "data"
    prepare_folder(data)
    seeds = cfg.round_seeds([round_])
    todo = [s for s in seeds if not has_episode(data, s)]  # demos' roads not read again
    beta = cfg.beta_of(round_)
    bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo), unit="road")
    bar.set_description(f"round {round_}: rollouts (beta {beta:.3g})")
    world = cfg.world()
    jobs = [(data, spec, world, s, round_, beta, cfg.max_steps) for s in todo]
    try:
        run_parallel(_record_one, jobs, cfg.workers, lambda _: bar.update(1))
    finally:
        bar.close()


def run_round(cfg: DaggerConfig, round_: int) -> dict:
    """One DAgger round, each stage skipped or resumed when already done; returns its table row."""
    run = cfg.out / f"round_{round_}"
    previous = cfg.out / f"round_{round_ - 1}" / "best.pt"
    if round_ == 0:
        previous = Path(cfg.policy) if cfg.policy else None
    gathered = run / "gathered.json"  # the round's data is complete: its frame count
    if not gathered.exists():
        _gather(cfg, round_, EXPERT if previous is None else str(previous))
        run.mkdir(parents=True, exist_ok=True)
        write_json(gathered, {"labelled_frames": count_frames(cfg.out / "data")})
    frames = json.loads(gathered.read_text())["labelled_frames"]
    init = previous if cfg.warm_start else None
    summary = train(
        TrainConfig(
            **recipe(cfg.policy),
            data=cfg.out / "data",
            run=run,
            epochs=max(1, math.ceil(cfg.samples / frames)),
            val_fraction=cfg.val_fraction,
            seed=cfg.seed,
            resume=True,
            init=init,
            device=cfg.device,
        )
    )
    row = {"round": round_, "beta": cfg.beta_of(round_), "labelled_frames": frames}
    if cfg.eval_episodes:
        where = {"scenario": cfg.scenario, "density": cfg.density}
        report = evaluate(
            EvalConfig(
                summary["best"], cfg.eval_episodes, run / "eval", cfg.workers, 1, False, **where
            )
        )
        row.update({k: report["overall"][k] for k in TABLE_KEYS})
    return row


def format_rounds(rows: list[dict]) -> str:
    """Markdown table of the rounds."""
    lines = [
        "| round | beta | labelled frames | success | autonomy | interventions / km | "
        "mean abs lateral offset |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        metrics = (
            "{success_rate:.1%} | {autonomy:.2%} | {interventions_per_km:.3f} | "
            "{mean_abs_lateral_offset:.3f} m".format(**row)
            if "success_rate" in row
            else "- | - | - | -"
        )
        head = f"| {row['round']} | {row['beta']:.3g} | {row['labelled_frames']} |"
        lines.append(f"{head} {metrics} |")
    return "\n".join(lines)


def dagger(cfg: DaggerConfig) -> list[dict]:
    """All rounds of `cfg`; returns the table rows (also in OUT/dagger.md and OUT/dagger.json)."""
    from torch.utils.tensorboard import SummaryWriter

    cfg.validate()
    if cfg.demos is not None:
        paths, problems = scan(cfg.demos)
        for problem in problems:
            tqdm.write(f"--demos: {problem}")
        if added := link_episodes(paths, cfg.out / "data"):
            tqdm.write(f"{added} episodes of {cfg.demos} linked into {cfg.out / 'data'}")
    rows = []
    try:
        for round_ in range(cfg.rounds + 1):
            rows.append(run_round(cfg, round_))
            with SummaryWriter(str(cfg.out / "summary")) as writer:
                for key in ("labelled_frames", *TABLE_KEYS):
                    if key in rows[-1]:
                        writer.add_scalar(f"dagger/{key}", rows[-1][key], round_)
            (cfg.out / "dagger.md").write_text(format_rounds(rows) + "\n")
            write_json(cfg.out / "dagger.json", rows)
            tqdm.write(format_rounds(rows).splitlines()[-1])
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted in round {len(rows)}: finished work is saved in {cfg.out}; "
            "re-run the same command to continue"
        ) from None
    return rows
