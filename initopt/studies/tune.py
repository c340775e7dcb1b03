"""Fair optimizer comparisons: each optimizer's learning-rate grid over seeds as one program.

The protocol (DeepOBS's, with AlgoPerf's time to target):
1. every (learning rate, seed) trial of an optimizer trains in one compiled program;
2. the selected rate is the one with the best mean (over seeds) best-validation accuracy;
   a diverged trial counts as chance accuracy, and a rate at which any trial diverged is
   never selected; the test split plays no part;
3. the selected rate trains again on fresh seeds (``final_seeds``), whose test accuracies
   are reported and paired between optimizers (the same seeds for all);
4. how much tuning each optimizer needs: the expected best validation accuracy of ``k``
   grid points drawn at random (exactly, from the order statistics), and the sensitivity.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from initopt.config import Config, check_lr
from initopt.engine import plan as plan_lib
from initopt.engine import runner
from initopt.engine.intervals import mean_ci95, paired_comparisons
from initopt.errors import ConfigError
from initopt.optim import optimizer_specs

CHANCE = 0.1  # ten classes
DEFAULT_SPAN = (-2.0, 1.0)  # decades around the reference rate
DEFAULT_POINTS = 7


def parse_grid(text: str) -> list[float]:
    """``"1e-4:1:9"`` (9 log-spaced rates from 1e-4 to 1) or ``"0.01,0.1,1"``."""
    text = text.strip()
    try:
        if ":" in text:
            lo, hi, k = text.split(":")
            lo, hi, k = float(lo), float(hi), int(k)
            if k < 2:
                raise ConfigError(f"--lr-grid LO:HI:K needs K of at least 2, not {k}.")
            if not (lo > 0 and hi > 0):
                raise ConfigError(f"--lr-grid rates must be positive, not {text!r}.")
            if lo >= hi:
                raise ConfigError(f"--lr-grid LO:HI:K needs LO < HI, not {text!r}.")
            return [float(v) for v in np.logspace(math.log10(lo), math.log10(hi), k)]
        items = [v.strip() for v in text.split(",")]
        if not text or any(not v for v in items):
            raise ConfigError(f"--lr-grid takes LO:HI:K or a comma list without empty items, not {text!r}.")
        return check_grid([float(v) for v in items], "--lr-grid")
    except ValueError:
        raise ConfigError(f"--lr-grid takes LO:HI:K or a comma list of numbers, not {text!r}.") from None


def check_grid(lrs: list[float], where: str) -> list[float]:
    if not lrs:
        raise ConfigError(f"The learning-rate grid of {where} is empty.")
    for lr in lrs:
        check_lr(lr, where)
    if len(set(lrs)) != len(lrs):
        raise ConfigError(f"The learning-rate grid of {where} repeats a rate.")
    return sorted(lrs)


def default_grid(reference_lr: float) -> list[float]:
    """7 log-spaced rates from 10^-2 to 10^1 times the reference rate."""
    return [float(reference_lr * v) for v in np.logspace(*DEFAULT_SPAN, DEFAULT_POINTS)]


def grid_for(cfg: Config, optimizer: str, cli_grid: list[float] | None) -> list[float]:
    """--lr-grid, else the config's per-optimizer grid or its grid, else the default around the reference."""
    if cli_grid is not None:
        return cli_grid
    per_optimizer = cfg.tune.lr_grid.get(optimizer)
    if per_optimizer is not None:
        return check_grid(list(per_optimizer), f"tune.lr_grid.{optimizer}")
    if cfg.tune.grid is not None:
        return parse_grid(cfg.tune.grid)
    spec = optimizer_specs.resolve(optimizer)
    return default_grid(optimizer_specs.reference_lr(spec, cfg.train.lr))


