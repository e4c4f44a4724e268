"""Closed-loop evaluation on held-out roads: camera frame in, action out, expert as safety driver.

    drive evaluate --policy logs/demo/best.pt --episodes 50 --out logs/demo/eval

Every episode runs on an evaluation seed (see `envs`), never seen in training, in the scenario
the policy was trained in (its checkpoint says which; `--scenario` and `--density` choose another).
When the policy gets more than 1 m off the lane centre (in traffic: for more than 3 s, since a lane
change crosses a lane line), leaves the road or crashes, the expert takes over until the car is
back on the centre; each takeover counts as an intervention (metrics in `driving.rollout.metrics`; in
traffic also `driving.rollout.traffic_metrics`: collisions/km, headway under 1 s, driving score).
Writes `metrics.json` (overall and per episode, with the seeds, and the interventions broken down
by road curvature and speed, also drawn in `breakdown.png`), mp4 videos of the first episodes, a
short clip of every intervention and failure (`clips/`), and prints a table with the expert's
numbers beside the policy's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from driving.draw.video import overlay, write_mp4
from driving.files import write_json
from driving.learn.checkpoint import load_checkpoint
from driving.learn.policy import NetPolicy, observe
from driving.parallel import run_parallel
from driving.rollout import breakdown
from driving.rollout.clips import ClipRecorder
from driving.rollout.metrics import INFO_KEYS, INTERVENTION_OFFSET, episode_metrics, summarize
from driving.rollout.traffic_metrics import TRAFFIC_KEYS, summarize_traffic, traffic_episode_metrics
from envs import eval_seeds
from envs.camera import CameraConfig
from envs.expert import Expert
from envs.traffic import TrafficEnv
from envs.world import FINISH_MARGIN, SCENARIO, make_env, make_expert, scenario_config

EXPERT = "expert"
BACK_ON_CENTRE = 0.2  # [m] the expert hands back control this close to the centre
BACK_ON_HEADING = 0.05  # [rad] ... and this well aligned
LANE_CHANGE_S = 3.0  # [s] in traffic, off the lane centre this long before it counts
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
    scenario: str = ""
    """world to drive in; empty: the policy's own (from its checkpoint; 'winding-road' for the
    expert)"""
    density: str = "default"
    """traffic density in the traffic scenarios: light, default, dense or vehicles/km/lane"""

    def world(self) -> tuple[str, str]:
        """(scenario, density) to drive in."""
        if self.scenario:
            return self.scenario, self.density
        if self.policy == EXPERT:
            return SCENARIO, self.density
        return load_checkpoint(self.policy)["extra"].get("scenario", SCENARIO), self.density

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
        scenario, density = self.world()
        make_env(scenario, **scenario_config(scenario, density)).close()  # a bad name: one line


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
    `INTERVENTION_OFFSET` from the lane centre (in traffic: for more than `LANE_CHANGE_S`, so
    that lane changes are allowed), leaves the road or crashes; the expert then drives until the
    car is back within `BACK_ON_CENTRE` of the centre and aligned. The policy is shown the frames
    the expert drove (`driving.learn.policy.observe`), so that a net stacking earlier frames has them
    when it takes over again.
    """
    obs, info = env.reset(seed=seed)
    policy.reset()
    expert.reset()
    autonomous, done, step, off_centre_steps = True, False, 0, 0
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    allowed_steps = round(LANE_CHANGE_S / dt) if isinstance(env.unwrapped, TrafficEnv) else 0
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
        off_centre = abs(info["lateral_offset"]) > INTERVENTION_OFFSET
        off_centre_steps = off_centre_steps + 1 if off_centre else 0
        started = autonomous and (
            off_centre_steps > allowed_steps or not info["on_road"] or info["crashed"]
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
        saliency: a `driving.tools.saliency.VisualBackProp` of the policy, drawn on the clips.
        video_saliency: draw it on the video too.
    """
    frames, info, curvature = [], {}, []
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    recorder = None if clips is None else ClipRecorder(clips, seed, dt, saliency)
    traffic = isinstance(env.unwrapped, TrafficEnv)
    copied = tuple(dict.fromkeys((*INFO_KEYS, *TRAFFIC_KEYS))) if traffic else INFO_KEYS
    record = {k: [] for k in (*copied, "autonomous", "intervention")}
    for step in drive(env, policy, expert, seed):
        if video is not None:
            note = "" if step.autonomous else "EXPERT DRIVING"
            speed, image = float(step.obs["speed"][0]), step.obs["image"]
            if saliency is not None and video_saliency:
                from driving.tools.saliency import saliency_overlay

                image = saliency_overlay(image, saliency(policy.net_input)[0])
            frames.append(overlay(image, step.action, step.expert_action, speed, step.time_s, note))
        if recorder is not None:
            recorder.add(step)
        info = step.info
        curvature.append(info["curvature"])
        record["autonomous"].append(step.autonomous)
        record["intervention"].append(step.intervention)
        for key in copied:
            record[key].append(info[key])
    arrays = {k: np.asarray(v) for k, v in record.items()}
    reached_end = bool(info.get("reached_end", False))
    metrics = episode_metrics(arrays, dt, reached_end)
    if traffic:
        route = env.unwrapped.road_map.length - FINISH_MARGIN
        metrics["traffic"] = traffic_episode_metrics(arrays, info["progress"], route, reached_end)
    if video is not None:
        write_mp4(video, frames, fps=1.0 / dt)
    counts = breakdown.count(
        curvature, record["speed"], record["autonomous"], record["intervention"], dt
    )
    written = recorder.close() if recorder is not None else []
    return {"seed": seed, **metrics, "breakdown": counts, "clips": written}


_worker: dict = {}


def _run_seed(
    spec: str,
    world: tuple[str, str],
    seed: int,
    video: Path | None,
    clips: Path | None,
    saliency: bool,
) -> dict:
    """Evaluate one seed in a worker process (the env and policy are built once per process).

    `world`: (scenario, traffic density setting)."""
    if _worker.get("spec") != (spec, world):
        net = None if spec == EXPERT else NetPolicy.from_checkpoint(spec)
        # The camera must see the road as it did when the training data was recorded.
        camera = CameraConfig() if net is None else CameraConfig(**net.camera)
        scenario, density = world
        config = scenario_config(scenario, density)
        env = make_env(scenario, camera, terminate_off_road=False, **config)
        expert = make_expert(env)
        vbp = None
        if net is not None:
            from driving.tools.saliency import VisualBackProp

            vbp = VisualBackProp(net.model)
        _worker.update(spec=(spec, world), env=env, policy=net or expert, expert=expert, vbp=vbp)
    w = _worker  # clips show the saliency whenever the policy is a network
    return rollout(w["env"], w["policy"], w["expert"], seed, video, clips, w["vbp"], saliency)


def policy_id(spec: str, world: tuple[str, str] = (SCENARIO, "default")) -> str:
    """Identity of a policy in a world for the episode cache: 'expert' or the checkpoint's sha256,
    followed by the scenario and density when they are not the lane-keeping defaults."""
    name = EXPERT if spec == EXPERT else hashlib.sha256(Path(spec).read_bytes()).hexdigest()
    return name if world == (SCENARIO, "default") else f"{name}|{world[0]}|{world[1]}"


def _cached(path: Path, identity: str) -> dict | None:
    """A finished episode's result from an earlier (possibly killed) run of the same policy."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved["result"] if saved.get("policy_id") == identity else None


def run_episodes(
    spec: str,
    seeds: list[int],
    workers: int,
    videos: dict[int, Path],
    desc: str,
    cache: Path,
    clips: Path | None = None,
    saliency: bool = False,
    world: tuple[str, str] = (SCENARIO, "default"),
) -> list[dict]:
    """Evaluate `spec` on `seeds` in `workers` processes, with a progress bar.

    Each finished episode is saved in `cache` at once; a re-run of the same policy skips them,
    so a killed evaluation loses at most the episodes in progress. `clips`: folder for the clips
    of interventions and failures (None: no clips); `saliency`: draw it on the videos; `world`:
    (scenario, traffic density setting).
    """
    identity = policy_id(spec, world)
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
        write_json(cache / f"{result['seed']}.json", {"policy_id": identity, "result": result})
        bar.update(1)
        bar.set_postfix(success=f"{np.mean([r['success'] for r in done.values()]):.0%}")

    try:
        tasks = [(spec, world, s, videos.get(s), clips, saliency) for s in todo]
        run_parallel(_run_seed, tasks, workers, finished)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted: {len(done)} of {len(seeds)} roads evaluated and saved in {cache}; "
            "re-run the same command to finish"
        ) from None
    finally:
        bar.close()
    return [done[s] for s in seeds]


