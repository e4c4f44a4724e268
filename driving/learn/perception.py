"""Direct perception (mid-level): PilotNet's trunk predicting the lane state instead of the
controls, and the driver that feeds its predictions to the expert's control law.

The net sees what the end-to-end PilotNet sees (the camera frame, the speedometer) and learns,
from the same frames, the quantities the control law reads, recorded from ground truth at
collection time (`driving.record.collect`): the lateral offset [m], the heading error [rad] and
the lane's curvature [1/m] at the distances of `meta["curvature_ahead_m"]` (0 to 40 m ahead,
every 10 m: `envs.expert.CURVATURE_AHEAD_M`), and in traffic the gap to the car ahead [m] (capped
at `meta["leader_range_m"]`) and the closing speed on it [m/s], what the traffic expert's IDM
reads. Each output is normalised to the training set's mean 0 and standard deviation 1, so that
a curvature of 0.01 1/m counts as much in the loss as an offset of 0.5 m; the checkpoint keeps
the normalisation (`extra["perception"]`) and the output names (`model_config["outputs"]`).
Training samples the frames as for the end-to-end net (curve over-sampling by the expert's
steering), so both learn from exactly the same batches.

`DirectDriver` runs the net on each frame, turns its output into a `LaneProfile` (curvature
between the distances interpolated linearly; the car ahead in traffic) and drives it with
`LaneControl` (in its lane: no lane changes), the code the
modular driver (`driving.modular`) drives its hand-built estimates with; its estimates are
logged like the modular driver's (`estimate`), so per-frame perception error and intervention
attribution (`driving.rollout.attribution`) work unchanged.

    drive train --data data/demo --run logs/direct --target perception
    drive evaluate --policy logs/direct/best.pt       # a perception checkpoint drives this way
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from driving.data import DatasetError, Frames, scan
from driving.data.read import read_steps
from driving.learn.checkpoint import CheckpointError, build_model, load_checkpoint, stored_world
from driving.learn.model import CHOOSING, CONTROLS
from driving.learn.policy import NetPolicy
from driving.modular.driver import LaneControl
from envs.expert import ExpertConfig
from envs.winding import SIMULATION_FREQUENCY

POSE = ("lateral_offset", "heading_error")
"""The per-step ground truth of every episode the net predicts first, in this order."""
CURVATURE = "curvature_ahead"
"""The episode array of the lane's curvature ahead (`driving.data.format`)."""
LEADER = "leader"
"""The episode array of the car ahead, traffic only (`driving.data.format`)."""
LEADER_OUTPUTS = ("gap_ahead", "closing_speed")
"""The net's outputs for the car ahead, last: gap [m], closing speed [m/s]."""
MIN_STD = 1e-6
"""Floor of an output's standard deviation (a quantity constant in the data is not blown up)."""


def output_names(distances: list[float], leader: bool = False) -> tuple[str, ...]:
    """The net's outputs: the pose, then the curvature at each of `distances` [m], then with
    `leader` the car ahead."""
    return (*POSE, *(f"curvature_{d:g}m" for d in distances), *(LEADER_OUTPUTS if leader else ()))


def _episode_targets(path: Path) -> tuple[np.ndarray, tuple]:
    """(T, 2 + K [+ 2]) raw targets of one episode file and what they are: (curvature distances
    [m], the car ahead's range [m] or None on a road without traffic)."""
    steps, meta = read_steps(path)
    distances = meta.get("curvature_ahead_m")
    if CURVATURE not in steps or not isinstance(distances, list):
        raise DatasetError(
            f"{path} has no lane curvature labels (recorded before 2026-12-03, by DAgger before "
            "2026-12-07, or by the keyboard): --target perception needs a dataset from `drive "
            "collect`"
        )
    if steps[CURVATURE].shape[1] != len(distances):
        raise DatasetError(f"{path}: curvature_ahead does not match meta.curvature_ahead_m")
    pose = np.stack([steps[name] for name in POSE], axis=1)
    parts = [pose, steps[CURVATURE]]
    leader_range = meta.get("leader_range_m") if LEADER in steps else None
    if leader_range is not None:
        parts.append(steps[LEADER])
    kind = ([float(d) for d in distances], leader_range)
    return np.concatenate(parts, axis=1), kind


