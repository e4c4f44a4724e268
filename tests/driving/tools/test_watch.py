"""`drive watch`: watch frames, the headless mp4 fallback, the live window's keys."""

import imageio_ffmpeg
import numpy as np
import pygame
import pytest
from conftest import TRAFFIC

from driving.cli import main
from driving.draw.window import WindowError
from driving.rollout.loop import drive
from driving.tools.watch import OVERVIEW, RunningMetrics, WatchConfig, open_window, play, watch
from envs.camera import Camera
from envs.expert import Expert
from envs.world import World, make_env


@pytest.fixture
def no_display(monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")


@pytest.fixture
def offscreen(monkeypatch):
    """A real pygame window on SDL's offscreen driver: keys can be posted as events."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")


def read_mp4(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]


def test_headless_watch_writes_the_view_to_mp4(tmp_path, no_display, capsys):
    summary = watch(WatchConfig("expert", out=tmp_path, max_steps=6))

    assert summary["mode"] == "mp4"
    (video,) = summary["videos"]
    assert video == tmp_path / "watch_1000000.mp4" and video.stat().st_size > 0
    frames = read_mp4(video)
    assert len(frames) == 6
    frame = frames[-1]
    assert frame.shape[0] >= OVERVIEW.height and frame.shape[1] >= OVERVIEW.width + 600
    assert frame.std() > 20  # road, ground, text: not a blank picture
    assert summary["roads"][0]["steps"] == 6 and summary["roads"][0]["distance_m"] > 0
    assert "writing mp4 files instead" in capsys.readouterr().out


def test_watch_frame_shows_overview_and_the_camera_image_it_is_given():
    env = make_env()
    expert = Expert(env)
    top = Camera(OVERVIEW)
    metrics = RunningMetrics(seed=1_000_003)
    step = next(drive(env, expert, expert, metrics.seed))
    top.reset(env.unwrapped.road)
    metrics.update(step)
    overview = top.render(env.unwrapped.road, env.unwrapped.vehicle)
    magenta = np.zeros_like(step.obs["image"])
    magenta[...] = (255, 0, 255)  # stands in for a saliency blend

    from driving.tools.watch import watch_frame

    plain = watch_frame(step, overview, metrics)
    marked = watch_frame(step, overview, metrics, camera=magenta)

    assert plain.shape == marked.shape
    left = marked[: OVERVIEW.height, : OVERVIEW.width - 2]
    assert np.array_equal(left, plain[: OVERVIEW.height, : OVERVIEW.width - 2])  # same overview
    is_magenta = np.all(marked == (255, 0, 255), axis=-1)
    assert is_magenta[:, OVERVIEW.width :].mean() > 0.3  # the camera panel shows the given image
    assert not is_magenta[:, : OVERVIEW.width].any()
    assert not np.all(plain == (255, 0, 255), axis=-1).any()


def frames_posting(key, at: int, consumed: list):
    """An endless stream of frames that presses `key` when frame `at` is shown."""
    frame = np.full((320, 920, 3), 90, np.uint8)
    while True:
        consumed.append(1)
        if len(consumed) == at:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
        yield frame


@pytest.mark.parametrize("key", [pygame.K_ESCAPE, pygame.K_q])
def test_window_quits_on_escape_or_q(offscreen, key):
    window = open_window("window", (920, 320))
    consumed: list = []
    try:
        assert play(frames_posting(key, 3, consumed), window, fps=100) is True
    finally:
        window.close()
    assert len(consumed) == 3


def test_space_pauses_until_pressed_again(offscreen):
    window = open_window("window", (920, 320))
    consumed: list = []

    def frames():
        frame = np.zeros((320, 920, 3), np.uint8)
        consumed.append(1)
        # Paused at once; the second space resumes, then Esc after the next frame quits.
        for key in (pygame.K_SPACE, pygame.K_SPACE):
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
        yield frame
        consumed.append(1)
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
        yield frame
        consumed.append(1)  # never reached: Esc quit
        yield frame

    try:
        assert play(frames(), window, fps=100) is True
    finally:
        window.close()
    assert len(consumed) == 2


def test_asking_for_a_window_without_a_display_is_one_error(no_display):
    with pytest.raises(WindowError, match="use --display mp4"):
        open_window("window", (920, 320))
    assert open_window("auto", (920, 320)) is None
    assert open_window("mp4", (920, 320)) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["watch", "--policy", "nowhere.pt"],
        ["watch", "--policy", "expert", "--episodes", "0"],
        ["watch", "--policy", "expert", "--max-steps", "0"],
        ["watch", "--policy", "expert", "--display", "window"],
    ],
)
def test_bad_watch_input_is_one_error_line(argv, no_display, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert not (tmp_path / "w").exists()


def test_watch_has_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["watch", "--help"])
    assert exit_.value.code == 0
    assert "--seed-offset" in capsys.readouterr().out


def test_a_display_that_cannot_be_reached_falls_back_to_mp4(monkeypatch, capsys):
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":99")  # set, but no X server there
    monkeypatch.setattr("sys.platform", "linux")
    assert open_window("auto", (920, 320)) is None
    assert "writing mp4 files instead" in capsys.readouterr().out


def test_watch_blends_the_nets_saliency_onto_the_camera_frame(tmp_path, no_display):
    import torch

    from driving.learn.checkpoint import save_checkpoint
    from driving.learn.model import ModelConfig, PilotNet

    torch.manual_seed(0)
    path = tmp_path / "net.pt"
    save_checkpoint(
        path, model=PilotNet(), model_config=ModelConfig(), optimizer=None, step=0, epoch=0,
        best_val=None, config={},
    )  # fmt: skip
    plain = watch(WatchConfig(str(path), out=tmp_path / "plain", max_steps=3))
    salient = watch(WatchConfig(str(path), out=tmp_path / "salient", max_steps=3, saliency=True))
    a, b = read_mp4(plain["videos"][0])[-1], read_mp4(salient["videos"][0])[-1]
    left = OVERVIEW.width  # the overview is the same; the camera panel on the right differs
    assert np.abs(a[:, :left].astype(int) - b[:, :left]).mean() < 2
    assert np.abs(a[:, left:].astype(int) - b[:, left:]).mean() > 2
    assert plain["roads"] == salient["roads"]  # the overlay does not change the driving


def test_watch_drives_a_net_that_stacks_frames_with_its_saliency(tmp_path, no_display):
    from driving.learn.checkpoint import save_checkpoint
    from driving.learn.model import ModelConfig, PilotNet

    config = ModelConfig(frames=3, frame_stride=2)
    path = tmp_path / "net.pt"
    save_checkpoint(
        path, model=PilotNet(config), model_config=config, optimizer=None, step=0, epoch=0,
        best_val=None, config={},
    )  # fmt: skip
    result = watch(WatchConfig(str(path), out=tmp_path, max_steps=3, saliency=True))
    assert len(read_mp4(result["videos"][0])) == 3 and result["roads"][0]["steps"] == 3


def test_saliency_needs_a_network_policy(no_display):
    with pytest.raises(ValueError, match="saliency"):
        WatchConfig("expert", saliency=True).validate()


def test_a_traffic_policy_is_watched_in_the_traffic_it_learned_in(
    traffic_checkpoint, tmp_path, no_display
):
    summary = watch(WatchConfig(str(traffic_checkpoint), out=tmp_path, max_steps=5))
    assert World.from_dict(summary["world"]) == TRAFFIC
    overview = read_mp4(summary["videos"][0])[-1][: OVERVIEW.height, : OVERVIEW.width].astype(int)
    red, blue = overview[..., 0], overview[..., 2]
    assert ((blue > 180) & (red < 120)).sum() > 30  # other cars (drawn blue) around the ego
