"""scripts/compare_drivers.py: every driver on the same roads and worlds, the four claims."""

import json
import sys
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))

import compare_drivers as cd  # noqa: E402

from driving.rollout.drivers import policy_world  # noqa: E402
from envs.world import World  # noqa: E402
from tests.conftest import save_untrained  # noqa: E402


def test_hand_set_counts_number_literals_and_lines_in_the_source(tmp_path):
    (tmp_path / "a.py").write_text('"""doc"""\nA = 1.0\nB = (2, -3)\nC = A * 2\nNAME = "x"\n')
    (tmp_path / "b.py").write_text("D: float = 0.5\n\ndef f():\n    E = 4\n")
    assert cd.hand_set(tmp_path) == {"constants": 4, "lines": 9}  # A, B's two, D; not C, E


def test_the_hand_built_driver_has_its_constants_counted():
    counted = cd.hand_set()
    assert counted["constants"] >= 15 and counted["lines"] > 300


def test_training_record_reads_steps_and_wall_time_from_the_runs_events(tmp_path):
    checkpoint = save_untrained(tmp_path / "best.pt")
    assert cd.training_record(checkpoint) == {
        "train_frames": None,
        "steps": None,
        "train_min": None,
    }
    writer = SummaryWriter(str(tmp_path))
    for step in (50, 100, 150):
        writer.add_scalar("train/loss", 1.0 / step, step)
    writer.close()
    record = cd.training_record(checkpoint)
    assert record["steps"] == 150 and 0 <= record["train_min"] < 1


def test_attribution_share_over_runs():
    runs = [{"interventions_perception": 1, "interventions_control": 2},
            {"interventions_perception": 2, "interventions_control": 0}]  # fmt: skip
    assert cd.attribution_share(runs) == "3 of 5 (60%)"
    assert cd.attribution_share([{"interventions": 0}]) == "no interventions"


def test_worlds_are_the_suites_and_a_bad_one_is_refused():
    trained = policy_world("modular", camera="dashcam")
    assert cd.shifted("bends 20-40 m", trained).road.radius == (20.0, 40.0)
    assert cd.shifted("held-out looks", trained).camera.appearance == "held-out"
    with pytest.raises(ValueError, match="unknown world 'moon'"):
        cd.shifted("moon", trained)
    with pytest.raises(ValueError, match="does not apply to a topdown camera"):
        cd.shifted("held-out looks", World())


def test_an_unknown_world_stops_the_script_in_one_line_before_any_drive(tmp_path):
    with pytest.raises(SystemExit, match="^error: --worlds: unknown world 'moon'"):
        cd.main(cd.CompareConfig(out=tmp_path / "cmp", roads=1, worlds=["as trained", "moon"]))
    assert not (tmp_path / "cmp").exists()


def test_every_driver_on_the_same_road_in_two_worlds_gives_tables_and_claims(tmp_path):
    net = save_untrained(
        tmp_path / "net.pt", {"world": policy_world("modular", camera="dashcam").to_dict()}
    )
    cfg = cd.CompareConfig(
        out=tmp_path / "cmp", roads=1, pilotnet=[net], worlds=["as trained", "lanes 2.8-3.2 m"],
        workers=1, cost_frames=3, quick=True,
    )  # fmt: skip
    cd.main(cfg)
    text = (cfg.out / "comparison.md").read_text()
    assert "## as trained" in text and "## lanes 2.8-3.2 m" in text and "## The four claims" in text
    summary = json.loads((cfg.out / "comparison.json").read_text())
    for world in cfg.worlds:
        for driver in ("expert", "modular", "pilotnet"):
            (run,) = summary["results"][driver][world]
            assert 0 <= run["success_rate"] <= 1
    lanes = json.loads((cfg.out / "modular" / "lanes-2.8-3.2-m" / "metrics.json").read_text())
    assert lanes["world"]["road"]["lane_width"] == [2.8, 3.2]
    assert summary["results"]["expert"]["as trained"][0]["success_rate"] == 1.0
    assert set(summary["cost_ms"]) == {"expert", "modular", "pilotnet"}
    assert "hand-set constants" in text and "not separable" in text


def test_in_traffic_the_built_in_drivers_drive_among_cars_and_the_table_has_their_rows(tmp_path):
    cfg = cd.CompareConfig(
        out=tmp_path / "cmp", roads=1, scenario="winding-traffic", density="dense",
        worlds=["as trained"], workers=1, cost_frames=3, quick=True,
    )  # fmt: skip
    cd.main(cfg)
    metrics = json.loads((cfg.out / "modular" / "as-trained" / "metrics.json").read_text())
    assert metrics["world"]["scenario"] == "winding-traffic"
    assert metrics["world"]["density"] == "dense"
    assert "perception_gap_ahead_mean" in metrics["overall"]  # it estimated the car ahead
    text = (cfg.out / "comparison.md").read_text()
    assert "| collisions / km |" in text and "| perception: abs gap ahead error [m] |" in text


def test_the_expert_drives_each_road_once_and_is_the_expert_beside_every_driver(tmp_path):
    cfg = cd.CompareConfig(out=tmp_path / "cmp", roads=1, worlds=["as trained"], workers=1)
    own = cd.evaluate_one(cfg, "expert", "expert", "as trained")
    cd.evaluate_one(cfg, "modular", "modular", "as trained")
    copied = sorted((cfg.out / "modular" / "as-trained" / "episodes" / "expert").glob("*.json"))
    drove = sorted((cfg.out / "expert" / "as-trained" / "episodes" / "policy").glob("*.json"))
    assert [p.name for p in copied] == [p.name for p in drove] and len(drove) == 1
    beside = json.loads((cfg.out / "modular" / "as-trained" / "metrics.json").read_text())
    assert beside["expert"]["overall"]["mean_speed"] == own["mean_speed"]
