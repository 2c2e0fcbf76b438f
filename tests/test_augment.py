"""Exact semantics of padding, the Cutout square and the random plan (`draw_plan`).

The loader applies crop and flip inside its one gather; tests/test_loader.py checks every served
image against pad -> crop -> flip -> normalise -> Cutout written out per image with numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cifar_supercon.augment import cutout_mask, draw_plan, pad
from cifar_supercon.config import DataConfig

SIZE = 32


def random_uint8(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=generator, dtype=torch.uint8)


def plan_for(n: int, seed: int = 0, **changes: object):
    return draw_plan(n, DataConfig(**changes), torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------
# crop offsets


def test_planned_offsets_cover_every_window_of_the_padded_image() -> None:
    n, pad_amount = 3000, 4
    plan = plan_for(n, pad=pad_amount)
    assert plan.offsets.shape == (n, 2)
    assert plan.offsets.dtype == torch.int64
    assert int(plan.offsets.min()) == 0 and int(plan.offsets.max()) == 2 * pad_amount
    assert len({tuple(o) for o in plan.offsets.tolist()}) == (2 * pad_amount + 1) ** 2 == 81


def test_without_padding_the_only_offset_is_zero() -> None:
    plan = plan_for(200, pad=0)
    assert torch.equal(plan.offsets, torch.zeros(200, 2, dtype=torch.int64))


# --------------------------------------------------------------------------------------------
# pad


@pytest.mark.parametrize("amount", [1, 4, 16])
def test_reflect_padding_of_uint8_equals_numpy(amount: int) -> None:
    images = random_uint8(6, seed=amount)
    images[0] = 255  # the extremes must survive the float round trip
    images[1] = 0
    padded = pad(images, amount, "reflect")
    assert padded.dtype == torch.uint8
    expected = np.pad(images.numpy(), ((0, 0), (0, 0), (amount,) * 2, (amount,) * 2), "reflect")
    np.testing.assert_array_equal(padded.numpy(), expected)


def test_zero_padding_surrounds_the_image_with_zeros() -> None:
    images = random_uint8(3).clamp(min=1)  # no zero inside, so a zero means padding
    padded = pad(images, 4, "zeros")
    assert padded.shape == (3, 3, SIZE + 8, SIZE + 8)
    assert padded.dtype == torch.uint8
    assert torch.equal(padded[:, :, 4:-4, 4:-4], images)
    border = torch.ones_like(padded, dtype=torch.bool)
    border[:, :, 4:-4, 4:-4] = False
    assert torch.all(padded[border] == 0)


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_padding_by_zero_pixels_changes_nothing(mode: str) -> None:
    images = random_uint8(2)
    assert torch.equal(pad(images, 0, mode), images)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# flip


def test_about_half_the_planned_images_flip() -> None:
    n = 1000
    plan = plan_for(n, seed=3)
    flips = int(plan.flips.sum())
    # Binomial(1000, 0.5): standard deviation ~15.8; five of them is a loose bound.
    bound = 5 * math.sqrt(n * 0.25)
    assert abs(flips - n / 2) < bound
    assert 0 < flips < n  # both kinds in the same batch


def test_flip_disabled_in_the_config_flips_nothing() -> None:
    plan = plan_for(1000, flip=False)
    assert plan.flips.dtype == torch.bool
    assert not plan.flips.any()


# --------------------------------------------------------------------------------------------
# Cutout


def expected_square(cy: int, cx: int, size: int) -> torch.Tensor:
    """The Cutout square written out by hand: rows [cy - size//2, cy - size//2 + size), clipped."""
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    top, left = cy - size // 2, cx - size // 2
    mask[max(top, 0) : max(top + size, 0), max(left, 0) : max(left + size, 0)] = True
    return mask


@pytest.mark.parametrize("size", [1, 5, 8, 16])
def test_cutout_mask_is_one_clipped_square_per_image(size: int) -> None:
    generator = torch.Generator().manual_seed(size)
    n = 300
    centres = torch.randint(0, SIZE, (n, 2), generator=generator)
    mask = cutout_mask(centres, size, torch.ones(n, dtype=torch.bool))
    assert mask.shape == (n, SIZE, SIZE) and mask.dtype == torch.bool
    for image, (cy, cx) in enumerate(centres.tolist()):
        square = mask[image]
        rows = torch.nonzero(square.any(dim=1)).flatten()
        cols = torch.nonzero(square.any(dim=0)).flatten()
        # one solid rectangle: contiguous rows and columns, and every pixel of them cut
        assert torch.equal(rows, torch.arange(int(rows[0]), int(rows[-1]) + 1))
        assert torch.equal(cols, torch.arange(int(cols[0]), int(cols[-1]) + 1))
        assert int(square.sum()) == len(rows) * len(cols)
        assert torch.equal(square, expected_square(cy, cx, size))


@pytest.mark.parametrize(
    ("centre", "size", "pixels"),
    [
        ((0, 0), 8, 16),  # rows and columns [-4, 4) -> [0, 4)
        ((31, 31), 8, 25),  # [27, 35) -> [27, 32)
        ((0, 16), 8, 32),  # 4 rows x 8 columns
        ((16, 16), 8, 64),  # fully inside
        ((0, 0), 5, 9),  # odd size: [-2, 3) -> [0, 3)
        ((16, 16), 32, 16 * 16 * 4),  # [0, 32): the whole image
    ],
)
def test_cutout_square_at_the_border_is_clipped(
    centre: tuple[int, int], size: int, pixels: int
) -> None:
    mask = cutout_mask(torch.tensor([centre]), size, torch.tensor([True]))[0]
    assert int(mask.sum()) == pixels
    assert torch.equal(mask, expected_square(*centre, size))


def test_cutout_mask_respects_the_apply_flags() -> None:
    centres = torch.tensor([[10, 10], [20, 20], [5, 25]])
    mask = cutout_mask(centres, 8, torch.tensor([True, False, True]))
    assert int(mask[0].sum()) == 64 and int(mask[2].sum()) == 64
    assert not mask[1].any()


def test_planned_cutout_centres_are_uniform_over_the_image() -> None:
    plan = plan_for(3000, seed=1)
    assert plan.centres.shape == (3000, 2)
    for axis in range(2):
        assert set(plan.centres[:, axis].tolist()) == set(range(SIZE))
    assert plan.cutout.all()  # cutout_prob defaults to 1


def test_cutout_probability_zero_cuts_nothing() -> None:
    plan = plan_for(500, cutout_prob=0.0)
    assert not plan.cutout.any()
    assert not cutout_mask(plan.centres, 8, plan.cutout).any()


def test_cutout_probability_half_cuts_about_half() -> None:
    n = 1000
    plan = plan_for(n, cutout_prob=0.5)
    assert abs(int(plan.cutout.sum()) - n / 2) < 5 * math.sqrt(n * 0.25)


def test_cutout_size_zero_in_the_config_cuts_nothing() -> None:
    cfg = DataConfig(cutout=0)
    plan = draw_plan(500, cfg, torch.Generator().manual_seed(0))
    assert not plan.cutout.any()
    assert not cutout_mask(plan.centres, cfg.cutout, plan.cutout).any()


# --------------------------------------------------------------------------------------------
# draw_plan


def test_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    first, again, other = plan_for(400, seed=7), plan_for(400, seed=7), plan_for(400, seed=8)
    for name in ("offsets", "flips", "centres", "cutout"):
        assert torch.equal(getattr(first, name), getattr(again, name)), name
    assert not torch.equal(first.offsets, other.offsets)
    assert not torch.equal(first.flips, other.flips)
    assert not torch.equal(first.centres, other.centres)


def test_plan_indexing_selects_the_same_images_in_every_field() -> None:
    plan = plan_for(50, seed=2, cutout_prob=0.5)
    index = torch.tensor([3, 0, 49, 17])
    part = plan[index]
    assert torch.equal(part.offsets, plan.offsets[index])
    assert torch.equal(part.flips, plan.flips[index])
    assert torch.equal(part.centres, plan.centres[index])
    assert torch.equal(part.cutout, plan.cutout[index])
    assert torch.equal(plan[10:20].centres, plan.centres[10:20])
