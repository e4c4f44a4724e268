"""Which stage failed: a perception error or control, for every intervention of a driver that
exposes its estimates (`driving.modular`), and its per-frame perception error.

A driver with an explicit state sets `policy.estimate` (lateral offset [m], heading error [rad],
curvature [1/m] perceived in the frame it was just shown; in traffic also the gap [m] and closing
speed [m/s] to the car ahead, compared with the truth capped as the traffic expert reads it:
no car within `LEADER_RANGE` is a gap of `LEADER_RANGE` closing at 0);
`driving.rollout.loop.drive` logs it in `info["estimate"]` beside the ground truth of that frame,
`info["estimate_truth"]`. Here:

- perception error of a frame: estimate - truth, per quantity; beyond `TOLERANCE` it is an error.
- an intervention is put down to **perception** when, within the `WINDOW_S` before it (and since
  the driver last took over), a frame's estimate was beyond tolerance no later than the car first
  strayed `STRAY_M` from the lane centre: the bad estimate came first. Otherwise to **control**:
  the estimates were good (or went bad only after the car had strayed) and the car still left.

    causes = attribute(errors, offset, autonomous, intervention, dt)   # ['perception', ...]
"""

from __future__ import annotations

import numpy as np

from driving.modular.cars import LEADER_RANGE

QUANTITIES = ("lateral_offset", "heading_error", "curvature", "gap_ahead", "closing_speed")
"""What the state-based drivers estimate: the ground truth of `envs.wrapper.ground_truth` (and
of `envs.traffic.TrafficEnv.traffic_truth` in traffic)."""
TOLERANCE = {
    "lateral_offset": 0.5,
    "heading_error": 0.1,
    "curvature": 0.02,
    "gap_ahead": 5.0,
    "closing_speed": 2.0,
}
"""Largest error that is not a perception error: half a lane's margin to an intervention [m],
a heading that puts the car 1 m off in 10 m [rad], a 50 m bend seen as straight [1/m], a fifth
of the gap the expert keeps at the speed limit [m], closing speed: a car 2 m/s slower unseen
[m/s]."""
WINDOW_S = 3.0
"""How far before an intervention a perception error is looked for [s]."""
STRAY_M = 0.5
"""The car has strayed (control is failing) this far from the lane centre [m]: half-way to the
intervention at 1 m."""


def perception_error(estimate: dict, truth: dict) -> dict[str, float]:
    """estimate - truth for each quantity of `QUANTITIES` that `estimate` has (the gaps capped
    at `LEADER_RANGE`, the true closing speed 0 without a car within it)."""
    estimate, truth = dict(estimate), dict(truth)
    if "gap_ahead" in estimate:
        estimate["gap_ahead"] = min(float(estimate["gap_ahead"]), LEADER_RANGE)
        if float(truth["gap_ahead"]) > LEADER_RANGE:
            truth["gap_ahead"], truth["closing_speed"] = LEADER_RANGE, 0.0
    return {q: float(estimate[q]) - float(truth[q]) for q in QUANTITIES if q in estimate}


def attribute(
    errors: dict[str, np.ndarray],
    offset: np.ndarray,
    autonomous: np.ndarray,
    intervention: np.ndarray,
    dt: float,
) -> list[str]:
    """'perception' or 'control' for each intervention of one episode, in order.

    Args:
        errors: per quantity, the per-step perception error (estimate - truth of the frame).
        offset: per step, the ground-truth lateral offset of that frame [m].
        autonomous: per step, the driver was in control.
        intervention: per step, an intervention began.
        dt: policy period [s].
    """
    bad = np.zeros(len(offset), bool)
    for q, error in errors.items():
        bad |= np.abs(np.asarray(error, float)) > TOLERANCE[q]
    strayed = np.abs(np.asarray(offset, float)) > STRAY_M
    autonomous = np.asarray(autonomous, bool)
    window = max(1, round(WINDOW_S / dt))
    causes = []
    for i in np.flatnonzero(intervention):
        start = max(0, i - window + 1)
        handed = np.flatnonzero(~autonomous[start : i + 1])  # the expert drove before this run
        if handed.size:
            start += int(handed[-1]) + 1
        first_bad = np.flatnonzero(bad[start : i + 1])
        first_stray = np.flatnonzero(strayed[start : i + 1])
        stray_at = first_stray[0] if first_stray.size else i - start
        causes.append("perception" if first_bad.size and first_bad[0] <= stray_at else "control")
    return causes


def perception_record(
    errors: dict[str, list[float]], offset, autonomous, intervention, dt: float
) -> dict:
    """One episode's perception figures: the per-frame errors of the frames the driver drove
    (rounded to 1e-4, for pooling), and the cause of each intervention."""
    arrays = {q: np.asarray(v, float) for q, v in errors.items()}
    drove = np.asarray(autonomous, bool)
    causes = attribute(arrays, offset, autonomous, intervention, dt)
    return {
        "errors": {q: np.round(a[drove], 4).tolist() for q, a in arrays.items()},
        "causes": causes,
    }


def summarize_perception(records: list[dict]) -> dict:
    """Overall figures over episodes' `perception_record`s: per quantity the mean and 95th
    percentile of |error| and the share of frames beyond tolerance, and the interventions put
    down to perception and to control."""
    result = {}
    for q in QUANTITIES:
        pooled = np.abs(
            np.concatenate([np.asarray(r["errors"].get(q, []), float) for r in records])
        )
        if pooled.size:
            result[f"perception_{q}_mean"] = float(pooled.mean())
            result[f"perception_{q}_p95"] = float(np.percentile(pooled, 95))
            result[f"perception_{q}_beyond"] = float(np.mean(pooled > TOLERANCE[q]))
    causes = [c for r in records for c in r["causes"]]
    result["interventions_perception"] = causes.count("perception")
    result["interventions_control"] = causes.count("control")
    return result


PERCEPTION_ROWS = [
    (f"perception: |{name} error| {stat}", f"perception_{q}_{key}", fmt)
    for q, name, fmt in (
        ("lateral_offset", "offset", "{:.3f} m"),
        ("heading_error", "heading", "{:.4f} rad"),
        ("curvature", "curvature", "{:.4f} 1/m"),
        ("gap_ahead", "gap ahead", "{:.2f} m"),
        ("closing_speed", "closing speed", "{:.2f} m/s"),
    )
    for stat, key in (("mean", "mean"), ("95th pct", "p95"))
] + [
    ("interventions: perception first", "interventions_perception", "{:d}"),
    ("interventions: control on good estimates", "interventions_control", "{:d}"),
]
"""Rows of the evaluation table (`driving.rollout.report.format_table`) for these figures."""
