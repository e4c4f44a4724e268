"""Tests for the ego-centric camera, on real highway-env roads (no mocks).

Frame geometry used throughout (default CameraConfig): the ego's centre is at column
(width - 1) / 2 = 99.5 and row ahead_m * height / (ahead_m + behind_m) - 0.5; lateral scale is
width / span_m = 6.67 px/m, forward scale height / (ahead_m + behind_m) = 1.43 px/m.
"""

import math

import gymnasium
import highway_env  # noqa: F401  (registers the environments)
import numpy as np
import pytest
from highway_env.road.lane import (
    CircularLane,
    LineType,
    PolyLane,
    PolyLaneFixedWidth,
    SineLane,
    StraightLane,
)
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.kinematics import Vehicle

from envs.camera import (
    EGO_RGB,
    GROUND_RGB,
    MASK_EGO,
    MASK_GROUND,
    MASK_MARKING,
    MASK_ROAD,
    MASK_VEHICLE,
    ROAD_RGB,
    VEHICLE_RGB,
    Camera,
    CameraConfig,
)

CONFIG = CameraConfig()
PX_PER_M_X = CONFIG.width / CONFIG.span_m  # lateral [px/m]
PX_PER_M_Y = CONFIG.height / (CONFIG.ahead_m + CONFIG.behind_m)  # forward [px/m]
SOLID = (LineType.CONTINUOUS_LINE, LineType.CONTINUOUS_LINE)


def make_env(name: str) -> gymnasium.Env:
    config = {
        "observation": {"type": "AttributesObservation", "attributes": ["time"]},
        "action": {"type": "ContinuousAction"},
    }
    env = gymnasium.make(name, config=config, disable_env_checker=True)
    env.reset(seed=0)
    return env


def one_lane_road(lane_width: float = 4.0, y: float = 0.0) -> tuple[Road, Vehicle]:
    """A 2 km straight 1-lane road along +x at height y with solid edges, ego at x = 100 m."""
    network = RoadNetwork()
    network.add_lane("a", "b", StraightLane([0, y], [2000, y], width=lane_width, line_types=SOLID))
    road = Road(network=network, np_random=np.random.default_rng(0))
    ego = Vehicle(road, [100.0, y], heading=0.0, speed=10.0)
    road.vehicles.append(ego)
    return road, ego


