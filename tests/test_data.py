"""load_dataset on synthetic image folders: decoding, the cache, subsets and every error path."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cifar_supercon import data
from cifar_supercon.config import DataConfig
from cifar_supercon.data import CACHE_FOLDER, CIFAR_FOLDER, detect_source, load_dataset
from cifar_supercon.data import stratified_subset as subset
from cifar_supercon.errors import ConfigError, DataError

# Deliberately not in sorted order: the label must be the index of the sorted name.
CLASS_NAMES = ("zebra", "ant", "moth")
SORTED_CLASSES = ("ant", "moth", "zebra")


def write_known_folder(
    root: Path, train_per_class: int = 3, test_per_class: int = 2, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random RGB PNGs; per split the (N, 3, 32, 32) pixels and labels in the loader's order."""
    rng = np.random.default_rng(seed)
    expected = {}
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        pixels, labels = [], []
        for name in SORTED_CLASSES:  # the loader's order: sorted classes, then sorted files
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f"img_{i:03d}.png")
                pixels.append(image.transpose(2, 0, 1))
                labels.append(SORTED_CLASSES.index(name))
        expected[split] = (np.stack(pixels), np.array(labels))
    return expected


def folder_config(root: Path, **changes: object) -> DataConfig:
    return DataConfig(root=root, source="folder", **changes)


