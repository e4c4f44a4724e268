"""The `drive` command: collect demonstrations, train PilotNet, evaluate, watch and explain it.

    drive demo                                   # everything, sized for a 2-core CPU
    drive collect --out data/demo --episodes 60  # expert demonstrations
    drive info data/demo                         # what a dataset holds
    drive train --data data/demo --run logs/mine # PilotNet, TensorBoard in logs/mine
    drive evaluate --policy logs/mine/best.pt --episodes 50 --out logs/mine/eval --video 2
    drive dagger --out logs/dagger --rounds 4    # DAgger rounds, a table per round
    drive export --policy logs/mine/best.pt      # ONNX, checked against PyTorch
    drive convert data/demo --to minari          # the dataset for Minari (and back), LeRobot
    drive watch --policy logs/mine/best.pt       # live window (or mp4 without a display)
    drive collect --driver keyboard --out data/me --episodes 3  # you drive (arrow keys)
    drive view data/demo                         # contact sheet, label plots, episode mp4
    drive saliency --policy logs/mine/best.pt    # where the net looks (VisualBackProp), measured

`drive VERB --help` explains every flag. A bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import difflib
import json
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Literal

import tyro

from driving.helptext import reflow_field_docs
from driving.record.collect import CollectConfig, NoiseConfig, collect
from driving.record.keyboard import collect_keyboard
from driving.rollout.evaluate import EvalConfig, evaluate
from driving.rollout.report import log_to_tensorboard
from driving.tools.convert import ConvertConfig, convert, format_summary
from driving.tools.dagger import DaggerConfig, dagger, format_rounds
from driving.tools.export import ExportConfig, export_onnx
from driving.tools.saliency import SaliencyConfig, format_shares, run_saliency
from driving.tools.view import ViewConfig, view
from driving.tools.watch import WatchConfig, watch
from envs.camera import CameraConfig
from envs.world import World

DEMO_WORLD = World(camera=CameraConfig(kind="dashcam", appearance="train"))
"""The demo's world: the winding road seen by the driver's-eye camera, a look per road."""


@dataclass(frozen=True)
class InfoConfig:
    """Print what a dataset holds: episodes, frames, label distributions, damaged files."""

    path: Annotated[Path, tyro.conf.Positional]
    """dataset folder"""


@dataclass(frozen=True)
class DemoConfig:
    """Collect demonstrations, train PilotNet and evaluate it on held-out roads, print the table.

    Sized for a 2-core CPU; re-running continues where a killed run stopped.
    """

    out: Path = Path("logs/demo")
    """run folder: data/, run/ (TensorBoard + checkpoints), eval/ (metrics.json, videos)"""
    episodes: int = 80
    """training roads to collect"""
    epochs: int = 5
    """training epochs"""
    eval_episodes: int = 50
    """held-out roads to evaluate on"""
    workers: int = 2
    """processes for collection and evaluation"""
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    """DART noise while collecting"""
    world: Annotated[World, tyro.conf.arg(name="")] = DEMO_WORLD
    """the world to collect in; training and evaluation follow it (--scenario, --density, ...);
    the driver's-eye camera with per-road looks unless --camera.kind topdown"""
    frames: int = 1
    """camera frames stacked as the network's input (see `drive train --help`)"""
    frame_stride: int = 1
    """policy steps between stacked frames"""
    seed: int = 0
    """training seed (initial weights, sampling order): another seed checks a result's spread"""
    colour_jitter: float | None = None
    """strength of the colour augmentation of training frames (see `drive train --help`);
    default: the camera's recipe (0.5 on the dashcam, 0 on the top-down camera)"""
    input_norm: Literal["fixed", "per-frame"] = "fixed"
    """the network's input normalisation (see `drive train --help`)"""

    def jitter(self) -> float:
        """--colour-jitter, or the camera's recipe where it is not given."""
        if self.colour_jitter is not None:
            return self.colour_jitter
        return 0.5 if self.world.camera.kind == "dashcam" else 0.0


