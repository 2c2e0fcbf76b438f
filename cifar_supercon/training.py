"""The training loop: `fit(cfg, run)` trains, evaluates, checkpoints and writes the run's files.

Per step: the schedule sets lr and momentum, then one optimizer update; loss and accuracy are
summed on the device (no host synchronisation until the epoch ends). Per epoch: evaluate, write
metrics.csv, save checkpoints/last.pt atomically. SIGINT/SIGTERM/SIGHUP finish the current step,
save a checkpoint that records the position inside the epoch, and raise `Interrupted`;
`--resume` continues from it and reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import copy
import math
import platform
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torchvision

from . import config as config_lib
from . import engine, lr_finder, plots, processes, runs, suggest
from . import progress as progress_lib
from . import report as report_lib
from . import schedule as schedule_lib
from .config import TWO_BOUND_POLICIES, Config
from .engine import Setup
from .errors import CheckpointError, Interrupted, TrainingDiverged, UsageError, describe
from .loader import TrainLoader
from .model import analytic_parameter_count
from .schedule import Scheduler

Log = Callable[[str], None]
RESUMES_FILE = "resumes.log"  # what a resume changed (device, data folder), one line each
TARGET_ACCURACY = 0.90  # the assignment's bar; the summary records the epoch that first clears it


@dataclass
class EpochSums:
    """Running totals of the epoch in progress (saved with a mid-epoch checkpoint)."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0


@dataclass
class Progress:
    """Everything about the run so far that is not model, optimizer, schedule or loader state."""

    epochs_done: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv
    best_accuracy: float | None = None
    epoch_reached_90: int | None = None
    # Where the wall time went, summed over sessions (a resumed run has several).
    setup_seconds: float = 0.0  # data, model, optimizer (and a checkpoint's restore)
    finder_seconds: float = 0.0  # the LR range test of `--lr-max auto`
    warmup_seconds: float = 0.0  # torch.compile and cuDNN autotuning, before the clock starts
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    checkpoint_seconds: float = 0.0
    wall_seconds: float = 0.0  # of earlier sessions of this run (before a resume)
    partial: EpochSums = field(default_factory=EpochSums)


