"""Shared fixtures: tiny IDX datasets written per test, their splits, the Debian copy when present,
and one JAX compilation cache for the whole test run.

Every test gets its own initopt cache directory (no test sees another's arrays or the user's),
but the compilation cache inside it is one directory for the session: a program that one test
compiled is read back by the next process that needs it (the CLI's subprocess tests and the
README's commands compile the same programs). A test that counts compilations turns the cache
off for itself (``no_compile_cache``)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import jax
import numpy as np
import pytest

from initopt import data
from initopt.runtime import env

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


@pytest.fixture
def tiny_splits(tiny_data):
    """``(dataset, splits, example batch)`` of :func:`tiny_data`, with the reference's (legacy) PRNG."""
    env.set_prng("legacy")
    ds = data.load(tiny_data)
    return ds, data.make_splits(ds), data.example_batch(ds)[0]


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jax-compilation-cache")


def share_compile_cache(cache_dir: Path, shared: Path) -> None:
    """``cache_dir``'s compilation cache (what ``runtime.env.setup_jax`` opens) is ``shared``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "jax-compilation-cache").symlink_to(shared, target_is_directory=True)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory, compile_cache):
    """No test sees the user's data or cache settings (its cache is its own, beside its tmp_path);
    the compiled programs are shared."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.delenv("INITOPT_DATA_DIR", raising=False)
    monkeypatch.delenv("INITOPT_COMPILE_CACHE", raising=False)
    share_compile_cache(cache, compile_cache)
    monkeypatch.setenv("INITOPT_CACHE_DIR", str(cache))


@pytest.fixture
def no_compile_cache(monkeypatch):
    """For a test that counts the programs XLA builds: none read from the shared cache (for the
    commands it runs, and for library calls in this process)."""
    monkeypatch.setenv("INITOPT_COMPILE_CACHE", "off")
    env.setup_jax(None)


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
