"""Winding roads generated from a seed, built from highway-env lane segments.

Every seed gives a different road: a chain of straight segments (`StraightLane`) and arcs
(`CircularLane`, each under 180 deg), with 1 to 3 lanes of one width. The heading is kept within
`max_heading` of the first segment's, so the road always advances and never crosses itself.
`SineLane` is not used: highway-env measures its lateral offset from the chord, not the curve,
which would corrupt the lane-offset metrics.

Ranges (stated once, here; `RoadSettings` holds them):
    lanes            1 to 3
    lane width       3.2 to 4.0 m
    arc radius       40 to 250 m (measured on the innermost lane)
    arc angle        15 to 100 deg
    straight length  20 to 120 m
    road length      at least 1,000 m
    speed limit      15 m/s (or drawn per road from `RoadSettings.limit_range`)

`WIDE_ROADS` widens them for policies that must carry over to roads unlike the default ones:
1 to 4 lanes of 2.8 to 5.0 m, arcs down to 15 m (log-uniform: a third of them under 40 m),
S-bends (an arc at once followed by one the other way) and bends that tighten (an arc followed by
a tighter one the same way), and a speed limit that the camera shows: it follows the lane width,
as on self-explaining roads (narrow lanes are slow roads), `RoadSettings.limit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from highway_env.road.lane import AbstractLane, CircularLane, LineType, StraightLane
from highway_env.road.road import RoadNetwork


@dataclass(frozen=True)
class RoadSettings:
    """The ranges from which every road is drawn."""

    min_length: float = 1000.0
    """shortest road, measured along the leftmost lane [m]"""
    lanes: tuple[int, int] = (1, 3)
    """fewest and most lanes"""
    lane_width: tuple[float, float] = (3.2, 4.0)
    """lane width range [m]"""
    radius: tuple[float, float] = (40.0, 250.0)
    """arc radius range, innermost lane [m]"""
    radius_log: bool = False
    """draw the radius log-uniformly (as many bends of 15-40 m as of 40-107 m) instead of
    uniformly"""
    arc_angle: tuple[float, float] = (15.0, 100.0)
    """arc angle range [deg]"""
    straight: tuple[float, float] = (20.0, 120.0)
    """straight segment length range [m]"""
    straight_share: float = 0.3
    """probability that the next segment is straight"""
    max_heading: float = 80.0
    """the road's heading stays within this of its start, so it never crosses itself [deg]"""
    speed_limit: float = 15.0
    """speed limit on every lane [m/s] (with `limit_follows_width`: at a lane width of 3.6 m)"""
    limit_follows_width: bool = False
    """the speed limit grows with the lane width, speed_limit x width / 3.6 m (2.8 m: 0.78 x,
    5 m: 1.39 x): a limit the camera shows"""
    limit_range: tuple[float, float] | None = None
    """draw each road's speed limit uniformly from this range [m/s], seeded by the road (all its
    lanes share it; the geometry stays that of the seed), a limit the driver is told (the
    observation's speed_limit); None: `speed_limit` on every road"""
    s_bend_share: float = 0.0
    """probability that an arc is followed at once by one turning the other way"""
    tighten_share: float = 0.0
    """probability that an arc is followed by a tighter one (radius x 0.4 to 0.7) the same way"""

    def limit(self, width: float) -> float:
        """The speed limit [m/s] of a road whose lanes are `width` [m] wide."""
        return self.speed_limit * width / 3.6 if self.limit_follows_width else self.speed_limit

    def validate(self) -> None:
        """Raise ValueError naming the first nonsensical range."""
        if self.min_length <= 0:
            raise ValueError(f"road min_length must be > 0 m, got {self.min_length}")
        if not 1 <= self.lanes[0] <= self.lanes[1]:
            raise ValueError(f"road lanes must be 1 <= min <= max, got {self.lanes}")
        for name in ("lane_width", "radius", "arc_angle", "straight"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"road {name} must be 0 < min <= max, got {(low, high)}")
        if self.arc_angle[1] >= 180:
            raise ValueError("road arc_angle must stay under 180 deg (highway-env wraps angles)")
        if self.speed_limit <= 0:
            raise ValueError(f"road speed_limit must be > 0 m/s, got {self.speed_limit}")
        if self.limit_range is not None:
            low, high = self.limit_range
            if not 0 < low <= high:
                raise ValueError(
                    f"road limit_range must be 0 < min <= max [m/s], got {(low, high)}"
                )
            if self.limit_follows_width:
                raise ValueError(
                    "road limit_range and limit_follows_width both set the speed limit: use one"
                )
        shares = (self.s_bend_share, self.tighten_share)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError(f"road s_bend_share + tighten_share must be in [0, 1], got {shares}")


