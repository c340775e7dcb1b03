"""Any optimizer by name: built-in, optax alias, a user's module or file; broken ones in one sentence."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from initopt.errors import ConfigError
from initopt.optim import hyperparams
from initopt.optim import optimizer_specs as specs
from initopt.optim.schedules import ScheduleSpec, optax_schedule

CONSTANT = optax_schedule(ScheduleSpec("constant", 10))


def loss(p):
    return jnp.sum(p["w"] ** 4 - 3 * p["w"]) + jnp.sum(jnp.sin(p["b"]) * p["b"] ** 2)


def run(tx, steps=10):
    params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[0.3, -0.7]])}
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name, oracle", [
    ("optax:lion", optax.lion(1e-3, b1=0.95)),
    ("optax:nadam", optax.nadam(1e-3)),
    ("momentum", optax.sgd(1e-3 * 0.2, momentum=0.8)),
])
def test_injected_optimizer_equals_the_plain_one(name, oracle):
    """Hyperparameters as arrays in the state change nothing in the arithmetic."""
    spec = specs.resolve(name)
    values = {"b1": 0.95} if name == "optax:lion" else {"beta": 0.8} if name == "momentum" else {}
    data, static = spec.split(values)
    tx = hyperparams.inject(spec.factory, CONSTANT, {**data, "learning_rate": 1e-3}, static)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7), run(tx), run(oracle))


def test_float_hyperparameters_are_data_flags_are_static():
    data, static = specs.resolve("optax:sgd").split({"momentum": 0.9, "nesterov": True})
    assert data == {"momentum": 0.9} and static == (("nesterov", True),)
    data, static = specs.resolve("adam").split({})
    assert data == {} and ("b2", 0.999) in static  # adam's betas stay exact Python floats


def test_user_file_factory(tmp_path, monkeypatch):
    (tmp_path / "myopt.py").write_text(
        "import optax\n\ndef make(learning_rate, decay=0.5):\n"
        "    return optax.chain(optax.scale_by_rms(decay=decay), optax.scale(-learning_rate))\n")
    monkeypatch.chdir(tmp_path)
    spec = specs.resolve("./myopt.py:make")
    assert spec.name == "./myopt.py:make" and dict(spec.defaults) == {"decay": 0.5} and spec.reference_lr is None
    with pytest.raises(ConfigError, match="has no reference learning rate; pass --lr"):
        specs.reference_lr(spec, None)
    with pytest.raises(ConfigError, match="has no hyperparameter 'beta'"):
        spec.split({"beta": 0.9})


def test_module_factory():
    spec = specs.resolve("initopt.optim.optimizers:nesterov")
    assert dict(spec.defaults) == {"beta": 0.9}


@pytest.mark.parametrize("source, name, message", [
    (None, "optax:nope", "optax has no optimizer 'nope'"),
    (None, "optax:scale_by_adam", "takes no learning_rate argument"),
    (None, "no_such_module_xyz:make", "cannot be imported"),
    (None, "./missing.py:make", "does not exist"),
    ("x = 1\n", "./f.py:make", "has no 'make'"),
    ("make = 3\n", "./f.py:make", "is not a function that builds an optimizer"),
    ("def make(learning_rate):\n    raise RuntimeError('boom')\n", "./f.py:make", "raised RuntimeError when built: boom"),
    ("def make(learning_rate):\n    return 42\n", "./f.py:make", "returned int, not an optax.GradientTransformation"),
    ("import optax\ndef make(learning_rate, k):\n    return optax.sgd(learning_rate)\n", "./f.py:make",
     "needs k without defaults"),
    ("raise ImportError('no deps')\n", "./f.py:make", "Importing f.py failed: ImportError: no deps"),
])
def test_broken_optimizers_are_one_sentence(tmp_path, monkeypatch, source, name, message):
    monkeypatch.chdir(tmp_path)
    if source is not None:
        (tmp_path / "f.py").write_text(source)
    specs.resolve.cache_clear()
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        specs.resolve(name)


def test_parse_names():
    assert specs.parse_names("all") == ("sgd", "momentum", "adam")
    assert specs.parse_names("adam, optax:lion") == ("adam", "optax:lion")
    with pytest.raises(ConfigError, match="Unknown optimizer 'nope'"):
        specs.parse_names("sgd,nope")
    with pytest.raises(ConfigError, match="distinct"):
        specs.parse_names("sgd,SGD")
    with pytest.raises(ConfigError, match="without empty items"):
        specs.parse_names("sgd,,adam")
