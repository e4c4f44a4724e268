"""Closed-loop driving metrics, from per-step records of one episode.

Every rate and share is a fraction in [0, 1] (success_rate, autonomy, speeding_share, ...):
one scale in `metrics.json`, TensorBoard and the HParams tab; the printed tables show them as
percentages.

Definitions (docs/evaluation.md repeats them):
- intervention: the policy is in control and the car gets more than `INTERVENTION_OFFSET` from the
  lane centre, leaves the road or crashes; the expert then drives until the car is back on the
  centre (PilotNet's simulator test).
- autonomy: 1 - interventions x 6 s / elapsed s, floored at 0 (Bojarski et al. 2016, who
  multiply it by 100).
- speeding: faster than 110 % of the road's limit; a violation is speeding for more than 1 s.
- success: the road's end reached with no intervention, no crash and no speeding violation.
- peak lateral acceleration [m/s^2]: max of speed x yaw rate while the policy drives.
"""

from __future__ import annotations

import numpy as np

INTERVENTION_OFFSET = 1.0  # [m]
INTERVENTION_PENALTY = 6.0  # [s]
SPEEDING_FACTOR = 1.1
SPEEDING_GRACE = 1.0  # [s]
INFO_KEYS = ("speed", "speed_limit", "lateral_offset", "heading", "on_road", "crashed", "distance")
"""Per-step values copied from the env's `info` into an episode record."""
RECORD_KEYS = (*INFO_KEYS, "autonomous", "intervention")
"""Everything `episode_metrics` reads: INFO_KEYS plus who drove and when interventions began."""
METRICS_VERSION = 4
"""Version of an episode's metrics: 2 = autonomy as a fraction (1 had it in percent), 3 = five
curvature bins in its breakdown (2 had three), 4 = traffic collisions counted by kind. A cached
episode of another version is driven again."""


def _longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True in a boolean array."""
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def episode_metrics(record: dict[str, np.ndarray], dt: float, reached_end: bool) -> dict:
    """Metrics of one episode.

    Args:
        record: per-step arrays named as in `RECORD_KEYS` (one value per policy step).
        dt: policy period [s].
        reached_end: whether the car reached the end of the road.
    """
    speed = np.asarray(record["speed"], dtype=float)
    autonomous = np.asarray(record["autonomous"], dtype=bool)
    steps = len(speed)
    elapsed = steps * dt
    interventions = int(np.sum(record["intervention"]))
    distance = float(record["distance"][-1]) if steps else 0.0
    speeding = speed > SPEEDING_FACTOR * np.asarray(record["speed_limit"], dtype=float)
    violation = _longest_run(speeding) * dt > SPEEDING_GRACE
    # Yaw rate between consecutive steps that the policy drove.
    heading = np.asarray(record["heading"], dtype=float)
    both = autonomous[1:] & autonomous[:-1]
    lateral_accel = speed[1:] * np.abs(np.diff(heading)) / dt
    offsets = np.abs(np.asarray(record["lateral_offset"], dtype=float))[autonomous]
    crashed = bool(np.any(record["crashed"]))
    return {
        "success": bool(reached_end and interventions == 0 and not violation and not crashed),
        "reached_end": bool(reached_end),
        "interventions": interventions,
        "autonomy": max(0.0, 1.0 - interventions * INTERVENTION_PENALTY / max(elapsed, dt)),
        "elapsed_s": elapsed,
        "distance_m": distance,
        "interventions_per_km": interventions / max(distance / 1000, 1e-9),
        "mean_abs_lateral_offset": float(offsets.mean()) if offsets.size else float("nan"),
        "mean_speed": float(speed.mean()) if steps else 0.0,
        "speeding_share": float(speeding.mean()) if steps else 0.0,
        "speeding_violation": bool(violation),
        "peak_lateral_accel": float(lateral_accel[both].max()) if both.any() else 0.0,
        "left_road": bool(not np.all(record["on_road"])),
        "crashed": crashed,
    }


def summarize(episodes: list[dict]) -> dict:
    """Overall metrics: rates over episodes, autonomy and intervention rate over all time."""
    if not episodes:
        raise ValueError("no episodes to summarize")
    elapsed = sum(e["elapsed_s"] for e in episodes)
    distance = sum(e["distance_m"] for e in episodes)
    interventions = sum(e["interventions"] for e in episodes)
    return {
        "episodes": len(episodes),
        "success_rate": float(np.mean([e["success"] for e in episodes])),
        "autonomy": max(0.0, 1.0 - interventions * INTERVENTION_PENALTY / elapsed),
        "interventions": interventions,
        "interventions_per_km": interventions / max(distance / 1000, 1e-9),
        "distance_km": distance / 1000,
        "mean_abs_lateral_offset": float(
            np.nanmean([e["mean_abs_lateral_offset"] for e in episodes])
        ),
        "mean_speed": float(np.mean([e["mean_speed"] for e in episodes])),
        "speeding_share": float(np.mean([e["speeding_share"] for e in episodes])),
        "speeding_violations": int(sum(e["speeding_violation"] for e in episodes)),
        "peak_lateral_accel": float(max(e["peak_lateral_accel"] for e in episodes)),
        "mean_peak_lateral_accel": float(np.mean([e["peak_lateral_accel"] for e in episodes])),
        "crashes": int(sum(e["crashed"] for e in episodes)),
    }
