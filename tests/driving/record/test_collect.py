"""Collection: expert labels, noise only on the executed action, idempotent and kill-safe."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from driving.data import load_split, read_episode, scan, used_seeds
from driving.record.collect import CollectConfig, NoiseConfig, collect
from driving.record.viewpoint import ViewpointConfig
from envs.road import RoadSettings, make_road
from envs.world import World


def test_noise_changes_the_executed_action_and_leaves_the_label_clean(tmp_path):
    collect(CollectConfig(out=tmp_path / "noisy", episodes=1, noise=NoiseConfig(0.05, 0.1, 0.9)))
    collect(CollectConfig(out=tmp_path / "clean", episodes=1, noise=NoiseConfig(0.0, 0.0, 0.0)))
    noisy = read_episode(scan(tmp_path / "noisy")[0][0])
    clean = read_episode(scan(tmp_path / "clean")[0][0])
    assert np.array_equal(clean.labels, clean.actions)
    assert np.abs(noisy.actions - noisy.labels).mean() > 0.02
    # The noisy car drifts further from the centre than the clean one.
    assert np.abs(noisy.lateral_offset).max() > 2 * np.abs(clean.lateral_offset).max()
    assert noisy.world == World() and noisy.meta["driver"] == "expert"
    assert noisy.frames.shape[1:] == (66, 200, 3) and noisy.frames.dtype == np.uint8


def test_start_anywhere_records_drives_from_points_along_the_road(tmp_path):
    collect(CollectConfig(out=tmp_path / "any", episodes=2, world=World(start="anywhere")))
    collect(CollectConfig(out=tmp_path / "whole", episodes=2))
    for anywhere, whole in zip(scan(tmp_path / "any")[0], scan(tmp_path / "whole")[0], strict=True):
        episode, full = read_episode(anywhere), read_episode(whole)
        assert episode.seed == full.seed and episode.world.start == "anywhere"
        assert episode.meta["outcome"]["reached_end"] and not episode.meta["outcome"]["crashed"]
        # Roads 0 and 1 start about half-way (tests/envs/test_world.py checks the range).
        assert 400 / 20 * 10 < len(episode.labels) < 0.7 * len(full.labels)
        assert episode.frames.std() > 10


def test_start_bend_records_drives_that_take_the_roads_tightest_bend_early(tmp_path):
    clean = NoiseConfig(0.0, 0.0, 0.0)  # labels then steer only as the road bends
    collect(
        CollectConfig(out=tmp_path / "bend", episodes=2, world=World(start="bend"), noise=clean)
    )
    collect(CollectConfig(out=tmp_path / "whole", episodes=2, noise=clean))
    for bend, whole in zip(scan(tmp_path / "bend")[0], scan(tmp_path / "whole")[0], strict=True):
        episode, full = read_episode(bend), read_episode(whole)
        assert episode.world.start == "bend" and episode.meta["outcome"]["reached_end"]
        # The road's hardest steering (its tightest bend) comes within the first 140 steps.
        hardest = np.abs(full.labels[:, 0]).max()
        assert np.abs(episode.labels[:140, 0]).max() > 0.9 * hardest


def test_collection_records_each_roads_speed_limit_at_every_step_and_in_shifted_views(tmp_path):
    # given roads whose limits are drawn per road, driven for 3 s each with shifted views
    world = World(road=RoadSettings(limit_range=(8.0, 22.0)), duration_s=3.0)
    out = tmp_path / "told"
    collect(CollectConfig(out=out, episodes=2, world=world, viewpoint=ViewpointConfig(views=1)))
    # then every episode, driven or shifted view, holds its road's limit at every step
    limits = {seed: np.float32(make_road(seed, world.road).speed_limit) for seed in (0, 1)}
    drivers = set()
    for path in scan(out)[0]:
        episode = read_episode(path)
        assert episode.speed_limit.tolist() == [limits[episode.seed]] * len(episode.frames)
        drivers.add(episode.meta["driver"])
    assert drivers == {"expert", "viewpoint"} and limits[0] != limits[1]
    # and training reads one limit per row
    train, _ = load_split(out, val_fraction=0.0)
    assert set(train.speed_limit.tolist()) == set(limits.values())


def test_rerun_completes_instead_of_duplicating(tmp_path):
    out = tmp_path / "data"
    collect(CollectConfig(out=out, episodes=2))
    assert collect(CollectConfig(out=out, episodes=2))["episodes"] == 0
    collect(CollectConfig(out=out, episodes=3))
    assert used_seeds(out) == {0, 1, 2}
    assert len(scan(out)[0]) == 3


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="--roads"):
        CollectConfig(out=Path("x"), episodes=0).validate()
    with pytest.raises(ValueError, match="workers"):
        CollectConfig(out=Path("x"), workers=0).validate()
    with pytest.raises(ValueError, match="below 1,000,000"):
        CollectConfig(out=Path("x"), first_seed=999_999, episodes=2).validate()
    with pytest.raises(ValueError, match="--start anywhere is for 'winding-road'"):
        world = World(scenario="highway-traffic", start="anywhere")
        CollectConfig(out=Path("x"), world=world).validate()


def _episodes_on_disk(out: Path) -> int:
    return len(list(out.glob("episode_*.h5")))


@pytest.mark.slow
def test_killed_collection_loses_at_most_the_episode_in_progress(tmp_path):
    out = tmp_path / "data"
    cmd = [sys.executable, "-m", "driving.cli", "collect", "--out", str(out), "--episodes", "8"]
    rng = np.random.default_rng(0)
    for _ in range(2):
        before = _episodes_on_disk(out) if out.exists() else 0
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while _episodes_on_disk(out) <= before and time.time() < deadline and out.parent.exists():
            time.sleep(0.02) if out.exists() else time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 0.4))  # somewhere inside the next episode
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        paths, warnings = scan(out)
        # Every finished episode is intact; a kill between the rename and the manifest update
        # leaves a good file the manifest does not list yet (the next write adds it).
        assert all("not in manifest.json" in w for w in warnings), warnings
        assert len(paths) == _episodes_on_disk(out) > before
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert used_seeds(out) == set(range(8))
    paths, warnings = scan(out)
    assert len(paths) == 8 and not warnings
    assert len(json.loads((out / "manifest.json").read_text())["episodes"]) == 8


def test_a_later_collection_with_other_camera_settings_uses_them(tmp_path):
    from envs.camera import CameraConfig

    collect(CollectConfig(out=tmp_path / "a", episodes=1))
    small = World(camera=CameraConfig(height=80, width=80))
    collect(CollectConfig(out=tmp_path / "b", episodes=1, world=small))
    assert read_episode(scan(tmp_path / "b")[0][0]).frames.shape[1:] == (80, 80, 3)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_are_disjoint_and_cover_the_range(count):
    shards = [
        CollectConfig(out=Path("x"), episodes=11, first_seed=40, shard=f"{i}/{count}").validate()
        for i in range(count)
    ]
    together = sorted(seed for shard in shards for seed in shard)
    assert together == list(range(40, 51))  # every seed once: disjoint and covering
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1  # balanced


@pytest.mark.parametrize("shard", ["2/2", "1", "a/3", "-1/3", "0/0", "1/2/3", ""])
def test_a_bad_shard_is_refused_with_one_line(shard):
    with pytest.raises(ValueError, match="--shard") as error:
        CollectConfig(out=Path("x"), shard=shard).validate()
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_two_shards_one_with_two_workers_fill_one_readable_dataset(tmp_path):
    # given two collections of the same range into one folder, as two machines would run them
    out = tmp_path / "data"
    first = collect(CollectConfig(out=out, episodes=5, shard="0/2", workers=2))
    second = collect(CollectConfig(out=out, episodes=5, shard="1/2"))
    # then they drove disjoint roads that together are the range, into one valid dataset
    assert (first["episodes"], second["episodes"]) == (3, 2)
    paths, warnings = scan(out)
    episodes = [read_episode(p) for p in paths]
    assert sorted(e.seed for e in episodes) == [0, 1, 2, 3, 4] and not warnings
    by_seed = {e.seed: e.meta["collector"]["pid"] for e in episodes}
    workers = {by_seed[s] for s in (0, 2, 4)}
    assert os.getpid() in workers and len(workers) == 2  # this process and one worker
    assert by_seed[1] == by_seed[3] == os.getpid()
    train, val = load_split(out, val_fraction=0.2)
    assert len(train) + len(val) == first["frames"] + second["frames"]


def test_noise_drawn_in_blocks_is_the_same_stream_as_one_draw_per_step():
    from driving.record.collect import CorrelatedNoise

    cfg = NoiseConfig()
    noise = CorrelatedNoise(cfg, seed=3)
    rng = np.random.default_rng(3)
    scale = np.array([cfg.steering, cfg.throttle])
    value = rng.normal(0, 1, 2) * scale
    for _ in range(600):  # past two blocks
        innovation = rng.normal(0, 1, 2) * scale * np.sqrt(1 - cfg.correlation**2)
        value = cfg.correlation * value + innovation
        assert np.array_equal(noise.sample(), value)
