"""Files a user names for writing (a figure, a CSV), checked before any work by the API
functions that write them (plot_schedule, compare, evaluate), and so for the commands that call
them: an image suffix where a figure goes, a name the system accepts, and a place outside every
folder this tool made (a training run, a sweep folder, a find-lr folder), whose files it would
replace: a finished run is never changed, and a sweep.yaml or lr_finder.csv replaced so leaves
its folder unusable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import arguments, lr_finder, plots, runs, sweep_spec
from .errors import UsageError


def check_file(value: Any, name: str, image: bool = True) -> Path:
    """The path `value` names, refused where it cannot or must not be written; `name` is the
    argument (or the command's option) in messages."""
    path = arguments.path(value, name)
    runs.check_name_lengths(path, name)
    if image:
        plots.image_format(path, name)
    check_outside_tool_folders(path, name)
    return path


def check_distinct(first: Path, first_name: str, second: Path, second_name: str) -> None:
    """Two outputs of one call in one file: the second would replace the first. Compared as
    written to: a link is followed to the file it names."""
    if runs.resolved(first) == runs.resolved(second):
        raise UsageError(
            f"{second_name} {second}: the same file as {first_name}; give each its own name"
        )


def check_outside_tool_folders(path: Path, option: str) -> None:
    """An output file goes inside no folder this tool made. Links are followed, and every
    folder above the path is asked (see runs.check_outside_runs): each kind is told by a file
    only this tool writes there, so a project's own files never block the tool below them."""
    target = runs.resolved(path)
    for place in (target, *target.parents):
        if kind := tool_folder(place):
            noun, writer = kind
            raise UsageError(
                f"{option} {path}: inside the {noun} {place}, which holds only what {writer} "
                "wrote; choose a place outside it"
            )


def tool_folder(folder: Path) -> tuple[str, str] | None:
    """What kind of folder this tool made `folder` is, as (its name, what wrote it), if any."""
    if runs.is_run(folder):
        return "run", "the run"
    if sweep_spec.is_sweep(folder):
        return "sweep folder", "the sweep"
    if lr_finder.is_finder_folder(folder):
        return "find-lr folder", "the range test"
    return None
