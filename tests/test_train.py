"""Training end to end on CPU with a tiny ResNet-9 and synthetic data."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import tiny_config, write_image_folder

from cifar_supercon import api, engine, plots, runs
from cifar_supercon import config as config_lib
from cifar_supercon import progress as progress_lib
from cifar_supercon import report as report_lib
from cifar_supercon import schedule as schedule_lib
from cifar_supercon.errors import Interrupted, TrainingDiverged, UsageError
from cifar_supercon.training import StopSignal, fit

TIMING = "epoch_seconds"


def comparable(rows: list[dict]) -> list[dict]:
    """Metrics rows without the wall-clock column."""
    return [{k: v for k, v in row.items() if k != TIMING} for row in rows]


def new_run(cfg: config_lib.Config) -> Path:
    run = runs.create(cfg.out, cfg.name)
    runs.start(run, cfg)
    return run


@pytest.fixture(scope="module")
def reference(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One uninterrupted deterministic run that several tests compare against."""
    cfg = tiny_config(image_folder, tmp_path_factory.mktemp("runs"))
    summary = api.train(cfg, log=lambda _: None)
    run = Path(summary["run_dir"])
    return {"cfg": cfg, "run": run, "summary": summary, "rows": runs.read_metrics(run)}


def test_loss_falls_and_accuracy_beats_chance(reference: dict) -> None:
    rows = reference["rows"]
    assert len(rows) == 3
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert reference["summary"]["test_accuracy"] > 1 / 3 + 0.2  # three classes


def test_run_directory_contents(reference: dict) -> None:
    run, summary = reference["run"], reference["summary"]
    assert (run / "config.yaml").is_file()
    assert runs.read_config(run) == config_lib.load([], base=reference["cfg"])
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert header == "epoch,lr,train_loss,train_acc,test_loss,test_acc,epoch_seconds"
    for name in ("last.pt", "best.pt"):
        assert (run / "checkpoints" / name).is_file()
    for name in ("schedule.png", "training.png", "confusion_matrix.png"):
        assert (run / "plots" / name).read_bytes().startswith(b"\x89PNG")
    saved = json.loads((run / "summary.json").read_text())
    for key in (
        "test_accuracy",
        "best_test_accuracy",
        "epochs",
        "train_seconds",
        "wall_seconds",
        "images_per_second",
        "device",
        "torch_version",
        "seed",
        "parameters",
        "epoch_reached_90",
    ):
        assert key in saved, key
    assert 0 <= saved["test_accuracy"] <= 1
    assert saved["test_accuracy"] == float(reference["rows"][-1]["test_acc"])
    assert saved["best_test_accuracy"] == max(float(r["test_acc"]) for r in reference["rows"])
    assert saved["parameters"] == sum(
        p.numel() for p in engine.build_model(reference["cfg"], torch.device("cpu"), 3).parameters()
    )
    assert summary["run_dir"] == str(run)
    report = (run / "report.md").read_text()
    assert f"{100 * saved['test_accuracy']:.2f}%" in report
    assert "plots/schedule.png" in report and "plots/training.png" in report


def test_lr_column_follows_the_schedule(reference: dict) -> None:
    cfg, rows = reference["cfg"], reference["rows"]
    steps = len(engine.build(cfg).train_loader)
    schedule = schedule_lib.build(cfg.schedule, cfg.train.epochs, steps)
    for row in rows:
        assert float(row["lr"]) == schedule(int(row["epoch"]) * steps - 1).lr
    assert float(rows[-1]["lr"]) == pytest.approx(cfg.schedule.lr_min)


def test_deterministic_runs_are_identical(reference: dict, tmp_path: Path) -> None:
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=reference["cfg"])
    run = new_run(cfg)
    fit(cfg, run)
    assert comparable(runs.read_metrics(run)) == comparable(reference["rows"])


def test_another_seed_gives_another_run(reference: dict, tmp_path: Path) -> None:
    cfg = config_lib.load([], {"out": str(tmp_path), "seed": 1}, base=reference["cfg"])
    run = new_run(cfg)
    fit(cfg, run)
    assert comparable(runs.read_metrics(run)) != comparable(reference["rows"])


