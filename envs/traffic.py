"""Traffic scenarios: the ego among other cars, on our winding roads or on a straight highway.

    env = make_env("winding-traffic")       # envs.world; or "highway-traffic"; WindingTraffic-v0
    obs, info = env.reset(seed=3)
    info["gap_ahead"], info["time_headway"], info["lane_changes"], info["density"]

The other cars are highway-env `IDMVehicle`s: IDM car following and MOBIL lane changes. Their
number is drawn per seed from a density range [vehicles per km per lane]:

    light     5 to 10
    default  10 to 20
    dense    20 to 35

(the `density` config entry: one of these names, or a number that fixes it). They are spread over
the whole road, from 100 m behind the ego's start to its end, at least `SLOT` metres apart in a
lane, never within 30 m ahead / 15 m behind the ego in its lane or 10 m of it in another lane.
A quarter of them are slow (50-75% of the limit), the others drive at 80-100% of it.

Only the scene around the ego is simulated: a car waits at its drawn place until the ego comes
within `SCENE_AHEAD` (250 m: far beyond the camera's 40 m and the expert's 60 m) and leaves the
simulation `SCENE_BEHIND` behind the ego (or 50 m beyond SCENE_AHEAD ahead). Every car costs a
scan of all lanes per step in highway-env, so this keeps the cost to the ~400 m that matter.

Two things differ from a stock highway-env road, both because the roads are chains of short
segments: neighbours (the car ahead, the car behind, in any lane) are searched along the whole
road rather than within one segment, so that no car is blind to a leader just past a segment's
end; and cars that crash into each other without the ego are towed away at once, so that a wreck
never blocks the road for the rest of the episode (`info["towed"]` counts them).

Per-step ground truth added to the road scenario's: `gap_ahead` [m] (bumper to bumper, to the
nearest car ahead in the ego's lane; inf if none), `closing_speed` [m/s] (the ego's speed minus
that car's; 0 if none), `time_headway` [s] (gap / speed; inf if no
leader or stopped), `lane` (the ego's lane, 0 = leftmost), `lane_changes` (count so far),
`density` [vehicles/km/lane], `towed`, `collision` (what the ego's crash was: "ahead", "side",
"behind"; "" without one: `TrafficEnv.collision`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from highway_env.road.road import LaneIndex
from highway_env.road.road import Road as HighwayRoad
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from envs.road import Road, RoadSettings
from envs.winding import WindingRoadEnv

DENSITIES = {"light": (5.0, 10.0), "default": (10.0, 20.0), "dense": (20.0, 35.0)}
"""Traffic density ranges [vehicles per km per lane]; one value is drawn per seed."""
TRAFFIC_ROAD = RoadSettings(lanes=(2, 3))
"""Winding roads with room to pass."""
HIGHWAY_ROAD = replace(TRAFFIC_ROAD, straight_share=1.0, straight=(1000.0, 1200.0))
"""One straight segment of 1 to 1.2 km."""
SLOT = 20.0  # [m] spacing of the spawn slots along a lane (a car is 5 m long)
BEHIND = 100.0  # [m] traffic starts this far behind the ego's start
LANE_MARGIN = 1.0  # [m] a car counts in a lane while its centre is within half a width + this
SLOW_SHARE = 0.25  # share of slow cars
COLLISION_KINDS = ("ahead", "side", "behind")
"""What the ego's crash was, seen from the ego (`TrafficEnv.collision`)."""
TOW_AFTER = 50.0  # [m] cars this far past the road's end leave the simulation
SCENE_AHEAD = 250.0  # [m] cars enter the simulation this far ahead of the ego ...
SCENE_BEHIND = 150.0  # [m] ... and leave it this far behind (or 50 m further ahead)
ENTRY_BRAKING = 3.0  # [m/s^2] a car enters only where matching speeds takes at most this braking


def density_range(density: str | float) -> tuple[float, float]:
    """The density range [vehicles/km/lane] of a `density` setting; ValueError if nonsense."""
    if isinstance(density, str):
        if density not in DENSITIES:
            raise ValueError(f"unknown traffic density {density!r}; use one of {list(DENSITIES)}")
        return DENSITIES[density]
    if isinstance(density, bool) or not np.isfinite(density) or density < 0:
        raise ValueError(f"traffic density must be >= 0 vehicles/km/lane, got {density!r}")
    return float(density), float(density)


def parse_density(text: str) -> str | float:
    """A density setting from the command line: a level name, or a number [vehicles/km/lane]."""
    if text in DENSITIES:
        return text
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"traffic density must be one of {list(DENSITIES)} or vehicles/km/lane, got {text!r}"
        ) from None
    density_range(value)
    return value


