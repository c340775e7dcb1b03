"""Where a dataset comes from: a named one (Fashion-MNIST, MNIST, KMNIST, CIFAR-10) found on this
machine or downloaded with TFDS's download manager against the checksums TFDS registers, or the
user's own ``.npz`` file; checked, and decoded once into the array cache."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import numpy as np

from initopt.data import cifar, idx, npz
from initopt.errors import ConfigError, DataError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
ARRAYS = tuple(IDX_FILES)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
REFERENCE = "fashion_mnist"
# The reference experiment's normalisation of Fashion-MNIST; every other dataset's comes from its
# training images.
REFERENCE_NORMALIZATION = (0.2861, 0.3530)


@dataclasses.dataclass(frozen=True)
class Source:
    """A named dataset: its files (each IDX file ``.gz`` or plain; CIFAR-10's archive or its folder),
    how they are read, where a system package puts them, and its name in TFDS (the download)."""

    title: str
    files: dict[str, tuple[str, ...]]  # key -> the names it may have, in order of preference
    read: Callable[[dict[str, Path]], dict[str, np.ndarray]]
    tfds_name: str
    system_dir: Path | None = None
    package: str | None = None  # the Debian package with the files


def _idx_names(stem: str) -> tuple[str, ...]:
    return (stem + ".gz", stem)


_IDX = {key: _idx_names(stem) for key, stem in IDX_FILES.items()}
DATASETS = {
    "fashion_mnist": Source("Fashion-MNIST", _IDX, idx.read, "fashion_mnist", DEBIAN_DIR, "dataset-fashion-mnist"),
    "mnist": Source("MNIST", _IDX, idx.read, "mnist"),
    "kmnist": Source("KMNIST", _IDX, idx.read, "kmnist"),
    "cifar10": Source("CIFAR-10", {"archive": (cifar.ARCHIVE, cifar.FOLDER)}, cifar.read, "cifar10"),
}


def is_file_dataset(name: str) -> bool:
    """A ``.npz`` file (a path) rather than a dataset's name."""
    return name.endswith(".npz") or os.sep in name


def check_name(name: str) -> str:
    if not is_file_dataset(name) and name not in DATASETS:
        raise ConfigError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, or give a .npz file.")
    return name


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset's raw arrays (uint8 images or the user's numbers) and labels, with where they came from."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    directory: str
    sha256: str
    pixel_stats: tuple[float, float]  # training pixel mean and std (ddof=1), computed once (cached)
    num_classes: int = 10
    val_images: np.ndarray | None = None  # a .npz file's own validation split
    val_labels: np.ndarray | None = None

    @property
    def normalization(self) -> tuple[float, float]:
        """(mean, std) subtracted and divided after scaling to [0, 1] (uint8) or as given."""
        return REFERENCE_NORMALIZATION if self.name == REFERENCE else self.pixel_stats

    def summary(self) -> dict:
        mean, std = self.pixel_stats
        return {
            "dataset": self.name,
            "source": self.source,
            "directory": self.directory,
            "train": int(len(self.train_labels)),
            **({"val": int(len(self.val_labels))} if self.val_labels is not None else {}),
            "test": int(len(self.test_labels)),
            "image_shape": list(self.train_images.shape[1:]),
            "classes": self.num_classes,
            "sha256": self.sha256,
            "train_pixel_mean": mean,
            "train_pixel_std": std,
        }


def pixel_stats(images: np.ndarray) -> tuple[float, float]:
    pixels = images.astype(np.float32) / (255 if images.dtype == np.uint8 else 1)
    return float(pixels.mean()), float(pixels.std(ddof=1))


