"""TrainLoader, EvalLoader and Normalizer on small synthetic splits (CPU)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cifar_supercon.augment import draw_plan, pad
from cifar_supercon.config import DataConfig
from cifar_supercon.data import Split
from cifar_supercon.loader import Batch, EvalLoader, Normalizer, TrainLoader

CPU = torch.device("cpu")
SIZE = 32


def synthetic_split(n: int, seed: int = 0) -> Split:
    """Random pixels; label i for image i, so a label identifies the image."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=generator, dtype=torch.uint8)
    return Split(images, torch.arange(n))


def train_loader(
    split: Split, batch_size: int = 32, seed: int = 0, cfg: DataConfig | None = None, **options
) -> TrainLoader:
    normalizer = Normalizer.fit(split.images)
    return TrainLoader(split, batch_size, cfg or DataConfig(), normalizer, seed, CPU, **options)


def take(loader: TrainLoader, count: int) -> list[Batch]:
    """The next `count` batches, crossing into new epochs as needed."""
    batches: list[Batch] = []
    while len(batches) < count:
        batches += list(itertools.islice(iter(loader), count - len(batches)))
    return batches


def assert_same_batches(actual: list[Batch], expected: list[Batch]) -> None:
    assert len(actual) == len(expected)
    for (x, y), (x_expected, y_expected) in zip(actual, expected, strict=True):
        assert torch.equal(y, y_expected)
        assert torch.equal(x, x_expected)


# --------------------------------------------------------------------------------------------
# Epochs and batches


