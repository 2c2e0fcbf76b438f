"""Test accuracy and lr per epoch of a run, or of several runs averaged (a sweep's cell).

What `compare` overlays and a sweep draws per cell; read from each run's metrics.csv.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import runs


@dataclass(frozen=True)
class Curve:
    label: str
    runs: int
    epochs: list[int]  # epochs with a test evaluation in every run
    accuracy: list[float]  # mean test accuracy (a fraction) at those epochs
    accuracy_std: list[float] | None  # sample std over runs; None for a single run
    lr_epochs: list[int]  # every epoch
    lr: list[float]  # the lr at each epoch's end (the same in every run of a cell)


def of_runs(folders: Sequence[Path], label: str) -> Curve:
    """One run's curve, or the mean (+- std) of several runs of the same recipe."""
    if not folders:
        raise ValueError(f"{label}: no runs to draw")
    tables = [runs.read_metrics(folder) for folder in folders]
    per_run = [
        {int(row["epoch"]): float(row["test_acc"]) for row in table if row["test_acc"]}
        for table in tables
    ]
    epochs = sorted(set.intersection(*(set(accuracies) for accuracies in per_run)))
    samples = [[accuracies[e] for accuracies in per_run] for e in epochs]
    return Curve(
        label=label,
        runs=len(folders),
        epochs=epochs,
        accuracy=[statistics.fmean(s) for s in samples],
        accuracy_std=[statistics.stdev(s) for s in samples] if len(folders) > 1 else None,
        lr_epochs=[int(row["epoch"]) for row in tables[0]],
        lr=[float(row["lr"]) for row in tables[0]],
    )
