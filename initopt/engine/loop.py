"""The loop that trains a plan: its devices, its epochs, its history and its results.

One set of rules for every number of trials: a trial whose loss or parameters turn
non-finite is marked diverged at that epoch and keeps its best-validation
parameters; the loop stops early only when every trial has.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState

from initopt import data as data_lib
from initopt.engine import budget, instruments, placement, steps
from initopt.engine.intervals import mean_ci95
from initopt.engine.plan import Plan, batch_orders, steps_per_epoch
from initopt.nn import networks
from initopt.output import rundir
from initopt.runtime import compiles, process


@dataclasses.dataclass
class History:
    """Per-trial metrics (``[trial][epoch]``); lists grow as epochs complete."""

    train_scores: list[list[float]]
    train_loss: list[list[float]]
    val_scores: list[list[float]]
    val_loss: list[list[float]]
    lr: list[list[float]]  # the learning rate of each epoch's last update
    best_epoch: list[int | None]  # 1-based; None until an epoch ends finite
    best_val: list[float | None]
    diverged_epoch: list[int | None]  # the epoch whose loss or parameters turned non-finite
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    instrument_steps: list[int] = dataclasses.field(default_factory=list)  # global step of each record
    instruments: dict = dataclasses.field(default_factory=dict)  # quantity -> [trial][record][layer]

    @classmethod
    def empty(cls, n_trials: int) -> "History":
        lists = [[[] for _ in range(n_trials)] for _ in range(5)]
        return cls(*lists, best_epoch=[None] * n_trials, best_val=[None] * n_trials,
                   diverged_epoch=[None] * n_trials,
                   instruments={q: [[] for _ in range(n_trials)] for q in instruments.QUANTITIES})

    def trial_status(self, t: int, finished: bool) -> str:
        if self.diverged_epoch[t] is not None:
            return "diverged"
        return "complete" if finished else "running"

    def add_epoch(self, epoch: int, metrics: dict, val: dict) -> np.ndarray:
        """Appends every trial's numbers of ``epoch`` (0-based); marks trials that turned
        non-finite as diverged; returns which trials reached a new best validation accuracy."""
        improved = np.zeros(len(self.best_epoch), bool)
        for t in range(len(improved)):
            for values, new in ((self.train_scores, metrics["acc"]), (self.train_loss, metrics["loss"]),
                                (self.val_scores, val["acc"]), (self.val_loss, val["loss"]), (self.lr, metrics["lr"])):
                values[t].append(float(new[t]))
            if self.diverged_epoch[t] is not None:
                continue
            if not metrics["finite"][t]:
                self.diverged_epoch[t] = epoch + 1
            elif self.best_val[t] is None or self.val_scores[t][-1] > self.best_val[t]:
                self.best_val[t], self.best_epoch[t] = self.val_scores[t][-1], epoch + 1
                improved[t] = True
        return improved

    def add_records(self, steps: list[int], records: dict) -> None:
        """The instruments' records of one epoch, taken after the global ``steps``."""
        self.instrument_steps.extend(steps)
        for q, values_TxRxL in records.items():
            for t, values in enumerate(self.instruments[q]):
                values.extend(np.asarray(values_TxRxL[t], np.float64).tolist())


@dataclasses.dataclass
class Progress:
    """What the loop resumes from and reports after each epoch."""

    state: TrainState
    best_params: object
    history: History
    params0: object  # every trial's initial parameters (the instruments' reference)
    epoch: int  # epochs completed
    status: str = "running"  # running / complete (some trial completed) / diverged (all did) / interrupted
    compile_seconds: float = 0.0


def initial_progress(plan: Plan, x_example: np.ndarray, params_T=None) -> Progress:
    net = networks.get(plan.model)
    state = steps.initial_state(plan, net, x_example, params_T)
    best = jax.tree.map(jnp.copy, state.params)  # survives the donation of the state to the first epoch
    # The initial parameters are the first best ones: one copy serves both (keep_best makes new arrays).
    return Progress(state=state, best_params=best, history=History.empty(plan.n_trials), params0=best, epoch=0)


