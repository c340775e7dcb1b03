"""Whole-process seconds of short commands, cold and warm, in one run.

Cold: a fresh cache directory (no decompressed arrays, no compiled programs) and
JAX's persistent compilation cache off. Warm: one cache directory, filled by a first
run of every command, the compilation cache on (the default). Each number is the
median (and the fastest, and every round's) of ``--repeats`` processes, taken in
rounds: every command (cold and warm) and the floor once per round. For ``train`` the number is the time from
starting the process to the start of the first epoch (the time to its first epoch
line less that epoch's own seconds).

The floor, measured in the same run: a process that only imports JAX and runs one
tiny program, which every command pays; each warm time is also given as a multiple
of it, a ratio that holds across machines better than seconds do.

initopt's own modules are byte-compiled first, as an installed package's are: where
``PYTHONDONTWRITEBYTECODE`` is set (this sandbox sets it), Python would otherwise compile
them from source in every process, about 0.1 s of each command. Usage:

    python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "init-stats": ["init-stats", "--init", "kaiming", "--act", "relu"],
    "init-stats --grid": ["init-stats", "--grid"],
    "surface --kind steep": ["surface", "--kind", "steep"],
    "train: first epoch starts": ["train", "--config", "configs/smoke.toml", "--optimizer", "adam", "--epochs", "2",
                                  "--overwrite"],
}
TARGETS = {"init-stats": 3.0, "init-stats --grid": 4.0, "surface --kind steep": 2.0, "train: first epoch starts": 3.0}
EPOCH_LINE = re.compile(r"epoch 1/\d+: val acc [0-9.]+.*\(([0-9.]+) s\)")


FLOOR = [sys.executable, "-c", "import jax, jax.numpy as jnp; jnp.zeros(1).block_until_ready()"]


def floor_seconds() -> float:
    start = time.perf_counter()
    subprocess.run(FLOOR, check=True, capture_output=True)
    return time.perf_counter() - start


def run_once(name: str, args: list[str], env: dict, out: str) -> float:
    cmd = [sys.executable, "-m", "initopt", *args, "--out", out]
    start = time.perf_counter()
    if not name.startswith("train"):
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return time.perf_counter() - start
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    for line in proc.stderr:
        match = EPOCH_LINE.search(line)
        if match and first is None:
            first = time.perf_counter() - start - float(match.group(1))
    if proc.wait() != 0 or first is None:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    return first


def rounds(times: list[float]) -> list[float]:
    """Every round's seconds, in order: the spread a median hides."""
    return [round(t, 2) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    package = importlib.util.find_spec("initopt").submodule_search_locations[0]
    if not compileall.compile_dir(package, quiet=1):
        raise RuntimeError(f"could not byte-compile {package}")
    cold: dict[str, list[float]] = {name: [] for name in COMMANDS}
    warm: dict[str, list[float]] = {name: [] for name in COMMANDS}
    floor: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")

        def cold_env(run: str) -> dict:  # a cache directory of its own: nothing decompressed or compiled
            return dict(os.environ, INITOPT_CACHE_DIR=os.path.join(tmp, run), INITOPT_COMPILE_CACHE="off")

        warm_env = dict(os.environ, INITOPT_CACHE_DIR=os.path.join(tmp, "warm"), INITOPT_COMPILE_CACHE="on")
        for name, command in COMMANDS.items():
            run_once(name, command, warm_env, out)  # fills the warm caches
        # Round by round, every command once: a slow spell of a shared machine falls on all of them
        # (and on the floor) alike, not on whichever command was being measured then.
        for i in range(args.repeats):
            floor.append(floor_seconds())
            for k, (name, command) in enumerate(COMMANDS.items()):
                cold[name].append(run_once(name, command, cold_env(f"cold-{k}-{i}"), out))
                warm[name].append(run_once(name, command, warm_env, out))
            print(f"round {i + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    median = statistics.median
    results = {"floor: python -c 'import jax' + one program": {"seconds": median(floor), "fastest": min(floor),
                                                                "rounds": rounds(floor)}}
    for name in COMMANDS:
        results[name] = {"cold_seconds": median(cold[name]), "warm_seconds": median(warm[name]),
                         "warm_fastest": min(warm[name]), "warm_over_floor": median(warm[name]) / median(floor),
                         "target_warm_seconds": TARGETS[name], "warm_rounds": rounds(warm[name])}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
