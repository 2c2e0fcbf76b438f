"""Figures, returned and saved as PNG; the library never shows one.

Each `*_figure` function builds a `matplotlib.figure.Figure` directly, outside pyplot: no backend is
chosen or forced at import (a notebook keeps its own), no GUI is needed to save one, and pyplot's
list of open figures never holds ours, so a notebook displays a returned figure exactly once.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from . import runs
from .errors import UsageError
from .schedule import Cyclic, MultiStep, OneCycle, Schedule

LR_COLOUR, MOMENTUM_COLOUR = "tab:blue", "tab:orange"


IMAGE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "webp")


def image_format(path: Path, source: str = "") -> str:
    """The format a figure is written in, from the file name; a folder or another suffix is a
    usage error (checked before any work, by the commands that take a path)."""
    where = f"{source} {path}" if source else str(path)
    if str(path) in ("", ".") or path.is_dir():
        raise UsageError(f"{where}: is a folder; give a file name such as {path / 'figure.png'}")
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        raise UsageError(
            f"{where}: expected an image file name ending in .{', .'.join(IMAGE_FORMATS)}"
        )
    return suffix


def save(figure: Figure, path: Path) -> Path:
    """Write the figure (Agg, whatever the session's backend) through runs.write_bytes: atomic,
    and a path that cannot be written is one line naming it."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # class names in scripts the font lacks draw as boxes
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(buffer, format=image_format(path), dpi=120, bbox_inches="tight")
    runs.write_bytes(path, buffer.getvalue())
    return path


class ShownFigure(Figure):
    """A Figure that a notebook displays as a PNG when it is a cell's value, whatever backend the
    session has: ours never join pyplot's list, which is what the inline backend draws from."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _figure(rows: int = 1, columns: int = 1, **options: object) -> tuple[Figure, object]:
    """A figure and its axes, as pyplot.subplots makes them, without pyplot."""
    figure = ShownFigure(figsize=options.pop("figsize", None))
    return figure, figure.subplots(rows, columns, **options)


def _epoch_axis(ax: Axes, steps_per_epoch: int) -> None:
    top = ax.secondary_xaxis(
        "top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch)
    )
    top.set_xlabel("epoch")


def schedule_figure(
    schedule: Schedule, total_steps: int, steps_per_epoch: int, title: str = ""
) -> Figure:
    """LR (left axis) and momentum (right axis) against the optimizer step, annotated."""
    steps = _drawn_steps(total_steps)
    values = [schedule(s) for s in steps]
    figure, ax = _figure(figsize=(9, 4.5))
    ax.plot(steps, [v.lr for v in values], color=LR_COLOUR, lw=2, label="learning rate")
    ax.set_xlabel("iteration (optimizer step)")
    ax.set_ylabel("learning rate", color=LR_COLOUR)
    ax.set_xlim(0, total_steps - 1)
    _epoch_axis(ax, steps_per_epoch)
    twin = ax.twinx()
    momenta = [v.momentum for v in values]
    twin.plot(steps, momenta, color=MOMENTUM_COLOUR, lw=1.2, ls="--", alpha=0.7)
    twin.set_ylabel("momentum", color=MOMENTUM_COLOUR)
    _annotate(ax, schedule, total_steps)
    ax.set_title(title or _describe(schedule, steps_per_epoch), pad=30)
    ax.grid(alpha=0.3)
    return figure


# A figure is about 1,000 pixels across: more points than this only cost time and memory (a
# CLR triangle of a long step size, drawn for a report, spans millions of steps).
MAX_DRAWN_POINTS = 20_000


def _drawn_steps(total_steps: int) -> list[int]:
    """Every step, or MAX_DRAWN_POINTS of them spread evenly from the first to the last."""
    if total_steps <= MAX_DRAWN_POINTS:
        return list(range(total_steps))
    last = total_steps - 1
    return sorted({round(i * last / (MAX_DRAWN_POINTS - 1)) for i in range(MAX_DRAWN_POINTS)})


def _describe(schedule: Schedule, steps_per_epoch: int) -> str:
    if isinstance(schedule, OneCycle):
        peak = (schedule.peak_step + 1) / steps_per_epoch
        return f"1cycle: {schedule.lr_min:g} → {schedule.lr_max:g} (epoch {peak:g}) → back"
    if isinstance(schedule, Cyclic):
        return f"cyclical learning rate ({schedule.mode})"
    if isinstance(schedule, MultiStep) and schedule.milestones:
        return "step decay"
    return "constant learning rate"


def _hline(ax: Axes, y: float, text: str, x: float, above: bool) -> None:
    """A dotted level with its label placed at `x`, where the curve is far from that level."""
    ax.axhline(y, color="grey", lw=0.8, ls=":")
    ax.annotate(
        text,
        (x, y),
        xytext=(0, 3 if above else -3),
        textcoords="offset points",
        ha="center",
        va="bottom" if above else "top",
        fontsize=9,
        color="0.3",
    )


def _bracket(ax: Axes, start: float, stop: float, y: float, text: str, tick: float) -> None:
    """A span drawn as a bracket (plain lines, no arrows) with its label on the outer side."""
    ax.plot([start, start, stop, stop], [y + tick, y, y, y + tick], color="0.3", lw=1)
    ax.text(
        (start + stop) / 2,
        y - tick / 2,
        text,
        ha="center",
        va="top" if tick > 0 else "bottom",
        fontsize=9,
        color="0.2",
    )


def _annotate(ax: Axes, schedule: Schedule, total_steps: int) -> None:
    if isinstance(schedule, OneCycle):
        peak = schedule.peak_step
        # Labels where neither curve passes: late in the descent, lr and momentum are mid-way.
        _hline(ax, schedule.lr_max, f"lr_max = {schedule.lr_max:g}", total_steps * 0.8, False)
        _hline(ax, schedule.lr_min, f"lr_min = {schedule.lr_min:g}", total_steps * 0.6, True)
        ax.axvline(peak, color="grey", lw=0.8, ls=":")
        ax.annotate(
            f" peak: step {peak}", (peak, schedule.lr_max), va="top", fontsize=9, color="0.3"
        )
    elif isinstance(schedule, Cyclic):
        low, high, size = schedule.base_lr, schedule.max_lr, schedule.step_size
        span = high - low
        last = total_steps - 1
        ax.set_ylim(low - 0.25 * span, high + 0.22 * span)  # room for the brackets
        # Labels inside the drawn steps: a run shorter than its cycle draws only part of it, and
        # a label placed beyond would stretch the saved image (bbox "tight") to reach it.
        _hline(ax, high, f"max lr = {high:g}", min(2 * size, 0.8 * last), False)
        _hline(ax, low, f"base lr = {low:g}", min(size, 0.4 * last), True)
        # The first cycle, shaded, and its two halves of one step size each: what is drawn.
        ax.axvspan(0, min(2 * size, last), color="tab:green", alpha=0.07)
        if size <= last:
            ax.axvline(size, color="grey", lw=0.8, ls=":")
        for start in (0, size):
            if start + size <= last:
                _bracket(ax, start, start + size, low - 0.08 * span, "step size", 0.04 * span)
        if 2 * size <= last:
            _bracket(ax, 0, 2 * size, high + 0.1 * span, "cycle = 2 × step size", -0.04 * span)
    elif isinstance(schedule, MultiStep):
        for m in schedule.milestones:
            ax.axvline(m, color="grey", lw=0.8, ls=":")


def finder_figure(curves: Sequence[Mapping], chosen: int | None, choice: Mapping | None) -> Figure:
    """Loss against learning rate (log x): each weight decay's smoothed curve (raw losses faint),
    its minimum marked, and the chosen lr_max and lr_min as labelled vertical lines.

    `curves[i]` has lrs, losses, smoothed and weight_decay; `chosen` indexes the curve whose
    suggestion `choice` (method, lr_max, lr_min, lr_min_from) is used. Without a choice (no
    curve gave a reading) the curves are drawn alone, to show why.
    """
    figure, ax = _figure(figsize=(8, 4.8))
    for i, curve in enumerate(curves):
        label = f"wd {curve['weight_decay']:g}" + (" (chosen)" if i == chosen else "")
        if len(curves) == 1:
            label = f"smoothed loss, wd {curve['weight_decay']:g}"
        (line,) = ax.plot(
            curve["lrs"], curve["smoothed"], lw=2.5 if i == chosen else 1.5, label=label
        )
        ax.plot(curve["lrs"], curve["losses"], color=line.get_color(), alpha=0.25, lw=1)
        finite = [j for j, v in enumerate(curve["smoothed"]) if math.isfinite(v)]
        if finite:
            lowest = min(finite, key=lambda j: curve["smoothed"][j])
            ax.plot(curve["lrs"][lowest], curve["smoothed"][lowest], "v", color=line.get_color(),
                    ms=8, mfc="white", label="minimum" if i == (chosen or 0) else None)  # fmt: skip
    if choice is not None:
        method, lr_min_from = choice["method"], choice["lr_min_from"]
        lines = (
            ("lr_max", "tab:red", f"{method}"),
            ("lr_min", "tab:green", f"{method}: {lr_min_from}"),
        )
        for key, colour, how in lines:
            label = f"{key} {choice[key]:.3g} ({how})"
            ax.axvline(choice[key], color=colour, ls="--", lw=1.5, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    finite = [v for c in curves for v in c["smoothed"] if math.isfinite(v)]
    if finite:  # keep the divergence spike from flattening the interesting part
        low, start = min(finite), max(c["smoothed"][0] for c in curves)
        ax.set_ylim(low - 0.1 * (start - low) - 0.01, start + 0.5 * (start - low) + 0.01)
    ax.set_title("LR range test" + ("" if choice is not None else ": no reading"))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return figure


def training_figure(rows: Sequence[Mapping[str, float | None]]) -> Figure:
    """Loss and accuracy against epoch, train and test, from metrics rows."""
    figure, (loss_ax, acc_ax) = _figure(1, 2, figsize=(11, 4))
    epochs = [r["epoch"] for r in rows]
    tested = [r for r in rows if r["test_acc"] is not None]
    loss_ax.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    loss_ax.plot([r["epoch"] for r in tested], [r["test_loss"] for r in tested], "s-", label="test")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    percent = FuncFormatter(lambda v, _: f"{100 * v:.0f}%")
    acc_ax.plot(epochs, [r["train_acc"] for r in rows], "o-", label="train (augmented)")
    acc_ax.plot([r["epoch"] for r in tested], [r["test_acc"] for r in tested], "s-", label="test")
    acc_ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    acc_ax.yaxis.set_major_formatter(percent)
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    return figure


def confusion_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> Figure:
    """Counts of (true class, predicted class), rows normalised for the colour."""
    n = len(classes)
    figure, ax = _figure(figsize=(7.5, 6.5))
    totals = [max(1, sum(row)) for row in matrix]
    shares = [[v / t for v in row] for row, t in zip(matrix, totals, strict=True)]
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if shares[i][j] > 0.5 else "black"
            ax.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title="confusion matrix (test set)")
    figure.colorbar(image, ax=ax, label="share of the true class")
    return figure


def curves_figure(curves: Sequence, title: str = "") -> Figure:
    """Test accuracy (mean +- std band where a curve averages runs) and lr against the epoch,
    one colour per curve (`curves.Curve`)."""
    figure, (acc_ax, lr_ax) = _figure(
        2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    for curve in curves:
        accuracy = [100 * a for a in curve.accuracy]
        label = curve.label + (f" (n={curve.runs})" if curve.runs > 1 else "")
        (line,) = acc_ax.plot(curve.epochs, accuracy, marker=".", lw=1.6, label=label)
        if curve.accuracy_std is not None:
            spread = [100 * s for s in curve.accuracy_std]
            low = [a - s for a, s in zip(accuracy, spread, strict=True)]
            high = [a + s for a, s in zip(accuracy, spread, strict=True)]
            acc_ax.fill_between(curve.epochs, low, high, color=line.get_color(), alpha=0.2)
        lr_ax.plot(curve.lr_epochs, curve.lr, color=line.get_color(), lw=1.4)
    acc_ax.set_ylabel("test accuracy (%)")
    acc_ax.legend(fontsize=8, loc="lower right")
    acc_ax.grid(alpha=0.3)
    acc_ax.set_title(title or "test accuracy and learning rate per epoch (band: +- 1 std)")
    lr_ax.set_ylabel("lr (epoch end)")
    lr_ax.set_xlabel("epoch")
    lr_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    lr_ax.grid(alpha=0.3)
    return figure


def grid_figure(
    values: Sequence[float | str],
    lines: Mapping[str, Sequence[tuple[float, float | None] | None]],
    key: str,
) -> Figure:
    """Mean test accuracy (+- std error bars) against one grid key's values; one line per
    combination of the other keys. `lines[label][i]` is (mean, std) at `values[i]`, or None."""
    figure, ax = _figure(figsize=(7, 4.5))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    positions = list(values) if numeric else list(range(len(values)))
    for label, points in lines.items():
        xs = [x for x, p in zip(positions, points, strict=True) if p is not None]
        means = [100 * p[0] for p in points if p is not None]
        errors = [100 * (p[1] or 0.0) for p in points if p is not None]
        ax.errorbar(xs, means, yerr=errors, marker="o", capsize=4, lw=1.5, label=label or None)
    if numeric and min(values) > 0 and max(values) / min(values) >= 8:
        ax.set_xscale("log")  # lr and weight-decay grids span decades
    if not numeric:
        ax.set_xticks(positions, [str(v) for v in values])
    ax.set_xlabel(key)
    ax.set_ylabel("final test accuracy (%)")
    ax.grid(alpha=0.3)
    if any(lines):
        ax.legend(fontsize=8)
    ax.set_title(f"test accuracy against {key} (mean +- std over seeds)")
    return figure
