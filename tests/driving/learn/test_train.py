"""Training learns a toy task, logs, checkpoints, resumes, stops cleanly and rejects bad flags."""

from __future__ import annotations

import _thread
import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import learnable_episode, told_episode
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from driving.data import Episode, load_split, write_episode
from driving.learn.batches import epoch_order, speed_weights
from driving.learn.checkpoint import load_checkpoint
from driving.learn.policy import NetPolicy
from driving.learn.train import (
    TrainConfig,
    TrainingError,
    _sampling_weights,
    curve_weights,
    draw_steering,
    lr_at,
    train,
)
from envs.camera import CameraConfig
from envs.world import World

CAMERA = {"height": 66, "width": 200, "ahead_m": 30.0, "behind_m": 5.0, "span_m": 24.0}
EPOCHS = 8
# 6 roads x 40 frames, 2 roads held out: 160 training frames, 10 steps per epoch.
SETTINGS = dict(epochs=EPOCHS, batch_size=16, lr=2e-3, val_fraction=0.34, log_every=5, threads=2)
# The toy task's episodes (`learnable_episode`) keep their camera under the key used before the
# World record.
META = {"driver": "expert", "camera": CAMERA}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demos")
    for seed in range(6):
        write_episode(root, learnable_episode(seed, meta=META))
    return root


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> tuple[TrainConfig, dict]:
    cfg = TrainConfig(data=data, run=tmp_path_factory.mktemp("runs") / "run", **SETTINGS)
    return cfg, train(cfg)


def _copy_run(cfg: TrainConfig, tmp_path: Path) -> TrainConfig:
    run = tmp_path / "run"
    shutil.copytree(cfg.run, run)
    return replace(cfg, run=run)


def test_training_beats_the_constant_baseline_on_both_outputs(trained):
    _, summary = trained
    val = summary["last_val"]
    assert val["loss"] < 0.2 * val["baseline_loss"]
    assert val["loss_steering"] < 0.25 * val["baseline_loss_steering"]
    # throttle depends on speed only: this fails if the speed input is ignored
    assert val["loss_throttle"] < 0.25 * val["baseline_loss_throttle"]
    assert summary["best_val"] <= val["loss"]
    assert summary["steps"] == EPOCHS * 10
    assert summary["samples_per_s"] > 0


def test_tensorboard_holds_the_grouped_tags(trained):
    cfg, _ = trained
    events = EventAccumulator(str(cfg.run))
    events.Reload()
    tags = events.Tags()
    expected = {
        f"{group}/{name}"
        for group in ("train", "val")
        for name in ("loss", "loss_steering", "loss_throttle")
    }
    expected |= {"train/lr", "perf/samples_per_s", "val/baseline_loss_steering"}
    expected |= {"val/baseline_loss_throttle", "data/curve_share_before"}
    assert expected <= set(tags["scalars"])
    assert "val/predictions" in tags["images"]
    assert {"data/steering", "data/throttle"} <= set(tags["histograms"])
    val_loss = [event.value for event in events.Scalars("val/loss")]
    assert len(val_loss) == EPOCHS
    assert val_loss[-1] < val_loss[0]


def test_the_settings_go_to_the_hparams_plugin_of_the_run(trained):
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    from driving.learn.monitor import HPARAM_METRICS

    cfg, _ = trained
    events = EventAccumulator(str(cfg.run))
    events.Reload()
    plugin = {
        tag: HParamsPluginData.FromString(content)
        for tag, content in events.PluginTagToContent("hparams").items()
    }
    start = plugin["_hparams_/session_start_info"].session_start_info.hparams
    assert start["lr"].number_value == pytest.approx(SETTINGS["lr"])
    assert start["batch_size"].number_value == SETTINGS["batch_size"]
    assert start["curve_weighting"].number_value == 1  # torch writes a bool as a number
    assert start["data"].string_value == str(cfg.data)
    declared = [m.name.tag for m in plugin["_hparams_/experiment"].experiment.metric_infos]
    assert declared == list(HPARAM_METRICS) and "val/loss" in events.Tags()["scalars"]


def test_training_writes_a_model_card_beside_best(trained):
    cfg, summary = trained
    card = (cfg.run / "best.md").read_text()
    # 6 roads of 40 frames, 2 of them held out for validation
    assert "4 training episodes (160 frames), 2 held out for validation (80 frames)" in card
    assert f"{summary['steps']} optimizer steps" in card
    assert "Not evaluated yet" in card and "camera: topdown, 66x200 pixels" in card


