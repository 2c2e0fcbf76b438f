"""The LR range test: sweep formula, divergence, a problem with a known answer, state restored."""

from __future__ import annotations

import itertools
import math
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, tiny_config
from typer.testing import CliRunner

from cifar_supercon import api, cli, engine, lr_finder, runs, suggest
from cifar_supercon import config as config_lib
from cifar_supercon.cli import app


def test_exp_sweep_is_geometric() -> None:
    lrs = lr_finder.sweep(1e-4, 10.0, 6, "exp")
    assert lrs[0] == pytest.approx(1e-4, rel=1e-12) and lrs[-1] == pytest.approx(10.0, rel=1e-12)
    ratios = [b / a for a, b in itertools.pairwise(lrs)]
    assert ratios == pytest.approx([10.0] * 5, rel=1e-12)


def test_linear_sweep_is_arithmetic() -> None:
    assert lr_finder.sweep(0.1, 1.1, 6, "linear") == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9, 1.1])


def test_the_curve_is_smoothed_without_lag() -> None:
    losses = iter([2.0, 1.0, 4.0])
    curve = lr_finder.range_test(lambda lr: next(losses), [1, 2, 3], smoothing=0.5, diverge=100)
    # Clipped at the first loss: 2, 1, 2; forward 2, 1.5, 1.75; backward 1.75, 1.625, 1.8125.
    assert curve.smoothed == pytest.approx([1.8125, 1.625, 1.75])
    assert curve.losses == [2.0, 1.0, 4.0] and not curve.diverged


def test_the_stop_rule_uses_the_bias_corrected_running_average() -> None:
    # Running averages (beta 0.5, bias-corrected): 1, 1, 1, 1, then (8 + 1/16 x ...) / ...:
    # with losses 1, 1, 1, 1, 8 it is (0.5 x 0.9375 + 0.5 x 8) / 0.96875 = 4.61 > 4 x 1.
    losses = [1.0, 1.0, 1.0, 1.0, 8.0, 1.0]
    curve = lr_finder.range_test(lambda lr: losses[lr], range(6), smoothing=0.5, diverge=4.0)
    assert curve.diverged and curve.lrs == [0, 1, 2, 3, 4]
    # 7.0 gives (0.46875 + 3.5) / 0.96875 = 4.097: also over; 6.0 gives 3.58: not.
    calm = [1.0, 1.0, 1.0, 1.0, 6.0, 1.0]
    assert not lr_finder.range_test(lambda lr: calm[lr], range(6), 0.5, 4.0).diverged


def test_divergence_stops_early() -> None:
    losses = [1.0, 0.9, 0.8, 0.7, 5.0, 50.0, 500.0, 1.0, 1.0]
    curve = lr_finder.range_test(lambda lr: losses[lr], range(9), smoothing=0.0, diverge=4.0)
    assert curve.diverged and curve.lrs == [0, 1, 2, 3, 4]  # 5.0 > 4 x 0.7
    nan_curve = lr_finder.range_test(lambda lr: math.nan, range(9), smoothing=0.5, diverge=4.0)
    assert nan_curve.diverged and len(nan_curve.lrs) == 1


class LeastSquares:
    """Full-batch gradient descent on 0.5 mean (Xw - y)^2; diverges exactly above 2 / L.

    L is the largest eigenvalue of the Hessian X^T X / n, set to 1 here, with the others
    spread over three decades like a real network's curvature.
    """

    def __init__(self, n: int = 256, d: int = 20) -> None:
        generator = torch.Generator().manual_seed(0)
        rotation, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=generator))
        columns, _ = torch.linalg.qr(torch.randn(n, d, dtype=torch.float64, generator=generator))
        eigenvalues = torch.logspace(0, -3, d, dtype=torch.float64)
        self.x = columns * math.sqrt(n) @ torch.diag(eigenvalues.sqrt()) @ rotation.T
        self.y = self.x @ torch.randn(d, dtype=torch.float64, generator=generator)
        self.w = torch.zeros(d, dtype=torch.float64)
        self.largest_eigenvalue = torch.linalg.eigvalsh(self.x.T @ self.x / n).max().item()

    def train_once(self, lr: float) -> float:
        residual = self.x @ self.w - self.y
        loss = 0.5 * (residual @ residual).item() / len(self.y)
        self.w = self.w - lr * (self.x.T @ residual) / len(self.y)
        return loss


