"""Multi-process (multi-host) runs with ``jax.distributed.initialize``.

Start the same ``initopt train --seeds N`` command once per process with

    INITOPT_COORDINATOR=host0:12355   # address of process 0, reachable by all
    INITOPT_NUM_PROCESSES=2
    INITOPT_PROCESS_ID=0              # 0 .. NUM_PROCESSES-1, one per process

The seed axis is then sharded over the devices of every process; each process
reads the same data and config, and process 0 alone writes the run directory.
On CPU the processes exchange data through Gloo collectives.
"""

from __future__ import annotations

import os

from initopt.errors import ConfigError

_ENV = ("INITOPT_COORDINATOR", "INITOPT_NUM_PROCESSES", "INITOPT_PROCESS_ID")


def settings() -> tuple[str, int, int] | None:
    """The (coordinator, number of processes, process id) from the environment, if set."""
    values = [os.environ.get(k) for k in _ENV]
    if not any(values):
        return None
    if not all(values):
        raise ConfigError(f"Multi-process runs need all of {', '.join(_ENV)}.")
    try:
        n, pid = int(values[1]), int(values[2])
    except ValueError:
        raise ConfigError("INITOPT_NUM_PROCESSES and INITOPT_PROCESS_ID must be integers.") from None
    if not 0 <= pid < n:
        raise ConfigError(f"INITOPT_PROCESS_ID must lie in 0..{n - 1}, not {pid}.")
    return values[0], n, pid


def _keep_stdout_for_results() -> None:
    """Gloo's C++ code prints connection notices on file descriptor 1; send those to stderr and
    keep Python's ``sys.stdout`` (tables, ``--json``) on the original stdout."""
    import sys

    sys.stdout.flush()
    original = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(original, "w", buffering=1)


def initialize() -> int:
    """Joins the process group when configured; returns this process's index (0 otherwise)."""
    config = settings()
    if config is None:
        return 0
    import jax

    coordinator, n, pid = config
    _keep_stdout_for_results()
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # used by CPU devices only
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=n, process_id=pid)
    from initopt.output import io

    io.set_writes_enabled(pid == 0)
    return pid
