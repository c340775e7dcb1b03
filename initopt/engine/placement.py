"""Where a plan's arrays live: a 1D mesh over the devices, the trial axis sharded across it,
shared data replicated on it, and the way back to the host (an all-gather across processes)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

TRIAL_AXIS = "trials"


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


def stack_trees(trees):
    """Stacks pytrees of equal structure on a new leading (trial) axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


@jax.jit
def take(tree_T, t):
    """Trial ``t`` of a stacked tree, keeping a trial axis of 1 (one program for every ``t``)."""
    return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, t, keepdims=True), tree_T)


@jax.jit
def concatenate(trees):
    """Trees with a trial axis joined along it (the inverse of :func:`take`)."""
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *trees)
