"""scripts/traffic_expert.py: the traffic speed benchmark replays the same drives both ways."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))

import pytest  # noqa: E402
import traffic_expert as te  # noqa: E402

from envs import eval_seeds  # noqa: E402


def test_the_speed_benchmark_times_both_ways_on_the_same_steps():
    # Given one held-out road at default density, 30 steps of the expert replayed both ways,
    speed = te.traffic_speed("winding-traffic", eval_seeds(1), steps=30, repeats=1)
    # then both ways stepped the same 30 steps, and the ratios are their times' ratios.
    assert speed["steps"] == 30
    ratio = speed["fast_steps_per_s"] / speed["per_car_steps_per_s"]
    assert speed["ratio"] == pytest.approx(ratio, rel=1e-12)
    assert speed["wall_ratio"] > 0 and speed["fast_steps_per_s"] > 0
