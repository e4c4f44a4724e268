"""The `drive` command: collect demonstrations, train PilotNet, evaluate, watch and explain it.

    drive demo                                   # everything, sized for a 2-core CPU
    drive collect --out data/demo --roads 60  # expert demonstrations
    drive info data/demo                         # what a dataset holds
    drive train --data data/demo --run logs/mine # PilotNet, TensorBoard in logs/mine
    drive evaluate --policy logs/mine/best.pt --roads 50 --out logs/mine/eval --video 2
    drive dagger --out logs/dagger --rounds 4    # DAgger rounds, a table per round
    drive export --policy logs/mine/best.pt      # ONNX, checked against PyTorch
    drive convert data/demo --to minari          # the dataset for Minari (and back), LeRobot
    drive watch --policy logs/mine/best.pt       # live window (or mp4 without a display)
    drive collect --driver keyboard --out data/me --roads 3  # you drive (arrow keys)
    drive view data/demo                         # contact sheet, label plots, episode mp4
    drive saliency --policy logs/mine/best.pt    # where the net looks (VisualBackProp), measured

`drive VERB --help` explains every flag; `drive VERB --config FILE` takes the settings from a file
(a saved config.json replays its run), the flags given override them. `drive train` without
`--run` names a new folder under logs/runs/; evaluate, watch, export and saliency without
`--policy` take the latest run's best.pt (`driving.runs`). A bad input ends with one line on
stderr and exit code 2.
"""

from __future__ import annotations

import errno
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Literal

import tyro

