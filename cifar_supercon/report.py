"""report.md: a run's hand-in, complete by itself on a code host (images linked relatively).

It answers what the assignment asks to show: the CLR triangle and the 1cycle schedule with the code
that computes them, the model layer by layer, the augmentation, the LR range test behind
LRMIN/LRMAX, the hardware and versions, the per-epoch table, final and best accuracy with the epoch
that reached the target, and the accuracy of every class.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import plots, runs
from . import schedule as schedule_lib
from .config import Config
from .model import IMAGE_SIZE, NUM_CLASSES, probe
from .text import table_row

TRIANGLE_CYCLES = 3  # cycles drawn for the CLR triangle


@dataclasses.dataclass(frozen=True)
class Layer:
    name: str
    what: str
    output: tuple[int, ...]  # (C, H, W) or (features,), for one image
    parameters: int


def layers(width: int, num_classes: int = NUM_CLASSES) -> list[Layer]:
    """ResNet-9's stages with their output shapes, measured by running one image through a
    fresh model on the CPU (shapes and parameter counts do not depend on the weights)."""
    model = probe(width, num_classes).eval()
    w = width
    stages: list[tuple[str, str, nn.Module]] = [
        ("prep", f"conv 3x3, 3 -> {w}, BN, ReLU", model.prep),
        ("layer1", f"conv 3x3, {w} -> {2 * w}, max-pool 2, BN, ReLU", model.layer1[0]),
        ("layer1 residual", f"x + 2 x (conv 3x3 {2 * w}, BN, ReLU)", model.layer1[1]),
        ("layer2", f"conv 3x3, {2 * w} -> {4 * w}, max-pool 2, BN, ReLU", model.layer2),
        ("layer3", f"conv 3x3, {4 * w} -> {8 * w}, max-pool 2, BN, ReLU", model.layer3[0]),
        ("layer3 residual", f"x + 2 x (conv 3x3 {8 * w}, BN, ReLU)", model.layer3[1]),
        ("pool", "max-pool 4 (global)", model.pool),
        (
            "classifier",
            f"linear {8 * w} -> {num_classes}, no bias, x {model.logit_scale}",
            model.fc,
        ),
    ]
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
        for name, _, module in stages
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE))
    for hook in hooks:
        hook.remove()
    return [
        Layer(name, what, shapes[name], sum(p.numel() for p in module.parameters()))
        for name, what, module in stages
    ]


def write(
    run: Path,
    cfg: Config,
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    classes: Sequence[str],
    matrix: Sequence[Sequence[int]],
    steps_per_epoch: int,
) -> Path:
    """plots/clr_triangle.png (where the bounds make a triangle), then report.md (the other
    plots are train's)."""
    s = cfg.schedule
    triangle = None
    if isinstance(s.lr_min, float) and isinstance(s.lr_max, float) and s.lr_min < s.lr_max:
        # The same bounds, step size and momentum under CLR's triangular policy.
        as_clr = s.model_copy(update={"policy": "triangular"})
        triangle = schedule_lib.build(as_clr, cfg.train.epochs, steps_per_epoch)
        assert isinstance(triangle, schedule_lib.Cyclic)
        total = TRIANGLE_CYCLES * 2 * triangle.step_size
        figure = plots.schedule_figure(triangle, total, steps_per_epoch)
        plots.save(figure, run / runs.TRIANGLE_PLOT)
    sections = [
        f"# Super-convergence on CIFAR-10: run `{run.name}`",
        _headline(cfg, summary),
        _schedule_section(cfg, triangle is not None),
        _lr_range_section(run, cfg),
        _model_section(cfg, len(classes)),
        _data_section(cfg, summary),
        _epochs_section(rows),
        _classes_section(classes, matrix),
        "## Reproduce\n"
        f"The resolved configuration is [config.yaml](config.yaml) (seed {cfg.seed}); metrics "
        f"per epoch in [metrics.csv](metrics.csv), the summary in "
        f"[summary.json](summary.json).\n\n```\n"
        + shlex.join(["supercon", "train", "--config", str(run / "config.yaml")])
        + "\n```",
    ]
    runs.write_text(run / runs.REPORT_FILE, "\n\n".join(sections) + "\n")
    return run / runs.REPORT_FILE


def _headline(cfg: Config, summary: Mapping[str, Any]) -> str:
    target, reached = summary["target_accuracy"], summary["epoch_reached_90"]
    return (
        f"**Final test accuracy: {100 * summary['test_accuracy']:.2f}%** after "
        f"{cfg.train.epochs} epochs (best {100 * (summary['best_test_accuracy'] or 0):.2f}%); "
        + (
            f"{100 * target:g}% was first reached in epoch {reached}."
            if reached
            else f"{100 * target:g}% was not reached."
        )
        + f" Training took {summary['train_seconds']:.1f} s on {summary['device']} "
        f"({summary['precision']}, compiled: {summary['compiled']}); torch "
        f"{summary['torch_version']}, torchvision {summary['torchvision_version']}"
        + (f", CUDA {summary['cuda_version']}" if summary.get("cuda_version") else "")
        + f", Python {summary['python_version']}. Test set: {summary['test_images']:,} images."
    )


def _data_section(cfg: Config, summary: Mapping[str, Any]) -> str:
    d = cfg.data
    return (
        "## Data and augmentation\n"
        f"{summary['data']}: {summary['train_images']:,} training images, batch "
        f"{cfg.train.batch_size} "
        f"({'the short last batch dropped' if d.drop_last else 'every image'} each epoch). "
        f"Per image, on the device: pad {d.pad} px ({d.pad_mode}) and a random "
        f"{IMAGE_SIZE}x{IMAGE_SIZE} crop, "
        + ("a horizontal flip with p = 0.5, " if d.flip else "no flip, ")
        + (f"Cutout {d.cutout}x{d.cutout} (p = {d.cutout_prob:g})" if d.cutout else "no Cutout")
        + " (`cifar_supercon/augment.py`, `cifar_supercon/loader.py`). Optimizer: SGD, "
        f"Nesterov {cfg.optim.nesterov}, weight decay {cfg.optim.weight_decay:g}."
    )


def _schedule_section(cfg: Config, triangle: bool) -> str:
    s, t = cfg.schedule, cfg.train
    if s.policy == "one_cycle":
        policy = (
            f"1cycle: the learning rate rises linearly from lr_min = {s.lr_min:g} to lr_max = "
            f"{s.lr_max:g} at the end of epoch {s.peak_epoch:g}, and falls back to {s.lr_min:g} "
            f"at epoch {t.epochs}"
            + (
                f", then to {s.lr_min / s.annihilation_factor:g} over "
                f"{s.annihilation_epochs:g} epochs"
                if s.annihilation_epochs
                else " (no annihilation phase)"
            )
            + f"; momentum moves the other way, {s.momentum_max} -> {s.momentum_min} -> "
            f"{s.momentum_max}."
        )
    elif s.policy == "constant":
        policy = (
            f"Constant: lr {s.lr_max:g} (schedule.lr_max) throughout, momentum {s.momentum_max}."
        )
    elif s.policy == "multistep":
        drops = ", ".join(f"{m:g}" for m in s.milestones) or "none"
        lrs = " -> ".join(f"{s.lr_max * s.decay**i:g}" for i in range(len(s.milestones) + 1))
        policy = (
            f"Step decay: lr {lrs}, times {s.decay:g} at epoch(s) {drops}; momentum "
            f"{s.momentum_max}."
        )
    else:
        policy = (
            f"Cyclical (`{s.policy}`): lr between {s.lr_min:g} and {s.lr_max:g}, a half cycle "
            f"every {s.step_size_epochs:g} epoch(s)."
        )
    return (
        "## Learning-rate schedule\n"
        f"{policy} Computed per optimizer step by `cifar_supercon/schedule.py` (`OneCycle`, and "
        "`Cyclic` for the CLR triangle; `schedule.build` chooses from the config), pure functions "
        "of the step, checked against torch's `OneCycleLR` and `CyclicLR` at every step.\n\n"
        + (
            "| this run's schedule | CLR triangle (`triangular`, same bounds, "
            f"step size {s.step_size_epochs:g} epochs) |\n|---|---|\n"
            f"| ![schedule]({runs.SCHEDULE_PLOT}) | ![CLR triangle]({runs.TRIANGLE_PLOT}) |"
            if triangle
            else f"![schedule]({runs.SCHEDULE_PLOT})"
        )
    )


def _lr_range_section(run: Path, cfg: Config) -> str:
    s = cfg.schedule
    header = "## LR range test (LRMIN / LRMAX)\n"
    if (run / runs.FINDER / "lr_finder.png").is_file():
        return header + (
            f"This run found its bounds itself (`--lr-max auto`): lr_max = {s.lr_max:g}, "
            f"lr_min = {s.lr_min:g} by the `{cfg.finder.suggest}` rule, from "
            f"{cfg.finder.num_iters} steps from {cfg.finder.start_lr:g} to {cfg.finder.end_lr:g} "
            f"under the training conditions ([curve]({runs.FINDER}/lr_finder.csv), "
            f"[suggestion]({runs.FINDER}/suggested.yaml)).\n\n"
            f"![LR range test]({runs.FINDER}/lr_finder.png)"
        )
    return header + (
        f"lr_max = {s.lr_max:g} and lr_min = {s.lr_min:g} were given in the configuration. "
        "`supercon find-lr --config <this config>` runs the range test under the same "
        "conditions and writes the plot and a suggested.yaml; `--lr-max auto` runs it first and "
        "puts its curve in this report."
    )


def _model_section(cfg: Config, num_classes: int) -> str:
    found = layers(cfg.model.width, num_classes)
    lines = [
        f"| {layer.name} | {layer.what} | {' x '.join(map(str, layer.output))} | "
        f"{layer.parameters:,} |"
        for layer in found
    ]
    total = sum(layer.parameters for layer in found)
    return (
        f"## Model: ResNet-9 (David Page), width {cfg.model.width}\n"
        "Output shapes for one 32x32 image (`cifar_supercon/model.py`).\n\n"
        "| stage | layers | output | parameters |\n|---|---|---|---|\n"
        + "\n".join(lines)
        + f"\n| **total** | | | **{total:,}** |"
    )


def _epochs_section(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        f"| {r['epoch']} | {float(r['lr']):.4f} | {float(r['train_loss']):.3f} | "
        f"{100 * float(r['train_acc']):.2f}% | "
        + (
            f"{float(r['test_loss']):.3f} | {100 * float(r['test_acc']):.2f}% |"
            if r["test_acc"] not in (None, "")
            else "- | - |"
        )
        + f" {float(r['epoch_seconds']):.1f} |"
        for r in rows
    ]
    return (
        f"## Training, epoch by epoch\n![training]({runs.TRAINING_PLOT})\n\n"
        "| epoch | lr (end) | train loss | train acc | test loss | test acc | seconds |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(lines)
    )


def _classes_section(classes: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    lines = [
        table_row([name, f"{100 * row[i] / sum(row):.1f}%" if sum(row) else "-", str(sum(row))])
        for i, (name, row) in enumerate(zip(classes, matrix, strict=True))
    ]
    return (
        "## Accuracy per class (final model)\n"
        "| class | accuracy | test images |\n|---|---|---|\n"
        + "\n".join(lines)
        + f"\n\n![confusion matrix]({runs.CONFUSION_PLOT})"
    )
