"""The Python API's own answers: the package's error classes, in the one-line messages the
commands print (never a finished run's file replaced)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import tiny_config

import cifar_supercon
from cifar_supercon import api
from cifar_supercon import config as config_lib
from cifar_supercon.comparison import compare
from cifar_supercon.errors import UsageError

RUN_RULE = "which holds only what the run wrote; choose a place outside it"


@pytest.fixture(scope="module")
def finished(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch run of the tiny config (never changed by a test)."""
    out = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(image_folder, out, train={"epochs": 2})
    return Path(api.train(cfg, log=lambda _: None)["run_dir"])


def contents(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(call: Any, error: type[Exception] = UsageError) -> str:
    """The one line `call` raises, of exactly the class `error`."""
    with pytest.raises(error) as caught:
        call()
    assert type(caught.value) is error, caught.value
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# Fault: the API wrote into finished runs -------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "relative", "call"),
    [
        ("png", "plots/schedule.png", lambda run, p: api.plot_schedule(png=p)),
        ("csv_path", "metrics.csv", lambda run, p: api.plot_schedule(csv_path=p)),
        ("png", "plots/new/figure.svg", lambda run, p: api.plot_schedule(png=p)),
        ("png", "plots/training.png", lambda run, p: compare([run], png=p)),
        ("png", "report.pdf", lambda run, p: cifar_supercon.compare([str(run)], png=str(p))),
        (
            "plot",
            "plots/confusion_matrix.png",
            lambda run, p: api.evaluate(
                run / "checkpoints" / "best.pt", plot=p, log=lambda _: None
            ),
        ),
        (
            "plot",
            "checkpoints/best.png",
            lambda run, p: api.evaluate(
                run / "checkpoints" / "last.pt", plot=p, log=lambda _: None
            ),
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_no_api_output_path_writes_into_a_run(
    finished: Path, tmp_path: Path, argument: str, relative: str, call: Any
) -> None:
    """Each output argument is refused inside a run, directly or through a link, before any
    work, and the run is left byte for byte as it was."""
    before = contents(finished)
    (tmp_path / "link").symlink_to(finished)
    for path in (finished / relative, tmp_path / "link" / relative):
        message = refused(lambda path=path: call(finished, path))
        assert message == f"{argument} {path}: inside the run {finished.resolve()}, {RUN_RULE}"
    assert contents(finished) == before


def test_the_commands_and_the_api_share_the_check(finished: Path) -> None:
    """The commands call the same check, naming their options instead of the arguments."""
    from cifar_supercon import cli

    target = finished / "plots" / "schedule.png"
    message = refused(lambda: cli._output_file(target, "--out"))
    assert message == f"--out {target}: inside the run {finished.resolve()}, {RUN_RULE}"


def test_outputs_outside_runs_are_written_and_evaluate_fills_its_own_run(
    finished: Path, tmp_path: Path
) -> None:
    api.plot_schedule(png=tmp_path / "s.png", csv_path=str(tmp_path / "s.csv"))
    assert (tmp_path / "s.png").is_file() and (tmp_path / "s.csv").is_file()
    result = compare([str(finished)], png=tmp_path / "c.png")
    assert result.png == tmp_path / "c.png" and result.png.is_file()
    plots_before = set((finished / "plots").iterdir())
    evaluation = api.evaluate(finished / "checkpoints" / "best.pt", log=lambda _: None)
    # the default place is the run's own plots/, by design: the one new file there
    assert evaluation.plot == finished / "plots" / "confusion_best.png"
    assert set((finished / "plots").iterdir()) - plots_before <= {evaluation.plot}
    evaluation.plot.unlink()


def test_train_run_dir_and_out_inside_a_run_are_refused_before_any_work(
    finished: Path, tmp_path: Path
) -> None:
    before = contents(finished)
    cfg = config_lib.load([], {"out": str(tmp_path)}, base=_tiny_of(finished))
    target = finished / "again"
    message = refused(lambda: api.train(cfg, run_dir=target, log=lambda _: None))
    assert message == f"run_dir {target}: inside the run {finished.resolve()}, {RUN_RULE}"
    inside = {"out": str(finished / "plots")}
    message = refused(lambda: api.find_lr(cfg, overrides=inside, log=lambda _: None))
    assert message == f"out {finished / 'plots'}: inside the run {finished.resolve()}, {RUN_RULE}"
    assert contents(finished) == before


def _tiny_of(run: Path) -> config_lib.Config:
    return config_lib.from_dict(yaml.safe_load((run / "config.yaml").read_text()), "config")
