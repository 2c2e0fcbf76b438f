"""`supercon compare`: runs, or sweeps' cells, side by side in one figure and one table.

A run folder gives one curve; a sweep folder gives one curve per grid cell, the mean of its
finished runs with a +- std band.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from . import arguments, curves, outputs, plots, runs, sweep_spec
from .errors import UsageError


@dataclass(frozen=True)
class Entry:
    """One line of the comparison: a run, or one cell of a sweep."""

    label: str
    curve: curves.Curve
    final: list[float]  # final test accuracy of each finished run
    best: list[float]
    train_seconds: list[float]
    epochs: int


@dataclass(frozen=True)
class Comparison:
    entries: list[Entry]
    figure: Figure
    png: Path | None


def entries_of(path: Path) -> list[Entry]:
    """A run folder -> one entry; a sweep folder -> one per cell with finished runs."""
    if (path / sweep_spec.SPEC_FILE).is_file():
        spec = sweep_spec.read_spec(path)
        found = []
        for cell in spec.cells():
            if finished := sweep_spec.finished_runs(path, spec, cell):
                label = sweep_spec.cell_label(cell)
                found.append(_entry(finished, f"{path.name}: {label}" if label else path.name))
        if not found and not (path / sweep_spec.RUNS_DIR).is_dir():
            # e.g. a results folder that kept the sweep's tables but not its runs
            raise UsageError(
                f"{path}: no runs/ folder; compare draws each run's metrics.csv, which "
                "results.csv alone does not hold"
            )
        if not found:
            raise UsageError(f"{path}: no finished runs in this sweep yet")
        return found
    if (path / runs.METRICS_FILE).is_file():
        if not runs.read_metrics(path):
            raise UsageError(f"{path}: no finished epoch yet")
        return [_entry([path], path.name)]
    if not path.exists():
        raise UsageError(f"{path}: does not exist; give a run folder or a sweep folder")
    raise UsageError(f"{path}: neither a run folder (metrics.csv) nor a sweep folder (sweep.yaml)")


def _entry(folders: Sequence[Path], label: str) -> Entry:
    summaries = [runs.read_summary(f) for f in folders if (f / runs.SUMMARY_FILE).is_file()]
    return Entry(
        label=label,
        curve=curves.of_runs(folders, label),
        final=[s["test_accuracy"] for s in summaries],
        best=[s["best_test_accuracy"] for s in summaries],
        train_seconds=[s["train_seconds"] for s in summaries],
        epochs=len(runs.read_metrics(folders[0])),
    )


def table(entries: Sequence[Entry]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the printed comparison: accuracies in %, mean +- std over runs."""

    def spread(values: list[float]) -> str:
        if not values:
            return "unfinished"
        text = f"{100 * statistics.fmean(values):.2f}"
        return text + (f" +- {100 * statistics.stdev(values):.2f}" if len(values) > 1 else "")

    header = ["run / cell", "n", "epochs", "final test acc (%)", "best (%)", "train s (median)"]
    rows = [
        [
            e.label,
            str(len(e.final)),
            str(e.epochs),
            spread(e.final),
            spread(e.best),
            f"{statistics.median(e.train_seconds):.1f}" if e.train_seconds else "-",
        ]
        for e in entries
    ]
    return header, rows


def compare(paths: str | Path | Sequence[str | Path], png: str | Path | None = None) -> Comparison:
    """Overlay the test accuracy and lr per epoch of runs and sweep cells; optionally a PNG,
    checked before any work (and refused inside a folder this tool made). `paths`: one run or
    sweep folder, or a list of them."""
    if png is not None:
        png = outputs.check_file(png, "png")
    folders = _folders(paths)
    if not folders:
        raise UsageError("compare: name at least one run or sweep folder")
    given: dict[Path, Path] = {}  # resolved -> as typed
    for path in folders:
        # A folder twice would be two identical lines in the table and the figure.
        if (first := given.get(path.resolve())) is not None:
            same = f"{path}: given twice" if first == path else f"{first} and {path}: one folder"
            raise UsageError(f"compare: {same}; name each run or sweep once")
        given[path.resolve()] = path
    entries = [entry for path in folders for entry in entries_of(path)]
    figure = plots.curves_figure([e.curve for e in entries])
    if png is not None:
        plots.save(figure, png)
    return Comparison(entries, figure, png)


def _folders(paths: Any) -> list[Path]:
    """One folder (a str is one path, not a list of one-letter ones), or a list of them."""
    if isinstance(paths, str | os.PathLike):
        return [arguments.path(paths, "paths")]
    if not arguments.is_list(paths):
        raise UsageError(
            f"paths {arguments.shown(paths)}: expected a run or sweep folder, or a list of them"
        )
    return [arguments.path(path, "paths") for path in paths]
