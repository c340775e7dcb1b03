"""Hand-written optimizers in optax's shape: ``GradientTransformation(init, update)``.

Building blocks (``scale_by_*``) turn gradients into directions; the aliases at
the bottom chain them with :func:`scale_by_learning_rate`, the one place where
the sign flips. Each alias equals an optax optimizer (see the tests).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from initopt.errors import ConfigError


def _zeros_like(params):
    return jax.tree.map(jnp.zeros_like, params)


def scale_by_learning_rate(learning_rate: float) -> optax.GradientTransformation:
    """``u <- -lr * u``."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: -learning_rate * u, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByMomentumState(NamedTuple):
    mu: optax.Updates


def scale_by_momentum(beta: float, dampening: float | None = None) -> optax.GradientTransformation:
    """The reference's momentum: ``m <- (1 - beta) g + beta m``, ``u = m``, m starts at 0.

    With the learning rate this equals ``optax.sgd(lr * (1 - beta), momentum=beta)``.
    ``dampening`` (PyTorch's name) replaces ``1 - beta`` when given: the engine passes it
    computed in double precision, so a float32 ``beta`` held as data gives the same
    ``1 - beta`` as the Python constant does.
    """
    if dampening is None:
        dampening = 1 - beta

    def init_fn(params):
        return ScaleByMomentumState(mu=_zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: dampening * g + beta * m, updates, state.mu)
        return mu, ScaleByMomentumState(mu=mu)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_nesterov(beta: float) -> optax.GradientTransformation:
    """Nesterov momentum (Sutskever form): ``m <- g + beta m``, ``u = g + beta m``."""

    def init_fn(params):
        return ScaleByMomentumState(mu=_zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: g + beta * m, updates, state.mu)
        return jax.tree.map(lambda g, m: g + beta * m, updates, mu), ScaleByMomentumState(mu=mu)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByAdamState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``u = m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``."""

    def init_fn(params):
        return ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=_zeros_like(params), nu=_zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: b1 * m + (1 - b1) * g, updates, state.mu)
        nu = jax.tree.map(lambda g, v: b2 * v + (1 - b2) * jnp.square(g), updates, state.nu)
        count = state.count + 1
        t = count.astype(jnp.float32)
        updates = jax.tree.map(
            lambda m, v: (m / (1 - b1**t)) / (jnp.sqrt(v / (1 - b2**t)) + eps), mu, nu
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByRmsState(NamedTuple):
    nu: optax.Updates


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8) -> optax.GradientTransformation:
    """RMSProp: ``v <- decay v + (1 - decay) g^2``, ``u = g / sqrt(v + eps)``, v starts at 0."""

    def init_fn(params):
        return ScaleByRmsState(nu=_zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        nu = jax.tree.map(lambda g, v: decay * v + (1 - decay) * jnp.square(g), updates, state.nu)
        return jax.tree.map(lambda g, v: g * jax.lax.rsqrt(v + eps), updates, nu), ScaleByRmsState(nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByRssState(NamedTuple):
    sum_of_squares: optax.Updates


def scale_by_rss(initial_accumulator_value: float = 0.1, eps: float = 1e-7) -> optax.GradientTransformation:
    """Adagrad: ``s <- s + g^2`` (s starts at 0.1), ``u = g / sqrt(s + eps)``."""

    def init_fn(params):
        return ScaleByRssState(jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params))

    def update_fn(updates, state, params=None):
        del params
        s = jax.tree.map(lambda g, t: t + jnp.square(g), updates, state.sum_of_squares)
        return jax.tree.map(lambda g, t: g * jax.lax.rsqrt(t + eps), updates, s), ScaleByRssState(s)

    return optax.GradientTransformation(init_fn, update_fn)


def add_decayed_weights(weight_decay: float) -> optax.GradientTransformation:
    """Decoupled weight decay: ``u <- u + wd * w``."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("add_decayed_weights needs the parameters.")
        return jax.tree.map(lambda u, p: u + weight_decay * p, updates, params), state

    return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------- aliases
def sgd(learning_rate: float) -> optax.GradientTransformation:
    """``w <- w - lr g``."""
    return scale_by_learning_rate(learning_rate)


def momentum(learning_rate: float, beta: float = 0.9, dampening: float | None = None) -> optax.GradientTransformation:
    return optax.chain(scale_by_momentum(beta, dampening), scale_by_learning_rate(learning_rate))


def nesterov(learning_rate: float, beta: float = 0.9) -> optax.GradientTransformation:
    return optax.chain(scale_by_nesterov(beta), scale_by_learning_rate(learning_rate))


def adam(learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    return optax.chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamw(learning_rate: float, weight_decay: float = 1e-4, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8) -> optax.GradientTransformation:
    return optax.chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay),
                       scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: float, decay: float = 0.9, eps: float = 1e-8) -> optax.GradientTransformation:
    return optax.chain(scale_by_rms(decay, eps), scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: float, initial_accumulator_value: float = 0.1, eps: float = 1e-7) -> optax.GradientTransformation:
    return optax.chain(scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate))


# name -> (factory(learning_rate, **hyperparameters), reference learning rate for the MLP,
#          the hyperparameters besides the learning rate that are data in the optimizer state,
#          data derived on the host from the others when not given: momentum's 1 - beta in double).
# Adam's b1, b2, eps (and the like) stay Python floats: ``1 - b2`` computed in float32 from a
# float32 b2 differs from the double-rounded constant by 1e-5 relative, which would move the
# reference runs; momentum and weight decay are what a comparison varies.
OPTIMIZERS = {
    "sgd": (sgd, 0.1, (), {}),
    "momentum": (momentum, 0.1, ("beta", "dampening"), {"dampening": lambda hp: 1 - hp["beta"]}),
    "adam": (adam, 1e-3, (), {}),
    "nesterov": (nesterov, 0.01, ("beta",), {}),
    "rmsprop": (rmsprop, 1e-3, (), {}),
    "adamw": (adamw, 1e-3, ("weight_decay",), {}),
    "adagrad": (adagrad, 0.01, (), {}),
}
REFERENCE_OPTIMIZERS = ("sgd", "momentum", "adam")


def make_optimizer(name: str, learning_rate: float | None = None, **hyperparams) -> optax.GradientTransformation:
    """A hand-written optimizer by name with fixed values; ``learning_rate=None`` takes its reference rate."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"Unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}.")
    factory, reference_lr, _, _ = OPTIMIZERS[name]
    return factory(reference_lr if learning_rate is None else learning_rate, **hyperparams)
