"""The networks a run can use, behind one :class:`Network`: the reference MLP, DeepOBS's ``2c2d``
and ``3c3d``, and the user's own Flax module from ``module:factory`` or ``file.py:factory``.

A Network applies its module to flattened rows (reshaped to the dataset's sample shape), names its
kernel layers (every ``kernel`` parameter, in the order the forward pass calls their modules,
named by module path), and captures each kernel layer's output (its pre-activation) with Flax's
``capture_intermediates``: what the statistics and the instruments read, for any model.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from initopt.config.schema import ModelConfig
from initopt.errors import ConfigError
from initopt.nn import activations
from initopt.nn.activations import ACTIVATIONS
from initopt.nn import model
from initopt.nn.layers import conv_general_dilated, max_pool
from initopt.nn.initializers import DATA_DEPENDENT, INITIALIZERS, OWN, canonical_name, resolve_scale, truncated_normal

BUILTIN = ("mlp", "2c2d", "3c3d")
MLP = "mlp"
# A convolutional network's training steps, records and evaluations compile with these options:
# YNNPACK for matrix products and reductions, XLA's own (Eigen) convolutions, which on XLA:CPU
# are faster than YNNPACK's (docs/PERFORMANCE.md). The MLP's programs keep the defaults (the
# reference's bits).
CONV_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


def images(x):
    """A batch of samples as NHWC images: (B, H, W) gains a channel axis."""
    return x[..., None] if x.ndim == 3 else x


class TwoC2D(nn.Module):
    """DeepOBS's ``2c2d``: two 5x5 convolutions (32, 64 channels, SAME) each followed by the
    activation and 2x2 max-pooling, a Dense of 1024, the logits. DeepOBS's initialisation is the
    module's own: kernels N(0, 0.05^2) truncated at two std, biases 0.05."""

    num_classes: int = 10
    act: Callable = jax.nn.relu

    @nn.compact
    def __call__(self, x):
        kernel, bias = truncated_normal(0.05), nn.initializers.constant(0.05)
        x = images(x)
        for channels in (32, 64):
            x = self.act(nn.Conv(channels, (5, 5), padding="SAME", kernel_init=kernel, bias_init=bias,
                                 conv_general_dilated=conv_general_dilated)(x))
            x = max_pool(x, 2, 2)
        x = x.reshape(x.shape[0], -1)
        x = self.act(nn.Dense(1024, kernel_init=kernel, bias_init=bias)(x))
        return nn.Dense(self.num_classes, kernel_init=kernel, bias_init=bias)(x)


class ThreeC3D(nn.Module):
    """DeepOBS's ``3c3d`` (CIFAR-10): convolutions of 64 (5x5, VALID), 96 (3x3, VALID) and 128
    (3x3, SAME) channels, each followed by the activation and 3x3 max-pooling of stride 2 (SAME);
    Dense layers of 512 and 256, the logits. Its own initialisation is DeepOBS's: Glorot uniform
    kernels, zero biases (DeepOBS adds an L2 of 0.002, which is the optimizer's to add here)."""

    num_classes: int = 10
    act: Callable = jax.nn.relu

    @nn.compact
    def __call__(self, x):
        kernel = nn.initializers.xavier_uniform()
        x = images(x)
        for channels, window, padding in ((64, 5, "VALID"), (96, 3, "VALID"), (128, 3, "SAME")):
            x = self.act(nn.Conv(channels, (window, window), padding=padding, kernel_init=kernel,
                                 conv_general_dilated=conv_general_dilated)(x))
            x = max_pool(x, 3, 2)
        x = x.reshape(x.shape[0], -1)
        for features in (512, 256):
            x = self.act(nn.Dense(features, kernel_init=kernel)(x))
        return nn.Dense(self.num_classes, kernel_init=kernel)(x)


@dataclasses.dataclass(frozen=True)
class LayerTheory:
    """How the mean-field map sees one kernel layer: a Dense or a Conv (its window and padding), and
    what feeds it: the ``input``, the previous layer's activation (``act``) or a ``pool``."""

    follows: str
    window: tuple[int, ...] = ()  # a Conv's; () for a Dense
    padding: str = "VALID"


