"""scripts/adversarial.py: its verdicts are mechanical, and a run prints one row per case, a
summary line and an exit code that follows the four counts that must be zero."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import adversarial as adv  # noqa: E402


def run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPTS / "adversarial.py"), "--out", str(tmp_path / "adv"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_a_traceback_is_a_traceback_whatever_the_exit_code():
    done = adv.Done(2, "", 'Traceback (most recent call last):\n  File "x"\nValueError: bad\n')
    assert adv.refusal(done).verdict == adv.TRACEBACK


def test_success_on_damaged_data_is_a_corrupt_read_and_on_a_bad_flag_weak():
    done = adv.Done(0, "trained\n", "")
    assert adv.refusal(done, damaged=True).verdict == adv.CORRUPT
    assert adv.refusal(done).verdict == adv.WEAK


def test_only_one_error_line_with_exit_code_2_is_ok():
    assert adv.refusal(adv.Done(2, "", "error: --roads must be >= 1, got -3\n")).verdict == adv.OK
    box = "usage: drive collect\n╭─ Parsing error ─╮\n│ bad value │\n╰──╯\n"
    assert adv.refusal(adv.Done(2, "", box)).verdict == adv.WEAK
    assert adv.refusal(adv.Done(1, "", "error: no\n")).verdict == adv.WEAK
    assert adv.refusal(adv.Done(2, "", "no prefix\n")).verdict == adv.WEAK


def test_a_refusal_must_name_the_damaged_file_and_leave_nothing_behind():
    done = adv.Done(2, "", "error: cannot read episode data/episode_0000000_ab.h5: truncated\n")
    assert adv.refusal(done, damaged=True, name="episode_0000000_ab.h5").verdict == adv.OK
    assert adv.refusal(done, damaged=True, name="manifest.json").verdict == adv.WEAK
    assert adv.refusal(done, left=["m.1.ab.tmp.onnx"]).verdict == adv.WEAK


def test_damaged_data_used_silently_is_a_corrupt_read_and_reported_is_ok():
    silent = adv.Done(0, "episodes: 2\n", "")
    reported = adv.Done(0, "skipping episode_0000000_ab.h5: checksum mismatch\n", "")
    assert adv.refusal_or_report(silent, "episode_0000000_ab.h5").verdict == adv.CORRUPT
    assert adv.refusal_or_report(reported, "episode_0000000_ab.h5").verdict == adv.OK


def test_lost_and_twice_recorded_roads_are_counted_from_the_dataset():
    assert adv.dataset_check({0: 1, 1: 2}, {0, 1}).verdict == adv.TWICE
    assert adv.dataset_check({0: 1}, {0, 1}).verdict == adv.LOST
    assert adv.dataset_check({0: 1, 1: 1}, {0, 1}, before=3).verdict == adv.LOST
    assert adv.dataset_check({0: 1, 1: 1}, {0, 1}, before=2) is None


def test_every_flag_the_cases_use_comes_from_the_table():
    import adversarial_cases_files
    import adversarial_cases_flags
    import adversarial_cases_live

    for module in (adv, adversarial_cases_files, adversarial_cases_flags, adversarial_cases_live):
        text = Path(module.__file__).read_text()
        body = text.split("FLAGS = {", 1)[-1].split("\n}\n", 1)[-1] if module is adv else text
        quoted = {w for w in body.replace("'", '"').split('"') if w.startswith("--")}
        assert quoted <= {"--bogus", "--mount-proc"}, (
            f"{module.__name__} spells flags outside FLAGS: {quoted}"
        )
    names = [c.name for m in (adversarial_cases_files, adversarial_cases_flags) for c in m.CASES]
    names += [c.name for c in adversarial_cases_live.CASES]
    assert len(names) == len(set(names)) >= 60


def test_a_run_prints_a_row_per_case_a_summary_and_exits_on_the_four_counts(tmp_path):
    done = run_script(tmp_path, "--quick", "--only", "flag/collect-roads-negative")
    assert "[1/1] flag/collect-roads-negative: ok" in done.stdout, done.stdout + done.stderr
    assert "| flag/collect-roads-negative | ok | - | error: --roads must be >= 1" in done.stdout
    assert "1 cases in" in done.stdout and "0 tracebacks, 0 corrupt read" in done.stdout
    assert done.returncode == 0
    assert (tmp_path / "adv" / "adversarial.md").read_text().startswith("| case | verdict |")


def test_a_pattern_that_matches_no_case_is_one_error_line(tmp_path):
    done = run_script(tmp_path, "--only", "no-such-case")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: no case matches --only 'no-such-case'"]


@pytest.mark.slow
def test_a_flipped_episode_is_named_by_info_and_recorded_again(tmp_path):
    done = run_script(tmp_path, "--only", "file/flip-50/[ic]*")
    assert "file/flip-50/info | ok" in done.stdout, done.stdout + done.stderr
    assert "file/flip-50/collect-again | ok" in done.stdout
    assert done.returncode == 0
