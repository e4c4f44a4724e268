"""Tests for the driver's-eye camera (`envs.dashcam`) and the per-road look (`envs.appearance`).

Geometry is checked against a pinhole model written here from scratch (3D vectors: the camera's
axes in the world, rotated by the pitch), not against the camera's own homography. World
convention: highway-env's, y down, heading h points along (cos h, sin h), the car's right is
(-sin h, cos h), height z up.
"""

import math

import cv2
import numpy as np
import pytest
from highway_env.road.lane import LineType, StraightLane
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.kinematics import Vehicle

from envs.appearance import RANGES, draw_appearance
from envs.camera import (
    GROUND_RGB,
    MASK_GROUND,
    MASK_MARKING,
    MASK_ROAD,
    MASK_SKY,
    MASK_VEHICLE,
    ROAD_RGB,
    Camera,
    CameraConfig,
    CameraError,
    road_shapes,
)
from envs.dashcam import Dashcam, make_camera
from envs.ground import LocalMap
from envs.world import World, make_env

DASHCAM = CameraConfig(kind="dashcam")
SOLID = (LineType.CONTINUOUS_LINE, LineType.CONTINUOUS_LINE)


def straight_road(lanes: int = 1, end_x: float = 2000.0, width: float = 4.0) -> Road:
    """A straight road along +x from x = 0 to `end_x`, `lanes` lanes from y = 0 on, solid lines."""
    network = RoadNetwork()
    for i in range(lanes):
        lane = StraightLane([0, i * width], [end_x, i * width], width=width, line_types=SOLID)
        network.add_lane("a", "b", lane)
    return Road(network=network, np_random=np.random.default_rng(0))


def add_car(road: Road, x: float, y: float, heading: float = 0.0) -> Vehicle:
    vehicle = Vehicle(road, [x, y], heading=heading, speed=10.0)
    road.vehicles.append(vehicle)
    return vehicle


def pinhole(config: CameraConfig, ego: Vehicle, point: tuple[float, float, float]) -> np.ndarray:
    """Frame pixel (u, v) where the world point (x, y, z) [m] is seen (pixel centres: integers)."""
    h, pitch = ego.heading, math.radians(config.pitch_deg)
    forward, up = np.array([math.cos(h), math.sin(h), 0.0]), np.array([0.0, 0.0, 1.0])
    right = np.array([-math.sin(h), math.cos(h), 0.0])
    axis = math.cos(pitch) * forward - math.sin(pitch) * up  # optical axis, tilted down
    down = -(math.sin(pitch) * forward + math.cos(pitch) * up)  # image rows grow along it
    centre = np.array([*ego.position, 0.0]) + config.mount_forward_m * forward
    centre[2] = config.mount_height_m
    d = np.asarray(point, dtype=float) - centre
    focal = (config.width / 2) / math.tan(math.radians(config.fov_deg) / 2)
    u = (config.width - 1) / 2 + focal * (d @ right) / (d @ axis)
    v = (config.height - 1) / 2 + focal * (d @ down) / (d @ axis)
    return np.array([u, v])


def horizon_row(config: CameraConfig) -> float:
    focal = (config.width / 2) / math.tan(math.radians(config.fov_deg) / 2)
    return (config.height - 1) / 2 - focal * math.tan(math.radians(config.pitch_deg))


def roadness(frame: np.ndarray) -> np.ndarray:
    """Per pixel, 1 on road or markings (grey or white: red = green), 0 on the green ground."""
    red, green = frame[..., 0].astype(float), frame[..., 1].astype(float)
    span = GROUND_RGB[1] - GROUND_RGB[0]  # how much greener than red the ground is
    return np.clip(1 + (red - green) / span, 0.0, 1.0)


def test_the_lane_centre_20_m_ahead_lands_where_the_pinhole_model_says():
    # given a one-lane road that ends 20 m ahead of the ego, the ego off-centre and turned
    road = straight_road(end_x=120.0)
    ego = add_car(road, 100.0, 0.6, heading=0.05)
    camera = Dashcam(DASHCAM)
    frame = camera.render(road, ego)
    # then the road's end crosses the lane centre's column at the predicted row
    u, v = pinhole(DASHCAM, ego, (120.0, 0.0, 0.0))
    column = roadness(frame)[:, round(u)]
    crossing = np.flatnonzero(column[:-1] < 0.5)[-1]  # last row that is still ground
    edge = crossing + (0.5 - column[crossing]) / (column[crossing + 1] - column[crossing])
    assert edge == pytest.approx(v, abs=1.0)
    # and, a few rows nearer, the road is centred on the lane centre's predicted column
    row = round(v) + 3
    lo, hi = 100.0, 120.0  # the lane centre's x at that row, by bisection on the model
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pinhole(DASHCAM, ego, (mid, 0.0, 0.0))[1] > row else (lo, mid)
    expected = pinhole(DASHCAM, ego, (lo, 0.0, 0.0))[0]
    weights = roadness(frame)[row]
    assert (weights * np.arange(DASHCAM.width)).sum() / weights.sum() == pytest.approx(
        expected, abs=1.0
    )


