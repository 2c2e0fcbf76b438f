"""`supercon sweep`: one recipe over grids x seeds, every run an ordinary run directory.

    <out>/<name>/
      sweep.yaml     the spec: base config, grid, seeds (a folder never takes another spec)
      runs/<run>/    what `train` writes (config, metrics, summary, checkpoints, plots)
      logs/<run>.log what train reported while running it
      results.csv    one row per run; summary.md: per cell n, mean +- std, min, median, max
      plots/         accuracy against each grid key; the per-cell test-accuracy curves

The run folders are the truth: results.csv and summary.md are rebuilt from them after every run,
so running the same command again skips finished runs, resumes interrupted ones through train's
own resume, and leaves failed ones failed (`retry_failed` runs them again).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import socket
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import api, curves, executors, plots, runs
from . import config as config_lib
from .config import Config
from .errors import ConfigError, Interrupted, SuperconError, UsageError

Log = Callable[[str], None]
SPEC_FILE = "sweep.yaml"
RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.md"
RUNS_DIR = "runs"
PLOTS_DIR = "plots"
LOGS_DIR = "logs"  # one log per run: what train reported
FAILED_FILE = "failed.txt"  # in a run folder: the one-line reason it failed
# Where the data is and which device runs it: not part of what a sweep measures.
PLACE_KEYS = ("data.root", "train.device")
RESULT_COLUMNS = (
    "status",
    "test_accuracy",
    "best_test_accuracy",
    "epoch_reached_target",
    "train_seconds",
    "reason",
)


# --------------------------------------------------------------------------------------------
# The spec: grid values parsed from the command line, expanded into runs.


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """`schedule.lr_max=0.2,0.4,0.8` -> ("schedule.lr_max", [0.2, 0.4, 0.8]); each value is
    read as YAML (numbers, true/false, names)."""
    key, sep, values = text.partition("=")
    key = key.strip()
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not items:
        raise ConfigError(
            [f"--grid {text!r}: expected KEY=V1,V2,..., e.g. --grid schedule.lr_max=0.2,0.4,0.8"]
        )
    config_lib.check_key(key, f"--grid {key}")
    if key == "seed" or key in PLACE_KEYS:
        raise ConfigError([f"--grid {key}: not a grid key (use --seeds for seeds)"])
    parsed = [config_lib.parse_set(f"{key}={item}").value for item in items]
    if len(set(map(repr, parsed))) != len(parsed):
        raise ConfigError([f"--grid {text!r}: a value is listed twice"])
    return key, parsed


def parse_seeds(text: str) -> list[int]:
    """`0-4`, `0,1,2` or `0-2,7` -> sorted distinct seeds."""
    seeds: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            first, _, last = part.partition("-")
            low, high = int(first), int(last or first)
            if low < 0 or high < low:
                raise ValueError
            seeds.update(range(low, high + 1))
    except ValueError:
        seeds.clear()
    if not seeds:
        raise UsageError(f"--seeds {text!r}: expected seeds like 0-4, 0,1,2 or 0-2,7 (>= 0)")
    return sorted(seeds)


@dataclass(frozen=True)
class Spec:
    """What a sweep measures: the base config (without where data and device are), the grid
    and the seeds. Two invocations with the same spec are the same sweep."""

    config: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {"config": self.config, "grid": self.grid, "seeds": self.seeds}

    def digest(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def keys(self) -> list[str]:
        return list(self.grid)

    def cells(self) -> list[tuple[tuple[str, Any], ...]]:
        """The cartesian product of the grid, in the order the values were given."""
        return [
            tuple(zip(self.keys, values, strict=True))
            for values in itertools.product(*self.grid.values())
        ]


def make_spec(base: Config, grid: Mapping[str, Sequence[Any]], seeds: Sequence[int]) -> Spec:
    plain = config_lib.to_dict(base)
    for key in (*PLACE_KEYS, "out", "name", "seed"):
        _drop(plain, key)
    return Spec(plain, {k: list(v) for k, v in grid.items()}, sorted(set(seeds)))


def _drop(tree: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree[part]
    tree.pop(leaf, None)


def run_name(cell: Sequence[tuple[str, Any]], seed: int) -> str:
    """`lr_max=0.4-weight_decay=0.0005-seed0`: the last part of each key, then the seed."""
    parts = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in cell]
    name = "-".join([*parts, f"seed{seed}"])
    return "".join(c if c.isalnum() or c in "._=-" else "_" for c in name)


# --------------------------------------------------------------------------------------------
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
    its folder's failed.txt with a one-line reason; only an interruption propagates. What train
    reports goes to the sweep's logs/<run>.log.
    """
    run = Path(task.run_dir)
    place = dict(task.place) | ({"train.device": device} if device else {})
    failed = run / FAILED_FILE
    if task.retry_failed and failed.is_file():
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
    files = {
        name: (run / name).read_text(encoding="utf-8")
        for name in (runs.CONFIG_FILE, runs.METRICS_FILE, runs.SUMMARY_FILE, FAILED_FILE)
        if (run / name).is_file()
    }
    return {"run": run.name, "files": files}