def test_least_squares_stop_point_and_suggestions() -> None:
    """Stated factors: the sweep stops within 10x above 2/L; the other methods' lr_max lie in
    [2/L / 30, 2/L], i.e. stable, and not absurdly small; every lr_min at least 3x below."""
    problem = LeastSquares()
    assert problem.largest_eigenvalue == pytest.approx(1.0)
    limit = 2 / problem.largest_eigenvalue
    lrs = lr_finder.sweep(1e-3 * limit, 1e2 * limit, 100, "exp")
    curve = lr_finder.range_test(problem.train_once, lrs, smoothing=0.95, diverge=4.0)
    assert curve.diverged
    assert limit < curve.lrs[-1] < 10 * limit
    _, _, choices = lr_finder.read_curves([curve], 0.1, 10.0, lr_finder.flat_steps(0.95))
    for method, choice in choices.items():
        assert choice is not None, method
        assert choice[1].lr_min < choice[1].lr_max / 3
        if method in ("middle", "bounds", "edge"):
            # Where the loss stops falling, where it turns up, and the middle between the floor's
            # start and that edge: the instability of an lr above 2/L takes a few steps to grow
            # from round-off, so all three lie past 2/L.
            assert limit <= choice[1].lr_max < curve.lrs[-1], (method, choice)
        else:
            assert limit / 30 <= choice[1].lr_max <= limit, (method, choice)


@pytest.fixture
def setup(image_folder: Path, tmp_path: Path) -> engine.Setup:
    cfg = tiny_config(image_folder, tmp_path, finder={"num_iters": 30, "end_lr": 10.0})
    built = engine.build(cfg)
    # A few real steps first, so that momentum buffers and BN statistics are not trivial.
    for (x, y), _ in zip(built.train_loader, range(3), strict=False):
        built.train_step(x, y)
    return built