def cache_files(root: Path) -> list[Path]:
    return sorted((root / CACHE_FOLDER).glob("folder-*.pt"))


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("decoded although a valid cache exists")

    monkeypatch.setattr(data, "_decode_folder", refuse)


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wraps the decoder; the returned list grows by one per decode."""
    calls: list[int] = []
    original = data._decode_folder

    def counting(*args: object):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(data, "_decode_folder", counting)
    return calls


def data_error(cfg: DataConfig) -> str:
    """The message of the DataError that loading `cfg` raises; checks that it is one line."""
    with pytest.raises(DataError) as caught:
        load_dataset(cfg, seed=0)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------------
# Decoding


def test_folder_pixels_and_labels_round_trip_exactly(tmp_path: Path) -> None:
    expected = write_known_folder(tmp_path)
    dataset = load_dataset(folder_config(tmp_path), seed=0)
    assert dataset.classes == SORTED_CLASSES
    for split in (dataset.train, dataset.test):
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        assert split.images.is_contiguous()
    for split, loaded in (("train", dataset.train), ("test", dataset.test)):
        pixels, labels = expected[split]
        assert loaded.images.shape == (len(labels), 3, 32, 32)
        np.testing.assert_array_equal(loaded.images.numpy(), pixels)
        np.testing.assert_array_equal(loaded.labels.numpy(), labels)
    assert str(tmp_path) in dataset.description


def test_grey_and_rgba_images_become_rgb(tmp_path: Path) -> None:
    write_known_folder(tmp_path, train_per_class=1, test_per_class=1)
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
    rgba = rng.integers(0, 256, size=(32, 32, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0  # a transparent pixel keeps its colour: alpha is dropped, not composited
    # file names sort after img_000.png, so they are the 2nd and 3rd images of class "ant"
    Image.fromarray(grey).save(tmp_path / "train" / "ant" / "z_grey.png")
    Image.fromarray(rgba).save(tmp_path / "train" / "ant" / "z_rgba.png")
    for name, mode in (("z_grey.png", "L"), ("z_rgba.png", "RGBA")):
        with Image.open(tmp_path / "train" / "ant" / name) as written:
            assert written.mode == mode

    train = load_dataset(folder_config(tmp_path), seed=0).train
    assert train.labels.tolist() == [0, 0, 0, 1, 2]
    np.testing.assert_array_equal(train.images[1].numpy(), np.stack([grey] * 3))
    np.testing.assert_array_equal(train.images[2].numpy(), rgba[:, :, :3].transpose(2, 0, 1))


def test_files_that_are_not_images_are_ignored(tmp_path: Path) -> None:
    expected = write_known_folder(tmp_path, train_per_class=2, test_per_class=1)
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "ant" / "nested").mkdir()
    train = load_dataset(folder_config(tmp_path), seed=0).train
    np.testing.assert_array_equal(train.images.numpy(), expected["train"][0])


# --------------------------------------------------------------------------------------------
# Cache


def test_second_load_reads_the_cache_instead_of_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_known_folder(tmp_path)
    first = load_dataset(folder_config(tmp_path), seed=0)
    assert len(cache_files(tmp_path)) == 1

    forbid_decoding(monkeypatch)
    second = load_dataset(folder_config(tmp_path), seed=0)
    for a, b in ((first.train, second.train), (first.test, second.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert second.classes == first.classes


def test_a_changed_image_changes_the_cache_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_known_folder(tmp_path)
    load_dataset(folder_config(tmp_path), seed=0)
    decodes = count_decodes(monkeypatch)

    # same bytes, another mtime: decoded again, into a second cache file
    image = tmp_path / "train" / "moth" / "img_001.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    load_dataset(folder_config(tmp_path), seed=0)
    assert len(decodes) == 1
    assert len(cache_files(tmp_path)) == 2

    # new content (other size): decoded again, and the new pixels are served
    new_pixels = np.full((32, 32, 3), 7, dtype=np.uint8)
    Image.fromarray(new_pixels).save(image)
    train = load_dataset(folder_config(tmp_path), seed=0).train
    assert len(decodes) == 2
    assert torch.all(train.images[4] == 7)  # moth is class 1; img_001 is its second image

    load_dataset(folder_config(tmp_path), seed=0)  # unchanged since: from the cache
    assert len(decodes) == 2


def test_a_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    expected = write_known_folder(tmp_path)
    load_dataset(folder_config(tmp_path), seed=0)
    (cache,) = cache_files(tmp_path)
    cache.write_bytes(b"truncated")
    messages: list[str] = []
    train = load_dataset(folder_config(tmp_path), seed=0, log=messages.append).train
    np.testing.assert_array_equal(train.images.numpy(), expected["train"][0])
    assert any("ignoring unreadable cache" in m for m in messages)
    assert cache.stat().st_size > 1000  # rewritten


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: c.update(train_labels=c["train_labels"][:-1]),  # one label short
        lambda c: c.update(test_labels=c["test_labels"] + len(c["classes"])),  # no such class
        lambda c: c.update(train_images=c["train_images"].float()),  # not uint8
        lambda c: c.update(test_images=c["test_images"][:, :, :16]),  # 16 rows, not 32
        lambda c: c.update(classes=c["classes"][:1]),  # labels beyond the classes listed
    ],
    ids=["labels short", "label out of range", "float images", "cropped", "classes dropped"],
)
def test_a_cache_that_does_not_hold_decoded_images_is_rebuilt(
    tmp_path: Path, damage: Callable[[dict], None]
) -> None:
    expected = write_known_folder(tmp_path)
    load_dataset(folder_config(tmp_path), seed=0)
    (cache,) = cache_files(tmp_path)
    content = torch.load(cache, weights_only=True)
    damage(content)
    torch.save(content, cache)
    messages: list[str] = []
    loaded = load_dataset(folder_config(tmp_path), seed=0, log=messages.append)
    np.testing.assert_array_equal(loaded.train.images.numpy(), expected["train"][0])
    np.testing.assert_array_equal(loaded.test.labels.numpy(), expected["test"][1])
    assert any("ignoring unreadable cache" in m for m in messages)


def test_a_cache_that_cannot_be_written_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only folder or a full disk: the images load, and no partial file is left."""
    # torch.save reports a file it cannot open as RuntimeError, not OSError
    with pytest.raises(RuntimeError):
        torch.save({}, tmp_path / "no-such-folder" / "x.pt")
    expected = write_known_folder(tmp_path)

    def disk_full(payload: object, file: BinaryIO) -> None:
        file.write(b"half a file")
        raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed")

    monkeypatch.setattr(data.torch, "save", disk_full)
    messages: list[str] = []
    train = load_dataset(folder_config(tmp_path), seed=0, log=messages.append).train
    np.testing.assert_array_equal(train.images.numpy(), expected["train"][0])
    assert any(m.startswith("not caching decoded images") for m in messages)
    assert list((tmp_path / CACHE_FOLDER).iterdir()) == []


# --------------------------------------------------------------------------------------------
# Stratified subsets


