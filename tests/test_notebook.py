"""examples/colab.ipynb runs top to bottom, headless, as a student would run it: on the real
CIFAR-10 when this checkout has it unpacked (CI unpacks ../shared first), else on a synthetic
image folder; at a toy scale either way."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

REAL_DATA = REPO / "data" / "cifar10-png"
TOY = {
    "model.width": 4,
    "data.train_subset": 300,
    "data.test_subset": 200,
    "train.epochs": 2,
    "schedule.peak_epoch": 1,
    "train.batch_size": 32,
    "train.device": "cpu",
    "finder.num_iters": 100,  # a width-4 model on 300 images: its loss falls clearly only by then
}


def test_the_notebook_runs_headless(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = REAL_DATA if (REAL_DATA / "train").is_dir() else image_folder
    synthetic = {"data.train_subset": 60, "data.test_subset": 24, "train.batch_size": 16}
    toy = TOY | ({} if data == REAL_DATA else synthetic)  # synthetic: 3 steps of 16 per epoch
    monkeypatch.setenv("SUPERCON_DATA", str(data))
    monkeypatch.setenv("SUPERCON_NOTEBOOK", json.dumps(toy))
    notebook = nbformat.read(REPO / "examples" / "colab.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    images = [o for o in shown if "image/png" in o.get("data", {})]
    assert len(images) == 3  # the range test, the schedule (once, not per open figure), curves
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "lr_max = " in text and "test accuracy " in text
    (run,) = (tmp_path / "runs" / "notebook").glob("*-supercon")
    assert (run / "report.md").is_file() and (run / "summary.json").is_file()