from driving.flags import EvalRoads, flag
from driving.helptext import UsageError, parse_verb, reflow_field_docs
from driving.record.collect import CollectConfig, NoiseConfig, collect
from driving.record.keyboard import collect_keyboard
from driving.rollout.evaluate import EvalConfig, evaluate, run_suite
from driving.tools.convert import ConvertConfig, convert, format_summary
from driving.tools.dagger import DaggerConfig, dagger, format_rounds
from driving.tools.export import ExportConfig, export_onnx
from driving.tools.saliency import SaliencyConfig, format_shares, run_saliency
from driving.tools.view import ViewConfig, view
from driving.tools.watch import WatchConfig, watch
from envs.camera import CameraConfig
from envs.world import TRAFFIC_SCENARIOS, World

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
    episodes: Annotated[int | None, tyro.conf.arg(name="roads")] = None
    """training roads to collect; default: the camera's recipe (100 on the dashcam's roads
    without traffic, 80 elsewhere)"""
    epochs: int = 5
    """training epochs"""
    eval_episodes: EvalRoads = 50
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
    device: str = "auto"
    """where the network trains: auto (a GPU if there is one), cpu, cuda or cuda:N; it drives
    (evaluation) on the CPU, as `drive evaluate` does by default"""
    seed: int = 0
    """training seed (initial weights, sampling order): another seed checks a result's spread"""
    colour_jitter: float | None = None
    """strength of the colour augmentation of training frames (see `drive train --help`);
    default: the camera's recipe (1.0 on the dashcam, 0 on the top-down camera)"""
    input_norm: Literal["fixed", "per-frame"] = "fixed"
    """the network's input normalisation (see `drive train --help`)"""
    mask_sky: bool = True
    """hide the dashcam's sky and haze from the network (see `drive train --help`); the
    dashcam's recipe, nothing to hide on the top-down camera"""
    mirror: bool = True
    """mirror half of every training batch left to right (see `drive train --help`): the
    dashcam's recipe on roads without traffic (mirrored traffic would overtake on the other
    side); the top-down camera's demo trains as it was measured, unmirrored"""
    limit_input: bool = False
    """tell the network the road's speed limit beside the speed (see `drive train --help`);
    with --road.limit-range LO HI each training road has a limit of its own"""
    speed_shift: float = 0.0
    """move each training sample's speed by up to +-this [m/s] and its throttle label as the
    expert's law does (see `drive train --help`); 3 with --limit-input is the measured recipe
    for told limits on roads without traffic"""

    def jitter(self) -> float:
        """--colour-jitter, or the camera's recipe where it is not given."""
        if self.colour_jitter is not None:
            return self.colour_jitter
        return 1.0 if self.world.camera.kind == "dashcam" else 0.0

    def masks_sky(self) -> bool:
        """--mask-sky where there is a sky: on the dashcam."""
        return self.mask_sky and self.world.camera.kind == "dashcam"

    def roads(self) -> int:
        """--roads, or the recipe's: 100 where the demo mirrors (the dashcam's roads without
        traffic: from 80, one fresh-clone policy missed a road of 50), 80 elsewhere."""
        if self.episodes is not None:
            return self.episodes
        return 100 if self.mirrors() else 80

    def mirrors(self) -> bool:
        """--mirror on the dashcam on roads without traffic."""
        traffic = self.world.scenario in TRAFFIC_SCENARIOS
        return self.mirror and self.world.camera.kind == "dashcam" and not traffic

    def collect_config(self) -> CollectConfig:
        """What step 1 collects."""
        return CollectConfig(
            out=self.out / "data", episodes=self.roads(), workers=self.workers,
            noise=self.noise, world=self.world,
        )  # fmt: skip

    def validate(self) -> None:
        """Check every setting before any work: a bad one is refused before collecting.

        Raises:
            ValueError: one line naming the flag.
        """
        from driving.learn.augment import speed_shift_problem
        from driving.learn.model import ModelConfig
        from driving.learn.state import resolve_device

        for name in ("epochs", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{flag(name)} must be >= 1, got {getattr(self, name)}")
        resolve_device(self.device)
        self.collect_config().validate()  # roads, workers, world, noise
        model = {"frames": self.frames, "frame_stride": self.frame_stride}
        ModelConfig(**model, input_norm=self.input_norm, limit_input=self.limit_input).validate()
        if not 0.0 <= self.jitter() <= 1.0:
            raise ValueError(f"--colour-jitter must be in [0, 1], got {self.jitter()}")
        if shift := speed_shift_problem(self.speed_shift):
            raise ValueError(shift)


def run_demo(cfg: DemoConfig) -> dict:
    """The whole loop: collect -> train -> evaluate; returns the evaluation report."""
    from driving.learn.train import TrainConfig, train

    cfg.validate()
    start = time.perf_counter()
    data, run = cfg.out / "data", cfg.out / "run"
    print(f"[1/3] collecting {cfg.roads()} expert episodes into {data}")
    collect(cfg.collect_config())
    print(f"[2/3] training PilotNet for {cfg.epochs} epochs; watch: tensorboard --logdir {cfg.out}")
    resume = (run / "last.pt").exists()
    summary = train(
        TrainConfig(
            data=data, run=run, epochs=cfg.epochs, resume=resume, eval_episodes=0,
            frames=cfg.frames, frame_stride=cfg.frame_stride, seed=cfg.seed,
            colour_jitter=cfg.jitter(), input_norm=cfg.input_norm, mask_sky=cfg.masks_sky(),
            device=cfg.device, mirror=cfg.mirrors(), limit_input=cfg.limit_input,
            speed_shift=cfg.speed_shift,
        )
    )  # fmt: skip
    print(f"[3/3] evaluating on {cfg.eval_episodes} held-out roads")
    # evaluated in the world the checkpoint records: the demo's, drives from each road's start
    # recorded in the run: TensorBoard (eval/*, HParams) and the model card beside best.pt
    out = cfg.out / "eval"
    best = str(summary["best"])
    report = evaluate(EvalConfig(best, cfg.eval_episodes, out, cfg.workers, video=2, run=run))
    minutes = (time.perf_counter() - start) / 60
    print(report["table"])
    print(
        f"demo finished in {minutes:.1f} min; metrics: {cfg.out / 'eval' / 'metrics.json'}, "
        f"videos: {cfg.out / 'eval' / 'videos'}"
    )
    return report


def _terminated(signum: int, frame) -> None:
    """SIGTERM (how schedulers and container runtimes stop a job) handled as Ctrl-C is: each
    verb saves what it can and says so in one line."""
    raise KeyboardInterrupt


FOLDER_FLAGS = ("out", "run")
"""Config fields naming a folder a verb writes into (export's --out is a file, convert's a name)."""


def check_output_folders(cfg: object) -> None:
    """Refuse, before any work, an output folder flag that names a file or lies under one.

    Raises:
        ValueError: one line naming the flag and the file.
    """
    if isinstance(cfg, (ExportConfig, ConvertConfig)):
        names = ()
    else:
        names = [name for name in FOLDER_FLAGS if isinstance(getattr(cfg, name, None), Path)]
    for name in names:
        path = getattr(cfg, name)
        blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            where = "is" if blocking == path else f"lies under {blocking}, which is"
            raise ValueError(
                f"--{name} {path} {where} a file, not a folder: choose another --{name}"
            )
    out = getattr(cfg, "out", None) if isinstance(cfg, ExportConfig) else None
    if out is not None and (
        out.is_dir() or any(p.exists() and not p.is_dir() for p in out.parents)
    ):
        raise ValueError(f"--out {out} must be a file path in a folder (like net.onnx)")


def os_error_line(error: OSError) -> str:
    """An OSError as one line naming its path, not `[Errno 17] File exists: 'x'`."""
    path = error.filename
    if path is None:
        return error.strerror or str(error)
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        return f"{path}: a file stands where a folder is needed; remove it or choose another path"
    if error.errno == errno.ENOSPC:
        return f"no space left on the device writing {path}; free some space and re-run"
    if isinstance(error, PermissionError):
        return f"permission denied: {path}"
    if isinstance(error, FileNotFoundError):
        return f"{path} does not exist"
    return f"{error.strerror or error}: {path}"


def verb_configs() -> dict[str, type]:
    """Each verb of `drive` and the dataclass of its flags."""
    from driving.learn.train import TrainConfig

    return {
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


def with_latest_policy(cfg):
    """`cfg` with --policy set to the latest run's best.pt where a policy verb got none."""
    if not isinstance(cfg, (EvalConfig, WatchConfig, ExportConfig, SaliencyConfig)) or cfg.policy:
        return cfg
    from driving.runs import latest_checkpoint

    policy = latest_checkpoint()  # ValueError if there is none
    print(f"policy: {policy} (the latest run's; --policy chooses another)", file=sys.stderr)
    return replace(cfg, policy=policy if isinstance(cfg, ExportConfig) else str(policy))


def main(argv: list[str] | None = None) -> int:
    """Entry point of `drive`; returns the exit code."""
    from driving.learn.train import TrainConfig

    reflow_field_docs()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--version"]:
        print(f"drive {version('pixels-to-pedals')}")
        return 0
    verbs = verb_configs()
    try:
        cfg = parse_verb(verbs, args, prog="drive", description=__doc__.split("\n")[0])
        cfg = with_latest_policy(cfg)
    except (UsageError, ValueError) as error:  # also a bad --config file, or no run yet
        print(f"error: {error}", file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread():  # where Python runs handlers
        signal.signal(signal.SIGTERM, _terminated)
    try:
        check_output_folders(cfg)
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
        elif isinstance(cfg, EvalConfig) and cfg.suite:
            print(run_suite(cfg)["table"])
            print(f"table: {cfg.out / 'suite.md'}; each world's report: {cfg.out}/*/report.html")
        elif isinstance(cfg, EvalConfig):
            report = evaluate(cfg)
            print(report["table"])
            print(f"metrics: {cfg.out / 'metrics.json'}, report: {cfg.out / 'report.html'}")
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
            for name in ("contact_sheet", "distributions", "coverage", "video"):
                print(f"{name}: {written[name]}")
            shares = ", ".join(f"{k} {v:.1%}" for k, v in written["radius_shares"].items())
            hard = written["hard_braking_share"]
            print(f"frames by bend radius at the car: {shares}; hard braking: {hard:.2%}")
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
    except OSError as error:
        print(f"error: {os_error_line(error)}", file=sys.stderr)
        return 2
    except ValueError as error:  # DatasetError and CheckpointError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
