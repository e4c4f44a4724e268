"""An interrupted run resumes to exactly the run that was never interrupted."""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import learnable_episode

import driving.learn.train as training
from driving.data import write_episode
from driving.learn.checkpoint import load_checkpoint
from driving.learn.train import TrainConfig, train

# 5 roads x 24 frames, 2 held out: 72 training frames, 5 steps an epoch, 15 in all.
SETTINGS = dict(epochs=3, batch_size=16, val_fraction=0.34, colour_jitter=0.3, threads=1)
STOP_AT = 7  # the step during which Ctrl-C comes: mid-way through the second epoch


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demos")
    for seed in range(5):
        write_episode(root, learnable_episode(seed, frames=24))
    return root


def test_a_run_interrupted_mid_epoch_resumes_to_the_same_steps_loss_and_weights(
    data, tmp_path, monkeypatch
):
    # Given a run that was never interrupted
    whole = train(TrainConfig(data=data, run=tmp_path / "whole", **SETTINGS))
    # When the same run gets a real SIGINT while it takes step STOP_AT, then is resumed
    take_step = training.train_step

    def interrupted_step(state, *args):
        if state.step == STOP_AT:
            signal.raise_signal(signal.SIGINT)  # arrives in the middle of the step
        return take_step(state, *args)

    cfg = TrainConfig(data=data, run=tmp_path / "cut", **SETTINGS)
    monkeypatch.setattr(training, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt, match=f"interrupted at step {STOP_AT + 1};"):
        train(cfg)
    monkeypatch.undo()
    saved = load_checkpoint(cfg.run / "last.pt")
    assert (saved["step"], saved["epoch"]) == (STOP_AT + 1, 1)  # the step it was in finished
    resumed = train(replace(cfg, resume=True))
    # Then it took the same optimizer steps and ends bit for bit where the whole run ended
    assert resumed["steps"] == whole["steps"] == 15
    assert resumed["last_val"] == whole["last_val"] and resumed["best_val"] == whole["best_val"]
    ends = [load_checkpoint(run / "last.pt") for run in (tmp_path / "whole", cfg.run)]
    for key, weight in ends[0]["model"].items():
        assert torch.equal(weight, ends[1]["model"][key]), key


def test_a_resume_with_another_batch_size_runs_the_epoch_whole_and_says_so(
    data, tmp_path, monkeypatch, capsys
):
    take_step = training.train_step

    def interrupted_step(state, *args):
        if state.step == STOP_AT:
            signal.raise_signal(signal.SIGINT)
        return take_step(state, *args)

    cfg = TrainConfig(data=data, run=tmp_path / "cut", **SETTINGS)
    monkeypatch.setattr(training, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.undo()
    resumed = train(replace(cfg, resume=True, batch_size=8))  # 9 steps an epoch now
    assert "the epoch is run whole" in capsys.readouterr().out
    assert resumed["steps"] == STOP_AT + 1 + 2 * 9 and resumed["epochs"] == 3
