"""Closed-loop evaluation tells a good driver from a bad one, and writes its report."""

import json

import numpy as np

from driving.evaluate import evaluate, rollout
from envs import eval_seeds
from envs.expert import Expert
from envs.world import make_env


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
    assert all(r["autonomy"] == 100.0 for r in good)
    assert not any(r["success"] for r in bad)
    assert all(r["interventions"] > 0 and r["autonomy"] < 95 for r in bad)
    # The expert takes over after each intervention, so the bad driver still reaches the end.
    assert all(r["reached_end"] for r in bad)


def test_evaluate_writes_metrics_and_video(tmp_path):
    report = evaluate("expert", episodes=2, out=tmp_path, workers=1, video=1)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["seeds"] == eval_seeds(2)
    assert saved["overall"]["success_rate"] == 1.0
    assert len(saved["episodes"]) == 2 and saved["episodes"][0]["seed"] == eval_seeds(1)[0]
    video = tmp_path / "videos" / f"road_{eval_seeds(1)[0]}.mp4"
    assert video.stat().st_size > 10_000
    assert "success rate" in report["table"]


def test_a_rerun_reuses_finished_episodes(tmp_path):
    evaluate("expert", episodes=2, out=tmp_path, workers=1, video=0)
    cached = tmp_path / "episodes" / "policy" / f"{eval_seeds(1)[0]}.json"
    saved = json.loads(cached.read_text())
    saved["result"]["mean_speed"] = 123.0  # marks the cached result: a re-run must reuse it
    cached.write_text(json.dumps(saved))
    report = evaluate("expert", episodes=3, out=tmp_path, workers=1, video=0)
    assert report["episodes"][0]["mean_speed"] == 123.0
    assert report["episodes"][2]["mean_speed"] < 20  # the new road was driven
