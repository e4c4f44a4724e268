"""ONNX export: the exported graph matches PyTorch under ONNX Runtime."""

import hashlib
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from driving.learn.checkpoint import save_checkpoint
from driving.learn.model import ModelConfig, PilotNet
from driving.tools.export import TOLERANCE, ExportConfig, export_onnx
from envs.camera import CameraConfig


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(speed_input=False),
        ModelConfig(frames=2, frame_stride=3),
        ModelConfig(input_norm="per-frame"),
        ModelConfig(hidden_rows=17),
        ModelConfig(hidden_rows=17, shown_box=(1, 15, 68, 132), input_norm="per-frame"),
        ModelConfig(limit_input=True),
    ],
    ids=[
        "speed",
        "no-speed",
        "2-frames",
        "per-frame-norm",
        "sky-hidden",
        "sky-hidden-but-mirror",
        "speed-limit",
    ],
)
def test_onnx_matches_pytorch_for_any_batch(tmp_path, config):
    torch.manual_seed(0)
    speed_input, limit_input = config.speed_input, config.limit_input
    model = PilotNet(config)
    ckpt = tmp_path / "best.pt"
    save_checkpoint(
        ckpt,
        model=model,
        model_config=config,
        optimizer=torch.optim.AdamW(model.parameters()),
        step=0,
        epoch=0,
        best_val=None,
        config={},
    )
    summary = export_onnx(ExportConfig(policy=ckpt, check=8))
    assert summary["max_abs_error"] <= TOLERANCE
    session = onnxruntime.InferenceSession(summary["onnx"], providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    shape = (5, 66, 200, config.channels)  # a batch size never exported
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    speed = rng.uniform(0, 20, 5).astype(np.float32)
    limit = rng.uniform(8, 22, 5).astype(np.float32)  # [m/s]
    feeds = {"image": image, **({"speed": speed} if speed_input else {})}
    feeds |= {"speed_limit": limit} if limit_input else {}
    assert [i.name for i in session.get_inputs()] == list(feeds)
    got = session.run(None, feeds)[0]
    with torch.inference_mode():
        want = model(*(torch.from_numpy(v) for v in feeds.values()))
    np.testing.assert_allclose(got, want.numpy(), atol=TOLERANCE)
    if limit_input:  # the limit is an input of the graph, not a constant folded into it
        other = session.run(None, feeds | {"speed_limit": limit + 5.0})[0]
        assert np.abs(other - got).max() > 1e-3
    assert all(
        p50 > 0 for p50, _ in (summary["onnxruntime_ms_p50_p99"], summary["pytorch_ms_p50_p99"])
    )


def test_the_onnx_file_says_what_it_sees_and_what_its_outputs_mean(tmp_path):
    from conftest import save_untrained

    from envs.world import World

    world = World(scenario="winding-traffic", camera=CameraConfig(kind="dashcam"))
    config = ModelConfig(frames=2, frame_stride=3)
    ckpt = save_untrained(tmp_path / "best.pt", {"world": world.to_dict()}, config)
    summary = export_onnx(ExportConfig(policy=ckpt, check=4))
    meta = {p.key: p.value for p in onnx.load(summary["onnx"]).metadata_props}
    assert meta["scenario"] == "winding-traffic" and meta["density"] == "default"
    assert json.loads(meta["camera"]) == world.to_dict()["camera"]
    assert meta["inputs"].startswith("image: uint8 (B, 66, 200, 6): 2 frames 3 step(s) apart")
    assert "speed: float32 (B,) [m/s]" in meta["inputs"]
    assert meta["action"].startswith("float32 (B, 2) [steering, throttle]")
    assert "positive steers right" in meta["action"]
    assert meta["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta["package_version"] and meta["policy_rate_hz"] == "10"
    session = onnxruntime.InferenceSession(summary["onnx"], providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == meta  # ONNX Runtime reads them too
