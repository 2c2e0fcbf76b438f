"""`supercon sweep` and `supercon compare`: grids x seeds, resumable after a kill, failures
recorded, the same results from every executor, statistics checked independently."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from conftest import (
    a_dead_pid,
    child_pids,
    is_running,
    run_cli,
    tiny_config,
    wait_for,
    write_image_folder,
)
from PIL import Image
from typer.testing import CliRunner, Result

from cifar_supercon import comparison, executors, processes, runs, sweep_results, sweep_spec
from cifar_supercon import config as config_lib
from cifar_supercon import sweeps as sweep_lib
from cifar_supercon.cli import app
from cifar_supercon.errors import ConfigError, Interrupted, UsageError

GRID = ["--grid", "schedule.lr_max=0.1,0.2", "--grid", "optim.weight_decay=0,0.0005"]


def write_config(image_folder: Path, tmp_path: Path, epochs: int = 2) -> Path:
    # One thread: deterministic CPU runs are bit-identical at a fixed thread count, and Ray's
    # workers run one thread each.
    cfg = tiny_config(image_folder, tmp_path / "runs", train={"epochs": epochs, "cpu_threads": 1})
    path = tmp_path / "tiny.yaml"
    path.write_text(config_lib.to_yaml(cfg))
    return path


def sweep_cli(*args: str, cwd: Path) -> subprocess.Popen:
    return run_cli("sweep", *args, cwd=cwd)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def runs_in(folder: Path) -> list[Path]:
    return sorted((folder / sweep_spec.RUNS_DIR).glob("*"))


def in_progress(folder: Path) -> list[Path]:
    return [
        run
        for run in runs_in(folder)
        if (run / runs.CHECKPOINTS / runs.LAST).is_file()
        and not (run / runs.SUMMARY_FILE).is_file()
    ]


def test_grid_and_seed_parsing() -> None:
    assert sweep_spec.parse_grid("schedule.lr_max=0.2, 0.4,0.8") == (
        "schedule.lr_max",
        [0.2, 0.4, 0.8],
    )
    assert sweep_spec.parse_grid("schedule.policy=one_cycle,multistep")[1] == [
        "one_cycle",
        "multistep",
    ]
    assert sweep_spec.parse_seeds("0-2,7,1") == [0, 1, 2, 7]
    with pytest.raises(ConfigError, match="did you mean 'lr_max'"):
        sweep_spec.parse_grid("schedule.lr_mx=0.1,0.2")
    with pytest.raises(ConfigError, match="use --seeds"):
        sweep_spec.parse_grid("seed=1,2")
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        sweep_spec.parse_grid("schedule.lr_max")
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        sweep_spec.parse_grid("=0.1")
    with pytest.raises(
        ConfigError, match=r"^--grid 'schedule.lr_max=\[0.1': the value is not valid"
    ):
        sweep_spec.parse_grid("schedule.lr_max=[0.1,0.2")
    # a list key's values: the commas inside brackets belong to one value
    assert sweep_spec.parse_grid("schedule.milestones=[12, 18],[8]") == (
        "schedule.milestones",
        [[12, 18], [8]],
    )
    assert sweep_spec.parse_seeds(f"{2**32 - 2}-{2**32 - 1}") == [2**32 - 2, 2**32 - 1]
    for bad in ("", "3-1", "-1", "a", "0-", "1,,2", "\u0661", "4294967296", "0-99999999999"):
        with pytest.raises(UsageError, match="expected seeds"):
            sweep_spec.parse_seeds(bad)
    with pytest.raises(UsageError, match="more than 100,000 seeds"):
        sweep_spec.parse_seeds("0-99999,100000-100001")


def test_grid_values_are_compared_as_the_config_reads_them(tmp_path: Path) -> None:
    """0.1 and 1e-1 (a string to YAML, 0.1 to the config) are one run, not two."""
    config = tmp_path / "c.yaml"
    config.write_text("train: {epochs: 2}\nschedule: {peak_epoch: 1}\n")
    with pytest.raises(UsageError, match=r"0\.1 and .1e-1. are the same value"):
        sweep_lib.sweep(config, grid={"schedule.lr_max": [0.1, "1e-1"]}, out=tmp_path, log=print)
    with pytest.raises(UsageError, match="both a grid key and set to one value"):
        sweep_lib.sweep(
            config,
            overrides={"schedule.lr_max": 0.2},
            grid={"schedule.lr_max": [0.1, 0.3]},
            out=tmp_path,
            log=print,
        )
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]  # refused before any folder


ONE_VALUE = "a number, a string, true/false or null"


@pytest.mark.parametrize(
    ("grid", "shown", "expected"),
    [
        ("model.width=[[4]],8", "[[4]]", ONE_VALUE),
        ("train.epochs=3,[2]", "[2]", ONE_VALUE),
        # [3] is a value: milestones is a list
        (
            "schedule.milestones=[{a: 1}],[3]",
            "[{a: 1}]",
            f"{ONE_VALUE}, or a list of them such as [12, 18]",
        ),
    ],
)
def test_a_grid_value_its_key_cannot_take_is_refused_before_the_sweep_folder(
    image_folder: Path, tmp_path: Path, grid: str, shown: str, expected: str
) -> None:
    """A list in a list, or a mapping, is no value of any key: the sweep's cells could not be
    told apart by it (TypeError: unhashable type: 'list', after the sweep folder was made, and
    on every rerun)."""
    config = write_config(image_folder, tmp_path)
    command = ["sweep", "--config", str(config), "--grid", grid, "--out", str(tmp_path / "sw")]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    key = grid.split("=")[0]
    assert result.stderr == (
        f"error: --grid {grid!r}: {shown} is not a value {key} takes; expected {expected}\n"
    )
    with pytest.raises(UsageError, match=r"^grid: \{'a': 1\} is not a value train.epochs takes"):
        sweep_lib.sweep(config, grid={"train.epochs": [{"a": 1}]}, out=tmp_path / "sw")
    assert not (tmp_path / "sw").exists()
    assert sweep_spec.parse_grid("schedule.milestones=[3],[2, 4]")[1] == [[3], [2, 4]]


def test_a_list_key_is_a_grid_key(image_folder: Path, tmp_path: Path) -> None:
    """schedule.milestones=[1],[1.5]: each list is one cell, counted, shown and read again as
    one (a list cannot be a dict key: the statistics failed, and every rerun the same way)."""
    step = tmp_path / "step.yaml"
    step.write_text("schedule: {policy: multistep, milestones: [1]}\n")
    args = ["sweep", "-c", str(write_config(image_folder, tmp_path)), "-c", str(step)]
    args += ["--grid", "schedule.milestones=[1],[1.5]", "--out", str(tmp_path / "sw")]
    for _ in range(2):  # the second finds both runs done
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.stderr
    (folder,) = (tmp_path / "sw").iterdir()
    rows = read_csv(folder / sweep_results.RESULTS_FILE)
    assert [(r["schedule.milestones"], r["status"]) for r in rows] == [
        ("[1.0]", "finished"),
        ("[1.5]", "finished"),
    ]
    assert "| [1.5] | 1 | " in (folder / sweep_results.SUMMARY_FILE).read_text()


def test_a_grid_value_with_a_pipe_stays_in_its_cell_of_summary_md(tmp_path: Path) -> None:
    spec = sweep_spec.Spec({}, {"schedule.anneal": ["a|b"]}, [0])
    stats = sweep_results.cell_statistics(
        [{"schedule.anneal": "a|b", "status": "failed"}], spec.keys, 0.9
    )
    sweep_results.write_summary(tmp_path, spec, stats, 0.9)
    summary = (tmp_path / sweep_results.SUMMARY_FILE).read_text()
    assert "| a\\|b | 0 (1 failed) | - |" in summary


def test_cells_are_the_cartesian_product_in_the_order_given() -> None:
    spec = sweep_spec.Spec({}, {"a.x": [1, 2], "b.y": ["p", "q", "r"]}, [0])
    assert spec.cells() == [(("a.x", x), ("b.y", y)) for x in (1, 2) for y in ("p", "q", "r")]
    assert sweep_spec.run_name((("schedule.lr_max", 0.4), ("optim.weight_decay", 0.0)), 3) == (
        "lr_max=0.4-weight_decay=0.0-seed3"
    )


def test_cell_statistics() -> None:
    rows = [
        {"k": 1, "status": "finished", "test_accuracy": 0.5, "train_seconds": 3.0},
        {"k": 1, "status": "finished", "test_accuracy": 0.7, "train_seconds": 1.0},
        {"k": 1, "status": "finished", "test_accuracy": 0.9, "train_seconds": 2.0},
        {"k": 1, "status": "failed", "test_accuracy": "", "train_seconds": ""},
        {"k": 2, "status": "finished", "test_accuracy": 0.95, "train_seconds": 5.0},
        {"k": 3, "status": "pending", "test_accuracy": "", "train_seconds": ""},
    ]
    one, two, three = sweep_results.cell_statistics(rows, ["k"], target=0.8)
    assert (one.runs, one.failed) == (3, 1)
    assert one.mean == pytest.approx(0.7)
    assert one.std == pytest.approx(0.2)  # sample std: sqrt((0.04 + 0 + 0.04) / 2)
    assert (one.min, one.median, one.max) == (0.5, 0.7, 0.9)
    assert one.share_at_target == pytest.approx(1 / 3)
    assert one.median_train_seconds == 2.0
    assert (two.runs, two.std, two.share_at_target) == (1, None, 1.0)
    assert (three.runs, three.mean) == (0, None)


def test_a_killed_sweep_completes_with_the_same_command(image_folder: Path, tmp_path: Path) -> None:
    """2 x 2 grid x 3 seeds, SIGKILLed part-way (mid-run), completed by the same command: 12
    rows, the interrupted run resumed from its checkpoint, statistics recomputed here."""
    config = write_config(image_folder, tmp_path, epochs=4)
    command = ["--config", str(config), *GRID, "--seeds", "0-2", "--name", "s", "--out", "sw"]
    folder = tmp_path / "sw" / "s"
    process = sweep_cli(*command, cwd=tmp_path)
    wait_for(lambda: len(list(folder.glob("runs/*/summary.json"))) >= 2 and in_progress(folder))
    process.kill()
    process.wait()
    (interrupted,) = in_progress(folder)
    assert len(list(folder.glob("runs/*/summary.json"))) < 12

    process = sweep_cli(*command, cwd=tmp_path)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "done already" in out
    log = (folder / sweep_spec.LOGS_DIR / f"{interrupted.name}.log").read_text()
    assert "resuming" in log  # train's own resume continued it

    rows = read_csv(folder / sweep_results.RESULTS_FILE)
    assert len(rows) == 12
    assert {r["status"] for r in rows} == {"finished"}
    assert {(r["schedule.lr_max"], r["optim.weight_decay"], r["seed"]) for r in rows} == {
        (lr, wd, seed) for lr in ("0.1", "0.2") for wd in ("0.0", "0.0005") for seed in "012"
    }
    summary = (folder / sweep_results.SUMMARY_FILE).read_text()
    for lr in ("0.1", "0.2"):
        for wd in ("0.0", "0.0005"):
            accuracies = []
            for seed in range(3):
                run = folder / "runs" / f"lr_max={lr}-weight_decay={wd}-seed{seed}"
                accuracies.append(json.loads((run / "summary.json").read_text())["test_accuracy"])
            mean, std = statistics.mean(accuracies), statistics.stdev(accuracies)
            line = next(x for x in summary.splitlines() if x.startswith(f"| {lr} | {wd} |"))
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[2] == "3"
            assert cells[3] == f"{100 * mean:.2f} +- {100 * std:.2f}"
            assert cells[4:7] == [
                f"{100 * v:.2f}"
                for v in (min(accuracies), statistics.median(accuracies), max(accuracies))
            ]
    assert (folder / "plots" / "accuracy_vs_schedule.lr_max.png").is_file()
    assert (folder / "plots" / "curves.png").is_file()


def test_a_run_killed_as_it_wrote_its_first_file_trains_on_the_rerun(
    image_folder: Path, tmp_path: Path
) -> None:
    """A sweep SIGKILLed while a run writes its first file leaves the run folder with its
    config.yaml, lock file and the writer's temporary file. The rerun removes a dead writer's
    temporary file and trains the run (it failed with 'Directory not empty', every time); a
    live writer's stays, and its run fails, naming it."""
    config = write_config(image_folder, tmp_path)
    folder = tmp_path / "sw" / "k"
    base = config_lib.load([config])
    with sweep_spec.open_folder(folder, sweep_spec.make_spec(base, {}, [0, 1])):
        pass  # the sweep folder with its sweep.yaml, as the killed sweep made it
    stale = folder / "runs" / "seed0" / f".{runs.METRICS_FILE}{runs.TEMPORARY}{a_dead_pid()}"
    live = folder / "runs" / "seed1" / f".{runs.METRICS_FILE}{runs.TEMPORARY}1"  # pid 1 lives
    for temporary in (stale, live):
        temporary.parent.mkdir(parents=True)
        runs.write_config(temporary.parent, base)
        (temporary.parent / runs.LOCK_FILE).touch()
        temporary.write_text(",".join(runs.METRIC_COLUMNS)[:20])  # cut short by the kill

    result = sweep_lib.sweep(config, seeds=[0, 1], name="k", out=tmp_path / "sw", log=print)
    rows = {row["run"]: row for row in result.rows}
    assert rows["seed0"]["status"] == "finished", rows["seed0"]["reason"]
    assert not stale.exists()
    assert rows["seed1"]["status"] == "failed" and live.exists()
    assert rows["seed1"]["reason"].startswith(f"{live.parent}: the run has not started")
    assert live.name in rows["seed1"]["reason"] and "\n" not in rows["seed1"]["reason"]
    live.unlink()  # its writer is done with it: as the reason says, moved away
    again = sweep_lib.sweep(
        config, seeds=[0, 1], name="k", out=tmp_path / "sw", retry_failed=True, log=print
    )
    assert [row["status"] for row in again.rows] == ["finished", "finished"]


