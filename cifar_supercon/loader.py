"""Device-resident loaders: the whole split lives on the training device.

No DataLoader and no per-image Python. Each epoch draws a permutation and every augmentation
parameter at once from the loader's own generator. Because an epoch's randomness is a function of
the generator state at its start, a checkpoint stores that state and the number of batches served,
and a resumed run gets exactly the same batches.

Each training batch is ONE gather: the training set is padded and normalised once, in the batch
dtype and channels-last order, and every output pixel's source index folds in the image, the crop
offset, the flip and the Cutout square (whose pixels read a trailing row of 0.0, the mean after
normalisation). Normalising first gives bit-identical values to normalising each cropped batch, at
the cost of holding the padded set as floats (50,000 images: 480 MB in bf16, 960 MB in fp32).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch

from .augment import AugmentPlan, cutout_mask, draw_plan, pad
from .config import DataConfig
from .data import Split

Batch = tuple[torch.Tensor, torch.Tensor]


class Normalizer:
    """uint8 pixels -> (x / 255 - mean) / std as one multiply-add, per channel."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean = mean.double()
        self.std = std.double()
        self.scale = (1 / (255 * self.std)).float().view(1, -1, 1, 1)
        self.shift = (-self.mean / self.std).float().view(1, -1, 1, 1)

    @classmethod
    def fit(cls, images: torch.Tensor) -> Normalizer:
        """Per-channel mean and (sample) std of a uint8 (N, C, H, W) set, in [0, 1] units.

        From each channel's histogram of the 256 values: exact sums in float64 without a
        float copy of the data set (50,000 images would need 1.2 GB for one).
        """
        channels = images.shape[1]
        counts = torch.stack(
            [torch.bincount(images[:, c].reshape(-1), minlength=256) for c in range(channels)]
        ).double()
        values = torch.arange(256, dtype=torch.float64, device=images.device) / 255
        n = counts.sum(dim=1)
        mean = (counts * values).sum(dim=1) / n
        variance = (counts * (values - mean[:, None]) ** 2).sum(dim=1) / (n - 1)
        return cls(mean.cpu(), variance.sqrt().cpu())

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() * self.scale.to(images.device) + self.shift.to(images.device)

    def state_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict[str, list[float]]) -> Normalizer:
        # float64, as fitted: float32 would round the statistics and change every pixel slightly
        mean, std = (torch.tensor(state[k], dtype=torch.float64) for k in ("mean", "std"))
        return cls(mean, std)


def _chunks(n: int, size: int = 4096) -> Iterator[slice]:
    """Slices covering range(n): normalising in parts avoids full-size float32 temporaries."""
    return (slice(start, start + size) for start in range(0, n, size))