def _train_or_resume(task: Task, run: Path, place: dict[str, Any], log: Log) -> None:
    try:
        if (run / runs.CONFIG_FILE).is_file():
            api.train(resume=run, overrides=place, log=log)
        else:
            cfg = task_config(task, place)
            _remove_unstarted(run)
            api.train(cfg, run_dir=run, log=log)
    except (Interrupted, KeyboardInterrupt):
        raise
    except SuperconError as e:
        _record_failure(run, str(e).splitlines()[0], log)
    except Exception as e:  # a bug or the world (out of memory): this run fails, not the sweep
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        _record_failure(run, f"{type(e).__name__}: {first}", log)


def _remove_unstarted(run: Path) -> None:
    """A folder without config.yaml holds no run: one killed as it started, or a failed cell
    being retried. Only the lock file can be in it."""
    if run.is_dir():
        (run / runs.LOCK_FILE).unlink(missing_ok=True)
        run.rmdir()  # refuses (OSError) if anything else is there


def _record_failure(run: Path, reason: str, log: Log) -> None:
    log(f"failed: {reason}")
    run.mkdir(parents=True, exist_ok=True)
    runs.write_text(run / FAILED_FILE, reason + "\n")


# --------------------------------------------------------------------------------------------
# The sweep's folder: its spec, and the rows and statistics rebuilt from its run folders.


def open_folder(folder: Path, spec: Spec) -> None:
    """Create the folder with its sweep.yaml, or check that an existing one holds this spec."""
    spec_path = folder / SPEC_FILE
    if spec_path.is_file():
        saved = read_spec(folder)
        if saved != spec:
            raise UsageError(
                f"{folder}: holds another sweep ({'; '.join(_differences(saved, spec))}); "
                "give a new --name, or the same options as before to continue it"
            )
        return
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"{folder}: exists and is not a sweep folder (no {SPEC_FILE})")
    folder.mkdir(parents=True, exist_ok=True)
    runs.write_text(spec_path, yaml.safe_dump(spec.as_dict(), sort_keys=False))


def read_spec(folder: Path) -> Spec:
    try:
        data = yaml.safe_load((folder / SPEC_FILE).read_text(encoding="utf-8"))
        return Spec(data["config"], data["grid"], data["seeds"])
    except (OSError, yaml.YAMLError, TypeError, KeyError) as e:
        raise UsageError(f"{folder / SPEC_FILE}: not a sweep spec ({type(e).__name__})") from None


def _differences(saved: Spec, wanted: Spec) -> list[str]:
    found = []
    if saved.grid != wanted.grid:
        found.append(f"grid {saved.grid} there, {wanted.grid} now")
    if saved.seeds != wanted.seeds:
        found.append(f"seeds {saved.seeds} there, {wanted.seeds} now")
    before = dict(config_lib.flatten(saved.config))
    after = dict(config_lib.flatten(wanted.config))
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            found.append(f"{key} {before.get(key)!r} there, {after.get(key)!r} now")
    return found[:4] + ([f"{len(found) - 4} more"] if len(found) > 4 else [])


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


