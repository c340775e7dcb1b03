"""Kernel initializers with the ``(key, shape, dtype)`` contract, and a name registry.

The fans of a kernel are Flax's (:func:`fans`): for a Dense kernel ``(in, out)`` they are
``in`` and ``out``; for a Conv kernel ``(h, w, in, out)``, the receptive field times the channels
(``h * w * in`` and ``h * w * out``). Each
registry entry builds the initializer of one layer from its position, the
activation and an optional scale, and states the weight variance its rule
implies, which :mod:`initopt.studies.stats` turns into a predicted activation variance.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from initopt.config.options import spelling
from initopt.errors import ConfigError
from initopt.nn.activations import kaiming_gain2

InitFn = Callable[..., jax.Array]
TRUNCATED_NORMAL_VAR = 0.7737413  # Var of N(0, 1) truncated to [-2, 2] (TF's truncated_normal_initializer)


def fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a kernel: ``(shape[0], shape[1])`` for a Dense one; for a Conv
    kernel ``(*window, in, out)``, each channel count times the receptive field (as Flax's
    ``variance_scaling`` and PyTorch count them)."""
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


def constant(c: float) -> InitFn:
    """Every weight equals ``c``."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, c, dtype)

    return init


def scaled_normal(std) -> InitFn:
    """``std * N(0, 1)``. ``std`` a number, or a traced scalar: :func:`initopt.nn.model.init_cells`
    draws the normals of many such cells once and scales them per cell."""

    def init(key, shape, dtype=jnp.float32):
        return std * jax.random.normal(key, shape, dtype)

    return init


def xavier_uniform() -> InitFn:
    """Glorot: ``U[-b, b]``, ``b = sqrt(6) / sqrt(fan_in + fan_out)`` (variance ``2 / (fan_in + fan_out)``)."""

    def init(key, shape, dtype=jnp.float32):
        bound = math.sqrt(6) / math.sqrt(sum(fans(shape)))
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def kaiming_uniform(gain2: float, first_layer: bool) -> InitFn:
    """He uniform: ``U[-b, b]``, ``b = sqrt(3 gain^2 / fan_in)`` (gain 1 on the first layer)."""

    def init(key, shape, dtype=jnp.float32):
        bound = math.sqrt(3 * (1.0 if first_layer else gain2) / fans(shape)[0])
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


StdRule = Callable[[int, int, int, str, "float | None"], float]  # (fan_in, fan_out, layer, act, scale) -> std


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """How a named initializer builds layer ``i`` and what weight variance it implies. A rule that
    draws ``std * N(0, 1)`` gives its ``std`` instead of ``build``: cells of such rules can share
    their normal draws (the grid's six normal cells are one traced model)."""

    build: Callable[[int, str, float | None], InitFn] | None
    weight_var: Callable[[int, int, int, str, float | None], float | None]
    default_scale: float | None = None  # None: the initializer takes no scale
    scale_means: str = ""
    uses_act: bool = False  # the activation enters the weights (Kaiming's gain); else any act gives the same
    std: StdRule | None = None

    def initializer(self, layer: int, act: str, scale: float | None) -> InitFn:
        """Layer ``layer``'s initializer: ``build``'s, or ``std * N(0, 1)`` with the std for its shape."""
        if self.std is None:
            return self.build(layer, act, scale)

        def init(key, shape, dtype=jnp.float32):
            return scaled_normal(self.std(*fans(shape), layer, act, scale))(key, shape, dtype)

        return init


def truncated_normal(std: float) -> InitFn:
    """TF's ``truncated_normal_initializer(stddev=std)``, DeepOBS's: ``std * N(0, 1)`` redrawn
    outside two standard deviations."""

    def init(key, shape, dtype=jnp.float32):
        return std * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)

    return init


def uses_act(init: str) -> bool:
    """Whether the initial weights depend on the activation (for one program to share them)."""
    return INITIALIZERS[canonical_name(init)].uses_act


def _kaiming_var(fan_in, fan_out, layer, act, scale):
    return (1.0 if layer == 0 else kaiming_gain2(act)) / fan_in


def _kaiming_std(fan_in, fan_out, layer, act, scale):
    """He: ``N(0, gain^2 / fan_in)``; the first layer, fed raw inputs, gets ``N(0, 1 / fan_in)``."""
    return 1 / np.sqrt(fan_in) if layer == 0 else np.sqrt(kaiming_gain2(act) / fan_in)


