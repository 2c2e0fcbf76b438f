"""`supercon sweep`: one recipe over grids x seeds, every run an ordinary run directory.

    <out>/<name>/
      sweep.yaml     the spec: base config, grid, seeds (a folder never takes another spec)
      runs/<run>/    what `train` writes (config, metrics, summary, checkpoints, plots)
      logs/<run>.log what train reported while running it
      results.csv    one row per run; summary.md: per cell n, mean +- std, min, median, max
      plots/         accuracy against each grid key; the per-cell test-accuracy curves

The run folders are the truth: results.csv and summary.md are rebuilt from them after every run,
so running the same command again skips finished runs, resumes interrupted ones through train's
own resume, and leaves failed ones failed (`retry_failed` runs them again). This module runs the
runs; sweep_spec.py says what a sweep is, sweep_results.py what its folder adds up to.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import api, arguments, executors, runs
from . import config as config_lib
from .config import Config
from .errors import (
    ConfigError,
    FolderInUse,
    Interrupted,
    RunFileError,
    SuperconError,
    UsageError,
    describe,
    first_line,
)
from .sweep_results import (
    PLOTS_DIR,
    RESULTS_FILE,
    SUMMARY_FILE,
    CellStats,
    cell_statistics,
    read_rows,
    write_plots,
    write_results,
    write_summary,
)
from .sweep_spec import (
    FAILED_FILE,
    LOGS_DIR,
    MAX_SEEDS,
    RUNS_DIR,
    SPEC_FILE,
    Spec,
    check_grid_key,
    check_grid_value,
    check_run_count,
    distinct,
    make_spec,
    open_folder,
    parse_grid,
    parse_seeds,
    run_name,
    seed_of,
)

Log = Callable[[str], None]


# One run, as a worker executes it (any process, any machine: plain values in and out).


@dataclass(frozen=True)
class Task:
    run_dir: str
    config: dict[str, Any]  # the spec's base config
    cell: tuple[tuple[str, Any], ...]
    seed: int
    place: tuple[tuple[str, Any], ...]  # data.root and train.device of this invocation
    retry_failed: bool = False


def task_config(task: Task, place: Mapping[str, Any]) -> Config:
    """Base config <- this cell's grid values <- seed <- data folder and device."""
    base = config_lib.from_dict(task.config, SPEC_FILE)
    overrides = [config_lib.Override(k, v, f"--grid {k}") for k, v in task.cell]
    overrides.append(config_lib.Override("seed", task.seed, "--seeds"))
    overrides += [config_lib.Override(k, v, "sweep") for k, v in place.items()]
    return config_lib.load([], overrides, base=base)


def run_task(task: Task, device: str | None = None) -> dict[str, Any]:
    """Train, resume or skip one run; returns its name and result files for the driver (which
    writes them into its own copy of the folder when the worker's filesystem is another).

    A run that fails (diverged, a config cell that does not validate, any error) is recorded in
    its folder's failed.txt with a one-line reason; only an interruption propagates. A run that
    another process holds (a `train --resume` of it) has not failed: nothing is written into
    it, and the result names that process as "busy", for the same command to continue the run
    once it has ended. What train reports goes to the sweep's logs/<run>.log.
    """
    run = Path(task.run_dir)
    place = dict(task.place) | ({"train.device": device} if device else {})
    failed = run / FAILED_FILE
    try:
        if task.retry_failed and failed.is_file():
            with runs.locked(run):  # not from under a process that holds the run
                failed.unlink()
        if not (run / runs.SUMMARY_FILE).is_file() and not failed.is_file():
            log_path = run.parent.parent / LOGS_DIR / f"{run.name}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8") as log_file:

                def log(message: str) -> None:
                    log_file.write(message + "\n")
                    log_file.flush()

                log(f"pid {os.getpid()} on {socket.gethostname()}")
                _train_or_resume(task, run, place, log)
    except FolderInUse as e:
        return {"run": run.name, "files": {}, "busy": e.holder}
    return _result_of(run)


def record_lost(task: Task, reason: str) -> dict[str, Any]:
    """A run whose process died without reporting (an executor's `lost`): failed, with the
    reason, like a run that failed by itself; --retry-failed runs it again."""
    run = Path(task.run_dir)
    _record_failure(run, reason, lambda _: None)
    return _result_of(run)


