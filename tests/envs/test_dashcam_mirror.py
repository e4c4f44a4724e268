"""Tests for the dashcam's rear-view mirror (`CameraConfig.rear_mirror`, `envs.dashcam`).

The mirror is checked against the pinhole model of `tests.envs.test_dashcam`, turned to look
backwards, and against the same frames rendered without it. World convention: highway-env's, y
down, heading 0 points along +x, the car's left is -y.
"""

import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from driving.learn.model import PilotNet
from driving.learn.train import TrainConfig, _model_config
from envs.camera import (
    MASK_EGO,
    MASK_GROUND,
    MASK_MARKING,
    MASK_ROAD,
    MASK_SKY,
    MASK_VEHICLE,
    CameraConfig,
    CameraError,
)
from envs.dashcam import MIRROR_FOV_DEG, MIRROR_PITCH_DEG, Dashcam, make_camera
from envs.world import World, make_env
from tests.envs.test_dashcam import add_car, pinhole, straight_road

MIRROR = CameraConfig(kind="dashcam", rear_mirror=True)


def in_mirror(camera: Dashcam, image: np.ndarray) -> np.ndarray:
    """The view inside the mirror's frame."""
    top, bottom, left, right = camera.mirror_box
    return image[top + 1 : bottom - 1, left + 1 : right - 1]


def three_lanes() -> tuple:
    """A straight road of three 4 m lanes along +x, the ego in the middle one at x = 100 m."""
    road = straight_road(lanes=3)
    return road, add_car(road, 100.0, 4.0)


def test_a_car_behind_in_the_lane_shows_in_the_mirror_and_not_once_moved_ahead():
    road, ego = three_lanes()
    camera = Dashcam(MIRROR)
    empty_frame, empty_mask = camera.render(road, ego), camera.render_mask(road, ego)
    assert not (in_mirror(camera, empty_mask) == MASK_VEHICLE).any()
    # given a car 15 m behind in the ego's lane, it is in the mirror, about its middle
    car = add_car(road, 85.0, 4.0)
    frame, mask = camera.render(road, ego), camera.render_mask(road, ego)
    columns = np.nonzero(in_mirror(camera, mask) == MASK_VEHICLE)[1]
    middle = (in_mirror(camera, mask).shape[1] - 1) / 2
    assert len(columns) > 20 and columns.mean() == pytest.approx(middle, abs=1.5)
    assert not np.array_equal(in_mirror(camera, frame), in_mirror(camera, empty_frame))
    # when it is moved 15 m ahead, the mirror is as empty as before, and the windscreen shows it
    car.position = np.array([115.0, 4.0])
    frame, mask = camera.render(road, ego), camera.render_mask(road, ego)
    assert np.array_equal(in_mirror(camera, frame), in_mirror(camera, empty_frame))
    assert not (in_mirror(camera, mask) == MASK_VEHICLE).any()
    assert (mask == MASK_VEHICLE).sum() > 20


@pytest.mark.parametrize(("side", "lane_y"), [("left", 0.0), ("right", 8.0)])
def test_a_car_behind_to_one_side_shows_on_that_side_of_the_mirror(side, lane_y):
    road, ego = three_lanes()
    add_car(road, 80.0, lane_y)  # 20 m behind, in the next lane
    camera = Dashcam(MIRROR)
    view = in_mirror(camera, camera.render_mask(road, ego))
    columns = np.nonzero(view == MASK_VEHICLE)[1]
    middle = (view.shape[1] - 1) / 2
    assert len(columns) > 10
    assert (columns < middle).all() if side == "left" else (columns > middle).all()
    # where a camera at the mirror, turned round, sees the middle of the car's front, mirrored
    rear = CameraConfig(
        kind="dashcam",
        height=view.shape[0],
        width=view.shape[1],
        pitch_deg=MIRROR_PITCH_DEG,
        fov_deg=MIRROR_FOV_DEG,
    )
    forward = np.array([math.cos(ego.heading), math.sin(ego.heading)])
    # pinhole() mounts its camera mount_forward_m along the heading: turned round, start 2x that
    # ahead, so that it sits where the dashcam does
    mount = 2 * MIRROR.mount_forward_m * forward
    turned = SimpleNamespace(heading=ego.heading + math.pi, position=ego.position + mount)
    u = pinhole(rear, turned, (80.0 + ego.LENGTH / 2, lane_y, 0.75))[0]
    assert columns.mean() == pytest.approx(view.shape[1] - 1 - u, abs=1.5)


def test_the_mirror_shows_the_road_and_differs_between_roads():
    env = make_env(
        "winding-road", CameraConfig(kind="dashcam", appearance="train", rear_mirror=True)
    )
    views = []
    for seed in (0, 1):
        env.reset(seed=seed)
        for _ in range(20):
            env.step([0.0, 0.3])
        base, camera = env.unwrapped, env.camera
        view = in_mirror(camera, camera.render(base.road, base.vehicle))
        classes = in_mirror(camera, camera.render_mask(base.road, base.vehicle))
        assert view.std() > 10
        for cls in (MASK_ROAD, MASK_MARKING, MASK_GROUND, MASK_SKY):
            assert (classes == cls).sum() >= 5, cls
        assert (classes[-1] == MASK_ROAD).any()  # the road runs on behind the car
        views.append(view)
    assert np.abs(views[0].astype(int) - views[1]).mean() > 5


