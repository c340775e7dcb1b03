"""A training run's directory around the loop: refuse another configuration, skip a finished
run, resume an interrupted one, checkpoint every epoch, record how it ended.

Files of a run directory:
  config.json          the resolved configuration and trials (a different one refuses to resume)
  checkpoint.msgpack   after every epoch: train state, best parameters, history
  best_params.msgpack  the best-validation parameters of every trial (Flax msgpack, no pickle)
  run.json             status (running / complete / diverged / interrupted / failed, with its error), versions, timings
  metrics.json         written last, once the run has ended
The lifecycle of ``run.json`` and ``metrics.json`` is :mod:`initopt.output.rundir`'s; every
write goes through :mod:`initopt.output.io`, atomically.
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
from initopt.engine import loop, placement
from initopt.engine.plan import Plan
from initopt.errors import InitoptError
from initopt.output import io, rundir
from initopt.runtime import compiles

CHECKPOINT = "checkpoint.msgpack"
BEST_PARAMS = "best_params.msgpack"
START_OVER = "To start this run over, run the same command with --overwrite."


@dataclasses.dataclass
class Hooks:
    """What a caller hears of a run: each epoch's progress, steps within a long epoch, a resume
    (its epoch), and the end, on every way out (a progress bar stops before any message)."""

    on_epoch: Callable[[loop.Progress], None] | None = None
    on_steps: Callable[[int], None] | None = None
    on_resume: Callable[[int], None] | None = None
    on_done: Callable[[], None] | None = None


def resolved_config(cfg: Config, plan: Plan) -> dict:
    """What defines a run: the config with this optimizer, its schedule, statics and every trial."""
    d = to_dict(cfg)
    d["train"]["optimizers"] = [plan.optimizer.name]
    d["train"]["lr"] = plan.lr
    d["data"].pop("data_dir")  # where the files live does not change the run; their sha256 does
    d["train"].pop("tensorboard")  # nor does writing its curves for TensorBoard too
    d["optimizer"] = {plan.optimizer.name: d["optimizer"].get(plan.optimizer.name, {})}
    d["plan"] = {
        "schedule": dataclasses.asdict(plan.schedule),
        "static": {k: v for k, v in plan.static},
        "trials": [{"seed": t.seed, "hyperparams": t.values} for t in plan.trials],
    }
    return json.loads(io.to_json(d))


def save_progress(run_dir: Path, progress: loop.Progress) -> None:
    """The per-epoch checkpoint, and the best parameters when this epoch is some trial's best."""
    h = dataclasses.asdict(progress.history)
    state, best = placement.to_host((progress.state, progress.best_params))  # collective across processes
    if progress.epoch in progress.history.best_epoch:
        io.save_checkpoint(run_dir / BEST_PARAMS, best)
    io.save_checkpoint(run_dir / CHECKPOINT, {
        "state": serialization.to_state_dict(state),
        "best_params": best,
        "epoch": progress.epoch,
        "history": json.dumps(h),
    })


def restore_progress(run_dir: Path, template: loop.Progress) -> loop.Progress:
    try:
        raw = io.load_checkpoint(run_dir / CHECKPOINT)
    except InitoptError as e:
        raise InitoptError(f"{e} {START_OVER}") from None
    try:
        state = serialization.from_state_dict(template.state, raw["state"])
        best = serialization.from_state_dict(template.best_params, raw["best_params"])
        history = loop.History(**json.loads(raw["history"]))
        epoch = int(raw["epoch"])
    except (KeyError, ValueError, TypeError) as e:
        raise InitoptError(f"Checkpoint {run_dir / CHECKPOINT} does not fit this run ({e}). {START_OVER}") from None
    return loop.Progress(state=state, best_params=best, history=history, params0=template.params0, epoch=epoch)


def read_finished(run_dir: Path) -> dict | None:
    """The metrics of a run that has ended (complete or diverged), else None."""
    if not (run_dir / "metrics.json").is_file() or not (run_dir / "run.json").is_file():
        return None
    if io.read_json(run_dir / "run.json").get("status") not in rundir.FINISHED:
        return None
    return io.read_json(run_dir / "metrics.json")


def _claim(run_dir: Path, config_json: dict, overwrite: bool) -> dict | None:
    """Makes ``run_dir`` this run's: emptied with ``overwrite``, refused if it holds another
    configuration; the metrics of a finished run of this one, else None."""
    if overwrite:
        io.remove_files(run_dir, "metrics.json", "run.json", CHECKPOINT, BEST_PARAMS, "config.json")
    io.ensure_dir(run_dir)
    if not (run_dir / "config.json").is_file():
        return None
    if io.read_json(run_dir / "config.json") != config_json:
        raise InitoptError(f"{run_dir} holds a run with another configuration; pass --overwrite or choose --name.")
    return read_finished(run_dir)


def run(cfg: Config, plan: Plan, run_dir: Path, splits: Splits, x_example: np.ndarray, environment: dict,
        overwrite: bool = False, hooks: Hooks | None = None, command: str = "train") -> dict:
    """Trains the plan's trials in ``run_dir``; returns the metrics (with ``skipped`` if it had ended)."""
    hooks = hooks or Hooks()
    start_mark = compiles.mark()
    config_json = resolved_config(cfg, plan)
    finished = _claim(run_dir, config_json, overwrite)
    if finished is not None:
        return {**finished, "skipped": True}
    progress = loop.initial_progress(plan, x_example)
    if (run_dir / CHECKPOINT).is_file():
        progress = restore_progress(run_dir, progress)
        if hooks.on_resume is not None:
            hooks.on_resume(progress.epoch)

    def epoch_done(p: loop.Progress) -> None:
        save_progress(run_dir, p)
        if hooks.on_epoch is not None:
            hooks.on_epoch(p)

    info = {"optimizer": plan.optimizer.name, "dataset_sha256": splits.sha256, **environment}
    with rundir.lifecycle(run_dir, command, config_json, info, lambda: progress.epoch) as run_:
        progress, metrics = loop.train(plan, splits, progress, epoch_done, hooks.on_steps)
        run_.finish(metrics, status=progress.status, compile_seconds=progress.compile_seconds,
                    epoch_seconds=progress.history.epoch_seconds, seconds_per_epoch=metrics["seconds_per_epoch"],
                    trials=plan.n_trials, trial_devices=len(placement.trial_mesh(plan.n_trials).devices.flat),
                    compiles=compiles.report(start_mark))
    return metrics


def run_labelled(cfg: Config, plan: Plan, run_dir: Path, splits: Splits, x_example: np.ndarray, environment: dict,
                 overwrite: bool, hooks: Callable[[str, Path, Plan], Hooks] | None, label: str,
                 command: str = "train") -> dict:
    """:func:`run` with the caller's hooks for this run (``hooks(label, run_dir, plan)``); their
    ``on_done`` runs on every way out."""
    made = hooks(label, run_dir, plan) if hooks else Hooks()
    try:
        return run(cfg, plan, run_dir, splits, x_example, environment, overwrite, made, command)
    finally:
        if made.on_done is not None:
            made.on_done()
