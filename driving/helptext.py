"""tyro's text, made ours: flowing `--help` paragraphs, and parse errors as one `error:` line.

    cfg = parse_verb(verbs, args, prog="drive", description="...")   # UsageError: one line

tyro draws a parse error as a 5-10 line box on stderr and exits with code 2; the `drive`
command promises one line starting with `error:`. `parse_verb` reads the box tyro printed and
keeps its message: what was wrong and which flag, without the box or the flag's help text.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
import re
import sys
from collections.abc import Mapping, Sequence

from driving.config import parse_command
from driving.flags import new_names

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
BOX = "│╭╮╰╯┃"
HELP_INDENT = 8  # [columns] tyro indents a flag's help text this far under its name in a box


class UsageError(ValueError):
    """The command line itself is wrong (a verb, a flag or a value); the message is one line."""


def parse_verb(
    verbs: Mapping[str, type], args: Sequence[str], prog: str, description: str
) -> object:
    """Parse `args` (a verb, then its flags) into that verb's config dataclass.

    `--help` prints and exits (SystemExit 0) as tyro does.

    Raises:
        UsageError: no verb, an unknown verb (with the closest one), or any flag tyro rejects.
    """
    if not args or (args[0] not in verbs and not args[0].startswith("-")):
        raise UsageError(unknown_verb(args[0] if args else "", list(verbs)))
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            cfg = parse_command(
                dict(verbs), new_names(list(args)), prog=prog, description=description
            )
    except SystemExit as exit_:
        if exit_.code in (0, None):  # --help
            sys.stderr.write(captured.getvalue())
            raise
        verb = f" {args[0]}" if args[0] in verbs else ""
        raise UsageError(f"{one_line(captured.getvalue())}; see {prog}{verb} --help") from None
    sys.stderr.write(captured.getvalue())  # tyro's warnings, if it printed any
    return cfg


def unknown_verb(given: str, verbs: list[str]) -> str:
    """The message for a verb that is missing or not one of `verbs`, with the closest match."""
    if not given:
        return f"no verb given; choose one of {', '.join(verbs)}"
    close = difflib.get_close_matches(given, verbs, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"choose one of {', '.join(verbs)}"
    return f"unknown verb '{given}'; {hint}"


def one_line(printed: str) -> str:
    """tyro's error box (or any short error text) as one line: its message sections, no help.

    Kept: each section's first paragraph, without the lines indented as a flag's help text.
    Dropped: the box (drawn in Unicode or, on a non-UTF-8 terminal, ASCII), the title before
    the first rule, and the "Argument helptext" and "For full helptext" sections.
    """
    rows = []  # (indent, text) of each content line; None for a rule between sections
    for raw in ANSI.sub("", printed).splitlines():
        line = raw.rstrip().rstrip(BOX).rstrip()
        stripped = line.lstrip()
        rule = stripped.strip(BOX + " ")
        if stripped.startswith(("╭", "╰")) or (rule and set(rule) <= set("─-")):
            rows.append(None)
            continue
        if stripped[:1] in BOX:  # the box's left side and its padding
            line = line[len(line) - len(stripped) + 1 :]
            line = line[1:] if line.startswith(" ") else line
        rows.append((len(line) - len(line.lstrip()), line.strip()))
    pad = min((row[0] for row in rows if row and row[1]), default=0)
    sections: list[list[str]] = [[]]
    ended = False  # the section's first paragraph has ended
    for row in rows:
        if row is None:
            sections.append([])
            ended = False
        elif not row[1]:
            ended = bool(sections[-1])
        elif not ended and row[0] - pad < HELP_INDENT:
            sections[-1].append(row[1])
    if len(sections) > 1:
        sections = sections[1:]  # the title (ASCII), or nothing above the top border (Unicode)
    kept = [
        " ".join(section)
        for section in sections
        if section and not section[0].startswith(("For full helptext", "Argument helptext"))
    ]
    message = "; ".join(part.rstrip(".") for part in kept)
    return message.removeprefix("error: ") or "the command line was not understood"


def reflow_field_docs() -> None:
    """Make tyro print each paragraph of a field's docstring as flowing text.

    tyro (1.0.x; pyproject pins the range) looks for line breaks to keep before it removes a
    docstring's indentation, so every indented continuation line started a new line in
    `--help`. This joins each paragraph into one line first. It wraps a private tyro function,
    as tyro has no public way to do it; if tyro's internals differ, nothing is changed (the
    help still lists every flag, with line breaks), and a test of the help text fails.
    """

    try:
        from tyro import _docstrings
    except ImportError:
        return
    parse = getattr(_docstrings, "parse_docstring_from_object", None)
    if parse is None or getattr(parse, "reflowed", False):
        return

    def reflowed(obj: object) -> dict[str, str]:
        return {name: _flowing(text) for name, text in parse(obj).items()}

    reflowed.reflowed = True  # type: ignore[attr-defined]
    _docstrings.parse_docstring_from_object = reflowed


def _flowing(text: str) -> str:
    """Each paragraph of `text` on one line, paragraphs separated by a blank line."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
