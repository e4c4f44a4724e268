"""DAgger: every visited frame carries the expert's label, rounds only add data, kills resume."""

import hashlib
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import TRAFFIC, Recording

from driving.data import read_episode, scan
from driving.learn.model import ModelConfig, PilotNet
from driving.learn.train import TrainConfig, train
from driving.record.collect import CollectConfig, NoiseConfig, collect
from driving.tools.dagger import DaggerConfig, MixedPolicy, dagger, record_episode
from envs.expert import Expert
from envs.world import make_env


class Wobbly:
    """A poor driver: weaves across the lane at a steady throttle."""

    def __init__(self):
        self.t = 0

    def reset(self):
        self.t = 0

    def act(self, obs):
        self.t += 1
        return np.array([0.3 * np.sin(self.t / 6), 0.2], dtype=np.float32)


def test_every_visited_frame_is_labelled_with_the_experts_action():
    env = make_env(terminate_off_road=False)
    expert = Expert(env)
    policy = MixedPolicy(Wobbly(), expert, beta=0.3, seed=1)
    episode = record_episode(env, policy, expert, seed=5, max_steps=120)
    assert len(episode.frames) == 120
    assert episode.speed_limit.tolist() == [15.0] * 120  # the limit the frames were seen under
    # The policy really drove: executed actions differ from the labels on many steps.
    assert (np.abs(episode.actions - episode.labels).max(axis=1) > 1e-3).mean() > 0.15
    # Replaying the executed actions visits the same states; the expert's answer there is the
    # label, and the lane's curvature ahead it read there is recorded as `drive collect` does.
    assert episode.meta["curvature_ahead_m"] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert np.abs(episode.curvature_ahead).max() > 0.004  # a bend of under 250 m comes
    obs, _ = env.reset(seed=5)
    for t in range(len(episode.frames)):
        assert np.array_equal(obs["image"], episode.frames[t])
        assert np.allclose(expert.act(obs), episode.labels[t], atol=1e-6)
        assert np.array_equal(expert.curvature_ahead(), episode.curvature_ahead[t])
        obs, *_ = env.step(episode.actions[t])


def test_a_stacking_net_takes_in_the_frames_the_expert_drove_for_it():
    # given a 2-frame net that the mixed policy overrides with the expert half of the time
    env = make_env(terminate_off_road=False)
    expert = Expert(env)
    torch.manual_seed(0)
    net = Recording(PilotNet(ModelConfig(frames=2)))
    # when an episode is recorded
    episode = record_episode(env, MixedPolicy(net, expert, beta=0.5, seed=1), expert, 5, 40)
    # then the net took in every visited frame once, in order
    assert len(net.seen) == len(episode.frames) == 40
    assert all(np.array_equal(o["image"], f) for o, f in zip(net.seen, episode.frames, strict=True))


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in scan(folder)[0]}


@pytest.mark.slow
def test_a_round_adds_expert_labelled_episodes_and_keeps_the_earlier_ones(tmp_path):
    small = dict(out=tmp_path, episodes=2, max_steps=60, samples=600, eval_episodes=1, workers=1)
    first = dagger(DaggerConfig(rounds=0, **small))
    before = _digests(tmp_path / "data")
    rows = dagger(DaggerConfig(rounds=1, **small))
    after = _digests(tmp_path / "data")
    assert rows[0] == first[0]  # round 0 is not redone
    assert all(after[name] == digest for name, digest in before.items())
    new = [read_episode(tmp_path / "data" / name) for name in after.keys() - before.keys()]
    assert len(new) == 2 and all(e.meta["driver"] == "dagger" for e in new)
    assert {e.meta["round"] for e in new} == {1} and new[0].meta["beta"] == 0.5
    assert {e.seed for e in new} == {2, 3}  # the next roads after round 0's
    assert rows[1]["labelled_frames"] == 240 and (tmp_path / "round_1" / "best.pt").exists()
    assert "| 1 | 0.5 | 240 |" in (tmp_path / "dagger.md").read_text()


@pytest.mark.slow
def test_a_killed_dagger_run_resumes(tmp_path):
    cmd = [
        sys.executable, "-m", "driving.cli", "dagger", "--out", str(tmp_path), "--rounds", "2",
        "--episodes", "2", "--max-steps", "60", "--samples", "2000", "--eval-episodes", "1",
        "--workers", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / "round_1" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (
        not (tmp_path / "dagger.json").exists()
        or len(json.loads((tmp_path / "dagger.json").read_text())) < 3
    )  # killed before the end
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "dagger.json").read_text())
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert [r["labelled_frames"] for r in rows] == [120, 240, 360]
    seeds = [read_episode(p).seed for p in scan(tmp_path / "data")[0]]
    assert sorted(seeds) == [0, 1, 2, 3, 4, 5]  # no road recorded twice