def colour_mask(frame: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.all(frame == np.array(rgb, np.uint8), axis=-1)


def marking_columns(frame: np.ndarray) -> np.ndarray:
    """Per row, the mean column of the lane markings [px], shape (height,).

    Each marking's column is the centroid of its "whiteness": road, ground and vehicles all have
    a channel <= 64, markings and their anti-aliased blends lift the darkest one. Markings are
    averaged unweighted: weighting by total whiteness would let the sampling phase of the warp
    tip the balance between two far-apart lines by a fraction of a pixel.
    """
    whiteness = np.clip(frame.min(axis=-1).astype(float) - 64.0, 0.0, None)
    columns = np.arange(frame.shape[1])
    means = []
    for row in whiteness:
        edges = np.diff(np.concatenate([[0], (row > 0).astype(int), [0]]))
        runs = zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
        centroids = [(row[a:b] * columns[a:b]).sum() / row[a:b].sum() for a, b in runs]
        means.append(np.mean(centroids))
    return np.array(means)


def frame_to_world(camera_config: CameraConfig, ego, u: float, v: float) -> np.ndarray:
    """World point [m] seen at frame pixel (u, v), independent of the camera's implementation."""
    sx = camera_config.width / camera_config.span_m
    sy = camera_config.height / (camera_config.ahead_m + camera_config.behind_m)
    forward_m = camera_config.ahead_m - (v + 0.5) / sy
    right_m = (u + 0.5 - camera_config.width / 2) / sx
    c, s = math.cos(ego.heading), math.sin(ego.heading)
    return np.asarray(ego.position) + forward_m * np.array([c, s]) + right_m * np.array([-s, c])


def check_road_matches_lanes(frame: np.ndarray, road: Road, ego) -> tuple[int, int]:
    """Road-coloured pixels lie on a lane, ground-coloured ones on none; returns both counts.

    Pixels within 0.5 m of a lane's border or end are ambiguous at this resolution and skipped,
    as are markings, vehicles and blends (any other colour).
    """
    lanes = road.network.lanes_list()
    n_road = n_ground = 0
    for v in np.linspace(0, CONFIG.height - 1, 12).round().astype(int):
        for u in np.linspace(0, CONFIG.width - 1, 34).round().astype(int):
            point = frame_to_world(CONFIG, ego, u, v)
            inside, ambiguous = False, False
            for lane in lanes:
                s, lateral = lane.local_coordinates(point)
                margin = abs(lateral) - lane.width_at(s) / 2
                in_length = 0 <= s <= lane.length
                near_end = min(abs(s), abs(s - lane.length)) < 0.5 and margin < 0.5
                inside |= in_length and margin < 0
                ambiguous |= (in_length and abs(margin) < 0.5) or near_end
            if ambiguous:
                continue
            if colour_mask(frame[v : v + 1, u : u + 1], ROAD_RGB)[0, 0]:
                assert inside, f"road colour at pixel ({u}, {v}) = world {point}, off every lane"
                n_road += 1
            elif colour_mask(frame[v : v + 1, u : u + 1], GROUND_RGB)[0, 0]:
                assert not inside, f"ground colour at pixel ({u}, {v}) = world {point}, on a lane"
                n_ground += 1
    return n_road, n_ground


@pytest.mark.parametrize("name", ["highway-v0", "racetrack-v1"])
def test_stock_scenarios_give_a_rich_frame_with_road_and_ground_where_the_lanes_are(name):
    env = make_env(name)
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    camera = Camera()
    camera.reset(road)
    for _ in range(3):
        frame = camera.render(road, ego)
        assert frame.shape == (66, 200, 3)
        assert frame.dtype == np.uint8
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) >= 20
        assert frame.std() > 20
        assert colour_mask(frame, ROAD_RGB).mean() > 0.1
        assert colour_mask(frame, GROUND_RGB).mean() > 0.1
        assert colour_mask(frame, EGO_RGB).sum() > 20
        n_road, n_ground = check_road_matches_lanes(frame, road, ego)
        assert n_road > 20 and n_ground > 20
        env.step(np.array([0.3, 0.0], np.float32))  # straight on: stays on the road
    env.close()


def test_markings_run_vertically_when_aligned_and_tilt_left_ahead_when_heading_turns_right():
    road, ego = one_lane_road()
    camera = Camera()
    rows = np.arange(CONFIG.height)
    aligned = marking_columns(camera.render(road, ego))
    assert aligned == pytest.approx(np.full(CONFIG.height, (CONFIG.width - 1) / 2), abs=0.3)

    # Screen y points down, so heading += 0.3 turns the car clockwise on screen: to its right.
    # The road now runs 0.3 rad to the car's left, so ahead (up the frame, smaller rows) the
    # markings sit further left (smaller columns): +tan(0.3) m of lateral per metre backwards.
    ego.heading += 0.3
    tilted = marking_columns(camera.render(road, ego))
    assert tilted[0] < tilted[-1] - 50
    slope = np.polyfit(rows, tilted, 1)[0]  # [px/row]
    expected = math.tan(0.3) * PX_PER_M_X / PX_PER_M_Y
    assert slope == pytest.approx(expected, rel=0.05)


def test_road_under_the_ego_and_ground_beside_a_one_lane_road():
    road, ego = one_lane_road()
    frame = Camera().render(road, ego)
    ego_row = round(CONFIG.ahead_m * PX_PER_M_Y - 0.5)
    centre_col = CONFIG.width // 2
    assert tuple(frame[ego_row, centre_col]) == EGO_RGB
    # The ego box hides the road under its centre: look 4 m ahead, past its front bumper.
    ahead_row = round((CONFIG.ahead_m - 4.0) * PX_PER_M_Y - 0.5)
    assert tuple(frame[ahead_row, centre_col]) == ROAD_RGB
    assert tuple(frame[ahead_row, centre_col + round(1.0 * PX_PER_M_X)]) == ROAD_RGB
    side = round(12.0 * PX_PER_M_X)  # 12 m each side, 10 m off a 4 m wide road
    assert tuple(frame[ego_row, centre_col + side]) == GROUND_RGB
    assert tuple(frame[ego_row, centre_col - side]) == GROUND_RGB


