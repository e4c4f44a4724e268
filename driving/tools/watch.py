"""Watch a policy drive held-out roads: the road from above beside the camera frame the net sees.

    drive watch --policy logs/demo/best.pt            # a window; Esc or q quits, space pauses
    drive watch --policy expert --display mp4 --out logs/watch --roads 2

Each frame ("watch frame") holds, on the left, a top-down overview of the road around the car
(100 x 100 m, other vehicles drawn too) and, on the right, the camera frame the policy sees,
enlarged, with the policy's (red) and the expert's (green) steering and throttle, the speed, the
time and running episode metrics. Interventions are exactly the evaluator's
(`driving.rollout.loop.drive`): "EXPERT DRIVING" is shown while the expert has taken over.

Without a display (Linux with neither DISPLAY nor WAYLAND_DISPLAY), or when the window cannot be
opened, the same frames go to `OUT/watch_<seed>.mp4` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from driving.draw.overlays import (
    FPS,
    OVERVIEW,
    compose,
    draw_overview,
    frame_size,
    saliency_overlay,
)
from driving.draw.video import overlay, write_mp4
from driving.draw.window import Window, WindowError
from driving.flags import Roads
from driving.learn.saliency import VisualBackProp
from driving.learn.state import resolve_device
from driving.parallel import init_worker
from driving.rollout.drivers import BUILT_IN, drivers, policy_world
from driving.rollout.loop import Step, drive
from envs import eval_seeds
from envs.camera import Camera
from envs.expert import Expert
from envs.world import World


@dataclass(frozen=True)
class WatchConfig:
    """Watch a policy drive held-out roads, live in a window or written to mp4."""

    policy: str = ""
    """a checkpoint file (.pt), 'expert' or 'modular' (the hand-built driver);
    empty: the latest run's best.pt (the newest under logs/: `driving.runs`)"""
    episodes: Roads = 1
    """number of held-out roads to drive, one after the other"""
    seed_offset: int = 0
    """skip this many evaluation seeds (to watch other held-out roads)"""
    display: Literal["auto", "window", "mp4"] = "auto"
    """'window' (live), 'mp4' (files in --out), or 'auto': a window if a display exists, else mp4"""
    out: Path = Path("logs/watch")
    """folder for the mp4 files (used when there is no window)"""
    max_steps: int | None = None
    """stop each road after this many steps (default: drive it to the end)"""
    saliency: bool = False
    """blend the net's VisualBackProp saliency (where it looks) onto the camera frame"""
    scenario: str = ""
    """world to drive in; empty: the policy's own (from its checkpoint)"""
    density: str = ""
    """traffic density in the traffic scenarios; empty: the policy's own"""
    appearance: str = ""
    """the dashcam's appearance range ('train', 'held-out', 'plain'); empty: the policy's own"""
    camera: str = ""
    """for 'expert' and 'modular': 'topdown' (the default) or 'dashcam' (the demo's camera)"""
    device: str = "cpu"
    """where the network runs: auto (a GPU if there is one), cpu, cuda or cuda:N"""

    def validate(self) -> World:
        """Check the settings once; return the world to drive in (the policy's own unless
        --scenario or --density say otherwise)."""
        if self.episodes < 1:
            raise ValueError(f"--roads must be >= 1, got {self.episodes}")
        if self.seed_offset < 0:
            raise ValueError(f"--seed-offset must be >= 0, got {self.seed_offset}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(
                f"--max-steps must be >= 1, got {self.max_steps}; omit it for no limit"
            )
        if self.policy in BUILT_IN and self.saliency:
            raise ValueError(f"--saliency needs a network policy (a checkpoint), not {self.policy}")
        resolve_device(self.device)
        world = policy_world(self.policy, self.scenario, self.density, self.appearance, self.camera)
        return world


@dataclass
class RunningMetrics:
    """Episode metrics so far, updated every step (shown in the heads-up display)."""

    seed: int
    steps: int = 0
    autonomous_steps: int = 0
    interventions: int = 0
    distance: float = 0.0  # [m]
    lateral_offset: float = 0.0  # [m] now, signed
    abs_offset_sum: float = 0.0  # [m] summed over the steps the policy drove

    def update(self, step: Step) -> None:
        self.steps += 1
        self.interventions += int(step.intervention)
        self.distance = float(step.info["distance"])
        self.lateral_offset = float(step.info["lateral_offset"])
        if step.autonomous:
            self.autonomous_steps += 1
            self.abs_offset_sum += abs(self.lateral_offset)

    @property
    def mean_abs_offset(self) -> float:
        """Mean |lateral offset| while the policy drove [m]."""
        return self.abs_offset_sum / max(self.autonomous_steps, 1)

    def summary(self) -> dict:
        return {
            "seed": self.seed,
            "steps": self.steps,
            "distance_m": round(self.distance, 1),
            "interventions": self.interventions,
            "mean_abs_lateral_offset": round(self.mean_abs_offset, 3),
        }


