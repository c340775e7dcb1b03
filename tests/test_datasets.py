"""Datasets beyond the reference: MNIST and KMNIST (IDX), CIFAR-10 (its binary archive) and the
user's .npz file, each written here in its real format; their checks, normalisation and split."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from typer.testing import CliRunner

from initopt import data
from initopt.cli import app
from initopt.data import cifar
from initopt.errors import ConfigError, DataError
from tests.conftest import make_dataset

runner = CliRunner()


def cifar_batch(images_NxHxWxC: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10's binary record layout, written independently of the reader: a label byte, then
    the red, green and blue planes, each 32 rows of 32 pixels."""
    out = bytearray()
    for image, label in zip(images_NxHxWxC, labels):
        out.append(int(label))
        for channel in range(3):
            out += bytes(image[:, :, channel].flatten().tolist())
    return bytes(out)


def make_cifar(directory, n_per_batch=4, n_test=6, seed=0, archive=True):
    """CIFAR-10's ``cifar-10-binary.tar.gz`` (or its extracted folder), five training batches and a
    test batch of random images; returns the images and labels written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written, files = {}, {}
    for name, n in [*((b, n_per_batch) for b in cifar.TRAIN_BATCHES), (cifar.TEST_BATCH, n_test)]:
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        written[name], files[name] = (images, labels), cifar_batch(images, labels)
    if archive:
        with tarfile.open(directory / cifar.ARCHIVE, "w:gz") as tar:
            for name, raw in files.items():
                info = tarfile.TarInfo(f"{cifar.FOLDER}/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    else:
        (directory / cifar.FOLDER).mkdir()
        for name, raw in files.items():
            (directory / cifar.FOLDER / name).write_bytes(raw)
    return written


@pytest.mark.parametrize("archive", [True, False])
def test_cifar10_binary_archive_and_folder(tmp_path, archive):
    written = make_cifar(tmp_path / "c", archive=archive)
    ds = data.load(tmp_path / "c", dataset="cifar10")
    train_images = np.concatenate([written[b][0] for b in cifar.TRAIN_BATCHES])
    np.testing.assert_array_equal(ds.train_images, train_images)  # (N, 32, 32, 3): rows, columns, RGB
    np.testing.assert_array_equal(ds.test_labels, written[cifar.TEST_BATCH][1])
    assert ds.summary()["image_shape"] == [32, 32, 3] and ds.summary()["dataset"] == "cifar10"
    # Normalised with the training pixels' own mean and std (not Fashion-MNIST's constants).
    pixels = train_images.astype(np.float64) / 255
    np.testing.assert_allclose(ds.normalization, (pixels.mean(), pixels.std(ddof=1)), rtol=1e-5)
    s = data.make_splits(ds)
    assert s.sample_shape == (32, 32, 3) and s.train_x.shape[1] == 3072 and len(s.val_y) == 20 // 6
    x, _ = data.example_batch(ds, size=2)
    np.testing.assert_allclose(x[0], (train_images[data.split_indices(20)[0][0]].reshape(-1) / 255
                                      - ds.normalization[0]) / ds.normalization[1], rtol=1e-5, atol=1e-6)


def test_cifar10_damaged_and_python_archives(tmp_path):
    make_cifar(tmp_path / "c")
    raw = (tmp_path / "c" / cifar.ARCHIVE).read_bytes()
    (tmp_path / "c" / cifar.ARCHIVE).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="is a corrupt or truncated archive"):
        data.load(tmp_path / "c", dataset="cifar10")
    with pytest.raises(DataError, match="not a whole number of 3073-byte records"):
        cifar.records(b"\x00" * 3000, "data_batch_1.bin")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / cifar.PYTHON_ARCHIVE).write_bytes(b"pickles")
    with pytest.raises(DataError, match="the python version, whose pickles initopt does not load"):
        data.load(tmp_path / "p", dataset="cifar10")


@pytest.mark.parametrize("name", ["mnist", "kmnist"])
def test_idx_datasets_and_their_own_normalisation(tmp_path, name, monkeypatch):
    make_dataset(tmp_path / "all" / name, seed=3)
    monkeypatch.setenv("INITOPT_DATA_DIR", str(tmp_path / "all"))  # DIR/<dataset>/ is looked in too
    ds = data.load(dataset=name)
    pixels = ds.train_images.astype(np.float64) / 255
    np.testing.assert_allclose(ds.normalization, (pixels.mean(), pixels.std(ddof=1)), rtol=1e-5)
    assert ds.normalization != data.REFERENCE_NORMALIZATION and ds.summary()["dataset"] == name
    assert data.load(tmp_path / "all" / name).normalization == data.REFERENCE_NORMALIZATION  # fashion_mnist
    with pytest.raises(DataError, match=f"No {data.DATASETS[name].title} data found: pass --data-dir DIR"):
        monkeypatch.delenv("INITOPT_DATA_DIR")
        data.load(dataset=name, download=False)


def test_unknown_dataset_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="Unknown dataset 'svhn'; choose one of fashion_mnist, mnist, kmnist, cifar10"):
        data.load(dataset="svhn")


def write_npz(path, n_train=120, n_test=30, shape=(6, 6, 2), classes=3, val=None, **replace):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.normal(2.0, 3.0, (n_train, *shape)).astype(np.float32),
              "y_train": np.arange(n_train) % classes,
              "x_test": rng.normal(2.0, 3.0, (n_test, *shape)).astype(np.float32),
              "y_test": np.arange(n_test) % classes}
    if val:
        arrays |= {"x_val": rng.normal(2.0, 3.0, (val, *shape)).astype(np.float32), "y_val": np.arange(val) % classes}
    arrays |= replace
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz_classes_hold_out_and_normalisation(tmp_path):
    ds = data.load(dataset=str(write_npz(tmp_path / "d.npz")))
    assert ds.num_classes == 3 and ds.source == "npz"
    np.testing.assert_allclose(ds.normalization, (ds.train_images.mean(), ds.train_images.std(ddof=1)), rtol=1e-5)
    s = data.make_splits(ds, val_size=20)
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (100, 20, 30) and s.sample_shape == (6, 6, 2)
    train_idx, val_idx = data.split_indices(120, n_val=20)  # the seeded hold-out
    np.testing.assert_array_equal(s.val_y, ds.train_labels[val_idx])
    assert abs(float(s.train_x.mean())) < 0.1 and abs(float(s.train_x.std()) - 1) < 0.1  # standardised
    own = data.make_splits(data.load(dataset=str(write_npz(tmp_path / "v.npz", val=10))))
    assert len(own.val_y) == 10 and len(own.train_y) == 120  # the file's own validation split


@pytest.mark.parametrize("replace, text", [
    ({"y_test": None}, "lacks the arrays y_test"),
    ({"y_train": np.arange(119) % 3}, "x_train has 120 samples and y_train 119 labels"),
    ({"x_test": np.full((30, 6, 6, 2), np.nan, np.float32)}, "x_test has non-finite values"),
    ({"y_test": np.full(30, 7)}, "labels must be integers 0..2 (the classes of y_train); y_test has 7"),
    ({"y_train": np.arange(120) % 3 - 1}, "labels must be integers"),
    ({"y_train": (np.arange(120) % 3).astype(np.float32)}, "y_train must be a vector of integer labels"),
    ({"x_test": np.zeros((30, 5, 5, 2), np.float32)}, "samples of x_test are (5, 5, 2), those of x_train (6, 6, 2)"),
    ({"x_val": np.zeros((4, 6, 6, 2), np.float32)}, "has one of x_val and y_val"),
    ({"x_train": np.array([object()] * 120)}, "is not a readable .npz file"),  # pickled objects are refused
    ({"y_train": np.array([0, 5, 599000] * 40), "y_test": np.zeros(30, int)},
     "y_train has 3 distinct labels (0, 5, 599000), not the classes 0..599000 that its largest label implies "
     "(598998 of them without a sample)"),
    ({"y_train": np.arange(120) % 3 + 1, "y_test": np.ones(30, int)}, "y_train has 3 distinct labels (1, 2, 3)"),
])
def test_npz_checks(tmp_path, replace, text):
    path = tmp_path / "bad.npz"
    if replace.get("x_train") is not None and replace["x_train"].dtype == object:
        np.savez(path, x_train=replace["x_train"], y_train=np.zeros(120, int), x_test=np.zeros((3, 2)),
                 y_test=np.zeros(3, int))
    else:
        write_npz(path, **replace)
    with pytest.raises(DataError) as info:
        data.load(dataset=str(path))
    assert text in str(info.value) and str(path) in str(info.value)


def test_npz_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match="Dataset file .*nope.npz does not exist"):
        data.load(dataset=str(tmp_path / "nope.npz"))
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="is not a readable .npz file"):
        data.load(dataset=str(tmp_path / "c.npz"))


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_train_and_init_stats_on_a_users_npz(tmp_path):
    """The user's file through the commands: its classes set the output layer, and the run's
    config.json names the file, so the run reproduces from it."""
    path = write_npz(tmp_path / "mine.npz", n_train=300, classes=4)
    r = invoke("train", "--dataset", path, "--optimizer", "adam", "--epochs", "2", "--batch-size", "32",
               "--hidden", "16", "--json", "--quiet", "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["test_acc"] is not None and 0 <= m["test_acc"] <= 1
    config_path = next((tmp_path / "out" / "train").glob("*/adam/config.json"))
    config_json = json.loads(config_path.read_text())
    assert config_json["data"]["dataset"] == str(path) and config_json["model"]["num_classes"] == 4
    again = invoke("train", "--config", config_path, "--json", "--quiet", "--out", tmp_path / "again")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["test_acc"] == m["test_acc"]  # the run, from what it wrote
    s = invoke("init-stats", "--dataset", path, "--hidden", "8,8", "--json", "--out", tmp_path / "out")
    assert s.exit_code == 0, s.output
    assert len(json.loads(s.stdout)["act_var"]) == 3  # two hidden layers and the 4 logits


def test_a_file_with_fewer_examples_than_a_batch_writes_nothing(tmp_path):
    path = write_npz(tmp_path / "small.npz", n_train=40)
    r = invoke("train", "--dataset", path, "--batch-size", "64", "--epochs", "1", "--out", tmp_path / "out")
    assert r.exit_code == 1 and "Batch size 64 exceeds the" in r.output
    assert not list((tmp_path / "out").rglob("*.json"))


def test_data_command_names_the_dataset(tmp_path):
    make_cifar(tmp_path / "c")
    r = invoke("data", "--dataset", "cifar10", "--data-dir", tmp_path / "c", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["dataset"] == "cifar10" and (summary["train"], summary["test"]) == (20, 6)
    assert summary["image_shape"] == [32, 32, 3] and summary["classes"] == 10


@pytest.mark.parametrize("model, shape, text", [
    ("2c2d", (784,), "Model 2c2d takes images, samples of H x W or H x W x C values; this dataset's samples are vectors "
                     "of 784 values: reshape the data's x arrays to images (x.reshape(-1, 28, 28) for 28 x 28 images), "
                     "or use --model mlp."),
    ("3c3d", (4, 4, 2), "Model 3c3d cannot take images of 4 x 4 x 2: they are too small for its convolutions and "
                        "poolings; use larger images or --model mlp."),
])
def test_a_network_that_cannot_take_the_data_says_so_in_its_terms(tmp_path, model, shape, text):
    """What the built-in network takes against what the file holds, before any work; not a quoted
    broadcasting or convolution error."""
    rng = np.random.default_rng(0)
    path = tmp_path / "flat.npz"
    np.savez(path, x_train=rng.normal(size=(120, *shape)), y_train=np.arange(120) % 3,
             x_test=rng.normal(size=(30, *shape)), y_test=np.arange(30) % 3)
    r = invoke("train", "--dataset", path, "--model", model, "--epochs", "1", "--out", tmp_path / "out")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert text in " ".join(r.output.split())
    assert not list((tmp_path / "out").rglob("*.json"))
