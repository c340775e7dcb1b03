"""A run directory's lifecycle, the same for every command that writes one.

``config.json`` (the resolved configuration: ``initopt COMMAND --config RUN_DIR/config.json``
runs it again) is written first, then ``run.json`` says ``running``; the run ends ``complete``
(or ``diverged``) with ``metrics.json`` written last, or ``interrupted`` (Ctrl-C, SIGTERM), or
``failed`` with the error's sentence. A directory without ``metrics.json`` never looks complete.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

from initopt.errors import InitoptError
from initopt.output import io

CONFIG = "config.json"
RUN = "run.json"
METRICS = "metrics.json"
FINISHED = ("complete", "diverged")


class Run:
    """An open run directory: :meth:`finish` ends it."""

    def __init__(self, path: Path, info: dict):
        self.path, self.info, self.status = path, info, "running"

    def finish(self, metrics: dict, status: str = "complete", **info) -> None:
        io.write_json(self.path / RUN, {**self.info, **info, "status": status})
        io.write_json(self.path / METRICS, metrics)  # last: its presence means the run has ended
        self.status = status


def mark(path: Path, info: dict, status: str, **more) -> None:
    """``run.json`` says ``status`` (interrupted, failed), where the disk still allows that write: a
    full disk may refuse it too, and then the error alone is reported."""
    try:
        io.write_json(path / RUN, {**info, **more, "status": status})
    except InitoptError:
        pass


@contextlib.contextmanager
def lifecycle(path: Path, command: str, config: dict, info: dict | None = None,
              epochs_completed: Callable[[], int] | None = None) -> Iterator[Run]:
    """Opens ``path`` for a run of ``command``; the body ends it with :meth:`Run.finish`. A
    training run's ``epochs_completed()`` is recorded when it is interrupted or fails."""
    io.ensure_dir(path)
    io.start_rewrite(path)
    io.write_json(path / CONFIG, config)
    run = Run(path, {"command": command, **(info or {})})
    io.write_json(path / RUN, {**run.info, "status": "running"})
    try:
        yield run
    except (KeyboardInterrupt, InitoptError) as e:
        more = {} if epochs_completed is None else {"epochs_completed": epochs_completed()}
        if isinstance(e, InitoptError):
            more["error"] = str(e)
        mark(path, run.info, "failed" if isinstance(e, InitoptError) else "interrupted", **more)
        raise
