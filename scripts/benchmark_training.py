"""Speed of training input and of inference, measured side by side in one run.

1. Training samples/s through the real data path (the trainer's own `epoch_order` with curve
   over-sampling, `DeviceFrames.batch`, `train_step`) against the same model and batch size fed
   ready batches already in memory; target: ratio >= 0.90. For reference, also the previous path
   (numpy fancy indexing + `torch.from_numpy` per batch). The three alternate step by step, in
   rotating order, so that a busy machine slows them alike; each figure comes from the median
   step time.
2. Batch-1 `NetPolicy.act` latency on the CPU, p50 and p99 over many calls after a warm-up, with 1
   and 2 torch threads; target: p50 <= 2 ms.

    python scripts/benchmark_training.py            # about 1 minute on a 2-core CPU
    python scripts/benchmark_training.py --quick    # a few seconds: a smoke run
    python scripts/benchmark_training.py --data logs/demo/data --device cuda

Without --data, it writes synthetic episodes (random frames, real HDF5 files) to a temporary folder
and loads them with `load_split`, as training does. Prints PASS/FAIL per target; exit code 0.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

os.environ.setdefault("TQDM_DISABLE", "1")

from driving.data import Episode, Frames, load_split, write_episode  # noqa: E402
from driving.helptext import reflow_field_docs  # noqa: E402
from driving.learn.batches import curve_weights, epoch_order, to_device  # noqa: E402
from driving.learn.model import ModelConfig, PilotNet  # noqa: E402
from driving.learn.policy import NetPolicy  # noqa: E402
from driving.learn.state import TrainState, mixed_precision, resolve_device, train_step  # noqa: E402

RATIO_TARGET = 0.90
LATENCY_TARGET_MS = 2.0


@dataclass(frozen=True)
class BenchmarkConfig:
    """Measure training input speed and inference latency."""

    data: Path | None = None
    """dataset folder (default: synthetic episodes in a temporary folder)"""
    device: str = "cpu"
    """device for the training measurement: cpu, cuda, cuda:N or auto"""
    batch_size: int = 128
    """frames per training step"""
    threads: int = 0
    """torch threads for the training measurement (0 = torch's default)"""
    quick: bool = False
    """a smoke run: fewer frames, rounds and calls (numbers are rougher)"""


def _synthetic(root: Path, episodes: int, frames: int) -> None:
    """Real episode files with random frames and curve-like steering (sampling cost is real)."""
    for seed in range(episodes):
        rng = np.random.default_rng(seed)
        steering = np.clip(rng.normal(0.0, 0.15, frames), -1, 1).astype(np.float32)
        speed = rng.uniform(0.0, 20.0, frames).astype(np.float32)
        labels = np.stack([steering, np.zeros_like(steering)], axis=1)
        images = rng.integers(0, 256, (frames, 66, 200, 3), dtype=np.uint8)
        zeros = np.zeros(frames, np.float32)
        meta = {"driver": "expert"}
        write_episode(root, Episode(images, labels, labels, speed, zeros, zeros, seed, meta))


def _state(frames: Frames, device: torch.device) -> TrainState:
    """A PilotNet and AdamW exactly as training builds them (channels_last, mixed precision)."""
    height, width = frames.frames.shape[1:3]
    model = PilotNet(ModelConfig(height=height, width=width)).to(device)
    model = model.to(memory_format=torch.channels_last)
    amp, scaler = mixed_precision(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    return TrainState(model, optimizer, scaler, None, device, amp, 0, 0, None, {})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _training(cfg: BenchmarkConfig, frames: Frames, device: torch.device) -> dict[str, float]:
    """Samples/s of each input path from its median step time, and the ratios to `ready`."""
    state, batch = _state(frames, device), cfg.batch_size
    steps = 10 if cfg.quick else 40
    tensors = to_device(frames, device)
    weights = curve_weights(frames.labels[:, 0])
    per_epoch = max(1, len(tensors) // batch)
    where = tensors.index_device
    # Two batches gathered before any clock starts, reused: they stay in the CPU's cache, so this
    # is the best case the real path is held against.
    ready = [tensors.batch(torch.randint(len(tensors), (batch,), device=where)) for _ in range(2)]
    rng = np.random.default_rng(0)
    orders: dict[str, object] = {}

    def real(k: int) -> None:  # what `_run_epochs` does: one order per epoch, then per step
        i = k % per_epoch
        if i == 0:
            orders["real"] = epoch_order(len(tensors), weights, 0, k, where)
        idx = orders["real"][i * batch : (i + 1) * batch]
        train_step(state, tensors.batch(idx), len(idx), 1e-4, Path("."))

    def previous(k: int) -> None:  # before: numpy fancy indexing and from_numpy per batch
        i = k % per_epoch
        if i == 0:
            orders["previous"] = rng.choice(len(frames), size=len(frames), replace=True, p=weights)
        idx = orders["previous"][i * batch : (i + 1) * batch]
        arrays = (frames.frames[idx], frames.speed[idx], frames.labels[idx])
        step = tuple(torch.from_numpy(a).to(device, non_blocking=True) for a in arrays)
        train_step(state, (*step, None), len(idx), 1e-4, Path("."))  # no speed limit

    def in_memory(k: int) -> None:
        train_step(state, ready[k % 2], batch, 1e-4, Path("."))

    paths = {"ready": in_memory, "real": real, "previous": previous}
    for run in paths.values():  # warm-up: allocator, thread pools, cudnn autotuning
        run(0)
        run(1)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for k in range(steps):  # step by step, in rotating order: a busy machine slows all alike
        names = list(paths)[k % 3 :] + list(paths)[: k % 3]
        for name in names:
            _sync(device)
            start = time.perf_counter()
            paths[name](k)
            _sync(device)
            times[name].append(time.perf_counter() - start)
    result = {name: batch / statistics.median(values) for name, values in times.items()}
    for name in ("real", "previous"):
        result[f"{name}_ratio"] = result[name] / result["ready"]
    result["gather_ms"] = _gather_ms(tensors, batch, device)
    return result


def _gather_ms(tensors, batch: int, device: torch.device, repeats: int = 30) -> float:
    """Milliseconds to index one batch out of the dataset tensor (the data path's own cost)."""
    idx = torch.randint(len(tensors), (batch,), device=tensors.index_device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        tensors.batch(idx)
    _sync(device)
    return (time.perf_counter() - start) / repeats * 1000


def _latency(calls: int, threads: int) -> tuple[float, float]:
    """p50 and p99 [ms] of batch-1 `NetPolicy.act` on the CPU with `threads` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        policy = NetPolicy(PilotNet(ModelConfig()), device="cpu")
        rng = np.random.default_rng(0)
        obs = {"image": rng.integers(0, 256, (66, 200, 3), dtype=np.uint8)}
        obs["speed"] = np.array([12.0], np.float32)
        for _ in range(50):
            policy.act(obs)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            policy.act(obs)
            times.append((time.perf_counter() - start) * 1000)
        return float(np.percentile(times, 50)), float(np.percentile(times, 99))
    finally:
        torch.set_num_threads(before)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(cfg: BenchmarkConfig) -> None:
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    with tempfile.TemporaryDirectory(prefix="benchmark_") as tmp:
        data = cfg.data
        if data is None:
            data = Path(tmp)
            _synthetic(data, *((8, 100) if cfg.quick else (40, 100)))
        frames, _ = load_split(data, val_fraction=0.0)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {load}; "
        f"torch {torch.__version__}; training on {device} with {torch.get_num_threads()} "
        f"threads, batch {cfg.batch_size}, {len(frames)} frames from {cfg.data or 'synthetic'}"
    )
    speed = _training(cfg, frames, device)
    print("training input, samples/s (from the median step time, steps interleaved):")
    print(f"  ready tensors in memory                {speed['ready']:8.0f}")
    print(
        f"  real data path (DeviceFrames.batch)    {speed['real']:8.0f}   ratio "
        f"{speed['real_ratio']:.3f}  target >= {RATIO_TARGET:.2f}  "
        f"{_verdict(speed['real_ratio'] >= RATIO_TARGET)}"
    )
    print(
        f"  previous path (numpy index per batch)  {speed['previous']:8.0f}   ratio "
        f"{speed['previous_ratio']:.3f}  (for reference)"
    )
    step_ms = cfg.batch_size / speed["ready"] * 1000
    print(f"  gathering one batch: {speed['gather_ms']:.2f} ms (a step: {step_ms:.1f} ms)")
    calls = 200 if cfg.quick else 1000
    print(f"inference, NetPolicy.act batch 1 on the CPU ({calls} calls after 50 warm-up):")
    for threads in (1, 2):
        p50, p99 = _latency(calls, threads)
        print(
            f"  {threads} thread{'s' if threads > 1 else ' '}  p50 {p50:5.2f} ms  p99 {p99:5.2f} ms"
            f"   target p50 <= {LATENCY_TARGET_MS:.0f} ms  {_verdict(p50 <= LATENCY_TARGET_MS)}"
        )


if __name__ == "__main__":
    reflow_field_docs()
    main(tyro.cli(BenchmarkConfig))
