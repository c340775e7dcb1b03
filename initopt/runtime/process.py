"""How a command's process starts and ends. Each choice here was measured on short commands
(init-stats, surface), whose start-up is most of their time:

- the garbage collector's first threshold is raised (:data:`GC_THRESHOLD`);
- numpy's BLAS keeps to one thread (:func:`one_blas_thread`), here and in the figure workers;
- the figure workers (:mod:`initopt.output.figures`) start first in every command that draws, so
  that matplotlib loads in their fork server while JAX loads in the command (their pool, its fork
  server and what it preloads are in that module);
- once the command has returned, the process ends without Python's teardown (:func:`run`);
- while a command trains, SIGTERM (a scheduler's or container's stop) ends it like Ctrl-C, its
  runs checkpointed and marked interrupted (:func:`sigterm_as_interrupt`): only then, since a
  handler cannot run while the main thread is inside a long XLA computation.

The measurements behind each are in ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import sys
import threading

from initopt.runtime import env

# numpy's BLAS (OpenBLAS in its wheels, MKL in some builds) starts a thread per core when numpy is
# imported, and each thread spins after every call before it sleeps. initopt's heavy arithmetic
# runs in XLA, with its own threads; BLAS's spinning threads took the second core from the figure
# workers (docs/PERFORMANCE.md).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    """Keeps numpy's BLAS to one thread in this process and those it starts, unless the user set
    the variables. BLAS reads them once, when numpy loads it: call before numpy is imported."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


# A command's start-up (imports, Typer's validators, JAX's traces) makes a few hundred thousand
# objects that live as long as the process, and little cyclic garbage: Python's collector, run
# every 700 new objects, would go over them hundreds of times (docs/PERFORMANCE.md). From a
# million new objects on (what a long run reaches) it collects as usual.
GC_THRESHOLD = 1_000_000


def run(app) -> None:
    """Runs the command line ``app`` as a process: the collector's first threshold raised,
    numpy's BLAS kept to one thread and freed memory kept for reuse before anything else. Once the
    command has returned (its files written and closed), the process ends without Python's
    teardown, which frees every JAX and XLA object one at a time (0.3 to 0.7 s of a short
    command); exit handlers still run and the streams are flushed."""
    gc.set_threshold(GC_THRESHOLD)
    one_blas_thread()
    env.keep_freed_memory()  # before JAX starts its threads (their arenas still map blocks over 64 MB
    # anew: setup_jax has programs run on this thread, env.run_programs_inline)
    try:
        app()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    if "initopt.output.figures" in sys.modules:  # idle figure workers: ended, not waited for
        sys.modules["initopt.output.figures"].stop_workers()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is: handled like Ctrl-C (exit code 143)."""


_SIGTERM = threading.Event()  # set by the handler below: SIGTERM came while training


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While training: SIGTERM raises :class:`Terminated`, so the run ends as an interrupted one
    (last completed epoch checkpointed, status ``interrupted``) and resumes when run again.
    The handler also sets a flag that the training loop reads after each epoch
    (:func:`raise_if_terminated`): a handler's exception can be lost, when Python runs the
    handler inside a callback that JAX's C++ calls and ignores what it raises, and one such
    SIGTERM let a run train to its end."""

    def handler(signum, frame):
        _SIGTERM.set()
        raise Terminated()

    _SIGTERM.clear()
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _SIGTERM.clear()


def raise_if_terminated() -> None:
    """:class:`Terminated` if SIGTERM came while training and its exception was lost."""
    if _SIGTERM.is_set():
        raise Terminated()
