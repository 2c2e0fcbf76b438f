"""Input-pipeline benchmark on CPU: the project's batched TrainLoader vs per-image torchvision.

Measures, in one run on the same training images:

* augmented images per second of `TrainLoader` (batch 512, the default DataConfig augmentation:
  reflect-pad 4 + random crop, flip, Cutout 8, normalisation; float32 output);
* the same augmentation done per image with torchvision.transforms.v2 inside a
  torch.utils.data.DataLoader (2 workers, batch 512);
* `load_dataset` time with the decoded-image cache removed (decodes every image) and cached.

    python scripts/bench_data.py --data-dir data/cifar10-png --log docs/results/bench_data_cpu.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torchvision.transforms import v2

from cifar_supercon import data as data_lib
from cifar_supercon import engine
from cifar_supercon.config import DataConfig
from cifar_supercon.data import Split, load_dataset
from cifar_supercon.loader import Normalizer, TrainLoader

BATCH_SIZE = 512
WORKERS = 2
WARMUP_BATCHES = 2
SEED = 0


class Cutout:
    """Zero a size x size square centred uniformly over the image, clipped at the border.

    v2.RandomErasing picks a square that lies fully inside the image, so near the border it
    differs from Cutout (DeVries & Taylor): this matches `cifar_supercon.augment.cutout_mask`.
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        cy, cx = (int(torch.randint(limit, ())) for limit in (height, width))
        top, left = cy - self.size // 2, cx - self.size // 2
        image = image.clone()
        image[
            ..., max(top, 0) : max(top + self.size, 0), max(left, 0) : max(left + self.size, 0)
        ] = 0
        return image


class AugmentedImages(TorchDataset):
    """uint8 (N, 3, 32, 32) images, each augmented on its own when fetched."""

    def __init__(self, split: Split, transform: v2.Compose) -> None:
        self.images, self.labels, self.transform = split.images, split.labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def torchvision_transform(cfg: DataConfig, normalizer: Normalizer) -> v2.Compose:
    """The project's default augmentation, per image, in the loader's order."""
    return v2.Compose(
        [
            v2.RandomCrop(
                32, padding=cfg.pad, padding_mode=cfg.pad_mode.replace("zeros", "constant")
            ),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(normalizer.mean.tolist(), normalizer.std.tolist()),
            Cutout(cfg.cutout),  # after Normalize, so the square is 0 = the mean, as in the loader
        ]
    )


def endless(loader: Iterable) -> Iterator:
    """Batches across epoch boundaries, so --batches may exceed one epoch."""
    while True:
        yield from loader


def images_per_second(batches: Iterator, count: int) -> tuple[float, float]:
    """(images per second, seconds) over the next `count` batches."""
    start = time.perf_counter()
    images = sum(len(labels) for _, labels in itertools.islice(batches, count))
    seconds = time.perf_counter() - start
    return images / seconds, seconds


def bench_train_loader(split: Split, cfg: DataConfig, normalizer: Normalizer, count: int) -> dict:
    cpu = torch.device("cpu")
    warmup = TrainLoader(split, BATCH_SIZE, cfg, normalizer, SEED + 1, cpu)
    for _ in itertools.islice(endless(warmup), WARMUP_BATCHES):  # allocator, thread pool
        pass
    # A fresh loader, timed from its first batch: the epoch's permutation and plan are included.
    loader = TrainLoader(split, BATCH_SIZE, cfg, normalizer, SEED, cpu)
    rate, seconds = images_per_second(endless(loader), count)
    return {"images_per_s": rate, "seconds": seconds, "batches": count}


def bench_torchvision(split: Split, cfg: DataConfig, normalizer: Normalizer, count: int) -> dict:
    dataset = AugmentedImages(split, torchvision_transform(cfg, normalizer))
    loader = DataLoader(
        dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=WORKERS, persistent_workers=True
    )
    batches = endless(loader)
    # Worker start-up is left out. The workers prefetch while the warm-up batches are served,
    # which flatters this side a little: the ratio below is, if anything, an underestimate.
    for _ in itertools.islice(batches, WARMUP_BATCHES):
        pass
    rate, seconds = images_per_second(batches, count)
    return {"images_per_s": rate, "seconds": seconds, "batches": count}


