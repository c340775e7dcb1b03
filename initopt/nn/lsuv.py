"""LSUV (Mishkin and Matas 2015, "All you need is a good init"): orthonormal weights, then each
layer rescaled on a batch until its output variance is within a tolerance of 1. The one
data-dependent initializer: it needs the network's layers and an example batch, so it runs after
the kernels are drawn (by :mod:`initopt.nn.model` for the MLP, by the depth study for its networks)."""

from __future__ import annotations

import math

import jax.numpy as jnp

from initopt.nn.activations import ACTIVATIONS

LSUV_TOL = 0.1
LSUV_MAX_ITER = 10


def lsuv(layers, x_NxD, act: str, tol: float = LSUV_TOL, max_iter: int = LSUV_MAX_ITER):
    """Layer by layer: divide W (and b) by the standard deviation of the layer's output on the batch
    until ``|Var - 1| < tol`` or ``max_iter`` rescalings. Returns the layers and the final variances."""
    phi = ACTIVATIONS[act]
    layers, variances, h = list(layers), [], x_NxD
    for i, (w, b) in enumerate(layers):
        inp = h if i == 0 else phi(h)
        for _ in range(max_iter):
            var = float(jnp.var(inp @ w + b[None, :]))
            if abs(var - 1) < tol:
                break
            w, b = w / math.sqrt(var), b / math.sqrt(var)
        layers[i] = (w, b)
        h = inp @ w + b[None, :]
        variances.append(float(jnp.var(h)))
    return layers, variances
