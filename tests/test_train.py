import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initopt import config, data, stats, train

CFG = config.load(overrides={"model.hidden": [64, 32], "train.epochs": 3, "train.batch_size": 32,
                             "train.optimizers": ["adam"]})


@pytest.fixture
def splits(tiny_data):
    stats.set_prng("legacy")
    ds = data.load(tiny_data)
    return data.make_splits(ds), data.example_batch(ds)[0]


def test_scan_epoch_equals_per_step_loop(splits):
    s, x_example = splits
    progress = train.initial_progress(CFG, x_example, "momentum")
    order = train.epoch_orders(CFG, len(s.train_y))[0]
    # The oracle: one jitted step per batch, fed numpy batches from a Python loop.
    step = jax.jit(train.train_step)
    state = train.make_state(CFG, progress.best_params, "momentum")
    losses = []
    for idx in order:
        state, (loss, _) = step(state, s.train_x[idx], s.train_y[idx])
        losses.append(float(loss))
    scanned, metrics = train.train_epoch(progress.state, jnp.asarray(s.train_x), jnp.asarray(s.train_y), jnp.asarray(order))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), scanned.params, state.params)
    np.testing.assert_allclose(float(metrics["loss"]), np.mean(losses), rtol=1e-5)
    assert int(scanned.step) == len(order)


def test_fit_learns_and_keeps_the_best_epoch(splits):
    s, x_example = splits
    epochs_seen = []
    cfg = config.load(overrides={"model.hidden": [64, 32], "train.epochs": 3, "train.batch_size": 32, "train.lr": 0.01})
    p = train.fit(cfg, s, train.initial_progress(cfg, x_example, "adam"), lambda p: epochs_seen.append(p.epoch))
    h = p.history
    assert p.status == "complete" and epochs_seen == [1, 2, 3] and len(h.val_scores) == 3
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.best_val == max(h.val_scores) and h.val_scores[h.best_epoch - 1] == h.best_val
    # The kept parameters are the best epoch's: re-evaluating them gives the best validation accuracy.
    val = train.evaluate(p.best_params, p.state.apply_fn, jnp.asarray(s.val_x), jnp.asarray(s.val_y))
    assert float(val["acc"]) == pytest.approx(h.best_val)
    assert 0.3 < train.test_accuracy(p, s) <= 1.0  # the tiny classes are learnable


def test_divergence_stops_with_status(splits):
    s, x_example = splits
    cfg = config.load(overrides={"model.hidden": [64, 32], "train.epochs": 5, "train.batch_size": 32,
                                 "train.optimizers": ["sgd"], "train.lr": 1e4})
    p = train.fit(cfg, s, train.initial_progress(cfg, x_example, "sgd"))
    assert p.status == "diverged" and p.epoch < 5
    assert not np.isfinite(p.history.train_loss[-1])


def test_no_recompile_across_epochs(splits):
    s, x_example = splits
    before = train.evaluate._cache_size()
    train.fit(CFG, s, train.initial_progress(CFG, x_example, "sgd"))
    assert train.evaluate._cache_size() - before <= 1  # one evaluation program for all epochs
