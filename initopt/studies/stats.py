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
from initopt.nn import networks
from initopt.nn.initializers import OWN, fans, kernel_variances
from initopt.nn.model import MLP, REFERENCE_HIDDEN

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



def _layer_arrays(net, params, x_BxD, y_B, module=None):
    def loss_fn(p):
        logits, preacts = net.preacts(p, x_BxD, module)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y_B).mean()
        return loss, preacts

    (loss, preacts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return {"weights": net.kernels(params), "acts": preacts, "grads": net.kernels(grads), "loss": loss}


@functools.partial(jax.jit, static_argnames="net")
def layer_arrays(net: networks.Network, params, x_BxD, y_B):
    """Weights, pre-activations (every kernel layer's output, the logits last) and kernel gradients
    of the mean CE."""
    return _layer_arrays(net, params, x_BxD, y_B)


@functools.partial(jax.jit, static_argnames=("net", "acts"))
def cells_layer_arrays(net: networks.Network, acts: tuple[str, ...], act_I, params_per_cell, x_BxD, y_B):
    """:func:`layer_arrays` for many cells in one program. ``params_per_cell`` holds parameter trees
    stacked on a leading axis (joined here); for the MLP, cell ``i`` uses activation
    ``acts[act_I[i]]``, chosen by ``lax.switch``, so one model is traced for every activation (the
    same operations as a model built with that activation, so the same bits)."""
    fns = [ACTIVATIONS[a] for a in acts]
    params_I = jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *params_per_cell)

    def cell(args):
        a, params = args
        act = fns[0] if len(fns) == 1 else (lambda z: jax.lax.switch(a, fns, z))
        module = MLP(hidden=net.module.hidden, num_classes=net.num_classes, act=act) if net.name == networks.MLP else None
        return _layer_arrays(net, params, x_BxD, y_B, module)

    return jax.lax.map(cell, (act_I, params_I))


# The variance rule of a built-in network's own initialisation (``--init default``).
OWN_INITS = {"mlp": ("lecun_normal", None), "2c2d": ("truncated_normal", 0.05), "3c3d": ("xavier", None)}


def _box_mean(x2_BxHxW: np.ndarray, window: tuple[int, int], padding: str) -> float:
    """The mean over a convolution's output positions of the sum of ``x2`` over each one's window
    (stride 1; SAME pads with zeros as Flax does): the first Conv's expected ``z^2`` per unit weight
    variance, borders included."""
    kh, kw = window
    if padding == "SAME":
        x2_BxHxW = np.pad(x2_BxHxW, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)))
    c = np.pad(np.cumsum(np.cumsum(x2_BxHxW, 1), 2), ((0, 0), (1, 0), (1, 0)))
    sums = c[:, kh:, kw:] - c[:, :-kh, kw:] - c[:, kh:, :-kw] + c[:, :-kh, :-kw]
    return float(sums.mean())


def mean_field(model_cfg: ModelConfig, x_BxD: np.ndarray) -> list[tuple[float | None, str | None]]:
    """Mean-field prediction of each kernel layer's pre-activation variance, with the reason where
    there is none: ``(value, None)`` or ``(None, why)``.

    A layer fed by the input: ``Var(z) = fan_in * Var(W) * mean(x^2)`` (a Conv's: ``Var(W)`` times
    the mean sum of ``x^2`` over its window, zero padding at the borders counted). Fed by the previous
    layer's activation: ``Var(z_l) = fan_in * Var(W_l) * E[phi(z)^2], z ~ N(0, Var(z_{l-1}))``,
    with ``fan_in`` = receptive field x input channels for a Conv (zero-mean biases, independent
    zero-mean weights; a constant bias adds no variance). Left out after max-pooling (the map is
    for a layer's activations, not their maxima), for rules with no variance (constant, LSUV, a
    user's module's own), and for a user's model (its structure is its own)."""
    net = networks.get(model_cfg)
    if net.theory is None:
        return [(None, "a model of your own: its layers' structure is not known here")] * len(net.kernel_shapes)
    init, scale = model_cfg.init, model_cfg.scale
    if init == OWN:
        init, scale = OWN_INITS[net.name]
    w_vars = kernel_variances(init, model_cfg.act, net.kernel_shapes, scale)
    x = np.asarray(x_BxD, np.float64)
    out: list[tuple[float | None, str | None]] = []
    for i, (theory, w_var, shape) in enumerate(zip(net.theory, w_vars, net.kernel_shapes)):
        q_prev = out[-1][0] if out else None
        if w_var is None:
            out.append((None, f"{model_cfg.init} has no variance rule"))
        elif theory.follows == "pool":
            out.append((None, "after max-pooling: the map is for activations, not their maxima"))
        elif theory.follows == "input" and theory.window:
            images = x.reshape(len(x), *net.sample_shape)
            x2 = np.square(images).sum(-1) if images.ndim == 4 else np.square(images)
            out.append((w_var * _box_mean(x2, theory.window, theory.padding), None))
        elif theory.follows == "input":
            out.append((fans(shape)[0] * w_var * float(np.mean(np.square(x_BxD, dtype=np.float64))), None))
        elif q_prev is None:
            out.append((None, "follows a layer without a prediction"))
        else:
            out.append((fans(shape)[0] * w_var * second_moment(model_cfg.act, q_prev), None))
    if model_cfg.init != OWN and any(w is None for w in w_vars):  # a rule without variance: no layer has one
        out = [(None, f"{model_cfg.init} has no variance rule")] * len(out)
    return out