def test_state_is_restored_bit_for_bit(setup: engine.Setup) -> None:
    model_before = {k: v.clone() for k, v in setup.model.state_dict().items()}
    optimizer_before = setup.optimizer.state_dict()
    momentum_before = {
        k: v["momentum_buffer"].clone() for k, v in optimizer_before["state"].items()
    }
    groups_before = [
        {k: v for k, v in g.items() if k != "params"} for g in optimizer_before["param_groups"]
    ]
    loader_before = setup.train_loader.state_dict()
    position_before = setup.train_loader.position
    rng_before = torch.get_rng_state()

    report = lr_finder.find_in_setup(setup)
    assert len(report.curves[0].lrs) > 3  # it really trained

    for key, value in setup.model.state_dict().items():
        assert torch.equal(value, model_before[key]), key  # weights and BN buffers
    after = setup.optimizer.state_dict()
    for key, buffer in momentum_before.items():
        assert torch.equal(after["state"][key]["momentum_buffer"], buffer)
    assert [{k: v for k, v in g.items() if k != "params"} for g in after["param_groups"]] == (
        groups_before
    )
    loader_after = setup.train_loader.state_dict()
    assert torch.equal(loader_after["generator"], loader_before["generator"])
    assert setup.train_loader.position == position_before
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_weight_decay_sweep_starts_each_from_the_same_state(
    image_folder: Path, tmp_path: Path
) -> None:
    cfg = tiny_config(
        image_folder, tmp_path, finder={"num_iters": 20, "weight_decays": [1e-3, 0.0, 5e-4]}
    )
    setup = engine.build(cfg)
    report = lr_finder.find_in_setup(setup)
    assert [c.weight_decay for c in report.curves] == [1e-3, 0.0, 5e-4]
    first_losses = {c.losses[0] for c in report.curves}
    assert len(first_losses) == 1  # same start state, same first batch: same first loss
    # Smith's rule: of the curves that reach (within tolerance) the lowest loss, the one that
    # tolerates the largest lr.
    index, choice = report.chosen
    lowest = [min(c.smoothed) for c in report.curves]
    drops = [c.smoothed[0] - low for c, low in zip(report.curves, lowest, strict=True)]
    near = [i for i, low in enumerate(lowest) if low <= min(lowest) + 0.1 * max(drops)]
    assert index in near
    assert choice.lr_max == max(report.suggestions[i][report.method].lr_max for i in near)
    files = lr_finder.write_outputs(report, cfg, tmp_path / "out", tested=tmp_path / "c.yaml")
    comment = files["yaml"].read_text().splitlines()[1]
    assert comment == f"#   supercon train --config {tmp_path / 'c.yaml'} --config {files['yaml']}"
    lines = files["csv"].read_text().splitlines()
    assert lines[0] == "lr,loss,smoothed_loss,weight_decay"
    assert len(lines) == 1 + sum(len(c.lrs) for c in report.curves)
    fragment = yaml.safe_load(files["yaml"].read_text())
    assert fragment == {
        "schedule": {"lr_max": report.lr_max, "lr_min": report.lr_min},
        "optim": {"weight_decay": report.curves[index].weight_decay},
    }
    # A config path with a newline and YAML in its name stays inside the comment.
    odd = tmp_path / "c\nschedule: {lr_max: 9}.yaml"
    files = lr_finder.write_outputs(report, cfg, tmp_path / "odd", tested=odd)
    assert yaml.safe_load(files["yaml"].read_text()) == fragment