class StopSignal:
    """Turns the first stop signal (SIGINT, SIGTERM, SIGHUP) into a flag the loop checks after
    each step; the message names that first one.

    A second Ctrl-C falls through to Python's default handler: an impatient user still gets out.
    A signal the caller ignores (SIGINT of a background job started by a script, SIGHUP under
    nohup) stays ignored, as it does while the program starts.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():  # signals only work there
            self._previous = {sig: signal.signal(sig, self._handle) for sig in processes.heeded()}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def fit(
    cfg: Config,
    run: Path,
    *,
    log: Log = lambda _: None,
    progress: bool = False,
    setup: Setup | None = None,
    checkpoint: dict[str, Any] | None = None,
    finder_seconds: float = 0.0,
) -> dict[str, Any]:
    """Train into the run directory `run` (resuming from its last.pt if present).

    `setup` is `engine.build(cfg)` when the caller built it already (to fail on bad data before
    creating a run directory); `checkpoint` is the run's last.pt when the caller read it already;
    `finder_seconds` the time of the range test that chose the lrs (`resolve_auto_lr`).
    """
    setup = setup or engine.build(cfg, log)
    session_start = setup.started
    _log_setup(setup, log)
    last_path = run / runs.CHECKPOINTS / runs.LAST
    cfg = setup.cfg
    schedule = schedule_lib.build(cfg.schedule, cfg.train.epochs, setup.steps_per_epoch)
    scheduler = Scheduler(setup.optimizer, schedule)
    state = Progress()
    if checkpoint is None and last_path.is_file():
        checkpoint = runs.load_checkpoint(last_path)
    if checkpoint is not None:
        state = _restore(setup, scheduler, checkpoint, last_path, run, log)
        log(f"resuming {run} {_where(state.epochs_done, setup.train_loader)}")

    runs.write_metrics(run, state.rows)  # drop rows of an epoch whose checkpoint never landed
    prior_wall = state.wall_seconds
    state.setup_seconds += time.perf_counter() - session_start - finder_seconds
    state.finder_seconds += finder_seconds
    state.warmup_seconds += engine.warm_up(setup, log)  # compile + autotune, outside the clock
    best_path = run / runs.CHECKPOINTS / runs.BEST
    best_pending: dict[str, Any] | None = None  # the best epoch's state, until the next save
    last_saved = time.perf_counter()

    def save_checkpoints() -> None:
        """best.pt if a better epoch came since the previous save, then last.pt. In this order a
        kill between the two cannot leave a last.pt that records a best epoch whose best.pt
        never landed: the resume replays that epoch and writes best.pt again."""
        nonlocal best_pending, last_saved
        start = time.perf_counter()
        state.wall_seconds = prior_wall + start - session_start
        if best_pending is not None:
            runs.save_checkpoint(best_path, best_pending)
            best_pending = None
        runs.save_checkpoint(last_path, _payload(setup, scheduler, state))
        last_saved = time.perf_counter()
        state.checkpoint_seconds += last_saved - start

    final_eval = None
    with StopSignal() as stop:
        for epoch in range(state.epochs_done + 1, cfg.train.epochs + 1):
            sums = _train_epoch(setup, scheduler, state.partial, epoch, stop, progress, log)
            if stop.received and setup.train_loader.mid_epoch:
                if math.isfinite(sums.loss_sum):  # never checkpoint a diverged state
                    state.partial = sums
                    save_checkpoints()
                raise _interrupted(stop.received, run, state, setup)
            final_eval, improved = _end_epoch(setup, scheduler, state, sums, epoch, run, log)
            if improved:  # a copy on the device: cheap, unlike writing it every epoch
                best_pending = copy.deepcopy(_payload(setup, scheduler, state))
            # The first epoch always lands a checkpoint, before metrics.csv records it: an epoch
            # on record then means a checkpoint existed, so a run killed before its first
            # clock-due save still resumes, and a missing last.pt is known to be lost.
            due = time.perf_counter() - last_saved >= cfg.train.checkpoint_seconds
            if due or not last_path.is_file() or epoch == cfg.train.epochs or stop.received:
                save_checkpoints()
            runs.write_metrics(run, state.rows)
            if stop.received:
                raise _interrupted(stop.received, run, state, setup)
    if final_eval is None:  # resumed after the last epoch finished: evaluate once more
        final_eval = engine.evaluate(
            setup.forward, setup.test_loader, setup.device, setup.dtype, cfg.train.tta_flip
        )
    wall = prior_wall + time.perf_counter() - session_start
    summary = _summary(setup, state, final_eval.accuracy, wall)
    _write_outputs(setup, schedule, state, final_eval, run, summary)
    runs.write_summary(run, summary)  # last: its presence marks the run finished
    return summary


def _log_setup(setup: Setup, log: Log) -> None:
    cfg, data = setup.cfg, setup.dataset
    params = sum(p.numel() for p in setup.model.parameters())
    precision = str(setup.dtype).removeprefix("torch.")
    log(
        f"data: {data.description}: {len(data.train)} train / {len(data.test)} test images; "
        f"{setup.steps_per_epoch} steps of {cfg.train.batch_size} per epoch"
    )
    log(
        f"model: ResNet-9, width {cfg.model.width}: {params:,} parameters "
        f"(analytic {analytic_parameter_count(cfg.model.width, len(data.classes)):,}); "
        f"{engine.device_name(setup.device)}; precision {precision}"
    )


@dataclass(frozen=True)
class AutoLr:
    """What the range test of `--lr-max auto` found, kept until the run's folder exists."""

    report: lr_finder.FinderReport
    seconds: float

    def write(self, cfg: Config, run: Path) -> None:
        """The range test's CSV, plot and suggested.yaml, in `<run>/finder/`."""
        lr_finder.write_outputs(self.report, cfg, run / runs.FINDER, tested=run / runs.CONFIG_FILE)


