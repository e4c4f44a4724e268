"""VisualBackProp saliency, its overlay, the cue measurement and `drive saliency`."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TRAFFIC, record_drive, save_untrained

from driving.cli import main
from driving.data import write_episode
from driving.draw.overlays import saliency_overlay
from driving.learn.model import ModelConfig, PilotNet
from driving.learn.saliency import VisualBackProp, class_shares, summarize_shares
from driving.tools.saliency import SaliencyConfig, run_saliency
from envs.camera import GROUND_RGB, MARKING_RGB, ROAD_RGB
from envs.world import World, make_env


def contrast_net() -> PilotNet:
    """A PilotNet whose first layer responds to contrast only, the rest random.

    Each first-layer filter is the difference of two pixels of one colour channel (+1 at one tap,
    -1 at another, no bias): its response is exactly 0 on a uniform patch, whatever the order of
    the float sums, and non-zero across an edge (the kind of filter trained nets learn first).
    A random-init net responds to nothing in particular; what VisualBackProp itself must get right
    is to put the saliency where the features fire, at the right pixels: that is what these tests
    check.
    """
    torch.manual_seed(0)
    model = PilotNet(ModelConfig()).eval()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        weight = torch.zeros_like(model.conv[0].weight)  # (24, 3, 5, 5)
        for out in range(weight.shape[0]):
            channel = int(rng.integers(3))
            plus, minus = rng.choice(25, size=2, replace=False)
            weight[out, channel].view(-1)[plus] = 1.0
            weight[out, channel].view(-1)[minus] = -1.0
        model.conv[0].weight.copy_(weight)
        model.conv[0].bias.zero_()
    return model


def road_frame(markings: list[int], road=(60, 140)) -> np.ndarray:
    """A hand-made 66x200 frame: ground, a road between columns `road`, 2 px markings."""
    frame = np.empty((66, 200, 3), np.uint8)
    frame[:] = GROUND_RGB
    frame[:, road[0] : road[1]] = ROAD_RGB
    for column in markings:
        frame[:, column : column + 2] = MARKING_RGB
    return frame


def test_map_has_the_input_size_and_range_and_ignores_speed():
    frames = np.stack([road_frame([99]), road_frame([70, 128])])
    vbp = VisualBackProp(contrast_net())
    maps = vbp(frames, torch.tensor([5.0, 10.0]))
    assert maps.shape == (2, 66, 200) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max(axis=(1, 2)) == pytest.approx([1.0, 1.0])
    assert np.array_equal(maps, vbp(frames, torch.tensor([25.0, 0.0])))
    assert np.allclose(maps[1], vbp(frames[1:])[0], atol=1e-6)  # frames are independent


def test_a_stacking_net_has_one_map_per_stack_and_a_single_frame_counts_as_a_still_scene():
    torch.manual_seed(0)
    vbp = VisualBackProp(PilotNet(ModelConfig(frames=2)).eval())
    frames = np.stack([road_frame([99]), road_frame([70, 128])])
    stacked = np.concatenate([frames[[1, 0]], frames], axis=-1)  # (2, 66, 200, 6), oldest first
    maps = vbp(stacked)
    assert maps.shape == (2, 66, 200) and maps.max(axis=(1, 2)) == pytest.approx([1.0, 1.0])
    still = np.concatenate([frames, frames], axis=-1)
    np.testing.assert_array_equal(vbp(frames), vbp(still))
    with pytest.raises(ValueError, match="6"):
        vbp(stacked[..., :4])


def test_saliency_is_on_the_lane_marking_not_on_empty_road_or_ground():
    vbp = VisualBackProp(contrast_net())
    with_marking, without = vbp(np.stack([road_frame([99]), road_frame([])]))
    near_marking = slice(96, 104)
    # Given the same road with and without a centre marking, the map is high at the marking...
    assert with_marking[:, near_marking].mean() > 0.2
    # ...and exactly zero there without it: a uniform patch fires no first-layer feature.
    assert np.all(without[:, near_marking] == 0)
    # Away from every edge (ground far left, road between edges and marking) it is zero too.
    assert np.all(with_marking[:, :45] == 0) and np.all(with_marking[:, 75:88] == 0)
    # And the share of the mass on the marking's columns grows when the marking is there.
    share = [m[:, near_marking].sum() / m.sum() for m in (with_marking, without)]
    assert share[0] > 0.2 > share[1] == 0


@pytest.mark.parametrize("column", [30, 100, 165])
def test_saliency_peak_follows_the_marking_across_the_frame(column):
    frame = np.empty((66, 200, 3), np.uint8)
    frame[:] = ROAD_RGB
    frame[:, column : column + 2] = MARKING_RGB
    saliency = VisualBackProp(contrast_net())(frame[None])[0]
    assert abs(int(saliency.sum(axis=0).argmax()) - column) <= 2
    rows = saliency.sum(axis=1)
    assert rows[5:-5].min() > 0  # the whole marking, top to bottom, not a shifted part


def test_uniform_frame_has_zero_saliency_not_nan():
    frame = np.full((1, 66, 200, 3), 64, np.uint8)
    saliency = VisualBackProp(contrast_net())(frame)
    assert np.all(saliency == 0)


def test_upsampling_spreads_each_value_over_its_receptive_field():
    # Reference: every output value of a 5x5 stride-2 conv added to the input pixels it read.
    conv = torch.nn.Conv2d(1, 1, 5, stride=2)
    size = (14, 47)  # PilotNet's second feature map; the third is 5x22
    mask = torch.rand(1, 1, 5, 22, generator=torch.Generator().manual_seed(0))
    expected = np.zeros(size)
    for i in range(5):
        for j in range(22):
            expected[2 * i : 2 * i + 5, 2 * j : 2 * j + 5] += mask[0, 0, i, j].item()
    got = VisualBackProp._upsample(mask, conv, size)[0, 0].numpy()
    assert got.shape == size
    assert np.allclose(got, expected, atol=1e-6)
    assert F.conv2d(torch.ones(1, 1, *size), torch.ones(1, 1, 5, 5), stride=2).shape[-2:] == (5, 22)


def test_overlay_keeps_the_frame_where_saliency_is_zero_and_colours_it_where_high():
    frame = road_frame([99])
    saliency = np.zeros((66, 200), np.float32)
    saliency[:, 150:] = 1.0
    out = saliency_overlay(frame, saliency)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(out[:, :150], frame[:, :150])
    assert np.abs(out[:, 150:].astype(int) - frame[:, 150:]).sum(axis=-1).min() > 60
    with pytest.raises(ValueError, match="saliency map"):
        saliency_overlay(frame, saliency[:10])


def test_class_shares_on_a_hand_made_map():
    # 1 frame, 2x4 px: classes 0 ground, 1 road, 2 marking, 3 vehicle, 4 ego.
    masks = np.array([[[0, 0, 1, 2], [0, 1, 3, 4]]], np.uint8)
    maps = np.array([[[0.0, 0.0, 1.0, 2.0], [1.0, 1.0, 4.0, 1.0]]])  # total 10
    shares = class_shares(maps, masks)
    assert shares["cues_saliency"] == pytest.approx([0.6])  # marking 2 + vehicle 4
    assert shares["cues_pixels"] == pytest.approx([2 / 8])
    assert shares["road_surface_saliency"] == pytest.approx([0.2])
    assert shares["ground_saliency"] == pytest.approx([0.1])
    assert shares["ego_saliency"] == pytest.approx([0.1])
    summary = summarize_shares(shares)
    assert summary["cues"]["ratio"] == pytest.approx(0.6 / 0.25)
    assert summary["ground"]["pixel_share"] == pytest.approx(3 / 8)


@pytest.fixture
def checkpoint(tmp_path):
    return save_untrained(tmp_path / "net.pt")


@pytest.mark.slow
def test_drive_saliency_measures_live_roads_and_writes_a_grid(tmp_path, checkpoint, capsys):
    out = tmp_path / "sal"
    argv = ["saliency", "--policy", str(checkpoint), "--roads", "1", "--every", "5"]
    assert main([*argv, "--pictures", "4", "--out", str(out)]) == 0
    report = json.loads((out / "saliency.json").read_text())
    assert report["frames"] >= 4
    shares = report["policy_shares"]
    assert sum(shares[c]["pixel_share"] for c in shares) == pytest.approx(1.0)
    assert sum(shares[c]["saliency_share"] for c in shares) == pytest.approx(1.0)
    assert 0 < shares["cues"]["pixel_share"] < 0.2
    grid = (out / "saliency_grid.png").read_bytes()
    assert grid.startswith(b"\x89PNG") and len(grid) > 5_000
    assert "cues" in capsys.readouterr().out


def test_drive_saliency_on_stored_frames_draws_a_grid_but_measures_no_cues(tmp_path, checkpoint):
    still = np.zeros(2, np.float32)
    episode = record_drive(make_env(), 3, 5, lambda obs: (still, still), meta={})
    write_episode(tmp_path / "data", episode)
    out = tmp_path / "sal"
    argv = ["saliency", "--policy", str(checkpoint), "--data", str(tmp_path / "data")]
    assert main([*argv, "--pictures", "3", "--out", str(out)]) == 0
    assert (out / "saliency_grid.png").stat().st_size > 2_000
    assert "policy_shares" not in json.loads((out / "saliency.json").read_text())


@pytest.mark.parametrize("flag", ["--roads", "--every", "--pictures"])
def test_bad_counts_are_one_line_errors(flag, checkpoint, tmp_path, capsys):
    assert main(["saliency", "--policy", str(checkpoint), flag, "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and flag in err and "\n" not in err


@pytest.mark.slow
def test_a_traffic_policy_is_explained_in_the_traffic_it_learned_in(traffic_checkpoint, tmp_path):
    config = SaliencyConfig(str(traffic_checkpoint), roads=1, every=5, pictures=2, out=tmp_path)
    report = run_saliency(config)
    assert World.from_dict(report["world"]) == TRAFFIC
    assert report["vehicles_in_view"] > 0  # the sampled frames show other cars
