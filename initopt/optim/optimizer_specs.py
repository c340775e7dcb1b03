"""Which optimizer a name means: a hand-written one, an optax alias, or a user's factory.

- ``adam``, ``sgd``, ...: :data:`initopt.optim.optimizers.OPTIMIZERS`;
- ``optax:NAME``: any optax alias with a ``learning_rate`` argument (``optax:lion``);
- ``package.module:factory`` or ``path/to/file.py:factory``: a user's
  ``factory(learning_rate, **hyperparameters) -> optax.GradientTransformation``.

Every one becomes an :class:`OptimizerSpec`: the factory, a reference learning
rate and its hyperparameters. Float hyperparameters become data in the optimizer
state (:mod:`initopt.optim.hyperparams`); flags, integers and strings stay static. A name
that cannot be found, a factory that raises or returns something else: one
:class:`~initopt.errors.ConfigError` sentence.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

import optax

from initopt.errors import ConfigError
from initopt.optim import optimizers
from initopt.runtime import user_code

OPTAX_PREFIX = "optax:"
# Reference learning rates for optax aliases that differ from the adaptive methods' 1e-3.
OPTAX_REFERENCE_LR = {"sgd": 0.1, "lion": 1e-4, "lamb": 1e-3, "adagrad": 0.01, "novograd": 1e-2, "lars": 0.1,
                      "sm3": 0.1, "fromage": 0.01, "noisy_sgd": 0.1, "sign_sgd": 1e-3, "polyak_sgd": 1.0}
ADAPTIVE_REFERENCE_LR = 1e-3


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer by name, with what the engine needs to build it with hyperparameters as data."""

    name: str
    factory: Callable[..., optax.GradientTransformation] = dataclasses.field(compare=False, repr=False)
    reference_lr: float | None
    defaults: tuple[tuple[str, Any], ...]  # keyword defaults of the factory (besides learning_rate)
    open_kwargs: bool = False  # the factory takes **kwargs: any key is accepted
    data_keys: tuple[str, ...] | None = None  # float hyperparameters that are data (None: every float)
    derived: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)  # key -> fn(values)

    def split(self, values: dict[str, Any]) -> tuple[dict[str, float], tuple[tuple[str, Any], ...]]:
        """Hyperparameters (defaults updated by ``values``) -> (floats as data, the rest static)."""
        known = dict(self.defaults)
        for key in values:
            if key not in known and not self.open_kwargs:
                choices = ", ".join(known) or "none"
                raise ConfigError(f"Optimizer {self.name} has no hyperparameter {key!r} (it takes: {choices}).")
        for key, value in values.items():
            if isinstance(known.get(key), float) and not _is_number(value):
                raise ConfigError(f"Hyperparameter {key} of {self.name} must be a number, not {value!r}.")
        merged = {**known, **values}
        is_data = {k: _is_number(v) and (isinstance(v, float) or isinstance(known.get(k), float))
                   and (self.data_keys is None or k in self.data_keys) for k, v in merged.items()}
        data = {k: float(v) for k, v in merged.items() if is_data[k]}
        for key, derive in self.derived.items():
            if merged.get(key) is None:
                data[key] = float(derive(data))
        static = tuple(sorted((k, v) for k, v in merged.items() if not is_data[k] and v is not None))
        return data, static


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _signature(factory, where: str) -> tuple[tuple[tuple[str, Any], ...], bool]:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        raise ConfigError(f"{where} is not a function that builds an optimizer.") from None
    if "learning_rate" not in params:
        raise ConfigError(f"{where} takes no learning_rate argument, so initopt cannot set its learning rate.")
    defaults = tuple(
        (name, p.default) for name, p in params.items()
        if name != "learning_rate" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is not inspect.Parameter.empty
    )
    required = [name for name, p in params.items() if name != "learning_rate" and p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise ConfigError(f"{where} needs {', '.join(required)} without defaults; give them defaults.")
    open_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    return defaults, open_kwargs


@functools.lru_cache(maxsize=None)
def resolve(name: str) -> OptimizerSpec:
    """The spec of an optimizer name (cached: one factory object per name and process)."""
    text = name.strip()
    if text.lower() in optimizers.OPTIMIZERS:
        key = text.lower()
        factory, reference_lr, data_keys, derived = optimizers.OPTIMIZERS[key]
        defaults, open_kwargs = _signature(factory, key)
        return OptimizerSpec(key, factory, reference_lr, defaults, open_kwargs, tuple(data_keys), derived)
    if text.lower().startswith(OPTAX_PREFIX):
        alias = text[len(OPTAX_PREFIX):].strip()
        factory = getattr(optax, alias, None)
        if factory is None or alias.startswith("_") or not callable(factory):
            raise ConfigError(f"optax has no optimizer {alias!r}.")
        defaults, open_kwargs = _signature(factory, f"optax.{alias}")
        reference = OPTAX_REFERENCE_LR.get(alias, ADAPTIVE_REFERENCE_LR)
        spec = OptimizerSpec(OPTAX_PREFIX + alias, factory, reference, defaults, open_kwargs)
    elif ":" in text:
        factory = user_code.load_factory(text)
        defaults, open_kwargs = _signature(factory, text)
        spec = OptimizerSpec(text, factory, None, defaults, open_kwargs)
    else:
        raise ConfigError(f"Unknown optimizer {name!r}; choose from {', '.join(optimizers.OPTIMIZERS)}, all, "
                          "optax:NAME, module:factory or file.py:factory.")
    check(spec, 1e-3, {})
    return spec


def check(spec: OptimizerSpec, learning_rate: float, hyperparams: dict) -> None:
    """Builds the optimizer once with concrete values and runs one update on a tiny tree."""
    import jax.numpy as jnp

    data, static = spec.split(hyperparams)
    try:
        tx = spec.factory(learning_rate=learning_rate, **data, **dict(static))
    except Exception as e:
        raise ConfigError(f"Optimizer {spec.name} raised {type(e).__name__} when built: {e}.") from None
    if not isinstance(tx, optax.GradientTransformation) and not (hasattr(tx, "init") and hasattr(tx, "update")):
        raise ConfigError(f"Optimizer {spec.name} returned {type(tx).__name__}, not an optax.GradientTransformation.")
    params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    try:
        state = tx.init(params)
        updates, _ = tx.update(params, state, params)
    except Exception as e:
        raise ConfigError(f"Optimizer {spec.name} failed on a test update: {type(e).__name__}: {e}.") from None
    if not isinstance(updates, dict) or set(updates) != set(params):
        raise ConfigError(f"Optimizer {spec.name} returned updates that do not match the parameters.")


def reference_lr(spec: OptimizerSpec, lr: float | None) -> float:
    """The learning rate to use: the given one, else the optimizer's reference rate."""
    if lr is not None:
        return lr
    if spec.reference_lr is None:
        raise ConfigError(f"Optimizer {spec.name} has no reference learning rate; pass --lr.")
    return spec.reference_lr


def parse_names(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"sgd,adam"``, ``"all"`` (the reference three) or a list -> distinct names, each resolvable.

    Commas split names; a user's ``path.py:factory`` may not contain a comma.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    stripped = [n.strip() for n in names]
    if any(not n for n in stripped) or not stripped:
        raise ConfigError(f"Optimizers must be a comma list of names without empty items, not {text!r}.")
    if [n.lower() for n in stripped] == ["all"]:
        return optimizers.REFERENCE_OPTIMIZERS
    canonical = tuple(resolve(n).name for n in stripped)
    if len(set(canonical)) != len(canonical):
        raise ConfigError(f"Optimizers must be distinct, not {text!r}.")
    return canonical
