"""The settings of a training run (`TrainConfig`, the flags of `drive train`), checked once
before any work (`TrainConfig.validate`)."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from driving.flags import EvalRoads, flag
from driving.learn.augment import speed_shift_problem
from driving.learn.model import INPUT_NORMS, MAX_FRAMES
from driving.learn.monitor import WANDB_EXTRA
from driving.learn.state import TrainingError, resolve_device
from driving.runs import latest_run


@dataclass
class TrainConfig:
    """Train PilotNet on a dataset; checkpoints and TensorBoard logs go to --run."""

    data: Path
    """Folder of recorded episodes."""
    run: Path | None = None
    """Folder for checkpoints, config.json and TensorBoard logs; default: a new folder
    logs/runs/<date>-<time>-<data folder name> (-2, -3, ... if taken), so runs never collide."""
    epochs: int = 10
    """Passes over the training set (an epoch draws as many frames as the set holds)."""
    batch_size: int = 128
    """Frames per optimizer step."""
    lr: float = 1e-3
    """Peak learning rate of AdamW (after warmup, then cosine decay)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    data_loading: Literal["memory", "lazy"] = "memory"
    """memory: read every frame into memory before training (fastest; 40 KB a 66x200 frame);
    lazy: read each batch's frames from the episode files (for datasets larger than memory;
    the same samples, `driving.data.lazy`)."""
    val_fraction: float = 0.1
    """Share of roads held out for validation (the split is by road, never by frame)."""
    seed: int = 0
    """Seed of the split, the initial weights and the sampling order."""
    device: str = "auto"
    """'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'."""
    input_norm: Literal["fixed", "per-frame"] = "fixed"
    """The network's input normalisation: 'fixed' (pixels to [-1, 1], the paper's) or
    'per-frame' (each channel of each frame to mean 0 and std 1: blind to brightness, contrast
    and colour cast)."""
    colour_jitter: float = 0.0
    """Strength (0 to 1) of the colour augmentation of training frames: SimCLR's brightness,
    contrast, saturation and hue jitter and 20 % grey frames (`driving.learn.augment`); it makes
    a net carry over to looks it was not shown. 0 = off."""
    mirror: bool = False
    """Mirror half of every batch left to right, the labels that change sign negated (steering;
    lateral offset, heading error, curvature): a lopsided dataset (few left bends, no car in the
    left lane of three) then covers both sides (`driving.learn.augment`). Mirrored traffic
    overtakes on the other side: meant for roads without it."""
    speed_shift: float = 0.0
    """Move each training sample's speed by up to +-this [m/s] and its throttle label as the
    expert's law would (throttle (target - speed) / 5): frames above the limit and above a bend's
    speed, which an expert that holds its target seldom shows (`driving.learn.augment`). In
    traffic the traffic expert's label at that speed, IDM's braking behind the recorded car
    ahead included, on the steps near a lane centre (measured: no speeding, more collisions;
    docs/traffic.md). 0 = off."""
    mask_sky: bool = False
    """Hide the dashcam's sky and haze (the rows above the ground it shows within its view_m)
    from the net: they tell nothing about the road, and a net that reads them is lost under
    another sky; a rear-view mirror in it (--camera.rear-mirror) stays seen. Dashcam data only."""
    curve_weighting: bool = True
    """Over-sample frames with rare (large) steering, as in the PilotNet paper."""
    curve_measure: Literal["steering", "lane"] = "steering"
    """What curve weighting makes equally likely: 'steering' (the expert's |steering| label, the
    paper's) or 'lane' (the sharpest |curvature| of the car's lane 0-20 m ahead, recorded at
    collection: bends are drawn more, but not the large steering of lane changes and swerves,
    which 'steering' draws five times as often as they occur in traffic; docs/traffic.md)."""
    speed_weighting: bool = False
    """Also draw each frame in proportion to its speed squared: a steering error moves the car
    sideways v^2 times as fast, and curve weighting under-samples fast roads (their bends need
    little steering). Measured on the wide roads: fewer interventions at >= 15 m/s, more in the
    slow tight bends, worse overall (docs/generalisation.md); off by default."""
    speed_input: bool = True
    """Feed the current speed [m/s] to the network (needed to learn throttle)."""
    limit_input: bool = False
    """Feed the road's speed limit [m/s] beside the speed (the limit a map or a sign reader
    tells the driver, recorded with every step since 2026-12-07): a limit the frame does not
    show, e.g. roads collected with --road.limit-range. Needs --speed-input."""
    frames: int = 1
    """Camera frames the network sees per step: the current one and frames-1 earlier ones,
    stacked on the channel axis (1 = one frame, as in the PilotNet paper; 2 or more lets it judge
    how fast the car ahead comes closer). At most 8."""
    frame_stride: int = 1
    """Policy steps between two stacked frames (with --frames above 1; 1 = consecutive steps)."""
    resume: bool = False
    """Continue the run in --run from its last.pt up to --epochs (start it if there is none yet),
    so re-running the same command after a kill picks up where it stopped."""
    init: Path | None = None
    """Start from the weights of this checkpoint instead of random ones (warm start, as DAgger's
    rounds do); the optimizer starts afresh. Ignored when --resume finds a last.pt."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    eval_episodes: EvalRoads = 0
    """Closed-loop evaluation episodes with best.pt after training (0 = skip)."""
    eval_workers: int = 2
    """Processes for that evaluation."""
    log_every: int = 50
    """Log training losses every this many steps."""
    wandb: bool = False
    """Also log the run to Weights & Biases (everything TensorBoard gets; needs
    `pip install 'pixels-to-pedals[wandb]'`; WANDB_MODE=offline logs without an account)."""
    target: Literal["controls", "plan", "perception"] = "controls"
    """What the net learns from the frames: 'controls' (the expert's [steering, throttle]:
    end-to-end), 'plan' (the traffic expert's lane plan, left, keep or right, and a [steering,
    throttle] pair for each plan, learnt from that plan's frames: the net drives the plan it
    deems likeliest, so "change lanes" is not averaged with "keep the lane"; traffic data
    recorded since 2026-12-08) or 'perception' (the lane state recorded at collection: lateral
    offset, heading error, curvature ahead; it then drives through the expert's control law,
    `driving.learn.perception`)."""

    def validate(self) -> TrainConfig:
        """Check every setting once, before any work; return self.

        Raises:
            TrainingError: a bad value, with what to do about it.
        """
        self.data = Path(self.data)
        self.run = None if self.run is None else Path(self.run)
        for name in ("epochs", "batch_size", "eval_workers", "log_every", "frames", "frame_stride"):
            if getattr(self, name) < 1:
                raise TrainingError(
                    f"--{_flag(name)} must be at least 1, got {getattr(self, name)}"
                )
        for name in ("threads", "eval_episodes", "weight_decay"):
            if getattr(self, name) < 0:
                raise TrainingError(
                    f"--{_flag(name)} must not be negative, got {getattr(self, name)}"
                )
        if self.frames > MAX_FRAMES:
            raise TrainingError(f"--frames must be at most {MAX_FRAMES}, got {self.frames}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TrainingError(f"--lr must be a positive number, got {self.lr}")
        if self.input_norm not in INPUT_NORMS:
            raise TrainingError(f"--input-norm must be one of {INPUT_NORMS}, got {self.input_norm}")
        if not 0.0 <= self.colour_jitter <= 1.0:
            raise TrainingError(f"--colour-jitter must be in [0, 1], got {self.colour_jitter}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise TrainingError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.limit_input and not self.speed_input:
            raise TrainingError("--limit-input goes beside the speed: drop --no-speed-input")
        shift = speed_shift_problem(self.speed_shift, self.speed_input, self.target)
        if shift:
            raise TrainingError(shift)
        resolve_device(self.device)
        if self.wandb and importlib.util.find_spec("wandb") is None:
            raise TrainingError(f"--wandb needs Weights & Biases: {WANDB_EXTRA}")
        if self.init is not None and not Path(self.init).is_file():
            raise TrainingError(f"--init {self.init} is not a file; give a checkpoint (.pt)")
        if not self.data.is_dir():
            raise TrainingError(f"--data {self.data} is not a folder; record demonstrations first")
        if self.run is None:
            if self.resume:
                latest = latest_run()
                example = f" (the latest: --run {latest})" if latest else ""
                raise TrainingError(
                    f"--resume continues a run: give its folder with --run{example}"
                )
            return self
        has_checkpoints = (self.run / "last.pt").exists() or (self.run / "best.pt").exists()
        if has_checkpoints and not self.resume:
            raise TrainingError(
                f"--run {self.run} already holds checkpoints; pass --resume to continue it "
                "or choose another --run"
            )
        return self


def _flag(name: str) -> str:
    return flag(name).removeprefix("--")  # how the field is spelled on the command line