def test_failed_runs_are_recorded_and_the_sweep_goes_on(image_folder: Path, tmp_path: Path) -> None:
    config = write_config(image_folder, tmp_path)
    command = ["--config", str(config), "--grid", "schedule.lr_max=0.1,1e9,-1", "--out", "sw"]
    process = sweep_cli(*command, cwd=tmp_path)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    (folder,) = (tmp_path / "sw").iterdir()
    rows = {r["schedule.lr_max"]: r for r in read_csv(folder / sweep_results.RESULTS_FILE)}
    assert rows["0.1"]["status"] == "finished"
    assert rows["1000000000.0"]["status"] == "failed"
    assert "training loss became nan" in rows["1000000000.0"]["reason"]
    assert rows["-1"]["status"] == "failed"
    assert "schedule.lr_max" in rows["-1"]["reason"]
    assert "2 run(s) not finished" in out

    def attempts(name: str) -> int:
        return (folder / "logs" / f"{name}.log").read_text().count("pid ")

    again = sweep_cli(*command, cwd=tmp_path)
    again.communicate(timeout=300)
    assert attempts("lr_max=1000000000.0-seed0") == 1  # failed runs stay failed ...
    retry = sweep_cli(*command, "--retry-failed", cwd=tmp_path)
    retry.communicate(timeout=300)
    assert attempts("lr_max=1000000000.0-seed0") == 2  # ... unless asked
    assert attempts("lr_max=0.1-seed0") == 1  # finished runs are never run again


