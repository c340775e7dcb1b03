"""Shared fixtures: tiny IDX datasets written per test, and the Debian copy when present."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import jax
import numpy as np
import pytest

from initopt import data

jax.config.update("jax_numpy_rank_promotion", "raise")

DEBIAN_PRESENT = not data.find_files(data.DEBIAN_DIR)[1]
needs_debian_data = pytest.mark.skipif(
    not DEBIAN_PRESENT, reason="Debian's dataset-fashion-mnist is not installed"
)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encodes a uint8 array in the IDX format."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def make_dataset(directory: Path, n_train: int = 600, n_test: int = 100, seed: int = 0, compress=True) -> Path:
    """A tiny Fashion-MNIST look-alike whose labels a small MLP can learn (class k lights rows 2k+4..2k+7)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        rows = np.arange(28)[None, :, None]
        band = (rows >= 2 * labels[:, None, None] + 4) & (rows < 2 * labels[:, None, None] + 8)
        images = np.clip(150.0 * band + rng.normal(60, 40, (n, 28, 28)), 0, 255).astype(np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)
    return directory


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    return make_dataset(tmp_path / "fmnist")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the user's data or cache settings."""
    monkeypatch.delenv("INITOPT_DATA_DIR", raising=False)
    monkeypatch.setenv("INITOPT_CACHE_DIR", str(tmp_path / "cache"))


def blas_threads() -> int | None:
    """The thread count of the OpenBLAS that numpy loaded in this process (None if there is none)."""
    import ctypes

    import numpy  # noqa: F401

    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    for path in paths:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(lib, name):
                return int(getattr(lib, name)())
    return None