class SignalOnStep:
    """Sends this process a real signal during a chosen training step (fault injection)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, step: int, signum: int) -> None:
        self.calls, self.step, self.signum = 0, step, signum
        original = engine.TrainStep.__call__

        def call(step_fn: engine.TrainStep, x: torch.Tensor, y: torch.Tensor):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == self.step:
                os.kill(os.getpid(), self.signum)
            return original(step_fn, x, y)

        monkeypatch.setattr(engine.TrainStep, "__call__", call)


def stopped_run(
    cfg: config_lib.Config, step: int, signum: int = signal.SIGINT, progress: bool = False
) -> Path:
    """A new run of `cfg` stopped by a real signal during training step `step`."""
    run = new_run(cfg)
    with pytest.MonkeyPatch.context() as patch:
        SignalOnStep(patch, step, signum)
        with pytest.raises(Interrupted):
            fit(cfg, run, progress=progress)
    return run


@pytest.mark.parametrize(
    ("step", "signum"),
    [(9, signal.SIGINT), (10, signal.SIGTERM), (15, signal.SIGHUP)],
    ids=["mid-epoch-2", "end-of-epoch-2", "mid-epoch-3"],
)
def test_interrupted_run_resumes_to_identical_metrics(
    reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: int, signum: int
) -> None:
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=reference["cfg"])
    steps_per_epoch = len(engine.build(cfg).train_loader)
    assert steps_per_epoch == 5  # 72 images in batches of 16: the ids above assume it
    run = new_run(cfg)
    # A suite run under nohup ignores SIGHUP, and the run then rightly goes on: hear it here.
    ignored = signal.getsignal(signum) is signal.SIG_IGN
    with monkeypatch.context() as patch:
        if ignored:
            signal.signal(signum, signal.SIG_DFL)
        SignalOnStep(patch, step, signum)
        try:
            with pytest.raises(Interrupted) as caught:
                fit(cfg, run)
        finally:
            if ignored:
                signal.signal(signum, signal.SIG_IGN)
    epoch, position = divmod(step - 1, steps_per_epoch)
    where = (
        f"after epoch {epoch + 1}"  # the epoch's last step: the epoch ends, then the run stops
        if position + 1 == steps_per_epoch
        else f"in epoch {epoch + 1} after step {position + 1}/5"
    )
    assert f"stopped {where}; checkpoint saved" in str(caught.value)
    assert f"supercon train --resume {run}" in str(caught.value)
    assert caught.value.exit_code == 130
    assert not (run / "summary.json").exists()
    saved = runs.load_checkpoint(run / "checkpoints" / "last.pt")
    assert saved["scheduler"]["steps_done"] == step
    summary = api.train(resume=run, log=lambda _: None)
    assert comparable(runs.read_metrics(run)) == comparable(reference["rows"])
    assert summary["test_accuracy"] == reference["summary"]["test_accuracy"]


def test_the_first_stop_signal_is_the_one_named() -> None:
    """SIGTERM, then SIGHUP as the terminal closes: the stop was the SIGTERM, and says so."""
    with StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGHUP)
    assert stop.received == "SIGTERM"


class Killed(BaseException):
    """A SIGKILL at a chosen moment: nothing of the run's own handling runs."""


@pytest.mark.parametrize("write", range(1, 5))  # the reference run writes 4 files
def test_a_kill_at_any_checkpoint_write_keeps_best_pt_true(
    reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: int
) -> None:
    """Killed as the `write`-th checkpoint file was about to land: once resumed, best.pt exists
    and holds the epoch with the accuracy the summary calls best."""
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=reference["cfg"])
    run = new_run(cfg)
    save, writes = runs.save_checkpoint, []

    def killed_at_write(path: Path, payload: dict) -> None:
        writes.append(path.name)
        if len(writes) == write:
            raise Killed
        save(path, payload)

    with monkeypatch.context() as patch:
        patch.setattr(runs, "save_checkpoint", killed_at_write)
        with pytest.raises(Killed):
            fit(cfg, run)
    summary = api.train(resume=run, log=lambda _: None)
    best = runs.load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["progress"]["best_accuracy"] == summary["best_test_accuracy"]
    rows = runs.read_metrics(run)
    assert (
        float(rows[best["progress"]["epochs_done"] - 1]["test_acc"])
        == best["progress"]["best_accuracy"]
    )
    assert comparable(rows) == comparable(reference["rows"])


def test_a_damaged_metrics_csv_does_not_block_a_resume(reference: dict, tmp_path: Path) -> None:
    """last.pt carries the run's rows; metrics.csv is a copy for people, rewritten on resume."""
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=reference["cfg"])
    run = stopped_run(cfg, 12)
    (run / "metrics.csv").write_text("garbage\n")
    api.train(resume=run, log=lambda _: None)
    assert comparable(runs.read_metrics(run)) == comparable(reference["rows"])


