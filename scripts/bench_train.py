"""Accuracy and speed of a config over several seeds: the figures behind README's results table.

For each seed it trains with `cifar_supercon.train` (one run directory each) and collects the
summary. Data decoding and torch.compile warm-up are measured separately, before the timed runs:
the data set is loaded once (filling the cache), and with `train.compile` one short warm-up run
compiles the kernels. Prints mean/min/max test accuracy, training seconds, images/s, achieved
TFLOP/s (analytic model FLOPs: 3x the forward for a training step) and the share of runs >= 94%,
and writes a JSON log.

    python scripts/bench_train.py --config configs/default.yaml --data-dir /root/cifar10-png \\
        --seeds 0 1 2 3 4 --log docs/results/default-h100.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cifar_supercon import api  # noqa: E402
from cifar_supercon import config as config_lib  # noqa: E402
from cifar_supercon.data import load_dataset  # noqa: E402
from cifar_supercon.model import analytic_forward_flops  # noqa: E402

TARGET = 0.94


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True, help="repeatable")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default="runs/bench", help="parent of the run directories")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--log", type=Path, required=True, help="JSON log to write")
    args = parser.parse_args()

    overrides = [config_lib.parse_set(s) for s in args.set]
    base = config_lib.load(
        args.config,
        [*overrides, config_lib.Override("data.root", args.data_dir, "--data-dir")],
    )
    base = config_lib.load([], {"out": args.out}, base=base)

    start = time.perf_counter()
    load_dataset(base.data, base.seed)  # decodes (and caches) once, outside the timed runs
    data_seconds = time.perf_counter() - start

    warmup_seconds = None
    if base.train.compile:
        start = time.perf_counter()
        api.train(base, overrides={"train.epochs": 2, "schedule.peak_epoch": 1}, log=_quiet)
        warmup_seconds = time.perf_counter() - start

    results = []
    for seed in args.seeds:
        summary = api.train(base, overrides={"seed": seed}, log=_quiet)
        results.append(summary)
        print(
            f"seed {seed}: test accuracy {100 * summary['test_accuracy']:.2f}%  "
            f"train {summary['train_seconds']:.2f} s  {summary['images_per_second']:,.0f} img/s"
        )

    flops_per_image = 3 * analytic_forward_flops(base.model.width)  # forward + backward
    accuracies = [r["test_accuracy"] for r in results]
    seconds = [r["train_seconds"] for r in results]
    tflops = [flops_per_image * r["images_per_second"] / 1e12 for r in results]
    log = {
        "config": args.config,
        "overrides": args.set,
        "device": results[0]["device"],
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "python_version": platform.python_version(),
        "data_load_seconds": round(data_seconds, 2),
        "compile_warmup_seconds": round(warmup_seconds, 2) if warmup_seconds else None,
        "mean_test_accuracy": statistics.mean(accuracies),
        "min_test_accuracy": min(accuracies),
        "max_test_accuracy": max(accuracies),
        "share_at_least_94": sum(a >= TARGET for a in accuracies) / len(accuracies),
        "mean_train_seconds": statistics.mean(seconds),
        "mean_tflops": statistics.mean(tflops),
        "runs": [
            {
                "seed": r["seed"],
                "test_accuracy": r["test_accuracy"],
                "train_seconds": r["train_seconds"],
                "eval_seconds": r["eval_seconds"],
                "images_per_second": r["images_per_second"],
                "epoch_reached_90": r["epoch_reached_90"],
                "run_dir": r["run_dir"],
            }
            for r in results
        ],
    }
    print(
        f"\n{len(results)} runs on {log['device']}: test accuracy mean "
        f"{100 * log['mean_test_accuracy']:.2f}% (min {100 * log['min_test_accuracy']:.2f}%, "
        f"max {100 * log['max_test_accuracy']:.2f}%), {100 * log['share_at_least_94']:.0f}% "
        f"of runs >= 94%\ntraining {log['mean_train_seconds']:.2f} s per run, "
        f"{log['mean_tflops']:.1f} TFLOP/s achieved; data load {data_seconds:.1f} s"
        + (f", compile warm-up {warmup_seconds:.1f} s" if warmup_seconds else "")
    )
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.write_text(json.dumps(log, indent=2) + "\n")


def _quiet(_: str) -> None:
    """Runs print nothing per epoch here; their metrics stay in their run directories."""


if __name__ == "__main__":
    main()
