"""What the GPU path decides, tested on the CPU: fused SGD, precision, the deterministic loss,
compile with warm-up outside the clock (and its eager fallback), the checkpoint cadence, and the
GPU script's tiny mode."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, tiny_config
from test_train import comparable, stopped_run

from cifar_supercon import api, engine, runs
from cifar_supercon import config as config_lib
from cifar_supercon.model import ResNet9


def one_sgd_step(**kwargs: object) -> list[torch.Tensor]:
    """One Nesterov step with weight decay and a warm momentum buffer, on a fixed problem."""
    torch.manual_seed(0)
    model = ResNet9(width=4)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4, **kwargs
    )
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def test_fused_and_foreach_sgd_equal_the_plain_loop() -> None:
    plain = one_sgd_step(foreach=False)
    for variant in ({"foreach": True}, {"fused": True}):
        for a, b in zip(one_sgd_step(**variant), plain, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_optimizer_is_multi_tensor_on_the_cpu(image_folder: Path, tmp_path: Path) -> None:
    cfg = tiny_config(image_folder, tmp_path)
    optimizer = engine.build_optimizer(engine.build_model(cfg, torch.device("cpu"), 10), cfg)
    assert optimizer.defaults["foreach"] is True and not optimizer.defaults["fused"]


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_bf16_only_where_it_is_native(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: torch.dtype
) -> None:
    asked = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return native or including_emulation  # emulated bf16 is "supported" on every GPU

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert engine.resolve_precision("auto", torch.device("cuda")) == expected
    assert asked == [False]
    assert engine.resolve_precision("auto", torch.device("cpu")) == torch.float32
    assert engine.resolve_precision("bf16", torch.device("cuda")) == torch.bfloat16


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_soft_cross_entropy_equals_torch_in_value_and_gradient(smoothing: float) -> None:
    logits = torch.randn(16, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 10
    ours, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss = engine.soft_cross_entropy(ours, y, smoothing)
    reference = F.cross_entropy(theirs, y, label_smoothing=smoothing)
    loss.backward()
    reference.backward()
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(ours.grad, theirs.grad)


def test_deterministic_mode_skips_the_memory_fills() -> None:
    try:
        engine.set_determinism(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False  # type: ignore[attr-defined]
    finally:
        engine.set_determinism(0, deterministic=False)


@pytest.fixture(scope="module")
def eager(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cfg = tiny_config(image_folder, tmp_path_factory.mktemp("eager"), train={"epochs": 2})
    summary = api.train(cfg, log=lambda _: None)
    return {"cfg": cfg, "summary": summary, "rows": runs.read_metrics(Path(summary["run_dir"]))}


def test_warm_up_leaves_training_exactly_as_without_it(
    eager: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in compiler that returns the model itself: the warm-up then runs real steps and
    # an evaluation, and must put everything back so that the run equals the eager one.
    monkeypatch.setattr(torch, "compile", lambda model, **_: model)
    cfg = config_lib.load([], {"out": str(tmp_path), "train.compile": True}, base=eager["cfg"])
    summary = api.train(cfg, log=lambda _: None)
    assert summary["compiled"] is True and summary["warmup_seconds"] > 0
    assert comparable(runs.read_metrics(Path(summary["run_dir"]))) == comparable(eager["rows"])


class Broken(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("inductor: no working C compiler\nsecond line")


def test_a_failing_compile_warns_once_and_trains_eager(
    eager: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch, "compile", lambda model, **_: Broken())
    cfg = config_lib.load([], {"out": str(tmp_path), "train.compile": True}, base=eager["cfg"])
    lines: list[str] = []
    summary = api.train(cfg, log=lines.append)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        "warning: torch.compile failed (RuntimeError: inductor: no working C compiler); "
        "running eager"
    ]
    assert summary["compiled"] is False
    assert comparable(runs.read_metrics(Path(summary["run_dir"]))) == comparable(eager["rows"])


def test_compile_on_the_cpu_for_real(
    eager: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inductor on the CPU, one epoch: compiled, and every graph compiles in the warm-up, none
    while the training clock runs."""
    graphs = torch._dynamo.utils.counters["stats"]
    after_warm_up = []

    def warm_up(setup: engine.Setup, log: Callable[[str], None]) -> float:
        seconds = original(setup, log)
        after_warm_up.append(graphs["unique_graphs"])
        return seconds

    original = engine.warm_up
    monkeypatch.setattr(engine, "warm_up", warm_up)
    cfg = config_lib.load(
        [],
        {
            "out": str(tmp_path),
            "train.compile": True,
            "train.epochs": 1,
            "schedule.peak_epoch": 0.5,
            "data.drop_last": True,  # the default: one training shape (a short batch recompiles)
        },
        base=eager["cfg"],
    )
    summary = api.train(cfg, log=lambda _: None)
    assert summary["compiled"] is True
    assert after_warm_up[0] >= 1
    assert graphs["unique_graphs"] == after_warm_up[0]  # no compile inside training or eval
    assert summary["test_accuracy"] > 1 / 3
    timeline = summary["timeline_seconds"]
    assert set(timeline) == {
        "setup",
        "lr_finder",
        "warm_up",
        "train",
        "eval",
        "checkpoint",
        "other",
    }
    assert timeline["warm_up"] == summary["warmup_seconds"]
    assert sum(timeline.values()) == pytest.approx(summary["wall_seconds"], abs=0.01)


