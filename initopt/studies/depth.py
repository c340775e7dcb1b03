"""`initopt depth`: the theory of :mod:`initopt.nn.propagation` checked against networks themselves.

- propagation: per layer of a deep network at initialization, the measured pre-activation
  variance and correlation of two inputs against the q-map and c-map iterated from the input;
- Jacobian spectra: singular values of the input-output Jacobian (``jax.jacfwd`` + SVD);
- the trainability phase diagram: (sigma_w^2, depth) cells trained with SGD by the trial engine,
  every sigma_w^2 of one depth as one program, against the ``6 xi_c`` line;
- LSUV (Mishkin and Matas 2015): orthonormal weights, each layer rescaled on a batch until its
  output variance is within a tolerance of 1.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from initopt.errors import ConfigError
from initopt.nn import propagation
from initopt.nn.activations import ACTIVATIONS
from initopt.nn.lsuv import LSUV_MAX_ITER, LSUV_TOL, lsuv

DEPTH_INITS = ("gaussian", "orthogonal", "lsuv")


# ----------------------------------------------------------------------------- networks at initialization
def init_layers(key, sizes: list[int], init: str, sigma_w2: float, sigma_b2: float, x_example=None, act="tanh",
                lsuv_tol: float = LSUV_TOL, lsuv_max_iter: int = LSUV_MAX_ITER) -> list[tuple]:
    """``[(W, b), ...]`` for layers ``sizes[i] -> sizes[i+1]``: Gaussian ``N(0, sigma_w^2 / fan_in)`` or
    (semi-)orthogonal times ``sigma_w``, biases ``N(0, sigma_b^2)``; ``lsuv`` rescales orthogonal
    weights on ``x_example``."""
    if init not in DEPTH_INITS:
        raise ConfigError(f"Unknown depth initializer {init!r}; choose one of {', '.join(DEPTH_INITS)}.")
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, wk, bk = jax.random.split(key, 3)
        if init == "gaussian":
            w = jax.random.normal(wk, (fan_in, fan_out)) * math.sqrt(sigma_w2 / fan_in)
        else:
            gain = 1.0 if init == "lsuv" else math.sqrt(sigma_w2)
            w = jax.nn.initializers.orthogonal(scale=gain)(wk, (fan_in, fan_out))
        b = jax.random.normal(bk, (fan_out,)) * math.sqrt(sigma_b2)
        layers.append((w, b))
    if init == "lsuv":
        layers = lsuv(layers, jnp.asarray(x_example), act, lsuv_tol, lsuv_max_iter)[0]
    return layers


def preactivations(layers, x_NxD, act: str) -> list:
    """``h_1 .. h_L`` with ``h_l = phi(h_{l-1}) W_l + b_l`` and ``h_0 = x`` (no activation on the input)."""
    phi = ACTIVATIONS[act]
    out, h = [], x_NxD
    for i, (w, b) in enumerate(layers):
        h = (h if i == 0 else phi(h)) @ w + b[None, :]
        out.append(h)
    return out


def measure_propagation(layers, xa, xb, act: str) -> dict:
    """Per layer: ``q`` (mean square of input a's pre-activations) and the correlation ``c`` of a and b."""
    hs = preactivations(layers, jnp.stack([xa, xb]), act)
    q = [float(jnp.mean(h[0] ** 2)) for h in hs]
    c = [float(jnp.sum(h[0] * h[1]) / jnp.sqrt(jnp.sum(h[0] ** 2) * jnp.sum(h[1] ** 2))) for h in hs]
    return {"q": q, "c": c}


def predicted_propagation(xa, xb, act: str, sigma_w2: float, sigma_b2: float, depth: int) -> dict:
    """The maps iterated from the input: layer 1 has ``q = sigma_w^2 mean(x^2) + sigma_b^2``."""
    xa, xb = np.asarray(xa, np.float64), np.asarray(xb, np.float64)
    q1 = sigma_w2 * float(np.mean(xa * xa)) + sigma_b2
    q2 = sigma_w2 * float(np.mean(xb * xb)) + sigma_b2
    q12 = sigma_w2 * float(np.mean(xa * xb)) + sigma_b2
    return propagation.iterate_maps(act, sigma_w2, sigma_b2, q1, q2, q12, depth)


# ----------------------------------------------------------------------------- Jacobian spectra
@functools.partial(jax.jit, static_argnames="act")
def _jacobian(layers, x_D, act: str):
    return jax.jacfwd(lambda x: preactivations(layers, x[None], act)[-1][0])(x_D)


def jacobian_singular_values(layers, x_D, act: str) -> np.ndarray:
    """Singular values of d h_L / d x at ``x``."""
    jac = np.asarray(_jacobian(layers, jnp.asarray(x_D), act), np.float64)
    return np.linalg.svd(jac, compute_uv=False)


def spectrum_summary(sv: np.ndarray) -> dict:
    sv = np.asarray(sv, np.float64)
    positive = sv[sv > 0]
    return {"mean_sq": float(np.mean(sv**2)), "std_log": float(np.std(np.log(positive))) if positive.size else None,
            "max_over_min": float(sv.max() / sv.min()) if sv.min() > 0 else math.inf,
            "max": float(sv.max()), "min": float(sv.min())}


# ----------------------------------------------------------------------------- trainability
PHASE_ACT = "tanh"
PHASE_SIGMA_B2 = 0.05
TRAINED_THRESHOLD = 0.5  # training accuracy: five times chance


def flax_params(layers) -> dict:
    """``[(W, b), ...]`` as the MLP's parameter tree."""
    return {"params": {f"Dense_{i}": {"kernel": w, "bias": b} for i, (w, b) in enumerate(layers)}}


def phase_cells(splits, x_example, sigma_w2s: list[float], depths: list[int], width: int, steps: int,
                batch_size: int, lr: float, seed: int, on_depth=None) -> list[dict]:
    """Every (sigma_w^2, depth) cell of tanh networks (sigma_b^2 = 0.05, Gaussian weights) trained for
    ``steps`` SGD steps; all sigma_w^2 of one depth as one program of the trial engine. The network's
    last hidden layer feeds a 10-way readout (the MLP's last Dense), initialized like the others."""
    from initopt import config
    from initopt.engine import loop, placement, steps
    from initopt.engine import plan as plan_lib

    out = []
    n_eval = min(2048, len(splits.train_y))
    eval_x, eval_y = jnp.asarray(splits.train_x[:n_eval]), jnp.asarray(splits.train_y[:n_eval])
    for depth_ in depths:
        cfg = config.load(overrides={"model.hidden": [width] * depth_, "model.act": PHASE_ACT, "train.epochs": 1,
                                     "train.batch_size": batch_size, "train.lr": lr, "train.seed": seed,
                                     "train.instruments": 0})
        plan = plan_lib.plan_for(cfg, "sgd", len(splits.train_y))
        plan = dataclasses.replace(plan, trials=plan.trials * len(sigma_w2s), instruments=0)
        key = jax.random.PRNGKey(seed)  # the same draws for every sigma_w^2: only the scale differs
        sizes = [splits.train_x.shape[1]] + [width] * depth_ + [10]
        params_T = placement.stack_trees([flax_params(init_layers(key, sizes, "gaussian", sw2, PHASE_SIGMA_B2))
                                          for sw2 in sigma_w2s])
        progress = loop.fit(plan, splits, loop.initial_progress(plan, x_example, params_T))
        acc = placement.to_host(steps.evaluate(progress.state.params, progress.state.apply_fn, eval_x, eval_y)["acc"])
        for sw2, a, div in zip(sigma_w2s, acc, progress.history.diverged_epoch):
            t = propagation.theory(PHASE_ACT, sw2, PHASE_SIGMA_B2)
            out.append({"sigma_w2": sw2, "depth": depth_, "train_acc": float(a) if div is None else None,
                        "diverged": div is not None, "xi_c": t.xi_c, "predicted_trainable": depth_ < 6 * t.xi_c})
        if on_depth is not None:
            on_depth(depth_)
    return out


# ----------------------------------------------------------------------------- the command's experiments
SIGMA_W2_OF = {"kaiming": None, "lecun_normal": 1.0, "equal_variance": 1.0, "xavier": 1.0}  # None: the Kaiming gain


def resolve_init(init: str, act: str, sigma_w2: float) -> tuple[str, float]:
    """A depth initializer and its sigma_w^2: gaussian / orthogonal / lsuv take ``sigma_w2``; a named
    rule gives its own (Gaussian draws with that variance)."""
    from initopt.nn.activations import kaiming_gain2

    if init in DEPTH_INITS:
        return init, sigma_w2
    if init == "normal":
        return "gaussian", sigma_w2
    if init in SIGMA_W2_OF:
        return "gaussian", kaiming_gain2(act) if SIGMA_W2_OF[init] is None else SIGMA_W2_OF[init]
    raise ConfigError(f"Unknown depth initializer {init!r}; choose from gaussian (normal), orthogonal, lsuv, "
                      f"{', '.join(SIGMA_W2_OF)}.")


def theory_dict(act: str, sigma_w2: float, sigma_b2: float) -> dict:
    import dataclasses

    t = propagation.theory(act, sigma_w2, sigma_b2)
    return {**dataclasses.asdict(t), "phase": t.phase}


def run_measurements(x_NxD, act: str, inits: list[str], sigma_w2: float, sigma_b2: float, width: int, depth_: int,
                     jacobian_depths: list[int], seed: int, lsuv_tol: float = LSUV_TOL,
                     lsuv_max_iter: int = LSUV_MAX_ITER) -> dict:
    """Propagation against theory and Jacobian spectra for each initializer."""
    xa, xb = x_NxD[0], x_NxD[1]
    result = {"act": act, "width": width, "depth": depth_, "seed": seed, "sigma_b2": sigma_b2,
              "theory": theory_dict(act, resolve_init(inits[0], act, sigma_w2)[1], sigma_b2),
              "propagation": [], "jacobian": []}
    key = jax.random.PRNGKey(seed)
    for name in inits:
        kind, sw2 = resolve_init(name, act, sigma_w2)
        sizes = [x_NxD.shape[1]] + [width] * depth_
        layers = init_layers(key, sizes, kind, sw2, sigma_b2, x_NxD, act, lsuv_tol, lsuv_max_iter)
        entry = {"init": name, "sigma_w2": sw2, "theory": theory_dict(act, sw2, sigma_b2),
                 "measured": measure_propagation(layers, xa, xb, act),
                 "predicted": predicted_propagation(xa, xb, act, sw2, sigma_b2, depth_)}
        if kind == "lsuv":
            entry["lsuv_variances"] = lsuv(layers, jnp.asarray(x_NxD), act, lsuv_tol, lsuv_max_iter)[1]
        result["propagation"].append(entry)
        for d in jacobian_depths:
            sv = jacobian_singular_values(layers[:d], xa, act)
            result["jacobian"].append({"init": name, "depth": d, "singular_values": sv.tolist(),
                                       "summary": spectrum_summary(sv)})
    return result


def phase_summary(cells: list[dict], sigma_w2s: list[float], threshold: float, steps: int) -> dict:
    """The cells, the 6 xi_c line, and how often "trained" agrees with "depth < 6 xi_c"."""
    agree = [((c["train_acc"] or 0.0) > threshold) == c["predicted_trainable"] for c in cells]
    line = np.linspace(min(sigma_w2s), max(sigma_w2s), 121)
    six = [6 * propagation.theory(PHASE_ACT, float(s), PHASE_SIGMA_B2).xi_c for s in line]
    return {"cells": cells, "threshold": threshold, "steps": steps, "sigma_b2": PHASE_SIGMA_B2, "act": PHASE_ACT,
            "agreement": float(np.mean(agree)), "agree_count": int(sum(agree)), "n_cells": len(cells),
            "xi_line": {"sigma_w2": line.tolist(), "six_xi_c": six}}
