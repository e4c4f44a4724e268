"""Checkpoints: one plain dict that alone rebuilds a PilotNet and resumes its training.

Saved with `torch.save`, loaded with `weights_only=True` so that opening a checkpoint from
someone else can never run code. Layout (format_version 1):

    {"format_version": 1, "kind": "pixels-to-pedals/pilotnet", "model": state_dict,
     "model_config": {...}, "optimizer": state_dict, "step": int, "epoch": int,
     "best_val": float | None, "config": {...JSON-able...}, "extra": {...}}

    ckpt = load_checkpoint("logs/run/best.pt")
    model = build_model(ckpt)

A model_config written before a ModelConfig field existed (e.g. `frames`) gets that field's
default, which behaves as the code did then.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from driving.files import replacing
from driving.learn.model import ModelConfig, PilotNet
from envs.world import SCENARIO, World

FORMAT_VERSION = 1
KIND = "pixels-to-pedals/pilotnet"
_REQUIRED_KEYS = ("model", "model_config", "optimizer", "step", "epoch", "best_val", "config")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, trusted or turned back into a PilotNet."""


def jsonable(value: Any) -> Any:
    """Convert a config value to JSON-able types (Paths -> str, tuples -> lists)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(
        f"checkpoint config value {value!r} ({type(value).__name__}) is not JSON-able; "
        "store it as str, number, bool, list or dict"
    )


def save_checkpoint(
    path: str | Path,
    *,
    model: PilotNet,
    model_config: ModelConfig,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    epoch: int,
    best_val: float | None,
    config: dict,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically: a crash mid-write never leaves a half-written file.

    Args:
        path: destination, e.g. `run/last.pt`; parent folders are created.
        model: the network whose weights are saved.
        model_config: how to rebuild the network.
        optimizer: its state is saved for resuming (None for a weights-only checkpoint).
        step: optimizer steps taken so far.
        epoch: epochs completed so far.
        best_val: best validation loss so far (None if there is no validation set).
        config: the training settings (Paths are converted to str).
        extra: anything else made of tensors and plain Python types (RNG states, statistics).

    Returns:
        The path written.
    """
    path = Path(path)
    ckpt = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "model": model.state_dict(),
        "model_config": asdict(model_config),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "step": int(step),
        "epoch": int(epoch),
        "best_val": None if best_val is None else float(best_val),
        "config": jsonable(config),
        "extra": extra or {},
    }
    try:
        with replacing(path) as tmp:
            torch.save(ckpt, tmp)
    except RuntimeError as err:  # torch's writer reports a full disk as a RuntimeError
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(f"cannot write {path} ({reason}): check the free disk space") from None
    return path


def _failed_crc(path: Path) -> str | None:
    """The first entry of the checkpoint's zip archive whose bytes fail the CRC-32 that
    torch.save wrote beside them (None: all pass). torch.load does not check them, so a flipped
    byte in the weights would otherwise load as a silently different network."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f"its zip directory ({type(err).__name__})"
    return None if bad is None else bad.split("/", 1)[-1]  # the archive's top folder is a temp name


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """Read and check a checkpoint without ever running code stored in it.

    Args:
        path: a file written by `save_checkpoint`.
        device: where tensors are placed.

    Returns:
        The checkpoint dict (layout in the module docstring).

    Raises:
        CheckpointError: missing file, not a PyTorch file, a damaged one (CRC-32), pickled code
            or objects, another kind of checkpoint, a newer format, or missing keys.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; check the path or train a model first")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise CheckpointError(
            f"checkpoint {path} is not a PyTorch file written by torch.save; "
            "pass a best.pt or last.pt written by `train`"
        )
    damaged = _failed_crc(path)
    if damaged is not None:
        raise CheckpointError(
            f"checkpoint {path} is damaged: {damaged} fails its CRC-32 check; "
            "use another copy or retrain"
        )
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types here; the user needs one line
        if "weights only load failed" in str(err).lower():
            raise CheckpointError(
                f"checkpoint {path} holds pickled objects or code, not plain weights; refusing to "
                "load it (only pixels-to-pedals checkpoints are accepted)"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is not a readable PyTorch file ({type(err).__name__}); "
            "is it truncated or another kind of file?"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise CheckpointError(
            f"checkpoint {path} is not a pixels-to-pedals PilotNet checkpoint "
            f"(expected kind {KIND!r}); pass a best.pt or last.pt written by `train`"
        )
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {version!r}, this code reads up to "
            f"{FORMAT_VERSION}; upgrade pixels-to-pedals"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} is missing {', '.join(missing)}; re-save it")
    ckpt.setdefault("extra", {})
    problem = _type_problem(ckpt)
    if problem:
        raise CheckpointError(f"checkpoint {path}: {problem}; it was damaged or edited: re-save it")
    stored_world(ckpt, path)  # refused now, not when a command first needs the world
    return ckpt


# The type of every field a checkpoint is read for; None allowed where the tuple holds NoneType.
_FIELD_TYPES = {
    "model": (dict,),
    "model_config": (dict,),
    "optimizer": (dict,),
    "step": (int,),
    "epoch": (int,),
    "best_val": (float, int, type(None)),
    "config": (dict,),
    "extra": (dict,),
}
_EXTRA_TYPES = {
    "world": (dict,),
    "camera": (dict,),
    "scenario": (str,),
    "density": (str, int, float),
    "val": (dict, type(None)),
    "rng_torch": (torch.Tensor,),
}


