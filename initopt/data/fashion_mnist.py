"""Fashion-MNIST: IDX reading, where the files come from, the exact split and batch order.

The split and batch order reproduce PyTorch's ``randperm`` on a CPU generator
(mt19937 seeded with ``init_genrand``) in numpy, so no torch is needed.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import socket
import zlib
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from initopt.errors import DataError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
PIXEL_MEAN = 0.2861
PIXEL_STD = 0.3530
NUM_CLASSES = 10
SPLIT_SEED = 42
EXAMPLE_BATCH_SIZE = 1024
TRAIN_SPLIT_SIZE = 50_000  # the reference split's training images: 60,000 less a sixth for validation
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GET_THE_DATA = (
    "install Debian's package dataset-fashion-mnist, pass --data-dir DIR "
    "(or set INITOPT_DATA_DIR) with the four IDX files, or run "
    "`initopt data --download` on a machine with network"
)


# ----------------------------------------------------------------------------- IDX files
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (gzipped or plain), checking magic number, dimensions and length."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"Cannot read {path}: {e.strerror or e}.") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path} is a corrupt or truncated gzip file ({e}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path} is a truncated IDX file (incomplete header).")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "oversized"
        raise DataError(
            f"{path} is a {kind} IDX file: dimensions {dims} need {expected} bytes, "
            f"it has {len(raw)}."
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The four dataset files in ``directory`` (``.gz`` or plain) and the names missing."""
    found, missing = {}, []
    for key, stem in FILES.items():
        for name in (stem + ".gz", stem):
            if (directory / name).is_file():
                found[key] = directory / name
                break
        else:
            missing.append(stem + "[.gz]")
    return found, missing


def cache_dir() -> Path:
    """Where `initopt data --download` puts the files (INITOPT_CACHE_DIR overrides)."""
    from initopt.runtime.env import cache_root

    return cache_root() / "fashion-mnist"


# ----------------------------------------------------------------------------- the dataset
@dataclasses.dataclass(frozen=True)
class FashionMNIST:
    """The raw uint8 images (N, 28, 28) and labels (N,), with where they came from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    directory: str
    sha256: str
    pixel_stats: tuple[float, float] | None = None  # train pixel mean and std (ddof=1), once computed

    def summary(self) -> dict:
        mean, std = self.pixel_stats or pixel_stats(self.train_images)
        return {
            "source": self.source,
            "directory": self.directory,
            "train": int(len(self.train_labels)),
            "test": int(len(self.test_labels)),
            "image_shape": list(self.train_images.shape[1:]),
            "sha256": self.sha256,
            "train_pixel_mean": mean,
            "train_pixel_std": std,
        }


def pixel_stats(images: np.ndarray) -> tuple[float, float]:
    pixels = images.astype(np.float32) / 255
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
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match."
            )
        if labels.size and labels.max() >= NUM_CLASSES:
            raise DataError(f"{found[f'{split}_labels']} has labels outside 0..9.")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(f"{directory}: train and test images differ in size.")
    if len(arrays["train_labels"]) < 12:
        raise DataError(f"{directory}: too few training images to split ({len(arrays['train_labels'])}).")


def _source_key(found: dict[str, Path]) -> str:
    """sha256 of the four source files as stored (compressed or not): the array cache's key."""
    h = hashlib.sha256()
    for key in FILES:
        try:
            h.update(found[key].read_bytes())
        except OSError as e:
            raise DataError(f"Cannot read {found[key]}: {e.strerror or e}.") from None
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
        arrays = {k: np.load(directory / f"{k}.npy", mmap_mode="r") for k in FILES}
    except (OSError, ValueError):
        return None
    if any(list(arrays[k].shape) != meta["shapes"][k] for k in FILES):
        return None
    return arrays, meta


def _write_array_cache(key: str, arrays: dict, meta: dict) -> None:
    """Best effort: a cache that cannot be written only makes the next load slower."""
    from initopt.errors import InitoptError
    from initopt.output import io

    directory = array_cache_dir(key)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for k in FILES:
            io.save_npy(directory / f"{k}.npy", arrays[k])
        io.write_json(directory / "meta.json", meta)  # last: its presence means the entry is complete
    except (OSError, InitoptError):
        pass


def _load_dir(directory: Path, source: str) -> FashionMNIST:
    """The dataset from ``directory``: decompressed once, then memory-mapped from the array cache
    (keyed and checked by the sha256 of the source files), with its checksum and pixel statistics."""
    found, missing = find_files(directory)
    if missing:
        raise DataError(f"{directory} lacks the Fashion-MNIST files {', '.join(missing)}.")
    key = _source_key(found)
    cached = _read_array_cache(key)
    if cached is not None:
        arrays, meta = cached
        _check(arrays, found, directory)
    else:
        arrays = {k: read_idx(path) for k, path in found.items()}
        _check(arrays, found, directory)
        meta = {"source_sha256": key, "shapes": {k: list(arrays[k].shape) for k in FILES},
                "sha256": dataset_sha256([arrays[k] for k in FILES]),
                "pixel_stats": list(pixel_stats(arrays["train_images"]))}
        _write_array_cache(key, arrays, meta)
    return FashionMNIST(**{k: arrays[k] for k in FILES}, source=source, directory=str(directory),
                        sha256=meta["sha256"], pixel_stats=tuple(meta["pixel_stats"]))


