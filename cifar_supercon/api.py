"""The Python API behind every CLI command, for notebooks and scripts.

    from cifar_supercon import train, find_lr, evaluate, plot_schedule
    summary = train("configs/cpu-smoke.yaml", overrides={"data.root": "data/cifar10-png"})

Each function takes a config (a Config, a YAML path, a mapping of sections as a YAML file holds
them, a list of these merged left to right, or None for the defaults) and overrides (a mapping
of dotted keys, 'KEY=VALUE' texts as --set takes them, or `Override`s), and reports through
`log` (None: nowhere). An argument of the wrong kind is a UsageError naming it; a path that an
output argument names is checked before any work, and never one inside a folder this tool made
(a run, a sweep, a find-lr folder).
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from . import arguments, engine, lr_finder, outputs, plots, processes, runs
from . import config as config_lib
from . import schedule as schedule_lib
from .config import Config, Override
from .data import load_dataset
from .errors import (
    STOPPED_BY_SIGNAL,
    CheckpointError,
    Interrupted,
    SuperconError,
    UsageError,
    describe,
)
from .loader import EvalLoader, Normalizer
from .model import NUM_CLASSES
from .training import AutoLr, fit, resolve_auto_lr

Log = Callable[[str], None]
ConfigSource = (
    Config
    | str
    | Path
    | Mapping[str, Any]
    | Sequence[Config | str | Path | Mapping[str, Any]]
    | None
)
Overrides = Sequence[Override | str] | Mapping[str, Any] | str | None
CIFAR10_TRAIN_IMAGES = 50_000
# What an evaluation may set apart from its checkpoint's config: where and how the test set is
# read, not the model it was trained as (a width override was blamed on the checkpoint) or keys
# of training that evaluation never reads (taken, and silently ignored).
EVALUATE_MAY_CHANGE = (
    *runs.RESUME_MAY_CHANGE,
    "data.source",
    "data.test_subset",
    "train.precision",
    "train.channels_last",
)
MAX_DRAWN_STEPS = 2_000_000  # plot-schedule holds every step in memory (~100 MB of CSV text)


def resolve_config(config: ConfigSource = None, overrides: Overrides = ()) -> Config:
    """The Config a call runs: `config` merged left to right, then `overrides`, validated."""
    overrides = config_lib.as_overrides(overrides)
    if isinstance(config, Config):
        return config_lib.load([], overrides, base=config) if overrides else config
    return config_lib.load(config_lib.config_sources(config, "config"), overrides)


def train(
    config: ConfigSource = None,
    *,
    overrides: Overrides = (),
    resume: str | Path | None = None,
    run_dir: str | Path | None = None,
    log: Log = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Train in a new run directory (or continue `resume`); returns the summary.

    The new directory is `<out>/<timestamp>-<name>`, or `run_dir` exactly (it must not exist).
    A resumed run continues with its own config.yaml in its own folder: `config` and `run_dir`
    are refused with `resume`, and overrides may change only runs.RESUME_MAY_CHANGE.
    """
    log, progress = arguments.log(log), arguments.flag(progress, "progress")
    run_dir = arguments.optional_path(run_dir, "run_dir")
    overrides = config_lib.as_overrides(overrides)
    if resume is not None:
        run = arguments.path(resume, "resume")
        if config_lib.config_sources(config, "config"):
            raise UsageError(
                f"config {_shown_config(config)} with resume {str(run)!r}: a resumed run "
                "continues with its own config.yaml; leave config out (overrides may change "
                f"only {', '.join(runs.RESUME_MAY_CHANGE)})"
            )
        if run_dir is not None:
            raise UsageError(
                f"run_dir {str(run_dir)!r} with resume {str(run)!r}: a resumed run continues "
                "in its own folder; leave run_dir out"
            )
        runs.check_training_run(run)
        if fixed := [o.key for o in overrides if o.key not in runs.RESUME_MAY_CHANGE]:
            allowed = ", ".join(runs.RESUME_MAY_CHANGE)
            raise UsageError(
                f"--resume continues a run with its own config; only {allowed} may change, "
                f"not {', '.join(fixed)}"
            )
        cfg = runs.read_config(run, overrides)
        runs.check_resumable(run)  # before the lock: a finished run's .lock stays untouched too
        with runs.locked(run), _named_for_resume(run):
            runs.check_resumable(run)  # again: a run that finished a moment ago is not resumed
            for folder in (run, run / runs.CHECKPOINTS, run / runs.PLOTS):
                runs.remove_stale_temporaries(folder)  # of a writer killed mid-write
            checkpoint = runs.resume_checkpoint(run, cfg)
            setup = engine.build(cfg, log)
            # A run of an earlier version, stopped in its range test, still has 'auto' lrs.
            found = resolve_auto_lr(setup, log, progress)
            if found is not None:
                runs.write_config(run, setup.cfg)
            summary = _fit_after(found, setup, run, log, progress, checkpoint)
        return {**summary, "run_dir": str(run)}
    cfg = resolve_config(config, overrides)
    # Where the run goes, checked before the data loads (runs.create checks again as it creates)
    where, what = (cfg.out, "out") if run_dir is None else (run_dir, "run_dir")
    runs.check_name_lengths(where, what)
    runs.check_nameable(where, what)
    runs.check_outside_runs(where, what)
    setup = engine.build(cfg, log)  # bad data fails here, before a run directory exists
    schedule_lib.check_fits(cfg.schedule, cfg.train.epochs, setup.steps_per_epoch)
    found = resolve_auto_lr(setup, log, progress)  # a failed or stopped range test: no folder
    with contextlib.ExitStack() as held:
        # A stop between making the folder and writing its first files would leave a folder
        # that --resume refuses as no run: it waits until the run can be resumed, then names it.
        with processes.stops_deferred():
            run = (
                runs.create(cfg.out, cfg.name)
                if run_dir is None
                else runs.create_exactly(Path(run_dir))
            )
            held.enter_context(runs.locked(run))
            held.enter_context(_named_for_resume(run))
            runs.start(run, setup.cfg)
        log(f"run directory: {run}")
        summary = _fit_after(found, setup, run, log, progress)
    return {**summary, "run_dir": str(run)}


