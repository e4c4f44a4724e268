"""Traffic metrics on hand-made episodes: values computed by hand."""

import numpy as np
import pytest

from driving.rollout.traffic_metrics import (
    driving_score,
    events,
    headway_under_share,
    per_km,
    route_completion,
    speed_ratio,
    summarize_traffic,
    traffic_episode_metrics,
)

INF = np.inf


def record(crashed, on_road, headway, lane_changes, distance, speed, collision=None):
    return {
        "crashed": np.array(crashed, bool),
        "collision": np.array(collision or ["ahead" if c else "" for c in crashed]),
        "on_road": np.array(on_road, bool),
        "time_headway": np.array(headway, float),
        "lane_changes": np.array(lane_changes),
        "distance": np.array(distance, float),
        "speed": np.array(speed, float),
    }


def test_events_count_rising_edges():
    assert events([]) == 0
    assert events([False, True, True, False, True]) == 2
    assert events([True, True]) == 1


def test_headway_share_counts_steps_under_one_second_and_not_infinite_ones():
    # 0.5 and 0.99 are under 1 s; 1.0, 2.0 and inf (no leader) are not: 2 of 5.
    assert headway_under_share([0.5, 1.0, 2.0, INF, 0.99]) == pytest.approx(0.4)


def test_rates_per_km_and_speed_ratio():
    assert per_km(3, 1500.0) == pytest.approx(2.0)
    assert per_km(3, 0.0) == 0.0
    assert speed_ratio(12.0, 15.0) == pytest.approx(0.8)


def test_driving_score_multiplies_penalties():
    assert driving_score(1.0, 0, 0) == 1.0
    assert driving_score(0.5, 1, 0) == pytest.approx(0.30)  # 0.5 x 0.60
    assert driving_score(0.8, 2, 1) == pytest.approx(0.8 * 0.36 * 0.65)
    assert route_completion(250.0, 1000.0, False) == pytest.approx(0.25)
    assert route_completion(990.0, 1000.0, True) == 1.0


def test_episode_with_one_collision_by_hand():
    # 5 steps, 10 m each; headways 3, 0.8, 0.6, inf, 2 s; a lane change at step 2; the car
    # crashes on the last step, half way along a 100 m route.
    ep = traffic_episode_metrics(
        record(
            crashed=[0, 0, 0, 0, 1],
            on_road=[1, 1, 1, 1, 1],
            headway=[3, 0.8, 0.6, INF, 2],
            lane_changes=[0, 0, 1, 1, 1],
            distance=[10, 20, 30, 40, 50],
            speed=[10, 10, 10, 12, 8],
        ),
        progress_m=50.0,
        route_m=100.0,
        reached_end=False,
    )
    assert ep["collisions"] == 1 and ep["off_road"] == 0 and not ep["clean"]
    assert ep["collision_kinds"] == {"ahead": 1, "side": 0, "behind": 0}
    assert ep["headway_under_share"] == pytest.approx(2 / 5)
    assert ep["lane_changes"] == 1
    assert ep["mean_speed"] == pytest.approx(10.0)
    assert ep["route_completion"] == pytest.approx(0.5)
    assert ep["driving_score"] == pytest.approx(0.5 * 0.60)


def test_fleet_summary_by_hand():
    clean = traffic_episode_metrics(
        record([0] * 4, [1] * 4, [INF, INF, 0.5, 2], [0, 1, 1, 2], [250, 500, 750, 1000], [10] * 4),
        progress_m=1000.0,
        route_m=1000.0,
        reached_end=True,
    )
    off = traffic_episode_metrics(
        record([0] * 2, [1, 0], [0.5, 0.5], [0, 0], [500, 1000], [20, 20]),
        progress_m=1000.0,
        route_m=2000.0,
        reached_end=False,
    )
    assert off["off_road"] == 1 and off["driving_score"] == pytest.approx(0.5 * 0.65)
    fleet = summarize_traffic([clean, off])
    assert fleet["clean_share"] == 0.5
    assert fleet["km"] == pytest.approx(2.0)
    assert fleet["collisions_per_km"] == 0.0
    assert fleet["collisions_ahead"] == fleet["collisions_side"] == fleet["collisions_behind"] == 0
    assert fleet["lane_changes_per_km"] == pytest.approx(2 / 2.0)
    assert fleet["headway_under_share"] == pytest.approx(3 / 6)  # 1 of 4 and 2 of 2 steps
    assert fleet["mean_speed"] == pytest.approx((4 * 10 + 2 * 20) / 6)
    assert fleet["driving_score"] == pytest.approx((1.0 + 0.325) / 2)
    with pytest.raises(ValueError):
        summarize_traffic([])


def test_collisions_are_counted_by_kind_where_they_begin():
    # two crashes (the second one lasts two steps): alongside, then hit from behind
    crash = traffic_episode_metrics(
        record(
            [0, 1, 0, 1, 1],
            [1] * 5,
            [INF] * 5,
            [0] * 5,
            [10, 20, 30, 40, 50],
            [10] * 5,
            collision=["", "side", "", "behind", "behind"],
        ),
        progress_m=50.0,
        route_m=100.0,
        reached_end=False,
    )
    assert crash["collisions"] == 2
    assert crash["collision_kinds"] == {"ahead": 0, "side": 1, "behind": 1}
    fleet = summarize_traffic([crash, crash])
    assert (fleet["collisions_ahead"], fleet["collisions_side"], fleet["collisions_behind"]) == (
        0,
        2,
        2,
    )
