"""The Python API's arguments, checked where they come in: a value of the wrong kind is one
UsageError line naming the argument, the value given and what is allowed, instead of a
TypeError or AttributeError from deep inside. The command line's options arrive here already
typed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import UsageError

SHOWN_CHARACTERS = 80  # of a value in a message: enough to recognise it, still one line


def shown(value: Any) -> str:
    """A value as a message shows it: its repr (a line break in it escaped), cut short."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "..."


def path(value: Any, name: str) -> Path:
    """A file or folder: a str or an os.PathLike of one, not empty (Path("") is the current
    folder, which nobody means by nothing)."""
    text = os.fspath(value) if isinstance(value, str | os.PathLike) else None
    if not isinstance(text, str):
        raise UsageError(f"{name} {shown(value)}: expected a path (a str or pathlib.Path)")
    if not text:
        raise UsageError(f"{name} '': an empty path; give a file or folder (. for this folder)")
    return Path(text)


def optional_path(value: Any, name: str) -> Path | None:
    return None if value is None else path(value, name)
