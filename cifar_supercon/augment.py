"""Per-image random augmentation parameters, padding and the Cutout square, for whole batches.

torchvision.transforms.v2 draws one random parameter per call, i.e. per batch; here every image
gets its own draw. Randomness is drawn separately (`draw_plan`), so what the loader does with it is
a pure function of its inputs and the tests can check it exactly. The crop and flip themselves
happen inside the loader's single gather (loader.TrainLoader).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from .config import DataConfig


@dataclass(frozen=True)
class AugmentPlan:
    """Every random choice for a set of images, indexed like them."""

    offsets: torch.Tensor  # (N, 2) int64: crop row and column offset in the padded image
    flips: torch.Tensor  # (N,) bool
    centres: torch.Tensor  # (N, 2) int64: Cutout centre row and column, uniform over the image
    cutout: torch.Tensor  # (N,) bool: whether this image gets a Cutout square

    def __getitem__(self, index: torch.Tensor | slice) -> AugmentPlan:
        return AugmentPlan(
            self.offsets[index], self.flips[index], self.centres[index], self.cutout[index]
        )


def draw_plan(n: int, cfg: DataConfig, generator: torch.Generator, size: int = 32) -> AugmentPlan:
    """The random parameters of `n` images, drawn in one fixed order from `generator`.

    Crop offsets are uniform in [0, 2 * cfg.pad]^2, so every window of the padded image occurs.
    """
    device = generator.device

    def randint(high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(high, shape, generator=generator, device=device)

    offsets = randint(2 * cfg.pad + 1, (n, 2))
    flips = torch.rand(n, generator=generator, device=device) < 0.5
    centres = randint(size, (n, 2))
    cutout = torch.rand(n, generator=generator, device=device) < cfg.cutout_prob
    return AugmentPlan(
        offsets, flips & cfg.flip, centres, cutout & (cfg.cutout > 0 and cfg.cutout_prob > 0)
    )


def pad(images: torch.Tensor, amount: int, mode: Literal["reflect", "zeros"]) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H + 2 amount, W + 2 amount), any dtype."""
    if amount == 0:
        return images
    if mode == "zeros":
        return F.pad(images, (amount,) * 4)
    # reflect is implemented for floating point only; uint8 values survive the round trip
    return F.pad(images.float(), (amount,) * 4, mode="reflect").to(images.dtype)


def cutout_mask(
    centres: torch.Tensor, size: int, apply: torch.Tensor, height: int = 32, width: int = 32
) -> torch.Tensor:
    """(N, H, W) bool: a size x size square around each centre, clipped at the border.

    The square covers rows [cy - size // 2, cy - size // 2 + size), likewise columns, as in
    DeVries & Taylor's Cutout; near the border less than size x size remains.
    """
    top_left = centres - size // 2
    rows = torch.arange(height, device=centres.device)
    cols = torch.arange(width, device=centres.device)
    in_rows = (rows >= top_left[:, 0:1]) & (rows < top_left[:, 0:1] + size)
    in_cols = (cols >= top_left[:, 1:2]) & (cols < top_left[:, 1:2] + size)
    return in_rows[:, :, None] & in_cols[:, None, :] & apply.view(-1, 1, 1)