def test_checkpoint_restores_state_bit_for_bit(reference: dict) -> None:
    cfg, run = reference["cfg"], reference["run"]
    payload = runs.load_checkpoint(run / "checkpoints" / "last.pt")
    setup = engine.build(cfg)
    setup.model.load_state_dict(payload["model"])
    for key, value in setup.model.state_dict().items():
        assert torch.equal(value, payload["model"][key]), key
    assert payload["config"] == config_lib.to_dict(cfg)
    assert payload["scheduler"] == {"steps_done": 3 * 5}
    assert payload["loader"]["position"] == 0
    assert payload["progress"]["epochs_done"] == 3


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(
    reference: dict, tmp_path: Path
) -> None:
    cfg = config_lib.load([], {"out": str(tmp_path), "train.epochs": 2}, base=reference["cfg"])
    run = stopped_run(cfg, 5)  # stop at the end of epoch 1
    good = (run / "checkpoints" / "last.pt").read_bytes()
    # Epoch 2 meets an absurd learning rate (as a too-high lr_max would bring on the way up).
    build = schedule_lib.build

    def exploding(*args: object) -> schedule_lib.Schedule:
        schedule = build(*args)  # type: ignore[arg-type]
        return lambda step: schedule_lib.LrMomentum(1e13 if step >= 5 else schedule(step).lr, 0.9)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(TrainingDiverged) as caught:
        patch.setattr(schedule_lib, "build", exploding)
        api.train(resume=run, log=lambda _: None)
    message = str(caught.value)
    assert "epoch 2" in message and "schedule.lr_max" in message and "find-lr" in message
    assert caught.value.exit_code == 1 and "\n" not in message
    assert (run / "checkpoints" / "last.pt").read_bytes() == good
    assert len(runs.read_metrics(run)) == 1


def test_resume_across_device_types_continues_with_a_note(reference: dict, tmp_path: Path) -> None:
    """A checkpoint from a GPU run resumed on a CPU: the loader's generator state has the CUDA
    format (16 bytes: seed and offset), the fp16 scaler state exists. Without a GPU, build such a
    checkpoint; the resume must continue, derive its generator, and say so in one line."""
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=reference["cfg"])
    run = stopped_run(cfg, 7)  # mid-epoch 2
    last = run / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    payload["loader"]["generator"] = torch.tensor([7, 0, 0, 0, 0, 0, 0, 0] * 2, dtype=torch.uint8)
    payload["scaler"] = {
        "scale": 65536.0,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2000,
        "_growth_tracker": 0,
    }
    torch.save(payload, last)
    twin = Path(shutil.copytree(run, tmp_path / "twin"))
    lines: list[str] = []
    summary = api.train(resume=run, log=lines.append)
    (note,) = [line for line in lines if line.startswith("note:")]
    assert "saved on another device type" in note and "derived" in note
    assert len(runs.read_metrics(run)) == 3 and summary["test_accuracy"] > 0
    api.train(resume=twin, log=lambda _: None)  # the derived stream is reproducible
    assert comparable(runs.read_metrics(twin)) == comparable(runs.read_metrics(run))


