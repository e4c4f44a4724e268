"""A net that chooses a lane plan before it steers (`drive train --target plan`): the traffic
expert's plan recorded with every step, the loss of each plan's own pair, and the driving."""

import numpy as np
import torch

from driving.cli import main
from driving.data import read_episode, write_episode
from driving.learn.checkpoint import load_checkpoint, stored_model_config
from driving.learn.model import (
    CHOOSING,
    PLAN_WEIGHT,
    ModelConfig,
    PilotNet,
    controls,
    output_losses,
)
from driving.learn.policy import NetPolicy
from driving.record.collect import NoiseConfig, run_expert_episode
from envs.world import World, make_world

TRAFFIC = World(scenario="winding-traffic")


def test_the_traffic_expert_records_its_plan_before_each_lane_change(tmp_path):
    # given two drives of the noisy traffic expert, each with a lane change in its first 30 s
    env, expert = make_world(TRAFFIC, duration=30.0)
    crossings = 0
    for seed in (0, 1):
        driven, _ = run_expert_episode(env, expert, seed, NoiseConfig())
        episode = read_episode(write_episode(tmp_path / "data", driven))
        plan, offset = episode.lane_change, episode.lateral_offset
        assert plan.shape == (len(episode.frames),)
        assert set(np.unique(plan)) <= {-1.0, 0.0, 1.0}
        # when the car crosses into the next lane its offset from the lane centre jumps by a
        # lane's width (positive is right): the step before, the plan pointed that way
        jumps = np.flatnonzero(np.abs(np.diff(offset)) > 1.5)
        for step in jumps:
            towards = -np.sign(offset[step + 1] - offset[step])  # a jump down: moved right
            assert plan[step] == towards, f"road {seed}, step {step}"
        crossings += len(jumps)
        # and the plan is a stretch of steps before the crossing, not a flicker
        assert 10 <= np.count_nonzero(plan) <= 40 * max(len(jumps), 1)
    assert crossings >= 2
    lane_keeping, _ = run_expert_episode(*make_world(World(), duration=2.0), 1, NoiseConfig())
    assert lane_keeping.lane_change is None  # an empty road records no plan


def test_each_plan_learns_from_its_own_frames_and_the_likeliest_plan_drives():
    net = PilotNet(ModelConfig(outputs=CHOOSING))
    image = torch.zeros((2, 66, 200, 3), dtype=torch.uint8)
    assert net(image, torch.ones(2)).shape == (2, 9)  # 3 pairs, 3 plan scores
    # pairs (left, keep, right) then scores; frame 0 scores "right" highest, frame 1 "keep"
    pred = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.0, 1.0, 3.0],
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.0, 2.0, 1.0],
        ],
        requires_grad=True,
    )
    np.testing.assert_allclose(controls(pred, CHOOSING).detach(), [[0.5, 0.6], [0.3, 0.4]])
    target = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 0.0]])  # labelled left, keep
    losses = output_losses(pred, target, CHOOSING)
    np.testing.assert_allclose(losses[:, :2].detach(), [[0.01, 0.04], [0.09, 0.16]], rtol=1e-5)
    scores = pred[:, 6:].detach()
    expected = -PLAN_WEIGHT * torch.log_softmax(scores, 1)[[0, 1], [0, 1]]
    np.testing.assert_allclose(losses[:, 2].detach(), expected, rtol=1e-5)
    # the squared error reaches only the pair of the labelled plan
    losses[:, :2].sum().backward()
    assert torch.count_nonzero(pred.grad[0, :6]).item() == 2 and pred.grad[0, :2].abs().min() > 0
    assert torch.count_nonzero(pred.grad[1, :6]).item() == 2 and pred.grad[1, 2:4].abs().min() > 0


def test_drive_train_target_plan_makes_a_policy_that_drives(tmp_path):
    env, expert = make_world(TRAFFIC, duration=4.0)
    for seed in (0, 1, 2):
        write_episode(tmp_path / "data", run_expert_episode(env, expert, seed, NoiseConfig())[0])
    run = tmp_path / "run"
    args = ["train", "--data", str(tmp_path / "data"), "--run", str(run), "--epochs", "1"]
    assert main([*args, "--target", "plan", "--batch-size", "16", "--speed-shift", "2"]) == 0
    assert stored_model_config(load_checkpoint(run / "best.pt")).outputs == CHOOSING
    assert "lane plan (left, keep, right)" in (run / "best.md").read_text()
    policy = NetPolicy.from_checkpoint(run / "best.pt")
    obs, _ = env.reset(seed=5)
    action = policy.act(obs)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