@pytest.mark.parametrize("pitch", [0.0, 5.0, 10.0, 15.0])
def test_the_horizon_row_follows_the_pitch(pitch):
    config = CameraConfig(kind="dashcam", pitch_deg=pitch, view_m=500.0)
    road = straight_road(lanes=3)
    mask = Dashcam(config).render_mask(road, add_car(road, 100.0, 4.0))
    sky_rows = np.flatnonzero((mask == MASK_SKY).all(axis=1))
    expected = horizon_row(config)
    assert sky_rows.max() + 0.5 == pytest.approx(expected, abs=1.0)  # the rows' bottom edge
    assert np.array_equal(sky_rows, np.arange(len(sky_rows)))  # all sky above, none below
    if pitch == 0.0:
        assert expected == (config.height - 1) / 2  # level: the horizon on the centre row


def test_a_larger_pitch_puts_the_horizon_higher():
    rows = [Dashcam(CameraConfig(kind="dashcam", pitch_deg=p)).horizon_row for p in (0, 6, 12)]
    assert rows[0] > rows[1] > rows[2]
    assert rows == [pytest.approx(horizon_row(CameraConfig(pitch_deg=p))) for p in (0, 6, 12)]


def test_lane_lines_of_a_straight_road_meet_at_one_vanishing_point_on_the_horizon():
    road = straight_road(lanes=3)
    ego = add_car(road, 100.0, 4.5, heading=0.04)
    frame = Dashcam(DASHCAM).render(road, ego)
    whiteness = frame.min(axis=-1).astype(float)
    first = math.ceil(horizon_row(DASHCAM) + 8)  # nearer than ~20 m: no haze, lines apart
    count, labels = cv2.connectedComponents((whiteness[first:] > 128).astype(np.uint8))
    lines = []
    for label in range(1, count):
        rows, cols = np.nonzero(labels == label)
        if np.ptp(rows) >= 10:  # a lane line, not a speck
            weight = whiteness[first:][rows, cols]
            lines.append(np.polyfit(rows + first, cols, 1, w=weight))  # u = a v + b
    assert len(lines) >= 3
    points = []
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            (a1, b1), (a2, b2) = lines[i], lines[j]
            v = (b2 - b1) / (a1 - a2)
            points.append((a1 * v + b1, v))
    focal = (DASHCAM.width / 2) / math.tan(math.radians(DASHCAM.fov_deg) / 2)
    pitch = math.radians(DASHCAM.pitch_deg)
    # The road's direction (1, 0), seen from heading h: tan(-h) of it to the right.
    expected = (
        (DASHCAM.width - 1) / 2 - focal * math.tan(0.04) / math.cos(pitch),
        horizon_row(DASHCAM),
    )
    for point in points:
        assert point == pytest.approx(expected, abs=1.5)


@pytest.mark.parametrize(
    "scenario, bonnet, mirror",
    [
        ("winding-road", False, False),
        ("winding-road", True, False),
        ("winding-traffic", False, True),
    ],
)
def test_the_frame_does_not_depend_on_the_action_no_label_leak(scenario, bonnet, mirror):
    camera = CameraConfig(kind="dashcam", appearance="train", bonnet=bonnet, rear_mirror=mirror)
    env = make_env(scenario, camera)
    env.reset(seed=2)
    for _ in range(5):
        env.step([0.3, 0.5])
    base = env.unwrapped
    before = env.camera.render(base.road, base.vehicle)
    base.vehicle.action = {"steering": -0.7, "acceleration": -4.0}
    after = env.camera.render(base.road, base.vehicle)
    assert np.array_equal(before, after)