@dataclass
class Road:
    """A generated road: the lane network plus what the metrics need to know about it."""

    network: RoadNetwork
    lanes: int
    lane_width: float
    segment_starts: np.ndarray  # (K,) distance along the road where each segment starts [m]
    length: float  # [m], along the leftmost lane
    speed_limit: float  # [m/s], of every lane

    def progress(self, lane_index: tuple[str, str, int], longitudinal: float) -> float:
        """Distance along the road [m] of a point at `longitudinal` on lane `lane_index`."""
        segment = int(lane_index[0])
        lane = self.network.get_lane(lane_index)
        reference = self.network.get_lane((lane_index[0], lane_index[1], 0))
        # Outer lanes of an arc are longer than the reference lane: scale to the reference.
        return float(self.segment_starts[segment] + longitudinal * reference.length / lane.length)

    def point_along(self, distance: float, lane_id: int) -> tuple[AbstractLane, float]:
        """The inverse of `progress`: (lane, longitudinal) of lane `lane_id` at `distance` [m]."""
        segment = int(np.searchsorted(self.segment_starts, distance, side="right")) - 1
        nodes = (str(segment), str(segment + 1))
        lane = self.network.get_lane((*nodes, lane_id))
        reference = self.network.get_lane((*nodes, 0))
        return lane, (distance - self.segment_starts[segment]) * lane.length / reference.length

    def sharpest_arc(self) -> float:
        """Distance along the road [m] where its tightest arc (smallest inner radius) begins; 0 on
        a road without arcs."""
        radii = [
            min(self.network.get_lane((str(i), str(i + 1), j)).radius for j in range(self.lanes))
            if isinstance(self.network.get_lane((str(i), str(i + 1), 0)), CircularLane)
            else math.inf
            for i in range(len(self.segment_starts))
        ]
        return float(self.segment_starts[int(np.argmin(radii))]) if min(radii) < math.inf else 0.0


def _line_types(lane: int, lanes: int) -> tuple[int, int]:
    """Continuous road edges, dashed lines between lanes (drawn once, on the right lane's left)."""
    left = LineType.CONTINUOUS if lane == 0 else LineType.STRIPED
    right = LineType.CONTINUOUS if lane == lanes - 1 else LineType.NONE
    return left, right


def _lateral(heading: float) -> np.ndarray:
    """Unit vector to the right of `heading` (screen y points down, as in highway-env)."""
    return np.array([-np.sin(heading), np.cos(heading)])


def _segment_lanes(
    start: np.ndarray,
    heading: float,
    rng: np.random.Generator,
    cfg: RoadSettings,
    lanes: int,
    width: float,
    limit: float,
    turn: int,
    angle: float,
    inner: float | None = None,
) -> tuple[list[AbstractLane], np.ndarray, float]:
    """Lanes of one segment starting at `start` (leftmost lane centre), `limit` [m/s] on each;
    returns end and heading. `inner`: the arc's innermost radius [m]; None: drawn from the
    settings."""
    lat = _lateral(heading)
    kwargs = {"width": width, "speed_limit": limit}
    if turn == 0:
        length = rng.uniform(*cfg.straight)
        end = start + length * np.array([np.cos(heading), np.sin(heading)])
        lanes_ = [
            StraightLane(
                start + i * width * lat,
                end + i * width * lat,
                line_types=_line_types(i, lanes),
                **kwargs,
            )
            for i in range(lanes)
        ]
        return lanes_, end, heading
    # turn = +1 turns right (heading grows, clockwise on screen), -1 turns left.
    inner = _radius(rng, cfg) if inner is None else inner
    ref_radius = inner + (lanes - 1) * width if turn > 0 else inner
    center = start + turn * ref_radius * lat
    phase0 = heading - turn * np.pi / 2
    phase1 = phase0 + turn * angle
    lanes_ = [
        CircularLane(
            center,
            ref_radius - turn * i * width,
            phase0,
            phase1,
            clockwise=turn > 0,
            line_types=_line_types(i, lanes),
            **kwargs,
        )
        for i in range(lanes)
    ]
    end_heading = heading + turn * angle
    end = center + ref_radius * np.array([np.cos(phase1), np.sin(phase1)])
    return lanes_, end, end_heading


def _choose_segment(
    rng: np.random.Generator, heading: float, cfg: RoadSettings
) -> tuple[int, float]:
    """Turn (0 straight, +1 right, -1 left), arc angle [rad], keeping |heading| <= max_heading."""
    if rng.random() < cfg.straight_share:
        return 0, 0.0
    limit = np.deg2rad(cfg.max_heading)
    angle = np.deg2rad(rng.uniform(*cfg.arc_angle))
    turns = [t for t in (-1, 1) if abs(heading + t * angle) <= limit]
    if turns:
        return int(rng.choice(turns)), float(angle)
    # Too sharp either way: turn back towards the start heading, only as far as allowed.
    turn = -1 if heading > 0 else 1
    return turn, float(min(angle, limit + abs(heading)))


