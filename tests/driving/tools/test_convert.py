"""`drive convert`: a dataset to Minari and LeRobot and back from the command line; bad input in
one line."""

import sys

import pytest
from conftest import write_drives

from driving.cli import main
from driving.data import count_frames, scan


def test_convert_to_minari_and_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    write_drives(tmp_path / "demo", [3], seconds=2.0)
    assert main(["convert", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "wrote Minari dataset pixels-to-pedals/demo-v0: 1 episodes, 20 steps" in out
    source = "minari:pixels-to-pedals/demo-v0"
    assert main(["convert", source, "--to", "folder", "--out", str(tmp_path / "back")]) == 0
    assert count_frames(tmp_path / "back") == 20


def test_convert_to_lerobot_and_back(tmp_path, capsys):
    write_drives(tmp_path / "demo", [3, 4], seconds=2.0)
    out = tmp_path / "demo_lerobot"
    assert main(["convert", str(tmp_path / "demo"), "--to", "lerobot", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert f"wrote LeRobot dataset {out}: 2 episodes, 40 frames at 10 Hz" in line
    assert (out / "meta" / "info.json").is_file()
    assert main(["convert", str(out), "--to", "folder", "--out", str(tmp_path / "back")]) == 0
    assert "wrote 2 episodes, 40 frames into" in capsys.readouterr().out
    assert count_frames(tmp_path / "back") == 40 and len(scan(tmp_path / "back")[0]) == 2


def test_a_missing_extra_is_named_in_one_line(tmp_path, monkeypatch, capsys):
    write_drives(tmp_path / "demo", [3], seconds=1.0)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed: import fails
    args = ["convert", str(tmp_path / "demo"), "--to", "lerobot", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == "error: pyarrow is not installed: pip install 'pixels-to-pedals[export]'\n"


def test_an_existing_output_is_refused_and_kept(tmp_path, capsys):
    write_drives(tmp_path / "demo", [3], seconds=1.0)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    args = ["convert", str(tmp_path / "demo"), "--to", "lerobot", "--out", str(tmp_path / "taken")]
    assert main(args) == 2
    assert (
        capsys.readouterr().err
        == f"error: --out {tmp_path / 'taken'} is not empty: choose a new folder\n"
    )
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing"], "error: missing does not exist"),
        (["minari:nope-v0", "--to", "folder", "--out", "x"], "error: cannot load Minari dataset"),
        (["minari:nope-v0"], "is a Minari dataset: convert it with --to folder"),
        (["data", "--to", "folder", "--out", "x"], "--to folder takes a Minari source"),
        (["missing", "--to", "lerobot", "--out", "x"], "error: missing does not exist"),
        (["data", "--to", "lerobot"], "--to lerobot needs --out"),
        (["lerobot_data"], "lerobot_data is a LeRobot dataset: convert it with --to folder"),
    ],
)
def test_bad_conversions_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lerobot_data" / "meta").mkdir(parents=True)
    (tmp_path / "lerobot_data" / "meta" / "info.json").write_text("{}")
    assert main(["convert", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
