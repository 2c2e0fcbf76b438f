"""Smith's LR range test: raise the LR every step, watch the loss, suggest lr_min and lr_max.

`range_test` is the algorithm, independent of the model (the tests run it on least squares);
`find_in_setup` applies it to a training `Setup`, one sweep per weight decay, each from the same
starting state, and restores the model, BatchNorm buffers, optimizer and loader RNG bit-for-bit
afterwards. Reading the curves (smoothing, lr_max, lr_min, weight decay) is `suggest.py`'s job.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import math
import shlex
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from . import plots, runs
from . import suggest as suggest_lib
from .config import Config, FinderConfig
from .engine import Setup, restored, set_weight_decay
from .errors import SuperconError
from .progress import Heartbeat, progress_bar
from .schedule import LrMomentum, set_lr_momentum
from .suggest import Reading, Suggestion

METHODS = suggest_lib.METHODS
FINDER_CSV = "lr_finder.csv"
FINDER_COLUMNS = ("lr", "loss", "smoothed_loss")  # then weight_decay, where several are tested


Log = Callable[[str], None]


@dataclass(frozen=True)
class Curve:
    lrs: list[float]  # the lrs actually tried (fewer than planned if it diverged)
    losses: list[float]
    smoothed: list[float]  # zero-lag smoothed losses
    diverged: bool
    weight_decay: float = 0.0


def sweep(start: float, end: float, num: int, mode: Literal["exp", "linear"]) -> list[float]:
    """`num` learning rates from start to end, both included, geometric or arithmetic."""
    if mode == "exp":
        return [start * (end / start) ** (i / (num - 1)) for i in range(num)]
    return [start + (end - start) * i / (num - 1) for i in range(num)]


def range_test(
    train_once: Callable[[float], float],
    lrs: Sequence[float],
    smoothing: float,
    diverge: float,
    on_step: Callable[[], None] = lambda: None,
) -> Curve:
    """One training step per lr; stops once the running loss exceeds `diverge` x its best.

    The stop rule needs an online average: an exponential moving average, bias-corrected like
    Adam's so that the first values are not pulled towards zero. The curve it returns is smoothed
    afterwards without lag (`suggest.zero_lag`), so that its features sit where they happened.
    """
    tried, losses = [], []
    average, best = 0.0, math.inf
    diverged = False
    for i, lr in enumerate(lrs):
        loss = train_once(lr)
        on_step()
        average = smoothing * average + (1 - smoothing) * loss
        running = average / (1 - smoothing ** (i + 1))
        tried.append(lr)
        losses.append(loss)
        if not math.isfinite(running) or running > diverge * best:
            diverged = True
            break
        best = min(best, running)
    ceiling = losses[0] if losses else math.inf
    return Curve(tried, losses, suggest_lib.zero_lag(losses, smoothing, ceiling), diverged)


Choice = tuple[int, Suggestion]  # (index of the weight decay's curve, its suggestion)


class NoReading(SuperconError):
    """No curve gave a reading. The curves travel with the error: they show why."""

    def __init__(self, message: str, curves: list[Curve]) -> None:
        super().__init__(message)
        self.curves = curves


@dataclass(frozen=True)
class FinderReport:
    curves: list[Curve]  # one per weight decay, in the order given
    suggestions: list[dict[str, Suggestion | None]]  # per curve: every method's reading
    choices: dict[str, Choice | None]  # per method: the weight decay its rule picks, and its lrs
    method: str  # the method whose choice is used (finder.suggest, or the default as a fallback)

    @property
    def chosen(self) -> Choice:
        choice = self.choices[self.method]
        assert choice is not None  # find_in_setup only builds reports with a usable method
        return choice

    @property
    def lr_max(self) -> float:
        return self.chosen[1].lr_max

    @property
    def lr_min(self) -> float:
        return self.chosen[1].lr_min

    @property
    def weight_decay(self) -> float:
        return self.curves[self.chosen[0]].weight_decay


def read_curves(
    curves: Sequence[Curve], tolerance: float, div_factor: float, flat_steps: int
) -> tuple[list[Reading | None], list[dict[str, Suggestion | None]], dict[str, Choice | None]]:
    """Each curve's reading and suggestions, and per method the curve (weight decay) Smith's
    rule picks."""
    readings = [
        suggest_lib.read(
            c.smoothed, tolerance, flat_steps, c.diverged, suggest_lib.step_noise(c.losses)
        )
        for c in curves
    ]
    suggestions = [
        suggest_lib.from_reading(c.lrs, c.smoothed, reading, div_factor)
        for c, reading in zip(curves, readings, strict=True)
    ]
    minima = [
        c.smoothed[r.lowest] if r else math.inf for c, r in zip(curves, readings, strict=True)
    ]
    drops = [r.drop if r else 0.0 for r in readings]
    choices: dict[str, Choice | None] = {}
    for method in METHODS:
        picks = [s[method] for s in suggestions]
        lr_maxes = [p.lr_max if p else None for p in picks]
        index = suggest_lib.pick_curve(minima, drops, lr_maxes, tolerance)
        # pick_curve only picks a curve that has a suggestion: picks[index] is one
        choices[method] = None if index is None else (index, picks[index])  # type: ignore[assignment]
    return readings, suggestions, choices


def _sweep_setup(setup: Setup, weight_decay: float, progress: bool, log: Log) -> Curve:
    """One range test from the setup's current state, which is restored afterwards."""
    cfg = setup.cfg.finder
    momentum = cfg.momentum if cfg.momentum is not None else setup.cfg.schedule.momentum_max
    lrs = sweep(cfg.start_lr, cfg.end_lr, cfg.num_iters, cfg.mode)
    loader = setup.train_loader
    batches = itertools.chain.from_iterable(iter(loader) for _ in itertools.count())

    def train_once(lr: float) -> float:
        set_lr_momentum(setup.optimizer, LrMomentum(lr, momentum))
        x, y = next(batches)
        loss, _ = setup.train_step(x, y)
        return loss.item()  # the sweep needs every loss: one sync per step

    stateful = (setup.model, setup.optimizer, loader, setup.train_step.scaler)
    what = f"range test, weight decay {weight_decay:g}"
    bar = progress_bar(len(lrs), what, progress)
    heartbeat = Heartbeat(log, enabled=bar.disable)
    done = itertools.count(1)

    def step_done() -> None:
        bar.update()
        heartbeat.beat(next(done), len(lrs), lambda: what)

    with restored(*stateful), bar:
        set_weight_decay(setup.optimizer, weight_decay)
        curve = range_test(train_once, lrs, cfg.smoothing, cfg.diverge, step_done)
    return dataclasses.replace(curve, weight_decay=weight_decay)


