"""``initopt train``: optimizers (and initializations) trained on the same seeds, compared."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from initopt.config import Config, parse_inits, sections
from initopt.output import io


def run(cfg: Config, group_dir: Path, data_dir: Path | None, figures, overwrite: bool = False,
        hooks: Callable | None = None, jax_info: dict | None = None) -> dict:
    """Trains every arm in ``group_dir/<arm>``; returns ``{"runs", "comparison", "group_dir"}``.
    JAX as the caller set it up (the CLI: ``runtime.env.setup_jax``), recorded as ``jax_info``."""
    from initopt.commands import problem
    from initopt.runtime import env
    from initopt.studies import experiment

    if cfg.train.tensorboard:  # the extra checked before any work; each epoch written as it ends
        from initopt.output import tensorboard

        hooks = tensorboard.live(hooks)
    cfg, _, splits, (x_example, _) = problem.load(cfg, data_dir)
    inits = parse_inits(",".join(cfg.train.inits)) if cfg.train.inits else None
    results = experiment.train_arms(experiment.arms(cfg, inits), group_dir, splits, x_example,
                                    {**env.environment(), **(jax_info or {})}, overwrite, hooks)
    for label, metrics in results.items():
        if not metrics.get("skipped"):
            figures.draw(Path(metrics["run_dir"]) / "curves.png", "training_curves", {label: metrics},
                         f"{label}, lr {metrics['lr']:g}")
            if metrics.get("instruments"):
                figures.draw(Path(metrics["run_dir"]) / "instruments.png", "instruments_figure", metrics, label)
    if cfg.train.tensorboard:
        from initopt.output import tensorboard

        for metrics in results.values():
            tensorboard.write_run(Path(metrics["run_dir"]), metrics)
    io.write_json(group_dir / "config.json", sections(cfg, "model", "data", "train", "optimizer"))
    comp = experiment.comparison(results)
    if comp is not None:
        figures.draw(group_dir / "comparison.png", "training_curves", results, "Comparison")
    figures.wait()
    if comp is not None:
        io.write_json(group_dir / "comparison.json", comp)
    return {"runs": results, "comparison": comp, "group_dir": str(group_dir)}