def class_sorted_labels(counts: list[int]) -> torch.Tensor:
    """Labels grouped by class, as a folder listing gives them."""
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


@pytest.mark.parametrize(
    ("counts", "size", "per_class"),
    [
        ([47, 33, 20], 10, [5, 3, 2]),  # 4.7, 3.3, 2.0: the one leftover goes to the .7
        ([50, 30, 20], 17, [9, 5, 3]),  # 8.5, 5.1, 3.4
        ([10, 10, 10, 10], 6, [2, 2, 1, 1]),  # equal remainders: the first classes win
        ([5, 95], 1, [0, 1]),
        ([5, 95], 100, [5, 95]),
    ],
)
def test_subset_counts_are_proportional_by_largest_remainder(
    counts: list[int], size: int, per_class: list[int]
) -> None:
    labels = class_sorted_labels(counts)
    chosen = subset(labels, size, seed=0, split="train")
    assert len(chosen) == size
    assert torch.bincount(labels[chosen], minlength=len(counts)).tolist() == per_class
    # each class gets the floor or the ceiling of its exact share
    for count, got in zip(counts, per_class, strict=True):
        share = count * size / sum(counts)
        assert int(share) <= got <= int(share) + 1


def test_subset_indices_are_sorted_unique_and_random() -> None:
    labels = class_sorted_labels([40, 40, 40])
    chosen = subset(labels, 30, seed=0, split="train")
    assert torch.equal(chosen, chosen.sort().values)
    assert len(chosen.unique()) == 30
    assert int(chosen.min()) >= 0 and int(chosen.max()) < 120
    assert chosen.dtype == torch.int64
    # not the first N, nor the first members of each class
    assert not torch.equal(chosen, torch.arange(30))
    firsts = torch.cat([torch.arange(10) + 40 * c for c in range(3)])
    assert not torch.equal(chosen, firsts)


def test_subset_is_seeded() -> None:
    labels = class_sorted_labels([40, 40, 40])
    first = subset(labels, 30, seed=1, split="train")
    assert torch.equal(subset(labels, 30, seed=1, split="train"), first)
    assert not torch.equal(subset(labels, 30, seed=2, split="train"), first)


def test_subset_works_on_shuffled_labels() -> None:
    labels = class_sorted_labels([30, 20, 10])[torch.randperm(60, generator=torch.Generator())]
    chosen = subset(labels, 12, seed=0, split="test")
    assert torch.bincount(labels[chosen]).tolist() == [6, 4, 2]


@pytest.mark.parametrize("size", [0, 121])
def test_subset_size_outside_the_split_is_a_config_error(size: int) -> None:
    with pytest.raises(ConfigError, match=r"data\.test_subset.*1\.\.120"):
        subset(class_sorted_labels([40, 40, 40]), size, seed=0, split="test")


def test_config_subsets_are_applied_by_load_dataset(tmp_path: Path) -> None:
    expected = write_known_folder(tmp_path, train_per_class=6, test_per_class=4)
    full = load_dataset(folder_config(tmp_path), seed=0)
    dataset = load_dataset(folder_config(tmp_path, train_subset=7, test_subset=6), seed=3)
    assert len(dataset.train) == 7 and len(dataset.test) == 6
    assert torch.bincount(dataset.train.labels).tolist() == [3, 2, 2]
    assert torch.bincount(dataset.test.labels).tolist() == [2, 2, 2]
    chosen = subset(full.train.labels, 7, seed=3, split="train")
    assert torch.equal(dataset.train.images, torch.from_numpy(expected["train"][0])[chosen])
    assert torch.equal(dataset.train.labels, full.train.labels[chosen])


def test_config_subset_larger_than_the_split_is_a_config_error(tmp_path: Path) -> None:
    write_known_folder(tmp_path, train_per_class=2, test_per_class=1)
    with pytest.raises(ConfigError) as caught:
        load_dataset(folder_config(tmp_path, train_subset=7), seed=0)
    assert caught.value.problems == [
        "data.train_subset: 7 is outside 1..6 (the train split's size)"
    ]


# --------------------------------------------------------------------------------------------
# Errors: each names the file or folder at fault, on one line


def test_missing_root_names_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    assert str(root) in data_error(folder_config(root))


