"""The network policy: a trained PilotNet behind the tiny interface the evaluator drives.

policy = NetPolicy.from_checkpoint("logs/run/best.pt")
policy.reset()
action = policy.act({"image": frame_uint8_hw3, "speed": np.array([12.0], np.float32)})
# action: float32 [steering, throttle] in [-1, 1]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from driving.checkpoint import build_model, load_checkpoint
from driving.model import PilotNet


class NetPolicy:
    """Runs a PilotNet on one frame at a time (batch 1, no gradients)."""

    def __init__(
        self, model: PilotNet, device: str | torch.device = "cpu", camera: dict | None = None
    ) -> None:
        """Wrap a model for closed-loop driving.

        Args:
            model: the trained network; it is switched to eval mode and moved to `device`.
            device: where inference runs ("cpu", "cuda", "cuda:N").
            camera: the camera settings (envs.camera.CameraConfig fields) of the training frames;
                when unknown, only the frame size is given.
        """
        self.device = torch.device(device)
        size = {"height": model.config.height, "width": model.config.width}
        self.camera = size if camera is None else dict(camera) | size
        """Camera settings to render frames with, as CameraConfig keyword arguments."""
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        height, width = model.config.height, model.config.width
        # Reused input buffers: act() copies into them instead of allocating every step.
        self._image = torch.empty((1, height, width, 3), dtype=torch.uint8, device=self.device)
        self._speed = torch.zeros(1, dtype=torch.float32, device=self.device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> NetPolicy:
        """Load a policy from a checkpoint written by training.

        Raises:
            CheckpointError: the file is missing, unsafe or not a PilotNet checkpoint.
        """
        ckpt = load_checkpoint(path)
        camera = ckpt["extra"].get("camera")
        camera = camera if isinstance(camera, dict) else None
        return cls(build_model(ckpt, source=path), device=device, camera=camera)

    @property
    def image_shape(self) -> tuple[int, int]:
        """(height, width) [px] of the frames the network was trained on."""
        return self.model.config.height, self.model.config.width

    def reset(self) -> None:
        """Start a new episode (PilotNet keeps no state between frames)."""

    def act(self, obs: dict) -> np.ndarray:
        """Choose the command for one observation.

        Args:
            obs: {"image": (H, W, 3) uint8 RGB frame, "speed": (1,) float32 [m/s]}.

        Returns:
            float32 array [steering, throttle], clipped to [-1, 1].

        Raises:
            ValueError: the frame has another size or dtype than the network expects, or the
                speed is missing for a network that needs it.
        """
        image = obs.get("image")
        height, width = self.image_shape
        if not isinstance(image, np.ndarray) or image.shape != (height, width, 3):
            got = image.shape if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(
                f"NetPolicy expects {height}x{width}x3 camera frames (as in training), got {got}; "
                "render the camera at the size the model was trained on"
            )
        if image.dtype != np.uint8:
            raise ValueError(f"NetPolicy expects uint8 frames, got {image.dtype}")
        if self.model.config.speed_input:
            if obs.get("speed") is None:
                raise ValueError("this policy's network takes the speed [m/s]; add obs['speed']")
            self._speed.fill_(float(np.asarray(obs["speed"]).reshape(-1)[0]))
        with torch.inference_mode():
            self._image[0].copy_(torch.from_numpy(image))
            action = self.model(self._image, self._speed)[0]
            action = action.clamp_(-1.0, 1.0).to("cpu", torch.float32).numpy()
        return action
