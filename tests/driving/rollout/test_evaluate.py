"""Closed-loop evaluation tells a good driver from a bad one, and writes its report."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Recording

from driving.draw.video import read_mp4
from driving.learn.model import ModelConfig, PilotNet
from driving.rollout.clips import CLIPS_PER_ROAD
from driving.rollout.evaluate import EvalConfig, _digest, evaluate, expert_cache
from driving.rollout.loop import drive, rollout
from envs import eval_seeds
from envs.expert import Expert
from envs.world import World, make_env


class AlwaysStraight:
    """Steers straight ahead at a moderate throttle: must fail on winding roads."""

    def reset(self):
        pass

    def act(self, obs):
        return np.array([0.0, 0.1], dtype=np.float32)


def test_evaluator_tells_the_expert_from_always_straight():
    env = make_env(terminate_off_road=False)
    expert = Expert(env)
    seeds = eval_seeds(3)
    good = [rollout(env, Expert(env), expert, s) for s in seeds]
    bad = [rollout(env, AlwaysStraight(), expert, s) for s in seeds]
    assert all(r["success"] and r["interventions"] == 0 for r in good)
    assert all(r["autonomy"] == 1.0 for r in good)
    assert not any(r["success"] for r in bad)
    assert all(r["interventions"] > 0 and r["autonomy"] < 0.95 for r in bad)
    # The expert takes over after each intervention, so the bad driver still reaches the end.
    assert all(r["reached_end"] for r in bad)


def test_evaluate_writes_metrics_and_video(tmp_path):
    report = evaluate(EvalConfig("expert", episodes=2, out=tmp_path, workers=1, video=1))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["seeds"] == eval_seeds(2)
    assert saved["overall"]["success_rate"] == 1.0
    assert len(saved["episodes"]) == 2 and saved["episodes"][0]["seed"] == eval_seeds(1)[0]
    video = tmp_path / "videos" / f"road_{eval_seeds(1)[0]}.mp4"
    assert video.stat().st_size > 10_000
    assert "success rate" in report["table"]


def test_a_rerun_reuses_finished_episodes(tmp_path):
    evaluate(EvalConfig("expert", episodes=2, out=tmp_path, workers=1, video=0))
    cached = tmp_path / "episodes" / "policy" / f"{eval_seeds(1)[0]}.json"
    saved = json.loads(cached.read_text())
    saved["result"]["mean_speed"] = 123.0  # marks the cached result: a re-run must reuse it
    saved["sha256"] = _digest(saved["result"])
    cached.write_text(json.dumps(saved))
    report = evaluate(EvalConfig("expert", episodes=3, out=tmp_path, workers=1, video=0))
    assert report["episodes"][0]["mean_speed"] == 123.0
    assert report["episodes"][2]["mean_speed"] < 20  # the new road was driven


def test_an_edited_or_damaged_cached_episode_is_driven_again(tmp_path):
    evaluate(EvalConfig("expert", episodes=2, out=tmp_path, workers=1, video=0))
    first, second = (tmp_path / "episodes" / "policy" / f"{s}.json" for s in eval_seeds(2))
    saved = json.loads(first.read_text())
    saved["result"]["mean_speed"] = "fast"  # edited by hand, digest not updated
    first.write_text(json.dumps(saved))
    second.write_text(json.dumps([saved]))  # not even an object
    report = evaluate(EvalConfig("expert", episodes=2, out=tmp_path, workers=1, video=0))
    assert all(isinstance(e["mean_speed"], float) for e in report["episodes"])
    assert report["overall"]["success_rate"] == 1.0


def test_a_forced_intervention_writes_a_clip_from_3_s_before_to_1_s_after(tmp_path):
    # Given a driver that never steers, on a winding road: it must be taken over
    env = make_env(terminate_off_road=False)
    seed = eval_seeds(1)[0]
    result = rollout(env, AlwaysStraight(), Expert(env), seed, clips=tmp_path)
    assert result["interventions"] > 0
    # Then one clip per intervention, up to the cap, named after the road and the time
    assert len(result["clips"]) == min(result["interventions"], CLIPS_PER_ROAD)
    first = Path(result["clips"][0])
    assert first.parent == tmp_path and first.name.startswith(f"road_{seed}_t")
    event_time = float(first.stem.split("_t")[1])
    event_step = round(event_time / 0.1)
    frames, fps = read_mp4(first)
    # 3 s before (30 steps, or fewer at the start of the road), the event step, 1 s after
    assert fps == 10
    assert len(frames) == min(30, event_step) + 1 + 10
    # The clip is drawn like the videos: enlarged frame over the action panel
    assert frames[0].shape == (3 * 66 + 72, 3 * 200, 3)


def test_a_stacking_net_takes_in_every_frame_also_those_the_expert_drove():
    # given a 2-frame net that steers hard to one side: the expert must take over
    torch.manual_seed(0)
    model = PilotNet(ModelConfig(frames=2, frame_stride=2))
    with torch.no_grad():
        model.head[-1].bias.copy_(torch.tensor([5.0, 0.0]))
    policy = Recording(model)
    env = make_env(terminate_off_road=False)
    # when it drives 60 steps
    steps = list(itertools.islice(drive(env, policy, Expert(env), eval_seeds(1)[0]), 60))
    # then it was shown each step's observation once, in order, whoever drove
    assert any(not step.autonomous for step in steps)
    assert len(policy.seen) == len(steps)
    assert all(seen is step.obs for seen, step in zip(policy.seen, steps, strict=True))


def test_evaluate_breaks_interventions_down_and_plots_them(tmp_path):
    report = evaluate(EvalConfig("expert", episodes=1, out=tmp_path, workers=1, video=0))
    by_curvature = report["breakdown"]["curvature"]
    names = [row["bin"].split()[0] for row in by_curvature]
    assert names == ["straight", "gentle", "bend", "tight", "sharp"]
    driven_km = sum(row["km"] for row in by_curvature)
    assert driven_km == pytest.approx(report["overall"]["distance_km"], rel=0.01)
    assert sum(row["km"] for row in report["breakdown"]["speed"]) == pytest.approx(driven_km)
    assert by_curvature[0]["km"] > 0 and sum(row["km"] for row in by_curvature[1:]) > 0
    assert (tmp_path / "breakdown.png").stat().st_size > 5_000
    assert report["clips"] == [] and not (tmp_path / "clips").exists()  # the expert never fails


@pytest.mark.slow
def test_videos_go_to_tensorboard_as_animated_gifs(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from driving.rollout.report import log_to_tensorboard

    report = evaluate(EvalConfig("expert", episodes=1, out=tmp_path / "eval", workers=1, video=1))
    with SummaryWriter(str(tmp_path / "tb")) as writer:
        log_to_tensorboard(writer, report, step=7)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    tag = f"eval/video/road_{eval_seeds(1)[0]}"
    assert tag in events.Tags()["images"]
    (image,) = events.Images(tag)
    assert image.step == 7 and image.encoded_image_string.startswith(b"GIF89a")
    assert (image.width, image.height) == (600, 270)  # full size: the overlay's text reads


def test_the_experts_drives_are_shared_by_the_evaluations_of_one_world(tmp_path):
    # given an evaluation that compared the modular driver with the expert on one road
    evaluate(EvalConfig("modular", episodes=1, out=tmp_path / "a", workers=1, video=0))
    shared = expert_cache(World()) / f"{eval_seeds(1)[0]}.json"
    saved = json.loads(shared.read_text())
    saved["result"]["mean_speed"] = 123.0  # marks the shared result: the next must reuse it
    saved["sha256"] = _digest(saved["result"])
    shared.write_text(json.dumps(saved))
    # when another evaluation, into another folder, compares with the expert on that road
    report = evaluate(EvalConfig("modular", episodes=1, out=tmp_path / "b", workers=1, video=0))
    # then it took the expert's drive from the shared cache, and keeps a copy of its own
    assert report["expert"]["episodes"][0]["mean_speed"] == 123.0
    assert (tmp_path / "b" / "episodes" / "expert" / shared.name).is_file()
    # another world is another cache
    assert expert_cache(World(density="dense")) != expert_cache(World())
