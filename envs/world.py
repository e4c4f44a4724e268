"""The simulated world's front door: a scenario by name, seen through the camera, and its expert.

    env = make_env("winding-road")  # or "winding-traffic", "highway-v0", "racetrack-v1", ...
    expert = make_expert(env)       # the expert that can drive it
    obs, info = env.reset(seed=3)   # obs = {"image": (66, 200, 3) uint8, "speed": (1,) [m/s],
                                    #        "speed_limit": (1,) [m/s] of the ego's lane}
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

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import gymnasium as gym

from envs.camera import CameraConfig
from envs.expert import Expert
from envs.road import WIDE_ROADS, RoadSettings
from envs.traffic import TRAFFIC_ENVS, TrafficEnv, parse_density
from envs.traffic_expert import TrafficExpert
from envs.winding import (
    ACTION_CONFIG,
    CHEAP_OBSERVATION,
    STARTS,
    STEERING_RANGE,
    WindingRoadEnv,
    action_config,
    steering_range,
)
from envs.wrapper import DrivingWrapper

SCENARIO = "winding-road"
STEERING_DEG = round(math.degrees(STEERING_RANGE), 6)  # 15.0

TRAFFIC_SCENARIOS = ("winding-traffic", "highway-traffic")


NO_CARS = "none"
"""The density of a highway-env scenario without its other cars (its vehicles_count and
other_vehicles set to 0)."""
HIGHWAY_ENV_PHYSICS = {"simulation_frequency": 10, "policy_frequency": 10}
"""highway-env's scenarios run at the project's rate: simulation and policy at 10 Hz."""


def scenario_config(scenario: str, density: str = "default") -> dict[str, Any]:
    """`make_env` config entries for a scenario: the traffic density where there is traffic;
    none of highway-env's own cars for a highway-env scenario of density 'none'.

    Raises:
        ValueError: a density other than the default for a scenario without traffic, or a
            density that is neither a level name nor a number of vehicles/km/lane.
    """
    if scenario in TRAFFIC_SCENARIOS:
        return {"density": parse_density(density)}
    if scenario != SCENARIO and density == NO_CARS:
        return {"vehicles_count": 0, "other_vehicles": 0}
    if density != "default":
        allowed = f"the traffic scenarios {list(TRAFFIC_SCENARIOS)}"
        raise ValueError(
            f"--density is for {allowed} (and {NO_CARS!r} for highway-env's), not {scenario!r}"
        )
    return {}


def scenario_road(scenario: str, road: RoadSettings) -> RoadSettings:
    """The road settings a world's roads are drawn from: `road`'s changes from `RoadSettings()`
    on top of the scenario's own (the traffic scenarios': 2-3 lanes, the highway's straight
    road), so that e.g. `--road.limit-range 8 22` in traffic keeps the traffic roads."""
    env = TRAFFIC_ENVS.get(scenario)
    if env is None:
        return road
    default = RoadSettings()
    changed = {
        f.name: getattr(road, f.name)
        for f in fields(RoadSettings)
        if getattr(road, f.name) != getattr(default, f.name)
    }
    return replace(env.default_config()["road"], **changed)


def make_expert(env: gym.Env):
    """The expert for `env`'s scenario: `TrafficExpert` among other cars, else the lane keeper."""
    return TrafficExpert(env) if isinstance(env.unwrapped, TrafficEnv) else Expert(env)


def make_env(
    scenario: str = SCENARIO,
    camera: CameraConfig = CameraConfig(),
    render_mode: str | None = None,
    **config: Any,
) -> DrivingWrapper:
    """Build a scenario with the camera wrapper.

    Args:
        scenario: "winding-road", "winding-traffic", "highway-traffic" (ours) or any registered
            highway-env id ("highway-v0", ...).
        camera: camera settings.
        render_mode: None, or "rgb_array": `render()` returns the camera frame.
        **config: highway-env config entries that override the scenario's defaults.

    Raises:
        ValueError: unknown scenario name or render mode.
    """
    check_scenario(scenario)
    if scenario == SCENARIO:
        base: gym.Env = WindingRoadEnv(config=config)
    elif scenario in TRAFFIC_SCENARIOS:
        base = TRAFFIC_ENVS[scenario](config=config)
    else:
        config = {
            "observation": CHEAP_OBSERVATION,
            "action": ACTION_CONFIG,
            **HIGHWAY_ENV_PHYSICS,
            **config,
        }
        base = gym.make(scenario, config=config).unwrapped
    base.enable_auto_render = False  # highway-env would redraw on every sub-step
    env = DrivingWrapper(base, camera, render_mode)
    # What this env is, as far as the entries given say (`make_world` records the exact World).
    density = config.get("density", "default")
    start, road = config.get("start", "beginning"), config.get("road", RoadSettings())
    steering = round(math.degrees(steering_range(base)), 6)
    duration = config.get("duration") or 0.0
    env.world = World(scenario, str(density), start, camera, road, duration, steering)
    return env


