"""Training-loop overhead: an epoch of the real loop vs. the same steps on one pre-made batch.

The real loop (`train._train_epoch`) draws each batch from the device-resident loader (permutation,
crop, flip, Cutout, normalisation), applies the schedule and sums the metrics on the device. The
reference is the same number of forward/backward/step iterations, with the same batch sizes, on a
batch made once beforehand, interleaved step by step with the real ones. The ratio of their times is
what the input pipeline and the loop cost on top of the model. Target: <= 1.05 on 2 CPU cores with
the cpu-smoke model.

    python scripts/bench_overhead.py --data-dir data/cifar10-png [--rounds 3] [--log PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cifar_supercon import config as config_lib  # noqa: E402
from cifar_supercon import engine  # noqa: E402
from cifar_supercon import schedule as schedule_lib  # noqa: E402
from cifar_supercon.training import EpochSums, StopSignal, _train_epoch  # noqa: E402


class Interleaved:
    """Wraps the train step: after each real step, one timed step on the pre-made batch.

    Interleaving step by step means that the machine's speed, which drifts on a shared host,
    is the same for both; the real loop's time is the epoch's minus the interleaved steps'.
    """

    def __init__(self, setup: engine.Setup, x: torch.Tensor, y: torch.Tensor) -> None:
        self.real_step, self.x, self.y = setup.train_step, x, y
        self.cuda = setup.device.type == "cuda"
        self.fixed_seconds = 0.0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        result = self.real_step(x, y)
        self._sync()
        start = time.perf_counter()
        n = len(y)  # the same batch size as the real step
        self.real_step(self.x[:n], self.y[:n])
        self._sync()
        self.fixed_seconds += time.perf_counter() - start
        return result

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


def one_epoch(setup: engine.Setup, scheduler: schedule_lib.Scheduler) -> tuple[float, float]:
    """(real loop seconds, fixed-batch seconds) of one epoch, measured step by step."""
    interleaved = Interleaved(setup, *premade_batch(setup))
    setup.train_step, real_step = interleaved, setup.train_step  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        _train_epoch(setup, scheduler, EpochSums(), 1, StopSignal(), progress=False)
        total = time.perf_counter() - start
    finally:
        setup.train_step = real_step
    return total - interleaved.fixed_seconds, interleaved.fixed_seconds


def premade_batch(setup: engine.Setup) -> tuple[torch.Tensor, torch.Tensor]:
    """One real batch, made before timing; the loader is put back to where it was."""
    state = setup.train_loader.state_dict()
    x, y = next(iter(setup.train_loader))
    setup.train_loader.load_state_dict(state)
    return x.clone(), y.clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data/cifar10-png")
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-smoke.yaml"))
    parser.add_argument("--rounds", type=int, default=2, help="epochs measured")
    parser.add_argument("--log", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    cfg = config_lib.load([args.config], {"data.root": args.data_dir})
    setup = engine.build(cfg)
    steps = setup.steps_per_epoch
    schedule = schedule_lib.build(cfg.schedule, cfg.train.epochs, steps)
    scheduler = schedule_lib.Scheduler(setup.optimizer, schedule)
    one_epoch(setup, scheduler)  # warm-up: allocator, kernels, caches
    real, fixed = [], []
    for _ in range(args.rounds):
        scheduler.steps_done = 0
        real_seconds, fixed_seconds = one_epoch(setup, scheduler)
        real.append(real_seconds)
        fixed.append(fixed_seconds)
    ratio = sum(real) / sum(fixed)
    figures = {
        "config": args.config,
        "steps_per_epoch": steps,
        "batch_size": cfg.train.batch_size,
        "width": cfg.model.width,
        "real_loop_seconds": [round(t, 3) for t in real],
        "fixed_batch_seconds": [round(t, 3) for t in fixed],
        "ratio": round(ratio, 4),
        "target": 1.05,
        "device": str(setup.device),
        "cpu": engine.cpu_model(),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }
    batch = cfg.train.batch_size
    print(f"{steps} steps of {batch} images, width {cfg.model.width}, {figures['cpu']}")
    print(f"real loop epoch (s):      {', '.join(f'{t:.2f}' for t in real)}")
    print(f"fixed-batch epoch (s):    {', '.join(f'{t:.2f}' for t in fixed)}")
    print(f"ratio (sums, interleaved step by step): {ratio:.4f}  (target <= 1.05)")
    if args.log:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        args.log.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