def _type_problem(ckpt: dict) -> str:
    """The first field of `ckpt` with a wrong type or value, in words ('' if all are fine)."""
    fields = [(key, ckpt[key], _FIELD_TYPES[key]) for key in _FIELD_TYPES]
    fields += [(f"extra.{k}", ckpt["extra"][k], t) for k, t in _EXTRA_TYPES.items()
               if isinstance(ckpt["extra"], dict) and k in ckpt["extra"]]  # fmt: skip
    for name, value, types in fields:
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            return f"field '{name}' is {type(value).__name__} {value!r:.40}, expected {wanted}"
    if ckpt["step"] < 0 or ckpt["epoch"] < 0:
        return f"field 'step' or 'epoch' is negative ({ckpt['step']}, {ckpt['epoch']})"
    if ckpt["best_val"] is not None and not math.isfinite(ckpt["best_val"]):
        return f"field 'best_val' is {ckpt['best_val']}, expected a finite number"
    for key, tensor in ckpt["model"].items():
        if not isinstance(tensor, torch.Tensor):
            return f"field 'model.{key}' is {type(tensor).__name__}, expected a tensor"
        stored = tensor.untyped_storage().nbytes()  # [B] read from the file
        if stored < tensor.numel() * tensor.element_size():  # a view of fewer numbers
            return (
                f"field 'model.{key}' declares shape {tuple(tensor.shape)} but the file holds "
                f"{stored} bytes of it"
            )
    rng = ckpt["extra"].get("rng_torch")
    if rng is not None and (rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape):
        return f"field 'extra.rng_torch' has {tuple(rng.shape)} {rng.dtype}, not torch's RNG state"
    return ""


def _state_dict_mismatch(model: PilotNet, state: dict) -> str:
    """Describe, in one line, how `state` differs from `model`'s parameters ('' if it fits)."""
    own = model.state_dict()
    problems = []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        problems.append(f"missing {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
    if unexpected:
        shown = ", ".join(str(k) for k in unexpected[:3])
        problems.append(f"unexpected {shown}" + (" ..." if len(unexpected) > 3 else ""))
    for key, tensor in own.items():
        other = state.get(key)
        if other is None or key in missing:
            continue
        if not isinstance(other, torch.Tensor) or other.shape != tensor.shape:
            got = tuple(other.shape) if isinstance(other, torch.Tensor) else type(other).__name__
            problems.append(f"{key} has shape {got}, expected {tuple(tensor.shape)}")
            break
    return "; ".join(problems)


def stored_model_config(ckpt: dict, source: str | Path = "(in memory)") -> ModelConfig:
    """The ModelConfig of a checkpoint dict, validated.

    Fields added to ModelConfig after a checkpoint was written take their defaults, which
    behave as before they existed (a checkpoint without `frames` sees one frame).

    Raises:
        CheckpointError: the model config cannot build a PilotNet.
    """
    try:
        return ModelConfig(**ckpt["model_config"]).validate()
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {source} has a bad model_config: {err}") from None


def stored_world(ckpt: dict, source: str | Path = "(in memory)") -> World:
    """The World the checkpoint's network learned in (`extra["world"]`).

    A checkpoint from before the World record keeps its camera, scenario and density setting as
    separate `extra` entries; they are read back into a World the same way.

    Raises:
        CheckpointError: the stored world is not a valid world description.
    """
    extra = ckpt["extra"]
    if "world" in extra:
        stored = extra["world"]
    else:
        camera = extra.get("camera")
        stored = {
            "scenario": extra.get("scenario", SCENARIO),
            "density": extra.get("density", "default"),
            "camera": camera if isinstance(camera, dict) else {},
        }
    try:
        return World.from_dict(stored).validate()
    except (TypeError, ValueError) as err:
        reason = str(err).split(": {")[0]
        raise CheckpointError(f"checkpoint {source} has a bad world record: {reason}") from None


def build_model(ckpt: dict, source: str | Path = "(in memory)") -> PilotNet:
    """Rebuild the PilotNet stored in a checkpoint dict, in eval mode on the CPU.

    Args:
        ckpt: a dict from `load_checkpoint`.
        source: the file it came from, named in error messages.

    Raises:
        CheckpointError: the model config or the weights do not fit a PilotNet, or a weight is
            NaN or infinite.
    """
    config = stored_model_config(ckpt, source)
    with torch.device("meta"):  # shapes only: a forged config allocates nothing
        shapes = PilotNet(config)
    state = ckpt["model"]
    problem = _state_dict_mismatch(shapes, state) if isinstance(state, dict) else "not a dict"
    if problem:
        raise CheckpointError(f"checkpoint {source} does not match PilotNet: {problem}")
    bad = [key for key, tensor in state.items() if not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(
            f"checkpoint {source} has NaN or infinite weights ({', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''}): it cannot drive; use an earlier checkpoint"
        )
    model = PilotNet(config)
    model.load_state_dict(state)
    return model.eval()