class Evaluator:
    """A split on the devices, evaluated per trial: in one program, or for a convolutional network
    in chunks of ``budget.EVAL_CHUNK`` (a whole split's feature maps would take gigabytes)."""

    def __init__(self, net, x_NxD: np.ndarray, y_N: np.ndarray, mesh):
        size = budget.EVAL_CHUNK if net.convolutional else max(len(y_N), 1)
        self.evaluate = steps.evaluate_conv if net.convolutional else steps.evaluate
        self.chunks = [(placement.replicate(x_NxD[i:i + size], mesh), placement.replicate(y_N[i:i + size], mesh),
                        len(y_N[i:i + size])) for i in range(0, len(y_N), size)]

    def __call__(self, params_T, net):
        """Per trial ``{"loss", "acc"}``: device arrays for one chunk, else host means weighted by size."""
        if len(self.chunks) == 1:
            x, y, _ = self.chunks[0]
            return self.evaluate(params_T, net, x, y)
        outs = placement.to_host([self.evaluate(params_T, net, x, y) for x, y, _ in self.chunks])
        n = np.asarray([c[2] for c in self.chunks], np.float64)[:, None]
        return {k: (np.stack([o[k] for o in outs]) * n).sum(0) / n.sum() for k in ("loss", "acc")}


@dataclasses.dataclass
class _Placed:
    """A plan's arrays on its mesh: the training split, the validation evaluator, the state, the
    best parameters, and for the instruments the initial parameters and the probe batch."""

    mesh: object
    train_x: object
    train_y: object
    validation: Evaluator
    state: TrainState
    best: object
    params0: object = None
    probe: object = None

    @classmethod
    def of(cls, plan: Plan, splits: data_lib.Splits, progress: Progress) -> "_Placed":
        mesh = placement.trial_mesh(plan.n_trials)
        net = progress.state.apply_fn

        def trials(tree):  # host (numpy) values to the mesh: identical on every process
            return placement.shard_trials(placement.to_host(tree), mesh)

        recorded = plan.instruments > 0
        return cls(mesh, placement.replicate(splits.train_x, mesh), placement.replicate(splits.train_y, mesh),
                   Evaluator(net, splits.val_x, splits.val_y, mesh), trials(progress.state), trials(progress.best_params),
                   trials(progress.params0) if recorded else None,
                   placement.replicate(splits.val_x[: instruments.PROBE_SIZE], mesh) if recorded else None)


def _epoch(plan: Plan, p: _Placed, order_TxSxB: np.ndarray, on_steps=None):
    """One epoch of every trial: the new state and the per-trial metrics (host arrays), with the
    validation split's; ``on_steps(k)`` hears of steps done within the epoch where the epoch is
    several programs (a convolutional network's)."""
    net = p.state.apply_fn
    dead_units = net.builtin and plan.model.act in instruments.DEAD_ACTIVATIONS
    if net.convolutional:
        state, metrics = steps.stepped_epoch(p.state, p.train_x, p.train_y, order_TxSxB, p.mesh, p.params0, p.probe,
                                             plan.instruments, dead_units, on_steps)
    else:
        state, metrics = steps.train_epoch(p.state, p.train_x, p.train_y, placement.shard_trials(order_TxSxB, p.mesh),
                                           p.params0, p.probe, n_records=plan.instruments, dead_units=dead_units)
    val = p.validation(state.params, net)
    metrics, val = placement.to_host((metrics, val))
    return state, metrics, val


def fit(plan: Plan, splits: data_lib.Splits, progress: Progress,
        on_epoch: Callable[[Progress], None] | None = None, on_steps: Callable[[int], None] | None = None) -> Progress:
    """Trains every trial from ``progress.epoch`` to ``plan.epochs``; keeps each one's best-validation
    parameters. ``on_epoch`` runs after each completed epoch (checkpointing, progress display);
    ``on_steps(k)`` is told of steps done inside an epoch of several programs."""
    orders = batch_orders(plan, len(splits.train_y))
    p = _Placed.of(plan, splits, progress)
    h = progress.history
    n_steps = steps_per_epoch(len(splits.train_y), plan.batch_size)
    within = instruments.record_steps(n_steps, plan.instruments)
    start_mark = compiles.mark()
    for epoch in range(progress.epoch, plan.epochs):
        start, compiled_before = time.perf_counter(), compiles.since(start_mark)["seconds"]
        order_TxSxB = np.stack([orders[t.seed][epoch] for t in plan.trials])
        p.state, metrics, val = _epoch(plan, p, order_TxSxB, on_steps)
        progress.compile_seconds = compiles.since(start_mark)["seconds"]
        h.epoch_seconds.append(time.perf_counter() - start - (progress.compile_seconds - compiled_before))
        if plan.instruments:
            h.add_records([epoch * n_steps + k for k in within], metrics["instruments"])
        improved = h.add_epoch(epoch, metrics, val)
        if improved.any():
            p.best = steps.keep_best(placement.shard_trials(improved, p.mesh), p.best, p.state.params)
        progress.state, progress.best_params, progress.epoch = p.state, p.best, epoch + 1
        all_diverged = all(d is not None for d in h.diverged_epoch)
        progress.status = "diverged" if all_diverged else progress.status
        if on_epoch is not None:
            on_epoch(progress)
        process.raise_if_terminated()  # the epoch is checkpointed: a SIGTERM stops here at the latest
        if all_diverged:
            return progress
    progress.status = "complete"
    return progress


