"""The file cases of `scripts/adversarial.py`: damaged datasets and tampered checkpoints.

Every damage is applied to a private copy of a shared fixture (road 0's episode file, or the
fixture run's best.pt / last.pt), then one `drive` verb is run on it.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import adversarial as adv
import adversarial_files as af
from adversarial import Case, F, Kit, Result

# ---------------------------------------------------------------- damaged datasets


def _with_world(change):
    """A meta change applied to meta["world"]."""
    return lambda meta: {**meta, "world": change(dict(meta["world"]))}


def _camera_key(world: dict) -> dict:
    return {**world, "camera": {**world["camera"], "zoom": 3}}


def _num_frames_off(path: Path) -> None:
    frames = af.read_episode(path).frames
    af.edit_attrs(path, num_frames=len(frames) + 5)


EPISODE_DAMAGE = {
    "flip-30": lambda p: af.flip_bytes(p, 0.3),
    "flip-50": lambda p: af.flip_bytes(p, 0.5),
    "flip-70": lambda p: af.flip_bytes(p, 0.7),
    "flip-head": lambda p: af.flip_bytes(p, 0.0002),
    "truncated": lambda p: af.truncate(p, 0.5),
    "empty": lambda p: af.truncate(p, 0.0),
    "garbage": lambda p: af.garbage(p),
    "garbage-hdf5": lambda p: af.garbage(p, hdf5_signature=True),
    "huge-steps": lambda p: af.forge_shapes(p, 5_000_000_000, 66, 200),
    "huge-frames": lambda p: af.forge_shapes(p, 2, 60_000, 60_000),
    "meta-not-json": lambda p: af.edit_attrs(p, meta="{not json"),
    "meta-list": lambda p: af.edit_attrs(p, meta="[1, 2]"),
    "meta-camera-key": lambda p: af.edit_meta(p, _with_world(_camera_key)),
    "meta-scenario-list": lambda p: af.edit_meta(
        p, _with_world(lambda w: {**w, "scenario": ["winding-road"]})
    ),
    "newer-version": lambda p: af.edit_attrs(p, format_version=99),
    "seed-text": lambda p: af.edit_attrs(p, seed="zero"),
    "num-frames-off": _num_frames_off,
    "label-nan": lambda p: af.set_label(p, math.nan),
    "label-out-of-range": lambda p: af.set_label(p, 5.0),
    "deleted": lambda p: p.unlink(),
}
"""Damage to road 0's episode file, by name."""

MANIFEST_DAMAGE = {
    "manifest-garbage": lambda m: m.write_bytes(b"\x00\xff garbage"),
    "manifest-foreign": lambda m: m.write_text(json.dumps({"format": "someone-else"})),
    "manifest-newer": lambda m: m.write_text(
        json.dumps({**json.loads(m.read_text()), "format_version": 99})
    ),
    "manifest-bad-entries": lambda m: m.write_text(
        json.dumps({**json.loads(m.read_text()), "episodes": [{"file": 3, "seed": "x"}]})
    ),
}
"""Damage to the dataset's manifest.json, by name."""

QUICK = {"flip-50", "huge-steps", "meta-camera-key", "manifest-garbage"}
TRAINED = {"flip-50", "truncated", "garbage", "huge-steps", "huge-frames", "meta-camera-key"}
TRAINED |= {"newer-version", "label-nan", "deleted", "manifest-garbage", "manifest-foreign"}
VIEWED = {"flip-50", "truncated", "huge-frames", "meta-not-json", "label-nan", "deleted"}
RECOLLECTED = {"flip-50", "truncated", "empty", "garbage", "huge-steps", "label-nan", "deleted"}


def damaged_copy(kit: Kit, folder: Path, damage: str) -> tuple[Path, str]:
    """A copy of the fixture dataset with `damage` done; (its folder, the damaged file's name)."""
    data = kit.copy_data(folder)
    if damage in MANIFEST_DAMAGE:
        MANIFEST_DAMAGE[damage](data / "manifest.json")
        return data, "manifest.json"
    episode = af.episode_of_road(data, 0)
    EPISODE_DAMAGE[damage](episode)
    return data, episode.name