def test_checkpoints_drive_through_the_policy(trained, data):
    cfg, _ = trained
    frame = learnable_episode(0, frames=1)
    obs = {"image": frame.frames[0], "speed": frame.speed[:1]}
    for name in ("best.pt", "last.pt"):
        policy = NetPolicy.from_checkpoint(cfg.run / name)
        action = policy.act(obs)
        assert action.shape == (2,)
        assert action.dtype == np.float32
        assert np.isfinite(action).all()
        # evaluation renders the view the net learned from (this dataset's meta predates the
        # World record: its camera is read from the old key)
        assert policy.world.camera == CameraConfig(**CAMERA)
    saved = json.loads((cfg.run / "config.json").read_text())
    assert saved["data"] == str(data)
    assert saved["epochs"] == EPOCHS


def test_resume_continues_the_step_count(trained, tmp_path):
    cfg, summary = _copy_run(trained[0], tmp_path), trained[1]
    # without --resume the existing run is protected
    with pytest.raises(TrainingError, match="--resume"):
        train(cfg)
    resumed = train(replace(cfg, epochs=EPOCHS + 2, resume=True))
    assert resumed["steps"] == summary["steps"] + 2 * 10
    ckpt = load_checkpoint(cfg.run / "last.pt")
    assert (ckpt["step"], ckpt["epoch"]) == (resumed["steps"], EPOCHS + 2)


def test_a_run_saved_before_frame_stacking_existed_resumes(trained, tmp_path):
    cfg = _copy_run(trained[0], tmp_path)
    ckpt = torch.load(cfg.run / "last.pt", weights_only=True)
    del ckpt["model_config"]["frames"], ckpt["model_config"]["frame_stride"]
    torch.save(ckpt, cfg.run / "last.pt")
    resumed = train(replace(cfg, epochs=EPOCHS + 1, resume=True))
    assert resumed["epochs"] == EPOCHS + 1


def test_nan_loss_stops_without_touching_the_checkpoints(trained, tmp_path):
    cfg = _copy_run(trained[0], tmp_path)
    before = load_checkpoint(cfg.run / "last.pt")
    # a learning rate this large blows the weights up within a few steps
    with pytest.raises(TrainingError, match=r"loss became (nan|inf) at step \d+; last good"):
        train(replace(cfg, epochs=EPOCHS + 1, resume=True, lr=1e30))
    after = load_checkpoint(cfg.run / "last.pt")
    assert after["step"] == before["step"]
    assert all(torch.isfinite(tensor).all() for tensor in after["model"].values())


def test_ctrl_c_saves_last_checkpoint_and_the_run_resumes(data, tmp_path, capsys):
    cfg = TrainConfig(data=data, run=tmp_path / "run", **(SETTINGS | {"epochs": 1000}))

    def press_ctrl_c_after_first_checkpoint() -> None:
        while not (cfg.run / "last.pt").exists():
            time.sleep(0.01)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c_after_first_checkpoint, daemon=True).start()
    with pytest.raises(KeyboardInterrupt, match="interrupted at step .* --resume"):
        train(cfg)
    ckpt = load_checkpoint(cfg.run / "last.pt")
    assert ckpt["step"] >= 10
    resumed = train(replace(cfg, epochs=ckpt["epoch"] + 1, resume=True))
    assert resumed["steps"] > ckpt["step"]


def test_without_a_validation_set_best_is_last(data, tmp_path):
    cfg = TrainConfig(data=data, run=tmp_path / "run", **(SETTINGS | {"epochs": 1}))
    summary = train(replace(cfg, val_fraction=0.0))
    assert summary["best_val"] is None
    best, last = load_checkpoint(cfg.run / "best.pt"), load_checkpoint(cfg.run / "last.pt")
    assert best["step"] == last["step"] == 240 // 16  # every frame trains


