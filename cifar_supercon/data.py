"""CIFAR-10 (torchvision) or an image folder -> uint8 tensors, cached; stratified subsets.

Both sources end as `Split(images uint8 (N, 3, 32, 32), labels int64 (N,))`. Decoded tensors are
cached under `<root>/.supercon-cache/`, keyed by the source files' names, sizes and mtimes, so a
second load reads one file instead of decoding 60,000 images.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import pickle
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from . import processes, runs
from .config import DataConfig
from .errors import DataError, SuperconError, ValueRefused, describe, first_line
from .text import not_utf8, one_line

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
CIFAR_FOLDER = "cifar-10-batches-py"
CACHE_FOLDER = ".supercon-cache"
CACHE_FORMAT = 1
SPLITS = ("train", "test")
DECODE_CHUNK = 1000  # images per worker task

Log = Callable[[str], None]


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 (N, 3, 32, 32)
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> Split:
        return Split(self.images[indices], self.labels[indices])

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the pixels and labels, in order (0.1 s for 60,000 images): a resumed run must
        see the images it started with, wherever they now live."""
        digest = hashlib.sha256(self.images.contiguous().numpy())
        digest.update(self.labels.contiguous().numpy())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Dataset:
    train: Split
    test: Split
    classes: tuple[str, ...]
    description: str  # where it came from, for logs and summaries

    def fingerprints(self) -> dict[str, str]:
        return {"train": self.train.fingerprint, "test": self.test.fingerprint}


def load_dataset(cfg: DataConfig, seed: int, log: Log = lambda _: None) -> Dataset:
    """The configured source, decoded (or read from the cache), with subsets applied."""
    root = Path(cfg.root)
    if root.exists() and not root.is_dir():
        raise DataError(
            f"data root {root} is a file, not a folder; --data-dir (data.root) names a folder "
            "holding cifar-10-batches-py/, or train/<class>/ and test/<class>/ images"
        )
    kind = cfg.source if cfg.source != "auto" else detect_source(root)
    if kind == "cifar10" and not (root / CIFAR_FOLDER).is_dir():
        if not cfg.download:
            raise DataError(
                f"{root / CIFAR_FOLDER}: not found and data.download is false; set --data-dir to "
                "a folder holding cifar-10-batches-py or train/<class>/ and test/<class>/ images"
            )
        _download_cifar10(root, log)
    files, listing = _source_files(root, kind)
    decode = (
        (lambda: _decode_folder(root, listing, log)) if listing else lambda: _read_cifar10(root)
    )
    dataset = _cached(cache_file(root, kind, files), decode, f"{kind} at {root}", log)
    train, test = dataset.train, dataset.test
    if cfg.train_subset is not None:
        train = train.subset(stratified_subset(train.labels, cfg.train_subset, seed, "train"))
    if cfg.test_subset is not None:
        test = test.subset(stratified_subset(test.labels, cfg.test_subset, seed, "test"))
    return Dataset(train, test, dataset.classes, dataset.description)


def _source_files(root: Path, kind: str) -> tuple[list[SourceFile], Listing | None]:
    """The files a source is decoded from (and, for a folder, their split and class)."""
    if kind == "folder":
        listing = _list_folder(root)
        return listing["train"] + listing["test"], listing
    return _scan(root / CIFAR_FOLDER, 0, lambda name: "_batch" in name), None


def detect_source(root: Path) -> str:
    """`cifar-10-batches-py` -> cifar10; `train/` and `test/` -> folder; else download cifar10."""
    if (root / CIFAR_FOLDER).is_dir():
        return "cifar10"
    if (root / "train").is_dir() or (root / "test").is_dir():
        return "folder"
    return "cifar10"


# --------------------------------------------------------------------------------------------
# Stratified subsets


