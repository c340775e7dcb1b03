"""Per-layer instruments recorded inside the compiled epoch: what the layers do during training.

Every record, per trial and per kernel layer (each Dense and Conv kernel, named by its module path):
- ``grad_norm``: the Frobenius norm of the step's kernel gradient;
- ``update_ratio``: ``log10(std(update) / std(W))``, the update of that step against the
  weights before it (CS231n's rule of thumb: about -3);
- ``dist_from_init``: ``||W - W0|| / ||W0||``;
- ``weight_var``: ``Var(W)``;
- ``preact_var``: the variance of the layer's pre-activations on a fixed probe batch
  (the first 1024 validation images);
- ``dead_fraction``: for relu, the fraction of the layer's units (a Conv's: each position and
  channel) that are zero on every probe image (NaN for other activations and for a user's model,
  whose activations are its own; the logits have no activation, so NaN there).
"""

from __future__ import annotations

import jax.numpy as jnp

QUANTITIES = ("grad_norm", "update_ratio", "dist_from_init", "weight_var", "preact_var", "dead_fraction")
DEAD_ACTIVATIONS = ("relu",)  # units of these are exactly zero for every non-positive input
PROBE_SIZE = 1024
DEFAULT_RECORDS = 4  # per epoch


def record(params_before, params_after, grads, params0, probe_x_PxD, net, dead_units: bool) -> dict:
    """The instruments of one step (arrays of shape ``(layers,)``); ``net``: the
    :class:`initopt.nn.networks.Network`."""
    kernels = net.kernels
    w_before, w_after = kernels(params_before), kernels(params_after)
    _, preacts = net.preacts(params_after, probe_x_PxD)
    n = len(w_after)

    def dead(i, z):
        if not dead_units or i == n - 1:
            return jnp.float32(jnp.nan)
        return jnp.mean(jnp.all(z <= 0, axis=0).astype(jnp.float32))

    out = {
        "grad_norm": [jnp.sqrt(jnp.sum(jnp.square(g))) for g in kernels(grads)],
        "update_ratio": [jnp.log10(jnp.std(a - b) / jnp.std(b)) for a, b in zip(w_after, w_before)],
        "dist_from_init": [jnp.linalg.norm(w - w0) / jnp.linalg.norm(w0) for w, w0 in zip(w_after, kernels(params0))],
        "weight_var": [jnp.var(w) for w in w_after],
        "preact_var": [jnp.var(z) for z in preacts],
        "dead_fraction": [dead(i, z) for i, z in enumerate(preacts)],
    }
    return {k: jnp.stack([jnp.asarray(v, jnp.float32) for v in vals]) for k, vals in out.items()}


def blocks(steps_per_epoch: int, n_records: int) -> tuple[int, int]:
    """(records, steps per block): an epoch runs ``records`` blocks, each recorded after its last
    step, then the remaining ``steps_per_epoch - records * block`` steps unrecorded."""
    n = min(n_records, steps_per_epoch)
    return n, (steps_per_epoch // n if n else 0)


def record_steps(steps_per_epoch: int, n_records: int) -> list[int]:
    """The 1-based step within an epoch after which each record is taken."""
    n, block = blocks(steps_per_epoch, n_records)
    return [block * (r + 1) for r in range(n)]