def dataset_sha256(arrays: list[np.ndarray]) -> str:
    """sha256 over the decompressed arrays (shape, dtype and bytes), in a fixed order."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _check(arrays: dict, found: dict, directory: Path) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim < 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match."
            )
        if labels.size and labels.max() >= 10:
            where = found.get(f"{split}_labels", found.get("archive"))
            raise DataError(f"{where} has labels outside 0..9.")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(f"{directory}: train and test images differ in size.")
    if len(arrays["train_labels"]) < 12:
        raise DataError(f"{directory}: too few training images to split ({len(arrays['train_labels'])}).")


# ----------------------------------------------------------------------------- where the files are
def find_files(directory: Path, name: str = REFERENCE) -> tuple[dict[str, Path], list[str]]:
    """The dataset's files in ``directory`` and the names of those missing."""
    found, missing = {}, []
    for key, names in DATASETS[name].files.items():
        for candidate in names:
            if (directory / candidate).exists():
                found[key] = directory / candidate
                break
        else:
            missing.append(f"{names[1]}[.gz]" if names == _idx_names(names[1]) else " or ".join(names))
    return found, missing


def cache_dir(name: str = REFERENCE) -> Path:
    """Where `initopt data --download` puts a dataset's files (INITOPT_CACHE_DIR overrides)."""
    from initopt.runtime.env import cache_root

    return cache_root() / name.replace("_", "-")


def _get_it(name: str) -> str:
    s = DATASETS[name]
    package = f"install Debian's package {s.package}, " if s.package else ""
    files = ", ".join(n[0] for n in s.files.values())
    return (f"{package}pass --data-dir DIR (or set INITOPT_DATA_DIR) with {files}, or run "
            f"`initopt data --dataset {name} --download` on a machine with network")


def locate(data_dir: str | os.PathLike | None = None, name: str = REFERENCE) -> tuple[Path, str] | None:
    """Where the data is: the explicit directory (or its subdirectory named after the dataset),
    INITOPT_DATA_DIR (likewise), the system package's directory, the download cache."""
    explicit = data_dir or os.environ.get("INITOPT_DATA_DIR")
    if explicit:
        directory = Path(explicit)
        if not directory.is_dir():
            raise DataError(f"Data directory {directory} does not exist.")
        sub = directory / name
        if find_files(directory, name)[1] and sub.is_dir():
            directory = sub
        return directory, "--data-dir" if data_dir else "INITOPT_DATA_DIR"
    system = DATASETS[name].system_dir
    for directory, source in ((system, "debian"), (cache_dir(name), "download-cache")):
        if directory is not None and not find_files(directory, name)[1]:
            return directory, source
    return None


# ----------------------------------------------------------------------------- the array cache
def _source_key(found: dict[str, Path]) -> str:
    """sha256 of the source files as stored (compressed or not): the array cache's key."""
    h = hashlib.sha256()
    for key in found:
        paths = sorted(p for p in found[key].iterdir() if p.is_file()) if found[key].is_dir() else [found[key]]
        for path in paths:
            try:
                h.update(path.read_bytes())
            except OSError as e:
                raise DataError(f"Cannot read {path}: {e.strerror or e}.") from None
    return h.hexdigest()


def array_cache_dir(key: str) -> Path:
    from initopt.runtime.env import cache_root

    return cache_root() / "arrays" / key[:32]


def _read_array_cache(key: str) -> tuple[dict, dict] | None:
    """The decompressed arrays (memory-mapped .npy) and their metadata, if cached and intact."""
    import json

    directory = array_cache_dir(key)
    try:
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("source_sha256") != key:
            return None
        arrays = {k: np.load(directory / f"{k}.npy", mmap_mode="r") for k in ARRAYS}
    except (OSError, ValueError):
        return None
    if any(list(arrays[k].shape) != meta["shapes"][k] for k in ARRAYS):
        return None
    return arrays, meta


def _write_array_cache(key: str, arrays: dict, meta: dict) -> None:
    """Best effort: a cache that cannot be written only makes the next load slower."""
    from initopt.errors import InitoptError
    from initopt.output import io

    directory = array_cache_dir(key)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for k in ARRAYS:
            io.save_npy(directory / f"{k}.npy", arrays[k])
        io.write_json(directory / "meta.json", meta)  # last: its presence means the entry is complete
    except (OSError, InitoptError):
        pass


