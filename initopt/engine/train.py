"""Training: the loss, a jitted epoch over a batch of trials, jitted evaluation, and the one loop.

The training split lives on the device; an epoch is one call that gathers each
trial's batches from precomputed indices (``lax.scan``), so there is no per-step
Python work. A convolutional network is the exception: XLA:CPU runs a convolution
inside a loop more than ten times slower than outside one, so its epoch is a Python
loop over programs of :data:`STEPS_PER_CALL` unrolled steps (faster than a program
per step: ``benchmarks/cnn_speed.py``), with the same steps, records and metrics. Every array of the state has a leading trial axis ``T``; a run of
one trial runs the unbatched kernel (the same numbers as a lone model), more
trials run it vmapped. One set of rules for every ``T``: a trial whose loss or
parameters turn non-finite is marked diverged at that epoch and keeps its
best-validation parameters; the loop stops early only when every trial has.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from initopt import data as data_lib
from initopt.engine import budget, instruments
from initopt.engine import trials as trials_lib
from initopt.engine.trials import Plan
from initopt.nn import networks
from initopt.runtime import compiles


def loss_and_accuracy(params, apply_fn, x_BxD, y_B):
    logits_BxC = apply_fn(params, x_BxD)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits_BxC, y_B).mean()
    return loss, (jnp.argmax(logits_BxC, -1) == y_B).mean()


def train_step(state: TrainState, x_BxD, y_B):
    """One update; returns the new state and (loss, accuracy) of the batch."""
    grad_fn = jax.value_and_grad(loss_and_accuracy, has_aux=True)
    (loss, acc), grads = grad_fn(state.params, state.apply_fn, x_BxD, y_B)
    return state.apply_gradients(grads=grads), (loss, acc)


def _finite(loss_S, params):
    return jnp.isfinite(loss_S).all() & jnp.all(jnp.array([jnp.isfinite(p).all() for p in jax.tree.leaves(params)]))


def _lr(state):
    return getattr(state.opt_state, "learning_rate", jnp.float32(jnp.nan))


def _recorded_step(state, train_x_NxD, train_y_N, idx_B, params0, probe_x_PxD, dead_units: bool):
    """One update followed by the instruments' record of it."""
    grad_fn = jax.value_and_grad(loss_and_accuracy, has_aux=True)
    (loss, acc), grads = grad_fn(state.params, state.apply_fn, train_x_NxD[idx_B], train_y_N[idx_B])
    before = state.params
    state = state.apply_gradients(grads=grads)
    rec = instruments.record(before, state.params, grads, params0, probe_x_PxD, state.apply_fn, dead_units)
    return state, (loss, acc, rec)


def epoch_kernel(state: TrainState, train_x_NxD, train_y_N, order_SxB, params0=None, probe_x_PxD=None,
                 n_records: int = 0, dead_units: bool = False):
    """All ``S`` steps of one trial's epoch; batch ``s`` is ``train[order[s]]``. Metrics are batch means.

    With ``n_records`` > 0 the steps run in ``n_records`` blocks of ``S // n_records``; after the
    last step of each block the instruments (:mod:`initopt.engine.instruments`) are recorded, relative
    to the initial parameters ``params0`` and on the probe batch, with no host round trip.
    """

    def step(state, idx_B):
        return train_step(state, train_x_NxD[idx_B], train_y_N[idx_B])

    lr = _lr
    n_steps = order_SxB.shape[0]
    n_records, block = instruments.blocks(n_steps, n_records)
    if n_records == 0:
        state, (loss_S, acc_S) = jax.lax.scan(step, state, order_SxB)
        return state, {"loss": loss_S.mean(), "acc": acc_S.mean(), "finite": _finite(loss_S, state.params),
                       "lr": lr(state)}

    blocks_RxKxB = order_SxB[: n_records * block].reshape(n_records, block, -1)

    def recorded_block(state, idx_KxB):
        state, (loss_K, acc_K) = jax.lax.scan(step, state, idx_KxB[:-1])
        state, (loss, acc, rec) = _recorded_step(state, train_x_NxD, train_y_N, idx_KxB[-1], params0, probe_x_PxD,
                                                 dead_units)
        return state, (jnp.concatenate([loss_K, loss[None]]), jnp.concatenate([acc_K, acc[None]]), rec)

    state, (loss_RxK, acc_RxK, records) = jax.lax.scan(recorded_block, state, blocks_RxKxB)
    state, (loss_rest, acc_rest) = jax.lax.scan(step, state, order_SxB[n_records * block:])
    loss_S = jnp.concatenate([loss_RxK.reshape(-1), loss_rest])
    acc_S = jnp.concatenate([acc_RxK.reshape(-1), acc_rest])
    return state, {"loss": loss_S.mean(), "acc": acc_S.mean(), "finite": _finite(loss_S, state.params),
                   "lr": lr(state), "instruments": records}


