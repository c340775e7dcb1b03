"""The jitted kernels of training: a trial's state, its loss, a step, an epoch, an evaluation.

Every array of the state has a leading trial axis ``T``. A plan of one trial runs the
unbatched kernel (a lone model's numbers); more trials run it vmapped
(:func:`over_trials`). An epoch of a dense network is one program: a ``lax.scan``
over precomputed batch indices into the training split, which lives on the device.
A convolutional network's epoch is a Python loop over programs of
:data:`STEPS_PER_CALL` unrolled steps (:func:`stepped_epoch`), with the same steps,
records and metrics, since XLA:CPU runs a convolution inside a loop far slower than
outside one (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from initopt.engine import instruments, placement
from initopt.engine.plan import Plan
from initopt.nn import networks
from initopt.optim import hyperparams as hp_lib
from initopt.optim.optimizer_specs import OptimizerSpec
from initopt.optim.schedules import ScheduleSpec, optax_schedule


# ----------------------------------------------------------------------------- the state
@functools.lru_cache(maxsize=None)
def transformation(optimizer: OptimizerSpec, static: tuple, schedule: ScheduleSpec) -> optax.GradientTransformation:
    """One object per structure, so the compiled epoch is found again for new hyperparameter values."""
    defaults, _ = optimizer.split({})
    defaults = {**defaults, hp_lib.LEARNING_RATE: 1.0}
    return hp_lib.inject(optimizer.factory, optax_schedule(schedule), defaults, static)


@functools.partial(jax.jit, static_argnums=0)
def _init_opt_states(tx: optax.GradientTransformation, params_T, hp_T):
    """Every trial's optimizer state in one program (not one small program per leaf)."""
    return jax.vmap(tx.init)(params_T, hp_T)


def initial_state(plan: Plan, net: networks.Network, x_example: np.ndarray, params_T=None) -> TrainState:
    """Stacked parameters (``model.init(PRNGKey(seed), example)`` per trial, unless ``params_T``
    gives them, e.g. one initialization scale per trial) and optimizer states."""
    if params_T is None:
        (params_T,) = networks.init_cells([(plan.model, [t.seed for t in plan.trials])], x_example)
    keys = sorted(plan.trials[0].values)
    hp_T = {k: np.asarray([t.values[k] for t in plan.trials], np.float32) for k in keys}
    tx = transformation(plan.optimizer, plan.static, plan.schedule)
    return TrainState(step=jnp.zeros(plan.n_trials, jnp.int32), apply_fn=net, params=params_T, tx=tx,
                      opt_state=_init_opt_states(tx, params_T, hp_T))


# ----------------------------------------------------------------------------- one trial's kernels
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

    n_records, block = instruments.blocks(order_SxB.shape[0], n_records)
    if n_records == 0:
        state, (loss_S, acc_S) = jax.lax.scan(step, state, order_SxB)
        return state, {"loss": loss_S.mean(), "acc": acc_S.mean(), "finite": _finite(loss_S, state.params),
                       "lr": _lr(state)}

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
                   "lr": _lr(state), "instruments": records}


def steps_kernel(state: TrainState, train_x_NxD, train_y_N, order_KxB):
    """``K`` steps unrolled (no loop in the program), with their batch metrics and the last rate."""
    losses, accs = [], []
    for idx_B in order_KxB:
        state, (loss, acc) = train_step(state, train_x_NxD[idx_B], train_y_N[idx_B])
        losses.append(loss)
        accs.append(acc)
    return state, {"loss": jnp.stack(losses), "acc": jnp.stack(accs), "lr": _lr(state)}


def eval_kernel(params, apply_fn, x_NxD, y_N):
    """Accuracy and mean loss on a whole split."""
    loss, acc = loss_and_accuracy(params, apply_fn, x_NxD, y_N)
    return {"loss": loss, "acc": acc}


# ----------------------------------------------------------------------------- every trial's programs
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


STEPS_PER_CALL = 4  # a convolutional network's unrolled steps per program


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


