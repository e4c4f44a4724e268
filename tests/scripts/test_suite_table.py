"""scripts/suite_table.py: several suites side by side, from the suite.json files they wrote."""

import json
import subprocess
import sys
from pathlib import Path

from driving.rollout.evaluate import EvalConfig
from driving.rollout.suite import write_suite

SCRIPT = Path(__file__).parents[2] / "scripts" / "suite_table.py"


def _row(world: str, success: float, alone: float, expert: float) -> dict:
    return {"world": world, "success": success, "alone_finished": alone, "expert_success": expert,
            "inside_training": True, "autonomy": 1.0, "mean_abs_lateral_offset": 0.1,
            "speed_ratio_to_expert": 1.0, "alone_km": 1.0, "alone_speed": 14.0,
            "expert_speed": 14.0}  # fmt: skip


def test_suites_side_by_side_in_the_suites_order_with_the_experts_failures_flagged(tmp_path):
    cfg = EvalConfig("expert", suite="generalisation")
    write_suite(
        tmp_path / "a",
        cfg,
        [_row("as trained", 0.9, 1.0, 1.0), _row("racetrack-v1", 0.0, 0.0, 0.5)],
    )
    write_suite(
        tmp_path / "b",
        cfg,
        [_row("racetrack-v1", 0.4, 0.9, 1.0), _row("default roads", 1.0, 1.0, 1.0)],
    )
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "a"), str(tmp_path / "b")],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[0] == "| world | a | b | mean |"
    assert out[2] == "| as trained | 90% / 100% | - | - |"  # no mean over some of the runs
    assert out[3] == "| default roads | - | 100% / 100% | - |"  # the suite's order
    assert out[4] == "| racetrack-v1 | 0% / 0% (expert 50%) | 40% / 90% | 20% / 45% |"


def test_a_folder_without_a_suite_is_one_error_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode != 0 and done.stderr.strip().startswith("error:")


def _metrics(folder: Path, world: str, scenario: str, bands: list[tuple[str, int, float]]):
    path = folder / world.replace(" ", "-") / "metrics.json"
    path.parent.mkdir(parents=True)
    speed = [{"bin": b, "interventions": n, "km": km} for b, n, km in bands]
    path.write_text(json.dumps({"scenario": scenario, "breakdown": {"speed": speed}}))


def test_interventions_by_speed_summed_over_the_worlds_on_our_own_roads(tmp_path):
    cfg = EvalConfig("expert", suite="generalisation")
    names = ("as trained", "lanes 2.8-3.2 m", "highway-v0")
    write_suite(tmp_path / "a", cfg, [_row(name, 1.0, 1.0, 1.0) for name in names])
    _metrics(
        tmp_path / "a", "as trained", "winding-road", [("< 10 m/s", 1, 2.0), (">= 15 m/s", 2, 4.0)]
    )
    _metrics(
        tmp_path / "a",
        "lanes 2.8-3.2 m",
        "winding-road",
        [("< 10 m/s", 0, 2.0), (">= 15 m/s", 4, 4.0)],
    )
    _metrics(
        tmp_path / "a", "highway-v0", "highway-v0", [("< 10 m/s", 0, 0.0), (">= 15 m/s", 9, 9.0)]
    )
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "a")], capture_output=True, text=True,
        check=True,
    ).stdout.splitlines()  # fmt: skip
    start = out.index("| interventions began at | a |")
    assert out[start + 2] == "| < 10 m/s | 1 (0.25 / km) |"
    assert out[start + 3] == "| >= 15 m/s | 6 (0.75 / km) |"  # highway-v0's 9 left out
