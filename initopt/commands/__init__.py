"""The commands as library functions: each takes its typed configuration, owns its run directory
(:mod:`initopt.output.rundir`) and returns its result; :mod:`initopt.cli` only parses and prints."""

from __future__ import annotations

from pathlib import Path

from initopt import config
from initopt.config import Config


def load(path: str | Path | None = None, overrides: dict | None = None, flags: dict[str, str] | None = None
         ) -> Config:
    """A command's configuration: :func:`initopt.config.load` (types and values), then every name
    checked, in its registry's spelling, by the registry that holds it."""
    from initopt import data  # here, not above: importing a command (report's, data's) needs no JAX
    from initopt.nn import initializers, networks
    from initopt.optim import schedules

    cfg = config.load(path, overrides, flags)
    source = str(path) if path is not None else "the options"
    model = networks.checked(cfg.model, source)
    schedule = schedules.canonical(cfg.train.schedule, source)
    data.check_name(cfg.data.dataset)
    for name, scale in config.parse_inits(",".join(cfg.train.inits)) if cfg.train.inits else ():
        initializers.resolve_scale(name, scale)
    return cfg.model_copy(update={"model": model, "train": cfg.train.model_copy(update={"schedule": schedule})})
