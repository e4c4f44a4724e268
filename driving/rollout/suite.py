"""The generalisation suite: one policy on worlds unlike its training roads, beside the expert.

    drive evaluate --policy logs/demo/run/best.pt --suite generalisation --roads 50

Each world of `SUITES` is made from the policy's own (its checkpoint's World): the default roads
(for a policy trained on other ranges), tighter bends, narrower, wider and more lanes, the
dashcam's held-out looks, highway-env's racetracks and highway without their other cars (timed
drives at each lane's own speed limit). The bends and lanes reach past the wide training ranges
(`envs.road.WIDE_ROADS`: 15 m, 2.8 to 5 m) too, so that every policy meets worlds it never saw.
In each the policy drives twice on the same held-out seeds: with the expert as safety driver
(the usual evaluation, `driving.rollout.evaluate`: success, autonomy, offset, speed beside the
expert's) and alone, the drive ending where it leaves the road or crashes. Every world's folder
under --out holds its own metrics.json, report page, breakdown and failure clips; `suite.md`
and `suite.json` hold the one table, with whether each world lies inside the policy's training
ranges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from driving.files import write_bytes, write_json
from envs.road import RoadSettings
from envs.world import NO_CARS, World


@dataclass(frozen=True)
class SuiteWorld:
    """One world of a suite, made from the world the policy was trained in."""

    name: str
    """the row's label and the world's folder under --out"""
    change: Callable[[World], World | None]
    """the policy's world -> this world (None: not for this policy, e.g. no held-out looks on
    the top-down camera)"""


def _road(**ranges) -> Callable[[World], World]:
    """The policy's world with these road ranges (the others as trained)."""
    return lambda world: replace(world, road=replace(world.road, **ranges))


def _default_roads(world: World) -> World | None:
    """The default road ranges (the demo's roads) with the policy's camera, steering and speed
    limit rule (a policy that reads the limit from the lane width keeps that rule, one told
    each road's drawn limit keeps its range); None where the policy was trained on them (the
    "as trained" row)."""
    road = world.road
    rule = {"limit_follows_width": road.limit_follows_width, "limit_range": road.limit_range}
    roads = replace(RoadSettings(), **rule)
    return None if world.road == roads else replace(world, road=roads)


def _held_out_look(world: World) -> World | None:
    """The dashcam's held-out appearance range; None on the top-down camera (it has none)."""
    if world.camera.kind != "dashcam":
        return None
    return replace(world, camera=replace(world.camera, appearance="held-out"))


def _highway_env(scenario: str, duration_s: float) -> Callable[[World], World]:
    """A highway-env scenario through the policy's camera and steering, without other cars, a
    timed drive."""
    return lambda world: replace(
        world, scenario=scenario, density=NO_CARS, road=RoadSettings(), duration_s=duration_s
    ).validate()


RACE_S = 60.0  # [s] a racetrack drive: about one lap of racetrack-v1 at the expert's 8 m/s

SUITES: dict[str, tuple[SuiteWorld, ...]] = {
    "generalisation": (
        SuiteWorld("as trained", lambda world: world),
        SuiteWorld("default roads", _default_roads),
        SuiteWorld("bends 20-40 m", _road(radius=(20.0, 40.0))),
        SuiteWorld("bends 15-20 m", _road(radius=(15.0, 20.0))),
        SuiteWorld("bends 12-15 m", _road(radius=(12.0, 15.0))),
        SuiteWorld("lanes 2.5-2.8 m", _road(lane_width=(2.5, 2.8))),
        SuiteWorld("lanes 2.8-3.2 m", _road(lane_width=(2.8, 3.2))),
        SuiteWorld("lanes 4.0-5.0 m", _road(lane_width=(4.0, 5.0))),
        SuiteWorld("lanes 5.0-5.5 m", _road(lane_width=(5.0, 5.5))),
        SuiteWorld("4 lanes", _road(lanes=(4, 4))),
        SuiteWorld("held-out looks", _held_out_look),
        SuiteWorld("racetrack-v1", _highway_env("racetrack-v1", RACE_S)),
        SuiteWorld("racetrack-large-v1", _highway_env("racetrack-large-v1", RACE_S)),
        SuiteWorld("racetrack-oval-v1", _highway_env("racetrack-oval-v1", RACE_S)),
        SuiteWorld("highway-v0", _highway_env("highway-v0", 40.0)),
    ),
}
"""The suites `drive evaluate --suite` runs, by name."""


def folder_name(name: str) -> str:
    """A world's folder under --out: its name with spaces as dashes."""
    return name.replace(" ", "-")


