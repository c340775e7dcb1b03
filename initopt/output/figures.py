"""Figures drawn in worker processes while the main process computes.

A short command spends much of its time on matplotlib: about 0.7 s to import it and
0.15 to 0.45 s to draw and save each figure on a laptop core. The workers start when a
command does, before the main process imports JAX: a fork server imports matplotlib
once, beside JAX's import, and forks the workers from itself; later each figure is
drawn by whichever worker is free. A command asks for no more workers than it draws
figures at one time (two at most by default). A command waits for its figures
(:meth:`Figures.wait`) before it writes its final status, so a run that says "complete"
has every PNG. ``INITOPT_FIGURE_WORKERS=0`` draws in the main process instead (as does a
machine with one core).

Figures are named by their builder in :mod:`initopt.output.plots` (``"histograms"``), so the main
process never imports matplotlib itself; each PNG is written by :func:`initopt.output.io.save_figure`.
"""

from __future__ import annotations

import concurrent.futures
import gc
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from initopt.errors import InitoptError
from initopt.runtime import process

WORKERS_ENV = "INITOPT_FIGURE_WORKERS"


def default_workers() -> int:
    """``$INITOPT_FIGURE_WORKERS``, else (unset or empty, like initopt's other variables) two where
    there are two cores or more, else none."""
    value = os.environ.get(WORKERS_ENV, "")
    if not value.strip():
        return 2 if (os.cpu_count() or 1) >= 2 else 0
    try:
        workers = int(value)
    except ValueError:
        workers = -1
    if workers < 0:
        raise InitoptError(f"{WORKERS_ENV} must be a whole number of processes (0 or more), not {value!r}.")
    return workers


_SETTLED = False  # this process is a figure worker, or the server that forks them, and is ready


def settle() -> None:
    """Readies this process to draw: it yields the CPU to the main process (the niceness only
    matters while the main process is busy), keeps numpy's BLAS to one thread, imports matplotlib,
    and freezes what it has built so that processes forked from it do not copy those pages when
    Python's collector visits them.
    Run by the fork server before it forks the workers (:mod:`initopt.output.figure_server`), else by
    each worker; a no-op in a worker forked from a settled server."""
    global _SETTLED
    if _SETTLED:
        return
    try:
        os.nice(10)
    except (AttributeError, OSError):  # no nice() (Windows) or not allowed: the same work, unordered
        pass
    process.one_blas_thread()  # before numpy: the 3D surface's projections took 0.31 s on two threads, 0.27 s on one
    collecting = gc.isenabled()
    gc.disable()  # the import makes ~100,000 lasting objects: 150 passes over them took 45 ms
    import initopt.output.plots  # noqa: F401  (matplotlib is imported before the first figure)

    gc.freeze()
    if collecting:
        gc.enable()
    _SETTLED = True


STARTED_TOGETHER_SECONDS = 30.0  # how long a new worker waits for the pool's others to start


def _start_worker(started=None) -> None:
    """A worker's first acts: leave Ctrl-C to the main process (which ends its workers; a terminal
    sends SIGINT to every process of the job, and a worker would print a traceback); end with the
    main process, however it ends; settle; then wait at ``started`` (a barrier of the pool's size)
    until every worker of the pool has started. The pool starts a worker only for a task that finds
    none idle, so a first worker that was already idle took the second no-op task itself, and the
    pool ran one worker where it was given two (seen in about one command in ten)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_main_process()
    settle()
    if started is not None:
        try:
            started.wait(STARTED_TOGETHER_SECONDS)
        except threading.BrokenBarrierError:  # a worker never came: draw with those that did
            pass


def _end_with_main_process() -> None:
    """Ends this worker when the main process is gone. The main process ends its workers itself,
    unless it is killed (SIGKILL, the out-of-memory killer): then the workers, which wait on a
    queue whose write end they hold themselves, and the fork server and resource tracker, which
    wait for them, stayed behind for good. A thread waits on the pipe that multiprocessing keeps
    open from the main process (its sentinel), which closes when that process dies."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(0)), name="initopt-orphan-guard",
                         daemon=True).start()


def _ready() -> None:
    """A no-op task: submitting one per worker makes the pool start them all now."""


def draw_now(builder: str, path: Path, args: tuple, kwargs: dict) -> str:
    """Builds ``plots.<builder>(*args, **kwargs)`` and saves it as ``path``, in this process."""
    from initopt.output import io, plots

    return str(io.save_figure(getattr(plots, builder)(*args, **kwargs), Path(path)))