@pytest.mark.parametrize(
    "change",
    [
        {"epochs": 0},
        {"batch_size": -1},
        {"lr": 0.0},
        {"val_fraction": 1.0},
        {"threads": -2},
        {"device": "tpu"},
        {"device": "cuda:99"},
        {"data": Path("/nonexistent/demos")},
        {"frames": 0},
        {"frames": 9},
        {"frame_stride": 0},
        {"input_norm": "batch"},
        {"colour_jitter": -0.1},
        {"limit_input": True, "speed_input": False},
        {"speed_shift": -1.0},
        {"speed_shift": 11.0},
        {"speed_shift": 2.0, "speed_input": False},
        {"speed_shift": 2.0, "target": "perception"},
    ],
    ids=lambda change: "-".join(f"{k}={v}" for k, v in change.items()),
)
def test_bad_settings_are_refused_before_any_work(data, tmp_path, change):
    cfg = replace(TrainConfig(data=data, run=tmp_path / "run"), **change)
    with pytest.raises(ValueError):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_a_net_told_the_speed_limit_learns_throttle_that_follows_the_limit(tmp_path):
    # given 6 roads whose limits differ (8 to 20 m/s) and whose throttle is (limit - speed) / 10
    data = tmp_path / "told"
    for seed in range(6):
        write_episode(data, told_episode(seed, 8.0 + 2.4 * seed, frames=60))
    # when a net is trained with the limit beside the speed (half of every batch mirrored)
    settings = dict(epochs=3, batch_size=16, lr=2e-3, val_fraction=0.34, threads=1, mirror=True)
    summary = train(TrainConfig(data, tmp_path / "run", limit_input=True, **settings))
    # then on the 2 held-out roads it predicts the throttle well below the constant baseline
    # (a net without the limit stays above 0.4 of it here: 0.22 against 0.52)
    val = summary["last_val"]
    assert val["loss_throttle"] < 0.25 * val["baseline_loss_throttle"]
    # and given the same frame and speed, it opens the throttle under a higher limit
    policy = NetPolicy.from_checkpoint(tmp_path / "run" / "best.pt")
    obs = {"image": told_episode(9, 10.0).frames[0], "speed": np.array([12.0], np.float32)}
    slow, fast = (
        policy.act(obs | {"speed_limit": np.array([limit], np.float32)})[1] for limit in (8, 20)
    )
    assert fast - slow > 0.3  # 1.2 for the task itself
    assert "speed_limit: float32 (B,) [m/s]" in (tmp_path / "run" / "best.md").read_text()