def resolve_auto_lr(setup: Setup, log: Log, progress: bool) -> AutoLr | None:
    """`--lr-max auto` / `--lr-min auto`: the range test on this very setup (state restored),
    then `setup.cfg` takes its suggestion (with finder.weight_decays listed, the weight decay it
    chose too). None when no lr is 'auto'. Run before the run's folder exists: a range test
    that fails (diverged, nothing usable) or is stopped leaves nothing that a resume would
    only repeat."""
    s = setup.cfg.schedule
    auto = [k for k in ("lr_max", "lr_min") if getattr(s, k) == config_lib.AUTO]
    if not auto:
        return None
    start = time.perf_counter()
    verb = "is" if len(auto) == 1 else "are"
    log(f"{' and '.join(auto)} {verb} 'auto': running the LR range test first")
    report = lr_finder.find_in_setup(setup, progress, log)
    lr_max = report.lr_max if s.lr_max == config_lib.AUTO else s.lr_max
    lr_min = report.lr_min if s.lr_min == config_lib.AUTO else s.lr_min
    if lr_min >= lr_max and s.lr_max != config_lib.AUTO:
        # The curve's start of descent lies above the lr_max given: fall back to the divisor.
        lr_min = suggest.round_lr(lr_max / setup.cfg.finder.div_factor)
        log(
            f"the range test's lr_min ({report.lr_min:g}) is not below the lr_max given "
            f"({lr_max:g}): lr_min = lr_max / finder.div_factor = {lr_min:g}"
        )
    elif lr_min >= lr_max:
        raise UsageError(
            f"the LR range test suggests lr_max {lr_max:g} ({report.method}), not above the "
            f"schedule.lr_min given ({lr_min:g}): lower lr_min, or leave it 'auto'"
        )
    optim: dict[str, float] = {}
    if setup.cfg.finder.weight_decays is not None:
        optim["weight_decay"] = report.weight_decay
        engine.set_weight_decay(setup.optimizer, report.weight_decay)
    setup.cfg = config_lib.replace(
        setup.cfg, "LR range test", schedule={"lr_max": lr_max, "lr_min": lr_min}, optim=optim
    )
    chosen = f", weight decay {report.weight_decay:g}" if optim else ""
    log(f"LR range test ({report.method}): lr_max = {lr_max:g}, lr_min = {lr_min:g}{chosen}")
    return AutoLr(report, time.perf_counter() - start)


def _train_epoch(
    setup: Setup,
    scheduler: Scheduler,
    resumed: EpochSums,
    epoch: int,
    stop: StopSignal,
    progress: bool,
    log: Log,
) -> EpochSums:
    """Run the rest of this epoch's steps (all of them unless resumed mid-epoch)."""
    loader, device = setup.train_loader, setup.device
    loss_sum = torch.tensor(resumed.loss_sum, dtype=torch.float32, device=device)
    correct = torch.tensor(resumed.correct, dtype=torch.int64, device=device)
    seen = resumed.seen
    setup.forward.train()
    start = time.perf_counter()
    description = f"epoch {epoch}/{setup.cfg.train.epochs}"
    done = loader.position if loader.mid_epoch else 0  # a resumed epoch starts part-way
    with progress_lib.progress_bar(len(loader), description, progress, done) as bar:
        heartbeat = progress_lib.Heartbeat(log, enabled=bar.disable)

        def where() -> str:  # only when a line is due: the loss needs a sync
            lr = scheduler.schedule(scheduler.steps_done - 1).lr
            return f"{description}  lr {lr:.4f}  train loss {loss_sum.item() / seen:.3f}"

        for x, y in loader:
            scheduler.step()
            loss, hits = setup.train_step(x, y)
            loss_sum += loss * len(y)
            correct += hits
            seen += len(y)
            bar.update()
            heartbeat.beat(loader.position, len(loader), where, first=done)
            if stop.received:
                break
    sums = EpochSums(loss_sum.item(), int(correct.item()), seen)  # the epoch's one sync
    sums.seconds = resumed.seconds + time.perf_counter() - start
    return sums


