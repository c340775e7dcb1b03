"""Memory estimates made before any work starts, so that an impossible size is refused in one
sentence instead of allocating for minutes."""

from __future__ import annotations

import os

from initopt.errors import ConfigError

FLOAT_BYTES = 4
NUM_CLASSES = 10
INPUT_SIZE = 784
USABLE_FRACTION = 0.8  # of the machine's physical memory


def machine_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 16 * 2**30


def param_count(hidden, input_size: int = INPUT_SIZE, classes: int = NUM_CLASSES) -> int:
    sizes = [input_size, *hidden, classes]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


def check(n_bytes: int, what: str) -> int:
    """Refuses ``what`` when it needs more than the usable memory of this machine."""
    limit = int(machine_bytes() * USABLE_FRACTION)
    if n_bytes > limit:
        raise ConfigError(f"{what} needs about {_gb(n_bytes)} of memory; this machine has {_gb(limit)} to give "
                          "(80% of its memory): choose smaller sizes.")
    return n_bytes


def init_stats_bytes(hidden, batch: int, cells: int = 1) -> int:
    """Parameters, kernel gradients and the float64 copies for statistics and histograms per cell,
    plus the activations of the example batch."""
    params = param_count(hidden)
    activations = batch * (sum(hidden) + NUM_CLASSES)
    return cells * (FLOAT_BYTES * (2 * params + activations) + 8 * (2 * params + activations))


def train_bytes(hidden, batch_size: int, n_trials: int, n_train: int, n_eval: int, epochs: int, n_seeds: int,
                input_size: int = INPUT_SIZE, classes: int = NUM_CLASSES) -> int:
    """Per trial: parameters, best parameters, gradients and up to two optimizer moments, plus a
    batch's activations and those of evaluating a whole split; the data once; per seed, the batch
    order of every epoch (drawn before training: int64 permutations and their int32 positions)."""
    params = param_count(hidden, input_size, classes)
    per_trial = FLOAT_BYTES * (5 * params + (batch_size + n_eval) * (sum(hidden) + classes))
    orders = n_seeds * epochs * n_train * (8 + 4)
    return n_trials * per_trial + FLOAT_BYTES * (n_train + 2 * n_eval) * input_size + orders