INITIALIZERS: dict[str, InitSpec] = {
    "constant": InitSpec(
        lambda layer, act, s: constant(s), lambda *a: None, 0.005, "the constant value"
    ),
    "normal": InitSpec(
        None, lambda fi, fo, layer, a, s: s**2, 0.01, "the standard deviation", std=lambda fi, fo, layer, a, s: s
    ),
    # N(0, 1 / fan_in): keeps the variance of a linear network's activations.
    "equal_variance": InitSpec(
        None, lambda fi, fo, layer, a, s: 1 / fi, std=lambda fi, fo, layer, a, s: 1 / np.sqrt(fi)
    ),
    "xavier": InitSpec(
        lambda layer, act, s: xavier_uniform(), lambda fi, fo, layer, a, s: 2 / (fi + fo)
    ),
    # Glorot normal: N(0, 2 / (fan_in + fan_out)).
    "xavier_normal": InitSpec(
        None, lambda fi, fo, layer, a, s: 2 / (fi + fo), std=lambda fi, fo, layer, a, s: math.sqrt(2 / (fi + fo))
    ),
    "kaiming": InitSpec(None, _kaiming_var, uses_act=True, std=_kaiming_std),
    "kaiming_uniform": InitSpec(
        lambda layer, act, s: kaiming_uniform(kaiming_gain2(act), layer == 0), _kaiming_var, uses_act=True
    ),
    "lecun_normal": InitSpec(
        lambda layer, act, s: jax.nn.initializers.lecun_normal(), lambda fi, fo, layer, a, s: 1 / fi
    ),
    "orthogonal": InitSpec(
        lambda layer, act, s: jax.nn.initializers.orthogonal(scale=s),
        lambda fi, fo, layer, a, s: s**2 / max(fi, fo),
        1.0,
        "the gain",
    ),
    # LSUV (Mishkin and Matas 2015): orthonormal weights here, then rescaled layer by layer on the
    # example batch by :func:`initopt.nn.networks.init_params` (data-dependent: no variance rule).
    "lsuv": InitSpec(
        lambda layer, act, s: jax.nn.initializers.orthogonal(scale=1.0), lambda *a: None
    ),
    # DeepOBS's 2c2d (0.05) and fmnist_mlp (0.03): N(0, s^2) truncated at 2s.
    "truncated_normal": InitSpec(
        lambda layer, act, s: truncated_normal(s), lambda fi, fo, layer, a, s: TRUNCATED_NORMAL_VAR * s**2, 0.05,
        "the standard deviation before truncation at two of them",
    ),
    # Every kernel keeps its module's own initializer: a user's model's, DeepOBS's for 2c2d and 3c3d,
    # Flax's Dense default (LeCun normal) for the MLP. No variance rule: it is not known here.
    "default": InitSpec(lambda layer, act, s: jax.nn.initializers.lecun_normal(), lambda *a: None),
}
DATA_DEPENDENT = ("lsuv",)
OWN = "default"  # the initializer name that keeps a module's own kernels


canonical_name = spelling  # accepts ``equal-variance`` as well as ``equal_variance``


def resolve_scale(init: str, scale: float | None) -> float | None:
    """Checks the name and scale of an initializer; returns the scale to use."""
    spec = INITIALIZERS.get(canonical_name(init))
    if spec is None:
        raise ConfigError(f"Unknown initializer {init!r}; choose one of {', '.join(INITIALIZERS)}.")
    if spec.default_scale is None:
        if scale is not None:
            raise ConfigError(f"Initializer {init!r} takes no scale.")
        return None
    scale = spec.default_scale if scale is None else float(scale)
    if not math.isfinite(scale) or (init != "constant" and scale <= 0):
        raise ConfigError(f"The scale of {init!r} ({spec.scale_means}) must be a positive number, not {scale}.")
    return scale


def layer_initializers(init: str, act: str, n_layers: int, scale: float | None = None) -> tuple[InitFn, ...]:
    """One kernel initializer per Dense layer; ``layer 0`` is decided by position, not shape."""
    name = canonical_name(init)
    scale = resolve_scale(name, scale)
    return tuple(INITIALIZERS[name].initializer(i, act, scale) for i in range(n_layers))


def _per_layer(init: str, act: str, fan_pairs, scale: float | None, quantity: str) -> list:
    """``InitSpec.<quantity>(fan_in, fan_out, layer, act, scale)`` for each layer's ``(fan_in,
    fan_out)``, with the rule's default scale (normal's 0.01) where none is given."""
    name = canonical_name(init)
    scale = resolve_scale(name, scale)
    rule = getattr(INITIALIZERS[name], quantity)
    return [rule(fi, fo, i, act, scale) for i, (fi, fo) in enumerate(fan_pairs)]


def weight_variances(init: str, act: str, sizes: list[int], scale: float | None = None) -> list[float | None]:
    """The weight variance per layer of an MLP of ``sizes`` that the rule implies (None where no
    theory applies)."""
    return kernel_variances(init, act, list(zip(sizes[:-1], sizes[1:])), scale)


def kernel_variances(init: str, act: str, shapes, scale: float | None = None) -> list[float | None]:
    """The weight variance the rule implies for kernels of these shapes, in layer order."""
    return _per_layer(init, act, [fans(s) for s in shapes], scale, "weight_var")


def layer_stds(init: str, act: str, sizes: list[int], scale: float | None = None) -> list[float]:
    """The std per layer of a rule that draws ``std * N(0, 1)`` (``InitSpec.std``)."""
    return _per_layer(init, act, list(zip(sizes[:-1], sizes[1:])), scale, "std")
