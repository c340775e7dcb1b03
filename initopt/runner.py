"""One training run in its directory: skip when finished, resume when interrupted, checkpoint.

Files of a run directory:
  config.json          the resolved configuration (a different one refuses to resume)
  checkpoint.msgpack   after every epoch: train state, best parameters, history
  best_params.msgpack  the best-validation parameters (Flax msgpack, no pickle)
  run.json             status (running / complete / diverged / interrupted), versions, timings
  metrics.json         written last, once the run has ended
All writes go through :mod:`initopt.io`, atomically.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np
from flax import serialization

from initopt import io, seeds, train
from initopt.intervals import mean_ci95
from initopt.config import Config, to_dict
from initopt.data import Splits
from initopt.errors import InitoptError
from initopt.optimizers import OPTIMIZERS

CHECKPOINT = "checkpoint.msgpack"
BEST_PARAMS = "best_params.msgpack"


def resolved_config(cfg: Config, optimizer: str) -> dict:
    """What defines a run: the config with this optimizer and its effective learning rate."""
    d = to_dict(cfg)
    d["train"]["optimizers"] = [optimizer]
    d["train"]["lr"] = OPTIMIZERS[optimizer][1] if cfg.train.lr is None else cfg.train.lr
    d["data"].pop("data_dir")  # where the files live does not change the run; their sha256 does
    return json.loads(json.dumps(d))


def save_progress(run_dir: Path, progress: train.Progress) -> None:
    """The per-epoch checkpoint, and the best parameters when this epoch is a seed's best."""
    h = dataclasses.asdict(progress.history)
    state, best = seeds.to_host((progress.state, progress.best_params))  # collective across processes
    best_epoch = progress.history.best_epoch
    if progress.epoch in (best_epoch if isinstance(best_epoch, list) else [best_epoch]):
        io.save_checkpoint(run_dir / BEST_PARAMS, best)
    io.save_checkpoint(run_dir / CHECKPOINT, {
        "state": serialization.to_state_dict(state),
        "best_params": best,
        "epoch": progress.epoch,
        "history": json.dumps(h),
    })


def restore_progress(run_dir: Path, template: train.Progress) -> train.Progress:
    raw = io.load_checkpoint(run_dir / CHECKPOINT)
    try:
        state = serialization.from_state_dict(template.state, raw["state"])
        best = serialization.from_state_dict(template.best_params, raw["best_params"])
        history = train.History(**json.loads(raw["history"]))
        epoch = int(raw["epoch"])
    except (KeyError, ValueError, TypeError) as e:
        raise InitoptError(f"Checkpoint {run_dir / CHECKPOINT} does not fit this run ({e}).") from None
    return train.Progress(state=state, best_params=best, history=history, epoch=epoch)


def seed_metrics_of(progress: train.Progress, test_accs: list, optimizer: str, lr: float, seed_list: list[int]) -> dict:
    """Every seed's curves and test accuracy, with their mean, std and 95% interval."""
    h = progress.history
    agg = mean_ci95(test_accs)
    best_vals = [v if e is not None else None for v, e in zip(h.best_val, h.best_epoch)]
    return {
        "optimizer": optimizer,
        "lr": lr,
        "status": progress.status,
        "epochs_completed": progress.epoch,
        "seeds": seed_list,
        "test_acc": agg["mean"],
        "test_acc_per_seed": test_accs,
        "test_acc_mean": agg["mean"],
        "test_acc_std": agg["std"],
        "test_acc_ci95": agg["ci95"],
        "best_epoch": None,
        "best_val_acc": mean_ci95(best_vals)["mean"],
        "best_epoch_per_seed": h.best_epoch,
        "best_val_acc_per_seed": best_vals,
        "diverged_epoch_per_seed": h.diverged_epoch,
        "train_scores": h.train_scores,
        "val_scores": h.val_scores,
        "train_loss": h.train_loss,
        "val_loss": h.val_loss,
        "seconds_per_epoch": float(np.mean(h.epoch_seconds)) if h.epoch_seconds else None,
        "seconds_per_model_epoch": float(np.mean(h.epoch_seconds)) / len(seed_list) if h.epoch_seconds else None,
    }