def _follow_up(
    rng: np.random.Generator, turn: int, inner: float, heading: float, cfg: RoadSettings
) -> tuple[int, float, float] | None:
    """(turn, angle [rad], inner radius [m]) of an S-bend or a tightening bend after an arc
    turning `turn` with inner radius `inner`, or None (the next segment is drawn as usual).
    Draws nothing when both shares are 0, so that the default roads stay as they were."""
    if cfg.s_bend_share + cfg.tighten_share == 0:
        return None
    draw = rng.random()
    if draw < cfg.s_bend_share:
        turn, inner = -turn, _radius(rng, cfg)
    elif draw < cfg.s_bend_share + cfg.tighten_share:
        inner = max(cfg.radius[0], inner * float(rng.uniform(0.4, 0.7)))
    else:
        return None
    room = np.deg2rad(cfg.max_heading) - turn * heading  # how far it may turn this way
    angle = min(np.deg2rad(rng.uniform(*cfg.arc_angle)), room)
    return (turn, float(angle), inner) if angle >= np.deg2rad(cfg.arc_angle[0]) else None


def _radius(rng: np.random.Generator, cfg: RoadSettings) -> float:
    """An arc's innermost radius [m], uniform or log-uniform in the settings' range."""
    if cfg.radius_log:
        return float(np.exp(rng.uniform(*np.log(cfg.radius))))
    return float(rng.uniform(*cfg.radius))


def _inner_radius(segment: list[AbstractLane]) -> float | None:
    """The innermost radius [m] of an arc segment's lanes; None for a straight."""
    if not isinstance(segment[0], CircularLane):
        return None
    return min(lane.radius for lane in segment)


LIMIT_STREAM = 0x5EED11
"""Salt of the generator that draws a road's limit from `RoadSettings.limit_range`: a stream of
its own beside the road's `default_rng(seed)`, so that drawing a limit moves no bend."""


def road_limit(seed: int, width: float, cfg: RoadSettings) -> float:
    """The speed limit [m/s] of every lane of road `seed`, whose lanes are `width` [m] wide:
    drawn from `limit_range` (its own generator, seeded by the road), else `cfg.limit(width)`."""
    if cfg.limit_range is None:
        return cfg.limit(width)
    return float(np.random.default_rng([seed, LIMIT_STREAM]).uniform(*cfg.limit_range))


def make_road(seed: int, cfg: RoadSettings = RoadSettings()) -> Road:
    """Generate the road of `seed`: the same seed always gives the same road.

    Args:
        seed: the road's seed (see `envs.seeds` for which seeds are for training).
        cfg: the ranges the road is drawn from.
    """
    rng = np.random.default_rng(seed)
    lanes = int(rng.integers(cfg.lanes[0], cfg.lanes[1] + 1))
    width = float(rng.uniform(*cfg.lane_width))
    limit = road_limit(seed, width, cfg)
    network = RoadNetwork()
    start, heading = np.zeros(2), 0.0
    starts: list[float] = []
    length, segment = 0.0, 0
    follow_up, segment_lanes, turn = None, [], 0
    while length < cfg.min_length:
        inner = _inner_radius(segment_lanes) if segment_lanes else None
        if inner is not None:  # after an arc: maybe an S-bend or a tightening bend
            follow_up = _follow_up(rng, turn, inner, heading, cfg)
        if follow_up is not None:
            turn, angle, inner = follow_up
        else:
            turn, angle = _choose_segment(rng, heading, cfg) if segment > 0 else (0, 0.0)
            inner = None
        segment_lanes, start, heading = _segment_lanes(
            start, heading, rng, cfg, lanes, width, limit, turn, angle, inner
        )
        follow_up = None
        for lane in segment_lanes:
            network.add_lane(str(segment), str(segment + 1), lane)
        starts.append(length)
        length += segment_lanes[0].length
        segment += 1
    return Road(network, lanes, width, np.array(starts), length, limit)


WIDE_ROADS = RoadSettings(
    lanes=(1, 4),
    lane_width=(2.8, 5.0),
    radius=(15.0, 250.0),
    radius_log=True,
    limit_follows_width=True,
    s_bend_share=0.25,
    tighten_share=0.15,
)
"""The wide training ranges (module docstring): with them the car must turn tighter than
15 deg of steering allows, so worlds with them steer up to 30 deg (`envs.world.WIDE_WORLD`)."""