def _files_of(run: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}


def test_a_run_in_use_by_another_process_is_left_as_it_is(
    image_folder: Path, tmp_path: Path
) -> None:
    """A run that another process holds (a `train --resume` of it, started while its sweep was
    stopped) has not failed: the sweep wrote failed.txt into it under that process, and every
    rerun then counted it done and failed. It is left untouched (--retry-failed too), the sweep
    goes on with its other runs and names it at its end (exit 1); the same command continues
    it once that process has ended."""
    config = write_config(image_folder, tmp_path)
    args = ["sweep", "--config", str(config), "--seeds", "0-2", "--name", "b"]
    args += ["--out", str(tmp_path / "sw")]
    assert CliRunner().invoke(app, args).exit_code == 0
    folder = tmp_path / "sw" / "b"
    held, held_failed, free = runs_in(folder)
    for run in (held, held_failed, free):
        (run / runs.SUMMARY_FILE).unlink()  # stopped after its last checkpoint
    (held_failed / sweep_spec.FAILED_FILE).write_text("an earlier failure\n")
    with runs.locked(held), runs.locked(held_failed):  # this test, as another process would
        before = {run: _files_of(run) for run in (held, held_failed)}
        result = CliRunner().invoke(app, [*args, "--retry-failed"])
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            f"error: 2 run(s) left as they are, in use by another process: {held} (process "
            f"{os.getpid()}), {held_failed} (process {os.getpid()}); run the same command "
            "again once that process has ended to continue them\n"
        )
        assert {run: _files_of(run) for run in (held, held_failed)} == before
        answer = sweep_lib.sweep(
            config, seeds="0-2", name="b", out=tmp_path / "sw", retry_failed=True, log=None
        )
        holder = f"process {os.getpid()}"
        assert answer.busy == {held.name: holder, held_failed.name: holder}  # the API's answer
        assert {run: _files_of(run) for run in (held, held_failed)} == before
    assert f"{held.name}: in use by process {os.getpid()}; left as it is" in result.stdout
    assert (free / runs.SUMMARY_FILE).is_file()  # the sweep went on with its other runs
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.stderr
    assert "2 done already" in again.stdout  # the one finished, the one failed before
    rows = {r["run"]: r["status"] for r in read_csv(folder / sweep_results.RESULTS_FILE)}
    assert rows == {held.name: "finished", held_failed.name: "failed", free.name: "finished"}
    assert "resuming" in (folder / sweep_spec.LOGS_DIR / f"{held.name}.log").read_text()


