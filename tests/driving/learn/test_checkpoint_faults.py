"""Damaged or edited checkpoints: every verb that reads one refuses it in one line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import learnable_episode

from driving.cli import main
from driving.data import write_episode
from driving.learn.model import ModelConfig, PilotNet
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


def _one_weight(ckpt: dict, value: float) -> None:
    ckpt["model"]["head.0.weight"][0, 0] = value


def _old_style_scenario_list(ckpt: dict) -> None:
    """A checkpoint from before the World record, whose scenario is a list."""
    del ckpt["extra"]["world"]
    ckpt["extra"]["scenario"] = ["winding-road"]


def _huge_layer_in_a_small_file(ckpt: dict) -> None:
    """A model_config of 100000x100000 frames and weights of exactly its shapes, each a view of
    one stored number: the file stays small, reading it would allocate 4 GB per weight."""
    ckpt["model_config"].update(height=100_000, width=100_000)
    with torch.device("meta"):
        shapes = PilotNet(ModelConfig(**ckpt["model_config"])).state_dict()
    ckpt["model"] = {k: torch.zeros(1).expand(v.shape) for k, v in shapes.items()}


TAMPERS = {
    "extra-is-a-list": lambda c: c.update(extra=[]),
    "unknown-camera-key": lambda c: c["extra"]["world"]["camera"].update(zoom=3),
    "scenario-is-a-list": _old_style_scenario_list,
    "epoch-is-a-word": lambda c: c.update(epoch="one"),
    "rng-of-3-bytes": lambda c: c["extra"].update(rng_torch=torch.zeros(3, dtype=torch.uint8)),
    "optimizer-shapes": lambda c: c["optimizer"]["state"][0].update(exp_avg=torch.zeros(7)),
    "huge-model-config": lambda c: c["model_config"].update(height=100_000, width=100_000),
    "huge-layer-in-a-small-file": _huge_layer_in_a_small_file,
    "nan-weight": lambda c: _one_weight(c, math.nan),
    "inf-weight": lambda c: _one_weight(c, -math.inf),
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
@pytest.mark.parametrize("verb", ["evaluate", "export", "init", "watch", "saliency"])
def test_a_tampered_checkpoint_is_refused_by_every_verb_that_reads_it(
    run, tmp_path, capsys, name, verb
):
    data, last = run
    path = _tampered(last, tmp_path / "ckpt", name)
    argv = {
        "evaluate": ["evaluate", "--policy", str(path), "--episodes", "1", "--out", str(tmp_path)],
        "export": ["export", "--policy", str(path)],
        "init": ["train", "--data", str(data), "--run", str(tmp_path / "new"), "--init", str(path)],
        "watch": ["watch", "--policy", str(path), "--display", "mp4", "--out", str(tmp_path / "w")],
        "saliency": ["saliency", "--policy", str(path), "--out", str(tmp_path / "s")],
    }[verb]
    _refused(argv, capsys)
    assert not list(path.parent.glob("*.onnx")) and not list(path.parent.glob("*tmp*"))
    assert not (tmp_path / "new" / "last.pt").exists()
    assert not list((tmp_path / "w").glob("*.mp4")) and not list((tmp_path / "s").glob("*.png"))


@pytest.mark.parametrize("at", [0.3, 0.5, 0.7, 0.95])
def test_flipped_bytes_inside_the_weights_are_found_by_every_verb(run, tmp_path, capsys, at):
    # torch.load reads such a file as a network with other weights, without a word
    data, last = run
    damaged = bytearray(last.read_bytes())
    start = int(len(damaged) * at)
    damaged[start : start + 16] = bytes(b ^ 0xFF for b in damaged[start : start + 16])
    path = tmp_path / "best.pt"
    path.write_bytes(damaged)
    for argv in (
        ["export", "--policy", str(path)],
        ["evaluate", "--policy", str(path), "--roads", "1", "--out", str(tmp_path / "eval")],
        ["train", "--data", str(data), "--run", str(tmp_path / "new"), "--init", str(path)],
    ):
        err = _refused(argv, capsys)
        assert f"checkpoint {path} is damaged" in err and "CRC-32" in err, err
    assert not (tmp_path / "eval").exists() and not (tmp_path / "new").exists()


def test_export_check_is_bounded_and_leaves_nothing(run, capsys):
    _, last = run
    err = _refused(["export", "--policy", str(last), "--check", "100000000"], capsys)
    assert "--check" in err
    assert (
        sorted(p.name for p in last.parent.iterdir() if "tmp" in p.name or "onnx" in p.name) == []
    )
