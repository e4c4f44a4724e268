"""Speed and scale of the world, camera, collection and dataset, measured side by side in one run.

    python scripts/benchmark.py            # about 75 s on a 2-core CPU
    python scripts/benchmark.py --quick    # smoke test, about 15 s
    python scripts/benchmark.py --json logs/benchmark.json --figure docs/camera_vs_references.png

Prints one line per measured ratio with its target and PASS/FAIL:

    camera            ms per 66x200 frame on one core; and highway-env's own renderer
                      (WorldSurface + RoadGraphics + VehicleGraphics, rotated and cropped to the
                      same heading-up window) on the same poses: at least 10x slower
    dashcam           ms per 66x200 driver's-eye frame on one core, with other cars and the
                      per-road appearance on, on the same poses (<= 0.5 ms, the top-down budget);
                      also per scenario, beside the top-down camera's on the same poses
    dashcam + mirror  the same with its rear-view mirror (`rear_mirror`) on the same poses (<= 0.5
                      ms), and its cost over the dashcam without it
    camera vs ref     agreement with the slow reference rendering (envs/camera_reference.py)
    road length       world steps/s on a road 10x longer, against the default road (>= 0.8)
    collection        labelled frames/s of `drive collect` in one process, against the bare
                      simulation (no camera, expert or writing) replaying the same actions (>= 0.8)
    workers           frames/s with --workers 2 against --workers 1 (>= 1.7x on 2 cores), the best
                      of 3 alternating runs of each
    dataset           bytes per frame on disk (<= 5 KB), frames/s read back on one core by the
                      training loader `load_split` (>= 20,000)

Ratios, not absolute numbers, are what transfer between machines; on a busy machine they are
noisy (the load average is printed). Timings take the best of a few repeats.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

os.environ.setdefault("TQDM_DISABLE", "1")

from driving.data import load_split, read_episode, scan  # noqa: E402
from driving.draw.video import write_png  # noqa: E402
from driving.files import write_json  # noqa: E402
from driving.helptext import reflow_field_docs  # noqa: E402
from driving.parallel import init_worker  # noqa: E402
from driving.record.collect import CollectConfig, collect  # noqa: E402
from envs.camera import Camera, CameraConfig  # noqa: E402
from envs.camera_reference import compare, reference_frame  # noqa: E402
from envs.dashcam import Dashcam  # noqa: E402
from envs.expert import Expert  # noqa: E402
from envs.lane_lookup import FastLaneNetwork  # noqa: E402
from envs.road import RoadSettings  # noqa: E402
from envs.world import make_env  # noqa: E402

DASHCAM = CameraConfig(kind="dashcam", appearance="train")
"""The driver's-eye camera as it is trained with: per-road appearance on."""
MIRROR = CameraConfig(kind="dashcam", appearance="train", rear_mirror=True)
"""The same with its rear-view mirror."""


@dataclass(frozen=True)
class BenchConfig:
    """Measure the speed targets of the world, camera, collection and dataset."""

    quick: bool = False
    """smoke test: fewer frames, episodes and repeats (the ratios get noisier)"""
    json: Path | None = None
    """also write the results to this JSON file"""
    figure: Path | None = None
    """also write a PNG of one pose seen by the camera, the reference and highway-env's renderer"""


@dataclass
class Sizes:
    frames: int  # camera frames per scenario
    steps: int  # world steps per road length (all on the default 1 km road: <= 650)
    episodes: int  # collection episodes per run
    repeats: int  # timing repeats (the best is kept)
    runs: int  # collections with 1 and with 2 workers, alternating (the best of each is kept)


