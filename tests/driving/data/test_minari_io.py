"""Minari export and import: the real `minari.load_dataset` reads what `to_minari` wrote, and
`from_minari` gives the same episodes back."""

import sys

import gymnasium
import minari
import numpy as np
import pytest
from conftest import write_drives

from driving.data import DatasetError, read_episode, scan
from driving.data.minari_io import from_minari, to_minari
from envs.world import World


@pytest.fixture
def minari_home(tmp_path, monkeypatch):
    """Minari's datasets folder inside the test's tmp dir."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_minari_loads_the_export_with_observations_actions_and_episode_ends(tmp_path, minari_home):
    # given two 3-second drives (30 steps each) of two roads
    episodes = write_drives(tmp_path / "data", [4, 5])
    # when exported
    summary = to_minari(tmp_path / "data", "pixels-to-pedals/test-v0")
    # then Minari's own loader reads them back
    dataset = minari.load_dataset("pixels-to-pedals/test-v0")
    assert summary["episodes"] == dataset.total_episodes == 2
    assert dataset.total_steps == summary["steps"] == 60
    assert (minari_home / "pixels-to-pedals" / "test-v0" / "data").is_dir()
    for ours, theirs in zip(episodes, dataset.iterate_episodes(), strict=True):
        assert theirs.observations["image"].shape == (31, 66, 200, 3)
        np.testing.assert_array_equal(theirs.observations["image"][:30], ours.frames)  # lossless
        np.testing.assert_array_equal(theirs.observations["image"][30], ours.last_frame)
        np.testing.assert_array_equal(theirs.observations["speed"][:30, 0], ours.speed)
        assert theirs.observations["speed"][30, 0] == pytest.approx(ours.meta["last_speed"])
        assert theirs.observations["speed_limit"][:, 0].tolist() == [15.0] * 31  # [m/s]
        np.testing.assert_array_equal(theirs.actions, ours.actions)  # executed, noise included
        np.testing.assert_array_equal(theirs.infos["expert_action"][:30], ours.labels)
        assert np.isnan(theirs.infos["expert_action"][30]).all()
        assert np.isnan(theirs.rewards).all()  # not recorded by the demonstrations
        # a 3-second drive stops at its time limit: truncated, not terminated
        assert theirs.truncations.tolist() == [False] * 29 + [True]
        assert not theirs.terminations.any()
    metadata = list(dataset.storage.get_episode_metadata([0, 1]))
    assert [m["seed"] for m in metadata] == [4, 5]
    assert metadata[0]["pixels_to_pedals"]["fps"] == 10
    # and the env spec rebuilds the world of the data
    assert dataset.env_spec.id == "WindingRoad-v0"
    env = dataset.recover_environment()
    assert env.get_wrapper_attr("world") == World()
    assert env.observation_space == dataset.observation_space


def test_import_back_gives_the_same_episodes(tmp_path, minari_home):
    episodes = write_drives(tmp_path / "data", [6, 7])
    to_minari(tmp_path / "data", "trip-v0")
    summary = from_minari("trip-v0", tmp_path / "back")
    assert summary["episodes"] == 2 and summary["frames"] == 60
    back = [read_episode(p) for p in scan(tmp_path / "back")[0]]
    for ours, theirs in zip(episodes, back, strict=True):
        names = ("frames", "labels", "actions", "speed", "lateral_offset", "heading_error")
        for name in (*names, "speed_limit"):
            np.testing.assert_array_equal(getattr(theirs, name), getattr(ours, name), err_msg=name)
        np.testing.assert_array_equal(theirs.last_frame, ours.last_frame)
        assert theirs.seed == ours.seed
        assert theirs.meta == ours.meta
        assert theirs.world == ours.world


def test_a_taken_id_is_refused_and_left_alone(tmp_path, minari_home):
    write_drives(tmp_path / "data", [8], seconds=1.0)
    to_minari(tmp_path / "data", "taken-v0")
    with pytest.raises(DatasetError, match="cannot write Minari dataset 'taken-v0'"):
        to_minari(tmp_path / "data", "taken-v0")
    assert minari.load_dataset("taken-v0").total_episodes == 1


def test_missing_minari_names_the_extra(tmp_path, monkeypatch, minari_home):
    write_drives(tmp_path / "data", [9], seconds=1.0)
    monkeypatch.setitem(sys.modules, "minari", None)  # as if not installed
    with pytest.raises(DatasetError, match=r"pip install 'pixels-to-pedals\[export\]'"):
        to_minari(tmp_path / "data", "x-v0")


def test_gymnasium_can_rebuild_the_env_from_the_spec_alone(tmp_path, minari_home):
    write_drives(tmp_path / "data", [10], seconds=1.0)
    to_minari(tmp_path / "data", "spec-v0")
    spec = minari.load_dataset("spec-v0").env_spec
    env = gymnasium.make(spec)
    obs, _ = env.reset(seed=10)
    assert obs["image"].shape == (66, 200, 3)