@pytest.mark.slow
def test_start_bend_rolls_out_from_before_each_roads_tightest_bend(tmp_path):
    small = dict(out=tmp_path / "dagger", episodes=2, max_steps=140, samples=200, eval_episodes=0)
    dagger(DaggerConfig(rounds=0, workers=1, start="bend", **small))
    clean = NoiseConfig(0.0, 0.0, 0.0)  # the whole roads as round 0's expert drives them
    collect(CollectConfig(out=tmp_path / "whole", episodes=2, noise=clean))
    bends = sorted(map(read_episode, scan(tmp_path / "dagger" / "data")[0]), key=lambda e: e.seed)
    wholes = sorted(map(read_episode, scan(tmp_path / "whole")[0]), key=lambda e: e.seed)
    for bend, whole in zip(bends, wholes, strict=True):
        assert bend.seed == whole.seed and bend.meta["start"] == "bend"
        # The road's hardest steering (its tightest bend) comes within the 140 recorded steps.
        assert np.abs(bend.labels[:, 0]).max() > 0.9 * np.abs(whole.labels[:, 0]).max()


def test_dagger_from_a_traffic_policy_rolls_it_out_in_the_traffic_it_learned_in(
    traffic_checkpoint, tmp_path
):
    small = dict(episodes=1, max_steps=8, samples=16, eval_episodes=0, workers=1)
    dagger(DaggerConfig(out=tmp_path, rounds=0, policy=str(traffic_checkpoint), **small))
    (episode,) = [read_episode(p) for p in scan(tmp_path / "data")[0]]
    assert episode.world == TRAFFIC and episode.meta["driver"] == "dagger"
    assert episode.meta["policy"] == str(traffic_checkpoint) and len(episode.labels) == 8
    assert episode.meta["density"] > 0  # vehicles/km drawn by the traffic scenario itself
    # the car ahead as the expert's IDM read it (--speed-shift in traffic shifts these labels)
    assert episode.leader.shape == (8, 2) and episode.meta["leader_range_m"] == 60.0
    assert (episode.leader[:, 0] < 60.0).any()  # dense traffic: a car within range ahead
    assert episode.lane_change.shape == (8,)  # the expert's lane plan (--target plan)
    assert set(np.unique(episode.lane_change)) <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("policy", ["modular", "expert", "no/such.pt"])
def test_a_policy_that_is_not_a_checkpoint_is_refused_before_any_rollout(tmp_path, policy):
    cfg = DaggerConfig(out=tmp_path / "dagger", policy=policy)
    with pytest.raises(ValueError, match="--policy must be a checkpoint"):
        dagger(cfg)
    assert not (tmp_path / "dagger").exists()


def test_dagger_from_a_policy_trains_with_its_recipe_on_its_demos_and_the_rollouts(tmp_path):
    # given a 2-frame, colour-jittered, mirrored net trained on one road of expert driving
    first = dict(rounds=0, episodes=1, max_steps=30, samples=30, eval_episodes=0, workers=1)
    dagger(DaggerConfig(out=tmp_path / "expert", **first))
    demos = tmp_path / "expert" / "data"
    recipe = dict(frames=2, frame_stride=2, colour_jitter=0.5, mirror=True, batch_size=16)
    train(TrainConfig(data=demos, run=tmp_path / "net", epochs=1, val_fraction=0, **recipe))
    policy = str(tmp_path / "net" / "best.pt")
    # when DAgger starts from it with its demonstrations, on the next road
    cfg = DaggerConfig(
        out=tmp_path / "dagger", policy=policy, demos=demos, first_seed=1,
        rounds=0, episodes=1, max_steps=20, samples=50, eval_episodes=0, workers=1,
    )  # fmt: skip
    dagger(cfg)
    # then round 0 rolled the policy out (beta**1) and trained on the demos and the rollout
    episodes = {e.seed: e for e in map(read_episode, scan(tmp_path / "dagger" / "data")[0])}
    assert sorted(episodes) == [0, 1] and episodes[1].meta["beta"] == 0.5
    linked = scan(tmp_path / "dagger" / "data")[0][0]
    assert linked.samefile(scan(demos)[0][0])  # a hard link, not a copy
    ckpt = torch.load(tmp_path / "dagger" / "round_0" / "best.pt", weights_only=False)
    assert ckpt["model_config"]["frames"] == 2  # the policy's net, not drive train's default
    assert {k: ckpt["config"][k] for k in recipe} == recipe
    assert ckpt["config"]["data"] == str(tmp_path / "dagger" / "data")
    # and a rerun links nothing twice
    dagger(cfg)
    assert len(scan(tmp_path / "dagger" / "data")[0]) == 2


def test_demos_on_the_rounds_roads_are_refused_before_any_work(tmp_path):
    first = dict(rounds=0, episodes=1, max_steps=10, samples=10, eval_episodes=0, workers=1)
    dagger(DaggerConfig(out=tmp_path / "expert", **first))
    cfg = DaggerConfig(out=tmp_path / "dagger", demos=tmp_path / "expert" / "data", first_seed=0)
    with pytest.raises(ValueError, match="already holds roads the rounds would drive"):
        dagger(cfg)
    assert not (tmp_path / "dagger").exists()
    with pytest.raises(ValueError, match="--demos"):
        dagger(DaggerConfig(out=tmp_path / "d2", demos=tmp_path / "none", first_seed=5))
