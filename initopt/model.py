"""The MLP of the reference experiment (Flax linen)."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from initopt.activations import ACTIVATIONS
from initopt.initializers import layer_initializers

REFERENCE_HIDDEN = (512, 256, 256, 128)


class MLP(nn.Module):
    """``Dense -> act`` per hidden size, then a Dense to the classes; biases start at 0.

    The Dense layers keep Flax's default names (``Dense_0`` ...), which fixes the
    per-layer keys that ``init`` hands to the initializers.
    """

    hidden: Sequence[int] = REFERENCE_HIDDEN
    num_classes: int = 10
    act: Callable = jax.nn.relu
    kernel_inits: Sequence[Callable] | None = None  # one per Dense layer

    @nn.compact
    def __call__(self, x_BxD, return_preacts: bool = False):
        preacts = []
        x = x_BxD.reshape(x_BxD.shape[0], -1)
        sizes = (*self.hidden, self.num_classes)
        for i, features in enumerate(sizes):
            kernel_init = self.kernel_inits[i] if self.kernel_inits else nn.linear.default_kernel_init
            x = nn.Dense(features, kernel_init=kernel_init)(x)
            preacts.append(x)
            if i < len(self.hidden):
                x = self.act(x)
        return (x, preacts) if return_preacts else x


def make_model(hidden: Sequence[int], act: str, init: str | None = None, scale: float | None = None) -> MLP:
    """An MLP by names; ``init=None`` gives a model for ``apply`` only (hashes the same for any init)."""
    hidden = tuple(int(h) for h in hidden)
    inits = layer_initializers(init, act, len(hidden) + 1, scale) if init else None
    return MLP(hidden=hidden, act=ACTIVATIONS[act], kernel_inits=inits)


@functools.lru_cache(maxsize=None)
def apply_fn(hidden: tuple[int, ...], act: str) -> Callable:
    """``model.apply`` of the MLP for evaluation and training: one object per architecture, so a
    jitted function that holds it (a TrainState) finds its compiled program again."""
    return make_model(hidden, act).apply


def set_prng(impl: str) -> None:
    """``legacy`` reproduces the published (pre-JAX-0.5) random bits; ``modern`` is today's default."""
    jax.config.update("jax_threefry_partitionable", impl == "modern")


def init_params(model_cfg, x_example, seed: int = 42):
    """``model.init(PRNGKey(seed), example)`` as in the reference (``model_cfg``: a ModelConfig).

    Built with ``lazy_init`` on the example's shape: the same keys and the same eager
    initializer calls, so the same bits as ``model.init``, without the forward pass's
    op-by-op compilations (17 small programs instead of 36 for the reference MLP).
    """
    model = make_model(model_cfg.hidden, model_cfg.act, model_cfg.init, model_cfg.scale)
    example = jax.ShapeDtypeStruct(tuple(np.shape(x_example)), jnp.float32)
    params = model.lazy_init(jax.random.PRNGKey(seed), example)
    if model_cfg.init == "lsuv":
        params = lsuv_params(params, x_example, model_cfg.act, model_cfg.lsuv_tol, model_cfg.lsuv_max_iter)
    return params


def lsuv_params(params, x_example, act: str, tol: float, max_iter: int):
    """LSUV on the MLP's parameters: each Dense layer's output rescaled to unit variance on the batch."""
    from initopt.depth import lsuv

    dense = params["params"]
    layers = [(dense[f"Dense_{i}"]["kernel"], dense[f"Dense_{i}"]["bias"]) for i in range(len(dense))]
    layers, _ = lsuv(layers, jnp.asarray(x_example).reshape(len(x_example), -1), act, tol, max_iter)
    return {"params": {f"Dense_{i}": {"kernel": w, "bias": b} for i, (w, b) in enumerate(layers)}}
