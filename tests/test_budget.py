"""Memory estimates before any work: exact counts, and the one-sentence refusal."""

from __future__ import annotations

import pytest

from initopt.engine import budget
from initopt.errors import ConfigError
from initopt import config
from initopt.nn import networks


def net(**model):
    return networks.get(config.load(overrides={f"model.{k}": v for k, v in model.items()}).model)


def test_param_count_of_the_reference_mlp():
    # 784*512+512 + 512*256+256 + 256*256+256 + 256*128+128 + 128*10+10, counted by hand
    assert net().param_count == 401_920 + 131_328 + 65_792 + 32_896 + 1_290


def test_counts_of_a_cnn_come_from_its_shapes():
    """2c2d, counted by hand: conv 5*5*1*32+32, conv 5*5*32*64+64, dense 7*7*64*1024+1024, dense 1024*10+10;
    its module outputs per example: 28*28*32 + 14*14*64 + 1024 + 10 (and the logits once more, the
    module's own output)."""
    cnn = net(name="2c2d")
    assert cnn.param_count == 832 + 51_264 + 3_212_288 + 10_250
    assert cnn.units == 28 * 28 * 32 + 14 * 14 * 64 + 1024 + 10 + 10
    assert cnn.convolutional and not net().convolutional
    # evaluation runs in chunks of EVAL_CHUNK for a CNN: a bigger split adds only its data
    small = budget.train_bytes(cnn, 128, 1, 5000, 2000, 1, 1)
    big = budget.train_bytes(cnn, 128, 1, 5000, 3000, 1, 1)
    assert big - small == 4 * 2 * 1000 * 784


def test_train_bytes_counts_every_epochs_batch_order_per_seed():
    """The batch orders are drawn before training: (epochs, n_train) int64 permutations and their
    int32 positions per seed. `train --epochs 99999999` allocated 3 TB of them and crashed."""
    args = dict(net=net(hidden=[32]), batch_size=64, n_trials=3, n_train=5000, n_eval=1000)
    base = budget.train_bytes(**args, epochs=1, n_seeds=1)
    assert budget.train_bytes(**args, epochs=11, n_seeds=1) - base == 10 * 5000 * 12
    assert budget.train_bytes(**args, epochs=1, n_seeds=4) - base == 3 * 5000 * 12
    params = 784 * 32 + 32 + 32 * 10 + 10
    per_trial = 4 * (5 * params + (64 + 1000) * (32 + 10))
    assert base == 3 * per_trial + 4 * (5000 + 2 * 1000) * 784 + 5000 * 12


def test_check_refuses_in_one_sentence_above_the_usable_memory(monkeypatch):
    monkeypatch.setattr(budget, "machine_bytes", lambda: 10 * 2**30)  # 8 GB usable
    assert budget.check(8 * 2**30, "this") == 8 * 2**30
    with pytest.raises(ConfigError) as e:
        budget.check(8 * 2**30 + 1, "Training this")
    assert str(e.value) == ("Training this needs about 8.0 GB of memory; this machine has 8.0 GB to give "
                            "(80% of its memory): choose smaller sizes.")
