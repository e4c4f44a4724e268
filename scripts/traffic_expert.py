"""How well the traffic expert drives, on held-out seeds at each traffic density.

Runs `TrafficExpert` (no camera: it does not look) on the first held-out seeds of a traffic
scenario at light, default and dense traffic, and writes `OUT/traffic_expert.md` (a markdown
table) and `OUT/traffic_expert.json` (the figures plus every collision, with who hit whom).

    python scripts/traffic_expert.py --out /tmp/traffic_expert --episodes 100 --workers 2
    python scripts/traffic_expert.py --out /tmp/speed --episodes 0     # the speed ratio alone

Columns: clean = share of episodes with no collision and never off the road; collisions/km;
headway < 1 s = share of time; speed / target = mean speed over the mean of the expert's own
bend-aware target speed (what it would drive on an empty road); lane changes/km; peak steering
rate [rad/s] (largest over all episodes, and over the steps of lane changes: the rest is
the lane keeper meeting the curvature jumps where a straight meets an arc); driving score
(CARLA style, see driving/rollout/traffic_metrics.py); other cars crashed /100 km = cars towed
away after crashing into each other (the ego not involved; two per crash) per 100 km the ego
drove.

Then the cost of traffic: steps/s of the scenario at default density replaying the expert's
actions, with the traffic stepped for all cars at once (`envs/traffic_fast.py`, the default) and
car by car by highway-env's own code (`"fast_traffic": False`), alternating, the best of a few
repeats of each, and their ratio (`--speed-seeds 0`: skip it). Timed in this process's CPU time
(`time.process_time`), so that other work on a shared machine does not count; the wall-clock
ratio is printed beside it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro
from tqdm import tqdm

from driving.helptext import reflow_field_docs
from driving.parallel import run_parallel
from driving.rollout.traffic_metrics import TRAFFIC_KEYS, summarize_traffic, traffic_episode_metrics
from envs import eval_seeds
from envs.traffic import DENSITIES, TRAFFIC_ENVS
from envs.traffic_expert import TrafficExpert
from envs.winding import FINISH_MARGIN, STEERING_RANGE


@dataclass(frozen=True)
class TrafficExpertBenchmark:
    """Measure the traffic expert on held-out seeds."""

    out: Path
    """folder for traffic_expert.md and traffic_expert.json"""
    episodes: int = 100
    """held-out seeds per density"""
    densities: tuple[str, ...] = ("light", "default", "dense")
    """density levels to run (light, default, dense)"""
    scenario: str = "winding-traffic"
    """winding-traffic or highway-traffic"""
    workers: int = 2
    """worker processes"""
    speed_seeds: int = 3
    """held-out seeds of the speed measurement (0: skip it)"""
    speed_steps: int = 300
    """steps per seed of the speed measurement"""
    speed_repeats: int = 3
    """timed replays of each kind (the best is kept)"""


def collision_report(env) -> dict:
    """Who hit whom: the crashed car nearest the ego, where it was and what it was doing."""
    road, ego = env.road, env.vehicle
    ego_at, ego_lateral = road.place(ego)
    others = [v for v in road.vehicles if v is not ego and v.crashed]
    if not others:
        return {"other": "none"}
    other = min(others, key=lambda v: np.linalg.norm(v.position - ego.position))
    at, lateral = road.place(other)
    width = env.road_map.lane_width
    if abs(lateral - ego_lateral) > width / 2:
        kind = "side"
    else:
        kind = "ego hit the car ahead" if at > ego_at else "car behind hit the ego"
    changing = other.target_lane_index[2] != other.lane_index[2]
    return {
        "kind": kind,
        "other_changing_lane": bool(changing),
        "ego_changing_lane": bool(abs(ego_lateral - env.lane * width) > 0.5),
        "ego_speed": float(ego.speed),
        "other_speed": float(other.speed),
        "longitudinal_m": float(at - ego_at),
        "lateral_m": float(lateral - ego_lateral),
    }


def _peak_rate(steering: list[float], where: np.ndarray, dt: float) -> float:
    """Largest |steering change| per second [rad/s] between consecutive steps both in `where`."""
    if len(steering) < 2:
        return 0.0
    both = where[1:] & where[:-1]
    rates = np.abs(np.diff(steering))[both] / dt
    return float(rates.max()) if rates.size else 0.0


def run_episode(scenario: str, density: str, seed: int) -> dict:
    """Drive one episode with the expert; its traffic metrics and expert-specific figures."""
    env = TRAFFIC_ENVS[scenario](config={"density": density})
    expert = TrafficExpert(env)
    _, info = env.reset(seed=seed)
    record: dict[str, list] = {key: [] for key in TRAFFIC_KEYS}
    steering, changing, targets, distance = [], [], [], 0.0
    while True:
        targets.append(expert.target_speed())
        action = expert.act()
        changing.append(expert.change is not None)
        _, _, terminated, truncated, info = env.step(np.array([action[1], action[0]]))
        distance += env.vehicle.speed / env.config["policy_frequency"]
        info.update(on_road=env.vehicle.on_road, distance=distance, speed=env.vehicle.speed)
        for key in TRAFFIC_KEYS:
            record[key].append(info[key])
        steering.append(float(action[0]) * STEERING_RANGE)
        if terminated or truncated:
            break
    route = env.road_map.length - FINISH_MARGIN
    metrics = traffic_episode_metrics(
        {k: np.asarray(v) for k, v in record.items()}, info["progress"], route, info["reached_end"]
    )
    dt = 1.0 / env.config["policy_frequency"]
    metrics.update(
        seed=seed,
        level=density,
        density=info["density"],
        mean_target_speed=float(np.mean(targets)),
        peak_steering_rate=_peak_rate(steering, np.ones(len(steering), bool), dt),
        peak_change_steering_rate=_peak_rate(steering, np.array(changing), dt),
        towed=info["towed"],
        collision=collision_report(env) if metrics["collisions"] else None,
    )
    return metrics


def summarize(episodes: list[dict]) -> dict:
    """Fleet figures plus the expert-specific ones."""
    summary = summarize_traffic(episodes)
    steps = sum(e["steps"] for e in episodes)
    target = sum(e["mean_target_speed"] * e["steps"] for e in episodes) / steps
    summary.update(
        speed_over_target=summary["mean_speed"] / target,
        peak_steering_rate=max(e["peak_steering_rate"] for e in episodes),
        peak_change_steering_rate=max(e["peak_change_steering_rate"] for e in episodes),
        density_range=[min(e["density"] for e in episodes), max(e["density"] for e in episodes)],
        npc_crashes_towed=sum(e["towed"] for e in episodes),
        npc_crashed_per_100km=100 * sum(e["towed"] for e in episodes) / summary["km"],
        collisions=[e["collision"] | {"seed": e["seed"]} for e in episodes if e["collision"]],
    )
    return summary


def table(scenario: str, results: dict[str, dict]) -> str:
    """Markdown table, one row per density."""
    lines = [
        f"Traffic expert on {scenario}, held-out seeds",
        "",
        "| density [veh/km/lane] | episodes | clean | collisions/km | headway < 1 s | "
        "speed / target | lane changes/km | peak steering rate [rad/s]: all / in lane changes | "
        "driving score | other cars crashed /100 km |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in results.items():
        low, high = DENSITIES[name]
        lines.append(
            f"| {name} ({low:g}-{high:g}) | {s['episodes']} | {100 * s['clean_share']:.1f}% | "
            f"{s['collisions_per_km']:.3f} | {100 * s['headway_under_share']:.2f}% | "
            f"{s['speed_over_target']:.3f} | {s['lane_changes_per_km']:.2f} | "
            f"{s['peak_steering_rate']:.2f} / {s['peak_change_steering_rate']:.2f} | "
            f"{s['driving_score']:.3f} | {s['npc_crashed_per_100km']:.1f} "
            f"({s['npc_crashes_towed']} in {s['km']:.1f} km) |"
        )
    return "\n".join(lines) + "\n"


def traffic_speed(scenario: str, seeds: list[int], steps: int, repeats: int) -> dict:
    """Steps/s at default density, traffic stepped for all cars at once and car by car, on the
    same drives (the expert's actions, replayed), alternating; the best repeat of each."""
    actions = {}
    for seed in seeds:
        env = TRAFFIC_ENVS[scenario]()
        expert = TrafficExpert(env)
        env.reset(seed=seed)
        actions[seed] = []
        for _ in range(steps):
            steering, throttle = expert.act()
            actions[seed].append(np.array([throttle, steering]))
            *_, terminated, truncated, _ = env.step(actions[seed][-1])
            if terminated or truncated:
                break
    best = {True: math.inf, False: math.inf}  # fast_traffic -> CPU seconds for all drives
    best_wall = dict(best)  # and wall-clock seconds
    for _ in range(repeats):
        for fast in best:
            env, seconds, wall = TRAFFIC_ENVS[scenario](config={"fast_traffic": fast}), 0.0, 0.0
            for seed, drive in actions.items():
                env.reset(seed=seed)  # not timed
                start, start_wall = time.process_time(), time.perf_counter()
                for action in drive:
                    env.step(action)
                seconds += time.process_time() - start
                wall += time.perf_counter() - start_wall
            best[fast], best_wall[fast] = min(best[fast], seconds), min(best_wall[fast], wall)
    count = sum(len(drive) for drive in actions.values())
    return {
        "steps": count,
        "fast_steps_per_s": count / best[True],
        "per_car_steps_per_s": count / best[False],
        "ratio": best[False] / best[True],
        "wall_ratio": best_wall[False] / best_wall[True],
        "load_average": os.getloadavg()[0],
    }


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(cfg: TrafficExpertBenchmark) -> None:
    if cfg.scenario not in TRAFFIC_ENVS:
        raise SystemExit(f"error: unknown scenario {cfg.scenario!r}; use {list(TRAFFIC_ENVS)}")
    unknown = [d for d in cfg.densities if d not in DENSITIES]
    if unknown:
        raise SystemExit(f"error: unknown densities {unknown}; use {list(DENSITIES)}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    # Seeds interleaved across densities: a run stopped early has figures for every level.
    tasks = [(cfg.scenario, d, seed) for seed in eval_seeds(cfg.episodes) for d in cfg.densities]
    episodes: dict[str, list[dict]] = {d: [] for d in cfg.densities}

    def write() -> dict[str, dict]:
        results = {d: summarize(e) for d, e in episodes.items() if e}
        write_atomic(cfg.out / "traffic_expert.json", json.dumps(results, indent=1))
        write_atomic(cfg.out / "traffic_expert.md", table(cfg.scenario, results))
        return results

    with tqdm(total=len(tasks), desc="episodes") as bar:

        def done(episode: dict) -> None:
            episodes[episode["level"]].append(episode)
            bar.update()
            if sum(len(e) for e in episodes.values()) % 6 == 0:  # a killed run keeps these
                write()

        run_parallel(run_episode, tasks, cfg.workers, done)
    if tasks:
        print(table(cfg.scenario, write()), flush=True)
    if cfg.speed_seeds:
        seeds = eval_seeds(cfg.speed_seeds)
        speed = traffic_speed(cfg.scenario, seeds, cfg.speed_steps, cfg.speed_repeats)
        write_atomic(cfg.out / "traffic_speed.json", json.dumps(speed, indent=1))
        print(
            f"traffic at default density, {speed['steps']} steps: "
            f"{speed['fast_steps_per_s']:.0f} steps/s with all cars at once, "
            f"{speed['per_car_steps_per_s']:.0f} car by car (highway-env): "
            f"ratio {speed['ratio']:.2f}x in CPU time, {speed['wall_ratio']:.2f}x in wall-clock "
            f"time (load average {speed['load_average']:.1f})"
        )


if __name__ == "__main__":
    reflow_field_docs()
    main(tyro.cli(TrafficExpertBenchmark))
