"""Where a training step's time goes: torch.profiler over real training steps, top kernels.

    python scripts/profile_train.py --config configs/default.yaml --data-dir /root/cifar10-png

Runs `--warmup` steps untimed (cuDNN autotuning, compile), then profiles `--steps` steps of the
real loop (loader, schedule, train step) and prints the operators and kernels that took the most
device time (CPU time on a CPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cifar_supercon import config as config_lib  # noqa: E402
from cifar_supercon import engine  # noqa: E402
from cifar_supercon import schedule as schedule_lib  # noqa: E402


def profile_steps(cfg: config_lib.Config, warmup: int, steps: int, rows: int) -> str:
    """The profiler's table for `steps` training steps after `warmup` untimed ones."""
    setup = engine.build(cfg)
    schedule = schedule_lib.build(cfg.schedule, cfg.train.epochs, setup.steps_per_epoch)
    scheduler = schedule_lib.Scheduler(setup.optimizer, schedule)
    batches = (b for _ in range(cfg.train.epochs) for b in setup.train_loader)

    def run(n: int) -> None:
        for _, (x, y) in zip(range(n), batches, strict=False):
            scheduler.step()
            setup.train_step(x, y)
        if setup.device.type == "cuda":
            torch.cuda.synchronize()

    run(warmup)
    activities = [ProfilerActivity.CPU]
    if setup.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        run(steps)
    key = "self_cuda_time_total" if setup.device.type == "cuda" else "self_cpu_time_total"
    header = (
        f"{steps} steps, batch {cfg.train.batch_size}, width {cfg.model.width}, "
        f"{setup.device}, {setup.dtype!s}, compiled: {setup.compiled}"
    )
    return header + "\n" + prof.key_averages().table(sort_by=key, row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    overrides = [config_lib.parse_set(s) for s in args.set]
    overrides.append(config_lib.Override("data.root", args.data_dir, "--data-dir"))
    cfg = config_lib.load(args.config, overrides)
    print(profile_steps(cfg, args.warmup, args.steps, args.rows))


if __name__ == "__main__":
    main()
