"""The MLP of the reference experiment (Flax linen)."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from initopt.nn.activations import ACTIVATIONS
from initopt.nn.initializers import (
    INITIALIZERS,
    canonical_name,
    layer_initializers,
    layer_stds,
    scaled_normal,
    uses_act,
)
from initopt.nn.lsuv import lsuv

REFERENCE_HIDDEN = (512, 256, 256, 128)


class MLP(nn.Module):
    """``Dense -> act`` per hidden size, then a Dense to the classes; biases start at 0.

    The Dense layers keep Flax's default names (``Dense_0`` ...), which fixes the
    per-layer keys that ``init`` hands to the initializers. Without ``kernel_inits`` the model is
    for ``apply`` only (:func:`make_model` with no ``init``).
    """

    hidden: Sequence[int] = REFERENCE_HIDDEN
    num_classes: int = 10
    act: Callable = jax.nn.relu
    kernel_inits: Sequence[Callable] | None = None  # one per Dense layer

    @nn.compact
    def __call__(self, x_BxD):
        x = x_BxD.reshape(x_BxD.shape[0], -1)
        sizes = (*self.hidden, self.num_classes)
        for i, features in enumerate(sizes):
            kernel_init = self.kernel_inits[i] if self.kernel_inits else _apply_only_kernel
            x = nn.Dense(features, kernel_init=kernel_init)(x)
            if i < len(self.hidden):
                x = self.act(x)
        return x


def _apply_only_kernel(key, shape, dtype=jnp.float32):
    """The kernel initializer of a model for ``apply`` only. Flax still traces it at every apply, to
    check each kernel's shape (``jax.eval_shape``): zeros trace at once, where Flax's default
    (a truncated normal) was a quarter of the trace of the init-stats grid's program. The check adds
    nothing to the program, so the programs and their bits are unchanged."""
    return jnp.zeros(shape, dtype)


def make_model(hidden: Sequence[int], act: str, init: str | None = None, scale: float | None = None,
               num_classes: int = 10) -> MLP:
    """An MLP by names; ``init=None`` gives a model for ``apply`` only (hashes the same for any init)."""
    hidden = tuple(int(h) for h in hidden)
    inits = layer_initializers(init, act, len(hidden) + 1, scale) if init else None
    return MLP(hidden=hidden, num_classes=int(num_classes), act=ACTIVATIONS[act], kernel_inits=inits)


@functools.lru_cache(maxsize=None)
def apply_fn(hidden: tuple[int, ...], act: str, num_classes: int = 10) -> Callable:
    """``model.apply`` of the MLP for evaluation and training: one object per architecture, so a
    jitted function that holds it (a TrainState) finds its compiled program again."""
    return make_model(hidden, act, num_classes=num_classes).apply


# XLA's algebraic simplifier folds an initializer's constant factors (the std times the normal's
# sqrt(2)) into one multiplication, which moves some weights by an ulp from the reference's
# op-by-op ``model.init``. Without that pass the jitted program gives the reference's bits
# (tested for every initializer, activation and PRNG implementation).
_INIT_COMPILER_OPTIONS = {"xla_disable_hlo_passes": "algsimp"}


def _stacked_init(model: MLP, seeds, example):
    """``model.init(PRNGKey(seed), example)`` stacked over ``seeds`` (uint32); one seed, the most
    common case, gives the same bits without tracing a batched init."""

    def init(seed):
        return model.init(jax.random.PRNGKey(seed), example)

    if len(seeds) == 1:
        return jax.tree.map(lambda a: a[None], init(seeds[0]))
    return jax.vmap(init)(seeds)


@functools.partial(jax.jit, static_argnames=("cells", "families", "shape"), compiler_options=_INIT_COMPILER_OPTIONS)
def _init_cells(seed_sets, std_sets, cells: tuple, families: tuple, shape: tuple[int, ...]):
    """Every cell's parameters in one program, stacked over its seed set ``seed_sets[s]``.

    ``cells``: ``(hidden, act, init, scale, classes, s)``, each its own model. ``families``: ``(hidden, classes, s)``,
    one per entry of ``std_sets``, a (C, layers) array of the stds of C cells that draw
    ``std * N(0, 1)``: one model is traced for all C, vmapped over the stds, so the normals are
    drawn once and scaled per cell (the same bits as C models: tested). Cells that share a seed set
    share its argument, so XLA computes their common random bits once."""
    # A zero batch, not Flax's lazy_init: its partial evaluation of every cell costs more tracing
    # than the forward pass it avoids, which XLA drops anyway (nothing reads it).
    example = jnp.zeros(shape, jnp.float32)
    built = [_stacked_init(make_model(hidden, act, init, scale, classes), seed_sets[s], example)
             for hidden, act, init, scale, classes, s in cells]
    for (hidden, classes, s), std_CxL in zip(families, std_sets):
        def family(std_L, hidden=hidden, classes=classes, s=s):
            inits = tuple(scaled_normal(std_L[layer]) for layer in range(len(hidden) + 1))
            return _stacked_init(MLP(hidden=hidden, num_classes=classes, kernel_inits=inits), seed_sets[s], example)

        built.append(jax.vmap(family)(std_CxL))  # (C, seeds, ...)
    return built


def init_cells(cells: Sequence[tuple[object, Sequence[int]]], x_example) -> list:
    """Initial parameters for (ModelConfig, seeds) cells, each stacked over its seeds (host arrays),
    from one compiled program: ``model.init(PRNGKey(seed), example)`` as in the reference, bit for bit.

    LSUV's data-dependent rescaling then runs per seed on the example batch.
    """
    # PRNGKey keeps the low 32 bits of a seed (JAX without x64): the same bits from a uint32 array.
    seed_sets = list(dict.fromkeys(tuple(s % 2**32 for s in seeds) for _, seeds in cells))
    # Cells whose weights cannot differ (the activation unused by the initializer, the same seeds)
    # are built once: the grid's 18 cells are 8 initializations.
    specs = [(tuple(int(h) for h in c.hidden), c.act if uses_act(c.init) else "identity", canonical_name(c.init),
              c.scale, c.num_classes, seed_sets.index(tuple(s % 2**32 for s in seeds)))
             for c, seeds in cells]
    unique = list(dict.fromkeys(specs))
    # Cells of std * N(0, 1) rules with one architecture and seed set share one traced model.
    lone, families = [], {}
    for u in unique:
        if INITIALIZERS[u[2]].std is None:
            lone.append(u)
        else:
            families.setdefault((u[0], u[4], u[5]), []).append(u)
    fan_in = int(np.prod(np.shape(x_example)[1:]))
    std_sets = [np.asarray([layer_stds(init, act, [fan_in, *hidden, classes], scale)
                            for hidden, act, init, scale, classes, _ in members], np.float32)
                for members in families.values()]
    built = jax.device_get(_init_cells([np.asarray(s, np.uint32) for s in seed_sets], std_sets, cells=tuple(lone),
                                       families=tuple(families), shape=tuple(np.shape(x_example))))
    where = {u: built[i] for i, u in enumerate(lone)}
    for k, members in enumerate(families.values()):
        where.update({u: jax.tree.map(lambda a, c=c: a[c], built[len(lone) + k]) for c, u in enumerate(members)})
    out = [where[spec] for spec in specs]
    for i, (cfg, seeds) in enumerate(cells):
        if cfg.init == "lsuv":
            per_seed = [jax.tree.map(lambda a, k=k: a[k], out[i]) for k in range(len(seeds))]
            rescaled = [lsuv_params(p, x_example, cfg.act, cfg.lsuv_tol, cfg.lsuv_max_iter) for p in per_seed]
            out[i] = jax.tree.map(lambda *leaves: np.stack(leaves), *rescaled)
    return out


def lsuv_params(params, x_example, act: str, tol: float, max_iter: int):
    """LSUV on the MLP's parameters: each Dense layer's output rescaled to unit variance on the batch."""
    dense = params["params"]
    layers = [(dense[f"Dense_{i}"]["kernel"], dense[f"Dense_{i}"]["bias"]) for i in range(len(dense))]
    layers, _ = lsuv(layers, jnp.asarray(x_example).reshape(len(x_example), -1), act, tol, max_iter)
    return {"params": {f"Dense_{i}": {"kernel": w, "bias": b} for i, (w, b) in enumerate(layers)}}
