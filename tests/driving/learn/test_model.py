"""PilotNet, checkpoints and the network policy: shapes, sizes, round trips and refusals."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from driving.data import Frames, stack_indices
from driving.learn.checkpoint import (
    KIND,
    CheckpointError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from driving.learn.model import ModelConfig, PilotNet, count_parameters
from driving.learn.policy import NetPolicy
from envs.world import World


def _frames(batch: int, height: int = 66, width: int = 200, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8, generator=generator)


def _save(path, net: PilotNet, **overrides) -> None:
    settings = dict(
        model=net,
        model_config=net.config,
        optimizer=torch.optim.AdamW(net.parameters()),
        step=7,
        epoch=2,
        best_val=0.5,
        config={"data": path.parent / "data", "epochs": 3},
        extra={},
    )
    save_checkpoint(path, **(settings | overrides))


# ---------------------------------------------------------------- model


@pytest.mark.parametrize(("height", "width"), [(66, 200), (100, 100)])
@pytest.mark.parametrize("speed_input", [True, False])
def test_output_is_one_steering_and_one_throttle_per_frame(height, width, speed_input):
    model = PilotNet(ModelConfig(height=height, width=width, speed_input=speed_input))
    out = model(_frames(4, height, width), torch.full((4,), 10.0))
    assert out.shape == (4, 2)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_parameter_count_matches_the_paper():
    assert count_parameters(PilotNet(ModelConfig(speed_input=False))) == 252_230
    # the speed input adds one column to the first fully connected layer: 100 weights
    assert count_parameters(PilotNet(ModelConfig(speed_input=True))) == 252_330
    assert PilotNet().flat_features == 1152


def test_normalisation_is_fixed_and_not_trained():
    model = PilotNet(ModelConfig(speed_input=False))
    assert all(name.startswith(("conv.", "head.")) for name, _ in model.named_parameters())
    assert list(model.buffers()) == []
    image = torch.tensor([0, 255, 51], dtype=torch.uint8).repeat(1, 1, 1, 1)  # (1, 1, 1, 3)
    assert model.normalize(image).flatten().tolist() == pytest.approx([-1.0, 1.0, -0.6])

    frames = _frames(2)
    by_hand = model.head(torch.flatten(model.conv(frames.permute(0, 3, 1, 2) / 127.5 - 1), 1))
    torch.testing.assert_close(model(frames), by_hand)


def test_per_frame_normalisation_ignores_brightness_contrast_and_colour_cast():
    model = PilotNet(ModelConfig(input_norm="per-frame"))
    assert list(model.buffers()) == []
    frames = _frames(2) // 4 * 2 + 60  # even values in [60, 186]
    normalised = model.normalize(frames)
    torch.testing.assert_close(normalised.mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised.std(dim=(2, 3)), torch.ones(2, 3))
    # darker, lower contrast and bluer: each channel an exact affine map of the original
    dusk = (frames // 2 + torch.tensor([10, 20, 40], dtype=torch.uint8)).to(torch.uint8)
    torch.testing.assert_close(model.normalize(dusk), normalised)
    torch.testing.assert_close(model(dusk, torch.ones(2)), model(frames, torch.ones(2)))
    flat = torch.full((1, 66, 200, 3), 90, dtype=torch.uint8)  # nothing to stretch: stays 0
    assert model.normalize(flat).abs().max() == 0


@pytest.mark.parametrize("input_norm", ["fixed", "per-frame"])
def test_hidden_rows_are_not_seen_and_the_rows_below_are(input_norm):
    model = PilotNet(ModelConfig(hidden_rows=17, input_norm=input_norm))
    frames, speed = _frames(2), torch.ones(2)
    other_sky = frames.clone()
    other_sky[:, :17] = torch.tensor([230, 140, 60], dtype=torch.uint8)  # an orange dusk
    torch.testing.assert_close(model(other_sky, speed), model(frames, speed), atol=0, rtol=0)
    assert model.normalize(frames)[:, :, :17].abs().max() == 0
    other_road = frames.clone()
    other_road[:, 17] = 0  # the first row it sees
    assert not torch.equal(model(other_road, speed), model(frames, speed))


@pytest.mark.parametrize("rows", [-1, 66, 1.5, True])
def test_hidden_rows_outside_the_frame_are_refused(rows):
    with pytest.raises(ValueError, match="hidden_rows"):
        PilotNet(ModelConfig(hidden_rows=rows))


BOX = (1, 15, 68, 132)  # the dashcam's rear-view mirror on 66x200 (`Dashcam.mirror_box`)


@pytest.mark.parametrize("input_norm", ["fixed", "per-frame"])
def test_a_box_in_the_hidden_rows_is_seen_and_the_rest_of_them_is_not(input_norm):
    model = PilotNet(ModelConfig(hidden_rows=17, shown_box=BOX, input_norm=input_norm))
    frames, speed = _frames(2), torch.ones(2)
    top, bottom, left, right = BOX
    other_sky = frames.clone()
    other_sky[:, :17] = torch.tensor([230, 140, 60], dtype=torch.uint8)  # an orange dusk
    other_sky[:, top:bottom, left:right] = frames[:, top:bottom, left:right]
    torch.testing.assert_close(model(other_sky, speed), model(frames, speed), atol=0, rtol=0)
    normalised = model.normalize(frames)
    hidden = torch.ones(66, 200, dtype=torch.bool)
    hidden[17:], hidden[top:bottom, left:right] = False, False
    assert normalised[:, :, hidden].abs().max() == 0
    assert normalised[:, :, top:bottom, left:right].abs().min() > 0
    other_box = frames.clone()
    other_box[:, top + 3, left + 5] = 0  # one pixel of the box
    assert not torch.equal(model(other_box, speed), model(frames, speed))
    if input_norm == "fixed":  # the rows below are normalised as without a box
        plain = PilotNet(ModelConfig(hidden_rows=17, input_norm=input_norm))
        torch.testing.assert_close(normalised[:, :, 17:], plain.normalize(frames)[:, :, 17:])


@pytest.mark.parametrize(
    "box",
    [(0, 18, 68, 132), (5, 5, 68, 132), (1, 15, 132, 68), (1, 15, 0, 201), (1, 15, 68), "box"],
)
def test_a_box_outside_the_hidden_rows_is_refused(box):
    with pytest.raises(ValueError, match="shown_box"):
        PilotNet(ModelConfig(hidden_rows=17, shown_box=box))


def test_an_unknown_input_normalisation_is_refused():
    with pytest.raises(ValueError, match="input_norm"):
        PilotNet(ModelConfig(input_norm="batch"))


def test_uint8_input_stays_uint8_until_the_model_and_channels_last_gives_the_same_answer():
    model = PilotNet()
    frames, speed = _frames(3), torch.tensor([0.0, 5.0, 20.0])
    expected = model(frames, speed)
    assert frames.dtype == torch.uint8
    model = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(frames, speed), expected, rtol=1e-4, atol=1e-5)


def test_speed_changes_the_output_only_when_it_is_an_input():
    frames = _frames(1).repeat(2, 1, 1, 1)
    speed = torch.tensor([0.0, 20.0])
    with_speed = PilotNet(ModelConfig(speed_input=True))(frames, speed)
    assert not torch.allclose(with_speed[0], with_speed[1])
    without = PilotNet(ModelConfig(speed_input=False))(frames, speed)
    torch.testing.assert_close(without[0], without[1])


def test_speed_is_required_when_it_is_an_input():
    with pytest.raises(ValueError, match="speed"):
        PilotNet()(_frames(1))


def test_the_limit_input_is_one_more_head_column_scaled_and_initialised_like_the_speed():
    torch.manual_seed(0)
    told = PilotNet(ModelConfig(limit_input=True))
    # one more column of 100 weights, next to the speed's, drawn in [-1, 1] like it
    assert count_parameters(told) == count_parameters(PilotNet()) + 100
    columns = told.head[0].weight[:, told.flat_features :]  # (100, 2): speed, limit
    assert columns.shape == (100, 2) and columns.abs().max() <= 1.0 and columns.std() > 0.4
    # the same frame and speed under another limit: another command; the limit is required
    frames, speed = _frames(1).repeat(2, 1, 1, 1), torch.tensor([12.0, 12.0])
    out = told(frames, speed, torch.tensor([8.0, 20.0]))
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(ValueError, match="speed limit"):
        told(frames, speed)
    # a net without the limit input ignores one given
    plain = PilotNet()
    torch.testing.assert_close(
        plain(frames, speed), plain(frames, speed, torch.tensor([8.0, 20.0]))
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ModelConfig(limit_input=True, speed_input=False), "limit_input goes beside the speed"),
        (ModelConfig(limit_input=1), "limit_input must be True or False"),
    ],
)
def test_a_limit_input_without_the_speed_is_refused(config, message):
    with pytest.raises(ValueError, match=message):
        PilotNet(config)


@pytest.mark.parametrize("config", [ModelConfig(height=40), ModelConfig(width=0)])
def test_frames_too_small_for_the_conv_stack_are_refused(config):
    with pytest.raises(ValueError, match="height|width"):
        PilotNet(config)


def test_stacked_frames_widen_only_the_first_conv_layer():
    one, two = PilotNet(ModelConfig(frames=1)), PilotNet(ModelConfig(frames=2, frame_stride=3))
    assert one.conv[0].in_channels == 3 and two.conv[0].in_channels == 6
    assert two.flat_features == one.flat_features
    # each extra frame adds 24 filters x 3 channels x 5 x 5 weights to the first layer
    assert count_parameters(two) == count_parameters(one) + 1800 == 254_130
    assert count_parameters(PilotNet(ModelConfig(frames=3))) == 255_930
    stacked = torch.cat([_frames(2, seed=1), _frames(2, seed=2)], dim=-1)  # (2, 66, 200, 6)
    assert two(stacked, torch.tensor([1.0, 2.0])).shape == (2, 2)
    with pytest.raises(ValueError, match="2 stacked RGB frames.*got 3 channels"):
        two(_frames(2), torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(frames=0),
        ModelConfig(frames=9),
        ModelConfig(frame_stride=0),
        ModelConfig(frames=True),
    ],
)
def test_bad_frame_stacks_are_refused(config):
    with pytest.raises(ValueError, match="frames|frame_stride"):
        PilotNet(config)


# ---------------------------------------------------------------- checkpoint


def test_checkpoint_round_trip_rebuilds_the_same_network(tmp_path):
    # given a model with random weights, saved
    model = PilotNet(ModelConfig(height=70, width=120, speed_input=True))
    path = tmp_path / "run" / "best.pt"
    _save(path, model)
    # when it is loaded and rebuilt
    ckpt = load_checkpoint(path)
    rebuilt = build_model(ckpt)
    # then it computes the same function and keeps the bookkeeping
    frames, speed = _frames(2, 70, 120), torch.tensor([3.0, 15.0])
    torch.testing.assert_close(rebuilt(frames, speed), model.eval()(frames, speed))
    assert rebuilt.config == model.config
    assert (ckpt["step"], ckpt["epoch"], ckpt["best_val"]) == (7, 2, 0.5)
    assert ckpt["config"]["data"] == str(tmp_path / "run" / "data")  # Path -> str
    json.dumps(ckpt["config"])


def test_a_checkpoint_from_before_frame_stacking_loads_as_one_frame(tmp_path):
    # given a checkpoint whose model_config predates the frames and frame_stride fields
    model = PilotNet()
    path = tmp_path / "old.pt"
    _save(path, model)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"] = {"height": 66, "width": 200, "speed_input": True}
    torch.save(ckpt, path)
    # when it is rebuilt, then it sees one frame and computes what it did
    rebuilt = build_model(load_checkpoint(path))
    assert (rebuilt.config.frames, rebuilt.config.frame_stride) == (1, 1)
    assert rebuilt.config.input_norm == "fixed"
    frames, speed = _frames(2), torch.tensor([3.0, 15.0])
    torch.testing.assert_close(rebuilt(frames, speed), model.eval()(frames, speed))
    obs = {"image": frames[0].numpy(), "speed": np.array([3.0], np.float32)}
    assert NetPolicy.from_checkpoint(path).act(obs).shape == (2,)


def test_a_checkpoint_from_before_the_limit_input_loads_without_it(tmp_path):
    # given a checkpoint whose model_config predates the limit_input field
    model = PilotNet()
    path = tmp_path / "old.pt"
    _save(path, model)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model_config"]["limit_input"]
    torch.save(ckpt, path)
    # when it is rebuilt, then it takes no limit and drives from frames without one
    assert build_model(load_checkpoint(path)).config.limit_input is False
    obs = {"image": _frames(1)[0].numpy(), "speed": np.array([3.0], np.float32)}
    assert NetPolicy.from_checkpoint(path).act(obs).shape == (2,)


def test_a_checkpoint_from_before_the_shown_box_hides_its_rows_as_it_did(tmp_path):
    # given a checkpoint of a net with the sky hidden, whose model_config predates shown_box
    model = PilotNet(ModelConfig(hidden_rows=17, input_norm="per-frame"))
    path = tmp_path / "old.pt"
    _save(path, model)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model_config"]["shown_box"]
    torch.save(ckpt, path)
    # when it is rebuilt, then it hides all 17 rows and computes exactly what it did
    rebuilt = build_model(load_checkpoint(path))
    assert rebuilt.config.shown_box is None
    frames, speed = _frames(2), torch.tensor([3.0, 15.0])
    torch.testing.assert_close(rebuilt(frames, speed), model.eval()(frames, speed), atol=0, rtol=0)
    # and a net with a box keeps it through its checkpoint
    boxed = PilotNet(ModelConfig(hidden_rows=17, shown_box=BOX))
    _save(path, boxed)
    rebuilt = build_model(load_checkpoint(path))
    assert rebuilt.config.shown_box == BOX
    torch.testing.assert_close(rebuilt(frames, speed), boxed.eval()(frames, speed))


def test_a_policy_told_the_limit_round_trips_through_its_checkpoint(tmp_path):
    # given a net with the limit input, saved and loaded as a policy
    torch.manual_seed(0)
    model = PilotNet(ModelConfig(limit_input=True))
    path = tmp_path / "told.pt"
    _save(path, model)
    policy = NetPolicy.from_checkpoint(path)
    assert policy.model.config.limit_input
    # when it acts on an observation with the limit, then it computes the model's command
    frame = _frames(1, seed=4)[0]
    for limit in (8.0, 20.0):
        obs = {"image": frame.numpy(), "speed": np.array([12.0], np.float32)}
        obs["speed_limit"] = np.array([limit], np.float32)
        want = model.eval()(frame[None], torch.tensor([12.0]), torch.tensor([limit]))[0]
        np.testing.assert_allclose(policy.act(obs), want.detach().clamp(-1, 1), atol=1e-5)
    # and without the limit it says what is missing
    with pytest.raises(ValueError, match=r"speed limit \[m/s\]; add obs\['speed_limit'\]"):
        policy.act({"image": frame.numpy(), "speed": np.array([12.0], np.float32)})


def test_checkpoint_is_written_atomically(tmp_path):
    path = tmp_path / "last.pt"
    _save(path, PilotNet())
    _save(path, PilotNet(), step=8)  # overwriting goes through the same temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert load_checkpoint(path)["step"] == 8


class _RunsCode:
    """Unpickling this creates a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode(marker)
    pickle.loads(pickle.dumps(payload))  # the payload is live: plain unpickling runs it
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "kind": KIND, "model": payload}, path)
    with pytest.raises(CheckpointError, match="evil.pt.*pickled"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (np.random.default_rng(0).bytes(4096), "model.pt is not a PyTorch file"),
        (json.dumps({"kind": KIND, "model": {}}).encode(), "model.pt is not a PyTorch file"),
    ],
    ids=["random-bytes", "json"],
)
def test_files_that_are_not_checkpoints_are_refused(tmp_path, content, message):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nothere.pt not found"):
        load_checkpoint(tmp_path / "nothere.pt")


