"""Training: loss, a jitted epoch (``lax.scan`` over its batches), jitted evaluation, the loop.

The training split lives on the device; an epoch is one call that gathers its
batches from precomputed indices, so there is no per-step Python work.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from initopt import data as data_lib
from initopt.config import Config
from initopt.model import make_model
from initopt.optimizers import make_optimizer


def loss_and_accuracy(params, apply_fn, x_BxD, y_B):
    logits_BxC = apply_fn(params, x_BxD)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits_BxC, y_B).mean()
    return loss, (jnp.argmax(logits_BxC, -1) == y_B).mean()


def train_step(state: TrainState, x_BxD, y_B):
    """One update; returns the new state and (loss, accuracy) of the batch."""
    grad_fn = jax.value_and_grad(loss_and_accuracy, has_aux=True)
    (loss, acc), grads = grad_fn(state.params, state.apply_fn, x_BxD, y_B)
    return state.apply_gradients(grads=grads), (loss, acc)


def epoch_kernel(state: TrainState, train_x_NxD, train_y_N, order_SxB):
    """All ``S`` steps of one epoch; batch ``s`` is ``train[order[s]]``. Metrics are batch means."""

    def step(state, idx_B):
        return train_step(state, train_x_NxD[idx_B], train_y_N[idx_B])

    state, (loss_S, acc_S) = jax.lax.scan(step, state, order_SxB)
    finite = jnp.isfinite(loss_S).all() & jnp.all(
        jnp.array([jnp.isfinite(p).all() for p in jax.tree.leaves(state.params)])
    )
    return state, {"loss": loss_S.mean(), "acc": acc_S.mean(), "finite": finite}


def eval_kernel(params, apply_fn, x_NxD, y_N):
    """Accuracy and mean loss on a whole split."""
    loss, acc = loss_and_accuracy(params, apply_fn, x_NxD, y_N)
    return {"loss": loss, "acc": acc}


train_epoch = jax.jit(epoch_kernel, donate_argnums=0)
evaluate = jax.jit(eval_kernel, static_argnames="apply_fn")


@dataclasses.dataclass
class History:
    """Per-epoch metrics; lists grow as epochs complete."""

    train_scores: list[float] = dataclasses.field(default_factory=list)
    train_loss: list[float] = dataclasses.field(default_factory=list)
    val_scores: list[float] = dataclasses.field(default_factory=list)
    val_loss: list[float] = dataclasses.field(default_factory=list)
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    best_epoch: int | None = None  # 1-based (a list of them, one per seed, for multi-seed runs)
    best_val: float = -1.0
    diverged_epoch: list | None = None  # multi-seed runs: per seed, the epoch its loss turned non-finite


@dataclasses.dataclass
class Progress:
    """What the loop resumes from and reports after each epoch."""

    state: TrainState
    best_params: object
    history: History
    epoch: int  # epochs completed
    status: str = "running"  # running / complete / diverged / interrupted
    compile_seconds: float = 0.0


def initial_progress(cfg: Config, x_example, optimizer: str) -> Progress:
    """Parameters from ``model.init(PRNGKey(seed), example)`` and a fresh optimizer state."""
    from initopt.stats import init_params

    params = init_params(cfg.model, x_example, cfg.train.seed)
    state = make_state(cfg, params, optimizer)
    return Progress(state=state, best_params=_copy(params), history=History(), epoch=0)


def _copy(tree):
    """A copy that survives the donation of the state's buffers to the next epoch."""
    return jax.tree.map(jnp.copy, tree)


def make_state(cfg: Config, params, optimizer: str) -> TrainState:
    t = cfg.train
    model = make_model(cfg.model.hidden, cfg.model.act)
    tx = make_optimizer(optimizer, t.lr, t.beta, t.weight_decay)
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    return state.replace(step=jnp.zeros((), jnp.int32))  # same type as after an update: no recompile


def epoch_orders(cfg: Config, n_train: int) -> np.ndarray:
    """(epochs, steps, batch) positions into the training split, the reference batch order."""
    return data_lib.batch_order(n_train, cfg.train.batch_size, cfg.train.epochs, cfg.train.seed)


def fit(
    cfg: Config,
    splits: data_lib.Splits,
    progress: Progress,
    on_epoch: Callable[[Progress], None] | None = None,
) -> Progress:
    """Trains from ``progress.epoch`` to ``cfg.train.epochs``; keeps the best-validation params.

    ``on_epoch`` runs after each completed epoch (checkpointing, progress display).
    A non-finite loss or parameter stops the run with status ``diverged``.
    """
    orders = jnp.asarray(epoch_orders(cfg, len(splits.train_y)), jnp.int32)
    train_x, train_y = jnp.asarray(splits.train_x), jnp.asarray(splits.train_y)
    val_x, val_y = jnp.asarray(splits.val_x), jnp.asarray(splits.val_y)
    state, h = progress.state, progress.history
    start = time.perf_counter()
    epoch_fn = train_epoch.lower(state, train_x, train_y, orders[0]).compile()
    progress.compile_seconds = time.perf_counter() - start
    for epoch in range(progress.epoch, cfg.train.epochs):
        start = time.perf_counter()
        state, metrics = epoch_fn(state, train_x, train_y, orders[epoch])
        val = evaluate(state.params, state.apply_fn, val_x, val_y)
        metrics, val = jax.device_get((metrics, val))
        h.epoch_seconds.append(time.perf_counter() - start)
        h.train_scores.append(float(metrics["acc"]))
        h.train_loss.append(float(metrics["loss"]))
        h.val_scores.append(float(val["acc"]))
        h.val_loss.append(float(val["loss"]))
        progress.state, progress.epoch = state, epoch + 1
        if not metrics["finite"]:
            progress.status = "diverged"
        elif h.val_scores[-1] > h.best_val:
            h.best_val, h.best_epoch = h.val_scores[-1], epoch + 1
            progress.best_params = _copy(state.params)
        if on_epoch is not None:
            on_epoch(progress)
        if progress.status == "diverged":
            return progress
    progress.status = "complete"
    return progress


def test_accuracy(progress: Progress, splits: data_lib.Splits) -> float | None:
    """Test accuracy of the best-validation parameters (None if no epoch ended finite)."""
    if progress.history.best_epoch is None:
        return None
    out = evaluate(progress.best_params, progress.state.apply_fn, jnp.asarray(splits.test_x), jnp.asarray(splits.test_y))
    return float(jax.device_get(out["acc"]))