def test_the_limit_input_on_data_recorded_without_the_limit_is_one_line_naming_it(data, tmp_path):
    cfg = TrainConfig(data=data, run=tmp_path / "run", limit_input=True)
    with pytest.raises(TrainingError, match=f"--limit-input: {data} holds episodes recorded with"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_shifted_speeds_on_traffic_drives_without_the_car_ahead_are_refused_in_one_line(tmp_path):
    data = tmp_path / "traffic"
    meta = {"driver": "expert", "world": World(scenario="winding-traffic").to_dict()}
    for seed in range(3):
        write_episode(data, learnable_episode(seed, meta=meta))
    with pytest.raises(TrainingError, match="--speed-shift: no step of .* records the car ahead"):
        train(TrainConfig(data=data, run=tmp_path / "run", speed_shift=2.0))
    assert not (tmp_path / "run").exists()


def test_curve_weighting_over_samples_rare_steering_with_a_cap():
    # mostly straight driving with a few curves, and one extreme frame
    steering = np.concatenate([np.zeros(900), np.full(90, 0.3), np.full(9, -0.6), [1.0]])
    weights = curve_weights(steering, bins=15, cap=10.0)
    assert weights.sum() == pytest.approx(1.0)
    in_curve = np.abs(steering) > 0.05
    assert in_curve.mean() == pytest.approx(0.1)
    # straight frames weigh 900 x 1/900 = 1 in all, curves 100 x 1/90 (capped) = 10/9
    assert weights[in_curve].sum() == pytest.approx((10 / 9) / (1 + 10 / 9))
    assert weights.max() / weights.min() == pytest.approx(10.0)  # the capped bins
    assert weights[900] / weights[0] == pytest.approx(10.0)  # 10x rarer -> 10x weight
    assert curve_weights(np.zeros(4)) == pytest.approx(np.full(4, 0.25))


def test_speed_weighting_draws_frames_in_proportion_to_speed_squared():
    # curve-weighted probabilities of two bends, one driven at 10 m/s and one at 20 m/s
    steering = np.concatenate([np.zeros(600), np.full(200, 0.2), np.full(200, 0.05)])
    speed = np.concatenate([np.full(600, 15.0), np.full(200, 10.0), np.full(200, 20.0)])
    curves = curve_weights(steering)
    weights = speed_weights(speed, curves)
    assert weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(weights, curves * speed**2 / (curves * speed**2).sum())
    # the real sampler: the fast bend, drawn as often as the slow one by its steering alone,
    # is now drawn four times as often
    order = epoch_order(len(speed), weights, seed=0, epoch=0, device=torch.device("cpu"))
    drawn = np.bincount(order.numpy(), minlength=len(speed))
    assert drawn[800:].sum() / drawn[600:800].sum() == pytest.approx(4.0, rel=0.15)
    assert speed_weights(np.array([0.0, 1.0, 2.0])) == pytest.approx([1 / 6, 1 / 6, 4 / 6])


def _lane_change_and_bend(seed: int) -> Episode:
    """40 steps: 30 on a straight (a bend 30 m ahead on 10 of them), a 5-step lane change on
    the straight (|steering| 0.5), a 5-step bend (steering 0.2, curvature 0.02 1/m)."""
    episode = learnable_episode(seed, meta={"driver": "expert", "curvature_ahead_m": AHEAD})
    steering = np.r_[np.zeros(30), np.full(5, 0.5), np.full(5, 0.2)].astype(np.float32)
    curvature = np.zeros((40, len(AHEAD)), np.float32)
    curvature[20:30, 3] = 0.05  # 30 m ahead: beyond what lane weighting looks at
    curvature[35:, :] = 0.02
    labels = np.stack([steering, episode.labels[:, 1]], axis=1)
    return replace(episode, labels=labels, actions=labels.copy(), curvature_ahead=curvature)


AHEAD = [0.0, 10.0, 20.0, 30.0, 40.0]


def test_lane_curve_measure_draws_the_bends_but_not_the_lane_changes(tmp_path):
    for seed in range(3):
        write_episode(tmp_path / "data", _lane_change_and_bend(seed))
    frames, _ = load_split(tmp_path / "data", val_fraction=0.0)
    step = np.tile(np.arange(40), 3)
    straight, lane_change, bend = step < 30, (step >= 30) & (step < 35), step >= 35
    by = {
        measure: _sampling_weights(
            TrainConfig(data=tmp_path / "data", curve_measure=measure), frames
        )
        for measure in ("steering", "lane")
    }
    # by steering, the rare large steering of a lane change is drawn as often as the bend
    assert by["steering"][lane_change].sum() == pytest.approx(by["steering"][bend].sum())
    assert by["steering"][lane_change].sum() > 2 * lane_change.mean()
    # by the lane, a lane change is drawn like the straight it happens on, and the bend more
    np.testing.assert_allclose(by["lane"][lane_change], by["lane"][straight].max())
    np.testing.assert_allclose(by["lane"][straight], by["lane"][0])  # the far bend not counted
    assert by["lane"][bend].sum() > 2 * bend.mean()
    # without curvature labels (the keyboard's drives): refused in one line before any work
    write_episode(tmp_path / "old", learnable_episode(0))
    with pytest.raises(TrainingError, match="--curve-measure lane: an episode of .* does not"):
        train(TrainConfig(data=tmp_path / "old", run=tmp_path / "run", curve_measure="lane"))
    assert not (tmp_path / "run").exists()


def test_learning_rate_warms_up_then_decays():
    rates = [lr_at(step, total_steps=100, base_lr=1.0, warmup_steps=10) for step in range(101)]
    assert rates[0] == pytest.approx(0.1)
    assert rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))
    assert rates[100] == pytest.approx(0.1)


def test_prediction_strip_shows_true_steering_green_and_prediction_red():
    frames = np.full((2, 66, 200, 3), 90, np.uint8)
    images = draw_steering(frames, true=np.array([0.5, -1.0]), pred=np.array([-0.5, 0.0]))
    assert images.shape == (2, 80, 200, 3)
    np.testing.assert_array_equal(images[:, :66], frames)  # the frame itself is untouched
    green, red = (0, 255, 0), (255, 0, 0)
    assert tuple(images[0, 70, 140]) == green and tuple(images[0, 70, 60]) != green
    assert tuple(images[0, 76, 60]) == red and tuple(images[0, 76, 140]) != red
    assert tuple(images[1, 70, 5]) == green


