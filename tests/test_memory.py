"""The memory check before the model is built: the estimate, what the machine has, the refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cifar_supercon import memory, report
from cifar_supercon.errors import InsufficientMemory
from cifar_supercon.model import analytic_parameter_count


def test_kept_activations_are_affine_in_the_width() -> None:
    # Measured at widths 1 and 2, extended: exact at a width never measured.
    assert memory.saved_bytes_per_image(5, 10) == memory._measured(5, 10)
    assert memory.saved_bytes_per_image(3, 7) == memory._measured(3, 7)  # classes too
    # The prep layer alone keeps 32x32xwidth floats at least (its convolution's output).
    assert memory.saved_bytes_per_image(5, 10) > 4 * 32 * 32 * 5


def test_training_bytes_counts_three_fp32_copies_and_the_batch() -> None:
    weights = 3 * 4 * analytic_parameter_count(8, 10)
    per_image = memory.saved_bytes_per_image(8, 10)
    assert memory.training_bytes(8, 10, 32, half=False) == weights + 32 * per_image
    assert memory.training_bytes(8, 10, 32, half=True) == weights + 32 * per_image // 2


def test_a_step_that_cannot_fit_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda _device: 3 * memory.GIB)
    needed = memory.training_bytes(1024, 10, 512, half=False)
    with pytest.raises(InsufficientMemory) as caught:
        memory.check_fits(1024, 10, 512, False, torch.device("cpu"))
    assert str(caught.value) == (
        "model.width=1024, train.batch_size=512: a training step needs at least "
        f"{memory._gib(needed)} (weights, gradients, momentum and activations), this machine "
        "has 3.0 GiB free; free memory, or lower model.width or train.batch_size (in a new run)"
    )
    memory.check_fits(4, 10, 16, False, torch.device("cpu"))  # fits: no error
    monkeypatch.setattr(memory, "available_bytes", lambda _device: None)
    memory.check_fits(1024, 10, 512, False, torch.device("cpu"))  # unknown: not refused


def test_gib_rounds_up() -> None:
    assert memory._gib(memory.GIB) == "1.0 GiB"
    assert memory._gib(memory.GIB + 1) == "1.1 GiB"  # a lower bound is never rounded down


def test_available_memory_on_linux_is_meminfo_within_the_cgroup(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n")
    assert memory._meminfo_available(meminfo) == 20000000 * 1024
    assert memory._meminfo_available(tmp_path / "absent") is None
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("8589934592\n")
    (v2 / "memory.current").write_text("1073741824\n")
    assert memory._cgroup_headroom(v2) == 7 * memory.GIB
    # The page cache counts in the usage but is reclaimed before anything is killed.
    (v2 / "memory.stat").write_text(f"anon 1\nfile 2\ninactive_file {memory.GIB}\nactive_file 3\n")
    assert memory._cgroup_headroom(v2) == 8 * memory.GIB
    (v2 / "memory.max").write_text("max\n")
    assert memory._cgroup_headroom(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text(str(2**63 - 4096))  # v1: no limit
    (v1 / "memory" / "memory.usage_in_bytes").write_text("1")
    assert memory._cgroup_headroom(v1) is None
    (v1 / "memory" / "memory.limit_in_bytes").write_text(str(4 * memory.GIB))
    assert memory._cgroup_headroom(v1) == 4 * memory.GIB - 1
    (v1 / "memory" / "memory.stat").write_text("inactive_file 5\ntotal_inactive_file 7\n")
    assert memory._cgroup_headroom(v1) == 4 * memory.GIB + 6
    assert memory._cgroup_headroom(tmp_path / "none") is None


def test_the_check_leaves_the_random_state_alone() -> None:
    # A run's weights come from the global generator right after the check; measuring (the
    # first call in a process builds two models) must not move it.
    memory._measured.cache_clear()
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    memory.check_fits(4, 10, 16, False, torch.device("cpu"))
    report.layers(4)  # the report's layer table measures a model too
    assert torch.equal(torch.random.get_rng_state(), before)
