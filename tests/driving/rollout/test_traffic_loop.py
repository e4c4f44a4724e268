"""The same commands collect, train and evaluate in traffic; evaluation lets lane changes pass."""

import json

import pytest

from driving.data import read_episode, scan
from driving.learn.train import TrainConfig, train
from driving.record.collect import CollectConfig, collect
from driving.rollout.evaluate import EvalConfig, evaluate
from driving.rollout.loop import LANE_CHANGE_S, drive, rollout
from driving.rollout.report import format_table
from envs import eval_seeds
from envs.traffic_expert import TrafficExpert
from envs.world import World, make_env, make_expert, scenario_config

LANE_CHANGING_SEED = eval_seeds(1)[0]  # the expert changes lanes 6 times on this road


class Straddler(TrafficExpert):
    """The traffic expert driving 1.2 m off its lane's centre, towards the middle of the road."""

    def _reference(self) -> tuple[float, float]:
        reference, rate = super()._reference()
        inward = 1.0 if self.lane < self._env.road_map.lanes - 1 else -1.0
        return reference + 1.2 * inward, rate


def test_lane_changes_are_not_interventions_and_traffic_metrics_are_reported():
    env = make_env("winding-traffic", terminate_off_road=False)
    result = rollout(env, make_expert(env), make_expert(env), LANE_CHANGING_SEED)
    traffic = result["traffic"]
    # Each lane change took the car across a lane line, more than 1 m (the lane-keeping
    # threshold: lanes are 3.2 to 4 m wide) off a lane centre, yet the expert driving as the
    # policy was never taken over.
    assert traffic["lane_changes"] >= 2
    assert result["interventions"] == 0 and result["autonomy"] == 1.0
    assert traffic["clean"] and traffic["collisions"] == 0 and traffic["driving_score"] == 1.0
    assert result["success"]


def test_staying_off_the_lane_centre_is_an_intervention_after_the_lane_change_allowance():
    env = make_env("winding-traffic", terminate_off_road=False)
    steps = list(drive(env, Straddler(env), make_expert(env), LANE_CHANGING_SEED))
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    first_off = next(i for i, s in enumerate(steps) if abs(s.info["lateral_offset"]) > 1.0)
    first_intervention = next(i for i, s in enumerate(steps) if s.intervention)
    allowed = round(LANE_CHANGE_S / dt)  # steps off the centre that a lane change may take
    assert first_intervention - first_off >= allowed
    # It began once the car had been off the centre for longer than that, not before.
    assert all(
        abs(s.info["lateral_offset"]) > 1.0
        for s in steps[first_intervention - allowed :][: allowed + 1]
    )
    assert (
        not steps[first_intervention].info["crashed"] and steps[first_intervention].info["on_road"]
    )


def test_collect_train_and_evaluate_take_the_traffic_scenario(tmp_path):
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "eval"
    dense = World(scenario="highway-traffic", density="dense")
    collect(CollectConfig(out=data, episodes=1, world=dense))
    episode = read_episode(scan(data)[0][0])
    assert episode.world == dense and 20 <= episode.meta["density"] <= 35  # drawn vehicles/km
    train(TrainConfig(data=data, run=run, epochs=1, val_fraction=0.0, batch_size=64))
    # The checkpoint names its world, and evaluation drives there unless told otherwise.
    assert EvalConfig(str(run / "best.pt")).world() == dense
    light = EvalConfig(str(run / "best.pt"), density="light").world()
    assert (light.scenario, light.density) == ("highway-traffic", "light")
    report = evaluate(
        EvalConfig(
            str(run / "best.pt"), episodes=1, out=out, workers=1, video=0, compare_expert=False,
            clips=False, density="light",
        )
    )  # fmt: skip
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["scenario"] == "highway-traffic" and saved["density"] == "light"
    for key in ("clean_share", "collisions_per_km", "headway_under_share", "driving_score"):
        assert key in report["overall"]
    assert report["episodes"][0]["traffic"]["distance_m"] > 0
    assert "driving score" in report["table"]


def test_a_density_needs_a_traffic_scenario_and_a_known_level():
    assert scenario_config("winding-traffic", "dense") == {"density": "dense"}
    assert scenario_config("highway-traffic", "12.5") == {"density": 12.5}
    assert scenario_config("winding-road") == {}
    with pytest.raises(ValueError, match="--density is for the traffic scenarios"):
        scenario_config("winding-road", "dense")
    with pytest.raises(ValueError, match="light, default, dense|'light', 'default', 'dense'"):
        scenario_config("winding-traffic", "busy")
    with pytest.raises(ValueError, match=">= 0"):
        scenario_config("winding-traffic", "-3")


def test_the_table_shows_traffic_rows_and_a_dash_where_a_driver_has_none():
    plain = {
        "success_rate": 1.0, "autonomy": 1.0, "interventions_per_km": 0.0, "distance_km": 1.0,
        "mean_abs_lateral_offset": 0.1, "mean_speed": 10.0, "speeding_share": 0.0,
        "speeding_violations": 0, "peak_lateral_accel": 1.0, "mean_peak_lateral_accel": 1.0,
    }  # fmt: skip
    traffic = {"clean_share": 0.9, "collisions_per_km": 0.25, "headway_under_share": 0.01,
               "lane_changes_per_km": 2.0, "driving_score": 0.95}  # fmt: skip
    table = format_table({"policy": plain | traffic | {"speed_ratio_to_expert": 0.9},
                          "expert": plain | traffic})  # fmt: skip
    assert "| clean: no collision, on the road | 90.0% | 90.0% |" in table
    assert "| mean speed / expert's | 0.900 | - |" in table
    assert "driving score" not in format_table({"policy": plain})