# ----------------------------------------------------------------------------- selection
def grid_scores(metrics: dict, lrs: list[float]) -> list[dict]:
    """Per learning rate: every seed's best validation accuracy (chance if diverged), mean, std."""
    rows = []
    for lr in lrs:
        trials = [t for t in metrics["trials"] if math.isclose(t["hyperparams"]["learning_rate"], lr, rel_tol=1e-9)]
        values = [CHANCE if t["status"] == "diverged" or t["best_val_acc"] is None else t["best_val_acc"]
                  for t in trials]
        rows.append({"lr": lr, "val_per_seed": values, "val_mean": float(np.mean(values)),
                     "val_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                     "diverged": sum(t["status"] == "diverged" for t in trials), "seeds": [t["seed"] for t in trials],
                     "test_per_seed": [t["test_acc"] for t in trials]})
    return rows


def select(rows: list[dict]) -> dict:
    """The rate with the best mean validation accuracy among those where no trial diverged."""
    candidates = [i for i, r in enumerate(rows) if r["diverged"] == 0]
    if not candidates:
        return {"index": None, "lr": None, "edge": None}
    best = max(candidates, key=lambda i: (rows[i]["val_mean"], -i))
    edge = "low" if best == 0 else "high" if best == len(rows) - 1 else None
    return {"index": best, "lr": rows[best]["lr"], "val_mean": rows[best]["val_mean"], "edge": edge}


def expected_best(values: list[float], k: int) -> float:
    """E[max of k of the K values drawn without replacement]: sorted ascending, the i-th
    smallest (1-based) is the maximum with probability C(i-1, k-1) / C(K, k)."""
    v = sorted(values)
    n = len(v)
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in 1..{n}, not {k}")
    total = math.comb(n, k)
    return float(sum(v[i - 1] * math.comb(i - 1, k - 1) for i in range(k, n + 1)) / total)


def budget_curve(values: list[float]) -> list[float]:
    """The expected best validation accuracy for k = 1..K grid points."""
    return [expected_best(values, k) for k in range(1, len(values) + 1)]


def time_to_target(val_scores: list[float], seconds_per_model_epoch: float, target: float) -> dict:
    """The first epoch at which validation accuracy reaches ``target`` and the model-seconds to it
    (epochs times the seconds one model's epoch took in its batch), or None for both."""
    for epoch, acc in enumerate(val_scores, start=1):
        if acc is not None and acc >= target:
            return {"epoch": epoch, "seconds": epoch * seconds_per_model_epoch}
    return {"epoch": None, "seconds": None}


def median_or_none(values: list[float | None]) -> float | None:
    """The median over seeds with "not reached" counted as infinitely late: None when most did not reach."""
    arr = np.asarray([math.inf if v is None else v for v in values], np.float64)
    med = float(np.median(arr))
    return None if math.isinf(med) else med


# ----------------------------------------------------------------------------- the protocol
def run(cfg: Config, optimizers: tuple[str, ...], grids: dict[str, list[float]], tune_dir: Path, splits,
        x_example, environment: dict, overwrite: bool = False,
        hooks: Callable[..., runner.Hooks] | None = None) -> dict:
    """Tunes every optimizer on its grid, selects on validation, runs the final seeds; returns tune.json."""
    t = cfg.tune
    tuning_seeds = [cfg.train.seed + i for i in range(t.seeds)]
    final_seeds = [cfg.train.seed + t.seeds + i for i in range(t.final_seeds)]  # disjoint from the tuning seeds
    plans = {o: plan_lib.plan_for(cfg, o, len(splits.train_y), lrs=grids[o], seeds=tuning_seeds) for o in optimizers}
    result: dict = {"tuning_seeds": tuning_seeds, "final_seeds": final_seeds, "target": t.target,
                    "epochs": cfg.train.epochs, "optimizers": {}}
    for name, plan in plans.items():
        run_dir = tune_dir / _slug(name) / "grid"
        metrics = runner.run_labelled(cfg, plan, run_dir, splits, x_example, environment, overwrite, hooks,
                                      f"{name} grid", command="tune")
        rows = grid_scores(metrics, grids[name])
        chosen = select(rows)
        per_model = metrics["seconds_per_model_epoch"] or math.nan
        entry = {"lrs": grids[name], "grid": rows, "selected": chosen, "run_dir": str(run_dir),
                 "budget_curve": budget_curve([r["val_mean"] for r in rows]),
                 "seconds_per_model_epoch": per_model, "trials": metrics["trials"]}
        if t.target is not None:
            for trial in entry["trials"]:
                trial["time_to_target"] = time_to_target(trial["val_scores"], per_model, t.target)
        result["optimizers"][name] = entry
    for name, entry in result["optimizers"].items():
        entry["final"] = _final(cfg, name, entry, final_seeds, tune_dir, splits, x_example, environment, overwrite,
                                hooks)
    finals = {n: e["final"]["test_per_seed"] for n, e in result["optimizers"].items() if e["final"]}
    result["paired"] = paired_comparisons(finals) if len(finals) > 1 and final_seeds else None
    return result


