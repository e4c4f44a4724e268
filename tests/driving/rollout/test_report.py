"""An evaluation explains itself: provenance and one scale for rates in metrics.json, the HParams
tab's settings and metrics in the run's TensorBoard, a model card beside the checkpoint, and a
report page that a real (headless) browser loads and plays."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from driving.learn.checkpoint import save_checkpoint
from driving.learn.model import ModelConfig, PilotNet
from driving.learn.monitor import HPARAM_METRICS
from driving.learn.train import TrainConfig
from driving.rollout.evaluate import EvalConfig, evaluate
from driving.rollout.report import format_table
from envs import eval_seeds

SETTINGS = TrainConfig(data=Path("data/toy"), lr=3e-4, batch_size=64, init=None)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """An untrained net's checkpoint in a run folder, evaluated on one road with `--run`: it
    needs the expert, so the report has interventions and clips."""
    run = tmp_path_factory.mktemp("records") / "run"
    torch.manual_seed(0)
    config = ModelConfig()
    checkpoint = save_checkpoint(
        run / "best.pt",
        model=PilotNet(config),
        model_config=config,
        optimizer=None,
        step=42,
        epoch=1,
        best_val=0.5,
        config=asdict(SETTINGS),
    )
    cfg = EvalConfig(str(checkpoint), episodes=1, out=run / "eval", workers=1, video=1, run=run)
    return Path(checkpoint), cfg, evaluate(cfg)


def test_metrics_json_names_the_checkpoint_by_hash_with_version_and_date(evaluated):
    checkpoint, cfg, _ = evaluated
    saved = json.loads((cfg.out / "metrics.json").read_text())
    made = saved["provenance"]
    assert made["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert made["checkpoint"] == str(checkpoint)
    assert made["package_version"] not in ("", None)
    created = datetime.fromisoformat(made["created_utc"])
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 3600
    # the settings keep their types, in metrics.json and in config.json
    for config in (saved["config"], json.loads((cfg.out / "config.json").read_text())):
        assert config["episodes"] == 1 and config["compare_expert"] is True
        assert config["out"] == str(cfg.out) and config["saliency"] is False


def test_every_rate_is_a_fraction(evaluated):
    _, _, report = evaluated
    for metrics in (report["overall"], report["expert"]["overall"], *report["episodes"]):
        for key in ("success_rate", "autonomy", "speeding_share"):
            if key in metrics:  # an episode has success (a bool) instead of a rate
                assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    # an untrained net needs the expert: autonomy well below 1, so a percentage would show here
    assert report["overall"]["interventions"] > 0 and report["overall"]["autonomy"] < 1.0
    assert report["episodes"][0]["autonomy"] == pytest.approx(report["overall"]["autonomy"])


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


def hparams_of(run: Path) -> tuple[EventAccumulator, dict[str, HParamsPluginData]]:
    """The run's events and its HParams plugin records, by tag, read back by TensorBoard."""
    events = EventAccumulator(str(run))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    return events, {tag: HParamsPluginData.FromString(data) for tag, data in content.items()}


def test_the_run_holds_the_settings_and_the_closed_loop_metrics_for_hparams(evaluated):
    checkpoint, cfg, report = evaluated
    events, plugin = hparams_of(cfg.run)
    start = plugin["_hparams_/session_start_info"].session_start_info.hparams
    assert start["lr"].number_value == pytest.approx(3e-4)
    assert start["batch_size"].number_value == 64
    assert start["data"].string_value == "data/toy" and start["init"].string_value == "None"
    declared = [m.name.tag for m in plugin["_hparams_/experiment"].experiment.metric_infos]
    assert declared == list(HPARAM_METRICS)
    overall = report["overall"]
    for tag in ("success_rate", "autonomy", "mean_abs_lateral_offset", "speed_ratio_to_expert"):
        (scalar,) = events.Scalars(f"eval/{tag}")
        assert scalar.step == 42  # the checkpoint's step
        assert scalar.value == pytest.approx(overall[tag], rel=1e-6)


def test_the_videos_reach_the_run_at_full_size_with_the_paths_of_the_files(evaluated):
    _, cfg, report = evaluated
    events = EventAccumulator(str(cfg.run), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    (image,) = events.Images(f"eval/video/road_{eval_seeds(1)[0]}")
    assert (image.width, image.height) == (600, 270)  # the mp4's size: its text reads
    assert image.encoded_image_string.startswith(b"GIF89a")
    (files,) = events.Tensors("eval/files/text_summary")  # where add_text puts it
    text = files.tensor_proto.string_val[0].decode()
    assert str(cfg.out / "report.html") in text and report["videos"][0] in text


def test_the_model_card_beside_the_checkpoint_carries_the_closed_loop_table(evaluated):
    checkpoint, _, report = evaluated
    card = checkpoint.with_suffix(".md").read_text()
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() in card
    assert "camera: topdown, 66x200 pixels" in card and "scenario: winding-road" in card
    assert "lr 0.0003" in card and "42 optimizer steps" in card
    assert report["table"] in card and f"{eval_seeds(1)[0]:,}" in card
    assert "## Intended use" in card and "never drive a real vehicle" in card


def test_the_report_page_links_every_file_relatively(evaluated):
    _, cfg, report = evaluated
    page = (cfg.out / "report.html").read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    files = [link for link in links if not link.startswith("data:")]
    assert f"videos/road_{eval_seeds(1)[0]}.mp4" in files and "breakdown.png" in files
    assert any(link.startswith("clips/") for link in files) and report["clips"]
    for link in files:
        assert not link.startswith(("/", "file:", "http")), link
        assert (cfg.out / link).is_file(), link
    assert "<td>failed</td>" in page and "<td>mean |lateral offset|</td>" in page


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "chrome"))), None)


def test_the_report_page_loads_in_a_browser_and_its_first_video_plays(evaluated):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no chromium here: `apt-get install chromium` (scripts/test.sh does)")
    _, cfg, _ = evaluated
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, headless=True)
        page = browser.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        # A media element cancels its own requests once it has what it needs (preload, range
        # reads): net::ERR_ABORTED there is how Chromium buffers, not a missing file.
        page.on(
            "requestfailed",
            lambda request: (
                None
                if request.failure == "net::ERR_ABORTED" and request.resource_type == "media"
                else problems.append(f"failed: {request.url} ({request.failure})")
            ),
        )
        page.goto((cfg.out / "report.html").resolve().as_uri(), wait_until="load")
        played = page.evaluate(
            """async () => {
                const video = document.querySelector("video");
                await video.play();
                const start = video.currentTime;
                await new Promise(done => setTimeout(done, 1500));
                return {start, now: video.currentTime, error: video.error && video.error.code,
                        width: video.videoWidth, images: [...document.images].map(
                            i => i.complete && i.naturalWidth > 0)};
            }"""
        )
        browser.close()
    assert problems == []
    assert played["error"] is None and played["width"] > 0
    assert played["now"] > played["start"] + 0.5  # [s] of video in 1.5 s of wall time
    assert played["images"] == [True]  # breakdown.png