def _best_time(fn, repeats: int) -> float:
    """Shortest wall time [s] of `repeats` calls of fn()."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# ---------------------------------------------------------------- camera


def highway_env_view(road, ego, config: CameraConfig, surface) -> np.ndarray:
    """The camera's heading-up window produced with highway-env's own pygame renderer."""
    import pygame
    from highway_env.road.graphics import RoadGraphics

    surface.move_display_window_to(ego.position)
    RoadGraphics.display(road, surface)  # fills the ground, then draws every lane's lines
    RoadGraphics.display_traffic(road, surface, offscreen=True)
    # Screen y points down: heading h shows as h clockwise; rotating h + 90 deg anticlockwise
    # points the ego up. The rotation is about the centre, where the ego is.
    rotated = pygame.transform.rotate(surface, math.degrees(ego.heading) + 90.0)
    scale = surface.scaling  # [px/m]
    cx, cy = rotated.get_width() / 2, rotated.get_height() / 2
    window = pygame.Rect(
        round(cx - config.span_m / 2 * scale),
        round(cy - config.ahead_m * scale),
        round(config.span_m * scale),
        round((config.ahead_m + config.behind_m) * scale),
    )
    frame = pygame.transform.smoothscale(rotated.subsurface(window), (config.width, config.height))
    return pygame.surfarray.array3d(frame).transpose(1, 0, 2)


def _world_surface(config: CameraConfig):
    import pygame
    from highway_env.road.graphics import WorldSurface

    scale = config.width / config.span_m  # the camera's lateral resolution [px/m]
    side = math.ceil(2 * config.view_radius_m * scale) + 4
    surface = WorldSurface((side, side), 0, pygame.Surface((side, side)))
    surface.scaling, surface.centering_position = scale, [0.5, 0.5]
    return surface


def bench_camera(sizes: Sizes) -> dict:
    """Both renderers on the same poses of an expert drive; per scenario and overall."""
    config = CameraConfig()
    surface = _world_surface(config)
    fast_s = slow_s = dash_s = mirror_s = 0.0
    frames = 0
    agreement = []
    per_scenario = {}  # scenario -> (top-down camera, dashcam, dashcam + mirror) [ms per frame]
    for scenario in ("winding-road", "highway-v0"):
        # highway-v0 acts at 1 Hz by default (25 m between frames); a camera runs at 10 Hz.
        rate = (
            {}
            if scenario == "winding-road"
            else {"policy_frequency": 10, "simulation_frequency": 10}
        )
        env = make_env(scenario, **rate)
        expert, camera = Expert(env), Camera(config)
        dashcam, mirror = Dashcam(DASHCAM), Dashcam(MIRROR)
        obs, _ = env.reset(seed=1)
        base = env.unwrapped
        dashcam.reset(base.road, seed=1)
        mirror.reset(base.road, seed=1)
        scenario_fast_s = scenario_dash_s = scenario_mirror_s = 0.0
        for step in range(sizes.frames):
            start = time.perf_counter()
            fast = camera.render(base.road, base.vehicle)
            middle = time.perf_counter()
            highway_env_view(base.road, base.vehicle, config, surface)
            slow_end = time.perf_counter()
            dashcam.render(base.road, base.vehicle)
            dash_end = time.perf_counter()
            mirror.render(base.road, base.vehicle)
            scenario_fast_s += middle - start
            slow_s += slow_end - middle
            scenario_dash_s += dash_end - slow_end
            scenario_mirror_s += time.perf_counter() - dash_end
            frames += 1
            if step % max(1, sizes.frames // 4) == 0:
                agreement.append(compare(fast, reference_frame(base.road, base.vehicle)))
            obs, _, terminated, truncated, _ = env.step(expert.act(obs))
            if terminated or truncated:
                obs, _ = env.reset(seed=step)
                dashcam.reset(base.road, seed=step)
                mirror.reset(base.road, seed=step)
        env.close()
        fast_s, dash_s = fast_s + scenario_fast_s, dash_s + scenario_dash_s
        mirror_s += scenario_mirror_s
        per_scenario[scenario] = [
            1e3 * t / sizes.frames for t in (scenario_fast_s, scenario_dash_s, scenario_mirror_s)
        ]
    same, mad = np.array(agreement).min(axis=0)[0], np.array(agreement).max(axis=0)[1]
    return {
        "camera_ms": 1e3 * fast_s / frames,
        "highway_env_renderer_ms": 1e3 * slow_s / frames,
        "camera_speedup": slow_s / fast_s,
        "dashcam_ms": 1e3 * dash_s / frames,
        "dashcam_over_camera": dash_s / fast_s,
        "dashcam_mirror_ms": 1e3 * mirror_s / frames,
        "mirror_over_dashcam": mirror_s / dash_s,
        "camera_and_dashcam_ms_per_scenario": per_scenario,
        "reference_same_class_min": float(same),
        "reference_mean_abs_diff_max": float(mad),
    }


def write_figure(path: Path, scale: int = 3) -> None:
    """One highway-v0 pose with traffic: camera, reference rendering, highway-env's renderer."""
    import cv2

    config = CameraConfig()
    env = make_env("highway-v0")
    env.reset(seed=2)
    base = env.unwrapped
    ego = base.vehicle
    other = min(
        (v for v in base.road.vehicles if v is not ego),
        key=lambda v: np.linalg.norm(v.position - ego.position),
    )
    s, _ = other.lane.local_coordinates(other.position)
    ego.position, ego.heading = other.lane.position(s - 12.0, 1.0), other.lane.heading_at(s) - 0.1
    rows = [
        Camera(config).render(base.road, ego),
        reference_frame(base.road, ego, config),
        highway_env_view(base.road, ego, config, _world_surface(config)),
    ]
    gap = np.full((4, config.width, 3), 255, np.uint8)
    image = np.concatenate([rows[0], gap, rows[1], gap, rows[2]])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    write_png(path, image)
    env.close()


