"""Reading an LR range test: pure functions from (lrs, losses) curves to lr_max, lr_min and a
weight decay. No torch, no files: the tests pin them on synthetic curves.

The curve is smoothed without lag (an exponential moving average run forwards, then backwards over
the result: a symmetric kernel), so every feature stays at the lr where it happened. A causal EMA,
which the range test needs to decide online when to stop, trails the curve by about 1 / (1 - beta)
steps: at beta 0.95 on a 100-step sweep over five decades, one decade of lr.

Methods (each gives lr_max; lr_min comes from the curve for `floor`, `middle`, `bounds` and
`edge`, else lr_max / div_factor):
- floor (Smith, arXiv 1506.01186 sec. 3.3: the bounds are where the accuracy starts to rise and
  where it slows): lr_min where the loss starts to fall, lr_max where it stops falling fast, the
  first lr at which the smoothed loss comes within `tolerance` of the drop of its minimum. A range
  test's floor is flat, so where on it the minimum lies is decided by noise; its start is not.
- middle: the middle of the floor on a log scale (the geometric mean of where the loss reaches its
  floor and where it leaves it: `floor` and `edge`), the lr furthest by ratio from both ends of
  the range that trains about equally well in the test. Where the floor is short it lies near
  the minimum; where it is long and flat it does not depend on where the noise put the minimum.
- bounds (Smith, arXiv 1506.01186 sec. 3.3 and 1803.09820 sec. 4.1): the range in which the
  network learns. lr_min where the loss starts to fall (the smoothed loss has dropped by
  `tolerance` of its total drop); lr_max where it stops falling (the smoothed minimum).
- edge: lr_min as bounds; lr_max at the upper edge of the valley, the largest lr before the loss
  rises more than `tolerance` of the drop above its minimum (the last lr that still trains).
- steepest: where the smoothed loss falls fastest against log(lr), before its minimum.
- valley: the middle of the longest run of consecutive decreases before the minimum.
- minimum: the lr of the lowest smoothed loss, divided by 10.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

Method = Literal["floor", "middle", "bounds", "edge", "steepest", "valley", "minimum"]
METHODS: tuple[Method, ...] = get_args(Method)
MIN_POINTS = 3  # fewer finite points than this: no reading at all
MIN_RANGE = 3.0  # a curve's lr_min must lie at least this factor below lr_max (Smith: 3 to 10)
# A fall of the smoothed loss smaller than this many standard deviations of the loss's
# step-to-step noise is no descent. Pure noise, smoothed at beta 0.8 to 0.98 over 30 to 500
# steps, falls by at most 2.3 of them (1,600 simulated curves); the range tests committed under
# docs/results fall by 8 to 50 (scripts/finder_noise.py, docs/results/finder-noise.txt).
NOISE_MULTIPLE = 3.0


@dataclass(frozen=True)
class Suggestion:
    method: str
    lr_max: float
    lr_min: float
    lr_min_from: str  # "curve" (where the loss starts to fall) or "lr_max / <div_factor>"


@dataclass(frozen=True)
class Reading:
    """What a curve shows, before any method picks from it (indices into the curve)."""

    lowest: int  # the smoothed minimum
    descent_start: int | None  # where the loss has fallen by `tolerance` of the drop
    floor_start: int  # the first point within `tolerance` of the drop above the minimum
    valley_end: int  # the last point before the loss rises `tolerance` of the drop again
    turned_up: bool  # False: the loss never rose again inside the sweep (raise finder.end_lr)
    drop: float  # start level - minimum of the smoothed loss


def zero_lag(values: Sequence[float], beta: float, ceiling: float = math.inf) -> list[float]:
    """Forward-backward EMA: the two passes' lags cancel, so a symmetric bump stays in place.

    Each pass starts from its first value (no pull towards zero, so no bias correction needed).
    Values are first clipped at `ceiling`: the range test passes its starting loss, since once a
    loss is back above where it started, how far above says nothing more, and a diverging tail
    (hundreds of times the minimum) would otherwise leak back across the whole curve. Only the
    leading finite values are smoothed; a non-finite tail is returned as is.
    """
    n = next((i for i, v in enumerate(values) if not math.isfinite(v)), len(values))
    clipped = [min(v, ceiling) for v in values[:n]]
    forward, average = [], clipped[0] if n else 0.0
    for v in clipped:
        average = beta * average + (1 - beta) * v
        forward.append(average)
    backward = [0.0] * n
    average = forward[-1] if n else 0.0
    for i in range(n - 1, -1, -1):
        average = beta * average + (1 - beta) * forward[i]
        backward[i] = average
    return backward + list(values[n:])


def step_noise(losses: Sequence[float]) -> float:
    """The standard deviation of a loss curve's step-to-step noise: from its second differences
    (in which a trend, falling or curving up, all but cancels), by their median absolute
    deviation (which a spike or a diverging tail does not move). Only the leading finite values
    count."""
    n = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
    curvature = [a - 2 * b + c for a, b, c in zip(losses, losses[1:n], losses[2:n], strict=False)]
    if len(curvature) < 2:
        return 0.0
    centre = statistics.median(curvature)
    mad = statistics.median(abs(d - centre) for d in curvature)
    return 1.4826 * mad / math.sqrt(6)  # MAD -> sd of a normal; a - 2b + c has variance 6 sd^2


def read(
    smoothed: Sequence[float],
    tolerance: float,
    flat_steps: int,
    diverged: bool = False,
    noise: float = 0.0,
) -> Reading | None:
    """The curve's features, or None when it has no descent (too short, rising from the start,
    or falling by no more than NOISE_MULTIPLE x `noise`, the raw loss's `step_noise`).

    `flat_steps`: how many steps the loss must stay near its start level before the fall counts
    as a clear start (a curve falling from its first step gives no lr_min of its own).
    `diverged`: the sweep stopped because the loss blew up at its last lr, which therefore lies
    outside the valley however much the smoothing flattens that last spike.
    """
    n = next((i for i, v in enumerate(smoothed) if not math.isfinite(v)), len(smoothed))
    if diverged:
        n = min(n, len(smoothed) - 1)
    if n < MIN_POINTS:
        return None
    lowest = min(range(n), key=lambda i: smoothed[i])
    drop = smoothed[0] - smoothed[lowest]
    if lowest == 0 or drop <= 0 or drop <= NOISE_MULTIPLE * noise:
        return None
    band = tolerance * drop
    start = next(i for i in range(lowest + 1) if smoothed[i] <= smoothed[0] - band)
    floor = next(i for i in range(lowest + 1) if smoothed[i] <= smoothed[lowest] + band)
    end = lowest
    while end + 1 < n and smoothed[end + 1] <= smoothed[lowest] + band:
        end += 1
    turned_up = end + 1 < len(smoothed)  # a point above the band, or the diverged end, follows
    descent_start = start if start >= flat_steps else None
    return Reading(lowest, descent_start, floor, end, turned_up, drop)


def suggest(
    lrs: Sequence[float],
    smoothed: Sequence[float],
    tolerance: float,
    div_factor: float,
    flat_steps: int,
    diverged: bool = False,
) -> dict[str, Suggestion | None]:
    """Every method's suggestion for one curve (None where the curve gives that method nothing)."""
    return from_reading(lrs, smoothed, read(smoothed, tolerance, flat_steps, diverged), div_factor)


