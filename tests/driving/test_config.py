"""`--config FILE` on every verb: saved configs are typed and replay their command; a bad file is
one clear line naming the file and the key; runs get new names; "the latest run" is found."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from conftest import learnable_episode, save_untrained

from driving.cli import DEMO_WORLD, main, verb_configs, with_latest_policy
from driving.config import load_config, plain, save_config
from driving.data import write_episode
from driving.helptext import parse_verb
from envs.camera import CameraConfig
from envs.world import World

TRAIN = ["--epochs", "1", "--batch-size", "16", "--val-fraction", "0.34", "--threads", "2"]
# one road, driven by the expert alone: the shortest real evaluation
EVALUATE = ["--policy", "expert", "--roads", "1", "--workers", "1", "--video", "0"]
EVALUATE += ["--no-clips", "--no-compare-expert", "--seed-offset", "3"]


def parse(*args: str):
    """What `drive ARGS` would run with (the verb's settings dataclass)."""
    return parse_verb(verb_configs(), list(args), prog="drive", description="")


@pytest.fixture
def data(tmp_path) -> Path:
    """A tiny dataset: 3 roads of 8 frames, one held out: one training step per epoch."""
    root = tmp_path / "demos"
    camera = {"height": 66, "width": 200, "ahead_m": 30.0, "behind_m": 5.0, "span_m": 24.0}
    meta = {"driver": "expert", "camera": camera}
    for seed in range(3):
        write_episode(root, learnable_episode(seed, frames=8, meta=meta))
    return root


def test_a_second_train_gets_a_new_folder_and_a_saved_config_replays_it(
    data, tmp_path, monkeypatch
):
    # given two trainings without --run
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", str(data), *TRAIN]
    assert main(args) == 0
    assert main(args) == 0
    # then each wrote its own folder under logs/runs, neither refused
    runs = sorted(Path("logs/runs").iterdir())
    assert len(runs) == 2 and all((run / "best.pt").is_file() for run in runs)
    assert all(run.name.endswith("demos") or "demos-" in run.name for run in runs)
    # and config.json is typed: numbers as numbers, the automatic run folder as null
    saved = json.loads((runs[0] / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["lr"] == 1e-3 and saved["curve_weighting"] is True
    assert saved["run"] is None and saved["data"] == str(data)
    # when it is given back as --config, the settings are the same dataclass
    assert parse("train", "--config", str(runs[0] / "config.json")) == parse(*args)
    # and replaying it trains a third run with the same saved settings
    assert main(["train", "--config", str(runs[0] / "config.json")]) == 0
    third = sorted(set(Path("logs/runs").iterdir()) - set(runs))
    assert len(third) == 1
    assert json.loads((third[0] / "config.json").read_text()) == saved


def test_a_run_given_by_flag_is_kept_and_resume_without_a_run_names_the_latest(
    data, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", str(data), "--run", "logs/mine", *TRAIN]) == 0
    assert json.loads(Path("logs/mine/config.json").read_text())["run"] == "logs/mine"
    assert main(["train", "--data", str(data), *TRAIN]) == 0
    (auto,) = Path("logs/runs").iterdir()
    capsys.readouterr()
    # when --resume comes without --run, nothing is trained and the latest run is named
    assert main(["train", "--data", str(data), "--resume"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: --resume")
    assert f"--run {auto}" in error
    assert len(list(Path("logs/runs").iterdir())) == 1


def test_the_saved_evaluation_config_is_typed_and_replays_the_evaluation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", *EVALUATE, "--out", "logs/eval"]
    assert main(args) == 0
    saved = json.loads(Path("logs/eval/config.json").read_text())
    assert saved["episodes"] == 1 and saved["seed_offset"] == 3
    assert saved["compare_expert"] is False and saved["clips"] is False
    assert json.loads(Path("logs/eval/metrics.json").read_text())["config"] == saved
    assert parse("evaluate", "--config", "logs/eval/config.json") == parse(*args)


def test_the_saved_collection_config_replays_the_collection(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["collect", "--out", "data/d", "--roads", "1", "--first-seed", "7"]
    args += ["--camera.kind", "dashcam", "--camera.appearance", "train", "--noise.steering", "0.05"]
    assert main(args) == 0
    saved = json.loads(Path("data/d/collect.json").read_text())
    assert saved["world"]["camera"]["kind"] == "dashcam" and saved["noise"]["steering"] == 0.05
    assert saved["world"]["road"]["lanes"] == [1, 3]  # a tuple, as a list
    assert parse("collect", "--config", "data/d/collect.json") == parse(*args)


def _sample(kind: type):
    """An instance of a verb's settings with its required fields filled in."""
    required = {
        f.name: Path("somewhere") if "path" in str(f.type).lower() else "somewhere"
        for f in dataclasses.fields(kind)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return kind(**required)


@pytest.mark.parametrize("verb", list(verb_configs()))
def test_every_verbs_settings_survive_a_saved_config(verb, tmp_path):
    cfg = _sample(verb_configs()[verb])
    path = save_config(tmp_path / "config.json", cfg)
    assert load_config(type(cfg), path) == cfg
    assert parse(verb, "--config", str(path)) == cfg


def test_nested_settings_not_in_the_file_keep_the_verbs_own_defaults(tmp_path):
    # given a file that changes one camera setting of the demo and of collect
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"world": {"camera": {"pitch_deg": 12.5}}}))
    demo = parse("demo", "--config", str(path))
    # then the demo keeps its own world (the dashcam with per-road looks) around that one value
    assert demo.world == dataclasses.replace(
        DEMO_WORLD, camera=dataclasses.replace(DEMO_WORLD.camera, pitch_deg=12.5)
    )
    collect = parse("collect", "--config", str(path), "--out", "x")
    assert collect.world == World(camera=CameraConfig(pitch_deg=12.5))


def test_flags_override_the_file_and_the_rest_comes_from_it(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"data": "d", "epochs": 3, "lr": 0.01, "colour_jitter": 0.5}))
    cfg = parse("train", "--epochs", "7", "--config", str(path))
    assert (cfg.epochs, cfg.lr, cfg.colour_jitter, cfg.data) == (7, 0.01, 0.5, Path("d"))


def test_toml_and_yaml_files_give_the_same_settings_as_json(tmp_path):
    pytest.importorskip("yaml")
    settings = {"data": "d", "epochs": 3, "lr": 0.01, "input_norm": "per-frame", "init": None}
    (tmp_path / "c.json").write_text(json.dumps(settings))
    toml = 'data = "d"\nepochs = 3\nlr = 0.01\ninput-norm = "per-frame"\n'  # TOML has no null
    (tmp_path / "c.toml").write_text(toml)
    (tmp_path / "c.yaml").write_text("data: d\nepochs: 3\nlr: 0.01\ninput_norm: per-frame\n")
    json_cfg = parse("train", "--config", str(tmp_path / "c.json"))
    assert json_cfg.epochs == 3 and json_cfg.input_norm == "per-frame"
    assert parse("train", "--config", str(tmp_path / "c.toml")) == json_cfg
    assert parse("train", "--config", str(tmp_path / "c.yaml")) == json_cfg


BAD_FILES = {
    "unknown key": ("train", {"epoch": 3}, "'epoch'"),
    "unknown nested key": (
        "collect",
        {"world": {"camera": {"hieght": 3}}},
        "'world.camera.hieght'",
    ),
    "number as text": ("train", {"epochs": "3"}, "'epochs'"),
    "a fraction for an integer": ("train", {"epochs": 2.5}, "'epochs'"),
    "1 for a flag": ("train", {"curve_weighting": 1}, "'curve_weighting'"),
    "not a choice": ("train", {"input_norm": "batch"}, "'input_norm'"),
    "wrong tuple length": (
        "collect",
        {"world": {"road": {"lanes": [1, 2, 3]}}},
        "'world.road.lanes'",
    ),
    "a value for a table": ("demo", {"noise": 0.1}, "'noise'"),
    "not a table": ("evaluate", [1, 2], "table of settings"),
    "not JSON": ("evaluate", "{'policy': 'expert'", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_config_file_is_one_line_naming_the_file_and_the_key(case, tmp_path, capsys):
    verb, content, named = BAD_FILES[case]
    path = tmp_path / "settings.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    assert main([verb, "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
    assert str(path) in error and named in error


def test_a_missing_config_file_is_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.json")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --config") and "none.json" in error and error.count("\n") == 1


def test_without_policy_the_newest_best_checkpoint_under_logs_is_taken(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # given no run at all: one clear error
    with pytest.raises(ValueError, match="no --policy given"):
        with_latest_policy(parse("evaluate"))
    # given three runs written at different times, the newest best.pt is the latest run's
    paths = ["logs/runs/20261203-100000-a", "logs/demo/run", "logs/dagger/round_2"]
    for age, folder in zip([300, 100, 200], paths, strict=True):
        save_untrained(Path(folder) / "best.pt")
        os.utime(Path(folder) / "best.pt", (1e9 - age, 1e9 - age))
    newest = Path("logs/demo/run/best.pt")
    assert with_latest_policy(parse("evaluate")).policy == str(newest)
    assert with_latest_policy(parse("watch")).policy == str(newest)
    assert with_latest_policy(parse("saliency")).policy == str(newest)
    assert with_latest_policy(parse("export")).policy == newest
    # and a policy given is kept
    assert with_latest_policy(parse("evaluate", "--policy", "expert")).policy == "expert"
    assert plain(with_latest_policy(parse("export")))["policy"] == str(newest)


@pytest.mark.parametrize("verb", list(verb_configs()))
def test_every_verbs_help_says_how_to_give_a_settings_file(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    assert "--config FILE" in capsys.readouterr().out