# ---------------------------------------------------------------- road length


def _actions(env, steps: int) -> list[np.ndarray]:
    """The expert's actions for `steps` steps of road 0 (highway-env's [accel, steering])."""
    expert = Expert(env)
    obs, _ = env.reset(seed=0)
    actions = []
    for _ in range(steps):
        steering, throttle = expert.act(obs)
        actions.append(np.array([throttle, steering], np.float64))
        obs, *_ = env.step([steering, throttle])
    return actions


def _bare_steps_per_s(env, actions, repeats: int, seed: int = 0) -> float:
    """highway-env steps/s replaying `actions` on road `seed` (resets not timed)."""
    base = env.unwrapped
    best = math.inf
    for _ in range(repeats):
        base.reset(seed=seed)
        start = time.perf_counter()
        for action in actions:
            base.step(action)
        best = min(best, time.perf_counter() - start)
    return len(actions) / best


def bench_road_length(sizes: Sizes) -> dict:
    """Bare world steps/s on the default road and on one 10x longer, and with the full scan."""
    short = RoadSettings()
    long = RoadSettings(min_length=10 * short.min_length)
    result = {}
    for name, settings in (("short", short), ("long", long)):
        env = make_env(road=settings, duration=1e4)
        actions = _actions(env, sizes.steps)
        result[f"{name}_steps_per_s"] = _bare_steps_per_s(env, actions, sizes.repeats)
        result[f"{name}_lanes"] = len(env.unwrapped.road.network.lanes_list())
        if name == "long":  # the same drive with highway-env's scan of every lane
            fast_lookup = FastLaneNetwork.get_closest_lane_index
            FastLaneNetwork.get_closest_lane_index = FastLaneNetwork.__mro__[
                1
            ].get_closest_lane_index
            try:
                result["long_full_scan_steps_per_s"] = _bare_steps_per_s(env, actions, 1)
            finally:
                FastLaneNetwork.get_closest_lane_index = fast_lookup
        env.close()
    result["long_over_short"] = result["long_steps_per_s"] / result["short_steps_per_s"]
    return result


# ---------------------------------------------------------------- collection and dataset


def bench_collection(sizes: Sizes, folder: Path) -> dict:
    """`collect` with 1 and 2 workers, alternating, the best run of each; the bare simulation
    replaying the recorded actions. The collected roads stay in `folder / "one"`."""
    one, two = [], []  # frames/s of each run
    for run in range(sizes.runs):
        for workers, runs in ((1, one), (2, two)):
            out = folder / f"{workers}-{run}"
            config = CollectConfig(out=out, episodes=sizes.episodes, workers=workers)
            runs.append(collect(config)["frames_per_s"])
    (folder / "1-0").rename(folder / "one")
    env = make_env()
    steps = seconds = 0.0
    for path in scan(folder / "one")[0]:
        episode = read_episode(path)
        actions = [np.array([a[1], a[0]], np.float64) for a in episode.actions]
        seconds += len(actions) / _bare_steps_per_s(env, actions, 1, seed=episode.seed)
        steps += len(actions)
    bare = steps / seconds
    return {
        "collect_frames_per_s": max(one),
        "bare_sim_steps_per_s": bare,
        "collect_over_bare": max(one) / bare,
        "collect_2_workers_frames_per_s": max(two),
        "workers_speedup": max(two) / max(one),
        "collect_runs_frames_per_s": one,
        "collect_2_workers_runs_frames_per_s": two,
    }


def bench_dataset(sizes: Sizes, folder: Path) -> dict:
    """Bytes per frame of the collected dataset; frames/s of `load_split` on one core."""
    paths = scan(folder)[0]
    frames = sum(len(read_episode(p).labels) for p in paths)
    on_disk = sum(p.stat().st_size for p in paths)
    seconds = _best_time(lambda: load_split(folder, val_fraction=0.1), sizes.repeats)
    return {"bytes_per_frame": on_disk / frames, "read_frames_per_s": frames / seconds}


# ---------------------------------------------------------------- report


def _pairs(r: dict) -> str:
    """The speed-up of each run with 2 workers over the run with 1 just before it."""
    pairs = zip(
        r["collect_2_workers_runs_frames_per_s"], r["collect_runs_frames_per_s"], strict=True
    )
    return " ".join(f"{two / one:.2f}" for two, one in pairs)


