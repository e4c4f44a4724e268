"""Run hostile cases against the `drive` command, as a new user with bad luck or bad intent would.

    python scripts/adversarial.py                    # every case (a few minutes on 2 cores)
    python scripts/adversarial.py --quick            # a subset, one or two of each kind
    python scripts/adversarial.py --only 'ckpt/*'    # the cases whose name matches (or contains)

Every case runs `drive` as a real subprocess in a scratch folder: damaged and forged episode
files, tampered checkpoints, bad flags, signals during collection and training followed by a
resume, two writers at once, a read-only folder and a full disk (a small tmpfs in a private
mount namespace). One progress line per case, then a table (case, verdict, what was lost) and a
summary line; the table also goes to OUT/adversarial.md.

Verdicts, decided mechanically:
    ok              bad input: exit code 2 and stderr exactly one `error:` line (naming the file
                    where a file is damaged); damaged data: refused so, or used with the damaged
                    file named; a signal: stopped, saying so, nothing finished lost
    weak message    bad input answered otherwise (another exit code, several lines, no `error:`,
                    the file not named, a bad flag accepted, something left behind)
    traceback       "Traceback" on stderr
    corrupt read    a command succeeded on damaged data without naming it (or stored code ran)
    lost episode    fewer finished episodes after an interrupt, or after all runs, than before
    recorded twice  a road stored twice in one dataset
    wrong result    a resumed training ended elsewhere than an uninterrupted one
    skipped         the case cannot run here (e.g. no mount namespace)
The exit code is 1 if any traceback, corrupt read, lost episode or road recorded twice is found.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import tyro

# Every flag name the cases use, in one place (rename here when a flag is renamed).
FLAGS = {
    # drive collect
    "out": "--out",
    "roads": "--roads",
    "first_seed": "--first-seed",
    "workers": "--workers",
    "shard": "--shard",
    "road_length": "--road.min-length",
    "scenario": "--scenario",
    "camera_height": "--camera.height",
    "noise_correlation": "--noise.correlation",
    # drive train
    "data": "--data",
    "run": "--run",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "val_fraction": "--val-fraction",
    "seed": "--seed",
    "device": "--device",
    "threads": "--threads",
    "resume": "--resume",
    "init": "--init",
    "frames": "--frames",
    "colour_jitter": "--colour-jitter",
    # drive evaluate
    "policy": "--policy",
    "eval_roads": "--roads",
    "eval_out": "--out",
    "eval_workers": "--workers",
    "video": "--video",
    "no_compare": "--no-compare-expert",
    "no_clips": "--no-clips",
    # drive export
    "onnx_out": "--out",
    "check": "--check",
    # drive view
    "view_out": "--out",
    "samples": "--samples",
    "episode": "--episode",
    # drive demo
    "demo_out": "--out",
    "demo_roads": "--roads",
    "demo_eval_roads": "--eval-roads",
}
F = FLAGS
ROAD_M = "150"  # [m] road length of every collection: a road takes a second or two
REPO = Path(__file__).resolve().parents[1]

OK, WEAK, TRACEBACK, CORRUPT = "ok", "weak message", "traceback", "corrupt read"
LOST, TWICE, WRONG, SKIPPED = "lost episode", "recorded twice", "wrong result", "skipped"
FATAL = (TRACEBACK, CORRUPT, LOST, TWICE)
"""The verdicts that make the exit code non-zero."""


@dataclass(frozen=True)
class AdversarialConfig:
    """Hostile cases against the `drive` command; prints one row per case."""

    out: Path = Path("/tmp/adversarial")
    """scratch folder (emptied first); the table goes to OUT/adversarial.md"""
    quick: bool = False
    """run only the quick subset (one or two cases of each kind)"""
    only: str = ""
    """run only the cases whose name matches this glob or contains this text"""
    jobs: int = 2
    """cases run at once (signal and two-writer cases always run alone)"""
    timeout: float = 300.0
    """[s] a command still running after this is killed (and the case is weak)"""


@dataclass(frozen=True)
class Result:
    """A case's verdict, what it lost, and a short detail (the message, the reason)."""

    verdict: str
    lost: str = "-"
    detail: str = ""


@dataclass(frozen=True)
class Case:
    """One hostile case: `check(kit)` runs it in its own scratch folder."""

    name: str
    check: Callable[[Kit], Result]
    quick: bool = False
    alone: bool = False  # timing matters (signals, two writers): nothing else runs meanwhile


@dataclass(frozen=True)
class Done:
    """What a finished command left: exit code and output."""

    rc: int
    out: str
    err: str
    timed_out: bool = False

    @property
    def said(self) -> str:
        return self.out + self.err


# ---------------------------------------------------------------- commands


def drive(verb: str, *args: object) -> list[str]:
    """The command line of `drive VERB ARGS` (this checkout's code)."""
    return [sys.executable, "-m", "driving.cli", verb, *map(str, args)]


