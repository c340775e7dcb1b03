"""Seconds per model-epoch and peak memory when N seeds train as one vmapped program.

Each N runs in a fresh subprocess (so its peak resident memory is its own): the
reference MLP with Adam, the full 50,000-example split, steady-state epochs after
compilation (training and validation). N = 1 is the ordinary single-seed path.
Usage:

    python benchmarks/seeds_speed.py [--seeds 1,4,8,16] [--epochs 2] [--train-limit N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(n_seeds: int, epochs: int, train_limit: int | None) -> dict:
    import jax
    import numpy as np

    from initopt import config, data, seeds, stats, train

    stats.set_prng("legacy")
    ds = data.load()
    cfg = config.load(overrides={"train.epochs": epochs + 1, "train.seeds": n_seeds, "data.train_limit": train_limit})
    splits = data.make_splits(ds, cfg.data.train_limit)
    x, _ = data.example_batch(ds)
    times = []
    last = [time.perf_counter()]

    def on_epoch(p):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    if n_seeds == 1:
        progress = train.initial_progress(cfg, x, "adam")
        fit = lambda: train.fit(cfg, splits, progress, on_epoch)  # noqa: E731
    else:
        progress = seeds.initial_progress(cfg, x, "adam", n_seeds)
        fit = lambda: seeds.fit_seeds(cfg, splits, progress, n_seeds, on_epoch)  # noqa: E731
    last[0] = time.perf_counter()
    result = fit()
    steady = float(np.median(result.history.epoch_seconds[1:]))  # the first epoch also compiles evaluation
    return {
        "seeds": n_seeds,
        "seconds_per_epoch": steady,
        "seconds_per_model_epoch": steady / n_seeds,
        "compile_seconds": result.compile_seconds,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "devices": len(jax.devices()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,4,8,16")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up)")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.epochs, args.train_limit)))
        return
    rows = []
    for n in (int(v) for v in args.seeds.split(",")):
        cmd = [sys.executable, __file__, "--child", str(n), "--epochs", str(args.epochs)]
        if args.train_limit:
            cmd += ["--train-limit", str(args.train_limit)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    base = next((r for r in rows if r["seeds"] == 1), None)
    if base:
        for r in rows:
            r["model_epoch_ratio_to_1"] = r["seconds_per_model_epoch"] / base["seconds_per_model_epoch"]
    print(json.dumps({"results": rows}, indent=2))


if __name__ == "__main__":
    main()
