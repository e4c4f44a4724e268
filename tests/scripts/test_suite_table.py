"""scripts/suite_table.py: several suites side by side, from the suite.json files they wrote."""

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