def test_accuracies(progress: Progress, splits: data_lib.Splits) -> list[float | None]:
    """Per trial: test accuracy of its best-validation parameters (None if no epoch of it ended finite)."""
    mesh = placement.trial_mesh(len(progress.history.best_epoch))
    net = progress.state.apply_fn
    out = Evaluator(net, splits.test_x, splits.test_y, mesh)(progress.best_params, net)
    accs = np.asarray(placement.to_host(out["acc"]))
    return [float(a) if progress.history.best_epoch[t] is not None else None for t, a in enumerate(accs)]


def _trial_metrics(plan: Plan, progress: Progress, test_accs: list[float | None]) -> list[dict]:
    h, finished = progress.history, progress.status in rundir.FINISHED
    return [{
        "seed": trial.seed, "hyperparams": trial.values, "status": h.trial_status(i, finished),
        "diverged_epoch": h.diverged_epoch[i], "best_epoch": h.best_epoch[i], "best_val_acc": h.best_val[i],
        "test_acc": test_accs[i], "train_scores": h.train_scores[i], "val_scores": h.val_scores[i],
        "train_loss": h.train_loss[i], "val_loss": h.val_loss[i], "lr": h.lr[i],
    } for i, trial in enumerate(plan.trials)]


def metrics_of(plan: Plan, progress: Progress, test_accs: list[float | None]) -> dict:
    """Every trial's curves, hyperparameters, status and test accuracy, with aggregates over trials.

    A run of one trial also keeps the scalar keys of a lone run (``best_epoch``,
    ``train_scores`` ...), so scripts written for those keep working.
    """
    h, trials = progress.history, _trial_metrics(plan, progress, test_accs)
    agg = mean_ci95(test_accs)
    seconds = float(np.mean(h.epoch_seconds)) if h.epoch_seconds else None
    metrics = {
        "optimizer": plan.optimizer.name, "init": plan.model.init, "init_scale": plan.model.scale, "lr": plan.lr,
        "schedule": plan.schedule.name, "status": progress.status, "epochs_completed": progress.epoch,
        "n_trials": plan.n_trials, "trials_diverged": sum(t["status"] == "diverged" for t in trials),
        "seeds": [t.seed for t in plan.trials],
        "test_acc": agg["mean"], "test_acc_mean": agg["mean"], "test_acc_std": agg["std"],
        "test_acc_ci95": agg["ci95"], "best_val_acc": mean_ci95(h.best_val)["mean"],
        "test_acc_per_seed": test_accs, "best_epoch_per_seed": h.best_epoch, "best_val_acc_per_seed": h.best_val,
        "diverged_epoch_per_seed": h.diverged_epoch, "seconds_per_epoch": seconds,
        "seconds_per_model_epoch": seconds / plan.n_trials if seconds else None,
        "trials": trials,
    }
    if plan.instruments:
        metrics["instruments"] = {"steps": h.instrument_steps, "records_per_epoch": plan.instruments,
                                  "layers": progress.state.apply_fn.kernel_names, **h.instruments}
    if plan.n_trials == 1:
        (only,) = trials
        metrics.update({k: only[k] for k in ("best_epoch", "train_scores", "val_scores", "train_loss", "val_loss")})
        metrics["lr_per_epoch"] = only["lr"]
    return metrics


def train(plan: Plan, splits: data_lib.Splits, progress: Progress, on_epoch=None, on_steps=None
          ) -> tuple[Progress, dict]:
    """:func:`fit`, then every trial's test accuracy and the run's metrics (:func:`metrics_of`)."""
    progress = fit(plan, splits, progress, on_epoch, on_steps)
    return progress, metrics_of(plan, progress, test_accuracies(progress, splits))