def checks(r: dict) -> list[tuple[str, str, str, bool]]:
    """(what, measured, target, passed) per target."""
    return [
        ("camera ms/frame", f"{r['camera_ms']:.3f} ms", "<= 0.5 ms", r["camera_ms"] <= 0.5),
        (
            "camera vs highway-env renderer",
            f"{r['camera_speedup']:.1f}x ({r['highway_env_renderer_ms']:.2f} ms)",
            ">= 10x",
            r["camera_speedup"] >= 10,
        ),
        (
            "dashcam ms/frame (cars, appearance)",
            f"{r['dashcam_ms']:.3f} ms ({r['dashcam_over_camera']:.2f}x the top-down camera; "
            + ", ".join(
                f"{scenario} {dash:.3f} ms {dash / fast:.2f}x"
                for scenario, (fast, dash, _) in r["camera_and_dashcam_ms_per_scenario"].items()
            )
            + ")",
            "<= 0.5 ms",
            r["dashcam_ms"] <= 0.5,
        ),
        (
            "dashcam + mirror ms/frame",
            f"{r['dashcam_mirror_ms']:.3f} ms ({r['mirror_over_dashcam']:.2f}x the dashcam; "
            + ", ".join(
                f"{scenario} {mirror:.3f} ms {mirror / dash:.2f}x"
                for scenario, (_, dash, mirror) in r["camera_and_dashcam_ms_per_scenario"].items()
            )
            + ")",
            "<= 0.5 ms",
            r["dashcam_mirror_ms"] <= 0.5,
        ),
        (
            "camera vs reference rendering",
            f"{100 * r['reference_same_class_min']:.1f} % same class, "
            f"diff {r['reference_mean_abs_diff_max']:.1f}",
            ">= 95 %, < 6",
            r["reference_same_class_min"] >= 0.95 and r["reference_mean_abs_diff_max"] < 6,
        ),
        (
            f"road 10x longer ({r['long_lanes']} vs {r['short_lanes']} lanes)",
            f"{r['long_over_short']:.2f} ({r['long_steps_per_s']:,.0f} vs "
            f"{r['short_steps_per_s']:,.0f} steps/s; "
            f"full scan {r['long_full_scan_steps_per_s']:,.0f})",
            ">= 0.80",
            r["long_over_short"] >= 0.8,
        ),
        (
            "collection vs bare simulation",
            f"{r['collect_over_bare']:.2f} ({r['collect_frames_per_s']:,.0f} vs "
            f"{r['bare_sim_steps_per_s']:,.0f} /s)",
            ">= 0.80",
            r["collect_over_bare"] >= 0.8,
        ),
        (
            "workers 2 vs 1",
            f"{r['workers_speedup']:.2f}x ({r['collect_2_workers_frames_per_s']:,.0f} frames/s; "
            f"pairs {_pairs(r)})",
            ">= 1.70x",
            r["workers_speedup"] >= 1.7,
        ),
        (
            "dataset bytes/frame",
            f"{r['bytes_per_frame']:,.0f} B",
            "<= 5,000 B",
            r["bytes_per_frame"] <= 5000,
        ),
        (
            "dataset read (load_split)",
            f"{r['read_frames_per_s']:,.0f} frames/s",
            ">= 20,000",
            r["read_frames_per_s"] >= 20_000,
        ),
    ]


def main(cfg: BenchConfig) -> dict:
    init_worker()  # one thread for OpenCV and numpy: per-core numbers
    # Workers: a forked worker starts in 20 ms, a spawned one (macOS) imports highway-env for
    # 1 to 3 s, as long as 4 to 8 roads; 48 roads keep that a small share of the speed-up.
    sizes = Sizes(60, 300, 4, 2, 1) if cfg.quick else Sizes(300, 600, 48, 5, 3)
    load = os.getloadavg()[0]
    results: dict = {"quick": cfg.quick, "load_average_start": load, "cpus": os.cpu_count()}
    results |= bench_camera(sizes)
    results |= bench_road_length(sizes)
    folder = Path(tempfile.mkdtemp(prefix="benchmark_"))
    try:
        results |= bench_collection(sizes, folder)
        results |= bench_dataset(sizes, folder / "one")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results["load_average_end"] = os.getloadavg()[0]
    rows = checks(results)
    width = max(len(row[0]) for row in rows)
    print(f"load average {load:.1f} at start, {results['load_average_end']:.1f} at end")
    for what, measured, target, passed in rows:
        print(
            f"{what:<{width}}  {measured:<52}  target {target:<14} {'PASS' if passed else 'FAIL'}"
        )
    results["checks"] = [
        dict(zip(("what", "measured", "target", "pass"), r, strict=True)) for r in rows
    ]
    if cfg.figure is not None:
        write_figure(cfg.figure)
    if cfg.json is not None:
        write_json(cfg.json, results, indent=1)
    return results


if __name__ == "__main__":
    reflow_field_docs()
    main(tyro.cli(BenchConfig))
