"""The data: named datasets and the user's ``.npz`` files, found, checked and cached
(:mod:`~initopt.data.sources`), their formats (:mod:`~initopt.data.idx`,
:mod:`~initopt.data.cifar`, :mod:`~initopt.data.npz`), and the split, batch order and
normalisation (:mod:`~initopt.data.splits`)."""

from initopt.data.idx import read_idx
from initopt.data.sources import (
    DATASETS,
    DEBIAN_DIR,
    REFERENCE,
    REFERENCE_NORMALIZATION,
    Dataset,
    array_cache_dir,
    cache_dir,
    check_name,
    fetch,
    find_files,
    is_file_dataset,
    load,
    locate,
    pixel_stats,
)
from initopt.data.splits import (
    EXAMPLE_BATCH_SIZE,
    SPLIT_SEED,
    TRAIN_SPLIT_SIZE,
    Splits,
    batch_order,
    epoch_permutations,
    example_batch,
    legacy_mt19937,
    make_splits,
    normalize,
    randperm,
    split_indices,
    steps_per_epoch,
)

__all__ = [
    "DATASETS", "DEBIAN_DIR", "EXAMPLE_BATCH_SIZE", "REFERENCE", "REFERENCE_NORMALIZATION", "SPLIT_SEED",
    "TRAIN_SPLIT_SIZE", "Dataset", "Splits", "array_cache_dir", "batch_order", "cache_dir", "check_name",
    "epoch_permutations", "example_batch", "fetch", "find_files", "is_file_dataset", "legacy_mt19937", "load", "locate",
    "make_splits", "normalize", "pixel_stats", "randperm", "read_idx", "split_indices", "steps_per_epoch",
]
