"""Every row of docs/errors.md through the CLI: exit code, one line naming it, no traceback.

Plus durability: training subprocesses killed at random points resume to the same final metrics,
and a checkpoint write killed half-way leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import torch
import torchvision
import yaml
from conftest import (
    REPO,
    a_dead_pid,
    child_pids,
    is_running,
    run_cli,
    tiny_config,
    wait_for,
    write_image_folder,
)
from PIL import Image
from typer.testing import CliRunner

from cifar_supercon import api, cli, memory, runs, sweeps
from cifar_supercon import config as config_lib
from cifar_supercon.cli import app
from cifar_supercon.comparison import compare
from cifar_supercon.errors import UsageError
from cifar_supercon.text import one_line


@dataclass
class Case:
    """One row of docs/errors.md: a command line (built in a prepared folder) and its answer."""

    args: Callable[[Path, Path], list[str]]  # (workspace, tiny config path) -> argv
    code: int
    message: str  # must appear in stderr
    lines: int = 1  # stderr lines (config errors: one per problem)
    prepare: Callable[[Path, pytest.MonkeyPatch], None] = lambda ws, mp: None


def files(ws: Path, **contents: str) -> None:
    for name, text in contents.items():
        (ws / name).write_text(text)


# A byte that is not UTF-8 in a file name, as Python reads it (os.fsdecode(b"\\xff")); printed
# in messages as \\xff.
ODD_BYTE = "\udcff"


def broken_folder(kind: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def prepare(ws: Path, _: pytest.MonkeyPatch) -> None:
        root = write_image_folder(ws / "bad", train_per_class=2, test_per_class=1)
        if kind == "empty class":
            for f in (root / "train" / "boat").iterdir():
                f.unlink()
        elif kind == "corrupt":
            (root / "train" / "boat" / "boat_0000.png").write_bytes(b"\x89PNG not really")
        elif kind == "mixed sizes":
            Image.new("RGB", (28, 28)).save(root / "test" / "cloud" / "cloud_0000.png")
        elif kind == "huge image":  # past Pillow's decompression-bomb warning (89M pixels)
            Image.new("1", (12000, 12000)).save(root / "train" / "boat" / "boat_0000.png")
        elif kind == "no test split":
            for f in sorted((root / "test").rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            (root / "test").rmdir()
        elif kind == "class name not UTF-8":
            for split in ("train", "test"):
                (root / split / "boat").rename(root / split / f"bo{ODD_BYTE}at")
        elif kind == "no classes":
            for split in ("train", "test"):
                for f in sorted((root / split).rglob("*"), reverse=True):
                    f.unlink() if f.is_file() else f.rmdir()

    return prepare


def tiny_run(ws: Path, config: Path) -> Path:
    """A finished two-epoch run of the tiny config."""
    cfg = config_lib.load([config], {"train.epochs": 2})
    return Path(api.train(cfg, log=lambda _: None)["run_dir"])


def finished_run(ws: Path, _: pytest.MonkeyPatch) -> None:
    tiny_run(ws, ws / "tiny.yaml").rename(ws / "finished")


def width_changed_run(ws: Path, _: pytest.MonkeyPatch) -> None:
    run = tiny_run(ws, ws / "tiny.yaml")
    (run / "summary.json").unlink()  # as if it stopped before the end
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["model"]["width"] = 8
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    run.rename(ws / "edited")


def unfinished_run(ws: Path, name: str) -> Path:
    """A run of the tiny config stopped after its last epoch's checkpoint (summary removed)."""
    run = tiny_run(ws, ws / "tiny.yaml")
    (run / "summary.json").unlink()
    return run.rename(ws / name)


def edited_checkpoint(edit: Callable[[dict], None]) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A finished run's last.pt, edited, saved as ws/edited.pt."""

    def prepare(ws: Path, _: pytest.MonkeyPatch) -> None:
        payload = runs.load_checkpoint(tiny_run(ws, ws / "tiny.yaml") / "checkpoints" / "last.pt")
        edit(payload)
        torch.save(payload, ws / "edited.pt")

    return prepare


def checkpoint_without_config(ws: Path, _: pytest.MonkeyPatch) -> None:
    torch.save({"format": 1, "model": {}}, ws / "foreign.pt")


def damaged_checkpoint(ws: Path, _: pytest.MonkeyPatch) -> None:
    last = unfinished_run(ws, "damaged") / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    del payload["optimizer"]
    torch.save(payload, last)


def lost_checkpoint(ws: Path, _: pytest.MonkeyPatch) -> None:
    (unfinished_run(ws, "lost") / "checkpoints" / "last.pt").unlink()


def edited_config(ws: Path, _: pytest.MonkeyPatch) -> None:
    run = unfinished_run(ws, "edited-epochs")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["train"]["epochs"] = 5
    (run / "config.yaml").write_text(yaml.safe_dump(saved))


def data_copy(ws: Path, name: str) -> Path:
    """The tiny config's data copied to ws/name (without its cache)."""
    source = Path(yaml.safe_load((ws / "tiny.yaml").read_text())["data"]["root"])
    return Path(shutil.copytree(source, ws / name, ignore=shutil.ignore_patterns(".supercon-*")))


def renamed_classes(ws: Path, _: pytest.MonkeyPatch) -> None:
    """A finished run, and a copy of its data whose class 'boat' is now called 'ship'."""
    tiny_run(ws, ws / "tiny.yaml").rename(ws / "trained")
    data_copy(ws, "renamed")
    for split in ("train", "test"):
        (ws / "renamed" / split / "boat").rename(ws / "renamed" / split / "ship")


def one_image_replaced(ws: Path, _: pytest.MonkeyPatch) -> None:
    """A stopped run, and a copy of its data with the same classes but one training image
    changed: the same folder, as far as names go."""
    unfinished_run(ws, "stopped")
    image = sorted((data_copy(ws, "changed") / "train" / "boat").iterdir())[0]
    Image.new("RGB", (32, 32), (1, 2, 3)).save(image)


HELD: list[int] = []  # lock file descriptors held by the test process (closed at exit)


def held_by_4242(run: Path) -> None:
    """`run` locked by this test, its lock file naming process 4242."""
    fd = os.open(run / runs.LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, b"4242")
    HELD.append(fd)


def run_in_use(ws: Path, _: pytest.MonkeyPatch) -> None:
    """An unfinished run that another process (here: this test) is writing."""
    run = tiny_run(ws, ws / "tiny.yaml")
    (run / "summary.json").unlink()
    held_by_4242(run.rename(ws / "busy"))


def sweep_run_in_use(ws: Path, _: pytest.MonkeyPatch) -> None:
    """Sweep sw/x of the tiny config, its one run unfinished and held by another process."""
    sweeps.sweep(ws / "tiny.yaml", name="x", out=ws / "sw", log=None)
    run = ws / "sw" / "x" / "runs" / "seed0"
    (run / "summary.json").unlink()
    held_by_4242(run)


def finished_sweep(ws: Path, _: pytest.MonkeyPatch) -> None:
    """Sweep sw/x of the tiny config, its one run finished."""
    sweeps.sweep(ws / "tiny.yaml", name="x", out=ws / "sw", log=None)


SWEEP_S1 = ["sweep", "-c", "tiny.yaml", "-g", "schedule.lr_max=0.2,0.4", "--name", "s1"]


PENDING = "sw/s1/runs/lr_max=0.4-seed0"  # the run damaged_sweep removes


def damaged_sweep(
    entry: str, make: Callable[[Path], None]
) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """Sweep sw/s1 (SWEEP_S1, two runs) with one run (PENDING) pending again, and its `entry`
    replaced by what `make` makes (a folder there is removed first)."""

    def prepare(ws: Path, _: pytest.MonkeyPatch) -> None:
        grid = ["schedule.lr_max=0.2,0.4"]
        sweeps.sweep(ws / "tiny.yaml", grid=grid, name="s1", out=ws / "sw", log=None)
        folder = ws / "sw" / "s1"
        shutil.rmtree(ws / PENDING)
        path = folder / entry
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        make(path)

    return prepare


def not_a_training_run(ws: Path, _: pytest.MonkeyPatch) -> None:
    """A folder with a config.yaml that no training run wrote (a find-lr folder has one)."""
    (ws / "notarun").mkdir()
    shutil.copy(ws / "tiny.yaml", ws / "notarun" / "config.yaml")


