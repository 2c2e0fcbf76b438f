"""How good is a learning-rate choice? Train a config over a grid of lr_max x lr_min x seeds, and
the LR range test's suggestions (find -> train) over the same seeds, and print mean +- std per cell.

    python scripts/lr_grid.py --config configs/cpu-smoke.yaml --data-dir data/cifar10-png \\
        --lr-max 0.2 0.4 0.8 --lr-min-div 10 100 --seeds 0 1 2 --find \\
        --results docs/results/lr-grid-cpu-smoke

Every finished run appends one row to RESULTS/runs.csv, so running the same command again skips
what is done (an interrupted grid continues). `--find` runs `find-lr` once on the config (its
own seed) and trains the suggestion of each method named (none named: the config's
finder.suggest); methods that suggest the same pair share the runs. RESULTS/summary.md holds the
per-cell table, with the hardware and versions.
"""

from __future__ import annotations

import argparse
import csv
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import script_config  # noqa: E402

from cifar_supercon import api, engine, lr_finder, suggest, sweep_results  # noqa: E402
from cifar_supercon import config as config_lib  # noqa: E402

TARGET = 0.90  # the assignment's: the share of runs that reached it is one column
COLUMNS = ("cell", "lr_max", "lr_min", "weight_decay", "seed", "test_accuracy", "train_seconds")


@dataclass(frozen=True)
class Cell:
    name: str  # "grid" or "find:<method>[,<method>...]"
    lr_max: float
    lr_min: float
    weight_decay: float

    @property
    def key(self) -> tuple[float, float, float]:
        return (self.lr_max, self.lr_min, self.weight_decay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    script_config.add_options(parser, out="runs/lr-grid")
    parser.add_argument("--lr-max", type=float, nargs="*", default=[])
    parser.add_argument(
        "--lr-min-div", type=float, nargs="*", default=[10.0], help="lr_min = lr_max / each"
    )
    parser.add_argument(
        "--find",
        nargs="*",
        choices=lr_finder.METHODS,
        default=None,
        help="also train the range test's suggestions: those of the methods named, or with no "
        "name the config's finder.suggest",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--results", type=Path, required=True, help="runs.csv, summary.md")
    args = parser.parse_args()

    base = script_config.load(args)
    wd = base.optim.weight_decay
    cells = [
        Cell("grid", lr_max, suggest.round_lr(lr_max / div), wd)
        for lr_max in args.lr_max
        for div in args.lr_min_div
    ]
    if args.find is not None:
        args.results.mkdir(parents=True, exist_ok=True)
        cells += _finder_cells(base, args.find or [base.finder.suggest], args.results)

    args.results.mkdir(parents=True, exist_ok=True)
    log_path = args.results / "runs.csv"
    done = _read_rows(log_path)
    for seed in args.seeds:  # seed-major: a partial grid still covers every cell
        for cell in cells:
            if any(_same_run(row, cell, seed) for row in done):
                continue
            changes = {
                "seed": seed,
                "schedule.lr_max": cell.lr_max,
                "schedule.lr_min": cell.lr_min,
                "optim.weight_decay": cell.weight_decay,
            }
            summary = api.train(base, overrides=changes, log=lambda _: None)
            row = {
                "cell": cell.name,
                "lr_max": cell.lr_max,
                "lr_min": cell.lr_min,
                "weight_decay": cell.weight_decay,
                "seed": seed,
                "test_accuracy": summary["test_accuracy"],
                "train_seconds": summary["train_seconds"],
            }
            _append_row(log_path, row)
            done.append({k: str(v) for k, v in row.items()})
            print(
                f"{cell.name:<24} lr_max {cell.lr_max:<7g} lr_min {cell.lr_min:<8g} "
                f"wd {cell.weight_decay:<7g} seed {seed}: "
                f"{100 * summary['test_accuracy']:.2f}%  ({summary['train_seconds']:.0f} s)",
                flush=True,
            )
    table = _summary_table(done)
    print(table)
    engine.set_cpu_threads(base.train.cpu_threads)  # the runs' threads, for the hardware line
    commands = args.results / "commands.txt"  # every invocation that added rows, in order
    with open(commands, "a") as f:
        f.write(f"python {' '.join(sys.argv)}\n")
    header = (
        f"# LR grid: {' '.join(args.config)} {' '.join(args.set)}\n\n"
        f"Hardware: {engine.device_name(engine.resolve_device(base.train.device))}; "
        f"torch {torch.__version__}, Python {platform.python_version()}.\n"
        f"Re-run: the commands in commands.txt (each skips the runs already in runs.csv).\n\n"
    )
    (args.results / "summary.md").write_text(header + table + "\n")


def _finder_cells(base: config_lib.Config, methods: list[str], results: Path) -> list[Cell]:
    """One range test on the base config; each distinct suggested (lr_max, lr_min, wd) once."""
    found = api.find_lr(base, log=lambda _: None)
    by_pair: dict[tuple[float, float, float], list[str]] = {}
    for method in methods:
        choice = found.report.choices[method]
        if choice is None:
            print(f"find:{method}: no suggestion from this curve")
            continue
        index, suggestion = choice
        wd = found.report.curves[index].weight_decay
        by_pair.setdefault((suggestion.lr_max, suggestion.lr_min, wd), []).append(method)
    kept = results / "finder"  # the range test behind the find cells: curve, plot, suggestion
    kept.mkdir(parents=True, exist_ok=True)
    for name in ("lr_finder.csv", "lr_finder.png", "suggested.yaml", "config.yaml"):
        shutil.copy(found.run_dir / name, kept / name)
    return [Cell("find:" + ",".join(names), *pair) for pair, names in by_pair.items()]


def _same_run(row: dict[str, str], cell: Cell, seed: int) -> bool:
    return (
        float(row["lr_max"]),
        float(row["lr_min"]),
        float(row["weight_decay"]),
        int(row["seed"]),
    ) == (*cell.key, seed) and row["cell"] == cell.name


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _append_row(path: Path, row: dict[str, object]) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(row)


def _summary_table(rows: list[dict[str, str]]) -> str:
    """Markdown: one line per cell, best mean first (the statistics `supercon sweep` reports)."""
    keys = ("cell", "lr_max", "lr_min", "weight_decay")
    finished = [{**row, "status": "finished"} for row in rows]  # runs.csv holds finished runs only
    stats = sorted(
        sweep_results.cell_statistics(finished, keys, TARGET), key=lambda s: -(s.mean or 0.0)
    )
    header = sweep_results.table_header(keys, TARGET, short=True)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in sweep_results.table_rows(stats, TARGET)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