def test_compile_is_off_on_the_cpu_by_default(eager: dict) -> None:
    assert eager["cfg"].train.compile == "auto" and eager["summary"]["compiled"] is False
    assert eager["summary"]["warmup_seconds"] == 0


def count_saves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    saved: list[str] = []
    original = runs.save_checkpoint

    def save(path: Path, payload: dict) -> None:
        saved.append(path.name)
        original(path, payload)

    monkeypatch.setattr(runs, "save_checkpoint", save)
    return saved


def test_checkpoints_follow_the_clock(
    eager: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = count_saves(monkeypatch)
    every = config_lib.load([], {"out": str(tmp_path), "train.epochs": 4}, base=eager["cfg"])
    api.train(every, log=lambda _: None)  # checkpoint_seconds: 0
    assert saved.count("last.pt") == 4  # after each epoch
    saved.clear()
    rare = config_lib.load([], {"train.checkpoint_seconds": 3600}, base=every)
    summary = api.train(rare, log=lambda _: None)
    # After the first epoch (the run's first checkpoint) and at the end; best.pt from memory.
    assert saved.count("last.pt") == 2 and saved[:2] == ["best.pt", "last.pt"]  # best first
    best = runs.load_checkpoint(Path(summary["run_dir"]) / "checkpoints" / "best.pt")
    rows = runs.read_metrics(Path(summary["run_dir"]))
    best_epoch = max(rows, key=lambda r: float(r["test_acc"]))["epoch"]
    assert best["progress"]["epochs_done"] == int(best_epoch)


def test_a_signal_saves_at_once_whatever_the_cadence(eager: dict, tmp_path: Path) -> None:
    cfg = config_lib.load(
        [], {"out": str(tmp_path), "train.checkpoint_seconds": 3600}, base=eager["cfg"]
    )
    run = stopped_run(cfg, 7, signal.SIGTERM)  # mid-epoch 2
    assert runs.load_checkpoint(run / "checkpoints" / "last.pt")["scheduler"]["steps_done"] == 7
    summary = api.train(resume=run, log=lambda _: None)
    assert comparable(runs.read_metrics(run)) == comparable(eager["rows"])
    assert summary["test_accuracy"] == eager["summary"]["test_accuracy"]


def test_training_drops_the_short_last_batch_by_default() -> None:
    cfg = config_lib.load([REPO / "configs" / "default.yaml"])
    assert cfg.data.drop_last is True
    _, _, per_epoch = api.schedule_steps(cfg)
    assert per_epoch == 50_000 // 512 == 97


def test_the_gpu_script_tiny_mode_writes_one_tarball(image_folder: Path, tmp_path: Path) -> None:
    results = tmp_path / "out"
    phases = "smoke,default,lrmin,speedrun,profile,superconvergence"
    command = [sys.executable, str(REPO / "scripts" / "gpu_run.py"), "--phases", phases]
    command += ["--data", str(image_folder), "--results", str(results), "--tiny"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in results.iterdir()) == ["gpu-results.tar.gz", "gpu-summary.txt"]
    lines = (results / "gpu-summary.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == phases.split(",")
    assert not [line for line in lines if "FAILED" in line or "skipped" in line]
    with tarfile.open(results / "gpu-results.tar.gz") as tar:
        names = set(tar.getnames())
        bench = json.load(tar.extractfile("gpu-results/default/bench.json"))  # type: ignore[arg-type]
    assert "gpu-results/hardware.txt" in names and "gpu-results/profile/profile.txt" in names
    assert "gpu-results/superconvergence/compare.png" in names
    for variant in ("1cycle-2ep", "step-2ep", "step-4ep"):
        assert f"gpu-results/superconvergence/{variant}/results.csv" in names, variant
    for phase in ("default", "speedrun", "lrmin/lr_max-10", "lrmin/lr_max-100", "lrmin/find-lr"):
        assert f"gpu-results/{phase}/bench.json" in names, phase
    assert [run["seed"] for run in bench["runs"]] == [0, 1]
    seconds = [run["train_seconds"] for run in bench["runs"]]
    assert bench["median_train_seconds"] == statistics.median(seconds)
    assert (bench["min_train_seconds"], bench["max_train_seconds"]) == (min(seconds), max(seconds))
    summaries = [
        n for n in names if n.startswith("gpu-results/smoke/") and n.endswith("summary.json")
    ]
    assert len(summaries) == 1