THEORY = {
    "2c2d": (LayerTheory("input", (5, 5), "SAME"), LayerTheory("pool", (5, 5), "SAME"), LayerTheory("pool"),
             LayerTheory("act")),
    "3c3d": (LayerTheory("input", (5, 5)), LayerTheory("pool", (3, 3)), LayerTheory("pool", (3, 3), "SAME"),
             LayerTheory("pool"), LayerTheory("act"), LayerTheory("act")),
}


class Network:
    """One model of one problem. Calling it applies the module to rows ``(B, D)`` (``apply_fn`` of
    a TrainState); one object per model (:func:`get`), so compiled programs that hold it are found
    again."""

    def __init__(self, name: str, module: nn.Module, sample_shape: tuple[int, ...], num_classes: int, act: str | None,
                 apply: Callable | None = None):
        self.name, self.module, self.num_classes, self.act = name, module, num_classes, act
        self.sample_shape = tuple(sample_shape)
        self._apply = apply or module.apply
        self.kernel_paths, self.kernel_shapes, self.param_count, self.units = _layout(self)
        self.theory = THEORY.get(name) if name != MLP else (LayerTheory("input"),) + (LayerTheory("act"),) * (
            len(self.kernel_paths) - 1)

    def __repr__(self) -> str:
        return f"Network({self.name!r})"

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN

    @property
    def convolutional(self) -> bool:
        return any(len(s) > 2 for s in self.kernel_shapes)

    @property
    def kernel_names(self) -> list[str]:
        """Each kernel layer's module path: ``Dense_0``, ``Conv_1``, ``Block_0/Conv_0``."""
        return ["/".join(p) for p in self.kernel_paths]

    def inputs(self, x_BxD):
        """Rows as the module's samples (the MLP flattens them itself: the reference's program)."""
        return x_BxD if self.name == MLP else x_BxD.reshape((x_BxD.shape[0], *self.sample_shape))

    def __call__(self, params, x_BxD):
        return self._apply(params, self.inputs(x_BxD))

    def preacts(self, params, x_BxD, module: nn.Module | None = None):
        """``(logits, [each kernel layer's output])``; ``module`` replaces the network's own (one with
        the same layers, e.g. the statistics' MLP whose activation is chosen per cell)."""
        logits, state = (module or self.module).apply(params, self.inputs(x_BxD), capture_intermediates=True,
                                                      mutable=["intermediates"])
        return logits, [_at(state["intermediates"], p)["__call__"][0] for p in self.kernel_paths]

    def kernels(self, params) -> list:
        """The kernels in layer order."""
        return [_at(params["params"], p)["kernel"] for p in self.kernel_paths]

    def with_kernels(self, params, kernels: list):
        """``params`` with its kernels replaced, in layer order."""
        tree = jax.tree.map(lambda a: a, params)  # a copy of the dict structure
        for path, k in zip(self.kernel_paths, kernels):
            _at(tree["params"], path)["kernel"] = k
        return tree

    def init(self, key, example_BxD):
        return self.module.init(key, self.inputs(example_BxD))


def _at(tree, path):
    for name in path:
        tree = tree[name]
    return tree


def _layout(net: Network):
    """Kernel paths in call order, their shapes, the parameter count and the outputs per example
    of every module (the memory estimate's activations), from one abstract trace: no computation.
    A user's module that fails, has variables other than params, or gives logits of the wrong shape
    is refused in one sentence."""
    if net.name == MLP:
        return _mlp_layout(net)
    order: list[tuple[str, ...]] = []
    others: list[str] = []
    units: list[int] = []
    example = jnp.zeros((2, *net.sample_shape), jnp.float32)

    def init():
        variables = net.module.init(jax.random.PRNGKey(0), net.inputs(example.reshape(2, -1)),
                                    capture_intermediates=True)
        params, inter = variables.get("params", {}), variables.get("intermediates", {})

        def visit(tree, path=()):
            for name, node in tree.items():
                if name != "__call__" and isinstance(node, dict):
                    here = path + (name,)
                    try:
                        if "kernel" in _at(params, here):
                            order.append(here)
                    except (KeyError, TypeError):
                        pass
                    visit(node, here)

        visit(inter)
        units.append(sum(math.prod(v.shape[1:]) for v in jax.tree.leaves(inter)))  # per example: batch first
        others.extend(sorted(k for k in variables if k not in ("params", "intermediates")))
        return params

    def apply(params):
        return net._apply({"params": params}, net.inputs(example.reshape(2, -1)))

    params = _user_trace(net, init)
    if others:
        raise ConfigError(f"Model {net.name} has variables besides its parameters ({', '.join(others)}); initopt "
                          "trains modules whose only variables are params (no batch statistics).")
    logits = _user_trace(net, apply, params)
    if tuple(logits.shape) != (2, net.num_classes):
        raise ConfigError(f"Model {net.name} maps a batch of 2 samples to shape {tuple(logits.shape)}, not the "
                          f"dataset's (2, {net.num_classes}) logits.")
    if not order:
        raise ConfigError(f"Model {net.name} has no Dense or Conv kernel for initopt to measure.")
    shapes = [tuple(_at(params, p)["kernel"].shape) for p in order]
    count = sum(math.prod(a.shape) for a in jax.tree.leaves(params))
    return tuple(order), tuple(shapes), count, units[0]