def locate(data_dir: str | os.PathLike | None = None) -> tuple[Path, str] | None:
    """Where the data is: explicit dir or INITOPT_DATA_DIR, the Debian path, the download cache."""
    explicit = data_dir or os.environ.get("INITOPT_DATA_DIR")
    if explicit:
        directory = Path(explicit)
        if not directory.is_dir():
            raise DataError(f"Data directory {directory} does not exist.")
        return directory, "--data-dir" if data_dir else "INITOPT_DATA_DIR"
    for directory, source in ((DEBIAN_DIR, "debian"), (cache_dir(), "download-cache")):
        if not find_files(directory)[1]:
            return directory, source
    return None


def load(data_dir: str | os.PathLike | None = None, download: bool = True) -> FashionMNIST:
    """Loads Fashion-MNIST from the first place that has it, downloading as a last resort."""
    where = locate(data_dir)
    if where is None:
        if not download:
            raise DataError(f"No Fashion-MNIST data found: {_GET_THE_DATA}.")
        fetch()
        where = cache_dir(), "download-cache"
    return _load_dir(*where)


def fetch(dest: Path | None = None, timeout: float = 3.0) -> Path:
    """Downloads the four files with TFDS's DownloadManager (sha256-checked) into the cache."""
    from initopt.output import io  # the only module that writes files

    dest = dest or cache_dir()
    import tensorflow_datasets as tfds  # noqa: PLC0415  (slow import, needed only here)

    url_infos = tfds.builder_cls("fashion_mnist").url_infos
    url = urlparse(next(iter(url_infos)))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        raise DataError(
            f"Fashion-MNIST is not on this machine and {url.hostname} cannot be reached: {_GET_THE_DATA}."
        ) from None
    io.ensure_dir(dest)
    manager = tfds.download.DownloadManager(
        download_dir=dest / "downloads", url_infos=url_infos, force_checksums_validation=True
    )
    try:
        paths = manager.download({info.filename: u for u, info in url_infos.items()})
    except Exception as e:  # TFDS raises many types: network, checksum, disk
        raise DataError(f"Downloading Fashion-MNIST failed: {e}.") from None
    for filename, path in paths.items():
        io.copy_atomic(Path(path), dest / filename)
    return dest


# ----------------------------------------------------------------------------- split and order
def legacy_mt19937(seed: int) -> np.random.MT19937:
    """An mt19937 seeded like C++/PyTorch ``init_genrand(seed)``."""
    bit_generator = np.random.MT19937()
    bit_generator._legacy_seeding(seed)
    return bit_generator


def randperm(bit_generator: np.random.MT19937, n: int) -> np.ndarray:
    """PyTorch's CPU ``randperm(n, generator)``: a forward Fisher-Yates on 32-bit draws."""
    raw = bit_generator.random_raw(n - 1) if n > 1 else np.zeros(0, np.uint64)
    offsets = (raw % np.arange(n, 1, -1, dtype=np.uint64)).tolist()
    perm = list(range(n))
    for i, z in enumerate(offsets):
        perm[i], perm[i + z] = perm[i + z], perm[i]
    return np.asarray(perm, dtype=np.int64)


def split_indices(n: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """``random_split`` into train (first 5/6) and validation (last 1/6): 50,000 / 10,000."""
    perm = randperm(legacy_mt19937(seed), n)
    n_val = n // 6
    return perm[: n - n_val], perm[n - n_val :]


def epoch_permutations(n: int, epochs: int, seed: int = SPLIT_SEED) -> np.ndarray:
    """Per-epoch shuffles of ``n`` items, as PyTorch's RandomSampler draws them: (epochs, n)."""
    bit_generator = legacy_mt19937(seed)
    perms = np.empty((epochs, n), np.int64)
    for epoch in range(epochs):
        bit_generator.random_raw(2)  # the sampler's discarded int64 seed
        perms[epoch] = randperm(bit_generator, n)
    return perms


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped); the one check of the batch size."""
    if batch_size > n:
        raise DataError(f"Batch size {batch_size} exceeds the {n} training examples.")
    return n // batch_size


def batch_order(n: int, batch_size: int, epochs: int, seed: int = SPLIT_SEED) -> np.ndarray:
    """Positions into the training split per batch, last partial batch dropped: (E, B, batch)."""
    n_batches = steps_per_epoch(n, batch_size)
    perms = epoch_permutations(n, epochs, seed)
    return perms[:, : n_batches * batch_size].reshape(epochs, n_batches, batch_size)


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784) as ``(pixels / 255 - 0.2861) / 0.3530``."""
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    return (x - np.float32(PIXEL_MEAN)) / np.float32(PIXEL_STD)


@dataclasses.dataclass(frozen=True)
class Splits:
    """Normalised float32 arrays of the three splits, and the dataset's checksum."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    sha256: str


def make_splits(
    ds: FashionMNIST,
    train_limit: int | None = None,
    val_limit: int | None = None,
    test_limit: int | None = None,
) -> Splits:
    """The reference split; ``*_limit`` keeps only the first examples of a split (smoke runs)."""
    train_idx, val_idx = split_indices(len(ds.train_labels))
    train_idx, val_idx = train_idx[:train_limit], val_idx[:val_limit]
    return Splits(
        train_x=normalize(ds.train_images[train_idx]),
        train_y=ds.train_labels[train_idx].astype(np.int32),
        val_x=normalize(ds.train_images[val_idx]),
        val_y=ds.train_labels[val_idx].astype(np.int32),
        test_x=normalize(ds.test_images[:test_limit]),
        test_y=ds.test_labels[:test_limit].astype(np.int32),
        sha256=ds.sha256,
    )


def example_batch(ds: FashionMNIST, size: int = EXAMPLE_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The first ``size`` training images of the split, in split order, with their labels."""
    train_idx, _ = split_indices(len(ds.train_labels))
    idx = train_idx[:size]
    return normalize(ds.train_images[idx]), ds.train_labels[idx].astype(np.int32)