def _targets(paths: list[Path], frames: Frames, kind: tuple | None):
    """(N, 2 + K [+ 2]) raw targets for the rows of `frames` (episode by episode, in their
    order), and what all of them hold (`_episode_targets`; None if `frames` is empty and none
    was given)."""
    if not len(frames):  # e.g. no validation set
        width = 0 if kind is None else len(output_names(kind[0], kind[1] is not None))
        return np.zeros((0, width), np.float32), kind
    parts = []
    starts = np.flatnonzero(np.r_[True, frames.episode[1:] != frames.episode[:-1]])
    for start, end in zip(starts, [*starts[1:], len(frames)], strict=True):
        path = paths[int(frames.episode[start])]
        values, found = _episode_targets(path)
        if kind is not None and found != kind:
            raise DatasetError(
                f"{path} records (curvature distances [m], car-ahead range [m]) {found}, other "
                f"episodes {kind}: train on episodes of one collection setting"
            )
        kind = found
        if len(values) != end - start:
            raise DatasetError(f"{path} changed while loading: train again")
        parts.append(values)
    return np.concatenate(parts), kind


def perception_targets(data: Path, train: Frames, val: Frames) -> tuple[Frames, Frames, dict]:
    """The training and validation sets with the lane quantities, normalised, as their labels.

    Args:
        data: the dataset folder `train` and `val` were loaded from (`load_split`).
        train, val: its training and validation frames (labels: the expert's controls).

    Returns:
        (train, val, record): the same frames labelled with (lateral offset, heading error,
        curvature at each distance[, gap and closing speed to the car ahead]), each minus its
        training mean over its training std; the record {"outputs", "distances_m", "mean",
        "std"[, "leader_range_m"]} that the checkpoint keeps.

    Raises:
        DatasetError: an episode holds no curvature labels, or episodes disagree on them.
    """
    paths = scan(data)[0]  # Frames.episode indexes this list
    raw_train, kind = _targets(paths, train, None)
    raw_val, _ = _targets(paths, val, kind)
    distances, leader_range = kind
    mean = raw_train.mean(0)
    std = np.maximum(raw_train.std(0), MIN_STD)
    record = {
        "outputs": list(output_names(distances, leader_range is not None)),
        "distances_m": distances,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }
    if leader_range is not None:
        record["leader_range_m"] = float(leader_range)

    def normalised(frames: Frames, raw: np.ndarray) -> Frames:
        return replace(frames, labels=((raw - mean) / std).astype(np.float32))

    return normalised(train, raw_train), normalised(val, raw_val), record


@dataclass(frozen=True)
class LaneProfile:
    """The lane state a direct-perception net predicts in one frame."""

    lateral_offset: float
    """car's centre from the lane centre [m], positive right"""
    heading_error: float
    """car's heading minus the lane's [rad], positive right"""
    distances: tuple[float, ...]
    """where ahead the curvature is predicted [m], ascending from 0"""
    curvatures: tuple[float, ...]
    """the lane's curvature at each of `distances` [1/m], positive turning right"""
    leader: tuple[float, float] | None = None
    """the car ahead in traffic: (gap [m], closing speed [m/s]); None: not predicted"""

    @property
    def curvature(self) -> float:
        """The lane's curvature at the car [1/m]."""
        return self.curvature_at(0.0)

    def curvature_at(self, distance: float) -> float:
        """The curvature `distance` [m] ahead [1/m]: linear between the predicted distances,
        the last one's beyond them."""
        return float(np.interp(distance, self.distances, self.curvatures))

    def as_dict(self) -> dict[str, float]:
        """The quantities of the ground truth in `info` that this estimates."""
        lane = {
            "lateral_offset": self.lateral_offset,
            "heading_error": self.heading_error,
            "curvature": self.curvature,
        }
        if self.leader is None:
            return lane
        return {**lane, **dict(zip(LEADER_OUTPUTS, self.leader, strict=True))}


