"""Init statistics: per-layer weights, pre-activations and kernel gradients on one batch."""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from initopt.activations import second_moment
from initopt.config import ModelConfig
from initopt.initializers import weight_variances
from initopt.model import REFERENCE_HIDDEN, init_cells, init_params, make_model

# The reference experiment's grid: (init, scale) x activation.
GRID_INITS = (
    ("constant", 0.005),
    ("normal", 0.01),
    ("normal", 0.1),
    ("equal_variance", None),
    ("xavier", None),
    ("kaiming", None),
)
GRID_ACTS = ("identity", "tanh", "relu")
REFERENCE_SEED = 42  # the reference's PRNGKey of model.init


def kernels(params) -> list[jax.Array]:
    """The Dense kernels in layer order."""
    layers = params["params"]
    return [layers[f"Dense_{i}"]["kernel"] for i in range(len(layers))]


def _layer_arrays(model, params, x_BxD, y_B):
    def loss_fn(p):
        logits, preacts = model.apply(p, x_BxD, return_preacts=True)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y_B).mean()
        return loss, preacts

    (loss, preacts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return {"weights": kernels(params), "acts": preacts, "grads": kernels(grads), "loss": loss}


@functools.partial(jax.jit, static_argnames=("hidden", "act"))
def layer_arrays(hidden: tuple[int, ...], act: str, params, x_BxD, y_B):
    """Weights, pre-activations (hidden layers and logits) and kernel gradients of the mean CE."""
    return _layer_arrays(make_model(hidden, act), params, x_BxD, y_B)


@functools.partial(jax.jit, static_argnames=("hidden", "acts"))
def grid_layer_arrays(hidden: tuple[int, ...], acts: tuple[str, ...], params_per_row, x_BxD, y_B):
    """:func:`layer_arrays` for many cells in one program: ``params_per_row[a]`` holds parameter
    trees for activation ``acts[a]``, each stacked on a leading axis; a row's trees are joined."""
    out = []
    for act, trees in zip(acts, params_per_row):
        model = make_model(hidden, act)
        params_I = jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *trees)
        out.append(jax.lax.map(lambda p, m=model: _layer_arrays(m, p, x_BxD, y_B), params_I))
    return out


def predicted_act_vars(model_cfg: ModelConfig, x_BxD: np.ndarray) -> list[float | None]:
    """Mean-field prediction of each pre-activation's variance from the init's weight variance.

    ``Var(z_0) = fan_in * Var(W_0) * mean(x^2)`` and
    ``Var(z_l) = fan_in * Var(W_l) * E[phi(z)^2], z ~ N(0, Var(z_{l-1}))`` (zero biases,
    independent zero-mean weights). None for rules with no such theory (constant).
    """
    sizes = [x_BxD.shape[1], *model_cfg.hidden, 10]
    w_vars = weight_variances(model_cfg.init, model_cfg.act, sizes, model_cfg.scale)
    q_in = float(np.mean(np.square(x_BxD, dtype=np.float64)))
    out: list[float | None] = []
    for i, w_var in enumerate(w_vars):
        if w_var is None:
            return [None] * len(w_vars)
        second = q_in if i == 0 else second_moment(model_cfg.act, out[-1])
        out.append(sizes[i] * w_var * second)
    return out


@dataclasses.dataclass
class InitStats:
    """Per-layer summaries (JSON-ready) and the raw flattened arrays (for histograms)."""

    summary: dict
    arrays: dict[str, list[np.ndarray]]


def summarize(model_cfg: ModelConfig, arrays: dict, x_BxD: np.ndarray) -> InitStats:
    """Host-side statistics with ``np.var`` (ddof=0, float32) as in the reference."""
    arrays = jax.device_get(arrays)
    flat = {k: [np.asarray(a, np.float32).reshape(-1) for a in arrays[k]] for k in ("weights", "acts", "grads")}
    summary: dict = {
        "init": model_cfg.init,
        "scale": model_cfg.scale,
        "act": model_cfg.act,
        "hidden": list(model_cfg.hidden),
        "layers": [f"Layer {2 * i}" for i in range(len(flat["weights"]))],
        "loss": float(arrays["loss"]),
    }
    for key, prefix in (("weights", "weight"), ("acts", "act"), ("grads", "grad")):
        summary[f"{prefix}_var"] = [float(np.var(a)) for a in flat[key]]
        summary[f"{prefix}_mean"] = [float(np.mean(a)) for a in flat[key]]
        summary[f"{prefix}_std"] = [float(np.std(a)) for a in flat[key]]
    summary["act_var_predicted"] = predicted_act_vars(model_cfg, x_BxD)
    return InitStats(summary, flat)