def dataset_case(damage: str, verb: str) -> Case:
    """`drive VERB` on a dataset with `damage`: refused naming the file, or used reporting it."""

    def check(kit: Kit) -> Result:
        folder = kit.scratch(f"file-{damage}-{verb}")
        data, name = damaged_copy(kit, folder, damage)
        if verb == "info":
            cmd = adv.drive("info", data)
        elif verb == "train":
            cmd = adv.train(data, folder / "run")
        else:
            cmd = adv.view(data, folder / "view")
        return adv.refusal_or_report(adv.run(cmd), name)

    return Case(f"file/{damage}/{verb}", check, quick=damage in QUICK and verb == "info")


def recollect_case(damage: str) -> Case:
    """`drive collect` again over the damaged dataset: the damaged road is recorded again."""

    def check(kit: Kit) -> Result:
        folder = kit.scratch(f"file-{damage}-collect")
        data, name = damaged_copy(kit, folder, damage)
        done = adv.run(adv.collect(data, 2))
        if "Traceback" in done.err or done.rc != 0:
            return adv.refusal(done, damaged=True, name=name)
        roads = af.finished_roads(data)
        if bad := adv.dataset_check(roads, {1}):
            return bad
        if roads[0] != 1:
            return Result(adv.LOST, lost="road 0 damaged and not recorded again", detail=name)
        return Result(adv.OK, detail=f"road 0 recorded again: {adv.gist(done.out)}")

    return Case(f"file/{damage}/collect-again", check, quick=damage == "flip-50")


# ---------------------------------------------------------------- tampered checkpoints


def _edit(change):
    return lambda source, target: af.edit_checkpoint(source, target, change)


def _set(key, value):
    def change(ckpt: dict) -> None:
        ckpt[key] = value

    return _edit(change)


def _world(change):
    def edit(ckpt: dict) -> None:
        ckpt["extra"]["world"] = change(dict(ckpt["extra"]["world"]))

    return _edit(edit)


def _copy_then(damage):
    def make(source: Path, target: Path) -> Path:
        shutil.copyfile(source, target)
        damage(target)
        return target

    return make


def _config(**fields):
    def change(ckpt: dict) -> None:
        ckpt["model_config"] = {**ckpt["model_config"], **fields}

    return _edit(change)


CHECKPOINT_DAMAGE = {
    "empty": _copy_then(lambda p: af.truncate(p, 0.0)),
    "truncated": _copy_then(lambda p: af.truncate(p, 0.5)),
    "flip-50": _copy_then(lambda p: af.flip_bytes(p, 0.5)),
    "flip-95": _copy_then(lambda p: af.flip_bytes(p, 0.95)),
    "text": lambda source, target: target.write_text("not a checkpoint\n") or target,
    "code": None,  # made in `checkpoint_case`: it needs the marker's path
    "extra-list": _set("extra", [1, 2]),
    "world-text": _world(lambda w: "winding-road"),
    "camera-key": _world(_camera_key),
    "scenario-list": _world(lambda w: {**w, "scenario": ["winding-road"]}),
    "config-text": _config(height="66"),
    "config-huge": _config(height=100_000, width=100_000),
    "huge-layer": _edit(af.huge_layer),
    "weights-list": _set("model", [1, 2]),
    "no-model": _edit(lambda ckpt: ckpt.pop("model")),
    "kind-other": _set("kind", "someone-else/model"),
    "newer-format": _set("format_version", 99),
    "nan-weights": _edit(af.poison_weights(math.nan)),
    "inf-weights": _edit(af.poison_weights(math.inf)),
}
"""Damage to a copy of the fixture's best.pt, by name."""