def _mlp_layout(net: Network):
    """:func:`_layout` of the MLP, known without a trace (a command's start-up needs none)."""
    sizes = [math.prod(net.sample_shape), *net.module.hidden, net.num_classes]
    shapes = tuple(zip(sizes[:-1], sizes[1:]))
    paths = tuple((f"Dense_{i}",) for i in range(len(shapes)))
    return paths, shapes, sum(a * b + b for a, b in shapes), sum(sizes[1:])


def _user_trace(net: Network, fn, *args):
    """``jax.eval_shape(fn, *args)``, where any error of the module is one sentence: for a built-in
    network, what it takes against what the dataset holds; for a user's, its own error."""
    if net.builtin and len(net.sample_shape) not in (2, 3):
        raise ConfigError(_not_images(net))
    try:
        return jax.eval_shape(fn, *args)
    except Exception as e:  # the user's module: its error in one sentence
        if net.builtin:
            raise ConfigError(f"Model {net.name} cannot take images of {' x '.join(map(str, net.sample_shape))}: they "
                              "are too small for its convolutions and poolings; use larger images or --model mlp.") from None
        raise ConfigError(f"Model {net.name} fails on a batch of samples of shape {net.sample_shape}: "
                          f"{type(e).__name__}: {_first_line(e)}") from None


def _not_images(net: Network) -> str:
    shape = net.sample_shape
    held = f"vectors of {shape[0]} values" if len(shape) == 1 else f"arrays of shape {' x '.join(map(str, shape))}"
    side = math.isqrt(math.prod(shape))
    example = f"x.reshape(-1, {side}, {side}) for {side} x {side} images" if side * side == math.prod(shape) else (
        "x.reshape(-1, H, W) or (-1, H, W, C)")
    return (f"Model {net.name} takes images, samples of H x W or H x W x C values; this dataset's samples are "
            f"{held}: reshape the data's x arrays to images ({example}), or use --model mlp.")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "").rstrip(".") + "."