@pytest.mark.parametrize("name", ["highway-v0", "racetrack-v1"])
def test_frame_does_not_depend_on_the_action_no_label_leak(name):
    env = make_env(name)
    env.step(np.array([0.0, 0.8], np.float32))  # the ego has really steered once
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    camera = Camera()
    ego.action = {"steering": 0.5, "acceleration": 1}
    left = camera.render(road, ego)
    ego.action = {"steering": -0.5, "acceleration": 1}
    right = camera.render(road, ego)
    np.testing.assert_array_equal(left, right)
    env.close()


def test_custom_size_and_field_of_view_centre_the_ego():
    config = CameraConfig(height=100, width=100, ahead_m=20.0, behind_m=20.0, span_m=40.0)
    road, ego = one_lane_road()
    frame = Camera(config).render(road, ego)
    assert frame.shape == (100, 100, 3)
    rows, cols = np.nonzero(colour_mask(frame, EGO_RGB))
    assert rows.mean() == pytest.approx(49.5, abs=0.5)
    assert cols.mean() == pytest.approx(49.5, abs=0.5)
    # Isotropic here (2.5 px/m both ways): the 5 m x 2 m ego box is ~12.5 px tall, 5 px wide.
    assert rows.max() - rows.min() + 1 == pytest.approx(12.5, abs=1.5)
    assert cols.max() - cols.min() + 1 == pytest.approx(5, abs=1.5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("height", 0),
        ("width", -5),
        ("height", 66.5),
        ("width", True),
        ("ahead_m", 0.0),
        ("behind_m", -1.0),
        ("span_m", 0.0),
        ("span_m", float("nan")),
        ("ahead_m", "40"),
    ],
)
def test_bad_config_raises_a_one_line_value_error_naming_the_field(field, value):
    config = CameraConfig(**{field: value})
    with pytest.raises(ValueError, match=field) as error:
        config.validate()
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=field):
        Camera(config)


def test_reset_rejects_something_that_is_not_a_road():
    with pytest.raises(ValueError, match="env.unwrapped.road"):
        Camera().reset(object())


def test_moving_the_ego_one_metre_sideways_shifts_the_markings_by_width_over_span_px():
    road, ego = one_lane_road()
    camera = Camera()
    before = marking_columns(camera.render(road, ego))
    ego.position = ego.position + np.array([0.0, 1.0])  # 1 m to the ego's right (heading 0)
    after = marking_columns(camera.render(road, ego))
    # The road stays put, so in the ego's view it moves left.
    assert np.median(after - before) == pytest.approx(-PX_PER_M_X, abs=0.15)


def test_a_new_road_object_is_picked_up_without_calling_reset():
    road_a, ego_a = one_lane_road(y=0.0)
    road_b, _ = one_lane_road(y=3.0)  # same place, lane 3 m further right
    camera = Camera()
    on_a = marking_columns(camera.render(road_a, ego_a))
    on_b = marking_columns(camera.render(road_b, ego_a))
    assert np.median(on_b - on_a) == pytest.approx(3.0 * PX_PER_M_X, abs=0.15)


def test_frames_agree_across_local_map_redraws_on_a_10_km_highway():
    env = make_env("highway-v0")
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    camera = Camera()
    camera.render(road, ego)
    for distance in [60.0, 3000.0, 9000.0]:  # the first stays in the map, the others redraw it
        ego.position = np.array([distance, ego.position[1]])
        frame = camera.render(road, ego)
        fresh = Camera().render(road, ego)
        difference = np.abs(frame.astype(int) - fresh.astype(int))
        assert difference.mean() < 1.0
        assert (difference > 40).mean() < 0.01
        assert colour_mask(frame, ROAD_RGB).mean() > 0.1
    env.close()