def flat_steps(smoothing: float) -> int:
    """Steps the loss must hold its start level before a fall counts as a clear start: the
    smoothing's own span (1 / (1 - beta)), below which a fall could be the smoothing's edge."""
    return max(suggest_lib.MIN_POINTS, round(1 / (1 - smoothing)))


def no_reading(curves: Sequence[Curve], cfg: FinderConfig) -> NoReading:
    """The error for curves of which none gave a reading, with what to change: how they went
    decides it."""
    longest = max(len(c.lrs) for c in curves)
    # With several weight decays, say that it held for every one of them.
    decays = ", ".join(f"{c.weight_decay:g}" for c in curves)
    test = f"LR range test (each of weight decays {decays})" if len(curves) > 1 else "LR range test"
    if all(c.diverged for c in curves):
        return NoReading(
            f"{test}: the loss diverged after {longest} steps without falling first "
            f"(from finder.start_lr = {cfg.start_lr:g}, stopping at finder.diverge = "
            f"{cfg.diverge:g} x the best loss); lower finder.start_lr, or raise "
            "finder.diverge if the loss only wobbled",
            list(curves),
        )
    # A loss that rose by the end of the sweep has seen lrs too high to train: a wider range
    # cannot help, more steps per decade of lr can (each lr trains longer).
    wider = "" if any(_rose(c) for c in curves) else "finder.end_lr or "
    return NoReading(
        f"{test}: the loss never fell clearly (by more than "
        f"{suggest_lib.NOISE_MULTIPLE:g} x its step-to-step noise) in {longest} steps from "
        f"finder.start_lr = {cfg.start_lr:g} to finder.end_lr = {cfg.end_lr:g}; raise "
        f"{wider}finder.num_iters",
        list(curves),
    )