@pytest.mark.parametrize(("n", "batch_size"), [(100, 32), (96, 32), (37, 37), (10, 1)])
def test_one_epoch_visits_every_image_once(n: int, batch_size: int) -> None:
    loader = train_loader(synthetic_split(n), batch_size)
    batches = list(loader)
    assert len(loader) == len(batches) == -(-n // batch_size)
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(labels.sort().values, torch.arange(n))
    assert not torch.equal(labels, torch.arange(n)) or n == 1  # shuffled, not in order
    sizes = [len(y) for _, y in batches]
    assert sizes[:-1] == [batch_size] * (len(sizes) - 1)
    assert sizes[-1] == n - batch_size * (len(sizes) - 1)


def test_drop_last_skips_the_short_last_batch() -> None:
    n, batch_size = 100, 32
    loader = train_loader(synthetic_split(n), batch_size, drop_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == n // batch_size == 3
    assert all(len(y) == batch_size and len(x) == batch_size for x, y in batches)
    labels = torch.cat([y for _, y in batches])
    assert len(labels.unique()) == 96  # distinct images, the 4 left over are not served


def test_drop_last_with_an_exact_multiple_keeps_every_image() -> None:
    loader = train_loader(synthetic_split(64), 32, drop_last=True)
    labels = torch.cat([y for _, y in loader])
    assert torch.equal(labels.sort().values, torch.arange(64))


def test_batch_shape_and_dtype() -> None:
    x, y = next(iter(train_loader(synthetic_split(40), 16)))
    assert x.shape == (16, 3, SIZE, SIZE) and x.dtype == torch.float32
    assert x.is_contiguous()
    assert y.shape == (16,) and y.dtype == torch.int64


def test_channels_last_when_asked() -> None:
    x, _ = next(iter(train_loader(synthetic_split(40), 16, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous()
    assert x.dtype == torch.float32


def test_other_dtype_when_asked() -> None:
    x, _ = next(iter(train_loader(synthetic_split(40), 16, dtype=torch.bfloat16)))
    assert x.dtype == torch.bfloat16


@pytest.mark.parametrize("batch_size", [0, 41])
def test_batch_size_outside_the_split_is_refused(batch_size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        train_loader(synthetic_split(40), batch_size)


# --------------------------------------------------------------------------------------------
# The augmentation, re-derived from the seed with numpy


def square_span(centre: int, size: int) -> slice:
    """Rows (or columns) [centre - size // 2, centre - size // 2 + size), clipped at 0."""
    start = centre - size // 2
    return slice(max(start, 0), max(start + size, 0))  # slicing clips the end at SIZE


def expected_epoch(
    split: Split, cfg: DataConfig, normalizer: Normalizer, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(order, images, cutout squares) of an epoch written out per image with numpy:
    pad -> crop -> flip -> normalise -> zero the square.

    The loader draws torch.randperm(n) first, then draw_plan(n, ...), from a fresh generator.
    """
    n = len(split)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    plan = draw_plan(n, cfg, generator)
    mean = normalizer.mean.numpy().reshape(3, 1, 1)
    std = normalizer.std.numpy().reshape(3, 1, 1)
    border = ((0, 0), (cfg.pad, cfg.pad), (cfg.pad, cfg.pad))
    numpy_mode = {"reflect": "reflect", "zeros": "constant"}[cfg.pad_mode]
    images, squares = [], []
    for position, source in enumerate(order.tolist()):
        padded = np.pad(split.images[source].numpy(), border, mode=numpy_mode)
        row, col = plan.offsets[position].tolist()
        image = padded[:, row : row + SIZE, col : col + SIZE]
        if plan.flips[position]:
            image = image[:, :, ::-1]
        image = (image / 255.0 - mean) / std
        square = np.zeros((SIZE, SIZE), dtype=bool)
        if plan.cutout[position]:
            cy, cx = plan.centres[position].tolist()
            square[square_span(cy, cfg.cutout), square_span(cx, cfg.cutout)] = True
            image = np.where(square, 0.0, image)
        images.append(image)
        squares.append(square)
    return order, torch.from_numpy(np.stack(images)).float(), torch.from_numpy(np.stack(squares))


@pytest.mark.parametrize(
    "cfg",
    [
        DataConfig(),
        DataConfig(pad_mode="zeros", pad=2, cutout=5, cutout_prob=0.5),
        DataConfig(flip=False, cutout=0),
    ],
    ids=["defaults", "zeros-odd-cutout", "no-flip-no-cutout"],
)
def test_train_batches_equal_the_explicit_composition(cfg: DataConfig) -> None:
    split, seed, batch_size = synthetic_split(70, seed=5), 11, 32
    loader = train_loader(split, batch_size, seed, cfg)
    order, expected, cut = expected_epoch(split, cfg, loader.normalizer, seed)

    batches = list(loader)
    x = torch.cat([b for b, _ in batches])
    assert torch.equal(torch.cat([y for _, y in batches]), split.labels[order])
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=1e-5)
    # Cutout writes exact zeros (the training mean after normalisation) over all channels
    square = cut[:, None].expand_as(x)
    assert torch.all(x[square] == 0)
    assert int(cut.sum()) > 0 if cfg.cutout > 0 else int(cut.sum()) == 0


def test_every_served_image_is_a_window_of_its_padded_source_and_all_81_occur() -> None:
    """Found without the plan: match each image's corner against all 81 candidate windows."""
    n = 1500
    split = synthetic_split(n, seed=2)
    loader = train_loader(split, 500, cfg=DataConfig(flip=False, cutout=0))
    padded = loader.normalizer(pad(split.images, 4, "reflect"))[:, 0]  # channel 0 suffices
    corners = padded.unfold(1, 4, 1).unfold(2, 4, 1)[:, :9, :9]  # (n, 9, 9, 4, 4)
    found = []
    for x, y in loader:
        matches = (corners[y] == x[:, 0, None, None, :4, :4]).all(-1).all(-1)  # (B, 9, 9)
        assert torch.equal(matches.sum((1, 2)), torch.ones(len(y), dtype=torch.int64))
        found += [divmod(int(i), 9) for i in matches.flatten(1).int().argmax(1)]
        windows = [
            padded[int(s), r : r + SIZE, c : c + SIZE]
            for s, (r, c) in zip(y, found[-len(y) :], strict=True)
        ]
        assert torch.equal(x[:, 0], torch.stack(windows))  # the whole window, not just its corner
    assert len(set(found)) == 81


# --------------------------------------------------------------------------------------------
# Seeds, epochs and resumption


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    split = synthetic_split(64)
    first = list(train_loader(split, 16, seed=1))
    assert_same_batches(list(train_loader(split, 16, seed=1)), first)
    other = list(train_loader(split, 16, seed=2))
    assert not torch.equal(other[0][1], first[0][1])
    assert not torch.equal(other[0][0], first[0][0])


def test_consecutive_epochs_differ() -> None:
    loader = train_loader(synthetic_split(64), 16)
    first, second = list(loader), list(loader)
    assert len(first) == len(second) == 4
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in second]))
    # the same image is augmented differently in the next epoch
    assert not torch.equal(torch.cat([x for x, _ in first]), torch.cat([x for x, _ in second]))


@pytest.mark.parametrize("served", [0, 1, 3, 4, 5, 8])
def test_restored_state_continues_with_the_same_batches(served: int) -> None:
    """served = 0, 4, 8 are epoch boundaries (4 batches per epoch); the rest are mid-epoch."""
    split = synthetic_split(60)
    loader = train_loader(split, 16, seed=3)
    per_epoch = len(loader)
    take(loader, served)
    state = loader.state_dict()
    # the rest of this epoch and all of the next one
    remaining = per_epoch - served % per_epoch if served % per_epoch else 0
    expected = take(loader, remaining + per_epoch)

    fresh = train_loader(split, 16, seed=99)
    fresh.load_state_dict(state)
    assert fresh.mid_epoch == (served % per_epoch != 0)
    assert_same_batches(take(fresh, remaining + per_epoch), expected)


def test_restoring_mid_epoch_does_not_serve_the_first_batches_again() -> None:
    split = synthetic_split(60)
    loader = train_loader(split, 16, seed=3)
    served = take(loader, 2)
    state = loader.state_dict()
    fresh = train_loader(split, 16, seed=4)
    fresh.load_state_dict(state)
    rest = list(fresh)
    assert len(rest) == 2
    labels = torch.cat([y for _, y in served + rest])
    assert torch.equal(labels.sort().values, torch.arange(60))


def test_state_survives_a_round_trip_through_torch_save(tmp_path) -> None:
    split = synthetic_split(60)
    loader = train_loader(split, 16, seed=3)
    take(loader, 1)
    torch.save(loader.state_dict(), tmp_path / "loader.pt")
    expected = take(loader, 3)
    fresh = train_loader(split, 16, seed=0)
    fresh.load_state_dict(torch.load(tmp_path / "loader.pt", weights_only=True))
    assert_same_batches(take(fresh, 3), expected)


# --------------------------------------------------------------------------------------------
# Normalizer


def test_normalizer_fit_gives_per_channel_statistics_in_unit_range() -> None:
    images = synthetic_split(50).images
    images[:, 0] //= 4  # channels with clearly different statistics
    images[:, 2] = images[:, 2] // 2 + 128
    normalizer = Normalizer.fit(images)
    pixels = images.numpy().transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    np.testing.assert_allclose(normalizer.mean.numpy(), pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(normalizer.std.numpy(), pixels.std(axis=1, ddof=1), rtol=1e-12)

    normalised = normalizer(images)
    assert normalised.dtype == torch.float32
    torch.testing.assert_close(normalised.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalised.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)
    expected = (images.double() / 255 - normalizer.mean.view(1, 3, 1, 1)) / normalizer.std.view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(normalised, expected.float(), atol=1e-5, rtol=1e-5)


def test_normalizer_state_round_trip() -> None:
    normalizer = Normalizer.fit(synthetic_split(20).images)
    again = Normalizer.from_state_dict(normalizer.state_dict())
    images = synthetic_split(5, seed=1).images
    assert torch.equal(again(images), normalizer(images))


# --------------------------------------------------------------------------------------------
# EvalLoader


@pytest.mark.parametrize("channels_last", [False, True])
def test_eval_loader_yields_the_split_in_order_unaugmented(channels_last: bool) -> None:
    split = synthetic_split(50, seed=2)
    normalizer = Normalizer.fit(synthetic_split(80, seed=3).images)
    loader = EvalLoader(split, 16, normalizer, CPU, channels_last=channels_last)
    batches = list(loader)
    assert len(loader) == len(batches) == 4
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([y for _, y in batches]), split.labels)
    x = torch.cat([b for b, _ in batches])
    assert x.dtype == torch.float32
    assert torch.equal(x, normalizer(split.images))
    first = batches[0][0]
    assert first.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert_same_batches(list(loader), batches)  # no randomness: every pass is the same
