"""Instruments recorded inside the compiled epoch, against numpy recomputed from a step-by-step oracle."""

import functools
import json

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from initopt import config
from initopt.cli import app
from initopt import data
from initopt.engine import instruments, loop, steps
from initopt.engine import plan as plan_lib
from initopt.nn import networks
from initopt.runtime import env


def np_kernels(params, names):
    return [np.asarray(params["params"][n]["kernel"], np.float64) for n in names]


def np_conv_same(x_BxHxWxC, kernel, bias):
    """A stride-1 SAME convolution in numpy: every output is the sum over its zero-padded window."""
    kh, kw = kernel.shape[:2]
    padded = np.pad(x_BxHxWxC, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))  # B,H,W,C,kh,kw
    return np.einsum("bhwcij,ijco->bhwo", windows, kernel) + bias


def np_max_pool2(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def np_preacts(model: str, params, x_BxD) -> list[np.ndarray]:
    """Every kernel layer's output, computed in numpy (float64) from the parameters alone: the MLP
    (relu) or DeepOBS's 2c2d."""
    p = {k: {n: np.asarray(a, np.float64) for n, a in v.items()} for k, v in params["params"].items()}
    x = np.asarray(x_BxD, np.float64)
    out = []
    if model == "2c2d":
        x = x.reshape(len(x), 28, 28, 1)
        for name in ("Conv_0", "Conv_1"):
            x = np_conv_same(x, p[name]["kernel"], p[name]["bias"])
            out.append(x)
            x = np_max_pool2(np.maximum(x, 0))
        x = x.reshape(len(x), -1)
    dense = sorted((k for k in p if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
    for i, name in enumerate(dense):
        x = x @ p[name]["kernel"] + p[name]["bias"]
        out.append(x)
        x = np.maximum(x, 0)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model,names", [
    ("mlp", ["Dense_0", "Dense_1", "Dense_2"]),
    ("2c2d", ["Conv_0", "Conv_1", "Dense_0", "Dense_1"]),  # its epoch runs as programs of unrolled steps
])
def test_every_instrument_against_numpy(tiny_data, model, names):
    env.set_prng("legacy")
    ds = data.load(tiny_data)
    splits, x = data.make_splits(ds), data.example_batch(ds)[0]
    overrides = {"model.hidden": [24, 16]} if model == "mlp" else {"model.name": model}
    cfg = config.load(overrides={**overrides, "train.epochs": 1, "train.batch_size": 50,
                                 "train.instruments": 3, "train.lr": 0.05})
    plan = plan_lib.plan_for(cfg, "momentum", len(splits.train_y))
    progress = loop.initial_progress(plan, x)
    params0 = jax.tree.map(lambda a: a[0], progress.params0)
    state = jax.tree.map(lambda a: a[0], progress.state)  # the lone trial's state, for the oracle loop
    fitted = loop.fit(plan, splits, progress)
    h = fitted.history
    order = plan_lib.batch_orders(plan, len(splits.train_y))[42][0]
    recorded = instruments.record_steps(len(order), 3)
    assert h.instrument_steps == recorded == [3, 6, 9]  # 10 steps: blocks of 3, the last step unrecorded

    # the engine's own step program (a CNN's compiler options included): the trajectory is the
    # engine's to float32 rounding, which nine steps would otherwise amplify to 2.5e-5 (grad_norm)
    @functools.partial(jax.jit, compiler_options=networks.CONV_COMPILER_OPTIONS if model != "mlp" else None)
    def step(state, x_BxD, y_B):
        grad_fn = jax.value_and_grad(steps.loss_and_accuracy, has_aux=True)
        _, grads = grad_fn(state.params, state.apply_fn, x_BxD, y_B)
        return state.apply_gradients(grads=grads), grads

    probe = splits.val_x[: instruments.PROBE_SIZE]
    expected = {q: [] for q in instruments.QUANTITIES}
    for s, idx in enumerate(order, start=1):
        before = state.params
        state, grads = step(state, splits.train_x[idx], splits.train_y[idx])
        if s not in recorded:
            continue
        w_b, w_a, w0, g = (np_kernels(p, names) for p in (before, state.params, params0, grads))
        z = np_preacts(model, state.params, probe)
        expected["grad_norm"].append([np.linalg.norm(gi) for gi in g])
        expected["update_ratio"].append([np.log10(np.std(a - b) / np.std(b)) for a, b in zip(w_a, w_b)])
        expected["dist_from_init"].append([np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(w_a, w0)])
        expected["weight_var"].append([np.var(a) for a in w_a])
        expected["preact_var"].append([np.var(zi) for zi in z])
        expected["dead_fraction"].append([np.mean(np.all(zi <= 0, axis=0)) for zi in z[:-1]] + [np.nan])
    for q in instruments.QUANTITIES:  # preact_var: float32 in the program against float64 here
        np.testing.assert_allclose(h.instruments[q][0], expected[q], rtol=1e-5 if q != "preact_var" else 1e-4,
                                   atol=1e-7, err_msg=q)


def test_instruments_need_no_relu_for_the_rest(tiny_data):
    env.set_prng("legacy")
    ds = data.load(tiny_data)
    splits, x = data.make_splits(ds), data.example_batch(ds)[0]
    cfg = config.load(overrides={"model.hidden": [16], "model.act": "tanh", "train.epochs": 1,
                                 "train.batch_size": 50, "train.instruments": 1})
    plan = plan_lib.plan_for(cfg, "sgd", len(splits.train_y))
    h = loop.fit(plan, splits, loop.initial_progress(plan, x)).history
    assert np.isnan(h.instruments["dead_fraction"][0]).all() and np.isfinite(h.instruments["preact_var"][0]).all()


def test_parse():
    assert [config.parse_instruments(t) for t in ("off", "epoch", "8", " Epoch ")] == [0, 1, 8, 1]
    with pytest.raises(Exception, match="--instruments takes off, epoch"):
        config.parse_instruments("0")


@pytest.mark.slow
def test_initializations_compared_by_training(tiny_data, tmp_path):
    result = CliRunner().invoke(app, ["train", "--init", "kaiming,normal:0.01", "--optimizer", "sgd", "--epochs", "3",
                                      "--seeds", "2", "--hidden", "32,16", "--batch-size", "50", "--quiet",
                                      "--data-dir", str(tiny_data), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["runs"]) == {"kaiming", "normal:0.01"}
    assert out["runs"]["normal:0.01"]["init"] == "normal" and out["runs"]["normal:0.01"]["init_scale"] == 0.01
    (group,) = (tmp_path / "train").iterdir()
    comparison = json.loads((group / "comparison.json").read_text())
    (pair,) = comparison["paired"]
    assert (pair["a"], pair["b"], pair["n"]) == ("kaiming", "normal:0.01", 2)
    for run in ("kaiming", "normal-0.01"):
        metrics = json.loads((group / run / "metrics.json").read_text())
        inst = metrics["instruments"]
        assert np.asarray(inst["update_ratio"]).shape == (2, 12, 3)  # trials, 4 records x 3 epochs, layers
        assert len(inst["steps"]) == 12 and (group / run / "instruments.png").read_bytes()[:4] == b"\x89PNG"
    # The same seeds and batch orders: the first records differ only through the initialization.
    k = json.loads((group / "kaiming" / "metrics.json").read_text())["instruments"]
    n = json.loads((group / "normal-0.01" / "metrics.json").read_text())["instruments"]
    assert np.mean(n["grad_norm"]) < np.mean(k["grad_norm"])  # small weights: vanishing gradients
    report = CliRunner().invoke(app, ["report", "--out", str(tmp_path), "--json"])
    assert report.exit_code == 0 and (tmp_path / "report" / "instruments.png").is_file()