def run_with_folder_for(name: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """An unfinished run whose file `name` was replaced by a folder."""

    def prepare(ws: Path, _: pytest.MonkeyPatch) -> None:
        run = unfinished_run(ws, "stopped")
        (run / name).unlink()
        (run / name).mkdir()

    return prepare


def run_with_file_for(name: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """An unfinished run whose folder `name` was replaced by a file."""

    def prepare(ws: Path, _: pytest.MonkeyPatch) -> None:
        run = unfinished_run(ws, "stopped")
        shutil.rmtree(run / name)
        (run / name).write_text("x\n")

    return prepare


def run_with_config(text: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """An unfinished run whose config.yaml was edited to `text` (appended)."""

    def prepare(ws: Path, _: pytest.MonkeyPatch) -> None:
        with open(unfinished_run(ws, "edited") / "config.yaml", "a") as f:
            f.write(text)

    return prepare


def lock_linked_to_a_device(ws: Path, _: pytest.MonkeyPatch) -> None:
    lock = unfinished_run(ws, "stopped") / runs.LOCK_FILE
    lock.unlink()
    lock.symlink_to("/dev/null")


def sweep_named_x_with(spec: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A sweep folder sw/x (without runs) whose sweep.yaml holds `spec`."""

    def prepare(ws: Path, _: pytest.MonkeyPatch) -> None:
        (ws / "sw" / "x").mkdir(parents=True)
        (ws / "sw" / "x" / "sweep.yaml").write_text(spec)

    return prepare


sweep_named_x = sweep_named_x_with("config: {}\ngrid: {}\nseeds: [5]\n")


def damaged_run(kind: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A run folder whose metrics.csv or summary.json is not what this tool wrote."""

    def prepare(ws: Path, _: pytest.MonkeyPatch) -> None:
        run = ws / "damaged"
        run.mkdir()
        header = ",".join(runs.METRIC_COLUMNS)
        metrics = {
            "metrics": "epoch,loss\n1,2.0\n",
            "cut": f"{header}\n1,0.1,2,0.1,2,0.1,1\n2,0.1,2,0.1,2.1",  # a write cut short
        }.get(kind, f"{header}\n1,0.1,2,0.1,2,0.1,1\n")
        (run / "metrics.csv").write_text(metrics)
        (run / "summary.json").write_text("{not json" if kind == "summary" else "{}")

    return prepare


def deep_yaml(ws: Path, _: pytest.MonkeyPatch) -> None:
    (ws / "deep.yaml").write_text("[" * 20_000)


def laughs_yaml(ws: Path, _: pytest.MonkeyPatch) -> None:
    """A "billion laughs": 22 levels of two aliases each, 2**23 values once expanded."""
    lines = ["a0: &a0 {x: 1, y: 1}"]
    lines += [f"a{i}: &a{i} {{x: *a{i - 1}, y: *a{i - 1}}}" for i in range(1, 23)]
    (ws / "laughs.yaml").write_text("\n".join([*lines, "train: *a22"]) + "\n")


def pickled_payload(ws: Path, _: pytest.MonkeyPatch) -> None:
    torch.save({"format": 1, "model": Payload(ws / "pwned")}, ws / "evil.pt")


class Payload:
    """Unpickling this would create a file: the loader must refuse before that happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def offline(ws: Path, mp: pytest.MonkeyPatch) -> None:
    (ws / "empty").mkdir()
    # Nothing listens on port 9 of this machine: the download fails at once, online or not.
    mp.setattr(torchvision.datasets.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")


def no_gpu(ws: Path, mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch.cuda, "is_available", lambda: False)


def truncated_checkpoint(ws: Path, _: pytest.MonkeyPatch) -> None:
    run = tiny_run(ws, ws / "tiny.yaml")
    data = (run / "checkpoints" / "last.pt").read_bytes()
    (ws / "truncated.pt").write_bytes(data[: len(data) // 2])


CPUS = os.cpu_count() or 1
NO_USER = "nouser-of-supercon"  # `~nouser-of-supercon`: the home folder of no user


def show(ws: Path, *args: str) -> list[str]:
    return ["config", "show", *args]


def train(ws: Path, config: Path, *args: str) -> list[str]:
    return ["train", "--config", str(config), "--no-progress", *args]


CASES = {
    # config and usage: exit 2
    "config: missing file": Case(
        lambda ws, c: show(ws, "--config", str(ws / "nope.yaml")),
        2,
        "nope.yaml: config file not found",
    ),
    "config: a file without end": Case(
        lambda ws, c: show(ws, "--config", "/dev/zero"),
        2,
        "/dev/zero: cannot read the config file (more than 1,048,576 bytes; a config is a few kB "
        "of YAML)",
    ),
    "config: a file that is a link loop": Case(
        lambda ws, c: show(ws, "--config", "loop.yaml"),
        2,
        "loop.yaml: cannot read the config file (Too many levels of symbolic links)",
        prepare=lambda ws, _: (ws / "loop.yaml").symlink_to("loop.yaml"),
    ),
    "config: not YAML": Case(
        lambda ws, c: show(ws, "--config", str(ws / "broken.yaml")),
        2,
        "broken.yaml: line 3: not valid YAML",
        prepare=lambda ws, _: files(ws, **{"broken.yaml": "train:\n  epochs: [1,\n"}),
    ),
    "config: not a mapping": Case(
        lambda ws, c: show(ws, "--config", str(ws / "list.yaml")),
        2,
        "list.yaml: the top level must be a mapping",
        prepare=lambda ws, _: files(ws, **{"list.yaml": "- 1\n"}),
    ),
    "config: unknown key": Case(
        lambda ws, c: show(ws, "--set", "schedule.lr_mx=0.3"),
        2,
        "--set: schedule.lr_mx: unknown key (did you mean 'lr_max'?)",
    ),
    "config: wrong type": Case(
        lambda ws, c: show(ws, "--set", "train.epochs=many"),
        2,
        "--set: train.epochs: input should be a valid integer",
    ),
    "config: lr <= 0": Case(
        lambda ws, c: show(ws, "--lr-max", "0"),
        2,
        "--lr-max: schedule.lr_max: expected a positive number or 'auto' (got 0)",
    ),
    "config: lr_min >= lr_max": Case(
        lambda ws, c: show(ws, "--lr-min", "0.5", "--lr-max", "0.4"),
        2,
        "schedule.lr_min: must be less than schedule.lr_max (0.4), got 0.5",
    ),
    "config: peak_epoch outside (0, epochs)": Case(
        lambda ws, c: show(ws, "--peak-epoch", "30"),
        2,
        "--peak-epoch: schedule.peak_epoch: must be between 0 and train.epochs (24), exclusive",
    ),
    "config: epochs < 1": Case(
        lambda ws, c: show(ws, "--epochs", "0"),
        2,
        "--epochs: train.epochs: input should be greater than or equal to 1",
    ),
    "config: batch size < 1": Case(
        lambda ws, c: show(ws, "--batch-size", "0"),
        2,
        "--batch-size: train.batch_size: input should be greater than or equal to 1",
    ),
    "config: batch size larger than the training set": Case(
        lambda ws, c: train(ws, c, "--batch-size", "1000"),
        2,
        "error: --batch-size: train.batch_size: 1000 is larger than the training set (72 images)",
    ),
    "config: cutout outside [0, 32]": Case(
        lambda ws, c: show(ws, "--set", "data.cutout=40"),
        2,
        "--set: data.cutout: input should be less than or equal to 32",
    ),
    "config: momentum outside (0, 1)": Case(
        lambda ws, c: show(ws, "--set", "schedule.momentum_max=1"),
        2,
        "--set: schedule.momentum_max: input should be less than 1",
    ),
    "config: unknown policy": Case(
        lambda ws, c: show(ws, "--set", "schedule.policy=zigzag"),
        2,
        "--set: schedule.policy: input should be 'one_cycle', 'triangular'",
    ),
    "config: unknown source": Case(
        lambda ws, c: show(ws, "--set", "data.source=s3"),
        2,
        "--set: data.source: input should be 'auto', 'cifar10' or 'folder'",
    ),
    "config: unknown device": Case(
        lambda ws, c: show(ws, "--device", "tpu"),
        2,
        "--device: train.device: input should be 'auto', 'cpu' or 'cuda'",
    ),
    "config: malformed --set": Case(
        lambda ws, c: show(ws, "--set", "epochs"),
        2,
        "--set 'epochs': expected KEY=VALUE with a dotted key",
    ),
    "config: key set twice": Case(
        lambda ws, c: show(ws, "--set", "train.epochs=3", "--epochs", "4"),
        2,
        "--epochs: train.epochs: conflicts with --set train.epochs=3",
    ),
    "config: several problems at once": Case(
        lambda ws, c: show(ws, "--set", "train.epochs=0", "--set", "data.cutout=99"),
        2,
        "--set: data.cutout: input should be less than or equal to 32",
        lines=2,
    ),
    "config: a boolean where a number is wanted": Case(
        lambda ws, c: show(ws, "--set", "model.width=yes"),
        2,
        "--set: model.width: expected a number, not a boolean (got True)",
    ),
    "config: a boolean where a string is wanted": Case(
        lambda ws, c: show(ws, "--set", "name=true"),
        2,
        "--set: name: expected a string, not a boolean (got True)",
    ),
    "config: a non-finite number": Case(
        lambda ws, c: show(ws, "--set", "optim.weight_decay=.inf"),
        2,
        "--set: optim.weight_decay: input should be a finite number (got inf)",
    ),
    "config: seed out of range": Case(
        lambda ws, c: show(ws, "--seed", "99999999999999999999"),
        2,
        "--seed: seed: input should be less than or equal to 4294967295",
    ),
    "config: a key in the wrong section": Case(
        lambda ws, c: show(ws, "--set", "optim.batch_sise=3"),
        2,
        "--set: optim.batch_sise: unknown key (did you mean 'train.batch_size'?)",
    ),
    "config: a YAML key that is a list": Case(
        lambda ws, c: show(ws, "--config", str(ws / "listkey.yaml")),
        2,
        "listkey.yaml: line 1: not valid YAML (key ['a', 'b'] is not a name",
        prepare=lambda ws, _: files(ws, **{"listkey.yaml": "[a, b]: 1\n"}),
    ),
    "usage: unknown option": Case(
        lambda ws, c: ["train", "--bogus"], 2, "supercon train: No such option: --bogus"
    ),
    "usage: option value of the wrong type": Case(
        lambda ws, c: ["train", "--epochs=ten"],
        2,
        "'ten'",  # the value, in click's words ('ten' is not ...) or typer's (... (got 'ten'))
    ),
    "usage: an option of one value given twice": Case(
        lambda ws, c: ["train", "-c", str(c), "--epochs", "3", "--lr-max=0.2", "--epochs=4"],
        2,
        "supercon train: --epochs is given 2 times ('3', '4'); give it once "
        "(see supercon train --help)",
    ),
    "usage: an option given twice to a command of a group": Case(
        lambda ws, c: ["config", "show", "-c", str(c), "--seed", "1", "--seed", "2"],
        2,
        "supercon config show: --seed is given 2 times ('1', '2'); give it once",
    ),
    "usage: --device cuda without a GPU": Case(
        lambda ws, c: train(ws, c, "--device", "cuda"),
        2,
        "error: --device: train.device: cuda, but no CUDA GPU is available to torch",
        prepare=no_gpu,
    ),
    "config: peak epoch rounds to no step": Case(
        lambda ws, c: ["plot-schedule", "--peak-epoch", "0.005", "--out", str(ws / "s.png")],
        2,
        "schedule.peak_epoch: 0.005 puts the peak at step -1, outside 1..2326",
    ),
    "config: peak epoch rounds to no step, found when the data loads": Case(
        lambda ws, c: train(ws, c, "--peak-epoch", "0.1"),  # 5 steps per epoch
        2,
        "schedule.peak_epoch: 0.1 puts the peak at step -1, outside 1..8 (5 steps per epoch)",
    ),
    "config: multistep milestones on one step": Case(
        lambda ws, c: train(
            ws, c, "--set", "schedule.policy=multistep", "--set", "schedule.milestones=[1.01,1.02]"
        ),
        2,
        "schedule.milestones: 1.01, 1.02 (epochs) fall on steps 5, 5 at 5 steps per epoch",
    ),
    "usage: --cycles with a one-cycle policy": Case(
        lambda ws, c: ["plot-schedule", "--cycles", "2", "--out", str(ws / "s.png")],
        2,
        "--cycles 2: only for the cyclical policies",
    ),
    # data: exit 1
    "data: missing root": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "nowhere")),
        1,
        "nowhere does not exist",
    ),
    "data: download impossible (offline)": Case(
        lambda ws, c: train(ws, c, "--set", "data.source=auto", "--data-dir", str(ws / "empty")),
        1,
        "could not download CIFAR-10 to",
        prepare=offline,
    ),
    "data: folder without classes": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "bad")),
        1,
        "train: no class folders",
        prepare=broken_folder("no classes"),
    ),
    "data: empty class": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "bad")),
        1,
        "bad/train/boat: no PNG or JPEG images in this class folder",
        prepare=broken_folder("empty class"),
    ),
    "data: corrupt image": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "bad")),
        1,
        "bad/train/boat/boat_0000.png: cannot decode the image",
        prepare=broken_folder("corrupt"),
    ),
    "data: mixed sizes": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "bad")),
        1,
        "cloud_0000.png: image is 28x28, expected 32x32",
        prepare=broken_folder("mixed sizes"),
    ),
    "data: a huge image": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "bad")),
        1,
        "boat_0000.png: image is 12000x12000, expected 32x32",
        prepare=broken_folder("huge image"),
    ),
    "data: missing test split": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "bad")),
        1,
        "bad/test: missing",
        prepare=broken_folder("no test split"),
    ),
    "data: data root is a file": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "a-file")),
        1,
        "a-file is a file, not a folder",
        prepare=lambda ws, _: files(ws, **{"a-file": "not a folder"}),
    ),
    # runs and checkpoints
    "data: classes differ from the checkpoint's": Case(
        lambda ws, c: [
            "evaluate",
            str(ws / "trained" / "checkpoints" / "last.pt"),
            "--data-dir",
            str(ws / "renamed"),
        ],
        1,
        "renamed: classes apple, cloud, ship do not match",
        prepare=renamed_classes,
    ),
    "data: resume on other images with the same classes": Case(
        lambda ws, c: ["train", "--resume", str(ws / "stopped"), "--data-dir", str(ws / "changed")],
        1,
        "changed: its train images are not those",
        prepare=one_image_replaced,
    ),
    "usage: --resume on a folder that is no training run": Case(
        lambda ws, c: ["train", "--resume", str(ws / "notarun")],
        2,
        "notarun: not a training run (metrics.csv and checkpoints/last.pt are missing); to "
        "train with its config: --config",
        prepare=not_a_training_run,
    ),
    "usage: --out inside a run": Case(
        lambda ws, c: ["train", "--config", str(c), "--out", str(ws / "finished" / "plots")],
        2,
        "finished/plots: inside the run ",
        prepare=finished_run,
    ),
    "usage: an output file inside a run": Case(
        lambda ws, c: ["plot-schedule", "--csv", "finished/metrics.csv"],
        2,
        "--csv finished/metrics.csv: inside the run ",
        prepare=finished_run,
    ),
    "usage: an output file inside a sweep or find-lr folder": Case(
        lambda ws, c: ["plot-schedule", "--csv", "sw/x/sweep.yaml"],
        2,
        "--csv sw/x/sweep.yaml: inside the sweep folder ",
        prepare=finished_sweep,
    ),
    "runs: a run file replaced by a folder": Case(
        lambda ws, c: ["train", "--resume", str(ws / "stopped")],
        1,
        "stopped/metrics.csv: not a file; the run's metrics.csv belongs here",
        prepare=run_with_folder_for("metrics.csv"),
    ),
    "runs: the report replaced by a folder": Case(
        lambda ws, c: ["train", "--resume", str(ws / "stopped")],
        1,
        "stopped/report.md: not a file; the run's report.md belongs here",
        prepare=run_with_folder_for("report.md"),
    ),
    "runs: the plots folder replaced by a file": Case(
        lambda ws, c: ["train", "--resume", str(ws / "stopped")],
        1,
        "stopped/plots: not a folder; the run's plots/ belongs here",
        prepare=run_with_file_for("plots"),
    ),
    "runs: config.yaml made invalid YAML before --resume": Case(
        lambda ws, c: ["train", "--resume", str(ws / "edited")],
        1,
        "edited/config.yaml: the run's config no longer loads; restore it, or start a new run",
        prepare=run_with_config("train: [\n"),
        lines=2,
    ),
    "runs: config.yaml given an unknown key before --resume": Case(
        lambda ws, c: ["train", "--resume", str(ws / "edited")],
        1,
        "edited/config.yaml: the run's config no longer loads; restore it, or start a new run",
        prepare=run_with_config("colour: blue\n"),
        lines=2,
    ),
    "runs: the lock file replaced by a folder": Case(
        lambda ws, c: ["train", "--resume", str(ws / "stopped")],
        1,
        "stopped/.lock: cannot be opened as this run's lock file (Is a directory)",
        prepare=run_with_folder_for(".lock"),
    ),
    "runs: the lock file a link to a device": Case(
        lambda ws, c: ["train", "--resume", str(ws / "stopped")],
        1,
        "stopped/.lock: cannot be used as this run's lock file (not a regular file)",
        prepare=lock_linked_to_a_device,
    ),
    "runs: a checkpoint without its normalisation": Case(
        lambda ws, c: ["evaluate", str(ws / "edited.pt")],
        1,
        "edited.pt: damaged or not a supercon checkpoint (KeyError: 'normalization')",
        prepare=edited_checkpoint(lambda payload: payload.pop("normalization")),
    ),
    "runs: a checkpoint whose class list does not fit its weights": Case(
        lambda ws, c: ["evaluate", str(ws / "edited.pt")],
        1,
        "edited.pt: weights do not fit ResNet-9 width 4 with 2 outputs, one per class (size "
        "mismatch for fc.weight",
        prepare=edited_checkpoint(lambda payload: payload.update(classes=["a", "b"])),
    ),
    "runs: a checkpoint whose config no longer validates": Case(
        lambda ws, c: ["evaluate", str(ws / "edited.pt")],
        1,
        "edited.pt: train.bogus: unknown key (allowed: ",
        prepare=edited_checkpoint(lambda payload: payload["config"]["train"].update(bogus=1)),
    ),
    "runs: a checkpoint without a config": Case(
        lambda ws, c: ["evaluate", str(ws / "foreign.pt")],
        1,
        "foreign.pt: not a supercon checkpoint (it carries no config)",
        prepare=checkpoint_without_config,
    ),
    "runs: a damaged checkpoint on resume": Case(
        lambda ws, c: ["train", "--resume", str(ws / "damaged"), "--no-progress"],
        1,
        "damaged/checkpoints/last.pt: damaged or not this run's checkpoint (KeyError: 'optimizer')",
        prepare=damaged_checkpoint,
    ),
    "runs: --resume after last.pt was lost": Case(
        lambda ws, c: ["train", "--resume", str(ws / "lost"), "--no-progress"],
        1,
        "lost: checkpoints/last.pt is missing but metrics.csv records 2 epoch(s)",
        prepare=lost_checkpoint,
    ),
    "runs: config.yaml edited before --resume": Case(
        # checked before the data loads: the data folder given here does not even exist
        lambda ws, c: ["train", "--resume", str(ws / "edited-epochs"), "--data-dir", str(ws / "x")],
        1,
        "the run's config.yaml no longer matches its checkpoint (train.epochs is 2 there, 5 now)",
        prepare=edited_config,
    ),
    "runs: config.yaml emptied before --resume": Case(
        lambda ws, c: ["train", "--resume", str(ws / "emptied")],
        1,
        "emptied/config.yaml: empty; this tool writes every key of the run's config there",
        prepare=lambda ws, _: (unfinished_run(ws, "emptied") / "config.yaml").write_text("\n"),
    ),
    "runs: output folder not writable": Case(
        lambda ws, c: train(ws, c, "--out", str(ws / "a-file" / "runs")),
        1,
        "a-file/runs: cannot create a run directory here",
        prepare=lambda ws, _: files(ws, **{"a-file": "not a folder"}),
    ),
    "runs: --out is a file": Case(
        lambda ws, c: train(ws, c, "--out", str(ws / "a-file")),
        1,
        "a-file: cannot create a run directory here (a file, not a folder); choose another --out",
        prepare=lambda ws, _: files(ws, **{"a-file": "not a folder"}),
    ),
    "runs: --out is a device": Case(
        lambda ws, c: train(ws, c, "--out", "/dev/null"),
        1,
        "/dev/null: cannot create a run directory here (not a folder); choose another --out",
    ),
    "runs: --resume of a folder that is not a run": Case(
        lambda ws, c: ["train", "--resume", str(ws)], 2, "not a run directory (no config.yaml)"
    ),
    "runs: resuming a finished run": Case(
        lambda ws, c: ["train", "--resume", str(ws / "finished")],
        2,
        "this run has finished (summary.json exists)",
        prepare=finished_run,
    ),
    "runs: a run in use by another process": Case(
        lambda ws, c: ["train", "--resume", str(ws / "busy"), "--no-progress"],
        1,
        "busy: this run is in use by process 4242; wait for it to end or stop it",
        prepare=run_in_use,
    ),
    "sweep: unknown grid key": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--grid", "schedule.lr_mx=0.1,0.2"],
        2,
        "--grid: schedule.lr_mx: unknown key (did you mean 'lr_max'?)",
    ),
    "sweep: a value listed twice (in any spelling)": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--grid", "schedule.lr_max=0.1,1e-1"],
        2,
        "grid schedule.lr_max: 0.1 and '1e-1' are the same value; list each once",
    ),
    "sweep: a value listed twice in two YAML spellings": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--grid", "model.width=0x10,16"],
        2,
        "--grid 'model.width=0x10,16': '0x10' and '16' are the same value; list each once",
    ),
    "sweep: a grid value its key cannot take": Case(
        lambda ws, c: [
            "sweep",
            *("--config", str(c), "--grid", "schedule.milestones=[{a: 1}],[3]"),
            *("--out", str(ws / "sw")),
        ],
        2,
        "--grid 'schedule.milestones=[{a: 1}],[3]': [{a: 1}] is not a value schedule.milestones "
        "takes; expected a number, a string, true/false or null, or a list of them such as "
        "[12, 18]",
    ),
    "sweep: an empty grid value": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--grid", "schedule.lr_max=0.1,,0.2"],
        2,
        "--grid 'schedule.lr_max=0.1,,0.2': a value is empty",
    ),
    "sweep: a grid key given twice": Case(
        lambda ws, c: [
            "sweep",
            "-c",
            str(c),
            "-g",
            "schedule.lr_max=0.1",
            "-g",
            "schedule.lr_max=0.2",
        ],
        2,
        "--grid schedule.lr_max: given twice; list all its values in one --grid",
    ),
    "sweep: a grid key also set to one value": Case(
        lambda ws, c: ["sweep", "-c", str(c), "-g", "train.epochs=1,2", "--epochs", "3"],
        2,
        "train.epochs is both a grid key and set to one value: give it once",
    ),
    "sweep: where the data is, as a grid key": Case(
        lambda ws, c: ["sweep", "-c", str(c), "-g", "data.root=a,b"],
        2,
        "--grid data.root: not a grid key (where the data is and which device runs it",
    ),
    "sweep: where runs go, as a grid key": Case(
        lambda ws, c: ["sweep", "-c", str(c), "-g", "out=a/b,../../c"],
        2,
        "--grid out: not a grid key (a sweep's runs go into its folder, named after their grid "
        "values and seed: choose the folder with --out and --name)",
    ),
    "sweep: two cells with one run folder": Case(
        lambda ws, c: ["sweep", "-c", str(c), "-g", "schedule.anneal=a/b,a_b", "--out", "sw"],
        2,
        "grid cells 'anneal=a/b' and 'anneal=a_b' would share the run folder anneal=a_b-seed0; "
        "give values that differ in letters or digits",
    ),
    "sweep: a cell whose run folder name is too long": Case(
        lambda ws, c: ["sweep", "-c", str(c), "-g", f"schedule.anneal=cos,{'x' * 260}"],
        2,
        f"grid cell 'anneal={'x' * 260}' would name its run folders with 273 characters, more "
        "than file names allow (251); give shorter values or fewer grid keys",
    ),
    "sweep: bad seeds": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--seeds", "3-1"],
        2,
        "--seeds '3-1': expected seeds like 0-4, 0,1,2 or 0-2,7 (0 <= seed <= 4294967295)",
    ),
    "sweep: a seed beyond 2**32 - 1": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--seeds", "0-99999999999"],
        2,
        "--seeds '0-99999999999': expected seeds like",
    ),
    "sweep: too many seeds": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--seeds", "0-200000"],
        2,
        "--seeds '0-200000': more than 100,000 seeds",
    ),
    "sweep: too many runs": Case(
        lambda ws, c: [
            "sweep",
            "--config",
            str(c),
            "--out",
            str(ws / "sw"),
            "--grid",
            "finder.num_iters=" + ",".join(map(str, range(1, 12))),
            "--seeds",
            "0-9999",
        ],
        2,
        "11 grid cell(s) x 10,000 seed(s) = 110,000 runs, more than a sweep may hold (100,000); "
        "give fewer grid values or seeds",
    ),
    "sweep: --ray-address without the Ray executor": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--ray-address", "x:1"],
        2,
        "--ray-address is for --executor ray",
    ),
    "sweep: --devices names a GPU that is not there": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--devices", "0"],
        2,
        f"--devices '0': no CUDA GPU 0 is available to torch {torch.__version__} (GPUs here: "
        "none); use --devices cpu (slow) or the indices of GPUs that exist",
        prepare=no_gpu,
    ),
    "sweep: --executor ray without Ray": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--executor", "ray"],
        2,
        "--executor ray needs Ray: pip install 'cifar-supercon[ray]'",
        prepare=lambda ws, mp: mp.setitem(sys.modules, "ray", None),  # as if not installed
    ),
    "sweep: --devices empty": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--devices", ""],
        2,
        "--devices '': expected comma-separated GPU indices or 'cpu'",
    ),
    "sweep: --out inside a run": Case(
        lambda ws, c: ["sweep", "-c", str(c), "--out", str(ws / "finished" / "sweeps")],
        2,
        "finished/sweeps: inside the run ",
        prepare=finished_run,
    ),
    "sweep: --out is a file": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--out", str(c)],
        1,
        "cannot create the sweep folder here (Not a directory); choose another --out",
    ),
    "sweep: a folder of the sweep replaced by a file": Case(
        lambda ws, c: [*SWEEP_S1, "--out", "sw"],
        1,
        "sw/s1/plots: not a folder; the sweep's plots/ belongs here",
        prepare=damaged_sweep("plots", Path.touch),
    ),
    "sweep: a run in use by another process": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--name", "x", "--out", str(ws / "sw")],
        1,
        "x/runs/seed0 (process 4242); run the same command again once that process has ended "
        "to continue them",
        prepare=sweep_run_in_use,
    ),
    "sweep: no run finished": Case(
        lambda ws, c: [
            "sweep",
            "--config",
            str(c),
            "--grid",
            "schedule.lr_max=-1,-2",
            "--out",
            str(ws / "sw"),
        ],
        1,
        "no run of the sweep finished (2 failed; the first: ",
    ),
    "compare: summary.json damaged": Case(
        lambda ws, c: ["compare", str(ws / "damaged"), "--png", str(ws / "c.png")],
        1,
        "damaged/summary.json: not valid JSON (JSONDecodeError",
        prepare=damaged_run("summary"),
    ),
    "compare: summary.json of another tool": Case(
        lambda ws, c: ["compare", str(ws / "damaged"), "--png", str(ws / "c.png")],
        1,
        "damaged/summary.json: no number for test_accuracy, best_test_accuracy, train_seconds",
        prepare=damaged_run("foreign summary"),
    ),
    "compare: metrics.csv of another tool": Case(
        lambda ws, c: ["compare", str(ws / "damaged"), "--png", str(ws / "c.png")],
        1,
        "damaged/metrics.csv: not this tool's metrics (no column lr, train_loss",
        prepare=damaged_run("metrics"),
    ),
    "compare: a metrics.csv line cut short": Case(
        lambda ws, c: ["compare", str(ws / "damaged"), "--png", str(ws / "c.png")],
        1,
        "damaged/metrics.csv: line 3: test_acc is missing (the line ends before it)",
        prepare=damaged_run("cut"),
    ),
    "usage: an image name without an image suffix": Case(
        lambda ws, c: ["plot-schedule", "--out", "s.txt"],
        2,
        "--out s.txt: expected an image file name ending in .png, .pdf, .svg",
    ),
    "usage: a folder where an image file is wanted": Case(
        lambda ws, c: ["compare", str(ws), "--png", str(ws)],
        2,
        "is a folder; give a file name such as",
    ),
    "usage: --csv the same file as --out": Case(
        lambda ws, c: ["plot-schedule", "--out", "s.png", "--csv", "s.png"],
        2,
        "--csv s.png: the same file as --out; give each its own name",
    ),
    "usage: --csv a link to the file of --out": Case(
        lambda ws, c: ["plot-schedule", "--out", "s.png", "--csv", "link.png"],
        2,
        "--csv link.png: the same file as --out; give each its own name",
        prepare=lambda ws, _: (ws / "link.png").symlink_to("s.png"),
    ),
    "usage: a path with a name too long": Case(
        lambda ws, c: train(ws, c, "--out", "a" * 300),
        2,
        f"out {'a' * 300}: a name in it has 300 bytes, more than file names allow (255); give a "
        "shorter one",
    ),
    "files: a path the system refuses": Case(
        lambda ws, c: train(ws, c, "--data-dir", "a" * 300),
        1,
        f"error: {'a' * 300}: File name too long\n",
    ),
    "usage: an option without its value": Case(
        lambda ws, c: ["train", "--epochs"],
        2,
        "supercon train: Option '--epochs' requires an argument. (see supercon train --help)",
    ),
    "usage: too many steps to draw": Case(
        lambda ws, c: ["plot-schedule", "--epochs", "100000", "--batch-size", "1"],
        2,
        "5,000,000,000 steps are too many to draw or list (at most 2,000,000)",
    ),
    "files: an output path under a file": Case(
        lambda ws, c: ["plot-schedule", "--out", str(c / "s.png")],
        2,
        "tiny.yaml is a file, not a folder)",
    ),
    "files: an output device that is full": Case(
        lambda ws, c: ["plot-schedule", "--csv", "/dev/full"],
        1,
        "/dev/full: cannot be written (No space left on device)",
    ),
    "config: a section given as a --set value": Case(
        lambda ws, c: ["config", "show", "--set", "train={epochs: 3}"],
        2,
        "--set: train: is a section, not a value",
    ),
    "config: a mapping given as a --set value": Case(
        lambda ws, c: ["config", "show", "--set", "train.epochs={a: 1}"],
        2,
        "--set 'train.epochs={a: 1}': a mapping is not a value; set one key at a time",
    ),
    "config: YAML nested too deeply": Case(
        lambda ws, c: ["config", "show", "--config", str(ws / "deep.yaml")],
        2,
        "deep.yaml: not valid YAML (nested too deeply)",
        prepare=deep_yaml,
    ),
    "config: lr_min above what the range test can suggest": Case(
        lambda ws, c: ["train", "--config", str(c), "--lr-max", "auto", "--lr-min", "20"],
        2,
        "schedule.lr_min: must be less than finder.end_lr (10), the largest lr_max",
    ),
    "train: a model and batch too large for the memory": Case(
        lambda ws, c: train(ws, c, "--set", "model.width=256"),
        1,
        "model.width=256, train.batch_size=16: a training step needs at least 1.4 GiB (weights, "
        "gradients, momentum and activations), this machine has 1.0 GiB free; free memory, or "
        "lower model.width or train.batch_size (in a new run)",
        prepare=lambda ws, mp: mp.setattr(memory, "available_bytes", lambda _device: memory.GIB),
    ),
    "train: --lr-max auto finds less than the lr_min given": Case(
        lambda ws, c: train(
            ws, c, "--lr-max", "auto", "--lr-min", "0.5", "--set", "finder.suggest=steepest"
        ),
        2,
        "suggests lr_max 0.144 (steepest), not above the schedule.lr_min given (0.5): lower",
    ),
    "sweep: bad --devices": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--devices", "0,gpu1"],
        2,
        "--devices '0,gpu1': expected comma-separated GPU indices or 'cpu'",
    ),
    "sweep: folder of another sweep": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--name", "x", "--out", str(ws / "sw")],
        2,
        "x: holds another sweep (",
        prepare=sweep_named_x,
    ),
    "sweep: a --name that is not one folder name": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--name", "../../escape"],
        2,
        "--name '../../escape': expected one folder name of letters, digits, '.', '_' and '-', "
        "starting with a letter or digit, e.g. w16-lr0.4 (at most 227 characters)",
    ),
    "compare: neither a run nor a sweep": Case(
        lambda ws, c: ["compare", str(ws), "--png", str(ws / "c.png")],
        2,
        "neither a run folder (metrics.csv) nor a sweep folder (sweep.yaml)",
    ),
    "compare: a folder that does not exist": Case(
        lambda ws, c: ["compare", str(ws / "nowhere"), "--png", str(ws / "c.png")],
        2,
        "nowhere: does not exist; give a run folder or a sweep folder",
    ),
    "compare: a sweep folder without its runs": Case(
        lambda ws, c: ["compare", str(ws / "sw" / "x"), "--png", str(ws / "c.png")],
        2,
        "x: no runs/ folder; compare draws each run's metrics.csv, which results.csv alone",
        prepare=sweep_named_x,
    ),
    "compare: a damaged sweep.yaml": Case(
        lambda ws, c: ["compare", str(ws / "sw" / "x"), "--png", str(ws / "c.png")],
        1,
        "x/sweep.yaml: not a sweep spec (grid schedule.lr_max: expected a list of values (one or "
        "more), got 5)",
        prepare=sweep_named_x_with("config: {}\ngrid: {schedule.lr_max: 5}\nseeds: [0]\n"),
    ),
    "compare: one folder given twice": Case(
        lambda ws, c: ["compare", str(ws / "runs"), str(ws / "runs"), "--png", str(ws / "c.png")],
        2,
        "runs: given twice; name each run or sweep once",
    ),
    "runs: checkpoint of another width": Case(
        lambda ws, c: ["train", "--resume", str(ws / "edited"), "--no-progress"],
        1,
        "checkpoint does not fit: model.width is 4 in the checkpoint, 8 in the config",
        prepare=width_changed_run,
    ),
    "runs: truncated checkpoint": Case(
        lambda ws, c: ["evaluate", str(ws / "truncated.pt")],
        1,
        "truncated.pt: truncated or corrupt checkpoint",
        prepare=truncated_checkpoint,
    ),
    "runs: missing checkpoint": Case(
        lambda ws, c: ["evaluate", str(ws / "none.pt")], 1, "none.pt: no such checkpoint file"
    ),
    "runs: a folder given as a checkpoint": Case(
        lambda ws, c: ["evaluate", "runs"],
        1,
        "runs: a folder; give a checkpoint file, e.g. runs/checkpoints/best.pt",
        prepare=lambda ws, _: (ws / "runs").mkdir(),
    ),
    "runs: a device given as a checkpoint": Case(
        lambda ws, c: ["evaluate", "/dev/null"],
        1,
        "/dev/null: not a regular file; give a checkpoint file",
    ),
    "runs: checkpoint with a code-running pickle": Case(
        lambda ws, c: ["evaluate", str(ws / "evil.pt")],
        1,
        "evil.pt: refused: the file holds pickled objects that could run code",
        prepare=pickled_payload,
    ),
    "finder: an empty --weight-decay value": Case(
        lambda ws, c: ["find-lr", "--config", str(c), "--weight-decay", "1e-3,,0"],
        2,
        "--weight-decay '1e-3,,0': a value is empty (two commas, or one at an end)",
    ),
    "finder: a weight decay listed twice (in any spelling)": Case(
        lambda ws, c: ["find-lr", "--config", str(c), "--weight-decay", "1e-3,0,0.001"],
        2,
        "--weight-decay '1e-3,0,0.001': '1e-3' and '0.001' are the same value; list each once",
    ),
    "finder: the loss diverged at once": Case(
        lambda ws, c: [
            "find-lr",
            "--config",
            str(c),
            "--no-progress",
            "--set",
            "finder.start_lr=1e6",
            "--set",
            "finder.end_lr=1e7",
        ],
        1,
        "LR range test: the loss diverged after 2 steps without falling first "
        "(from finder.start_lr = 1e+06, stopping at finder.diverge = 4 x the best loss); lower "
        "finder.start_lr, or raise finder.diverge if the loss only wobbled",
    ),
    "finder: the loss fell no more than its noise": Case(
        lambda ws, c: [
            "find-lr",
            "--config",
            str(c),
            "--no-progress",
            "--set",
            "finder.num_iters=10",
            "--set",
            "finder.end_lr=10",
        ],
        1,
        "LR range test: the loss never fell clearly (by more than 3 x its step-to-step noise) in "
        "10 steps from finder.start_lr = 0.0001 to finder.end_lr = 10; raise finder.end_lr or "
        "finder.num_iters",
    ),
    "finder: no weight decay's loss fell more than its noise": Case(
        lambda ws, c: [
            *["find-lr", "--config", str(c), "--no-progress", "--weight-decay", "0,1e-2"],
            *["--set", "finder.num_iters=10", "--set", "finder.end_lr=10"],
        ],
        1,
        "LR range test (each of weight decays 0, 0.01): the loss never fell clearly (by more "
        "than 3 x its step-to-step noise) in 10 steps",
    ),
    "runs: training loss not finite": Case(
        lambda ws, c: train(ws, c, "--lr-min", "1e12", "--lr-max", "1e13"),
        1,
        "lower schedule.lr_max (now 1e+13) or run `supercon find-lr`",
    ),
    "config: more CPU threads than the machine has": Case(
        lambda ws, c: train(ws, c, "--set", f"train.cpu_threads={CPUS + 1}"),
        2,
        f"error: --set: train.cpu_threads: {CPUS + 1} is more than this machine's {CPUS} logical "
        f"CPUs; give at most {CPUS}, or null",
    ),
    "config: a CLR step size of more epochs than any run": Case(
        lambda ws, c: show(ws, "--set", "schedule.step_size_epochs=1e20"),
        2,
        "--set: schedule.step_size_epochs: input should be less than or equal to 100000",
    ),
    "config: a range test of more steps than any needs": Case(
        lambda ws, c: show(ws, "--set", "finder.num_iters=1000000000"),
        2,
        "--set: finder.num_iters: input should be less than or equal to 100000",
    ),
    "config: aliases that expand past any config's size": Case(
        lambda ws, c: show(ws, "--config", str(ws / "laughs.yaml")),
        2,
        "laughs.yaml: more than 10,000 values once its aliases are expanded",
        prepare=laughs_yaml,
    ),
    "config: a name YAML reads as a date or a number": Case(
        lambda ws, c: train(ws, c, "--set", "name=2024-01-01"),
        2,
        "--set: name: expected text, not a date; quote it, e.g. name: '...' (got 2024-01-01)",
    ),
    "config: a name too long for a run folder": Case(
        lambda ws, c: train(ws, c, "--set", "name=" + "a" * 300),
        2,
        "--set: name: expected one folder name of letters, digits, '.', '_' and '-', starting "
        "with a letter or digit, e.g. w16-lr0.4 (at most 227 characters) (got 'aaa",
    ),
    "sweep: a --name too long for a folder": Case(
        lambda ws, c: ["sweep", "--config", str(c), "--name", "a" * 300, "--out", str(ws / "sw")],
        2,
        "--name 'aaaaaaaaaa",
    ),
    "config: an empty path": Case(
        lambda ws, c: show(ws, "--set", 'data.root=""'),
        2,
        "--set: data.root: expected a path, not an empty string (. for this folder) (got '')",
    ),
    "config: a path YAML reads as a date, a number or a list": Case(
        lambda ws, c: show(ws, "--set", "data.root=2024-01-01"),
        2,
        "--set: data.root: expected a path, not a date; quote it, e.g. root: '...' "
        "(got 2024-01-01)",
    ),
    "usage: --weight-decay with more values than range tests are worth": Case(
        lambda ws, c: [
            "find-lr",
            "--config",
            str(c),
            "--weight-decay",
            ",".join(map(str, range(17))),
        ],
        2,
        "--weight-decay: finder.weight_decays: at most 16 values, not 17",
    ),
    "config: one value where a list is expected": Case(
        lambda ws, c: show(ws, "--set", "finder.weight_decays=1e-3"),
        2,
        "--set: finder.weight_decays: expected a list, e.g. weight_decays: [1e-3] (got '1e-3')",
    ),
    "usage: an empty path option": Case(
        lambda ws, c: show(ws, "--out", ""),
        2,
        "Invalid value for '--out': an empty path; give a file or folder (. for this folder)",
    ),
    "config: a dotted key and its section in one file": Case(
        lambda ws, c: show(ws, "--config", str(ws / "dotted.yaml")),
        2,
        "dotted.yaml: train.epochs: conflicts with ",
        prepare=lambda ws, _: files(ws, **{"dotted.yaml": "train.epochs: 3\ntrain: {epochs: 4}\n"}),
    ),
    "config: a section given as a value, then a key of it": Case(
        lambda ws, c: show(ws, "--config", "scalar.yaml", "--set", "train.device=cpu"),
        2,
        "scalar.yaml: train: expected a mapping of keys to values",
        prepare=lambda ws, _: files(ws, **{"scalar.yaml": "train: 5\n"}),
    ),
    "config: two merge keys in one mapping": Case(
        lambda ws, c: show(ws, "--config", str(ws / "merge.yaml")),
        2,
        "merge.yaml: line 4: not valid YAML (key '<<' appears twice in one mapping; merge "
        "several mappings with one: <<: [*a, *b])",
        prepare=lambda ws, _: files(
            ws, **{"merge.yaml": "a: &a {epochs: 3}\ntrain:\n  <<: *a\n  <<: {epochs: 4}\n"}
        ),
    ),
    "data: a single class": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "one")),
        1,
        "one/train: one class folder only (apple); a classifier needs at least two",
        prepare=lambda ws, _: write_image_folder(ws / "one", 2, 1, classes=("apple",)),
    ),
    "data: a path with a line break": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "no\nwhere")),
        1,
        "no\\nwhere does not exist",
    ),
    "config: a file name with a line break": Case(
        lambda ws, c: show(ws, "--config", str(ws / "no\nfile.yaml")),
        2,
        "no\\nfile.yaml: config file not found",
    ),
    "config: an empty --lr-max": Case(
        lambda ws, c: show(ws, "--lr-max", ""), 2, "--lr-max '': the value is empty"
    ),
    "usage: plot-schedule with a batch larger than CIFAR-10's training set": Case(
        lambda ws, c: ["plot-schedule", "--set", "train.batch_size=100000", "--out", "s.png"],
        2,
        "error: --set: train.batch_size: 100000 is larger than the training set (50000 images)",
    ),
    "config: a training subset larger than the training set": Case(
        lambda ws, c: train(ws, c, "--set", "data.train_subset=1000"),
        2,
        "error: --set: data.train_subset: 1000 is outside 1..72 (the train split's size)",
    ),
    "config: a test subset larger than the test set, set in a file": Case(
        lambda ws, c: train(ws, c, "--config", str(ws / "big.yaml")),
        2,
        "big.yaml: data.test_subset: 500 is outside 1..24 (the test split's size)",
        prepare=lambda ws, mp: files(ws, **{"big.yaml": "data: {test_subset: 500}\n"}),
    ),
    "config: a weight decay listed twice": Case(
        lambda ws, c: show(ws, "--set", "finder.weight_decays=[0, 1e-4, 0]"),
        2,
        "--set: finder.weight_decays: 0 is listed twice; list each weight decay once",
    ),
    "config: no weight decays to sweep": Case(
        lambda ws, c: show(ws, "--set", "finder.weight_decays=[]"),
        2,
        "--set: finder.weight_decays: expected at least one weight decay, or null for optim.",
    ),
    "config: annihilation rounds to no step": Case(
        lambda ws, c: [
            "plot-schedule",
            "--set",
            "schedule.annihilation_epochs=0.001",
            "--out",
            str(ws / "s.png"),
        ],
        2,
        "schedule.annihilation_epochs: 0.001 rounds to no step at 97 steps per epoch; give 0 for "
        "no annihilation, or at least 0.0103 (one step)",
    ),
    "config: two keys that do not fit, from two sources": Case(
        lambda ws, c: show(ws, "--set", "schedule.annihilation_epochs=5", "--epochs", "3"),
        2,
        "--epochs: schedule.annihilation_epochs: must be less than train.epochs (3), got 5 "
        "(schedule.annihilation_epochs from --set)",
    ),
    "config: a ~user path of no such user": Case(
        lambda ws, c: train(ws, c, "--data-dir", f"~{NO_USER}/data"),
        2,
        f"error: --data-dir: data.root: ~{NO_USER} names no home folder on this machine (no "
        f"such user) (got '~{NO_USER}/data')",
    ),
    "config: a path that is not UTF-8 text": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / f"root{ODD_BYTE}")),
        2,
        "error: --data-dir: data.root: not UTF-8 text (the byte \\xff), which the UTF-8 files a "
        "run writes cannot name; rename it, or give a link to it whose name is UTF-8 (got '",
        prepare=lambda ws, _: data_copy(ws, f"root{ODD_BYTE}"),  # valid data, but for its name
    ),
    "usage: a sweep folder whose path is not UTF-8 text": Case(
        lambda ws, c: ["sweep", "-c", str(c), "--out", f"sw{ODD_BYTE}"],
        2,
        "error: --out sw\\xff: not UTF-8 text (the byte \\xff), which the UTF-8 files a run "
        "writes cannot name",
    ),
    "data: a class folder whose name is not UTF-8 text": Case(
        lambda ws, c: train(ws, c, "--data-dir", str(ws / "bad")),
        1,
        "bad/train/bo\\xffat: a class folder whose name is not UTF-8 text (the byte \\xff); "
        "class names go into checkpoints, reports and plots as UTF-8 text: rename it",
        prepare=broken_folder("class name not UTF-8"),
    ),
    "config: logit_scale above 10": Case(
        lambda ws, c: show(ws, "--set", "model.logit_scale=1e300"),
        2,
        "--set: model.logit_scale: input should be less than or equal to 10",
    ),
}


@pytest.fixture
def workspace(image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tiny_config(image_folder, tmp_path / "runs", train={"epochs": 2})
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(cfg))
    monkeypatch.chdir(tmp_path)  # plot-schedule and friends write here, not into the repo
    return tmp_path


@pytest.mark.parametrize("name", list(CASES))
def test_error_row(name: str, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    case.prepare(workspace, monkeypatch)
    result = CliRunner().invoke(app, case.args(workspace, workspace / "tiny.yaml"))
    stderr = result.stderr
    assert result.exit_code == case.code, (result.exit_code, stderr, result.stdout)
    assert case.message in stderr, stderr
    assert "Traceback" not in stderr and "Traceback" not in result.stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == case.lines, lines
    assert all(line.startswith("error: ") for line in lines)
    assert not (workspace / "pwned").exists()  # no pickled code ever ran
    if name.startswith(("config:", "usage:", "data:")):
        assert not list(workspace.glob("runs/*")), "a failed start left a run directory"


def test_errors_doc_lists_every_row() -> None:
    table = (REPO / "docs" / "errors.md").read_text()
    for name, case in CASES.items():
        assert f"| {name} | {case.code} |" in table, name


def test_a_run_resumes_on_its_data_moved_elsewhere(workspace: Path) -> None:
    run = unfinished_run(workspace, "stopped")
    moved = data_copy(workspace, "moved")
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--data-dir", str(moved)])
    assert result.exit_code == 0, result.stderr
    log = (run / "resumes.log").read_text()  # the change is recorded, not refused
    assert "data.root '" in log and f"' -> '{moved}'" in log


def test_a_refused_resume_of_a_finished_run_changes_none_of_its_files(workspace: Path) -> None:
    run = tiny_run(workspace, workspace / "tiny.yaml")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}
    result = CliRunner().invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 2 and "this run has finished" in result.stderr
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}
    assert after == before  # its .lock too


def test_a_run_that_finishes_while_a_resume_starts_is_not_resumed(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = unfinished_run(workspace, "stopped")
    checked = runs.check_training_run

    def check_then_finish(folder: Path) -> None:
        checked(folder)
        (folder / runs.SUMMARY_FILE).write_text("{}")  # the training process ends just now

    monkeypatch.setattr(runs, "check_training_run", check_then_finish)
    result = CliRunner().invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 2
    assert "this run has finished" in result.stderr


def test_debug_shows_the_traceback(workspace: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--config", str(workspace / "tiny.yaml"), "--data-dir", "x", "--debug"]
    )
    assert result.exit_code == 1
    assert result.exception is not None and "does not exist" in str(result.exception)


def comparable_metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in runs.read_metrics(run)]


def test_sigint_saves_and_exits_130(image_folder: Path, tmp_path: Path) -> None:
    # The hint must quote what the shell would split, and spell out what a terminal that shows
    # ASCII only cannot (printed as \xfc, ü would not run), a line break and a terminal code.
    out = tmp_path / "sp ace" / "it's über\n\x1b[31mred"
    cfg = tiny_config(image_folder, out, train={"epochs": 30})
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(cfg))
    ascii_terminal = {"PYTHONIOENCODING": "ascii"}
    process = run_cli(
        "train", "--config", "tiny.yaml", "--no-progress", cwd=tmp_path, env=ascii_terminal
    )
    wait_for(lambda: any(out.glob("*/checkpoints/last.pt")))  # training, past epoch 1
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    (run,) = out.iterdir()
    assert err.strip().splitlines() == [
        next(line for line in err.splitlines() if "resume with" in line)
    ]
    assert "Traceback" not in err
    assert runs.load_checkpoint(run / "checkpoints" / "last.pt")["scheduler"]["steps_done"] > 0
    printed = err.split("resume with: ", 1)[1].strip()
    words = subprocess.run(
        ["bash", "-c", f"set -- {printed}; printf '%s\\0' \"$@\""], capture_output=True
    ).stdout.split(b"\0")[:-1]
    assert words[-3:] == [b"train", b"--resume", os.fsencode(run)]
    resumed = subprocess.run(["bash", "-c", printed], cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr  # the hint runs as printed
    assert (run / "summary.json").is_file()
    where = re.search(r"stopped (in epoch \d+ after step \d+/\d+|after epoch \d+);", err)
    assert where is not None, err
    # Both messages count the same way; the path's line break and terminal code show escaped.
    assert f"resuming {one_line(str(run))} {where[1]}" in resumed.stdout


@pytest.mark.parametrize("command", ["find-lr", "train"])
def test_a_stop_as_the_folder_is_made_leaves_a_resumable_run_or_nothing(
    command: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C just after the run's folder appears, before its first files: train's folder is a
    run that the printed hint resumes; find-lr's (not resumable) is removed."""
    create = runs.create

    def create_then_ctrl_c(*args: Any, **kwargs: Any) -> Path:
        run = create(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return run

    monkeypatch.setattr(runs, "create", create_then_ctrl_c)
    result = CliRunner().invoke(app, [command, "--config", "tiny.yaml", "--no-progress"])
    assert result.exit_code == 130, result.stderr
    (line,) = result.stderr.strip().splitlines()
    if command == "find-lr":
        assert line == "stopped: interrupted (Ctrl-C, SIGTERM or SIGHUP)"
        assert not list((workspace / "runs").iterdir())
        return
    (run,) = (workspace / "runs").iterdir()
    assert line.endswith(f" train --resume {run}"), line
    monkeypatch.setattr(runs, "create", create)
    resumed = CliRunner().invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert resumed.exit_code == 0, resumed.stderr
    assert (run / "summary.json").is_file()


@pytest.mark.parametrize(
    ("settings", "code", "message"),
    [
        (["finder.start_lr=1000", "finder.end_lr=1e6"], 1, "LR range test: the loss diverged"),
        (["finder.suggest=steepest", "schedule.lr_min=0.5"], 2, "not above the schedule.lr_min"),
    ],
    ids=["diverged", "below-lr_min"],
)
def test_a_failed_lr_max_auto_leaves_no_run(
    settings: list[str], code: int, message: str, workspace: Path
) -> None:
    """The range test of `--lr-max auto` runs before the run's folder exists: when it fails, a
    folder would hold nothing but a resume that repeats the failure."""
    sets = [arg for setting in settings for arg in ("--set", setting)]
    result = CliRunner().invoke(app, ["train", "-c", "tiny.yaml", "--lr-max", "auto", *sets])
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    assert not list(workspace.glob("runs/*"))


@pytest.mark.parametrize("command", [["find-lr"], ["train", "--lr-max", "auto"]])
def test_sigterm_stops_any_command_with_one_line(
    command: list[str], image_folder: Path, tmp_path: Path
) -> None:
    """Not only a training loop: SIGTERM inside the range test (of find-lr, or of train's
    --lr-max auto, which runs before the run's folder exists) is one line and exit code 130,
    never a silent 143, and leaves no folder: neither command could resume a range test."""
    cfg = tiny_config(image_folder, tmp_path / "runs", finder={"num_iters": 100_000})
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(cfg))
    process = run_cli(*command, "--config", "tiny.yaml", "--no-progress", cwd=tmp_path)
    assert process.stdout is not None
    while not (line := process.stdout.readline()).startswith("LR range test: "):
        assert line, "the command ended before its range test"
    time.sleep(1.0)  # inside the range test
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["stopped: interrupted (Ctrl-C, SIGTERM or SIGHUP)"]
    assert not list((tmp_path / "runs").glob("*")), "a stopped range test left a folder"


IGNORED_BY_CALLER = (signal.SIGINT, signal.SIGHUP)


def test_a_signal_the_caller_ignores_stays_ignored_in_training(
    image_folder: Path, tmp_path: Path
) -> None:
    """A background job of a script inherits SIGINT ignored, and `nohup` ignores SIGHUP:
    training goes on to the end."""
    cfg = tiny_config(image_folder, tmp_path / "runs", train={"epochs": 12})
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(cfg))
    process = subprocess.Popen(
        [sys.executable, "-m", "cifar_supercon", "train", "--config", "tiny.yaml", "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: [signal.signal(s, signal.SIG_IGN) for s in IGNORED_BY_CALLER],
    )
    wait_for(
        lambda: any(
            len(runs.read_metrics(m.parent)) > 0 for m in tmp_path.glob("runs/*/metrics.csv")
        )
    )
    assert process.poll() is None, "finished before the signal: make the run longer"
    for signum in IGNORED_BY_CALLER:
        process.send_signal(signum)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    (run,) = [p.parent for p in (tmp_path / "runs").glob("*/summary.json")]
    assert len(runs.read_metrics(run)) == 12


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_starting_is_one_line(signum: int, tmp_path: Path) -> None:
    """Importing torch takes seconds; a signal then (here 0.5 s in) is already one line and
    exit code 130, not a KeyboardInterrupt traceback or a silent 143."""
    process = run_cli("config", "show", cwd=tmp_path)
    time.sleep(0.5)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["stopped: interrupted (Ctrl-C, SIGTERM or SIGHUP)"]
    assert out == ""


def test_a_closed_stdout_does_not_stop_a_run(image_folder: Path, tmp_path: Path) -> None:
    """`supercon train ... | head -1`: the reader goes away; the run goes on to its end and
    says once, on stderr, that its output is dropped."""
    cfg = tiny_config(image_folder, tmp_path / "runs")
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(cfg))
    process = run_cli("train", "--config", "tiny.yaml", "--no-progress", cwd=tmp_path)
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()  # as `head -1` does
    err = process.stderr.read() if process.stderr else ""
    assert process.wait(timeout=300) == 0, err
    assert err.strip().splitlines() == ["warning: standard output closed; going on without it"]
    assert len(list((tmp_path / "runs").glob("*/summary.json"))) == 1


def test_a_stdout_that_cannot_be_written_stops_only_the_command_it_is_the_product_of(
    image_folder: Path, tmp_path: Path
) -> None:
    """`> log` on a full disk (here /dev/full): a run goes on to its end without its log,
    saying so once; config show, whose YAML is its product, fails in one line (exit 1)."""
    cfg = tiny_config(image_folder, tmp_path / "runs")
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(cfg))
    command = [sys.executable, "-m", "cifar_supercon"]
    with open("/dev/full", "w") as full:
        trained = subprocess.run(
            [*command, "train", "--config", "tiny.yaml", "--no-progress"],
            cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300,
        )  # fmt: skip
        shown = subprocess.run(
            [*command, "config", "show", "--config", "tiny.yaml"],
            cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300,
        )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert trained.stderr.strip().splitlines() == [
        "warning: standard output cannot be written (No space left on device); going on without it"
    ]
    assert len(list((tmp_path / "runs").glob("*/summary.json"))) == 1
    assert shown.returncode == 1
    assert shown.stderr.strip().splitlines() == [
        "error: standard output cannot be written (No space left on device)"
    ]


def test_a_path_the_terminal_cannot_show_is_printed_escaped(
    image_folder: Path, tmp_path: Path
) -> None:
    cfg = tiny_config(
        image_folder, tmp_path / "rüns", train={"epochs": 1}, schedule={"peak_epoch": 0.5}
    )
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(cfg), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "cifar_supercon", "train", "--config", "tiny.yaml", "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )
    assert result.returncode == 0, result.stderr
    assert b"r\\xfcns" in result.stdout
    assert len(list((tmp_path / "rüns").glob("*/summary.json"))) == 1


def test_random_kills_resume_to_the_same_metrics(image_folder: Path, tmp_path: Path) -> None:
    """SIGKILL (no chance to save) at random moments, three times; each resume continues from
    the last checkpoint that landed, and the final metrics equal an uninterrupted run's."""
    cfg = tiny_config(image_folder, tmp_path / "runs", train={"epochs": 12})
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(cfg))
    reference = Path(api.train(cfg, log=lambda _: None)["run_dir"])

    process = run_cli("train", "--config", "tiny.yaml", "--no-progress", cwd=tmp_path)
    wait_for(lambda: len(list((tmp_path / "runs").glob("*/config.yaml"))) == 2)
    (run,) = [p.parent for p in (tmp_path / "runs").glob("*/config.yaml") if p.parent != reference]
    chooser = random.Random(os.getpid())
    kills = 0
    last = run / "checkpoints" / "last.pt"
    wait_for(last.exists)
    while kills < 3:
        # Each process first lands a checkpoint of its own, so every kill interrupts training.
        landed = last.stat().st_mtime_ns
        wait_for(lambda p=process, t=landed: p.poll() is not None or last.stat().st_mtime_ns != t)
        time.sleep(chooser.uniform(0.0, 0.5))
        if process.poll() is not None:  # it finished before the kill came: nothing to resume
            break
        process.kill()
        assert process.wait() == -signal.SIGKILL
        kills += 1
        process = run_cli("train", "--resume", str(run), "--no-progress", cwd=tmp_path)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    assert kills >= 1
    assert comparable_metrics(run) == comparable_metrics(reference)
    assert (run / "summary.json").is_file()


def test_a_kill_before_the_clock_saved_anything_resumes(image_folder: Path, tmp_path: Path) -> None:
    """Checkpoints follow a 60 s clock, but an epoch on record always has one behind it: a run
    SIGKILLed once metrics.csv shows an epoch resumes to an uninterrupted run's metrics."""
    cfg = tiny_config(
        image_folder, tmp_path / "runs", train={"epochs": 20, "checkpoint_seconds": 3600}
    )
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(cfg))
    reference = Path(api.train(cfg, log=lambda _: None)["run_dir"])
    process = run_cli("train", "--config", "tiny.yaml", "--no-progress", cwd=tmp_path)
    wait_for(lambda: len(list((tmp_path / "runs").glob("*/metrics.csv"))) == 2)
    (run,) = [p.parent for p in (tmp_path / "runs").glob("*/metrics.csv") if p.parent != reference]
    wait_for(lambda: process.poll() is not None or len(runs.read_metrics(run)) >= 1)
    process.kill()
    process.wait()
    assert len(runs.read_metrics(run)) < 20, "finished before the kill: make the run longer"
    resumed = run_cli("train", "--resume", str(run), "--no-progress", cwd=tmp_path)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert comparable_metrics(run) == comparable_metrics(reference)


