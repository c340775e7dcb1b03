"""Networks other than the MLP: DeepOBS's CNNs and a user's own Flax module, through every command."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from initopt import config, data
from initopt.cli import app
from initopt.engine import placement, steps
from initopt.engine import plan as plan_lib
from initopt.nn import initializers, layers, networks
from initopt.runtime import env
from initopt.studies import stats

ROOT = Path(__file__).resolve().parents[1]
USER_MODEL = '''
import flax.linen as nn


class Small(nn.Module):
    num_classes: int
    width: int = 16

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3), name="stem")(x[..., None]))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.width, name="hidden")(x))
        return nn.Dense(self.num_classes, name="logits")(x)


def small(num_classes, width=16):
    return Small(num_classes, width)


def dense_first(num_classes):
    class DenseFirst(nn.Module):  # a Dense called before a Conv, named against the alphabet
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(28 * 4, name="z_dense")(x.reshape(x.shape[0], -1)).reshape(x.shape[0], 28, 4, 1)
            x = nn.Conv(2, (3, 3), name="a_conv")(x).reshape(x.shape[0], -1)
            return nn.Dense(num_classes, name="m_out")(x)
    return DenseFirst()


def raises(num_classes):
    raise ValueError("no such layer")


def wrong_classes(num_classes):
    return Small(num_classes + 1)


def not_a_module(num_classes):
    return 3


def with_batch_stats(num_classes):
    class BN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.BatchNorm(use_running_average=False)(x.reshape(x.shape[0], -1))
            return nn.Dense(num_classes)(x)
    return BN()
'''


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def user_model(tmp_path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(USER_MODEL)
    return path


def cfg_of(**model):
    return config.load(overrides={f"model.{k}": v for k, v in model.items()}).model


@pytest.mark.parametrize("factory,text", [
    ("raises", "Model factory {f}:raises raised ValueError: no such layer."),
    ("wrong_classes", "maps a batch of 2 samples to shape (2, 11), not the dataset's (2, 10) logits."),
    ("not_a_module", "Model factory {f}:not_a_module returned int, not a flax.linen Module."),
    ("missing", "has no 'missing'."),
    ("with_batch_stats", "has variables besides its parameters (batch_stats)"),
])
def test_a_bad_factory_is_one_sentence_before_any_work(user_model, tiny_data, tmp_path, factory, text):
    for command in ("init-stats", "train"):
        result = invoke(command, "--model", f"{user_model}:{factory}", "--data-dir", tiny_data, "--out", tmp_path / "o",
                        "--epochs", "1") if command == "train" else invoke(
            command, "--model", f"{user_model}:{factory}", "--data-dir", tiny_data, "--out", tmp_path / "o")
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert text.format(f=user_model) in " ".join(result.output.split()), result.output
        assert not list((tmp_path / "o").rglob("*.json"))  # nothing written


def test_model_choices_and_their_refusals(tmp_path, tiny_data):
    for args, text in [
        (["--model", "resnet"], "Unknown model 'resnet'"),
        (["--model", "nofile.py:f"], "Model file nofile.py does not exist."),
        (["--model", "2c2d", "--hidden", "64"], "model.hidden is the MLP's sizes; model 2c2d has its own layers"),
        (["--model", "2c2d", "--model-arg", "width=3"], "Model 2c2d takes no arguments; width given."),
        (["--model-arg", "width=3"], "model.args are a model factory's arguments"),
        (["--model", "2c2d", "--init", "lsuv"], "--init lsuv is the MLP's"),
    ]:
        result = invoke("init-stats", *args, "--data-dir", tiny_data, "--out", tmp_path)
        assert result.exit_code == 1 and text in " ".join(result.output.split()), result.output
    result = invoke("depth", "--model", "2c2d", "--out", tmp_path)
    assert result.exit_code == 1 and "depth measures fully connected networks" in result.output


def test_kernel_layers_in_call_order_by_module_path(user_model):
    net = networks.get(cfg_of(name=f"{user_model}:dense_first"))
    assert net.kernel_names == ["z_dense", "a_conv", "m_out"]  # call order, not the alphabet
    assert net.kernel_shapes == ((784, 112), (3, 3, 1, 2), (224, 10))
    assert networks.get(cfg_of(name="2c2d")).kernel_names == ["Conv_0", "Conv_1", "Dense_0", "Dense_1"]
    net = networks.get(cfg_of(name="3c3d"), (32, 32, 3))  # CIFAR-10's samples
    assert [s[-1] for s in net.kernel_shapes] == [64, 96, 128, 512, 256, 10]
    # 32 -conv 5 VALID-> 28 -pool-> 14 -conv 3 VALID-> 12 -pool-> 6 -conv 3 SAME-> 6 -pool-> 3: DeepOBS's 1152
    assert net.kernel_shapes[3][0] == 3 * 3 * 128
    assert networks.get(cfg_of(name="3c3d"), (32, 32, 3)) is net  # one object per model: compiled programs found again


def test_conv_fans_are_receptive_field_times_channels():
    assert initializers.fans((5, 5, 32, 64)) == (800, 1600)
    assert initializers.fans((784, 512)) == (784, 512)
    key = jax.random.PRNGKey(0)
    for name, expected_var in (("kaiming", 2 / 800), ("xavier", 2 / (800 + 1600)), ("equal_variance", 1 / 800)):
        rule = initializers.INITIALIZERS[name].initializer(1, "relu", None)
        w = np.asarray(rule(key, (5, 5, 32, 64)))
        assert np.var(w) == pytest.approx(expected_var, rel=0.03), name
        assert initializers.kernel_variances(name, "relu", [(5, 5, 32, 64)] * 2)[1] == pytest.approx(expected_var)
    w = np.asarray(initializers.truncated_normal(0.05)(key, (5, 5, 32, 64)))
    assert np.abs(w).max() <= 0.1 and np.var(w) == pytest.approx(initializers.TRUNCATED_NORMAL_VAR * 0.0025, rel=0.03)


@pytest.mark.slow
def test_conv_mean_field_against_the_measured_variance(tiny_data):
    """The first Conv's predicted pre-activation variance (fan-in = 5 x 5 x 1, zero padding at the
    borders counted) against its measured variance averaged over 12 initialisations; the layers
    after pooling have no prediction, and say why."""
    env.set_prng("legacy")
    ds = data.load(tiny_data)
    x, y = data.example_batch(ds, size=256)
    cfg = cfg_of(name="2c2d", init="kaiming")
    result = stats.seeds_stats(cfg, x, y, list(range(12)))
    predicted = result.summary["act_var_predicted"]
    measured = result.summary["act_var_seed_mean"][0]
    assert predicted[0] == pytest.approx(measured, rel=0.06)
    images = np.asarray(x, np.float64).reshape(-1, 28, 28)
    interior = 25 * np.mean(np.square(images[:, 2:-2, 2:-2]))  # what fan_in * mean(x^2) would say, no borders
    assert predicted[0] != pytest.approx(interior, rel=0.01)  # the borders count
    assert predicted[1:] == [None, None, None]
    assert result.summary["act_var_predicted_why"][1].startswith("after max-pooling")
    assert result.summary["fan_in"] == [25, 800, 3136, 1024]
    # The MLP keeps its chain from the input through every layer.
    mlp = stats.mean_field(cfg_of(hidden=[64, 32]), x)
    assert all(v is not None and why is None for v, why in mlp)


@pytest.mark.slow
def test_default_init_keeps_the_modules_own_kernels(tiny_data):
    x = data.example_batch(data.load(tiny_data), size=8)[0]
    cfg = cfg_of(name="2c2d", init="default")
    params = networks.init_params(cfg, x, seed=3)
    net = networks.get(cfg)
    own = net.init(jax.random.PRNGKey(3), x[:1])
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(own)):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.asarray(params["params"]["Conv_0"]["bias"]) == np.float32(0.05))  # DeepOBS's biases
    redrawn = networks.init_params(cfg_of(name="2c2d", init="kaiming"), x, seed=3)
    assert np.var(redrawn["params"]["Conv_1"]["kernel"]) == pytest.approx(2 / 800, rel=0.05)
    np.testing.assert_array_equal(redrawn["params"]["Conv_1"]["bias"], params["params"]["Conv_1"]["bias"])


@pytest.mark.slow
def test_stepped_epoch_is_the_scanned_epoch(user_model, tiny_data):
    """A convolutional network's epoch (programs of unrolled steps, a recorded step between them)
    gives the numbers of the one-program scanned epoch; trials one after another give each lone
    trial's numbers."""
    env.set_prng("legacy")
    ds = data.load(tiny_data)
    splits, x = data.make_splits(ds), data.example_batch(ds)[0]
    cfg = config.load(overrides={"model.name": f"{user_model}:small", "train.batch_size": 50, "train.seeds": 2,
                                 "train.epochs": 1, "train.instruments": 2})
    plan = plan_lib.plan_for(cfg, "momentum", len(splits.train_y))
    mesh = placement.trial_mesh(2)
    order = np.stack([plan_lib.batch_orders(plan, len(splits.train_y))[t.seed][0] for t in plan.trials])
    xd, yd = placement.replicate(splits.train_x, mesh), placement.replicate(splits.train_y, mesh)
    probe = placement.replicate(splits.val_x, mesh)
    state = steps.initial_state(plan, networks.get(plan.model), x)
    params0 = jax.tree.map(jnp.copy, state.params)
    copy = jax.tree.map(jnp.copy, state)
    told = []  # the steps done within the epoch, as its programs end (every trial's: here one after another)
    stepped, m1 = steps.stepped_epoch(state, xd, yd, order, mesh, params0, probe, n_records=2, dead_units=True,
                                      on_steps=told.append)
    assert sum(told) == order.shape[0] * order.shape[1] and len(told) > order.shape[0]
    scanned, m2 = steps.train_epoch(copy, xd, yd, placement.shard_trials(order, mesh), params0, probe, n_records=2,
                                    dead_units=True)
    m2 = jax.device_get(m2)
    for a, b in zip(jax.tree.leaves(stepped.params), jax.tree.leaves(scanned.params)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    for key in ("loss", "acc", "lr"):
        np.testing.assert_allclose(m1[key], m2[key], rtol=1e-5)
    assert list(m1["finite"]) == list(m2["finite"]) == [True, True]
    for q, values in m2["instruments"].items():
        np.testing.assert_allclose(m1["instruments"][q], values, rtol=1e-4, atol=1e-6, err_msg=q)
    # each trial alone: the same bits as in the pair
    for t in range(2):
        lone_plan = plan_lib.plan_for(cfg.model_copy(update={"train": cfg.train.model_copy(update={
            "seeds": 1, "seed": plan.trials[t].seed})}), "momentum", len(splits.train_y))
        lone, m = steps.stepped_epoch(steps.initial_state(lone_plan, networks.get(lone_plan.model), x), xd, yd, order[t:t + 1], placement.trial_mesh(1),
                                      jax.tree.map(lambda a: a[t:t + 1], params0), probe, 2, True)
        for a, b in zip(jax.tree.leaves(lone.params), jax.tree.leaves(stepped.params)):
            np.testing.assert_array_equal(a[0], b[t])
        np.testing.assert_array_equal(m["loss"][0], m1["loss"][t])


@pytest.mark.slow
def test_user_model_through_train_tune_and_init_stats(user_model, tiny_data, tmp_path):
    model = f"{user_model}:small"
    out = tmp_path / "o"
    result = invoke("train", "--model", model, "--model-arg", "width=8", "--data-dir", tiny_data, "--out", out,
                    "--epochs", "2", "--batch-size", "50", "--seeds", "2", "--optimizer", "momentum", "--init",
                    "xavier", "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["instruments"]["layers"] == ["stem", "hidden", "logits"]
    assert np.shape(m["instruments"]["grad_norm"]) == (2, 2 * 4, 3)  # trials, records, layers
    assert m["test_acc"] > 0.5 and len(m["test_acc_per_seed"]) == 2
    run_dir = Path(m["run_dir"])
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["model"]["name"] == model and saved["model"]["args"] == {"width": 8}
    assert saved["model"]["init"] == "xavier"
    # The run's own config reproduces it, bit for bit.
    again = invoke("train", "--config", run_dir / "config.json", "--data-dir", tiny_data, "--out", tmp_path / "again",
                   "--json", "--quiet")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["test_acc_per_seed"] == m["test_acc_per_seed"]
    assert json.loads(again.stdout)["best_val_acc_per_seed"] == m["best_val_acc_per_seed"]

    result = invoke("tune", "--model", model, "--data-dir", tiny_data, "--out", out, "--epochs", "1", "--batch-size",
                    "50", "--seeds", "1", "--optimizer", "momentum", "--lr-grid", "0.01,0.1", "--json")
    assert result.exit_code == 0, result.output
    tuned = json.loads(result.stdout)["optimizers"]["momentum"]
    assert [g["lr"] for g in tuned["grid"]] == [0.01, 0.1] and tuned["selected"]["lr"] in (0.01, 0.1)

    result = invoke("init-stats", "--model", model, "--data-dir", tiny_data, "--out", out, "--seeds", "3", "--json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["layers"] == ["stem", "hidden", "logits"] and s["kernel_shapes"][0] == [3, 3, 1, 4]
    assert s["act_var_predicted"] == [None] * 3 and "your own" in s["act_var_predicted_why"][0]
    run_dir = Path(s["run_dir"])
    assert run_dir.name == f"kaiming-relu-seeds3-{user_model.stem}_small"
    for png in ("weight_hist.png", "activation_hist.png", "gradient_hist.png", "variance_seeds.png"):
        assert (run_dir / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_problem_configs_are_deepobs(tiny_data, tmp_path):
    expected = {"fmnist_mlp": ("fashion_mnist", "mlp"), "fmnist_2c2d": ("fashion_mnist", "2c2d"),
                "mnist_2c2d": ("mnist", "2c2d"), "cifar10_3c3d": ("cifar10", "3c3d")}
    for name, (dataset, model) in expected.items():
        cfg = config.load(ROOT / "configs" / "problems" / f"{name}.toml")
        assert (cfg.data.dataset, cfg.model.name, cfg.train.batch_size, cfg.train.epochs) == (dataset, model, 128, 100)
    assert config.load(ROOT / "configs/problems/fmnist_mlp.toml").model.hidden == (1000, 500, 100)
    result = invoke("init-stats", "--config", ROOT / "configs/problems/fmnist_2c2d.toml", "--data-dir", tiny_data,
                    "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["model"] == "2c2d" and s["init"] == "default"
    # DeepOBS's own rule: N(0, 0.05^2) truncated at two std
    assert s["weight_var"][1] == pytest.approx(initializers.TRUNCATED_NORMAL_VAR * 0.0025, rel=0.05)
    assert s["act_var_predicted"][0] is not None


@pytest.mark.slow
@pytest.mark.parametrize("shape,window,stride", [((3, 28, 28, 4), 2, 2), ((3, 28, 28, 4), 3, 2), ((2, 13, 11, 3), 3, 2),
                                                 ((2, 6, 6, 2), 2, 2)])
def test_max_pool_is_flax_max_pool(shape, window, stride):
    """The CNNs' pooling (strided slices forward, the first maximum's index backward) against
    ``nn.max_pool``: the same values, and the same gradients, ties included (rows of equal values:
    the first maximum of a window takes the gradient in both); an input position in two windows
    sums its two gradients, in another order where windows overlap (float32 rounding)."""
    import flax.linen as nn

    x = jax.random.normal(jax.random.PRNGKey(1), shape).at[:, :3].set(0.5)
    ref = lambda z: nn.max_pool(z, (window, window), (stride, stride), padding="SAME")  # noqa: E731
    ours = lambda z: layers.max_pool(z, window, stride)  # noqa: E731
    np.testing.assert_array_equal(ours(x), ref(x))
    g = jax.random.normal(jax.random.PRNGKey(2), ref(x).shape)
    for f_in in (lambda z: z, jax.nn.relu):
        grads = [jax.jit(jax.grad(lambda z, f=f: jnp.sum(f(f_in(z)) * g)))(x) for f in (ours, ref)]
        np.testing.assert_allclose(grads[0], grads[1], rtol=0, atol=1e-6 if window > stride else 0)
        assert np.count_nonzero(grads[0]) == np.count_nonzero(grads[1])


@pytest.mark.parametrize("channels,padding,strides", [(1, "SAME", (1, 1)), (1, "VALID", (1, 1)),
                                                      (1, ((1, 2), (0, 3)), (1, 1)), (3, "SAME", (1, 1)),
                                                      (1, "SAME", (2, 2))])
def test_conv_is_lax_conv(channels, padding, strides):
    """``layers.conv_general_dilated`` (one input channel: shifted copies forward) against
    ``lax.conv_general_dilated``: the same outputs and gradients to float32 rounding; three input
    channels and strides 2 take lax's own path, bit for bit."""
    from jax import lax

    x = jax.random.normal(jax.random.PRNGKey(1), (2, 9, 8, channels))
    w = jax.random.normal(jax.random.PRNGKey(2), (5, 3, channels, 6))
    g = jax.random.normal(jax.random.PRNGKey(3), lax.conv_general_dilated(
        x, w, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")).shape)

    def loss(conv):
        return lambda x, w: jnp.sum(conv(x, w, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")) * g)

    ref, ours = (jax.jit(jax.value_and_grad(loss(c), (0, 1)))(x, w) for c in (lax.conv_general_dilated, layers.conv_general_dilated))
    exact = channels > layers.SHIFTED_MAX_CHANNELS or strides != (1, 1)
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(ours)):
        np.testing.assert_allclose(b, a, rtol=0 if exact else 1e-5, atol=0 if exact else 1e-4)


class _FlaxTwoC2D(__import__("flax.linen", fromlist=["nn"]).Module):
    """2c2d as DeepOBS writes it with Flax's own layers: ``nn.Conv`` and ``nn.max_pool``."""

    @__import__("flax.linen", fromlist=["nn"]).compact
    def __call__(self, x):
        import flax.linen as nn

        x = x[..., None]
        for channels in (32, 64):
            x = nn.max_pool(jax.nn.relu(nn.Conv(channels, (5, 5), padding="SAME")(x)), (2, 2), (2, 2), "SAME")
        x = jax.nn.relu(nn.Dense(1024)(x.reshape(x.shape[0], -1)))
        return nn.Dense(10)(x)


@pytest.mark.slow
def test_builtin_cnn_is_flax_conv_and_max_pool():
    """2c2d's faster layers, inside the compiled training step with its compiler options, give
    the numbers of ``nn.Conv`` and ``nn.max_pool`` under XLA's defaults: the loss and every
    gradient to float32 rounding, on the same parameters."""
    import optax

    x = jax.random.uniform(jax.random.PRNGKey(1), (16, 28, 28))
    y = jax.random.randint(jax.random.PRNGKey(2), (16,), 0, 10)
    params = networks.TwoC2D().init(jax.random.PRNGKey(0), x)

    def loss(module):
        return lambda p: optax.softmax_cross_entropy_with_integer_labels(module.apply(p, x), y).mean()

    ours = jax.jit(jax.value_and_grad(loss(networks.TwoC2D())), compiler_options=networks.CONV_COMPILER_OPTIONS)(params)
    ref = jax.jit(jax.value_and_grad(loss(_FlaxTwoC2D())))(params)
    assert jax.tree.structure(ours) == jax.tree.structure(ref)
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(ours)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * float(np.abs(a).max()))