def init_stats(model_cfg: ModelConfig, x_BxD: np.ndarray, y_B: np.ndarray, seed: int = 42) -> InitStats:
    """Statistics of one initializer and activation on the example batch."""
    params = init_params(model_cfg, x_BxD, seed)
    arrays = layer_arrays(tuple(model_cfg.hidden), model_cfg.act, params, jnp.asarray(x_BxD), jnp.asarray(y_B))
    return summarize(model_cfg, arrays, x_BxD)


def _stats_of_cells(rows: list[list[tuple[ModelConfig, int]]], x_BxD, y_B) -> list[list[InitStats]]:
    """Statistics of (config, seed) cells, one row per activation, in one compiled program."""
    hidden = tuple(rows[0][0][0].hidden)
    acts = tuple(row[0][0].act for row in rows)
    # One init cell per run of equal configs in a row (--seeds: the whole row), stacked over its seeds.
    row_cells = [[(cfg, [seed for _, seed in run]) for cfg, run in itertools.groupby(row, key=lambda c: c[0])]
                 for row in rows]
    params = iter(init_cells([cell for cells in row_cells for cell in cells], x_BxD))
    per_row = [[next(params) for _ in cells] for cells in row_cells]
    # To the host once: indexing device arrays per cell would compile a slicing program per shape.
    out = jax.device_get(grid_layer_arrays(hidden, acts, per_row, jnp.asarray(x_BxD), jnp.asarray(y_B)))
    return [[summarize(cfg, jax.tree.map(lambda a, i=i: a[i], arrays_I), x_BxD) for i, (cfg, _) in enumerate(row)]
            for row, arrays_I in zip(rows, out)]


def grid_stats(
    hidden: tuple[int, ...], x_BxD: np.ndarray, y_B: np.ndarray, seed: int = 42,
    inits=GRID_INITS, acts=GRID_ACTS,
) -> list[InitStats]:
    """Every (init, activation) cell, computed by one compiled program (plus the inits)."""
    rows = [[(ModelConfig(hidden=hidden, act=act, init=init, scale=scale), seed) for init, scale in inits] for act in acts]
    return [cell for row in _stats_of_cells(rows, x_BxD, y_B) for cell in row]


def seeds_stats(model_cfg: ModelConfig, x_BxD: np.ndarray, y_B: np.ndarray, seeds: list[int]) -> InitStats:
    """Statistics for several initialisations (one compiled program): the first seed's full
    summary and arrays, plus every seed's per-layer variances with their mean and std."""
    (per_seed,) = _stats_of_cells([[(model_cfg, s) for s in seeds]], x_BxD, y_B)
    first = per_seed[0]
    summary = dict(first.summary, seeds=list(seeds))
    for key in ("weight_var", "act_var", "grad_var"):
        values = np.asarray([p.summary[key] for p in per_seed])
        summary[f"{key}_per_seed"] = values.tolist()
        summary[f"{key}_seed_mean"] = values.mean(0).tolist()
        summary[f"{key}_seed_std"] = values.std(0, ddof=1).tolist() if len(seeds) > 1 else [0.0] * values.shape[1]
    return InitStats(summary, first.arrays)


def run_name(init: str, scale, act: str, hidden, prng: str, seed: int) -> str:
    """The run directory: the initializer, its scale, the activation and what differs from the reference."""
    name = init + (f"-{scale:g}" if scale is not None else "") + (f"-{act}" if act else "")
    if tuple(hidden) != REFERENCE_HIDDEN:
        name += "-h" + "_".join(map(str, hidden))
    if prng != "legacy":
        name += f"-{prng}"
    if seed != REFERENCE_SEED:
        name += f"-seed{seed}"
    return name