def eval_kernel(params, apply_fn, x_NxD, y_N):
    """Accuracy and mean loss on a whole split."""
    loss, acc = loss_and_accuracy(params, apply_fn, x_NxD, y_N)
    return {"loss": loss, "acc": acc}


def over_trials(kernel, in_axes):
    """``kernel`` on arguments with a leading trial axis where ``in_axes`` is 0: vmapped for
    ``T > 1``; for ``T = 1`` the axis is dropped and added back, so a lone trial runs the
    unbatched program (and gives a lone model's numbers)."""

    def batched(*args):
        n_trials = next(jax.tree.leaves(a)[0].shape[0] for a, ax in zip(args, in_axes) if ax == 0)
        if n_trials > 1:
            return jax.vmap(kernel, in_axes=in_axes)(*args)
        squeeze = [jax.tree.map(lambda x: x[0], a) if ax == 0 else a for a, ax in zip(args, in_axes)]
        return jax.tree.map(lambda x: x[None], kernel(*squeeze))

    return batched


@functools.partial(jax.jit, donate_argnums=0, static_argnames=("n_records", "dead_units"))
def train_epoch(state_T: TrainState, train_x_NxD, train_y_N, order_TxSxB, params0_T=None, probe_x_PxD=None,
                n_records: int = 0, dead_units: bool = False):
    """One epoch of every trial (the data shared): new states and per-trial metrics (and instruments)."""
    kernel = functools.partial(epoch_kernel, n_records=n_records, dead_units=dead_units)
    return over_trials(kernel, (0, None, None, 0, 0, None))(state_T, train_x_NxD, train_y_N, order_TxSxB,
                                                             params0_T, probe_x_PxD)


STEPS_PER_CALL = 4  # a convolutional network's unrolled steps per program (4 and 10 measured the same)


def steps_kernel(state: TrainState, train_x_NxD, train_y_N, order_KxB):
    """``K`` steps unrolled (no loop in the program), with their batch metrics and the last rate."""
    losses, accs = [], []
    for idx_B in order_KxB:
        state, (loss, acc) = train_step(state, train_x_NxD[idx_B], train_y_N[idx_B])
        losses.append(loss)
        accs.append(acc)
    return state, {"loss": jnp.stack(losses), "acc": jnp.stack(accs), "lr": _lr(state)}


@functools.partial(jax.jit, donate_argnums=0, compiler_options=networks.CONV_COMPILER_OPTIONS)
def train_steps(state_T: TrainState, train_x_NxD, train_y_N, order_TxKxB):
    return over_trials(steps_kernel, (0, None, None, 0))(state_T, train_x_NxD, train_y_N, order_TxKxB)


@functools.partial(jax.jit, donate_argnums=0, static_argnames="dead_units",
                   compiler_options=networks.CONV_COMPILER_OPTIONS)
def train_recorded_step(state_T: TrainState, train_x_NxD, train_y_N, order_TxB, params0_T, probe_x_PxD,
                        dead_units: bool):
    def kernel(state, x, y, idx_B, params0, probe):
        state, (loss, acc, rec) = _recorded_step(state, x, y, idx_B, params0, probe, dead_units)
        return state, {"loss": loss[None], "acc": acc[None], "lr": _lr(state), "instruments": rec}

    return over_trials(kernel, (0, None, None, 0, 0, None))(state_T, train_x_NxD, train_y_N, order_TxB, params0_T,
                                                            probe_x_PxD)