def read_rows(folder: Path, spec: Spec, target: float) -> list[dict[str, Any]]:
    """One row per run of the spec, from its folder: finished, failed, interrupted or pending."""
    rows = []
    for cell in spec.cells():
        for seed in spec.seeds:
            name = run_name(cell, seed)
            run = folder / RUNS_DIR / name
            row: dict[str, Any] = {"run": name, **dict(cell), "seed": seed}
            row.update(dict.fromkeys(RESULT_COLUMNS, ""))
            if (run / runs.SUMMARY_FILE).is_file():
                summary = json.loads((run / runs.SUMMARY_FILE).read_text(encoding="utf-8"))
                reached = [
                    int(r["epoch"])
                    for r in runs.read_metrics(run)
                    if r["test_acc"] and float(r["test_acc"]) >= target
                ]
                row.update(
                    status="finished",
                    test_accuracy=summary["test_accuracy"],
                    best_test_accuracy=summary["best_test_accuracy"],
                    epoch_reached_target=reached[0] if reached else "",
                    train_seconds=summary["train_seconds"],
                )
            elif (run / FAILED_FILE).is_file():
                reason = (run / FAILED_FILE).read_text(encoding="utf-8").strip()
                row.update(status="failed", reason=reason)
            else:
                row["status"] = "interrupted" if (run / runs.CONFIG_FILE).is_file() else "pending"
            rows.append(row)
    return rows


@dataclass(frozen=True)
class CellStats:
    """Final test accuracy of one grid cell over its finished runs (fractions)."""

    cell: tuple[tuple[str, Any], ...]
    runs: int
    failed: int
    mean: float | None
    std: float | None  # sample standard deviation; None below 2 runs
    min: float | None
    median: float | None
    max: float | None
    share_at_target: float | None
    median_train_seconds: float | None


