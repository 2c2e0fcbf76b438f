"""Super-convergence on CIFAR-10: the LR range test, the 1cycle policy and David Page's ResNet-9.

The Python API mirrors the CLI:

    from cifar_supercon import find_lr, train
    result = find_lr("configs/cpu-smoke.yaml", overrides={"data.root": "data/cifar10-png"})
    summary = train("configs/cpu-smoke.yaml", overrides={"data.root": "data/cifar10-png"})
"""

from .api import evaluate, find_lr, plot_schedule, train
from .config import Config, load

__all__ = ["Config", "evaluate", "find_lr", "load", "plot_schedule", "train"]