def predicted_act_vars(model_cfg: ModelConfig, x_BxD: np.ndarray) -> list[float | None]:
    """Mean-field prediction of each pre-activation's variance (:func:`mean_field`), None where it
    does not hold."""
    return [v for v, _ in mean_field(model_cfg, x_BxD)]


def layer_names(n_layers: int) -> list[str]:
    """The reference's names of the Dense layers (their index in its nn.Sequential)."""
    return [f"Layer {2 * i}" for i in range(n_layers)]


def network_layer_names(net: networks.Network) -> list[str]:
    """The MLP's layers by the reference's names; any other network's by module path (``Conv_0``)."""
    return layer_names(len(net.kernel_paths)) if net.name == networks.MLP else net.kernel_names


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
    net = networks.get(model_cfg)
    summary: dict = {
        "init": model_cfg.init,
        "scale": model_cfg.scale,
        "act": model_cfg.act,
        "hidden": list(model_cfg.hidden),
        "layers": network_layer_names(net),
        "loss": float(arrays["loss"]),
    }
    if net.name != networks.MLP:
        summary = {"model": net.name, **summary, "hidden": None, "kernel_shapes": [list(k) for k in net.kernel_shapes],
                   "fan_in": [fans(k)[0] for k in net.kernel_shapes]}
    for key, prefix in (("weights", "weight"), ("acts", "act"), ("grads", "grad")):
        variances = [np.var(a) for a in flat[key]]  # float32, as the reference's
        summary[f"{prefix}_var"] = [float(v) for v in variances]
        summary[f"{prefix}_mean"] = [float(np.mean(a)) for a in flat[key]]
        summary[f"{prefix}_std"] = [float(np.sqrt(v)) for v in variances]  # np.std's own last step
    predicted = mean_field(model_cfg, x_BxD)
    summary["act_var_predicted"] = [v for v, _ in predicted]
    if any(why for _, why in predicted):
        summary["act_var_predicted_why"] = [why for _, why in predicted]
    return InitStats(summary, flat)


WeightsHook = Callable[[list[np.ndarray]], None]


def init_stats(model_cfg: ModelConfig, x_BxD: np.ndarray, y_B: np.ndarray, seed: int = 42,
               on_weights: WeightsHook | None = None) -> InitStats:
    """Statistics of one initializer and activation on the example batch. ``on_weights`` gets the
    flat kernels as soon as they exist (a figure of them need not wait for the statistics)."""
    net = networks.get(model_cfg)
    params = networks.init_params(model_cfg, x_BxD, seed)
    if on_weights is not None:
        on_weights(_flat(net.kernels(params)))
    arrays = layer_arrays(net, params, x_BxD, y_B)  # numpy in: no staging program
    return summarize(model_cfg, arrays, x_BxD)


def _stats_of_cells(cells: list[tuple[ModelConfig, int]], x_BxD, y_B,
                    on_weights: WeightsHook | None = None) -> list[InitStats]:
    """Statistics of (config, seed) cells of one architecture in one compiled program;
    ``on_weights`` gets the first cell's flat kernels before the statistics are computed."""
    net = networks.get(cells[0][0])
    acts = tuple(dict.fromkeys(cfg.act for cfg, _ in cells))
    # One init cell per run of equal configs (--seeds: all of them), stacked over its seeds.
    init_groups = [(cfg, [seed for _, seed in run]) for cfg, run in itertools.groupby(cells, key=lambda c: c[0])]
    params = networks.init_cells(init_groups, x_BxD)
    if on_weights is not None:
        on_weights(_flat(k[0] for k in net.kernels(params[0])))
    if net.convolutional:  # a convolution inside lax.map takes XLA:CPU's slow path: one program per cell
        per_cell = [jax.tree.map(lambda a, i=i: a[i], group) for group in params
                    for i in range(len(jax.tree.leaves(group)[0]))]
        outs = [jax.device_get(layer_arrays(net, p, x_BxD, y_B)) for p in per_cell]
        return [summarize(cfg, o, x_BxD) for (cfg, _), o in zip(cells, outs)]
    act_I = np.asarray([acts.index(cfg.act) for cfg, _ in cells], np.int32)
    # To the host once: indexing device arrays per cell would compile a slicing program per shape.
    out = jax.device_get(cells_layer_arrays(net, acts, act_I, params, x_BxD, y_B))
    return [summarize(cfg, jax.tree.map(lambda a, i=i: a[i], out), x_BxD) for i, (cfg, _) in enumerate(cells)]


def grid_stats(
    hidden: tuple[int, ...], x_BxD: np.ndarray, y_B: np.ndarray, seed: int = 42,
    inits=GRID_INITS, acts=GRID_ACTS, num_classes: int = 10, input_shape: tuple[int, ...] = (28, 28),
) -> list[InitStats]:
    """Every (init, activation) cell, computed by one compiled program (plus the inits)."""
    cells = [(ModelConfig(hidden=hidden, act=act, init=init, scale=scale, num_classes=num_classes,
                          input_shape=input_shape), seed)
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