def _load_dir(directory: Path, source: str, name: str) -> Dataset:
    """A named dataset from ``directory``: decoded once, then memory-mapped from the array cache
    (keyed and checked by the sha256 of the source files), with its checksum and pixel statistics."""
    spec = DATASETS[name]
    found, missing = find_files(directory, name)
    if missing:
        hint = (f" ({cifar.PYTHON_ARCHIVE} is the python version, whose pickles initopt does not load; "
                f"use {cifar.ARCHIVE})") if (directory / cifar.PYTHON_ARCHIVE).exists() else ""
        raise DataError(f"{directory} lacks the {spec.title} files {', '.join(missing)}{hint}.")
    key = _source_key(found)
    cached = _read_array_cache(key)
    if cached is not None:
        arrays, meta = cached
        _check(arrays, found, directory)
    else:
        arrays = spec.read(found)
        _check(arrays, found, directory)
        meta = {"source_sha256": key, "shapes": {k: list(arrays[k].shape) for k in ARRAYS},
                "sha256": dataset_sha256([arrays[k] for k in ARRAYS]),
                "pixel_stats": list(pixel_stats(arrays["train_images"]))}
        _write_array_cache(key, arrays, meta)
    return Dataset(name, **{k: arrays[k] for k in ARRAYS}, source=source, directory=str(directory),
                   sha256=meta["sha256"], pixel_stats=tuple(meta["pixel_stats"]))


def _load_npz(path: Path) -> Dataset:
    a = npz.read(path)
    order = [a["x_train"], a["y_train"], a["x_test"], a["y_test"], *(a[k] for k in npz.OPTIONAL if k in a)]
    return Dataset(str(path), a["x_train"], a["y_train"], a["x_test"], a["y_test"], source="npz",
                   directory=str(path.parent), sha256=dataset_sha256(order), num_classes=int(a["y_train"].max()) + 1,
                   pixel_stats=pixel_stats(a["x_train"]), val_images=a.get("x_val"), val_labels=a.get("y_val"))


def load(data_dir: str | os.PathLike | None = None, download: bool = True, dataset: str = REFERENCE) -> Dataset:
    """A dataset by name from the first place that has it (downloading as a last resort), or the
    user's ``.npz`` file."""
    if is_file_dataset(check_name(dataset)):
        return _load_npz(Path(dataset))
    where = locate(data_dir, dataset)
    if where is None:
        if not download:
            raise DataError(f"No {DATASETS[dataset].title} data found: {_get_it(dataset)}.")
        fetch(dataset)
        where = cache_dir(dataset), "download-cache"
    return _load_dir(*where, dataset)


def fetch(name: str = REFERENCE, dest: Path | None = None, timeout: float = 3.0) -> Path:
    """Downloads a dataset's files with TFDS's DownloadManager (sha256-checked) into the cache."""
    from initopt.output import io  # the only module that writes files

    dest = dest or cache_dir(name)
    title = DATASETS[name].title
    import tensorflow_datasets as tfds  # noqa: PLC0415  (slow import, needed only here)

    url_infos = tfds.builder_cls(DATASETS[name].tfds_name).url_infos
    url = urlparse(next(iter(url_infos)))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        raise DataError(f"{title} is not on this machine and {url.hostname} cannot be reached: {_get_it(name)}.") from None
    io.ensure_dir(dest)
    manager = tfds.download.DownloadManager(
        download_dir=dest / "downloads", url_infos=url_infos, force_checksums_validation=True
    )
    try:
        paths = manager.download({info.filename: u for u, info in url_infos.items()})
    except Exception as e:  # TFDS raises many types: network, checksum, disk
        raise DataError(f"Downloading {title} failed: {e}.") from None
    for filename, path in paths.items():
        io.copy_atomic(Path(path), dest / filename)
    return dest
