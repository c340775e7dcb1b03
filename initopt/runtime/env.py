"""What a run ran on: versions and devices, recorded in every run's ``run.json``."""

from __future__ import annotations

import datetime
import functools
import glob
import os
import platform
import re
import sys
import warnings
from pathlib import Path

from initopt.errors import InitoptError


def _version(package: str) -> str | None:
    from importlib import metadata  # not for the processes that only call one_blas_thread: a slow import

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    import jax

    devices = jax.devices()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "initopt": _version("initopt"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "flax": _version("flax"),
        "optax": _version("optax"),
        "numpy": _version("numpy"),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind,
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


COMPILE_CACHE_ENV = "INITOPT_COMPILE_CACHE"  # "off" (or 0/false/no) turns JAX's persistent cache off


def compile_cache_wanted() -> bool:
    """``$INITOPT_COMPILE_CACHE``: on (the default, also when empty; 1/true/yes) or off (0/false/no)."""
    value = os.environ.get(COMPILE_CACHE_ENV) or "on"
    word = value.strip().lower()
    if word in ("on", "1", "true", "yes"):
        return True
    if word in ("off", "0", "false", "no"):
        return False
    raise InitoptError(f"{COMPILE_CACHE_ENV} must be on or off, not {value!r}.")


def cache_root() -> Path:
    """initopt's cache directory (INITOPT_CACHE_DIR overrides ~/.cache/initopt)."""
    return Path(os.environ.get("INITOPT_CACHE_DIR") or Path.home() / ".cache" / "initopt")


def set_prng(impl: str) -> None:
    """``legacy`` reproduces the published (pre-JAX-0.5) random bits; ``modern`` is today's default."""
    import jax

    jax.config.update("jax_threefry_partitionable", impl == "modern")


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


@functools.cache  # once a process: process.run sets it before JAX starts, setup_jax for library use
def keep_freed_memory() -> bool:
    """Have the C library's malloc keep freed memory for reuse: no block served by a fresh
    mapping, none handed back to the system. glibc maps every block above 32 MB anew (whatever its
    threshold) and unmaps it when freed, so XLA:CPU's buffers for a program would be faulted in
    again on every call (docs/PERFORMANCE.md). Process-wide and idempotent; False where the C
    library has no ``mallopt`` (macOS)."""
    import ctypes

    try:  # by its soname: ctypes.util.find_library would run ldconfig, 10 ms of every start-up
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def run_programs_inline() -> None:
    """Have JAX run a single-device program on the calling thread (its CPU client made without
    async dispatch; a no-op once the client exists). Dispatched, a program runs on a pool thread,
    and glibc serves a pool thread's blocks from a heap of at most 64 MB: a larger block (a CNN's
    program of four steps holds about 100 MB of temporaries) is mapped anew and unmapped when
    freed, whatever :func:`keep_freed_memory` asked. Programs over several devices (seeds in
    parallel) are still dispatched."""
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", False)


def setup_jax(prng: str | None) -> dict:
    """What the CLI decides once per process before any JAX work: malloc's reuse of freed memory
    (:func:`keep_freed_memory`), programs run on the calling thread (:func:`run_programs_inline`),
    the PRNG implementation and JAX's own persistent compilation cache (on by default under
    initopt's cache directory, every program kept however small). Returns what to record in
    run.json."""
    enabled = compile_cache_wanted()
    kept = keep_freed_memory()
    run_programs_inline()
    import jax

    from initopt.runtime import compiles

    if prng is not None:  # None: JAX's default (surfaces, which predate the choice)
        set_prng(prng)
    compiles.install()
    directory = cache_root() / "jax-compilation-cache"
    if enabled:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            enabled = False  # an unwritable cache slows runs down, it does not stop them
    wanted = str(directory) if enabled else None
    if jax.config.jax_compilation_cache_dir != wanted:
        # JAX opens its cache once per process: a later command in the same process (the tests, a
        # library user) that turns it off or moves it must reset it, or it kept the first one.
        from jax.experimental.compilation_cache import compilation_cache

        jax.config.update("jax_compilation_cache_dir", wanted)
        compilation_cache.reset_cache()
    if enabled:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        _mend_unreadable_entries()
    return {"compile_cache": {"enabled": enabled, "dir": str(directory) if enabled else None},
            "malloc_keeps_freed_memory": kept}


_UNREADABLE_ENTRY = re.compile(r"Error reading persistent compilation cache entry for '([\w.\-]+)'")
_SHOW_WARNING = None  # the showwarning that _mend_unreadable_entries wraps, once installed


def _mend_unreadable_entries() -> None:
    """Removes a cache entry that JAX could not read (a truncated or corrupt file), in place of
    JAX's two-line warning. JAX then compiles the program, but never overwrites an existing entry:
    without this, every later run would warn and compile again. The warning names the jitted
    function, not the entry, so every entry of that function goes (its other shapes are compiled
    once more). Installed once per process, with a filter that shows this warning whatever the
    user's own filters say; the entries are looked for in the cache directory JAX is using when it
    warns."""
    global _SHOW_WARNING
    if _SHOW_WARNING is not None:
        return
    _SHOW_WARNING = warnings.showwarning
    # Shown whatever the user's filters (PYTHONWARNINGS=ignore, -W error): the mending keys on it.
    warnings.filterwarnings("always", message=_UNREADABLE_ENTRY.pattern.split("'")[0])

    def show(message, category, filename, lineno, file=None, line=None):
        match = _UNREADABLE_ENTRY.match(str(message))
        if match is None:
            return _SHOW_WARNING(message, category, filename, lineno, file, line)
        import jax

        directory = Path(jax.config.jax_compilation_cache_dir)
        for entry in directory.glob(f"{glob.escape(match.group(1))}-*-cache"):
            entry.unlink(missing_ok=True)
        print(f"A corrupt entry of the compilation cache ({match.group(1)}) was removed; this run compiles it "
              "again and the next one reads it from the cache.", file=sys.stderr)

    warnings.showwarning = show
