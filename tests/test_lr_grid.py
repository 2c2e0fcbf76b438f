"""scripts/lr_grid.py: the grid x seeds, the find cells, the summary, and a rerun that resumes."""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys
from pathlib import Path

from conftest import REPO, tiny_config

from cifar_supercon import config as config_lib


def run_grid(config: Path, data: Path, results: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts" / "lr_grid.py"), "--config", str(config)]
    command += ["--data-dir", str(data), "--results", str(results), "--out", str(results / "runs")]
    command += ["--set", "train.epochs=2", "--seeds", "0", "1", *extra]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)


def test_grid_find_and_resume(image_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(config_lib.to_yaml(tiny_config(image_folder, tmp_path / "unused")))
    results = tmp_path / "grid"
    done = run_grid(
        config, image_folder, results, "--lr-max", "0.2", "--lr-min-div", "10", "100", "--find"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with open(results / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cells = {(r["cell"], float(r["lr_max"]), float(r["lr_min"])) for r in rows}
    assert {("grid", 0.2, 0.02), ("grid", 0.2, 0.002)} < cells
    (found,) = [c for c in cells if c[0] == "find:middle"]  # the config's finder.suggest
    assert sorted(int(r["seed"]) for r in rows if r["cell"] == "find:middle") == [0, 1]
    assert len(rows) == 3 * 2  # three cells, two seeds
    suggested = (results / "finder" / "suggested.yaml").read_text()
    assert f"lr_max: {found[1]}" in suggested
    summary = (results / "summary.md").read_text()
    header = "| cell | lr_max | lr_min | weight_decay | n | mean +- std (%) | min | median | max |"
    assert header in summary
    assert summary.count("| grid |") == 2 and summary.count("| find:middle |") == 1
    runs_of_found = [r for r in rows if r["cell"] == "find:middle"]
    accs = [100 * float(r["test_accuracy"]) for r in runs_of_found]
    mean, std = statistics.fmean(accs), statistics.stdev(accs)
    values = " | ".join(runs_of_found[0][k] for k in ("lr_max", "lr_min", "weight_decay"))
    assert f"| find:middle | {values} | 2 | {mean:.2f} +- {std:.2f} |" in summary
    # The same command again trains nothing new; a new seed adds only its own runs.
    again = run_grid(config, image_folder, results, "--lr-max", "0.2", "--lr-min-div", "10", "100")
    assert again.returncode == 0 and "seed" not in again.stdout.split("| cell |")[0]
    with open(results / "runs.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6
    assert len((results / "commands.txt").read_text().splitlines()) == 2