def test_a_car_ahead_hides_the_road_behind_it_and_a_car_behind_the_camera_is_not_drawn():
    road = straight_road(lanes=2)
    ego = add_car(road, 100.0, 0.0)
    camera = Dashcam(DASHCAM)
    empty_frame, empty_mask = camera.render(road, ego), camera.render_mask(road, ego)
    # a car behind the camera changes nothing
    add_car(road, 90.0, 0.0)
    assert np.array_equal(camera.render(road, ego), empty_frame)
    assert not (camera.render_mask(road, ego) == MASK_VEHICLE).any()
    # a car 15 m ahead shows, and hides the lane centre 25 m ahead (road without it)
    add_car(road, 115.0, 0.0)
    frame, mask = camera.render(road, ego), camera.render_mask(road, ego)
    u, v = np.round(pinhole(DASHCAM, ego, (125.0, 0.0, 0.0))).astype(int)
    assert empty_mask[v, u] == MASK_ROAD and mask[v, u] == MASK_VEHICLE
    assert np.abs(frame[v, u].astype(int) - empty_frame[v, u]).max() > 30
    u, v = np.round(pinhole(DASHCAM, ego, (115.0, 0.0, 0.75))).astype(int)  # the car's middle
    assert mask[v, u] == MASK_VEHICLE
    # and a car beside the camera, its back behind it, is drawn only in front of it, on its side
    beside = straight_road(lanes=2)
    ego = add_car(beside, 100.0, 0.0)
    add_car(beside, 102.0, 3.5)
    mask = Dashcam(DASHCAM).render_mask(beside, ego)
    columns = np.nonzero(mask == MASK_VEHICLE)[1]
    assert len(columns) > 0 and columns.min() > DASHCAM.width / 2


def test_appearance_is_reproducible_per_seed_and_differs_between_seeds():
    for kind in ("plain", "train", "held-out"):
        assert draw_appearance(7, kind) == draw_appearance(7, kind)
    assert draw_appearance(7, "train") != draw_appearance(8, "train")
    assert draw_appearance(7, "held-out") != draw_appearance(8, "held-out")
    assert draw_appearance(7, "plain") == draw_appearance(8, "plain")


@pytest.mark.parametrize("name", ["brightness", "contrast", "asphalt_grey", "grass_hue"])
def test_training_looks_never_take_a_held_out_value(name):
    (train_lo, train_hi), (held_lo, held_hi) = RANGES["train"][name], RANGES["held-out"][name]
    assert train_hi < held_lo or held_hi < train_lo  # the ranges are disjoint
    if name in ("brightness", "contrast"):  # and the drawn values stay in their own range
        for seed in range(2000):
            value = getattr(draw_appearance(seed, "train"), name)
            assert train_lo <= value <= train_hi and not held_lo <= value <= held_hi
            value = getattr(draw_appearance(seed, "held-out"), name)
            assert held_lo <= value <= held_hi


def test_frames_are_reproducible_per_road_seed_and_differ_between_seeds():
    env = make_env("winding-road", CameraConfig(kind="dashcam", appearance="train"))
    first = env.reset(seed=5)[0]["image"]
    again = env.reset(seed=5)[0]["image"]
    other = env.reset(seed=6)[0]["image"]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert isinstance(env.camera, Dashcam)


def test_the_wrapper_gives_the_camera_the_road_seed():
    env = make_env("winding-road", CameraConfig(kind="dashcam", appearance="train"))
    env.reset(seed=12)
    assert env.camera.look == draw_appearance(12, "train")
    env.reset()  # unseeded: the road drawn by the env names the look
    assert env.camera.look == draw_appearance(env.unwrapped.road_seed, "train")
    stock = make_env("highway-v0", CameraConfig(kind="dashcam", appearance="train"))
    stock.reset()  # no road seed at all: look 0
    assert stock.camera.look == draw_appearance(0, "train")


def test_the_ground_texture_is_fixed_to_the_world_not_to_the_map():
    # given two cameras whose near maps were drawn at origins 10.37 m apart
    road = straight_road(lanes=2)
    config = CameraConfig(kind="dashcam", appearance="train")
    a, b = Dashcam(config), Dashcam(config)
    a.reset(road, seed=3)
    b.reset(road, seed=3)
    ego = add_car(road, 89.63, 1.0)
    b.render(road, ego)
    ego.position = np.array([100.0, 1.0])
    # then both see the same textured road from the same pose
    frame_a, frame_b = a.render(road, ego), b.render(road, ego)
    assert not np.array_equal(a._near.origin, b._near.origin)
    assert np.abs(frame_a.astype(int) - frame_b).mean() < 1.0


