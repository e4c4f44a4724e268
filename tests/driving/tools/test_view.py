"""`drive view`: contact sheet, label distributions and an episode video of a real dataset."""

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from conftest import record_drive

from driving.cli import main
from driving.data import write_episode
from driving.draw.video import GREEN
from driving.record.collect import CollectConfig, collect
from driving.tools.view import (
    CAPTION,
    CELL_SCALE,
    ViewConfig,
    radius_shares,
    sample_positions,
    view,
)
from envs.camera import EGO_RGB, GROUND_RGB
from envs.expert import Expert
from envs.world import make_env

STEPS = 25  # per episode: short roads keep the test fast


def nudged_left(expert: Expert):
    """The expert's label, and as the action the label with a steady nudge to the left."""

    def drive(obs: dict) -> tuple[np.ndarray, np.ndarray]:
        label = expert.act(obs)
        return label, np.clip(label + [-0.1, 0.2], -1, 1).astype(np.float32)

    return drive


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("view") / "data"
    env = make_env()
    expert = Expert(env)
    for seed in (3, 4):
        expert.reset()
        write_episode(root, record_drive(env, seed, STEPS, nudged_left(expert)))
    return root


def read_png(path):
    return cv2.imread(str(path))[..., ::-1]  # RGB


def share_of(image, rgb, tolerance=12):
    return np.mean(np.all(np.abs(image.astype(int) - rgb) <= tolerance, axis=-1))


def test_view_writes_sheet_plots_and_video(dataset, tmp_path):
    out = tmp_path / "view"
    written = view(ViewConfig(dataset, out=out, samples=8, episode=4))

    sheet = read_png(written["contact_sheet"])
    cell_h, cell_w = 66 * CELL_SCALE + CAPTION, 200 * CELL_SCALE
    assert sheet.shape == (2 * (cell_h + 2) - 2, 4 * (cell_w + 2) - 2, 3)  # 8 frames, 4 a row
    assert sheet.std() > 30
    assert share_of(sheet, GROUND_RGB) > 0.2 and share_of(sheet, EGO_RGB) > 0.002
    assert share_of(sheet, GREEN) > 0.002  # the steering arrows and throttle bars

    plots = read_png(written["distributions"])
    assert plots.std() > 20
    assert share_of(plots, (255, 255, 255), 3) > 0.3  # white figure
    greenish = (plots[..., 1] > plots[..., 0] + 40) & (plots[..., 1] > plots[..., 2] + 40)
    reddish = (plots[..., 0] > plots[..., 1] + 80) & (plots[..., 0] > plots[..., 2] + 80)
    assert greenish.mean() > 0.005 and reddish.mean() > 0.001  # labels and executed actions

    assert written["video"] == out / "episode_4.mp4"
    reader = imageio_ffmpeg.read_frames(str(written["video"]))
    next(reader)
    assert sum(1 for _ in reader) == STEPS == written["frames"]


def test_coverage_counts_frames_by_bend_radius_and_hard_braking():
    curvature = np.array([0.0, 1 / 17, -1 / 30, 1 / 30, 1 / 150, 1 / 500, 1e-5, 1 / 12])
    shares = radius_shares(curvature)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["20-40 m"] == pytest.approx(2 / 8)  # a bend either way
    assert shares["15-20 m"] == shares["< 15 m"] == shares["100-250 m"] == pytest.approx(1 / 8)
    assert shares["straight"] == pytest.approx(2 / 8)  # 0 and a radius of 100 km


def test_view_writes_the_coverage_plot_of_a_collected_dataset(tmp_path):
    data = tmp_path / "data"
    collect(CollectConfig(out=data, episodes=2))  # whole roads: bends and straights
    written = view(ViewConfig(data, out=tmp_path / "view", samples=2))
    assert read_png(written["coverage"]).std() > 20
    shares = written["radius_shares"]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["straight"] > 0.05 and shares["100-250 m"] > 0.05
    assert shares["< 15 m"] == shares["15-20 m"] == shares["20-40 m"] == 0  # default roads
    assert 0.0 <= written["hard_braking_share"] < 0.05


def test_a_dataset_without_recorded_curvature_has_no_radius_shares(dataset, tmp_path):
    written = view(ViewConfig(dataset, out=tmp_path, samples=2))
    assert sum(written["radius_shares"].values()) == 0  # not recorded by this writer
    assert written["coverage"].exists()


def test_default_output_is_inside_the_dataset_with_the_first_episode(dataset):
    written = view(ViewConfig(dataset, samples=3))
    assert written["contact_sheet"].parent == dataset / "view"
    assert written["video"].name == "episode_3.mp4"


def test_samples_spread_evenly_over_all_episodes():
    positions = sample_positions([10, 5, 20], 5)
    assert positions == [(0, 0), (0, 8), (2, 2), (2, 11), (2, 19)]  # even over frames, both ends
    positions = sample_positions([10, 10, 10], 6)
    assert [e for e, _ in positions] == [0, 0, 1, 1, 2, 2]
    assert len(sample_positions([3, 2], 100)) == 5  # never more than the frames there are


@pytest.mark.parametrize(
    "extra, message",
    [(["--episode", "99"], "no episode with seed 99"), (["--samples", "0"], "--samples")],
)
def test_bad_view_input_is_one_error_line(dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "v"
    assert main(["view", str(dataset), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not out.exists()


def test_viewing_a_folder_that_is_not_a_dataset_is_one_error_line(tmp_path, capsys):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    assert main(["view", str(tmp_path), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not a dataset" in err and "\n" not in err, err


def test_view_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["view", "--help"])
    assert "--samples" in capsys.readouterr().out