def test_each_epochs_bar_starts_at_its_own_position(
    reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Epoch bars start at 0 (not at the previous epoch's end), and a resumed epoch's bar at the
    step it resumes from; every bar ends full."""
    bars: list[list[int]] = []  # [total, initial, updates]
    opened = progress_lib.progress_bar

    def recording(total: int, description: str, enabled: bool, initial: int = 0) -> Any:
        bar = opened(total, description, enabled, initial)
        bars.append([total, initial, 0])
        original = bar.update

        def update(n: int = 1) -> Any:
            bars[-1][2] += n
            return original(n)

        bar.update = update
        return bar

    monkeypatch.setattr(progress_lib, "progress_bar", recording)
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=reference["cfg"])
    run = stopped_run(cfg, 7, progress=True)  # step 7 of 15: inside epoch 2
    fit(cfg, run, progress=True)
    total = bars[0][0]
    assert total == 5
    assert bars == [[5, 0, 5], [5, 0, 2], [5, 2, 3], [5, 0, 5]]


def test_plain_progress_lines_when_no_bar_shows(
    reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a bar (a log file, CI), long loops print a line at a steady pace (here: every
    step), and each epoch line but the last carries the whole run's ETA."""
    monkeypatch.setattr(progress_lib, "HEARTBEAT_SECONDS", 0.0)
    lines: list[str] = []
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=reference["cfg"])
    api.train(cfg, log=lines.append, progress=False)
    beats = [line for line in lines if "  step " in line]
    assert beats[0].startswith("epoch 1/3  lr ") and "train loss " in beats[0]
    assert beats[0].endswith(")  eta " + beats[0].rsplit("eta ", 1)[1])
    assert [b.split("  step ")[1].split(" ")[0] for b in beats[:5]] == [
        "1/5",
        "2/5",
        "3/5",
        "4/5",
        "5/5",
    ]
    epochs = [line for line in lines if line.startswith("epoch ") and "  step " not in line]
    assert len(epochs) == 3
    assert all(" eta " in line for line in epochs[:2]) and " eta " not in epochs[2]
    found: list[str] = []
    api.find_lr(cfg, log=found.append)
    assert any(
        line.startswith("range test, weight decay ") and "  step 2/" in line for line in found
    )


def test_heartbeat_paces_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 10.0, 31.0, 40.0, 62.0])
    monkeypatch.setattr(progress_lib.time, "perf_counter", lambda: next(clock))
    lines: list[str] = []
    heartbeat = progress_lib.Heartbeat(lines.append, enabled=True)  # starts at 0.0
    for done in (1, 2, 3, 4):  # at 10, 31, 40 and 62 s
        heartbeat.beat(done, 10, lambda: "x")
    assert lines == ["x  step 2/10 (20%)  eta 2m04s", "x  step 4/10 (40%)  eta 1m33s"]
    assert [progress_lib.duration(s) for s in (5, 65, 3725)] == ["5 s", "1m05s", "1h02m"]


def test_the_report_answers_the_assignment_by_itself(reference: dict, tmp_path: Path) -> None:
    run = reference["run"]
    text = (run / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert {"plots/schedule.png", "plots/clr_triangle.png", "plots/training.png"} <= set(links)
    assert all((run / link).is_file() for link in links), links  # relative links that resolve
    assert "`cifar_supercon/schedule.py`" in text and "| **total** | | | **26,116** |" in text
    assert "| layer3 residual | x + 2 x (conv 3x3 32, BN, ReLU) | 32 x 4 x 4 | 18,560 |" in text
    assert all(f"| {name} | " in text for name in ("apple", "boat", "cloud"))
    assert reference["summary"]["device"] in text and "Cutout 8x8" in text
    assert len(re.findall(r"^\| \d+ \| ", text, flags=re.M)) == 3  # one row per epoch
    assert sum(layer.parameters for layer in report_lib.layers(64)) == 6_573_120
    found = api.train(
        reference["cfg"],
        overrides={"out": str(tmp_path), "schedule.lr_max": "auto", "schedule.lr_min": "auto"},
        log=lambda _: None,
    )
    text = (Path(found["run_dir"]) / "report.md").read_text()
    assert "found its bounds itself" in text and "(lr_finder/lr_finder.png)" in text
    assert (Path(found["run_dir"]) / "lr_finder" / "lr_finder.png").is_file()


def test_run_directories_are_never_reused(tmp_path: Path) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5)
    first = runs.create(tmp_path, "x", now=moment)
    second = runs.create(tmp_path, "x", now=moment)
    assert (first.name, second.name) == ("20260102-030405-x", "20260102-030405-x-2")


def test_finished_run_cannot_be_resumed(reference: dict) -> None:
    with pytest.raises(UsageError, match="has finished"):
        api.train(resume=reference["run"], log=lambda _: None)


def test_resume_refuses_config_changes(reference: dict, tmp_path: Path) -> None:
    unfinished = new_run(config_lib.load([], {"out": str(tmp_path)}, base=reference["cfg"]))
    with pytest.raises(
        UsageError,
        match=r"only data\.root, train\.device, train\.eval_batch_size, train\.cpu_threads may",
    ):
        api.train(resume=unfinished, overrides={"train.epochs": 9})


def test_resume_records_the_changes_it_allows(reference: dict, tmp_path: Path) -> None:
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=reference["cfg"])
    run = stopped_run(cfg, 7)
    lines: list[str] = []
    api.train(resume=run, overrides={"train.eval_batch_size": 8}, log=lines.append)
    assert "resuming with train.eval_batch_size 32 -> 8" in lines
    (record,) = (run / "resumes.log").read_text().splitlines()
    assert record.endswith(": train.eval_batch_size 32 -> 8")