def test_resume_without_a_checkpoint_starts_the_run(data, tmp_path):
    # The same command works before and after a kill: --resume on an empty run simply starts it.
    cfg = TrainConfig(data=data, run=tmp_path / "run", epochs=1, batch_size=16, resume=True)
    summary = train(cfg)
    assert summary["epochs"] == 1
    assert load_checkpoint(cfg.run / "last.pt")["epoch"] == 1


def test_training_on_stacked_frames_saves_a_policy_that_stacks_them(data, tmp_path):
    # given a run that feeds the net 2 frames, 3 steps apart
    cfg = TrainConfig(
        data=data, run=tmp_path / "run", frames=2, frame_stride=3, **(SETTINGS | {"epochs": 1})
    )
    summary = train(cfg)
    assert summary["epochs"] == 1 and np.isfinite(summary["last_val"]["loss"])
    # then the checkpoint rebuilds a 2-frame net, and its policy drives one frame at a time
    ckpt = load_checkpoint(cfg.run / "best.pt")
    assert ckpt["model_config"]["frames"] == 2 and ckpt["model_config"]["frame_stride"] == 3
    policy = NetPolicy.from_checkpoint(cfg.run / "best.pt")
    policy.reset()
    episode = learnable_episode(0, frames=2)
    for image, speed in zip(episode.frames, episode.speed, strict=True):
        action = policy.act({"image": image, "speed": speed[None]})
        assert action.shape == (2,) and np.isfinite(action).all()
    assert policy.net_input.shape == (1, 66, 200, 6)
    # and resuming it with another stack is refused, naming the flags
    with pytest.raises(TrainingError, match="--frames and --frame-stride"):
        train(replace(cfg, epochs=2, resume=True, frames=3))


def test_mask_sky_hides_the_dashcams_sky_and_is_refused_on_other_frames(data, tmp_path, capsys):
    from driving.cli import main
    from envs.dashcam import Dashcam
    from envs.world import World

    # given dashcam episodes, --mask-sky hides the rows above the camera's visible ground
    camera = CameraConfig(kind="dashcam")
    meta = {"driver": "expert", "world": World(camera=camera).to_dict()}
    for seed in range(3):
        write_episode(tmp_path / "dash", learnable_episode(seed, frames=16, meta=meta))
    cfg = TrainConfig(data=tmp_path / "dash", run=tmp_path / "run", epochs=1, mask_sky=True)
    train(cfg)
    hidden = load_checkpoint(cfg.run / "best.pt")["model_config"]["hidden_rows"]
    assert hidden == Dashcam(camera).ground_top == 17  # pitch 10 deg, ground seen to 70 m
    assert NetPolicy.from_checkpoint(cfg.run / "best.pt").model.config.hidden_rows == hidden
    # on the top-down camera's frames it is one line, before anything is written
    run = tmp_path / "topdown-run"
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--run", str(run), "--mask-sky"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --mask-sky needs dashcam frames") and "\n" not in err, err
    assert not run.exists()


def test_a_dataset_with_an_unknown_camera_key_is_refused_before_training(tmp_path, capsys):
    from driving.cli import main

    meta = {"driver": "expert", "camera": CAMERA | {"zoom": 3}}  # evaluation could not build it
    for seed in range(2):
        write_episode(tmp_path / "data", learnable_episode(seed, frames=16, meta=meta))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "zoom" in err, err
    assert not run.exists()  # refused before anything was written


def test_wandb_missing_is_one_line_naming_the_extra(data, tmp_path, monkeypatch, capsys):
    import importlib.util

    from driving.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    code = main(["train", "--data", str(data), "--run", str(tmp_path / "run"), "--wandb"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "error: --wandb needs Weights & Biases: pip install 'pixels-to-pedals[wandb]'"
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.slow
def test_wandb_offline_mirrors_the_tensorboard_run(data, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="Weights & Biases is the optional extra 'wandb'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = TrainConfig(data=data, run=tmp_path / "run", wandb=True, **(SETTINGS | {"epochs": 1}))
    train(cfg)
    (offline,) = (tmp_path / "wb" / "wandb").glob("offline-run-*")
    record = next(offline.glob("run-*.wandb")).read_bytes()
    assert b"train/loss" in record and b"batch_size" in record  # the scalars and the settings
    assert b"val/loss" in record and list((offline / "files" / "media").rglob("*.png"))
    assert not (cfg.run / "wandb").exists()  # its files stay out of TensorBoard's --logdir
