"""SIGTERM (how schedulers and containers stop a job) is handled as Ctrl-C is, by a real
`drive` process: training saves last.pt and says so in one line, collection keeps its episodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import learnable_episode

from driving.data import scan, write_episode
from driving.learn.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _drive(*argv: str) -> subprocess.Popen:
    """`drive ARGV` in a process group of its own (so that a test can signal the whole group)."""
    env = os.environ | {"PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "driving.cli", *argv]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the command did not get there in time"
        time.sleep(0.05)


def test_sigterm_during_training_saves_last_pt_and_says_so(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    for seed in range(3):
        write_episode(data, learnable_episode(seed, frames=16))
    proc = _drive("train", "--data", str(data), "--run", str(run), "--epochs", "100000",
                  "--batch-size", "4", "--threads", "1")  # fmt: skip
    _wait_for(lambda: (run / "last.pt").exists())  # in training, past its first epoch
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1].strip()
    assert last.startswith("interrupted at step ") and str(run / "last.pt") in last, last
    saved = load_checkpoint(run / "last.pt")
    assert saved["step"] == int(last.split()[3].rstrip(";")) and saved["step"] >= 8
    assert not list(run.glob("*.tmp*"))


@pytest.mark.slow
@pytest.mark.parametrize("to", ["main-process", "process-group"])  # systemd, Slurm: the group
def test_sigterm_during_collection_keeps_the_finished_episodes(tmp_path, to):
    out = tmp_path / "data"
    proc = _drive("collect", "--out", str(out), "--episodes", "50", "--workers", "2")
    _wait_for(lambda: len(list(out.glob("episode_*.h5"))) >= 2)
    if to == "main-process":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGTERM)  # the workers get it too
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "re-run the same command" in last
    paths, _ = scan(out)
    assert len(paths) >= max(2, int(last.split()[1]))
    assert not list(out.glob("*.tmp*"))