@dataclass
class RoadFrame:
    """Every vehicle's place on the road at one instant."""

    vehicles: list[Vehicle]
    progress: np.ndarray  # (N,) distance along the road, leftmost lane's measure [m]
    lateral: np.ndarray  # (N,) offset from the leftmost lane's centre, positive right [m]


@dataclass
class _Car:
    """A car waiting to enter the scene."""

    at: float  # [m] along the road
    lane: int
    speed: float  # [m/s], also its wish
    delta: float  # IDM's acceleration exponent


class TrafficRoad(HighwayRoad):
    """A highway-env road whose neighbour search runs along the whole generated road."""

    def __init__(self, road_map: Road, np_random: np.random.Generator) -> None:
        super().__init__(network=road_map.network, np_random=np_random)
        self.road_map = road_map
        self._frame: RoadFrame | None = None
        self.towed = 0

    def place(self, vehicle: Vehicle) -> tuple[float, float]:
        """(progress [m], lateral offset from the leftmost lane's centre [m]) of a vehicle."""
        lane_index = vehicle.lane_index
        s, lateral = self.network.get_lane(lane_index).local_coordinates(vehicle.position)
        progress = self.road_map.progress(lane_index, s)
        return progress, lane_index[2] * self.road_map.lane_width + lateral

    def frame(self) -> RoadFrame:
        """Places of all vehicles, computed once per simulation step."""
        if self._frame is None or len(self._frame.vehicles) != len(self.vehicles):
            places = np.array([self.place(v) for v in self.vehicles]).reshape(-1, 2)
            self._frame = RoadFrame(list(self.vehicles), places[:, 0], places[:, 1])
        return self._frame

    def invalidate(self) -> None:
        """Forget the cached places (after moving vehicles by hand)."""
        self._frame = None

    def step(self, dt: float) -> None:
        """highway-env's step, with collisions checked only between cars close enough to touch.

        highway-env checks all N^2/2 pairs one by one; this checks the same pairs in the same
        order, skipping those its own first test would reject (same result, less work).
        """
        for vehicle in self.vehicles:
            vehicle.step(dt)
        self._frame = None
        if len(self.vehicles) > 1:
            positions = np.array([v.position for v in self.vehicles])  # (N, 2)
            reach = max(v.diagonal for v in self.vehicles) + dt * max(
                abs(v.speed) for v in self.vehicles
            )
            distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
            for i, j in zip(*np.nonzero(np.triu(distances <= reach, k=1)), strict=True):
                self.vehicles[i].handle_collisions(self.vehicles[j], dt)
        for vehicle in self.vehicles:
            for other in self.objects:
                vehicle.handle_collisions(other, dt)

    def lane_of(self, lateral: float) -> int:
        """The lane [0 = leftmost] whose centre is nearest a lateral offset [m]."""
        return min(max(round(lateral / self.road_map.lane_width), 0), self.road_map.lanes - 1)

    def neighbours(
        self, progress: float, lane: int, exclude: Vehicle | None = None
    ) -> tuple[Vehicle | None, Vehicle | None]:
        """Nearest vehicles ahead and behind a point of the road in `lane` (either may be None)."""
        frame = self.frame()
        width = self.road_map.lane_width
        in_lane = np.abs(frame.lateral - lane * width) <= width / 2 + LANE_MARGIN
        if exclude is not None:
            in_lane[self._indexes(frame, exclude)] = False
        ahead = in_lane & (frame.progress >= progress)
        behind = in_lane & (frame.progress < progress)
        front = np.where(ahead, frame.progress, np.inf).argmin()  # the first minimum
        rear = np.where(behind, frame.progress, -np.inf).argmax()
        vehicles = frame.vehicles
        return (vehicles[front] if ahead[front] else None, vehicles[rear] if behind[rear] else None)

    def _indexes(self, frame: RoadFrame, vehicle: Vehicle) -> list[int]:
        """Where `vehicle` is in `frame` (its index, or none)."""
        return [i for i, v in enumerate(frame.vehicles) if v is vehicle]

    def neighbour_vehicles(
        self, vehicle: Vehicle, lane_index: LaneIndex | None = None
    ) -> tuple[Vehicle | None, Vehicle | None]:
        """highway-env's query (used by IDM and MOBIL), answered along the whole road."""
        lane_index = lane_index or vehicle.lane_index
        progress, _ = self.place(vehicle)
        return self.neighbours(progress, lane_index[2], exclude=vehicle)

    def gap(self, rear: Vehicle, front: Vehicle) -> float:
        """Bumper-to-bumper distance [m] from `rear` to `front` along `rear`'s lane."""
        frame = self.frame()
        rear_at = self.place(rear)[0]
        front_at = frame.progress[frame.vehicles.index(front)]
        # Progress is measured on the leftmost lane: rescale to the rear car's lane.
        lane_index = rear.lane_index
        scale = (
            self.network.get_lane(lane_index).length
            / self.network.get_lane((*lane_index[:2], 0)).length
        )
        return float((front_at - rear_at) * scale - (rear.LENGTH + front.LENGTH) / 2)

    def clear(self, ego: Vehicle) -> None:
        """Tow crashed cars away (the ego's crash ends the episode) and drop cars off the scene."""
        ego_at = self.place(ego)[0]
        frame = self.frame()
        kept = []
        for v, at in zip(frame.vehicles, frame.progress.tolist(), strict=True):
            wreck = v.crashed and not ego.crashed  # what hit the ego stays for the record
            # Past the road's end highway-env extends the last lane: an arc goes on round its
            # circle, back into the traffic behind (the main cause of crashes between cars).
            off_end = at > self.road_map.length + TOW_AFTER
            gone = off_end or not -SCENE_BEHIND <= at - ego_at <= SCENE_AHEAD + TOW_AFTER
            if v is not ego and (wreck or gone):
                self.towed += int(wreck)
            else:
                kept.append(v)
        if len(kept) != len(self.vehicles):
            self.vehicles = kept
            self._frame = None


