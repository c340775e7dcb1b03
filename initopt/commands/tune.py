"""``initopt tune``: each optimizer's learning rate tuned on a grid over seeds, then compared."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from initopt.config import Config, sections
from initopt.output import io

FIGURES = (("lr_sensitivity", "lr_sensitivity.png"), ("budget_curves", "budget.png"), ("final_results", "final.png"))


def grids(cfg: Config) -> dict[str, list[float]]:
    """Each optimizer's learning-rate grid (checked before any work)."""
    from initopt.optim import optimizer_specs
    from initopt.studies import tune as tune_lib

    common = tune_lib.parse_grid(cfg.tune.grid) if cfg.tune.grid is not None else None
    return {n: tune_lib.grid_for(cfg, n, common) for n in optimizer_specs.parse_names(cfg.train.optimizers)}


def run(cfg: Config, tune_dir: Path, data_dir: Path | None, figures, overwrite: bool = False,
        hooks: Callable | None = None, jax_info: dict | None = None) -> dict:
    """Tunes in ``tune_dir``; ``tune.json`` is written last. Returns the result. JAX as the caller
    set it up (the CLI: ``runtime.env.setup_jax``), recorded as ``jax_info``."""
    from initopt.commands import problem
    from initopt.engine import budget
    from initopt.nn import networks
    from initopt.runtime import env
    from initopt.studies import experiment
    from initopt.studies import tune as tune_lib

    per_optimizer = grids(cfg)
    if cfg.train.tensorboard:  # the extra checked before any work; each epoch written as it ends
        from initopt.output import tensorboard

        hooks = tensorboard.live(hooks)
    cfg, ds, splits, (x_example, _) = problem.load(cfg, data_dir)
    biggest = max(len(g) for g in per_optimizer.values()) * cfg.tune.seeds
    budget.check(budget.train_bytes(networks.get(cfg.model), cfg.train.batch_size, biggest, len(splits.train_y),
                                    max(len(splits.val_y), len(splits.test_y)), cfg.train.epochs, cfg.tune.seeds),
                 f"Tuning {biggest} trials of {experiment.model_words(cfg.model)}")
    io.remove_files(tune_dir, "tune.json")  # from here on, an old result must not look complete
    result = tune_lib.run(cfg, list(per_optimizer), per_optimizer, tune_dir, splits, x_example,
                          {**env.environment(), **(jax_info or {})}, overwrite, hooks)
    for builder, file in FIGURES:
        figures.draw(tune_dir / file, builder, result)
    if cfg.train.tensorboard:  # every trial of the grids and final runs, with its HParams entry
        from initopt.output import report, tensorboard

        for run in report.load_runs(report.find_runs([tune_dir]))[0]:
            m, run_dir = run["metrics"], Path(run["dir"])
            tensorboard.write_run(run_dir, m, {"optimizer": m.get("optimizer"), "schedule": m.get("schedule"),
                                               "phase": run_dir.name})
    figures.wait()
    io.write_json(tune_dir / "config.json", sections(cfg, "model", "data", "train", "tune", "optimizer"))
    io.write_json(tune_dir / "tune.json", result)  # last: its presence means the tuning is complete
    return {**result, "tune_dir": str(tune_dir)}
