"""Human demonstrations: drive with the arrow keys (or a gamepad), recorded like the expert's.

    drive collect --driver keyboard --out data/mine --roads 3

Left/right steer, up accelerates, down brakes; Esc ends the session (finished roads are kept).
A held arrow key ramps the steering smoothly towards full lock and releasing it ramps it back to 0,
so the labels are a smooth signal rather than bang-bang. A gamepad's left stick (x: steering,
y: throttle/brake) is used when pygame finds one. The window shows the camera frame being
recorded (enlarged) beside a top-down overview, with your command and the expert's for reference.

Each finished road is written with `driving.data.write_episode`, in the same format as the
expert's: labels = actions = your command at each frame, `meta["driver"] = "keyboard"`, no noise.
A road where the car leaves the road or crashes is not saved (re-run the command to drive it
again). The session runs in real time at the policy's rate (10 Hz) and needs a display.
"""

from __future__ import annotations

import os
import time

import numpy as np

from driving.config import save_config
from driving.data import Episode, prepare_folder, used_seeds, write_episode
from driving.draw.overlays import FPS, OVERVIEW, compose, frame_size
from driving.draw.video import overlay
from driving.draw.window import Window, WindowError, has_display
from driving.record.collect import CONFIG_FILE, CollectConfig, claim_seed, pose
from driving.record.steps import StepRows, drive_meta
from envs.camera import Camera
from envs.world import make_expert, make_world

STEER_RAMP = 0.1  # per step towards full lock while an arrow is held (1 s to full lock at 10 Hz)
STEER_RETURN = 0.25  # per step back towards 0 once released
THROTTLE_RAMP = 0.25  # per step towards the held pedal's value (or 0)
DEADZONE = 0.1  # gamepad stick values below this are 0


def _towards(value: float, target: float, rate: float) -> float:
    return value + float(np.clip(target - value, -rate, rate))


class KeyboardDriver:
    """A person at the keyboard (or gamepad), behind the policy interface: `reset()`, `act(obs)`.

    Keys are tracked in a held-keys set from KEYDOWN/KEYUP events (so events posted with
    `pygame.event.post` drive it too); `quit` turns True on Esc or when the window is closed.
    """

    def __init__(self) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self._pygame = pygame
        pygame.display.init()  # the event queue needs the video subsystem
        pygame.joystick.init()
        self.gamepad = pygame.joystick.Joystick(0) if pygame.joystick.get_count() else None
        self.held: set[int] = set()
        self.action = np.zeros(2, np.float32)
        self.quit = False

    def reset(self) -> None:
        """Start a road: wheel centred, pedals released."""
        self.action[:] = 0.0

    def _read_events(self) -> None:
        pygame = self._pygame
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                self.quit = True
            elif event.type == pygame.KEYDOWN:
                self.held.add(event.key)
                self.quit |= event.key == pygame.K_ESCAPE
            elif event.type == pygame.KEYUP:
                self.held.discard(event.key)

    def _targets(self) -> tuple[float, float]:
        """Where steering and throttle head: from the arrows, or the gamepad's left stick."""
        pygame = self._pygame
        steer = float(pygame.K_RIGHT in self.held) - float(pygame.K_LEFT in self.held)
        throttle = float(pygame.K_UP in self.held) - float(pygame.K_DOWN in self.held)
        if self.gamepad is not None:
            x, y = self.gamepad.get_axis(0), -self.gamepad.get_axis(1)
            steer = x if abs(x) > DEADZONE else steer
            throttle = y if abs(y) > DEADZONE else throttle
        return steer, throttle

    def act(self, obs: dict | None = None) -> np.ndarray:
        """The person's [steering, throttle] in [-1, 1] for this step (float32)."""
        self._read_events()
        steer, throttle = self._targets()
        rate = STEER_RAMP if steer != 0 and steer * self.action[0] >= 0 else STEER_RETURN
        self.action[0] = _towards(self.action[0], steer, rate)
        self.action[1] = _towards(self.action[1], throttle, THROTTLE_RAMP)
        return self.action.copy()