def stepped_epoch(state_T: TrainState, train_x, train_y, order_TxSxB: np.ndarray, mesh, params0_T=None, probe=None,
                  n_records: int = 0, dead_units: bool = False, on_steps=None):
    """:func:`train_epoch`'s steps, records and metrics for a convolutional network: programs of
    :data:`STEPS_PER_CALL` unrolled steps, single steps to reach each recorded step, which runs
    with its record. ``order_TxSxB``: host positions, placed per call (slicing a device array
    would compile a program per offset). On one device the trials train one after another,
    since XLA runs a vmapped convolution as a grouped one, far slower per trial than a lone one.
    ``on_steps(k)`` is told of every ``k`` steps done (a trial's, for trials in turn)."""
    n_trials = order_TxSxB.shape[0]
    if n_trials > 1 and mesh.devices.size == 1:
        parts = [stepped_epoch(placement.take(state_T, t), train_x, train_y, order_TxSxB[t:t + 1], mesh,
                               None if params0_T is None else placement.take(params0_T, t), probe, n_records,
                               dead_units, on_steps)
                 for t in range(n_trials)]
        state_T = placement.concatenate([p[0] for p in parts])
        return state_T, jax.tree.map(lambda *leaves: np.concatenate(leaves), *[p[1] for p in parts])
    n_steps = order_TxSxB.shape[1]
    told = on_steps or (lambda k: None)
    n_rec, block = instruments.blocks(n_steps, n_records)
    outs, records, s = [], [], 0
    for stop in [*(block * (r + 1) - 1 for r in range(n_rec)), n_steps]:  # each recorded step (0-based), the end
        while s < stop:
            k = STEPS_PER_CALL if stop - s >= STEPS_PER_CALL else 1
            state_T, out = train_steps(state_T, train_x, train_y, placement.shard_trials(order_TxSxB[:, s:s + k], mesh))
            outs.append(out)
            s += k
            told(k)
        if s < n_steps:  # the recorded step
            state_T, out = train_recorded_step(state_T, train_x, train_y, placement.shard_trials(order_TxSxB[:, s], mesh),
                                               params0_T, probe, dead_units=dead_units)
            records.append(out.pop("instruments"))
            outs.append(out)
            s += 1
            told(1)
    return state_T, _stepped_metrics(state_T, outs, records)


def _stepped_metrics(state_T: TrainState, outs: list, records: list) -> dict:
    """A stepped epoch's programs' outputs as :func:`train_epoch`'s metrics (host arrays)."""
    outs, records, finite = placement.to_host((outs, records, all_finite(state_T.params)))
    loss_TxS = np.concatenate([o["loss"] for o in outs], axis=1)
    acc_TxS = np.concatenate([o["acc"] for o in outs], axis=1)
    metrics = {"loss": loss_TxS.mean(1), "acc": acc_TxS.mean(1), "finite": finite & np.isfinite(loss_TxS).all(1),
               "lr": outs[-1]["lr"]}
    if records:
        metrics["instruments"] = {q: np.stack([r[q] for r in records], axis=1) for q in records[0]}
    return metrics


def _evaluate(params_T, apply_fn, x_NxD, y_N):
    """Per-trial accuracy and loss on a split."""
    return over_trials(eval_kernel, (0, None, None, None))(params_T, apply_fn, x_NxD, y_N)


evaluate = jax.jit(_evaluate, static_argnames="apply_fn")
# a convolutional network's evaluation compiles with its training steps' options
evaluate_conv = jax.jit(_evaluate, static_argnames="apply_fn", compiler_options=networks.CONV_COMPILER_OPTIONS)


@jax.jit
def keep_best(improved_T, best_T, params_T):
    """Per trial: the new parameters where validation improved, else the kept ones."""

    def pick(b, p):
        return jnp.where(improved_T.reshape((-1,) + (1,) * (p.ndim - 1)), p, b)

    return jax.tree.map(pick, best_T, params_T)