class TrafficEnv(WindingRoadEnv):
    """The winding-road scenario with other cars (IDM/MOBIL) drawn per seed; at least 2 lanes."""

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        # fast_traffic False: highway-env steps the cars one by one (the reference for the
        # fast road's replay test, and for the benchmark's ratio).
        config.update({"road": TRAFFIC_ROAD, "density": "default", "fast_traffic": True})
        return config

    def _reset(self) -> None:
        density_range(self.config["density"])  # validate before building anything
        super()._reset()
        from envs.traffic_fast import FastTrafficRoad  # it subclasses TrafficRoad, defined here

        road = FastTrafficRoad if self.config["fast_traffic"] else TrafficRoad
        self.road = road(self.road_map, self.np_random)
        ego = self.vehicle
        ego.road = self.road
        # Other drivers' MOBIL reads the follower's wish; the ego's is the limit.
        ego.target_speed = self.limit
        self.road.vehicles.append(ego)
        rng = np.random.default_rng(self.road_seed + 104_729)  # independent of road and start
        self.density = float(rng.uniform(*density_range(self.config["density"])))
        self._spawn_traffic(rng)
        self.lane_changes = 0
        self.lane = self.ego_lane()

    def _spawn_traffic(self, rng: np.random.Generator) -> None:
        """Fill the road with other cars at `self.density`, keeping clear of the ego."""
        road_map, limit = self.road_map, self.limit
        span = road_map.length + BEHIND
        count = round(self.density * road_map.lanes * span / 1000.0)
        ego_at, ego_lateral = self.road.place(self.vehicle)
        ego_lane = self.road.lane_of(ego_lateral)
        slots = [
            (lane, -BEHIND + SLOT * (k + 0.5))
            for lane in range(road_map.lanes)
            for k in range(int(span // SLOT))
        ]
        free = [
            (lane, at)
            for lane, at in slots
            if not (-15.0 < at - ego_at < 30.0 if lane == ego_lane else abs(at - ego_at) < 10.0)
        ]
        self.waiting: list[_Car] = []
        self.skipped = 0  # cars whose place was taken or unsafe when the scene reached them
        for i in rng.permutation(len(free))[:count]:
            lane, at = free[i]
            at += rng.uniform(-0.25, 0.25) * (SLOT - Vehicle.LENGTH)
            slow = rng.random() < SLOW_SHARE
            speed = limit * (rng.uniform(0.5, 0.75) if slow else rng.uniform(0.8, 1.0))
            self.waiting.append(_Car(at, lane, speed, rng.uniform(*IDMVehicle.DELTA_RANGE)))
        self.waiting.sort(key=lambda car: car.at)
        self._admit()

    def _admit(self) -> None:
        """Put the waiting cars that the scene has reached on the road, if their spot is free."""
        ego_at = self.road.place(self.vehicle)[0]
        while self.waiting and self.waiting[0].at <= ego_at + SCENE_AHEAD:
            car = self.waiting.pop(0)
            position, heading = self.road_pose(car.at, car.lane)
            vehicle = IDMVehicle(self.road, position, heading, car.speed, target_speed=car.speed)
            vehicle.DELTA = car.delta
            if self._room_for(vehicle, car):
                self.road.vehicles.append(vehicle)
            else:
                self.skipped += 1

    def _room_for(self, vehicle: IDMVehicle, car: _Car) -> bool:
        """Whether `vehicle` (waiting as `car`) can enter where the cars that entered before it
        have driven to: no car within half a slot in its lane or moving into its lane beside it,
        and neither it nor the car behind it closing in faster than braking at `ENTRY_BRAKING`
        could undo before the gap closes (a fast car entering just behind a slow one crashed)."""
        front, rear = self.road.neighbours(car.at, car.lane)
        frame = self.road.frame()
        for v, at in zip(frame.vehicles, frame.progress, strict=True):
            gap = abs(at - car.at) - Vehicle.LENGTH  # [m] bumper to bumper
            moving_in = (
                getattr(v, "target_lane_index", v.lane_index)[2] == car.lane != v.lane_index[2]
            )
            if abs(at - car.at) < SLOT / 2 and (v is front or v is rear or moving_in):
                return False
            closing = (vehicle.speed - v.speed) if v is front else (v.speed - vehicle.speed)
            if (v is front or v is rear) and closing > 0 and closing**2 > 2 * ENTRY_BRAKING * gap:
                return False
        return True

    def road_pose(self, progress: float, lane: int) -> tuple[np.ndarray, float]:
        """World position and heading of a lane's centre at `progress` [m] along the road."""
        starts = self.road_map.segment_starts
        k = max(int(np.searchsorted(starts, progress, side="right")) - 1, 0)
        reference = self.road_map.network.get_lane((str(k), str(k + 1), 0))
        target = self.road_map.network.get_lane((str(k), str(k + 1), lane))
        s = (progress - starts[k]) * target.length / reference.length
        return target.position(s, 0.0), float(target.heading_at(s))

    def ego_lane(self) -> int:
        """The lane the ego's centre is in [0 = leftmost]."""
        return self.road.lane_of(self.road.place(self.vehicle)[1])

    def _simulate(self, action=None) -> None:
        super()._simulate(action)
        self.road.clear(self.vehicle)
        self._admit()
        lane = self.ego_lane()
        self.lane_changes += int(lane != self.lane)
        self.lane = lane

    def leader(self) -> tuple[float, float]:
        """(gap [m] bumper to bumper, closing speed [m/s]: the ego's speed minus the leader's)
        to the nearest car ahead in the lane the ego's centre is in; (inf, 0) if none."""
        ego = self.vehicle
        progress, lateral = self.road.place(ego)
        front, _ = self.road.neighbours(progress, self.road.lane_of(lateral), exclude=ego)
        if front is None:
            return np.inf, 0.0
        return self.road.gap(ego, front), float(ego.speed - front.speed)

    def collision(self) -> str:
        """What the ego's crash was, seen from the ego: "ahead" (it ran into the back of a car),
        "behind" (a car ran into its back) or "side" (a car alongside); "" without a crash.

        The car hit is the crashed car nearest the ego (a car that crashes without the ego is
        towed at once); the face touched is the one across which the two outlines overlap least
        (the axis of least penetration, in the ego's frame).
        """
        ego = self.vehicle
        if not ego.crashed:  # every step asks: no scan of the cars without a crash
            return ""
        others = [v for v in self.road.vehicles if v is not ego and v.crashed]
        if not others:
            return ""
        other = min(others, key=lambda v: float(np.linalg.norm(v.position - ego.position)))
        dx, dy = other.position - ego.position
        c, s = np.cos(ego.heading), np.sin(ego.heading)
        along, across = dx * c + dy * s, dy * c - dx * s
        overlap_along = (ego.LENGTH + other.LENGTH) / 2 - abs(along)
        overlap_across = (ego.WIDTH + other.WIDTH) / 2 - abs(across)
        if overlap_across < overlap_along:
            return "side"
        return "ahead" if along > 0 else "behind"

    def traffic_truth(self) -> dict[str, Any]:
        """Ground truth about the traffic around the ego."""
        ego = self.vehicle
        gap, closing = self.leader()
        headway = gap / ego.speed if ego.speed > 0.1 and np.isfinite(gap) else np.inf
        return {
            "gap_ahead": float(gap),
            "closing_speed": closing,
            "time_headway": float(headway),
            "lane": self.lane,
            "lane_changes": self.lane_changes,
            "density": self.density,
            "towed": self.road.towed,
            "collision": self.collision(),
        }

    def _info(self, obs: Any, action: Any = None) -> dict:
        info = super()._info(obs, action)
        info.update(self.traffic_truth())
        return info


class HighwayTrafficEnv(TrafficEnv):
    """The traffic scenario on one straight multi-lane highway."""

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config["road"] = HIGHWAY_ROAD
        return config


TRAFFIC_ENVS = {"winding-traffic": TrafficEnv, "highway-traffic": HighwayTrafficEnv}