class TrainLoader:
    """Shuffled, augmented batches; iterating continues the current epoch where it stopped.

    `len(loader)` is the number of batches per epoch: ceil(N / batch_size), or floor with
    drop_last (the short last batch is then skipped).
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        augment: DataConfig,
        normalizer: Normalizer,
        seed: int,
        device: torch.device,
        *,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        drop_last: bool = False,
    ) -> None:
        if not 1 <= batch_size <= len(split):
            raise ValueError(f"batch_size {batch_size} outside 1..{len(split)}")
        self.augment = augment
        self.batch_size = batch_size
        self.normalizer = normalizer
        self.channels_last, self.drop_last = channels_last, drop_last
        self.size = split.images.shape[-1]
        self.padded_size = self.size + 2 * augment.pad
        self.pixels = self._pixel_table(split.images.to(device), augment, normalizer, dtype)
        self.labels = split.labels.to(device)
        self.generator = torch.Generator(device).manual_seed(seed)
        self._epoch_start_state = self.generator.get_state()
        self._order: torch.Tensor | None = None
        self._plan: AugmentPlan | None = None
        self.position = 0  # batches of the current epoch already served

    def _pixel_table(
        self, images: torch.Tensor, augment: DataConfig, normalizer: Normalizer, dtype: torch.dtype
    ) -> torch.Tensor:
        """Padded, normalised pixels as rows of C channels, (N * H * W + 1, C); last row 0.0."""
        n, side, channels = len(images), self.padded_size, images.shape[1]
        pixels = torch.zeros(n * side * side + 1, channels, dtype=dtype, device=images.device)
        table = pixels[:-1].view(n, side, side, channels)
        for part in _chunks(n):
            table[part] = normalizer(pad(images[part], augment.pad, augment.pad_mode)).permute(
                0, 2, 3, 1
            )
        return pixels

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def mid_epoch(self) -> bool:
        """Some but not all batches of the current epoch have been served."""
        return self._order is not None and 0 < self.position < len(self)

    def _start_epoch(self) -> None:
        self._epoch_start_state = self.generator.get_state()
        n = len(self.labels)
        self._order = torch.randperm(n, generator=self.generator, device=self.generator.device)
        self._plan = draw_plan(n, self.augment, self.generator)

    def __iter__(self) -> Iterator[Batch]:
        """The rest of the current epoch (all of it for a fresh epoch)."""
        if self._order is None or self.position >= len(self):
            self.position = 0
            self._start_epoch()
        assert self._order is not None and self._plan is not None
        while self.position < len(self):
            start = self.position * self.batch_size
            index = self._order[start : start + self.batch_size]
            plan = self._plan[start : start + self.batch_size]
            self.position += 1
            yield self._augment(index, plan), self.labels[index]

    def _augment(self, index: torch.Tensor, plan: AugmentPlan) -> torch.Tensor:
        """pad -> crop -> flip -> normalise -> Cutout, as one gather (see the module docstring)."""
        size, side = self.size, self.padded_size
        span = torch.arange(size, device=index.device)
        rows = plan.offsets[:, 0:1] + span  # (B, size): source row of each output row
        columns = plan.offsets[:, 1:2] + torch.where(plan.flips[:, None], size - 1 - span, span)
        first_of_row = (index[:, None] * side + rows) * side
        source = first_of_row[:, :, None] + columns[:, None, :]  # (B, H, W) pixel rows
        if self.augment.cutout > 0:
            square = cutout_mask(plan.centres, self.augment.cutout, plan.cutout, size, size)
            source.masked_fill_(square, len(self.pixels) - 1)  # the row of zeros
        x = self.pixels.index_select(0, source.view(-1)).view(len(index), size, size, -1)
        x = x.permute(0, 3, 1, 2)  # NCHW shape, channels-last memory
        return x if self.channels_last else x.contiguous()

    def state_dict(self) -> dict[str, object]:
        """Generator state at the start of the current epoch, and batches served in it."""
        if self.mid_epoch:
            return {"generator": self._epoch_start_state.clone(), "position": self.position}
        return {"generator": self.generator.get_state(), "position": 0}

    def load_state_dict(self, state: dict[str, object]) -> bool:
        """Continue where `state` was saved. Returns False when its generator state came from
        another device type (a CUDA generator's state is not a CPU one's): the stream then
        continues from a generator seeded by that state's bytes, reproducibly but not as the
        original device would have continued it."""
        generator, position = state["generator"], int(state["position"])  # type: ignore[arg-type]
        exact = True
        try:
            self.generator.set_state(generator)  # type: ignore[arg-type]
        except (RuntimeError, TypeError, ValueError):
            exact = False
            digest = hashlib.sha256(torch.as_tensor(generator).numpy().tobytes()).digest()
            self.generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        self._order = self._plan = None
        self.position = 0
        if position > 0:
            self._start_epoch()  # redraws this epoch's permutation and augmentation
            self.position = position
        return exact


class EvalLoader:
    """Unaugmented batches in order, normalised once up front (an epoch's eval is then slices)."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        normalizer: Normalizer,
        device: torch.device,
        *,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
    ) -> None:
        images = split.images.to(device)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.images = torch.empty(images.shape, dtype=dtype, device=device, memory_format=layout)
        for part in _chunks(len(images)):
            self.images[part] = normalizer(images[part])
        self.labels = split.labels.to(device)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        for start in range(0, len(self.labels), self.batch_size):
            stop = start + self.batch_size
            yield self.images[start:stop], self.labels[start:stop]
