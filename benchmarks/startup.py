"""Whole-process seconds of short commands, cold and warm, in one run.

Cold: a fresh cache directory (no decompressed arrays, no compiled programs) and
JAX's persistent compilation cache off. Warm: the same cache directory after one
run, the compilation cache on (the default). Each number is the median of
``--repeats`` processes. For ``train`` the number is the time from starting the
process to the start of the first epoch (the time to its first epoch line less
that epoch's own seconds). Usage:

    python benchmarks/startup.py [--repeats 3]
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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {}
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
            results[name] = {"cold_seconds": sorted(cold)[len(cold) // 2], "warm_seconds": sorted(warm)[len(warm) // 2],
                             "target_warm_seconds": TARGETS[name]}
            print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
