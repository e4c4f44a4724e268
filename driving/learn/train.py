"""Train PilotNet on recorded demonstrations (behaviour cloning).

A flat loop, readable top to bottom: load the episodes, over-sample curves, AdamW with a cosine
learning rate, validate every epoch, keep `last.pt` and `best.pt`, log everything to TensorBoard,
and optionally run the closed-loop evaluation at the end. The frames stay uint8 tensors where the
model runs (`driving.learn.batches`); under `torchrun` the same command trains with DDP on several
processes, GPUs or nodes (`driving.learn.distributed`). What the loop carries, one optimizer step,
the learning-rate schedule and saving/resuming checkpoints live in `driving.learn.state`.

    drive train --data data/demos --epochs 10   # flags: TrainConfig's fields; logs/runs/<new>
    drive train --config logs/runs/<run>/config.json --seed 1   # the same settings, another seed
    torchrun --standalone --nproc_per_node 2 -m driving.cli -- train --data data/demos --run R
    tensorboard --logdir logs
"""

from __future__ import annotations

import math
import random
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from driving.config import save_config
from driving.data import Frames, load_split, read_episode, scan
from driving.data.read import step_arrays
from driving.files import hold_folder
from driving.learn import distributed
from driving.learn.augment import (
    colour_jitter,
    mirror,
    mirror_signs,
    speed_shift,
    table_shift,
    traffic_throttle_tables,
)
from driving.learn.batches import (
    DeviceFrames,
    curve_weights,
    epoch_order,
    speed_weights,
    to_device,
)
from driving.learn.card import write_model_card
from driving.learn.distributed import Ranks
from driving.learn.model import CHOOSING, CONTROLS, LANE_CHANGE, ModelConfig
from driving.learn.monitor import (
    draw_steering,
    log_data,
    log_train,
    prediction_grid,
    start_wandb,
    validation_losses,
)
from driving.learn.perception import perception_targets
from driving.learn.settings import TrainConfig
from driving.learn.state import (
    TrainingError,
    TrainState,
    lr_at,
    mixed_precision,
    model_and_optimizer,
    resolve_device,
    save_state,
    signals_held,
    train_step,
)
from driving.runs import RUNS, new_run_folder
from envs.dashcam import Dashcam
from envs.world import TRAFFIC_SCENARIOS, World

BEND_AHEAD_M = 20.0
"""--curve-measure lane weighs a frame by its lane's sharpest bend this far ahead [m]: about
1.3 s at the 15 m/s limit, the bend the car is in or about to steer into."""

__all__ = ["TrainConfig", "TrainingError", "curve_weights", "draw_steering", "lr_at", "train"]


def _model_config(
    cfg: TrainConfig, train_set: Frames, outputs: tuple[str, ...], world: World
) -> ModelConfig:
    """The network the settings, the data's frame size and world, and the `outputs` learned
    ask for.

    Raises:
        TrainingError: --mask-sky on frames that are not the dashcam's.
    """
    height, width = train_set.frames.shape[1:3]
    hidden_rows, shown_box = 0, None
    if cfg.mask_sky:
        if world.camera.kind != "dashcam":
            raise TrainingError(
                f"--mask-sky needs dashcam frames; {cfg.data} was recorded with the "
                f"{world.camera.kind} camera"
            )
        camera = Dashcam(world.camera)  # the sky hidden, but for the rear-view mirror in it
        hidden_rows, shown_box = camera.ground_top, camera.mirror_box
    return ModelConfig(
        height=height,
        width=width,
        speed_input=cfg.speed_input,
        limit_input=cfg.limit_input,
        frames=cfg.frames,
        frame_stride=cfg.frame_stride,
        input_norm=cfg.input_norm,
        hidden_rows=hidden_rows,
        shown_box=shown_box,
        outputs=outputs,
    )


