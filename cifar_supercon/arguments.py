"""The Python API's arguments, checked where they come in: a value of the wrong kind is one
UsageError line naming the argument, the value given and what is allowed, instead of a
TypeError or AttributeError from deep inside (or, worse, a string taken apart into its
characters). The command line's options arrive here already typed."""

from __future__ import annotations

import numbers
import operator
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import UsageError
from .text import not_utf8, quoted

Log = Callable[[str], None]
SHOWN_CHARACTERS = 80  # of a value in a message: enough to recognise it, still one line


def shown(value: Any) -> str:
    """A value as a message shows it: its repr (a line break in it escaped, an undecodable byte
    of a file name as \\xff), cut short."""
    text = quoted(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "..."


def is_list(value: Any) -> bool:
    """A list of things: iterable, and not a str, bytes or mapping (which iterate too, over
    their characters or keys)."""
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping)


def path(value: Any, name: str) -> Path:
    """A file or folder: a str or an os.PathLike of one, not empty (Path("") is the current
    folder, which nobody means by nothing)."""
    text = os.fspath(value) if isinstance(value, str | os.PathLike) else None
    if not isinstance(text, str):
        raise UsageError(f"{name} {shown(value)}: expected a path (a str or pathlib.Path)")
    if not text:
        raise UsageError(f"{name} '': an empty path; give a file or folder (. for this folder)")
    try:
        return expanded(Path(text))
    except ValueError as e:
        raise UsageError(f"{name} {shown(text)}: {e}") from None


def expanded(path: Path) -> Path:
    """`path` as a shell reads what a user types: `~` or `~user` at its start names a home
    folder. The one reading of every path a user gives (config keys, the commands' path options,
    the API's path arguments), so that `~/x` is the same folder wherever it is given. A
    ValueError says why a path cannot be read so."""
    try:
        return path.expanduser()
    except RuntimeError:  # pathlib's word for `~user` of no such user, or `~` without a home
        head = path.parts[0]
        why = "no such user" if head != "~" else "HOME is not set"
        raise ValueError(f"{head} names no home folder on this machine ({why})") from None


def not_nameable(path: Path) -> str | None:
    """Why the files a run or a sweep writes could not name `path`, or None. They are UTF-8
    text (report.md names the data's folder and holds the command that reproduces the run, a
    sweep's logs name its runs' folders), which a path holding a byte that is not UTF-8
    (Python reads it as a lone surrogate) cannot be written into: found when report.md was
    written, after the training, it failed the run, and every resume again. Refused before
    any work instead, naming the path; a link with a UTF-8 name reaches the same folder."""
    problem = not_utf8(str(path))
    if problem is None:
        return None
    return (
        f"{problem}, which the UTF-8 files a run writes cannot name; rename it, or give a link "
        "to it whose name is UTF-8"
    )


def optional_path(value: Any, name: str) -> Path | None:
    return None if value is None else path(value, name)


def flag(value: Any, name: str) -> bool:
    """True or False (a string such as 'no' would read as true)."""
    if not isinstance(value, bool):
        raise UsageError(f"{name} {shown(value)}: expected True or False")
    return value


def optional_flag(value: Any, name: str) -> bool | None:
    return None if value is None else flag(value, name)


def integer(value: Any) -> int | None:
    """`value` as an int where it is a whole number (numpy's integers too; a bool is not one),
    else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def whole(value: Any, name: str, minimum: int) -> int:
    """A whole number of at least `minimum` (a bool is not one; numpy's integers are)."""
    number = integer(value)
    if number is None or number < minimum:
        raise UsageError(f"{name} {shown(value)}: expected a whole number, at least {minimum}")
    return number


def fraction(value: Any, name: str) -> float:
    """A number from 0 to 1."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value <= 1
    if not ok:
        raise UsageError(f"{name} {shown(value)}: expected a number from 0 to 1")
    return float(value)


def log(value: Any) -> Log:
    """Where progress lines go: a function of one str (print, list.append), or None for
    nowhere."""
    if value is None:
        return lambda _: None
    if not callable(value):
        raise UsageError(
            f"log {shown(value)}: expected a function taking one line of text, such as print, "
            "or None"
        )
    return value
