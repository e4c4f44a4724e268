"""Peak memory and time of one training pass: frames in memory against frames read from the files.

Three loaders go over the same dataset, each in a fresh process (so that each peak RSS is its
own), one after the other, in rounds:

1. memory: `load_split` reads every frame into memory, then `DeviceFrames.batch` gathers the
   batches (what `drive train` does by default);
2. lazy: `load_split(lazy=True)` and `SampleDataset.batch` in the training process (what
   `drive train --data-loading lazy` does);
3. lazy + 2 workers: the same `SampleDataset` read by a `DataLoader(num_workers=2)`.

A pass draws every training frame once, in batches of 128, in the trainer's shuffled
`epoch_order`, and times everything from the start of loading to the last batch (no model: this
measures the input path alone). Peak RSS is the process's high-water mark (VmHWM); for the
workers, the largest worker's (RUSAGE_CHILDREN); "before" is the RSS after the imports. The
files are read once before the first round, so every loader finds them in the page cache. Each
time is the best of the rounds. Prints a table and the ratios lazy / memory.

    python scripts/bench_loading.py --data /tmp/data20   # collects 20 roads there if missing
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

from driving.helptext import reflow_field_docs

LOADERS = ("memory", "lazy", "lazy+2 workers")


@dataclass(frozen=True)
class BenchConfig:
    """Measure peak memory and one pass's time of the in-memory and the lazy loaders."""

    data: Path = Path("/tmp/bench_loading_data")
    """dataset folder; collected with `drive collect` (the demo's dashcam) when missing"""
    roads: int = 20
    """roads to collect when --data is missing"""
    rounds: int = 2
    """passes of each loader (the best time is kept)"""
    batch_size: int = 128
    """samples per batch"""


def _rss_kib(field: str) -> int:
    """A line of /proc/self/status, e.g. VmRSS or VmHWM [KiB]."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def one_pass(loader: str, data: Path, batch_size: int) -> dict:
    """One pass of `loader` over `data`'s training frames, in this process; its figures."""
    import torch
    from torch.utils.data import DataLoader

    from driving.data import load_split
    from driving.data.lazy import SampleDataset
    from driving.learn.batches import epoch_order, to_device

    torch.set_num_threads(1)
    before = _rss_kib("VmRSS")
    start = time.perf_counter()
    train, _ = load_split(data, val_fraction=0.0, lazy=loader != "memory")
    order = epoch_order(len(train.labels), None, seed=0, epoch=0, device=torch.device("cpu"))
    batches, checksum = 0, 0
    if loader == "lazy+2 workers":
        sampler = torch.utils.data.BatchSampler(order.tolist(), batch_size, drop_last=False)
        batch_iter = DataLoader(SampleDataset(train), batch_sampler=sampler, num_workers=2)
    else:
        samples = to_device(train, torch.device("cpu"))
        batch_iter = (samples.batch(order[i : i + batch_size])
                      for i in range(0, len(order), batch_size))  # fmt: skip
    for image, *_ in batch_iter:
        batches += 1
        checksum += int(image[:, 0, 0, 0].sum())  # touch each batch, as training would
    seconds = time.perf_counter() - start
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # [KiB] largest worker
    return {
        "loader": loader, "frames": len(train.labels), "batches": batches, "seconds": seconds,
        "rss_before_mb": before / 1024, "peak_rss_mb": _rss_kib("VmHWM") / 1024,
        "worker_peak_rss_mb": worker / 1024 if loader == "lazy+2 workers" else 0.0,
        "checksum": checksum,
    }  # fmt: skip


def _collect(cfg: BenchConfig) -> None:
    """Record `cfg.roads` roads with the demo's camera into `cfg.data`."""
    print(f"collecting {cfg.roads} roads into {cfg.data} ...", flush=True)
    command = [sys.executable, "-m", "driving.cli", "collect", "--out", str(cfg.data),
               "--roads", str(cfg.roads), "--camera.kind", "dashcam",
               "--camera.appearance", "train"]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def main(cfg: BenchConfig) -> dict[str, dict]:
    """Run every loader `cfg.rounds` times, alternating; print the table; return the best runs."""
    if not cfg.data.is_dir():
        _collect(cfg)
    for path in sorted(cfg.data.glob("*.h5")):  # into the page cache, for every loader alike
        path.read_bytes()
    best: dict[str, dict] = {}
    for _ in range(cfg.rounds):
        for loader in LOADERS:
            args = [sys.executable, __file__, "--one-pass", loader, str(cfg.data),
                    str(cfg.batch_size)]  # fmt: skip
            done = subprocess.run(args, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if loader not in best or result["seconds"] < best[loader]["seconds"]:
                best[loader] = result
    print(_table(best, cfg))
    return best


def _table(best: dict[str, dict], cfg: BenchConfig) -> str:
    memory = best["memory"]
    lines = [
        f"{cfg.data}: {memory['frames']:,} training frames in {memory['batches']} batches of "
        f"{cfg.batch_size}; best of {cfg.rounds} rounds",
        "| loader | one pass [s] | x memory | peak RSS [MB] (before) | x memory "
        "| worker peak [MB] |",
        "|---|---|---|---|---|---|",
    ]
    for loader in LOADERS:
        run = best[loader]
        if run["checksum"] != memory["checksum"]:
            raise SystemExit(f"error: {loader} read other frames than memory")
        lines.append(
            f"| {loader} | {run['seconds']:.2f} | {run['seconds'] / memory['seconds']:.2f} | "
            f"{run['peak_rss_mb']:.0f} ({run['rss_before_mb']:.0f}) | "
            f"{run['peak_rss_mb'] / memory['peak_rss_mb']:.2f} | "
            f"{run['worker_peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    if sys.argv[1:2] == ["--one-pass"]:  # a child process: one loader, its figures as JSON
        print(json.dumps(one_pass(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
    else:
        reflow_field_docs()
        main(tyro.cli(BenchConfig))
