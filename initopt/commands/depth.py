"""``initopt depth``: deep-network theory measured (propagation, Jacobian spectra, LSUV) and,
with ``phase``, the trainability phase diagram trained on the engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from initopt.config import DepthConfig, check_name, check_number, parse_values
from initopt.errors import ConfigError
from initopt.output import io, rundir

# The phase grid when the configuration names none: the published one, and a small one for tests.
PHASE_DEFAULT = {"sigma_w2": "1:4:16", "depths": "5:60:12", "width": 128, "steps": 300, "batch": 32}
PHASE_QUICK = {"sigma_w2": "1:4:4", "depths": "3:12:3", "width": 32, "steps": 60, "batch": 32}


def check_model(model) -> None:
    """depth studies fully connected networks: its theory (and its networks) are theirs."""
    if model.name != "mlp":
        raise ConfigError(f"depth measures fully connected networks, whose theory it checks; model {model.name} is "
                          "not one (use init-stats and train for it).")


def phase_grid(cfg: DepthConfig) -> dict:
    return PHASE_QUICK if cfg.quick else PHASE_DEFAULT


def resolve(cfg: DepthConfig) -> DepthConfig:
    """The configuration as it runs, every default of the phase grid written out; checked."""
    from initopt.data import TRAIN_SPLIT_SIZE
    from initopt.studies import depth as depth_lib

    grid = phase_grid(cfg)
    if max(cfg.jacobian_depths) > cfg.depth:
        raise ConfigError(f"--jacobian-depths go up to {max(cfg.jacobian_depths)}, deeper than --depth {cfg.depth}.")
    # A phase cell trains one pass over the training split: more steps were cut to that pass unsaid.
    check_number(cfg.steps, "--steps", at_least=1, at_most=TRAIN_SPLIT_SIZE // grid["batch"])
    for init in cfg.inits:
        depth_lib.resolve_init(init, cfg.act, cfg.sigma_w2)
    sws = cfg.phase_sigma_w2 or tuple(parse_values(grid["sigma_w2"], "--phase-sigma-w2"))
    depths = cfg.phase_depths or tuple(parse_values(grid["depths"], "--phase-depths", integer=True))
    return cfg.model_copy(update={"phase_sigma_w2": tuple(sws), "phase_depths": tuple(depths),
                                  "steps": grid["steps"] if cfg.steps is None else cfg.steps})


def run_name(cfg: DepthConfig) -> str:
    return (f"{cfg.act}-sw{cfg.sigma_w2:g}-sb{cfg.sigma_b2:g}-w{cfg.width}-d{cfg.depth}-" + "_".join(cfg.inits)
            + ("-phase" + ("-quick" if cfg.quick else "") if cfg.phase else "") + (f"-seed{cfg.seed}" if cfg.seed else ""))


def run(cfg: DepthConfig, data_dir: Path | None, out: Path, figures, name: str | None = None,
        on_depth: Callable[[int], None] | None = None, jax_info: dict | None = None) -> dict:
    """Measures (and with ``phase`` trains) in ``out/depth/<name>``; returns the metrics. JAX as
    the caller set it up (the CLI: ``runtime.env.setup_jax("legacy")``), recorded as ``jax_info``."""
    from initopt import data as data_lib
    from initopt.engine import budget
    from initopt.runtime import env
    from initopt.studies import depth as depth_lib

    cfg = resolve(cfg)
    budget.check(4 * (784 * cfg.width + cfg.depth * cfg.width * cfg.width) * 4 + 4 * 784 * cfg.width * 3,
                 f"A network of width {cfg.width} and depth {cfg.depth}")
    io.ensure_dir(Path(out))
    path = Path(out) / "depth" / (check_name(name) or run_name(cfg))
    start = time.perf_counter()
    ds = data_lib.load(data_dir)
    x, _ = data_lib.example_batch(ds)
    with rundir.lifecycle(path, "depth", {"depth": cfg.model_dump(mode="json")}) as run:
        result = depth_lib.run_measurements(x, cfg.act, list(cfg.inits), cfg.sigma_w2, cfg.sigma_b2, cfg.width,
                                            cfg.depth, list(cfg.jacobian_depths), cfg.seed, cfg.lsuv_tol,
                                            cfg.lsuv_max_iter)
        if cfg.phase:
            grid = phase_grid(cfg)
            splits = data_lib.make_splits(ds, cfg.steps * grid["batch"], 512, 1)
            cells = depth_lib.phase_cells(splits, x, list(cfg.phase_sigma_w2), list(cfg.phase_depths), grid["width"],
                                          cfg.steps, grid["batch"], cfg.lr, cfg.seed, on_depth=on_depth)
            result["phase"] = {**depth_lib.phase_summary(cells, list(cfg.phase_sigma_w2), cfg.threshold, cfg.steps),
                               "width": grid["width"], "lr": cfg.lr, "batch_size": grid["batch"]}
        result["seconds"] = time.perf_counter() - start
        figures.draw(path / "propagation.png", "propagation_figure", result)
        figures.draw(path / "jacobian_spectrum.png", "jacobian_spectra", result)
        if cfg.phase:
            figures.draw(path / "phase.png", "phase_figure", result["phase"])
        figures.wait()
        run.finish(result, seconds=result["seconds"], dataset_sha256=ds.sha256, **env.environment(), **(jax_info or {}))
    return {**result, "run_dir": str(path)}