def test_every_lane_type_is_drawn_where_the_lane_is():
    network = RoadNetwork()
    network.add_lane("a", "b", StraightLane([0, 0], [100, 0], width=4, line_types=SOLID))
    network.add_lane("b", "c", CircularLane([100, 30], 30, -math.pi / 2, 0, line_types=SOLID))
    network.add_lane("c", "d", SineLane([130, 30], [130, 130], 3.0, 0.1, 0.0, line_types=SOLID))
    points = [(130 + 2 * math.sin(0.2 * i), 130 + 10 * i) for i in range(11)]
    network.add_lane("d", "e", PolyLaneFixedWidth(points, width=5))  # line_types None
    centre = [(x + 40, y) for x, y in points]  # a separate lane 40 m to the right, 6 m wide
    left, right = [(x - 3, y) for x, y in centre], [(x + 3, y) for x, y in centre]
    network.add_lane("f", "g", PolyLane(centre, left, right, SOLID))
    road = Road(network=network, np_random=np.random.default_rng(0))
    camera = Camera()
    for lane in road.network.lanes_list():
        for s in (2.0, lane.length / 2):  # some lanes lead nowhere: too little road near the end
            ego = Vehicle(road, lane.position(s, 0.0), heading=lane.heading_at(s))
            frame = camera.render(road, ego)
            n_road, _ = check_road_matches_lanes(frame, road, ego)
            assert n_road > 20, f"{type(lane).__name__} at s={s:.0f} m drew little road"


def test_cue_mask_marks_markings_edges_vehicles_where_the_frame_draws_them():
    # Given a straight 2-lane road (solid edges, dashed centre line) and a car ahead
    network = RoadNetwork()
    for i, types in enumerate(
        [(LineType.CONTINUOUS_LINE, LineType.STRIPED), (LineType.NONE, LineType.CONTINUOUS_LINE)]
    ):
        lane = StraightLane([0, 4.0 * i], [2000, 4.0 * i], width=4.0, line_types=types)
        network.add_lane("a", "b", lane)
    road = Road(network=network, np_random=np.random.default_rng(0))
    ego = Vehicle(road, [100.0, 0.0], heading=0.0, speed=10.0)
    other = Vehicle(road, [120.0, 4.0], heading=0.0, speed=10.0)
    road.vehicles += [ego, other]
    camera = Camera()
    # When the frame and the cue mask are rendered
    frame = camera.render(road, ego)
    mask = camera.render_mask(road, ego)
    # Then the mask has the frame's size and the classes sit where the frame shows them
    assert mask.shape == frame.shape[:2] and mask.dtype == np.uint8
    white = frame.min(axis=-1) > 150
    assert white.sum() > 100
    assert (mask[white] == MASK_MARKING).mean() > 0.95
    assert (mask[colour_mask(frame, VEHICLE_RGB)] == MASK_VEHICLE).all()
    assert (mask[colour_mask(frame, EGO_RGB)] == MASK_EGO).all()
    assert (mask[colour_mask(frame, ROAD_RGB)] == MASK_ROAD).all()
    ground = colour_mask(frame, GROUND_RGB)
    assert (mask[ground] == MASK_GROUND).mean() > 0.97  # the rest: the edge band's outer pixel
    # The road's outer edges are a band of 1-3 px per row on each side, also where no line is
    # painted (the right lane's right edge is solid, the left lane's left edge too; no gap).
    row = mask[10]
    cues = np.flatnonzero(row == MASK_MARKING)
    road_cols = np.flatnonzero(row != MASK_GROUND)
    assert cues.min() == road_cols.min() and cues.max() == road_cols.max()
    # The frame does not change when the mask is rendered in between
    assert np.array_equal(camera.render(road, ego), frame)


def test_cue_mask_has_road_edges_where_no_marking_is_painted():
    network = RoadNetwork()
    nothing = (LineType.NONE, LineType.NONE)
    network.add_lane("a", "b", StraightLane([0, 0], [2000, 0], width=4.0, line_types=nothing))
    road = Road(network=network, np_random=np.random.default_rng(0))
    ego = Vehicle(road, [100.0, 0.0], heading=0.0, speed=10.0)
    road.vehicles.append(ego)
    mask = Camera().render_mask(road, ego)
    for row in mask[:40]:  # ahead of the ego
        band = np.flatnonzero(row == MASK_MARKING)
        assert 2 <= len(band) <= 6  # two edges, 1-3 px each
        assert (row == MASK_ROAD).sum() > 15  # 4 m lane = 26.7 px, less the edges