CKPT_QUICK = {"code", "nan-weights", "huge-layer"}
EXPORTED = {"empty", "truncated", "flip-50", "text", "code", "extra-list", "config-huge"}
EXPORTED |= {"huge-layer", "no-model", "kind-other", "newer-format", "nan-weights", "inf-weights"}
EVALUATED = {"flip-50", "flip-95", "code", "extra-list", "world-text", "camera-key"}
EVALUATED |= {"scenario-list", "config-text", "config-huge", "huge-layer", "weights-list"}
EVALUATED |= {"nan-weights", "inf-weights"}
INIT = {"flip-50", "code", "camera-key", "huge-layer", "nan-weights", "inf-weights"}


def checkpoint_case(damage: str, verb: str) -> Case:
    """`drive VERB` with a tampered checkpoint: refused in one line naming it, no code run."""

    def check(kit: Kit) -> Result:
        folder = kit.scratch(f"ckpt-{damage}-{verb}")
        target, marker = folder / "tampered.pt", folder / "code-ran"
        if damage == "code":
            af.code_checkpoint(target, marker)
        else:
            CHECKPOINT_DAMAGE[damage](kit.run / "best.pt", target)
        if verb == "export":
            out = folder / "model.onnx"
            done = adv.run(adv.export(target, out))
        elif verb == "evaluate":
            done = adv.run(adv.evaluate(target, folder / "eval"))
        else:
            done = adv.run(adv.train(kit.data, folder / "run", F["init"], target))
        if marker.exists():
            return Result(adv.CORRUPT, lost="stored code ran", detail=adv.gist(done.err))
        return adv.refusal(done, damaged=True, name=target.name, left=adv.leftovers(folder))

    quick = damage in CKPT_QUICK and verb == "export"
    return Case(f"ckpt/{damage}/{verb}", check, quick=quick)


RESUME_DAMAGE = {
    "epoch-text": _set("epoch", "one"),
    "step-negative": _set("step", -5),
    "rng-3-bytes": _edit(
        lambda c: c["extra"].__setitem__("rng_torch", af.torch.zeros(3, dtype=af.torch.uint8))
    ),
    "optimizer-shapes": _edit(af.bad_optimizer_shapes),
    "optimizer-text": _set("optimizer", "adam"),
}
"""Damage to a copy of the fixture's last.pt, resumed with `drive train --resume`."""


def resume_case(damage: str) -> Case:
    """`drive train --resume` from a tampered last.pt: refused in one line naming last.pt."""

    def check(kit: Kit) -> Result:
        folder = kit.scratch(f"resume-{damage}")
        run_dir = folder / "run"
        shutil.copytree(kit.run, run_dir, ignore=shutil.ignore_patterns(".lock"))
        RESUME_DAMAGE[damage](kit.run / "last.pt", run_dir / "last.pt")
        done = adv.run(adv.train(kit.data, run_dir, F["resume"], F["epochs"], 2))
        return adv.refusal(done, damaged=True, name="last.pt", left=adv.leftovers(run_dir))

    return Case(f"ckpt/resume-{damage}", check, quick=damage == "epoch-text")


CASES = (
    [dataset_case(d, "info") for d in [*EPISODE_DAMAGE, *MANIFEST_DAMAGE]]
    + [dataset_case(d, "train") for d in [*EPISODE_DAMAGE, *MANIFEST_DAMAGE] if d in TRAINED]
    + [dataset_case(d, "view") for d in EPISODE_DAMAGE if d in VIEWED]
    + [recollect_case(d) for d in sorted(RECOLLECTED)]
    + [checkpoint_case(d, "export") for d in CHECKPOINT_DAMAGE if d in EXPORTED]
    + [checkpoint_case(d, "evaluate") for d in CHECKPOINT_DAMAGE if d in EVALUATED]
    + [checkpoint_case(d, "init") for d in sorted(INIT)]
    + [resume_case(d) for d in RESUME_DAMAGE]
)  # fmt: skip