def _end_epoch(
    setup: Setup,
    scheduler: Scheduler,
    state: Progress,
    sums: EpochSums,
    epoch: int,
    run: Path,
    log: Log,
) -> tuple[engine.EvalResult | None, bool]:
    """Check the loss, evaluate, add the epoch's metrics row to `state` (the caller writes it).

    Returns the evaluation (if one ran) and whether it is the best so far.
    """
    cfg = setup.cfg
    train_loss = sums.loss_sum / sums.seen
    lr = scheduler.schedule(scheduler.steps_done - 1).lr
    if not math.isfinite(train_loss):
        last = run / runs.CHECKPOINTS / runs.LAST
        raise TrainingDiverged(
            f"training loss became {train_loss} in epoch {epoch} (lr reached {lr:.3g}); lower "
            f"schedule.lr_max (now {cfg.schedule.lr_max:g}) or run `supercon find-lr`; "
            + (f"last good checkpoint: {last}" if last.is_file() else "no checkpoint was saved")
        )
    result, improved = None, False
    if epoch % cfg.train.eval_every == 0 or epoch == cfg.train.epochs:
        start = time.perf_counter()
        result = engine.evaluate(
            setup.forward, setup.test_loader, setup.device, setup.dtype, cfg.train.tta_flip
        )
        state.eval_seconds += time.perf_counter() - start
        improved = state.best_accuracy is None or result.accuracy > state.best_accuracy
        if improved:
            state.best_accuracy = result.accuracy
        if state.epoch_reached_90 is None and result.accuracy >= TARGET_ACCURACY:
            state.epoch_reached_90 = epoch
    row = {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train_loss,
        "train_acc": sums.correct / sums.seen,
        "test_loss": result.loss if result else None,
        "test_acc": result.accuracy if result else None,
        "epoch_seconds": round(sums.seconds, 3),
    }
    state.rows.append(row)
    state.epochs_done = epoch
    state.train_seconds += sums.seconds
    state.partial = EpochSums()
    # What is left at this session's pace (evaluations included): the whole run's ETA.
    per_epoch = (state.train_seconds + state.eval_seconds) / epoch
    eta = f"  eta {progress_lib.duration(per_epoch * (cfg.train.epochs - epoch))}"
    log(_epoch_line(row, cfg.train.epochs) + (eta if epoch < cfg.train.epochs else ""))
    return result, improved


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    test = (
        f"test loss {row['test_loss']:.3f} acc {100 * row['test_acc']:5.2f}%"
        if row["test_acc"] is not None
        else "test -"
    )
    return (
        f"epoch {row['epoch']:>3}/{epochs}  lr {row['lr']:.4f}  "
        f"train loss {row['train_loss']:.3f} acc {100 * row['train_acc']:5.2f}%  {test}  "
        f"{row['epoch_seconds']:.1f} s"
    )


def _interrupted(signal_name: str, run: Path, state: Progress, setup: Setup) -> Interrupted:
    where = _where(state.epochs_done, setup.train_loader)
    return Interrupted(f"{signal_name}: stopped {where}; checkpoint saved", resume=run)


def _where(epochs_done: int, loader: TrainLoader) -> str:
    """Where a run stands, said the same way when it stops and when it resumes."""
    if loader.mid_epoch:
        return f"in epoch {epochs_done + 1} after step {loader.position}/{len(loader)}"
    return f"after epoch {epochs_done}"


# --------------------------------------------------------------------------------------------
# Checkpoint payload: a plain dict that carries its config


def _payload(setup: Setup, scheduler: Scheduler, state: Progress) -> dict[str, Any]:
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {
        "config": config_lib.to_dict(setup.cfg),
        "model": setup.model.state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "scaler": setup.train_step.scaler.state_dict(),
        "scheduler": scheduler.state_dict(),
        "loader": setup.train_loader.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "cuda": cuda_rng},
        "normalization": setup.normalizer.state_dict(),
        "classes": list(setup.dataset.classes),
        "data": setup.dataset.fingerprints(),
        "progress": asdict(state),
    }


