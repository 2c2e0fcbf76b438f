"""Accuracy and speed of a config over several seeds: the figures behind README's results table.

    python scripts/bench_train.py --config configs/default.yaml --data-dir /root/cifar10-png \\
        --seeds 0 1 2 3 4 --log docs/results/default-h100.json

The data set is decoded once (filling the cache) and one short run (one epoch) warms up the
process (CUDA context, cuDNN autotuning, the compiler's caches) before the timed runs; that run is
excluded. The seeds then run as a `supercon sweep` (one run directory each), whose summaries
split the wall time into setup, compile/warm-up, training, evaluation and checkpoints. Prints per
seed, then the median, min and max training seconds, the mean +- std test accuracy,
achieved TFLOP/s (analytic model FLOPs: 3x the forward for a training step) and the share of runs
>= 94%; writes it all to a JSON log.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import script_config  # noqa: E402

from cifar_supercon import api, executors, sweep_spec, sweeps  # noqa: E402
from cifar_supercon import config as config_lib  # noqa: E402
from cifar_supercon.data import load_dataset  # noqa: E402
from cifar_supercon.model import analytic_forward_flops  # noqa: E402

TARGET = 0.94


def bench(
    base: config_lib.Config,
    seeds: Sequence[int],
    print_line: Callable[[str], None] = print,
    deadline: float | None = None,
    warm_up_run: bool = True,
) -> dict[str, Any]:
    """Train `base` once per seed after an excluded warm-up run; returns the JSON log's dict.

    The seeds run as a sweep (`<out>/<config name>-<digest>/`: a rerun keeps the finished runs).
    `deadline` (a time.perf_counter() value): start no further seed after it, so that a caller
    with a hard time limit still gets the runs that finished. `warm_up_run=False` skips the
    warm-up run when this process has trained the same model already.
    """
    start = time.perf_counter()
    load_dataset(base.data, base.seed)  # decodes (and caches) once, outside the timed runs
    data_seconds = time.perf_counter() - start

    start = time.perf_counter()
    if warm_up_run:  # same model, data and step; one epoch at a constant lr (any policy)
        warmup = {"train.epochs": 1, "schedule.policy": "constant"}
        api.train(base, overrides={**warmup, "name": f"{base.name}-warmup"}, log=_quiet)
    warmup_run_seconds = time.perf_counter() - start

    result = sweeps.sweep(
        base,
        seeds=seeds,
        out=base.out,
        target=TARGET,
        executor=executors.Local(deadline),
        log=print_line,
    )
    results = [
        {**json.loads((run / "summary.json").read_text()), "run_dir": str(run)}
        for row in result.rows
        if row["status"] == "finished"
        for run in [result.folder / sweep_spec.RUNS_DIR / row["run"]]
    ]
    if not results:
        return {"runs": [], "data_load_seconds": round(data_seconds, 2)}
    flops_per_image = 3 * analytic_forward_flops(base.model.width)  # forward + backward
    accuracies = [r["test_accuracy"] for r in results]
    seconds = [r["train_seconds"] for r in results]
    tflops = [flops_per_image * r["images_per_second"] / 1e12 for r in results]
    return {
        "device": results[0]["device"],
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "python_version": platform.python_version(),
        "precision": results[0]["precision"],
        "compiled": results[0]["compiled"],
        "data_load_seconds": round(data_seconds, 2),
        "warmup_run_seconds": round(warmup_run_seconds, 2),
        "mean_test_accuracy": statistics.mean(accuracies),
        "std_test_accuracy": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "min_test_accuracy": min(accuracies),
        "max_test_accuracy": max(accuracies),
        "share_at_least_94": sum(a >= TARGET for a in accuracies) / len(accuracies),
        "median_train_seconds": statistics.median(seconds),
        "min_train_seconds": min(seconds),
        "max_train_seconds": max(seconds),
        "median_tflops": statistics.median(tflops),
        "runs": [
            {
                key: r[key]
                for key in (
                    "seed",
                    "test_accuracy",
                    "train_seconds",
                    "warmup_seconds",
                    "eval_seconds",
                    "wall_seconds",
                    "timeline_seconds",
                    "images_per_second",
                    "epoch_reached_90",
                    "lr_max",
                    "lr_min",
                    "run_dir",
                )
            }
            for r in results
        ],
    }


def describe(log: dict[str, Any]) -> str:
    """Two lines: accuracy over the seeds, and time."""
    if not log["runs"]:
        return "no run finished"
    n = len(log["runs"])
    return (
        f"{n} runs on {log['device']} ({log['precision']}, compiled: {log['compiled']}): test "
        f"accuracy {100 * log['mean_test_accuracy']:.2f} +- {100 * log['std_test_accuracy']:.2f}% "
        f"(min {100 * log['min_test_accuracy']:.2f}, max {100 * log['max_test_accuracy']:.2f}), "
        f"{100 * log['share_at_least_94']:.0f}% of runs >= 94%\n"
        f"training {log['median_train_seconds']:.2f} s median (min "
        f"{log['min_train_seconds']:.2f}, max {log['max_train_seconds']:.2f}), "
        f"{log['median_tflops']:.1f} TFLOP/s; data load {log['data_load_seconds']:.1f} s, "
        f"warm-up run {log['warmup_run_seconds']:.1f} s (excluded)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    script_config.add_options(parser, out="runs/bench")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--log", type=Path, required=True, help="JSON log to write")
    args = parser.parse_args()

    base = script_config.load(args)
    log = {"config": args.config, "overrides": args.set, **bench(base, args.seeds)}
    print("\n" + describe(log))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.write_text(json.dumps(log, indent=2) + "\n")


def _quiet(_: str) -> None:
    """Runs print nothing per epoch here; their metrics stay in their run directories."""


if __name__ == "__main__":
    main()