def check_scenario(scenario: str) -> None:
    """ValueError naming the known scenarios if `scenario` is none of them."""
    if scenario in (SCENARIO, *TRAFFIC_SCENARIOS) or scenario in gym.registry:
        return
    known = ", ".join(
        sorted(
            k for k in gym.registry if "-v" in k and "highway" in str(gym.registry[k].entry_point)
        )
    )
    ours = ", ".join(repr(name) for name in (SCENARIO, *TRAFFIC_SCENARIOS))
    raise ValueError(f"unknown scenario {scenario!r}; use {ours} or one of: {known}")


@dataclass(frozen=True)
class World:
    """Everything that decides what a policy sees and drives: one typed record, built by
    `make_world`, written into every episode and every checkpoint, read back by every command.

        world = World(scenario="winding-traffic", density="dense")
        env, expert = make_world(world)
    """

    scenario: str = SCENARIO
    """'winding-road', 'winding-traffic', 'highway-traffic' (other cars; the traffic expert
    drives) or a highway-env scenario id such as 'highway-v0'"""
    density: str = "default"
    """traffic density of the traffic scenarios: light, default, dense or vehicles/km/lane"""
    start: Literal["beginning", "anywhere", "bend"] = "beginning"
    """where each road's drive starts: its beginning, a point drawn along it, or 60 to 120 m
    before its sharpest arc (both seeded by the road; winding-road only): short drives of many
    roads then cover bends, not first straights"""
    camera: CameraConfig = CameraConfig()
    """camera settings"""
    road: RoadSettings = RoadSettings()
    """the ranges every road is drawn from (the winding scenarios; in traffic, the settings
    changed from the defaults apply to the traffic scenario's own roads: `scenario_road`)"""
    duration_s: float = 0.0
    """how long a drive may last [s]; 0: the scenario's own (our roads: twice the time at the
    limit; highway-env's: its `duration`). highway-env's scenarios have no end: a drive that
    lasts this long without crashing has finished"""
    steering_deg: float = STEERING_DEG
    """the steering angle at action +-1 [deg]: 15 spreads the labels over the range on roads
    whose bends are 40 m or wider; the car then turns no tighter than about 19 m (highway-env's
    bicycle, 5 m long), so tighter bends and the racetracks need more (30: about 9 m)"""

    def validate(self) -> World:
        """Check every setting once, with a one-line ValueError naming the bad one; returns self."""
        check_scenario(self.scenario)
        scenario_config(self.scenario, self.density)  # density: a level name or a number
        if self.start not in STARTS:
            raise ValueError(f"--start must be one of {STARTS}, got {self.start!r}")
        if self.start != "beginning" and self.scenario != SCENARIO:
            raise ValueError(f"--start {self.start} is for {SCENARIO!r}, not {self.scenario!r}")
        if not 1 <= self.steering_deg <= 60:
            raise ValueError(f"--steering-deg must be in [1, 60] deg, got {self.steering_deg}")
        if not self.duration_s >= 0:
            raise ValueError(f"--duration-s must be >= 0 s, got {self.duration_s}")
        self.camera.validate()
        self.road.validate()
        return self

    def env_config(self) -> dict[str, Any]:
        """highway-env config entries of this world (only those that differ from the defaults)."""
        config = scenario_config(self.scenario, self.density)
        if self.start != "beginning":
            config["start"] = self.start
        if self.road != RoadSettings():
            config["road"] = scenario_road(self.scenario, self.road)
        if self.duration_s:
            config["duration"] = self.duration_s
        if self.steering_deg != STEERING_DEG:
            config["action"] = action_config(math.radians(self.steering_deg))
        return config

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (episode metadata, checkpoints); `World.from_dict` reads it back."""
        return json.loads(json.dumps(asdict(self)))  # tuples -> lists

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> World:
        """The World of `to_dict`'s output; keys it lacks take their defaults (older files).

        Raises:
            ValueError: a value of the wrong type or an unknown setting, in one line.
        """
        try:
            camera = _settings(CameraConfig, data.get("camera", {}))
            road = _settings(RoadSettings, data.get("road", {}))
            plain = {k: str(data[k]) for k in ("scenario", "density", "start") if k in data}
            numbers = {k: float(data[k]) for k in ("duration_s", "steering_deg") if k in data}
            return cls(**plain, camera=camera, road=road, **numbers)
        except (TypeError, ValueError) as error:
            raise ValueError(f"not a world description ({error}): {data!r}") from None


def _settings(kind: type, values: Any):
    """A settings dataclass from a dict, lists turned back into tuples, unknown keys refused."""
    if not isinstance(values, dict):
        raise TypeError(f"{kind.__name__} must be a dict, got {type(values).__name__}")
    names = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TypeError(f"unknown {kind.__name__} settings {unknown}")
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def make_world(world: World = World(), **config: Any) -> tuple[DrivingWrapper, Expert]:
    """Build the env of `world` and its expert: the one place every command builds a world.

    Args:
        world: the world description.
        **config: highway-env config entries on top of the world's (e.g. terminate_off_road).

    Returns:
        (the env with its camera, the expert for it: `TrafficExpert` among other cars).
    """
    env = make_env(world.scenario, world.camera, **world.env_config(), **config)
    env.world = world
    return env, make_expert(env)


GYM_IDS = {
    SCENARIO: "WindingRoad-v0",
    "winding-traffic": "WindingTraffic-v0",
    "highway-traffic": "HighwayTraffic-v0",
}
"""The gymnasium id of each of our scenarios (registered by `envs`)."""


def world_spec(world: World) -> gym.envs.registration.EnvSpec | None:
    """The gymnasium spec that rebuilds `world`: its scenario's id with the World as a JSON
    kwarg (`gymnasium.make(spec)` builds it; datasets record it). None for highway-env's ids."""
    if world.scenario not in GYM_IDS:
        return None
    spec = gym.spec(GYM_IDS[world.scenario])
    return replace(spec, kwargs={**spec.kwargs, "world": world.to_dict()})


