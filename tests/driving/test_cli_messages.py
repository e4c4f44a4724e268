"""The `drive` command's own messages: tyro's parse errors as one `error:` line, and `--help`
listing every flag of every verb with its docstring as flowing text."""

import dataclasses
import os
import re
import subprocess
import sys
import typing

import docstring_parser
import pytest
import tyro

from driving.cli import main, verb_configs

PARSE_ERRORS = {
    "non-numeric count": (["collect", "--out", "d", "--roads", "x"], "--roads"),
    "fractional count": (["collect", "--out", "d", "--roads", "1.5"], "--roads"),
    "no limit spelled wrong": (["watch", "--policy", "expert", "--max-steps", "none"], "--max"),
    "unknown flag": (["collect", "--out", "d", "--bogus", "3"], "--bogus"),
    "missing value": (["train", "--data", "d", "--frames"], "--frames"),
    "missing required flag": (["evaluate"], "--policy"),
    "bad choice": (["demo", "--camera.kind", "fish"], "fish"),
    "flag before any verb": (["--bogus"], "--bogus"),
    "no verb": ([], "choose one of collect"),
}


@pytest.mark.parametrize("case", list(PARSE_ERRORS))
def test_a_parse_error_is_one_error_line_naming_the_flag(case, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, named = PARSE_ERRORS[case]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert named in err and not set(err) & set("│╭╰─"), err
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])  # tyro draws ASCII boxes on latin-1
def test_the_installed_command_prints_one_line_for_a_bad_flag(encoding, tmp_path):
    argv = [sys.executable, "-m", "driving.cli", "collect", "--out", str(tmp_path)]
    done = subprocess.run(
        [*argv, "--workers", "two"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": encoding},
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "--workers" in done.stderr and "drive collect --help" in done.stderr


def test_a_mistyped_verb_gets_the_closest_one(capsys):
    assert main(["trian", "--data", "x"]) == 2
    assert capsys.readouterr().err == "error: unknown verb 'trian'; did you mean 'train'?\n"
    assert main(["fly"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown verb 'fly'; choose one of collect")


def test_one_name_per_meaning_and_the_old_names_still_work():
    from driving.helptext import parse_verb

    def parse(*args):
        return parse_verb(verb_configs(), list(args), prog="drive", description="")

    assert parse("collect", "--out", "d", "--roads", "3").episodes == 3
    assert parse("collect", "--out", "d", "--episodes", "3").episodes == 3
    assert parse("evaluate", "--policy", "expert", "--episodes=4").episodes == 4
    assert parse("train", "--data", "d", "--eval-episodes", "2").eval_episodes == 2
    demo = parse("demo", "--roads", "5", "--eval-roads", "6", "--device", "cpu", "--seed", "1")
    assert (demo.episodes, demo.eval_episodes, demo.device, demo.seed) == (5, 6, "cpu", 1)
    assert parse("saliency", "--policy", "p.pt", "--pictures", "4").pictures == 4
    assert (
        parse("dagger").max_steps is None and parse("watch", "--policy", "expert").max_steps is None
    )
    for verb, required in {"evaluate": ["--policy", "expert"], "watch": ["--policy", "expert"],
                           "saliency": ["--policy", "p.pt"], "dagger": [], "demo": [],
                           "train": ["--data", "d"]}.items():  # fmt: skip
        assert parse(verb, *required, "--device", "cuda:1").device == "cuda:1"


@pytest.mark.parametrize("argv", [["saliency", "--policy", "p.pt", "--frames", "4"],
                                  ["dagger", "--max-steps", "0"], ["evaluate", "--policy",
                                  "expert", "--device", "tpu"]])  # fmt: skip
def test_a_flag_of_another_meaning_is_refused(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and argv[-2] in err, err


def flags_and_docs(config: type, prefix: str = "") -> list[tuple[str, str]]:
    """(flag, flowing docstring) of every leaf field of a verb's config dataclass, nested ones
    included (`--noise.steering`; a field marked `arg(name="")` adds no prefix)."""
    docs = {p.arg_name: p.description for p in docstring_parser.parse_from_object(config).params}
    hints = typing.get_type_hints(config, include_extras=True)
    found = []
    for field in dataclasses.fields(config):
        hint, name = hints[field.name], field.name.replace("_", "-")
        for meta in getattr(hint, "__metadata__", ()):
            if meta in typing.get_args(tyro.conf.Positional[int]):
                name = None  # a positional argument: no flag to list, its help all the same
            elif getattr(meta, "name", None) is not None:  # tyro.conf.arg(name=...)
                name = meta.name
        kind = typing.get_args(hint)[0] if hasattr(hint, "__metadata__") else hint
        if dataclasses.is_dataclass(kind):
            found += flags_and_docs(kind, f"{prefix}{name}." if name else prefix)
        else:
            flag = f"--{prefix}{name}" if name is not None else ""
            found.append((flag, " ".join((docs.get(field.name) or "").split())))
    return found


@pytest.mark.parametrize("verb", list(verb_configs()))
def test_help_lists_every_flag_with_its_docstring(verb, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # one column of option groups
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0
    # The box's borders out and the lines joined: text that wraps reads as it flows.
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())
    for flag, doc in flags_and_docs(verb_configs()[verb]):
        assert flag in text, f"{verb}: {flag} missing from --help"
        assert doc and doc in text, f"{verb} {flag}: docstring {doc!r} not in --help as one flow"


FOLDER_FLAGS = {
    "collect": ["collect", "--out", "{file}"],
    "train": ["train", "--data", "{dir}", "--run", "{file}"],
    "evaluate": ["evaluate", "--policy", "expert", "--out", "{file}"],
    "dagger": ["dagger", "--out", "{file}"],
    "demo": ["demo", "--out", "{file}"],
    "watch": ["watch", "--policy", "expert", "--out", "{file}"],
    "saliency": ["saliency", "--policy", "expert", "--out", "{file}"],
    "view": ["view", "{dir}", "--out", "{file}"],
    "under a file": ["collect", "--out", "{file}/data"],
    "train's data": ["train", "--data", "{file}", "--run", "{dir}/run"],
}


@pytest.mark.parametrize("case", list(FOLDER_FLAGS))
def test_an_output_folder_that_is_a_file_is_one_line_naming_it(case, tmp_path, capsys):
    file = tmp_path / "somefile"
    file.write_text("keep me")
    argv = [a.format(file=file, dir=tmp_path) for a in FOLDER_FLAGS[case]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(file) in err, err
    assert "Errno" not in err and ("is not a folder" in err or "a file, not a folder" in err), err
    assert file.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [file]


def test_an_os_error_is_a_line_naming_its_path():
    from driving.cli import os_error_line

    assert os_error_line(FileExistsError(17, "File exists", "logs/x")) == (
        "logs/x: a file stands where a folder is needed; remove it or choose another path"
    )
    assert "no space left" in os_error_line(OSError(28, "No space left on device", "/d/v.mp4"))
    assert os_error_line(OSError("cannot encode x.png as PNG")) == "cannot encode x.png as PNG"


BAD_DEMO = {
    "no evaluation roads": ["--eval-roads", "0"],
    "no epochs": ["--epochs", "0"],
    "no training roads": ["--roads", "0"],
    "no evaluation roads, old name": ["--eval-episodes", "0"],
    "no workers": ["--workers", "0"],
    "negative noise": ["--noise.steering", "-1"],
    "no frames": ["--frames", "0"],
    "held-out looks in training": ["--camera.appearance", "held-out"],
}


@pytest.mark.parametrize("case", list(BAD_DEMO))
def test_a_bad_demo_setting_is_refused_before_collecting(case, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *BAD_DEMO[case]]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "[1/3]" not in captured.out and not out.exists()


@pytest.mark.parametrize("module", ["onnxruntime", "onnx", "onnxscript"])
def test_export_without_the_onnx_extra_names_the_pip_command(module, tmp_path, capsys, monkeypatch):
    from conftest import save_untrained

    checkpoint = save_untrained(tmp_path / "best.pt")
    monkeypatch.setitem(sys.modules, module, None)  # Python's own "not installed": ImportError
    assert main(["export", "--policy", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {module} is not installed: pip install 'pixels-to-pedals[onnx]'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
