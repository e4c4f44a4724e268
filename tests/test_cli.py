"""The `drive` command: every bad input is one clear line on stderr and a non-zero exit."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from driving.cli import main
from driving.data import scan
from driving.learn.policy import NetPolicy


@pytest.fixture
def not_a_dataset(tmp_path):
    folder = tmp_path / "holiday_photos"
    folder.mkdir()
    (folder / "beach.jpg").write_bytes(b"\xff\xd8 not really")
    return folder


@pytest.fixture
def foreign_checkpoint(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"state_dict": torch.nn.Linear(3, 2).state_dict()}, path)
    return path


BAD_INPUTS = {
    "missing dataset": lambda p, **_: ["info", str(p / "nowhere")],
    "not a dataset": lambda p, not_a_dataset, **_: ["info", str(not_a_dataset)],
    "train on nothing": lambda p, **_: [
        "train",
        "--data",
        str(p / "nowhere"),
        "--run",
        str(p / "run"),
    ],
    "unknown device": lambda p, not_a_dataset, **_: [
        "train",
        "--data",
        str(not_a_dataset),
        "--run",
        str(p / "r"),
        "--device",
        "tpu",
    ],
    "demo colour jitter": lambda p, **_: ["demo", "--out", str(p / "d"), "--colour-jitter", "2"],
    "negative episodes": lambda p, **_: ["collect", "--out", str(p / "d"), "--episodes", "-3"],
    "zero workers": lambda p, **_: ["collect", "--out", str(p / "d"), "--workers", "0"],
    "unknown scenario": lambda p, **_: ["collect", "--out", str(p / "d"), "--scenario", "moon-v0"],
    "missing checkpoint": lambda p, **_: ["evaluate", "--policy", str(p / "best.pt")],
    "not a checkpoint": lambda p, not_a_dataset, **_: [
        "evaluate",
        "--policy",
        str(not_a_dataset / "beach.jpg"),
        "--episodes",
        "1",
        "--out",
        str(p / "e"),
    ],
    "foreign checkpoint": lambda p, foreign_checkpoint, **_: [
        "evaluate",
        "--policy",
        str(foreign_checkpoint),
        "--episodes",
        "1",
        "--out",
        str(p / "e"),
    ],
    "export a missing checkpoint": lambda p, **_: ["export", "--policy", str(p / "none.pt")],
    "dagger beta above 1": lambda p, **_: ["dagger", "--out", str(p / "d"), "--beta", "2"],
    "dagger on held-out roads": lambda p, **_: [
        "dagger",
        "--out",
        str(p / "d"),
        "--first-seed",
        "999999",
    ],
    "viewpoint views negative": lambda p, **_: [
        "collect",
        "--out",
        str(p / "d"),
        "--viewpoint.views",
        "-1",
    ],
    "zero evaluation episodes": lambda p, **_: [
        "evaluate",
        "--policy",
        "expert",
        "--episodes",
        "0",
    ],
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line_and_exit_2(
    case, tmp_path, capsys, not_a_dataset, foreign_checkpoint
):
    argv = BAD_INPUTS[case](
        tmp_path, not_a_dataset=not_a_dataset, foreign_checkpoint=foreign_checkpoint
    )
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "d").exists()  # refused before anything was written


def test_installed_command_reports_errors_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "driving.cli", "info", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "Traceback" not in done.stderr


def test_every_verb_has_help(capsys):
    verbs = ("collect", "info", "view", "train", "evaluate", "watch", "saliency", "dagger")
    for verb in (*verbs, "demo", "export"):
        with pytest.raises(SystemExit) as exit_:
            main([verb, "--help"])
        assert exit_.value.code == 0
        assert "usage: drive " + verb in capsys.readouterr().out


def test_train_help_shows_the_frame_stacking_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--frames INT" in out and "--frame-stride INT" in out


def test_help_text_flows_instead_of_breaking_where_the_docstring_did(monkeypatch, capsys):
    # The docstring of `collect --start` spans 3 source lines; on a wide terminal it is one line.
    # (At 400 columns tyro lays collect's five option groups side by side and elides them.)
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit):
        main(["collect", "--help"])
    out = capsys.readouterr().out
    assert "a point drawn along it, or 60 to 120 m before its sharpest arc (both seeded" in out
    assert "short drives of many roads then cover bends, not first straights" in out


@pytest.mark.slow
def test_ctrl_c_during_collection_stops_cleanly_with_a_summary(tmp_path):
    out = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "driving.cli",
            "collect",
            "--out",
            str(out),
            "--episodes",
            "50",
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal delivers it: a shell without job control starts background jobs
        # (CI's, at times) with SIGINT ignored, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while len(list(out.glob("episode_*.h5"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "re-run the same command" in last
    assert "Traceback" not in err
    saved = int(last.split()[1])
    paths, warnings = scan(out)
    # The two files seen before Ctrl-C are kept; the summary counts the episodes whose worker had
    # reported back, which may lag the files on disk by the ones finished meanwhile.
    assert len(paths) >= 2 and len(paths) >= saved
    assert all("not in manifest.json" in w for w in warnings)


@pytest.mark.parametrize("damage", ["truncate", "zero-byte"])
def test_training_on_damaged_episodes_is_one_clear_error(damage, tmp_path, capsys):
    from driving.record.collect import CollectConfig, collect

    data = tmp_path / "data"
    collect(CollectConfig(out=data, episodes=1))
    episode = next(data.glob("episode_*.h5"))
    raw = episode.read_bytes()
    episode.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else b"")
    assert main(["train", "--data", str(data), "--run", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "1 unreadable" in err and episode.name in err
    assert episode.stat().st_size == (len(raw) // 2 if damage == "truncate" else 0)  # untouched
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_every_command_works_with_the_dashcam_and_keeps_its_world(tmp_path, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "out"
    dashcam = ["--camera.kind", "dashcam", "--camera.appearance", "train"]
    assert main(["collect", "--out", str(data), "--episodes", "2", *dashcam]) == 0
    assert main(["collect", "--out", str(tmp_path / "rig"), "--episodes", "1", "--viewpoint.rig-m",
                 "0.6", *dashcam]) == 0  # fmt: skip
    train = ["--data", str(data), "--run", str(run), "--epochs", "1", "--val-fraction", "0"]
    assert main(["train", *train, "--eval-episodes", "0"]) == 0
    policy = ["--policy", str(run / "best.pt")]
    assert NetPolicy.from_checkpoint(run / "best.pt").world.camera.kind == "dashcam"
    for appearance in ("train", "held-out"):
        evaluate = ["evaluate", *policy, "--episodes", "1", "--out", str(out / appearance)]
        assert main([*evaluate, "--appearance", appearance, "--no-compare-expert"]) == 0
        report = json.loads((out / appearance / "metrics.json").read_text())
        assert report["world"]["camera"]["appearance"] == appearance
    assert main(["watch", *policy, "--display", "mp4", "--out", str(out), "--max-steps", "5"]) == 0
    assert (
        main(["saliency", *policy, "--data", str(data), "--pictures", "2", "--out", str(out)]) == 0
    )
    assert main(["export", *policy, "--out", str(out / "net.onnx")]) == 0
    assert main(["view", str(data), "--out", str(out / "view")]) == 0
    assert (out / "watch_1000000.mp4").stat().st_size > 0 and (out / "net.onnx").exists()
    held_out = ["--camera.kind", "dashcam", "--camera.appearance", "held-out"]
    # training data never shows the held-out appearance
    assert main(["collect", "--out", str(tmp_path / "x"), *held_out]) == 2


def test_the_demo_drives_the_dashcam_and_the_top_down_camera_is_one_flag_away():
    import tyro

    from driving.cli import DemoConfig

    default = tyro.cli(DemoConfig, args=[])
    default.world.validate()
    assert (default.world.camera.kind, default.world.camera.appearance) == ("dashcam", "train")
    assert (default.jitter(), default.masks_sky(), default.input_norm) == (1.0, True, "fixed")
    assert default.mirrors() and default.roads() == 100
    assert default.collect_config().episodes == 100
    top_down = tyro.cli(DemoConfig, args=["--camera.kind", "topdown"])
    top_down.world.validate()
    assert top_down.world.camera.kind == "topdown"
    assert (top_down.jitter(), top_down.masks_sky(), top_down.mirrors()) == (0.0, False, False)
    assert top_down.roads() == 80  # the bird's-eye demo as measured
    assert tyro.cli(DemoConfig, args=["--scenario", "winding-traffic"]).roads() == 80
    assert tyro.cli(DemoConfig, args=["--roads", "7"]).collect_config().episodes == 7
    assert tyro.cli(DemoConfig, args=["--colour-jitter", "0.2"]).jitter() == 0.2
    assert not tyro.cli(DemoConfig, args=["--no-mask-sky"]).masks_sky()
    assert not tyro.cli(DemoConfig, args=["--no-mirror"]).mirrors()
    # mirrored traffic would overtake on the other side
    assert not tyro.cli(DemoConfig, args=["--scenario", "winding-traffic"]).mirrors()


def test_the_speed_limit_flags_reach_collect_and_the_demo_and_replay_from_a_saved_config(
    tmp_path,
):
    import tyro

    from driving.cli import DemoConfig
    from driving.config import load_config, save_config
    from driving.record.collect import CollectConfig

    flags = ["--road.limit-range", "8", "22"]
    demo = tyro.cli(DemoConfig, args=[*flags, "--limit-input"])
    demo.validate()
    assert demo.world.road.limit_range == (8.0, 22.0) and demo.limit_input
    assert not tyro.cli(DemoConfig, args=[]).limit_input  # off unless asked for
    shifted = tyro.cli(DemoConfig, args=[*flags, "--limit-input", "--speed-shift", "3"])
    shifted.validate()
    assert shifted.speed_shift == 3.0 and tyro.cli(DemoConfig, args=[]).speed_shift == 0.0
    for bad in (["--speed-shift", "-1"], ["--speed-shift", "11"]):
        with pytest.raises(ValueError, match="--speed-shift"):
            tyro.cli(DemoConfig, args=bad).validate()
    traffic = ["--speed-shift", "2", "--scenario", "winding-traffic", "--frames", "3"]
    tyro.cli(DemoConfig, args=traffic).validate()  # the traffic expert's law, a frame stack
    collect = tyro.cli(CollectConfig, args=["--out", str(tmp_path / "d"), *flags])
    assert collect.world.road.limit_range == (8.0, 22.0)
    assert load_config(CollectConfig, save_config(tmp_path / "c.json", collect)) == collect
    both = ["--out", "d", *flags, "--road.limit-follows-width"]
    with pytest.raises(ValueError, match="both set the speed limit"):
        tyro.cli(CollectConfig, args=both).validate()


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "drive 0.1.0"