def _rose(curve: Curve) -> bool:
    """Whether the loss ended the sweep above where it began (medians of a few steps each
    end, so that one noisy step decides nothing)."""
    finite = [v for v in curve.losses if math.isfinite(v)]
    if curve.diverged or len(finite) < len(curve.losses):
        return True
    span = max(1, len(finite) // 5)
    return statistics.median(finite[-span:]) > statistics.median(finite[:span])


def find_in_setup(setup: Setup, progress: bool = False, log: Log = lambda _: None) -> FinderReport:
    """Range tests under the setup's exact training conditions; leaves the setup untouched."""
    cfg = setup.cfg.finder
    decays = list(cfg.weight_decays or [setup.cfg.optim.weight_decay])
    each = f" for each of {len(decays)} weight decays" if len(decays) > 1 else ""
    log(
        f"LR range test: {cfg.num_iters} steps{each}, lr {cfg.start_lr:g} to {cfg.end_lr:g} "
        f"({cfg.mode}), batch {setup.cfg.train.batch_size}"
    )
    curves = [_sweep_setup(setup, wd, progress, log) for wd in decays]
    readings, suggestions, choices = read_curves(
        curves, cfg.tolerance, cfg.div_factor, flat_steps(cfg.smoothing)
    )
    fallback = type(cfg).model_fields["suggest"].default  # when the chosen method reads nothing
    method = cfg.suggest if choices[cfg.suggest] is not None else fallback
    if choices[method] is None:
        raise no_reading(curves, cfg)
    reading = readings[choices[method][0]]  # type: ignore[index]
    if reading is not None and not reading.turned_up:
        # The valley's upper end lies beyond the sweep: readings that use it (middle, bounds,
        # edge) see only its part inside, and come out too low.
        log(
            f"warning: at finder.end_lr = {cfg.end_lr:g} the loss had not yet risen from its "
            f"lowest (by finder.tolerance = {cfg.tolerance:g} of its drop): the range test did "
            "not see where it turns up, and middle, bounds and edge read lr_max too low; raise "
            "finder.end_lr"
        )
    return FinderReport(curves, suggestions, choices, method)


def is_finder_folder(folder: Path) -> bool:
    """Whether `folder` holds a range test's results (a find-lr folder, or a `--lr-max auto`
    run's lr_finder/): its lr_finder.csv begins with this tool's columns."""
    return runs.csv_header(folder / FINDER_CSV)[: len(FINDER_COLUMNS)] == list(FINDER_COLUMNS)


def write_curves(
    curves: Sequence[Curve], cfg: Config, folder: Path, chosen: Choice | None = None
) -> dict[str, Path]:
    """lr_finder.csv and lr_finder.png: the curves, and in the plot the `chosen` suggestion's
    lrs (none: the curves alone, as when they gave no reading)."""
    folder.mkdir(parents=True, exist_ok=True)
    sweeping = cfg.finder.weight_decays is not None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*FINDER_COLUMNS] + (["weight_decay"] if sweeping else []))
    for curve in curves:
        for row in zip(curve.lrs, curve.losses, curve.smoothed, strict=True):
            writer.writerow(
                [f"{v:.6g}" for v in row] + ([f"{curve.weight_decay:g}"] if sweeping else [])
            )
    paths = {"csv": folder / FINDER_CSV, "png": folder / "lr_finder.png"}
    runs.write_text(paths["csv"], buffer.getvalue())
    index, choice = chosen if chosen is not None else (None, None)
    figure = plots.finder_figure(
        [dataclasses.asdict(c) for c in curves],
        index,
        dataclasses.asdict(choice) if choice is not None else None,
    )
    plots.save(figure, paths["png"])
    return paths


def write_outputs(report: FinderReport, cfg: Config, folder: Path, tested: Path) -> dict[str, Path]:
    """lr_finder.csv, lr_finder.png and suggested.yaml (a fragment `train --config` accepts on
    top of `tested`, the config file the range test ran with)."""
    paths = write_curves(report.curves, cfg, folder, report.chosen)
    choice = report.chosen[1]
    sweeping = cfg.finder.weight_decays is not None
    fragment: dict[str, Any] = {"schedule": {"lr_max": report.lr_max, "lr_min": report.lr_min}}
    if sweeping:
        fragment["optim"] = {"weight_decay": report.weight_decay}
    paths["yaml"] = folder / "suggested.yaml"
    command = ["supercon", "train", "--config", str(tested), "--config", str(paths["yaml"])]
    comment = (
        f"# LR range test, method {report.method} (lr_min from {choice.lr_min_from}"
        + (f"; weight decay chosen from {list(cfg.finder.weight_decays or [])}" if sweeping else "")
        + "); train with it:\n"
        # A newline inside a quoted path must not end the comment and turn into YAML.
        + "".join(f"#   {line}\n" for line in shlex.join(command).splitlines())
    )
    runs.write_text(paths["yaml"], comment + yaml.safe_dump(fragment, sort_keys=False))
    return paths