def test_a_sweep_folder_never_takes_another_spec(image_folder: Path, tmp_path: Path) -> None:
    config = write_config(image_folder, tmp_path)
    first = sweep_cli("--config", str(config), "--name", "x", "--out", "sw", cwd=tmp_path)
    assert first.wait(timeout=300) == 0
    other = sweep_cli(
        "--config", str(config), "--seeds", "0-1", "--name", "x", "--out", "sw", cwd=tmp_path
    )
    _, err = other.communicate(timeout=300)
    assert other.returncode == 2
    assert err.count("\n") == 1 and "holds another sweep" in err and "seeds [0] there" in err


def test_a_sweep_folder_in_use_keeps_its_spec(image_folder: Path, tmp_path: Path) -> None:
    """Two sweeps started at once with one --name and other seeds: each found no sweep.yaml and
    wrote its own, and the one the lock refused left its spec (seeds [1]) over the other's runs
    (seed0), whose command then failed with 'holds another sweep'. Here this test holds the
    lock as the first sweep does: the second is refused before it reads or writes sweep.yaml."""
    config = write_config(image_folder, tmp_path)
    folder = tmp_path / "sw" / "r1"

    def sweep(seed: int) -> Result:
        args = ["sweep", "--config", str(config), "--seeds", str(seed), "--name", "r1"]
        return CliRunner().invoke(app, [*args, "--out", str(tmp_path / "sw")])

    in_use = f"{folder}: this sweep is in use by process {os.getpid()}; wait for it to end"
    folder.mkdir(parents=True)
    with runs.locked(folder, "this sweep"):  # the first sweep, before it wrote sweep.yaml
        refused = sweep(1)
        assert refused.exit_code == 1, refused.output
        assert refused.stderr.startswith(f"error: {in_use}") and refused.stderr.count("\n") == 1
        assert [p.name for p in folder.iterdir()] == [runs.LOCK_FILE]  # no sweep.yaml of its own
    # A sweep killed as it wrote sweep.yaml leaves the lock file and that temporary file.
    stale = folder / f".{sweep_spec.SPEC_FILE}{runs.TEMPORARY}{a_dead_pid()}"
    stale.write_text("seeds: [")
    first = sweep(0)
    assert first.exit_code == 0, first.stderr
    assert not stale.exists()
    spec = (folder / sweep_spec.SPEC_FILE).read_bytes()
    with runs.locked(folder, "this sweep"):  # the first sweep, continued
        refused = sweep(1)
        assert refused.exit_code == 1 and refused.stderr.startswith(f"error: {in_use}")
    assert (folder / sweep_spec.SPEC_FILE).read_bytes() == spec
    assert [run.name for run in runs_in(folder)] == ["seed0"]
    again = sweep(0)  # the first sweep's command continues its own sweep
    assert again.exit_code == 0 and "1 done already" in again.stdout, again.stderr
    other = sweep(1)
    assert other.exit_code == 2 and "holds another sweep (seeds [0] there, [1] now)" in other.stderr