def overall(episodes: list[dict]) -> dict:
    """Overall metrics of a run (`driving.rollout.metrics.summarize`); in traffic also the fleet figures of
    `driving.rollout.traffic_metrics` (clean_share, collisions_per_km, headway_under_share,
    lane_changes_per_km, driving_score)."""
    result = summarize(episodes)
    if all("traffic" in e for e in episodes):
        traffic = summarize_traffic([e["traffic"] for e in episodes])
        shared = ("episodes", "mean_speed", "km")  # summarize has them already
        result.update({k: v for k, v in traffic.items() if k not in shared})
    return result


TRAFFIC_ROWS = [
    ("clean: no collision, on the road", "clean_share", "{:.1%}"),
    ("collisions / km", "collisions_per_km", "{:.3f}"),
    ("time headway < 1 s", "headway_under_share", "{:.2%}"),
    ("lane changes / km", "lane_changes_per_km", "{:.2f}"),
    ("driving score", "driving_score", "{:.3f}"),
    ("mean speed / expert's", "speed_ratio_to_expert", "{:.3f}"),
]


def format_table(results: dict[str, dict]) -> str:
    """Side-by-side table of overall metrics, one column per driver ('-' where one has none)."""
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
        *TRAFFIC_ROWS,
    ]
    names = list(results)
    lines = [f"| metric | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    for label, key, fmt in rows:
        if any(key in results[n] for n in names):
            cells = [fmt.format(results[n][key]) if key in results[n] else "-" for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
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
    scenario: str = "",
    density: str = "default",
) -> dict:
    """Evaluate `policy` on held-out roads; writes `out/metrics.json` and videos; returns it all.

    `scenario` and `density` as in `EvalConfig`."""
    cfg = EvalConfig(
        policy, episodes, Path(out), workers, video, compare_expert, seed_offset, clips, saliency,
        scenario, density,
    )  # fmt: skip
    cfg.validate()
    world = cfg.world()
    seeds = eval_seeds(cfg.episodes, cfg.seed_offset)
    report_config = {k: str(v) for k, v in asdict(cfg).items()}
    write_json(cfg.out / "config.json", report_config)  # also fails fast on a read-only --out
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
        world,
    )
    table_by_bin = breakdown.merge([e["breakdown"] for e in per_episode])
    breakdown.plot(table_by_bin, cfg.out / "breakdown.png", f"interventions of {cfg.policy}")
    report = {
        "policy": cfg.policy,
        "config": report_config,
        "scenario": world[0],
        "density": world[1],
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
        expert_episodes = run_episodes(
            EXPERT, seeds, cfg.workers, {}, "expert", cfg.out / "episodes" / "expert", world=world
        )
        report["expert"] = {"overall": overall(expert_episodes), "episodes": expert_episodes}
        report["overall"]["speed_ratio_to_expert"] = (
            report["overall"]["mean_speed"] / report["expert"]["overall"]["mean_speed"]
        )
        table["expert"] = report["expert"]["overall"]
    report["table"] = format_table(table)
    write_json(cfg.out / "metrics.json", report)
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
    (see `driving.draw.video.add_gif`).
    """
    from driving.draw.video import add_gif

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
