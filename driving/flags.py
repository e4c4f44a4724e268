"""Flag names the verbs share: one name, one meaning, on every verb that has the setting.

    --roads N        how many roads to drive or collect (each road one seed)
    --eval-roads N   held-out roads the trained policy is evaluated on (train, dagger, demo)
    --max-steps N    steps per road at most; left out, each road is driven to its end
    --device D       where the network runs: auto (a GPU if there is one), cpu, cuda, cuda:N

The config fields keep their Python names (`episodes`, `eval_episodes`); only their flags are
named here. The names used before (`--episodes`, `--eval-episodes`) still work: `OLD_NAMES`.
"""

from __future__ import annotations

from typing import Annotated

import tyro

Roads = Annotated[int, tyro.conf.arg(name="roads")]
"""An `episodes` field: its flag is `--roads`."""
EvalRoads = Annotated[int, tyro.conf.arg(name="eval-roads")]
"""An `eval_episodes` field: its flag is `--eval-roads`."""

FLAGS = {"episodes": "--roads", "eval_episodes": "--eval-roads"}
"""The config fields whose flag is not their own name."""
OLD_NAMES = {"--episodes": "--roads", "--eval-episodes": "--eval-roads"}
"""Flags renamed for one name per meaning; the old spelling is read as the new one."""


def flag(field: str) -> str:
    """The command-line flag of a config field: `flag("episodes") == "--roads"`."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def new_names(args: list[str]) -> list[str]:
    """`args` with the renamed flags (`OLD_NAMES`) spelled the new way (`--episodes=3` too)."""
    renamed = []
    for arg in args:
        name, equals, value = arg.partition("=")
        renamed.append(OLD_NAMES.get(name, name) + equals + value)
    return renamed