def test_a_local_map_turns_with_the_viewer_and_is_redrawn_only_when_the_view_leaves_it():
    # given a map of a one-lane road along +x for a view from 2 m to 20 m ahead, 21 m to each side
    road = straight_road(lanes=1)
    reach = np.array([[2.0, -3.0], [2.0, 3.0], [20.0, -21.0], [20.0, 21.0]])
    local = LocalMap(reach, travel_m=50.0, side_m=8.0, px_per_m=8.0, max_side_px=4096)
    ground, asphalt = (0, 200, 0, 0), (100, 100, 100, 0)
    local.set_road(road_shapes(road, "test"), (ground, asphalt, (255, 255, 255, 0)))
    # then it is drawn at the first call, kept for 40 m, redrawn after 60 m
    assert local.ensure(100.0, 0.0, 0.0)
    assert not local.ensure(140.0, 0.0, 0.0)
    assert local.ensure(160.0, 0.0, 0.0)
    # and kept through a 0.2 rad turn (its side margin), redrawn at 0.4 rad
    assert not local.ensure(160.0, 0.0, 0.2)
    assert local.ensure(160.0, 0.0, 0.4)
    # and, redrawn facing +y (down the screen), it shows ahead up and the viewer's right (-x)
    # right, with the road 30 m ahead of it and the verge 20 m ahead
    assert local.ensure(100.0, -30.0, math.pi / 2)

    def colour(x: float, y: float) -> tuple:
        u, v = np.round(pixel(x, y)).astype(int)
        return tuple(local.image[v, u])

    def pixel(x: float, y: float) -> np.ndarray:
        return (local.from_world @ [x, y, 1.0])[:2]

    assert pixel(100.0, -10.0)[1] < pixel(100.0, -20.0)[1]
    assert pixel(90.0, -20.0)[0] > pixel(100.0, -20.0)[0]
    assert colour(100.0, 0.0) == asphalt and colour(100.0, -10.0) == ground


def test_maps_drawn_at_another_heading_show_the_same_road():
    # given two cameras whose maps were drawn facing 0.18 rad apart (the maps turn with the
    # viewer at each redraw, and are kept while the view stays inside them)
    road = straight_road(lanes=2)
    config = CameraConfig(kind="dashcam", appearance="train")
    a, b = Dashcam(config), Dashcam(config)
    a.reset(road, seed=3)
    b.reset(road, seed=3)
    ego = add_car(road, 96.0, 2.0, heading=0.2)
    b.render(road, ego)
    b.render_mask(road, ego)
    ego.position, ego.heading = np.array([100.0, 1.0]), 0.02
    # then both see the same road, texture and cues from the same pose, but for resampling
    frame_a, frame_b = a.render(road, ego), b.render(road, ego)
    mask_a, mask_b = a.render_mask(road, ego), b.render_mask(road, ego)
    assert not np.allclose(a._near.axes, b._near.axes)
    assert not np.allclose(a._far.axes, b._far.axes)
    assert np.abs(frame_a.astype(int) - frame_b).mean() < 1.5
    assert (mask_a == mask_b).mean() > 0.97


@pytest.mark.parametrize("appearance", ["plain", "train", "held-out"])
def test_frames_are_never_blank(appearance):
    env = make_env("winding-road", CameraConfig(kind="dashcam", appearance=appearance))
    for seed in (0, 1, 2):
        frame = env.reset(seed=seed)[0]["image"]
        assert frame.shape == (66, 200, 3) and frame.dtype == np.uint8
        assert frame.std() > 10
        ground = frame[math.ceil(horizon_row(DASHCAM)) + 5 :]
        assert ground.std() > 5  # road and verge differ


def test_a_drive_in_dense_traffic_shows_cars_in_frame_and_mask():
    env = make_env(
        "highway-traffic", CameraConfig(kind="dashcam", appearance="train"), density="dense"
    )
    env.reset(seed=1)
    base, shown = env.unwrapped, 0
    for _ in range(10):
        frame = env.step([0.0, 0.3])[0]["image"]
        mask = env.camera.render_mask(base.road, base.vehicle)
        assert np.array_equal(frame, env.camera.render(base.road, base.vehicle))
        shown += (mask == MASK_VEHICLE).sum() > 20
    assert shown >= 5


