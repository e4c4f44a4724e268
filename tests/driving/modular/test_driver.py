"""The modular driver closed-loop: it finishes held-out roads from the camera frame alone, with
its estimates logged against the ground truth at every step."""

import pytest

from driving.modular.driver import ModularDriver
from driving.rollout.drivers import CAMERAS, drivers
from driving.rollout.loop import drive, rollout
from envs import eval_seeds
from envs.camera import CameraConfig
from envs.world import World


def test_the_driver_reads_no_ground_truth_only_the_frame_and_the_speedometer():
    env, driver, expert = drivers("modular", World(camera=CAMERAS["dashcam"]))
    assert isinstance(driver, ModularDriver)
    obs, _ = env.reset(seed=eval_seeds(1)[0])
    action = driver.act({"image": obs["image"], "speed": obs["speed"]})  # nothing else given
    assert action.shape == (2,) and all(-1 <= a <= 1 for a in action)
    assert set(driver.estimate) == {"lateral_offset", "heading_error", "curvature"}


def test_every_step_logs_the_estimate_beside_the_truth_of_the_frame_it_was_made_in():
    env, driver, expert = drivers("modular", World(), terminate_off_road=False)
    for k, step in enumerate(drive(env, driver, expert, eval_seeds(1)[0])):
        assert step.info["estimate"] == driver.estimate
        truth = step.info["estimate_truth"]
        assert truth["lateral_offset"] == step.state["lateral_offset"]
        assert truth["curvature"] == step.state["curvature"]
        if k == 30:
            break


@pytest.mark.slow
@pytest.mark.parametrize(
    "camera",
    [CameraConfig(), CameraConfig(kind="dashcam", appearance="held-out")],
    ids=["top-down", "dashcam held-out look"],
)
def test_the_modular_driver_finishes_held_out_roads(camera):
    env, driver, expert = drivers("modular", World(camera=camera), terminate_off_road=False)
    for seed in eval_seeds(3):
        metrics = rollout(env, driver, expert, seed)
        assert metrics["success"], f"road {seed}: {metrics['interventions']} interventions"
        errors = metrics["perception"]["errors"]["lateral_offset"]
        assert len(errors) > 500  # a frame's error per step it drove (a 1 km road)
