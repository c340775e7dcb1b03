"""What a training run runs: its trials and the structure they share, as plain data.

A trial is (seed, hyperparameters). Seed ``s`` fixes both the initial parameters
(``PRNGKey(s)``) and the batch order; trials of one plan share the optimizer, the
schedule's structure and the model, and differ in seeds and in the values of float
hyperparameters (learning rate, momentum, ...), which are data in the optimizer
state (:mod:`initopt.optim.hyperparams`). Every trial of a plan trains as one
compiled program (:mod:`initopt.engine.steps`). Nothing here touches a device.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from initopt import data as data_lib
from initopt.config import Config, ModelConfig
from initopt.optim import optimizer_specs
from initopt.optim.hyperparams import LEARNING_RATE
from initopt.optim.optimizer_specs import OptimizerSpec
from initopt.optim.schedules import ScheduleSpec


@dataclasses.dataclass(frozen=True)
class Trial:
    seed: int
    hyperparams: tuple[tuple[str, float], ...]  # float hyperparameters, learning_rate included

    @property
    def values(self) -> dict[str, float]:
        return dict(self.hyperparams)

    @property
    def lr(self) -> float:
        return self.values[LEARNING_RATE]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything one compiled training program needs: the structure and the trials."""

    model: ModelConfig
    optimizer: OptimizerSpec
    static: tuple[tuple[str, Any], ...]  # static hyperparameters (flags, integers)
    schedule: ScheduleSpec
    epochs: int
    batch_size: int
    trials: tuple[Trial, ...]
    instruments: int = 0  # records per epoch (0: none)
    steps_per_epoch: int = 0  # of each trial (the training split's size over the batch size, rounded up)

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def lr(self) -> float | None:
        """The learning rate shared by every trial, None where they differ."""
        lrs = {t.lr for t in self.trials}
        return lrs.pop() if len(lrs) == 1 else None


def make_trials(seeds: list[int], hyperparams: list[dict[str, float]]) -> tuple[Trial, ...]:
    """Every (hyperparameters, seed) pair, hyperparameters outermost."""
    return tuple(Trial(s, tuple(sorted(h.items()))) for h in hyperparams for s in seeds)


def plan_for(cfg: Config, optimizer: str, n_train: int, lrs: list[float] | None = None,
             seeds: list[int] | None = None) -> Plan:
    """The trials of one optimizer: every learning rate of ``lrs`` (default: the configured or
    reference rate) on every seed of ``seeds`` (default: ``seed .. seed + seeds - 1``)."""
    spec = optimizer_specs.resolve(optimizer)
    t = cfg.train
    values = cfg.hyperparams_for(spec.name, {k for k, _ in spec.defaults})
    data, static = spec.split(values)
    lrs = lrs or [optimizer_specs.reference_lr(spec, t.lr)]
    optimizer_specs.check(spec, lrs[0], values)
    steps = steps_per_epoch(n_train, t.batch_size)
    warmup = None if t.warmup_epochs is None else t.warmup_epochs * steps
    schedule = ScheduleSpec(t.schedule, t.epochs * steps, warmup)
    seeds = seeds or [t.seed + i for i in range(t.seeds)]
    trials = make_trials(seeds, [{**data, LEARNING_RATE: lr} for lr in lrs])
    return Plan(cfg.model, spec, static, schedule, t.epochs, t.batch_size, trials, t.instruments, steps)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return data_lib.steps_per_epoch(n_train, batch_size)


def batch_orders(plan: Plan, n_train: int) -> dict[int, np.ndarray]:
    """Per distinct seed: its (epochs, steps, batch) positions into the training split."""
    seeds = sorted({t.seed for t in plan.trials})
    return {s: data_lib.batch_order(n_train, plan.batch_size, plan.epochs, s).astype(np.int32) for s in seeds}
