"""Traffic metrics, from per-step records of one episode (pure functions, no simulator).

Definitions (the README repeats them):
- collisions per km: vehicle collisions (a step where `crashed` turns true) per km driven,
  summed over episodes before dividing (a fleet rate, not a mean of per-episode rates); each
  counted by kind too, as seen from the ego at that step (`envs.traffic.TrafficEnv.collision`):
  into the car ahead, with a car alongside, or hit from behind.
- headway under 1 s [share of time]: steps whose time headway to the car ahead in the ego's lane is
  under 1 s, over all steps (a step with no car ahead, or stopped, has an infinite headway).
- lane changes per km: changes of the ego's lane (its centre crossing a lane line) per km.
- driving score (CARLA leaderboard style): route completion x 0.60 per vehicle collision x 0.65 per
  departure from the road (CARLA's factor for hitting the static scenery: here the road's edge);
  route completion is the share of the road driven, 1 when its end is reached.
- speed ratio: mean speed over the mean speed of a reference driver (the expert) [-].
"""

from __future__ import annotations

import numpy as np

from envs.traffic import COLLISION_KINDS

HEADWAY_LIMIT = 1.0  # [s]
VEHICLE_COLLISION_PENALTY = 0.60
OFF_ROAD_PENALTY = 0.65
TRAFFIC_KEYS = (
    "crashed",
    "collision",
    "on_road",
    "time_headway",
    "lane_changes",
    "distance",
    "speed",
)
"""Per-step `info` values `traffic_episode_metrics` reads."""


def events(flags: np.ndarray) -> int:
    """Number of times a boolean signal turns true (a run of true counts once)."""
    flags = np.asarray(flags, dtype=bool)
    if flags.size == 0:
        return 0
    return int(flags[0]) + int(np.sum(flags[1:] & ~flags[:-1]))


def per_km(count: float, distance_m: float) -> float:
    """A count per km driven; 0 when nothing was driven."""
    return float(count / (distance_m / 1000.0)) if distance_m > 0 else 0.0


def headway_under_share(time_headway: np.ndarray, limit: float = HEADWAY_LIMIT) -> float:
    """Share of steps with a time headway under `limit` [s]; 0 for an empty record."""
    time_headway = np.asarray(time_headway, dtype=float)
    return float(np.mean(time_headway < limit)) if time_headway.size else 0.0


def route_completion(progress_m: float, route_m: float, reached_end: bool) -> float:
    """Share of the route driven, in [0, 1]."""
    if reached_end:
        return 1.0
    return float(np.clip(progress_m / route_m, 0.0, 1.0)) if route_m > 0 else 0.0


def driving_score(completion: float, vehicle_collisions: int, off_road: int) -> float:
    """CARLA-style driving score: route completion x infraction penalties, in [0, 1]."""
    return float(
        completion * VEHICLE_COLLISION_PENALTY**vehicle_collisions * OFF_ROAD_PENALTY**off_road
    )


def speed_ratio(mean_speed: float, reference_mean_speed: float) -> float:
    """Mean speed over a reference driver's [-]; nan without a reference."""
    return float(mean_speed / reference_mean_speed) if reference_mean_speed > 0 else float("nan")


def traffic_episode_metrics(
    record: dict[str, np.ndarray], progress_m: float, route_m: float, reached_end: bool
) -> dict:
    """Traffic metrics of one episode.

    Args:
        record: per-step arrays named as in `TRAFFIC_KEYS` (one value per policy step;
            `lane_changes` and `distance` are running totals).
        progress_m: how far along the road the episode ended [m].
        route_m: the route's length [m] (where `reached_end` would become true).
        reached_end: whether the end of the road was reached.
    """
    steps = len(record["speed"])
    distance = float(record["distance"][-1]) if steps else 0.0
    crashed = np.asarray(record["crashed"], dtype=bool)
    onsets = crashed & ~np.r_[False, crashed[:-1]]  # where each collision begins
    collisions = int(onsets.sum())
    kinds = [str(kind) for kind in np.asarray(record["collision"])[onsets]]
    off_road = events(~np.asarray(record["on_road"], dtype=bool))
    lane_changes = int(record["lane_changes"][-1]) if steps else 0
    completion = route_completion(progress_m, route_m, reached_end)
    return {
        "steps": steps,
        "distance_m": distance,
        "collisions": collisions,
        "collision_kinds": {kind: kinds.count(kind) for kind in COLLISION_KINDS},
        "off_road": off_road,
        "clean": collisions == 0 and off_road == 0,
        "lane_changes": lane_changes,
        "headway_steps_under": int(np.sum(np.asarray(record["time_headway"]) < HEADWAY_LIMIT)),
        "headway_under_share": headway_under_share(record["time_headway"]),
        "mean_speed": float(np.mean(record["speed"])) if steps else 0.0,
        "route_completion": completion,
        "driving_score": driving_score(completion, collisions, off_road),
    }


def summarize_traffic(episodes: list[dict]) -> dict:
    """Fleet figures over episodes from `traffic_episode_metrics`."""
    if not episodes:
        raise ValueError("no episodes to summarize")
    distance = sum(e["distance_m"] for e in episodes)
    steps = sum(e["steps"] for e in episodes)
    return {
        "episodes": len(episodes),
        "clean_share": float(np.mean([e["clean"] for e in episodes])),
        "collisions_per_km": per_km(sum(e["collisions"] for e in episodes), distance),
        **{
            f"collisions_{kind}": sum(e["collision_kinds"][kind] for e in episodes)
            for kind in COLLISION_KINDS
        },
        "headway_under_share": sum(e["headway_steps_under"] for e in episodes) / max(steps, 1),
        "lane_changes_per_km": per_km(sum(e["lane_changes"] for e in episodes), distance),
        "mean_speed": sum(e["mean_speed"] * e["steps"] for e in episodes) / max(steps, 1),
        "driving_score": float(np.mean([e["driving_score"] for e in episodes])),
        "km": distance / 1000.0,
    }