WRITER = """
import sys, torch
from pathlib import Path
from cifar_supercon import runs
path, i = Path(sys.argv[1]), 0
big = torch.arange(4_000_000, dtype=torch.float32)
while True:
    i += 1
    runs.save_checkpoint(path, {"i": i, "weights": big + i})
    print(i, flush=True)
"""


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    chooser = random.Random(1)
    for _ in range(4):
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        process.stdout.readline()  # at least one checkpoint landed
        time.sleep(chooser.uniform(0.0, 0.3))  # most of the time is spent inside a write
        process.kill()
        process.wait()
        saved = runs.load_checkpoint(path)
        assert torch.equal(saved["weights"], torch.arange(4_000_000.0) + saved["i"])


def test_a_full_disk_keeps_the_previous_checkpoint_and_resumes(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while the second checkpoint is written: one line naming the file and the space,
    the first checkpoint intact, no temporary file, and the run resumes once space is back.
    torch.save itself meets the full disk: it swallows the write's OSError and fails with
    `[enforce fail at inline_container.cc] unexpected pos`, naming neither."""
    reference = tiny_run(workspace, workspace / "tiny.yaml")
    opened: list[str] = []

    class FullAfter1000Bytes:
        def __init__(self, file: BinaryIO) -> None:
            self.file = file

        def __getattr__(self, name: str) -> object:
            return getattr(self.file, name)

        def __enter__(self) -> FullAfter1000Bytes:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            if self.file.tell() + len(data) > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.file.write(data)

    def filling(path: Path, mode: str = "r", **kwargs: object) -> object:
        file = open(path, mode, **kwargs)  # noqa: SIM115 (the caller closes it)
        opened.append(Path(path).name)
        # Epoch 1 saved last.pt and best.pt; epoch 2's last.pt meets a full disk.
        full = sum(name.startswith(".last.pt") for name in opened) == 2
        return FullAfter1000Bytes(file) if full and opened[-1].startswith(".last.pt") else file

    monkeypatch.setattr(runs, "open", filling, raising=False)
    result = CliRunner().invoke(
        app, ["train", "--config", "tiny.yaml", "--epochs", "2", "--no-progress"]
    )
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "last.pt: no space left on the device (" in line and "MB needed" in line
    (run,) = [r for r in (workspace / "runs").iterdir() if r != reference]
    assert not list(run.rglob(f"*{runs.TEMPORARY}*"))
    assert runs.load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["epochs_done"] == 1
    monkeypatch.delattr(runs, "open")  # space freed
    resumed = CliRunner().invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert resumed.exit_code == 0, resumed.stderr
    assert comparable_metrics(run) == comparable_metrics(reference)


def test_writes_to_special_files_and_links_keep_them(workspace: Path) -> None:
    """--csv /dev/stdout (here a link to /dev/null) is written through, not replaced by a file;
    a link to a regular file stays a link and its target gets the new content."""
    (workspace / "sink").symlink_to("/dev/null")
    (workspace / "real.csv").write_text("old")
    (workspace / "link.csv").symlink_to(workspace / "real.csv")
    for target in ("sink", "link.csv"):
        result = CliRunner().invoke(
            app,
            ["plot-schedule", "--out", str(workspace / "s.png"), "--csv", str(workspace / target)],
        )
        assert result.exit_code == 0, result.stderr
    assert (workspace / "sink").is_symlink() and Path("/dev/null").is_char_device()
    assert (workspace / "link.csv").is_symlink()
    assert (workspace / "real.csv").read_text().startswith("step,epoch,lr,momentum")


def test_output_options_never_write_into_a_run(workspace: Path) -> None:
    """plot-schedule --out/--csv, compare --png and evaluate --plot refuse a path inside a run
    (also through a link) before any work, and leave the run as it was; evaluate's default
    plot, the run's own plots/confusion_<checkpoint>.png, is still written."""
    finished_run(workspace, None)
    run = workspace / "finished"
    (workspace / "link").symlink_to(run / "plots")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    best = str(run / "checkpoints" / "best.pt")
    for option, argv in [
        ("--out", ["plot-schedule", "--out", str(run / "plots" / "schedule.png")]),
        ("--csv", ["plot-schedule", "--csv", str(run / "metrics.csv")]),
        ("--png", ["compare", str(run), "--png", str(workspace / "link" / "training.png")]),
        ("--plot", ["evaluate", best, "--plot", str(run / "plots" / "new.png")]),
    ]:
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, result.stderr
        where = argv[argv.index(option) + 1]
        assert result.stderr == (
            f"error: {option} {where}: inside the run {run.resolve()}, which holds only what "
            "the run wrote; choose a place outside it\n"
        )
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    result = CliRunner().invoke(app, ["evaluate", best])
    assert result.exit_code == 0, result.stderr
    assert (run / "plots" / "confusion_best.png").is_file()


def test_output_options_never_write_into_a_sweep_or_find_lr_folder(workspace: Path) -> None:
    """A sweep folder (its sweep.yaml) and a find-lr folder (its lr_finder.csv) are refused as
    a run is, by the CLI's output options and the API's arguments, and left as they were; a
    sweep.yaml or lr_finder.csv of a project's own does not make its folder one."""
    sweeps.sweep(workspace / "tiny.yaml", name="x", out=workspace / "sw", log=None)
    sweep = workspace / "sw" / "x"
    found = CliRunner().invoke(app, ["find-lr", "-c", "tiny.yaml", "--no-progress"])
    assert found.exit_code == 0, found.stderr
    (finder,) = (workspace / "runs").iterdir()
    before = {p: p.read_bytes() for f in (sweep, finder) for p in f.rglob("*") if p.is_file()}
    for place, noun, writer in [
        (sweep, "sweep folder", "the sweep"),
        (finder, "find-lr folder", "the range test"),
    ]:
        for option, argv in [
            ("--out", ["plot-schedule", "--out", str(place / "plots" / "x.png")]),
            ("--csv", ["plot-schedule", "--csv", str(place / "sweep.yaml")]),
            ("--png", ["compare", str(sweep), "--png", str(place / "lr_finder.png")]),
        ]:
            result = CliRunner().invoke(app, argv)
            assert result.exit_code == 2, result.stderr
            where = argv[argv.index(option) + 1]
            assert result.stderr == (
                f"error: {option} {where}: inside the {noun} {place.resolve()}, which holds "
                f"only what {writer} wrote; choose a place outside it\n"
            )
        with pytest.raises(UsageError, match=f"^png {place}/c.png: inside the {noun} "):
            compare([sweep], png=place / "c.png")
    assert {p: p.read_bytes() for f in (sweep, finder) for p in f.rglob("*") if p.is_file()} == (
        before
    )
    project = workspace / "proj"
    (project / "runs").mkdir(parents=True)
    files(project, **{"sweep.yaml": "name: mine\n", "lr_finder.csv": "lr,rate\n1,2\n"})
    result = CliRunner().invoke(app, ["plot-schedule", "--out", str(project / "s.png")])
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("entry", "make", "wrong"),
    [
        ("plots", Path.touch, "not a folder; the sweep's plots/ belongs here"),
        ("logs", Path.touch, "not a folder; the sweep's logs/ belongs here"),
        ("results.csv", Path.mkdir, "not a file; the sweep's results.csv belongs here"),
        ("summary.md", Path.mkdir, "not a file; the sweep's summary.md belongs here"),
        ("runs/lr_max=0.2-seed0/failed.txt", Path.mkdir, "not a file; the run's failed.txt "),
    ],
    ids=["plots", "logs", "results.csv", "summary.md", "failed.txt"],
)
def test_a_damaged_entry_of_a_sweep_is_refused_before_any_run_trains(
    entry: str, make: Callable[[Path], None], wrong: str, workspace: Path
) -> None:
    """Each folder and file a sweep writes is checked when it starts, under its lock: one line
    naming it, exit 1 (a damaged file of the tool's own), and the pending run not trained.
    They were found as they were written, after every pending run had trained, with exit 2 and
    usage wording, or 'File exists'."""
    damaged_sweep(entry, make)(workspace, None)
    result = CliRunner().invoke(app, [*SWEEP_S1, "--out", "sw"])
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith(f"error: sw/s1/{entry}: {wrong}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert not (workspace / PENDING).exists()


def test_a_folder_with_a_config_and_metrics_of_its_own_is_no_run(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project's own config.yaml and metrics.csv (or such files in $HOME) do not make a run:
    every output option writes below them. A run is told by its metrics.csv's columns, which
    it holds from its first files on: one stopped as its folder was made is still refused."""
    project = workspace / "proj"
    project.mkdir()
    files(project, **{"config.yaml": "train:\n  epochs: 2\n", "metrics.csv": "a,b\n1,2\n"})
    monkeypatch.chdir(project)
    tiny = str(workspace / "tiny.yaml")
    result = CliRunner().invoke(app, ["train", "-c", tiny, "--out", "runs", "--no-progress"])
    assert result.exit_code == 0, result.stderr
    (run,) = (project / "runs").iterdir()
    for argv in [
        ["plot-schedule", "--out", "s.png"],
        ["compare", str(run), "--png", "c.png"],
        ["evaluate", str(run / "checkpoints" / "best.pt"), "--plot", "e.png"],
        ["sweep", "-c", tiny, "--out", "sw"],
    ]:
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, (argv, result.stderr)
    assert {p.name for p in project.iterdir()} >= {"s.png", "c.png", "e.png", "sw"}
    # What a run holds when a stop lands as its folder is made: its first files
    first = runs.create(workspace / "runs", "first")
    runs.start(first, config_lib.load([tiny]))
    result = CliRunner().invoke(app, ["plot-schedule", "--out", str(first / "s.png")])
    assert result.exit_code == 2 and f"inside the run {first}," in result.stderr


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["config", "show", "--set", f"data.root=~{NO_USER}/x"], "--set: data.root: "),
        (["config", "show", "-c", "home.yaml"], "home.yaml: out: "),
        (["sweep", "-c", "tiny.yaml", "--out", f"~{NO_USER}/x"], "Invalid value for '--out': "),
        (["plot-schedule", "--csv", f"~{NO_USER}/x.csv"], "Invalid value for '--csv': "),
        (["evaluate", f"~{NO_USER}/best.pt"], "Invalid value for 'checkpoint': "),
    ],
    ids=["--set", "yaml", "sweep --out", "plot-schedule --csv", "evaluate"],
)
def test_a_home_folder_of_no_user_is_refused_wherever_given(
    argv: list[str], where: str, workspace: Path
) -> None:
    """`~user` of no such user, in a config key from any source or in a path option: exit 2,
    one line naming the option (or key and source) and the user, before any work."""
    files(workspace, **{"home.yaml": f"out: ~{NO_USER}/runs\n"})
    before = sorted(workspace.rglob("*"))
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert where in line and f"~{NO_USER} names no home folder on this machine" in line, line
    assert sorted(workspace.rglob("*")) == before


def test_every_path_reads_a_home_folder_the_same_way(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`~/x` is the home folder's x whether it sets a config key or is an option of its own
    (sweep --out made a folder named `~` here)."""
    home = workspace / "home"
    monkeypatch.setenv("HOME", str(home))
    shown = CliRunner().invoke(app, ["config", "show", "--out", "~/runs", "--data-dir", "~/d"])
    assert shown.exit_code == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["out"] == str(home / "runs")
    plotted = CliRunner().invoke(app, ["plot-schedule", "--out", "~/s.png", "--csv", "~/s.csv"])
    assert plotted.exit_code == 0, plotted.stderr
    failing = ["-g", "schedule.lr_max=-1", "--name", "x"]  # a sweep whose run fails at once
    swept = CliRunner().invoke(app, ["sweep", "-c", "tiny.yaml", "--out", "~/sw", *failing])
    assert "no run of the sweep finished" in swept.stderr
    assert {p.name for p in home.iterdir()} == {"s.png", "s.csv", "sw"}
    assert (home / "sw" / "x" / "sweep.yaml").is_file()
    assert not (workspace / "~").exists()


def moved_run(ws: Path) -> list[str]:
    """An unfinished run moved into a folder whose name is not UTF-8: resumed."""
    (ws / f"o{ODD_BYTE}").mkdir()
    run = unfinished_run(ws, "stopped").rename(ws / f"o{ODD_BYTE}" / "stopped")
    return ["train", "--resume", str(run)]


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (lambda ws: ["train", "-c", "tiny.yaml", "--out", f"o{ODD_BYTE}"], "--out: out: "),
        (lambda ws: ["train", "-c", "tiny.yaml", "-c", "odd.yaml"], "odd.yaml: out: "),
        (lambda ws: ["find-lr", "-c", "tiny.yaml", "--set", f"out=o{ODD_BYTE}"], "--set: out: "),
        (moved_run, "--resume "),
    ],
    ids=["--out", "yaml", "--set", "--resume"],
)
def test_a_run_folder_that_is_not_utf8_is_refused_before_any_work(
    argv: Callable[[Path], list[str]], where: str, workspace: Path
) -> None:
    """A run's files name its folder and data.root in UTF-8: a path with a byte that is not
    UTF-8 is refused before any folder is made or file touched, from whatever source, where
    the run failed after its training, and every resume again."""
    files(workspace, **{"odd.yaml": 'out: "o\\uDCFF"\n'})  # YAML's escape of that byte
    args = argv(workspace)
    before = {p: p.stat().st_mtime_ns for p in workspace.rglob("*")}
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {where}") and "not UTF-8 text (the byte \\xff)" in line, line
    assert {p: p.stat().st_mtime_ns for p in workspace.rglob("*")} == before


