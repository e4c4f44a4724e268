"""Colour augmentation: reproducible, label-free, one look per sample, grey kept grey. Mirroring:
the labels of a mirrored frame are those of the mirrored world."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import told_episode
from highway_env.vehicle.kinematics import Vehicle
from test_train import SETTINGS, data  # noqa: F401  (the toy dataset fixture)

from driving.data import load_split, write_episode
from driving.learn.augment import (
    GREY_SHARE,
    colour_jitter,
    colour_matrices,
    mirror,
    mirror_signs,
    shift_grid,
    speed_shift,
    table_shift,
    traffic_throttle_table,
    traffic_throttle_tables,
)
from driving.learn.checkpoint import load_checkpoint
from driving.learn.policy import NetPolicy
from driving.learn.train import TrainConfig, train
from driving.modular.lanes import LanePerception
from driving.record.collect import NoiseConfig, run_expert_episode
from envs.camera import CameraConfig
from envs.dashcam import make_camera
from envs.road import RoadSettings
from envs.world import World, make_world
from tests.driving.modular.test_lanes import two_lane_road


def _frames(count: int = 64, channels: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (count, 6, 8, channels), generator=generator, dtype=torch.uint8)


def _jitter(image: torch.Tensor, strength: float = 0.5, seed: int = 0) -> torch.Tensor:
    return colour_jitter(image, strength, torch.Generator().manual_seed(seed))


def test_strength_zero_leaves_frames_alone():
    image = _frames()
    assert _jitter(image, strength=0.0) is image


def test_same_seed_same_frames_other_seed_other_frames():
    image = _frames()
    out = _jitter(image)
    assert out.dtype == torch.uint8 and out.shape == image.shape
    assert torch.equal(out, _jitter(image))
    assert not torch.equal(out, _jitter(image, seed=1))
    assert not torch.equal(out, image)


def test_stacked_frames_of_a_sample_get_the_same_look():
    frame = _frames()
    stacked = _jitter(torch.cat([frame, frame], dim=-1))  # (B, H, W, 6): two identical frames
    assert torch.equal(stacked[..., :3], stacked[..., 3:])


def test_hue_and_saturation_keep_grey_grey():
    matrices = colour_matrices(500, 1.0, torch.Generator().manual_seed(0))
    grey = matrices @ torch.ones(3)
    assert torch.allclose(grey, torch.ones(500, 3), atol=1e-5)
    assert not torch.allclose(matrices, torch.eye(3).expand(500, 3, 3), atol=0.05)


def test_about_one_frame_in_five_turns_grey():
    out = _jitter(_frames(count=2000), strength=0.5).int()
    spread = (out.amax(dim=-1) - out.amin(dim=-1)).amax(dim=(1, 2))  # per sample
    grey_share = (spread <= 1).float().mean().item()  # rounding may leave one level
    assert grey_share == pytest.approx(GREY_SHARE, abs=0.04)


def test_brightness_spreads_with_the_strength():
    image = torch.full((2000, 4, 4, 3), 128, dtype=torch.uint8)
    for strength, low, high in ((0.25, 0.8, 1.2), (0.5, 0.6, 1.4)):
        mean = _jitter(image, strength).float().mean(dim=(1, 2, 3)) / 128
        assert mean.min() >= low - 0.01 and mean.max() <= high + 0.01
        assert mean.min() < low + 0.05 and mean.max() > high - 0.05


def test_training_with_colour_jitter_differs_and_repeats_exactly(data, tmp_path):  # noqa: F811
    base = TrainConfig(data=data, run=tmp_path / "plain", **(SETTINGS | {"epochs": 1}))
    train(base)
    jittered = replace(base, run=tmp_path / "jitter", colour_jitter=0.5)
    train(jittered)
    train(replace(jittered, run=tmp_path / "again"))

    def weights(run):
        return load_checkpoint(run / "last.pt")["model"]

    plain, once, again = weights(base.run), weights(jittered.run), weights(tmp_path / "again")
    assert any(not torch.equal(plain[k], once[k]) for k in plain)
    assert all(torch.equal(once[k], again[k]) for k in once)


@pytest.mark.parametrize("kind", ["topdown", "dashcam"])
def test_a_mirrored_frame_shows_the_pose_its_mirrored_labels_name(kind):
    # Given a real frame of a car 0.5 m right of its lane's centre, turned 0.04 rad right,
    camera = CameraConfig(kind=kind)
    road = two_lane_road()
    ego = Vehicle(road, [200.0, 0.5], 0.04, 15.0)
    road.vehicles.append(ego)
    cam = make_camera(camera)
    cam.reset(road, 3)
    frame = torch.from_numpy(cam.render(road, ego))
    image = frame.expand(16, *frame.shape).contiguous()
    labels = torch.tensor([[0.5, 0.04]]).expand(16, 2)
    # when half a batch of it is mirrored with the pose's labels,
    outputs = ("lateral_offset", "heading_error")
    generator = torch.Generator().manual_seed(0)
    image, labels = mirror(image, labels, mirror_signs(outputs), torch.zeros(2), generator)
    # then the hand-built lane perception reads every frame as its labels say
    perception = LanePerception(camera)
    flipped = labels[:, 0] < 0
    assert 0 < flipped.sum() < 16
    for sample, (offset, heading) in zip(image.numpy(), labels.tolist(), strict=True):
        lane = perception.estimate(sample)
        assert lane.lateral_offset == pytest.approx(offset, abs=0.15)
        assert lane.heading_error == pytest.approx(heading, abs=0.035)
    assert torch.equal(image[flipped][0], frame.flip(1)) and torch.equal(image[~flipped][0], frame)


def test_normalised_labels_mirror_as_their_raw_values_do():
    outputs = ("steering", "throttle", "lateral_offset", "curvature_20m", "gap_ahead")
    odd = mirror_signs(outputs)
    assert odd.tolist() == [True, False, True, True, False]
    generator = torch.Generator().manual_seed(2)
    raw = torch.randn(64, 5, generator=generator) + torch.tensor([0.1, 0.5, 0.3, 0.01, 40.0])
    mean, std = raw.mean(0), raw.std(0)
    image = _frames()
    mirrored, labels = mirror(image, (raw - mean) / std, odd, 2 * mean / std, generator)
    picked = (mirrored != image).flatten(1).any(1)
    signs = torch.where(odd, -1.0, 1.0)
    expected = torch.where(picked[:, None], (raw * signs - mean) / std, (raw - mean) / std)
    assert 0 < picked.sum() < 64
    assert torch.allclose(labels, expected, atol=1e-5)


def _train_in_a_new_process(cfg: TrainConfig, hash_seed: str) -> None:
    """Train `cfg` through the CLI in a process of its own, with its own str hashes."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items() if k != "epochs"]
    argv = ["train", f"--data={cfg.data}", f"--run={cfg.run}", "--epochs=1", "--mirror", *flags]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    command = [sys.executable, "-m", "driving.cli", *argv]
    done = subprocess.run(command, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_training_with_mirroring_differs_and_repeats_exactly(data, tmp_path):  # noqa: F811
    base = TrainConfig(data=data, run=tmp_path / "plain", **(SETTINGS | {"epochs": 1}))
    train(base)
    mirrored = replace(base, run=tmp_path / "mirror", mirror=True)
    train(mirrored)
    # the same command again, in a new process whose str hashes differ (a resumed run's case)
    _train_in_a_new_process(replace(mirrored, run=tmp_path / "again"), hash_seed="12345")
    plain, once, again = (
        load_checkpoint(run / "last.pt")["model"]
        for run in (base.run, mirrored.run, tmp_path / "again")
    )
    assert any(not torch.equal(plain[k], once[k]) for k in plain)
    assert all(torch.equal(once[k], again[k]) for k in once)


def _expert_at(env, expert, speed: float) -> np.ndarray:
    env.unwrapped.vehicle.speed = speed
    return expert.act()


@pytest.mark.parametrize("road", [3, 11])
def test_a_shifted_speed_gets_the_throttle_the_expert_gives_at_that_speed(road):
    # given states of a real drive on a road with a drawn limit, the expert at the wheel
    env, expert = make_world(World(road=RoadSettings(limit_range=(8.0, 22.0))))
    env.reset(seed=road)
    states = []
    for step in range(120):
        action = expert.act()
        if step % 8 == 0:
            speed = float(env.unwrapped.vehicle.speed)
            states.append((speed, action, env.unwrapped.vehicle))
            # when its speed is shifted as the augmentation shifts it
            shifted, labels = speed_shift(
                torch.tensor([speed]),
                torch.from_numpy(action[None]),
                6.0,
                torch.Generator().manual_seed(step),
            )
            # then the throttle label is the expert's own at the shifted speed (exactly, when
            # the recorded label is not clipped) and the steering is nearly its own
            there = _expert_at(env, expert, float(shifted[0]))
            env.unwrapped.vehicle.speed = speed
            if abs(action[1]) < 1:
                assert float(shifted[0]) != pytest.approx(speed)
                assert float(labels[0, 1]) == pytest.approx(float(there[1]), abs=1e-5)
                assert abs(float(labels[0, 0]) - float(there[0])) < 0.05
            else:  # a clipped label only bounds the target: left as it is
                assert float(shifted[0]) == pytest.approx(speed) and labels[0, 1] == action[1]
        env.step(action)
    assert sum(abs(a[1]) < 1 for _, a, _ in states) >= 5  # most states checked exactly
    env.close()


def _probe(env, expert, shift: float) -> tuple[np.ndarray, bool]:
    """The traffic expert's action with the ego and the car ahead in its lane `shift` m/s faster,
    and whether its lane plan stayed as it was (a probe that starts or ends a lane change is not
    compared); the speeds and the plan are put back."""
    base = env.unwrapped
    ego = base.vehicle
    progress, lateral = base.road.place(ego)
    ahead = base.road.neighbours(progress, base.road.lane_of(lateral), exclude=ego)[0]
    moved = [car for car in (ego, ahead) if car is not None]
    kept = (expert.lane, expert.change, expert.last_change_end)
    for car in moved:
        car.speed += shift
    expert.last_time = -np.inf  # the same moment again, not a new drive
    action = expert.act()
    same = (expert.lane, expert.change) == kept[:2]
    for car in moved:
        car.speed -= shift
    expert.lane, expert.change, expert.last_change_end = kept
    return action, same


def test_a_shifted_speed_in_traffic_gets_the_traffic_experts_throttle_at_that_speed():
    # given steps of a real drive in traffic, recorded as `drive collect` records them
    env, expert = make_world(World(scenario="winding-traffic"))
    _, info = env.reset(seed=5)
    steps = {"labels": [], "speed": [], "leader": [], "lateral_offset": []}
    probes = []
    for step in range(300):
        action = expert.act()
        speed = float(env.unwrapped.vehicle.speed)
        for name, value in (("labels", action), ("speed", speed), ("leader", expert.leader())):
            steps[name].append(value)
        steps["lateral_offset"].append(info["lateral_offset"])
        if step % 3 == 0:  # when the expert is asked again with the speeds shifted
            probes.append((step, {d: _probe(env, expert, d) for d in shift_grid(3.0)}))
        _, _, _, _, info = env.step(action)
    steps = {name: np.asarray(values, np.float32) for name, values in steps.items()}
    table = traffic_throttle_table(steps, expert.traffic.sensing_range, 3.0)
    # then every known entry is the expert's own throttle with the ego and the car ahead that
    # much faster, a car ahead or not
    checked = {"free": 0, "following": 0}
    for step, answers in probes:
        for column, shift in enumerate(shift_grid(3.0)):
            (steering, throttle), same = answers[shift]
            if np.isnan(table[step, column]) or not same:
                continue
            assert table[step, column] == pytest.approx(throttle, abs=1e-4), (step, shift)
            checked["following" if steps["leader"][step, 0] < 60 else "free"] += 1
    assert min(checked.values()) >= 20, checked
    # shifts only where the same shift the other way is known too: no lean to slower or faster
    assert np.array_equal(np.isnan(table), np.isnan(table[:, ::-1]))
    assert (~np.isnan(table[:, 0])).mean() > 0.1
    # the unshifted column is the recorded label wherever it is known
    known = ~np.isnan(table[:, len(shift_grid(3.0)) // 2])
    assert known.mean() > 0.3
    assert table[known, len(shift_grid(3.0)) // 2] == pytest.approx(
        steps["labels"][known, 1], abs=1e-6
    )
    env.close()


def test_training_on_traffic_drives_shifts_speeds_by_the_traffic_experts_table(tmp_path):
    # given two recorded drives in dense traffic
    env, expert = make_world(World(scenario="winding-traffic", density="dense"), duration=6.0)
    for seed in (1, 2):
        write_episode(tmp_path / "data", run_expert_episode(env, expert, seed, NoiseConfig())[0])
    env.close()
    train_set, _ = load_split(tmp_path / "data", val_fraction=0.0)
    # then the table has a row per training frame, its middle column the recorded label
    table = traffic_throttle_tables(tmp_path / "data", train_set, 2.0).numpy()
    assert table.shape == (len(train_set), len(shift_grid(2.0)))
    known = ~np.isnan(table[:, len(shift_grid(2.0)) // 2])
    assert known.mean() > 0.3
    assert table[known, len(shift_grid(2.0)) // 2] == pytest.approx(
        train_set.labels[known, 1], abs=1e-6
    )
    # and a frame-stacking net trains with it, into other weights than without it
    settings = dict(epochs=1, batch_size=16, val_fraction=0.0, threads=1, frames=2)
    weights = {}
    for shift in (0.0, 2.0):
        run = tmp_path / f"shift{shift:g}"
        train(TrainConfig(tmp_path / "data", run, speed_shift=shift, **settings))
        weights[shift] = load_checkpoint(run / "last.pt")["model"]
    assert any(not torch.equal(weights[0.0][k], weights[2.0][k]) for k in weights[0.0])


def test_table_shift_moves_known_samples_only_and_repeats_per_generator():
    grid = shift_grid(1.0)  # -1.0 .. 1.0 every 0.25
    table = torch.tensor([np.linspace(0.5, -0.5, len(grid)), np.full(len(grid), np.nan)])
    speed, labels = torch.tensor([10.0, 12.0]), torch.tensor([[0.1, 0.0], [-0.2, 0.3]])
    moved, shifted = table_shift(speed, labels, table, 1.0, torch.Generator().manual_seed(3))
    column = int(torch.argmin((torch.from_numpy(grid).float() - (moved[0] - 10.0)).abs()))
    assert shifted[0, 1] == pytest.approx(float(table[0, column]))
    assert moved[1] == 12.0 and torch.equal(shifted[1], labels[1])  # NaN: left as it was
    assert torch.equal(shifted[:, 0], labels[:, 0])  # steering kept
    again = table_shift(speed, labels, table, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(again[0], moved) and torch.equal(again[1], shifted)


def test_speed_shift_repeats_per_generator_and_never_goes_below_standstill():
    speed = torch.tensor([0.5, 10.0, 20.0, 3.0])
    labels = torch.tensor([[0.1, 0.3], [0.0, 1.0], [-0.2, -1.0], [0.0, 0.0]])
    one = speed_shift(speed, labels, 4.0, torch.Generator().manual_seed(0))
    again = speed_shift(speed, labels, 4.0, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(one, again, strict=True))
    assert (one[0] >= 0).all()
    assert torch.equal(one[1][:, 0], labels[:, 0])  # steering kept


def _cruising_episode(seed: int, limit: float, frames: int = 60):
    """A straight road with a speed limit, seen in one frame, driven as the expert drives it: at
    the limit or just below it (throttle (limit - speed) / 5, never negative), so no frame shows
    a speed above the limit."""
    episode = told_episode(seed, limit, frames)
    speed = limit - np.random.default_rng(seed).uniform(0.0, 1.0, frames).astype(np.float32)
    labels = np.stack([np.zeros(frames), (limit - speed) / 5.0], axis=1).astype(np.float32)
    still = np.repeat(episode.frames[:1], frames, axis=0)  # the throttle is not in the frame
    return replace(episode, frames=still, labels=labels, actions=labels.copy(), speed=speed)


@pytest.mark.slow
def test_a_net_trained_with_shifted_speeds_brakes_above_the_limit(tmp_path):
    # given roads driven at their limits (8 to 20 m/s) and never above them
    cruising = tmp_path / "cruising"
    for seed in range(6):
        write_episode(cruising, _cruising_episode(seed, 8.0 + 2.4 * seed, frames=100))
    settings = dict(epochs=8, batch_size=16, lr=2e-3, val_fraction=0.34, threads=1)
    braking = {}
    for shift in (0.0, 4.0):
        # when nets are trained told the limit, with and without shifted speeds
        run = tmp_path / f"shift{shift:g}"
        train(TrainConfig(cruising, run, limit_input=True, speed_shift=shift, **settings))
        policy = NetPolicy.from_checkpoint(run / "last.pt")  # best.pt: by unshifted frames
        obs = {
            "image": told_episode(9, 12.0).frames[0],
            "speed_limit": np.array([12.0], np.float32),
        }
        braking[shift] = policy.act(obs | {"speed": np.array([15.0], np.float32)})[1]
    # then 3 m/s above the limit the net shown shifted speeds brakes about as the expert's law
    # does (-0.6; measured -0.7), the other does not (measured +0.1)
    assert braking[4.0] < -0.3 and braking[0.0] > braking[4.0] + 0.3, braking
