"""A configuration's values checked beyond their types: ranges that involve two keys, numbers
given as options, run names. Names of activations, initializers, models, schedules and datasets
are checked where they live (their registries in :mod:`initopt.nn`, :mod:`initopt.optim`,
:mod:`initopt.data`), when a command's configuration is made (:func:`initopt.commands.load`)."""

from __future__ import annotations

import math

from initopt.config.schema import PRNG_IMPLS, Config
from initopt.errors import ConfigError


def check_name(name: str | None, option: str = "--name") -> str | None:
    """A run's own directory name is one plain directory, so its files stay under --out: no path
    separator, not empty, ``.`` or ``..`` (``--name ../../x`` wrote two levels above the command's
    directory)."""
    if name is not None and (name.strip() in ("", ".", "..") or any(c in name for c in "/\\\0")):
        raise ConfigError(f"{option} must be a plain directory name (no '/', not '.' or '..'), not {name!r}.")
    return name


def check_lr(lr: float, source: str = "the options") -> float:
    """A learning rate is a positive finite number (every command checks it here)."""
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"The learning rate must be a positive number, not {lr} ({source}).")
    return lr


def number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def check_number(value: float | None, option: str, *, at_least: float | None = None, above: float | None = None,
                 at_most: float | None = None) -> None:
    """A command-line number within its range (None: the option was not given); else one sentence
    naming the option, like every other bad input (Typer's own range check printed a usage box and
    exited 2)."""
    if value is None:
        return
    ok = (math.isfinite(value) and (at_least is None or value >= at_least) and (above is None or value > above)
          and (at_most is None or value <= at_most))
    if not ok:
        if at_least is not None and at_most is not None:
            bounds = [f"between {number(at_least)} and {number(at_most)}"]
        else:
            bounds = [f"{word} {number(b)}" for word, b in (("at least", at_least), ("above", above),
                                                             ("at most", at_most)) if b is not None]
        raise ConfigError(f"{option} must be {' and '.join(bounds) or 'a finite number'}, not {number(value)}.")


def validate(cfg: Config, source: str = "the options") -> Config:
    """Checks values beyond their types (the names are the registries', see the module's
    docstring); returns ``cfg`` with its optimizer names stripped."""
    t = cfg.train
    if t.prng not in PRNG_IMPLS:
        raise ConfigError(f"Unknown PRNG {t.prng!r} in {source}; choose legacy or modern.")
    if t.warmup_epochs is not None and t.warmup_epochs >= t.epochs:
        raise ConfigError(f"train.warmup_epochs ({t.warmup_epochs}) must be fewer than train.epochs ({t.epochs}) "
                          f"({source}).")
    if t.lr is not None:
        check_lr(t.lr, source)
    if t.beta is not None and not 0 <= t.beta < 1:
        raise ConfigError(f"train.beta must lie in [0, 1), not {t.beta} ({source}).")
    if t.weight_decay is not None and not (math.isfinite(t.weight_decay) and t.weight_decay >= 0):
        raise ConfigError(f"train.weight_decay must be a non-negative number, not {t.weight_decay} ({source}).")
    if cfg.tune.target is not None and not 0 < cfg.tune.target < 1:
        raise ConfigError(f"tune.target must lie in (0, 1), not {cfg.tune.target} ({source}).")
    if any(not o.strip() for o in t.optimizers):
        raise ConfigError(f"train.optimizers has an empty name ({source}).")
    return cfg.model_copy(update={"train": t.model_copy(update={"optimizers": tuple(o.strip() for o in t.optimizers)})})
