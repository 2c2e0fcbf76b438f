"""What a sweep's folder adds up to: one row per run, rebuilt from the run folders (finished,
failed, interrupted or pending), per-cell statistics, results.csv, summary.md and the plots."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import curves, plots, runs
from .sweep_spec import (
    FAILED_FILE,
    RUNS_DIR,
    SPEC_FILE,
    Spec,
    cell_label,
    finished_runs,
    run_name,
    short_key,
)
from .text import one_line, table_row

RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.md"
PLOTS_DIR = "plots"
RESULT_COLUMNS = (
    "status",
    "test_accuracy",
    "best_test_accuracy",
    "epoch_reached_target",
    "train_seconds",
    "reason",
)


def read_rows(folder: Path, spec: Spec, target: float) -> list[dict[str, Any]]:
    """One row per run of the spec, from its folder: finished, failed, interrupted or pending."""
    rows = []
    for cell in spec.cells():
        for seed in spec.seeds:
            name = run_name(cell, seed)
            run = folder / RUNS_DIR / name
            row: dict[str, Any] = {"run": name, **dict(cell), "seed": seed}
            row.update(dict.fromkeys(RESULT_COLUMNS, ""))
            if (run / runs.SUMMARY_FILE).is_file():
                summary = runs.read_summary(run)
                reached = [
                    int(r["epoch"])
                    for r in runs.read_metrics(run)
                    if r["test_acc"] and float(r["test_acc"]) >= target
                ]
                row.update(
                    status="finished",
                    test_accuracy=summary["test_accuracy"],
                    best_test_accuracy=summary["best_test_accuracy"],
                    epoch_reached_target=reached[0] if reached else "",
                    train_seconds=summary["train_seconds"],
                )
            elif (run / FAILED_FILE).is_file():
                row.update(status="failed", reason=failure_reason(run / FAILED_FILE))
            else:
                row["status"] = "interrupted" if (run / runs.CONFIG_FILE).is_file() else "pending"
            rows.append(row)
    return rows


MAX_REASON_CHARS = 500  # a reason is one line; the tool writes a few hundred characters at most


def failure_reason(path: Path) -> str:
    """The one-line reason a failed.txt gives. The tool wrote one line of UTF-8; whatever else
    the file came to hold (bytes of another encoding, megabytes) is read as far as one line's
    worth and shown escaped, not a crash or a 20 MB 'line' in results.csv and on stderr."""
    with open(path, "rb") as f:
        head = f.read(4 * MAX_REASON_CHARS)  # a UTF-8 character is at most 4 bytes
    lines = head.decode("utf-8", errors="backslashreplace").strip().splitlines()
    reason = one_line(lines[0]) if lines else "(failed.txt is empty)"
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "..."


@dataclass(frozen=True)
class CellStats:
    """Final test accuracy of one grid cell over its finished runs (fractions)."""

    cell: tuple[tuple[str, Any], ...]
    runs: int
    failed: int
    mean: float | None
    std: float | None  # sample standard deviation; None below 2 runs
    min: float | None
    median: float | None
    max: float | None
    share_at_target: float | None
    median_train_seconds: float | None


def _hashable(value: Any) -> Any:
    """A grid value as part of a dict key: a list key's value (schedule.milestones) as a tuple."""
    return tuple(value) if isinstance(value, list) else value


def cell_statistics(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], target: float
) -> list[CellStats]:
    cells: dict[tuple[Any, ...], tuple[tuple[tuple[str, Any], ...], list[Mapping[str, Any]]]] = {}
    for row in rows:
        cell = tuple((k, row[k]) for k in keys)
        cells.setdefault(tuple(_hashable(v) for _, v in cell), (cell, []))[1].append(row)
    stats = []
    for cell, members in cells.values():
        done = [r for r in members if r["status"] == "finished"]
        acc = [float(r["test_accuracy"]) for r in done]
        seconds = [float(r["train_seconds"]) for r in done]
        stats.append(
            CellStats(
                cell=cell,
                runs=len(done),
                failed=sum(r["status"] == "failed" for r in members),
                mean=statistics.fmean(acc) if acc else None,
                std=statistics.stdev(acc) if len(acc) > 1 else None,
                min=min(acc, default=None),
                median=statistics.median(acc) if acc else None,
                max=max(acc, default=None),
                share_at_target=sum(a >= target for a in acc) / len(acc) if acc else None,
                median_train_seconds=statistics.median(seconds) if seconds else None,
            )
        )
    return stats


def write_results(folder: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    runs.write_text(folder / RESULTS_FILE, buffer.getvalue())


def table_rows(stats: Sequence[CellStats], target: float) -> list[list[str]]:
    """The per-cell table as strings (summary.md and the terminal print the same)."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    lines = []
    for s in stats:
        spread = f" +- {pct(s.std)}" if s.std is not None else ""
        lines.append(
            [
                *(str(v) for _, v in s.cell),
                f"{s.runs}" + (f" ({s.failed} failed)" if s.failed else ""),
                pct(s.mean) + spread,
                pct(s.min),
                pct(s.median),
                pct(s.max),
                "-" if s.share_at_target is None else f"{100 * s.share_at_target:.0f}%",
                "-" if s.median_train_seconds is None else f"{s.median_train_seconds:.1f}",
            ]
        )
    return lines


def table_header(keys: Sequence[str], target: float, short: bool = False) -> list[str]:
    """Column names; `short` names grid keys by their last part (schedule.lr_max -> lr_max)."""
    return [
        *(short_key(key) if short else key for key in keys),
        "n",
        "mean +- std (%)",
        "min",
        "median",
        "max",
        f">= {100 * target:g}%",
        "train s (median)",
    ]


def write_summary(folder: Path, spec: Spec, stats: Sequence[CellStats], target: float) -> None:
    header = table_header(spec.keys, target)
    lines = [
        f"# Sweep {folder.name}",
        "",
        f"Final test accuracy per grid cell over seeds {spec.seeds} (spec: {SPEC_FILE}; "
        f"one row per run: {RESULTS_FILE}). n counts finished runs.",
        "",
        table_row(header),
        "|" + "---|" * len(header),
        *map(table_row, table_rows(stats, target)),
    ]
    runs.write_text(folder / SUMMARY_FILE, "\n".join(lines) + "\n")


def write_plots(folder: Path, spec: Spec, stats: Sequence[CellStats]) -> list[Path]:
    """plots/accuracy_vs_<key>.png per grid key and plots/curves.png (one curve per cell)."""
    written = []
    for key in spec.keys:
        others = [k for k in spec.keys if k != key]
        lines: dict[str, list[tuple[float, float | None] | None]] = {}
        for s in stats:
            values = dict(s.cell)
            label = cell_label([(k, values[k]) for k in others])
            points = lines.setdefault(label, [None] * len(spec.grid[key]))
            if s.mean is not None:
                points[spec.grid[key].index(values[key])] = (s.mean, s.std)
        figure = plots.grid_figure(spec.grid[key], lines, key)
        written.append(plots.save(figure, folder / PLOTS_DIR / f"accuracy_vs_{key}.png"))
    cell_curves = []
    for cell in spec.cells():
        if finished := finished_runs(folder, spec, cell):
            cell_curves.append(curves.of_runs(finished, cell_label(cell) or folder.name))
    if cell_curves:
        figure = plots.curves_figure(cell_curves, title=f"sweep {folder.name}: per-cell mean")
        written.append(plots.save(figure, folder / PLOTS_DIR / "curves.png"))
    return written
