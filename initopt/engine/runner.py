"""One training run in its directory: plan it, skip when finished, resume when interrupted, checkpoint.

Files of a run directory:
  config.json          the resolved configuration and trials (a different one refuses to resume)
  checkpoint.msgpack   after every epoch: train state, best parameters, history
  best_params.msgpack  the best-validation parameters of every trial (Flax msgpack, no pickle)
  run.json             status (running / complete / diverged / interrupted / failed, with its error), versions, timings
  metrics.json         written last, once the run has ended
All writes go through :mod:`initopt.output.io`, atomically.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np
from flax import serialization

from initopt.config import Config, to_dict
from initopt.data import Splits
from initopt.engine import train
from initopt.engine import trials as trials_lib
from initopt.engine.intervals import mean_ci95
from initopt.errors import InitoptError
from initopt.nn import networks
from initopt.optim import optimizer_specs
from initopt.optim.hyperparams import LEARNING_RATE
from initopt.optim.schedules import ScheduleSpec
from initopt.output import io, rundir
from initopt.runtime import compiles

CHECKPOINT = "checkpoint.msgpack"
BEST_PARAMS = "best_params.msgpack"
FINISHED = ("complete", "diverged")


def plan_for(cfg: Config, optimizer: str, n_train: int, lrs: list[float] | None = None,
             seeds: list[int] | None = None) -> trials_lib.Plan:
    """The trials of one optimizer: every learning rate of ``lrs`` (default: the configured or
    reference rate) on every seed of ``seeds`` (default: ``seed .. seed + seeds - 1``)."""
    spec = optimizer_specs.resolve(optimizer)
    t = cfg.train
    keys = {k for k, _ in spec.defaults}
    values = cfg.hyperparams_for(spec.name, keys)
    data, static = spec.split(values)
    lrs = lrs or [optimizer_specs.reference_lr(spec, t.lr)]
    optimizer_specs.check(spec, lrs[0], values)
    steps = trials_lib.steps_per_epoch(n_train, t.batch_size)
    warmup = None if t.warmup_epochs is None else t.warmup_epochs * steps
    schedule = ScheduleSpec(t.schedule, t.epochs * steps, warmup)
    seeds = seeds or [t.seed + i for i in range(t.seeds)]
    trials = trials_lib.make_trials(seeds, [{**data, LEARNING_RATE: lr} for lr in lrs])
    return trials_lib.Plan(cfg.model, spec, static, schedule, t.epochs, t.batch_size, trials, t.instruments)


def resolved_config(cfg: Config, plan: trials_lib.Plan) -> dict:
    """What defines a run: the config with this optimizer, its schedule, statics and every trial."""
    d = to_dict(cfg)
    d["train"]["optimizers"] = [plan.optimizer.name]
    d["train"]["lr"] = plan.trials[0].lr if len({t.lr for t in plan.trials}) == 1 else None
    d["data"].pop("data_dir")  # where the files live does not change the run; their sha256 does
    d["train"].pop("tensorboard")  # nor does writing its curves for TensorBoard too
    d["optimizer"] = {plan.optimizer.name: d["optimizer"].get(plan.optimizer.name, {})}
    d["plan"] = {
        "schedule": dataclasses.asdict(plan.schedule),
        "static": {k: v for k, v in plan.static},
        "trials": [{"seed": t.seed, "hyperparams": t.values} for t in plan.trials],
    }
    return json.loads(io.to_json(d))


def save_progress(run_dir: Path, progress: train.Progress) -> None:
    """The per-epoch checkpoint, and the best parameters when this epoch is some trial's best."""
    h = dataclasses.asdict(progress.history)
    state, best = trials_lib.to_host((progress.state, progress.best_params))  # collective across processes
    if progress.epoch in progress.history.best_epoch:
        io.save_checkpoint(run_dir / BEST_PARAMS, best)
    io.save_checkpoint(run_dir / CHECKPOINT, {
        "state": serialization.to_state_dict(state),
        "best_params": best,
        "epoch": progress.epoch,
        "history": json.dumps(h),
    })


START_OVER = "To start this run over, run the same command with --overwrite."


def restore_progress(run_dir: Path, template: train.Progress) -> train.Progress:
    try:
        raw = io.load_checkpoint(run_dir / CHECKPOINT)
    except InitoptError as e:
        raise InitoptError(f"{e} {START_OVER}") from None
    try:
        state = serialization.from_state_dict(template.state, raw["state"])
        best = serialization.from_state_dict(template.best_params, raw["best_params"])
        history = train.History(**json.loads(raw["history"]))
        epoch = int(raw["epoch"])
    except (KeyError, ValueError, TypeError) as e:
        raise InitoptError(f"Checkpoint {run_dir / CHECKPOINT} does not fit this run ({e}). {START_OVER}") from None
    return train.Progress(state=state, best_params=best, history=history, params0=template.params0, epoch=epoch)