def _result_of(run: Path) -> dict[str, Any]:
    """The run's name and result files, for the driver (which writes them into its own copy
    of the folder when the worker's filesystem is another)."""
    files = {
        name: (run / name).read_text(encoding="utf-8")
        for name in (runs.CONFIG_FILE, runs.METRICS_FILE, runs.SUMMARY_FILE, FAILED_FILE)
        if (run / name).is_file()
    }
    return {"run": run.name, "files": files}


def _train_or_resume(task: Task, run: Path, place: dict[str, Any], log: Log) -> None:
    try:
        if runs.started(run):
            api.train(resume=run, overrides=place, log=log)
        else:
            cfg = task_config(task, place)
            _remove_unstarted(run)
            api.train(cfg, run_dir=run, log=log)
    except (Interrupted, KeyboardInterrupt):
        raise
    except FolderInUse as e:
        log(f"left as it is: {first_line(e)}")
        raise
    except SuperconError as e:
        _record_failure(run, first_line(e), log)
    except Exception as e:  # a bug or the world (out of memory): this run fails, not the sweep
        _record_failure(run, describe(e), log)


def _remove_unstarted(run: Path) -> None:
    """A folder that holds no started run: one killed as it was created or as it wrote its
    first file, or a failed cell being retried. Only config.yaml, the lock file and the
    temporary files of writers that died can be in it; if anything else is, nothing is removed
    but those temporary files, and the run fails naming what is there."""
    if not run.is_dir():
        return
    runs.remove_stale_temporaries(run)  # a live writer's stay
    expected = (runs.CONFIG_FILE, runs.LOCK_FILE)
    if others := sorted(p.name for p in run.iterdir() if p.name not in expected):
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise SuperconError(
            f"{run}: the run has not started, but its folder holds {listed} (a process still "
            "writing there, or files of another program); move them away, then run the same "
            "command again"
        )
    for name in expected:
        (run / name).unlink(missing_ok=True)
    run.rmdir()


def _record_failure(run: Path, reason: str, log: Log) -> None:
    log(f"failed: {reason}")
    run.mkdir(parents=True, exist_ok=True)
    runs.write_text(run / FAILED_FILE, reason + "\n")


def tasks_of(folder: Path, spec: Spec, place: Mapping[str, Any], retry_failed: bool) -> list[Task]:
    return [
        Task(
            run_dir=str(folder / RUNS_DIR / run_name(cell, seed)),
            config=spec.config,
            cell=cell,
            seed=seed,
            place=tuple(place.items()),
            retry_failed=retry_failed,
        )
        for cell in spec.cells()
        for seed in spec.seeds
    ]


def check_entries(folder: Path, tasks: Sequence[Task]) -> None:
    """Every folder and file the sweep writes is still one where it exists (checked under the
    sweep's lock, before any run trains): found as it is written, a damaged entry cost the
    pending runs' training first, and its error named no part of the sweep."""
    for name in (RUNS_DIR, LOGS_DIR, PLOTS_DIR):
        if (folder / name).exists() and not (folder / name).is_dir():
            raise RunFileError(f"{folder / name}: not a folder; the sweep's {name}/ belongs here")
    files = [(folder / name, f"the sweep's {name}") for name in (RESULTS_FILE, SUMMARY_FILE)]
    files += [(Path(t.run_dir) / FAILED_FILE, f"the run's {FAILED_FILE}") for t in tasks]
    for path, what in files:
        if path.exists() and not path.is_file():
            raise RunFileError(f"{path}: not a file; {what} belongs here")


# --------------------------------------------------------------------------------------------
# The API: `sweep(...)` mirrors `supercon sweep`.


@dataclass(frozen=True)
class SweepResult:
    folder: Path
    spec: Spec
    rows: list[dict[str, Any]]
    stats: list[CellStats]
    plots: list[Path]
    target: float
    # Runs that another process held (a `train --resume` of one), left as they were: the run's
    # name and that process ('process 4242'). The same call continues them once it has ended.
    busy: dict[str, str]


