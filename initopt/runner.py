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

from initopt import io, train
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
    h = dataclasses.asdict(progress.history)
    io.save_checkpoint(run_dir / CHECKPOINT, {
        "state": serialization.to_state_dict(progress.state),
        "best_params": progress.best_params,
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
        for name in ("metrics.json", "run.json", CHECKPOINT, BEST_PARAMS, "config.json"):
            (run_dir / name).unlink(missing_ok=True)
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

    progress = train.initial_progress(cfg, x_example, optimizer)
    if (run_dir / CHECKPOINT).is_file():
        progress = restore_progress(run_dir, progress)
        if on_resume is not None:
            on_resume(progress.epoch)
    run_info = {"command": "train", "optimizer": optimizer, "dataset_sha256": splits.sha256, **environment}

    def epoch_done(p: train.Progress) -> None:
        save_progress(run_dir, p)
        if p.history.best_epoch == p.epoch:
            io.save_checkpoint(run_dir / BEST_PARAMS, p.best_params)
        if on_epoch is not None:
            on_epoch(p)

    io.write_json(run_dir / "run.json", {**run_info, "status": "running"})
    try:
        progress = train.fit(cfg, splits, progress, epoch_done)
    except KeyboardInterrupt:
        io.write_json(run_dir / "run.json", {**run_info, "status": "interrupted", "epochs_completed": progress.epoch})
        raise
    metrics = metrics_of(progress, train.test_accuracy(progress, splits), optimizer, config_json["train"]["lr"])
    io.write_json(run_dir / "run.json", {
        **run_info,
        "status": progress.status,
        "compile_seconds": progress.compile_seconds,
        "epoch_seconds": progress.history.epoch_seconds,
        "seconds_per_epoch": metrics["seconds_per_epoch"],
    })
    io.write_json(run_dir / "metrics.json", metrics)
    return metrics