def metrics_of(plan: trials_lib.Plan, progress: train.Progress, test_accs: list[float | None]) -> dict:
    """Every trial's curves, hyperparameters, status and test accuracy, with aggregates over trials.

    A run of one trial also keeps the scalar keys of a lone run (``best_epoch``,
    ``train_scores`` ...), so scripts written for those keep working.
    """
    h = progress.history
    finished = progress.status in FINISHED
    trials = [{
        "seed": trial.seed,
        "hyperparams": trial.values,
        "status": h.trial_status(i, finished),
        "diverged_epoch": h.diverged_epoch[i],
        "best_epoch": h.best_epoch[i],
        "best_val_acc": h.best_val[i],
        "test_acc": test_accs[i],
        "train_scores": h.train_scores[i],
        "val_scores": h.val_scores[i],
        "train_loss": h.train_loss[i],
        "val_loss": h.val_loss[i],
        "lr": h.lr[i],
    } for i, trial in enumerate(plan.trials)]
    agg = mean_ci95(test_accs)
    lrs = {t.lr for t in plan.trials}
    seconds = float(np.mean(h.epoch_seconds)) if h.epoch_seconds else None
    metrics = {
        "optimizer": plan.optimizer.name,
        "init": plan.model.init,
        "init_scale": plan.model.scale,
        "lr": lrs.pop() if len(lrs) == 1 else None,
        "schedule": plan.schedule.name,
        "status": progress.status,
        "epochs_completed": progress.epoch,
        "n_trials": plan.n_trials,
        "trials_diverged": sum(t["status"] == "diverged" for t in trials),
        "seeds": [t.seed for t in plan.trials],
        "test_acc": agg["mean"],
        "test_acc_mean": agg["mean"],
        "test_acc_std": agg["std"],
        "test_acc_ci95": agg["ci95"],
        "best_val_acc": mean_ci95(h.best_val)["mean"],
        "test_acc_per_seed": test_accs,
        "best_epoch_per_seed": h.best_epoch,
        "best_val_acc_per_seed": h.best_val,
        "diverged_epoch_per_seed": h.diverged_epoch,
        "seconds_per_epoch": seconds,
        "seconds_per_model_epoch": seconds / plan.n_trials if seconds else None,
        "trials": trials,
    }
    if plan.instruments:
        metrics["instruments"] = {"steps": h.instrument_steps, "records_per_epoch": plan.instruments,
                                  "layers": networks.get(plan.model).kernel_names,
                                  **h.instruments}
    if plan.n_trials == 1:
        (only,) = trials
        metrics.update({k: only[k] for k in ("best_epoch", "train_scores", "val_scores", "train_loss", "val_loss")})
        metrics["lr_per_epoch"] = only["lr"]
    return metrics


def read_finished(run_dir: Path) -> dict | None:
    """The metrics of a run that has ended (complete or diverged), else None."""
    if not (run_dir / "metrics.json").is_file() or not (run_dir / "run.json").is_file():
        return None
    if io.read_json(run_dir / "run.json").get("status") not in FINISHED:
        return None
    return io.read_json(run_dir / "metrics.json")


def run(
    cfg: Config,
    plan: trials_lib.Plan,
    run_dir: Path,
    splits: Splits,
    x_example: np.ndarray,
    environment: dict,
    overwrite: bool = False,
    on_epoch: Callable[[train.Progress], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
    command: str = "train",
) -> dict:
    """Trains the plan's trials in ``run_dir``; returns the metrics (with ``skipped`` if it had ended)."""
    start_mark = compiles.mark()
    config_json = resolved_config(cfg, plan)
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
    progress = train.initial_progress(plan, x_example)
    if (run_dir / CHECKPOINT).is_file():
        progress = restore_progress(run_dir, progress)
        if on_resume is not None:
            on_resume(progress.epoch)
    io.remove_files(run_dir, "metrics.json")  # from here on, old metrics must not look complete
    io.write_json(run_dir / "config.json", config_json)
    run_info = {"command": command, "optimizer": plan.optimizer.name, "dataset_sha256": splits.sha256,
                **environment}

    def epoch_done(p: train.Progress) -> None:
        save_progress(run_dir, p)
        if on_epoch is not None:
            on_epoch(p)

    io.write_json(run_dir / "run.json", {**run_info, "status": "running"})
    try:
        progress = train.fit(plan, splits, progress, epoch_done)
        metrics = metrics_of(plan, progress, train.test_accuracies(progress, splits))
        io.write_json(run_dir / "run.json", {
            **run_info,
            "status": progress.status,
            "compile_seconds": progress.compile_seconds,
            "epoch_seconds": progress.history.epoch_seconds,
            "seconds_per_epoch": metrics["seconds_per_epoch"],
            "trials": plan.n_trials,
            "trial_devices": len(trials_lib.trial_mesh(plan.n_trials).devices.flat),
            "compiles": compiles.report(start_mark),
        })
        io.write_json(run_dir / "metrics.json", metrics)
    except KeyboardInterrupt:
        io.write_json(run_dir / "run.json", {**run_info, "status": "interrupted", "epochs_completed": progress.epoch})
        raise
    except InitoptError as e:
        rundir.mark(run_dir, {**run_info, "epochs_completed": progress.epoch}, "failed", error=str(e))
        raise
    return metrics


def run_labelled(cfg: Config, plan: trials_lib.Plan, run_dir: Path, splits: Splits, x_example: np.ndarray,
                 environment: dict, overwrite: bool, hooks: Callable[[str], tuple] | None, label: str,
                 command: str = "train") -> dict:
    """:func:`run` with display callbacks ``hooks(label) -> (on_epoch, on_resume, on_done)``; ``on_done``
    runs on every way out (a progress bar stops before any message)."""
    on_epoch, on_resume, on_done = hooks(label) if hooks else (None, None, None)
    try:
        return run(cfg, plan, run_dir, splits, x_example, environment, overwrite, on_epoch, on_resume, command)
    finally:
        if on_done is not None:
            on_done()
