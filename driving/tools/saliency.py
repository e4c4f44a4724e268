"""Where PilotNet looks: VisualBackProp saliency, overlays, and how much of it lands on road cues.

    drive saliency --policy logs/demo/run/best.pt --roads 20 --out logs/saliency
    drive saliency --policy logs/demo/run/best.pt --data logs/demo/data   # stored frames, no score

VisualBackProp (Bojarski et al. 2017, arXiv 1611.05418): average each conv layer's activations
over channels, scale the deepest average up to the next shallower layer's size with a transposed
convolution of ones (that layer's kernel and stride), multiply point-wise with that layer's
average, and so on down to the input. It needs the conv part of one forward pass and no gradient.

The measurement drives held-out roads live (the policy in control, `driving.rollout.evaluate.drive`), and
asks the camera where the road cues are in each frame (`envs.camera.Camera.render_mask`): lane
markings, road edges, other vehicles. It reports the share of saliency mass on each class against
the share of pixels the class covers; their ratio says how many times more attention a class gets
than uniform attention would give it. The same frames through an untrained PilotNet are the
baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from driving.draw.video import write_png
from driving.files import write_json
from driving.learn.model import ModelConfig, PilotNet
from driving.learn.policy import NetPolicy
from envs import eval_seeds
from envs.camera import MASK_EGO, MASK_GROUND, MASK_MARKING, MASK_ROAD, MASK_VEHICLE, CameraConfig

CLASSES = {
    "cues": (MASK_MARKING, MASK_VEHICLE),
    "road_surface": (MASK_ROAD,),
    "ground": (MASK_GROUND,),
    "ego": (MASK_EGO,),
}
"""Groups of `render_mask` classes that the measurement reports on.

cues = lane markings, road edges and other vehicles."""


class VisualBackProp:
    """Saliency maps of a PilotNet: `maps = VisualBackProp(model)(images, speed)`."""

    def __init__(self, model: PilotNet) -> None:
        """Wrap a PilotNet (its weights are used as they are, in eval mode)."""
        self.model = model
        self.convs = [m for m in model.conv if isinstance(m, nn.Conv2d)]

    def __call__(self, images: np.ndarray | torch.Tensor, speed=None) -> np.ndarray:
        """Saliency of each frame, at the frame's size.

        Args:
            images: (B, H, W, 3K) uint8 RGB frames as the policy sees them, K = the model's
                `frames` stacked oldest first (`NetPolicy.net_input`). Single frames
                (B, H, W, 3) are accepted for any K: each is repeated K times, the view of a still
                scene, which is what the net sees at an episode's start.
            speed: ignored: the speed enters after the conv layers, so it cannot move the map;
                accepted so that the call reads like the model's.

        Returns:
            (B, H, W) float32 maps in [0, 1], each divided by its maximum (all zeros when every
            feature is zero). One map covers all K stacked frames.
        """
        device = next(self.model.parameters()).device
        x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
        channels = self.model.config.channels
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] not in (3, channels):
            raise ValueError(
                f"VisualBackProp expects (B, H, W, 3) or (B, H, W, {channels}) uint8 frames, "
                f"got {tuple(x.shape)} {x.dtype}"
            )
        if x.shape[-1] != channels:
            x = x.repeat(1, 1, 1, self.model.config.frames)  # (B, H, W, 3K)
        with torch.inference_mode():
            x = self.model.normalize(x.to(device))  # (B, 3K, H, W)
            sizes, averages = [tuple(x.shape[-2:])], []
            for layer in self.model.conv:
                x = layer(x)
                if not isinstance(layer, nn.Conv2d):
                    # ELU(z) > 0 exactly where z > 0: its positive part is ReLU's, as in the paper.
                    averages.append(x.clamp(min=0).mean(dim=1, keepdim=True).float())
                    sizes.append(tuple(x.shape[-2:]))
            mask = averages[-1]
            for i in range(len(self.convs) - 1, -1, -1):
                mask = self._upsample(mask, self.convs[i], sizes[i])
                if i > 0:
                    mask = mask * averages[i - 1]
            mask = mask[:, 0]  # (B, H, W)
            peak = mask.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
            return (mask / peak).clamp(0, 1).cpu().numpy().astype(np.float32)

    @staticmethod
    def _upsample(mask: torch.Tensor, conv: nn.Conv2d, size: tuple[int, int]) -> torch.Tensor:
        """Spread each value over the input pixels it was computed from (a conv of ones)."""
        kernel = torch.ones(1, 1, *conv.kernel_size, dtype=mask.dtype, device=mask.device)
        stride, kernel_size = conv.stride, conv.kernel_size
        natural = [
            (n - 1) * s + k for n, s, k in zip(mask.shape[-2:], stride, kernel_size, strict=True)
        ]
        # The conv ignored the last rows/columns that did not fill a stride (fewer than the
        # stride): output_padding gives them back, with zero weight.
        pad = tuple(target - n for target, n in zip(size, natural, strict=True))
        return F.conv_transpose2d(mask, kernel, stride=stride, output_padding=pad)


def saliency_overlay(frame: np.ndarray, saliency_map: np.ndarray) -> np.ndarray:
    """The frame with its saliency drawn on in a heat colour map, opaque where saliency is high.

    Args:
        frame: (H, W, 3) uint8 RGB camera frame.
        saliency_map: (H, W) float in [0, 1], as VisualBackProp gives it.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if saliency_map.shape != frame.shape[:2]:
        raise ValueError(f"saliency map {saliency_map.shape} != frame size {frame.shape[:2]}")
    level = np.clip(saliency_map, 0.0, 1.0)
    heat = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB).astype(np.float32)
    alpha = 0.8 * level[..., None]
    return (frame.astype(np.float32) * (1 - alpha) + heat * alpha).round().astype(np.uint8)


