"""Activation functions by name, and their Gaussian second moments for variance theory."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from initopt.config.options import spelling
from initopt.errors import ConfigError

LEAKY_SLOPE = 0.01


def identity(x):
    return x


ACTIVATIONS = {
    "identity": identity,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": functools.partial(jax.nn.leaky_relu, negative_slope=LEAKY_SLOPE),
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "sigmoid": jax.nn.sigmoid,
}



def canonical(name: str, source: str = "the options") -> str:
    """An activation's name as the registry spells it, or one sentence naming the choices."""
    if spelling(name) not in ACTIVATIONS:
        raise ConfigError(f"Unknown activation {name!r} in {source}; choose one of {', '.join(ACTIVATIONS)}.")
    return spelling(name)


# E[phi(z)^2] / q for z ~ N(0, q), where it has a closed form independent of q.
_CLOSED_FORM_RATIO = {"identity": 1.0, "relu": 0.5, "leaky_relu": (1 + LEAKY_SLOPE**2) / 2}
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(161)


def second_moment(act: str, q: float) -> float:
    """``E[phi(z)^2]`` for ``z ~ N(0, q)``: closed form or 161-point Gauss-Hermite quadrature."""
    if act in _CLOSED_FORM_RATIO:
        return _CLOSED_FORM_RATIO[act] * q
    z = np.sqrt(q) * _NODES
    with jax.ensure_compile_time_eval():  # a constant, also while a jitted init is being traced
        values = np.asarray(ACTIVATIONS[act](z.astype(np.float64)), dtype=np.float64)
    return float(np.sum(_WEIGHTS * values**2) / np.sqrt(2 * np.pi))


@functools.cache
def kaiming_gain2(act: str) -> float:
    """The squared gain that keeps ``Var(z)`` constant through ``phi``: ``1 / E[phi(z)^2]``, z ~ N(0, 1).

    Exactly 1 for identity, 2 for relu and ``2 / (1 + 0.01^2)`` for leaky_relu; by
    quadrature for tanh (~2.54), gelu (~2.35), silu (~2.81) and sigmoid (~3.41; its
    output is not zero-mean, so this is the second moment, not the variance).
    """
    if act in _CLOSED_FORM_RATIO:
        return 1.0 / _CLOSED_FORM_RATIO[act]
    return 1.0 / second_moment(act, 1.0)
