"""Learning-rate and momentum schedules as pure functions of the optimizer step.

A schedule is a frozen dataclass; `schedule(step)` returns the (lr, momentum) to use for the
optimizer step with that 0-based index. Nothing here touches an optimizer except `Scheduler`,
which applies a schedule every iteration and keeps only the step count as state. Step counting
follows torch.optim.lr_scheduler (OneCycleLR, CyclicLR, MultiStepLR): step 0 is the first update.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import torch

from .config import ScheduleConfig
from .errors import ConfigError, ValueRefused


class LrMomentum(NamedTuple):
    lr: float
    momentum: float


class Schedule(Protocol):
    def __call__(self, step: int) -> LrMomentum: ...


def interpolate(start: float, end: float, pct: float, anneal: Literal["linear", "cos"]) -> float:
    """From start (pct = 0) to end (pct = 1), along a straight line or half a cosine."""
    if anneal == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_momentum(momentum_min: float, momentum_max: float) -> None:
    _require(
        0 <= momentum_min <= momentum_max < 1,
        f"need 0 <= momentum_min <= momentum_max < 1, got {momentum_min} and {momentum_max}",
    )


@dataclass(frozen=True)
class OneCycle:
    """Smith's 1cycle: up to lr_max, back down to lr_min, then optionally annihilate.

    Knots (step indices): lr_min at 0, lr_max at `peak_step`, lr_min at
    `total_steps - 1 - annihilation_steps`, lr_min / annihilation_factor at `total_steps - 1`.
    """

    total_steps: int
    peak_step: int
    lr_min: float
    lr_max: float
    annihilation_steps: int = 0
    annihilation_factor: float = 100.0
    anneal: Literal["linear", "cos"] = "linear"
    momentum_max: float = 0.95
    momentum_min: float = 0.85
    cycle_momentum: bool = True

    def __post_init__(self) -> None:
        _require(0 < self.lr_min < self.lr_max, f"need 0 < lr_min < lr_max, got {self}")
        _require(self.annihilation_steps >= 0, "annihilation_steps must be >= 0")
        _require(
            0 < self.peak_step < self.total_steps - 1 - self.annihilation_steps,
            f"need 0 < peak_step ({self.peak_step}) < total_steps - 1 - annihilation_steps "
            f"({self.total_steps - 1 - self.annihilation_steps})",
        )
        _require(self.annihilation_factor >= 1, "annihilation_factor must be >= 1")
        _check_momentum(self.momentum_min, self.momentum_max)

    def __call__(self, step: int) -> LrMomentum:
        _require(0 <= step < self.total_steps, f"step {step} outside [0, {self.total_steps})")
        hi_m, lo_m = self.momentum_max, self.momentum_min
        descent_end = self.total_steps - 1 - self.annihilation_steps
        if step <= self.peak_step:
            # 1) warm up: lr_min -> lr_max while momentum falls max -> min
            pct = step / self.peak_step
            lr = interpolate(self.lr_min, self.lr_max, pct, self.anneal)
            momentum = interpolate(hi_m, lo_m, pct, self.anneal)
        elif step <= descent_end:
            # 2) anneal: lr_max -> lr_min while momentum rises min -> max
            pct = (step - self.peak_step) / (descent_end - self.peak_step)
            lr = interpolate(self.lr_max, self.lr_min, pct, self.anneal)
            momentum = interpolate(lo_m, hi_m, pct, self.anneal)
        else:
            # 3) annihilate: lr_min -> lr_min / factor, momentum held at max
            pct = (step - descent_end) / self.annihilation_steps
            final_lr = self.lr_min / self.annihilation_factor
            lr = interpolate(self.lr_min, final_lr, pct, self.anneal)
            momentum = hi_m
        return LrMomentum(lr, momentum if self.cycle_momentum else hi_m)


@dataclass(frozen=True)
class Cyclic:
    """Smith's cyclical learning rates (CLR): a triangle of half-width `step_size` steps.

    triangular: constant amplitude; triangular2: amplitude halved every cycle; exp_range:
    amplitude x gamma**step. Momentum moves inversely between momentum_max and momentum_min.
    """

    base_lr: float
    max_lr: float
    step_size: int
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"
    gamma: float = 1.0
    momentum_max: float = 0.95
    momentum_min: float = 0.85
    cycle_momentum: bool = True

    def __post_init__(self) -> None:
        _require(0 < self.base_lr < self.max_lr, f"need 0 < base_lr < max_lr, got {self}")
        _require(self.step_size >= 1, f"step_size must be >= 1, got {self.step_size}")
        _require(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        _check_momentum(self.momentum_min, self.momentum_max)

    def __call__(self, step: int) -> LrMomentum:
        _require(step >= 0, f"step must be >= 0, got {step}")
        cycle = math.floor(1 + step / (2 * self.step_size))  # 1-based
        x = abs(step / self.step_size - 2 * cycle + 1)  # 1 at the cycle's ends, 0 at its peak
        height = max(0.0, 1 - x)
        if self.mode == "triangular2":
            height /= 2.0 ** (cycle - 1)
        elif self.mode == "exp_range":
            height *= self.gamma**step
        lr = self.base_lr + (self.max_lr - self.base_lr) * height
        momentum = self.momentum_max - (self.momentum_max - self.momentum_min) * height
        return LrMomentum(lr, momentum if self.cycle_momentum else self.momentum_max)


@dataclass(frozen=True)
class MultiStep:
    """The step-decay baseline: lr x decay at each milestone step (constant with none)."""

    lr: float
    milestones: tuple[int, ...] = ()
    decay: float = 0.1
    momentum: float = 0.9

    def __post_init__(self) -> None:
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(
            all(a < b for a, b in itertools.pairwise(self.milestones)),
            f"milestones must increase strictly, got {self.milestones}",
        )
        _require(0 < self.decay <= 1, f"decay must be in (0, 1], got {self.decay}")
        _require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")

    def __call__(self, step: int) -> LrMomentum:
        _require(step >= 0, f"step must be >= 0, got {step}")
        passed = sum(1 for m in self.milestones if m <= step)
        return LrMomentum(self.lr * self.decay**passed, self.momentum)


def check_batch_size(batch_size: int, num_images: int) -> None:
    """A batch larger than the training set: no full batch (an epoch of no step, or of one
    short one), whatever drop_last says."""
    if batch_size > num_images:
        raise ValueRefused(
            "train.batch_size",
            f"{batch_size} is larger than the training set ({num_images} images)",
        )


def steps_per_epoch(num_images: int, batch_size: int, drop_last: bool) -> int:
    check_batch_size(batch_size, num_images)
    return num_images // batch_size if drop_last else math.ceil(num_images / batch_size)


def check_fits(cfg: ScheduleConfig, epochs: int, steps_per_epoch: int) -> None:
    """What the config cannot check alone: its epochs, turned into whole optimizer steps, must
    still make the schedule (the caller runs this before creating a run directory)."""
    if cfg.policy == "one_cycle":
        if cfg.annihilation_epochs and _steps(cfg.annihilation_epochs, steps_per_epoch) == 0:
            # Asked for, yet silently none: refused like a peak that rounds to no step.
            raise ConfigError(
                [
                    f"schedule.annihilation_epochs: {cfg.annihilation_epochs:g} rounds to no step "
                    f"at {steps_per_epoch} steps per epoch; give 0 for no annihilation, or at "
                    f"least {1 / steps_per_epoch:.3g} (one step)"
                ]
            )
        peak_step, last_peak = _one_cycle_peak(cfg, epochs, steps_per_epoch)
        if last_peak < 1:
            raise ConfigError(
                [
                    f"train.epochs: {epochs} epoch(s) of {steps_per_epoch} step(s) are too few "
                    "steps for a cycle that rises and falls: more epochs or a smaller batch"
                ]
            )
        if not 0 < peak_step <= last_peak:
            # The config checks epochs; in steps, a peak in the first or last step is still void.
            raise ConfigError(
                [
                    f"schedule.peak_epoch: {cfg.peak_epoch:g} puts the peak at step {peak_step}, "
                    f"outside 1..{last_peak} ({steps_per_epoch} steps per epoch)"
                ]
            )
    if cfg.policy == "multistep":
        at = [_steps(m, steps_per_epoch) for m in cfg.milestones]
        if any(a >= b for a, b in itertools.pairwise(at)):
            raise ConfigError(
                [
                    f"schedule.milestones: {', '.join(f'{m:g}' for m in cfg.milestones)} "
                    f"(epochs) fall on steps {', '.join(map(str, at))} at {steps_per_epoch} "
                    "steps per epoch; milestones need at least one step between them"
                ]
            )


def _steps(epochs: float, steps_per_epoch: int) -> int:
    """A point or span given in (fractional) epochs, in whole optimizer steps."""
    return round(epochs * steps_per_epoch)


def _one_cycle_peak(cfg: ScheduleConfig, epochs: int, steps_per_epoch: int) -> tuple[int, int]:
    """(the peak's step: the last step of the peak epoch, the latest step a peak may take)."""
    annihilation = _steps(cfg.annihilation_epochs, steps_per_epoch)
    return _steps(cfg.peak_epoch, steps_per_epoch) - 1, epochs * steps_per_epoch - 2 - annihilation


def build(cfg: ScheduleConfig, epochs: int, steps_per_epoch: int) -> Schedule:
    """The configured schedule, with epochs turned into optimizer steps."""
    if cfg.lr_max == "auto" or cfg.lr_min == "auto":
        raise ValueError("resolve lr_min/lr_max ('auto') with the LR range test first")
    check_fits(cfg, epochs, steps_per_epoch)
    if cfg.policy == "one_cycle":
        return OneCycle(
            total_steps=epochs * steps_per_epoch,
            peak_step=_one_cycle_peak(cfg, epochs, steps_per_epoch)[0],
            lr_min=cfg.lr_min,
            lr_max=cfg.lr_max,
            annihilation_steps=_steps(cfg.annihilation_epochs, steps_per_epoch),
            annihilation_factor=cfg.annihilation_factor,
            anneal=cfg.anneal,
            momentum_max=cfg.momentum_max,
            momentum_min=cfg.momentum_min,
            cycle_momentum=cfg.cycle_momentum,
        )
    if cfg.policy in ("triangular", "triangular2", "exp_range"):
        return Cyclic(
            base_lr=cfg.lr_min,
            max_lr=cfg.lr_max,
            step_size=max(1, _steps(cfg.step_size_epochs, steps_per_epoch)),
            mode=cfg.policy,
            gamma=cfg.gamma,
            momentum_max=cfg.momentum_max,
            momentum_min=cfg.momentum_min,
            cycle_momentum=cfg.cycle_momentum,
        )
    milestones = (
        tuple(_steps(m, steps_per_epoch) for m in cfg.milestones)
        if cfg.policy == "multistep"
        else ()
    )
    return MultiStep(cfg.lr_max, milestones, cfg.decay, cfg.momentum_max)


class Scheduler:
    """Applies a schedule to an optimizer every iteration; its only state is the step count.

    Call `step()` right before `optimizer.step()`: it sets lr and momentum (SGD's `momentum`,
    Adam's first beta) for the update about to happen and counts it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule) -> None:
        self.optimizer = optimizer
        self.schedule = schedule
        self.steps_done = 0

    def step(self) -> LrMomentum:
        values = self.schedule(self.steps_done)
        set_lr_momentum(self.optimizer, values)
        self.steps_done += 1
        return values

    def state_dict(self) -> dict[str, int]:
        return {"steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.steps_done = int(state["steps_done"])


def set_lr_momentum(optimizer: torch.optim.Optimizer, values: LrMomentum) -> None:
    for group in optimizer.param_groups:
        group["lr"] = values.lr
        if "betas" in group:
            group["betas"] = (values.momentum, *group["betas"][1:])
        elif "momentum" in group:
            group["momentum"] = values.momentum
