"""Flowing `--help` text from the config dataclasses' field docstrings."""

from __future__ import annotations

import inspect
import re


def reflow_field_docs() -> None:
    """Make tyro print each paragraph of a field's docstring as flowing text.

    tyro (1.0.17 here) looks for line breaks to keep before it removes a docstring's indentation,
    so every indented continuation line started a new line in `--help`. This joins each
    paragraph into one line first. If tyro's internals differ, nothing is changed.
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
