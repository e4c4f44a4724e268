"""Where PilotNet looks: VisualBackProp saliency maps, and their share on each class of pixels.

VisualBackProp (Bojarski et al. 2017, arXiv 1611.05418): average each conv layer's activations
over channels, scale the deepest average up to the next shallower layer's size with a transposed
convolution of ones (that layer's kernel and stride), multiply point-wise with that layer's
average, and so on down to the input. It needs the conv part of one forward pass and no gradient.
The `drive saliency` command (`driving.tools.saliency`) measures it on driven roads.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from driving.learn.model import PilotNet
from envs.camera import MASK_EGO, MASK_GROUND, MASK_MARKING, MASK_ROAD, MASK_SKY, MASK_VEHICLE

CLASSES = {
    "cues": (MASK_MARKING, MASK_VEHICLE),
    "road_surface": (MASK_ROAD,),
    "ground": (MASK_GROUND,),
    "ego": (MASK_EGO,),
    "sky": (MASK_SKY,),  # the dashcam's sky and haze; never in a top-down frame
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