def _make_registered(
    scenario: str,
    camera: CameraConfig,
    render_mode: str | None,
    world: dict | None,
    config: dict[str, Any],
) -> DrivingWrapper:
    """The gymnasium entry points' work: the scenario, or the World given as a dict."""
    if world is None:
        return make_env(scenario, camera, render_mode, **config)
    described = World.from_dict(world).validate()
    if described.scenario != scenario:
        raise ValueError(f"world of scenario {described.scenario!r} given to {GYM_IDS[scenario]}")
    env = make_env(scenario, described.camera, render_mode, **described.env_config(), **config)
    env.world = described
    return env


def make_winding_road(
    camera: CameraConfig = CameraConfig(),
    render_mode: str | None = None,
    world: dict | None = None,
    **config: Any,
) -> DrivingWrapper:
    """gymnasium entry point of `WindingRoad-v0`; `world`: a `World.to_dict()` (its camera and
    settings replace `camera`)."""
    return _make_registered(SCENARIO, camera, render_mode, world, config)


def make_winding_traffic(
    camera: CameraConfig = CameraConfig(),
    render_mode: str | None = None,
    world: dict | None = None,
    **config: Any,
) -> DrivingWrapper:
    """gymnasium entry point of `WindingTraffic-v0` (`world`: as `make_winding_road`)."""
    return _make_registered("winding-traffic", camera, render_mode, world, config)


def make_highway_traffic(
    camera: CameraConfig = CameraConfig(),
    render_mode: str | None = None,
    world: dict | None = None,
    **config: Any,
) -> DrivingWrapper:
    """gymnasium entry point of `HighwayTraffic-v0` (`world`: as `make_winding_road`)."""
    return _make_registered("highway-traffic", camera, render_mode, world, config)


WIDE_WORLD = World(road=WIDE_ROADS, steering_deg=30.0)
"""The winding roads of the wide training ranges (`envs.road.WIDE_ROADS`), steering up to 30 deg
so that the car can take their 15 m bends (it turns down to about 9 m)."""