def _final(cfg, name, entry, final_seeds, tune_dir, splits, x_example, environment, overwrite, hooks) -> dict | None:
    """Test accuracy at the selected rate: on fresh seeds, or (without them) the tuning seeds'."""
    lr = entry["selected"]["lr"]
    if lr is None:
        return None
    if not final_seeds:
        row = entry["grid"][entry["selected"]["index"]]
        return {"lr": lr, "seeds": row["seeds"], "test_per_seed": row["test_per_seed"],
                **_summary(row["test_per_seed"]), "optimistic": True,
                "time_to_target": _median_time(entry["trials"], lr, entry["seconds_per_model_epoch"], cfg.tune.target)}
    plan = plan_lib.plan_for(cfg, name, len(splits.train_y), lrs=[lr], seeds=final_seeds)
    run_dir = tune_dir / _slug(name) / "final"
    metrics = runner.run_labelled(cfg, plan, run_dir, splits, x_example, environment, overwrite, hooks,
                                  f"{name} final", command="tune")
    tests = metrics["test_acc_per_seed"]
    return {"lr": lr, "seeds": final_seeds, "test_per_seed": tests, **_summary(tests), "optimistic": False,
            "run_dir": str(run_dir), "val_scores": [t["val_scores"] for t in metrics["trials"]],
            "time_to_target": _median_time(metrics["trials"], lr, metrics["seconds_per_model_epoch"] or math.nan,
                                           cfg.tune.target)}


def _median_time(trials: list[dict], lr: float, per_model: float, target: float | None) -> dict | None:
    """At the selected rate, the median over seeds of the epoch and model-seconds at which validation
    accuracy first reaches the target; None in a field when most seeds did not (without a target: None)."""
    if target is None:
        return None
    times = [time_to_target(t["val_scores"], per_model, target) for t in trials
             if math.isclose(t["hyperparams"]["learning_rate"], lr, rel_tol=1e-9)]
    return {"epoch": median_or_none([x["epoch"] for x in times]),
            "seconds": median_or_none([x["seconds"] for x in times]),
            "reached": sum(x["epoch"] is not None for x in times), "of": len(times)}


def _summary(values: list[float | None]) -> dict:
    s = mean_ci95(values)
    return {"test_mean": s["mean"], "test_std": s["std"], "test_ci95": s["ci95"]}


def _slug(name: str) -> str:
    from initopt.studies.experiment import run_dir_name

    return run_dir_name(name)


def notes(result: dict) -> list[str]:
    """What a reader of a tuning must know beside its table: a selection at the grid's edge, an
    optimizer with nothing selected, test accuracies that are optimistic."""
    out = []
    for name, e in result["optimizers"].items():
        if e["selected"]["edge"]:
            out.append(f"{name}: the selected rate lies at the {e['selected']['edge']} edge of the grid; widen the grid.")
        if e["selected"]["lr"] is None:
            out.append(f"{name}: a trial diverged at every rate of the grid; nothing selected.")
    if not result["final_seeds"]:
        out.append("Test accuracies are those of the tuning seeds at the selected rate: optimistic "
                   "(selected on the same seeds); pass --final-seeds for fresh ones.")
    return out
