"""Shared fixtures: small synthetic image folders and tiny configs that train in seconds on CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_supercon import config as config_lib

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("apple", "boat", "cloud")

# The in-process signal tests send Ctrl-C as a terminal would; a test runner started in the
# background by a script inherits SIGINT ignored, which training rightly keeps ignoring.
signal.signal(signal.SIGINT, signal.default_int_handler)


def run_cli(
    *args: str, cwd: Path, own_group: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`supercon ARGS` as a real process (signals, exit codes, stderr as a user sees them).
    `own_group`: in a process group of its own, as a terminal's job is, to signal it whole;
    `env`: variables set on top of this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "cifar_supercon", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
        start_new_session=own_group,
        env={**os.environ, **(env or {})},
    )


def _ctrl_c_as_in_a_terminal() -> None:
    """A job started in the background of a script inherits SIGINT ignored, and one under
    `nohup` (a test suite run that way) SIGHUP; a user's terminal delivers both. Tests send
    them as the terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def wait_for(condition: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def a_dead_pid() -> int:
    """The pid of a process that has ended (and been reaped): what a killed writer leaves in the
    names of its temporary files."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` now (Linux: read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be read


def write_image_folder(
    root: Path,
    train_per_class: int = 24,
    test_per_class: int = 8,
    seed: int = 0,
    classes: tuple[str, ...] = CLASSES,
) -> Path:
    """train/<class>/*.png and test/<class>/*.png, 32x32 RGB.

    Each class has its own mean colour plus noise, so a small network can learn it.
    """
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            colour = np.zeros(3)
            colour[index % 3] = 170
            for i in range(count):
                noise = rng.normal(0, 40, size=(32, 32, 3))
                pixels = np.clip(colour + 40 + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention synthetic data set shared by the whole session."""
    return write_image_folder(tmp_path_factory.mktemp("data"))


def tiny_config(data_root: Path, out: Path, **sections: dict) -> config_lib.Config:
    """A width-4 ResNet-9 on the synthetic folder: a few seconds per run on CPU."""
    base = {
        "name": "tiny",
        "out": str(out),
        # The short last batch stays: resume and loader tests cover a ragged epoch end.
        "data": {"root": str(data_root), "source": "folder", "drop_last": False},
        "model": {"width": 4},
        "schedule": {"lr_min": 0.02, "lr_max": 0.2, "peak_epoch": 1},
        "train": {
            "epochs": 3,
            "batch_size": 16,
            "eval_batch_size": 32,
            "device": "cpu",
            "deterministic": True,
            "checkpoint_seconds": 0,  # every epoch: the durability tests kill between epochs
        },
        "finder": {"num_iters": 20},
    }
    for name, changes in sections.items():
        base[name] = {**base.get(name, {}), **changes}
    return config_lib.Config.model_validate(base)