@pytest.mark.parametrize(
    ("damage", "wrong"),
    [
        (
            {"grid": {"schedule.lr_max": 5}},
            "grid schedule.lr_max: expected a list of values (one or more), got 5",
        ),
        ({"grid": [1, 2]}, "grid: expected a mapping of keys to lists of values, got [1, 2]"),
        (
            {"grid": {"schedule.lr_max": [[0.1]]}},
            "grid: [0.1] is not a value schedule.lr_max takes",
        ),
        ({"grid": {"schedule.lr_mx": [0.1]}}, "grid: schedule.lr_mx: unknown key (did you mean"),
        ({"grid": {"schedule.lr_max": []}}, "grid schedule.lr_max: expected a list of values"),
        ({"seeds": 5}, "seeds: expected a list of seeds (one or more), got 5"),
        ({"seeds": "abc"}, "seeds: expected a list of seeds (one or more), got 'abc'"),
        ({"seeds": [0, True]}, "seeds: True is no seed; expected whole numbers"),
        ({"seeds": [0, 0]}, "seeds: 0 and 0 are the same value"),
        ({"config": 5}, "config: expected a mapping of config sections, got 5"),
        ({"config": {"train": {"epochs": "x"}}}, "config: train.epochs: input should be"),
        ({"other": 1}, "unknown key 'other'"),
        ("grid: {}\nseeds: [0]\n", "no config"),
        ("[1, 2]\n", "expected a mapping of config, grid, seeds, got [1, 2]"),
        ("seeds: [0\n", "not valid YAML"),
    ],
)
def test_a_damaged_sweep_yaml_is_named_with_what_is_wrong(
    image_folder: Path, tmp_path: Path, damage: dict | str, wrong: str
) -> None:
    """sweep.yaml is the tool's own file: damaged or edited into no spec, it is one line and
    exit 1, as a damaged run file is, for compare and for the sweep's own command (each shape
    crashed with its TypeError or AttributeError; `seeds: abc` was read as seeds a, b, c)."""
    config = write_config(image_folder, tmp_path)
    grid = ["--grid", "schedule.lr_max=0.1,0.2"]
    args = ["--config", str(config), *grid, "--name", "x", "--out", str(tmp_path / "sw")]
    spec = sweep_spec.make_spec(config_lib.load([config]), {"schedule.lr_max": [0.1, 0.2]}, [0])
    folder = tmp_path / "sw" / "x"
    with sweep_spec.open_folder(folder, spec):
        pass  # the sweep folder as its sweep made it
    spec_file = folder / sweep_spec.SPEC_FILE
    if isinstance(damage, dict):
        damage = yaml.safe_dump({**yaml.safe_load(spec_file.read_text()), **damage})
    spec_file.write_text(damage)
    for command in (["compare", str(folder), "--png", str(tmp_path / "c.png")], ["sweep", *args]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: {spec_file}: not a sweep spec ({wrong}")
        assert result.stderr.count("\n") == 1 and result.stderr.endswith(")\n"), result.stderr
    assert not (tmp_path / "c.png").exists() and not runs_in(folder)


@pytest.mark.parametrize("executor", [[], ["--devices", "cpu"]], ids=["local", "devices"])
def test_sigterm_stops_a_sweep_with_one_line(
    image_folder: Path, tmp_path: Path, executor: list[str]
) -> None:
    """The sweep's process says it stopped, once: a run in a process of its own stops quietly."""
    config = write_config(image_folder, tmp_path, epochs=30)
    command = ["--config", str(config), "--seeds", "0-1", "--out", "sw", *executor]
    process = sweep_cli(*command, cwd=tmp_path)
    wait_for(lambda: any(tmp_path.glob("sw/*/runs/*/checkpoints/last.pt")))
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.count("\n") == 1 and "run the same command again to continue" in err
    (results,) = tmp_path.glob("sw/*/results.csv")
    assert [r["status"] for r in read_csv(results)] == ["interrupted", "pending"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_sweep_stopped_while_its_run_process_starts_says_so_once(
    image_folder: Path, tmp_path: Path, signum: int
) -> None:
    """The signal reaches the run's process while it is still importing (spawn starts a fresh
    interpreter): it stops without a traceback, and the sweep says so in one line."""
    config = write_config(image_folder, tmp_path, epochs=30)
    process = sweep_cli("--config", str(config), "--out", "sw", "--devices", "cpu", cwd=tmp_path)
    wait_for(lambda: any(tmp_path.glob("sw/*/sweep.yaml")))
    time.sleep(0.5)  # the run's process has started; importing torch takes seconds
    assert not any(tmp_path.glob("sw/*/logs/*.log"))  # its run has not begun
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and "run the same command again to continue" in err


def test_run_processes_of_a_sweep_killed_while_they_start_do_not_train(
    image_folder: Path, tmp_path: Path
) -> None:
    """SIGKILL the sweep while its --devices processes start (spawn imports for seconds before a
    process can ask the kernel to tell it of its parent's death): none of them trains on as an
    orphan; each exits as soon as it finds its sweep gone, before its run begins."""
    config = write_config(image_folder, tmp_path, epochs=30)
    command = ["--config", str(config), "--seeds", "0-1", "--devices", "cpu,cpu", "--out", "sw"]
    process = sweep_cli(*command, cwd=tmp_path)
    children: list[int] = []

    def run_processes_started() -> bool:
        children[:] = child_pids(process.pid)  # with multiprocessing's resource tracker
        return sum("spawn_main" in _command_line(pid) for pid in children) == 2

    try:
        wait_for(run_processes_started, timeout=120)
        assert not any(tmp_path.glob("sw/*/logs/*.log"))  # still starting: no run has begun
        process.kill()
        process.wait()
        wait_for(lambda: not [pid for pid in children if is_running(pid)], timeout=120)
        assert not any(tmp_path.glob("sw/*/logs/*.log"))  # and none began after
    finally:
        for pid in children:  # a failing test leaves no orphans behind either
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)


def test_run_processes_die_with_a_sweep_that_ignores_sigterm(
    image_folder: Path, tmp_path: Path
) -> None:
    """A sweep started with SIGTERM ignored passes that on to its --devices processes, which
    then cannot hear the signal the kernel sends when the sweep dies: they are killed instead
    of training on as orphans."""
    config = write_config(image_folder, tmp_path, epochs=5000)  # runs that outlast the test
    command = ["--config", str(config), "--seeds", "0-1", "--devices", "cpu,cpu", "--out", "sw"]
    process = subprocess.Popen(
        [sys.executable, "-m", "cifar_supercon", "sweep", *command],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),
    )
    children: list[int] = []
    try:
        wait_for(lambda: len(list(tmp_path.glob("sw/*/logs/*.log"))) == 2, timeout=180)
        children[:] = child_pids(process.pid)
        process.kill()
        process.wait()
        wait_for(lambda: not [pid for pid in children if is_running(pid)], timeout=30)
    finally:
        for pid in children:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_hangup_of_a_devices_sweep_is_one_line(image_folder: Path, tmp_path: Path) -> None:
    """A closed terminal sends SIGHUP to every process of the job, multiprocessing's resource
    tracker too (it ignores only SIGINT and SIGTERM): the sweep says so in one line, and no
    tracker warnings or tracebacks follow."""
    config = write_config(image_folder, tmp_path, epochs=5000)
    command = ["--config", str(config), "--seeds", "0-1", "--devices", "cpu,cpu", "--out", "sw"]
    process = run_cli("sweep", *command, cwd=tmp_path, own_group=True)
    stop_job(
        process,
        lambda: len(list(tmp_path.glob("sw/*/logs/*.log"))) == 2,
        lambda: os.killpg(process.pid, signal.SIGHUP),  # the whole job, as a terminal does
        timeout=120,
    )


def stop_job(
    process: subprocess.Popen, ready: Callable[[], bool], stop: Callable[[], None], timeout: float
) -> None:
    """Once `ready`, `stop` a sweep whose two runs are under way (in a process group of its
    own, killed whole should it hang): it says so in one line, exit 130."""
    try:
        wait_for(ready, timeout=180)
        stop()
        _, err = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    (line,) = err.strip().splitlines()
    assert line.startswith("stopped: sweep interrupted with 2 run(s) unfinished"), line


def test_sigterm_stops_the_runs_of_a_devices_sweep_started_with_sigint_ignored(
    image_folder: Path, tmp_path: Path
) -> None:
    """A script's background job ignores SIGINT, and so did its sweep's run processes, which
    the sweep stopped with SIGINT alone: they trained on to their last epoch. They are sent
    SIGTERM, which they heed, and stop at once with their checkpoints."""
    config = write_config(image_folder, tmp_path, epochs=5000)
    command = ["--config", str(config), "--seeds", "0-1", "--devices", "cpu,cpu", "--name", "s"]
    process = subprocess.Popen(
        [sys.executable, "-m", "cifar_supercon", "sweep", *command, "--out", "sw"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        start_new_session=True,  # to clean up the whole job should it hang
    )
    folder = tmp_path / "sw" / "s"
    # the sweep alone, as `kill %1` does
    stop_job(process, lambda: len(in_progress(folder)) == 2, process.terminate, timeout=60)
    statuses = [r["status"] for r in read_csv(folder / sweep_results.RESULTS_FILE)]
    assert statuses == ["interrupted", "interrupted"]


def _deaf_run(task: tuple[str, str], device: str | None) -> str:
    """`work` for executors.Devices whose process heeds no stop signal: it marks that it has
    started (file task[0]) and returns once file task[1] exists, or after a minute."""
    ready, release = map(Path, task)
    for sig in processes.STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    ready.touch()
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return ready.name


def _sigterm_once_started(
    tasks: list[tuple[str, str]], release: bool
) -> tuple[threading.Thread, list[float]]:
    """A thread that sends SIGTERM to this process once every `_deaf_run` of `tasks` has
    started (the time it did so goes into the list), then, if `release`, lets them finish a
    second later."""
    sent: list[float] = []

    def signal_then_release() -> None:
        wait_for(lambda: all(Path(ready).exists() for ready, _ in tasks), timeout=180)
        sent.append(time.monotonic())
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
        if release:
            time.sleep(1)  # the sweep is stopping: its runs finish within its grace period
            Path(tasks[0][1]).touch()

    helper = threading.Thread(target=signal_then_release)
    helper.start()
    return helper, sent


def _no_loss(task: object, why: str) -> None:
    pytest.fail(f"a run process was lost: {why}")


def test_runs_that_finish_while_a_devices_sweep_stops_finish_it(tmp_path: Path) -> None:
    """Stopped, a sweep waits for its runs to save their checkpoints; runs that finished
    instead leave nothing to continue: the sweep ends as finished, not 'interrupted with 0
    run(s) unfinished'."""
    tasks = [(str(tmp_path / f"ready{i}"), str(tmp_path / "release")) for i in range(2)]
    results: list[str] = []
    helper, _ = _sigterm_once_started(tasks, release=True)
    try:
        executors.Devices(["cpu", "cpu"]).run(_deaf_run, tasks, results.append, _no_loss)
    finally:
        helper.join()
    assert sorted(results) == ["ready0", "ready1"]


def test_the_runs_of_a_stopped_devices_sweep_share_one_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run processes that do not stop are killed when the grace period ends: one period for
    all of them, not one each in turn (and the sweep waited on past it for as long as a run
    went on)."""
    monkeypatch.setattr(executors, "STOP_GRACE_SECONDS", 5)
    tasks = [(str(tmp_path / f"ready{i}"), str(tmp_path / "never")) for i in range(2)]
    helper, sent = _sigterm_once_started(tasks, release=False)
    with pytest.raises(Interrupted, match=r"with 2 run\(s\) unfinished"):
        try:
            executors.Devices(["cpu", "cpu"]).run(_deaf_run, tasks, print, _no_loss)
        finally:
            ended = time.monotonic()
            helper.join()
    assert 5 <= ended - sent[0] < 8


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def local_reference(config: Path, tmp_path: Path) -> list[dict[str, str]]:
    result = sweep_lib.sweep(
        config,
        grid={"schedule.lr_max": [0.1, 0.2], "optim.weight_decay": [0, 0.0005]},
        seeds=[0, 1, 2],
        out=tmp_path / "local",
        log=lambda _: None,
    )
    return read_csv(result.folder / sweep_results.RESULTS_FILE)


def comparable(rows: list[dict[str, str]]) -> list[tuple]:
    keep = ("run", "status", "test_accuracy", "best_test_accuracy", "epoch_reached_target")
    return [tuple(r[k] for k in keep) for r in rows]


def test_devices_executor_runs_processes_and_agrees(image_folder: Path, tmp_path: Path) -> None:
    config = write_config(image_folder, tmp_path)
    reference = local_reference(config, tmp_path)
    command = ["--config", str(config), *GRID, "--seeds", "0-2", "--devices", "cpu,cpu"]
    process = sweep_cli(*command, "--name", "d", "--out", "sw", cwd=tmp_path)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert comparable(read_csv(tmp_path / "sw" / "d" / "results.csv")) == comparable(reference)
    pids = {
        line.split()[1]
        for log in (tmp_path / "sw" / "d" / "logs").iterdir()
        for line in log.read_text().splitlines()
        if line.startswith("pid ")
    }
    assert len(pids) == 12  # each run in a process of its own
    with pytest.raises(UsageError):
        executors.parse_devices("0,gpu")


def test_a_killed_run_process_fails_its_run_and_the_sweep_goes_on(
    image_folder: Path, tmp_path: Path
) -> None:
    """A run's process SIGKILLed (as the out-of-memory killer does): that run is failed with
    the reason, the next runs, and --retry-failed resumes it from its checkpoint."""
    config = write_config(image_folder, tmp_path, epochs=12)
    command = ["--config", str(config), "--seeds", "0-1", "--devices", "cpu", "--name", "k"]
    process = sweep_cli(*command, "--out", "sw", cwd=tmp_path)
    folder = tmp_path / "sw" / "k"
    wait_for(lambda: bool(in_progress(folder)), timeout=300)
    (victim,) = in_progress(folder)
    log = folder / "logs" / f"{victim.name}.log"
    os.kill(int(log.read_text().split()[1]), signal.SIGKILL)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    rows = read_csv(folder / "results.csv")
    assert [(r["seed"], r["status"]) for r in rows] == [("0", "failed"), ("1", "finished")]
    assert rows[0]["reason"] == (
        "its process on device cpu was killed by SIGKILL (out of memory, or killed)"
    )
    again = sweep_cli(*command, "--out", "sw", "--retry-failed", cwd=tmp_path)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert [r["status"] for r in read_csv(folder / "results.csv")] == ["finished"] * 2
    assert "resuming" in log.read_text()


def test_a_run_in_a_process_of_its_own_decodes_a_folder_never_cached(tmp_path: Path) -> None:
    """`--devices` runs live in daemonic processes, which may not start decoding workers: a
    folder that no earlier run cached is decoded inside the run's own process."""
    fresh = write_image_folder(tmp_path / "fresh", train_per_class=8, test_per_class=2)
    config = write_config(fresh, tmp_path)
    process = sweep_cli("--config", str(config), "--devices", "cpu", "--out", "sw", cwd=tmp_path)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    (results,) = tmp_path.glob("sw/*/results.csv")
    assert [r["status"] for r in read_csv(results)] == ["finished"]


@pytest.mark.parametrize("option", [["--devices", "cpu,0"], ["--executor", "ray"]])
def test_an_executor_that_cannot_run_is_refused_before_the_sweep_folder(
    option: list[str], image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    config = write_config(image_folder, tmp_path)
    result = CliRunner().invoke(
        app, ["sweep", "--config", str(config), *option, "--out", str(tmp_path / "sw")]
    )
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "sw").exists()


class AllAtOnce:
    """Every run ends before the first is reported, as parallel runs can."""

    def run(
        self, work: executors.Work, tasks: list, done: executors.Done, lost: executors.Lost
    ) -> None:
        for result in [work(task, None) for task in tasks]:
            done(result)


def test_each_reported_run_has_its_own_count(image_folder: Path, tmp_path: Path) -> None:
    logged: list[str] = []
    sweep_lib.sweep(
        write_config(image_folder, tmp_path),
        grid={"schedule.lr_max": [0.1, 0.2]},
        out=tmp_path / "sw",
        executor=AllAtOnce(),
        log=logged.append,
    )
    assert [line.split()[0] for line in logged if line.startswith("[")] == ["[1/2]", "[2/2]"]


def test_a_sweep_without_finished_runs_prints_no_plots_line(
    image_folder: Path, tmp_path: Path
) -> None:
    config = write_config(image_folder, tmp_path)
    command = ["sweep", "--config", str(config), "--data-dir", str(tmp_path / "nowhere")]
    result = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "sw")])
    assert result.exit_code == 1 and "no run of the sweep finished" in result.stderr
    assert "plots:" not in result.stdout