def _check_data(cfg: TrainConfig, *sets: Frames) -> None:
    """Refuse --limit-input on a dataset with an episode recorded without the speed limit."""
    if cfg.limit_input and any(frames.speed_limit is None for frames in sets):
        raise TrainingError(
            f"--limit-input: {cfg.data} holds episodes recorded without the speed limit (before "
            "2026-12-07, or converted from another format); collect the data again with "
            "`drive collect` into a new folder"
        )


def _traffic_shift_table(cfg: TrainConfig, world: World, train_set: Frames):
    """The traffic expert's throttle at shifted speeds for --speed-shift on traffic drives
    (`driving.learn.augment.traffic_throttle_tables`); None on roads without traffic."""
    if not cfg.speed_shift or world.scenario not in TRAFFIC_SCENARIOS:
        return None
    table = traffic_throttle_tables(cfg.data, train_set, cfg.speed_shift)
    if torch.isnan(table).all():
        raise TrainingError(
            f"--speed-shift: no step of {cfg.data} records the car ahead near a lane centre "
            "(the keyboard's drives and DAgger's before 2026-12-07 do not), so no label can be "
            "shifted in traffic"
        )
    return table


def _sampling_weights(cfg: TrainConfig, train_set: Frames) -> np.ndarray | None:
    """The probability of drawing each training frame (None: every frame once per epoch)."""
    weights = None
    if cfg.curve_weighting:
        lane = cfg.curve_measure == "lane"
        measure = _bends(cfg.data, train_set) if lane else train_set.labels[:, 0]
        weights = curve_weights(measure)
    if cfg.speed_weighting:
        weights = speed_weights(train_set.speed, weights)
    return weights


def _bends(data: Path, train_set: Frames) -> np.ndarray:
    """(N,) the sharpest |curvature| [1/m] of the car's lane up to `BEND_AHEAD_M` ahead of each
    training frame (--curve-measure lane)."""
    found = step_arrays(data, train_set, "curvature_ahead")
    if found is None:
        raise TrainingError(
            f"--curve-measure lane: an episode of {data} does not record the lane's curvature "
            "(`drive collect` records it since 2026-12-03, DAgger since 2026-12-07, the keyboard "
            "does not): use --curve-measure steering"
        )
    curvature, metas = found
    distances = {tuple(meta.get("curvature_ahead_m") or ()) for meta in metas}
    if len(distances) != 1:
        raise TrainingError(
            f"--curve-measure lane: the episodes of {data} record the curvature at different "
            f"distances {sorted(distances)}: train on episodes of one collection setting"
        )
    near = np.asarray(distances.pop()) <= BEND_AHEAD_M
    return np.abs(curvature[:, near]).max(axis=1)


def _with_plans(data: Path, *sets: Frames) -> list[Frames]:
    """`sets` with the traffic expert's lane plan (-1, 0, +1) as a third label (--target plan).

    Raises:
        TrainingError: an episode does not record the plan.
    """
    planned = []
    for frames in sets:
        found = step_arrays(data, frames, LANE_CHANGE) if len(frames) else (np.zeros(0), [])
        if found is None:
            raise TrainingError(
                f"--target plan: an episode of {data} does not record the traffic expert's lane "
                "plan (`drive collect` and DAgger record it in traffic since 2026-12-08): "
                "collect the data again into a new folder, or use --target controls"
            )
        plan = found[0].astype(np.float32)[:, None]
        planned.append(replace(frames, labels=np.concatenate([frames.labels, plan], axis=1)))
    return planned


def _recording(data: Path, train_set: Frames, val_set: Frames) -> dict:
    """The World the training frames were recorded in (the first training episode's), as the
    checkpoint's `extra["world"]`: evaluation, watch, saliency and DAgger then render exactly the
    view the net learned from, in the world it learned to drive in."""
    first = scan(data)[0][int(train_set.episode[0])]  # Frames.episode indexes scan's list
    world = read_episode(first).world.to_dict()
    return {"world": world, "data": _data_record(data, train_set, val_set)}


def _data_record(data: Path, train_set: Frames, val_set: Frames) -> dict:
    """The data the net learned from, for its model card (`driving.learn.card`)."""
    val = val_set.episode
    return {
        "folder": str(data),
        "train_episodes": len(np.unique(train_set.episode)),
        "train_frames": len(train_set.episode),
        "val_episodes": len(np.unique(val)),
        "val_frames": len(val),
    }


