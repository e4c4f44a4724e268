"""Roads whose speed limit is drawn per road: within the range, seeded by the road, and drawn
beside the geometry, which stays that of the seed."""

from dataclasses import replace

import numpy as np
import pytest
from highway_env.road.lane import CircularLane

from envs.road import WIDE_ROADS, RoadSettings, make_road
from envs.world import World

TOLD = RoadSettings(limit_range=(8.0, 22.0))
"""The default roads, each with a limit of its own [m/s]."""


def _lanes(road) -> list:
    return [road.network.get_lane(index) for index in road.network.lanes_dict()]


def _geometry(road) -> list[tuple]:
    """Every lane's ends, width and radius: all that makes the road's shape."""
    return [
        (
            *lane.position(0.0, 0.0),
            *lane.position(lane.length, 0.0),
            lane.width,
            lane.radius if isinstance(lane, CircularLane) else None,
        )
        for lane in _lanes(road)
    ]


def test_a_limit_range_gives_each_road_its_own_limit_on_every_lane_reproducibly():
    # given 40 roads drawn with a limit range
    roads = [make_road(seed, TOLD) for seed in range(40)]
    limits = np.array([road.speed_limit for road in roads])
    # then every limit lies in the range, spread over it, shared by all lanes of its road
    assert limits.min() >= 8.0 and limits.max() <= 22.0
    assert limits.min() < 10.0 and limits.max() > 20.0 and len(set(limits)) == 40
    for road in roads:
        assert {lane.speed_limit for lane in _lanes(road)} == {road.speed_limit}
    # and the same seed draws the same limit again
    assert make_road(7, TOLD).speed_limit == roads[7].speed_limit


@pytest.mark.parametrize("ranges", [RoadSettings(), replace(WIDE_ROADS, limit_follows_width=False)])
def test_drawing_the_limit_leaves_the_geometry_of_every_seed_as_it_was(ranges):
    told = replace(ranges, limit_range=(8.0, 22.0))
    for seed in (0, 3, 17, 1_000_000):
        plain, drawn = make_road(seed, ranges), make_road(seed, told)
        assert _geometry(drawn) == _geometry(plain)
        assert (drawn.length, drawn.lanes, drawn.lane_width) == (
            plain.length,
            plain.lanes,
            plain.lane_width,
        )
        assert plain.speed_limit == ranges.speed_limit != drawn.speed_limit


@pytest.mark.parametrize(
    "settings, message",
    [
        (RoadSettings(limit_range=(22.0, 8.0)), "limit_range must be 0 < min <= max"),
        (RoadSettings(limit_range=(0.0, 8.0)), "limit_range must be 0 < min <= max"),
        (replace(WIDE_ROADS, limit_range=(8.0, 22.0)), "both set the speed limit: use one"),
    ],
)
def test_a_bad_limit_range_is_refused_in_one_line(settings, message):
    with pytest.raises(ValueError, match=message):
        settings.validate()


def test_the_limit_range_travels_with_the_world_description():
    world = World(road=TOLD)
    assert World.from_dict(world.to_dict()) == world  # [8, 22] in JSON, a tuple again
    assert World.from_dict({"road": {"lanes": [1, 3]}}).road.limit_range is None  # older files
