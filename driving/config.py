"""Settings files for every `drive` verb: `--config FILE` gives the defaults, flags override them.

    drive train --config logs/runs/20261203-150412-demo/config.json --seed 1
    drive evaluate --config logs/mine/eval/config.json --episodes 100

A file holds a verb's settings by their field names (`eval_episodes`; `eval-episodes` is read
too), nested settings as objects (`{"world": {"camera": {"kind": "dashcam"}}}`), numbers as
numbers: exactly what `save_config` writes (run/config.json, eval/config.json, a dataset's
collect.json), so a saved config replays the command that wrote it. JSON always; TOML with
Python 3.11+ (or `tomli`); YAML where PyYAML is installed. Every value is checked against the
field's type here, at the edge: an unknown key or a wrong type is one `ConfigError` naming the
file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import tyro

from driving.files import write_json

CONFIG_FLAG = "--config"
CONFIG_HELP = (
    "Settings may come from a file: --config FILE (JSON, TOML or YAML, e.g. a saved config.json); "
    "its values become the defaults, and the flags given with it override them."
)


class ConfigError(ValueError):
    """A settings file that cannot be used, in one line naming the file and the key."""


def plain(cfg: Any) -> dict[str, Any]:
    """The settings of `cfg` (a dataclass) as typed JSON-able values: numbers stay numbers,
    nested settings become objects, paths strings, tuples lists; `load_config` reads it back."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=os.fspath))


def save_config(path: str | Path, cfg: Any) -> Path:
    """Write `plain(cfg)` to `path` atomically: a valid `--config` for the verb of `cfg`."""
    return write_json(path, plain(cfg))


def parse_command(verbs: dict[str, type], args: list[str], prog: str, description: str) -> Any:
    """Parse `drive VERB FLAGS` with tyro, `--config FILE` taken out and its values as VERB's
    defaults; returns the verb's settings dataclass.

    Raises:
        ConfigError: the file is missing, unreadable, or holds an unknown key or a wrong type.
    """
    args, path = _config_flag(args)
    defaults = {}
    if path is not None:
        if not args or args[0] not in verbs:
            raise ConfigError(f"{CONFIG_FLAG} goes after the verb: {prog} VERB {CONFIG_FLAG} FILE")
        defaults[args[0]] = load_config(verbs[args[0]], path, f"{prog} {args[0]}")
    choices = []
    for name, kind in verbs.items():
        extra = {"default": defaults[name]} if name in defaults else {}
        if args[:1] == [name]:  # the verb's own --help says how to give a file
            extra["description"] = f"{inspect.cleandoc(kind.__doc__ or '')}\n\n{CONFIG_HELP}"
        marker = tyro.conf.subcommand(name=name, constructor=kind, **extra)
        choices.append(Annotated[Any, marker])
    command = Union[tuple(choices) + (Annotated[None, tyro.conf.Suppress],)]  # noqa: UP007
    return tyro.cli(command, prog=prog, description=description, args=args)


