"""Smith's LR range test: raise the LR every step, watch the loss, suggest lr_min and lr_max.

`range_test` is the algorithm, independent of the model (the tests run it on least squares);
`run` applies it to a training `Setup`, one sweep per weight decay, each from the same starting
state, and restores the model, BatchNorm buffers, optimizer and loader RNG bit-for-bit afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import io
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
import yaml

from . import plots, runs
from .config import Config
from .engine import Setup, progress_bar, set_weight_decay
from .errors import SuperconError
from .schedule import LrMomentum, set_lr_momentum

METHODS = ("steepest", "valley", "minimum")


class Stateful(Protocol):
    def state_dict(self) -> Any: ...
    def load_state_dict(self, state: Any) -> Any: ...


@dataclass(frozen=True)
class Curve:
    lrs: list[float]  # the lrs actually tried (fewer than planned if it diverged)
    losses: list[float]
    smoothed: list[float]
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
    """One training step per lr; stops once the smoothed loss exceeds `diverge` x its best.

    The loss is smoothed by an exponential moving average, bias-corrected like Adam's so that
    the first values are not pulled towards zero.
    """
    tried, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    for i, lr in enumerate(lrs):
        loss = train_once(lr)
        on_step()
        average = smoothing * average + (1 - smoothing) * loss
        value = average / (1 - smoothing ** (i + 1))
        tried.append(lr)
        losses.append(loss)
        smoothed.append(value)
        if not math.isfinite(value) or value > diverge * best:
            return Curve(tried, losses, smoothed, diverged=True)
        best = min(best, value)
    return Curve(tried, losses, smoothed, diverged=False)


def suggest(lrs: Sequence[float], smoothed: Sequence[float]) -> dict[str, float | None]:
    """Three readings of a curve, each an lr_max candidate (None if the curve is too short).

    steepest: where the smoothed loss falls fastest against log(lr), before its minimum;
    valley: the middle of the longest run of consecutive decreases before the minimum;
    minimum: the lr of the lowest smoothed loss, divided by 10.
    """
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if len(finite) < 3:
        return dict.fromkeys(METHODS)
    lowest = min(finite, key=lambda i: smoothed[i])
    logs = [math.log(lr) for lr in lrs]
    slopes = {
        i: (smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1])
        for i in range(1, lowest)
    }
    steepest = lrs[min(slopes, key=slopes.__getitem__)] if slopes else None
    longest, start = (0, 0), 0
    for i in range(1, lowest + 1):
        if smoothed[i] >= smoothed[i - 1]:
            start = i
        elif i - start > longest[1] - longest[0]:
            longest = (start, i)
    valley = lrs[(longest[0] + longest[1]) // 2] if longest[1] > longest[0] else None
    return {"steepest": steepest, "valley": valley, "minimum": lrs[lowest] / 10}


@contextlib.contextmanager
def restored(*objects: Stateful) -> Iterator[None]:
    """Run a block, then put every object's state (and the global RNGs) back bit-for-bit."""
    saved = [copy.deepcopy(obj.state_dict()) for obj in objects]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        for obj, state in zip(objects, saved, strict=True):
            obj.load_state_dict(state)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


@dataclass(frozen=True)
class FinderReport:
    curves: list[Curve]
    suggestions: list[dict[str, float | None]]  # one per curve
    method: str
    chosen: int  # index of the curve whose suggestion is used
    lr_max: float
    lr_min: float

    @property
    def weight_decay(self) -> float:
        return self.curves[self.chosen].weight_decay


def _sweep_setup(setup: Setup, weight_decay: float, progress: bool) -> Curve:
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
    bar = progress_bar(len(lrs), f"range test, weight decay {weight_decay:g}", progress)
    with restored(*stateful), bar:
        set_weight_decay(setup.optimizer, weight_decay)
        curve = range_test(train_once, lrs, cfg.smoothing, cfg.diverge, bar.update)
    return dataclasses.replace(curve, weight_decay=weight_decay)


def find_in_setup(setup: Setup, progress: bool = False) -> FinderReport:
    """Range tests under the setup's exact training conditions; leaves the setup untouched."""
    cfg = setup.cfg.finder
    decays = list(cfg.weight_decays or [setup.cfg.optim.weight_decay])
    curves = [_sweep_setup(setup, wd, progress) for wd in decays]
    suggestions = [suggest(c.lrs, c.smoothed) for c in curves]
    configured = setup.cfg.optim.weight_decay
    chosen = decays.index(configured) if configured in decays else 0
    lr_max = suggestions[chosen][cfg.suggest] or suggestions[chosen]["minimum"]
    if lr_max is None:
        raise SuperconError(
            f"LR range test: only {len(curves[chosen].lrs)} steps before the loss diverged; "
            "lower finder.start_lr"
        )
    lr_max = float(f"{lr_max:.3g}")  # what suggested.yaml holds, and what `--lr-max auto` uses
    lr_min = float(f"{lr_max / cfg.div_factor:.3g}")
    return FinderReport(curves, suggestions, cfg.suggest, chosen, lr_max, lr_min)


def write_outputs(report: FinderReport, cfg: Config, folder: Path) -> dict[str, Path]:
    """lr_finder.csv, lr_finder.png and suggested.yaml (a fragment `train --config` accepts)."""
    folder.mkdir(parents=True, exist_ok=True)
    sweeping = cfg.finder.weight_decays is not None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["lr", "loss", "smoothed_loss"] + (["weight_decay"] if sweeping else []))
    for curve in report.curves:
        for row in zip(curve.lrs, curve.losses, curve.smoothed, strict=True):
            writer.writerow(
                [f"{v:.6g}" for v in row] + ([f"{curve.weight_decay:g}"] if sweeping else [])
            )
    paths = {"csv": folder / "lr_finder.csv", "png": folder / "lr_finder.png"}
    runs.write_text(paths["csv"], buffer.getvalue())
    figure = plots.finder_figure(
        [c.__dict__ for c in report.curves], report.suggestions, report.method
    )
    plots.save(figure, paths["png"])
    fragment: dict[str, Any] = {"schedule": {"lr_max": report.lr_max, "lr_min": report.lr_min}}
    if sweeping:
        fragment["optim"] = {"weight_decay": report.weight_decay}
    comment = (
        f"# LR range test ({report.method}); use with:\n"
        f"#   supercon train --config <your config> --config {folder / 'suggested.yaml'}\n"
    )
    paths["yaml"] = folder / "suggested.yaml"
    runs.write_text(paths["yaml"], comment + yaml.safe_dump(fragment, sort_keys=False))
    return paths