def collect(out: Path, roads: int = 2, *more: object) -> list[str]:
    return drive("collect", F["out"], out, F["roads"], roads, F["road_length"], ROAD_M, *more)


def train(data: Path, run: Path, *more: object) -> list[str]:
    small = (F["epochs"], 1, F["batch_size"], 32, F["threads"], 1, F["device"], "cpu")
    return drive("train", F["data"], data, F["run"], run, *small, *more)


def evaluate(policy: object, out: Path, *more: object) -> list[str]:
    small = (F["eval_roads"], 1, F["video"], 0, F["no_compare"], F["no_clips"])
    return drive("evaluate", F["policy"], policy, F["eval_out"], out, *small, *more)


def export(policy: object, out: Path, *more: object) -> list[str]:
    return drive("export", F["policy"], policy, F["onnx_out"], out, F["check"], 4, *more)


def view(data: Path, out: Path, *more: object) -> list[str]:
    return drive("view", data, F["view_out"], out, F["samples"], 4, *more)


def environment() -> dict[str, str]:
    """This checkout first on the path; no progress bars."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "TQDM_DISABLE": "1"}


TIMEOUT = [300.0]  # [s] set from --timeout


def run(cmd: list[str], cwd: Path | None = None) -> Done:
    """Run a command to its end (or kill it after the timeout, with its whole process group)."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=TIMEOUT[0])
        return Done(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        return Done(proc.returncode, out, err, timed_out=True)


def start(cmd: list[str], cwd: Path | None = None) -> subprocess.Popen:
    """Start a command in its own process group (output to pipes)."""
    return subprocess.Popen(
        cmd, cwd=cwd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float | None = None) -> Done:
    """Wait for a started command; kill its group after `timeout` [s] (default: --timeout)."""
    try:
        out, err = proc.communicate(timeout=timeout or TIMEOUT[0])
        return Done(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        return Done(proc.returncode, out, err, timed_out=True)


# ---------------------------------------------------------------- verdicts


def gist(text: str, width: int = 90) -> str:
    """The last non-empty line of `text`, shortened (the detail column)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else "(nothing)"
    return line if len(line) <= width else line[: width - 3] + "..."


def leftovers(*folders: Path) -> list[str]:
    """Temporary files under `folders` (a writer's `.tmp` left behind)."""
    found = []
    for folder in folders:
        if Path(folder).is_dir():
            found += [p.name for p in Path(folder).rglob("*") if ".tmp" in p.name]
    return found


def refusal(done: Done, damaged: bool = False, name: str = "", left: list[str] = ()) -> Result:
    """The verdict on a command that should refuse its input with one `error:` line, exit 2.

    Args:
        done: the finished command.
        damaged: the input is damaged data, so that succeeding is a corrupt read.
        name: text the error must contain (the damaged file's name).
        left: what the command left behind (each makes the verdict weak).
    """
    lines = [line for line in done.err.strip().splitlines() if line.strip()]
    if "Traceback" in done.err:
        return Result(TRACEBACK, detail=gist(done.err))
    if done.timed_out:
        return Result(WEAK, detail=f"still running after {TIMEOUT[0]:.0f} s")
    if done.rc == 0:
        return Result(CORRUPT if damaged else WEAK, detail="accepted (exit 0)")
    if done.rc != 2 or len(lines) != 1 or not lines[0].startswith("error:"):
        return Result(WEAK, detail=f"exit {done.rc}, {len(lines)} stderr lines: {gist(done.err)}")
    if name and name not in done.err:
        return Result(WEAK, detail=f"does not name {name}: {gist(done.err)}")
    if left:
        return Result(WEAK, lost=f"left {', '.join(sorted(left)[:2])}", detail=gist(done.err))
    return Result(OK, detail=gist(done.err))


def refusal_or_report(done: Done, name: str) -> Result:
    """Damaged data: ok if refused with one line naming `name`, or used with `name` reported."""
    if done.rc == 0 and "Traceback" not in done.err:
        if name in done.said:
            return Result(OK, detail=f"used the rest; reported: {gist(line_with(done.said, name))}")
        return Result(CORRUPT, detail=f"exit 0, {name} not reported")
    return refusal(done, damaged=True, name=name)


def line_with(text: str, needle: str) -> str:
    """The first line of `text` containing `needle`."""
    return next((line for line in text.splitlines() if needle in line), "")


def dataset_check(roads: Counter, want: set[int], before: int | None = None) -> Result | None:
    """Lost or twice-recorded roads in a dataset (None when every wanted road is there once)."""
    twice = sorted(seed for seed, n in roads.items() if n > 1)
    if twice:
        return Result(TWICE, lost=f"roads {twice} twice")
    missing = sorted(want - set(roads))
    if before is not None and len(roads) < before:
        return Result(LOST, lost=f"{before - len(roads)} finished episodes lost")
    if missing:
        return Result(LOST, lost=f"roads {missing} never recorded")
    return None


# ---------------------------------------------------------------- shared fixtures


class Kit:
    """The shared fixtures (built once, on first use) and each case's scratch folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()  # cases in parallel threads: build each fixture once

    def scratch(self, case: str) -> Path:
        """An empty folder of this case's own."""
        folder = self.root / "cases" / re.sub(r"[^A-Za-z0-9_.-]+", "_", case)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    @property
    def data(self) -> Path:
        """A dataset of 2 short roads (seeds 0 and 1)."""
        return self.built(collect(self.root / "fixture-data", 2), self.root / "fixture-data")

    @property
    def run(self) -> Path:
        """A run folder of one epoch on `data` (best.pt, last.pt)."""
        data = self.data
        return self.built(train(data, self.root / "fixture-run"), self.root / "fixture-run")

    def copy_data(self, folder: Path) -> Path:
        """A private copy of the fixture dataset."""
        shutil.copytree(self.data, folder / "data")
        return folder / "data"

    def built(self, cmd: list[str], path: Path) -> Path:
        """`path` made by `cmd` (a fixture), the first time it is asked for."""
        with self._lock:
            if not path.with_suffix(".built").exists():
                done = run(cmd)
                if done.rc != 0:
                    raise SystemExit(f"cannot build the fixture {path}: {gist(done.err)}")
                path.with_suffix(".built").touch()
        return path


# ---------------------------------------------------------------- running and reporting


def selected(cases: list[Case], cfg: AdversarialConfig) -> list[Case]:
    """The cases --quick and --only ask for."""
    chosen = [c for c in cases if c.quick or not cfg.quick]
    if cfg.only:
        chosen = [c for c in chosen if fnmatch.fnmatch(c.name, cfg.only) or cfg.only in c.name]
    return chosen


def run_case(case: Case, kit: Kit) -> Result:
    """A case's result; a failure of the harness itself is reported, not hidden."""
    try:
        return case.check(kit)
    except SystemExit:
        raise
    except Exception as error:  # the harness broke, not the command: say so in the row
        return Result(SKIPPED, detail=f"harness error: {type(error).__name__}: {error}"[:120])


def table(rows: list[tuple[str, Result]]) -> str:
    """The markdown table of the results."""
    lines = ["| case | verdict | lost | detail |", "|---|---|---|---|"]
    for name, r in rows:
        detail = r.detail.replace("|", "/")
        lines.append(f"| {name} | {r.verdict} | {r.lost.replace('|', '/')} | {detail} |")
    return "\n".join(lines)


def summary(rows: list[tuple[str, Result]], minutes: float) -> str:
    """The summary line: counts of every verdict, the four that must be zero first."""
    counts = Counter(r.verdict for _, r in rows)
    head = ", ".join(f"{counts[v]} {v}{'s' if v == TRACEBACK else ''}" for v in FATAL)
    rest = ", ".join(f"{counts[v]} {v}" for v in (OK, WEAK, WRONG, SKIPPED))
    return f"{len(rows)} cases in {minutes:.1f} min: {head}; {rest}"


def main(cfg: AdversarialConfig) -> int:
    sys.modules.setdefault("adversarial", sys.modules[__name__])  # for the case modules
    import adversarial_cases_files
    import adversarial_cases_flags
    import adversarial_cases_live

    TIMEOUT[0] = cfg.timeout
    groups = (adversarial_cases_files, adversarial_cases_flags, adversarial_cases_live)
    cases = selected([case for group in groups for case in group.CASES], cfg)
    if not cases:
        print(f"error: no case matches --only {cfg.only!r}", file=sys.stderr)
        return 2
    shutil.rmtree(cfg.out, ignore_errors=True)
    cfg.out.mkdir(parents=True)
    kit, begin = Kit(cfg.out.resolve()), time.perf_counter()
    results: dict[str, Result] = {}

    def one(case: Case) -> None:
        t0 = time.perf_counter()
        results[case.name] = result = run_case(case, kit)
        print(
            f"[{len(results)}/{len(cases)}] {case.name}: {result.verdict} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )

    with ThreadPoolExecutor(max(1, cfg.jobs)) as pool:
        list(pool.map(one, [c for c in cases if not c.alone]))
    for case in (c for c in cases if c.alone):
        one(case)
    rows = [(c.name, results[c.name]) for c in cases]
    text = table(rows) + "\n\n" + summary(rows, (time.perf_counter() - begin) / 60)
    (cfg.out / "adversarial.md").write_text(text + "\n")
    print(text)
    return 1 if any(r.verdict in FATAL for _, r in rows) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from driving.helptext import reflow_field_docs

    reflow_field_docs()
    sys.exit(main(tyro.cli(AdversarialConfig)))
