"""The GPU checks in one entry point, in phases that each fit one 10-minute command.

    python scripts/gpu_run.py --phases smoke,default --data /root/cifar10-png --results $OUT

Phases (run in the order given):
  smoke     one epoch of configs/default.yaml with torch.compile: does the CUDA path work,
            how long do compilation and an epoch take
  default   configs/default.yaml, 5 seeds: mean accuracy, median training seconds
  lrmin     the cycle's end compared at full scale: lr_min = lr_max/10, lr_max/100, and the
            LR range test's own (find-lr, then train its suggestion), 3 seeds each
  speedrun  configs/speedrun.yaml, 5 seeds
  profile   where a training step's time goes (torch.profiler, top kernels)
  superconvergence  1cycle against step decay at 24 epochs, and step decay at 48 (3 seeds each)

Everything a phase produces (console lines, each run's summary.json, metrics.csv and config.yaml,
the benchmark JSON logs, the profile, the hardware and versions) goes into ONE tarball,
RESULTS/gpu-results.tar.gz, rewritten after every phase so that a command killed at its time limit
still leaves the phases that finished; RESULTS/gpu-summary.txt holds one line per phase, which is
also printed. `--budget-seconds` stops starting new runs in time to write them.

`--tiny` runs the same phases at a toy scale on the CPU (width 4, a few steps, no compile): CI
runs it on a synthetic image folder and checks the tarball.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS.parent))
sys.path.insert(0, str(SCRIPTS))

import bench_train  # noqa: E402
import profile_train  # noqa: E402

from cifar_supercon import api, comparison, executors, sweep_results, sweeps  # noqa: E402
from cifar_supercon import config as config_lib  # noqa: E402
from cifar_supercon.suggest import round_lr  # noqa: E402

CONFIGS = SCRIPTS.parent / "configs"
TARBALL = "gpu-results.tar.gz"
SUMMARY = "gpu-summary.txt"
RUN_FILES = ("summary.json", "metrics.csv", "config.yaml")
# A toy scale for --tiny: every phase in seconds on a CPU, on any small image folder.
TINY = {
    "model.width": 4,
    "train.batch_size": 16,
    "train.eval_batch_size": 32,
    "train.epochs": 2,
    "schedule.peak_epoch": 1,
    "train.device": "cpu",
    "train.compile": False,
    "finder.num_iters": 40,  # fewer: a toy curve that falls less than its noise reads nothing
}


class Phases:
    """Runs phases into a scratch folder; packs it into the results folder after each."""

    def __init__(self, data: Path, results: Path, tiny: bool, deadline: float) -> None:
        self.data, self.results, self.tiny, self.deadline = data, results, tiny, deadline
        self.scratch = Path("/tmp/supercon-gpu") if not tiny else results / ".scratch"
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.packed = self.scratch / "packed"
        self.packed.mkdir(parents=True)
        self.lines: list[str] = []
        self.warm = False  # has this process run a benchmark's warm-up run yet
        (self.packed / "hardware.txt").write_text(hardware())

    def config(self, name: str, **overrides: Any) -> config_lib.Config:
        changes = {"data.root": str(self.data), "out": str(self.scratch / "runs")}
        changes |= TINY if self.tiny else {}
        return config_lib.load([CONFIGS / name], {**changes, **overrides})

    def record(self, phase: str, line: str) -> None:
        text = f"{phase}: {line}"
        print(text, flush=True)
        self.lines.append(text)
        (self.results / SUMMARY).write_text("\n".join(self.lines) + "\n")
        self.pack()

    def keep_run(self, phase: str, summary: dict[str, Any]) -> None:
        run = Path(summary["run_dir"])
        for name in RUN_FILES:
            if (run / name).is_file():
                target = self.packed / phase / run.name / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(run / name, target)

    def keep_text(self, phase: str, name: str, text: str) -> None:
        target = self.packed / phase / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def pack(self) -> None:
        """The tarball, written to a temporary name and renamed: never half a file."""
        partial = self.results / f".{TARBALL}.partial"
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(self.packed, arcname="gpu-results")
        partial.replace(self.results / TARBALL)

    def out_of_time(self) -> bool:
        return time.perf_counter() > self.deadline

    # ------------------------------------------------------------------ phases

    def smoke(self) -> str:
        cfg = self.config("default.yaml", **{"train.epochs": 1, "schedule.peak_epoch": 0.5})
        if not self.tiny:
            cfg = config_lib.load([], {"train.compile": True}, base=cfg)
        summary = api.train(cfg, log=lambda _: None)
        self.keep_run("smoke", summary)
        return (
            f"1 epoch, compiled: {summary['compiled']}, warm-up {summary['warmup_seconds']:.1f} s, "
            f"train {summary['train_seconds']:.2f} s, test accuracy "
            f"{100 * summary['test_accuracy']:.2f}% on {summary['device']}"
        )

    def _bench(self, phase: str, cfg: config_lib.Config, seeds: list[int]) -> dict[str, Any]:
        console = io.StringIO()

        def line(text: str) -> None:
            print(f"  {phase}: {text}", flush=True)
            console.write(text + "\n")

        log = bench_train.bench(cfg, seeds, line, self.deadline, warm_up_run=not self.warm)
        self.warm = True
        for run in log["runs"]:
            self.keep_run(phase, {"run_dir": run["run_dir"]})
        self.keep_text(phase, "console.txt", console.getvalue() + bench_train.describe(log) + "\n")
        self.keep_text(phase, "bench.json", json.dumps(log, indent=2) + "\n")
        return log

    def default(self) -> str:
        log = self._bench("default", self.config("default.yaml"), self.seeds(5))
        return bench_train.describe(log).replace("\n", "; ")

    def speedrun(self) -> str:
        log = self._bench("speedrun", self.config("speedrun.yaml"), self.seeds(5))
        return bench_train.describe(log).replace("\n", "; ")

    def lrmin(self) -> str:
        base = self.config("default.yaml")
        found = api.find_lr(base, log=lambda _: None)
        self.keep_text("lrmin", "lr_finder.csv", (found.run_dir / "lr_finder.csv").read_text())
        self.keep_text("lrmin", "suggested.yaml", (found.run_dir / "suggested.yaml").read_text())
        lr_max = base.schedule.lr_max
        assert isinstance(lr_max, float)
        variants = {
            f"lr_max/10 ({lr_max:g}, {lr_max / 10:.3g})": (lr_max, lr_max / 10),
            f"lr_max/100 ({lr_max:g}, {lr_max / 100:.3g})": (lr_max, lr_max / 100),
            f"find-lr ({found.report.lr_max:g}, {found.report.lr_min:g})": (
                found.report.lr_max,
                found.report.lr_min,
            ),
        }
        parts = []
        for label, (top, bottom) in variants.items():
            if self.out_of_time():
                parts.append(f"{label}: skipped, out of time")
                continue
            cfg = config_lib.load(
                [], {"schedule.lr_max": top, "schedule.lr_min": round_lr(bottom)}, base=base
            )
            log = self._bench(f"lrmin/{label.split(' ')[0].replace('/', '-')}", cfg, self.seeds(3))
            if log["runs"]:
                parts.append(
                    f"{label}: {100 * log['mean_test_accuracy']:.2f} +- "
                    f"{100 * log['std_test_accuracy']:.2f}% (n={len(log['runs'])})"
                )
        return "; ".join(parts)

    def superconvergence(self) -> str:
        """1cycle against step decay (configs/baseline-step.yaml) at the same epochs, and step
        decay at twice the epochs; 3 seeds each, as sweeps; one compare PNG."""
        epochs = self.config("default.yaml").train.epochs
        variants = {
            f"1cycle-{epochs}ep": ([], epochs),
            f"step-{epochs}ep": (["baseline-step.yaml"], epochs),
            f"step-{2 * epochs}ep": (["baseline-step.yaml"], 2 * epochs),
        }
        folders, parts = [], []
        for label, (extra, budget) in variants.items():
            if self.out_of_time():
                parts.append(f"{label}: skipped, out of time")
                continue
            cfg = self.config("default.yaml", **{"train.epochs": budget})
            if extra:  # the step baseline's milestones at 50% and 75% of its budget
                step = {"schedule.milestones": [budget / 2, budget * 3 / 4]}
                cfg = config_lib.load([CONFIGS / name for name in extra], step, base=cfg)
            result = sweeps.sweep(
                cfg,
                seeds=self.seeds(3),
                out=self.scratch / "sweeps",
                name=label,
                target=0.94,
                executor=executors.Local(self.deadline),
                log=lambda line, label=label: print(f"  superconvergence/{label}: {line}"),
            )
            for name in (sweep_results.RESULTS_FILE, sweep_results.SUMMARY_FILE):
                self.keep_text(
                    f"superconvergence/{label}", name, (result.folder / name).read_text()
                )
            (cell,) = result.stats
            if cell.mean is not None:
                folders.append(result.folder)
                spread = f" +- {100 * cell.std:.2f}" if cell.std is not None else ""
                parts.append(f"{label}: {100 * cell.mean:.2f}{spread}% (n={cell.runs})")
        if folders:
            png = self.packed / "superconvergence" / "compare.png"
            comparison.compare(folders, png=png)
        return "; ".join(parts)

    def profile(self) -> str:
        cfg = self.config("default.yaml")
        steps = (2, 3) if self.tiny else (30, 20)
        table = profile_train.profile_steps(cfg, *steps, rows=30)
        self.keep_text("profile", "profile.txt", table)
        return table.splitlines()[0]

    def seeds(self, n: int) -> list[int]:
        return list(range(2 if self.tiny else n))


def hardware() -> str:
    """GPU, driver, versions: what every figure in the tarball was measured on."""
    lines = [
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}",
        f"platform: {platform.platform()}",
    ]
    if torch.cuda.is_available():
        lines.append(f"gpu: {torch.cuda.get_device_name()}")
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False)
        lines.append(result.stdout)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phases", required=True, help="comma-separated, e.g. smoke,default")
    parser.add_argument("--data", type=Path, required=True, help="CIFAR-10 (either layout)")
    parser.add_argument("--results", type=Path, required=True, help="the folder that comes back")
    parser.add_argument("--budget-seconds", type=float, default=540.0)
    parser.add_argument("--tiny", action="store_true", help="toy scale on the CPU (CI)")
    args = parser.parse_args()

    started = time.perf_counter()
    phases = Phases(args.data, args.results, args.tiny, started + args.budget_seconds)
    available: dict[str, Callable[[], str]] = {
        "smoke": phases.smoke,
        "default": phases.default,
        "lrmin": phases.lrmin,
        "speedrun": phases.speedrun,
        "profile": phases.profile,
        "superconvergence": phases.superconvergence,
    }
    wanted = [p.strip() for p in args.phases.split(",") if p.strip()]
    if unknown := [p for p in wanted if p not in available]:
        sys.exit(f"unknown phase(s) {unknown}; choose from {', '.join(available)}")
    args.results.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        if phases.out_of_time():
            phases.record(name, "skipped, out of time")
            continue
        start = time.perf_counter()
        try:
            line = available[name]()
        except Exception as e:  # one phase failing must not lose the others
            detail = (str(e).strip().splitlines() or [""])[0][:300]
            line = f"FAILED: {type(e).__name__}: {detail}"
        phases.record(name, f"{line} [{time.perf_counter() - start:.0f} s]")
    phases.pack()
    if args.tiny:
        shutil.rmtree(phases.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
