"""The simulated world's front door: a scenario by name, seen through the camera, and its expert.

    env = make_env("winding-road")  # or "winding-traffic", "highway-v0", "racetrack-v1", ...
    expert = make_expert(env)       # the expert that can drive it
    obs, info = env.reset(seed=3)   # obs = {"image": (66, 200, 3) uint8, "speed": (1,) [m/s]}
    obs, reward, terminated, truncated, info = env.step([steering, throttle])   # both in [-1, 1]

The scenarios are `envs.winding` (one car on a winding road), `envs.traffic` (among other cars,
winding or on a straight highway) and any highway-env id; `envs.wrapper` adds the camera. The
gymnasium ids WindingRoad-v0, WindingTraffic-v0 and HighwayTraffic-v0 (registered by `envs`)
are built here.

`info` carries the per-step ground truth the metrics need: lateral_offset [m],
heading_error [rad], on_road, crashed, distance [m] travelled, progress [m] along the road,
speed [m/s], speed_limit [m/s], curvature [1/m] of the ego's lane.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.camera import CameraConfig
from envs.expert import Expert
from envs.traffic import TRAFFIC_ENVS, TrafficEnv, parse_density
from envs.traffic_expert import TrafficExpert
from envs.winding import ACTION_CONFIG, CHEAP_OBSERVATION, WindingRoadEnv
from envs.winding import FINISH_MARGIN as FINISH_MARGIN  # re-exported: driving imports it here
from envs.wrapper import DrivingWrapper

SCENARIO = "winding-road"
TRAFFIC_SCENARIOS = ("winding-traffic", "highway-traffic")


def scenario_config(scenario: str, density: str = "default") -> dict[str, Any]:
    """`make_env` config entries for a scenario: the traffic density where there is traffic.

    Raises:
        ValueError: a density other than the default for a scenario without traffic, or a
            density that is neither a level name nor a number of vehicles/km/lane.
    """
    if scenario not in TRAFFIC_SCENARIOS:
        if density != "default":
            raise ValueError(
                f"--density is for the traffic scenarios {list(TRAFFIC_SCENARIOS)}, "
                f"not {scenario!r}"
            )
        return {}
    return {"density": parse_density(density)}


def make_expert(env: gym.Env):
    """The expert for `env`'s scenario: `TrafficExpert` among other cars, else the lane keeper."""
    return TrafficExpert(env) if isinstance(env.unwrapped, TrafficEnv) else Expert(env)


def make_env(
    scenario: str = SCENARIO, camera: CameraConfig = CameraConfig(), **config: Any
) -> DrivingWrapper:
    """Build a scenario with the camera wrapper.

    Args:
        scenario: "winding-road", "winding-traffic", "highway-traffic" (ours) or any registered
            highway-env id ("highway-v0", ...).
        camera: camera settings.
        **config: highway-env config entries that override the scenario's defaults.

    Raises:
        ValueError: unknown scenario name.
    """
    if scenario == SCENARIO:
        base: gym.Env = WindingRoadEnv(config=config)
    elif scenario in TRAFFIC_SCENARIOS:
        base = TRAFFIC_ENVS[scenario](config=config)
    else:
        if scenario not in gym.registry:
            known = ", ".join(
                sorted(
                    k
                    for k in gym.registry
                    if "-v" in k and "highway" in str(gym.registry[k].entry_point)
                )
            )
            ours = ", ".join(repr(name) for name in (SCENARIO, *TRAFFIC_SCENARIOS))
            raise ValueError(f"unknown scenario {scenario!r}; use {ours} or one of: {known}")
        config = {"observation": CHEAP_OBSERVATION, "action": ACTION_CONFIG, **config}
        base = gym.make(scenario, config=config).unwrapped
    base.enable_auto_render = False  # highway-env would redraw on every sub-step
    return DrivingWrapper(base, camera)


def make_winding_road(camera: CameraConfig = CameraConfig(), **config: Any) -> DrivingWrapper:
    """gymnasium entry point of `WindingRoad-v0`."""
    return make_env(SCENARIO, camera, **config)


def make_winding_traffic(camera: CameraConfig = CameraConfig(), **config: Any) -> DrivingWrapper:
    """gymnasium entry point of `WindingTraffic-v0`."""
    return make_env("winding-traffic", camera, **config)


def make_highway_traffic(camera: CameraConfig = CameraConfig(), **config: Any) -> DrivingWrapper:
    """gymnasium entry point of `HighwayTraffic-v0`."""
    return make_env("highway-traffic", camera, **config)