# ---------------------------------------------------------------- against a reference rendering

# The tolerance of the fast camera (map cache + one bilinear warp) against the slow point-by-point
# reference of envs/camera_reference.py (4x4 samples per pixel). Measured on 104 poses of expert
# drives (winding roads, highway-v0 with traffic, racetrack-v1): 95.9 to 98.9 % of pixels of the
# same class (median 97.5 to 98.2 %), mean absolute difference 1.9 to 5.5 grey levels. The two
# causes: the camera's anti-aliased markings are about 1.8x wider than the nominal 0.25 m, and
# it samples each pixel row at its centre where the reference averages the 0.7 m the row spans, so
# markings crossing the view show up brighter or vanish. Moving the reference's viewpoint 0.2 m
# sideways or turning it 1 degree breaks these bounds on most roads.
SAME_CLASS_MIN = 0.95
MEAN_ABS_DIFF_MAX = 6.0


def poses_on_arcs(network, count: int):
    """(position, heading) on the winding road's arcs, off centre and misaligned as in the data."""
    arcs = [lane for lane in network.lanes_list() if isinstance(lane, CircularLane)]
    for i, lane in enumerate(arcs[:count]):
        s = lane.length * (0.3 + 0.4 * (i % 2))
        yield lane.position(s, 0.6 * (-1) ** i), lane.heading_at(s) + 0.08 * (-1) ** i


@pytest.mark.parametrize("seed", [0, 5, 11])
def test_fast_frames_match_the_reference_rendering_on_curves(seed):
    from envs.camera_reference import compare, reference_frame
    from envs.road import make_road

    road = Road(network=make_road(seed).network, np_random=np.random.default_rng(0))
    ego = Vehicle(road, [0.0, 0.0])
    road.vehicles.append(ego)
    camera = Camera()
    for position, heading in poses_on_arcs(road.network, 3):
        ego.position, ego.heading = np.asarray(position), heading
        same_class, mean_abs_diff = compare(camera.render(road, ego), reference_frame(road, ego))
        assert same_class >= SAME_CLASS_MIN and mean_abs_diff < MEAN_ABS_DIFF_MAX, (position,)


@pytest.mark.parametrize("name", ["highway-v0", "racetrack-v1"])
def test_fast_frames_match_the_reference_rendering_with_traffic(name):
    from envs.camera_reference import classes, compare, reference_frame

    env = make_env(name)
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    camera = Camera()
    vehicles_seen = 0
    others = [v for v in road.vehicles if v is not ego][:3]
    for i, other in enumerate(others):  # the ego placed behind each, a little off and turned
        lane = other.lane
        s, _ = lane.local_coordinates(other.position)
        ego.position = lane.position(s - 8.0 - 4.0 * i, 0.8 - 0.8 * i)
        ego.heading = lane.heading_at(s - 8.0) + 0.05 * (i - 1)
        reference = reference_frame(road, ego)
        same_class, mean_abs_diff = compare(camera.render(road, ego), reference)
        assert same_class >= SAME_CLASS_MIN and mean_abs_diff < MEAN_ABS_DIFF_MAX
        vehicles_seen += int((classes(reference) == 3).sum())
    assert vehicles_seen > 100  # the comparison covered other vehicles too
    env.close()


def test_the_reference_comparison_catches_a_viewpoint_off_by_a_fraction_of_a_metre():
    from envs.camera_reference import compare, reference_frame

    env = make_env("highway-v0")
    road, ego = env.unwrapped.road, env.unwrapped.vehicle
    fast = Camera().render(road, ego)
    ego.position = ego.position + np.array([0.0, 0.3])  # the reference looks 0.3 m to the side
    same_class, mean_abs_diff = compare(fast, reference_frame(road, ego))
    assert same_class < SAME_CLASS_MIN or mean_abs_diff >= MEAN_ABS_DIFF_MAX
    env.close()