def stratified_subset(labels: torch.Tensor, size: int, seed: int, split: str) -> torch.Tensor:
    """`size` indices with each class in its original proportion, chosen at random (seeded).

    Never "the first N": folder order is by class. Rounding leftovers go to the classes with the
    largest remainders, so the total is exact. Indices come back sorted.
    """
    n = len(labels)
    if not 1 <= size <= n:
        # The config asks for more than the data holds, as a batch larger than the training set
        # does: a config error (exit 2), found once the data is loaded.
        raise ValueRefused(
            f"data.{split}_subset", f"{size} is outside 1..{n} (the {split} split's size)"
        )
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * size / n
    quota = exact.floor().long()
    leftover = size - int(quota.sum())
    quota[torch.argsort(exact - quota, descending=True, stable=True)[:leftover]] += 1
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for cls, k in zip(classes.tolist(), quota.tolist(), strict=True):
        members = torch.nonzero(labels == cls).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.cat(chosen).sort().values


# --------------------------------------------------------------------------------------------
# Image folder: train/<class>/*.png and test/<class>/*.png


class SourceFile(NamedTuple):  # a tuple: 60,000 of them are built on every load
    path: str
    label: int
    size: int
    mtime_ns: int


Listing = dict[str, list[SourceFile]]  # per split


def _scan(directory: Path, label: int, keep: Callable[[str], bool]) -> list[SourceFile]:
    # os.scandir: one pass gives names and sizes; 60,000 Path objects would cost a second.
    with os.scandir(directory) as entries:
        found = [
            SourceFile(e.path, label, (st := e.stat()).st_size, st.st_mtime_ns)
            for e in entries
            if e.is_file() and keep(e.name)
        ]
    return sorted(found, key=lambda f: f.path)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def class_folders(split_dir: Path) -> list[str]:
    """The class folders of a split, sorted; hidden ones (.ipynb_checkpoints, .git) are not
    classes."""
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def _list_folder(root: Path) -> Listing:
    """Per split, the image files in a stable order; class index = sorted class folder name."""
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist (set --data-dir or data.root)")
    listing, class_names = {}, None
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(
                f"{split_dir}: missing; an image folder needs train/<class>/ and test/<class>/"
            )
        names = class_folders(split_dir)
        for name in names:
            # A class name is written into checkpoints, report.md and plots as text: one with
            # a byte that is not UTF-8 would fail a run once trained. A data problem, as a
            # folder without classes is (exit 1): the command was right, the folder is not.
            if problem := not_utf8(name):
                raise DataError(
                    f"{one_line(str(split_dir / name))}: a class folder whose name is {problem}; "
                    "class names go into checkpoints, reports and plots as UTF-8 text: rename it"
                )
        if not names:
            raise DataError(f"{split_dir}: no class folders (expected {split}/<class>/<image>)")
        if len(names) == 1:
            # Every prediction of a one-class model is right: a loss of 0, nothing learned.
            raise DataError(
                f"{split_dir}: one class folder only ({names[0]}); a classifier needs at least "
                f"two (expected {split}/<class>/<image>)"
            )
        if class_names is not None and names != class_names:
            raise DataError(f"{split_dir}: class folders {names} differ from train's {class_names}")
        class_names = names
        files = []
        for index, name in enumerate(names):
            found = _scan(split_dir / name, index, _is_image)
            if not found:
                raise DataError(f"{split_dir / name}: no PNG or JPEG images in this class folder")
            files += found
        listing[split] = files
    return listing


# Pillow's 16- and 32-bit integer grey modes (a 16-bit greyscale PNG opens as one of them).
WIDE_GREY_MODES = {"I;16": 8, "I;16L": 8, "I;16B": 8, "I;16N": 8, "I": 8}