def test_a_folder_of_twelve_classes_trains_a_twelve_way_model(tmp_path: Path) -> None:
    """An image folder is not always CIFAR-10: the classifier gets one output per class found."""
    names = tuple(f"class{i:02d}" for i in range(12))
    root = write_image_folder(tmp_path / "data", train_per_class=4, test_per_class=2, classes=names)
    cfg = tiny_config(root, tmp_path / "runs", train={"epochs": 2})
    summary = api.train(cfg, log=lambda _: None)
    last = Path(summary["run_dir"]) / "checkpoints" / "last.pt"
    assert runs.load_checkpoint(last)["model"]["fc.weight"].shape == (12, 8 * 4)
    evaluation = api.evaluate(last, plot=tmp_path / "c.png", log=lambda _: None)
    assert evaluation.classes == names and len(evaluation.confusion) == 12
    assert evaluation.accuracy == summary["test_accuracy"]
    report = (Path(summary["run_dir"]) / "report.md").read_text()
    assert "linear 32 -> 12, no bias" in report


def test_evaluate_reproduces_the_summary(reference: dict, tmp_path: Path) -> None:
    result = api.evaluate(
        reference["run"] / "checkpoints" / "last.pt", plot=tmp_path / "c.png", log=lambda _: None
    )
    assert result.accuracy == reference["summary"]["test_accuracy"]
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    assert len(result.classes) == 3 and len(result.confusion) == 3
    total = sum(map(sum, result.confusion))
    assert total == 24  # 3 classes x 8 test images
    correct = sum(result.confusion[i][i] for i in range(3))
    assert correct / total == result.accuracy
    assert all(0 <= a <= 1 for a in result.class_accuracy)


def test_lr_max_auto_runs_the_finder_inside_the_run(reference: dict, tmp_path: Path) -> None:
    cfg = config_lib.load(
        [],
        {"out": str(tmp_path), "schedule.lr_max": "auto", "schedule.lr_min": "auto"},
        base=reference["cfg"],
    )
    summary = api.train(cfg, log=lambda _: None)
    run = Path(summary["run_dir"])
    suggested = yaml.safe_load((run / "lr_finder" / "suggested.yaml").read_text())
    resolved = runs.read_config(run)
    assert resolved.schedule.lr_max == suggested["schedule"]["lr_max"] == summary["lr_max"]
    assert resolved.schedule.lr_min == suggested["schedule"]["lr_min"]
    assert (run / "lr_finder" / "lr_finder.png").is_file()


def test_lr_min_auto_under_a_small_lr_max_given_falls_back_to_the_divisor(
    reference: dict, tmp_path: Path
) -> None:
    """The curve's start of descent can lie above an lr_max the user set: lr_min then is
    lr_max / finder.div_factor, said in one line, instead of a failure after the range test."""
    cfg = config_lib.load(
        [],
        {"out": str(tmp_path), "schedule.lr_max": 1e-5, "schedule.lr_min": "auto"},
        base=reference["cfg"],
    )
    lines: list[str] = []
    summary = api.train(cfg, log=lines.append)
    found = yaml.safe_load((Path(summary["run_dir"]) / "lr_finder" / "suggested.yaml").read_text())
    assert found["schedule"]["lr_min"] >= 1e-5  # the range test starts at finder.start_lr
    assert summary["lr_max"] == 1e-5 and summary["lr_min"] == 1e-7
    assert "lr_min is 'auto': running the LR range test first" in lines
    assert any("lr_min = lr_max / finder.div_factor = 1e-07" in line for line in lines)


def test_a_step_schedule_reports_the_lrs_it_used(reference: dict, tmp_path: Path) -> None:
    cfg = config_lib.load(
        [],
        {
            "out": str(tmp_path),
            "schedule.policy": "multistep",
            "schedule.milestones": [1, 2],
            "schedule.lr_max": 0.2,
            "schedule.decay": 0.1,
        },
        base=reference["cfg"],
    )
    summary = api.train(cfg, log=lambda _: None)
    report = (Path(summary["run_dir"]) / "report.md").read_text()
    assert "Step decay: lr 0.2 -> 0.02 -> 0.002, times 0.1 at epoch(s) 1, 2;" in report
    assert summary["lr_max"] == 0.2 and summary["lr_min"] is None  # never used by this policy


def test_class_names_the_font_lacks_draw_without_warnings(tmp_path: Path) -> None:
    figure = plots.confusion_figure([[2, 0], [1, 1]], ["猫", "犬"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.save(figure, tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes().startswith(b"\x89PNG")
