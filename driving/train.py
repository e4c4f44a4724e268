"""Train PilotNet on recorded demonstrations (behaviour cloning).

A flat loop, readable top to bottom: load the episodes, over-sample curves, AdamW with a cosine
learning rate, validate every epoch, keep `last.pt` and `best.pt`, log everything to TensorBoard,
and optionally run the closed-loop evaluation at the end.

    drive train --data data/demos --run logs/run --epochs 10   # flags: TrainConfig's fields
    tensorboard --logdir logs
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from driving.checkpoint import build_model, jsonable, load_checkpoint, save_checkpoint
from driving.dataset import Frames, load_split, read_episode, scan
from driving.model import ModelConfig, PilotNet

CURVE_THRESHOLD = 0.05
"""|steering| above which a frame counts as 'in a curve' for the logged shares."""


class TrainingError(ValueError):
    """Bad training settings, or training that cannot go on."""


@dataclass
class TrainConfig:
    """Train PilotNet on a dataset; checkpoints and TensorBoard logs go to --run."""

    data: Path
    """Folder of recorded episodes."""
    run: Path = Path("logs/run")
    """Folder for checkpoints, config.json and TensorBoard logs."""
    epochs: int = 10
    """Passes over the training set (an epoch draws as many frames as the set holds)."""
    batch_size: int = 128
    """Frames per optimizer step."""
    lr: float = 1e-3
    """Peak learning rate of AdamW (after warmup, then cosine decay)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    val_fraction: float = 0.1
    """Share of roads held out for validation (the split is by road, never by frame)."""
    seed: int = 0
    """Seed of the split, the initial weights and the sampling order."""
    device: str = "auto"
    """'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'."""
    curve_weighting: bool = True
    """Over-sample frames with rare (large) steering, as in the PilotNet paper."""
    speed_input: bool = True
    """Feed the current speed [m/s] to the network (needed to learn throttle)."""
    resume: bool = False
    """Continue the run in --run from its last.pt up to --epochs (start it if there is none yet),
    so re-running the same command after a kill picks up where it stopped."""
    init: Path | None = None
    """Start from the weights of this checkpoint instead of random ones (warm start, as DAgger's
    rounds do); the optimizer starts afresh. Ignored when --resume finds a last.pt."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    eval_episodes: int = 0
    """Closed-loop evaluation episodes with best.pt after training (0 = skip)."""
    eval_workers: int = 2
    """Processes for that evaluation."""
    log_every: int = 50
    """Log training losses every this many steps."""

    def validate(self) -> TrainConfig:
        """Check every setting once, before any work; return self.

        Raises:
            TrainingError: a bad value, with what to do about it.
        """
        self.data, self.run = Path(self.data), Path(self.run)
        for name in ("epochs", "batch_size", "eval_workers", "log_every"):
            if getattr(self, name) < 1:
                raise TrainingError(
                    f"--{_flag(name)} must be at least 1, got {getattr(self, name)}"
                )
        for name in ("threads", "eval_episodes", "weight_decay"):
            if getattr(self, name) < 0:
                raise TrainingError(
                    f"--{_flag(name)} must not be negative, got {getattr(self, name)}"
                )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TrainingError(f"--lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise TrainingError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        resolve_device(self.device)
        if self.init is not None and not Path(self.init).is_file():
            raise TrainingError(f"--init {self.init} is not a file; give a checkpoint (.pt)")
        if not self.data.is_dir():
            raise TrainingError(f"--data {self.data} is not a folder; record demonstrations first")
        has_checkpoints = (self.run / "last.pt").exists() or (self.run / "best.pt").exists()
        if has_checkpoints and not self.resume:
            raise TrainingError(
                f"--run {self.run} already holds checkpoints; pass --resume to continue it "
                "or choose another --run"
            )
        return self


def _flag(name: str) -> str:
    return name.replace("_", "-")  # how tyro spells the field on the command line


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


def curve_weights(steering: np.ndarray, bins: int = 15, cap: float = 10.0) -> np.ndarray:
    """Sampling probabilities that over-represent curves.

    Demonstrations are mostly straight driving, so a net trained on them learns to go straight.
    Each frame is weighted by the inverse frequency of its |steering| bin (`bins` equal bins over
    [0, max |steering|]), which makes every bin about equally likely. The weight is capped at
    `cap` times the weight of the most common bin, so that a bin holding a handful of frames is
    not repeated hundreds of times per epoch (that would overfit those few frames).

    Args:
        steering: (N,) steering labels in [-1, 1].
        bins: number of |steering| bins.
        cap: largest weight, relative to the most common bin's.

    Returns:
        (N,) float64 probabilities summing to 1.
    """
    magnitude = np.abs(np.asarray(steering, dtype=np.float64))
    top = magnitude.max(initial=0.0)
    if top == 0.0:
        return np.full(len(magnitude), 1.0 / len(magnitude))
    counts, edges = np.histogram(magnitude, bins=bins, range=(0.0, top))
    which = np.digitize(magnitude, edges[1:-1])  # bin index 0..bins-1 of every frame
    weight = np.minimum(1.0 / counts[which], cap / counts.max())
    return weight / weight.sum()


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Learning rate: linear warmup, then cosine decay to base_lr / 10 at total_steps."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _batch(data: Frames, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(image uint8, speed [m/s], label) tensors of the frames `idx`, on `device`."""
    arrays = (data.frames[idx], data.speed[idx], data.labels[idx])
    return tuple(torch.from_numpy(a).to(device, non_blocking=True) for a in arrays)