def test_state_dict_of_another_model_is_refused(tmp_path):
    bare = tmp_path / "linear.pt"
    torch.save(nn.Linear(3, 2).state_dict(), bare)
    with pytest.raises(CheckpointError, match="not a pixels-to-pedals PilotNet checkpoint"):
        load_checkpoint(bare)

    wrapped = tmp_path / "wrapped.pt"
    _save(wrapped, PilotNet(), model=nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(CheckpointError, match="does not match PilotNet: missing conv.0.weight"):
        build_model(load_checkpoint(wrapped), source=wrapped)

    other_size = tmp_path / "other_size.pt"
    _save(other_size, PilotNet(), model_config=ModelConfig(height=100, width=100))
    with pytest.raises(CheckpointError, match=r"head.0.weight has shape \(100, 1153\)"):
        build_model(load_checkpoint(other_size))


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format_version": 99, "kind": KIND}, path)
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(path)


# ---------------------------------------------------------------- policy


def test_policy_acts_with_clipped_float32_commands(tmp_path):
    model = PilotNet()
    with torch.no_grad():
        model.head[-1].bias.fill_(5.0)  # far outside [-1, 1]: act must clip
    path = tmp_path / "best.pt"
    _save(path, model)
    policy = NetPolicy.from_checkpoint(path)
    policy.reset()
    frame = _frames(1)[0].numpy()
    action = policy.act({"image": frame, "speed": np.array([8.0], np.float32)})
    assert action.dtype == np.float32
    assert action.tolist() == [1.0, 1.0]
    assert policy.image_shape == (66, 200)
    assert policy.world == World()  # world unknown: the default one at the net's frame size


def test_policy_matches_the_model_and_is_repeatable():
    model = PilotNet()
    policy = NetPolicy(model)
    frame = _frames(1, seed=3)[0]
    obs = {"image": frame.numpy(), "speed": np.array([12.0], np.float32)}
    first, second = policy.act(obs), policy.act(obs)
    expected = model(frame[None], torch.tensor([12.0]))[0].detach().clamp(-1, 1).numpy()
    np.testing.assert_allclose(first, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    ("obs", "message"),
    [
        ({"image": np.zeros((84, 84, 3), np.uint8), "speed": np.ones(1)}, "66x200x3.*84, 84"),
        ({"image": np.zeros((66, 200, 3), np.float32), "speed": np.ones(1)}, "uint8"),
        ({"image": np.zeros((66, 200, 3), np.uint8)}, "speed"),
    ],
    ids=["wrong-size", "wrong-dtype", "no-speed"],
)
def test_policy_explains_bad_observations(obs, message):
    with pytest.raises(ValueError, match=message):
        NetPolicy(PilotNet()).act(obs)


def test_a_stacking_policy_sees_the_first_frame_repeated_then_its_history():
    # given a net stacking 2 frames, 1 step apart
    model = PilotNet(ModelConfig(frames=2)).eval()
    policy = NetPolicy(model)
    f = [_frames(1, seed=s)[0] for s in range(5)]

    def expected(*frames):  # the model on the stack built by hand, oldest first
        stacked = torch.cat(frames, dim=-1)[None]  # (1, 66, 200, 6)
        return model(stacked, torch.tensor([5.0]))[0].detach().clamp(-1, 1).numpy()

    def act(frame):
        return policy.act({"image": frame.numpy(), "speed": np.array([5.0], np.float32)})

    policy.reset()
    np.testing.assert_allclose(act(f[0]), expected(f[0], f[0]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(act(f[1]), expected(f[0], f[1]), rtol=1e-4, atol=1e-5)
    # a frame the expert drove is taken in without acting, and kept as history
    policy.observe({"image": f[2].numpy(), "speed": np.array([5.0], np.float32)})
    np.testing.assert_allclose(act(f[3]), expected(f[2], f[3]), rtol=1e-4, atol=1e-5)
    assert torch.equal(policy.net_input[0], torch.cat([f[2], f[3]], dim=-1))
    # a new episode forgets the old one
    policy.reset()
    np.testing.assert_allclose(act(f[4]), expected(f[4], f[4]), rtol=1e-4, atol=1e-5)


def test_a_stacking_policy_looks_back_stride_steps():
    policy = NetPolicy(PilotNet(ModelConfig(frames=3, frame_stride=2)))
    f = [_frames(1, seed=s)[0] for s in range(6)]
    seen = []
    policy.reset()
    for frame in f:
        policy.act({"image": frame.numpy(), "speed": np.array([5.0], np.float32)})
        slots = policy.net_input[0].split(3, dim=-1)  # the 3 stacked frames, oldest first
        seen.append([next(i for i, g in enumerate(f) if torch.equal(slot, g)) for slot in slots])
    # the same rows as training gathers for one 6-step episode
    assert seen == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 3], [0, 2, 4], [1, 3, 5]]
    episode = Frames(
        frames=np.zeros((6, 1, 1, 3), np.uint8),
        labels=np.zeros((6, 2), np.float32),
        speed=np.zeros(6, np.float32),
        episode=np.zeros(6, np.int32),
        viewpoint=np.zeros(6, bool),
    )
    assert stack_indices(episode, k=3, stride=2).tolist() == seen