@jax.jit
def all_finite(params_T):
    """Per trial: whether every parameter is finite."""
    leaves = [jnp.isfinite(p).reshape(p.shape[0], -1).all(axis=1) for p in jax.tree.leaves(params_T)]
    return jnp.stack(leaves).all(axis=0)


@jax.jit
def _take(tree_T, t):
    """Trial ``t`` of a stacked tree, keeping a trial axis of 1 (one program for every ``t``)."""
    return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, t, keepdims=True), tree_T)


@jax.jit
def _concatenate(trees):
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *trees)


def stepped_epoch(state_T: TrainState, train_x, train_y, order_TxSxB: np.ndarray, mesh, params0_T=None, probe=None,
                  n_records: int = 0, dead_units: bool = False):
    """:func:`train_epoch`'s steps, records and metrics for a convolutional network: programs of
    :data:`STEPS_PER_CALL` unrolled steps, single steps to reach each recorded step, which runs
    with its record. ``order_TxSxB``: host positions, placed per call (slicing a device array
    would compile a program per offset). On one device the trials train one after another: a
    vmapped convolution (a grouped one for XLA) ran 3.5 times slower per trial than a lone one."""
    n_trials = order_TxSxB.shape[0]
    if n_trials > 1 and mesh.devices.size == 1:
        parts = [stepped_epoch(_take(state_T, t), train_x, train_y, order_TxSxB[t:t + 1], mesh,
                               None if params0_T is None else _take(params0_T, t), probe, n_records, dead_units)
                 for t in range(n_trials)]
        state_T = _concatenate([p[0] for p in parts])
        return state_T, jax.tree.map(lambda *leaves: np.concatenate(leaves), *[p[1] for p in parts])
    n_steps = order_TxSxB.shape[1]
    n_rec, block = instruments.blocks(n_steps, n_records)
    recorded = [block * (r + 1) - 1 for r in range(n_rec)]  # 0-based steps
    outs, records, s = [], [], 0
    for stop in [*recorded, n_steps]:
        while s < stop:
            k = STEPS_PER_CALL if stop - s >= STEPS_PER_CALL else 1
            state_T, out = train_steps(state_T, train_x, train_y, trials_lib.shard_trials(order_TxSxB[:, s:s + k], mesh))
            outs.append(out)
            s += k
        if s < n_steps:  # the recorded step
            state_T, out = train_recorded_step(state_T, train_x, train_y, trials_lib.shard_trials(order_TxSxB[:, s], mesh),
                                               params0_T, probe, dead_units=dead_units)
            records.append(out.pop("instruments"))
            outs.append(out)
            s += 1
    outs, records, finite = trials_lib.to_host((outs, records, all_finite(state_T.params)))
    loss_TxS = np.concatenate([o["loss"] for o in outs], axis=1)
    acc_TxS = np.concatenate([o["acc"] for o in outs], axis=1)
    metrics = {"loss": loss_TxS.mean(1), "acc": acc_TxS.mean(1), "finite": finite & np.isfinite(loss_TxS).all(1),
               "lr": outs[-1]["lr"]}
    if n_rec:
        metrics["instruments"] = {q: np.stack([r[q] for r in records], axis=1) for q in records[0]}
    return state_T, metrics


def _evaluate(params_T, apply_fn, x_NxD, y_N):
    """Per-trial accuracy and loss on a split."""
    return over_trials(eval_kernel, (0, None, None, None))(params_T, apply_fn, x_NxD, y_N)


evaluate = jax.jit(_evaluate, static_argnames="apply_fn")
# a convolutional network's chunks with its training steps' options: 1.6x faster (2c2d, 1000 images)
evaluate_conv = jax.jit(_evaluate, static_argnames="apply_fn", compiler_options=networks.CONV_COMPILER_OPTIONS)