def run_demo(cfg: DemoConfig) -> dict:
    """The whole loop: collect -> train -> evaluate; returns the evaluation report."""
    from driving.learn.model import ModelConfig
    from driving.learn.train import TrainConfig, train

    model = {"frames": cfg.frames, "frame_stride": cfg.frame_stride, "input_norm": cfg.input_norm}
    ModelConfig(**model).validate()  # before any work
    if not 0.0 <= cfg.jitter() <= 1.0:
        raise ValueError(f"--colour-jitter must be in [0, 1], got {cfg.jitter()}")
    cfg.world.validate()
    start = time.perf_counter()
    data, run = cfg.out / "data", cfg.out / "run"
    print(f"[1/3] collecting {cfg.episodes} expert episodes into {data}")
    collect(
        CollectConfig(
            out=data, episodes=cfg.episodes, workers=cfg.workers, noise=cfg.noise, world=cfg.world
        )
    )  # fmt: skip
    print(f"[2/3] training PilotNet for {cfg.epochs} epochs; watch: tensorboard --logdir {cfg.out}")
    resume = (run / "last.pt").exists()
    summary = train(
        TrainConfig(
            data=data, run=run, epochs=cfg.epochs, resume=resume, eval_episodes=0,
            frames=cfg.frames, frame_stride=cfg.frame_stride, seed=cfg.seed,
            colour_jitter=cfg.jitter(), input_norm=cfg.input_norm,
        )
    )  # fmt: skip
    print(f"[3/3] evaluating on {cfg.eval_episodes} held-out roads")
    # evaluated in the world the checkpoint records: the demo's, drives from each road's start
    report = evaluate(
        EvalConfig(str(summary["best"]), cfg.eval_episodes, cfg.out / "eval", cfg.workers, video=2)
    )
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run)) as writer:
        log_to_tensorboard(writer, report, summary["steps"])
    minutes = (time.perf_counter() - start) / 60
    print(report["table"])
    print(
        f"demo finished in {minutes:.1f} min; metrics: {cfg.out / 'eval' / 'metrics.json'}, "
        f"videos: {cfg.out / 'eval' / 'videos'}"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of `drive`; returns the exit code."""
    from driving.learn.train import TrainConfig

    reflow_field_docs()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--version"]:
        print(f"drive {version('pixels-to-pedals')}")
        return 0
    verbs = {
        "collect": CollectConfig,
        "info": InfoConfig,
        "train": TrainConfig,
        "evaluate": EvalConfig,
        "dagger": DaggerConfig,
        "demo": DemoConfig,
        "export": ExportConfig,
        "convert": ConvertConfig,
        "watch": WatchConfig,
        "view": ViewConfig,
        "saliency": SaliencyConfig,
    }
    if args and not args[0].startswith("-") and args[0] not in verbs:
        close = difflib.get_close_matches(args[0], verbs, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of {', '.join(verbs)}"
        print(f"error: unknown command '{args[0]}'; {hint}", file=sys.stderr)
        return 2
    cfg = tyro.extras.subcommand_cli_from_dict(
        verbs,
        prog="drive",
        description=__doc__.split("\n")[0],
        args=args,
    )
    try:
        if isinstance(cfg, CollectConfig):
            summary = collect_keyboard(cfg) if cfg.driver == "keyboard" else collect(cfg)
            print(
                f"collected {summary['episodes']} episodes, {summary['frames']} frames "
                f"({summary['frames_per_s']:.0f} frames/s) into {summary['out']}"
            )
        elif isinstance(cfg, InfoConfig):
            from driving.data import info

            print(info(cfg.path))
        elif isinstance(cfg, TrainConfig):
            from driving.learn.train import train

            summary = train(cfg)
            print(json.dumps({k: str(v) for k, v in summary.items()}, indent=2))
        elif isinstance(cfg, EvalConfig):
            report = evaluate(cfg)
            print(report["table"])
            print(f"metrics: {cfg.out / 'metrics.json'}")
        elif isinstance(cfg, DaggerConfig):
            print(format_rounds(dagger(cfg)))
            print(f"table: {cfg.out / 'dagger.md'}; tensorboard --logdir {cfg.out}")
        elif isinstance(cfg, DemoConfig):
            run_demo(cfg)
        elif isinstance(cfg, ExportConfig):
            summary = export_onnx(cfg)
            print(
                f"wrote {summary['onnx']}: max |ONNX Runtime - PyTorch| "
                f"{summary['max_abs_error']:.1e}; batch-1 latency p50/p99 on one core: "
                "ONNX Runtime {:.2f}/{:.2f} ms, PyTorch {:.2f}/{:.2f} ms".format(
                    *summary["onnxruntime_ms_p50_p99"], *summary["pytorch_ms_p50_p99"]
                )
            )
        elif isinstance(cfg, ConvertConfig):
            print(format_summary(convert(cfg)))
        elif isinstance(cfg, WatchConfig):
            summary = watch(cfg)
            for road in summary["roads"]:
                print(json.dumps(road))
            for video in summary["videos"]:
                print(f"video: {video}")
        elif isinstance(cfg, ViewConfig):
            written = view(cfg)
            for name in ("contact_sheet", "distributions", "video"):
                print(f"{name}: {written[name]}")
        elif isinstance(cfg, SaliencyConfig):
            report = run_saliency(cfg)
            if "policy_shares" in report:
                print(f"saliency over {report['frames']} frames of {len(report['seeds'])} roads:")
                print(format_shares(report))
            print(f"overlays: {report['grid']}, report: {cfg.out / 'saliency.json'}")
    except KeyboardInterrupt as interrupt:
        # Each verb says what it saved; this is the fallback.
        message = str(interrupt) or "interrupted: finished work is kept on disk"
        print(f"\n{message}", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:  # DatasetError and CheckpointError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