def test_missing_test_split_names_the_folder(tmp_path: Path) -> None:
    write_known_folder(tmp_path, train_per_class=1, test_per_class=1)
    for image in (tmp_path / "test").rglob("*.png"):
        image.unlink()
    for folder in (tmp_path / "test").iterdir():
        folder.rmdir()
    (tmp_path / "test").rmdir()
    assert str(tmp_path / "test") in data_error(folder_config(tmp_path))


def test_split_without_class_folders_names_the_folder(tmp_path: Path) -> None:
    write_known_folder(tmp_path, train_per_class=1, test_per_class=1)
    empty = tmp_path / "other"
    (empty / "train").mkdir(parents=True)
    assert str(empty / "train") in data_error(folder_config(empty))


def test_empty_class_folder_names_the_folder(tmp_path: Path) -> None:
    write_known_folder(tmp_path, train_per_class=1, test_per_class=1)
    empty = tmp_path / "test" / "wasp"  # also in train, so only the emptiness is wrong
    (tmp_path / "train" / "wasp").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "train" / "wasp" / "a.png")
    empty.mkdir()
    assert str(empty) in data_error(folder_config(tmp_path))


def test_class_folders_that_differ_between_splits(tmp_path: Path) -> None:
    write_known_folder(tmp_path, train_per_class=1, test_per_class=1)
    (tmp_path / "train" / "wasp").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "train" / "wasp" / "a.png")
    message = data_error(folder_config(tmp_path))
    assert str(tmp_path / "test") in message and "wasp" in message


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    write_known_folder(tmp_path, train_per_class=2, test_per_class=1)
    broken = tmp_path / "train" / "moth" / "img_001.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    message = data_error(folder_config(tmp_path))
    assert str(broken) in message and "cannot decode" in message


def test_image_of_another_size_names_the_file(tmp_path: Path) -> None:
    write_known_folder(tmp_path, train_per_class=1, test_per_class=2)
    small = tmp_path / "test" / "zebra" / "img_001.png"
    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(small)
    message = data_error(folder_config(tmp_path))
    assert str(small) in message and "28x28" in message


def test_cifar10_without_download_names_the_missing_folder(tmp_path: Path) -> None:
    message = data_error(DataConfig(root=tmp_path, source="cifar10", download=False))
    assert str(tmp_path / CIFAR_FOLDER) in message and "--data-dir" in message


def test_corrupt_cifar10_folder_names_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / CIFAR_FOLDER
    folder.mkdir()
    for name in ("data_batch_1", "test_batch"):
        (folder / name).write_bytes(b"not a pickle")
    message = data_error(DataConfig(root=tmp_path, source="cifar10", download=False))
    assert str(folder) in message and "corrupt" in message


def test_failed_download_points_to_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nothing listens on the discard port: the connection is refused at once, offline or not
    url = "http://127.0.0.1:9/cifar-10-python.tar.gz"
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", url)
    root = tmp_path / "mistyped" / "data"
    message = data_error(DataConfig(root=root, source="auto", download=True))
    assert "--data-dir" in message and str(root) in message
    assert not (tmp_path / "mistyped").exists()  # the folders it made for the download went
    (tmp_path / "kept").mkdir()
    data_error(DataConfig(root=tmp_path / "kept", source="auto", download=True))
    assert (tmp_path / "kept").is_dir()  # a folder that was there stays


def test_hidden_folders_are_not_classes(tmp_path: Path) -> None:
    expected = write_known_folder(tmp_path, train_per_class=2, test_per_class=1)
    for split in ("train", "test"):
        (tmp_path / split / ".ipynb_checkpoints").mkdir()
    loaded = load_dataset(folder_config(tmp_path), seed=0)
    np.testing.assert_array_equal(loaded.train.images.numpy(), expected["train"][0])
    assert not any(name.startswith(".") for name in loaded.classes)


# --------------------------------------------------------------------------------------------
# detect_source


def test_detect_source(tmp_path: Path) -> None:
    assert detect_source(tmp_path / "missing") == "cifar10"  # download
    assert detect_source(tmp_path) == "cifar10"  # empty: download
    (tmp_path / "test").mkdir()
    assert detect_source(tmp_path) == "folder"
    (tmp_path / "train").mkdir()
    assert detect_source(tmp_path) == "folder"
    (tmp_path / CIFAR_FOLDER).mkdir()
    assert detect_source(tmp_path) == "cifar10"  # the CIFAR batches win over folders