class Evaluator:
    """A split on the devices, evaluated per trial: in one program, or for a convolutional network
    in chunks of ``budget.EVAL_CHUNK`` (a whole split's feature maps would take gigabytes)."""

    def __init__(self, net, x_NxD: np.ndarray, y_N: np.ndarray, mesh):
        size = budget.EVAL_CHUNK if net.convolutional else max(len(y_N), 1)
        self.evaluate = evaluate_conv if net.convolutional else evaluate
        self.chunks = [(trials_lib.replicate(x_NxD[i:i + size], mesh), trials_lib.replicate(y_N[i:i + size], mesh),
                        len(y_N[i:i + size])) for i in range(0, len(y_N), size)]

    def __call__(self, params_T, net):
        """Per trial ``{"loss", "acc"}``: device arrays for one chunk, else host means weighted by size."""
        if len(self.chunks) == 1:
            x, y, _ = self.chunks[0]
            return self.evaluate(params_T, net, x, y)
        outs = trials_lib.to_host([self.evaluate(params_T, net, x, y) for x, y, _ in self.chunks])
        n = np.asarray([c[2] for c in self.chunks], np.float64)[:, None]
        return {k: (np.stack([o[k] for o in outs]) * n).sum(0) / n.sum() for k in ("loss", "acc")}


@jax.jit
def keep_best(improved_T, best_T, params_T):
    """Per trial: the new parameters where validation improved, else the kept ones."""

    def pick(b, p):
        return jnp.where(improved_T.reshape((-1,) + (1,) * (p.ndim - 1)), p, b)

    return jax.tree.map(pick, best_T, params_T)


@dataclasses.dataclass
class History:
    """Per-trial metrics (``[trial][epoch]``); lists grow as epochs complete."""

    train_scores: list[list[float]]
    train_loss: list[list[float]]
    val_scores: list[list[float]]
    val_loss: list[list[float]]
    lr: list[list[float]]  # the learning rate of each epoch's last update
    best_epoch: list[int | None]  # 1-based; None until an epoch ends finite
    best_val: list[float | None]
    diverged_epoch: list[int | None]  # the epoch whose loss or parameters turned non-finite
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    instrument_steps: list[int] = dataclasses.field(default_factory=list)  # global step of each record
    instruments: dict = dataclasses.field(default_factory=dict)  # quantity -> [trial][record][layer]

    @classmethod
    def empty(cls, n_trials: int) -> "History":
        lists = [[[] for _ in range(n_trials)] for _ in range(5)]
        return cls(*lists, best_epoch=[None] * n_trials, best_val=[None] * n_trials,
                   diverged_epoch=[None] * n_trials,
                   instruments={q: [[] for _ in range(n_trials)] for q in instruments.QUANTITIES})

    def trial_status(self, t: int, finished: bool) -> str:
        if self.diverged_epoch[t] is not None:
            return "diverged"
        return "complete" if finished else "running"


@dataclasses.dataclass
class Progress:
    """What the loop resumes from and reports after each epoch."""

    state: TrainState
    best_params: object
    history: History
    params0: object  # every trial's initial parameters (the instruments' reference)
    epoch: int  # epochs completed
    status: str = "running"  # running / complete (some trial completed) / diverged (all did) / interrupted
    compile_seconds: float = 0.0


def initial_progress(plan: Plan, x_example: np.ndarray, params_T=None) -> Progress:
    state = trials_lib.initial_state(plan, x_example, params_T)
    best = jax.tree.map(jnp.copy, state.params)  # survives the donation of the state to the first epoch
    # The initial parameters are the first best ones: one copy serves both (keep_best makes new arrays).
    return Progress(state=state, best_params=best, history=History.empty(plan.n_trials), params0=best, epoch=0)


