"""Files a user names for writing (a figure, a CSV), checked before any work by the API
functions that write them (plot_schedule, compare, evaluate), and so for the commands that call
them: an image suffix where a figure goes, a name the system accepts, and a place outside every
training run, whose files it would replace (a finished run is never changed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import arguments, plots, runs
from .errors import UsageError


def check_file(value: Any, name: str, image: bool = True) -> Path:
    """The path `value` names, refused where it cannot or must not be written; `name` is the
    argument (or the command's option) in messages."""
    path = arguments.path(value, name)
    runs.check_name_lengths(path, name)
    if image:
        plots.image_format(path, name)
    runs.check_outside_runs(path, name)
    return path


def check_distinct(first: Path, first_name: str, second: Path, second_name: str) -> None:
    """Two outputs of one call in one file: the second would replace the first. Compared as
    written to: a link is followed to the file it names."""
    if runs.resolved(first) == runs.resolved(second):
        raise UsageError(
            f"{second_name} {second}: the same file as {first_name}; give each its own name"
        )
