"""Kill `drive collect`, `drive train` and `drive evaluate` with SIGKILL at random moments.

After every kill it checks that nothing finished was lost or damaged; at the end it re-runs each
command to completion and checks that the work was completed without duplicating or dropping
anything. Prints (and writes to OUT/faults.md) one summary row per verb.

    python scripts/fault_injection.py --kills 20 --out logs/faults

Checks after each kill:
    collect   every episode file is readable (a file not yet in the manifest is allowed: the
              next write lists it), no road recorded twice, episodes never decrease
    train     last.pt (when present) loads with weights_only=True and its step never goes back
    evaluate  every saved episode result and metrics.json parse; re-running gives exactly the
              per-road results of an evaluation that was never interrupted
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from driving.data import read_episode, scan
from driving.helptext import reflow_field_docs
from driving.learn.checkpoint import load_checkpoint


@dataclass(frozen=True)
class FaultConfig:
    """Random SIGKILLs during the long-running verbs."""

    out: Path = Path("logs/faults")
    """scratch folder (emptied first)"""
    kills: int = 20
    """kills that must land while each verb is working"""
    seed: int = 0
    """seed of the kill times"""


def drive(*args: str) -> list[str]:
    return [sys.executable, "-m", "driving.cli", *args]


def kill_at_random(cmd: list[str], low: float, high: float, rng: np.random.Generator) -> bool:
    """Start `cmd`, SIGKILL it after a random delay; True if it was still running (a real kill).

    Raises SystemExit if the command keeps finishing before the kill (the work ran out).
    """
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    try:
        proc.wait(timeout=rng.uniform(low, high))
        raise SystemExit(
            f"{' '.join(cmd[3:5])} finished before it could be killed: give it more work"
        )
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its worker processes
        proc.wait()
        return True


def finish(cmd: list[str]) -> None:
    done = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"}
    )
    if done.returncode != 0:
        raise SystemExit(f"re-run failed: {' '.join(cmd)}\n{done.stderr}")


def check_dataset(data: Path) -> list[int]:
    """Seeds of the readable episodes; fails on damage or a road recorded twice."""
    if not list(data.glob("episode_*.h5")):
        return []  # killed before the first episode was finished
    paths, warnings = scan(data)
    damaged = [w for w in warnings if "not in manifest.json" not in w]
    assert not damaged, damaged
    seeds = [read_episode(p).seed for p in paths]
    assert max(Counter(seeds).values()) == 1, "a road was recorded twice"
    return seeds


def fault_collect(cfg: FaultConfig, rng: np.random.Generator) -> dict:
    data, episodes = cfg.out / "collect", 12 * cfg.kills
    cmd = drive("collect", "--out", str(data), "--roads", str(episodes), "--workers", "2")
    kills, before = 0, 0
    while kills < cfg.kills:
        kills += kill_at_random(cmd, 3.0, 6.0, rng)
        seeds = check_dataset(data)
        assert len(seeds) >= before, "episodes were lost"
        before = len(seeds)
    finish(cmd)
    assert sorted(check_dataset(data)) == list(range(episodes))
    return {"verb": "collect", "kills": kills, "after": f"{episodes}/{episodes} roads, no repeat"}


def fault_train(cfg: FaultConfig, rng: np.random.Generator, data: Path) -> dict:
    run, epochs = cfg.out / "train", 3 * cfg.kills + 3
    cmd = drive(
        "train",
        "--data",
        str(data),
        "--run",
        str(run),
        "--epochs",
        str(epochs),
        "--batch-size",
        "64",
        "--resume",
    )
    kills, step = 0, 0
    while kills < cfg.kills:
        kills += kill_at_random(cmd, 4.0, 9.0, rng)
        if (run / "last.pt").exists():
            ckpt = load_checkpoint(run / "last.pt")
            assert ckpt["step"] >= step, "training went back"
            step = ckpt["step"]
    finish(cmd)
    final = load_checkpoint(run / "last.pt")
    assert final["epoch"] == epochs
    load_checkpoint(run / "best.pt")
    return {"verb": "train", "kills": kills, "after": f"epoch {final['epoch']}/{epochs}"}


def fault_evaluate(cfg: FaultConfig, rng: np.random.Generator, policy: Path) -> dict:
    out, reference, roads = cfg.out / "evaluate", cfg.out / "evaluate-reference", 8 * cfg.kills
    args = ["--policy", str(policy), "--roads", str(roads), "--video", "1"]
    finish(drive("evaluate", *args, "--out", str(reference)))
    cmd = drive("evaluate", *args, "--out", str(out))
    kills = 0
    while kills < cfg.kills:
        kills += kill_at_random(cmd, 3.0, 12.0, rng)
        for path in out.glob("**/*.json"):
            json.loads(path.read_text())
    finish(cmd)
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((reference / "metrics.json").read_text())
    assert got["episodes"] == want["episodes"] and got["expert"] == want["expert"]
    return {"verb": "evaluate", "kills": kills, "after": f"{roads} roads, same as uninterrupted"}


def main(cfg: FaultConfig) -> None:
    shutil.rmtree(cfg.out, ignore_errors=True)
    cfg.out.mkdir(parents=True)
    rng = np.random.default_rng(cfg.seed)
    start = time.perf_counter()
    rows = [fault_collect(cfg, rng)]
    small = cfg.out / "small-data"  # a few roads, so that an epoch takes seconds
    finish(drive("collect", "--out", str(small), "--roads", "4"))
    rows.append(fault_train(cfg, rng, small))
    rows.append(fault_evaluate(cfg, rng, cfg.out / "train" / "best.pt"))
    lines = [
        "| verb | SIGKILLs while working | after re-running the same command |",
        "|---|---|---|",
    ]
    lines += [f"| {r['verb']} | {r['kills']} | {r['after']} |" for r in rows]
    table = "\n".join(lines)
    (cfg.out / "faults.md").write_text(table + "\n")
    print(table)
    print(f"all checks passed in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    reflow_field_docs()
    main(tyro.cli(FaultConfig))
