"""Where the policy is weak: interventions broken down by road curvature and by speed.

One average hides where a policy fails. This counts, per bin of |curvature| (in radius terms) and
per bin of speed, the interventions and the exposure (seconds and km the policy drove in that
bin), so that each bin gets its own rate. Counting is per episode (`count`), results add up over
episodes (`merge`), and `plot` draws the two tables side by side.

An intervention is put in the bin of the step at which it began (curvature of the ego's lane and
speed at that step); exposure counts only the steps the policy drove.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from driving.files import replacing

CURVATURE_BINS = (
    ("straight (R > 1 km)", 0.0, 1e-3),
    ("gentle (R 100 m-1 km)", 1e-3, 1e-2),
    ("bend (R 40-100 m)", 1e-2, 1 / 40),
    ("tight (R 20-40 m)", 1 / 40, 1 / 20),
    ("sharp (R < 20 m)", 1 / 20, math.inf),
)
"""(name, low, high) bins of |curvature| [1/m]; low inclusive."""
SPEED_BINS = (
    ("< 10 m/s", 0.0, 10.0),
    ("10-13 m/s", 10.0, 13.0),
    ("13-15 m/s", 13.0, 15.0),
    (">= 15 m/s", 15.0, math.inf),
)
"""(name, low, high) bins of speed [m/s]; low inclusive."""
AXES = {"curvature": CURVATURE_BINS, "speed": SPEED_BINS}


def _bin_index(values: np.ndarray, bins: tuple) -> np.ndarray:
    """Index of the bin of each value (bins are contiguous, the last one open-ended)."""
    edges = np.array([low for _, low, _ in bins[1:]])
    return np.searchsorted(edges, values, side="right")


def count(
    curvature: np.ndarray,
    speed: np.ndarray,
    autonomous: np.ndarray,
    intervention: np.ndarray,
    dt: float,
) -> dict[str, dict[str, list[float]]]:
    """Interventions and exposure of one episode, per bin.

    Args:
        curvature: (T,) signed curvature of the ego's lane at each step [1/m].
        speed: (T,) speed at each step [m/s].
        autonomous: (T,) the policy drove this step.
        intervention: (T,) an intervention began at this step.
        dt: policy period [s].

    Returns:
        {"curvature" | "speed": {"interventions": [...], "seconds": [...], "km": [...]}}, one
        entry per bin of `CURVATURE_BINS` / `SPEED_BINS`.
    """
    speed = np.asarray(speed, dtype=float)
    autonomous = np.asarray(autonomous, dtype=bool)
    intervention = np.asarray(intervention, dtype=bool)
    values = {"curvature": np.abs(np.asarray(curvature, dtype=float)), "speed": speed}
    metres = speed * dt * autonomous  # [m] the policy drove in each step
    out = {}
    for axis, bins in AXES.items():
        index = _bin_index(values[axis], bins)
        n = len(bins)
        out[axis] = {
            "interventions": np.bincount(index[intervention], minlength=n).tolist(),
            "seconds": (np.bincount(index[autonomous], minlength=n) * dt).tolist(),
            "km": (np.bincount(index, weights=metres, minlength=n) / 1000).tolist(),
        }
    return out


def merge(counts: list[dict]) -> dict[str, list[dict]]:
    """Sum per-episode counts and add the rates: the `breakdown` table of metrics.json.

    Returns:
        {"curvature" | "speed": [{"bin", "interventions", "seconds", "km", "per_km",
        "per_hour"}, ...]}; rates are None in bins the policy never drove.
    """
    table = {}
    for axis, bins in AXES.items():
        rows = []
        for i, (name, _, _) in enumerate(bins):
            interventions = int(sum(c[axis]["interventions"][i] for c in counts))
            seconds = float(sum(c[axis]["seconds"][i] for c in counts))
            km = float(sum(c[axis]["km"][i] for c in counts))
            rows.append(
                {
                    "bin": name,
                    "interventions": interventions,
                    "seconds": seconds,
                    "km": km,
                    "per_km": interventions / km if km > 0 else None,
                    "per_hour": interventions / seconds * 3600 if seconds > 0 else None,
                }
            )
        table[axis] = rows
    return table


def format_breakdown(table: dict[str, list[dict]]) -> str:
    """Markdown table of `merge`'s result."""
    lines = ["| by | bin | interventions | driven | per km |", "|---|---|---|---|---|"]
    for axis, rows in table.items():
        for row in rows:
            rate = "-" if row["per_km"] is None else f"{row['per_km']:.3f}"
            driven = f"{row['km']:.2f} km, {row['seconds'] / 60:.1f} min"
            lines.append(f"| {axis} | {row['bin']} | {row['interventions']} | {driven} | {rate} |")
    return "\n".join(lines)


def plot(table: dict[str, list[dict]], path: Path, title: str = "") -> Path:
    """Bar charts of interventions per km in each bin, with counts and km driven written on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(11, 3.8))
    for ax, (axis, rows) in zip(axes, table.items(), strict=True):
        rates = [row["per_km"] or 0.0 for row in rows]
        bars = ax.bar(range(len(rows)), rates, color="#c0392b")
        for bar, row in zip(bars, rows, strict=True):
            label = f"{row['interventions']} in\n{row['km']:.1f} km"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)  # fmt: skip
        names = [row["bin"].replace(" (", "\n(") for row in rows]
        ax.set_xticks(range(len(rows)), names, fontsize=8)
        ax.set_ylabel("interventions per km")
        ax.set_title(f"by {axis}")
        ax.set_ylim(0, max(rates + [0.01]) * 1.35)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path
