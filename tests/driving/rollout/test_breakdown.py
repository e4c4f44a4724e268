"""The curvature/speed breakdown of interventions, on hand-made episodes counted by hand."""

import numpy as np
import pytest

from driving.rollout.breakdown import count, format_breakdown, merge, plot

DT = 0.1


def episode(steps: list[tuple[float, float, bool, bool]]) -> dict:
    """Count one hand-made episode given as (curvature [1/m], speed [m/s], autonomous, start)."""
    curvature, speed, autonomous, start = (np.array(c) for c in zip(*steps, strict=True))
    return count(curvature, speed, autonomous, start, DT)


def test_counts_and_rates_per_bin_match_a_hand_count():
    # Episode A: 10 steps on a straight at 12 m/s, then an intervention at the first step of a
    # tight right bend (R 50 m) at 14 m/s, the expert drives 5 steps, the policy 4 more.
    a = episode(
        [(0.0, 12.0, True, False)] * 10
        + [(1 / 50, 14.0, True, True)]
        + [(1 / 50, 10.0, False, False)] * 5
        + [(1 / 50, 12.0, True, False)] * 4
    )
    # Episode B: a gentle left bend (R 400 m, negative curvature) at 16 m/s, one intervention;
    # then 3 slow steps (8 m/s) on a straight.
    b = episode(
        [(-1 / 400, 16.0, True, False)] * 5
        + [(-1 / 400, 16.0, True, True)]
        + [(0.0, 8.0, True, False)] * 3
    )
    table = merge([a, b])
    by_curvature = {row["bin"].split()[0]: row for row in table["curvature"]}
    # Straight: A's 10 steps at 12 m/s + B's 3 steps at 8 m/s, no intervention.
    assert by_curvature["straight"]["interventions"] == 0
    assert by_curvature["straight"]["seconds"] == pytest.approx(1.3)
    assert by_curvature["straight"]["km"] == pytest.approx((10 * 1.2 + 3 * 0.8) / 1000)
    assert by_curvature["straight"]["per_km"] == 0.0
    # Gentle: B's 6 steps at 16 m/s, 1 intervention.
    assert by_curvature["gentle"]["interventions"] == 1
    assert by_curvature["gentle"]["seconds"] == pytest.approx(0.6)
    assert by_curvature["gentle"]["km"] == pytest.approx(6 * 1.6 / 1000)
    assert by_curvature["gentle"]["per_km"] == pytest.approx(1 / (6 * 1.6 / 1000))
    # Bend (R 40-100 m): A's 1 + 4 policy steps (the expert's 5 are not exposure), 1 intervention.
    assert by_curvature["bend"]["interventions"] == 1
    assert by_curvature["bend"]["seconds"] == pytest.approx(0.5)
    assert by_curvature["bend"]["km"] == pytest.approx((1.4 + 4 * 1.2) / 1000)
    assert by_curvature["bend"]["per_hour"] == pytest.approx(1 / 0.5 * 3600)
    assert by_curvature["tight"]["seconds"] == by_curvature["sharp"]["seconds"] == 0.0

    speeds = [(row["interventions"], round(row["seconds"], 6)) for row in table["speed"]]
    # < 10: B's 3 steps; 10-13: A's 10 + 4 (the expert's 10 m/s steps excluded);
    # 13-15: A's intervention step; >= 15: B's 6 steps with its intervention.
    assert speeds == [(0, 0.3), (0, 1.4), (1, 0.1), (1, 0.6)]


def test_bin_edges_low_inclusive_and_empty_bins_have_no_rate():
    edges = [(1e-3, 15.0, True, True), (1e-2, 10.0, True, False)]
    edges += [(1 / 40, 10.0, True, True), (-1 / 20, 10.0, True, False)]  # R 40 m, R 20 m left
    table = merge([episode(edges)])
    assert [row["interventions"] for row in table["curvature"]] == [0, 1, 0, 1, 0]
    assert [row["seconds"] for row in table["curvature"]] == pytest.approx([0, 0.1, 0.1, 0.1, 0.1])
    assert table["curvature"][0]["per_km"] is None
    assert [row["interventions"] for row in table["speed"]] == [0, 1, 0, 1]
    assert "| curvature | straight" in format_breakdown(table)


def test_plot_writes_a_png(tmp_path):
    table = merge([episode([(0.0, 12.0, True, False), (0.02, 14.0, True, True)])])
    path = plot(table, tmp_path / "breakdown.png", "test")
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 5_000
    assert not list(tmp_path.glob("*.tmp*"))
