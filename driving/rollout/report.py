"""Reports of an evaluation: overall figures, provenance, the side-by-side table, TensorBoard
(scalars, videos, the HParams tab's metrics) and the checkpoint's model card."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from driving.draw.video import add_gif
from driving.learn.card import file_sha256, package_version, write_model_card
from driving.learn.checkpoint import load_checkpoint
from driving.learn.monitor import log_hparams
from driving.rollout.attribution import PERCEPTION_ROWS, summarize_perception
from driving.rollout.drivers import BUILT_IN
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


def provenance(policy: str) -> dict:
    """What produced a report: the checkpoint (path and sha256; None for a built-in driver), the
    package version and the UTC time [ISO 8601]; `rates` states their scale. The settings are
    the report's `config`."""
    checkpoint = policy not in BUILT_IN
    return {
        "checkpoint": policy if checkpoint else None,
        "checkpoint_sha256": file_sha256(policy) if checkpoint else None,
        "package_version": package_version(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rates": "fractions in [0, 1] (success_rate, autonomy, *_share)",
    }


TRAFFIC_ROWS = [
    ("clean: no collision, on the road", "clean_share", "{:.1%}"),
    ("collisions / km", "collisions_per_km", "{:.3f}"),
    ("collisions: into the car ahead", "collisions_ahead", "{:d}"),
    ("collisions: with a car alongside", "collisions_side", "{:d}"),
    ("collisions: hit from behind", "collisions_behind", "{:d}"),
    ("time headway < 1 s", "headway_under_share", "{:.2%}"),
    ("lane changes / km", "lane_changes_per_km", "{:.2f}"),
    ("driving score", "driving_score", "{:.3f}"),
    ("mean speed / expert's", "speed_ratio_to_expert", "{:.3f}"),
]


TABLE_ROWS = [
    ("success rate", "success_rate", "{:.1%}"),
    ("autonomy", "autonomy", "{:.2%}"),
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
"""(label, key of the overall metrics, format) of each table row; rates print as percentages."""


def table_cells(results: dict[str, dict]) -> list[list[str]]:
    """The side-by-side table as text cells: a header row ('metric' and the drivers' names),
    then one row per metric any driver has ('-' where one has none)."""
    names = list(results)
    rows = [["metric", *names]]
    for label, key, fmt in TABLE_ROWS:
        if any(key in results[n] for n in names):
            cells = (fmt.format(results[n][key]) if key in results[n] else "-" for n in names)
            rows.append([label, *cells])
    return rows


def format_table(results: dict[str, dict]) -> str:
    """Side-by-side markdown table of overall metrics, one column per driver."""
    head, *rows = table_cells(results)
    lines = [f"| {' | '.join(head)} |", "|---" * len(head) + "|"]
    return "\n".join(lines + [f"| {' | '.join(row)} |" for row in rows])


def log_to_tensorboard(writer, report: dict, step: int) -> None:
    """Closed-loop metrics of `report` into a TensorBoard SummaryWriter, as eval/*.

    The videos and the first clips go in as animated GIFs, at full size so that the overlay's
    text reads, under eval/video/* and eval/clip/* (`driving.draw.video.add_gif`: the first
    20 s at 5 fps); eval/files names the full mp4s and the report page.
    """
    for name, value in report["overall"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(f"eval/{name}", value, step)
    writer.add_text("eval/table", report["table"], step)
    if "breakdown_table" in report:
        writer.add_text("eval/breakdown", report["breakdown_table"], step)
    files = (
        [f"report page: {Path(report['config']['out']) / 'report.html'}"]
        if "config" in report
        else []
    )
    files += [f"full video: {p}" for p in report.get("videos", [])]
    writer.add_text("eval/files", "\n\n".join(files), step)
    for path in report.get("videos", []):
        add_gif(writer, f"eval/video/{Path(path).stem}", Path(path), step)
    for path in report.get("clips", [])[:TENSORBOARD_CLIPS]:
        add_gif(writer, f"eval/clip/{Path(path).stem}", Path(path), step)


def publish_to_run(report: dict, run: Path) -> None:
    """Record an evaluation of a checkpoint in its training run folder `run`: the run's settings
    (the checkpoint's) and the eval/* metrics for TensorBoard's HParams tab, at the checkpoint's
    step, the videos and clips, and the model card beside the checkpoint with these numbers."""
    from torch.utils.tensorboard import SummaryWriter  # only a run needs it

    checkpoint = Path(report["policy"])
    ckpt = load_checkpoint(checkpoint)
    with SummaryWriter(str(run)) as writer:
        log_hparams(writer, ckpt["config"])
        log_to_tensorboard(writer, report, ckpt["step"])
    write_model_card(checkpoint, report)