def cell_statistics(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], target: float
) -> list[CellStats]:
    cells: dict[tuple[tuple[str, Any], ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        cells.setdefault(tuple((k, row[k]) for k in keys), []).append(row)
    stats = []
    for cell, members in cells.items():
        done = [r for r in members if r["status"] == "finished"]
        acc = [float(r["test_accuracy"]) for r in done]
        seconds = [float(r["train_seconds"]) for r in done]
        stats.append(
            CellStats(
                cell=cell,
                runs=len(done),
                failed=sum(r["status"] == "failed" for r in members),
                mean=statistics.fmean(acc) if acc else None,
                std=statistics.stdev(acc) if len(acc) > 1 else None,
                min=min(acc, default=None),
                median=statistics.median(acc) if acc else None,
                max=max(acc, default=None),
                share_at_target=sum(a >= target for a in acc) / len(acc) if acc else None,
                median_train_seconds=statistics.median(seconds) if seconds else None,
            )
        )
    return stats


def write_results(folder: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    runs.write_text(folder / RESULTS_FILE, buffer.getvalue())


def table_rows(stats: Sequence[CellStats], target: float) -> list[list[str]]:
    """The per-cell table as strings (summary.md and the terminal print the same)."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    lines = []
    for s in stats:
        spread = f" +- {pct(s.std)}" if s.std is not None else ""
        lines.append(
            [
                *(str(v) for _, v in s.cell),
                f"{s.runs}" + (f" ({s.failed} failed)" if s.failed else ""),
                pct(s.mean) + spread,
                pct(s.min),
                pct(s.median),
                pct(s.max),
                "-" if s.share_at_target is None else f"{100 * s.share_at_target:.0f}%",
                "-" if s.median_train_seconds is None else f"{s.median_train_seconds:.1f}",
            ]
        )
    return lines


def table_header(keys: Sequence[str], target: float, short: bool = False) -> list[str]:
    """Column names; `short` names grid keys by their last part (schedule.lr_max -> lr_max)."""
    return [
        *(key.rsplit(".", 1)[-1] if short else key for key in keys),
        "n",
        "mean +- std (%)",
        "min",
        "median",
        "max",
        f">= {100 * target:g}%",
        "train s (median)",
    ]


def write_summary(folder: Path, spec: Spec, stats: Sequence[CellStats], target: float) -> None:
    header = table_header(spec.keys, target)
    lines = [
        f"# Sweep {folder.name}",
        "",
        f"Final test accuracy per grid cell over seeds {spec.seeds} (spec: {SPEC_FILE}; "
        f"one row per run: {RESULTS_FILE}). n counts finished runs.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in table_rows(stats, target)),
    ]
    runs.write_text(folder / SUMMARY_FILE, "\n".join(lines) + "\n")


def write_plots(folder: Path, spec: Spec, stats: Sequence[CellStats]) -> list[Path]:
    """plots/accuracy_vs_<key>.png per grid key and plots/curves.png (one curve per cell)."""
    written = []
    for key in spec.keys:
        others = [k for k in spec.keys if k != key]
        lines: dict[str, list[tuple[float, float | None] | None]] = {}
        for s in stats:
            values = dict(s.cell)
            label = ", ".join(f"{k.rsplit('.', 1)[-1]}={values[k]}" for k in others)
            points = lines.setdefault(label, [None] * len(spec.grid[key]))
            if s.mean is not None:
                points[spec.grid[key].index(values[key])] = (s.mean, s.std)
        figure = plots.grid_figure(spec.grid[key], lines, key)
        written.append(plots.save(figure, folder / PLOTS_DIR / f"accuracy_vs_{key}.png"))
    cell_curves = []
    for cell in spec.cells():
        finished = [
            folder / RUNS_DIR / run_name(cell, seed)
            for seed in spec.seeds
            if (folder / RUNS_DIR / run_name(cell, seed) / runs.SUMMARY_FILE).is_file()
        ]
        if finished:
            label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in cell) or folder.name
            cell_curves.append(curves.of_runs(finished, label))
    if cell_curves:
        figure = plots.curves_figure(cell_curves, title=f"sweep {folder.name}: per-cell mean")
        written.append(plots.save(figure, folder / PLOTS_DIR / "curves.png"))
    return written


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


def sweep(
    config: api.ConfigSource = None,
    *,
    overrides: api.Overrides = (),
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: Sequence[int] = (0,),
    name: str | None = None,
    out: str | Path = "sweeps",
    executor: executors.Executor | None = None,
    target: float = 0.90,
    retry_failed: bool = False,
    log: Log = print,
) -> SweepResult:
    """Train `config` for every grid cell x seed into `<out>/<name>/`; returns the rows and
    per-cell statistics. The folder defaults to `<config name>-<spec digest>`, so the same call
    again continues the same sweep."""
    grid = dict(grid or {})
    for key, values in grid.items():
        config_lib.check_key(key, f"grid {key}")
        if not values:
            raise UsageError(f"grid {key}: no values")
    base = api.resolve_config(config, overrides)
    grid = {key: [_validated(base, key, v) for v in values] for key, values in grid.items()}
    spec = make_spec(base, grid, seeds)
    place = {"data.root": str(base.data.root), "train.device": base.train.device}
    folder = Path(out) / (name or f"{base.name}-{spec.digest()}")
    open_folder(folder, spec)
    with runs.locked(folder, "this sweep"):
        runs.remove_stale_temporaries(folder)
        tasks = tasks_of(folder, spec, place, retry_failed)
        todo = [t for t in tasks if _needs_work(Path(t.run_dir), retry_failed)]
        log(
            f"sweep {folder}: {len(spec.cells())} cell(s) x {len(spec.seeds)} seed(s) = "
            f"{len(tasks)} runs, {len(tasks) - len(todo)} done already"
        )

        def done(result: Mapping[str, Any]) -> None:
            rows = read_rows(folder, spec, target)
            if result:
                _keep_files(folder / RUNS_DIR / result["run"], result["files"])
                rows = read_rows(folder, spec, target)
                (row,) = [r for r in rows if r["run"] == result["run"]]
                count = sum(r["status"] in ("finished", "failed") for r in rows)
                log(f"[{count}/{len(rows)}] {row['run']}: {_outcome(row)}")
            write_results(folder, rows)
            write_summary(folder, spec, cell_statistics(rows, spec.keys, target), target)

        done({})
        (executor or executors.Local()).run(run_task, todo, done)
        rows = read_rows(folder, spec, target)
        stats = cell_statistics(rows, spec.keys, target)
        written = write_plots(folder, spec, stats)
    return SweepResult(folder, spec, rows, stats, written, target)


def _validated(base: Config, key: str, value: Any) -> Any:
    """A grid value as the config holds it (`1e9` typed on a command line is a YAML string; the
    config reads it as 1e9), so that plots and specs see numbers. A value the config refuses
    stays as given: its runs fail with the reason."""
    try:
        node: Any = config_lib.load([], {key: value}, base=base)
    except ConfigError:
        return value
    for part in key.split("."):
        node = getattr(node, part)
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