@torch.inference_mode()
def _predict(model: PilotNet, data: Frames, idx: np.ndarray, device, amp_dtype) -> torch.Tensor:
    image, speed, _ = _batch(data, idx, device)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        return model(image, speed).float()


def validation_losses(
    model: PilotNet,
    data: Frames,
    train_mean: np.ndarray,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean squared error per output on `data`, and that of predicting the training mean.

    The constant-mean baseline shows whether the net learned anything beyond the average command.
    """
    model.eval()
    squared = np.zeros(2)
    for start in range(0, len(data.labels), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data.labels)))
        pred = _predict(model, data, idx, device, amp_dtype).cpu().numpy()
        squared += ((pred - data.labels[idx]) ** 2).sum(0)
    mse = squared / len(data.labels)
    baseline = ((data.labels - train_mean) ** 2).mean(0)
    return {
        "loss_steering": float(mse[0]),
        "loss_throttle": float(mse[1]),
        "loss": float(mse.sum()),
        "baseline_loss_steering": float(baseline[0]),
        "baseline_loss_throttle": float(baseline[1]),
        "baseline_loss": float(baseline.sum()),
    }


def draw_steering(frames: np.ndarray, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Frames above a black strip showing true (green, upper) and predicted (red, lower) steering.

    Each bar starts at the centre and reaches right for positive steering, left for negative, to
    the edge at |steering| = 1. The strip is added below the frame so that nothing is hidden.

    Returns:
        (N, H + 14, W, 3) uint8 RGB images.
    """
    count, height, width = frames.shape[:3]
    out = np.zeros((count, height + 14, width, 3), np.uint8)
    out[:, :height] = frames
    centre = width // 2
    for image, t, p in zip(out, true, pred, strict=True):
        for value, y, colour in ((t, height + 4, (0, 255, 0)), (p, height + 10, (255, 0, 0))):
            end = int(round(centre + float(np.clip(value, -1, 1)) * (width // 2 - 1)))
            cv2.line(image, (centre, y), (end, y), colour, 4)
        cv2.line(image, (centre, height), (centre, height + 13), (255, 255, 255), 1)
    return out


def _log_data(writer: SummaryWriter, cfg: TrainConfig, train_set: Frames, val_set: Frames):
    """Log the label histograms, the config and the curve shares; return sampling weights."""
    steering = train_set.labels[:, 0]
    writer.add_histogram("data/steering", steering, 0)
    writer.add_histogram("data/throttle", train_set.labels[:, 1], 0)
    rows = "\n".join(f"| {k} | {v} |" for k, v in jsonable(asdict(cfg)).items())
    writer.add_text("hparams", "| setting | value |\n|---|---|\n" + rows, 0)
    weights = curve_weights(steering) if cfg.curve_weighting else None
    in_curve = np.abs(steering) > CURVE_THRESHOLD
    before = float(in_curve.mean())
    after = float(weights[in_curve].sum()) if weights is not None else before
    writer.add_scalar("data/curve_share_before", before, 0)
    writer.add_scalar("data/curve_share_after", after, 0)
    print(
        f"train {len(steering)} frames, val {len(val_set.labels)} frames; share with "
        f"|steering| > {CURVE_THRESHOLD}: {before:.0%} in the data, {after:.0%} as sampled"
    )
    return weights


def _epoch_order(n: int, weights: np.ndarray | None, seed: int, epoch: int) -> np.ndarray:
    """Frame indices of one epoch; a generator seeded by (seed, epoch) makes resuming exact."""
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        return rng.permutation(n)
    return rng.choice(n, size=n, replace=True, p=weights)


def _build(cfg: TrainConfig, train_set: Frames, device: torch.device):
    """Fresh or resumed model and optimizer; returns (model, optimizer, step, epoch, best_val)."""
    height, width = train_set.frames.shape[1:3]
    model_config = ModelConfig(height=height, width=width, speed_input=cfg.speed_input)
    model, step, epoch, best_val, ckpt = PilotNet(model_config), 0, 0, None, None
    last = cfg.run / "last.pt"
    if cfg.resume and last.exists():
        ckpt = load_checkpoint(last, device="cpu")
        if ckpt["model_config"] != asdict(model_config):
            raise TrainingError(
                f"--resume: {last} was trained with {ckpt['model_config']} but the data and "
                f"flags now give {asdict(model_config)}; use the same --data and --speed-input"
            )
        model = build_model(ckpt, source=last)
        step, epoch, best_val = ckpt["step"], ckpt["epoch"], ckpt["best_val"]
    elif cfg.init is not None:
        start = load_checkpoint(cfg.init, device="cpu")
        if start["model_config"] != asdict(model_config):
            raise TrainingError(
                f"--init: {cfg.init} was trained with {start['model_config']} but the data and "
                f"flags now give {asdict(model_config)}"
            )
        model = build_model(start, source=cfg.init)
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if ckpt is not None:
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, TypeError):
            raise TrainingError(
                f"--resume: the optimizer state in {cfg.run / 'last.pt'} does not fit; "
                "start a new --run"
            ) from None
        if isinstance(rng := ckpt["extra"].get("rng_torch"), torch.Tensor):
            torch.set_rng_state(rng)
    return model, optimizer, step, epoch, best_val


def _mixed_precision(device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler]:
    """bf16 autocast where the GPU has it, else fp16 with loss scaling; full fp32 on the CPU."""
    if device.type != "cuda":
        return None, torch.amp.GradScaler("cpu", enabled=False)
    torch.backends.cudnn.benchmark = True  # the input size never changes
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, torch.amp.GradScaler("cuda", enabled=False)
    return torch.float16, torch.amp.GradScaler("cuda")


def _camera(data: Path, train_set: Frames) -> dict:
    """Camera settings of the training frames (as collection wrote them into the episode meta).

    Saved in every checkpoint so that evaluation renders exactly the view the net learned from.
    """
    height, width = train_set.frames.shape[1:3]
    first = scan(data)[0][int(train_set.episode[0])]  # Frames.episode indexes scan's list
    camera = read_episode(first).meta.get("camera")
    return camera if isinstance(camera, dict) else {"height": height, "width": width}


@dataclass
class _State:
    """What the loop carries from step to step (and what a checkpoint saves)."""

    model: PilotNet
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    writer: SummaryWriter
    device: torch.device
    amp: torch.dtype | None
    step: int
    epoch: int
    best_val: float | None
    camera: dict
    last_val: dict | None = None


def _save(state: _State, cfg: TrainConfig, path: Path) -> None:
    """Save a checkpoint, refusing weights that are no longer finite (never overwrite good ones)."""
    if not all(torch.isfinite(p).all() for p in state.model.parameters()):
        raise TrainingError(
            f"weights became NaN/inf by step {state.step}; not saving {path.name}, the last good "
            f"checkpoint is in {cfg.run} (try a lower --lr)"
        )
    save_checkpoint(
        path,
        model=state.model,
        model_config=state.model.config,
        optimizer=state.optimizer,
        step=state.step,
        epoch=state.epoch,
        best_val=state.best_val,
        config=asdict(cfg),
        extra={"rng_torch": torch.get_rng_state(), "val": state.last_val, "camera": state.camera},
    )


def _end_of_epoch(state: _State, cfg: TrainConfig, val_set: Frames, train_mean: np.ndarray) -> None:
    """Validate, log, and save last.pt (and best.pt when validation improved)."""
    improved = True  # without a validation set, best = last
    if len(val_set.labels):
        val = validation_losses(
            state.model, val_set, train_mean, cfg.batch_size, state.device, state.amp
        )
        for name, value in val.items():
            state.writer.add_scalar(f"val/{name}", value, state.step)
        improved = state.best_val is None or val["loss"] < state.best_val
        state.best_val = val["loss"] if improved else state.best_val
        state.last_val = val
        idx = np.unique(np.linspace(0, len(val_set.labels) - 1, 16).astype(int))
        pred = _predict(state.model, val_set, idx, state.device, state.amp).cpu().numpy()
        grid = draw_steering(val_set.frames[idx], val_set.labels[idx, 0], pred[:, 0])
        state.writer.add_images("val/predictions", grid, state.step, dataformats="NHWC")
        tqdm.write(
            f"epoch {state.epoch}/{cfg.epochs} step {state.step}: val loss {val['loss']:.4f} "
            f"(constant {val['baseline_loss']:.4f})" + (" new best" if improved else "")
        )
    _save(state, cfg, cfg.run / "last.pt")
    if improved:
        _save(state, cfg, cfg.run / "best.pt")
    state.writer.flush()


def _train_step(
    state: _State, batch: tuple[torch.Tensor, ...], lr: float, run: Path
) -> torch.Tensor:
    """One optimizer step; returns the per-output MSE [steering, throttle] (detached).

    Raises:
        TrainingError: the loss is NaN or infinite; the step is not taken, so the weights in
            memory and the checkpoints on disk stay finite.
    """
    image, speed, target = batch
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(state.device.type, dtype=state.amp, enabled=state.amp is not None):
        pred = state.model(image, speed)
    per_output = ((pred.float() - target) ** 2).mean(0)  # (2,) MSE [steering, throttle]
    loss = per_output.sum()
    if not torch.isfinite(loss):
        last = run / "last.pt" if (run / "last.pt").exists() else "none yet"
        raise TrainingError(
            f"loss became {loss.item()} at step {state.step}; last good checkpoint: {last} "
            "(try a lower --lr)"
        )
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    return per_output.detach()


def _log_train(state: _State, per_output: torch.Tensor, lr: float, samples_per_s: float) -> float:
    """Write the training scalars; return the total loss."""
    steering, throttle = per_output.cpu().tolist()
    scalars = {
        "train/loss_steering": steering,
        "train/loss_throttle": throttle,
        "train/loss": steering + throttle,
        "train/lr": lr,
        "perf/samples_per_s": samples_per_s,
    }
    for tag, value in scalars.items():
        state.writer.add_scalar(tag, value, state.step)
    return steering + throttle


def _run_epochs(cfg: TrainConfig, state: _State, train_set: Frames, val_set: Frames, weights):
    """The training loop proper; returns (samples seen, seconds spent on training steps)."""
    train_mean = train_set.labels.mean(0)
    steps_per_epoch = math.ceil(len(train_set.labels) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = max(1, min(500, total_steps // 20))
    seen, train_time = 0, 0.0
    for epoch in range(state.epoch, cfg.epochs):
        state.model.train()
        order = _epoch_order(len(train_set.labels), weights, cfg.seed, epoch)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
        tick, tick_seen = time.perf_counter(), seen
        for i in bar:
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            lr = lr_at(state.step, total_steps, cfg.lr, warmup)
            per_output = _train_step(state, _batch(train_set, idx, state.device), lr, cfg.run)
            state.step += 1
            seen += len(idx)
            is_log_step = state.step % cfg.log_every == 0 or i == steps_per_epoch - 1
            if is_log_step:
                now = time.perf_counter()
                rate = (seen - tick_seen) / (now - tick)
                train_time, tick, tick_seen = train_time + now - tick, now, seen
                loss = _log_train(state, per_output, lr, rate)
                bar.set_postfix(loss=f"{loss:.4f}", samples_per_s=f"{rate:.0f}")
        state.epoch = epoch + 1
        _end_of_epoch(state, cfg, val_set, train_mean)
    return seen, train_time


def train(cfg: TrainConfig) -> dict:
    """Train PilotNet as `cfg` says; returns a summary.

    Returns:
        {"best_val", "last_val", "steps", "epochs", "samples_per_s", "last", "best", "run",
        "eval"}; "eval" holds the evaluation's overall metrics (None unless eval_episodes > 0).

    Raises:
        TrainingError: bad settings, an unusable dataset, or a NaN loss.
        KeyboardInterrupt: after saving last.pt, so that the run can be resumed.
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train_set, val_set = load_split(cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed)
    if len(train_set.labels) == 0:
        raise TrainingError(f"--data {cfg.data}: no training frames; record more episodes")
    model, optimizer, step, epoch, best_val = _build(cfg, train_set, device)
    amp, scaler = _mixed_precision(device)
    cfg.run.mkdir(parents=True, exist_ok=True)
    (cfg.run / "config.json").write_text(json.dumps(jsonable(asdict(cfg)), indent=2) + "\n")
    writer = SummaryWriter(str(cfg.run), purge_step=step if cfg.resume else None)
    camera = _camera(cfg.data, train_set)
    state = _State(model, optimizer, scaler, writer, device, amp, step, epoch, best_val, camera)
    try:
        weights = _log_data(writer, cfg, train_set, val_set)
        seen, train_time = _run_epochs(cfg, state, train_set, val_set, weights)
        evaluation = _evaluate(cfg, writer, state.step) if cfg.eval_episodes > 0 else None
    except KeyboardInterrupt:
        _save(state, cfg, cfg.run / "last.pt")
        raise KeyboardInterrupt(
            f"interrupted at step {state.step}; saved {cfg.run / 'last.pt'}: "
            "re-run with --resume to continue"
        ) from None
    finally:
        writer.close()
    return {
        "best_val": state.best_val,
        "last_val": state.last_val,
        "steps": state.step,
        "epochs": state.epoch,
        "samples_per_s": seen / train_time if train_time > 0 else 0.0,
        "last": str(cfg.run / "last.pt"),
        "best": str(cfg.run / "best.pt"),
        "run": str(cfg.run),
        "eval": evaluation,
    }


def _evaluate(cfg: TrainConfig, writer: SummaryWriter, step: int) -> dict:
    """Closed-loop evaluation of best.pt; numeric overall metrics go to TensorBoard as eval/*."""
    from driving.evaluate import evaluate, log_to_tensorboard  # keeps training importable alone

    result = evaluate(
        str(cfg.run / "best.pt"),
        episodes=cfg.eval_episodes,
        out=cfg.run / "eval",
        workers=cfg.eval_workers,
        video=1,
    )
    log_to_tensorboard(writer, result, step)
    overall = result["overall"]
    return overall
