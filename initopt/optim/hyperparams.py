"""Hyperparameters as data: optax's ``inject_hyperparams`` pattern, with a schedule on the peak rate.

``inject(factory, schedule, static)`` wraps any ``factory(learning_rate, **hyperparameters)
-> GradientTransformation`` (a hand-written one of :mod:`initopt.optim.optimizers`, an optax
alias, a user's own). Its state holds the update count and every float
hyperparameter as a float32 array; each update rebuilds the inner transformation
from those arrays, with ``learning_rate = peak_lr * schedule(count)``. So the
values are inputs of the compiled program, not constants in it: a new learning
rate never recompiles, and trials stacked on a leading axis can each have their own.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

LEARNING_RATE = "learning_rate"


class InjectedState(NamedTuple):
    count: jax.Array  # int32: updates done so far
    hyperparams: dict[str, jax.Array]  # float32 scalars; "learning_rate" is the peak of the schedule
    inner_state: optax.OptState
    learning_rate: jax.Array  # float32: the rate of the latest update (of the first, before any)


def as_arrays(hyperparams: dict[str, float]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v, jnp.float32) for k, v in hyperparams.items()}


def inject(
    factory: Callable[..., optax.GradientTransformation],
    schedule: optax.Schedule,
    defaults: dict[str, float],
    static: tuple[tuple[str, Any], ...] = (),
) -> optax.GradientTransformation:
    """``factory`` with its float hyperparameters (``defaults``, which must hold the learning
    rate) in the state; ``static`` keyword arguments (flags, integers) stay Python values.

    ``init(params, hyperparams=None)`` takes other values than the defaults, e.g. per trial.
    """
    static_kwargs = dict(static)

    def rate(hyperparams: dict, count) -> jax.Array:
        return (hyperparams[LEARNING_RATE] * schedule(count)).astype(jnp.float32)

    def inner(hyperparams: dict, lr) -> optax.GradientTransformation:
        others = {k: v for k, v in hyperparams.items() if k != LEARNING_RATE}
        return factory(learning_rate=lr, **others, **static_kwargs)

    def init_fn(params, hyperparams: dict | None = None):
        hp = as_arrays({**defaults, **(hyperparams or {})})
        count = jnp.zeros([], jnp.int32)
        lr = rate(hp, count)
        return InjectedState(count, hp, inner(hp, lr).init(params), lr)

    def update_fn(updates, state: InjectedState, params=None):
        lr = rate(state.hyperparams, state.count)
        updates, inner_state = inner(state.hyperparams, lr).update(updates, state.inner_state, params)
        return updates, InjectedState(state.count + 1, state.hyperparams, inner_state, lr)

    return optax.GradientTransformation(init_fn, update_fn)
