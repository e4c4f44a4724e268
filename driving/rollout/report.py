"""Reports of an evaluation: overall figures, the side-by-side table, TensorBoard logging."""

from __future__ import annotations

from pathlib import Path

from driving.draw.video import add_gif
from driving.rollout.attribution import PERCEPTION_ROWS, summarize_perception
from driving.rollout.metrics import summarize
from driving.rollout.traffic_metrics import summarize_traffic

TENSORBOARD_CLIPS = 5  # clips of interventions and failures that go to TensorBoard too


def overall(episodes: list[dict]) -> dict:
    """Overall metrics of a run (`driving.rollout.metrics.summarize`); in traffic also the fleet
    figures of `driving.rollout.traffic_metrics` (clean_share, collisions_per_km,
    headway_under_share, lane_changes_per_km, driving_score); for a driver that exposes its
    estimates, the perception error and attribution of `driving.rollout.attribution`."""
    result = summarize(episodes)
    if all("traffic" in e for e in episodes):
        traffic = summarize_traffic([e["traffic"] for e in episodes])
        shared = ("episodes", "mean_speed", "km")  # summarize has them already
        result.update({k: v for k, v in traffic.items() if k not in shared})
    if episodes and all("perception" in e for e in episodes):  # a driver exposing estimates
        result.update(summarize_perception([e["perception"] for e in episodes]))
    return result


TRAFFIC_ROWS = [
    ("clean: no collision, on the road", "clean_share", "{:.1%}"),
    ("collisions / km", "collisions_per_km", "{:.3f}"),
    ("time headway < 1 s", "headway_under_share", "{:.2%}"),
    ("lane changes / km", "lane_changes_per_km", "{:.2f}"),
    ("driving score", "driving_score", "{:.3f}"),
    ("mean speed / expert's", "speed_ratio_to_expert", "{:.3f}"),
]


def format_table(results: dict[str, dict]) -> str:
    """Side-by-side table of overall metrics, one column per driver ('-' where one has none)."""
    rows = [
        ("success rate", "success_rate", "{:.1%}"),
        ("autonomy", "autonomy", "{:.2f} %"),
        ("interventions / km", "interventions_per_km", "{:.3f}"),
        ("distance", "distance_km", "{:.2f} km"),
        ("mean |lateral offset|", "mean_abs_lateral_offset", "{:.3f} m"),
        ("mean speed", "mean_speed", "{:.2f} m/s"),
        ("time speeding", "speeding_share", "{:.2%}"),
        ("speeding violations", "speeding_violations", "{:d}"),
        ("peak lateral accel", "peak_lateral_accel", "{:.2f} m/s^2"),
        ("mean peak lateral accel", "mean_peak_lateral_accel", "{:.2f} m/s^2"),
        *TRAFFIC_ROWS,
        *PERCEPTION_ROWS,
    ]
    names = list(results)
    lines = [f"| metric | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    for label, key, fmt in rows:
        if any(key in results[n] for n in names):
            cells = [fmt.format(results[n][key]) if key in results[n] else "-" for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def log_to_tensorboard(writer, report: dict, step: int) -> None:
    """Closed-loop metrics of `report` into a TensorBoard SummaryWriter, as eval/*.

    The videos and the first clips go in as animated GIFs under eval/video/* and eval/clip/*
    (see `driving.draw.video.add_gif`).
    """
    for name, value in report["overall"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(f"eval/{name}", value, step)
    writer.add_text("eval/table", report["table"], step)
    if "breakdown_table" in report:
        writer.add_text("eval/breakdown", report["breakdown_table"], step)
    for path in report.get("videos", []):
        add_gif(writer, f"eval/video/{Path(path).stem}", Path(path), step)
    for path in report.get("clips", [])[:TENSORBOARD_CLIPS]:
        add_gif(writer, f"eval/clip/{Path(path).stem}", Path(path), step)