class DirectDriver:
    """Direct-perception driver: `act(obs)` -> [steering, throttle] from the frame and the
    speedometer, through the net's lane state and the expert's control law."""

    def __init__(
        self,
        net: NetPolicy,
        record: dict,
        config: ExpertConfig = ExpertConfig(),
        frequency: float = SIMULATION_FREQUENCY,
    ) -> None:
        """Args: net: the perception net behind the policy interface (frame checks, stacking);
        record: its checkpoint's `extra["perception"]` (`perception_targets`); config: the
        expert's gains; frequency: how often it acts [Hz]."""
        self.net = net
        self.world = net.world
        """The world the network learned in: render its frames with `world.camera`."""
        self.distances = tuple(float(d) for d in record["distances_m"])
        self.traffic = "leader_range_m" in record
        """it predicts the car ahead (trained in traffic) and follows it"""
        self._mean = np.asarray(record["mean"], np.float64)
        self._std = np.asarray(record["std"], np.float64)
        self.control = LaneControl(config, frequency, reach=self.distances[-1])
        self.reset()

    @property
    def model(self) -> torch.nn.Module:
        """The perception net (a PilotNet with the lane quantities as outputs)."""
        return self.net.model

    @property
    def net_input(self) -> torch.Tensor:
        """What the net sees for the latest observation (`NetPolicy.net_input`)."""
        return self.net.net_input

    def reset(self) -> None:
        """A new road: forget the frames and the last command."""
        self.net.reset()
        self.control.steering = 0.0
        self.lane: LaneProfile | None = None
        self.estimate: dict[str, float] | None = None
        """The quantities predicted from the last frame (`LaneProfile.as_dict`); None before."""
        self._speed = 0.0

    def observe(self, obs: dict) -> None:
        """Perceive a frame without driving it (the expert drove): the estimate is still logged."""
        self._perceive(obs)
        self.control.steering = 0.0  # the expert's command is not known to this driver

    def act(self, obs: dict) -> np.ndarray:
        """[steering, throttle] in [-1, 1] for the frame and speed of `obs`."""
        self._perceive(obs)
        return self.predict()

    def predict(self) -> np.ndarray:
        """The command for the latest observation (`act` = perceive it, then this)."""
        return self.control.act(self.lane, self._speed, self.lane.leader)

    def _perceive(self, obs: dict) -> LaneProfile:
        self.net.observe(obs)
        self._speed = float(np.asarray(obs["speed"]).reshape(-1)[0])
        values = (self.net.output().astype(np.float64) * self._std + self._mean).tolist()
        pose, rest = values[: len(POSE)], values[len(POSE) :]
        curvatures = tuple(rest[: len(self.distances)])
        leader = tuple(rest[len(self.distances) :]) if self.traffic else None
        self.lane = LaneProfile(*pose, self.distances, curvatures, leader)
        self.estimate = self.lane.as_dict()
        return self.lane


def load_driver(
    path: str | Path, device: str = "cpu", frequency: float = SIMULATION_FREQUENCY
) -> NetPolicy | DirectDriver:
    """The policy of a checkpoint from `drive train`: a `NetPolicy` for an end-to-end net, a
    `DirectDriver` for a perception net (`--target perception`).

    Raises:
        CheckpointError: the file is not a usable checkpoint (one line).
    """
    ckpt = load_checkpoint(path)
    net = NetPolicy(build_model(ckpt, source=path), device, stored_world(ckpt, source=path))
    record = ckpt["extra"].get("perception")
    outputs = net.model.config.outputs
    if record is None and outputs in (CONTROLS, CHOOSING):
        return net
    try:
        names = output_names(record["distances_m"], "leader_range_m" in record)
        ok = tuple(record["outputs"]) == outputs == names
        ok = ok and len(record["mean"]) == len(record["std"]) == len(outputs)
    except (TypeError, KeyError):
        ok = False
    if not ok:
        raise CheckpointError(
            f"checkpoint {path} predicts {list(outputs)} without a matching perception record: "
            "train it again with `drive train --target perception`"
        )
    return DirectDriver(net, record, frequency=frequency)
