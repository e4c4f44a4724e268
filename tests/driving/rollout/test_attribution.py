"""Attribution of interventions on hand-made episodes, and the perception summary."""

import numpy as np
import pytest
from conftest import save_untrained

from driving.rollout.attribution import (
    STRAY_M,
    TOLERANCE,
    attribute,
    perception_error,
    perception_record,
    summarize_perception,
)
from driving.rollout.drivers import policy_world

DT = 0.1  # [s]
STEPS = 100


def episode(intervention_at: int = 80) -> dict:
    """An episode with good estimates, the car on the centre, one intervention."""
    return {
        "errors": {q: np.zeros(STEPS) for q in TOLERANCE},
        "offset": np.zeros(STEPS),
        "autonomous": np.ones(STEPS, bool),
        "intervention": np.arange(STEPS) == intervention_at,
    }


def causes(e: dict) -> list[str]:
    return attribute(e["errors"], e["offset"], e["autonomous"], e["intervention"], DT)


def test_a_perception_error_before_the_car_strays_is_put_down_to_perception():
    e = episode()
    e["errors"]["lateral_offset"][70:] = 2 * TOLERANCE["lateral_offset"]  # lane mistaken at 70
    e["offset"][75:] = np.linspace(0.6, 1.0, 5).tolist() + [1.0] * 20  # then the car strays
    assert causes(e) == ["perception"]


def test_good_estimates_and_then_a_failure_are_put_down_to_control():
    e = episode()
    e["offset"][70:] = np.linspace(0.0, 1.2, 30)  # strays on estimates within tolerance
    e["errors"]["heading_error"][:] = 0.9 * TOLERANCE["heading_error"]
    assert causes(e) == ["control"]


def test_an_estimate_that_goes_bad_only_after_the_car_strayed_is_control():
    e = episode()
    e["offset"][60:] = 2 * STRAY_M
    e["errors"]["curvature"][75:] = 2 * TOLERANCE["curvature"]
    assert causes(e) == ["control"]


def test_a_perception_error_older_than_the_window_or_before_a_takeover_does_not_count():
    old = episode()
    old["errors"]["lateral_offset"][10] = 1.0  # 7 s before: outside the 3 s window
    assert causes(old) == ["control"]
    handed = episode()
    handed["errors"]["lateral_offset"][60] = 1.0
    handed["autonomous"][60:65] = False  # the expert drove then; the driver took over at 65
    assert causes(handed) == ["control"]


def test_each_intervention_gets_a_cause_and_the_summary_counts_them():
    e = episode()
    e["intervention"][30] = True
    e["errors"]["heading_error"][25] = 1.0  # before the first one only
    assert causes(e) == ["perception", "control"]
    record = perception_record(e["errors"], e["offset"], e["autonomous"], e["intervention"], DT)
    summary = summarize_perception([record, record])
    assert summary["interventions_perception"] == 2
    assert summary["interventions_control"] == 2
    assert summary["perception_heading_error_mean"] == pytest.approx(1.0 / STEPS)
    assert summary["perception_heading_error_beyond"] == pytest.approx(1.0 / STEPS)


def test_perception_error_is_estimate_minus_truth():
    truth = {"lateral_offset": 0.5, "heading_error": -0.1, "curvature": 0.01, "speed": 3.0}
    estimate = {"lateral_offset": 0.25, "heading_error": 0.0, "curvature": 0.01}
    assert perception_error(estimate, truth) == pytest.approx(
        {"lateral_offset": -0.25, "heading_error": 0.1, "curvature": 0.0}
    )


def test_the_gap_error_counts_no_car_within_range_as_a_gap_at_the_range():
    truth = {"gap_ahead": float("inf"), "closing_speed": 0.0}  # nobody ahead
    assert perception_error({"gap_ahead": 60.0, "closing_speed": 0.0}, truth) == {
        "gap_ahead": 0.0,
        "closing_speed": 0.0,
    }
    far = {"gap_ahead": 80.0, "closing_speed": 3.0}  # a car beyond the expert's 60 m
    assert perception_error({"gap_ahead": 75.0, "closing_speed": 0.0}, far) == {
        "gap_ahead": 0.0,
        "closing_speed": 0.0,
    }
    near = {"gap_ahead": 20.0, "closing_speed": 3.0}
    errors = perception_error({"gap_ahead": 60.0, "closing_speed": 0.0}, near)  # missed it
    assert errors == {"gap_ahead": 40.0, "closing_speed": -3.0}
    assert errors["gap_ahead"] > TOLERANCE["gap_ahead"]


def test_camera_is_chosen_for_built_in_drivers_and_refused_otherwise(tmp_path):
    assert policy_world("modular", camera="dashcam").camera.kind == "dashcam"
    held_out = policy_world("modular", appearance="held-out", camera="dashcam")
    assert held_out.camera.appearance == "held-out"
    with pytest.raises(ValueError, match="--camera must be one of"):
        policy_world("modular", camera="fisheye")
    checkpoint = tmp_path / "net.pt"
    save_untrained(checkpoint)
    with pytest.raises(ValueError, match="--camera is for"):
        policy_world(str(checkpoint), camera="dashcam")
