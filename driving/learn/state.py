"""What training carries from step to step, and how it starts, steps and is saved.

`TrainState` holds the model, optimizer, loss scaler and counters of a run. Around it: the device
and mixed precision it runs at (`resolve_device`, `mixed_precision`), the learning-rate schedule
(`lr_at`), one optimizer step (`train_step`), and the model and optimizer built fresh, warm-started
from a checkpoint or resumed from the run's last.pt (`model_and_optimizer`) and saved back
(`save_state`). The loop that uses them is `driving.learn.train`.
"""

from __future__ import annotations

import math
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from driving.learn import distributed
from driving.learn.checkpoint import (
    build_model,
    load_checkpoint,
    save_checkpoint,
    stored_model_config,
)
from driving.learn.distributed import Ranks
from driving.learn.model import ModelConfig, PilotNet, output_losses

__all__ = [
    "TrainState",
    "TrainingError",
    "lr_at",
    "mixed_precision",
    "model_and_optimizer",
    "resolve_device",
    "save_state",
    "signals_held",
    "train_step",
]


class TrainingError(ValueError):
    """Bad training settings, or training that cannot go on."""


def resolve_device(name: str) -> torch.device:
    """Turn 'auto' | 'cpu' | 'cuda' | 'cuda:N' into a device that exists here.

    Raises:
        TrainingError: unknown name, or CUDA asked for but not available.
    """
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise TrainingError(f"--device {name!r} is unknown; use auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name}: no CUDA GPU is available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    return device


def mixed_precision(device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler]:
    """bf16 autocast where the GPU has it, else fp16 with loss scaling; full fp32 on the CPU."""
    if device.type != "cuda":
        return None, torch.amp.GradScaler("cpu", enabled=False)
    torch.backends.cudnn.benchmark = True  # the input size never changes
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, torch.amp.GradScaler("cuda", enabled=False)
    return torch.float16, torch.amp.GradScaler("cuda")


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Learning rate: linear warmup, then cosine decay to base_lr / 10 at total_steps."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _matching_checkpoint(flag: str, path, model_config: ModelConfig) -> dict:
    """The checkpoint at `path`, refused in one line if it holds another network."""
    ckpt = load_checkpoint(path, device="cpu")
    if stored_model_config(ckpt, source=path) != model_config:
        raise TrainingError(
            f"{flag}: {path} was trained with {ckpt['model_config']} but the data and flags now "
            f"give {asdict(model_config)}; use the same --data, --speed-input, --limit-input, "
            "--frames and --frame-stride"
        )
    return ckpt


def model_and_optimizer(
    model_config: ModelConfig,
    device: torch.device,
    *,
    lr: float,
    weight_decay: float,
    resume_from: Path | None,
    init: Path | None,
) -> tuple[PilotNet, torch.optim.Optimizer, int, int, float | None]:
    """A fresh, warm-started or resumed model on `device`, and its AdamW optimizer.

    A fresh network is always drawn first, so that the torch RNG moves alike on every path;
    resuming then restores the RNG state saved in the checkpoint.

    Args:
        model_config: the network the settings and the data ask for.
        device: where the model trains.
        lr: AdamW's learning rate (the schedule overrides it every step).
        weight_decay: AdamW's weight decay.
        resume_from: the run's last.pt to continue (weights, optimizer, counters, RNG), or None.
        init: a checkpoint whose weights to start from when not resuming (optimizer afresh), or
            None for random weights.

    Returns:
        (model, optimizer, step, epoch, best_val); step and epoch are 0 and best_val None unless
        resumed.

    Raises:
        TrainingError: the checkpoint holds another network than `model_config`, or its
            optimizer state does not fit.
    """
    model, step, epoch, best_val, ckpt = PilotNet(model_config), 0, 0, None, None
    if resume_from is not None:
        ckpt = _matching_checkpoint("--resume", resume_from, model_config)
        model = build_model(ckpt, source=resume_from)
        step, epoch, best_val = ckpt["step"], ckpt["epoch"], ckpt["best_val"]
    elif init is not None:
        model = build_model(_matching_checkpoint("--init", init, model_config), source=init)
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if ckpt is not None:
        _load_optimizer(optimizer, ckpt["optimizer"], resume_from)
        if isinstance(rng := ckpt["extra"].get("rng_torch"), torch.Tensor):
            torch.set_rng_state(rng)  # its size and dtype were checked by `load_checkpoint`
    return model, optimizer, step, epoch, best_val


def _load_optimizer(optimizer: torch.optim.Optimizer, saved: dict, path: Path) -> None:
    """Restore AdamW's state, refused in one line unless every moment fits its parameter."""
    problem = ""
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError):
        problem = "it belongs to another network"
    for group in optimizer.param_groups if not problem else ():
        numbers = [group.get(key) for key in ("lr", "eps", "weight_decay")]
        numbers += (
            list(group.get("betas")) if isinstance(group.get("betas"), (list, tuple)) else [None]
        )
        if not all(isinstance(n, (int, float)) and math.isfinite(n) for n in numbers):
            problem = "its hyperparameters (lr, betas, eps, weight_decay) are not all numbers"
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if not isinstance(value, torch.Tensor):
                    problem = f"'{name}' is a {type(value).__name__}, expected a tensor"
                elif name != "step" and value.shape != param.shape:
                    problem = (
                        f"'{name}' has shape {tuple(value.shape)}, expected {tuple(param.shape)}"
                    )
                elif not torch.isfinite(value).all():
                    problem = f"'{name}' holds NaN or infinite values"
    if problem:
        raise TrainingError(
            f"--resume: the optimizer state in {path} does not fit ({problem}); start a new --run"
        )


