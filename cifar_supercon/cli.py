"""`supercon`: Typer commands only. Options become config overrides; errors become exit codes.

Exit codes: 0 ok, 2 usage or config error, 1 runtime failure, 130 interrupted. Errors are one
line each on stderr; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from . import api, arguments, executors, outputs, sweep_results, sweep_spec
from . import comparison as compare_lib
from . import config as config_lib
from . import sweeps as sweep_lib
from .config import Override
from .errors import (
    STOPPED_BY_SIGNAL,
    ConfigError,
    Interrupted,
    SuperconError,
    UsageError,
    describe,
)
from .text import one_line, shell_join


class _Output(Console):
    """Standard output. When its reader goes away (`supercon train ... | head -1`) or it cannot
    be written (`> log` on a full disk) the command goes on without it, saying so once on
    stderr: a training run is not lost to its log (Ctrl-C still stops it the usual way,
    checkpoint saved). A command whose output is its product (config show's YAML) prints it
    with `product`: a write error then fails the command instead."""

    printing_product = False

    def product(self, text: str) -> None:
        self.printing_product = True
        try:
            self.print(text, end="")
        finally:
            self.printing_product = False

    def on_broken_pipe(self) -> None:
        self._go_on_without("standard output closed")

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()  # rich calls on_broken_pipe itself; other errors come here
        except OSError as e:
            why = f"standard output cannot be written ({e.strerror or type(e).__name__})"
            self._go_on_without(why, warn=not self.printing_product)
            if self.printing_product:
                raise SuperconError(why) from None

    def _go_on_without(self, why: str, warn: bool = True) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # later writes, ours or Python's at exit, vanish
        os.close(devnull)
        if warn:
            err_console.print(f"[bold yellow]warning:[/] {why}; going on without it")


# Nothing printed to stdout is markup or emoji codes: class folder names, paths and grid values
# show as they are (a class folder `[bold]cat` printed as a bold `cat`, `:cat:` as an emoji).
out_console = _Output(soft_wrap=True, highlight=False, markup=False, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)
# typer >= 0.2x vendors click; older releases use click itself: find the class either way.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _error(message: str) -> None:
    """One line, whatever the message holds: a line break in it (in a path, a folder's name)
    is shown as \\n, not as a second line that reads like another error."""
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}")


def _stopped(message: str) -> None:
    """A stop the user asked for is not an error: one line, no red (escaped as _error's)."""
    err_console.print(f"[bold yellow]stopped:[/] {escape(one_line(message))}")


class _OneLineErrors(TyperGroup):
    """Usage errors (unknown option, bad value) as one line instead of a usage box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as e:
            ctx = getattr(e, "ctx", None)
            # "supercon <subcommand>", whatever name the program was started under; an option
            # without its value fails before the subcommand has a context: name it from argv
            words = ctx.command_path.split()[1:] if ctx else []
            given = list(kwargs.get("args") or (args[0] if args else None) or sys.argv[1:])
            words = words or [w for w in given[:1] if w in self.commands]
            where = " ".join(["supercon", *words])
            message = e.format_message()  # type: ignore[attr-defined]
            value = _given_value(getattr(getattr(e, "param", None), "opts", ()), given)
            if value is not None and repr(value) not in message:
                message += f" (got {value!r})"
            _error(f"{where}: {message} (see {where} --help)")
            code = e.exit_code  # type: ignore[attr-defined]
        except typer.Abort:  # click's name for a KeyboardInterrupt outside a command's own handling
            _stopped(STOPPED_BY_SIGNAL)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:  # named in the message as `supercon <group> <command>`
            _refuse_repeated_options(command, rest, type(ctx)(command, ctx, info_name=name))
        return name, command, rest


def _refuse_repeated_options(command: Any, argv: Sequence[str], ctx: Any) -> None:
    """An option that takes one value, given twice (`--epochs 3 --epochs 4`): click keeps the
    last without a word, so a value the user meant could be dropped silently. Options meant to
    repeat (--config, --set, --grid) and on/off flags are left alone."""
    words = list(argv[: argv.index("--")] if "--" in argv else argv)
    for param in command.params:
        if param.param_type_name != "option" or param.multiple or param.is_flag or param.count:
            continue
        values = _values_of(param.opts, words)
        if len(values) > 1:
            shown = ", ".join(repr(v) for v in values)
            raise ClickUsageError(
                f"{param.opts[0]} is given {len(values)} times ({shown}); give it once", ctx
            )


def _values_of(opts: Sequence[str], argv: Sequence[str]) -> list[str]:
    """What followed each occurrence of an option on the command line (`--epochs ten`,
    `--epochs=ten`)."""
    found = []
    for i, word in enumerate(argv):
        for opt in opts:
            if word == opt and i + 1 < len(argv):
                found.append(argv[i + 1])
            elif opt.startswith("--") and word.startswith(opt + "="):
                found.append(word[len(opt) + 1 :])
    return found


def _given_value(opts: Sequence[str], argv: Sequence[str]) -> str | None:
    """The value an option refused, for its message; None if it cannot be told."""
    return next(iter(_values_of(opts, argv)), None)


app = typer.Typer(
    cls=_OneLineErrors,
    help="Super-convergence on CIFAR-10: LR range test, 1cycle policy, ResNet-9.\n\n"
    "Example: supercon find-lr --config configs/cpu-smoke.yaml, then supercon train --config "
    "configs/default.yaml",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(
    cls=_OneLineErrors,  # for its check of repeated options: `main` is the app's
    help="Inspect configurations.\n\nExample: supercon config show --config configs/default.yaml",
    add_completion=False,
)
app.add_typer(config_app, name="config")


def _version() -> str:
    try:
        return version("cifar-supercon")
    except PackageNotFoundError:
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        out_console.print(f"supercon {_version()} (torch {torch.__version__})")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    if ctx.invoked_subcommand is None:
        out_console.print(ctx.get_help())


@config_app.callback(invoke_without_command=True)
def _config_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        out_console.print(ctx.get_help())


@contextlib.contextmanager
def _reported(debug: bool) -> Iterator[None]:
    """Turn exceptions into one-line messages and exit codes (tracebacks only with --debug)."""
    try:
        yield
    except Interrupted as e:
        if debug:
            raise
        hint = ""
        if e.resume:
            words, encoding = ["train", "--resume", str(e.resume)], err_console.encoding
            hint = f"; resume with: {program(encoding)} {shell_join(words, encoding)}"
        _stopped(e.reason + hint)
        raise typer.Exit(e.exit_code) from None
    except SuperconError as e:
        if debug:
            raise
        for problem in e.problems if isinstance(e, ConfigError) else [str(e)]:
            _error(problem)  # a config error: a line per problem
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        _stopped(STOPPED_BY_SIGNAL)
        raise typer.Exit(130) from None
    except OSError as e:
        if debug:
            raise
        if e.filename is None or not e.strerror:
            _error(f"{describe(e)} (run again with --debug for the traceback)")
        else:  # the system refused a file: naming it and the reason says it all
            names = [e.filename, e.filename2] if e.filename2 is not None else [e.filename]
            _error(f"{' -> '.join(map(str, names))}: {e.strerror}")
        raise typer.Exit(1) from None
    except Exception as e:
        if debug:
            raise
        _error(f"{describe(e)} (run again with --debug for the traceback)")
        raise typer.Exit(1) from None


# Options shared by the commands -----------------------------------------------------------


def _key_path(text: str) -> Path:
    """The value of an option that sets a config path key (--data-dir, a run's --out), as
    typed: the config reads it as it reads the key from a file (`~` included), so that a
    problem with it names the key and the option. An empty one would name the current folder
    (Path("") is "."), which nobody means by typing nothing: refused."""
    if not text:
        raise typer.BadParameter("an empty path; give a file or folder (. for this folder)")
    return Path(text)


def _path(text: str) -> Path:
    """Any other path option's value, read as every path the user gives is (`~/x` is a home
    folder, as `--out ~/x` of a run is)."""
    try:
        return arguments.expanded(_key_path(text))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


ConfigOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config; repeat to merge several, left to right.",
        metavar="PATH",
        parser=_path,
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a key: --set schedule.lr_max=0.4 (repeatable).",
        metavar="KEY=VALUE",
    ),
]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="train.epochs")]
PeakOpt = Annotated[float | None, typer.Option("--peak-epoch", help="schedule.peak_epoch")]
LrMaxOpt = Annotated[
    str | None, typer.Option("--lr-max", help="schedule.lr_max, a number or 'auto' (LR range test)")
]
LrMinOpt = Annotated[str | None, typer.Option("--lr-min", help="schedule.lr_min")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="train.batch_size")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="seed")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="data.root: CIFAR-10 or an image folder", parser=_key_path),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Parent folder of run directories", parser=_key_path)
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Progress bars on a terminal.")
]


def _overrides(
    sets: list[str] | None,
    epochs: int | None = None,
    peak_epoch: float | None = None,
    lr_max: str | None = None,
    lr_min: str | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    device: str | None = None,
    data_dir: Path | None = None,
    out: Path | None = None,
) -> list[Override]:
    """--set values first, then the shortcuts; config.load rejects a key given twice."""
    overrides = [config_lib.parse_set(s) for s in sets or []]
    shortcuts = [
        ("--epochs", "train.epochs", epochs),
        ("--peak-epoch", "schedule.peak_epoch", peak_epoch),
        ("--lr-max", "schedule.lr_max", lr_max),
        ("--lr-min", "schedule.lr_min", lr_min),
        ("--batch-size", "train.batch_size", batch_size),
        ("--seed", "seed", seed),
        ("--device", "train.device", device),
        ("--data-dir", "data.root", str(data_dir) if data_dir is not None else None),
        ("--out", "out", str(out) if out is not None else None),
    ]
    for flag, key, value in shortcuts:
        if value is not None:
            # a number or 'auto', typed as text: read as --set reads values, named by its flag
            parsed = (
                config_lib.parse_value(value, f"{flag} {value!r}")
                if flag.startswith("--lr")
                else value
            )
            overrides.append(Override(key, parsed, flag))
    # `--lr-max auto` means "let the range test decide", lr_min included, unless it is given.
    if lr_max == config_lib.AUTO and not any(o.key == "schedule.lr_min" for o in overrides):
        overrides.append(Override("schedule.lr_min", config_lib.AUTO, "--lr-max auto"))
    return overrides


def _output_file(path: Path, option: str, image: bool = True) -> None:
    """A file an option names for writing (a figure, a CSV), checked before any work by the
    API's own check, here so that its message names the option as typed (the API, which checks
    again, names its argument)."""
    outputs.check_file(path, option, image)


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for column in header:
        # Folded, never cut with an ellipsis: run names differ only in their last characters.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)


def _log(message: str) -> None:
    # A path in a log line (the run folder a resumed run names) is shown as a message's is: a
    # line break or a terminal code in it escaped, not acted on.
    out_console.print(one_line(message))


# Commands ---------------------------------------------------------------------------------


@app.command()
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    epochs: EpochsOpt = None,
    peak_epoch: PeakOpt = None,
    lr_max: LrMaxOpt = None,
    lr_min: LrMinOpt = None,
    batch_size: BatchOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
    out: OutOpt = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", help="Continue this run directory from its last checkpoint.", parser=_path
        ),
    ] = None,
    progress: ProgressOpt = True,
    debug: DebugOpt = False,
) -> None:
    """Train ResNet-9 with the 1cycle policy; writes a run directory.

    Example: supercon train --config configs/default.yaml --epochs 24 --peak-epoch 5
    """
    with _reported(debug):
        if resume is not None and config:
            raise UsageError("--resume continues with the run's own config.yaml; drop --config")
        overrides = _overrides(
            set_, epochs, peak_epoch, lr_max, lr_min, batch_size, seed, device, data_dir, out
        )
        summary = api.train(config, overrides=overrides, resume=resume, log=_log, progress=progress)
        table = Table(title="result", show_header=False)
        table.add_column()
        table.add_column(overflow="fold")  # the run directory, whole however narrow the terminal
        table.add_row("test accuracy", f"{100 * summary['test_accuracy']:.2f}%")
        table.add_row("best test accuracy", f"{100 * summary['best_test_accuracy']:.2f}%")
        table.add_row("epoch reaching 90%", str(summary["epoch_reached_90"] or "not reached"))
        table.add_row("training time", f"{summary['train_seconds']:.1f} s on {summary['device']}")
        table.add_row("images / s", f"{summary['images_per_second']:,.0f}")
        table.add_row("run directory", summary["run_dir"])
        out_console.print(table)


@app.command("find-lr")
def find_lr(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    weight_decay: Annotated[
        str | None,
        typer.Option("--weight-decay", help="Sweep several, comma-separated: 1e-3,5e-4,1e-4,0"),
    ] = None,
    batch_size: BatchOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
    out: OutOpt = None,
    progress: ProgressOpt = True,
    debug: DebugOpt = False,
) -> None:
    """LR range test under the training conditions; suggests lr_max and lr_min.

    Example: supercon find-lr --config configs/default.yaml --weight-decay 1e-3,5e-4,1e-4,0
    """
    with _reported(debug):
        overrides = _overrides(
            set_, batch_size=batch_size, seed=seed, device=device, data_dir=data_dir, out=out
        )
        if weight_decay is not None:
            overrides.append(_weight_decays(weight_decay))
        result = api.find_lr(config, overrides=overrides, log=_log, progress=progress)
        report = result.report
        several = len(report.curves) > 1
        curves = Table(title="LR range test" + (": one sweep per weight decay" if several else ""))
        for column in ("weight decay", "lowest loss", "at lr", "stopped"):
            curves.add_column(column)
        for i, curve in enumerate(report.curves):
            finite = [j for j, v in enumerate(curve.smoothed) if math.isfinite(v)]
            lowest = min(finite, key=curve.smoothed.__getitem__) if finite else None
            stop = f"diverged at {curve.lrs[-1]:.3g}" if curve.diverged else "end of sweep"
            curves.add_row(
                f"{curve.weight_decay:g}" + (" *" if i == report.chosen[0] else ""),
                f"{curve.smoothed[lowest]:.3f}" if lowest is not None else "-",
                f"{curve.lrs[lowest]:.3g}" if lowest is not None else "-",
                stop,
            )
        out_console.print(curves)
        methods = Table(title="suggestions (* = finder.suggest, used)")
        for column in ("method", "lr_max", "lr_min", "lr_min from", "weight decay"):
            methods.add_column(column)
        for method, choice in report.choices.items():
            name = f"{method} *" if method == report.method else method
            if choice is None:
                methods.add_row(name, "-", "-", "-", "-")
                continue
            index, s = choice
            wd = report.curves[index].weight_decay
            methods.add_row(name, f"{s.lr_max:.3g}", f"{s.lr_min:.3g}", s.lr_min_from, f"{wd:g}")
        out_console.print(methods)
        _log(
            f"suggested: lr_max = {report.lr_max:g}, lr_min = {report.lr_min:g} "
            f"(weight decay {report.weight_decay:g}, method {report.method})"
        )
        _log(f"written: {result.files['png']}, {result.files['csv']}, {result.files['yaml']}")
        tested = result.run_dir / "config.yaml"
        words = ["train", "--config", str(tested), "--config", str(result.files["yaml"])]
        encoding = out_console.encoding
        _log(f"train with: {program(encoding)} {shell_join(words, encoding)}")


def program(encoding: str = "utf-8") -> str:
    """How to start this program again from here, as the user did: `supercon` when that is on
    PATH, else the path they typed (`.venv/bin/supercon`) or `python -m cifar_supercon`; quoted
    for the shell as shown in `encoding`, so that the hints built on it run as printed."""
    started = Path(sys.argv[0])
    if started.name == "__main__.py" and started.parent.name == "cifar_supercon":
        return f"{shell_join([_nearby(Path(sys.executable))], encoding)} -m cifar_supercon"
    on_path = shutil.which("supercon")
    if started.name != "supercon" or (on_path and Path(on_path).resolve() == started.resolve()):
        return "supercon"
    return shell_join([_nearby(started)], encoding)


def _nearby(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, else absolute. One in
    the working directory itself is `./name`: a shell looks a bare name up on PATH, which
    need not hold this folder (a venv's bin/), and finds another program of that name, or
    none."""
    absolute = path.absolute()
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    return str(relative) if len(relative.parts) > 1 else f"./{relative}"


def _weight_decays(text: str) -> Override:
    """Read as --grid reads its values: an empty value or one given twice is refused."""
    where = f"--weight-decay {text!r}"
    items = sweep_spec.split_values(text, where)
    try:
        values = [float(v) for v in items]
    except ValueError:
        values = []
    if not values:
        raise config_lib.ConfigError(
            [f"{where}: expected comma-separated numbers, e.g. 1e-3,5e-4,0"]
        )
    sweep_spec.distinct(where, values, items)
    return Override("finder.weight_decays", values, "--weight-decay")


@app.command("plot-schedule")
def plot_schedule(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="schedule.policy: one_cycle, triangular, triangular2, exp_range, constant or "
            "multistep",
        ),
    ] = None,
    cycles: Annotated[
        int | None, typer.Option("--cycles", min=1, help="Cyclical policies: cycles to draw.")
    ] = None,
    epochs: EpochsOpt = None,
    peak_epoch: PeakOpt = None,
    lr_max: LrMaxOpt = None,
    lr_min: LrMinOpt = None,
    batch_size: BatchOpt = None,
    out: Annotated[Path, typer.Option("--out", help="PNG to write.", parser=_path)] = Path(
        "schedule.png"
    ),
    csv: Annotated[
        Path | None,
        typer.Option("--csv", help="Also write step,epoch,lr,momentum rows.", parser=_path),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Draw the LR and momentum schedule (1cycle, or the CLR triangle).

    Examples: supercon plot-schedule --config configs/default.yaml --out runs/sched.png
    --csv runs/sched.csv; supercon plot-schedule --policy triangular --cycles 3
    --out runs/triangle.png
    """
    with _reported(debug):
        _output_file(out, "--out")
        if csv is not None:
            _output_file(csv, "--csv", image=False)
        if csv is not None:
            outputs.check_distinct(out, "--out", csv, "--csv")
        overrides = _overrides(set_, epochs, peak_epoch, lr_max, lr_min, batch_size)
        if policy is not None:
            overrides.append(Override("schedule.policy", policy, "--policy"))
        api.plot_schedule(config, overrides=overrides, cycles=cycles, png=out, csv_path=csv)
        _log(f"written: {out}" + (f", {csv}" if csv else ""))


@app.command()
def evaluate(
    checkpoint: Annotated[
        Path,
        typer.Argument(help="A checkpoint, e.g. runs/<run>/checkpoints/best.pt", parser=_path),
    ],
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    tta: Annotated[
        bool | None, typer.Option("--tta/--no-tta", help="Flip test-time augmentation.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Confusion-matrix PNG path.", parser=_path)
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Test accuracy of a checkpoint, per class, and a confusion-matrix PNG.

    Example: supercon evaluate runs/<run>/checkpoints/last.pt --data-dir data/cifar10-png
    """
    with _reported(debug):
        if plot is not None:  # its default place, the run's own plots/, is the run's to fill
            _output_file(plot, "--plot")
        overrides = _overrides(None, device=device, data_dir=data_dir)
        result = api.evaluate(checkpoint, overrides=overrides, tta_flip=tta, plot=plot, log=_log)
        table = Table(title=f"test accuracy {100 * result.accuracy:.2f}% (loss {result.loss:.4f})")
        table.add_column("class")
        table.add_column("accuracy", justify="right")
        table.add_column("test images", justify="right")
        for name, accuracy, row in zip(
            result.classes, result.class_accuracy, result.confusion, strict=True
        ):
            table.add_row(name, f"{100 * accuracy:.1f}%", str(sum(row)))
        out_console.print(table)
        _log(f"confusion matrix: {result.plot}")


@app.command()
def sweep(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            "-g",
            help="A grid key and its values: --grid schedule.lr_max=0.2,0.4,0.8 (repeatable; "
            "the sweep runs their cartesian product).",
            metavar="KEY=V1,V2",
        ),
    ] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds of every cell: 0-4, 0,1,2")] = "0",
    name: Annotated[
        str | None,
        typer.Option("--name", help="Sweep folder name (default: config name + spec digest)."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Parent folder of sweep folders.", parser=_path)
    ] = Path("sweeps"),
    executor: Annotated[
        str, typer.Option("--executor", help="local (this machine) or ray (a Ray cluster).")
    ] = "local",
    devices: Annotated[
        str | None,
        typer.Option("--devices", help="local: one run per GPU at once, e.g. 0,1,2,3 (or cpu)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="ray: a running cluster (default RAY_ADDRESS, else local)."
        ),
    ] = None,
    target: Annotated[
        float, typer.Option("--target", min=0, max=1, help="Accuracy bar for the share column.")
    ] = 0.90,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run the failed runs again.")
    ] = False,
    epochs: EpochsOpt = None,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Train a config over grids x seeds; results.csv, summary.md and plots per sweep folder.

    Example: supercon sweep --config configs/cpu-smoke.yaml --grid schedule.lr_max=0.2,0.4,0.8
    --seeds 0-2 --data-dir data/cifar10-png
    """
    with _reported(debug):
        overrides = _overrides(set_, epochs=epochs, device=device, data_dir=data_dir)
        grids: dict[str, list[Any]] = {}
        for key, values in map(sweep_spec.parse_grid, grid or []):
            if key in grids:
                raise UsageError(f"--grid {key}: given twice; list all its values in one --grid")
            grids[key] = values
        if executor == "ray":
            if devices is not None:
                raise UsageError("--devices is for --executor local; Ray places runs itself")
            chosen: executors.Executor = executors.Ray(address=ray_address)
        elif executor == "local":
            if ray_address is not None:
                raise UsageError("--ray-address is for --executor ray")
            chosen = (
                executors.Devices(executors.parse_devices(devices))
                if devices is not None
                else executors.Local()
            )
        else:
            raise UsageError(f"--executor {executor!r}: expected local or ray")
        result = sweep_lib.sweep(
            config,
            overrides=overrides,
            grid=grids,
            seeds=sweep_spec.parse_seeds(seeds),
            name=name,
            out=out,
            executor=chosen,
            target=target,
            retry_failed=retry_failed,
            log=_log,
        )
        _print_table(
            f"sweep {result.folder.name}: final test accuracy per cell",
            sweep_results.table_header(result.spec.keys, target, short=True),
            sweep_results.table_rows(result.stats, target),
        )
        folder = result.folder
        _log(
            f"written: {folder / sweep_results.RESULTS_FILE}, {folder / sweep_results.SUMMARY_FILE}"
        )
        if result.plots:  # none when no run finished
            _log("plots: " + ", ".join(str(p) for p in result.plots))
        if result.busy:
            runs_dir = folder / sweep_spec.RUNS_DIR
            held = [f"{runs_dir / run} ({holder})" for run, holder in result.busy.items()]
            more = f" and {len(held) - 3} more" if len(held) > 3 else ""
            raise SuperconError(
                f"{len(held)} run(s) left as they are, in use by another process: "
                f"{', '.join(held[:3])}{more}; run the same command again once that process "
                "has ended to continue them"
            )
        unfinished = [r for r in result.rows if r["status"] != "finished"]
        failed = [r for r in result.rows if r["status"] == "failed"]
        if failed and len(unfinished) == len(result.rows):
            reason = failed[0]["reason"]
            raise SuperconError(
                f"no run of the sweep finished ({len(failed)} failed"
                + (f"; the first: {reason}" if reason else "")
                + f"): see {folder / sweep_results.RESULTS_FILE}"
            )
        if unfinished:
            _log(
                f"{len(unfinished)} run(s) not finished: see {folder / sweep_results.RESULTS_FILE}"
            )


@app.command()
def compare(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Run folders and/or sweep folders.", show_default=False, parser=_path),
    ],
    png: Annotated[Path, typer.Option("--png", help="PNG to write.", parser=_path)] = Path(
        "compare.png"
    ),
    debug: DebugOpt = False,
) -> None:
    """Overlay test accuracy and lr per epoch of runs and sweep cells; a table side by side.

    Example: supercon compare sweeps/cpu-smoke-1cycle sweeps/cpu-smoke-step --png compare.png
    """
    with _reported(debug):
        _output_file(png, "--png")
        result = compare_lib.compare(paths, png=png)
        _print_table(
            "comparison (accuracy: mean +- std over runs)", *compare_lib.table(result.entries)
        )
        _log(f"written: {png}")


@config_app.command("show")
def config_show(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    epochs: EpochsOpt = None,
    peak_epoch: PeakOpt = None,
    lr_max: LrMaxOpt = None,
    lr_min: LrMinOpt = None,
    batch_size: BatchOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
    out: OutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print the resolved config as YAML: exactly what would run.

    Example: supercon config show --config configs/cpu-smoke.yaml --set train.epochs=3
    """
    with _reported(debug):
        overrides = _overrides(
            set_, epochs, peak_epoch, lr_max, lr_min, batch_size, seed, device, data_dir, out
        )
        cfg = api.resolve_config(config, overrides)
        out_console.product(config_lib.to_yaml(cfg))


def main() -> None:
    """Run the command line (entry.main, the console script, handles signals around it: SIGTERM
    and SIGHUP stop every command the way Ctrl-C does, one line and exit code 130; a training
    run saves its checkpoint first)."""
    for stream in (sys.stdout, sys.stderr):
        # A path or class name the terminal's encoding cannot show (LANG=C, PYTHONIOENCODING=
        # ascii) is printed escaped (\xfc), never the end of a run.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    app(prog_name="supercon")
