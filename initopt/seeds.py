"""Many seeds as one program: stacked states, a vmapped epoch, sharding, and the statistics.

Seed ``i`` of a run with base seed ``s`` uses ``s + i`` for both its initial
parameters (``PRNGKey(s + i)``) and its batch order; every optimizer of a
comparison gets the same seeds, so their results pair up. The seed axis is
sharded over all devices with a ``Mesh`` and ``NamedSharding``.
"""

from __future__ import annotations

import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from initopt import data as data_lib
from initopt.config import Config
from initopt.intervals import mean_ci95, paired_comparisons, t_quantile_975  # noqa: F401  (the seeds API)
from initopt.stats import init_params, stack_trees
from initopt.train import History, Progress, epoch_kernel, eval_kernel, make_state

SEED_AXIS = "seeds"


def to_host(tree):
    """Numpy copies of (possibly sharded) arrays; across processes an all-gather (collective:
    every process must call it)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def gather(a):
        if not isinstance(a, jax.Array) or a.is_fully_addressable:
            return jax.device_get(a)
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))

    return jax.tree.map(gather, tree)


def seed_values(cfg: Config, n_seeds: int) -> list[int]:
    return [cfg.train.seed + i for i in range(n_seeds)]


def seed_mesh(n_seeds: int) -> Mesh:
    """A 1D mesh over as many devices as divide the seed count evenly."""
    devices = jax.devices()
    n = max(d for d in range(1, len(devices) + 1) if n_seeds % d == 0)
    return Mesh(np.asarray(devices[:n]), (SEED_AXIS,))


def shard_seeds(tree, mesh: Mesh):
    """Places a tree with a leading seed axis across the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, P(SEED_AXIS)))


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, NamedSharding(mesh, P()))


def initial_progress(cfg: Config, x_example, optimizer: str, n_seeds: int) -> Progress:
    """Stacked parameters of every seed and a stacked optimizer state."""
    params = stack_trees([init_params(cfg.model, x_example, s) for s in seed_values(cfg, n_seeds)])
    state = jax.vmap(lambda p: make_state(cfg, p, optimizer))(params)
    best = jax.tree.map(jnp.copy, params)
    return Progress(state=state, best_params=best, history=_empty_seed_history(n_seeds), epoch=0)


def _empty_seed_history(n_seeds: int) -> History:
    """A History whose lists hold one list per seed; best_epoch / best_val are per seed too."""
    per_seed = [[[] for _ in range(n_seeds)] for _ in range(4)]
    return History(*per_seed, best_epoch=[None] * n_seeds, best_val=[-1.0] * n_seeds,
                   diverged_epoch=[None] * n_seeds)


@functools.partial(jax.jit, donate_argnums=0)
def train_epoch_seeds(state_S, train_x_NxD, train_y_N, order_SxTxB):
    """One epoch of every seed: ``train_epoch`` vmapped over the seed axis (data shared)."""
    return jax.vmap(epoch_kernel, in_axes=(0, None, None, 0))(state_S, train_x_NxD, train_y_N, order_SxTxB)


@functools.partial(jax.jit, static_argnames="apply_fn")
def evaluate_seeds(params_S, apply_fn, x_NxD, y_N):
    return jax.vmap(eval_kernel, in_axes=(0, None, None, None))(params_S, apply_fn, x_NxD, y_N)


@jax.jit
def keep_best(improved_S, best_S, params_S):
    """Per seed: the new parameters where validation improved, else the kept ones."""
    def pick(b, p):
        mask = improved_S.reshape((-1,) + (1,) * (p.ndim - 1))
        return jnp.where(mask, p, b)

    return jax.tree.map(pick, best_S, params_S)


def fit_seeds(
    cfg: Config,
    splits: data_lib.Splits,
    progress: Progress,
    n_seeds: int,
    on_epoch: Callable[[Progress], None] | None = None,
) -> Progress:
    """Trains all seeds together. A seed whose loss turns non-finite is marked diverged and
    keeps its best parameters; the run stops early only when every seed has diverged."""
    seeds = seed_values(cfg, n_seeds)
    n_train = len(splits.train_y)
    orders = [data_lib.batch_order(n_train, cfg.train.batch_size, cfg.train.epochs, s) for s in seeds]
    mesh = seed_mesh(n_seeds)
    # Host (numpy) values go to the mesh: identical on every process, as multi-process runs need.
    train_x, train_y = replicate(splits.train_x, mesh), replicate(splits.train_y, mesh)
    val_x, val_y = replicate(splits.val_x, mesh), replicate(splits.val_y, mesh)
    state = shard_seeds(to_host(progress.state), mesh)
    best = shard_seeds(to_host(progress.best_params), mesh)
    h = progress.history

    def epoch_orders(epoch):
        return shard_seeds(np.stack([o[epoch] for o in orders]).astype(np.int32), mesh)

    start = time.perf_counter()
    epoch_fn = train_epoch_seeds.lower(state, train_x, train_y, epoch_orders(progress.epoch)).compile()
    progress.compile_seconds = time.perf_counter() - start
    for epoch in range(progress.epoch, cfg.train.epochs):
        start = time.perf_counter()
        state, metrics = epoch_fn(state, train_x, train_y, epoch_orders(epoch))
        val = evaluate_seeds(state.params, state.apply_fn, val_x, val_y)
        metrics, val = to_host((metrics, val))
        h.epoch_seconds.append(time.perf_counter() - start)
        improved = np.zeros(n_seeds, bool)
        for s in range(n_seeds):
            for name, values in (("train_scores", metrics["acc"]), ("train_loss", metrics["loss"]),
                                 ("val_scores", val["acc"]), ("val_loss", val["loss"])):
                getattr(h, name)[s].append(float(values[s]))
            if h.diverged_epoch[s] is not None:
                continue
            if not metrics["finite"][s]:
                h.diverged_epoch[s] = epoch + 1
            elif h.val_scores[s][-1] > h.best_val[s]:
                h.best_val[s], h.best_epoch[s] = h.val_scores[s][-1], epoch + 1
                improved[s] = True
        if improved.any():
            best = keep_best(shard_seeds(improved, mesh), best, state.params)
        progress.state, progress.best_params, progress.epoch = state, best, epoch + 1
        if all(d is not None for d in h.diverged_epoch):
            progress.status = "diverged"
        if on_epoch is not None:
            on_epoch(progress)
        if progress.status == "diverged":
            return progress
    progress.status = "diverged" if any(d is not None for d in h.diverged_epoch) else "complete"
    return progress


def test_accuracies(progress: Progress, splits: data_lib.Splits) -> list[float | None]:
    """Per seed: test accuracy of its best-validation parameters (None if it never ended an epoch finite)."""
    mesh = seed_mesh(len(progress.history.best_epoch))
    out = evaluate_seeds(progress.best_params, progress.state.apply_fn,
                         replicate(splits.test_x, mesh), replicate(splits.test_y, mesh))
    accs = np.asarray(to_host(out["acc"]))
    return [float(a) if progress.history.best_epoch[s] is not None else None for s, a in enumerate(accs)]
