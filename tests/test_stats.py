import numpy as np
import pytest

from initopt.config import ModelConfig
from initopt import data
from initopt.runtime import env
from initopt.studies import stats
from tests.conftest import needs_debian_data

PUBLISHED_GRAD_VAR = [3.25944201904349e-05, 4.664550942834467e-05, 6.605686212424189e-05,
                      0.00015451121726073325, 0.002561226487159729]
PUBLISHED_ACT_VAR = [1.0483813285827637, 1.0137324333190918, 0.9987665414810181,
                     0.8383973836898804, 1.316560983657837]


@pytest.fixture(autouse=True)
def legacy_prng():
    env.set_prng("legacy")
    yield
    env.set_prng("legacy")


@pytest.fixture(scope="module")
def example():
    if data.find_files(data.DEBIAN_DIR)[1]:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return data.example_batch(data.load())


@needs_debian_data
def test_published_kaiming_relu_statistics(example):
    s = stats.init_stats(ModelConfig(init="kaiming", act="relu"), *example).summary
    np.testing.assert_allclose(s["grad_var"], PUBLISHED_GRAD_VAR, rtol=1e-6)
    np.testing.assert_allclose(s["act_var"], PUBLISHED_ACT_VAR, rtol=1e-6)
    assert s["layers"] == ["Layer 0", "Layer 2", "Layer 4", "Layer 6", "Layer 8"]


@pytest.mark.slow
@needs_debian_data
def test_grid_reproduces_the_reference_behaviour(example):
    cells = {(c.summary["init"], c.summary["scale"], c.summary["act"]): c for c in stats.grid_stats(
        (512, 256, 256, 128), *example)}
    assert len(cells) == 18
    kaiming = cells[("kaiming", None, "relu")].summary
    np.testing.assert_allclose(kaiming["grad_var"], PUBLISHED_GRAD_VAR, rtol=1e-6)  # same as a lone run
    small = cells[("normal", 0.01, "identity")].summary["act_var"]
    large = cells[("normal", 0.1, "identity")].summary["act_var"]
    assert all(b < a / 10 for a, b in zip(small, small[1:]))  # vanishes with depth
    assert all(b > a for a, b in zip(large, large[1:]))  # explodes with depth
    equal = cells[("equal_variance", None, "identity")].summary["act_var"]
    assert all(0.8 < v < 1.25 for v in equal)
    xavier_tanh = cells[("xavier", None, "tanh")].summary["act_var"]
    normal_tanh = cells[("normal", 0.01, "tanh")].summary["act_var"]
    assert min(xavier_tanh) > 0.2 and min(normal_tanh) < 1e-6
    for cell in cells.values():  # constant init: identical gradients within each middle layer
        if cell.summary["init"] == "constant":
            for g in cell.arrays["grads"][1:-1]:
                assert np.ptp(g) <= 1e-6 * max(np.abs(g).max(), 1e-30)


@pytest.mark.slow
def test_the_grid_program_gives_every_cell_what_a_lone_run_gives(tiny_data):
    """One traced model for all activations (lax.switch per cell) against one model per cell."""
    x, y = data.example_batch(data.load(tiny_data))
    cells = stats.grid_stats((16, 8), x, y, inits=(("xavier", None), ("kaiming", None), ("normal", 0.1)),
                             acts=("identity", "tanh", "relu"))
    assert len(cells) == 9
    for cell in cells:
        s = cell.summary
        lone = stats.init_stats(ModelConfig(hidden=(16, 8), init=s["init"], act=s["act"], scale=s["scale"]), x, y)
        for key in ("weight_var", "act_var", "grad_var", "act_mean", "grad_std"):
            np.testing.assert_allclose(s[key], lone.summary[key], rtol=1e-6, err_msg=f"{s['init']} {s['act']} {key}")


def test_theory_matches_measurement_for_equal_variance_identity(tiny_data):
    x, y = data.example_batch(data.load(tiny_data))
    cfg = ModelConfig(hidden=(256, 256, 256), init="equal_variance", act="identity")
    s = stats.init_stats(cfg, x, y).summary
    # Hidden layers only: the 10 logit columns are too few for a stable sample variance.
    np.testing.assert_allclose(s["act_var"][:-1], s["act_var_predicted"][:-1], rtol=0.25)
    assert s["act_var_predicted"][0] == pytest.approx(float(np.mean(x.astype(np.float64) ** 2)))


def test_theory_is_none_for_constant(tiny_data):
    x, y = data.example_batch(data.load(tiny_data))
    s = stats.init_stats(ModelConfig(init="constant", scale=0.005), x, y).summary
    assert s["act_var_predicted"] == [None] * 5
    assert max(s["weight_var"]) < 1e-12 and s["weight_mean"] == pytest.approx([0.005] * 5)


@pytest.mark.slow
def test_modern_prng_changes_the_draws_not_the_distribution(tiny_data):
    x, y = data.example_batch(data.load(tiny_data))
    legacy = stats.init_stats(ModelConfig(), x, y).summary
    env.set_prng("modern")
    modern = stats.init_stats(ModelConfig(), x, y).summary
    assert legacy["weight_var"] != modern["weight_var"]
    np.testing.assert_allclose(legacy["weight_var"], modern["weight_var"], rtol=0.15)


def test_init_stats_over_seeds(tiny_data):
    ds = data.load(tiny_data)
    x, y = data.example_batch(ds)
    cfg = ModelConfig(hidden=(64, 64))
    s = stats.seeds_stats(cfg, x, y, [3, 4, 5]).summary
    singles = [stats.init_stats(cfg, x, y, seed).summary["act_var"] for seed in (3, 4, 5)]
    np.testing.assert_allclose(s["act_var_per_seed"], singles, rtol=1e-5)
    np.testing.assert_allclose(s["act_var_seed_mean"], np.mean(singles, 0), rtol=1e-5)
    np.testing.assert_allclose(s["act_var_seed_std"], np.std(singles, 0, ddof=1), rtol=1e-4)
    assert s["act_var"] == pytest.approx(singles[0], rel=1e-5)
