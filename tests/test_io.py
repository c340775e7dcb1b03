import json
import math
import os

import numpy as np
import pytest

from initopt.errors import InitoptError
from initopt.output import io


def test_json_turns_numpy_and_non_finite_into_plain_values(tmp_path):
    path = io.write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.arange(3), "c": math.nan, "d": [math.inf]})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": None, "d": [None]}


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = io.write_text(tmp_path / "f.txt", "old")

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        io._write_atomic(path, broken)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_unwritable_directory_is_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InitoptError, match="Cannot write to"):
        io.ensure_dir(blocker / "sub")


def test_npy_and_checkpoints_round_trip_without_pickle(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    io.save_npy(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy", allow_pickle=False), arr)
    io.save_checkpoint(tmp_path / "c.msgpack", {"w": np.ones((2, 2), np.float32), "epoch": 3})
    back = io.load_checkpoint(tmp_path / "c.msgpack")
    assert back["epoch"] == 3 and back["w"].shape == (2, 2)
    (tmp_path / "bad.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(InitoptError, match="is corrupt"):
        io.load_checkpoint(tmp_path / "bad.msgpack")
