"""The evaluation report a person opens in a browser: `OUT/report.html`, from every evaluation.

One self-contained page, no script and nothing fetched from the network: the overall table
(policy beside expert), what produced it, the videos and every failure clip playing inline, the
interventions by curvature and speed (table and `breakdown.png`), and each road's result. Every
link is relative, so the folder can be moved, zipped or served as it is.

    write_report_page(Path("logs/demo/eval"), report)   # report: what `evaluate` returns
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from driving.files import replacing
from driving.rollout.report import table_cells

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.failed td { background: #fde8e8; }
video { max-width: 100%; background: #000; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
.note { color: #555; }
"""


def _link(path: str | Path, out: Path) -> str:
    """`path` relative to the report's folder, as a URL path (so the folder can move)."""
    relative = os.path.relpath(Path(path).resolve(), out.resolve())
    return escape(Path(relative).as_posix(), quote=True)


def html_table(cells: list[list[str]]) -> str:
    """An HTML table of text cells, the first row as the header."""
    head, *rows = cells
    lines = ["<table>", "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in head) + "</tr>"]
    lines += ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join([*lines, "</table>"])


def _breakdown_table(table: dict[str, list[dict]]) -> str:
    """The interventions by curvature and speed bin (`driving.rollout.breakdown.merge`)."""
    cells = [["by", "bin", "interventions", "driven [km]", "driven [min]", "per km"]]
    for axis, rows in table.items():
        for row in rows:
            rate = "-" if row["per_km"] is None else f"{row['per_km']:.3f}"
            driven = [f"{row['km']:.2f}", f"{row['seconds'] / 60:.1f}"]
            cells.append([axis, row["bin"], str(row["interventions"]), *driven, rate])
    return html_table(cells)


def _video(path: str, out: Path, caption: str) -> str:
    source = _link(path, out)
    return (
        f'<figure><video controls muted playsinline preload="metadata" src="{source}"></video>'
        f'<figcaption><a href="{source}">{escape(caption)}</a></figcaption></figure>'
    )


def _road_rows(report: dict, out: Path) -> list[str]:
    """One table row per road: its result and links to its clips."""
    rows = [
        "<table>",
        "<tr><th>road (seed)</th><th>result</th><th>interventions</th><th>autonomy</th>"
        "<th>mean |offset| [m]</th><th>mean speed [m/s]</th><th>distance [km]</th>"
        "<th>clips</th></tr>",
    ]
    for episode in report["episodes"]:
        result = "success" if episode["success"] else "failed"
        clips = " ".join(
            f'<a href="{_link(p, out)}">{escape(Path(p).stem)}</a>'
            for p in episode.get("clips", [])
            if Path(p).exists()
        )
        rows.append(
            f'<tr class="{result}"><td>{episode["seed"]:,}</td><td>{result}</td>'
            f"<td>{episode['interventions']}</td><td>{episode['autonomy']:.2%}</td>"
            f"<td>{episode['mean_abs_lateral_offset']:.3f}</td>"
            f"<td>{episode['mean_speed']:.2f}</td><td>{episode['distance_m'] / 1000:.2f}</td>"
            f"<td>{clips}</td></tr>"
        )
    return [*rows, "</table>"]


def _provenance(report: dict) -> str:
    made = report.get("provenance", {})
    parts = [f"policy <code>{escape(report['policy'])}</code>"]
    if made.get("checkpoint_sha256"):
        parts.append(f"sha256 <code>{made['checkpoint_sha256'][:16]}</code>...")
    parts.append(f"pixels-to-pedals {escape(str(made.get('package_version', '?')))}")
    parts.append(f"written {escape(str(made.get('created_utc', '?')))}")
    world = report["world"]
    camera = world["camera"]
    parts.append(
        f"scenario {escape(world['scenario'])}, {escape(camera['kind'])} camera with "
        f"'{escape(camera['appearance'])}' looks"
    )
    return '<p class="note">' + "; ".join(parts) + ".</p>"


def report_page(report: dict, out: Path) -> str:
    """The HTML text of the report page of `report`, to be written into `out`."""
    overall = report["overall"]
    seeds = report["seeds"]
    title = f"Evaluation of {Path(report['policy']).name}"
    summary = (
        f"{overall['success_rate']:.1%} of {len(seeds)} held-out roads (seeds {seeds[0]:,} to "
        f"{seeds[-1]:,}) driven with no intervention, crash or speeding violation."
    )
    videos = [_video(p, out, Path(p).stem) for p in report.get("videos", []) if Path(p).exists()]
    clips = [_video(p, out, Path(p).stem) for p in report.get("clips", []) if Path(p).exists()]
    breakdown = out / "breakdown.png"
    results = {"policy": overall}
    if "expert" in report:
        results["expert"] = report["expert"]["overall"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',  # no favicon request, so no failed load
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _provenance(report),
        f"<p>{escape(summary)} Rates are fractions in metrics.json, percentages here.</p>",
        "<h2>Overall</h2>",
        html_table(table_cells(results)),
        "<h2>Videos</h2>",
        *(videos or ['<p class="note">none recorded (<code>--video N</code>)</p>']),
        "<h2>Interventions and failures</h2>",
        *(clips or ['<p class="note">no clip: no intervention or failure (or --no-clips)</p>']),
        "<h2>Interventions by curvature and speed</h2>",
    ]
    if "breakdown" in report:
        parts.append(_breakdown_table(report["breakdown"]))
    if breakdown.exists():
        parts.append(
            f'<img src="{_link(breakdown, out)}" alt="interventions by curvature and speed">'
        )
    parts += ["<h2>Each road</h2>", *_road_rows(report, out), "</body></html>", ""]
    return "\n".join(parts)


def write_report_page(out: Path, report: dict) -> Path:
    """Write `report_page` as `out/report.html` (atomically); returns its path."""
    path = Path(out) / "report.html"
    with replacing(path) as tmp:
        tmp.write_text(report_page(report, Path(out)), encoding="utf-8")
    return path