def test_compare_prints_run_names_in_full(tmp_path: Path) -> None:
    """Run names share their first characters: a narrow table folds them, never cuts them."""
    names = [f"20261130-043931-a-config-with-a-long-name-{i}" for i in range(2)]
    for name in names:
        run = tmp_path / name
        run.mkdir()
        columns = ",".join(runs.METRIC_COLUMNS)
        (run / runs.METRICS_FILE).write_text(f"{columns}\n1,0.1,2.0,0.1,2.0,0.1,1.0\n")
        summary = {"test_accuracy": 0.1, "best_test_accuracy": 0.1, "train_seconds": 1.0}
        (run / runs.SUMMARY_FILE).write_text(json.dumps(summary))
    command = [sys.executable, "-m", "cifar_supercon", "compare", *names, "--png", "c.png"]
    env = {**os.environ, "COLUMNS": "80"}
    shown = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "…" not in shown.stdout
    rows = [line for line in shown.stdout.splitlines() if line.startswith("│")]
    first_column = [row.split("│")[1].strip() for row in rows]
    assert "".join(names) in "".join(first_column)
    # The same run twice, however spelled, is refused rather than shown as two runs.
    again = f"../{tmp_path.name}/{names[0]}"
    twice = subprocess.run(
        [*command[:4], names[0], again], cwd=tmp_path, capture_output=True, text=True
    )
    assert twice.returncode == 2
    assert twice.stderr == (
        f"error: compare: {names[0]} and {again}: one folder; name each run or sweep once\n"
    )


