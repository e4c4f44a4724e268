"""Export a trained policy to ONNX, checked against PyTorch under ONNX Runtime.

    drive export --policy logs/demo/run/best.pt            # writes logs/demo/run/best.onnx

The preprocessing is inside the graph: inputs are the camera frames exactly as the camera gives
them, `image` uint8 (B, H, W, 3) RGB (for a model stacking K frames, (B, H, W, 3K): the K most
recent frames side by side on the channel axis, oldest first, see `driving.learn.model`), and
`speed` float32 (B,) [m/s] (absent for a model trained without the speed input), and
`speed_limit` float32 (B,) [m/s] for a model told the road's limit (`--limit-input`); the output
`action` is float32 (B, 2) [steering, throttle], not yet clipped to [-1, 1]. The batch size is
free. The file says so itself: its `metadata_props` hold the camera, scenario, inputs, action
meaning, package version and the checkpoint's sha256 (`driving.learn.card.policy_facts`), read
with `onnx.load(path).metadata_props` or ONNX Runtime's `get_modelmeta().custom_metadata_map`.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from driving.data.extras import require
from driving.files import replacing
from driving.learn.card import policy_facts
from driving.learn.checkpoint import build_model, load_checkpoint

TOLERANCE = 1e-4  # largest |ONNX Runtime - PyTorch| accepted on any output
ARGUMENTS = {"image": "image", "speed": "speed", "speed_limit": "limit"}
"""The argument of `PilotNet.forward` that each ONNX input feeds."""
MAX_CHECK = 4096  # frames of the parity check (4096 frames of 66x200 take 160 MB)


@dataclass(frozen=True)
class ExportConfig:
    """Write a checkpoint's PilotNet as an ONNX model and check it against PyTorch."""

    policy: Path | None = None
    """checkpoint to export (best.pt or last.pt); default: the latest run's best.pt (the newest
    under logs/: `driving.runs`)"""
    out: Path | None = None
    """ONNX file to write (default: the checkpoint's name with .onnx)"""
    check: int = 64
    """random frames on which ONNX Runtime must match PyTorch within 1e-4 (1 to 4096)"""


def _inputs(model, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs of `model` by their ONNX names, in the order of its `forward`'s arguments
    (a limit input comes only with a speed input, `ModelConfig.validate`)."""
    cfg = model.config
    shape = (batch, cfg.height, cfg.width, cfg.channels)
    inputs = {"image": rng.integers(0, 256, shape, dtype=np.uint8)}
    if cfg.speed_input:
        inputs["speed"] = rng.uniform(0, 20, batch).astype(np.float32)
    if cfg.limit_input:
        inputs["speed_limit"] = rng.uniform(5, 30, batch).astype(np.float32)
    return inputs


def _torch_outputs(model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        return model(*(torch.from_numpy(v) for v in inputs.values())).numpy()


def _latency_ms(run, repeats: int = 300) -> tuple[float, float]:
    """p50 and p99 of one call [ms], after a warm-up."""
    for _ in range(20):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def add_metadata(path: Path, facts: dict[str, str]) -> None:
    """Store `facts` in the ONNX file's `metadata_props` (what the model needs and does)."""
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, facts)
    onnx.save(model, str(path))


def export_onnx(cfg: ExportConfig) -> dict:
    """Export, verify parity within `TOLERANCE`, measure batch-1 latency; returns a summary."""
    for module in ("onnx", "onnxscript"):  # what torch.onnx.export needs
        require(module, extra="onnx")
    onnxruntime = require("onnxruntime", extra="onnx")
    if not 1 <= cfg.check <= MAX_CHECK:
        raise ValueError(f"--check must be in 1..{MAX_CHECK}, got {cfg.check}")
    ckpt = load_checkpoint(cfg.policy)
    model = build_model(ckpt, source=cfg.policy).eval()
    out = cfg.out or Path(cfg.policy).with_suffix(".onnx")
    rng = np.random.default_rng(0)
    example = {k: torch.from_numpy(v) for k, v in _inputs(model, 2, rng).items()}
    dynamic = {ARGUMENTS[name]: {0: torch.export.Dim("batch")} for name in example}
    with replacing(out) as tmp:  # a file that fails the parity check is not kept
        # The exporter warns about optional torchvision ops and its own deprecations: not ours.
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                tuple(example.values()),
                str(tmp),
                input_names=list(example),
                output_names=["action"],
                dynamic_shapes=dynamic,
                dynamo=True,
                verbose=False,
                external_data=False,
            )
        add_metadata(tmp, policy_facts(ckpt, cfg.policy))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # latency on one core, like PyTorch below
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(tmp), options, providers=["CPUExecutionProvider"]
        )
        inputs = _inputs(model, cfg.check, rng)
        error = float(np.abs(session.run(None, inputs)[0] - _torch_outputs(model, inputs)).max())
        if not error <= TOLERANCE:  # NaN compares false: refused too
            raise ValueError(f"ONNX Runtime differs from PyTorch by {error:.2e} > {TOLERANCE}")
    one = _inputs(model, 1, rng)
    torch.set_num_threads(1)
    return {
        "onnx": str(out),
        "max_abs_error": error,
        "onnxruntime_ms_p50_p99": _latency_ms(lambda: session.run(None, one)),
        "pytorch_ms_p50_p99": _latency_ms(lambda: _torch_outputs(model, one)),
    }
