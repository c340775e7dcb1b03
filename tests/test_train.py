import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initopt import config
from initopt.engine import loop, steps
from initopt.engine import plan as plan_lib

CFG = config.load(overrides={"model.hidden": [64, 32], "train.epochs": 3, "train.batch_size": 32,
                             "train.optimizers": ["adam"]})


def plan(cfg, optimizer, s):
    return plan_lib.plan_for(cfg, optimizer, len(s.train_y))


def test_scan_epoch_equals_per_step_loop(tiny_splits):
    """The oracle: one jitted step per batch with a plain (not injected) optimizer, fed from Python."""
    from flax.training.train_state import TrainState

    from initopt.optim.optimizers import momentum

    _, s, x_example = tiny_splits
    p = plan(CFG, "momentum", s)
    progress = loop.initial_progress(p, x_example)
    order = plan_lib.batch_orders(p, len(s.train_y))[42][0]
    params = jax.tree.map(lambda a: a[0], progress.best_params)
    state = TrainState.create(apply_fn=progress.state.apply_fn, params=params, tx=momentum(0.1, 0.9))
    step = jax.jit(steps.train_step)
    losses = []
    for idx in order:
        state, (loss, _) = step(state, s.train_x[idx], s.train_y[idx])
        losses.append(float(loss))
    scanned, metrics = steps.train_epoch(progress.state, jnp.asarray(s.train_x), jnp.asarray(s.train_y),
                                         jnp.asarray(order[None]))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[0], b, rtol=1e-5, atol=1e-6), scanned.params, state.params)
    np.testing.assert_allclose(float(metrics["loss"][0]), np.mean(losses), rtol=1e-5)
    assert int(scanned.step[0]) == len(order) and float(metrics["lr"][0]) == pytest.approx(0.1)


def test_fit_learns_and_keeps_the_best_epoch(tiny_splits):
    _, s, x_example = tiny_splits
    epochs_seen = []
    cfg = config.load(overrides={"model.hidden": [64, 32], "train.epochs": 3, "train.batch_size": 32, "train.lr": 0.01})
    p = loop.fit(plan(cfg, "adam", s), s, loop.initial_progress(plan(cfg, "adam", s), x_example),
                  lambda p: epochs_seen.append(p.epoch))
    h = p.history
    assert p.status == "complete" and epochs_seen == [1, 2, 3] and len(h.val_scores[0]) == 3
    assert h.train_loss[0][-1] < h.train_loss[0][0]
    assert h.best_val[0] == max(h.val_scores[0]) and h.val_scores[0][h.best_epoch[0] - 1] == h.best_val[0]
    # The kept parameters are the best epoch's: re-evaluating them gives the best validation accuracy.
    val = steps.evaluate(p.best_params, p.state.apply_fn, jnp.asarray(s.val_x), jnp.asarray(s.val_y))
    assert float(val["acc"][0]) == pytest.approx(h.best_val[0])
    assert 0.3 < loop.test_accuracies(p, s)[0] <= 1.0  # the tiny classes are learnable


def test_divergence_stops_with_status(tiny_splits):
    _, s, x_example = tiny_splits
    cfg = config.load(overrides={"model.hidden": [64, 32], "train.epochs": 5, "train.batch_size": 32,
                                 "train.optimizers": ["sgd"], "train.lr": 1e4})
    p = loop.fit(plan(cfg, "sgd", s), s, loop.initial_progress(plan(cfg, "sgd", s), x_example))
    assert p.status == "diverged" and p.epoch < 5 and p.history.diverged_epoch == [p.epoch]
    assert not np.isfinite(p.history.train_loss[0][-1])


@pytest.mark.slow
def test_schedule_is_recorded_per_epoch(tiny_splits):
    """warmup_cosine over 3 epochs with 1 warm-up epoch: the rate of each epoch's last update."""
    import optax

    _, s, x_example = tiny_splits
    cfg = config.load(overrides={"model.hidden": [32], "train.epochs": 3, "train.batch_size": 32, "train.lr": 0.02,
                                 "train.schedule": "warmup_cosine", "train.warmup_epochs": 1})
    pl = plan(cfg, "sgd", s)
    steps = len(s.train_y) // 32
    p = loop.fit(pl, s, loop.initial_progress(pl, x_example))
    oracle = optax.warmup_cosine_decay_schedule(0.0, 0.02, steps, 3 * steps, end_value=0.0)
    np.testing.assert_allclose(p.history.lr[0], [oracle(e * steps - 1) for e in (1, 2, 3)], rtol=1e-5, atol=1e-9)


def test_a_sigterm_whose_exception_was_lost_stops_training_after_the_epoch(tiny_splits):
    """SIGTERM's exception, raised inside a callback that swallows it (as JAX's C++ can), still
    ends training: the loop stops after the epoch it was in, checkpointed (on_epoch has run)."""
    import os
    import signal
    import time

    from initopt.runtime import process

    _, s, x_example = tiny_splits
    epochs_seen = []
    cfg = config.load(overrides={"model.hidden": [16], "train.epochs": 3, "train.batch_size": 32})
    with process.sigterm_as_interrupt():
        try:  # the handler's exception, swallowed where it was raised
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except process.Terminated:
            pass
        with pytest.raises(process.Terminated):
            loop.fit(plan(cfg, "adam", s), s, loop.initial_progress(plan(cfg, "adam", s), x_example),
                     lambda p: epochs_seen.append(p.epoch))
    assert epochs_seen == [1]
    process.raise_if_terminated()  # the flag is the context's: after it, no stop is pending
