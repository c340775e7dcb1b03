"""XLA compilations as JAX reports them (``jax.monitoring``): counted and timed per function.

JAX records an event around every backend compilation with the jitted function's
name. One listener, installed once per process, keeps them, so a run can say how
long it spent compiling and a test can count the programs that were really built
(not the Python calls that might have built one).
"""

from __future__ import annotations

import dataclasses

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
CACHE_HIT = "/jax/compilation_cache/cache_hits"


@dataclasses.dataclass
class _Log:
    compiles: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    cache_hits: int = 0
    installed: bool = False


_LOG = _Log()


def _on_duration(event: str, duration: float, **kwargs) -> None:
    if event == BACKEND_COMPILE:
        _LOG.compiles.append((str(kwargs.get("fun_name", "")), float(duration)))


def _on_event(event: str, **kwargs) -> None:
    if event == CACHE_HIT:
        _LOG.cache_hits += 1


def install() -> None:
    """Starts listening (idempotent)."""
    if _LOG.installed:
        return
    from jax import monitoring

    monitoring.register_event_duration_secs_listener(_on_duration)
    monitoring.register_event_listener(_on_event)
    _LOG.installed = True


@dataclasses.dataclass(frozen=True)
class Mark:
    compiles: int
    cache_hits: int


def mark() -> Mark:
    """A point in the log; :func:`since` tells what happened after it."""
    install()
    return Mark(len(_LOG.compiles), _LOG.cache_hits)


def since(start: Mark, name: str | None = None) -> dict:
    """Compilations after ``start`` (only those of functions whose name contains ``name``)."""
    done = [(n, s) for n, s in _LOG.compiles[start.compiles:] if name is None or name in n]
    return {"count": len(done), "seconds": sum(s for _, s in done), "cache_hits": _LOG.cache_hits - start.cache_hits}


def report(start) -> dict:
    """How many programs were compiled since ``start`` (:func:`mark`), and how many came from the
    persistent cache: the ``compiles`` entry of a run's ``run.json``."""
    done = since(start)
    return {"programs": done["count"], "from_cache": done["cache_hits"], "compile_seconds": done["seconds"]}
