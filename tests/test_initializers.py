import jax
import numpy as np
import pytest

from initopt.errors import ConfigError
from initopt.nn import initializers as inits
from initopt.nn.activations import ACTIVATIONS, kaiming_gain2, second_moment
from initopt.nn.model import make_model

SHAPE = (400, 300)  # 120,000 draws: a sample variance within 2% of the truth (~5 sigma)


def sample_var(init_fn, shape=SHAPE):
    w = np.asarray(init_fn(jax.random.PRNGKey(0), shape, np.float32))
    assert w.shape == shape and w.dtype == np.float32
    return float(np.var(w)), float(np.mean(w))


@pytest.mark.parametrize(
    "name, layer, act, scale, expected",
    [
        ("normal", 1, "relu", 0.1, 0.01),
        ("equal_variance", 1, "relu", None, 1 / 400),
        ("xavier", 1, "tanh", None, 2 / 700),
        ("xavier_normal", 1, "tanh", None, 2 / 700),
        ("kaiming", 1, "relu", None, 2 / 400),
        ("kaiming", 0, "relu", None, 1 / 400),
        ("kaiming", 1, "tanh", None, kaiming_gain2("tanh") / 400),
        ("kaiming_uniform", 1, "relu", None, 2 / 400),
        ("kaiming_uniform", 0, "relu", None, 1 / 400),
        ("lecun_normal", 1, "relu", None, 1 / 400),
        ("orthogonal", 1, "relu", 1.0, 1 / 400),
    ],
)
def test_initializer_variance_matches_closed_form(name, layer, act, scale, expected):
    init_fn = inits.INITIALIZERS[name].initializer(layer, act, scale)
    var, mean = sample_var(init_fn)
    np.testing.assert_allclose(var, expected, rtol=0.02)
    assert abs(mean) < 5 * np.sqrt(expected / np.prod(SHAPE))
    fan_in, fan_out = SHAPE
    assert inits.INITIALIZERS[name].weight_var(fan_in, fan_out, layer, act, scale) == pytest.approx(expected)


def test_uniform_inits_respect_their_bounds():
    w = np.asarray(inits.xavier_uniform()(jax.random.PRNGKey(1), SHAPE))
    bound = np.sqrt(6) / np.sqrt(700)
    assert w.max() <= bound and w.min() >= -bound and w.max() > 0.99 * bound


def test_constant_fills_every_weight():
    w = np.asarray(inits.constant(0.005)(jax.random.PRNGKey(0), (3, 4)))
    assert np.all(w == np.float32(0.005))


def test_kaiming_first_layer_decided_by_position_not_shape():
    # Input width 100, not 784: layer 0 must still use gain 1.
    model = make_model((100, 100), "relu", "kaiming")
    params = model.init(jax.random.PRNGKey(0), np.zeros((1, 100), np.float32))["params"]
    k0, k1 = np.asarray(params["Dense_0"]["kernel"]), np.asarray(params["Dense_1"]["kernel"])
    assert k0.shape == k1.shape == (100, 100)
    np.testing.assert_allclose(np.var(k1) / np.var(k0), 2.0, rtol=0.1)


def test_gain_table_preserves_second_moment():
    for act in ACTIVATIONS:
        assert kaiming_gain2(act) * second_moment(act, 1.0) == pytest.approx(1.0)
    assert kaiming_gain2("relu") == 2.0 and kaiming_gain2("identity") == 1.0
    # Quadrature against a Monte Carlo estimate for a smooth activation.
    z = np.random.default_rng(0).normal(0, np.sqrt(2.0), 400_000)
    np.testing.assert_allclose(second_moment("tanh", 2.0), np.mean(np.tanh(z) ** 2), rtol=5e-3)


def test_scale_validation():
    assert inits.resolve_scale("constant", None) == 0.005
    assert inits.resolve_scale("normal", 0.1) == 0.1
    with pytest.raises(ConfigError, match="takes no scale"):
        inits.resolve_scale("kaiming", 0.1)
    with pytest.raises(ConfigError, match="must be a positive number"):
        inits.resolve_scale("normal", -1.0)
    with pytest.raises(ConfigError, match="Unknown initializer 'nope'"):
        inits.resolve_scale("nope", None)
    assert inits.canonical_name("Equal-Variance") == "equal_variance"


@pytest.mark.slow
@pytest.mark.parametrize("prng", ["legacy", "modern"])
def test_jitted_init_gives_the_reference_bits(prng):
    """model.init_cells (one compiled program) against the reference's op-by-op model.init, for every
    initializer and every activation-dependent gain, several seeds at once (a batched init) and one seed
    alone (an unbatched one): the same bits, not merely close."""
    from initopt import config
    from initopt.nn.model import init_cells
    from initopt.runtime.env import set_prng

    before = jax.config.jax_threefry_partitionable
    set_prng(prng)
    try:
        x = np.random.default_rng(0).normal(size=(8, 48)).astype(np.float32)
        names = [n for n in inits.INITIALIZERS if n not in inits.DATA_DEPENDENT] if prng == "legacy" else ["kaiming"]
        # Every initializer with relu; the activation-dependent gains with every activation.
        pairs = [(n, "relu") for n in names] + [(n, a) for n in names if n.startswith("kaiming") for a in ACTIVATIONS]
        pairs += [("xavier", "tanh"), ("normal", "identity")] if prng == "legacy" else []  # built once, shared
        cells = [(config.ModelConfig(init=n, act=a, hidden=(40, 24)), seeds)
                 for seeds in ([0, 42, 2**32 + 5], [2**32 + 42]) for n, a in dict.fromkeys(pairs)]
        for (cfg, seeds), got in zip(cells, init_cells(cells, x)):
            for k, seed in enumerate(seeds):
                ref = make_model(cfg.hidden, cfg.act, cfg.init, cfg.scale).init(jax.random.PRNGKey(seed), x)
                for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got)):
                    assert np.array_equal(np.asarray(a), np.asarray(b)[k]), (cfg.init, cfg.act, seed)
    finally:
        jax.config.update("jax_threefry_partitionable", before)
