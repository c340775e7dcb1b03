"""The theory against networks: propagation at width, Jacobian spectra, LSUV, the phase diagram command."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from initopt import config
from initopt.cli import app
from initopt import data
from initopt.studies import depth, stats


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((64, 784)).astype(np.float32)  # unit-variance inputs: q_in = 1


@pytest.mark.slow
def test_measured_variances_follow_the_q_map_at_width_1024(inputs):
    """Each layer's estimate of q is a mean of W squared Gaussians: relative std sqrt(2 / W) per layer,
    and the errors of l layers add at most like sqrt(l) (the map contracts for tanh at these values).
    Averaged over n = 8 networks, 4 standard deviations: rtol_l = 4 sqrt(2 l / (W n))."""
    width, layers_, n = 1024, 20, 8
    xa, xb = inputs[0], inputs[1]
    pred = depth.predicted_propagation(xa, xb, "tanh", 1.5, 0.05, layers_)
    q = np.mean([depth.measure_propagation(depth.init_layers(jax.random.PRNGKey(s), [784] + [width] * layers_,
                                                             "gaussian", 1.5, 0.05), xa, xb, "tanh")["q"]
                 for s in range(n)], axis=0)
    rtol = 4 * np.sqrt(2 * np.arange(1, layers_ + 1) / (width * n))
    assert np.all(np.abs(q / np.asarray(pred["q"]) - 1) < rtol)


@pytest.mark.slow
def test_linear_orthogonal_network_is_an_isometry(inputs):
    ortho = depth.init_layers(jax.random.PRNGKey(0), [784] + [128] * 10, "orthogonal", 1.0, 0.0)
    sv = depth.jacobian_singular_values(ortho, inputs[0], "identity")
    np.testing.assert_allclose(sv, 1.0, rtol=1e-5)
    gauss = depth.init_layers(jax.random.PRNGKey(0), [784] + [128] * 10, "gaussian", 1.0, 0.0)
    summary = depth.spectrum_summary(depth.jacobian_singular_values(gauss, inputs[0], "identity"))
    assert summary["max_over_min"] > 100 and summary["std_log"] > 0.5


@pytest.mark.parametrize("n_layers", [5, 32])
def test_lsuv_output_variances_are_one_within_tolerance(inputs, n_layers):
    layers = depth.init_layers(jax.random.PRNGKey(1), [784] + [96] * n_layers, "lsuv", 1.0, 0.0, inputs, "tanh")
    hs = depth.preactivations(layers, jnp.asarray(inputs), "tanh")
    assert all(abs(float(jnp.var(h)) - 1) < depth.LSUV_TOL for h in hs)
    again = depth.init_layers(jax.random.PRNGKey(1), [784] + [96] * n_layers, "lsuv", 1.0, 0.0, inputs, "tanh")
    assert all(bool((a[0] == b[0]).all()) for a, b in zip(layers, again))  # deterministic for a seed


def test_lsuv_in_the_registry_for_the_mlp(tiny_data):
    ds = data.load(tiny_data)
    x, y = data.example_batch(ds)
    cfg = config.ModelConfig(hidden=(64, 64, 64), init="lsuv", act="relu")
    s = stats.init_stats(cfg, x, y).summary
    assert all(abs(v - 1) < 0.1 for v in s["act_var"])  # every layer's output, logits included


@pytest.mark.slow
def test_depth_command_quick(tiny_data, tmp_path):
    result = CliRunner().invoke(app, ["depth", "--init", "orthogonal,gaussian", "--width", "48", "--depth", "12",
                                      "--jacobian-depths", "3,12", "--phase", "--quick", "--data-dir", str(tiny_data),
                                      "--out", str(tmp_path), "--name", "d", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run_dir = tmp_path / "depth" / "d"
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["theory"]["chi_1"] == pytest.approx(out["theory"]["chi_1"])
    assert [p["init"] for p in written["propagation"]] == ["orthogonal", "gaussian"]
    assert len(written["propagation"][0]["measured"]["q"]) == 12 and len(written["jacobian"]) == 4
    phase = written["phase"]
    assert phase["n_cells"] == 12 and 0 <= phase["agreement"] <= 1 and phase["threshold"] == 0.5
    for cell in phase["cells"]:
        assert cell["predicted_trainable"] == (cell["depth"] < 6 * cell["xi_c"])
    for png in ("propagation.png", "jacobian_spectrum.png", "phase.png"):
        assert (run_dir / png).read_bytes()[:4] == b"\x89PNG"


def test_depth_runs_of_other_seeds_keep_their_own_directory(tiny_data, tmp_path):
    """The seed changes every draw, so a run of seed 7 does not overwrite the seed-0 run."""
    for seed in (0, 7):
        result = CliRunner().invoke(app, ["depth", "--init", "gaussian", "--width", "16", "--depth", "4",
                                          "--jacobian-depths", "4", "--seed", str(seed), "--data-dir", str(tiny_data),
                                          "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
    runs = sorted(p.name for p in (tmp_path / "depth").iterdir())
    assert runs == ["tanh-sw1.76-sb0.05-w16-d4-gaussian", "tanh-sw1.76-sb0.05-w16-d4-gaussian-seed7"]
    seeds = [json.loads((tmp_path / "depth" / r / "metrics.json").read_text())["seed"] for r in runs]
    assert seeds == [0, 7]


@pytest.mark.parametrize("args, text", [
    (["--init", "nope"], "Unknown depth initializer 'nope'"),
    (["--jacobian-depths", "4,200"], "deeper than --depth"),
    (["--phase-depths", "0:5:3"], "needs distinct positive values"),
    (["--phase", "--phase-depths", ""], "--phase-depths"),  # empty: an error, not the default grid
    (["--phase", "--phase-sigma-w2", ""], "--phase-sigma-w2"),
    (["--phase", "--steps", "1563"], "--steps must be between 1 and 1562, not 1563."),  # was cut to 1562 unsaid
    (["--sigma-w2", "0"], "--sigma-w2 must be above 0, not 0."),
    (["--width", "0"], "--width must be between 1 and 65536, not 0."),
    (["--threshold", "2"], "--threshold must be between 0 and 1, not 2."),
    (["--width", "60000", "--depth", "2000"], "needs about"),
    (["--seed", "-1"], "--seed must be between 0 and 4294967295, not -1."),
    (["--name", ".."], "--name must be a plain directory name"),
])
def test_depth_bad_input(tmp_path, args, text):
    result = CliRunner().invoke(app, ["depth", *args, "--out", str(tmp_path)])
    assert result.exit_code != 0 and text in result.output and "Traceback" not in result.output
