"""CIFAR-10's binary version (``cifar-10-binary.tar.gz``, as TFDS downloads it): each batch file
holds records of one label byte and 3,072 pixel bytes (the red, green and blue planes of a 32 x 32
image). Read from the archive without extracting it, or from its extracted folder. The "python
version" of the archive holds pickles, which initopt does not load."""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

import numpy as np

from initopt.errors import DataError

SIDE, CHANNELS, NUM_CLASSES = 32, 3, 10
RECORD_BYTES = 1 + CHANNELS * SIDE * SIDE
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
PYTHON_ARCHIVE = "cifar-10-python.tar.gz"


def records(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A batch file's bytes -> images (N, 32, 32, 3) uint8 and labels (N,) uint8."""
    if not raw or len(raw) % RECORD_BYTES:
        raise DataError(f"{name} is not a CIFAR-10 binary batch: {len(raw)} bytes is not a whole number of "
                        f"{RECORD_BYTES}-byte records.")
    table = np.frombuffer(raw, np.uint8).reshape(-1, RECORD_BYTES)
    labels = table[:, 0].copy()
    if labels.max() >= NUM_CLASSES:
        raise DataError(f"{name} has labels outside 0..9: not a CIFAR-10 batch.")
    images = table[:, 1:].reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1).copy()
    return images, labels


def _batches(path: Path) -> dict[str, bytes]:
    names = (*TRAIN_BATCHES, TEST_BATCH)
    if path.is_dir():
        missing = [n for n in names if not (path / n).is_file()]
        if missing:
            raise DataError(f"{path} lacks the CIFAR-10 batches {', '.join(missing)}.")
        return {n: (path / n).read_bytes() for n in names}
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            missing = [n for n in names if n not in members]
            if missing:
                raise DataError(f"{path} lacks the CIFAR-10 batches {', '.join(missing)}.")
            return {n: archive.extractfile(members[n]).read() for n in names}
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path} is a corrupt or truncated archive ({e}).") from None


def read(found: dict[str, Path]) -> dict[str, np.ndarray]:
    """The four arrays from the archive (or its folder) in ``found["archive"]``."""
    batches = _batches(found["archive"])
    train = [records(batches[n], n) for n in TRAIN_BATCHES]
    test_images, test_labels = records(batches[TEST_BATCH], TEST_BATCH)
    return {"train_images": np.concatenate([i for i, _ in train]),
            "train_labels": np.concatenate([labels for _, labels in train]),
            "test_images": test_images, "test_labels": test_labels}
