"""Closed-loop evaluation on held-out roads: camera frame in, action out, expert as safety driver.

    drive evaluate --policy logs/demo/best.pt --episodes 50 --out logs/demo/eval

Every episode runs on an evaluation seed (see `envs`), never seen in training. When the policy
gets more than 1 m off the lane centre or leaves the road, the expert takes over until the car is
back on the centre; each takeover counts as an intervention (metrics in `driving.metrics`).
Writes `metrics.json` (overall and per episode, with the seeds, and the interventions broken down
by road curvature and speed, also drawn in `breakdown.png`), mp4 videos of the first episodes, a
short clip of every intervention and failure (`clips/`), and prints a table with the expert's
numbers beside the policy's.
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

from driving import breakdown
from driving.clips import ClipRecorder
from driving.metrics import INFO_KEYS, INTERVENTION_OFFSET, RECORD_KEYS, episode_metrics, summarize
from driving.parallel import run_parallel
from driving.policy import NetPolicy, observe
from driving.video import overlay, write_mp4
from envs import eval_seeds
from envs.camera import CameraConfig
from envs.expert import Expert
from envs.world import SCENARIO, make_env

EXPERT = "expert"
BACK_ON_CENTRE = 0.2  # [m] the expert hands back control this close to the centre
BACK_ON_HEADING = 0.05  # [rad] ... and this well aligned
MAX_CLIPS = 30  # clips of interventions and failures kept per run (the first roads')
TENSORBOARD_CLIPS = 5  # of which this many go to TensorBoard too


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
    clips: bool = True
    """keep a clip of every intervention and failure (3 s before to 1 s after) in OUT/clips"""
    saliency: bool = False
    """draw where the network looks (VisualBackProp) on the videos (clips always show it)"""

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
    until the car is back within `BACK_ON_CENTRE` of the centre and aligned. The policy is
    shown the frames the expert drove (`driving.policy.observe`), so that a net stacking earlier
    frames has them when it takes over again.
    """
    obs, info = env.reset(seed=seed)
    policy.reset()
    expert.reset()
    autonomous, done, step = True, False, 0
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    while not done:
        expert_action = expert.act(obs)
        if autonomous:
            action = policy.act(obs)
        else:
            action = expert_action
            observe(policy, obs)
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


def rollout(
    env,
    policy,
    expert: Expert,
    seed: int,
    video: Path | None = None,
    clips: Path | None = None,
    saliency=None,
    video_saliency: bool = False,
) -> dict:
    """One episode with interventions; returns its metrics (and writes its video if asked).

    Args:
        video: write the whole episode as an mp4 here.
        clips: write a clip of each intervention and failure into this folder.
        saliency: a `driving.saliency.VisualBackProp` of the policy, drawn on the clips.
        video_saliency: draw it on the video too.
    """
    record = {k: [] for k in RECORD_KEYS}
    frames, info, curvature = [], {}, []
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    recorder = None if clips is None else ClipRecorder(clips, seed, dt, saliency)
    for step in drive(env, policy, expert, seed):
        if video is not None:
            note = "" if step.autonomous else "EXPERT DRIVING"
            speed, image = float(step.obs["speed"][0]), step.obs["image"]
            if saliency is not None and video_saliency:
                from driving.saliency import saliency_overlay

                image = saliency_overlay(image, saliency(policy.net_input)[0])
            frames.append(overlay(image, step.action, step.expert_action, speed, step.time_s, note))
        if recorder is not None:
            recorder.add(step)
        info = step.info
        curvature.append(info["curvature"])
        record["autonomous"].append(step.autonomous)
        record["intervention"].append(step.intervention)
        for key in INFO_KEYS:
            record[key].append(info[key])
    metrics = episode_metrics(
        {k: np.asarray(v) for k, v in record.items()}, dt, bool(info.get("reached_end", False))
    )
    if video is not None:
        write_mp4(video, frames, fps=1.0 / dt)
    counts = breakdown.count(
        curvature, record["speed"], record["autonomous"], record["intervention"], dt
    )
    written = recorder.close() if recorder is not None else []
    return {"seed": seed, **metrics, "breakdown": counts, "clips": written}


_worker: dict = {}