RAY_DRIVER = """
import sys
from cifar_supercon import executors, sweep
sweep(sys.argv[1], grid={"schedule.lr_max": [0.1, 0.2], "optim.weight_decay": [0, 0.0005]},
      seeds=[0, 1, 2], out=sys.argv[2], name="ray", executor=executors.Ray(num_cpus=2))
"""


def test_ray_executor_retries_a_killed_worker_and_agrees(
    image_folder: Path, tmp_path: Path
) -> None:
    """A local Ray of 2 CPUs; one worker SIGKILLed mid-run: Ray retries its task, which resumes
    the run, and results.csv equals the local executor's."""
    config = write_config(image_folder, tmp_path, epochs=12)
    reference = local_reference(config, tmp_path)
    driver = subprocess.Popen(
        [sys.executable, "-c", RAY_DRIVER, str(config), str(tmp_path / "sw")],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    folder = tmp_path / "sw" / "ray"
    wait_for(lambda: bool(in_progress(folder)), timeout=300)
    victim = in_progress(folder)[0]
    log = folder / "logs" / f"{victim.name}.log"
    pid = int(log.read_text().split()[1])
    os.kill(pid, signal.SIGKILL)
    _, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err[-2000:]
    attempts = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("pid ")]
    assert len(attempts) == 2 and attempts[0] == str(pid) != attempts[1]  # retried elsewhere
    assert "resuming" in log.read_text()
    rows = read_csv(folder / "results.csv")
    assert comparable(rows) == comparable(reference)


