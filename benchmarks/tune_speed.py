"""A learning-rate grid as one `initopt tune` against the same trials as separate `initopt train` processes.

Seven learning rates x 3 seeds x 2 epochs of the reference MLP with SGD on the full
data: one `tune` (one compiled program for the 21 trials, no final runs) against 21
`train --seeds 1` processes, one per (rate, seed), run one after another as a job
array would. Both with a warm cache, timed as whole processes in one run. Usage:

    python benchmarks/tune_speed.py [--epochs 2] [--optimizer sgd]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--points", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    lrs = np.logspace(-3, 0, args.points).tolist()
    grid = ",".join(f"{lr:.6g}" for lr in lrs)
    base = [sys.executable, "-m", "initopt"]
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ)
        warm = [*base, "train", "--optimizer", args.optimizer, "--epochs", "1", "--quiet", "--out", out + "/warm"]
        subprocess.run(warm, env=env, check=True, capture_output=True)  # data and compilation caches warm
        start = time.perf_counter()
        subprocess.run([*base, "tune", "--optimizer", args.optimizer, "--lr-grid", grid, "--seeds", str(args.seeds),
                        "--epochs", str(args.epochs), "--quiet", "--out", out + "/tune"], env=env, check=True,
                       capture_output=True)
        tune_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for lr in lrs:
            for s in range(args.seeds):
                done = subprocess.run([*base, "train", "--optimizer", args.optimizer, "--lr", f"{lr:.6g}", "--seed",
                                       str(42 + s), "--epochs", str(args.epochs), "--quiet", "--out",
                                       out + "/separate"], env=env, capture_output=True)
                if done.returncode not in (0, 3):  # 3: that trial diverged, as it may in a grid
                    raise RuntimeError(done.stderr.decode()[-2000:])
        separate_seconds = time.perf_counter() - start
    trials = len(lrs) * args.seeds
    print(json.dumps({"trials": trials, "epochs": args.epochs, "tune_seconds": tune_seconds,
                      "separate_train_processes_seconds": separate_seconds,
                      "ratio_tune_over_separate": tune_seconds / separate_seconds}, indent=2))


if __name__ == "__main__":
    main()