def _run_seed(spec: str, seed: int, video: Path | None, clips: Path | None, saliency: bool) -> dict:
    """Evaluate one seed in a worker process (the env and policy are built once per process)."""
    if _worker.get("spec") != spec:
        net = None if spec == EXPERT else NetPolicy.from_checkpoint(spec)
        # The camera must see the road as it did when the training data was recorded.
        camera = CameraConfig() if net is None else CameraConfig(**net.camera)
        env = make_env(SCENARIO, camera, terminate_off_road=False)
        expert = Expert(env)
        vbp = None
        if net is not None:
            from driving.saliency import VisualBackProp

            vbp = VisualBackProp(net.model)
        _worker.update(spec=spec, env=env, policy=net or expert, expert=expert, vbp=vbp)
    w = _worker  # clips show the saliency whenever the policy is a network
    return rollout(w["env"], w["policy"], w["expert"], seed, video, clips, w["vbp"], saliency)


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
    spec: str,
    seeds: list[int],
    workers: int,
    videos: dict[int, Path],
    desc: str,
    cache: Path,
    clips: Path | None = None,
    saliency: bool = False,
) -> list[dict]:
    """Evaluate `spec` on `seeds` in `workers` processes, with a progress bar.

    Each finished episode is saved in `cache` at once; a re-run of the same policy skips them,
    so a killed evaluation loses at most the episodes in progress. `clips`: folder for the clips
    of interventions and failures (None: no clips); `saliency`: draw it on the videos.
    """
    identity = policy_id(spec)
    done = {}
    for seed in seeds:
        result = _cached(cache / f"{seed}.json", identity)
        if result is None or "breakdown" not in result:  # missing, or cached by an older version
            continue
        if seed not in videos or videos[seed].exists():
            done[seed] = result
    todo = [s for s in seeds if s not in done]
    bar = tqdm(total=len(seeds), initial=len(done), unit="road", desc=desc)

    def finished(result: dict) -> None:
        done[result["seed"]] = result
        _save_json(cache / f"{result['seed']}.json", {"policy_id": identity, "result": result})
        bar.update(1)
        bar.set_postfix(success=f"{np.mean([r['success'] for r in done.values()]):.0%}")

    try:
        tasks = [(spec, s, videos.get(s), clips, saliency) for s in todo]
        run_parallel(_run_seed, tasks, workers, finished)
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
    clips: bool = True,
    saliency: bool = False,
) -> dict:
    """Evaluate `policy` on held-out roads; writes `out/metrics.json` and videos; returns it all."""
    cfg = EvalConfig(
        policy, episodes, Path(out), workers, video, compare_expert, seed_offset, clips, saliency
    )
    cfg.validate()
    seeds = eval_seeds(cfg.episodes, cfg.seed_offset)
    report_config = {k: str(v) for k, v in asdict(cfg).items()}
    _save_json(cfg.out / "config.json", report_config)  # also fails fast on a read-only --out
    videos = {s: cfg.out / "videos" / f"road_{s}.mp4" for s in seeds[: cfg.video]}
    clip_folder = cfg.out / "clips" if cfg.clips else None
    per_episode = run_episodes(
        cfg.policy,
        seeds,
        cfg.workers,
        videos,
        "evaluate",
        cfg.out / "episodes" / "policy",
        clip_folder,
        cfg.saliency,
    )
    table_by_bin = breakdown.merge([e["breakdown"] for e in per_episode])
    breakdown.plot(table_by_bin, cfg.out / "breakdown.png", f"interventions of {cfg.policy}")
    report = {
        "policy": cfg.policy,
        "config": report_config,
        "seeds": seeds,
        "overall": summarize(per_episode),
        "episodes": per_episode,
        "videos": [str(p) for p in videos.values()],
        "clips": _cap_clips(per_episode, MAX_CLIPS) if cfg.clips else [],
        "breakdown": table_by_bin,
        "breakdown_table": breakdown.format_breakdown(table_by_bin),
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


def _cap_clips(episodes: list[dict], limit: int) -> list[str]:
    """The clips of the run, by road; past `limit` the extra files are deleted."""
    paths = [p for e in sorted(episodes, key=lambda e: e["seed"]) for p in e.get("clips", [])]
    for extra in paths[limit:]:
        Path(extra).unlink(missing_ok=True)
    return [p for p in paths[:limit] if Path(p).exists()]


def log_to_tensorboard(writer, report: dict, step: int) -> None:
    """Closed-loop metrics of `report` into a TensorBoard SummaryWriter, as eval/*.

    The videos and the first clips go in as animated GIFs under eval/video/* and eval/clip/*
    (see `driving.video.add_gif`).
    """
    from driving.video import add_gif

    for name, value in report["overall"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(f"eval/{name}", value, step)
    writer.add_text("eval/table", report["table"], step)
    if "breakdown_table" in report:
        writer.add_text("eval/breakdown", report["breakdown_table"], step)
    for path in report.get("videos", []):
        add_gif(writer, f"eval/video/{Path(path).stem}", Path(path), step)
    for path in report.get("clips", [])[:TENSORBOARD_CLIPS]:
        add_gif(writer, f"eval/clip/{Path(path).stem}", Path(path), step)
