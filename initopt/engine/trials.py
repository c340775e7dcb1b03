"""A run is a batch of trials: what they are, their stacked state, and the devices they live on.

A trial is (seed, hyperparameters). Seed ``s`` fixes both the initial parameters
(``PRNGKey(s)``) and the batch order; trials of one batch share the optimizer,
the schedule's structure and the model, and differ in seeds and in the values of
float hyperparameters (learning rate, momentum, ...), which are data in the
optimizer state (:mod:`initopt.optim.hyperparams`). Every trial of a batch trains as
one compiled program, its trial axis sharded over all devices with a ``Mesh``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from initopt.config import ModelConfig
from initopt import data as data_lib
from initopt.nn import networks
from initopt.optim import hyperparams as hp_lib
from initopt.optim.optimizer_specs import OptimizerSpec
from initopt.optim.schedules import ScheduleSpec, optax_schedule

TRIAL_AXIS = "trials"


@dataclasses.dataclass(frozen=True)
class Trial:
    seed: int
    hyperparams: tuple[tuple[str, float], ...]  # float hyperparameters, learning_rate included

    @property
    def values(self) -> dict[str, float]:
        return dict(self.hyperparams)

    @property
    def lr(self) -> float:
        return self.values[hp_lib.LEARNING_RATE]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything one compiled training program needs: the structure and the trials."""

    model: ModelConfig
    optimizer: OptimizerSpec
    static: tuple[tuple[str, Any], ...]  # static hyperparameters (flags, integers)
    schedule: ScheduleSpec
    epochs: int
    batch_size: int
    trials: tuple[Trial, ...]
    instruments: int = 0  # records per epoch (0: none)

    @property
    def n_trials(self) -> int:
        return len(self.trials)


def make_trials(seeds: list[int], hyperparams: list[dict[str, float]]) -> tuple[Trial, ...]:
    """Every (hyperparameters, seed) pair, hyperparameters outermost."""
    return tuple(Trial(s, tuple(sorted(h.items()))) for h in hyperparams for s in seeds)


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


def initial_state(plan: Plan, x_example: np.ndarray, params_T=None) -> TrainState:
    """Stacked parameters (``model.init(PRNGKey(seed), example)`` per trial, unless ``params_T``
    gives them, e.g. one initialization scale per trial) and optimizer states."""
    if params_T is None:
        (params_T,) = networks.init_cells([(plan.model, [t.seed for t in plan.trials])], x_example)
    keys = sorted(plan.trials[0].values)
    hp_T = {k: np.asarray([t.values[k] for t in plan.trials], np.float32) for k in keys}
    tx = transformation(plan.optimizer, plan.static, plan.schedule)
    opt_state_T = _init_opt_states(tx, params_T, hp_T)
    return TrainState(step=jnp.zeros(plan.n_trials, jnp.int32), apply_fn=networks.get(plan.model), params=params_T, tx=tx,
                      opt_state=opt_state_T)


def stack_trees(trees):
    """Stacks pytrees of equal structure on a new leading axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def batch_orders(plan: Plan, n_train: int) -> dict[int, np.ndarray]:
    """Per distinct seed: its (epochs, steps, batch) positions into the training split."""
    seeds = sorted({t.seed for t in plan.trials})
    return {s: data_lib.batch_order(n_train, plan.batch_size, plan.epochs, s).astype(np.int32) for s in seeds}


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return data_lib.steps_per_epoch(n_train, batch_size)


# ----------------------------------------------------------------------------- devices
def trial_mesh(n_trials: int) -> Mesh:
    """A 1D mesh over as many devices as divide the trial count evenly."""
    devices = jax.devices()
    n = max(d for d in range(1, len(devices) + 1) if n_trials % d == 0)
    return Mesh(np.asarray(devices[:n]), (TRIAL_AXIS,))


def _plain(tree):
    """Numpy subclasses (the data cache's memory maps) as plain arrays: across processes
    ``device_put`` takes only arrays of the exact numpy type."""
    return jax.tree.map(lambda a: np.asarray(a) if isinstance(a, np.ndarray) else a, tree)


def shard_trials(tree, mesh: Mesh):
    """Places a tree with a leading trial axis across the mesh."""
    return jax.device_put(_plain(tree), NamedSharding(mesh, P(TRIAL_AXIS)))


def replicate(tree, mesh: Mesh):
    return jax.device_put(_plain(tree), NamedSharding(mesh, P()))


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
