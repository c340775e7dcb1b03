"""Every hand-written optimizer against its optax oracle, over several steps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training.train_state import TrainState

from initopt.optim import optimizers as opt

LR, BETA = 0.05, 0.9

CASES = {
    "sgd": (opt.sgd(LR), optax.sgd(LR)),
    "momentum": (opt.momentum(LR, BETA), optax.sgd(LR * (1 - BETA), momentum=BETA)),
    "nesterov": (opt.nesterov(LR, BETA), optax.sgd(LR, momentum=BETA, nesterov=True)),
    "adam": (opt.adam(LR), optax.adam(LR, b1=0.9, b2=0.999, eps=1e-8)),
    "adamw": (opt.adamw(LR, weight_decay=1e-2), optax.adamw(LR, weight_decay=1e-2)),
    "rmsprop": (opt.rmsprop(LR), optax.rmsprop(LR, decay=0.9, eps=1e-8)),
    "adagrad": (opt.adagrad(LR), optax.adagrad(LR)),
}


def loss_fn(params):
    return jnp.sum(params["w"] ** 4 - 3 * params["w"]) + jnp.sum(jnp.sin(params["b"]) * params["b"] ** 2)


def run(tx, steps=12):
    params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[0.3, -0.7]])}
    state = tx.init(params)
    trajectory = []
    for _ in range(steps):
        grads = jax.grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(params)
    return trajectory


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_oracle(name):
    ours, oracle = CASES[name]
    for mine, theirs in zip(run(ours), run(oracle)):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6), mine, theirs)


def test_registry_covers_all_cases():
    assert set(opt.OPTIMIZERS) == set(CASES)


def test_sgd_and_momentum_closed_form():
    g = {"w": jnp.array([2.0])}
    params = {"w": jnp.array([1.0])}
    tx = opt.momentum(0.1, 0.9)
    state = tx.init(params)
    u1, state = tx.update(g, state)
    u2, state = tx.update(g, state)
    np.testing.assert_allclose(u1["w"], [-0.1 * 0.1 * 2.0], rtol=1e-6)  # m = 0.1 * g
    np.testing.assert_allclose(u2["w"], [-0.1 * (0.1 * 2.0 + 0.9 * 0.2)], rtol=1e-6)
    np.testing.assert_allclose(opt.sgd(0.1).update(g, None)[0]["w"], [-0.2], rtol=1e-6)


def test_usable_in_flax_train_state_and_jit_does_not_recompile():
    params = {"w": jnp.ones(3), "b": jnp.zeros((1, 2))}
    state = TrainState.create(apply_fn=None, params=params, tx=opt.adam(1e-3))
    state = state.replace(step=jnp.zeros((), jnp.int32))  # a strong int32, as train.make_state does

    @jax.jit
    def step(state):
        return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))

    state = step(state)
    size = step._cache_size()
    state = step(state)
    assert step._cache_size() == size == 1
    assert int(state.step) == 2
