"""Validation during training (losses against a constant baseline, a picture of predictions) and
the run's TensorBoard records: data, training scalars, and the HParams plugin's settings.

losses = validation_losses(model, val_tensors, train_mean, batch_size=128)
grid = prediction_grid(model, val_tensors)  # (16, H + 14, W, 3) uint8 for TensorBoard
log_hparams(writer, asdict(cfg))            # the run's row in TensorBoard's HParams tab
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from driving.data import Frames
from driving.learn.batches import DeviceFrames
from driving.learn.checkpoint import jsonable
from driving.learn.model import (
    CHOOSING,
    CONTROLS,
    PLAN_WEIGHT,
    PLANS,
    PilotNet,
    controls,
    output_losses,
)

CURVE_THRESHOLD = 0.05
"""|steering| above which a frame counts as 'in a curve' for the logged shares."""
HPARAM_METRICS = (
    "eval/success_rate",
    "eval/autonomy",
    "eval/mean_abs_lateral_offset",
    "eval/speed_ratio_to_expert",
    "val/loss",
)
"""Scalar tags the HParams tab shows beside each run's settings (the closed-loop ones are written
by `driving.rollout.report.log_to_tensorboard` after an evaluation; fractions in [0, 1])."""


def hparam_values(config: dict) -> dict[str, bool | int | float | str]:
    """The settings flattened to what the HParams plugin takes: nested dicts as dotted names
    (`world.camera.kind`), lists and None as text."""
    flat = {}
    for name, value in jsonable(config).items():
        if isinstance(value, dict):
            flat.update({f"{name}.{k}": v for k, v in hparam_values(value).items()})
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:  # None or a list
            flat[name] = str(value)
    return flat


WANDB_EXTRA = "pip install 'pixels-to-pedals[wandb]'"


def start_wandb(run: Path, config: dict):
    """Start a Weights & Biases run mirroring the TensorBoard events written to `run` (training
    and evaluation scalars, images, the settings as its config); returns it (`.finish()` it).

    Called before the run's SummaryWriter exists: wandb's `sync_tensorboard` hooks the event
    writer. The project is $WANDB_PROJECT or 'pixels-to-pedals'; `WANDB_MODE=offline` keeps it
    on disk for a later `wandb sync`. Its files go to $WANDB_DIR or ./wandb, never into the run
    folder: they hold copies of the event files, which `tensorboard --logdir` would show twice.
    """
    import wandb  # optional: TrainConfig.validate checks that it is installed

    project = os.environ.get("WANDB_PROJECT", "pixels-to-pedals")
    return wandb.init(
        project=project,
        name=run.name,
        config=hparam_values(config),
        sync_tensorboard=True,
    )


def log_hparams(writer: SummaryWriter, config: dict) -> None:
    """Write the run's settings to TensorBoard's HParams plugin, with `HPARAM_METRICS` as its
    metrics, into the writer's own folder.

    `SummaryWriter.add_hparams` would write them to a new sub-folder, apart from the run's
    scalars; the plugin reads each metric from the scalars of the folder holding the settings,
    so the three summaries go into the run's folder instead.
    """
    from torch.utils.tensorboard.summary import hparams

    metrics = dict.fromkeys(HPARAM_METRICS, 0.0)  # only the names are used
    file_writer = writer._get_file_writer()  # no public way to add a ready-made summary
    for summary in hparams(hparam_values(config), metrics):
        file_writer.add_summary(summary)


@torch.inference_mode()
def predict(model: PilotNet, data: DeviceFrames, idx: torch.Tensor, amp: torch.dtype | None):
    """(B, O) float32 predictions for the frames `idx` (indices on `data.index_device`)."""
    image, speed, _, limit = data.batch(idx)
    with torch.autocast(data.device.type, dtype=amp, enabled=amp is not None):
        return model(image, speed, limit).float()


def validation_losses(
    model: PilotNet,
    data: DeviceFrames,
    train_mean: np.ndarray,
    batch_size: int,
    amp: torch.dtype | None = None,
) -> dict[str, float]:
    """Loss per output (`loss_<name>` for each of `model.config.outputs`: the mean squared
    error, a choosing net's cross-entropy of the plan) on `data`, their sum (`loss`), and the
    same for a constant (`baseline_...`: the training mean; for the plan, its frequencies in
    `data`).

    The constant baseline shows whether the net learned anything beyond the average command.
    """
    model.eval()
    names = model.config.outputs
    squared = torch.zeros(len(names), device=data.device)
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=data.index_device)
        target = data.labels[idx].to(data.device)
        squared += output_losses(predict(model, data, idx, amp), target, names).sum(0)
    mse = (squared / len(data)).cpu().numpy()
    labels = data.labels.cpu().numpy()
    baseline = ((labels - train_mean) ** 2).mean(0)
    if names == CHOOSING:  # the entropy of the plan's frequencies
        share = np.array([np.mean(labels[:, 2].round() == p - 1) for p in range(len(PLANS))])
        baseline[2] = -PLAN_WEIGHT * float(np.sum(share[share > 0] * np.log(share[share > 0])))
    losses = {f"loss_{name}": float(value) for name, value in zip(names, mse, strict=True)}
    losses["loss"] = float(mse.sum())
    for name, value in zip(names, baseline, strict=True):
        losses[f"baseline_loss_{name}"] = float(value)
    losses["baseline_loss"] = float(baseline.sum())
    return losses


def prediction_grid(
    model: PilotNet, data: DeviceFrames, count: int = 16, amp: torch.dtype | None = None
) -> np.ndarray:
    """`count` frames spread over `data`, with true and predicted steering drawn under each."""
    idx = np.unique(np.linspace(0, len(data) - 1, count).astype(int))
    idx = torch.from_numpy(idx).to(data.index_device)
    pred = controls(predict(model, data, idx, amp), model.config.outputs).cpu().numpy()
    frames, labels = data.images[idx].cpu().numpy(), data.labels[idx].cpu().numpy()
    return draw_steering(frames, labels[:, 0], pred[:, 0])


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


def log_data(writer: SummaryWriter, config: dict, train_set: Frames, val_set: Frames, weights):
    """Log the label histograms, the settings and the curve shares of the sampling `weights`."""
    steering = train_set.labels[:, 0]
    writer.add_histogram("data/steering", steering, 0)
    writer.add_histogram("data/throttle", train_set.labels[:, 1], 0)
    rows = "\n".join(f"| {k} | {v} |" for k, v in jsonable(config).items())
    writer.add_text("hparams", "| setting | value |\n|---|---|\n" + rows, 0)
    log_hparams(writer, config)
    in_curve = np.abs(steering) > CURVE_THRESHOLD
    before = float(in_curve.mean())
    after = float(weights[in_curve].sum()) if weights is not None else before
    writer.add_scalar("data/curve_share_before", before, 0)
    writer.add_scalar("data/curve_share_after", after, 0)
    print(
        f"train {len(steering)} frames, val {len(val_set.labels)} frames; share with "
        f"|steering| > {CURVE_THRESHOLD}: {before:.0%} in the data, {after:.0%} as sampled"
    )


def log_train(
    writer: SummaryWriter | None,
    step: int,
    per_output: torch.Tensor,
    lr: float,
    samples_per_s: float,
    names: tuple[str, ...] = CONTROLS,
) -> float:
    """Write the training scalars (if there is a writer: rank 0); return the total loss.
    `names`: the net's outputs (`ModelConfig.outputs`), one per entry of `per_output`."""
    losses = per_output.cpu().tolist()
    scalars = {f"train/loss_{name}": value for name, value in zip(names, losses, strict=True)}
    scalars |= {"train/loss": sum(losses), "train/lr": lr, "perf/samples_per_s": samples_per_s}
    for tag, value in scalars.items():
        if writer is not None:
            writer.add_scalar(tag, value, step)
    return sum(losses)
