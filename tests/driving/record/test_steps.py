"""An episode records the frame rate and its last observation, and both survive the disk."""

import numpy as np
import pytest

from driving.data import read_episode, write_episode
from driving.record.collect import NoiseConfig, run_expert_episode
from envs.world import World, make_env, make_expert


def test_a_drive_keeps_its_frame_rate_and_last_observation_through_the_disk(tmp_path):
    # given a short drive (3 s at 10 Hz) in an env that renders its latest camera frame
    env = make_env(render_mode="rgb_array", duration=3.0)
    env.world = World()
    driven, _ = run_expert_episode(env, make_expert(env), 7, NoiseConfig())
    # then the episode holds the frame seen after its last step, not a copy of its last row
    assert len(driven.frames) == 30
    np.testing.assert_array_equal(driven.last_frame, env.render())
    assert not np.array_equal(driven.last_frame, driven.frames[-1])
    assert driven.meta["fps"] == 10
    assert driven.meta["last_speed"] == pytest.approx(
        env.unwrapped.vehicle.speed, abs=1e-5
    )  # [m/s]
    # when written and read back, then both are still there
    back = read_episode(write_episode(tmp_path / "data", driven))
    np.testing.assert_array_equal(back.last_frame, driven.last_frame)
    assert back.meta["fps"] == 10 and back.meta["last_speed"] == driven.meta["last_speed"]
