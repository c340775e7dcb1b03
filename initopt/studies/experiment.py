"""The ``train`` experiment: every optimizer of a configuration as one plan each, then the comparison.

Run naming lives here too, so that the CLI only parses and calls.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from initopt.config import Config, describe_hidden, init_label
from initopt.data import Splits
from initopt.engine import budget, runner
from initopt.engine import plan as plan_lib
from initopt.engine.intervals import paired_comparisons
from initopt.nn import networks
from initopt.optim import optimizer_specs

MAX_NAME = 120
COMPARISON_KEYS = ("lr", "status", "n_trials", "trials_diverged", "test_acc", "best_epoch", "best_val_acc",
                   "test_acc_per_seed", "test_acc_ci95")


def _slug(name: str) -> str:
    """A directory-safe form of a run label (``optax:lion`` -> ``optax-lion``, ``sgd/normal:0.01`` -> ``sgd-normal-0.01``)."""
    keep = "".join(c if c.isalnum() or c in "._-" else "-" for c in name.replace(":", "-").replace("/", "-"))
    return keep.strip("-.") or "run"


def run_dir_name(optimizer: str) -> str:
    return _slug(optimizer)


def model_words(m) -> str:
    """The network in a sentence: ``hidden sizes 512,256`` for the MLP, else ``model 2c2d``."""
    return f"hidden sizes {describe_hidden(m.hidden)}" if m.name == "mlp" else f"model {m.name}"


def group_name(config_file: Path | None, overrides: dict) -> str:
    """``reference`` or the config's stem, plus the options that changed it (``-lr0.01-epochs3``)."""
    name = config_file.stem if config_file else "reference"
    for key, value in overrides.items():
        if value is None or key in ("train.optimizers", "train.tensorboard"):  # a run's outputs, not the run
            continue
        if isinstance(value, dict):
            value = "_".join(f"{k}{v}" for k, v in value.items())
        elif key == "model.hidden":
            value = describe_hidden(value).replace(",", "_")
        elif isinstance(value, (list, tuple)):
            value = "_".join(map(str, value))
        word = {"model.name": "model", "model.args": ""}.get(key, key.split(".")[1].replace("_", ""))
        name += f"-{word}{_slug(str(value))}"
    if len(name) > MAX_NAME:  # file systems refuse names over 255 bytes: keep a readable head and a digest
        name = name[:MAX_NAME - 17] + "-" + hashlib.sha256(name.encode()).hexdigest()[:16]
    return name


def arms(cfg: Config, inits: list[tuple[str, float | None]] | None) -> dict[str, tuple[Config, str]]:
    """What a train command compares: every optimizer x every initialization, by label
    (the optimizer, the initialization, or ``optimizer/initialization`` when both vary)."""
    names = optimizer_specs.parse_names(cfg.train.optimizers)
    inits = inits or [(cfg.model.init, cfg.model.scale)]
    out = {}
    for name in names:
        for init, scale in inits:
            variant = cfg.model_copy(update={"model": cfg.model.model_copy(update={"init": init, "scale": scale})})
            if len(inits) == 1:
                label = name
            elif len(names) == 1:
                label = init_label(init, scale)
            else:
                label = f"{name}/{init_label(init, scale)}"
            out[label] = (variant, name)
    return out


def train_arms(
    arms_: dict[str, tuple[Config, str]],
    group_dir: Path,
    splits: Splits,
    x_example,
    environment: dict,
    overwrite: bool = False,
    hooks: Callable[..., runner.Hooks] | None = None,
) -> dict[str, dict]:
    """Trains each arm in ``group_dir/<label>``, on the same seeds and batch orders; returns their metrics.

    ``hooks(label, run_dir, plan)`` gives each run's :class:`~initopt.engine.runner.Hooks` (display, TensorBoard).
    """
    plans = {label: (cfg, plan_lib.plan_for(cfg, name, len(splits.train_y))) for label, (cfg, name) in arms_.items()}
    n_eval = max(len(splits.val_y), len(splits.test_y))
    for cfg, _ in plans.values():  # all checked before any training
        need = budget.train_bytes(networks.get(cfg.model), cfg.train.batch_size, cfg.train.seeds, len(splits.train_y),
                                  n_eval, cfg.train.epochs, cfg.train.seeds)
        budget.check(need, f"Training {model_words(cfg.model)} with {cfg.train.seeds} trial(s)")
    results = {}
    for label, (cfg, plan) in plans.items():
        run_dir = group_dir / run_dir_name(label)
        metrics = runner.run_labelled(cfg, plan, run_dir, splits, x_example, environment, overwrite, hooks, label)
        metrics["run_dir"] = str(run_dir)
        results[label] = metrics
    return results


def comparison(results: dict[str, dict]) -> dict | None:
    """For two or more optimizers: their key numbers and the paired differences over shared seeds."""
    if len(results) < 2:
        return None
    seeded = all(len(m["seeds"]) > 1 for m in results.values())
    paired = paired_comparisons({k: v["test_acc_per_seed"] for k, v in results.items()}) if seeded else None
    return {
        "runs": {k: {m: v[m] for m in COMPARISON_KEYS if m in v} for k, v in results.items()},
        "paired": paired,
    }


def diverged_message(results: dict[str, dict], group_dir: Path) -> tuple[str | None, str | None]:
    """(the error if some optimizer's trials all diverged, a note if only some trials did)."""
    failed = [k for k, v in results.items() if v["status"] == "diverged"]
    partial = [f"{k}: {v['trials_diverged']} of {v['n_trials']} trials" for k, v in results.items()
               if v["status"] != "diverged" and v.get("trials_diverged")]
    note = ("Diverged (kept their best epoch; the rest completed): " + "; ".join(partial) + ".") if partial else None
    if not failed:
        return None, note
    where = ", ".join(f"{k} at epoch {results[k]['epochs_completed']}" for k in failed)
    return f"Training diverged (non-finite loss): {where}; metrics kept in {group_dir}.", note
