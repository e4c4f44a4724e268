"""Closed-loop evaluation on held-out roads: camera frame in, action out, expert as safety driver.

    drive evaluate --policy logs/demo/best.pt --episodes 50 --out logs/demo/eval

Every episode runs on an evaluation seed (see `envs`), never seen in training. When the policy
gets more than 1 m off the lane centre or leaves the road, the expert takes over until the car is
back on the centre; each takeover counts as an intervention (metrics in `driving.metrics`).
Writes `metrics.json` (overall and per episode, with the seeds), mp4 videos of the first episodes,
and prints a table with the expert's numbers beside the policy's.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from driving.metrics import INFO_KEYS, INTERVENTION_OFFSET, RECORD_KEYS, episode_metrics, summarize
from driving.parallel import run_parallel
from driving.policy import NetPolicy
from driving.video import overlay, write_mp4
from envs import eval_seeds
from envs.camera import CameraConfig
from envs.expert import Expert
from envs.world import SCENARIO, make_env

EXPERT = "expert"
BACK_ON_CENTRE = 0.2  # [m] the expert hands back control this close to the centre
BACK_ON_HEADING = 0.05  # [rad] ... and this well aligned


@dataclass(frozen=True)
class EvalConfig:
    """Run a policy closed-loop on held-out roads and report the driving metrics."""

    policy: str
    """a checkpoint file (.pt) or 'expert'"""
    episodes: int = 50
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

    def validate(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        if self.video < 0:
            raise ValueError(f"--video must be >= 0, got {self.video}")
        if self.policy != EXPERT and not Path(self.policy).is_file():
            raise ValueError(f"policy {self.policy!r} is neither 'expert' nor a checkpoint file")
        if self.policy != EXPERT:
            NetPolicy.from_checkpoint(self.policy)  # refuse a bad checkpoint before any work


@dataclass
class Step:
    """One policy step of a closed-loop episode, as `drive` yields it."""

    obs: dict
    """what the driver saw: {"image", "speed"}"""
    state: dict
    """ground truth when `obs` was seen (the env's info before the step)"""
    action: np.ndarray
    """the action executed (the policy's, or the expert's during an intervention)"""
    expert_action: np.ndarray
    """the expert's answer to the same observation (the label)"""
    info: dict
    """ground truth after the step"""
    autonomous: bool
    """the policy was in control during this step"""
    intervention: bool
    """an intervention began at this step (the expert drives from the next one)"""
    time_s: float
    """time at the start of the step [s]"""
    done: bool
    """the episode ended with this step"""


def drive(env, policy, expert: Expert, seed: int) -> Iterator[Step]:
    """Drive one road with `policy`, the expert taking over after each intervention; yields steps.

    An intervention begins when the policy is in control and the car gets more than
    `INTERVENTION_OFFSET` from the lane centre, leaves the road or crashes; the expert then drives
    until the car is back within `BACK_ON_CENTRE` of the centre and aligned.
    """
    obs, info = env.reset(seed=seed)
    policy.reset()
    expert.reset()
    autonomous, done, step = True, False, 0
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    while not done:
        expert_action = expert.act(obs)
        action = policy.act(obs) if autonomous else expert_action
        state = info
        next_obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        started = autonomous and (
            abs(info["lateral_offset"]) > INTERVENTION_OFFSET
            or not info["on_road"]
            or info["crashed"]
        )
        yield Step(obs, state, action, expert_action, info, autonomous, started, step * dt, done)
        if started:
            autonomous = False
        elif (
            not autonomous
            and abs(info["lateral_offset"]) < BACK_ON_CENTRE
            and abs(info["heading_error"]) < BACK_ON_HEADING
        ):
            autonomous = True
        obs, step = next_obs, step + 1


def rollout(env, policy, expert: Expert, seed: int, video: Path | None = None) -> dict:
    """One episode with interventions; returns its metrics (and writes its video if asked)."""
    record = {k: [] for k in RECORD_KEYS}
    frames, info = [], {}
    for step in drive(env, policy, expert, seed):
        if video is not None:
            note = "" if step.autonomous else "EXPERT DRIVING"
            speed, image = float(step.obs["speed"][0]), step.obs["image"]
            frames.append(overlay(image, step.action, step.expert_action, speed, step.time_s, note))
        info = step.info
        record["autonomous"].append(step.autonomous)
        record["intervention"].append(step.intervention)
        for key in INFO_KEYS:
            record[key].append(info[key])
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    metrics = episode_metrics(
        {k: np.asarray(v) for k, v in record.items()}, dt, bool(info.get("reached_end", False))
    )
    if video is not None:
        write_mp4(video, frames, fps=1.0 / dt)
    return {"seed": seed, **metrics}


_worker: dict = {}


def _run_seed(spec: str, seed: int, video: Path | None) -> dict:
    """Evaluate one seed in a worker process (the env and policy are built once per process)."""
    if _worker.get("spec") != spec:
        net = None if spec == EXPERT else NetPolicy.from_checkpoint(spec)
        # The camera must see the road as it did when the training data was recorded.
        camera = CameraConfig() if net is None else CameraConfig(**net.camera)
        env = make_env(SCENARIO, camera, terminate_off_road=False)
        expert = Expert(env)
        _worker.update(spec=spec, env=env, policy=net or expert, expert=expert)
    return rollout(_worker["env"], _worker["policy"], _worker["expert"], seed, video)


def policy_id(spec: str) -> str:
    """Identity of a policy for the episode cache: 'expert' or the checkpoint's sha256."""
    if spec == EXPERT:
        return EXPERT
    return hashlib.sha256(Path(spec).read_bytes()).hexdigest()


def _cached(path: Path, identity: str) -> dict | None:
    """A finished episode's result from an earlier (possibly killed) run of the same policy."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved["result"] if saved.get("policy_id") == identity else None


def _save_json(path: Path, payload: dict) -> None:
    """Write JSON atomically: a kill leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def run_episodes(
    spec: str, seeds: list[int], workers: int, videos: dict[int, Path], desc: str, cache: Path
) -> list[dict]:
    """Evaluate `spec` on `seeds` in `workers` processes, with a progress bar.

    Each finished episode is saved in `cache` at once; a re-run of the same policy skips them,
    so a killed evaluation loses at most the episodes in progress.
    """
    identity = policy_id(spec)
    done = {}
    for seed in seeds:
        result = _cached(cache / f"{seed}.json", identity)
        if result is not None and (seed not in videos or videos[seed].exists()):
            done[seed] = result
    todo = [s for s in seeds if s not in done]
    bar = tqdm(total=len(seeds), initial=len(done), unit="road", desc=desc)

    def finished(result: dict) -> None:
        done[result["seed"]] = result
        _save_json(cache / f"{result['seed']}.json", {"policy_id": identity, "result": result})
        bar.update(1)
        bar.set_postfix(success=f"{np.mean([r['success'] for r in done.values()]):.0%}")

    try:
        run_parallel(_run_seed, [(spec, s, videos.get(s)) for s in todo], workers, finished)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted: {len(done)} of {len(seeds)} roads evaluated and saved in {cache}; "
            "re-run the same command to finish"
        ) from None
    finally:
        bar.close()
    return [done[s] for s in seeds]


