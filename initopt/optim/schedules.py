"""Learning-rate schedules, built from optax's own, with the peak learning rate as data.

Each schedule here is optax's with peak 1 (its *shape*); the learning rate of a
step is ``peak_lr * shape(step)``, so the peak lives in the optimizer state as an
array (:mod:`initopt.optim.hyperparams`) and trials of one program can differ in it.
The step positions (warm-up length, total steps) are structure: Python integers
fixed when the program is built, as optax's schedules require.

- ``constant``: the peak throughout (a linear warm-up first if ``warmup_steps``).
- ``warmup_cosine``: linear warm-up from 0, cosine decay to 0 at the last step.
- ``onecycle``: optax's cosine one-cycle (peak/25 up to the peak, then down to
  peak/25e4); the warm-up is its rising part (30% of training by default).
- ``step``: the peak divided by 10 after 50% and again after 75% of the steps
  (after an optional linear warm-up).
"""

from __future__ import annotations

import dataclasses

import optax

from initopt.config.options import spelling
from initopt.errors import ConfigError

SCHEDULES = ("constant", "warmup_cosine", "onecycle", "step")
ONECYCLE_DEFAULT_WARMUP = 0.3  # optax's pct_start
STEP_BOUNDARIES = (0.5, 0.75)
STEP_FACTOR = 0.1


def canonical(name: str, source: str = "the options") -> str:
    """A schedule's name as the registry spells it, or one sentence naming the choices."""
    if spelling(name) not in SCHEDULES:
        raise ConfigError(f"Unknown schedule {name!r} in {source}; choose one of {', '.join(SCHEDULES)}.")
    return spelling(name)


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    """A schedule's structure: its name, the total number of updates and the warm-up updates."""

    name: str = "constant"
    total_steps: int = 1
    warmup_steps: int | None = None  # None: the schedule's default (0, or 30% for onecycle)

    def __post_init__(self):
        if self.name not in SCHEDULES:
            raise ConfigError(f"Unknown schedule {self.name!r}; choose one of {', '.join(SCHEDULES)}.")
        if self.total_steps < 1:
            raise ConfigError(f"A schedule needs at least one step, not {self.total_steps}.")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps < self.total_steps:
            raise ConfigError(f"The warm-up ({self.warmup_steps} steps) must be shorter than training "
                              f"({self.total_steps} steps).")


def optax_schedule(spec: ScheduleSpec, peak: float = 1.0) -> optax.Schedule:
    """The schedule as optax builds it; with ``peak=1`` its shape, which the optimizer state scales."""
    total, warmup = spec.total_steps, spec.warmup_steps or 0
    if spec.name == "constant":
        return optax.warmup_constant_schedule(0.0, peak, warmup) if warmup else optax.constant_schedule(peak)
    if spec.name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total, end_value=0.0)
    if spec.name == "onecycle":
        pct = ONECYCLE_DEFAULT_WARMUP if spec.warmup_steps is None else max(warmup, 1) / total
        return optax.cosine_onecycle_schedule(total, peak, pct_start=pct)
    boundaries = [int(total * b) - warmup for b in STEP_BOUNDARIES if int(total * b) > warmup]
    decay = optax.piecewise_constant_schedule(peak, {b: STEP_FACTOR for b in boundaries})
    if not warmup:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])