def _restore(
    setup: Setup, scheduler: Scheduler, payload: dict[str, Any], path: Path, run: Path, log: Log
) -> Progress:
    """Model, optimizer, schedule, data order and RNGs from `payload` (read from `path`, the
    last.pt of `run`); the accepted config changes are recorded in the run's resumes.log."""
    changes = runs.resume_changes(runs.checkpoint_config(payload, path), setup.cfg, path)
    root = setup.cfg.data.root
    runs.check_same_classes(payload.get("classes", ()), setup.dataset.classes, path, root)
    runs.check_same_data(payload.get("data"), setup.dataset.fingerprints(), path, root)
    if changes:
        log(f"resuming with {', '.join(changes)}")
        runs.append_line(run / RESUMES_FILE, f"{_now()}: {', '.join(changes)}")
    try:
        setup.model.load_state_dict(payload["model"])
        setup.optimizer.load_state_dict(payload["optimizer"])
        scaler = setup.train_step.scaler
        # fp16's loss scale exists on GPUs only: a run moving between devices starts a fresh one
        if bool(payload["scaler"]) == scaler.is_enabled():
            scaler.load_state_dict(payload["scaler"])
        scheduler.load_state_dict(payload["scheduler"])
        same_stream = setup.train_loader.load_state_dict(payload["loader"])
        torch.set_rng_state(payload["rng"]["torch"])
        if payload["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        saved = dict(payload["progress"])
        progress = Progress(**{**saved, "partial": EpochSums(**saved["partial"])})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{path}: damaged or not this run's checkpoint ({describe(e)})"
        ) from None
    if not same_stream:
        log(
            f"note: {path} was saved on another device type; its data-order generator cannot "
            f"continue on {setup.device.type}, so one derived from it does (reproducible, but not "
            "what an uninterrupted run would have drawn)"
        )
    return progress


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# Final outputs


def _summary(setup: Setup, state: Progress, accuracy: float, wall: float) -> dict[str, Any]:
    cfg = setup.cfg
    per_epoch = (
        setup.steps_per_epoch * cfg.train.batch_size
        if cfg.data.drop_last
        else len(setup.dataset.train)
    )
    images = per_epoch * cfg.train.epochs
    return {
        "test_accuracy": accuracy,
        "best_test_accuracy": state.best_accuracy,
        "target_accuracy": TARGET_ACCURACY,
        "epoch_reached_90": state.epoch_reached_90,
        "epochs": cfg.train.epochs,
        "steps": cfg.train.epochs * setup.steps_per_epoch,
        "train_seconds": round(state.train_seconds, 3),
        "eval_seconds": round(state.eval_seconds, 3),
        "warmup_seconds": round(state.warmup_seconds, 3),
        "wall_seconds": round(wall, 3),
        "timeline_seconds": _timeline(state, wall),
        "compiled": setup.compiled,
        "images_per_second": round(images / state.train_seconds, 1),
        # constant and multistep never use lr_min: a figure here would read as if they had
        "lr_min": cfg.schedule.lr_min if cfg.schedule.policy in TWO_BOUND_POLICIES else None,
        "lr_max": cfg.schedule.lr_max,
        "batch_size": cfg.train.batch_size,
        "seed": cfg.seed,
        "parameters": sum(p.numel() for p in setup.model.parameters()),
        "precision": str(setup.dtype).removeprefix("torch."),
        "device": engine.device_name(setup.device),
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "cuda_version": torch.version.cuda if setup.device.type == "cuda" else None,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "data": setup.dataset.description,
        "train_images": len(setup.dataset.train),
        "test_images": len(setup.dataset.test),
    }


def _timeline(state: Progress, wall: float) -> dict[str, float]:
    """Wall time by phase; `other` is what no phase claims (plots, metrics files, logging)."""
    phases = {
        "setup": state.setup_seconds,
        "lr_finder": state.finder_seconds,
        "warm_up": state.warmup_seconds,
        "train": state.train_seconds,
        "eval": state.eval_seconds,
        "checkpoint": state.checkpoint_seconds,
    }
    phases["other"] = wall - sum(phases.values())
    return {name: round(seconds, 3) for name, seconds in phases.items()}


def _write_outputs(
    setup: Setup,
    schedule: schedule_lib.Schedule,
    state: Progress,
    final_eval: engine.EvalResult,
    run: Path,
    summary: dict[str, Any],
) -> None:
    cfg = setup.cfg
    total = cfg.train.epochs * setup.steps_per_epoch
    schedule_figure = plots.schedule_figure(schedule, total, setup.steps_per_epoch)
    plots.save(schedule_figure, run / runs.SCHEDULE_PLOT)
    plots.save(plots.training_figure(state.rows), run / runs.TRAINING_PLOT)
    matrix = engine.confusion_matrix(final_eval, len(setup.dataset.classes))
    confusion = plots.confusion_figure(matrix, setup.dataset.classes)
    plots.save(confusion, run / runs.CONFUSION_PLOT)
    report_lib.write(
        run, cfg, state.rows, summary, setup.dataset.classes, matrix, setup.steps_per_epoch
    )
