"""Init statistics: per-layer weights, pre-activations and kernel gradients on one batch."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from initopt.config import ModelConfig
from initopt.nn.activations import ACTIVATIONS, second_moment
from initopt.nn.initializers import weight_variances
from initopt.nn.model import MLP, REFERENCE_HIDDEN, init_cells, init_params, kernels, make_model

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



def _layer_arrays(model, params, x_BxD, y_B):
    def loss_fn(p):
        logits, preacts = model.apply(p, x_BxD, return_preacts=True)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y_B).mean()
        return loss, preacts

    (loss, preacts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return {"weights": kernels(params), "acts": preacts, "grads": kernels(grads), "loss": loss}


@functools.partial(jax.jit, static_argnames=("hidden", "act", "classes"))
def layer_arrays(hidden: tuple[int, ...], act: str, params, x_BxD, y_B, classes: int = 10):
    """Weights, pre-activations (hidden layers and logits) and kernel gradients of the mean CE."""
    return _layer_arrays(make_model(hidden, act, num_classes=classes), params, x_BxD, y_B)


@functools.partial(jax.jit, static_argnames=("hidden", "acts", "classes"))
def cells_layer_arrays(hidden: tuple[int, ...], acts: tuple[str, ...], act_I, params_per_cell, x_BxD, y_B,
                       classes: int = 10):
    """:func:`layer_arrays` for many cells in one program. ``params_per_cell`` holds parameter trees
    stacked on a leading axis (joined here); cell ``i`` uses activation ``acts[act_I[i]]``, chosen by
    ``lax.switch``, so one model is traced for every activation (the same operations as a model
    built with that activation, so the same bits)."""
    fns = [ACTIVATIONS[a] for a in acts]
    params_I = jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *params_per_cell)

    def cell(args):
        a, params = args
        act = fns[0] if len(fns) == 1 else (lambda z: jax.lax.switch(a, fns, z))
        return _layer_arrays(MLP(hidden=hidden, num_classes=classes, act=act), params, x_BxD, y_B)

    return jax.lax.map(cell, (act_I, params_I))


def predicted_act_vars(model_cfg: ModelConfig, x_BxD: np.ndarray) -> list[float | None]:
    """Mean-field prediction of each pre-activation's variance from the init's weight variance.

    ``Var(z_0) = fan_in * Var(W_0) * mean(x^2)`` and
    ``Var(z_l) = fan_in * Var(W_l) * E[phi(z)^2], z ~ N(0, Var(z_{l-1}))`` (zero biases,
    independent zero-mean weights). None for rules with no such theory (constant).
    """
    sizes = [x_BxD.shape[1], *model_cfg.hidden, model_cfg.num_classes]
    w_vars = weight_variances(model_cfg.init, model_cfg.act, sizes, model_cfg.scale)
    q_in = float(np.mean(np.square(x_BxD, dtype=np.float64)))
    out: list[float | None] = []
    for i, w_var in enumerate(w_vars):
        if w_var is None:
            return [None] * len(w_vars)
        second = q_in if i == 0 else second_moment(model_cfg.act, out[-1])
        out.append(sizes[i] * w_var * second)
    return out


def layer_names(n_layers: int) -> list[str]:
    """The reference's names of the Dense layers (their index in its nn.Sequential)."""
    return [f"Layer {2 * i}" for i in range(n_layers)]


def _flat(arrays) -> list[np.ndarray]:
    """Each array as a flat float32 host array (what the statistics and histograms read)."""
    return [np.asarray(a, np.float32).reshape(-1) for a in arrays]


@dataclasses.dataclass
class InitStats:
    """Per-layer summaries (JSON-ready) and the raw flattened arrays (for histograms)."""

    summary: dict
    arrays: dict[str, list[np.ndarray]]