def _user_module(spec: str, num_classes: int, args: dict) -> nn.Module:
    """The user's factory called as ``factory(num_classes, **args)``; it must return a linen Module."""
    from initopt.runtime import user_code

    factory = user_code.load_factory(spec, kind="Model", makes="a Flax module")
    try:
        inspect.signature(factory).bind(num_classes, **args)
    except TypeError as e:
        raise ConfigError(f"Model factory {spec} cannot be called as factory(num_classes, "
                          f"{', '.join(f'{k}=...' for k in args) or ''}): {e}.".replace(", )", ")")) from None
    except ValueError:  # no signature to read (a builtin): let the call decide
        pass
    try:
        module = factory(num_classes, **args)
    except Exception as e:
        raise ConfigError(f"Model factory {spec} raised {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(f"Model factory {spec} returned {type(module).__name__}, not a flax.linen Module.")
    return module


def checked(m: ModelConfig, source: str = "the options") -> ModelConfig:
    """A model's configuration with its names as the registries spell them (model, activation,
    initializer and its scale), or one sentence on what is wrong."""
    act, init = activations.canonical(m.act, source), canonical_name(m.init)
    resolve_scale(init, m.scale)
    name = m.name.strip()
    if name.lower() in BUILTIN:
        name = name.lower()
    elif ":" not in name:
        raise ConfigError(f"Unknown model {m.name!r} in {source}; choose mlp, 2c2d, 3c3d, or module:factory or "
                          "file.py:factory of your own.")
    if name != MLP and m.hidden != ModelConfig.model_fields["hidden"].default:
        raise ConfigError(f"model.hidden is the MLP's sizes; model {name} has its own layers ({source}).")
    if name == MLP and m.args:
        raise ConfigError(f"model.args are a model factory's arguments; the MLP takes --hidden ({source}).")
    return m.model_copy(update={"act": act, "init": init, "name": name})


@functools.lru_cache(maxsize=None)
def _get(name: str, args: tuple, hidden: tuple[int, ...], act: str, num_classes: int, sample_shape: tuple) -> Network:
    kwargs = dict(args)
    if name == MLP:
        module = model.apply_fn(hidden, act, num_classes).__self__
        return Network(MLP, module, sample_shape, num_classes, act, apply=model.apply_fn(hidden, act, num_classes))
    if name in BUILTIN:
        if kwargs:
            raise ConfigError(f"Model {name} takes no arguments; {', '.join(kwargs)} given.")
        module = {"2c2d": TwoC2D, "3c3d": ThreeC3D}[name](num_classes=num_classes, act=ACTIVATIONS[act])
        return Network(name, module, sample_shape, num_classes, act)
    return Network(name, _user_module(name, num_classes, kwargs), sample_shape, num_classes, None)


def get(model_cfg, sample_shape: tuple[int, ...] | None = None) -> Network:
    """The network of a ModelConfig (cached). ``sample_shape`` defaults to the config's
    ``input_shape`` (set from the dataset)."""
    shape = tuple(sample_shape or model_cfg.input_shape)
    return _get(model_cfg.name, tuple(sorted(model_cfg.args.items())), tuple(int(h) for h in model_cfg.hidden),
                model_cfg.act, int(model_cfg.num_classes), shape)


# ----------------------------------------------------------------------------- initial parameters
@functools.partial(jax.jit, static_argnames=("net", "init", "act", "scale"))
def _init_network(net: Network, seeds_S, example_BxD, init: str, act: str, scale: float | None):
    """``net.init(PRNGKey(seed))`` per seed; unless ``init`` is the module's own, every kernel then
    drawn again from the named initializer (layer ``i`` from ``split(fold_in(key, 1), n)[i]``)."""
    rules = None if init == OWN else [INITIALIZERS[init].initializer(i, act, scale) for i in range(len(net.kernel_paths))]

    def one(seed):
        key = jax.random.PRNGKey(seed)
        params = {"params": net.init(key, example_BxD[:1])["params"]}
        if rules is None:
            return params
        keys = jax.random.split(jax.random.fold_in(key, 1), len(rules))
        return net.with_kernels(params, [rule(k, shape) for rule, k, shape in zip(rules, keys, net.kernel_shapes)])

    return jax.vmap(one)(seeds_S)


def init_cells(cells, x_example) -> list:
    """Initial parameters for (ModelConfig, seeds) cells, each stacked over its seeds (host arrays):
    the MLP's from :func:`initopt.nn.model.init_cells` (the reference's bits), any other network's
    from its module and the named initializer."""
    out: list = [None] * len(cells)
    mlp = [i for i, (c, _) in enumerate(cells) if c.name == MLP]
    for i, params in zip(mlp, model.init_cells([cells[i] for i in mlp], x_example) if mlp else []):
        out[i] = params
    for i, (c, seeds) in enumerate(cells):
        if c.name == MLP:
            continue
        init = canonical_name(c.init)
        if init in DATA_DEPENDENT:
            raise ConfigError(f"--init {init} is the MLP's (it rescales Dense layers); choose another for {c.name}.")
        net = get(c)
        out[i] = jax.device_get(_init_network(net, np.asarray([s % 2**32 for s in seeds], np.uint32),
                                              np.asarray(x_example), init, c.act, resolve_scale(init, c.scale)))
    return out


def init_params(model_cfg, x_example, seed: int = 42):
    """One seed's parameters (host arrays): ``model.init(PRNGKey(seed), example)`` for the MLP, as
    in the reference."""
    (params_1,) = init_cells([(model_cfg, [seed])], x_example)
    return jax.tree.map(lambda a: np.asarray(a)[0], params_1)
