"""The hand-built car-ahead perception on hand-made frames: a straight two-lane road drawn by the
real cameras, other cars placed at known gaps; and the control law following a perceived car."""

import numpy as np
import pytest
from highway_env.vehicle.kinematics import Vehicle

from driving.modular.cars import LEADER_RANGE, CarPerception, car_pixels
from driving.modular.driver import LaneControl
from driving.modular.lanes import LanePerception
from envs.camera import CameraConfig
from envs.dashcam import make_camera
from envs.expert import ExpertConfig
from tests.driving.modular.test_lanes import CAMERAS, WIDTH, two_lane_road

GAP_TOLERANCE = {6.0: 0.5, 10.0: 0.6, 20.0: 2.0}
"""Largest gap error allowed at each true gap [m]: a frame row covers metres far ahead."""


def frames(camera: CameraConfig, others: list[tuple[float, float]], steps: int = 1, speed=0.0):
    """Frames of the ego in the first lane's centre, 200 m along, with other cars at (gap [m]
    bumper to bumper ahead, lateral [m] from the ego's lane centre), the others `speed` [m/s]
    slower than the ego, one frame per 0.1 s."""
    road = two_lane_road()
    ego = Vehicle(road, [200.0, 0.0], 0.0, 15.0)
    cars = [Vehicle(road, [200.0 + Vehicle.LENGTH + gap, y], 0.0, 15.0) for gap, y in others]
    road.vehicles.extend([ego, *cars])
    cam = make_camera(camera)
    cam.reset(road, 3)
    shots = []
    for _ in range(steps):
        shots.append(cam.render(road, ego))
        for car in cars:
            car.position = car.position - np.array([speed * 0.1, 0.0])
    return shots


def perceive(camera: CameraConfig, shots: list[np.ndarray]):
    lanes, cars = LanePerception(camera), CarPerception(camera, frequency=10)
    for shot in shots:
        estimate = cars.estimate(shot, lanes.estimate(shot))
    return estimate


@pytest.mark.parametrize("camera", CAMERAS.values(), ids=CAMERAS.keys())
@pytest.mark.parametrize("gap", GAP_TOLERANCE)
def test_a_car_ahead_in_the_lane_is_seen_at_its_gap(camera, gap):
    estimate = perceive(camera, frames(camera, [(gap, 0.0)]))
    assert estimate.gap == pytest.approx(gap, abs=GAP_TOLERANCE[gap])


@pytest.mark.parametrize("camera", CAMERAS.values(), ids=CAMERAS.keys())
def test_a_car_in_the_next_lane_or_none_is_no_car_ahead(camera):
    beside = frames(camera, [(8.0, WIDTH)])
    assert car_pixels(beside[0]).any()  # it is in the frame
    assert perceive(camera, beside).gap == LEADER_RANGE
    empty = frames(camera, [])
    assert not car_pixels(empty[0]).any()  # nothing on an empty road looks like a car
    assert perceive(camera, empty).gap == LEADER_RANGE


def test_the_closing_speed_is_the_rate_the_gap_shrinks():
    camera = CAMERAS["dashcam train look"]
    estimate = perceive(camera, frames(camera, [(15.0, 0.0)], steps=10, speed=5.0))
    assert estimate.closing_speed == pytest.approx(5.0, abs=1.5)
    still = perceive(camera, frames(camera, [(15.0, 0.0)], steps=10, speed=0.0))
    assert still.closing_speed == pytest.approx(0.0, abs=0.5)


class Straight:
    """A perceived straight lane, the car centred on it."""

    lateral_offset = heading_error = 0.0

    def curvature_at(self, distance: float) -> float:
        return 0.0


def test_the_control_law_brakes_for_a_close_car_and_ignores_one_out_of_range():
    control = LaneControl(ExpertConfig(), frequency=10, reach=30.0)
    free = control.act(Straight(), 15.0)
    closing_in = control.act(Straight(), 15.0, (10.0, 5.0))
    far = control.act(Straight(), 15.0, (LEADER_RANGE, 0.0))
    assert closing_in[1] < -0.5  # hard braking behind a slower car 10 m ahead
    assert far[1] == pytest.approx(0.0, abs=1e-6) and free[1] == pytest.approx(0.0, abs=1e-6)
    assert control.act(Straight(), 10.0, (LEADER_RANGE, 0.0))[1] > 0  # free: back to the limit
