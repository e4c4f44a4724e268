"""Several policies' generalisation suites side by side: one row per world, one column per run.

    python scripts/suite_table.py logs/suite-demo logs/suite-wide0 logs/suite-wide1

Reads each folder's `suite.json` (written by `drive evaluate --suite`) and prints a markdown table
whose cells are "success with the safety driver / finished alone" for each world, with the
expert's success on the same roads where it is under 100 % (then the world is beyond the car or
the expert, not only the policy). A world a run did not drive shows '-'.

A second table sums each run's interventions over the worlds on the project's own roads (not
highway-env's, each of one fixed limit), with the safety driver, by the speed at which they
began (each world's `metrics.json` breakdown): "N (per km)".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from driving.rollout.suite import SUITES, folder_name


def cell(row: dict | None) -> str:
    """'success / finished alone' of one world's row, in percent, and the expert's success where
    it is under 100 %; '-' where the row is missing."""
    if row is None:
        return "-"
    text = f"{row['success']:.0%} / {row['alone_finished']:.0%}"
    expert = row.get("expert_success")
    return text if expert is None or expert == 1 else f"{text} (expert {expert:.0%})"


def read_suite(folder: Path) -> dict:
    """The suite.json in `folder`; exits with one error line where there is none."""
    try:
        return json.loads((folder / "suite.json").read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {folder} holds no readable suite.json ({error})") from None


def table(folders: list[Path]) -> str:
    """The markdown table of the suites in `folders` (each holding a suite.json)."""
    runs = [read_suite(folder) for folder in folders]
    order = {w.name: i for i, w in enumerate(SUITES.get(runs[0]["suite"], ()))}
    names = sorted(
        dict.fromkeys(r["world"] for run in runs for r in run["rows"]),
        key=lambda name: order.get(name, len(order)),
    )
    by_world = [{r["world"]: r for r in run["rows"]} for run in runs]
    mean = len(folders) > 1
    head = ["world", *(f.name for f in folders), *(["mean"] if mean else [])]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name in names:
        cells = [cell(b.get(name)) for b in by_world]
        if mean:
            cells.append(mean_cell([b.get(name) for b in by_world]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed_table(folders: list[Path]) -> str:
    """Interventions by speed band, summed over the worlds on our own roads of each run (see
    the module docstring)."""
    bands: dict[str, list[list[float]]] = {}  # band -> per run [interventions, km]
    for i, folder in enumerate(folders):
        for row in read_suite(folder)["rows"]:
            metrics = folder / folder_name(row["world"]) / "metrics.json"
            report = json.loads(metrics.read_text()) if metrics.is_file() else {}
            if not report.get("scenario", "").startswith("winding"):
                continue
            for band in report["breakdown"]["speed"]:
                sums = bands.setdefault(band["bin"], [[0, 0.0] for _ in folders])[i]
                sums[0] += band["interventions"]
                sums[1] += band["km"]
    head = ["interventions began at", *(f.name for f in folders)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for band, sums in bands.items():
        cells = [f"{n} ({n / km:.2f} / km)" if km else "-" for n, km in sums]
        lines.append(f"| {band} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_cell(rows: list[dict | None]) -> str:
    """'success / finished alone' averaged over the runs, in percent; '-' unless every run drove
    the world (a mean over some of the seeds would read as one over all)."""
    if any(row is None for row in rows):
        return "-"
    success = sum(row["success"] for row in rows) / len(rows)
    alone = sum(row["alone_finished"] for row in rows) / len(rows)
    return f"{success:.0%} / {alone:.0%}"


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 else 2)
    folders = [Path(a) for a in sys.argv[1:]]
    print(table(folders))
    print()
    print(speed_table(folders))