def metrics_of(progress: train.Progress, test_acc: float | None, optimizer: str, lr: float) -> dict:
    h = progress.history
    seconds = h.epoch_seconds
    return {
        "optimizer": optimizer,
        "lr": lr,
        "status": progress.status,
        "epochs_completed": progress.epoch,
        "test_acc": test_acc,
        "best_epoch": h.best_epoch,
        "best_val_acc": h.best_val if h.best_epoch else None,
        "train_scores": h.train_scores,
        "val_scores": h.val_scores,
        "train_loss": h.train_loss,
        "val_loss": h.val_loss,
        "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
    }


def read_finished(run_dir: Path) -> dict | None:
    """The metrics of a run that has ended (complete or diverged), else None."""
    if not (run_dir / "metrics.json").is_file() or not (run_dir / "run.json").is_file():
        return None
    if io.read_json(run_dir / "run.json").get("status") not in ("complete", "diverged"):
        return None
    return io.read_json(run_dir / "metrics.json")


def run(
    cfg: Config,
    optimizer: str,
    run_dir: Path,
    splits: Splits,
    x_example: np.ndarray,
    environment: dict,
    overwrite: bool = False,
    on_epoch: Callable[[train.Progress], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> dict:
    """Trains one optimizer in ``run_dir``; returns its metrics (with ``skipped`` if it had ended)."""
    config_json = resolved_config(cfg, optimizer)
    if overwrite:
        io.remove_files(run_dir, "metrics.json", "run.json", CHECKPOINT, BEST_PARAMS, "config.json")
    io.ensure_dir(run_dir)
    if (run_dir / "config.json").is_file():
        if io.read_json(run_dir / "config.json") != config_json:
            raise InitoptError(
                f"{run_dir} holds a run with another configuration; pass --overwrite or choose --name."
            )
        finished = read_finished(run_dir)
        if finished is not None:
            return {**finished, "skipped": True}
    io.write_json(run_dir / "config.json", config_json)

    n_seeds = cfg.train.seeds
    if n_seeds == 1:
        progress = train.initial_progress(cfg, x_example, optimizer)
    else:
        progress = seeds.initial_progress(cfg, x_example, optimizer, n_seeds)
    if (run_dir / CHECKPOINT).is_file():
        progress = restore_progress(run_dir, progress)
        if on_resume is not None:
            on_resume(progress.epoch)
    run_info = {"command": "train", "optimizer": optimizer, "dataset_sha256": splits.sha256, **environment}

    def epoch_done(p: train.Progress) -> None:
        save_progress(run_dir, p)
        if on_epoch is not None:
            on_epoch(p)

    io.write_json(run_dir / "run.json", {**run_info, "status": "running"})
    try:
        if n_seeds == 1:
            progress = train.fit(cfg, splits, progress, epoch_done)
        else:
            progress = seeds.fit_seeds(cfg, splits, progress, n_seeds, epoch_done)
    except KeyboardInterrupt:
        io.write_json(run_dir / "run.json", {**run_info, "status": "interrupted", "epochs_completed": progress.epoch})
        raise
    lr = config_json["train"]["lr"]
    if n_seeds == 1:
        metrics = metrics_of(progress, train.test_accuracy(progress, splits), optimizer, lr)
    else:
        test_accs = seeds.test_accuracies(progress, splits)
        metrics = seed_metrics_of(progress, test_accs, optimizer, lr, seeds.seed_values(cfg, n_seeds))
    io.write_json(run_dir / "run.json", {
        **run_info,
        "status": progress.status,
        "compile_seconds": progress.compile_seconds,
        "epoch_seconds": progress.history.epoch_seconds,
        "seconds_per_epoch": metrics["seconds_per_epoch"],
        "seeds": n_seeds,
        "seed_devices": len(seeds.seed_mesh(n_seeds).devices.flat) if n_seeds > 1 else 1,
    })
    io.write_json(run_dir / "metrics.json", metrics)
    return metrics
