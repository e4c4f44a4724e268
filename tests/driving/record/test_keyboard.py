"""Keyboard demonstrations, driven by synthetic key events on SDL's offscreen video driver."""

import json

import numpy as np
import pygame
import pytest

from driving.cli import main
from driving.data import read_episode, scan
from driving.record.collect import CollectConfig
from driving.record.keyboard import STEER_RAMP, KeyboardDriver, collect_keyboard, drive_road


@pytest.fixture
def offscreen(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    yield
    pygame.display.quit()


def press(*keys, up=False):
    pygame.display.init()  # the event queue lives in the video subsystem (a no-op if running)
    for key in keys:
        pygame.event.post(pygame.event.Event(pygame.KEYUP if up else pygame.KEYDOWN, key=key))


def test_held_arrows_ramp_smoothly_and_release_returns_the_wheel_to_centre(offscreen):
    driver = KeyboardDriver()
    press(pygame.K_RIGHT, pygame.K_UP)
    held = np.array([driver.act() for _ in range(5)])
    press(pygame.K_RIGHT, up=True)
    released = np.array([driver.act() for _ in range(5)])
    press(pygame.K_UP, up=True)
    press(pygame.K_LEFT, pygame.K_DOWN)
    braking = np.array([driver.act() for _ in range(10)])

    assert held[:, 0] == pytest.approx(STEER_RAMP * np.arange(1, 6))  # a ramp, not bang-bang
    assert np.all(held[:, 1] > 0) and held[-1, 1] == pytest.approx(1.0)
    assert released[:, 0] == pytest.approx([0.25, 0, 0, 0, 0])  # eased back to centre
    assert np.all(released[:, 1] == 1.0)  # up is still held
    assert np.all(braking[:, 0] < 0) and np.all(np.diff(braking[:, 1]) <= 0)
    assert braking[-1] == pytest.approx([-1, -1])
    assert not driver.quit
    press(pygame.K_ESCAPE)
    driver.act()
    assert driver.quit


def test_a_road_driven_by_keys_reads_back_with_the_keys_actions(offscreen, tmp_path):
    press(pygame.K_RIGHT, pygame.K_UP)  # held from the first frame on
    summary = collect_keyboard(
        CollectConfig(out=tmp_path / "data", episodes=1, first_seed=7, driver="keyboard"),
        max_steps=6,
    )

    assert summary["episodes"] == 1 and summary["frames"] == 6
    paths, warnings = scan(tmp_path / "data")
    assert len(paths) == 1 and not warnings
    episode = read_episode(paths[0])
    assert episode.seed == 7 and len(episode.frames) == 6
    assert np.all(episode.labels[:, 0] > 0) and np.all(episode.labels[:, 1] > 0)
    assert np.all(np.diff(episode.labels[:, 0]) > 0)  # ramping up while held
    assert np.array_equal(episode.actions, episode.labels)  # no noise on a person's driving
    assert episode.meta["driver"] == "keyboard" and episode.frames.std() > 10
    assert episode.speed_limit.tolist() == [15.0] * 6  # what the person was told, every step
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["episodes"][0]["driver"] == "keyboard"


def test_escape_ends_the_session_keeping_finished_roads(offscreen, tmp_path):
    out = tmp_path / "data"
    first = collect_keyboard(CollectConfig(out=out, episodes=1, driver="keyboard"), max_steps=3)
    press(pygame.K_ESCAPE)
    second = collect_keyboard(CollectConfig(out=out, episodes=3, driver="keyboard"), max_steps=3)

    assert first["episodes"] == 1 and second["episodes"] == 0
    assert [read_episode(p).seed for p in scan(out)[0]] == [0]


def test_drive_road_returns_none_when_the_person_quits(offscreen):
    from envs.world import make_env

    driver = KeyboardDriver()
    press(pygame.K_UP)
    steps = []
    env = make_env()
    original = env.step

    def step(action):  # press Esc after the third step
        steps.append(action)
        if len(steps) == 3:
            press(pygame.K_ESCAPE)
        return original(action)

    env.step = step
    assert drive_road(env, driver, seed=1, fps=0) is None
    assert len(steps) == 3


def test_keyboard_collection_without_a_display_is_one_error(tmp_path, monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")

    assert main(["collect", "--driver", "keyboard", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "display" in err, err
    assert not (tmp_path / "d").exists()


def test_collect_help_lists_the_driver(capsys):
    with pytest.raises(SystemExit):
        main(["collect", "--help"])
    assert "--driver {expert,keyboard}" in capsys.readouterr().out
