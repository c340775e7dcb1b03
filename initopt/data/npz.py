"""The user's own data: one ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test`` and,
optionally, ``x_val`` and ``y_val``. Samples of any shape (vectors, H x W or H x W x C images),
integer labels 0..C-1 (C, the number of classes, is one more than the largest training label).
Read with ``allow_pickle=False``: an object array is refused, never unpickled."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from initopt.errors import DataError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val")


def read(path: Path) -> dict[str, np.ndarray]:
    """The file's arrays, checked: every sentence names the file and what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k in REQUIRED + OPTIONAL}
            others = sorted(set(f.files) - set(arrays))
    except FileNotFoundError:
        raise DataError(f"Dataset file {path} does not exist.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is not a readable .npz file ({e}).") from None
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks the arrays {', '.join(missing)} (it has {', '.join(others + list(arrays)) or 'none'}).")
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise DataError(f"{path} has one of x_val and y_val: give both or neither.")
    splits = [s for s in ("train", "val", "test") if f"x_{s}" in arrays]
    for s in splits:
        x, y = arrays[f"x_{s}"], arrays[f"y_{s}"]
        if x.dtype.kind not in "uif" or x.ndim < 2:
            raise DataError(f"{path}: x_{s} must be numbers with one sample per row, not {x.dtype} of shape {x.shape}.")
        if y.ndim != 1 or y.dtype.kind not in "ui":
            raise DataError(f"{path}: y_{s} must be a vector of integer labels, not {y.dtype} of shape {y.shape}.")
        if len(x) != len(y):
            raise DataError(f"{path}: x_{s} has {len(x)} samples and y_{s} {len(y)} labels.")
        if len(x) == 0:
            raise DataError(f"{path}: x_{s} is empty.")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise DataError(f"{path}: x_{s} has non-finite values (NaN or infinity).")
        if x.shape[1:] != arrays["x_train"].shape[1:]:
            raise DataError(f"{path}: samples of x_{s} are {x.shape[1:]}, those of x_train {arrays['x_train'].shape[1:]}.")
    num_classes = int(arrays["y_train"].max()) + 1
    for s in splits:
        y = arrays[f"y_{s}"]
        if y.min() < 0 or y.max() >= num_classes:
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise DataError(f"{path}: labels must be integers 0..{num_classes - 1} (the classes of y_train); "
                            f"y_{s} has {bad}.")
    if num_classes < 2:
        raise DataError(f"{path}: y_train has one class; a classifier needs two or more.")
    _check_classes_numbered(path, arrays["y_train"], num_classes)
    return arrays


def _check_classes_numbered(path: Path, y_train: np.ndarray, num_classes: int) -> None:
    """Every class 0..K-1 has a training sample: labels like {0, 5, 599000} would otherwise make a
    599,001-way classifier whose classes are almost all empty."""
    present = np.unique(y_train)
    if len(present) == num_classes:
        return
    shown = ", ".join(str(int(v)) for v in present[:6]) + (", ..." if len(present) > 6 else "")
    raise DataError(f"{path}: y_train has {len(present)} distinct labels ({shown}), not the classes 0..{num_classes - 1} "
                    f"that its largest label implies ({num_classes - len(present)} of them without a sample); number "
                    "the classes 0..K-1, e.g. y = np.unique(y_train, return_inverse=True)[1] for every split.")
