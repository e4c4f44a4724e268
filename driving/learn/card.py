"""What a checkpoint is, in words: the facts an exported model carries, and its model card.

    facts = policy_facts(load_checkpoint(path), path)   # str -> str, also the ONNX metadata
    write_model_card(Path("logs/run/best.pt"))            # logs/run/best.md
    write_model_card(Path("logs/run/best.pt"), report)    # ... with the closed-loop metrics

The card is written beside the checkpoint, as `<checkpoint>.md`, by training (when it ends) and
again by each evaluation that names the run (`drive evaluate --run`, training's own
evaluation, `drive demo`), which adds the closed-loop numbers.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from driving.files import replacing
from driving.learn.checkpoint import load_checkpoint, stored_model_config, stored_world
from driving.learn.model import CHOOSING

POLICY_RATE_HZ = 10  # the world's policy and simulation rate [Hz] (docs/world.md)
ACTION = (
    "float32 (B, 2) [steering, throttle], clip to [-1, 1]: steering -> front-wheel angle "
    "+-15 deg, positive steers right; throttle -> acceleration +-5 m/s^2 (speed floored at 0)"
)
CHOOSING_ACTION = (
    "float32 (B, 9): a [steering, throttle] pair for each lane plan (left, keep, right), then "
    "the three plans' scores; drive the pair of the highest score, each value as in "
)


def action_text(ckpt: dict) -> str:
    """What the net puts out and how to drive with it."""
    if tuple(stored_model_config(ckpt).outputs) == CHOOSING:
        return CHOOSING_ACTION + ACTION
    return ACTION


def package_version() -> str:
    """The installed version of this package ('unknown' when run from a bare source tree)."""
    try:
        return version("pixels-to-pedals")
    except PackageNotFoundError:
        return "unknown"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, hex: names a checkpoint exactly, whatever its path."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inputs_text(ckpt: dict) -> str:
    """The network's inputs, their layout and units, in one line."""
    model = stored_model_config(ckpt)
    stack = (
        f"(B, {model.height}, {model.width}, {3 * model.frames}): {model.frames} frames "
        f"{model.frame_stride} step(s) apart, oldest first, on the channel axis"
        if model.frames > 1
        else f"(B, {model.height}, {model.width}, 3)"
    )
    speed = "; speed: float32 (B,) [m/s]" if model.speed_input else " (no speed input)"
    limit = (
        "; speed_limit: float32 (B,) [m/s], the road's limit as a map or a sign reader tells it"
        if model.limit_input
        else ""
    )
    return f"image: uint8 {stack}, RGB as the camera gives it{speed}{limit}"


def policy_facts(ckpt: dict, path: str | Path) -> dict[str, str]:
    """What a checkpoint's policy needs and does, as text (the ONNX file's `metadata_props`)."""
    world = stored_world(ckpt, path)
    return {
        "producer": "pixels-to-pedals",
        "package_version": package_version(),
        "checkpoint_sha256": file_sha256(path),
        "scenario": world.scenario,
        "density": world.density,
        "camera": json.dumps(world.to_dict()["camera"], sort_keys=True),
        "inputs": inputs_text(ckpt),
        "action": action_text(ckpt),
        "policy_rate_hz": str(POLICY_RATE_HZ),
        "training_steps": str(ckpt["step"]),
    }


def _data_lines(ckpt: dict) -> list[str]:
    data = ckpt["extra"].get("data")
    if not data:
        return ["- not recorded in this checkpoint"]
    return [
        f"- folder `{data['folder']}`: {data['train_episodes']} training episodes "
        f"({data['train_frames']:,} frames), {data['val_episodes']} held out for validation "
        f"({data['val_frames']:,} frames); the split is by road"
    ]


def _training_lines(ckpt: dict) -> list[str]:
    config = ckpt["config"]
    keys = ("target", "epochs", "batch_size", "lr", "weight_decay", "seed", "colour_jitter")
    keys += ("mirror",)
    keys += ("frames", "curve_weighting", "curve_measure", "speed_weighting", "speed_input")
    keys += ("limit_input", "speed_shift", "input_norm", "mask_sky", "init")
    settings = ", ".join(f"{k} {config[k]}" for k in keys if k in config)
    best = ckpt["best_val"]
    loss = f"{best:.4f}" if isinstance(best, float) else "none (no validation set)"
    return [
        f"- {settings or 'settings not recorded'}",
        f"- {ckpt['step']} optimizer steps, {ckpt['epoch']} epochs; best validation loss {loss}",
    ]


def _metrics_lines(report: dict | None) -> list[str]:
    if report is None:
        return ["Not evaluated yet: `drive evaluate --policy THIS.pt --run RUN` adds it here."]
    world, seeds = report["world"], report["seeds"]
    made = report.get("provenance", {})
    return [
        f"{len(seeds)} held-out roads (seeds {seeds[0]:,} to {seeds[-1]:,}), scenario "
        f"{world['scenario']}, camera {world['camera']['kind']} with "
        f"'{world['camera']['appearance']}' looks, evaluated {made.get('created_utc', '?')}:",
        "",
        report["table"],
    ]


def model_card(path: Path, ckpt: dict, report: dict | None = None) -> str:
    """The markdown model card of the checkpoint `path` (loaded as `ckpt`)."""
    facts = policy_facts(ckpt, path)
    world = stored_world(ckpt, path)
    camera = world.camera
    written = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = [
        f"# Model card: `{path.name}`",
        "",
        f"PilotNet trained by behaviour cloning with pixels-to-pedals {facts['package_version']};"
        f" sha256 `{facts['checkpoint_sha256']}`; card written {written}.",
        "",
        "## Inputs and output",
        f"- camera: {camera.kind}, {camera.height}x{camera.width} pixels, "
        f"'{camera.appearance}' looks (all settings: `{facts['camera']}`)",
        f"- scenario: {world.scenario}, traffic density {world.density}",
        f"- inputs: {facts['inputs']}; {POLICY_RATE_HZ} Hz",
        f"- output: {facts['action']}",
        "",
        "## Data",
        *_data_lines(ckpt),
        "",
        "## Training",
        *_training_lines(ckpt),
        "",
        "## Closed-loop evaluation (rates in %, fractions in metrics.json)",
        *_metrics_lines(report),
        "",
        "## Intended use",
        "Research and teaching: end-to-end driving by imitation in the simulated highway-env "
        "world it was trained in (`drive evaluate`, `drive watch`, the ONNX export).",
        "",
        "## Limits",
        "- Simulation only: never drive a real vehicle with it.",
        "- Measured only in the world above; other scenarios, cameras, looks or traffic densities "
        "need their own evaluation (`--scenario`, `--density`, `--appearance held-out`).",
        "- It imitates a privileged expert; where the expert's demonstrations had no example "
        "(hard braking, recovery from far off the lane) it has none either.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(checkpoint: Path, report: dict | None = None) -> Path:
    """Write `model_card` beside `checkpoint` as `<checkpoint>.md` (atomically); returns it."""
    checkpoint = Path(checkpoint)
    text = model_card(checkpoint, load_checkpoint(checkpoint), report)
    out = checkpoint.with_suffix(".md")
    with replacing(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