def test_the_mirror_replaces_only_sky_and_the_rest_of_the_frame_is_unchanged():
    config = CameraConfig(kind="dashcam", appearance="train", bonnet=True)
    env = make_env("highway-traffic", config, density="dense")
    plain, with_mirror = make_camera(config), make_camera(replace(config, rear_mirror=True))
    env.reset(seed=1)
    base, cars_in_mirror = env.unwrapped, 0
    for camera in (plain, with_mirror):
        camera.reset(base.road, seed=1)
    top, bottom, left, right = with_mirror.mirror_box
    assert 0 < top < bottom <= with_mirror.ground_top and 0 < left < right < config.width
    assert left == config.width - right  # centred
    outside = np.ones((config.height, config.width), bool)
    outside[top:bottom, left:right] = False
    edge = ~outside  # the mirror's 1 px frame
    edge[top + 1 : bottom - 1, left + 1 : right - 1] = False
    for _ in range(8):
        env.step([0.0, 0.3])
        road, ego = base.road, base.vehicle
        frame, mirrored = plain.render(road, ego), with_mirror.render(road, ego)
        mask = with_mirror.render_mask(road, ego)
        assert np.array_equal(mirrored[outside], frame[outside])
        assert np.array_equal(mask[outside], plain.render_mask(road, ego)[outside])
        assert not np.array_equal(mirrored, frame)
        assert (mask[edge] == MASK_EGO).all()
        cars_in_mirror += (in_mirror(with_mirror, mask) == MASK_VEHICLE).any()
    assert cars_in_mirror >= 1


def test_with_the_sky_masked_the_net_sees_the_mirror_but_not_the_sky_beside_it():
    frames = SimpleNamespace(frames=np.zeros((1, 66, 200, 3), np.uint8))
    cfg = TrainConfig(data=Path("data"), mask_sky=True)
    camera = Dashcam(MIRROR)
    config = _model_config(cfg, frames, ("steering", "throttle"), World(camera=MIRROR))
    assert config.hidden_rows == camera.ground_top and config.shown_box == camera.mirror_box
    # without the mirror, the sky is hidden as before
    dashcam = World(camera=CameraConfig(kind="dashcam"))
    plain = _model_config(cfg, frames, ("steering", "throttle"), dashcam)
    assert plain.shown_box is None
    road, ego = three_lanes()
    add_car(road, 85.0, 0.0)
    torch.manual_seed(0)
    model, speed = PilotNet(config).eval(), torch.ones(1)
    image = torch.from_numpy(camera.render(road, ego))[None]
    top, bottom, left, right = camera.mirror_box
    other_sky = image.clone()
    other_sky[:, : camera.ground_top] = 0  # above, beside and below the mirror
    other_sky[:, top:bottom, left:right] = image[:, top:bottom, left:right]
    other_mirror = image.clone()
    other_mirror[:, top + 1 : bottom - 1, left + 1 : right - 1] = 0
    with torch.no_grad():
        seen = model(image, speed)
        assert torch.equal(model(other_sky, speed), seen)
        assert not torch.equal(model(other_mirror, speed), seen)


@pytest.mark.parametrize(
    "settings",
    [
        {"height": 300, "fov_deg": 150.0, "view_m": 500.0, "mount_height_m": 10.0},
        {"fov_deg": 20.0, "view_m": 10.0, "mount_height_m": 0.3, "pitch_deg": 0.0},
        {
            "height": 20,
            "width": 65,
            "pitch_deg": 0.0,
            "mount_forward_m": -10.0,
            "appearance": "held-out",
        },
    ],
)
def test_extreme_settings_with_the_mirror_still_render_a_frame_and_a_mask(settings):
    config = CameraConfig(kind="dashcam", rear_mirror=True, **settings)
    road, ego = three_lanes()
    add_car(road, 92.0, 0.0)
    add_car(road, 100.0, 8.0)  # beside the ego: out of the mirror's view, or clipped
    camera = Dashcam(config)
    frame, mask = camera.render(road, ego), camera.render_mask(road, ego)
    assert frame.shape == (config.height, config.width, 3)
    assert mask.shape == (config.height, config.width)
    assert camera.mirror_box[1] <= camera.ground_top


def test_the_mirror_is_refused_where_it_cannot_be():
    with pytest.raises(CameraError, match="rear_mirror.*kind='dashcam'") as error:
        CameraConfig(rear_mirror=True).validate()
    assert "\n" not in str(error.value)
    with pytest.raises(CameraError, match="rear_mirror"):
        CameraConfig(kind="dashcam", rear_mirror="yes").validate()
    for settings in ({"pitch_deg": 30.0}, {"height": 66, "width": 3}):  # no sky; no room
        with pytest.raises(CameraError, match="rear_mirror") as error:
            Dashcam(CameraConfig(kind="dashcam", rear_mirror=True, **settings))
        assert "\n" not in str(error.value)
    assert Dashcam(CameraConfig(kind="dashcam")).mirror_box is None