SAME_RULE = ("speed_limit", "limit_follows_width", "limit_range")
"""Road settings that make the speed limit rule, which must be the same for a world to lie
inside the training ranges (`limit_rule`; the others are ranges, or how often a kind of bend is
drawn)."""


def limit_rule(road: RoadSettings) -> tuple:
    """How `road`'s limits are set: drawn from a range (the other two settings then unused),
    else the fixed limit or the one that follows the lane width."""
    if road.limit_range is not None:
        return ("drawn", road.limit_range)
    return ("set", road.speed_limit, road.limit_follows_width)


def inside_training(world: World, trained: World) -> bool:
    """Whether `world` lies inside the ranges `trained` was drawn from: the same scenario,
    camera and speed limit rule, and every road range within the trained one."""
    if world.scenario != trained.scenario or world.camera != trained.camera:
        return False
    if limit_rule(world.road) != limit_rule(trained.road):
        return False
    for f in fields(world.road):
        tested, seen = getattr(world.road, f.name), getattr(trained.road, f.name)
        if f.name in SAME_RULE:
            continue
        elif isinstance(tested, tuple) and not seen[0] <= tested[0] <= tested[1] <= seen[1]:
            return False
    return True


def worlds(suite: str, trained: World) -> list[tuple[str, World]]:
    """(name, world) of each world of `suite` that applies to a policy trained in `trained`.

    Raises:
        ValueError: an unknown suite name.
    """
    if suite not in SUITES:
        raise ValueError(f"unknown --suite {suite!r}; use one of {list(SUITES)}")
    made = [(w.name, w.change(trained)) for w in SUITES[suite]]
    return [(name, world) for name, world in made if world is not None]


def suite_row(name: str, inside: bool, report: dict, alone: list[dict]) -> dict:
    """One row of the suite table from a world's evaluation report and its alone drives."""
    policy, expert = report["overall"], report.get("expert", {}).get("overall", {})
    return {
        "world": name,
        "inside_training": inside,
        "expert_success": expert.get("success_rate"),
        "success": policy["success_rate"],
        "autonomy": policy["autonomy"],
        "mean_abs_lateral_offset": policy["mean_abs_lateral_offset"],
        "speed_ratio_to_expert": policy.get("speed_ratio_to_expert"),
        "alone_finished": float(np.mean([e["reached_end"] for e in alone])),
        "alone_km": float(np.mean([e["distance_m"] for e in alone]) / 1000),
        "alone_speed": float(np.mean([e["mean_speed"] for e in alone])),
        "expert_speed": expert.get("mean_speed"),
    }


COLUMNS = (
    ("world", "world", "{}"),
    ("in training ranges", "inside_training", "{}"),
    ("expert success", "expert_success", "{:.0%}"),
    ("policy success", "success", "{:.0%}"),
    ("autonomy", "autonomy", "{:.2%}"),
    ("mean abs offset", "mean_abs_lateral_offset", "{:.3f} m"),
    ("speed / expert's", "speed_ratio_to_expert", "{:.3f}"),
    ("alone: finished", "alone_finished", "{:.0%}"),
    ("alone: km per drive", "alone_km", "{:.2f}"),
    ("alone: speed / expert's", "alone_speed_ratio", "{:.3f}"),
)
"""(header, key of a row, format) of each column of the suite table."""


def format_suite(rows: list[dict]) -> str:
    """The suite's markdown table, one row per world ('-' where a value is missing)."""
    lines = [
        "| " + " | ".join(h for h, _, _ in COLUMNS) + " |",
        "|---" * len(COLUMNS) + "|",
    ]
    for row in rows:
        row = {**row, "alone_speed_ratio": _ratio(row["alone_speed"], row["expert_speed"])}
        cells = (fmt.format(row[k]) if row.get(k) is not None else "-" for _, k, fmt in COLUMNS)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(value: float, reference: float | None) -> float | None:
    return value / reference if reference else None


def write_suite(out: Path, cfg, rows: list[dict]) -> dict:
    """Write suite.json and suite.md into `out`; returns {"rows", "table"}."""
    table = format_suite(rows)
    head = (
        f"# Suite {cfg.suite!r}: {cfg.policy}\n\n{cfg.episodes} drives per world (held-out "
        f"seeds from offset {cfg.seed_offset}); with the expert as safety driver, and alone.\n\n"
    )
    write_bytes(out / "suite.md", (head + table + "\n").encode())
    result = {"suite": cfg.suite, "policy": cfg.policy, "rows": rows, "table": table}
    write_json(out / "suite.json", result)
    return result
