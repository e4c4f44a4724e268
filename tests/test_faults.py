"""Faults: processes side by side, read-only folders and full disks never corrupt anything."""

import subprocess
import sys
from pathlib import Path

import pytest

from driving.cli import main
from driving.data import read_episode, scan
from driving.record.collect import CollectConfig, collect


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")


@pytest.fixture
def mounts():
    mounted = []

    def mount(path: Path, options: str) -> Path:
        _mount_tmpfs(path, options)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], capture_output=True)


@pytest.mark.slow
def test_two_collections_into_one_folder_never_record_a_road_twice(tmp_path):
    out = tmp_path / "data"
    cmd = [sys.executable, "-m", "driving.cli", "collect", "--out", str(out), "--episodes", "10"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    paths, warnings = scan(out)
    seeds = sorted(read_episode(p).seed for p in paths)
    assert seeds == list(range(10)) and not warnings


def test_read_only_folder_is_one_clear_error(tmp_path, mounts, capsys):
    read_only = mounts(tmp_path / "ro", "size=1m,ro")
    assert main(["collect", "--out", str(read_only / "data"), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Read-only file system" in err and "\n" not in err


def test_full_disk_keeps_finished_episodes_and_leaves_no_half_file(tmp_path, mounts, capsys):
    small = mounts(tmp_path / "small", "size=5m")  # room for two episodes (~2 MB each)
    out = small / "data"
    assert main(["collect", "--out", str(out), "--episodes", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "No space left" in err
    paths, warnings = scan(out)
    assert len(paths) >= 1 and not warnings  # every finished episode is intact
    assert not list(out.glob("*.tmp"))
    for path in paths:
        assert len(read_episode(path).frames) > 100


def test_collect_summary_counts_only_what_it_saved(tmp_path):
    out = tmp_path / "data"
    assert collect(CollectConfig(out=out, episodes=1))["episodes"] == 1
    assert collect(CollectConfig(out=out, episodes=1))["episodes"] == 0


def test_read_only_output_is_refused_before_any_work(tmp_path, mounts, capsys):
    read_only = mounts(tmp_path / "ro", "size=1m,ro")
    assert (
        main(
            ["evaluate", "--policy", "expert", "--episodes", "1", "--out", str(read_only / "eval")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Read-only file system" in err and "\n" not in err
