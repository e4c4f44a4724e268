"""Short clips of every intervention and failure of a closed-loop episode.

A rolling buffer keeps the last `BEFORE_S` of raw steps (camera frame, both actions, speed); on an
intervention, a crash or the start of a speeding violation, the clip runs on for `AFTER_S` and is
written to `FOLDER/road_<seed>_t<time>.mp4`: the camera frame (with the policy's saliency when it
is a network), the policy's and the expert's actions, and what happened. Overlays are drawn only
for the frames of a clip, so recording costs nothing until something goes wrong.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from driving.draw.overlays import saliency_overlay
from driving.draw.video import overlay, write_mp4
from driving.rollout.metrics import SPEEDING_FACTOR, SPEEDING_GRACE

BEFORE_S = 3.0  # [s] of driving kept before the event
AFTER_S = 1.0  # [s] after it
CLIPS_PER_ROAD = 3
"""At most this many clips per road: a policy that keeps failing on one road shows it in three."""


CRASH_KINDS = {
    "ahead": " into the car ahead",
    "side": " with a car alongside",
    "behind": " from behind",
}
"""How a clip's title tells a traffic crash (`envs.traffic.TrafficEnv.collision`)."""


def event_of(step, speeding_steps: int, dt: float) -> str:
    """What went wrong at this step ('' when nothing): the clip's title.

    Args:
        step: a `driving.rollout.evaluate.Step`.
        speeding_steps: for how many steps the car has been above the speeding threshold, this
            one included.
        dt: policy period [s].
    """
    info = step.info
    crash = "crash" + CRASH_KINDS.get(info.get("collision", ""), "")
    if step.intervention:
        if info["crashed"]:
            return "INTERVENTION: " + crash
        return "INTERVENTION: " + ("off road" if not info["on_road"] else "off lane centre")
    if info["crashed"]:
        return crash.upper()
    # The step a violation begins, counted as `driving.rollout.metrics` does.
    if (speeding_steps - 1) * dt <= SPEEDING_GRACE < speeding_steps * dt:
        return "SPEEDING > 1 s"
    return ""


class ClipRecorder:
    """Feed it every `Step` of an episode with `add`; `close` writes a clip still running."""

    def __init__(self, folder: Path, seed: int, dt: float, saliency=None) -> None:
        """Record clips of one episode.

        Args:
            folder: where the mp4 files go.
            seed: the road, for the file names.
            dt: policy period [s].
            saliency: a `driving.learn.saliency.VisualBackProp` to draw on the frames, or None.
        """
        self.folder, self.seed, self.dt, self.saliency = Path(folder), seed, dt, saliency
        self.buffer: deque = deque(maxlen=round(BEFORE_S / dt) + 1)
        self.after = round(AFTER_S / dt)
        self.pending: dict | None = None  # the clip being recorded: its title, time, steps left
        self.speeding_steps = 0
        self.written: list[str] = []

    def add(self, step) -> None:
        """Buffer one step; start, extend or finish a clip."""
        info = step.info
        fast = info["speed"] > SPEEDING_FACTOR * info["speed_limit"]
        self.speeding_steps = self.speeding_steps + 1 if fast else 0
        event = event_of(step, self.speeding_steps, self.dt)
        note = event or ("EXPERT DRIVING" if not step.autonomous else "")
        self.buffer.append((step, note))
        if self.pending is not None:
            self.pending["frames"].append((step, note))
            self.pending["left"] -= 1
            if self.pending["left"] <= 0:
                self._write()
        elif event and len(self.written) < CLIPS_PER_ROAD:
            self.pending = {"time": step.time_s, "frames": list(self.buffer), "left": self.after}

    def close(self) -> list[str]:
        """Write the clip in progress (the episode ended during it); returns all clip paths."""
        if self.pending is not None:
            self._write()
        return self.written

    def _write(self) -> None:
        steps = self.pending["frames"]
        images = np.stack([s.obs["image"] for s, _ in steps])
        if self.saliency is not None:
            maps = self.saliency(images)
            images = [saliency_overlay(image, m) for image, m in zip(images, maps, strict=True)]
        # During an intervention the executed action (red) is the expert's, as in the videos.
        frames = [
            overlay(image, s.action, s.expert_action, float(s.obs["speed"][0]), s.time_s, note)
            for image, (s, note) in zip(images, steps, strict=True)
        ]
        path = self.folder / f"road_{self.seed}_t{self.pending['time']:05.1f}.mp4"
        write_mp4(path, frames, fps=1.0 / self.dt)
        self.written.append(str(path))
        self.pending = None