def _hud_frame(obs, action, expert_action, info, time_s, seed, top, base) -> np.ndarray:
    """What the person sees: the overview, the camera frame being recorded, both commands."""
    speed = float(obs["speed"][0])
    panel = overlay(obs["image"], action, expert_action, speed, time_s, "REC", ("you", "expert"))
    lines = [
        f"REC road {seed}   {info['distance']:5.0f} m   |lateral offset| "
        f"{abs(info['lateral_offset']):.2f} m",
        "arrows: steer, throttle, brake   Esc: stop (finished roads are kept)",
    ]
    return compose(top.render(base.road, base.vehicle), panel, lines)


def drive_road(
    env,
    driver: KeyboardDriver,
    seed: int,
    window: Window | None = None,
    fps: float = FPS,
    max_steps: int | None = None,
) -> Episode | None:
    """Record one road driven by `driver`; None if the person quit before its end.

    Args:
        env: the driving env (frames at the dataset's camera settings).
        driver: the person.
        seed: the road.
        window: where to show the drive (None: nothing shown, e.g. in tests).
        fps: real-time rate [Hz]; 0 runs as fast as possible.
        max_steps: end the road after this many steps (as if its time were up).
    """
    import pygame

    base = env.unwrapped
    expert, top = make_expert(env), Camera(OVERVIEW)
    obs, info = env.reset(seed=seed)
    driver.reset()
    top.reset(base.road)
    clock = pygame.time.Clock()
    rows = StepRows()
    done, step = False, 0
    dt = 1.0 / base.config["policy_frequency"]
    while not done:
        action = driver.act(obs)
        if driver.quit:
            return None
        if window is not None:
            window.show(_hud_frame(obs, action, expert.act(obs), info, step * dt, seed, top, base))
        # labels = actions = the person's command
        limit = info["speed_limit"]
        rows.add(obs["image"], action, action, info["speed"], *pose(info), speed_limit=limit)
        obs, _, terminated, truncated, info = env.step(action)
        step += 1
        done = terminated or truncated or (max_steps is not None and step >= max_steps)
        if fps:
            clock.tick(fps)
    meta = drive_meta(env, "keyboard", info, noise=None)
    meta["outcome"]["steps"] = len(rows)
    return rows.episode(seed, meta, last=obs)


def collect_keyboard(cfg: CollectConfig, max_steps: int | None = None) -> dict:
    """Let a person drive the roads of `cfg` the folder does not hold yet; returns a summary.

    Raises:
        WindowError: no display (a person cannot drive blind).
    """
    wanted = cfg.validate()
    if not has_display():
        raise WindowError(
            "--driver keyboard needs a display to drive (neither DISPLAY nor WAYLAND_DISPLAY "
            "is set); use --driver expert here"
        )
    env, _ = make_world(cfg.world)
    prepare_folder(cfg.out)
    save_config(cfg.out / CONFIG_FILE, cfg)
    todo = [s for s in wanted if s not in used_seeds(cfg.out)]
    saved = frames = 0
    start = time.perf_counter()
    driver = KeyboardDriver()
    with Window(
        "drive collect --driver keyboard",
        frame_size(cfg.world.camera.height, cfg.world.camera.width),
    ) as window:
        try:
            for seed in todo:
                print(f"road {seed}: drive! ({len(todo) - saved} to go)")
                episode = _drive_and_save(env, driver, seed, cfg, window, max_steps)
                if driver.quit:
                    break
                if episode is not None:
                    saved, frames = saved + 1, frames + len(episode.frames)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(
                f"interrupted: {saved} roads you drove are saved in {cfg.out}; "
                "re-run the same command to drive the others"
            ) from None
    print(f"{saved} roads you drove are saved in {cfg.out}")
    seconds = time.perf_counter() - start
    return {
        "episodes": saved,
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": frames / max(seconds, 1e-9),
        "out": str(cfg.out),
    }


def _drive_and_save(env, driver, seed, cfg, window, max_steps) -> Episode | None:
    """Drive one road and write it if it was finished on the road; returns what was written."""
    if (claim := claim_seed(cfg.out, seed)) is None:
        return None
    try:
        episode = drive_road(env, driver, seed, window, max_steps=max_steps)
        if episode is None:
            return None
        outcome = episode.meta["outcome"]
        if outcome["crashed"] or not outcome["on_road"]:
            print(f"road {seed}: left the road after {outcome['steps']} steps, not saved")
            return None
        write_episode(cfg.out, episode)
        return episode
    finally:
        claim.release()