def _rgb_pixels(image: Image.Image, path: str) -> np.ndarray:
    """(H, W, 3) uint8. Grey, palette, RGBA (alpha dropped) and CMYK convert as Pillow does;
    16-bit grey keeps its top 8 bits (Pillow's own conversion clips it to white)."""
    if image.mode in WIDE_GREY_MODES:
        wide = np.asarray(image).astype(np.int64)
        if wide.max(initial=0) > 0xFFFF or wide.min(initial=0) < 0:
            raise ValueError(f"{image.mode} pixels outside 0..65535")
        grey = (wide >> WIDE_GREY_MODES[image.mode]).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "F":
        raise ValueError("floating-point pixels: convert the image to 8-bit RGB")
    return np.asarray(image.convert("RGB"))


def _decode_chunk(paths: list[str]) -> np.ndarray:
    """Decode images into one (N, 32, 32, 3) uint8 array (runs in a worker process)."""
    out = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = _decode_image(path)
    return out


def _decode_image(path: str) -> np.ndarray:
    """One 32x32 image as (32, 32, 3) uint8. The size comes from the header, before any pixel is
    decoded: an image of 12000x12000 is refused at once, without Pillow's two-line warning."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if (width, height) != (32, 32):
                    raise DataError(
                        f"{path}: image is {width}x{height}, expected 32x32 (CIFAR-10 size)"
                    )
                image.load()
                return _rgb_pixels(image, path)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot decode the image ({e})") from None


def _decode_folder(root: Path, listing: Listing, log: Log) -> tuple[Split, Split, tuple[str, ...]]:
    total = sum(len(files) for files in listing.values())
    log(f"decoding {total} images from {root} (once; cached afterwards)")
    classes = tuple(class_folders(root / "train"))
    if multiprocessing.current_process().daemon:
        # A daemonic process (a run of `sweep --devices`) may not start workers: decode here.
        return *_decode_splits(listing, map), classes
    # Processes, not threads: Pillow holds the GIL for most of the work on such small images.
    # fork (where available) spares each worker re-importing torch.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    workers = {"max_workers": os.cpu_count() or 1, "mp_context": context}
    pool = ProcessPoolExecutor(
        **workers, initializer=processes.follow_parent, initargs=(os.getpid(),)
    )

    def start_decoding(decode: Callable, chunks: list) -> Iterable[np.ndarray]:
        with processes.stops_deferred():  # workers start here (all of them, under fork)
            return pool.map(decode, chunks)  # submits every chunk now; results come lazily

    try:
        return *_decode_splits(listing, start_decoding), classes
    finally:  # a stop or a bad image: the chunks not yet started are dropped, not decoded
        pool.shutdown(cancel_futures=True)


def _decode_splits(
    listing: Listing, mapper: Callable[[Callable, list], Iterable[np.ndarray]]
) -> tuple[Split, Split]:
    """Each split's images decoded in chunks through `mapper` (a pool's map, or map)."""
    splits = []
    for split in SPLITS:
        paths = [f.path for f in listing[split]]
        chunks = [paths[i : i + DECODE_CHUNK] for i in range(0, len(paths), DECODE_CHUNK)]
        pixels = np.concatenate(list(mapper(_decode_chunk, chunks)))
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor([f.label for f in listing[split]], dtype=torch.int64)
        splits.append(Split(images, labels))
    return splits[0], splits[1]


# --------------------------------------------------------------------------------------------
# CIFAR-10 through torchvision (download, md5 check)


def _download_cifar10(root: Path, log: Log) -> None:
    from torchvision.datasets import CIFAR10

    log(f"downloading CIFAR-10 (170 MB) to {root}")
    created = [p for p in (root, *root.parents) if not p.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
        CIFAR10(str(root), train=True, download=True)
    except Exception as e:  # urllib, socket, md5 and disk errors all end here
        for folder in created:  # a mistyped --data-dir leaves no empty folders behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise DataError(
            f"could not download CIFAR-10 to {root} ({describe(e)}); without internet, pass "
            "--data-dir with a folder holding cifar-10-batches-py, or train/<class>/*.png and "
            "test/<class>/*.png"
        ) from None


def _read_cifar10(root: Path) -> tuple[Split, Split, tuple[str, ...]]:
    from torchvision.datasets import CIFAR10

    splits = []
    for train in (True, False):
        try:
            ds = CIFAR10(str(root), train=train, download=False)  # checks every file's md5
        except (RuntimeError, pickle.UnpicklingError, EOFError) as e:
            raise DataError(f"{root / CIFAR_FOLDER}: corrupt or incomplete ({e})") from None
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        splits.append(Split(images, torch.tensor(ds.targets, dtype=torch.int64)))
    return splits[0], splits[1], tuple(ds.classes)


# --------------------------------------------------------------------------------------------
# Cache: one .pt file per source, keyed by the files it was decoded from


def cache_file(root: Path, kind: str, files: list[SourceFile] | None = None) -> Path:
    """Where the decoded tensors of these source files are cached.

    The key covers each file's name (relative to the root: `data` and `/abs/path/data` share a
    cache), class, size and mtime: any change to the files means a new decode.
    """
    if files is None:
        files, _ = _source_files(root, kind)
    start = len(str(root))  # every listed path was built by joining onto str(root)
    lines = [f"{kind}:{CACHE_FORMAT}"] + [
        f"{f.path[start:]}:{f.label}:{f.size}:{f.mtime_ns}" for f in files
    ]
    # As the file system's bytes: a file name that is not UTF-8 (a Latin-1 image name) is a
    # name like any other, where str.encode refused its undecodable bytes.
    key = hashlib.sha256(os.fsencode("\n".join(lines))).hexdigest()[:16]
    return root / CACHE_FOLDER / f"{kind}-{key}.pt"


def _checked(split: Split, classes: int) -> Split:
    """A cached split as decoding makes it: uint8 (N, 3, 32, 32) images, N int64 labels that
    name a class. Anything else (a damaged or hand-made cache) would fail mid-run or mislabel."""
    images, labels = split.images, split.labels
    if not (
        isinstance(images, torch.Tensor)
        and isinstance(labels, torch.Tensor)
        and images.dtype == torch.uint8
        and images.dim() == 4
        and tuple(images.shape[1:]) == (3, 32, 32)
        and labels.dtype == torch.int64
        and tuple(labels.shape) == (len(images),)
        and len(labels) > 0
        and 0 <= int(labels.min()) <= int(labels.max()) < classes
    ):
        raise ValueError("not the decoded images this cache should hold")
    return split


def _cached(
    path: Path,
    decode: Callable[[], tuple[Split, Split, tuple[str, ...]]],
    description: str,
    log: Log,
) -> Dataset:
    if path.is_file():
        try:
            saved = torch.load(path, weights_only=True)
            classes = tuple(saved["classes"])
            train = _checked(Split(saved["train_images"], saved["train_labels"]), len(classes))
            test = _checked(Split(saved["test_images"], saved["test_labels"]), len(classes))
            return Dataset(train, test, classes, description)
        except Exception:  # a damaged cache is rebuilt, never trusted
            log(f"ignoring unreadable cache {path}")
    train, test, classes = decode()
    payload = {
        "train_images": train.images,
        "train_labels": train.labels,
        "test_images": test.images,
        "test_labels": test.labels,
        "classes": list(classes),
    }
    try:
        path.parent.mkdir(exist_ok=True)
        runs.remove_stale_temporaries(path.parent)  # left by a process killed while caching
        runs.write_atomically(path, lambda f: torch.save(payload, f))
    # A read-only data folder still trains, only slower to start. torch.save reports a file it
    # cannot open or write (read-only folder, full disk) as RuntimeError, not OSError.
    except (OSError, RuntimeError, SuperconError) as e:
        reason = getattr(e, "strerror", None) or first_line(e)
        log(f"not caching decoded images ({reason}: {path.parent})")
    return Dataset(train, test, classes, description)
