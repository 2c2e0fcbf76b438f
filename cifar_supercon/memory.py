"""Whether a training step can fit in the device's memory, checked before the model is built.

On Linux a process that outgrows the machine's memory is killed by the kernel (SIGKILL), so a
width or batch size far beyond the machine would end with no message at all. The estimate here is
a lower bound, so it refuses only what cannot fit: the weights, their gradients and the momentum
buffers in fp32, and the activations the backward pass keeps, measured on the model itself.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from .errors import InsufficientMemory
from .model import analytic_parameter_count, probe

GIB = 2**30
FP32_COPIES = 3  # weights, gradients, SGD's momentum buffers


def saved_bytes_per_image(width: int, num_classes: int) -> int:
    """Bytes the backward pass keeps for one image at `width`, in fp32 (exact).

    Every kept tensor has a channel count proportional to the width except the input and the
    logits, so the count is affine in the width: measured at widths 1 and 2, then extended.
    """
    one, two = _measured(1, num_classes), _measured(2, num_classes)
    return one + (two - one) * (width - 1)


@functools.lru_cache
def _measured(width: int, num_classes: int) -> int:
    """Bytes of the tensors autograd saves for one image, parameters excluded (counted apart)."""
    model = probe(width, num_classes).train()
    parameters = {p.data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.data_ptr() not in parameters:  # a view of the same storage counts once
            kept[tensor.data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(torch.zeros(2, 3, 32, 32))  # two images: batch norm in training mode needs > 1
    return sum(kept.values()) // 2


def training_bytes(width: int, num_classes: int, batch_size: int, half: bool) -> int:
    """A lower bound on a training step's peak memory. `half`: activations in bf16/fp16."""
    weights = FP32_COPIES * 4 * analytic_parameter_count(width, num_classes)
    activations = batch_size * saved_bytes_per_image(width, num_classes)
    return weights + (activations // 2 if half else activations)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on the device: the GPU's free memory, or on the CPU what Linux says a new
    allocation can take (within a container's cgroup limit). None where that is unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    free = _meminfo_available(Path("/proc/meminfo"))
    limit = _cgroup_headroom(Path("/sys/fs/cgroup"))
    known = [b for b in (free, limit) if b is not None]
    return min(known) if known else None


def check_fits(
    width: int, num_classes: int, batch_size: int, half: bool, device: torch.device
) -> None:
    """Raise (one line, naming the keys) when the step's lower bound exceeds the free memory."""
    needed = training_bytes(width, num_classes, batch_size, half)
    free = available_bytes(device)
    if free is None or needed <= free:
        return
    where = "the GPU" if device.type == "cuda" else "this machine"
    raise InsufficientMemory(
        f"model.width={width}, train.batch_size={batch_size}: a training step needs at least "
        f"{_gib(needed)} (weights, gradients, momentum and activations), {where} has {_gib(free)} "
        "free; free memory, or lower model.width or train.batch_size (in a new run)"
    )


def _gib(size: int) -> str:
    return f"{math.ceil(size / GIB * 10) / 10:.1f} GiB"


def _meminfo_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom(root: Path) -> int | None:
    """Limit minus the working set of this process's memory cgroup (v2, or v1's names), if it has
    one. The cgroup's usage counts the page cache, which the kernel reclaims before it kills;
    its inactive part is taken off, as container runtimes do for their working set."""
    for limit_file, usage_file, stat_file, inactive_key in (
        ("memory.max", "memory.current", "memory.stat", "inactive_file"),
        (
            "memory/memory.limit_in_bytes",
            "memory/memory.usage_in_bytes",
            "memory/memory.stat",
            "total_inactive_file",
        ),
    ):
        try:
            limit = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 2**60:  # no limit (v1 writes a huge number)
            return None
        return max(int(limit) - usage + _stat_value(root / stat_file, inactive_key), 0)
    return None


def _stat_value(stat: Path, key: str) -> int:
    """One counter of a cgroup's memory.stat, 0 where the file or the key is missing."""
    try:
        for line in stat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