def fit(plan: Plan, splits: data_lib.Splits, progress: Progress,
        on_epoch: Callable[[Progress], None] | None = None) -> Progress:
    """Trains every trial from ``progress.epoch`` to ``plan.epochs``; keeps each one's best-validation
    parameters. ``on_epoch`` runs after each completed epoch (checkpointing, progress display)."""
    n_trials = plan.n_trials
    orders = trials_lib.batch_orders(plan, len(splits.train_y))
    mesh = trials_lib.trial_mesh(n_trials)
    # Host (numpy) values go to the mesh: identical on every process, as multi-process runs need.
    train_x, train_y = trials_lib.replicate(splits.train_x, mesh), trials_lib.replicate(splits.train_y, mesh)
    net = progress.state.apply_fn
    validation = Evaluator(net, splits.val_x, splits.val_y, mesh)
    state = trials_lib.shard_trials(trials_lib.to_host(progress.state), mesh)
    best = trials_lib.shard_trials(trials_lib.to_host(progress.best_params), mesh)
    h = progress.history
    n_records = plan.instruments
    params0 = trials_lib.shard_trials(trials_lib.to_host(progress.params0), mesh) if n_records else None
    probe = trials_lib.replicate(splits.val_x[: instruments.PROBE_SIZE], mesh) if n_records else None
    steps = trials_lib.steps_per_epoch(len(splits.train_y), plan.batch_size)
    within = instruments.record_steps(steps, n_records)
    start_mark = compiles.mark()
    for epoch in range(progress.epoch, plan.epochs):
        start, compiled_before = time.perf_counter(), compiles.since(start_mark)["seconds"]
        order_TxSxB = np.stack([orders[t.seed][epoch] for t in plan.trials])
        dead_units = net.builtin and plan.model.act in instruments.DEAD_ACTIVATIONS
        if net.convolutional:
            state, metrics = stepped_epoch(state, train_x, train_y, order_TxSxB, mesh, params0, probe, n_records,
                                           dead_units)
        else:
            state, metrics = train_epoch(state, train_x, train_y, trials_lib.shard_trials(order_TxSxB, mesh), params0,
                                         probe, n_records=n_records, dead_units=dead_units)
        val = validation(state.params, net)
        metrics, val = trials_lib.to_host((metrics, val))
        progress.compile_seconds = compiles.since(start_mark)["seconds"]
        h.epoch_seconds.append(time.perf_counter() - start - (progress.compile_seconds - compiled_before))
        if n_records:
            h.instrument_steps.extend(epoch * steps + k for k in within)
            for q, values_TxRxL in metrics["instruments"].items():
                for t in range(n_trials):
                    h.instruments[q][t].extend(np.asarray(values_TxRxL[t], np.float64).tolist())
        improved = np.zeros(n_trials, bool)
        for t in range(n_trials):
            for values, new in ((h.train_scores, metrics["acc"]), (h.train_loss, metrics["loss"]),
                                (h.val_scores, val["acc"]), (h.val_loss, val["loss"]), (h.lr, metrics["lr"])):
                values[t].append(float(new[t]))
            if h.diverged_epoch[t] is not None:
                continue
            if not metrics["finite"][t]:
                h.diverged_epoch[t] = epoch + 1
            elif h.best_val[t] is None or h.val_scores[t][-1] > h.best_val[t]:
                h.best_val[t], h.best_epoch[t] = h.val_scores[t][-1], epoch + 1
                improved[t] = True
        if improved.any():
            best = keep_best(trials_lib.shard_trials(improved, mesh), best, state.params)
        progress.state, progress.best_params, progress.epoch = state, best, epoch + 1
        all_diverged = all(d is not None for d in h.diverged_epoch)
        if all_diverged:
            progress.status = "diverged"
        if on_epoch is not None:
            on_epoch(progress)
        if all_diverged:
            return progress
    progress.status = "complete"
    return progress


def test_accuracies(progress: Progress, splits: data_lib.Splits) -> list[float | None]:
    """Per trial: test accuracy of its best-validation parameters (None if no epoch of it ended finite)."""
    mesh = trials_lib.trial_mesh(len(progress.history.best_epoch))
    net = progress.state.apply_fn
    out = Evaluator(net, splits.test_x, splits.test_y, mesh)(progress.best_params, net)
    accs = np.asarray(trials_lib.to_host(out["acc"]))
    return [float(a) if progress.history.best_epoch[t] is not None else None for t, a in enumerate(accs)]
