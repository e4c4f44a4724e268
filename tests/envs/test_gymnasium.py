"""gymnasium citizenship: every registered id passes `check_env` with rendering on, `RecordVideo`
writes a playable mp4 of a drive, and the ids can be made without importing `envs` first."""

import subprocess
import sys

import gymnasium
import imageio_ffmpeg
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import RecordVideo

import envs  # noqa: F401  (registers the ids)
from envs.world import make_env

OUR_IDS = sorted(k for k, s in gymnasium.registry.items() if str(s.entry_point).startswith("envs."))


def test_our_three_ids_are_registered():
    assert OUR_IDS == ["HighwayTraffic-v0", "WindingRoad-v0", "WindingTraffic-v0"]


# The registered env is the camera wrapper around highway-env's env (the wrapper is what makes
# observations frames), so check_env sees a wrapped env and says so; every other warning fails.
@pytest.mark.filterwarnings("ignore:.*different from the unwrapped")
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("env_id", OUR_IDS)
def test_registered_id_passes_check_env_with_rendering(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array")
    assert env.render_mode == "rgb_array"
    assert env.metadata["render_fps"] == env.unwrapped.config["policy_frequency"]
    check_env(env)  # the render check included
    obs, _ = env.reset(seed=3)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == obs["image"].shape
    np.testing.assert_array_equal(frame, obs["image"])  # the camera frame the policy sees
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(env.render(), obs["image"])


def test_render_is_none_without_render_mode_and_unknown_modes_are_refused():
    env = make_env()
    env.reset(seed=1)
    assert env.render_mode is None and env.render() is None
    with pytest.raises(ValueError, match="render_mode must be None or one of"):
        make_env(render_mode="human")


def _mp4_frames(path) -> tuple[int, tuple[int, int]]:
    """(frames decoded by ffmpeg, (width, height) [px]) of a video file."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return sum(1 for _ in reader), tuple(meta["size"])


def test_record_video_writes_a_playable_mp4_of_a_drive(tmp_path):
    env = gymnasium.make("WindingRoad-v0", render_mode="rgb_array")
    env = RecordVideo(
        env, str(tmp_path / "videos"), episode_trigger=lambda episode: True, name_prefix="drive"
    )
    env.reset(seed=5)
    steps = 25
    for _ in range(steps):
        env.step(np.array([0.0, 0.3], np.float32))
    env.close()  # finishes the video
    videos = sorted((tmp_path / "videos").glob("drive-episode-0.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
    count, size = _mp4_frames(videos[0])
    assert count == steps + 1  # the reset frame and one per step
    assert size == (200, 66)


def test_an_id_can_be_made_without_importing_envs_first():
    # gymnasium >= 1.0 has no plugin loader: "module:id" imports the registering module.
    code = (
        "import sys, gymnasium\n"
        "assert 'envs' not in sys.modules\n"
        "env = gymnasium.make('envs:WindingRoad-v0')\n"
        "obs, _ = env.reset(seed=1)\n"
        "print(obs['image'].shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(66, 200, 3)"