def cache_file(root: Path) -> Path:
    """The cache file load_dataset reads for `root`."""
    return data_lib.cache_file(root, data_lib.detect_source(root))


def timed_load(cfg: DataConfig) -> tuple[data_lib.Dataset, float]:
    start = time.perf_counter()
    dataset = load_dataset(cfg, SEED)
    return dataset, time.perf_counter() - start


def bench_load(cfg: DataConfig) -> tuple[data_lib.Dataset, dict]:
    """Cold (cache file set aside, every image decoded) and cached load_dataset times.

    The existing cache file is renamed, not deleted, and put back if the cold load fails, so an
    interrupted benchmark never costs anyone a decode.
    """
    path = cache_file(Path(cfg.root))
    backup = path.with_name(path.name + ".bench-backup")
    had_cache = path.is_file()
    if had_cache:
        os.replace(path, backup)
    try:
        _, cold = timed_load(cfg)
    except BaseException:
        if had_cache:
            os.replace(backup, path)
        raise
    if had_cache:
        backup.unlink()  # the cold load wrote an identical cache file
    dataset, cached = timed_load(cfg)
    return dataset, {"cold_s": cold, "cached_s": cached, "speedup": cold / cached}


def hardware() -> dict:
    return {
        "cpu": engine.cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data/cifar10-png"))
    parser.add_argument(
        "--batches", type=int, default=60, help="batches of 512 timed per pipeline (default 60)"
    )
    parser.add_argument("--log", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error("--batches must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    machine = hardware()
    print(
        f"CPU: {machine['cpu']} ({machine['logical_cpus']} logical CPUs, "
        f"{machine['torch_threads']} torch threads)"
    )
    print(f"torch {machine['torch']}, torchvision {machine['torchvision']}")

    cfg = DataConfig(root=args.data_dir)  # default augmentation: pad 4 reflect, flip, Cutout 8
    dataset, load = bench_load(cfg)
    print(f"data: {dataset.description}: {len(dataset.train)} train, {len(dataset.test)} test")
    print(f"load_dataset cold (decode): {load['cold_s']:.2f} s")
    print(f"load_dataset cached:        {load['cached_s']:.2f} s  ({load['speedup']:.1f}x faster)")

    normalizer = Normalizer.fit(dataset.train.images)
    ours = bench_train_loader(dataset.train, cfg, normalizer, args.batches)
    theirs = bench_torchvision(dataset.train, cfg, normalizer, args.batches)
    ratio = ours["images_per_s"] / theirs["images_per_s"]
    print(f"augmented images/s, batch {BATCH_SIZE}, {args.batches} batches each:")
    print(f"  TrainLoader (batched tensor ops):           {ours['images_per_s']:>10,.0f}")
    print(
        f"  torchvision v2 per image, {WORKERS}-worker DataLoader: {theirs['images_per_s']:>10,.0f}"
    )
    print(f"  ratio: {ratio:.1f}x (target >= 20x)")

    if args.log:
        report = {
            "benchmark": "bench_data",
            "hardware": machine,
            "settings": {
                "data_dir": str(args.data_dir),
                "batch_size": BATCH_SIZE,
                "batches": args.batches,
                "workers": WORKERS,
                "augmentation": cfg.model_dump(mode="json", exclude={"root", "source"}),
            },
            "load_dataset": load,
            "train_loader": ours,
            "torchvision_v2_dataloader": theirs,
            "ratio": ratio,
        }
        args.log.parent.mkdir(parents=True, exist_ok=True)
        args.log.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.log}")


if __name__ == "__main__":
    main(sys.argv[1:])
