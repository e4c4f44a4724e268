"""Run independent episodes in worker processes, shared by collection and evaluation.

The main process works too, beside `workers - 1` worker processes. Workers ignore Ctrl-C and
SIGTERM: the main process drops the episode it is on, stops handing out work and says what was
saved, while each worker finishes (and saves) the episode it is on. Nothing half-written is left
behind because every result is written atomically.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from multiprocessing import get_context
from typing import Any

from driving.files import remove_unfinished


def init_worker() -> None:
    """One process per core: keep numpy, OpenCV and torch from spawning threads that compete."""
    os.environ["OMP_NUM_THREADS"] = "1"  # torch imported later reads it: one thread too
    import cv2

    cv2.setNumThreads(1)
    if "torch" in sys.modules:  # importing torch only to limit it costs each worker seconds
        sys.modules["torch"].set_num_threads(1)


def _exit_with(parent: int) -> None:
    """Exit once `parent` is gone (killed, or stopped by Ctrl-C): no worker outlives the command
    it works for, and none leaves a half-written file behind."""
    while os.getppid() == parent:
        time.sleep(0.5)
    remove_unfinished()
    os._exit(1)


def _init_pool_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # and SIGTERM, sent to the group like Ctrl-C
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    init_worker()


def _start_method() -> str:
    """How workers start: $DRIVE_START_METHOD ('fork' or 'spawn') if set, else 'fork' where it
    is safe: a forked worker is ready in 20 ms, a spawned one first imports highway-env again
    (1.2 s, as long as 4 roads). Not on macOS (its system libraries are not fork-safe) and not
    once this process has used CUDA (a forked child cannot)."""
    chosen = os.environ.get("DRIVE_START_METHOD", "")
    if chosen:
        if chosen not in ("fork", "spawn"):
            raise ValueError(f"DRIVE_START_METHOD must be 'fork' or 'spawn', got {chosen!r}")
        return chosen
    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_initialized()
    return "fork" if sys.platform == "linux" and not cuda else "spawn"


@contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Spawned workers re-run the main script's imports (for `drive`: every verb, torch
    included, ~3 s) although they only need the module of the function they call; hide the main
    module's path while they start so that they skip it (the tasks name their functions by module,
    never by `__main__`)."""
    main = sys.modules.get("__main__")
    spec, path = getattr(main, "__spec__", None), getattr(main, "__file__", None)
    if main is None or spec is not None or path is None:  # `python -m ...` or interactive: as is
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


@contextmanager
def _one_thread(torch_too: bool = True) -> Iterator[None]:
    """This process runs tasks: one thread for OpenCV meanwhile (its idle threads spin: a
    one-process collection used 1.5 to 1.7 cores for the speed of one), and for torch if `torch_too`
    (beside workers; alone, batch-1 inference gains from a second thread)."""
    import cv2

    torch = sys.modules.get("torch") if torch_too else None
    before = cv2.getNumThreads(), torch.get_num_threads() if torch else None
    cv2.setNumThreads(1)
    if torch:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before[0])
        if torch:
            torch.set_num_threads(before[1])


@contextmanager
def _interrupts_kept() -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM are also written down while the block runs (the list it yields),
    besides going to their handlers: Python drops the KeyboardInterrupt of a signal that lands
    while a finalizer runs ('Exception ignored in ...'), and a loop that checks the list then
    stops at its next task instead of working on to the end; Python's report of the dropped one
    (a traceback on stderr) is left out, the interrupt being kept. Outside the main thread, and for
    a signal ignored or handled outside Python, nothing is changed."""
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    previous = {s: h for s, h in previous.items() if callable(h)}

    def keep(signum: int, frame) -> None:
        seen.append(signum)
        previous[signum](signum, frame)

    unraisable = sys.unraisablehook

    def quiet(report) -> None:  # a dropped interrupt is kept: no 'Exception ignored' traceback
        if not (seen and issubclass(report.exc_type, KeyboardInterrupt)):
            unraisable(report)

    for number in previous:
        signal.signal(number, keep)
    sys.unraisablehook = quiet
    try:
        yield seen
    finally:
        sys.unraisablehook = unraisable
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_parallel(
    fn: Callable[..., Any], tasks: Sequence[tuple], workers: int, on_result: Callable[[Any], None]
) -> None:
    """`_run_parallel`, stopping at the next task after a Ctrl-C or SIGTERM that Python
    dropped (`_interrupts_kept`)."""
    with _interrupts_kept() as interrupts:

        def each(result: Any) -> None:
            on_result(result)
            if interrupts:
                raise KeyboardInterrupt

        _run_parallel(fn, tasks, workers, each)


def _run_parallel(
    fn: Callable[..., Any], tasks: Sequence[tuple], workers: int, on_result: Callable[[Any], None]
) -> None:
    """Call `fn(*task)` for every task, in `workers` processes: this one and `workers - 1`
    started ones (forked on Linux, else spawned: about a second to start, while this one is
    already working).

    `on_result` runs in this process as each task finishes, in completion order. No more
    processes start than there are tasks (`--workers 30` for 3 roads: this one and 2 more).
    """
    workers = min(workers, len(tasks))
    if workers <= 1 or len(tasks) <= 1:
        with _one_thread(torch_too=False):
            for task in tasks:
                on_result(fn(*task))
        return
    queue, pending = deque(tasks), set()
    ahead = 2 * (workers - 1)  # tasks queued for the workers: none idles while this one works
    method = _start_method()
    pool = ProcessPoolExecutor(
        workers - 1, mp_context=get_context(method), initializer=_init_pool_worker
    )
    try:
        # One OpenCV thread before the workers start at the first submit: that joins OpenCV's
        # thread pool, whose copy in a forked child hangs it (2 of 3 forks did).
        with _one_thread():
            with _main_not_reimported() if method == "spawn" else nullcontext():
                while queue and len(pending) < ahead:
                    pending.add(pool.submit(fn, *queue.popleft()))
            while queue or pending:
                finished = {f for f in pending if f.done()}
                if queue and not finished:
                    on_result(fn(*queue.popleft()))
                elif not finished:
                    finished = wait(pending, return_when=FIRST_COMPLETED).done
                for future in finished:
                    pending.discard(future)
                    on_result(future.result())
                    if len(queue) > len(pending):  # near the end, keep the rest here
                        pending.add(pool.submit(fn, *queue.popleft()))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


_built: dict[str, tuple[Any, Any]] = {}


def per_process(name: str, key: Any, build: Callable[[], Any]) -> Any:
    """What `build()` returns, built once per process and `name` while `key` stays the same.

    Workers run many episodes: the env, the expert and the policy are built for the first and
    kept for the next ones (a new `key`, e.g. another policy, builds them anew).
    """
    if name not in _built or _built[name][0] != key:
        _built.pop(name, None)  # free the old objects before building the new ones
        _built[name] = (key, build())
    return _built[name][1]
