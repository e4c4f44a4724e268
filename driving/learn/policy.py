"""The network policy: a trained PilotNet behind the tiny interface the evaluator drives.

policy = NetPolicy.from_checkpoint("logs/run/best.pt")
policy.reset()
action = policy.act({"image": frame_uint8_hw3, "speed": np.array([12.0], np.float32)})
# action: float32 [steering, throttle] in [-1, 1]; a net told the speed limit
# (`ModelConfig.limit_input`) reads obs["speed_limit"] (1,) [m/s] too, as the env gives it

A net that stacks K frames (`ModelConfig.frames`) needs the frames of earlier steps: the policy
keeps the last (K-1) * frame_stride + 1 of them. It must see every frame of an episode, also
those it did not act on: `observe` records a frame without running the net (the evaluator calls
it while the expert drives). At an episode's start the missing history is the first frame,
repeated, exactly as in training (`driving.data.stack_indices`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from driving.learn.checkpoint import CheckpointError, build_model, load_checkpoint, stored_world
from driving.learn.model import CHOOSING, CONTROLS, PilotNet, controls
from envs.world import World


class NetPolicy:
    """Runs a PilotNet on one frame at a time (batch 1, no gradients), stacking earlier frames
    when the net takes several."""

    def __init__(
        self, model: PilotNet, device: str | torch.device = "cpu", world: World | None = None
    ) -> None:
        """Wrap a model for closed-loop driving.

        Args:
            model: the trained network; it is switched to eval mode and moved to `device`.
            device: where inference runs ("cpu", "cuda", "cuda:N").
            world: the world of the training frames (its camera above all); when unknown, the
                default world with the camera at the network's frame size.
        """
        self.device = torch.device(device)
        world = World() if world is None else world
        size = {"height": model.config.height, "width": model.config.width}
        self.world = replace(world, camera=replace(world.camera, **size))
        """The world the network learned in: render its frames with `world.camera`."""
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        config = model.config
        height, width = config.height, config.width
        # Reused input buffers: act() copies into them instead of allocating every step.
        shape = (1, height, width, config.channels)
        self._image = torch.empty(shape, dtype=torch.uint8, device=self.device)
        self._speed = torch.zeros(1, dtype=torch.float32, device=self.device)
        self._limit = torch.zeros(1, dtype=torch.float32, device=self.device)
        # Stacking nets: a ring of the frames seen, newest at `_newest`; None for one frame.
        self._ring = None
        if config.frames > 1:
            length = (config.frames - 1) * config.frame_stride + 1
            shape = (length, height, width, 3)
            self._ring = torch.empty(shape, dtype=torch.uint8, device=self.device)
        self._newest = -1  # -1: no frame yet in this episode

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> NetPolicy:
        """Load a policy from a checkpoint written by training.

        Raises:
            CheckpointError: the file is missing, unsafe or not a PilotNet checkpoint, or its
                net predicts the lane state (direct perception) rather than controls.
        """
        ckpt = load_checkpoint(path)
        world = stored_world(ckpt, source=path)
        model = build_model(ckpt, source=path)
        if model.config.outputs not in (CONTROLS, CHOOSING):
            raise CheckpointError(
                f"checkpoint {path} is a direct-perception net (it predicts the lane, not "
                "controls): load it with driving.learn.perception.load_driver"
            )
        return cls(model, device=device, world=world)

    @property
    def image_shape(self) -> tuple[int, int]:
        """(height, width) [px] of the frames the network was trained on."""
        return self.model.config.height, self.model.config.width

    @property
    def net_input(self) -> torch.Tensor:
        """(1, H, W, 3K) uint8: what the net sees for the latest observation, K frames stacked
        oldest first. A view of a reused buffer: the next observation overwrites it."""
        return self._image

    def reset(self) -> None:
        """Start a new episode: forget the frames of the last one."""
        self._newest = -1

    def act(self, obs: dict) -> np.ndarray:
        """Choose the command for one observation.

        Args:
            obs: {"image": (H, W, 3) uint8 RGB frame, "speed": (1,) float32 [m/s],
                "speed_limit": (1,) float32 [m/s] (read by a net told the limit)}.

        Returns:
            float32 array [steering, throttle], clipped to [-1, 1].

        Raises:
            ValueError: the frame has another size or dtype than the network expects, or the
                speed or the speed limit is missing for a network that needs it.
        """
        self.observe(obs)
        return self.predict()

    def predict(self) -> np.ndarray:
        """The command for the latest observation (`act` = `observe`, then this); a net that
        chooses a lane plan drives the plan it deems likeliest (`driving.learn.model.controls`)."""
        with torch.inference_mode():
            output = self.model(self._image, self._speed, self._limit)
            action = controls(output, self.model.config.outputs)[0]
            return action.clamp_(-1.0, 1.0).to("cpu", torch.float32).numpy()

    def output(self) -> np.ndarray:
        """The net's raw output for the latest observation, (O,) float32, unclipped (a
        perception net's normalised lane quantities: `driving.learn.perception`)."""
        with torch.inference_mode():
            output = self.model(self._image, self._speed, self._limit)[0]
            return output.to("cpu", torch.float32).numpy()

    def observe(self, obs: dict) -> None:
        """Take in one observation without choosing a command (the expert drove this step).

        Raises:
            ValueError: as `act`.
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
        if self.model.config.limit_input:
            if obs.get("speed_limit") is None:
                raise ValueError(
                    "this policy's network takes the road's speed limit [m/s]; add "
                    "obs['speed_limit'] (the env's observation carries it)"
                )
            self._limit.fill_(float(np.asarray(obs["speed_limit"]).reshape(-1)[0]))
        with torch.inference_mode():
            if self._ring is None:
                self._image[0].copy_(torch.from_numpy(image))
            else:
                self._stack(torch.from_numpy(image))

    def _stack(self, frame: torch.Tensor) -> None:
        """Add `frame` to the ring and copy the K frames the net sees into the input buffer."""
        length = len(self._ring)
        if self._newest < 0:  # the episode's first frame stands in for the history before it
            self._newest = 0
            self._ring[0].copy_(frame)
            self._ring[1:].copy_(self._ring[0].expand_as(self._ring[1:]))
        else:
            self._newest = (self._newest + 1) % length
            self._ring[self._newest].copy_(frame)
        frames, stride = self.model.config.frames, self.model.config.frame_stride
        for j in range(frames):  # oldest first
            row = (self._newest - (frames - 1 - j) * stride) % length
            self._image[0, :, :, 3 * j : 3 * j + 3].copy_(self._ring[row])


def observe(policy, obs: dict) -> None:
    """Show `policy` an observation it does not act on, if it keeps earlier frames.

    Policies with an `observe` method (`NetPolicy`) take it in; others (the expert, a human)
    need nothing.
    """
    take_in = getattr(policy, "observe", None)
    if take_in is not None:
        take_in(obs)