def sweep(
    config: api.ConfigSource = None,
    *,
    overrides: api.Overrides = (),
    grid: Mapping[str, Sequence[Any] | str] | Sequence[str] | str | None = None,
    seeds: Sequence[int] | str = (0,),
    name: str | None = None,
    out: str | Path = "sweeps",
    executor: executors.Executor | str | None = None,
    target: float = 0.90,
    retry_failed: bool = False,
    log: Log = print,
) -> SweepResult:
    """Train `config` for every grid cell x seed into `<out>/<name>/`; returns the rows and
    per-cell statistics. The folder defaults to `<config name>-<spec digest>`, so the same call
    again continues the same sweep.

    The command line's text forms are taken too: `grid={"schedule.lr_max": "0.2,0.4"}` (or
    `grid=["schedule.lr_max=0.2,0.4"]`), `seeds="0-4"`, `executor="local"` or `"ray"`.
    """
    if name is not None and not config_lib.is_folder_name(name):
        raise UsageError(f"--name {name!r}: expected {config_lib.NAME_RULE}")
    out = arguments.path(out, "out")
    runs.check_name_lengths(out, "--out")
    runs.check_nameable(out, "--out")  # its runs' folders, named in its logs and their reports
    grid = _grid(grid)
    seeds = _seeds(seeds)
    chosen = _executor(executor)
    target = arguments.fraction(target, "target")
    retry_failed = arguments.flag(retry_failed, "retry_failed")
    log = arguments.log(log)
    fixed = {o.key for o in config_lib.as_overrides(overrides)}
    for key, values in grid.items():
        config_lib.check_key(key, "grid")
        check_grid_key(key, "grid")
        if not values:
            raise UsageError(f"grid {key}: no values")
        if key in fixed:
            raise UsageError(f"{key} is both a grid key and set to one value: give it once")
    if not seeds:
        raise UsageError(
            f"seeds []: expected at least one seed, 0 <= seed <= {config_lib.MAX_SEED}"
        )
    check_run_count(grid, seeds)  # before any value is read or a folder made
    for key, values in grid.items():
        for value in values:
            check_grid_value(key, value, "grid")
    base = api.resolve_config(config, overrides)
    read = {key: [_validated(base, key, v) for v in values] for key, values in grid.items()}
    for key, values in read.items():
        distinct(f"grid {key}", values, grid[key])
    spec = make_spec(base, read, seeds)
    place = {"data.root": str(base.data.root), "train.device": base.train.device}
    folder = out / (name or f"{base.name}-{spec.digest()}")
    with open_folder(folder, spec):
        tasks = tasks_of(folder, spec, place, retry_failed)
        check_entries(folder, tasks)
        todo = [t for t in tasks if _needs_work(Path(t.run_dir), retry_failed)]
        log(
            f"sweep {folder}: {len(spec.cells())} cell(s) x {len(spec.seeds)} seed(s) = "
            f"{len(tasks)} runs, {len(tasks) - len(todo)} done already"
        )

        # Counted as reported, not from the folders: parallel runs can end before the first of
        # them is reported, and two reports would show the same count.
        reported = itertools.count(len(tasks) - len(todo) + 1)
        busy: dict[str, str] = {}

        def done(result: Mapping[str, Any]) -> None:
            rows = read_rows(folder, spec, target)
            if result:
                _keep_files(folder / RUNS_DIR / result["run"], result["files"])
                rows = read_rows(folder, spec, target)
                (row,) = [r for r in rows if r["run"] == result["run"]]
                if "busy" in result:
                    busy[row["run"]] = result["busy"]
                    outcome = f"in use by {result['busy']}; left as it is"
                else:
                    outcome = _outcome(row)
                log(f"[{next(reported)}/{len(rows)}] {row['run']}: {outcome}")
            write_results(folder, rows)
            write_summary(folder, spec, cell_statistics(rows, spec.keys, target), target)

        done({})
        try:
            chosen.run(run_task, todo, done, record_lost)
        finally:
            done({})  # a stopped sweep's results.csv shows its runs as interrupted, not pending
        rows = read_rows(folder, spec, target)
        stats = cell_statistics(rows, spec.keys, target)
        written = write_plots(folder, spec, stats)
    return SweepResult(folder, spec, rows, stats, written, target, busy)