def summarize(model_cfg: ModelConfig, arrays: dict, x_BxD: np.ndarray) -> InitStats:
    """Host-side statistics with ``np.var`` (ddof=0, float32) as in the reference."""
    arrays = jax.device_get(arrays)
    flat = {k: _flat(arrays[k]) for k in ("weights", "acts", "grads")}
    summary: dict = {
        "init": model_cfg.init,
        "scale": model_cfg.scale,
        "act": model_cfg.act,
        "hidden": list(model_cfg.hidden),
        "layers": layer_names(len(flat["weights"])),
        "loss": float(arrays["loss"]),
    }
    for key, prefix in (("weights", "weight"), ("acts", "act"), ("grads", "grad")):
        variances = [np.var(a) for a in flat[key]]  # float32, as the reference's
        summary[f"{prefix}_var"] = [float(v) for v in variances]
        summary[f"{prefix}_mean"] = [float(np.mean(a)) for a in flat[key]]
        summary[f"{prefix}_std"] = [float(np.sqrt(v)) for v in variances]  # np.std's own last step
    summary["act_var_predicted"] = predicted_act_vars(model_cfg, x_BxD)
    return InitStats(summary, flat)


WeightsHook = Callable[[list[np.ndarray]], None]


def init_stats(model_cfg: ModelConfig, x_BxD: np.ndarray, y_B: np.ndarray, seed: int = 42,
               on_weights: WeightsHook | None = None) -> InitStats:
    """Statistics of one initializer and activation on the example batch. ``on_weights`` gets the
    flat kernels as soon as they exist (a figure of them need not wait for the statistics)."""
    params = init_params(model_cfg, x_BxD, seed)
    if on_weights is not None:
        on_weights(_flat(kernels(params)))
    arrays = layer_arrays(tuple(model_cfg.hidden), model_cfg.act, params, x_BxD, y_B,  # numpy in: no staging program
                          classes=model_cfg.num_classes)
    return summarize(model_cfg, arrays, x_BxD)


def _stats_of_cells(cells: list[tuple[ModelConfig, int]], x_BxD, y_B,
                    on_weights: WeightsHook | None = None) -> list[InitStats]:
    """Statistics of (config, seed) cells of one architecture in one compiled program;
    ``on_weights`` gets the first cell's flat kernels before the statistics are computed."""
    hidden = tuple(cells[0][0].hidden)
    acts = tuple(dict.fromkeys(cfg.act for cfg, _ in cells))
    # One init cell per run of equal configs (--seeds: all of them), stacked over its seeds.
    init_groups = [(cfg, [seed for _, seed in run]) for cfg, run in itertools.groupby(cells, key=lambda c: c[0])]
    params = init_cells(init_groups, x_BxD)
    if on_weights is not None:
        on_weights(_flat(k[0] for k in kernels(params[0])))
    act_I = np.asarray([acts.index(cfg.act) for cfg, _ in cells], np.int32)
    # To the host once: indexing device arrays per cell would compile a slicing program per shape.
    out = jax.device_get(cells_layer_arrays(hidden, acts, act_I, params, x_BxD, y_B, classes=cells[0][0].num_classes))
    return [summarize(cfg, jax.tree.map(lambda a, i=i: a[i], out), x_BxD) for i, (cfg, _) in enumerate(cells)]


def grid_stats(
    hidden: tuple[int, ...], x_BxD: np.ndarray, y_B: np.ndarray, seed: int = 42,
    inits=GRID_INITS, acts=GRID_ACTS, num_classes: int = 10,
) -> list[InitStats]:
    """Every (init, activation) cell, computed by one compiled program (plus the inits)."""
    cells = [(ModelConfig(hidden=hidden, act=act, init=init, scale=scale, num_classes=num_classes), seed)
             for act in acts for init, scale in inits]
    return _stats_of_cells(cells, x_BxD, y_B)


def seeds_stats(model_cfg: ModelConfig, x_BxD: np.ndarray, y_B: np.ndarray, seeds: list[int],
                on_weights: WeightsHook | None = None) -> InitStats:
    """Statistics for several initialisations (one compiled program): the first seed's full
    summary and arrays, plus every seed's per-layer variances with their mean and std."""
    per_seed = _stats_of_cells([(model_cfg, s) for s in seeds], x_BxD, y_B, on_weights)
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
