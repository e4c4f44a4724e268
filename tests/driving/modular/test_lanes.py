"""Lane perception on hand-made frames: a straight road drawn by the real cameras, the car
centred, offset and turned by known amounts; the estimates within stated tolerances."""

import math

import numpy as np
import pytest
from highway_env.road.lane import LineType, StraightLane
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.kinematics import Vehicle

from driving.modular.lanes import LanePerception
from envs.camera import CameraConfig
from envs.dashcam import make_camera

WIDTH = 3.6  # [m]
OFFSET_TOLERANCE = 0.15  # [m]
HEADING_TOLERANCE = 0.035  # [rad] (2 deg; the dashcam trades some heading for curvature)
CURVATURE_TOLERANCE = 0.006  # [1/m]: a straight road is not seen as a bend tighter than 170 m
CAMERAS = {
    "dashcam train look": CameraConfig(kind="dashcam", appearance="train"),
    "dashcam held-out look": CameraConfig(kind="dashcam", appearance="held-out"),
    "top-down": CameraConfig(),
}


def two_lane_road() -> Road:
    """A straight road along +x: lanes centred at y = 0 and y = WIDTH, solid edges, dashes
    between them (as `envs.road` draws them)."""
    network = RoadNetwork()
    solid, dashed, none = LineType.CONTINUOUS, LineType.STRIPED, LineType.NONE
    for i, types in enumerate(((solid, none), (dashed, solid))):
        lane = StraightLane([0, WIDTH * i], [2000, WIDTH * i], width=WIDTH, line_types=types)
        network.add_lane("a", "b", lane)
    return Road(network=network)


def estimate(camera: CameraConfig, offset: float, heading: float, seed: int = 3):
    """The perception's estimate for the car `offset` [m] right of the first lane's centre,
    turned `heading` [rad] to the right, 200 m along the road."""
    road = two_lane_road()
    ego = Vehicle(road, [200.0, offset], heading, 15.0)
    road.vehicles.append(ego)
    cam = make_camera(camera)
    cam.reset(road, seed)
    return LanePerception(camera).estimate(cam.render(road, ego))


@pytest.mark.parametrize("camera", CAMERAS.values(), ids=CAMERAS.keys())
@pytest.mark.parametrize(
    "offset, heading", [(0.0, 0.0), (0.5, 0.0), (-0.7, 0.0), (0.0, 0.05), (0.3, -0.06)]
)
def test_a_straight_road_gives_the_known_offset_heading_and_no_curvature(camera, offset, heading):
    lane = estimate(camera, offset, heading)
    assert lane.boundaries == 2
    # Ground truth convention (envs.wrapper.ground_truth): offset along the lane's normal.
    assert lane.lateral_offset == pytest.approx(offset, abs=OFFSET_TOLERANCE)
    assert lane.heading_error == pytest.approx(heading, abs=HEADING_TOLERANCE)
    assert lane.curvature == pytest.approx(0.0, abs=CURVATURE_TOLERANCE)
    assert lane.lane_width == pytest.approx(WIDTH, abs=0.2)


def test_the_ego_lane_is_the_one_the_car_is_in_on_a_two_lane_road():
    # The car in the second lane (centred at y = WIDTH), 0.4 m left of its centre.
    lane = estimate(CAMERAS["dashcam train look"], WIDTH - 0.4, 0.0)
    assert lane.lateral_offset == pytest.approx(-0.4, abs=OFFSET_TOLERANCE)


def test_a_frame_without_a_road_keeps_the_last_estimate_and_says_so():
    camera = CAMERAS["top-down"]
    perception = LanePerception(camera)
    road = two_lane_road()
    ego = Vehicle(road, [200.0, 0.3], 0.0, 15.0)
    road.vehicles.append(ego)
    cam = make_camera(camera)
    first = perception.estimate(cam.render(road, ego))
    ego.position = np.array([200.0, 60.0])  # far off the road: grass only
    lost = perception.estimate(cam.render(road, ego))
    assert first.boundaries == 2 and lost.boundaries == 0
    assert lost.lateral_offset == first.lateral_offset
    assert not math.isnan(lost.heading_error)
