"""The command line: help, version, config show, and each command end to end on tiny data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, tiny_config, write_image_folder
from typer.testing import CliRunner

from cifar_supercon import config as config_lib
from cifar_supercon.cli import app

runner = CliRunner()
COMMANDS = ("train", "find-lr", "plot-schedule", "evaluate", "config")


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout


def test_no_arguments_shows_the_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 0
    assert all(command in result.stdout for command in COMMANDS)


@pytest.mark.parametrize("command", ["train", "find-lr", "plot-schedule", "evaluate"])
def test_each_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout and f"supercon {command}" in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("supercon 0.1.0 (torch ")


def test_python_dash_m_runs_the_same_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cifar_supercon", "config", "show", "--epochs", "30"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert yaml.safe_load(result.stdout)["train"]["epochs"] == 30


def test_config_show_prints_what_would_run(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["config", "show", "--config", str(REPO / "configs/cpu-smoke.yaml")]
    )
    assert result.exit_code == 0
    shown = config_lib.from_dict(yaml.safe_load(result.stdout), "stdout")
    assert shown == config_lib.load([REPO / "configs/cpu-smoke.yaml"])


def test_precedence_defaults_then_yaml_then_set_and_shortcuts(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("train: {epochs: 10, batch_size: 256}\nschedule: {lr_max: 0.3}\nseed: 4\n")
    args = ["config", "show", "-c", str(path), "--set", "train.batch_size=128", "--seed", "9"]
    args += ["--peak-epoch", "2", "--lr-min", "0.01", "--device", "cpu", "--data-dir", "x"]
    shown = yaml.safe_load(runner.invoke(app, args).stdout)
    assert shown["train"]["epochs"] == 10  # from YAML
    assert shown["train"]["batch_size"] == 128  # --set beats YAML
    assert shown["seed"] == 9  # shortcut beats YAML
    assert shown["schedule"]["lr_max"] == 0.3  # from YAML
    assert (shown["schedule"]["peak_epoch"], shown["schedule"]["lr_min"]) == (2, 0.01)
    assert (shown["train"]["device"], shown["data"]["root"]) == ("cpu", "x")
    assert shown["train"]["eval_batch_size"] == 1024  # default kept
    assert shown["name"] == "mine"


def test_lr_max_auto_makes_lr_min_auto_unless_given() -> None:
    shown = yaml.safe_load(runner.invoke(app, ["config", "show", "--lr-max", "auto"]).stdout)
    assert (shown["schedule"]["lr_max"], shown["schedule"]["lr_min"]) == ("auto", "auto")
    args = ["config", "show", "--lr-max", "auto", "--lr-min", "0.01"]
    shown = yaml.safe_load(runner.invoke(app, args).stdout)
    assert (shown["schedule"]["lr_max"], shown["schedule"]["lr_min"]) == ("auto", 0.01)


@pytest.fixture(scope="module")
def trained(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "tiny.yaml"
    config.write_text(config_lib.to_yaml(tiny_config(image_folder, folder / "runs")))
    result = runner.invoke(
        app, ["train", "--config", str(config), "--epochs", "2", "--no-progress"]
    )
    (run,) = (folder / "runs").iterdir()
    return {"result": result, "run": run, "config": config}


def test_train_prints_progress_and_a_result_table(trained: dict) -> None:
    result, run = trained["result"], trained["run"]
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"run directory: {run}" in out
    assert "model: ResNet-9, width 4: " in out and "parameters" in out
    assert "epoch   1/2  lr " in out and "epoch   2/2  lr " in out
    summary = json.loads((run / "summary.json").read_text())
    assert f"{100 * summary['test_accuracy']:.2f}%" in out
    assert summary["epochs"] == 2  # --epochs reached the config
    assert result.stderr == ""


def test_evaluate_prints_per_class_accuracy(trained: dict, tmp_path: Path) -> None:
    run = trained["run"]
    result = runner.invoke(app, ["evaluate", str(run / "checkpoints" / "best.pt")])
    assert result.exit_code == 0, result.output
    for name in ("apple", "boat", "cloud"):
        assert name in result.stdout
    assert (run / "plots" / "confusion_best.png").read_bytes().startswith(b"\x89PNG")
    best = json.loads((run / "summary.json").read_text())["best_test_accuracy"]
    assert f"test accuracy {100 * best:.2f}%" in result.stdout


ODD_CLASSES = ("[bold]cat", "new\nline", "pipe|x")  # sorted, as the classes are


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on class folders whose names are rich markup, hold a line break or a pipe."""
    folder = tmp_path_factory.mktemp("odd")
    data = write_image_folder(folder / "data", 8, 4, classes=ODD_CLASSES)
    config = folder / "tiny.yaml"
    config.write_text(config_lib.to_yaml(tiny_config(data, folder / "runs", train={"epochs": 2})))
    result = runner.invoke(app, ["train", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    (run,) = (folder / "runs").iterdir()
    return run


def test_class_names_print_as_they_are(odd_names: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(odd_names / "checkpoints" / "best.pt")])
    assert result.exit_code == 0, result.output
    assert "[bold]cat" in result.stdout


def test_class_names_stay_in_their_cells_of_the_report(odd_names: Path) -> None:
    report = (odd_names / "report.md").read_text().splitlines()
    start = report.index("| class | accuracy | test images |") + 2
    rows = report[start : start + len(ODD_CLASSES) + 1]
    assert rows[-1] == ""  # one line per class, nothing after
    assert [row.split(" | ")[0] for row in rows[:-1]] == [
        "| [bold]cat",
        "| new\\\\nline",
        "| pipe\\|x",
    ]
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 4 for row in rows[:-1])  # 3 cells each


def test_resume_of_a_run_refuses_another_config(trained: dict) -> None:
    args = ["train", "--resume", str(trained["run"]), "--config", str(trained["config"])]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "drop --config" in result.stderr


def test_plot_schedule_triangle(tmp_path: Path) -> None:
    out = tmp_path / "triangle.png"
    args = ["plot-schedule", "--policy", "triangular2", "--cycles", "2", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")
