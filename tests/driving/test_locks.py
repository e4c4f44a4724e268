"""Locks and temporary files: held by the OS for as long as their owner lives, never by a pid."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

from driving.cli import main
from driving.data.store import claim_road
from driving.files import hold_folder, replacing
from driving.record.collect import claim_seed


def _never_recorded(root: Path, seed: int) -> bool:
    return False


def _hold_claim(root: Path, seed: int, held, stop) -> None:
    lock = claim_road(root, seed, _never_recorded)
    held.set()
    stop.wait(30)
    if lock is not None:
        lock.release()


def _hold_folder(folder: Path, held, stop) -> None:
    lock = hold_folder(folder)
    held.set()
    stop.wait(30)
    if lock is not None:
        lock.release()


def _in_child(target, *args):
    context = multiprocessing.get_context("spawn")
    held, stop = context.Event(), context.Event()
    child = context.Process(target=target, args=(*args, held, stop))
    child.start()
    assert held.wait(60)
    return child, stop


def test_a_claim_blocks_while_its_owner_lives_and_is_free_once_it_is_killed(tmp_path):
    # given a road claimed by another live process
    child, _ = _in_child(_hold_claim, tmp_path, 3)
    # then this process cannot claim it, but can claim another road
    assert claim_road(tmp_path, 3, _never_recorded) is None
    other = claim_road(tmp_path, 4, _never_recorded)
    assert other is not None
    other.release()
    # when the owner is killed (no chance to clean up), the road is free at once
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    claim = claim_road(tmp_path, 3, _never_recorded)
    assert claim is not None
    claim.release()


def test_a_claim_file_naming_a_live_unrelated_process_does_not_block_its_road(tmp_path):
    # given a claim as the previous release wrote it: a file naming a process id (init, alive)
    (tmp_path / ".claims").mkdir()
    (tmp_path / ".claims" / "5").write_text("1")
    # then the road can be claimed
    claim = claim_seed(tmp_path, 5)
    assert claim is not None
    claim.release()


def test_two_writers_of_one_file_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "last.pt"
    with replacing(target) as first, replacing(target) as second:
        assert first != second
        assert first.suffix == ".pt" and str(os.getpid()) in first.name
        first.write_text("a")
        second.write_text("b")
    assert target.read_text() == "a"  # the last rename wins with a whole file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_second_train_on_the_same_run_is_refused_with_one_line(tmp_path, capsys):
    # given a run folder held by another training process
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    child, stop = _in_child(_hold_folder, run)
    # when another training is started on it
    code = main(["train", "--data", str(data), "--run", str(run), "--epochs", "1"])
    stop.set()
    child.join()
    # then it is refused in one line, and nothing is written into the run
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --run") and "in use" in err and "\n" not in err
    assert sorted(p.name for p in run.iterdir()) == [".lock"]