def _end_of_epoch(state: TrainState, cfg: TrainConfig, val_set: DeviceFrames, train_mean) -> None:
    """Validate, log, and save last.pt (and best.pt when validation improved); rank 0 only."""
    improved = True  # without a validation set, best = last
    if len(val_set):
        val = validation_losses(state.model, val_set, train_mean, cfg.batch_size, state.amp)
        for name, value in val.items():
            state.writer.add_scalar(f"val/{name}", value, state.step)
        improved = state.best_val is None or val["loss"] < state.best_val
        state.best_val = val["loss"] if improved else state.best_val
        state.last_val = val
        grid = prediction_grid(state.model, val_set, amp=state.amp)
        state.writer.add_images("val/predictions", grid, state.step, dataformats="NHWC")
        tqdm.write(
            f"epoch {state.epoch}/{cfg.epochs} step {state.step}: val loss {val['loss']:.4f} "
            f"(constant {val['baseline_loss']:.4f})" + (" new best" if improved else "")
        )
    save_state(state, cfg.run / "last.pt", asdict(cfg))
    if improved:
        save_state(state, cfg.run / "best.pt", asdict(cfg))
    state.writer.flush()


def _run_epochs(
    cfg: TrainConfig, state: TrainState, train_set, val_set, shift_table, weights, train_mean
):
    """The training loop proper; returns (samples seen, seconds spent on training steps).
    `shift_table`: the traffic expert's throttle at shifted speeds (None: the lane-keeping law)."""
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = max(1, min(500, total_steps // 20))
    seen, train_time = 0, 0.0
    jitter = torch.Generator()
    odd, shift = _mirrored_outputs(state)
    taken = _steps_taken_in_epoch(state, steps_per_epoch)
    for epoch in range(state.epoch, cfg.epochs):
        state.model.train()
        order = epoch_order(len(train_set), weights, cfg.seed, epoch, train_set.index_device)
        quiet = {} if state.ranks.is_main else {"disable": True}  # one bar, rank 0's
        steps = range(taken, steps_per_epoch)  # an interrupted epoch goes on where it stopped
        bar = tqdm(steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, **quiet)
        taken = 0
        tick, tick_seen = time.perf_counter(), seen
        for i in bar:
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]  # the global batch
            rows = distributed.shard(idx, state.ranks)
            batch = train_set.batch(rows)
            if cfg.colour_jitter > 0:  # drawn from (seed, step, rank): a resumed run draws alike
                jitter.manual_seed(hash((cfg.seed, state.step, state.ranks.rank)) % 2**63)
                batch = (colour_jitter(batch[0], cfg.colour_jitter, jitter), *batch[1:])
            if cfg.mirror:  # its own draw from (seed, step, rank): ints only, whose hash is fixed
                jitter.manual_seed(hash((cfg.seed, state.step, state.ranks.rank, 1)) % 2**63)
                image, labels = mirror(batch[0], batch[2], odd, shift, jitter)
                batch = (image, batch[1], labels, batch[3])  # speed and limit as they were
            if cfg.speed_shift:
                jitter.manual_seed(hash((cfg.seed, state.step, state.ranks.rank, 2)) % 2**63)
                if shift_table is None:
                    speed, labels = speed_shift(batch[1], batch[2], cfg.speed_shift, jitter)
                else:
                    table = shift_table[rows.cpu()]
                    speed, labels = table_shift(batch[1], batch[2], table, cfg.speed_shift, jitter)
                batch = (batch[0], speed, labels, batch[3])
            lr = lr_at(state.step, total_steps, cfg.lr, warmup)
            with signals_held():  # a step is taken and counted whole, or not at all
                per_output = train_step(state, batch, len(idx), lr, cfg.run)
                state.step += 1
            seen += len(idx)
            is_log_step = state.step % cfg.log_every == 0 or i == steps_per_epoch - 1
            if is_log_step:
                now = time.perf_counter()
                rate = (seen - tick_seen) / (now - tick)
                train_time, tick, tick_seen = train_time + now - tick, now, seen
                outputs = state.model.config.outputs
                loss = log_train(state.writer, state.step, per_output, lr, rate, outputs)
                bar.set_postfix(loss=f"{loss:.4f}", samples_per_s=f"{rate:.0f}")
        with signals_held():  # validation and both checkpoints belong to the epoch's end
            state.epoch = epoch + 1
            if state.ranks.is_main:
                _end_of_epoch(state, cfg, val_set, train_mean)
    return seen, train_time


def _mirrored_outputs(state: TrainState) -> tuple[torch.Tensor, torch.Tensor]:
    """For `mirror`: which outputs change sign, and 2 mean / std of each (normalised lane
    quantities; zeros for the controls, learnt raw)."""
    outputs = state.model.config.outputs
    norm = state.recording.get("perception")
    if norm is None:
        return mirror_signs(outputs), torch.zeros(len(outputs))
    return mirror_signs(outputs), 2 * torch.tensor(norm["mean"]) / torch.tensor(norm["std"])


def _steps_taken_in_epoch(state: TrainState, steps_per_epoch: int) -> int:
    """Steps of the current epoch a resumed run has already taken (0 unless it was interrupted
    mid-epoch); 0, with a warning line, if its step count does not fall in this epoch (the data
    or --batch-size changed since: that epoch is then run whole, not exactly resumed)."""
    taken = state.step - state.epoch * steps_per_epoch
    if 0 <= taken < steps_per_epoch:
        return taken
    if state.ranks.is_main:
        tqdm.write(
            f"--resume: step {state.step} is not in epoch {state.epoch + 1} of {steps_per_epoch} "
            "steps (the data or --batch-size changed): the epoch is run whole"
        )
    return 0


def _start(cfg: TrainConfig) -> tuple[Ranks, torch.device]:
    """Check the settings, join the other ranks (under torchrun), seed everything."""
    cfg.validate()
    ranks = distributed.ranks_from_env()
    device = distributed.setup(ranks, resolve_device(cfg.device), cfg.batch_size)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return ranks, device


def train(cfg: TrainConfig) -> dict:
    """Train PilotNet as `cfg` says; returns a summary (on every rank under torchrun).

    Returns:
        {"best_val", "last_val", "steps", "epochs", "samples_per_s", "last", "best", "run",
        "eval"}; "eval" holds the evaluation's overall metrics (None unless eval_episodes > 0).
        "best_val" and "last_val" are known on rank 0 only.

    Raises:
        TrainingError: bad settings, an unusable dataset, or a NaN loss.
        KeyboardInterrupt: after saving last.pt, so that the run can be resumed.
    """
    ranks, device = _start(cfg)
    given, cfg = cfg, _named(cfg, ranks)
    existed = cfg.run.exists()
    lock = hold_folder(cfg.run) if ranks.is_main else None
    if ranks.is_main and lock is None:
        raise TrainingError(
            f"--run {cfg.run} is in use by another `drive train` (it holds {cfg.run / '.lock'}); "
            "wait for it to finish or choose another --run"
        )
    try:
        return _train(cfg, ranks, device, given)
    except Exception:
        if lock is not None and not existed:  # refused before any work: leave nothing behind
            lock.release()
            lock = None
            if [p.name for p in cfg.run.iterdir()] == [".lock"]:
                shutil.rmtree(cfg.run)
        raise
    finally:
        if lock is not None:
            lock.release()


def _named(cfg: TrainConfig, ranks: Ranks) -> TrainConfig:
    """`cfg` with its run folder: --run, or a new folder under logs/runs when not given."""
    if cfg.run is not None:
        return cfg
    if ranks.enabled:  # each process would pick its own name
        raise TrainingError("under torchrun give --run: every process must write to one folder")
    run = new_run_folder(cfg.data, RUNS)
    print(f"run folder: {run}")
    return replace(cfg, run=run)


def _train(cfg: TrainConfig, ranks: Ranks, device: torch.device, given: TrainConfig) -> dict:
    """`train` with the run folder locked; `given`: the settings as given (config.json)."""
    lazy = cfg.data_loading == "lazy"
    train_set, val_set = load_split(cfg.data, cfg.val_fraction, cfg.seed, lazy=lazy)
    if len(train_set.labels) == 0:
        raise TrainingError(f"--data {cfg.data}: no training frames; record more episodes")
    recording = _recording(cfg.data, train_set, val_set)  # a bad world: refused before any work
    world = World.from_dict(recording["world"])
    _check_data(cfg, train_set, val_set)
    weights = _sampling_weights(cfg, train_set)
    shift_table = _traffic_shift_table(cfg, world, train_set)
    targets, outputs = (train_set, val_set), CONTROLS  # what the net learns from the frames
    if cfg.target == "perception":
        *targets, recording["perception"] = perception_targets(cfg.data, train_set, val_set)
        outputs = tuple(recording["perception"]["outputs"])
    elif cfg.target == "plan":
        targets, outputs = _with_plans(cfg.data, train_set, val_set), CHOOSING
    last = cfg.run / "last.pt"
    model, optimizer, step, epoch, best_val = model_and_optimizer(
        _model_config(cfg, train_set, outputs, world),
        device,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        resume_from=last if cfg.resume and last.exists() else None,
        init=cfg.init,
    )
    amp, scaler = mixed_precision(device)
    writer = wandb_run = None
    if ranks.is_main:
        cfg.run.mkdir(parents=True, exist_ok=True)
        # as given: replaying an automatically named run's config starts a new run
        save_config(cfg.run / "config.json", given)
        wandb_run = start_wandb(cfg.run, asdict(cfg)) if cfg.wandb else None
        writer = SummaryWriter(str(cfg.run), purge_step=step if cfg.resume else None)
    state = TrainState(
        model, optimizer, scaler, writer, device, amp, step, epoch, best_val, recording
    )
    state.net, state.ranks = distributed.wrap(model, ranks, device), ranks
    try:
        if writer is not None:
            log_data(writer, asdict(cfg), train_set, val_set, weights)
        train_mean = targets[0].labels.mean(0)
        inputs = {"stack": cfg.frames, "stride": cfg.frame_stride, "limit": cfg.limit_input}
        tensors = to_device(targets[0], device, verbose=ranks.is_main, **inputs)
        val_tensors = to_device(targets[1], device, verbose=False, **inputs)
        sets = (tensors, val_tensors, shift_table)
        seen, train_time = _run_epochs(cfg, state, *sets, weights, train_mean)
        distributed.finish(ranks)
        evaluation = None
        if writer is not None:
            write_model_card(cfg.run / "best.pt")
        if cfg.eval_episodes > 0 and writer is not None:
            evaluation = _evaluate(cfg)
    except KeyboardInterrupt:
        if ranks.is_main:
            try:
                with signals_held():  # a second Ctrl-C waits for this save
                    save_state(state, cfg.run / "last.pt", asdict(cfg))
            except KeyboardInterrupt:
                pass  # it came during the save, which finished: the line below says so
        raise KeyboardInterrupt(
            f"interrupted at step {state.step}; saved {cfg.run / 'last.pt'}: "
            f"re-run with --run {cfg.run} --resume to continue"
        ) from None
    finally:
        if writer is not None:
            writer.close()
        if wandb_run is not None:
            wandb_run.finish()
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


def _evaluate(cfg: TrainConfig) -> dict:
    """Closed-loop evaluation of best.pt, recorded in the run (TensorBoard eval/* and HParams,
    the model card); returns its overall metrics."""
    from driving.rollout.evaluate import EvalConfig, evaluate  # keeps training importable alone

    best, out = str(cfg.run / "best.pt"), cfg.run / "eval"
    result = evaluate(EvalConfig(best, cfg.eval_episodes, out, cfg.eval_workers, run=cfg.run))
    return result["overall"]
