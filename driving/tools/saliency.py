"""Where PilotNet looks: VisualBackProp saliency, overlays, and how much of it lands on road cues.

    drive saliency --policy logs/demo/run/best.pt --roads 20 --out logs/saliency
    drive saliency --policy logs/demo/run/best.pt --data logs/demo/data   # stored frames, no score

The maps are VisualBackProp's (`driving.learn.saliency`). The measurement drives held-out roads
live (the policy in control, `driving.rollout.loop.drive`) in the world the policy learned in, and
asks the camera where the road cues are in each frame (`envs.camera.Camera.render_mask`): lane
markings, road edges, other vehicles. It reports the share of saliency mass on each class against
the share of pixels the class covers; their ratio says how many times more attention a class gets
than uniform attention would give it. The same frames through an untrained PilotNet are the
baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from driving.data import read_episode, scan
from driving.draw.overlays import overlay_grid
from driving.draw.video import write_png
from driving.files import write_json
from driving.learn.model import ModelConfig, PilotNet
from driving.learn.policy import NetPolicy
from driving.learn.saliency import CLASSES, VisualBackProp, class_shares, summarize_shares
from driving.rollout.drivers import BUILT_IN, drivers, policy_world
from driving.rollout.loop import drive
from envs import eval_seeds
from envs.camera import MASK_VEHICLE
from envs.expert import Expert
from envs.world import World
from envs.wrapper import DrivingWrapper


def sample_live(
    env: DrivingWrapper, policy: NetPolicy, expert: Expert, seeds: list[int], every: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Let the policy drive `seeds` in `env` (expert as safety driver); every `every` steps it
    drives, keep the camera frame, the speed and the cue mask of the same instant.

    Returns:
        frames (N, H, W, 3) uint8, speeds (N,) [m/s], masks (N, H, W) uint8 class ids.
    """
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
    if not frames:
        raise ValueError("the policy never drove a sampled step; use more --roads")
    return np.stack(frames), np.asarray(speeds, np.float32), np.stack(masks)


def sample_dataset(root: Path, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` frames (and speeds) spread over the episodes of a stored dataset."""
    paths, _ = scan(Path(root))
    rng = np.random.default_rng(seed)
    frames, speeds = [], []
    for i in range(count):
        episode = read_episode(paths[i * len(paths) // count])
        t = int(rng.integers(len(episode.frames)))
        frames.append(episode.frames[t])
        speeds.append(episode.speed[t])
    return np.stack(frames), np.asarray(speeds, np.float32)


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
    scenario: str = ""
    """world to drive in; empty: the policy's own (from its checkpoint)"""
    density: str = ""
    """traffic density in the traffic scenarios; empty: the policy's own"""

    def validate(self) -> World:
        """Check the settings; returns the world to drive in (the policy's own unless --scenario
        or --density say otherwise)."""
        for name in ("roads", "every", "frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.seed_offset < 0:
            raise ValueError(f"--seed-offset must be >= 0, got {self.seed_offset}")
        if self.policy in BUILT_IN:
            raise ValueError(f"saliency needs a network policy (a checkpoint), not {self.policy}")
        return policy_world(self.policy, self.scenario, self.density)


def run_saliency(cfg: SaliencyConfig) -> dict:
    """Write `saliency_grid.png` and `saliency.json` into `cfg.out`; returns the report."""
    world = cfg.validate()
    env, policy, expert = drivers(cfg.policy, world, terminate_off_road=False)
    vbp = VisualBackProp(policy.model)
    report: dict = {"policy": cfg.policy, "world": world.to_dict()}
    if cfg.data is not None:
        frames, speeds = sample_dataset(cfg.data, cfg.frames)
        report["source"] = str(cfg.data)
        maps = vbp(frames, speeds)
    else:
        seeds = eval_seeds(cfg.roads, cfg.seed_offset)
        frames, speeds, masks = sample_live(env, policy, expert, seeds, cfg.every)
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
            # share of the sampled frames showing another vehicle (0 on an empty road)
            vehicles_in_view=float(np.mean((masks == MASK_VEHICLE).any(axis=(1, 2)))),
            policy_shares=summarize_shares(class_shares(maps, masks)),
            untrained_shares=summarize_shares(class_shares(base_maps, masks)),
        )
    env.close()
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
        if p["pixel_share"] == 0:
            continue  # a class this camera never shows (the sky from above)
        lines.append(
            f"| {name} | {p['pixel_share']:.1%} | {p['saliency_share']:.1%} | {p['ratio']:.2f} "
            f"| {u['saliency_share']:.1%} | {u['ratio']:.2f} |"
        )
    return "\n".join(lines)