_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends, then act as usual (once).

    Around one optimizer step and its count, or a checkpoint and its twin: an interrupt then
    always finds weights, optimizer and step count that belong together, which is what makes a
    resumed run take exactly the steps an uninterrupted one takes. Outside the main thread
    (where Python runs signal handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.getsignal(s) for s in _HELD}
    previous = {s: h for s, h in previous.items() if h is not None}  # None: set outside Python
    for number in previous:
        signal.signal(number, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])  # handled now by the handler it would have met


@dataclass
class TrainState:
    """What the loop carries from step to step (and what a checkpoint saves)."""

    model: PilotNet
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    writer: SummaryWriter | None  # rank 0 only
    device: torch.device
    amp: torch.dtype | None
    step: int
    epoch: int
    best_val: float | None
    recording: dict  # {"world": the World of the training frames} (from `driving.learn.train`)
    last_val: dict | None = None
    net: torch.nn.Module | None = None  # what trains: `model`, or its DDP wrapper
    ranks: Ranks = Ranks()

    def __post_init__(self) -> None:
        self.net = self.model if self.net is None else self.net


def save_state(state: TrainState, path: Path, config: dict) -> None:
    """Save a checkpoint, refusing weights that are no longer finite (never overwrite good ones).

    Args:
        state: the model, optimizer, counters and recording settings to save.
        path: the checkpoint file, in the run folder.
        config: the training settings, stored with the checkpoint.

    Raises:
        TrainingError: a weight is NaN or infinite; nothing is written.
    """
    if not all(torch.isfinite(p).all() for p in state.model.parameters()):
        raise TrainingError(
            f"weights became NaN/inf by step {state.step}; not saving {path.name}, the last good "
            f"checkpoint is in {path.parent} (try a lower --lr)"
        )
    save_checkpoint(
        path,
        model=state.model,
        model_config=state.model.config,
        optimizer=state.optimizer,
        step=state.step,
        epoch=state.epoch,
        best_val=state.best_val,
        config=config,
        extra={"rng_torch": torch.get_rng_state(), "val": state.last_val, **state.recording},
    )


def train_step(
    state: TrainState, batch: tuple[torch.Tensor, ...], count: int, lr: float, run: Path
) -> torch.Tensor:
    """One optimizer step; returns the per-output loss of the global batch (the MSE of
    [steering, throttle] or of the net's other `ModelConfig.outputs`; `output_losses`).

    Args:
        state: the model, optimizer and where this process sits among the ranks.
        batch: (image, speed, label, speed limit or None) of this rank's share of the global
            batch (`DeviceFrames.batch`).
        count: frames in the global batch (all ranks together).
        lr: learning rate of this step.
        run: the run folder, named in the error message.

    Raises:
        TrainingError: the loss is NaN or infinite; the step is not taken, so the weights in
            memory and the checkpoints on disk stay finite.
    """
    image, speed, target, limit = batch
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(state.device.type, dtype=state.amp, enabled=state.amp is not None):
        pred = state.net(image, speed, limit)
    outputs = state.model.config.outputs
    squared = output_losses(pred.float(), target, outputs).sum(0)  # (O,) this rank's share
    per_output = distributed.all_sum(squared.detach(), state.ranks) / count  # the same everywhere
    if not torch.isfinite(per_output).all():
        last = run / "last.pt" if (run / "last.pt").exists() else "none yet"
        raise TrainingError(
            f"loss became {per_output.sum().item()} at step {state.step}; last good checkpoint: "
            f"{last} (try a lower --lr)"
        )
    # DDP averages the ranks' gradients: scaled so, they are those of the global batch's mean.
    loss = squared.sum() * (state.ranks.world_size / count)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    return per_output
