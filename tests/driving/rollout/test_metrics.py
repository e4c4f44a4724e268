"""Driving metrics on hand-made episodes, checked against values computed by hand."""

import numpy as np
import pytest

from driving.rollout.metrics import episode_metrics, summarize


def record(
    steps=100,
    speed=10.0,
    limit=15.0,
    offsets=None,
    autonomous=None,
    interventions=(),
    heading=None,
    on_road=None,
):
    """A hand-made episode of `steps` policy steps at 10 Hz."""
    rec = {
        "speed": np.full(steps, speed),
        "speed_limit": np.full(steps, limit),
        "lateral_offset": np.zeros(steps) if offsets is None else np.asarray(offsets, float),
        "heading": np.zeros(steps) if heading is None else np.asarray(heading, float),
        "on_road": np.ones(steps, bool) if on_road is None else np.asarray(on_road),
        "crashed": np.zeros(steps, bool),
        "autonomous": np.ones(steps, bool) if autonomous is None else np.asarray(autonomous),
        "intervention": np.zeros(steps, bool),
        "distance": np.cumsum(np.full(steps, speed * 0.1)),
    }
    rec["intervention"][list(interventions)] = True
    return rec


def test_clean_episode_is_a_success_with_full_autonomy():
    m = episode_metrics(record(), dt=0.1, reached_end=True)
    assert m["success"] and m["autonomy"] == pytest.approx(1.0)
    assert m["distance_m"] == pytest.approx(100.0)  # 10 s at 10 m/s
    assert m["mean_speed"] == pytest.approx(10.0)
    assert m["interventions_per_km"] == 0


def test_autonomy_follows_pilotnet_formula():
    # 600 s of driving with 10 interventions -> (1 - 10 * 6 / 600) = 90 %.
    rec = record(steps=6000, interventions=range(0, 6000, 600))
    m = episode_metrics(rec, dt=0.1, reached_end=True)
    assert m["interventions"] == 10
    assert m["autonomy"] == pytest.approx(0.9)
    assert m["interventions_per_km"] == pytest.approx(10 / 6.0)  # 6 km at 10 m/s
    assert not m["success"]


def test_speeding_over_one_second_fails_the_episode():
    limit = 15.0
    speeds = np.full(100, 14.0)
    speeds[10:20] = 17.0  # 1.0 s over 16.5 m/s: allowed
    rec = record(limit=limit)
    rec["speed"] = speeds
    m = episode_metrics(rec, dt=0.1, reached_end=True)
    assert m["speeding_share"] == pytest.approx(0.10) and not m["speeding_violation"]
    assert m["success"]
    speeds[40:52] = 17.0  # 1.2 s: a violation
    m = episode_metrics(rec, dt=0.1, reached_end=True)
    assert m["speeding_violation"] and not m["success"]
    assert m["speeding_share"] == pytest.approx(0.22)


def test_lateral_offset_and_acceleration_count_only_policy_steps():
    offsets = np.r_[np.full(50, 0.2), np.full(50, 2.0)]
    autonomous = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    heading = np.r_[np.arange(50) * 0.01, np.arange(50) * 0.5]  # expert turns hard
    m = episode_metrics(
        record(offsets=offsets, autonomous=autonomous, heading=heading, interventions=[50]),
        dt=0.1,
        reached_end=True,
    )
    assert m["mean_abs_lateral_offset"] == pytest.approx(0.2)
    assert m["peak_lateral_accel"] == pytest.approx(10.0 * 0.01 / 0.1)  # v x yaw rate = 1 m/s^2


def test_not_reaching_the_end_or_leaving_the_road_is_not_a_success():
    assert not episode_metrics(record(), dt=0.1, reached_end=False)["success"]
    on_road = np.ones(100, bool)
    on_road[30] = False
    m = episode_metrics(record(on_road=on_road, interventions=[30]), dt=0.1, reached_end=True)
    assert m["left_road"] and not m["success"]


def test_summary_pools_time_and_distance():
    a = episode_metrics(record(steps=3000), dt=0.1, reached_end=True)
    b = episode_metrics(record(steps=3000, interventions=[100, 200]), dt=0.1, reached_end=True)
    s = summarize([a, b])
    assert s["success_rate"] == pytest.approx(0.5)
    assert s["autonomy"] == pytest.approx(1 - 2 * 6 / 600)
    assert s["distance_km"] == pytest.approx(6.0)
    assert s["interventions_per_km"] == pytest.approx(2 / 6.0)
    with pytest.raises(ValueError):
        summarize([])