def format_table(results: dict[str, dict]) -> str:
    """Side-by-side table of overall metrics, one column per driver."""
    rows = [
        ("success rate", "success_rate", "{:.1%}"),
        ("autonomy", "autonomy", "{:.2f} %"),
        ("interventions / km", "interventions_per_km", "{:.3f}"),
        ("distance", "distance_km", "{:.2f} km"),
        ("mean |lateral offset|", "mean_abs_lateral_offset", "{:.3f} m"),
        ("mean speed", "mean_speed", "{:.2f} m/s"),
        ("time speeding", "speeding_share", "{:.2%}"),
        ("speeding violations", "speeding_violations", "{:d}"),
        ("peak lateral accel", "peak_lateral_accel", "{:.2f} m/s^2"),
        ("mean peak lateral accel", "mean_peak_lateral_accel", "{:.2f} m/s^2"),
    ]
    names = list(results)
    lines = [f"| metric | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    for label, key, fmt in rows:
        lines.append(
            f"| {label} | " + " | ".join(fmt.format(results[n][key]) for n in names) + " |"
        )
    return "\n".join(lines)


def evaluate(
    policy: str,
    episodes: int = 50,
    out: Path = Path("logs/eval"),
    workers: int = 2,
    video: int = 1,
    compare_expert: bool = True,
    seed_offset: int = 0,
) -> dict:
    """Evaluate `policy` on held-out roads; writes `out/metrics.json` and videos; returns it all."""
    cfg = EvalConfig(policy, episodes, Path(out), workers, video, compare_expert, seed_offset)
    cfg.validate()
    seeds = eval_seeds(cfg.episodes, cfg.seed_offset)
    report_config = {k: str(v) for k, v in asdict(cfg).items()}
    _save_json(cfg.out / "config.json", report_config)  # also fails fast on a read-only --out
    videos = {s: cfg.out / "videos" / f"road_{s}.mp4" for s in seeds[: cfg.video]}
    per_episode = run_episodes(
        cfg.policy, seeds, cfg.workers, videos, "evaluate", cfg.out / "episodes" / "policy"
    )
    report = {
        "policy": cfg.policy,
        "config": report_config,
        "seeds": seeds,
        "overall": summarize(per_episode),
        "episodes": per_episode,
        "videos": [str(p) for p in videos.values()],
    }
    table = {"policy": report["overall"]}
    if cfg.compare_expert and cfg.policy != EXPERT:
        expert_episodes = run_episodes(
            EXPERT, seeds, cfg.workers, {}, "expert", cfg.out / "episodes" / "expert"
        )
        report["expert"] = {"overall": summarize(expert_episodes), "episodes": expert_episodes}
        report["overall"]["speed_ratio_to_expert"] = (
            report["overall"]["mean_speed"] / report["expert"]["overall"]["mean_speed"]
        )
        table["expert"] = report["expert"]["overall"]
    report["table"] = format_table(table)
    _save_json(cfg.out / "metrics.json", report)
    return report


def log_to_tensorboard(writer, report: dict, step: int) -> None:
    """Closed-loop metrics of `report` into a TensorBoard SummaryWriter, as eval/*."""
    for name, value in report["overall"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(f"eval/{name}", value, step)
    writer.add_text("eval/table", report["table"], step)