def watch_frame(
    step: Step,
    overview: np.ndarray,
    metrics: RunningMetrics,
    predicted: np.ndarray | None = None,
    camera: np.ndarray | None = None,
) -> np.ndarray:
    """The watch frame of one closed-loop step.

    Args:
        step: the step (what the policy saw, both actions, ground truth).
        overview: the top-down overview after the step (OVERVIEW's size).
        metrics: the episode's metrics so far, this step included.
        predicted: the policy's command for this frame (default: the executed action, which is
            the policy's except during interventions).
        camera: the image to draw on the camera panel, of the camera frame's size; default the
            frame the policy saw. Pass the frame with a saliency map blended in to show one.
    """
    image = step.obs["image"] if camera is None else camera
    predicted = step.action if predicted is None else predicted
    note = "" if step.autonomous else "EXPERT DRIVING"
    speed = float(step.obs["speed"][0])
    panel = overlay(image, predicted, step.expert_action, speed, step.time_s, note)
    driver = "policy" if step.autonomous else "EXPERT DRIVING"
    lines = [
        f"road {metrics.seed}   {metrics.distance:6.0f} m   "
        f"interventions {metrics.interventions}   driver: {driver}",
        f"|lateral offset| now {abs(metrics.lateral_offset):.2f} m, "
        f"mean {metrics.mean_abs_offset:.2f} m   autonomy "
        f"{metrics.autonomous_steps / max(metrics.steps, 1):.1%} of steps",
    ]
    return compose(overview, panel, lines)


def watch_road(
    env,
    policy,
    expert: Expert,
    metrics: RunningMetrics,
    max_steps: int | None = None,
    saliency=None,
) -> Iterator[np.ndarray]:
    """Drive road `metrics.seed` as the evaluator does; yield each watch frame.

    `metrics` is updated in place, so it holds the episode's figures when the stream ends.
    `saliency`: a `driving.learn.saliency.VisualBackProp` of the policy, blended onto the camera
    frame.
    """
    base = env.unwrapped
    top = Camera(OVERVIEW)
    for step in drive(env, policy, expert, metrics.seed):
        if metrics.steps == 0:
            top.reset(base.road)
        metrics.update(step)
        # While the expert drives, still show what the policy would do: `drive` has shown a net
        # the frame already (`observe`), the expert policy has no history.
        predicted = step.action
        if not step.autonomous:
            predict = getattr(policy, "predict", None)  # a net's, from the frame it was shown
            predicted = predict() if predict is not None else policy.act(step.obs)
        image = step.obs["image"]
        if saliency is not None:
            image = saliency_overlay(image, saliency(policy.net_input)[0])
        yield watch_frame(step, draw_overview(top, base), metrics, predicted, camera=image)
        if max_steps is not None and metrics.steps >= max_steps:
            return


def open_window(display: str, size: tuple[int, int]) -> Window | None:
    """A window for `display` 'window' or 'auto'; None (mp4 instead) if 'mp4' or none can open.

    Raises:
        WindowError: `display` is 'window' and no window can be opened.
    """
    if display == "mp4":
        return None
    try:
        return Window("drive watch", size)
    except WindowError as error:
        if display == "window":
            raise WindowError(f"{error}: use --display mp4 (or auto)") from None
        print(f"{error}: writing mp4 files instead")
        return None


def play(frames: Iterable[np.ndarray], window: Window, fps: float = FPS) -> bool:
    """Show frames in real time; space pauses, Esc/q/closing the window quits. True if quit."""
    import pygame

    clock = pygame.time.Clock()
    paused = False
    for frame in frames:
        window.show(frame)
        while True:
            for event in window.events():
                if event.type == pygame.QUIT or (
                    event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q)
                ):
                    return True
                if event.type == pygame.KEYDOWN and event.key == pygame.K_SPACE:
                    paused = not paused
            clock.tick(fps if not paused else 30)
            if not paused:
                break
    return False


def watch(cfg: WatchConfig) -> dict:
    """Drive `cfg.episodes` held-out roads with the policy, shown live or written to mp4.

    Returns:
        {"mode": "window" | "mp4", "world": the world driven in (`World.to_dict`),
        "roads": per-road metrics, "videos": mp4 paths written}.
    """
    init_worker()  # one thread: batch-1 inference is < 1 ms, more threads only contend
    world = cfg.validate()
    env, policy, expert = drivers(cfg.policy, world, cfg.device, terminate_off_road=False)
    saliency = VisualBackProp(policy.model) if cfg.saliency else None
    seeds = eval_seeds(cfg.episodes, cfg.seed_offset)
    size = frame_size(world.camera.height, world.camera.width)
    window = open_window(cfg.display, size)
    roads, videos = [], []
    try:
        for seed in seeds:
            metrics = RunningMetrics(seed)
            frames = watch_road(env, policy, expert, metrics, cfg.max_steps, saliency)
            if window is not None:
                quit_ = play(frames, window)
            else:
                path = cfg.out / f"watch_{seed}.mp4"
                write_mp4(path, tqdm(frames, desc=f"road {seed}", unit="step"), fps=FPS)
                videos.append(path)
                quit_ = False
            roads.append(metrics.summary())
            if quit_:
                break
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted: {len(videos)} finished video(s) kept in {cfg.out}" if videos else ""
        ) from None
    finally:
        if window is not None:
            window.close()
        env.close()
    if window is None:
        print(f"no window: wrote {len(videos)} video(s) to {cfg.out}")
    mode = "mp4" if window is None else "window"
    return {"mode": mode, "world": world.to_dict(), "roads": roads, "videos": videos}