def from_reading(
    lrs: Sequence[float], smoothed: Sequence[float], reading: Reading | None, div_factor: float
) -> dict[str, Suggestion | None]:
    """`suggest` for a curve already `read`."""
    if reading is None:
        return dict.fromkeys(METHODS)
    logs = [math.log(lr) for lr in lrs]
    lowest = reading.lowest
    slopes = {
        i: (smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1])
        for i in range(1, lowest)
    }
    longest, run_start = (0, 0), 0
    for i in range(1, lowest + 1):
        if smoothed[i] >= smoothed[i - 1]:
            run_start = i
        elif i - run_start > longest[1] - longest[0]:
            longest = (run_start, i)
    lr_max = {
        "floor": lrs[reading.floor_start],
        "middle": math.sqrt(lrs[reading.floor_start] * lrs[reading.valley_end]),
        "bounds": lrs[lowest],
        "edge": lrs[reading.valley_end],
        "steepest": lrs[min(slopes, key=slopes.__getitem__)] if slopes else None,
        "valley": lrs[(longest[0] + longest[1]) // 2] if longest[1] > longest[0] else None,
        "minimum": lrs[lowest] / 10,
    }
    by_divisor = f"lr_max / {div_factor:g}"
    found: dict[str, Suggestion | None] = {}
    for method, top in lr_max.items():
        if top is None:
            found[method] = None
            continue
        top = round_lr(top)
        bottom, source = round_lr(top / div_factor), by_divisor
        if method in ("floor", "middle", "bounds", "edge") and reading.descent_start is not None:
            start = round_lr(lrs[reading.descent_start])
            if start * MIN_RANGE <= top:
                bottom, source = start, "curve"
        found[method] = Suggestion(method, top, bottom, source)
    return found


def pick_curve(
    minima: Sequence[float],
    drops: Sequence[float],
    lr_maxes: Sequence[float | None],
    tolerance: float,
) -> int | None:
    """The weight decay to train with, by Smith's rule (arXiv 1803.09820 sec. 4.5): among the
    curves that reach (within `tolerance` of the largest drop) the lowest loss, the one that
    tolerates the largest lr_max. Ties go to the first. None if no curve gives an lr_max.
    """
    usable = [i for i, lr in enumerate(lr_maxes) if lr is not None]
    if not usable:
        return None
    best = min(minima[i] for i in usable)
    band = tolerance * max(drops[i] for i in usable)
    near_best = [i for i in usable if minima[i] <= best + band]
    return max(near_best, key=lambda i: (lr_maxes[i], -i))


def round_lr(lr: float) -> float:
    """Three significant digits: what suggested.yaml holds and what training uses."""
    return float(f"{lr:.3g}")
