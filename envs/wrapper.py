"""The camera wrapper: any highway-env env driven by [steering, throttle] from camera frames.

`DrivingWrapper` turns a highway-env environment into the project's interface: the observation is
the camera frame (`CameraConfig.kind`: the heading-up `envs.camera` or the driver's-eye
`envs.dashcam`), the speedometer and the speed limit of the ego's lane (what a navigation map or
a sign reader tells a driver), the action is [steering, throttle] in [-1, 1], and `info` carries
the per-step ground truth of `ground_truth` plus the distance travelled.

Rendering: `render_mode="rgb_array"` makes `render()` return the latest camera frame, (H, W, 3)
uint8, exactly what the policy sees (no second drawing, so a recorded video costs nothing extra
and shows the policy's input); `metadata["render_fps"]` is the policy rate [Hz], so gymnasium's
`RecordVideo` plays drives in real time. highway-env's own renderer (pygame) is not used.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from highway_env.envs.common.abstract import AbstractEnv
from highway_env.utils import wrap_to_pi

from envs.camera import CameraConfig
from envs.dashcam import make_camera
from envs.lane_lookup import use_fast_lane_lookup
from envs.winding import MAX_SPEED, lane_curvature

NO_LIMIT = MAX_SPEED
"""The speed limit [m/s] of a lane that has none (highway-env's `speed_limit` None): the car's
top speed, a finite number for the observation, the metrics and the files (none of the
project's scenarios has such a lane; highway-env's give every lane one)."""


def lane_limit(lane) -> float:
    """The speed limit [m/s] of a highway-env lane, `NO_LIMIT` where it has none."""
    return NO_LIMIT if lane.speed_limit is None else float(lane.speed_limit)


def ground_truth(env: AbstractEnv) -> dict[str, Any]:
    """Per-step ground truth of any highway-env scenario, read from the ego and its lane."""
    ego = env.vehicle
    lane = ego.lane
    longitudinal, lateral = lane.local_coordinates(ego.position)
    return {
        "lateral_offset": float(lateral),
        "heading_error": float(wrap_to_pi(ego.heading - lane.heading_at(longitudinal))),
        "on_road": bool(ego.on_road),
        "crashed": bool(ego.crashed),
        "speed": float(ego.speed),
        "speed_limit": lane_limit(lane),
        "heading": float(ego.heading),
        "curvature": float(lane_curvature(lane, longitudinal)),
    }


class DrivingWrapper(gym.Wrapper):
    """Camera frames in, [steering, throttle] out, ground truth in `info`, for any highway-env env.

    highway-env's ContinuousAction takes [acceleration, steering]; this wrapper takes the field's
    [steering, throttle] order. The observation is the camera frame, the speedometer and the
    speed limit of the ego's lane [m/s] (`lane_limit`, at most the car's top speed).
    """

    RENDER_MODES = ("rgb_array",)
    """The render modes `render_mode` accepts (besides None): the camera frame."""

    def __init__(
        self, env: gym.Env, camera: CameraConfig = CameraConfig(), render_mode: str | None = None
    ) -> None:
        super().__init__(env)
        camera.validate()
        if render_mode is not None and render_mode not in self.RENDER_MODES:
            raise ValueError(
                f"render_mode must be None or one of {list(self.RENDER_MODES)}, got {render_mode!r}"
            )
        self._render_mode = render_mode
        self._frame: np.ndarray | None = None  # the latest camera frame, for render()
        fps = env.unwrapped.config["policy_frequency"]  # [Hz] one frame per policy step
        self.metadata = {"render_modes": list(self.RENDER_MODES), "render_fps": fps}
        self.camera = make_camera(camera)
        self.camera_config = camera
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (camera.height, camera.width, 3), dtype=np.uint8),
                "speed": gym.spaces.Box(-MAX_SPEED, MAX_SPEED, (1,), dtype=np.float32),
                "speed_limit": gym.spaces.Box(0.0, MAX_SPEED, (1,), dtype=np.float32),
            }
        )
        self.distance = 0.0
        self.world = None
        """The `envs.world.World` this env was built from (set by `make_env`)."""

    @property
    def render_mode(self) -> str | None:
        """None or "rgb_array" (the camera frame), as given to the constructor."""
        return self._render_mode

    def render(self) -> np.ndarray | None:
        """The latest camera frame, (H, W, 3) uint8, in "rgb_array" mode; None otherwise."""
        if self._render_mode is None or self._frame is None:
            return None
        return self._frame.copy()

    def _observe(self) -> dict[str, np.ndarray]:
        base = self.env.unwrapped
        image = self.camera.render(base.road, base.vehicle)
        speed = np.clip(np.array([base.vehicle.speed], dtype=np.float32), -MAX_SPEED, MAX_SPEED)
        limit = np.clip(np.array([lane_limit(base.vehicle.lane)], np.float32), 0.0, MAX_SPEED)
        self._frame = image
        return {"image": image, "speed": speed, "speed_limit": limit}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        _, info = self.env.reset(seed=seed, options=options)
        self.distance = 0.0
        base = self.env.unwrapped
        use_fast_lane_lookup(base.road.network)  # any scenario: same lanes found, found faster
        # The road's seed picks the dashcam's look: the same road always looks the same.
        road_seed = seed if seed is not None else getattr(base, "road_seed", None)
        self.camera.reset(base.road, 0 if road_seed is None else int(road_seed))
        info.update(ground_truth(base), distance=0.0)
        info.setdefault("progress", 0.0)
        return self._observe(), info

    def step(self, action):
        steering, throttle = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1, 1)
        _, reward, terminated, truncated, info = self.env.step(np.array([throttle, steering]))
        base = self.env.unwrapped
        # highway-env's speed floor is soft (it lets speed dip below 0, i.e. reverse): make it hard.
        base.vehicle.speed = max(base.vehicle.speed, 0.0)
        self.distance += base.vehicle.speed / base.config["policy_frequency"]
        info.update(ground_truth(base), distance=self.distance)
        info.setdefault("progress", self.distance)
        # highway-env's scenarios have no end: lasting the drive's duration is reaching it.
        info.setdefault("reached_end", bool(truncated and not terminated))
        return self._observe(), float(reward), bool(terminated), bool(truncated), info
