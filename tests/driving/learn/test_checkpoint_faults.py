"""Damaged or edited checkpoints: every verb that reads one refuses it in one line, writes nothing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import learnable_episode

from driving.cli import main
from driving.data import write_episode
from driving.learn.train import TrainConfig, train


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset of two roads and a one-epoch run on it (last.pt with an optimizer state)."""
    root = tmp_path_factory.mktemp("faults")
    for seed in range(2):
        write_episode(root / "data", learnable_episode(seed, frames=16))
    cfg = TrainConfig(data=root / "data", run=root / "run", epochs=1, batch_size=8, threads=1)
    train(cfg)
    return root / "data", root / "run" / "last.pt"


def _world(ckpt: dict) -> dict:
    return ckpt["extra"]["world"]


TAMPERS = {
    "extra-is-a-list": lambda c: c.update(extra=[]),
    "unknown-camera-key": lambda c: _world(c)["camera"].update(zoom=3),
    "scenario-is-a-list": lambda c: (
        c["extra"].update(world=None)
        or c["extra"].pop("world")
        and c["extra"].update(scenario=["winding-road"])
    ),
    "epoch-is-a-word": lambda c: c.update(epoch="one"),
    "rng-of-3-bytes": lambda c: c["extra"].update(rng_torch=torch.zeros(3, dtype=torch.uint8)),
    "optimizer-shapes": lambda c: c["optimizer"]["state"][0].update(exp_avg=torch.zeros(7)),
    "huge-layer": lambda c: c["model_config"].update(height=100_000, width=100_000),
    "nan-weight": lambda c: next(iter(c["model"].values())).view(-1).__setitem__(0, math.nan),
    "inf-weight": lambda c: next(iter(c["model"].values())).view(-1).__setitem__(0, math.inf),
}
NOT_OPTIMIZER = [name for name in TAMPERS if name != "optimizer-shapes"]


def _tampered(last: Path, folder: Path, name: str) -> Path:
    ckpt = torch.load(last, weights_only=True)
    TAMPERS[name](ckpt)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, folder / "last.pt")
    return folder / "last.pt"


def _refused(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("name", list(TAMPERS))
def test_a_tampered_last_pt_is_refused_by_resume_and_left_as_it_is(run, tmp_path, capsys, name):
    data, last = run
    path = _tampered(last, tmp_path / "run", name)
    before = path.read_bytes()
    _refused(["train", "--data", str(data), "--run", str(path.parent), "--resume"], capsys)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name != ".lock") == ["last.pt"]


@pytest.mark.parametrize("name", NOT_OPTIMIZER)
@pytest.mark.parametrize("verb", ["evaluate", "export", "init"])
def test_a_tampered_checkpoint_is_refused_by_every_verb_that_reads_it(
    run, tmp_path, capsys, name, verb
):
    data, last = run
    path = _tampered(last, tmp_path / "ckpt", name)
    argv = {
        "evaluate": ["evaluate", "--policy", str(path), "--episodes", "1", "--out", str(tmp_path)],
        "export": ["export", "--policy", str(path)],
        "init": ["train", "--data", str(data), "--run", str(tmp_path / "new"), "--init", str(path)],
    }[verb]
    _refused(argv, capsys)
    assert not list(path.parent.glob("*.onnx")) and not list(path.parent.glob("*tmp*"))
    assert not (tmp_path / "new" / "last.pt").exists()


def test_export_check_is_bounded_and_leaves_nothing(run, capsys):
    _, last = run
    err = _refused(["export", "--policy", str(last), "--check", "100000000"], capsys)
    assert "--check" in err
    assert (
        sorted(p.name for p in last.parent.iterdir() if "tmp" in p.name or "onnx" in p.name) == []
    )
