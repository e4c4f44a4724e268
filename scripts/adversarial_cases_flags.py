"""The flag cases of `scripts/adversarial.py`: non-numeric, unknown, out-of-range values,
outputs that are existing files, zero and negative counts.

Each is refused with one `error:` line and exit code 2, and leaves no output folder behind.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import adversarial as adv
from adversarial import Case, F, Kit, Result


def _file(folder: Path) -> Path:
    """An existing regular file where a folder or an output is expected."""
    path = folder / "a-file"
    path.write_text("mine, keep me\n")
    return path


# name -> make(kit, folder) -> (command, outputs that must not exist after a refusal)
FLAG_CASES = {
    "collect-roads-text": lambda k, d: (adv.collect(d / "out", "abc"), [d / "out"]),
    "unknown-flag": lambda k, d: (adv.collect(d / "out", 2, "--bogus", 1), [d / "out"]),
    "unknown-verb": lambda k, d: (adv.drive("trian", F["data"], k.data), []),
    "collect-roads-0": lambda k, d: (adv.collect(d / "out", 0), [d / "out"]),
    "collect-roads-negative": lambda k, d: (adv.collect(d / "out", -3), [d / "out"]),
    "collect-workers-0": lambda k, d: (adv.collect(d / "out", 2, F["workers"], 0), [d / "out"]),
    "collect-shard": lambda k, d: (adv.collect(d / "out", 2, F["shard"], "3/2"), [d / "out"]),
    "collect-eval-seeds": lambda k, d: (
        adv.collect(d / "out", 5, F["first_seed"], 999_998),
        [d / "out"],
    ),
    "collect-seed-negative": lambda k, d: (
        adv.collect(d / "out", 2, F["first_seed"], -1),
        [d / "out"],
    ),
    "collect-scenario": lambda k, d: (
        adv.collect(d / "out", 2, F["scenario"], "moon"),
        [d / "out"],
    ),
    "collect-correlation": lambda k, d: (
        adv.collect(d / "out", 2, F["noise_correlation"], 1.5),
        [d / "out"],
    ),
    "collect-height-0": lambda k, d: (
        adv.collect(d / "out", 2, F["camera_height"], 0),
        [d / "out"],
    ),
    "collect-out-file": lambda k, d: (adv.collect(_file(d), 2), []),
    "train-epochs-0": lambda k, d: (adv.train(k.data, d / "run", F["epochs"], 0), [d / "run"]),
    "train-epochs-fraction": lambda k, d: (
        adv.train(k.data, d / "run", F["epochs"], 1.5),
        [d / "run"],
    ),
    "train-batch-0": lambda k, d: (adv.train(k.data, d / "run", F["batch_size"], 0), [d / "run"]),
    "train-lr-negative": lambda k, d: (adv.train(k.data, d / "run", F["lr"], -1), [d / "run"]),
    "train-val-fraction": lambda k, d: (
        adv.train(k.data, d / "run", F["val_fraction"], 1.5),
        [d / "run"],
    ),
    "train-device-bogus": lambda k, d: (
        adv.train(k.data, d / "run", F["device"], "tpu"),
        [d / "run"],
    ),
    "train-device-cuda-99": lambda k, d: (
        adv.train(k.data, d / "run", F["device"], "cuda:99"),
        [d / "run"],
    ),
    "train-frames-99": lambda k, d: (adv.train(k.data, d / "run", F["frames"], 99), [d / "run"]),
    "train-jitter-2": lambda k, d: (
        adv.train(k.data, d / "run", F["colour_jitter"], 2),
        [d / "run"],
    ),
    "train-threads-negative": lambda k, d: (
        adv.train(k.data, d / "run", F["threads"], -1),
        [d / "run"],
    ),
    "train-run-file": lambda k, d: (adv.train(k.data, _file(d)), []),
    "train-data-missing": lambda k, d: (adv.train(d / "nothing", d / "run"), [d / "run"]),
    "train-data-file": lambda k, d: (adv.train(_file(d), d / "run"), [d / "run"]),
    "train-init-missing": lambda k, d: (
        adv.train(k.data, d / "run", F["init"], d / "none.pt"),
        [d / "run"],
    ),
    "evaluate-roads-0": lambda k, d: (
        adv.evaluate(k.run / "best.pt", d / "eval", F["eval_roads"], 0),
        [d / "eval"],
    ),
    "evaluate-video-negative": lambda k, d: (
        adv.evaluate(k.run / "best.pt", d / "eval", F["video"], -1),
        [d / "eval"],
    ),
    "evaluate-workers-0": lambda k, d: (
        adv.evaluate(k.run / "best.pt", d / "eval", F["eval_workers"], 0),
        [d / "eval"],
    ),
    "evaluate-policy-missing": lambda k, d: (adv.evaluate(d / "none.pt", d / "eval"), [d / "eval"]),
    "evaluate-out-file": lambda k, d: (adv.evaluate(k.run / "best.pt", _file(d)), []),
    "evaluate-scenario": lambda k, d: (
        adv.evaluate(k.run / "best.pt", d / "eval", F["scenario"], "moon"),
        [d / "eval"],
    ),
    "export-check-0": lambda k, d: (
        adv.export(k.run / "best.pt", d / "m.onnx", F["check"], 0),
        [d / "m.onnx"],
    ),
    "export-check-huge": lambda k, d: (
        adv.export(k.run / "best.pt", d / "m.onnx", F["check"], 100_000_000),
        [d / "m.onnx"],
    ),
    "export-out-folder": lambda k, d: (adv.export(k.run / "best.pt", d), []),
    "export-out-under-file": lambda k, d: (adv.export(k.run / "best.pt", _file(d) / "m.onnx"), []),
    "view-samples-0": lambda k, d: (adv.view(k.data, d / "view", F["samples"], 0), [d / "view"]),
    "view-unknown-road": lambda k, d: (
        adv.view(k.data, d / "view", F["episode"], 12345),
        [d / "view"],
    ),
    "view-out-file": lambda k, d: (adv.view(k.data, _file(d)), []),
    "info-missing": lambda k, d: (adv.drive("info", d / "nothing"), []),
    "info-file": lambda k, d: (adv.drive("info", _file(d)), []),
    "info-empty-folder": lambda k, d: (adv.drive("info", d), []),
    "demo-eval-roads-0": lambda k, d: (
        adv.drive(
            "demo",
            F["demo_out"],
            d / "demo",
            F["demo_roads"],
            1,
            F["demo_eval_roads"],
            0,
            F["road_length"],
            adv.ROAD_M,
        ),
        [d / "demo"],
    ),  # fmt: skip
    "demo-roads-0": lambda k, d: (
        adv.drive("demo", F["demo_out"], d / "demo", F["demo_roads"], 0),
        [d / "demo"],
    ),
}
FLAG_QUICK = {"collect-roads-text", "unknown-flag", "collect-roads-negative", "export-check-huge"}


def flag_case(name: str) -> Case:
    """A bad flag: refused with one `error:` line, exit code 2, no output left behind."""

    def check(kit: Kit) -> Result:
        folder = kit.scratch(f"flag-{name}")
        cmd, fresh = FLAG_CASES[name](kit, folder)
        files = {p: p.read_text() for p in folder.iterdir() if p.is_file()}
        done = adv.run(cmd)
        left = [p.name for p in fresh if p.exists()] + adv.leftovers(folder)
        left += [f"changed {p.name}" for p, text in files.items() if p.read_text() != text]
        return adv.refusal(done, left=left)

    return Case(f"flag/{name}", check, quick=name in FLAG_QUICK)


def _children(pid: int) -> set[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def many_workers(kit: Kit) -> Result:
    """`--workers 30` for 3 roads: no more processes than roads."""
    folder = kit.scratch("flag-collect-workers-30")
    proc = adv.start(adv.collect(folder / "out", 3, F["workers"], 30))
    seen: set[int] = set()
    while proc.poll() is None:
        seen |= _children(proc.pid)
        time.sleep(0.05)
    done = adv.finish(proc)
    if "Traceback" in done.err or done.rc != 0:
        return adv.refusal(done)
    workers = len(seen)  # the pool's processes (a resource tracker may add one)
    if workers > 3 + 1:
        return Result(adv.WEAK, detail=f"{workers} child processes for 3 roads")
    return Result(adv.OK, detail=f"{workers} child processes for 3 roads")


CASES = [flag_case(name) for name in FLAG_CASES] + [
    Case("flag/collect-workers-30", many_workers, alone=True)
]
