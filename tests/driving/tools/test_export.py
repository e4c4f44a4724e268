"""ONNX export: the exported graph matches PyTorch under ONNX Runtime."""

import numpy as np
import onnxruntime
import pytest
import torch

from driving.learn.checkpoint import save_checkpoint
from driving.learn.model import ModelConfig, PilotNet
from driving.tools.export import TOLERANCE, ExportConfig, export_onnx


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(speed_input=False),
        ModelConfig(frames=2, frame_stride=3),
        ModelConfig(input_norm="per-frame"),
    ],
    ids=["speed", "no-speed", "2-frames", "per-frame-norm"],
)
def test_onnx_matches_pytorch_for_any_batch(tmp_path, config):
    torch.manual_seed(0)
    speed_input = config.speed_input
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
    feeds = {"image": image, **({"speed": speed} if speed_input else {})}
    got = session.run(None, feeds)[0]
    with torch.inference_mode():
        want = model(torch.from_numpy(image), torch.from_numpy(speed) if speed_input else None)
    np.testing.assert_allclose(got, want.numpy(), atol=TOLERANCE)
    assert all(
        p50 > 0 for p50, _ in (summary["onnxruntime_ms_p50_p99"], summary["pytorch_ms_p50_p99"])
    )