@pytest.mark.parametrize(
    "settings",
    [
        {"height": 1, "width": 1},
        {"height": 2, "width": 3, "pitch_deg": 60.0},
        {"height": 300, "fov_deg": 150.0, "view_m": 500.0, "mount_height_m": 10.0},
        {"fov_deg": 20.0, "view_m": 10.0, "mount_height_m": 0.3, "pitch_deg": 0.0},
        {"mount_forward_m": -10.0, "bonnet": True, "appearance": "held-out"},
    ],
)
def test_extreme_settings_still_render_a_frame_and_a_mask(settings):
    config = CameraConfig(kind="dashcam", **settings)
    road = straight_road(lanes=2)
    ego = add_car(road, 100.0, 1.0)
    add_car(road, 108.0, 4.0)
    add_car(road, 100.0, 4.0)  # beside the ego: clipped at the near plane
    camera = Dashcam(config)
    assert camera.render(road, ego).shape == (config.height, config.width, 3)
    assert camera.render_mask(road, ego).shape == (config.height, config.width)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "fisheye"),
        ("mount_height_m", 0.0),
        ("mount_height_m", float("nan")),
        ("mount_forward_m", float("inf")),
        ("pitch_deg", -5.0),
        ("pitch_deg", 75.0),
        ("fov_deg", 0.0),
        ("fov_deg", 179.0),
        ("view_m", 5.0),
        ("view_m", "70"),
        ("bonnet", "yes"),
        ("appearance", "dusk"),
    ],
)
def test_bad_dashcam_settings_raise_one_line_naming_the_field(field, value):
    config = CameraConfig(**{"kind": "dashcam", field: value})
    with pytest.raises(CameraError, match=field) as error:
        config.validate()
    assert "\n" not in str(error.value)
    with pytest.raises(CameraError, match=field):
        make_camera(config)


@pytest.mark.parametrize(("field", "value"), [("appearance", "held-out"), ("bonnet", True)])
def test_the_top_down_camera_refuses_dashcam_only_looks(field, value):
    with pytest.raises(CameraError, match=f"{field}.*kind='dashcam'") as error:
        CameraConfig(**{field: value}).validate()
    assert "\n" not in str(error.value)


def test_the_top_down_cameras_training_look_is_its_fixed_look():
    env = make_env("winding-road")
    env.reset(seed=5)
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    plain, train = CameraConfig(), CameraConfig(appearance="train")
    train.validate()
    frame = make_camera(train).render(road, ego)
    assert np.array_equal(frame, make_camera(plain).render(road, ego))


def test_dashcam_refuses_a_top_down_config_a_non_road_and_a_negative_seed():
    with pytest.raises(CameraError, match="kind='dashcam'"):
        Dashcam(CameraConfig())
    with pytest.raises(CameraError, match="env.unwrapped.road"):
        Dashcam(DASHCAM).reset(object())
    with pytest.raises(CameraError, match="seed"):
        Dashcam(DASHCAM).reset(straight_road(), seed=-1)


def test_the_factory_builds_the_camera_the_kind_asks_for():
    assert isinstance(make_camera(CameraConfig()), Camera)
    assert isinstance(make_camera(DASHCAM), Dashcam)
    assert isinstance(make_env("highway-v0", DASHCAM).camera, Dashcam)


def test_dashcam_settings_survive_the_world_round_trip():
    world = World(camera=CameraConfig(kind="dashcam", pitch_deg=8.0, appearance="held-out"))
    assert World.from_dict(world.to_dict()) == world
    assert World.from_dict(World().to_dict()).camera.kind == "topdown"


def test_render_mask_is_aligned_with_the_frame():
    road = straight_road(lanes=2)
    ego = add_car(road, 100.0, 2.0, heading=0.03)
    car = add_car(road, 118.0, 4.0)
    camera = Dashcam(DASHCAM)
    mask, frame = camera.render_mask(road, ego), camera.render(road, ego).astype(int)
    # sky: bright, bluish (the plain look's pale sky and haze), but for the anti-aliased fringe
    # of the car's roof
    sky = frame[mask == MASK_SKY]
    assert len(sky) > 1000
    assert np.mean((sky.min(axis=-1) > 150) & (sky[:, 2] >= sky[:, 0])) > 0.99
    # road and ground, before the haze starts: their plain colours
    clear = np.zeros_like(mask, bool)
    clear[math.ceil(horizon_row(DASHCAM)) + 8 :] = True
    for cls, rgb in ((MASK_ROAD, ROAD_RGB), (MASK_GROUND, GROUND_RGB)):
        pixels = frame[(mask == cls) & clear]
        assert len(pixels) > 100
        assert np.mean(np.abs(pixels - rgb).max(axis=-1) <= 3) > 0.95
    # markings: brighter than the road around them
    assert frame[(mask == MASK_MARKING) & clear].mean() > np.mean(ROAD_RGB) + 40
    # the car: where it is in the mask, the frame differs from the frame without it, and
    # nowhere else (but for its anti-aliased fringe)
    road.vehicles.remove(car)
    changed = np.abs(frame - camera.render(road, ego)).max(axis=-1) > 0
    on_car = mask == MASK_VEHICLE
    assert on_car.sum() > 20 and changed[on_car].mean() > 0.95
    fringe = cv2.dilate(on_car.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not changed[~fringe].any()
