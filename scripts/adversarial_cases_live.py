"""The live cases of `scripts/adversarial.py`: signals during work, two writers at once, a
read-only folder and a full disk.

Signals: SIGINT goes to the command's process group (Ctrl-C in a terminal), SIGTERM to its main
process only (`kill PID`, a scheduler, `docker stop`), SIGKILL to the group. Read-only folders
and full disks are made in a private mount namespace (`unshare -m`, or `unshare -rm` without
root): a read-only bind mount (chmod does not stop root) and a small tmpfs.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import adversarial as adv
import adversarial_files as af
import torch
from adversarial import Case, F, Kit, Result

from driving.learn.checkpoint import CheckpointError, load_checkpoint

COLLECT_ROADS = 8  # roads of the interrupted collection
TRAIN_SMALL = (F["epochs"], 4, F["batch_size"], 8, F["seed"], 0)  # about 5 s an epoch, 2 cores
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


def send(proc: subprocess.Popen, name: str) -> None:
    """SIGTERM to the main process (as `kill` does); SIGINT and SIGKILL to its group."""
    if name == "SIGTERM":
        os.kill(proc.pid, signal.SIGTERM)
    else:
        os.killpg(proc.pid, SIGNALS[name])


def wait_for(ready, proc: subprocess.Popen, limit: float = 180.0) -> bool:
    """Poll `ready()` until true; False if the command ended (or `limit` [s] passed) first."""
    end = time.monotonic() + limit
    while time.monotonic() < end and proc.poll() is None:
        if ready():
            return True
        time.sleep(0.1)
    return False


def said_so(done: adv.Done, name: str) -> str:
    """What is wrong with how a command stopped on signal `name` ('' if nothing)."""
    if done.timed_out:
        return f"did not stop after {name}"
    if name != "SIGKILL" and not done.err.strip():
        return f"said nothing on {name}"
    return ""


# ---------------------------------------------------------------- signals


def collect_signal(name: str) -> Case:
    """A signal while collecting, after an episode is finished; then the same command again."""

    def check(kit: Kit) -> Result:
        data = kit.scratch(f"signal-collect-{name}") / "data"
        cmd = adv.collect(data, COLLECT_ROADS, F["workers"], 2)
        proc = adv.start(cmd)
        if not wait_for(lambda: any(data.glob("episode_*.h5")), proc):
            adv.finish(proc)
            return Result(adv.SKIPPED, detail="the collection ended before the signal")
        before = len(af.finished_roads(data))
        send(proc, name)
        stopped = adv.finish(proc, timeout=60)
        if "Traceback" in stopped.err:
            return Result(adv.TRACEBACK, detail=adv.gist(stopped.err))
        after = len(af.finished_roads(data))
        if after < before:
            return Result(adv.LOST, lost=f"{before - after} of {before} finished episodes")
        again = adv.run(cmd)
        roads = af.finished_roads(data)
        if bad := adv.dataset_check(roads, set(range(COLLECT_ROADS)), before):
            return bad
        if "Traceback" in again.err or again.rc != 0:
            return Result(adv.WEAK, detail=f"re-run: exit {again.rc}: {adv.gist(again.err)}")
        problem = said_so(stopped, name) or (
            f"left {adv.leftovers(data)[0]}" if name != "SIGKILL" and adv.leftovers(data) else ""
        )
        detail = f"{before} done at the signal, {after} after; re-run: {len(roads)} roads once"
        if problem:
            return Result(adv.WEAK, lost=problem, detail=detail)
        return Result(adv.OK, detail=f"{detail}; said: {adv.gist(stopped.err, 60)}")

    return Case(f"signal/collect-{name}", check, quick=name == "SIGTERM", alone=True)


def _load(path: Path) -> dict | None:
    try:
        return load_checkpoint(path)
    except CheckpointError:
        return None


def reference_run(kit: Kit) -> dict:
    """last.pt of the training the signal cases interrupt, run without interruption."""
    path = kit.root / "fixture-reference"
    kit.built(adv.train(kit.data, path, *TRAIN_SMALL), path)
    return load_checkpoint(path / "last.pt")


def same_weights(a: dict, b: dict) -> bool:
    return a["model"].keys() == b["model"].keys() and all(
        torch.equal(a["model"][k], b["model"][k]) for k in a["model"]
    )


def train_signal(name: str) -> Case:
    """A signal in training's second epoch; then `--resume` to the end, compared with a run
    that was never interrupted."""

    def check(kit: Kit) -> Result:
        reference = reference_run(kit)
        run_dir = kit.scratch(f"signal-train-{name}") / "run"
        cmd = adv.train(kit.data, run_dir, *TRAIN_SMALL, F["resume"])
        proc = adv.start(cmd)
        last = run_dir / "last.pt"
        if not wait_for(last.exists, proc):
            adv.finish(proc)
            return Result(adv.SKIPPED, detail="training ended before its first epoch was saved")
        time.sleep(1.0)  # into the second epoch
        saved = last.stat().st_mtime_ns
        step = load_checkpoint(last)["step"]
        send(proc, name)
        stopped = adv.finish(proc, timeout=60)
        if "Traceback" in stopped.err:
            return Result(adv.TRACEBACK, detail=adv.gist(stopped.err))
        ckpt = _load(last)
        if ckpt is None or ckpt["step"] < step:
            return Result(adv.LOST, lost=f"last.pt unreadable or older than step {step}")
        problems = [said_so(stopped, name)]
        if name != "SIGKILL" and last.stat().st_mtime_ns == saved and stopped.rc != 0:
            problems.append(f"saved nothing at the signal (last.pt of step {step} kept)")
        again = adv.run(cmd)
        if "Traceback" in again.err or again.rc != 0:
            return Result(adv.WEAK, detail=f"resume: exit {again.rc}: {adv.gist(again.err)}")
        final = load_checkpoint(last)
        lost = "; ".join(p for p in problems if p) or "-"
        if final["step"] != reference["step"] or not same_weights(final, reference):
            return Result(
                adv.WRONG,
                lost=lost,
                detail=f"resumed: step {final['step']}, val {final['best_val']:.5f}; "
                f"uninterrupted: step {reference['step']}, val {reference['best_val']:.5f}",
            )
        detail = f"stopped at step >= {step}; resumed to the uninterrupted weights"
        return Result(adv.WEAK if lost != "-" else adv.OK, lost=lost, detail=detail)

    return Case(f"signal/train-{name}", check, quick=name == "SIGINT", alone=True)


# ---------------------------------------------------------------- two writers


@functools.cache
def namespace_prefix(kind: str) -> tuple[str, ...] | None:
    """The `unshare` prefix for a private mount ('mount') or PID ('pid') namespace, or None."""
    user = () if os.geteuid() == 0 else ("-r",)
    prefix = (
        ("unshare", *user, "-m") if kind == "mount" else ("unshare", *user, "-pfm", "--mount-proc")
    )
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return prefix if ok else None


def two_collects(kit: Kit, namespaces: bool) -> Result:
    """Two collections of the same 4 roads into one folder at once."""
    data = kit.scratch(f"writers-collect-{namespaces}") / "data"
    prefix: tuple[str, ...] = ()
    if namespaces and (prefix := namespace_prefix("pid")) is None:
        return Result(adv.SKIPPED, detail="no PID namespaces here (unshare -p)")
    procs = [adv.start([*prefix, *adv.collect(data, 4)]) for _ in range(2)]
    dones = [adv.finish(p) for p in procs]
    if any("Traceback" in d.err for d in dones):
        return Result(
            adv.TRACEBACK, detail=adv.gist(next(d.err for d in dones if "Trace" in d.err))
        )
    if bad := adv.dataset_check(af.finished_roads(data), set(range(4))):
        return bad
    if any(d.rc != 0 for d in dones):
        return Result(adv.WEAK, detail=f"exit codes {[d.rc for d in dones]}")
    return Result(
        adv.OK, detail="4 roads, each once; " + " / ".join(adv.gist(d.out, 40) for d in dones)
    )


def stale_claim(kit: Kit) -> Result:
    """A claim file of road 2 naming a live process (PID 1) and a stale .tmp: road 2 still
    gets recorded."""
    data = kit.copy_data(kit.scratch("writers-stale-claim"))
    (data / ".claims").mkdir(exist_ok=True)
    (data / ".claims" / "2.lock").write_text("1\n")
    (data / "episode_0000002_deadbeef.h5.tmp").write_bytes(b"half")
    done = adv.run(adv.collect(data, 3))
    if "Traceback" in done.err:
        return Result(adv.TRACEBACK, detail=adv.gist(done.err))
    if bad := adv.dataset_check(af.finished_roads(data), {0, 1, 2}):
        return bad
    return Result(adv.OK if done.rc == 0 else adv.WEAK, detail=adv.gist(done.said))


def two_trains(kit: Kit) -> Result:
    """Two trainings into one --run at once (seeds 0 and 1): one is refused in one line."""
    run_dir = kit.scratch("writers-two-trains") / "run"
    procs = [adv.start(adv.train(kit.data, run_dir, F["epochs"], 2, F["seed"], s)) for s in (0, 1)]
    dones = [adv.finish(p) for p in procs]
    if any("Traceback" in d.err for d in dones):
        return Result(
            adv.TRACEBACK, detail=adv.gist(next(d.err for d in dones if "Trace" in d.err))
        )
    last, best = _load(run_dir / "last.pt"), _load(run_dir / "best.pt")
    if last is None or best is None:
        return Result(adv.CORRUPT, lost="last.pt or best.pt unreadable")
    if last["config"]["seed"] != best["config"]["seed"]:
        return Result(adv.CORRUPT, lost="last.pt and best.pt from different runs")
    refused = [d for d in dones if d.rc != 0]
    if len(refused) != 1:
        return Result(adv.WEAK, detail=f"exit codes {[d.rc for d in dones]}: not refused")
    verdict = adv.refusal(refused[0], left=adv.leftovers(run_dir))
    return verdict if verdict.verdict != adv.OK else Result(adv.OK, detail=verdict.detail)


# ---------------------------------------------------------------- read-only folders, full disks

READ_ONLY = 'd=$1; shift; mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" && exec "$@"'
FULL_DISK = """mnt=$1; seed=$2; keep=$3; size=$4; shift 4
mount -t tmpfs -o size="$size" tmpfs "$mnt" || exit 99
if [ -n "$seed" ]; then cp -a "$seed"/. "$mnt"/; fi
"$@"; rc=$?
cp -a "$mnt"/. "$keep"/ 2>/dev/null
exit $rc"""


def read_only(folder: Path, cmd: list[str]) -> list[str] | None:
    """`cmd` run with `folder` mounted read-only (None if no mount namespace here)."""
    prefix = namespace_prefix("mount")
    return None if prefix is None else [*prefix, "sh", "-c", READ_ONLY, "sh", str(folder), *cmd]


def full_disk(
    mount: Path, size: str, cmd: list[str], seed: Path | None, keep: Path
) -> list[str] | None:
    """`cmd` run with a tmpfs of `size` on `mount` (first filled with a copy of `seed`); what it
    held at the end is copied to `keep`. None if no mount namespace here."""
    prefix = namespace_prefix("mount")
    if prefix is None:
        return None
    return [
        *prefix,
        "sh",
        "-c",
        FULL_DISK,
        "sh",
        str(mount),
        str(seed or ""),
        str(keep),
        size,
        *cmd,
    ]


def mount_case(name: str, make, quick: bool = False) -> Case:
    """A write into a read-only folder or onto a full disk: refused in one line, finished
    episodes intact, nothing half-written left. `make(kit, folder)` returns (command, the
    dataset to check or None, the folder to search for leftovers)."""

    def check(kit: Kit) -> Result:
        folder = kit.scratch(f"mount-{name}")
        cmd, data, searched = make(kit, folder)
        if cmd is None:
            return Result(adv.SKIPPED, detail="no mount namespace here (unshare -m)")
        done = adv.run(cmd)
        if done.rc == 99 or "mount:" in done.err:
            return Result(adv.SKIPPED, detail=adv.gist(done.err))
        if data is not None and (bad := adv.dataset_check(af.finished_roads(data), {0, 1}, 2)):
            return bad
        return adv.refusal(done, left=adv.leftovers(searched))

    return Case(f"mount/{name}", check, quick=quick)


def _ro_collect(kit: Kit, folder: Path):
    data = kit.copy_data(folder)
    return read_only(data, adv.collect(data, 3)), data, data


def _ro_resume(kit: Kit, folder: Path):
    shutil.copytree(kit.run, folder / "run", ignore=shutil.ignore_patterns(".lock"))
    cmd = adv.train(kit.data, folder / "run", F["resume"], F["epochs"], 2)
    return read_only(folder / "run", cmd), None, folder / "run"


def _ro_new_run(kit: Kit, folder: Path):
    return read_only(folder, adv.train(kit.data, folder / "run")), None, folder


def _full_collect(kit: Kit, folder: Path):
    (folder / "disk").mkdir()
    data = folder / "data"
    cmd = full_disk(folder / "disk", "1300k", adv.collect(folder / "disk", 6), kit.data, data)
    return cmd, data, data


def _full_train(kit: Kit, folder: Path):
    (folder / "disk").mkdir()
    cmd = adv.train(kit.data, folder / "disk" / "run")
    return full_disk(folder / "disk", "1m", cmd, None, folder / "kept"), None, folder / "kept"


def _full_export(kit: Kit, folder: Path):
    (folder / "disk").mkdir()
    cmd = adv.export(kit.run / "best.pt", folder / "disk" / "m.onnx")
    return full_disk(folder / "disk", "64k", cmd, None, folder / "kept"), None, folder / "kept"


def _full_video(kit: Kit, folder: Path):
    (folder / "disk").mkdir()
    cmd = adv.evaluate(kit.run / "best.pt", folder / "disk" / "eval", F["video"], 1)
    return full_disk(folder / "disk", "256k", cmd, None, folder / "kept"), None, folder / "kept"


def _full_stdout(kit: Kit, folder: Path):
    line = " ".join(f"'{part}'" for part in adv.drive("info", kit.data))
    return ["sh", "-c", f"exec {line} > /dev/full"], None, folder


CASES = (
    [collect_signal(name) for name in SIGNALS]
    + [train_signal(name) for name in SIGNALS]
    + [
        Case("writers/two-collects", lambda kit: two_collects(kit, False), quick=True, alone=True),
        Case("writers/two-collects-pid-ns", lambda kit: two_collects(kit, True), alone=True),
        Case("writers/stale-claim", stale_claim),
        Case("writers/two-trains", two_trains, quick=True, alone=True),
        mount_case("read-only-collect", _ro_collect, quick=True),
        mount_case("read-only-resume", _ro_resume),
        mount_case("read-only-new-run", _ro_new_run),
        mount_case("full-disk-collect", _full_collect, quick=True),
        mount_case("full-disk-train", _full_train),
        mount_case("full-disk-export", _full_export),
        mount_case("full-disk-video", _full_video),
        mount_case("stdout-dev-full", _full_stdout),
    ]
)  # fmt: skip
