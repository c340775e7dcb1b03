import dataclasses
import gzip
import socket
import time

import numpy as np
import pytest

from initopt import data
from initopt.errors import DataError
from tests.conftest import idx_bytes, make_dataset, needs_debian_data, write_idx


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a.idx", array, compress)
    np.testing.assert_array_equal(data.read_idx(path), array)


def test_read_idx_rejects_truncated_file(tmp_path):
    raw = idx_bytes(np.zeros((10, 28, 28), np.uint8))
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"t\.gz is a truncated IDX file"):
        data.read_idx(path)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    path = tmp_path / "t.gz"
    noise = np.random.default_rng(0).integers(0, 256, (10, 28, 28))
    whole = gzip.compress(idx_bytes(noise))
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        data.read_idx(path)


def test_read_idx_rejects_bad_magic_and_short_header(tmp_path):
    (tmp_path / "m").write_bytes(b"\x08\x03\x00\x00" + bytes(100))
    with pytest.raises(DataError, match="bad magic"):
        data.read_idx(tmp_path / "m")
    (tmp_path / "h").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="incomplete header"):
        data.read_idx(tmp_path / "h")


def test_split_matches_reference_indices():
    train, val = data.split_indices(60000)
    assert len(train) == data.TRAIN_SPLIT_SIZE == 50000 and len(val) == 10000
    assert train[:8].tolist() == [37542, 43087, 2992, 25810, 39634, 6425, 55768, 11034]
    assert val[:5].tolist() == [59753, 9414, 10988, 15501, 49861]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(60000))


def test_batch_order_matches_reference_indices():
    train, _ = data.split_indices(60000)
    order = data.batch_order(50000, 256, 3)
    assert order.shape == (3, 195, 256)
    expected = [
        [3881, 17627, 9733, 26463, 32088, 6321, 9483, 22526],
        [56538, 29465, 19903, 23948, 6636, 54519, 13159, 11857],
        [27893, 25385, 21920, 58979, 3949, 53607, 17727, 27953],
    ]
    for epoch in range(3):
        assert train[order[epoch, 0, :8]].tolist() == expected[epoch]


def test_randperm_is_a_permutation_for_small_n():
    for n in (1, 2, 7):
        assert sorted(data.randperm(data.legacy_mt19937(0), n).tolist()) == list(range(n))


def test_normalize_formula():
    images = np.array([[[0, 255]]], np.uint8)
    x = data.normalize(images)
    assert x.dtype == np.float32 and x.shape == (1, 2)
    np.testing.assert_allclose(x[0], [(0 - 0.2861) / 0.3530, (1 - 0.2861) / 0.3530], rtol=1e-6)


def test_load_tiny_dir_and_checksum(tiny_data):
    ds = data.load(tiny_data)
    assert ds.train_images.shape == (600, 28, 28) and ds.test_labels.shape == (100,)
    assert ds.source == "--data-dir"
    assert ds.sha256 == data.load(tiny_data).sha256
    plain = make_dataset(tiny_data.parent / "plain", compress=False)
    assert data.load(plain).sha256 == ds.sha256  # same bytes, gzipped or not
    other = make_dataset(tiny_data.parent / "other", seed=1)
    assert data.load(other).sha256 != ds.sha256


def test_load_reports_missing_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="lacks the Fashion-MNIST files train-images"):
        data.load(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        data.load(tmp_path / "nope")


def test_env_var_is_used(tiny_data, monkeypatch):
    monkeypatch.setenv("INITOPT_DATA_DIR", str(tiny_data))
    assert data.load().source == "INITOPT_DATA_DIR"


def test_no_data_and_no_network_fails_fast(monkeypatch):
    fashion = dataclasses.replace(data.DATASETS["fashion_mnist"], system_dir=data.cache_dir() / "no-debian-here")
    monkeypatch.setitem(data.DATASETS, "fashion_mnist", fashion)

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.perf_counter()
    with pytest.raises(DataError, match="is not on this machine and .* cannot be reached: install Debian's package dataset-fashion-mnist"):
        data.load()
    assert time.perf_counter() - start < 30  # TFDS import only; no retries
    with pytest.raises(DataError, match="No Fashion-MNIST data found"):
        data.load(download=False)


def test_example_batch_and_splits_follow_split_order(tiny_data):
    ds = data.load(tiny_data)
    train_idx, val_idx = data.split_indices(600)
    x, y = data.example_batch(ds, size=16)
    np.testing.assert_array_equal(x, data.normalize(ds.train_images[train_idx[:16]]))
    np.testing.assert_array_equal(y, ds.train_labels[train_idx[:16]])
    s = data.make_splits(ds, train_limit=50, val_limit=20, test_limit=10)
    assert s.train_x.shape == (50, 784) and s.val_x.shape == (20, 784) and s.test_x.shape == (10, 784)
    np.testing.assert_array_equal(s.val_y, ds.train_labels[val_idx[:20]])


@needs_debian_data
def test_debian_data_pixel_statistics():
    summary = data.load().summary()
    assert summary["source"] == "debian"
    assert (summary["train"], summary["test"]) == (60000, 10000)
    np.testing.assert_allclose(summary["train_pixel_mean"], 0.2860406, rtol=1e-6)
    np.testing.assert_allclose(summary["train_pixel_std"], 0.35302424, rtol=1e-6)


def test_decompressed_arrays_are_cached_and_checked(tiny_data, tmp_path):
    first = data.load(tiny_data)
    key = data.sources._source_key(data.find_files(tiny_data)[0])
    cache = data.array_cache_dir(key)
    assert (cache / "meta.json").is_file() and (cache / "train_images.npy").is_file()
    second = data.load(tiny_data)
    assert isinstance(second.train_images, np.memmap)  # from the cache, memory-mapped
    assert second.sha256 == first.sha256 and second.summary() == first.summary()
    np.testing.assert_array_equal(second.train_images, first.train_images)
    # A damaged entry is not trusted: the data is read from the source again.
    (cache / "train_images.npy").write_bytes(b"broken")
    third = data.load(tiny_data)
    assert third.sha256 == first.sha256 and not isinstance(third.train_images, np.memmap)
    # Other source files, another key.
    make_dataset(tiny_data, seed=1)
    assert data.load(tiny_data).sha256 != first.sha256
