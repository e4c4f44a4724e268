"""The speed benchmark's smoke test: every target is measured and reported (timings not judged)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_benchmark_reports_every_target_with_pass_or_fail(tmp_path):
    out, figure = tmp_path / "bench.json", tmp_path / "figure.png"
    done = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--quick", "--json", str(out)]
        + ["--figure", str(figure)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    checks = {check["what"].split(" (")[0]: check for check in results["checks"]}
    assert len(checks) == 10  # the dashcam, and with its mirror, beside the top-down camera
    for check in checks.values():  # one printed line each, with its target and verdict
        line = next(line for line in done.stdout.splitlines() if line.startswith(check["what"]))
        assert check["target"] in line and ("PASS" in line or "FAIL" in line)
    # Sizes and picture agreement do not depend on the machine's load: these must pass.
    assert checks["dataset bytes/frame"]["pass"]
    assert checks["camera vs reference rendering"]["pass"]
    assert results["collect_frames_per_s"] > 0 and results["bare_sim_steps_per_s"] > 0
    assert figure.stat().st_size > 10_000
