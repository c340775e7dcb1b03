"""Memory estimates made before any work starts, so that an impossible size is refused in one
sentence instead of allocating for minutes."""

from __future__ import annotations

import math
import os

from initopt.errors import ConfigError

FLOAT_BYTES = 4
EVAL_CHUNK = 1000  # a convolutional network's examples per evaluation program
USABLE_FRACTION = 0.8  # of the machine's physical memory


def machine_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 16 * 2**30


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


def check(n_bytes: int, what: str) -> int:
    """Refuses ``what`` when it needs more than the usable memory of this machine."""
    limit = int(machine_bytes() * USABLE_FRACTION)
    if n_bytes > limit:
        raise ConfigError(f"{what} needs about {_gb(n_bytes)} of memory; this machine has {_gb(limit)} to give "
                          "(80% of its memory): choose smaller sizes.")
    return n_bytes


def init_stats_bytes(net, batch: int, cells: int = 1) -> int:
    """Parameters, kernel gradients and the float64 copies for statistics and histograms per cell,
    plus the outputs of every module on the example batch (``net``: a Network)."""
    params, activations = net.param_count, batch * net.units
    return cells * (FLOAT_BYTES * (2 * params + activations) + 8 * (2 * params + activations))


def train_bytes(net, batch_size: int, n_trials: int, n_train: int, n_eval: int, epochs: int, n_seeds: int) -> int:
    """Per trial: parameters, best parameters, gradients and up to two optimizer moments, plus the
    module outputs of a batch and of an evaluation (a whole split, or a convolutional network's
    chunk of it); the data once; per seed, the batch order of every epoch (drawn before training:
    int64 permutations and their int32 positions). ``net``: the Network, whose shapes give the counts."""
    eval_rows = min(n_eval, EVAL_CHUNK) if net.convolutional else n_eval
    per_trial = FLOAT_BYTES * (5 * net.param_count + (batch_size + eval_rows) * net.units)
    orders = n_seeds * epochs * n_train * (8 + 4)
    input_size = math.prod(net.sample_shape)
    return n_trials * per_trial + FLOAT_BYTES * (n_train + 2 * n_eval) * input_size + orders