def _grid(grid: Any) -> dict[str, list[Any]]:
    """{key: values}: a list of values, a single value, or the command line's text
    ("0.2,0.4", "[12,18],[8,16]"); or the command line's 'KEY=V1,V2' texts, one per key."""
    if grid is None:
        return {}
    if isinstance(grid, str) or (arguments.is_list(grid) and not isinstance(grid, Mapping)):
        texts = [grid] if isinstance(grid, str) else list(grid)
        if not all(isinstance(text, str) for text in texts):
            raise UsageError(f"grid {arguments.shown(grid)}: expected {GRID_KINDS}")
        found: dict[str, list[Any]] = {}
        for key, values in (parse_grid(text, "grid") for text in texts):
            if key in found:
                raise UsageError(f"grid {key}: given twice; list all its values once")
            found[key] = values
        return found
    if not isinstance(grid, Mapping):
        raise UsageError(f"grid {arguments.shown(grid)}: expected {GRID_KINDS}")
    found = {}
    for key, values in grid.items():
        if not isinstance(key, str):
            raise UsageError(f"grid {arguments.shown(grid)}: key {key!r} is not a dotted key")
        if isinstance(values, str):
            found.update([parse_grid(f"{key}={values}", "grid")])
        elif isinstance(values, bytes | Mapping):
            raise UsageError(
                f"grid {key}: {arguments.shown(values)}: expected a list of values, or text "
                "such as '0.2,0.4'"
            )
        else:
            found[key] = list(values) if arguments.is_list(values) else [values]
    return found


GRID_KINDS = (
    "a mapping {dotted key: values} such as {'schedule.lr_max': [0.2, 0.4]} (or '0.2,0.4'), "
    "or 'KEY=V1,V2' texts such as ['schedule.lr_max=0.2,0.4']"
)


def _seeds(seeds: Any) -> list[int]:
    """Distinct seeds from a list of whole numbers, or from the command line's text ("0-4",
    "0,1,2", "0-2,7"), at most MAX_SEEDS of them (range(10**12) is not read to its end)."""
    if isinstance(seeds, str):
        return parse_seeds(seeds, "seeds")
    if not arguments.is_list(seeds):
        raise UsageError(
            f"seeds {arguments.shown(seeds)}: expected a list of seeds such as [0, 1, 2], or "
            "text such as '0-4'"
        )
    found: dict[int, None] = {}  # in the order given
    where = f"seeds {arguments.shown(seeds)}"
    for seed in seeds:
        found[seed_of(seed, where)] = None
        if len(found) > MAX_SEEDS:
            raise UsageError(f"{where}: more than {MAX_SEEDS:,} seeds")
    return list(found)


def _executor(executor: Any) -> executors.Executor:
    """An executor, or the command line's names for the two kinds: 'local', 'ray'."""
    if executor is None or (isinstance(executor, str) and executor == "local"):
        return executors.Local()
    if isinstance(executor, str) and executor == "ray":
        return executors.Ray()
    if isinstance(executor, str) or not callable(getattr(executor, "run", None)):
        raise UsageError(
            f"executor {arguments.shown(executor)}: expected 'local', 'ray', or an executor "
            "such as executors.Local(), executors.Devices(['0', '1']), executors.Ray(address=...)"
        )
    return executor


def _validated(base: Config, key: str, value: Any) -> Any:
    """A grid value as the config holds it (`1e9` typed on a command line is a YAML string; the
    config reads it as 1e9), so that plots and specs see numbers; a list key's value
    (schedule.milestones) as a list of them, which sweep.yaml can hold. A value the config
    refuses stays as given: its runs fail with the reason."""
    try:
        node: Any = config_lib.load([], {key: value}, base=base)
    except ConfigError:
        return value
    for part in key.split("."):
        node = getattr(node, part)
    if isinstance(node, tuple):
        return list(node)
    return node if isinstance(node, bool | int | float | str) else value


def _outcome(row: Mapping[str, Any]) -> str:
    if row["status"] == "finished":
        return f"{100 * float(row['test_accuracy']):.2f}% in {float(row['train_seconds']):.1f} s"
    return f"{row['status']}" + (f": {row['reason']}" if row["reason"] else "")


def _keep_files(run: Path, files: Mapping[str, str]) -> None:
    """A worker on another machine trained this run: keep its result files here too."""
    for name, text in files.items():
        if not (run / name).is_file():
            runs.write_text(run / name, text)


def _needs_work(run: Path, retry_failed: bool) -> bool:
    if (run / runs.SUMMARY_FILE).is_file():
        return False
    return retry_failed or not (run / FAILED_FILE).is_file()