def class_shares(maps: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame and class group (`CLASSES`): share of saliency mass and share of pixels.

    Args:
        maps: (N, H, W) saliency, >= 0.
        masks: (N, H, W) `render_mask` class ids of the same frames.

    Returns:
        {"<group>_saliency": (N,), "<group>_pixels": (N,)}; frames with no saliency at all give
        NaN saliency shares.
    """
    total = maps.reshape(len(maps), -1).sum(axis=1)
    shares = {}
    for name, ids in CLASSES.items():
        inside = np.isin(masks, ids)
        mass = (maps * inside).reshape(len(maps), -1).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares[f"{name}_saliency"] = np.where(total > 0, mass / total, np.nan)
        shares[f"{name}_pixels"] = inside.reshape(len(maps), -1).mean(axis=1)
    return shares


def summarize_shares(shares: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Mean over frames of each group's saliency share and pixel share, and their ratio."""
    out = {}
    for name in CLASSES:
        saliency = float(np.nanmean(shares[f"{name}_saliency"]))
        pixels = float(np.mean(shares[f"{name}_pixels"]))
        ratio = saliency / pixels if pixels > 0 else float("nan")
        out[name] = {"saliency_share": saliency, "pixel_share": pixels, "ratio": ratio}
    return out


def sample_live(
    policy: NetPolicy, seeds: list[int], every: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Let the policy drive `seeds` (expert as safety driver); every `every` steps it drives,
    keep the camera frame, the speed and the cue mask of the same instant.

    Returns:
        frames (N, H, W, 3) uint8, speeds (N,) [m/s], masks (N, H, W) uint8 class ids.
    """
    from driving.rollout.evaluate import drive  # evaluate imports this module for its videos
    from envs.expert import Expert
    from envs.world import SCENARIO, make_env

    env = make_env(SCENARIO, CameraConfig(**policy.camera), terminate_off_road=False)
    expert = Expert(env)
    frames, speeds, masks = [], [], []
    for seed in tqdm(seeds, unit="road", desc="driving"):
        for k, step in enumerate(drive(env, policy, expert, seed)):
            if k % every or not step.autonomous or step.done:
                continue
            # The state after the step is the one the next frame shows: render both from it.
            road, ego = env.unwrapped.road, env.unwrapped.vehicle
            frames.append(env.camera.render(road, ego))
            masks.append(env.camera.render_mask(road, ego))
            speeds.append(step.info["speed"])
    env.close()
    if not frames:
        raise ValueError("the policy never drove a sampled step; use more --roads")
    return np.stack(frames), np.asarray(speeds, np.float32), np.stack(masks)


def sample_dataset(root: Path, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` frames (and speeds) spread over the episodes of a stored dataset."""
    from driving.data import read_episode, scan

    paths, _ = scan(Path(root))
    rng = np.random.default_rng(seed)
    frames, speeds = [], []
    for i in range(count):
        episode = read_episode(paths[i * len(paths) // count])
        t = int(rng.integers(len(episode.frames)))
        frames.append(episode.frames[t])
        speeds.append(episode.speed[t])
    return np.stack(frames), np.asarray(speeds, np.float32)


def overlay_grid(
    frames: np.ndarray, maps: np.ndarray, columns: int = 3, scale: int = 2
) -> np.ndarray:
    """Overlays of several frames tiled in a grid, each enlarged `scale` times, 2 px apart."""
    cells = [
        cv2.resize(saliency_overlay(f, m), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for f, m in zip(frames, maps, strict=True)
    ]
    height, width = cells[0].shape[:2]
    rows = -(-len(cells) // columns)
    grid = np.full((rows * (height + 2) - 2, columns * (width + 2) - 2, 3), 255, np.uint8)
    for i, cell in enumerate(cells):
        top, left = (i // columns) * (height + 2), (i % columns) * (width + 2)
        grid[top : top + height, left : left + width] = cell
    return grid


@dataclass(frozen=True)
class SaliencyConfig:
    """Show where the policy looks (VisualBackProp) and measure how much of it is on road cues."""

    policy: str
    """a checkpoint file (.pt)"""
    data: Path | None = None
    """take frames from this dataset folder instead of driving held-out roads (no measurement:
    stored frames have no cue masks)"""
    roads: int = 20
    """held-out roads the policy drives for the measurement"""
    every: int = 10
    """sample one frame every this many steps the policy drives (10 = every 1 s)"""
    frames: int = 12
    """frames shown in the overlay grid"""
    seed_offset: int = 0
    """skip this many evaluation seeds (to use other held-out roads)"""
    out: Path = Path("logs/saliency")
    """folder for saliency.json and saliency_grid.png"""

    def validate(self) -> NetPolicy:
        """Check the settings; returns the policy loaded from the checkpoint."""
        for name in ("roads", "every", "frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.seed_offset < 0:
            raise ValueError(f"--seed-offset must be >= 0, got {self.seed_offset}")
        if not Path(self.policy).is_file():
            raise ValueError(f"policy {self.policy!r} is not a checkpoint file")
        return NetPolicy.from_checkpoint(self.policy)


def run_saliency(cfg: SaliencyConfig) -> dict:
    """Write `saliency_grid.png` and `saliency.json` into `cfg.out`; returns the report."""
    policy = cfg.validate()
    vbp = VisualBackProp(policy.model)
    report: dict = {"policy": cfg.policy}
    if cfg.data is not None:
        frames, speeds = sample_dataset(cfg.data, cfg.frames)
        report["source"] = str(cfg.data)
        maps = vbp(frames, speeds)
    else:
        seeds = eval_seeds(cfg.roads, cfg.seed_offset)
        frames, speeds, masks = sample_live(policy, seeds, cfg.every)
        maps = np.concatenate([vbp(frames[i : i + 256]) for i in range(0, len(frames), 256)])
        torch.manual_seed(0)
        baseline = VisualBackProp(PilotNet(ModelConfig(**asdict(policy.model.config))).eval())
        base_maps = np.concatenate(
            [baseline(frames[i : i + 256]) for i in range(0, len(frames), 256)]
        )
        report.update(
            source="held-out roads driven live",
            seeds=seeds,
            frames=len(frames),
            every_steps=cfg.every,
            policy_shares=summarize_shares(class_shares(maps, masks)),
            untrained_shares=summarize_shares(class_shares(base_maps, masks)),
        )
    pick = np.linspace(0, len(frames) - 1, min(cfg.frames, len(frames))).round().astype(int)
    grid = write_png(cfg.out / "saliency_grid.png", overlay_grid(frames[pick], maps[pick]))
    report["grid"] = str(grid)
    write_json(cfg.out / "saliency.json", report)
    return report


def format_shares(report: dict) -> str:
    """Table of the measurement: saliency share vs pixel share per class, policy and untrained."""
    lines = [
        "| class | pixels | saliency (policy) | ratio | saliency (untrained) | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name in CLASSES:
        p, u = report["policy_shares"][name], report["untrained_shares"][name]
        lines.append(
            f"| {name} | {p['pixel_share']:.1%} | {p['saliency_share']:.1%} | {p['ratio']:.2f} "
            f"| {u['saliency_share']:.1%} | {u['ratio']:.2f} |"
        )
    return "\n".join(lines)
