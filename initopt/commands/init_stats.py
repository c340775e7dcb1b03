"""``initopt init-stats``: per-layer weight, activation and gradient statistics at step 0."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from initopt.config import Config
from initopt.errors import ConfigError
from initopt.output import io, rundir

HISTOGRAMS = {"weights": ("weight", "C0"), "grads": ("gradient", "C1"), "acts": ("activation", "C2")}


def check(cfg: Config) -> None:
    """What the statistics can be asked, checked before any work."""
    s = cfg.init_stats
    if s.grid and cfg.model.scale is not None:
        raise ConfigError("--grid uses the reference scales; drop --scale.")
    if s.grid and s.seeds > 1:
        raise ConfigError("--grid and --seeds do not combine; run --seeds per cell.")
    if s.grid and cfg.model.name != "mlp":
        raise ConfigError(f"--grid varies the MLP's activation; for model {cfg.model.name}, run init-stats per --init.")


def check_memory(cfg: Config, batch: int) -> None:
    """The memory estimate, from the network's shapes (once the dataset has set them)."""
    from initopt.engine import budget
    from initopt.nn import networks
    from initopt.studies import experiment, stats

    s = cfg.init_stats
    cells = len(stats.GRID_INITS) * len(stats.GRID_ACTS) if s.grid else s.seeds
    budget.check(budget.init_stats_bytes(networks.get(cfg.model), batch, cells),
                 f"init-stats with {experiment.model_words(cfg.model)}" + (f" over {cells} cells" if cells > 1 else ""))


def config_json(cfg: Config) -> dict:
    """What defines an init-stats run: the data, the network, the seed, the PRNG and the command's section."""
    d = cfg.model_dump(mode="json")
    return {"data": {k: d["data"][k] for k in ("dataset", "val_size")}, "model": d["model"],
            "train": {k: d["train"][k] for k in ("seed", "prng")}, "init_stats": d["init_stats"]}


def run(cfg: Config, data_dir: Path | None, out: Path, figures, jax_info: dict | None = None) -> dict:
    """Computes the statistics in ``out/init-stats/<name>``; returns the metrics. JAX as the caller
    set it up (the CLI: ``runtime.env.setup_jax``), recorded as ``jax_info``."""
    from initopt.commands import problem
    from initopt.runtime import compiles, env
    from initopt.studies import stats

    check(cfg)
    io.ensure_dir(Path(out))  # writable before any work; the run directory once the data is read
    start_mark = compiles.mark()
    cfg, ds, _, (x, y) = problem.load(cfg, data_dir, splits=False)
    check_memory(cfg, len(x))
    m, seed, prng, n_seeds = cfg.model, cfg.train.seed, cfg.train.prng, cfg.init_stats.seeds
    if cfg.init_stats.grid:
        name = stats.run_name("grid", None, "", m.hidden, prng, seed)
    else:
        name = stats.run_name(m.init, m.scale, m.act, m.hidden, prng, seed) + (f"-seeds{n_seeds}" if n_seeds > 1 else "")
    path = Path(out) / "init-stats" / (name + problem.suffix(cfg))
    with rundir.lifecycle(path, "init-stats", config_json(cfg)) as run:
        start = time.perf_counter()
        metrics = (grid_cells if cfg.init_stats.grid else one_network)(cfg, x, y, path, figures)
        seconds = time.perf_counter() - start
        metrics = {**metrics, "dataset_sha256": ds.sha256, "prng": prng, "seed": seed}
        info = {  # gathered while the figures are drawn (the versions take a while to look up)
            "seconds": seconds, "dataset": ds.summary(), **env.environment(), **(jax_info or {}),
            "compiles": compiles.report(start_mark),
        }
        figures.wait()
        run.finish(metrics, **info)
    return {**metrics, "run_dir": str(path), "seconds": seconds}


def grid_cells(cfg: Config, x, y, path: Path, figures) -> dict:
    """``--grid``: every (initialization, activation) cell of the reference MLP at once, and its figure."""
    from initopt.studies import stats

    m = cfg.model
    results = stats.grid_stats(m.hidden, x, y, cfg.train.seed, num_classes=m.num_classes, input_shape=m.input_shape)
    cells = [r.summary for r in results]
    figures.draw(path / "variance_grid.png", "variance_grid", cells)
    return {"cells": cells}


def one_network(cfg: Config, x, y, path: Path, figures) -> dict:
    """The configured network's statistics (over ``seeds`` initialisations when more than one), with
    its histograms; the weights' histogram is drawn while the rest is computed."""
    from initopt.nn import networks
    from initopt.studies import stats

    m, seed, n_seeds = cfg.model, cfg.train.seed, cfg.init_stats.seeds
    title = m.init + (f" {m.scale:g}" if m.scale is not None else "") + f", {m.act}"
    layers = stats.network_layer_names(networks.get(m))

    def histogram(key: str, arrays: list) -> None:
        what, color = HISTOGRAMS[key]
        figures.draw(path / f"{what}_hist.png", "histograms", arrays, layers, f"{what} distribution: {title}", what,
                     color)

    draw_weights = functools.partial(histogram, "weights")
    if n_seeds > 1:
        result = stats.seeds_stats(m, x, y, list(range(seed, seed + n_seeds)), draw_weights)
        figures.draw(path / "variance_seeds.png", "variance_over_seeds", result.summary)
    else:
        result = stats.init_stats(m, x, y, seed, draw_weights)
    for key in ("grads", "acts"):
        histogram(key, result.arrays[key])
    return dict(result.summary)