def test_compare_overlays_runs(image_folder: Path, tmp_path: Path) -> None:
    config = write_config(image_folder, tmp_path, epochs=3)
    result = sweep_lib.sweep(
        config,
        grid={"schedule.lr_max": [0.1, 0.2]},
        out=tmp_path / "sw",
        log=lambda _: None,
    )
    first, second = runs_in(result.folder)
    png = tmp_path / "cmp.png"
    cli = subprocess.run(
        [sys.executable, "-m", "cifar_supercon", "compare", str(first), str(second), "--png", png],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    with Image.open(png) as image:
        assert image.width > 600 and image.height > 400
    made = comparison.compare([first, second])
    accuracy_axis, lr_axis = made.figure.axes
    for line, run in zip(accuracy_axis.get_lines(), (first, second), strict=True):
        metrics = runs.read_metrics(run)
        assert list(line.get_xdata()) == [1, 2, 3]
        assert list(line.get_ydata()) == pytest.approx(
            [100 * float(r["test_acc"]) for r in metrics]
        )
    assert len(lr_axis.get_lines()) == 2
    _, rows = comparison.table(made.entries)
    assert [r[0] for r in rows] == [first.name, second.name]
    whole = comparison.compare([result.folder])  # a sweep: one entry per cell
    assert [e.label for e in whole.entries] == [
        f"{result.folder.name}: lr_max=0.1",
        f"{result.folder.name}: lr_max=0.2",
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "cifar_supercon", "compare", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "neither a run folder" in bad.stderr


def test_a_gpu_index_maps_through_the_callers_visible_devices() -> None:
    """--devices counts GPUs as this process sees them; each run's CUDA_VISIBLE_DEVICES must
    name the same physical GPU, not the index read as a physical number."""
    assert executors.visible_gpu("0", "2,3") == "2"
    assert executors.visible_gpu("1", "GPU-aaa, GPU-bbb") == "GPU-bbb"  # UUIDs too
    assert executors.visible_gpu("1", None) == executors.visible_gpu("1", "") == "1"


RAY_STOPPED_WHILE_RECORDING = """
from cifar_supercon import executors
from cifar_supercon.errors import Interrupted

recorded = []

def done(result):
    if len(recorded) == 1:
        raise KeyboardInterrupt  # Ctrl-C as the last result is being recorded
    recorded.append(result)

try:
    executors.Ray(num_cpus=1).run(lambda task, device: task, [1, 2], done, lambda t, why: None)
except Interrupted as e:
    print(e)
"""


def test_a_ray_sweep_stopped_as_its_last_result_is_recorded_counts_that_run(
    tmp_path: Path,
) -> None:
    """No task is pending then, but the last run's result is not in results.csv: one run is
    unfinished (the same command records it), not 'interrupted with 0 run(s) unfinished'. The
    local Ray it started leaves no session folder behind (Ray's default: /tmp/ray/session_*)."""

    def left() -> set[Path]:
        return {*Path("/tmp/ray").glob("session_*"), *Path("/tmp").glob("supercon-ray-*")}

    before = left()
    stopped = subprocess.run(
        [sys.executable, "-c", RAY_STOPPED_WHILE_RECORDING],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # a long one: Ray's sockets stay in /tmp
    )
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert stopped.stdout.startswith("sweep interrupted with 1 run(s) unfinished;")
    assert left() == before and not (tmp_path / "ray").exists()


def test_a_damaged_failed_txt_gives_one_bounded_line(tmp_path: Path) -> None:
    """failed.txt holds the tool's one line of UTF-8; bytes of another encoding or megabytes
    of zeros are read as one line's worth, escaped (a crash, or a 20 MB line on stderr)."""
    from cifar_supercon.sweep_results import MAX_REASON_CHARS, failure_reason

    path = tmp_path / "failed.txt"
    for content, reason in [
        (b"training loss became nan\n", "training loss became nan"),
        (b"bad\xff byte\nsecond line\n", "bad\\xff byte"),
        (b"", "(failed.txt is empty)"),
    ]:
        path.write_bytes(content)
        assert failure_reason(path) == reason
    path.write_bytes(b"\0" * 5_000_000)
    assert failure_reason(path) == "\\x00" * (MAX_REASON_CHARS // 4) + "..."
