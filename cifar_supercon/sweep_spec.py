"""What a sweep is: its spec (base config, grid, seeds), how its runs are named, and the folder
that holds one spec (`supercon sweep`; see sweeps.py for the runs and sweep_results.py for what
they add up to)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import numbers
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import arguments, runs
from . import config as config_lib
from .arguments import shown
from .config import Config
from .errors import ConfigError, RunFileError, SuperconError, UsageError, describe, first_line

SPEC_FILE = "sweep.yaml"
RUNS_DIR = "runs"
LOGS_DIR = "logs"  # one log per run: what train reported
FAILED_FILE = "failed.txt"  # in a run folder: the one-line reason it failed
# Where the data is and which device runs it: not part of what a sweep measures.
PLACE_KEYS = ("data.root", "train.device")


def parse_grid(text: str, option: str = "--grid") -> tuple[str, list[Any]]:
    """`schedule.lr_max=0.2,0.4,0.8` -> ("schedule.lr_max", [0.2, 0.4, 0.8]); each value is
    read as YAML (numbers, true/false, names). `option` names it in messages (the API's
    argument is `grid`)."""
    key, sep, values = text.partition("=")
    key = key.strip()
    items = split_values(values, f"{option} {text!r}") if sep and key else []
    if not items:
        example = "schedule.lr_max=0.2,0.4,0.8"
        example = f"{option} {example}" if option.startswith("--") else repr(example)
        raise ConfigError([f"{option} {text!r}: expected KEY=V1,V2,..., e.g. {example}"])
    config_lib.check_key(key, option)
    check_grid_key(key, option)
    values = [config_lib.parse_set(f"{key}={item}", option).value for item in items]
    for value, item in zip(values, items, strict=True):
        check_grid_value(key, value, f"{option} {text!r}", item)
    # Here, while the values are still as typed: 0x10 and 16 are both 16 once read.
    distinct(f"{option} {text!r}", values, items)
    return key, values


# A comma that separates values: not one inside a list value's brackets (`[12,18],[8]`).
_VALUE_COMMA = re.compile(r",(?![^\[]*\])")


def split_values(text: str, where: str) -> list[str]:
    """`0.2, 0.4,0.8` -> ["0.2", "0.4", "0.8"], `[12,18],[8]` -> ["[12,18]", "[8]"] ([] when
    nothing is given). An empty value between two commas or at an end is a typo, not a value:
    refused, `where` naming the option."""
    items = [v.strip() for v in _VALUE_COMMA.split(text)]
    if not any(items):
        return []
    if not all(items):
        raise ConfigError([f"{where}: a value is empty (two commas, or one at an end)"])
    return items


def distinct(where: str, values: Sequence[Any], given: Sequence[Any]) -> None:
    """Two spellings of one value (0.1 and 1e-1) would be one run, or one curve, counted twice.
    `values` as they are read, `given` as they were typed."""
    for i, value in enumerate(values):
        if value in values[:i]:
            first = values.index(value)
            raise UsageError(
                f"{where}: {given[first]!r} and {given[i]!r} are the same value; list each once"
            )


def check_grid_key(key: str, source: str) -> None:
    """Seeds, data, device and where runs go are not what a grid varies."""
    if key == "seed":
        raise ConfigError([f"{source} seed: not a grid key (use --seeds)"])
    if key in ("out", "name"):
        # A sweep's runs go into its own folder, named after their grid values and seed: these
        # keys would change nothing but make the same run twice.
        raise ConfigError(
            [
                f"{source} {key}: not a grid key (a sweep's runs go into its folder, named after "
                "their grid values and seed: choose the folder with --out and --name)"
            ]
        )
    if key in PLACE_KEYS:
        raise ConfigError(
            [
                f"{source} {key}: not a grid key (where the data is and which device runs it "
                "are the same for every run: use --data-dir / --device)"
            ]
        )


def check_grid_value(key: str, value: Any, where: str, given: str | None = None) -> None:
    """A grid value has its key's shape: one number, string, boolean or null, or for a key that
    takes a list (schedule.milestones) a list of them. Whether the config accepts it is left to
    its runs (lr_max -1 fails there, with the reason); a value of another shape (a list in a
    list, a mapping, a list for a key of one value) is refused before the sweep folder exists,
    as cells are told apart, shown and saved in sweep.yaml by their values. `where` names the
    option or argument, `given` the value as typed."""
    if _single(value) or (
        config_lib.takes_list(key) and isinstance(value, list) and all(map(_single, value))
    ):
        return
    expected = "a number, a string, true/false or null"
    if config_lib.takes_list(key):
        expected += ", or a list of them such as [12, 18]"
    typed = given if given is not None else shown(value)
    raise UsageError(f"{where}: {typed} is not a value {key} takes; expected {expected}")


def _single(value: Any) -> bool:
    return value is None or isinstance(value, numbers.Real | str)  # numpy's numbers too


MAX_RUN_NAME = 255 - len(".log")  # bytes: a run's folder name, and its logs/<run>.log
MAX_SEEDS = 100_000  # a course's hundreds of seeds fit many times over; a typo does not
# Runs of one sweep, cells x seeds: as many as the seeds of one cell may be. A sweep that size
# takes years on one GPU; its task list is tens of MB, while a typo's product would fill memory.
MAX_RUNS = MAX_SEEDS


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """`0-4`, `0,1,2` or `0-2,7` -> sorted distinct seeds (ASCII digits, 0 <= seed < 2**32);
    `option` names them in messages (the API's argument is `seeds`)."""
    seeds: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        bounds = re.fullmatch(r"(\d+)(?:-(\d+))?", part, re.ASCII)
        low, high = (int(bounds[1]), int(bounds[2] or bounds[1])) if bounds else (0, -1)
        if high < low or high > config_lib.MAX_SEED:
            raise UsageError(
                f"{option} {text!r}: expected seeds like 0-4, 0,1,2 or 0-2,7 "
                f"(0 <= seed <= {config_lib.MAX_SEED})"
            )
        if len(seeds) + high - low + 1 > MAX_SEEDS:
            raise UsageError(f"{option} {text!r}: more than {MAX_SEEDS:,} seeds")
        seeds.update(range(low, high + 1))
    return sorted(seeds)


def seed_of(value: Any, where: str) -> int:
    """`value` as a seed: a whole number (numpy's too, not a bool), 0 <= seed <= MAX_SEED;
    `where` names the argument or file in the message."""
    seed = arguments.integer(value)
    if seed is None or not 0 <= seed <= config_lib.MAX_SEED:
        raise UsageError(
            f"{where}: {shown(value)} is no seed; expected whole numbers, "
            f"0 <= seed <= {config_lib.MAX_SEED}"
        )
    return seed


def check_run_count(grid: Mapping[str, Sequence[Any]], seeds: Sequence[int]) -> None:
    """Refuse more than MAX_RUNS runs, counted from the number of values of each key (the
    product itself, of a few long --grid lists, would not fit in memory)."""
    cells = math.prod(len(values) for values in grid.values())
    count = cells * len(set(seeds))
    if count > MAX_RUNS:
        raise UsageError(
            f"{cells:,} grid cell(s) x {len(set(seeds)):,} seed(s) = {count:,} runs, more than "
            f"a sweep may hold ({MAX_RUNS:,}); give fewer grid values or seeds"
        )


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
    spec = Spec(plain, {k: list(v) for k, v in grid.items()}, sorted(set(seeds)))
    _check_run_folders(spec)
    return spec


def _check_run_folders(spec: Spec) -> None:
    """Values that differ only where a folder name cannot (a/b and a_b) would train two cells
    into one run folder: refuse them before anything runs."""
    seed = min(spec.seeds, default=0)
    cells: dict[str, Sequence[tuple[str, Any]]] = {}
    for cell in spec.cells():
        folder = run_name(cell, seed)
        longest = len(run_name(cell, max(spec.seeds, default=0)).encode())
        if longest > MAX_RUN_NAME:
            raise UsageError(
                f"grid cell {cell_label(cell)!r} would name its run folders with {longest} "
                f"characters, more than file names allow ({MAX_RUN_NAME}); give shorter "
                "values or fewer grid keys"
            )
        if folder in cells:
            raise UsageError(
                f"grid cells {cell_label(cells[folder])!r} and {cell_label(cell)!r} would share "
                f"the run folder {folder}; give values that differ in letters or digits"
            )
        cells[folder] = cell


def _drop(tree: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree[part]
    tree.pop(leaf, None)


def short_key(key: str) -> str:
    """schedule.lr_max -> lr_max: how names, labels and tables show a grid key."""
    return key.rsplit(".", 1)[-1]


def cell_label(cell: Sequence[tuple[str, Any]], sep: str = ", ") -> str:
    """`lr_max=0.4, weight_decay=0.0005` ("" for a sweep of seeds only)."""
    return sep.join(f"{short_key(key)}={value}" for key, value in cell)


def run_name(cell: Sequence[tuple[str, Any]], seed: int) -> str:
    """`lr_max=0.4-weight_decay=0.0005-seed0`: the cell's label, then the seed."""
    name = "-".join(filter(None, [cell_label(cell, "-"), f"seed{seed}"]))
    return "".join(c if c.isalnum() or c in "._=-" else "_" for c in name)


def finished_runs(folder: Path, spec: Spec, cell: Sequence[tuple[str, Any]]) -> list[Path]:
    """The cell's run folders that have finished (hold summary.json), in seed order."""
    found = (folder / RUNS_DIR / run_name(cell, seed) for seed in spec.seeds)
    return [run for run in found if (run / runs.SUMMARY_FILE).is_file()]


@contextlib.contextmanager
def open_folder(folder: Path, spec: Spec) -> Iterator[None]:
    """Hold the sweep folder's lock while the block runs, in a new folder with this spec's
    sweep.yaml, or in an existing one whose sweep.yaml holds this spec.

    The lock comes first: sweep.yaml is read, checked and written only under it. Two sweeps
    started at once with one --name and different specs otherwise both found no sweep.yaml and
    both wrote theirs, so that the one the lock then refused left its spec over the other's runs.
    """
    if not (folder / SPEC_FILE).is_file():
        _check_no_other_files(folder)  # before a lock file is put into someone else's folder
        runs.check_outside_runs(folder.parent, "--out")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SuperconError(
                f"{folder}: cannot create the sweep folder here ({e.strerror}); "
                "choose another --out"
            ) from None
    with runs.locked(folder, "this sweep"):
        runs.remove_stale_temporaries(folder)  # of a sweep killed while writing its files
        spec_path = folder / SPEC_FILE
        if spec_path.is_file():
            saved = read_spec(folder)
            if saved != spec:
                raise UsageError(
                    f"{folder}: holds another sweep ({'; '.join(_differences(saved, spec))}); "
                    "give a new --name, or the same options as before to continue it"
                )
        else:
            _check_no_other_files(folder)
            runs.write_text(spec_path, yaml.safe_dump(spec.as_dict(), sort_keys=False))
        yield


def _check_no_other_files(folder: Path) -> None:
    """A folder without sweep.yaml becomes a sweep folder only when it is new, or empty but for
    what a sweep killed before its sweep.yaml landed leaves: the lock file, and the temporary
    file of sweep.yaml."""

    def left_by_a_sweep(name: str) -> bool:
        return name == runs.LOCK_FILE or name.startswith(f".{SPEC_FILE}{runs.TEMPORARY}")

    if folder.exists() and (
        not folder.is_dir() or not all(left_by_a_sweep(p.name) for p in folder.iterdir())
    ):
        raise UsageError(f"{folder}: exists and is not a sweep folder (no {SPEC_FILE})")


_SPEC_BYTES = 1 << 20  # a spec holds a config and a grid; a larger file is no spec of this tool


def is_sweep(folder: Path) -> bool:
    """Whether `folder` is a sweep folder of this tool: a runs/ folder beside a sweep.yaml that
    is a mapping of config, grid and seeds. A sweep.yaml alone is no sign: projects have them."""
    path = folder / SPEC_FILE
    if not (folder / RUNS_DIR).is_dir() or not path.is_file():  # a pipe would block the read
        return False
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f.read(_SPEC_BYTES))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return False
    return isinstance(data, dict) and all(key in data for key in SPEC_KEYS)


def read_spec(folder: Path) -> Spec:
    """The folder's sweep.yaml, checked whole as make_spec would have made it. The tool wrote
    it: a file that is no spec (damaged, or edited by hand) is a damaged file of a sweep
    (exit 1), one line saying what is wrong, before anything reads a part of it."""
    path = folder / SPEC_FILE
    try:
        return _spec_of(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as e:
        wrong = f"cannot be read: {e.strerror or describe(e)}"
    except UnicodeDecodeError:
        wrong = "not UTF-8 text"
    except (yaml.YAMLError, RecursionError):
        wrong = "not valid YAML"
    except UsageError as e:  # what a check below refused, as it would refuse a command's value
        wrong = first_line(e)
    raise RunFileError(f"{path}: not a sweep spec ({wrong})") from None


SPEC_KEYS = ("config", "grid", "seeds")


def _spec_of(data: Any) -> Spec:
    """The spec sweep.yaml holds (`data`, as read), or a UsageError saying what is wrong."""
    if not isinstance(data, dict):
        raise UsageError(f"expected a mapping of {', '.join(SPEC_KEYS)}, got {shown(data)}")
    if missing := [key for key in SPEC_KEYS if key not in data]:
        raise UsageError(f"no {', '.join(missing)}")
    if others := [key for key in data if key not in SPEC_KEYS]:
        raise UsageError(f"unknown key {shown(others[0])}")
    config, grid, seeds = (data[key] for key in SPEC_KEYS)
    if not isinstance(config, dict):
        raise UsageError(f"config: expected a mapping of config sections, got {shown(config)}")
    config_lib.from_dict(config, "config")  # ConfigError: its first problem is the line
    if not isinstance(grid, dict):
        raise UsageError(f"grid: expected a mapping of keys to lists of values, got {shown(grid)}")
    for key, values in grid.items():
        if not isinstance(key, str):
            raise UsageError(f"grid: {shown(key)} is not a dotted key")
        config_lib.check_key(key, "grid")
        check_grid_key(key, "grid")
        if not isinstance(values, list) or not values:
            raise UsageError(
                f"grid {key}: expected a list of values (one or more), got {shown(values)}"
            )
        for value in values:
            check_grid_value(key, value, "grid")
        distinct(f"grid {key}", values, values)
    if not isinstance(seeds, list) or not seeds:
        raise UsageError(f"seeds: expected a list of seeds (one or more), got {shown(seeds)}")
    for seed in seeds:
        seed_of(seed, "seeds")
    distinct("seeds", seeds, seeds)
    check_run_count(grid, seeds)
    spec = Spec(config, grid, seeds)
    _check_run_folders(spec)
    return spec


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
