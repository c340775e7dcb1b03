"""The split into training and validation, the batch order and the normalisation.

The split and batch order reproduce PyTorch's ``randperm`` on a CPU generator (mt19937 seeded
with ``init_genrand``) in numpy, so no torch is needed: for Fashion-MNIST, the reference's split
and batches exactly; for any other dataset, the same rule on its own size.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from initopt.data.sources import Dataset
from initopt.errors import DataError

SPLIT_SEED = 42
EXAMPLE_BATCH_SIZE = 1024
TRAIN_SPLIT_SIZE = 50_000  # the reference split's training images: 60,000 less a sixth for validation


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


def split_indices(n: int, seed: int = SPLIT_SEED, n_val: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``random_split`` into train (the first n - n_val) and validation (the last ``n_val``, by
    default a sixth: the reference's 50,000 / 10,000)."""
    n_val = n // 6 if n_val is None else n_val
    if not 0 < n_val < n:
        raise DataError(f"A validation split of {n_val} leaves no training examples of {n}.")
    perm = randperm(legacy_mt19937(seed), n)
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


def normalize(images: np.ndarray, mean: float = 0.2861, std: float = 0.3530) -> np.ndarray:
    """Samples -> float32 rows (N, D): uint8 pixels scaled to [0, 1], then ``(x - mean) / std``
    (for Fashion-MNIST, the reference's ``(pixels / 255 - 0.2861) / 0.3530``)."""
    x = images.reshape(len(images), -1).astype(np.float32)
    if images.dtype == np.uint8:
        x = x / np.float32(255)
    return (x - np.float32(mean)) / np.float32(std)


@dataclasses.dataclass(frozen=True)
class Splits:
    """Normalised float32 rows of the three splits, the dataset's checksum, its classes and the
    shape of one sample (the rows are flattened samples)."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    sha256: str
    num_classes: int = 10
    sample_shape: tuple[int, ...] = (28, 28)


def _train_val(ds: Dataset, val_size: int | None) -> tuple[tuple, tuple]:
    """Where the training and the validation samples are: ``(arrays, indices)`` each; the file's own
    validation split, else the seeded hold-out of the training arrays."""
    train = (ds.train_images, ds.train_labels)
    if ds.val_images is not None:
        return (train, np.arange(len(ds.train_labels))), ((ds.val_images, ds.val_labels), np.arange(len(ds.val_labels)))
    train_idx, val_idx = split_indices(len(ds.train_labels), n_val=val_size)
    return (train, train_idx), (train, val_idx)


def _take(where: tuple, limit: int | None, normalization) -> tuple[np.ndarray, np.ndarray]:
    (images, labels), idx = where
    idx = idx[:limit]
    return normalize(images[idx], *normalization), labels[idx].astype(np.int32)


def make_splits(ds: Dataset, train_limit: int | None = None, val_limit: int | None = None,
                test_limit: int | None = None, val_size: int | None = None) -> Splits:
    """The split; ``*_limit`` keeps only the first examples of a split (smoke runs)."""
    train, val = _train_val(ds, val_size)
    (train_x, train_y), (val_x, val_y) = _take(train, train_limit, ds.normalization), _take(val, val_limit, ds.normalization)
    return Splits(train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y,
                  test_x=normalize(ds.test_images[:test_limit], *ds.normalization),
                  test_y=ds.test_labels[:test_limit].astype(np.int32), sha256=ds.sha256,
                  num_classes=ds.num_classes, sample_shape=tuple(ds.train_images.shape[1:]))


def example_batch(ds: Dataset, size: int = EXAMPLE_BATCH_SIZE, val_size: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The first ``size`` training samples of the split, in split order, with their labels."""
    return _take(_train_val(ds, val_size)[0], size, ds.normalization)