def test_find_lr_command_writes_a_usable_suggestion(image_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    out = tmp_path / "sp ace" / "it's"  # every printed command must quote what a shell splits
    cfg = tiny_config(image_folder, out, finder={"num_iters": 15})
    config.write_text(config_lib.to_yaml(cfg))
    result = CliRunner().invoke(app, ["find-lr", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "suggested: lr_max = " in result.stdout
    (run,) = out.iterdir()
    assert run.name.endswith("-tiny-find-lr")
    assert (run / "lr_finder.png").read_bytes().startswith(b"\x89PNG")
    header = (run / "lr_finder.csv").read_text().splitlines()[0]
    assert header == "lr,loss,smoothed_loss"
    # train accepts the fragment on top of the assignment config
    suggested = run / "suggested.yaml"
    merged = config_lib.load([REPO / "configs" / "default.yaml", suggested])
    fragment = yaml.safe_load(suggested.read_text())
    assert merged.schedule.lr_max == fragment["schedule"]["lr_max"]
    assert merged.schedule.lr_min == fragment["schedule"]["lr_min"] < merged.schedule.lr_max
    # The printed train command runs as printed: the finder run's own config plus the fragment.
    (hint,) = [line for line in result.stdout.splitlines() if line.startswith("train with: ")]
    program, *args = shlex.split(hint.removeprefix("train with: "))
    assert program == "supercon" and args[0] == "train"  # CliRunner: not started from a venv path
    assert args == ["train", "--config", str(run / "config.yaml"), "--config", str(suggested)]
    (comment,) = [line for line in suggested.read_text().splitlines() if "supercon train" in line]
    assert shlex.split(comment.removeprefix("#")) == [program, *args]
    trained = CliRunner().invoke(app, [*args, "--no-progress"])
    assert trained.exit_code == 0, trained.output
    (summary,) = out.glob("*-tiny/summary.json")
    done = yaml.safe_load(summary.read_text())
    assert (done["lr_max"], done["lr_min"]) == (merged.schedule.lr_max, merged.schedule.lr_min)
    trained_run = summary.parent
    reproduce = (trained_run / "report.md").read_text().split("## Reproduce")[1].split("```")[1]
    assert shlex.split(reproduce) == ["supercon", "train", "--config", f"{trained_run}/config.yaml"]


def test_a_range_test_stopped_while_writing_its_results_leaves_no_folder(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after lr_finder.csv is written, while the plot is drawn: one line, exit 130, and
    no folder holding a config and half the results (a range test cannot be resumed)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(config_lib.to_yaml(tiny_config(image_folder, tmp_path / "runs")))
    written: list[Path] = []

    def interrupted_save(figure: object, path: Path) -> Path:
        written.extend(path.parent.iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(lr_finder.plots, "save", interrupted_save)
    result = CliRunner().invoke(app, ["find-lr", "--config", str(config), "--no-progress"])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "stopped: interrupted (Ctrl-C, SIGTERM or SIGHUP)"
    assert sorted(p.name for p in written) == ["config.yaml", "lr_finder.csv"]  # it got there
    assert not list((tmp_path / "runs").iterdir())


def test_the_table_lists_every_method(image_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(config_lib.to_yaml(tiny_config(image_folder, tmp_path / "runs")))
    result = CliRunner().invoke(
        app, ["find-lr", "--config", str(config), "--no-progress", "--weight-decay", "1e-3,0"]
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    methods = [row.split("│")[1].strip() for row in rows[2:]]
    assert methods == ["floor", "middle *", "bounds", "edge", "steepest", "valley", "minimum"]
    assert sum("*" in row.split("│")[1] for row in rows[:2]) == 1  # the chosen weight decay


@pytest.mark.parametrize(
    ("argv0", "expected"),
    [
        ("{cwd}/.venv/bin/supercon", ".venv/bin/supercon"),
        ("/elsewhere/bin/supercon", "/elsewhere/bin/supercon"),
        ("{cwd}/cifar_supercon/__main__.py", "{python} -m cifar_supercon"),
    ],
)
def test_hints_name_the_program_as_it_was_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv0: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)  # not on PATH
    monkeypatch.setattr(sys, "argv", [argv0.format(cwd=tmp_path)])
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    assert cli.program() == expected.format(python=".venv/bin/python")


def test_lr_max_auto_also_chooses_the_weight_decay(image_folder: Path, tmp_path: Path) -> None:
    cfg = tiny_config(
        image_folder,
        tmp_path,
        schedule={"lr_max": "auto", "lr_min": "auto"},
        finder={"weight_decays": [5e-3, 0.0]},
        train={"epochs": 2},
    )
    summary = api.train(cfg, log=lambda _: None)
    run = Path(summary["run_dir"])
    fragment = yaml.safe_load((run / "lr_finder" / "suggested.yaml").read_text())
    resolved = runs.read_config(run)
    assert resolved.optim.weight_decay == fragment["optim"]["weight_decay"]
    assert (resolved.schedule.lr_max, resolved.schedule.lr_min) == (
        fragment["schedule"]["lr_max"],
        fragment["schedule"]["lr_min"],
    )
    groups = runs.load_checkpoint(run / "checkpoints" / "last.pt")["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [fragment["optim"]["weight_decay"]]


def test_a_sweep_that_ends_on_the_floor_says_so(image_folder: Path, tmp_path: Path) -> None:
    # A sweep that stops while the loss is still near its lowest never saw the valley's upper
    # end: middle, bounds and edge read too low, and the user is told to raise finder.end_lr.
    config = tmp_path / "tiny.yaml"
    cfg = tiny_config(
        image_folder, tmp_path / "runs", finder={"num_iters": 25, "start_lr": 1e-3, "end_lr": 0.3}
    )
    config.write_text(config_lib.to_yaml(cfg))
    result = CliRunner().invoke(app, ["find-lr", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    rows = (run / "lr_finder.csv").read_text().splitlines()[1:]
    smoothed = [float(row.split(",")[2]) for row in rows]
    reading = suggest.read(smoothed, 0.1, lr_finder.flat_steps(cfg.finder.smoothing))
    assert reading is not None and not reading.turned_up  # the premise, from the written curve
    warning = (
        "warning: at finder.end_lr = 0.3 the loss had not yet risen from its lowest (by "
        "finder.tolerance = 0.1 of its drop): the range test did not see where it turns up, and "
        "middle, bounds and edge read lr_max too low; raise finder.end_lr"
    )
    assert warning in result.stdout.replace("\n", " ")


def test_a_range_test_without_a_reading_keeps_its_curve(image_folder: Path, tmp_path: Path) -> None:
    # The curve is what shows why no lr was suggested: the find-lr folder keeps it (its config,
    # lr_finder.csv and the plot; no suggested.yaml), and the error names the plot.
    config = tmp_path / "tiny.yaml"
    finder = {"num_iters": 10, "end_lr": 10.0}
    config.write_text(
        config_lib.to_yaml(tiny_config(image_folder, tmp_path / "runs", finder=finder))
    )
    result = CliRunner().invoke(app, ["find-lr", "--config", str(config), "--no-progress"])
    assert result.exit_code == 1, result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert sorted(p.name for p in run.iterdir()) == [
        "config.yaml",
        "lr_finder.csv",
        "lr_finder.png",
    ]
    rows = (run / "lr_finder.csv").read_text().splitlines()
    assert rows[0] == "lr,loss,smoothed_loss" and len(rows) == 11
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: LR range test: the loss never fell clearly"), line
    assert line.endswith(f"; the curve: {run / 'lr_finder.png'}")


def _curve(
    losses: list[float], diverged: bool = False, weight_decay: float = 5e-4
) -> lr_finder.Curve:
    lrs = lr_finder.sweep(1e-4, 10.0, len(losses), "exp")
    return lr_finder.Curve(lrs, losses, losses, diverged, weight_decay)


def test_what_a_range_test_without_a_reading_says_to_raise() -> None:
    finder = config_lib.Config().finder
    flat = _curve([2.30, 2.31, 2.29, 2.30, 2.31, 2.30, 2.29, 2.31, 2.30, 2.30])
    rose = _curve([2.30, 2.31, 2.29, 2.30, 2.31, 2.30, 2.45, 2.60, 2.70, 2.80], weight_decay=0.0)
    blew_up = _curve([2.30, 2.31, 2.29, 2.30, math.nan])
    diverged = _curve([2.30, 2.31, 2.29, 9.50], diverged=True)
    # still flat at end_lr: the range may end too low
    message = str(lr_finder.no_reading([flat], finder))
    assert message.startswith("LR range test: the loss never fell clearly (by more than 3 x ")
    assert message.endswith("in 10 steps from finder.start_lr = 0.0001 to finder.end_lr = 10; "
                            "raise finder.end_lr or finder.num_iters")  # fmt: skip
    # it rose (or blew up) before falling clearly: a wider range cannot help, more steps can
    for curves in ([rose], [blew_up], [flat, rose]):
        assert str(lr_finder.no_reading(curves, finder)).endswith("; raise finder.num_iters")
    assert str(lr_finder.no_reading([flat, rose], finder)).startswith(
        "LR range test (each of weight decays 0.0005, 0): "
    )
    # every curve diverged: start lower
    assert str(lr_finder.no_reading([diverged], finder)) == (
        "LR range test: the loss diverged after 4 steps without falling first (from "
        "finder.start_lr = 0.0001, stopping at finder.diverge = 4 x the best loss); lower "
        "finder.start_lr, or raise finder.diverge if the loss only wobbled"
    )
    assert lr_finder.no_reading([diverged], finder).curves == [diverged]
