"""Viewpoint-shift augmentation: real renders from a shifted pose, labels that steer back."""

from pathlib import Path

import numpy as np
import pytest

from driving.data import read_episode, scan
from driving.record.collect import CollectConfig, NoiseConfig, collect
from driving.record.viewpoint import ViewpointConfig, ViewSampler, render_shifted
from envs.camera import ROAD_RGB
from envs.expert import Expert
from envs.world import make_env


def _road_centre_column(frame: np.ndarray) -> float:
    """Mean column of the road-surface pixels in the bottom half of a frame."""
    bottom = frame[frame.shape[0] // 2 :]
    road = np.all(bottom == ROAD_RGB, axis=-1)
    return float(np.nonzero(road)[1].mean())


def test_a_shifted_view_is_rendered_and_its_label_steers_back_to_the_centre():
    env = make_env()
    expert = Expert(env)
    env.reset(seed=7)
    ego = env.unwrapped.vehicle
    pose = ego.position.copy(), ego.heading
    centre = render_shifted(env, expert, 0.0, 0.0)
    right = render_shifted(env, expert, 0.8, 0.0)
    left = render_shifted(env, expert, -0.8, 0.0)
    turned = render_shifted(env, expert, 0.0, 0.06)
    # The true pose is restored after each render.
    assert np.array_equal(ego.position, pose[0]) and ego.heading == pose[1]
    # The ground truth at the shifted pose is the shift.
    assert abs(right["lateral_offset"] - centre["lateral_offset"] - 0.8) < 1e-6
    assert abs(turned["heading_error"] - centre["heading_error"] - 0.06) < 1e-6
    # Moving the camera right moves the road left in the frame, and the other way round.
    assert _road_centre_column(right["frame"]) < _road_centre_column(centre["frame"]) - 3
    assert _road_centre_column(left["frame"]) > _road_centre_column(centre["frame"]) + 3
    # The labels turn back towards the lane centre and heading (positive offset and heading
    # error point right on screen; negative steering turns left).
    assert right["label"][0] < centre["label"][0] - 0.05
    assert left["label"][0] > centre["label"][0] + 0.05
    assert turned["label"][0] < centre["label"][0] - 0.05


def test_collection_with_views_writes_a_viewpoint_episode_beside_the_driven_one(tmp_path):
    clean = NoiseConfig(0.0, 0.0, 0.0)
    cfg = CollectConfig(out=tmp_path, episodes=1, noise=clean, viewpoint=ViewpointConfig(views=1))
    collect(cfg)
    episodes = {e.meta["driver"]: e for e in map(read_episode, scan(tmp_path)[0])}
    driven, views = episodes["expert"], episodes["viewpoint"]
    assert views.seed == driven.seed and len(views.frames) == len(driven.frames)
    assert np.array_equal(views.actions, views.labels)  # nothing was executed from a shifted pose
    assert np.abs(views.lateral_offset).mean() > 3 * np.abs(driven.lateral_offset).mean()
    assert abs(np.abs(views.lateral_offset - driven.lateral_offset).std() - 0.6) < 0.3
    # Steering back: the correction is (nearly) linear in the shift and the turn, and turns
    # left (negative) for a camera moved or turned right (positive).
    shift = views.lateral_offset - driven.lateral_offset
    turn = views.heading_error - driven.heading_error
    correction = views.labels[:, 0] - driven.labels[:, 0]
    design = np.stack([shift, turn, np.ones_like(shift)], axis=1)
    coef, *_ = np.linalg.lstsq(design, correction, rcond=None)
    explained = 1 - np.var(correction - design @ coef) / np.var(correction)
    assert coef[0] < 0 and coef[1] < 0 and explained > 0.9
    assert views.meta["viewpoint"]["views"] == 1


def test_the_camera_rig_adds_a_left_and_a_right_view_of_every_frame_labelled_to_steer_back(
    tmp_path,
):
    clean = NoiseConfig(0.0, 0.0, 0.0)
    rig = ViewpointConfig(rig_m=0.6)
    assert ViewSampler(rig, seed=0).shifts() == [(-0.6, 0.0), (0.6, 0.0)]
    collect(CollectConfig(out=tmp_path, episodes=1, noise=clean, viewpoint=rig))
    episodes = {e.meta["driver"]: e for e in map(read_episode, scan(tmp_path)[0])}
    driven, views = episodes["expert"], episodes["viewpoint"]
    assert len(views.frames) == 2 * len(driven.frames)
    left, right = views.lateral_offset[0::2], views.lateral_offset[1::2]
    assert np.allclose(left - driven.lateral_offset, -0.6, atol=1e-4)
    assert np.allclose(right - driven.lateral_offset, 0.6, atol=1e-4)
    # The left camera's label steers right (positive), the right camera's left.
    assert (views.labels[0::2, 0] > driven.labels[:, 0]).mean() > 0.95
    assert (views.labels[1::2, 0] < driven.labels[:, 0]).mean() > 0.95


def test_the_rig_and_shifted_views_need_the_expert_and_a_sane_mount():
    with pytest.raises(ValueError, match="rig-m"):
        ViewpointConfig(rig_m=-1).validate()
    keyboard = CollectConfig(out=Path("x"), driver="keyboard", viewpoint=ViewpointConfig(rig_m=0.5))
    with pytest.raises(ValueError, match="--driver expert"):
        keyboard.validate()
