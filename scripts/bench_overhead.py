"""Training-loop overhead: an epoch of the real loop vs. the same steps on one pre-made batch.

The real loop (`train._train_epoch`) draws each batch from the device-resident loader (permutation,
crop, flip, Cutout, normalisation), applies the schedule and sums the metrics on the device. The
reference runs the same number of forward/backward/step iterations, with the same batch sizes,
on a batch made once beforehand. Their ratio is what the input pipeline and the loop cost on top of
the model. Target: <= 1.05 on 2 CPU cores with the cpu-smoke model.

    python scripts/bench_overhead.py --data-dir data/cifar10-png [--rounds 3] [--log PATH]
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

from cifar_supercon import config as config_lib  # noqa: E402
from cifar_supercon import engine  # noqa: E402
from cifar_supercon import schedule as schedule_lib  # noqa: E402
from cifar_supercon.train import EpochSums, StopSignal, _train_epoch  # noqa: E402


def real_epoch(setup: engine.Setup, scheduler: schedule_lib.Scheduler) -> float:
    start = time.perf_counter()
    _train_epoch(setup, scheduler, EpochSums(), 1, StopSignal(), progress=False)
    return time.perf_counter() - start


def fixed_batch_epoch(
    setup: engine.Setup, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> float:
    start = time.perf_counter()
    for x, y in batches:
        setup.train_step(x, y)
    if setup.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data/cifar10-png")
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-smoke.yaml"))
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurements of each")
    parser.add_argument("--log", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    cfg = config_lib.load([args.config], {"data.root": args.data_dir})
    setup = engine.build(cfg)
    steps = setup.steps_per_epoch
    schedule = schedule_lib.build(cfg.schedule, cfg.train.epochs, steps)
    scheduler = schedule_lib.Scheduler(setup.optimizer, schedule)
    # The reference batches: one real batch, cut to the sizes the loader serves in an epoch.
    fresh = setup.train_loader.state_dict()
    x, y = next(iter(setup.train_loader))
    setup.train_loader.load_state_dict(fresh)  # the real loop starts from a whole epoch
    batch = cfg.train.batch_size
    last = batch if cfg.data.drop_last else len(setup.dataset.train) - batch * (steps - 1)
    sizes = [batch] * (steps - 1) + [last]
    batches = [(x[:n], y[:n]) for n in sizes]

    fixed_batch_epoch(setup, batches[:5])  # warm-up: allocator, kernels
    real, fixed = [], []
    for _ in range(args.rounds):  # alternate, so that drift in machine speed hits both alike
        scheduler.steps_done = 0
        real.append(real_epoch(setup, scheduler))
        fixed.append(fixed_batch_epoch(setup, batches))
    ratio = statistics.median(real) / statistics.median(fixed)
    figures = {
        "config": args.config,
        "steps_per_epoch": steps,
        "batch_size": cfg.train.batch_size,
        "width": cfg.model.width,
        "real_loop_seconds": [round(t, 3) for t in real],
        "fixed_batch_seconds": [round(t, 3) for t in fixed],
        "ratio_of_medians": round(ratio, 4),
        "target": 1.05,
        "device": str(setup.device),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }
    print(f"{steps} steps of {batch} images, width {cfg.model.width}, {figures['cpu']}")
    print(f"real loop epoch (s):      {', '.join(f'{t:.2f}' for t in real)}")
    print(f"fixed-batch epoch (s):    {', '.join(f'{t:.2f}' for t in fixed)}")
    print(f"ratio (medians): {ratio:.4f}  (target <= 1.05)")
    if args.log:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        args.log.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
