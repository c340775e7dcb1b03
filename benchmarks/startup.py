"""Whole-process seconds of short commands, cold and warm, in one run.

Cold: a fresh cache directory (no decompressed arrays, no compiled programs) and
JAX's persistent compilation cache off. Warm: the same cache directory after one
run, the compilation cache on (the default). Each number is the median (and the
fastest) of ``--repeats`` processes. For ``train`` the number is the time from
starting the process to the start of the first epoch (the time to its first epoch
line less that epoch's own seconds).

The floor, measured in the same run: a process that only imports JAX and runs one
tiny program, which every command pays; each warm time is also given as a multiple
of it, a ratio that holds across machines better than seconds do. Usage:

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def floor_seconds(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(FLOOR, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    floor = floor_seconds(args.repeats)
    results = {"floor: python -c 'import jax' + one program": {"seconds": median(floor), "fastest": min(floor)}}
    print(json.dumps(results), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in COMMANDS.items():
            cold, warm = [], []
            for i in range(args.repeats):
                cache = os.path.join(tmp, f"cold-{len(results)}-{i}")
                env = dict(os.environ, INITOPT_CACHE_DIR=cache, INITOPT_COMPILE_CACHE="off")
                cold.append(run_once(name, command, env, os.path.join(tmp, "out")))
            warm_cache = os.path.join(tmp, f"warm-{len(results)}")
            env = dict(os.environ, INITOPT_CACHE_DIR=warm_cache, INITOPT_COMPILE_CACHE="on")
            run_once(name, command, env, os.path.join(tmp, "out"))  # fills the caches
            for _ in range(args.repeats):
                warm.append(run_once(name, command, env, os.path.join(tmp, "out")))
            results[name] = {"cold_seconds": median(cold), "warm_seconds": median(warm), "warm_fastest": min(warm),
                             "warm_over_floor": median(warm) / median(floor), "target_warm_seconds": TARGETS[name]}
            print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