def _fit_after(
    found: AutoLr | None,
    setup: engine.Setup,
    run: Path,
    log: Log,
    progress: bool,
    checkpoint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`fit`, once the range test of `--lr-max auto` (when one ran) is written into the run."""
    if found is not None:
        found.write(setup.cfg, run)
    seconds = found.seconds if found else 0.0
    return fit(
        setup.cfg,
        run,
        log=log,
        progress=progress,
        setup=setup,
        checkpoint=checkpoint,
        finder_seconds=seconds,
    )


def _shown_config(config: Any) -> str:
    """A config argument in a message: a Config's repr is its every value."""
    return f"<Config {config.name!r}>" if isinstance(config, Config) else arguments.shown(config)


@contextlib.contextmanager
def _named_for_resume(run: Path) -> Iterator[None]:
    """A stop outside the epochs' own signal handling (a second Ctrl-C, one during
    `--lr-max auto`'s range test or while the last outputs are written) still names the run to
    resume: it continues from its last checkpoint, or from the start if none landed."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(STOPPED_BY_SIGNAL, resume=run) from None


@dataclass(frozen=True)
class FindLrResult:
    report: lr_finder.FinderReport
    run_dir: Path
    files: dict[str, Path]


def find_lr(
    config: ConfigSource = None,
    *,
    overrides: Overrides = (),
    log: Log = print,
    progress: bool = True,
) -> FindLrResult:
    """The LR range test under the config's training conditions, in a new run directory."""
    log, progress = arguments.log(log), arguments.flag(progress, "progress")
    cfg = resolve_config(config, overrides)
    runs.check_name_lengths(cfg.out, "out")  # before the data loads
    runs.check_outside_runs(cfg.out, "out")
    setup = engine.build(cfg, log)
    run, kept = None, False
    try:
        with processes.stops_deferred():  # the folder is made and known here, or not at all
            run = runs.create(cfg.out, f"{cfg.name}-find-lr")
        runs.write_config(run, cfg)
        try:
            report = lr_finder.find_in_setup(setup, progress, log)
        except lr_finder.NoReading as failure:
            # The curves are what tells a user why (and what to change): they stay.
            png = lr_finder.write_curves(failure.curves, cfg, run)["png"]
            kept = True
            raise SuperconError(f"{failure}; the curve: {png}") from None
        files = lr_finder.write_outputs(report, cfg, run, tested=run / runs.CONFIG_FILE)
    except BaseException:
        # A range test is not resumable, and one stopped while its results were being written
        # is incomplete: a folder holding its config and part of its results would be litter.
        # The folder is this call's own (runs.create made it, exclusively).
        if run is not None and not kept:
            shutil.rmtree(run, ignore_errors=True)
        raise
    return FindLrResult(report, run, files)


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float
    classes: tuple[str, ...]
    class_accuracy: list[float]
    confusion: list[list[int]]
    plot: Path


def evaluate(
    checkpoint: str | Path,
    *,
    overrides: Overrides = (),
    tta_flip: bool | None = None,
    plot: str | Path | None = None,
    log: Log = print,
) -> Evaluation:
    """Test accuracy of a checkpoint, per class, and a confusion-matrix PNG.

    The data, model and precision come from the checkpoint's own config; overrides may point at
    another data folder or device. The PNG goes to `plot`, by default
    `<run>/plots/confusion_<checkpoint name>.png` (beside the checkpoint outside a run); a
    `plot` given is checked before any work, and refused inside a folder this tool made.
    """
    path = arguments.path(checkpoint, "checkpoint")
    tta_flip = arguments.optional_flag(tta_flip, "tta_flip")
    log = arguments.log(log)
    if plot is not None:  # its default place, the run's own plots/, is the run's to fill
        plot = outputs.check_file(plot, "plot")
    overrides = config_lib.as_overrides(overrides)
    for o in overrides:
        if o.key not in EVALUATE_MAY_CHANGE:
            raise UsageError(
                f"{o.source}: {o.key}: evaluate uses the checkpoint's own config; it may change "
                f"only where and how the test set is read: {', '.join(EVALUATE_MAY_CHANGE)}"
            )
    payload = runs.load_checkpoint(path)
    cfg = config_lib.load([], overrides, base=runs.checkpoint_config(payload, path))
    with config_lib.blamed(cfg):
        device = engine.resolve_device(cfg.train.device)
    dtype = engine.resolve_precision(cfg.train.precision, device)
    logits = len(payload.get("classes") or ()) or NUM_CLASSES  # one output per class
    model = engine.build_model(cfg, device, logits)
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, KeyError) as e:
        # load_state_dict's first line only says that there were errors; the last names one
        detail = str(e).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"{path}: weights do not fit ResNet-9 width {cfg.model.width} with {logits} "
            f"outputs, one per class ({detail})"
        ) from None
    try:
        normalizer = Normalizer.from_state_dict(payload["normalization"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{path}: damaged or not a supercon checkpoint ({describe(e)})"
        ) from None
    with config_lib.blamed(cfg):
        dataset = load_dataset(cfg.data, cfg.seed, log)
    runs.check_same_classes(payload.get("classes", ()), dataset.classes, path, cfg.data.root)
    test = dataset.test
    loader = EvalLoader(
        test,
        cfg.train.eval_batch_size,
        normalizer,
        device,
        dtype=engine.batch_dtype(device, dtype),
        channels_last=cfg.train.channels_last,
    )
    tta = cfg.train.tta_flip if tta_flip is None else tta_flip
    # The default plot of an evaluation other than the run's own (--tta on a run without it, or
    # --no-tta) gets a name of its own: it drew over the plain one.
    variant = "" if tta == cfg.train.tta_flip else ("_tta" if tta else "_no_tta")
    result = engine.evaluate(model, loader, device, dtype, tta)
    classes = dataset.classes
    matrix = engine.confusion_matrix(result, len(classes))
    per_class = [row[i] / max(1, sum(row)) for i, row in enumerate(matrix)]
    if plot is None:
        # The checkpoint's folder as the file system has it: spelled `best.pt` from inside
        # checkpoints/ (a parent without a name), `../checkpoints/best.pt` or through a link to
        # the run, it is the same run's checkpoints/, whose run's plots/ gets the figure.
        checkpoints = runs.resolved(path.parent)
        if checkpoints.name == runs.CHECKPOINTS:
            run = checkpoints.parent
            plot = run / runs.PLOTS / f"confusion_{path.stem}{variant}.png"
            if plot == run / runs.CONFUSION_PLOT:
                # checkpoints/matrix.pt: the training's own confusion_matrix.png stays as it
                # wrote it
                plot = run / runs.PLOTS / f"confusion_{path.stem}{variant}_checkpoint.png"
        else:
            plot = path.parent / f"confusion_{path.stem}{variant}.png"  # beside it, as spelled
    plots.save(plots.confusion_figure(matrix, classes), plot)
    return Evaluation(result.accuracy, result.loss, classes, per_class, matrix, plot)


def schedule_steps(
    cfg: Config, cycles: int | None = None
) -> tuple[schedule_lib.Schedule, int, int]:
    """(schedule, steps to draw, steps per epoch) without loading data.

    Steps per epoch come from the training set's size (data.train_subset, else CIFAR-10's
    50,000), the batch size and data.drop_last: 97 for 50,000 images at 512.
    """
    if config_lib.AUTO in (cfg.schedule.lr_min, cfg.schedule.lr_max):
        raise UsageError(
            "schedule.lr_max/lr_min are 'auto': give numbers (or run `supercon find-lr` and "
            "pass its suggested.yaml with --config)"
        )
    images = cfg.data.train_subset or CIFAR10_TRAIN_IMAGES
    with config_lib.blamed(cfg):
        per_epoch = schedule_lib.steps_per_epoch(images, cfg.train.batch_size, cfg.data.drop_last)
    schedule = schedule_lib.build(cfg.schedule, cfg.train.epochs, per_epoch)
    total = cfg.train.epochs * per_epoch
    if cycles is not None:
        if not isinstance(schedule, schedule_lib.Cyclic):
            raise UsageError(
                f"--cycles {cycles}: only for the cyclical policies (triangular, triangular2, "
                f"exp_range), not {cfg.schedule.policy}"
            )
        total = cycles * 2 * schedule.step_size
    if total > MAX_DRAWN_STEPS:
        raise UsageError(
            f"{total:,} steps are too many to draw or list (at most {MAX_DRAWN_STEPS:,}): "
            "fewer epochs or cycles, or a larger batch"
        )
    return schedule, total, per_epoch


def plot_schedule(
    config: ConfigSource = None,
    *,
    overrides: Overrides = (),
    cycles: int | None = None,
    png: str | Path | None = None,
    csv_path: str | Path | None = None,
) -> Figure:
    """The schedule's LR and momentum per step as a figure; optionally saved as PNG and CSV.

    CSV columns: step (0-based), epoch (1-based, the epoch the step belongs to), lr, momentum.
    `png` and `csv_path` are checked before any work, and refused inside a folder this tool made.
    """
    if png is not None:
        png = outputs.check_file(png, "png")
    if csv_path is not None:
        csv_path = outputs.check_file(csv_path, "csv_path", image=False)
        if png is not None:
            outputs.check_distinct(png, "png", csv_path, "csv_path")
    if cycles is not None:
        cycles = arguments.whole(cycles, "cycles", 1)
    cfg = resolve_config(config, overrides)
    schedule, total, per_epoch = schedule_steps(cfg, cycles)
    if csv_path is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["step", "epoch", "lr", "momentum"])
        for step in range(total):
            lr, momentum = schedule(step)
            writer.writerow([step, step // per_epoch + 1, repr(lr), repr(momentum)])
        runs.write_text(csv_path, buffer.getvalue())
    figure = plots.schedule_figure(schedule, total, per_epoch)
    if png is not None:
        plots.save(figure, png)
    return figure