def _config_flag(args: list[str]) -> tuple[list[str], Path | None]:
    """`args` without `--config FILE` (or `--config=FILE`), and FILE (None if not given)."""
    rest, path = [], None
    items = iter(args)
    for arg in items:
        if arg == CONFIG_FLAG:
            value = next(items, None)
            if value is None or value.startswith("-"):
                raise ConfigError(f"{CONFIG_FLAG} needs a file: {CONFIG_FLAG} FILE")
            path = Path(value)
        elif arg.startswith(CONFIG_FLAG + "="):
            path = Path(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, path


def read_settings(path: Path) -> dict[str, Any]:
    """The table of settings in a JSON, TOML (.toml) or YAML (.yaml, .yml) file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{CONFIG_FLAG} {path}: cannot read it ({error})") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = _toml().loads(text)
        elif suffix in (".yaml", ".yml"):
            data = _yaml().safe_load(text)
        else:
            data = json.loads(text)
    except ConfigError:
        raise
    except Exception as error:  # each parser has its own error class
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"{CONFIG_FLAG} {path}: not valid {_format(suffix)} ({message})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{CONFIG_FLAG} {path}: expected a table of settings (key: value)")
    return data


def _format(suffix: str) -> str:
    return {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}.get(suffix, "JSON")


def _toml():
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError(
                "reading a TOML settings file needs Python 3.11 or `pip install tomli`; "
                "or write it as JSON"
            ) from None
    return tomllib


def _yaml():
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            "reading a YAML settings file needs `pip install pyyaml`; or write it as JSON"
        ) from None
    return yaml


def load_config(kind: type, path: str | Path, command: str = "") -> Any:
    """The `kind` settings a file describes; fields it leaves out keep their defaults, and
    required ones it leaves out stay `tyro.MISSING` (the command line must then give them).

    Raises:
        ConfigError: unreadable file, unknown key or wrong type, naming the file and the key.
    """
    path = Path(path)
    where = f"{CONFIG_FLAG} {path}"
    values = _fields(kind, read_settings(path), where, "", command or kind.__name__, None)
    for field in dataclasses.fields(kind):
        if field.name not in values and _default(field) is dataclasses.MISSING:
            values[field.name] = tyro.MISSING
    return kind(**values)


def _fields(kind: type, data: dict, where: str, prefix: str, owner: str, base: Any) -> dict:
    """The checked values of the keys of `data`, by field name of the dataclass `kind`; a nested
    table changes the settings of `base`'s value (the defaults of `kind` where `base` is None),
    so that a file naming one camera setting keeps the verb's own camera around it."""
    hints = typing.get_type_hints(kind)
    fields = {f.name: f for f in dataclasses.fields(kind)}
    values = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown setting '{prefix}{raw_key}' for {owner}{hint}")
        default = _default(fields[key]) if base is None else getattr(base, key)
        values[key] = _value(hints[key], value, default, where, f"{prefix}{key}")
    return values


def _default(field: dataclasses.Field) -> Any:
    """A field's default value (calling its factory), or dataclasses.MISSING."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _value(hint: Any, value: Any, default: Any, where: str, key: str) -> Any:
    """`value` checked against the type `hint` (and converted: list -> tuple, str -> Path);
    `default`: the setting's value without the file (the base of a nested table)."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a table of settings, got {value!r}")
        base = default if isinstance(default, hint) else None
        children = _fields(hint, value, where, f"{key}.", f"'{key}'", base)
        return hint(**children) if base is None else dataclasses.replace(base, **children)
    origin, members = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in members:
            return None
        for member in (m for m in members if m is not type(None)):
            try:
                return _value(member, value, default, where, key)
            except ConfigError:
                continue
        return _wrong(where, key, hint, value)
    if origin is Literal:
        if any(value == m and type(value) is type(m) for m in members):
            return value
        choices = ", ".join(repr(m) for m in members)
        raise ConfigError(f"{where}: '{key}' must be one of {choices}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _wrong(where, key, hint, value)
        kinds = [members[0]] * len(value) if members[1:] == (Ellipsis,) else list(members)
        if len(kinds) != len(value):
            return _wrong(where, key, hint, value)
        pairs = enumerate(zip(kinds, value, strict=True))
        return tuple(_value(k, v, None, where, f"{key}[{i}]") for i, (k, v) in pairs)
    return _scalar(hint, value, where, key)


def _scalar(hint: Any, value: Any, where: str, key: str) -> Any:
    """A bool, int, float, str or Path value, checked (an int is a float's value too)."""
    if hint is bool and isinstance(value, bool):
        return value
    if isinstance(value, bool):  # True is an int in Python, not in a settings file
        return _wrong(where, key, hint, value)
    if hint is int and isinstance(value, int):
        return value
    if hint is float and isinstance(value, (int, float)):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if hint is Path and isinstance(value, str):
        return Path(value)
    return _wrong(where, key, hint, value)


def _wrong(where: str, key: str, hint: Any, value: Any) -> typing.NoReturn:
    raise ConfigError(f"{where}: '{key}' must be {_name(hint)}, got {value!r}")


def _name(hint: Any) -> str:
    """How a type reads in an error message."""
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    if hint is Path:
        return "a path (a string)"
    members = typing.get_args(hint)
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join("null" if m is type(None) else _name(m) for m in members)
    if typing.get_origin(hint) is tuple:
        if members[1:] == (Ellipsis,):
            return f"a list of {_name(members[0])}s"
        return f"a list of {len(members)} ({', '.join(_name(m) for m in members)})"
    return getattr(hint, "__name__", str(hint))
