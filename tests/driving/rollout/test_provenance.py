"""metrics.json says what produced it, on one scale for rates, and old-scale caches are redone."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest
from conftest import save_untrained

from driving.rollout.evaluate import EvalConfig, evaluate
from driving.rollout.report import format_table
from envs import eval_seeds


@pytest.fixture(scope="module")
def net_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("provenance")
    checkpoint = save_untrained(root / "best.pt")
    cfg = EvalConfig(
        str(checkpoint), episodes=1, out=root / "eval", workers=1, video=0, compare_expert=False
    )
    return checkpoint, cfg, evaluate(cfg)


def test_metrics_json_names_the_checkpoint_by_hash_with_version_and_date(net_report):
    checkpoint, cfg, _ = net_report
    saved = json.loads((cfg.out / "metrics.json").read_text())
    made = saved["provenance"]
    assert made["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert made["checkpoint"] == str(checkpoint)
    assert made["package_version"] not in ("", None)
    created = datetime.fromisoformat(made["created_utc"])
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 3600
    # the settings keep their types, in metrics.json and in config.json
    for config in (saved["config"], json.loads((cfg.out / "config.json").read_text())):
        assert config["episodes"] == 1 and config["compare_expert"] is False
        assert config["out"] == str(cfg.out)


def test_every_rate_is_a_fraction(net_report):
    _, _, report = net_report
    for metrics in (report["overall"], *report["episodes"]):
        for key in ("success_rate", "autonomy", "speeding_share"):
            if key in metrics:  # an episode has success (a bool) instead of a rate
                assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert "autonomy" in report["episodes"][0]
    # an untrained net needs the expert: autonomy well below 1, so a percentage would show here
    assert report["overall"]["interventions"] > 0 and report["overall"]["autonomy"] < 1.0


def test_the_table_prints_fractions_as_percentages():
    table = format_table({"policy": {"success_rate": 0.98, "autonomy": 0.9967}})
    assert "| success rate | 98.0% |" in table
    assert "| autonomy | 99.67% |" in table


def test_an_episode_cached_on_the_percent_scale_is_driven_again(tmp_path):
    evaluate(EvalConfig("expert", episodes=1, out=tmp_path, workers=1, video=0))
    cached = tmp_path / "episodes" / "policy" / f"{eval_seeds(1)[0]}.json"
    saved = json.loads(cached.read_text())
    del saved["metrics_version"]  # as an older version wrote it
    saved["result"]["autonomy"] = 100.0
    cached.write_text(json.dumps(saved))
    report = evaluate(EvalConfig("expert", episodes=1, out=tmp_path, workers=1, video=0))
    assert report["episodes"][0]["autonomy"] == 1.0