def test_auto_source_loads_an_image_folder(tmp_path: Path) -> None:
    expected = write_known_folder(tmp_path, train_per_class=1, test_per_class=1)
    dataset = load_dataset(DataConfig(root=tmp_path), seed=0)
    np.testing.assert_array_equal(dataset.test.images.numpy(), expected["test"][0])
    assert dataset.description.startswith("folder")


def test_cifar10_python_batches_are_read_through_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `cifar10` source on a small folder in CIFAR-10's own format (md5 checks off: the
    real files' sums cannot match synthetic ones)."""
    import pickle

    import numpy as np
    import torchvision

    folder = tmp_path / CIFAR_FOLDER
    folder.mkdir()
    rng = np.random.default_rng(0)
    written = {}
    for name, n in (("data_batch_1", 12), ("test_batch", 5)):
        pixels = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 3, size=n)]
        (folder / name).write_bytes(pickle.dumps({"data": pixels, "labels": labels}))
        written[name] = (torch.from_numpy(pixels).view(n, 3, 32, 32), torch.tensor(labels))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a", "b", "c"]}))
    cifar = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cifar, "train_list", [["data_batch_1", None]])
    monkeypatch.setattr(cifar, "test_list", [["test_batch", None]])
    monkeypatch.setattr(cifar, "meta", {**cifar.meta, "md5": None})

    dataset = load_dataset(DataConfig(root=tmp_path), seed=0)  # auto: finds the batches
    assert dataset.classes == ("a", "b", "c")
    assert dataset.description == f"cifar10 at {tmp_path}"
    for split, name in ((dataset.train, "data_batch_1"), (dataset.test, "test_batch")):
        images, labels = written[name]
        assert split.images.dtype == torch.uint8
        assert torch.equal(split.images, images) and torch.equal(split.labels, labels)
    assert list((tmp_path / CACHE_FOLDER).glob("cifar10-*.pt"))  # cached like a folder


def test_every_image_mode_decodes_to_its_rgb(tmp_path: Path) -> None:
    """Grey, palette, RGBA, CMYK and 16-bit grey images become the RGB a viewer would show."""
    ramp = np.arange(32 * 32, dtype=np.int64).reshape(32, 32)
    grey = (ramp % 256).astype(np.uint8)
    rgba = np.dstack([grey, 255 - grey, np.full_like(grey, 7), np.full_like(grey, 128)])
    wide = (ramp * 64).astype(np.uint16)  # uses the full 16-bit range
    palette = Image.fromarray(grey, "L").convert("P")
    cases = {
        "grey.png": (Image.fromarray(grey, "L"), np.dstack([grey] * 3)),
        "palette.png": (palette, np.asarray(palette.convert("RGB"))),
        "rgba.png": (Image.fromarray(rgba, "RGBA"), rgba[:, :, :3]),
        "cmyk.tiff": (
            Image.fromarray(np.dstack([grey, grey, grey]), "RGB").convert("CMYK"),
            np.asarray(
                Image.fromarray(np.dstack([grey] * 3), "RGB").convert("CMYK").convert("RGB")
            ),
        ),
        "wide.png": (Image.fromarray(wide), np.dstack([(wide >> 8).astype(np.uint8)] * 3)),
    }
    for name, (image, _) in cases.items():
        image.save(tmp_path / name)
    decoded = data._decode_chunk([str(tmp_path / name) for name in cases])
    for (name, (_, expected)), pixels in zip(cases.items(), decoded, strict=True):
        assert np.array_equal(pixels, expected), name
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")  # really a 16-bit image


def test_a_huge_image_is_refused_by_its_header_without_a_warning(tmp_path: Path) -> None:
    """12000x12000 is past Pillow's decompression-bomb warning: refused from its size alone,
    as a worker decodes it, with no warning lines around the one-line error."""
    path = tmp_path / "huge.png"
    Image.new("1", (12000, 12000)).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning on the way fails the test
        with pytest.raises(DataError, match=r"huge\.png: image is 12000x12000, expected 32x32"):
            data._decode_chunk([str(path)])