def test_an_image_name_that_is_not_utf8_trains_and_evaluates(workspace: Path) -> None:
    """An image file's name is only read (a class name is written, and refused): a Latin-1 one
    is a name like any other, in the data cache's key too."""
    data = data_copy(workspace, "latin")
    image = data / "train" / "boat" / "boat_0000.png"
    image.rename(image.with_name("b\udce9t.png"))  # Latin-1's é
    trained = CliRunner().invoke(
        app, ["train", "-c", "tiny.yaml", "--data-dir", str(data), "--no-progress"]
    )
    assert trained.exit_code == 0, trained.stderr
    (run,) = (workspace / "runs").iterdir()
    assert (run / "summary.json").is_file() and (run / "report.md").is_file()
    evaluated = CliRunner().invoke(
        app, ["evaluate", str(run / "checkpoints" / "best.pt"), "--data-dir", str(data)]
    )
    assert evaluated.exit_code == 0, evaluated.stderr


def test_evaluate_plots_into_its_run_however_the_checkpoint_is_spelled(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default plot is the run's plots/confusion_<checkpoint>.png for any spelling of a
    checkpoint in the run's checkpoints/ (`best.pt` typed there has a parent without a name,
    and its plot went into checkpoints/)."""
    finished_run(workspace, None)
    run = workspace / "finished"
    (workspace / "link").symlink_to(run)
    checkpoints, plot = run / "checkpoints", run / "plots" / "confusion_best.png"
    for cwd, spelled in [
        (checkpoints, "best.pt"),
        (checkpoints, "./best.pt"),
        (checkpoints, "../checkpoints/best.pt"),
        (run / "plots", "../checkpoints/./best.pt"),
        (workspace, "link/checkpoints/best.pt"),
        (workspace / "link" / "checkpoints", "best.pt"),
    ]:
        monkeypatch.chdir(cwd)
        result = CliRunner().invoke(app, ["evaluate", spelled])
        assert result.exit_code == 0, (spelled, result.stderr)
        assert plot.is_file() and not list(checkpoints.glob("*.png")), spelled
        assert f"confusion matrix: {plot.resolve()}" in result.stdout.replace("\n", "")
        plot.unlink()


@pytest.mark.parametrize("started", ["supercon", "python"])
def test_a_hint_printed_in_the_programs_own_folder_runs_as_printed(
    started: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started as ./supercon, or as `python -m cifar_supercon`, from the folder that holds it
    (a venv's bin/) while PATH does not: the printed program is ./supercon or ./python, where
    a bare name ran what PATH found there (another python, or no supercon at all)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, argv in [("supercon", "-m cifar_supercon"), ("python", "")]:
        (folder / name).write_text(f'#!/bin/sh\nexec {sys.executable} {argv} "$@"\n')
        (folder / name).chmod(0o755)
    path = {"PATH": "/usr/bin:/bin"}  # not this folder, nor the test's own venv
    monkeypatch.setenv("PATH", path["PATH"])
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "executable", str(folder / "python"))
    main = Path(cli.__file__).with_name("__main__.py")
    monkeypatch.setattr(sys, "argv", ["./supercon" if started == "supercon" else str(main)])
    printed = cli.program()
    ran = subprocess.run(
        ["bash", "-c", f"{printed} --version"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, **path},
    )
    assert ran.returncode == 0 and ran.stdout.startswith("supercon "), (printed, ran.stderr)
    assert printed.startswith(f"./{started}"), printed  # this folder's, not one PATH finds


LONG = "a" * 300


@pytest.mark.parametrize(
    "argv",
    [
        ["find-lr", "--out", LONG],
        ["sweep", "--out", LONG],
        ["compare", "finished", "--png", f"{LONG}.png"],
        ["evaluate", "finished/checkpoints/best.pt", "--plot", f"x/{LONG}.png"],
        ["plot-schedule", "--out", f"{LONG}.png"],
        ["plot-schedule", "--csv", LONG],
    ],
    ids=lambda argv: f"{argv[0]} {argv[-2]}",
)
def test_a_name_too_long_is_refused_before_any_work(argv: list[str], workspace: Path) -> None:
    """Every output path option (train's --out is a row of CASES): exit 2, one line naming the
    option and the path, before anything is read, computed or written."""
    if argv[0] in ("compare", "evaluate"):
        finished_run(workspace, None)
    config = ["--config", "tiny.yaml"] if argv[0] in ("find-lr", "sweep") else []
    before = sorted(workspace.rglob("*"))
    result = CliRunner().invoke(app, [*argv, *config])
    option, path = argv[-2:]
    assert result.exit_code == 2, result.stderr
    name = len(Path(path).name)
    assert result.stderr == (
        f"error: {'out' if argv[0] == 'find-lr' else option} {path}: a name in it has {name} "
        "bytes, more than file names allow (255); give a shorter one\n"
    )
    assert sorted(workspace.rglob("*")) == before


def test_a_killed_writers_temporary_file_goes_at_the_next_start(workspace: Path) -> None:
    run = unfinished_run(workspace, "stale")
    stale = run / "checkpoints" / f".last.pt{runs.TEMPORARY}{a_dead_pid()}"
    stale.write_bytes(b"half a checkpoint")
    live = run / "checkpoints" / f".best.pt{runs.TEMPORARY}1"  # pid 1 lives: not stale
    live.write_bytes(b"being written")
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    assert not stale.exists() and live.exists()


def test_decoding_workers_die_with_their_parent(tmp_path: Path) -> None:
    """SIGKILL the command while its worker processes decode images: none outlives it."""
    root = write_image_folder(tmp_path / "big", train_per_class=2500, test_per_class=10)
    cfg = tiny_config(root, tmp_path / "runs")
    (tmp_path / "big.yaml").write_text(config_lib.to_yaml(cfg))
    process = run_cli("train", "--config", "big.yaml", "--no-progress", cwd=tmp_path)
    children: list[int] = []

    def decoding() -> bool:
        children[:] = child_pids(process.pid)
        return len(children) > 0

    wait_for(decoding, timeout=120)
    process.kill()
    process.wait()
    wait_for(lambda: not [pid for pid in children if is_running(pid)], timeout=10)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["Ctrl-C", "hangup"])
def test_a_signal_to_the_whole_job_while_decoding_is_one_line(signum: int, tmp_path: Path) -> None:
    """A terminal's Ctrl-C or hangup reaches every process of the job, the decoding workers
    too: the command says so once (no worker traceback), exits 130 and leaves no worker."""
    root = write_image_folder(tmp_path / "big", train_per_class=2500, test_per_class=10)
    cfg = tiny_config(root, tmp_path / "runs")
    (tmp_path / "big.yaml").write_text(config_lib.to_yaml(cfg))
    process = run_cli("find-lr", "--config", "big.yaml", cwd=tmp_path, own_group=True)
    children: list[int] = []

    def decoding() -> bool:
        children[:] = child_pids(process.pid)
        return len(children) > 0

    wait_for(decoding, timeout=120)
    os.killpg(process.pid, signum)
    try:
        _, err = process.communicate(timeout=120)
    finally:  # a hung command and its workers must not outlive the test
        with contextlib.suppress(ProcessLookupError):  # the group has ended: nothing left
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "stopped: interrupted (Ctrl-C, SIGTERM or SIGHUP)"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    wait_for(lambda: not [pid for pid in children if is_running(pid)], timeout=10)


def test_an_empty_section_in_a_later_file_keeps_what_came_before(workspace: Path) -> None:
    files(workspace, **{"a.yaml": "schedule:\n  lr_max: 0.8\n", "b.yaml": "schedule: {}\n"})
    result = CliRunner().invoke(app, ["config", "show", "-c", "a.yaml", "-c", "b.yaml"])
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout)["schedule"]["lr_max"] == 0.8
