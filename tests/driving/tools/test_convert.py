"""`drive convert`: a dataset to Minari and back from the command line; bad input in one line."""

import pytest
from conftest import write_drives

from driving.cli import main
from driving.data import count_frames


def test_convert_to_minari_and_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    write_drives(tmp_path / "demo", [3], seconds=2.0)
    assert main(["convert", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "wrote Minari dataset pixels-to-pedals/demo-v0: 1 episodes, 20 steps" in out
    source = "minari:pixels-to-pedals/demo-v0"
    assert main(["convert", source, "--to", "folder", "--out", str(tmp_path / "back")]) == 0
    assert count_frames(tmp_path / "back") == 20


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing"], "error: missing does not exist"),
        (["minari:nope-v0", "--to", "folder", "--out", "x"], "error: cannot load Minari dataset"),
        (["minari:nope-v0"], "is a Minari dataset: convert it with --to folder"),
        (["data", "--to", "folder", "--out", "x"], "--to folder takes a Minari source"),
    ],
)
def test_bad_conversions_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.chdir(tmp_path)
    assert main(["convert", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
