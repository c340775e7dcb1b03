"""``initopt surface``: optimizers on a 2D loss surface, their trajectories drawn and judged."""

from __future__ import annotations

import time
from pathlib import Path

from initopt.config import SurfaceConfig
from initopt.errors import ConfigError
from initopt.output import rundir

ALL = ("sgd", "momentum", "adam")
TUNE_STARTS = 64  # random starts of --tune when --starts is not given


def resolve(cfg: SurfaceConfig) -> SurfaceConfig:
    """The configuration as it runs: ``all`` named, the random starts of ``tune`` counted."""
    from initopt.studies import surfaces as S

    optimizers = ALL if cfg.optimizers == ("all",) else cfg.optimizers
    for opt in optimizers:
        S.check_optimizer(opt)
    if cfg.kind not in S.SURFACES:
        raise ConfigError(f"Unknown surface {cfg.kind!r}; choose one of {', '.join(S.SURFACES)}.")
    if cfg.lr is not None:
        from initopt.config import check_lr

        check_lr(cfg.lr)
    starts = TUNE_STARTS if cfg.tune and cfg.starts is None else cfg.starts
    return cfg.model_copy(update={"optimizers": optimizers, "starts": starts})


def run(cfg: SurfaceConfig, out: Path, figures) -> dict:
    """Runs the surface experiment in ``out/surface/<name>``; returns its metrics. JAX as the
    caller set it up (the CLI: ``runtime.env.setup_jax``)."""
    from initopt.runtime import env
    from initopt.studies import surfaces as S

    cfg = resolve(cfg)
    surf = S.SURFACES[cfg.kind]
    path = Path(out) / "surface" / S.run_name(cfg.kind, cfg.optimizers, cfg.lr, cfg.steps, cfg.start, cfg.starts,
                                              cfg.tune, cfg.seed, cfg.beta)
    with rundir.lifecycle(path, "surface", {"surface": cfg.model_dump(mode="json")}) as run:
        X, Y, Z = S.loss_grid(surf)
        figures.draw(path / "surface_3d.png", "surface_3d", X, Y, Z, surf.name, surf.log_plot, surf.min_value)
        t0 = time.perf_counter()
        result, trajectories, ends = S.run_experiment(surf, cfg.optimizers, cfg.lr, cfg.steps, cfg.start, cfg.starts,
                                                      cfg.tune, cfg.seed, cfg.beta)
        result["seconds"] = time.perf_counter() - t0
        figures.draw(path / "trajectories.png", "surface_trajectories", X, Y, Z, trajectories, surf.minima,
                     surf.name, surf.log_plot, surf.min_value, ends, surf.ravine)
        figures.draw(path / "loss.png", "loss_curves", trajectories, surf.name, surf.min_value)
        info = {"seconds": result["seconds"], **env.environment()}
        figures.wait()
        run.finish(result, **info)
    return {**result, "run_dir": str(path)}
