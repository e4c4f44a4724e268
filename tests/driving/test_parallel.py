"""Worker processes: results come back, a script's own imports are not re-run in each, no
worker outlives its main process, and a forked worker does not hang on OpenCV's thread pool."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = """
import os, sys
with open(sys.argv[1], "a") as log:  # one line each time this file is executed
    log.write(f"{__name__}\\n")
from driving.parallel import run_parallel

if __name__ == "__main__":
    pids = []
    run_parallel(os.getpid, [()] * 4, 2, pids.append)
    assert len(pids) == 4 and os.getpid() in pids, pids  # this process works too
    print(len(set(pids)))
"""


@pytest.mark.parametrize("method", ["spawn", "fork"])  # spawn: macOS, or once CUDA was used
def test_workers_do_not_rerun_the_main_script(tmp_path, method):
    script, log = tmp_path / "main.py", tmp_path / "runs.txt"
    script.write_text(SCRIPT)
    env = {**os.environ, "DRIVE_START_METHOD": method}
    done = subprocess.run(
        [sys.executable, str(script), str(log)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == 2  # this process and one worker (2 workers in all)
    # Spawned workers would execute the script again as __mp_main__: only the parent ran it.
    assert log.read_text().splitlines() == ["__main__"]


def test_a_bad_start_method_is_refused_in_one_line(monkeypatch):
    from driving.parallel import run_parallel

    monkeypatch.setenv("DRIVE_START_METHOD", "thread")
    with pytest.raises(
        ValueError, match="DRIVE_START_METHOD must be 'fork' or 'spawn', got 'thread'"
    ):
        run_parallel(abs, [(-1,)] * 2, 2, print)


TASKS = """
import os, time
from pathlib import Path
from driving.files import replacing

def record_and_wait(folder):
    with replacing(Path(folder).parent / "out" / f"{os.getpid()}.txt") as tmp:
        tmp.write_text("half of a file")
        open(os.path.join(folder, str(os.getpid())), "w").close()
        time.sleep(60)
"""

PARENT = """
import sys
from driving.parallel import run_parallel
from tasks import record_and_wait

if __name__ == "__main__":
    run_parallel(record_and_wait, [(sys.argv[1],)] * 3, 2, print)
"""


def test_workers_exit_when_the_main_process_is_killed_and_remove_their_half_written_files(
    tmp_path,
):
    # given a run whose main process and worker are both busy
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "main.py").write_text(PARENT)
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    main = subprocess.Popen([sys.executable, str(tmp_path / "main.py"), str(pids)], env=env)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = {int(p.name) for p in pids.iterdir()} - {main.pid}
    assert len(workers) == 1, "the worker never started its task"
    # when the main process is killed
    main.kill()
    main.wait()
    # then its worker does not live on, nor leaves the file it was writing behind
    deadline = time.monotonic() + 30
    while _alive(*workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(*workers)
    (worker,) = workers
    assert list((tmp_path / "out").glob(f"{worker}.*")) == []
    assert list((tmp_path / "out").glob(f"{main.pid}.*.tmp.txt"))  # SIGKILLed: nothing to do


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")  # a zombie (exited, not yet reaped) counts as gone
    return not (state.exists() and state.read_text().split(")")[-1].split()[0] == "Z")


def test_one_process_runs_its_tasks_with_one_opencv_thread():
    import cv2

    from driving.parallel import run_parallel

    before, seen = cv2.getNumThreads(), []
    cv2.setNumThreads(2)  # OpenCV's own default on a 2-core machine; its idle threads spin
    try:
        run_parallel(cv2.getNumThreads, [()] * 3, 1, seen.append)
        assert seen == [1, 1, 1]
        assert cv2.getNumThreads() == 2  # given back afterwards
    finally:
        cv2.setNumThreads(before)


CONVOLVE = """
import torch

def convolve():
    return float(torch.conv2d(torch.ones(8, 3, 66, 200), torch.ones(24, 3, 5, 5)).sum())
"""

FORK_AFTER_THREADS = """
import math, sys
import cv2, numpy as np, torch
from driving.parallel import _start_method, run_parallel
from tasks import convolve

if __name__ == "__main__":
    assert _start_method() == "fork", _start_method()
    for _ in range(6):
        cv2.setNumThreads(2)  # OpenCV's default here: a blur starts its pool's second thread
        cv2.GaussianBlur(np.zeros((1000, 1000, 4), np.uint8), (9, 9), 0)
        torch.set_num_threads(2)  # as after training: torch's own threads are alive
        convolve()
        roots, sums = [], []
        run_parallel(math.sqrt, [(4.0,)] * 4, 2, roots.append)
        run_parallel(convolve, [()] * 4, 2, sums.append)
        assert roots == [2.0] * 4 and sums == [8 * 24 * 62 * 196 * 75.0] * 4, (roots, sums)
    print("done")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")
def test_forked_workers_do_not_hang_on_opencv_or_torch_threads(tmp_path):
    # A child forked while OpenCV's pool thread lives hangs when it sets OpenCV's threads (as
    # every worker does): forking with the pool alive hung 2 of 3 times here.
    (tmp_path / "tasks.py").write_text(CONVOLVE)
    (tmp_path / "main.py").write_text(FORK_AFTER_THREADS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    env.pop("DRIVE_START_METHOD", None)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "main.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["done"]


def test_no_more_processes_start_than_there_are_tasks(monkeypatch):
    import multiprocessing

    from driving.parallel import run_parallel

    monkeypatch.setenv("DRIVE_START_METHOD", "fork")  # a forking pool starts all its workers
    alive = []
    run_parallel(os.getpid, [()] * 3, 30, lambda _: alive.append(multiprocessing.active_children()))
    assert len(alive) == 3 and max(len(children) for children in alive) <= 2  # + this process


class _RaisesCtrlCWhenCollected:
    def __del__(self):
        import signal

        signal.raise_signal(signal.SIGINT)  # its KeyboardInterrupt is dropped: 'Exception ignored'


_fired = []


def _drops_a_ctrl_c(i: int) -> int:
    import multiprocessing

    if multiprocessing.parent_process() is None and not _fired:  # in the main process, once
        _fired.append(i)
        _RaisesCtrlCWhenCollected()  # collected at once
    return i


@pytest.mark.parametrize("workers", [1, 2])
def test_a_ctrl_c_that_python_drops_in_a_finalizer_still_stops_the_work(workers, monkeypatch):
    import signal

    from driving.parallel import run_parallel

    _fired.clear()
    reported = []  # what Python would print as 'Exception ignored in ...' with a traceback
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    # SIGINT as a terminal's shell leaves it (a background job may start with it ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            run_parallel(_drops_a_ctrl_c, [(i,) for i in range(40)], workers, done.append)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert _fired[0] in done and len(done) < 40  # it stopped after the task that got it
    assert reported == []  # kept, so not reported
    assert sys.unraisablehook == reported.append  # and the hook given back
