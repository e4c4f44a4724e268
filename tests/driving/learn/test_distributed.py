"""DDP under torchrun trains the same model as one process, and resumes.

Why 2 processes should match 1 within float rounding: both draw the same global sample order
(same seed), every step's global batch is the same frames (each rank takes a contiguous share,
`distributed.shard`), each rank's loss is its share's squared-error sum x world size / global
batch size, and DDP averages the ranks' gradients, so the gradient is exactly that of the global
batch's mean. PilotNet has no BatchNorm (whose statistics would be per rank) and no dropout, and
DDP starts every rank from rank 0's weights. What remains is float rounding (the order of the
sums over the batch in the backward pass differs); after 2 epochs (12 AdamW steps) the weights
differ by about 1e-6 (measured 1.2e-6), so the tolerance below is 1e-4.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import learnable_episode

from driving.data import write_episode
from driving.learn.checkpoint import load_checkpoint
from driving.learn.distributed import DistributedError, Ranks, ranks_from_env, setup, shard
from driving.learn.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[3]
# 4 roads x 30 frames, 1 held out: 90 training frames, 6 steps of 16 per epoch (the last one 10).
SETTINGS = ["--epochs", "1", "--batch-size", "16", "--val-fraction", "0.25", "--threads", "1"]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demos")
    for seed in range(4):
        write_episode(root, learnable_episode(seed, frames=30))
    return root


def _torchrun(processes: int, *args: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N -m driving.cli -- train ARGS` on the CPU."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", str(processes), "-m", "driving.cli", "--", "train", *args]
    env = os.environ | {"PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_processes_train_the_same_weights_as_one_and_resume(data, tmp_path):
    # given one process that trains 1 epoch, is stopped, and resumes to 2 epochs (the learning
    # rate schedule follows --epochs, so both sides stop and resume alike)
    one = TrainConfig(data=data, run=tmp_path / "one", epochs=1, batch_size=16, val_fraction=0.25)
    train(one)
    single = train(replace(one, epochs=2, resume=True))
    # when 2 gloo processes do the same
    run = ["--data", str(data), "--run", str(tmp_path / "two")]
    first = _torchrun(2, *run, *SETTINGS)
    assert first.returncode == 0, first.stderr[-2000:]
    resumed = _torchrun(2, *run, *SETTINGS[2:], "--epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # then the weights and the validation loss are those of one process
    a, b = load_checkpoint(one.run / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert (b["step"], b["epoch"]) == (a["step"], a["epoch"]) == (12, 2)
    difference = max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"])
    assert difference < TOLERANCE
    assert b["best_val"] == pytest.approx(single["best_val"], rel=TOLERANCE)
    # and only rank 0 printed its summary and wrote TensorBoard events (one file per launch)
    assert resumed.stdout.count('"steps": "12"') == 1
    assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 2


def test_each_rank_takes_a_disjoint_share_of_the_global_batch():
    batch = torch.arange(10, 20)
    shares = [shard(batch, Ranks(rank, rank, 3)) for rank in range(3)]
    assert [len(s) for s in shares] == [4, 3, 3]
    assert torch.equal(torch.cat(shares), batch)  # together, in order: the global batch
    assert torch.equal(shard(batch, Ranks()), batch)  # one process takes it all


def test_a_broken_torchrun_environment_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(DistributedError, match="RANK=2 .* WORLD_SIZE=2"):
        ranks_from_env()
    monkeypatch.setenv("RANK", "first")
    with pytest.raises(DistributedError, match="RANK='first' is not a number"):
        ranks_from_env()


def test_more_processes_than_frames_per_batch_are_refused():
    with pytest.raises(DistributedError, match="--batch-size 1 is smaller than the 2 processes"):
        setup(Ranks(rank=0, local_rank=0, world_size=2), torch.device("cpu"), batch_size=1)
