"""Super-convergence on CIFAR-10: the LR range test, the 1cycle policy and David Page's ResNet-9.

The Python API mirrors the CLI:

    from cifar_supercon import find_lr, train
    result = find_lr("configs/cpu-smoke.yaml", overrides={"data.root": "data/cifar10-png"})
    summary = train("configs/cpu-smoke.yaml", overrides={"data.root": "data/cifar10-png"})
    result = sweep("configs/cpu-smoke.yaml", grid={"schedule.lr_max": [0.2, 0.4]}, seeds=[0, 1])
    comparison = compare([result.folder])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import evaluate, find_lr, plot_schedule, train
    from .comparison import compare
    from .config import Config, load
    from .sweeps import sweep

# Loaded on first use: importing torch takes seconds, and the command line must be able to
# answer a signal (one line, exit 130) before that; see entry.py.
_HOMES = {
    "Config": "config",
    "compare": "comparison",
    "evaluate": "api",
    "find_lr": "api",
    "load": "config",
    "plot_schedule": "api",
    "sweep": "sweeps",
    "train": "api",
}
__all__ = ["Config", "compare", "evaluate", "find_lr", "load", "plot_schedule", "sweep", "train"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
