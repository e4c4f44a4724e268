"""Who drives, and where: a policy named on the command line, and the world it is driven in.

    world = policy_world("logs/demo/run/best.pt")                  # the world it was trained in
    world = policy_world("logs/demo/run/best.pt", density="dense")   # ... with denser traffic
    env, policy, expert = drivers("logs/demo/run/best.pt", world, terminate_off_road=False)

Evaluation, `drive watch`, `drive saliency` and DAgger all choose their world here, so a policy
is measured, watched and explained in the world it learned in unless the user says otherwise.
Besides checkpoints, two drivers are built in: 'expert' (privileged, drives from ground truth)
and 'modular' (hand-built, drives from the camera frame: `driving.modular`); they drive the
default world, with the camera that `camera` names. A checkpoint of a direct-perception net
(`drive train --target perception`) drives as a `driving.learn.perception.DirectDriver`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from driving.learn.perception import DirectDriver, load_driver
from driving.learn.policy import NetPolicy
from driving.learn.state import resolve_device
from driving.modular.driver import ModularDriver
from envs.camera import CameraConfig
from envs.expert import Expert
from envs.winding import SIMULATION_FREQUENCY, steering_range
from envs.world import TRAFFIC_SCENARIOS, World, make_world
from envs.wrapper import DrivingWrapper

EXPERT = "expert"
"""The policy name of the privileged expert (no checkpoint)."""
MODULAR = "modular"
"""The policy name of the hand-built driver (`driving.modular`, no checkpoint)."""
BUILT_IN = (EXPERT, MODULAR)
CAMERAS = {"topdown": CameraConfig(), "dashcam": CameraConfig(kind="dashcam", appearance="train")}
"""The cameras a built-in driver can be given by name: the top-down one, the demo's dashcam."""


def load_policy(
    spec: str, device: str = "cpu", frequency: float = SIMULATION_FREQUENCY
) -> NetPolicy | DirectDriver | None:
    """The policy of checkpoint `spec` on `device` ('auto', 'cpu', 'cuda', 'cuda:N'): a
    `DirectDriver` for a direct-perception net, acting at `frequency` [Hz]; None for a built-in
    driver ('expert', 'modular').

    Raises:
        ValueError: `spec` is neither a built-in driver nor a readable checkpoint (one line).
    """
    if spec in BUILT_IN:
        return None
    if not Path(spec).is_file():
        raise ValueError(f"policy {spec!r} is neither 'expert', 'modular' nor a checkpoint file")
    return load_driver(spec, device=resolve_device(device), frequency=frequency)


def policy_world(
    spec: str, scenario: str = "", density: str = "", appearance: str = "", camera: str = ""
) -> World:
    """The world to drive policy `spec` in: the one its checkpoint records (the default World for
    a built-in driver, with the camera `camera` names), in `scenario`, `density` and the camera's
    `appearance` where given (another scenario starts from the default density). Drives start at
    each road's beginning, whatever rule collection used.

    Raises:
        ValueError: a bad policy, scenario, density or camera (one line).
    """
    net = load_policy(spec)
    world = World() if net is None else net.world
    if camera:
        if net is not None:
            raise ValueError("--camera is for 'expert' and 'modular'; a network drives its own")
        if camera not in CAMERAS:
            raise ValueError(f"--camera must be one of {list(CAMERAS)}, got {camera!r}")
        world = replace(world, camera=CAMERAS[camera])
    if scenario and scenario != world.scenario:
        world = replace(world, scenario=scenario, density="default")
    if density:
        world = replace(world, density=density)
    if appearance:
        world = replace(world, camera=replace(world.camera, appearance=appearance))
    return replace(world, start="beginning").validate()


def drivers(
    spec: str, world: World, device: str = "cpu", **config: Any
) -> tuple[DrivingWrapper, NetPolicy | DirectDriver | ModularDriver | Expert, Expert]:
    """(env, policy, expert) for driving policy `spec` in `world`, a network running on `device`;
    the expert is the safety driver and, for 'expert', the policy too. `config`: highway-env
    entries (terminate_off_road...)."""
    env, expert = make_world(world, **config)
    frequency = env.unwrapped.config["policy_frequency"]
    if spec == MODULAR:
        traffic = world.scenario in TRAFFIC_SCENARIOS
        policy = ModularDriver(world.camera, frequency=frequency, traffic=traffic)
    else:
        policy = load_policy(spec, device, frequency) or expert
    if hasattr(policy, "control"):  # the expert's control law: the world's steering range
        policy.control.steering_range = steering_range(env)
    return env, policy, expert
