"""Super-convergence on CIFAR-10: the LR range test, the 1cycle policy and David Page's ResNet-9.

The Python API mirrors the CLI:

    from cifar_supercon import find_lr, train
    result = find_lr("configs/cpu-smoke.yaml", overrides={"data.root": "data/cifar10-png"})
    summary = train("configs/cpu-smoke.yaml", overrides={"data.root": "data/cifar10-png"})
    result = sweep("configs/cpu-smoke.yaml", grid={"schedule.lr_max": [0.2, 0.4]}, seeds=[0, 1])
    comparison = compare([result.folder])
"""

from .api import evaluate, find_lr, plot_schedule, train
from .comparison import compare
from .config import Config, load
from .sweeps import sweep

__all__ = ["Config", "compare", "evaluate", "find_lr", "load", "plot_schedule", "sweep", "train"]