# By size, kept for the process's life: each pool with the thread that started its workers.
_POOLS: dict[int, tuple[concurrent.futures.ProcessPoolExecutor, threading.Thread]] = {}


def _context():
    """A fork server where there is one: it imports matplotlib once and forks every worker from
    that (two workers spawned side by side each imported it, on the one core the main process left
    them, and were ready about 0.9 s later). The server is a fresh interpreter, so no worker is a
    fork of a process with JAX's threads. Elsewhere (Windows) each worker is spawned and settles."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["initopt.output.figure_server"])
    return context


# When a command is killed (SIGTERM, SIGKILL, out of memory), multiprocessing's resource tracker
# unlinks the semaphores of its pool's queues, and warned on stderr of "5 leaked semaphore objects"
# a moment after the command had ended. The processes multiprocessing starts (the tracker, the fork
# server) take their interpreter flags, -W included, from this process's sys.warnoptions.
QUIET_TRACKER = "ignore:resource_tracker:UserWarning"


def _pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """The pool of this size, started on first use and then reused (tests run many commands)."""
    if QUIET_TRACKER not in sys.warnoptions:
        sys.warnoptions.append(QUIET_TRACKER)
    if workers not in _POOLS:
        context = _context()
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                      initargs=(context.Barrier(workers),))
        # Starting a worker waits until the fork server has imported matplotlib: a thread waits,
        # not the command. Submitting one no-op per worker starts them all.
        starter = threading.Thread(target=lambda: [pool.submit(_ready) for _ in range(workers)],
                                   name="initopt-figures", daemon=True)
        starter.start()
        _POOLS[workers] = (pool, starter)
    return _POOLS[workers][0]


def _forget_broken(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """A pool whose worker died is broken for good: the next command starts a new one."""
    for size, (known, _) in list(_POOLS.items()):
        if known is pool:
            del _POOLS[size]


class Figures:
    """The figures of one command: :meth:`draw` hands one to a worker, :meth:`wait` waits for all."""

    def __init__(self, workers: int | None = None, *, at_most: int | None = None):
        workers = default_workers() if workers is None else workers
        workers = workers if at_most is None else min(workers, at_most)
        self._pool = _pool(workers) if workers > 0 else None
        self._pending: list[tuple[concurrent.futures.Future, tuple]] = []

    def draw(self, path: Path, builder: str, *args, **kwargs) -> None:
        """Draws ``plots.<builder>(*args, **kwargs)`` into ``path`` (a PNG), in a worker if there is one."""
        job = (builder, str(Path(path).resolve()), args, kwargs)
        if self._pool is None:
            draw_now(*job)
            return
        try:
            self._pending.append((self._pool.submit(draw_now, *job), job))
        except BrokenProcessPool:  # a worker died earlier (killed, out of memory): draw here instead
            _forget_broken(self._pool)
            draw_now(*job)

    def wait(self) -> list[Path]:
        """Waits for every figure handed out so far; a builder's error is raised here."""
        pending, self._pending = self._pending, []
        done = []
        for future, job in pending:
            try:
                done.append(Path(future.result()))
            except BrokenProcessPool:
                _forget_broken(self._pool)
                done.append(Path(draw_now(*job)))
        return done


# How long a command that ends while its workers are starting waits for them to have started
# (the fork server's import of matplotlib: under a second here).
START_WAIT_SECONDS = 10.0


def stop_workers() -> None:
    """Ends the workers now (a command that failed early has no figures to wait for). Called by
    the console entry point as the process ends: the workers are killed, not asked to finish
    (their interpreters' teardown took 0.2 s), then the pool's own thread is waited for, so no
    queue is half cleaned up when the process ends (a leaked-semaphore warning).

    Workers still starting are waited for first: a worker forked after this process had gone
    could not rebuild the pool's queues (their semaphores are unlinked at exit) and printed a
    traceback after the command's own last words."""
    pools = list(_POOLS.values())
    _POOLS.clear()
    for pool, starter in pools:
        starter.join(START_WAIT_SECONDS)
        if starter.is_alive():  # the fork server never became ready: no worker to end
            continue
        terminate = getattr(pool, "terminate_workers", None)  # Python 3.14's public way
        if terminate is not None:
            terminate()
        else:
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
