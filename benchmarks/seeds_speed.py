"""Seconds per model-epoch and peak memory when N seeds train as one program (N trials).

Each N runs in a fresh subprocess (so its peak resident memory is its own): the
reference MLP with Adam, the full 50,000-example split, steady-state epochs after
compilation (training and validation) through the engine (``train.fit``). The same
process also times the fixed-hyperparameter vmapped epoch (the learning rate a
compiled-in constant, as before hyperparameters became data): their ratio is what
holding hyperparameters as data costs at that N.
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
    import jax.numpy as jnp
    import numpy as np
    from flax.training.train_state import TrainState

    from initopt import config
    from initopt import data as data
    from initopt.engine import loop, placement, steps
    from initopt.engine import plan as plan_lib
    from initopt.nn import model, networks
    from initopt.optim import optimizers
    from initopt.runtime import env

    env.set_prng("legacy")
    ds = data.load()
    cfg = config.load(overrides={"train.epochs": epochs + 1, "train.seeds": n_seeds, "data.train_limit": train_limit})
    splits = data.make_splits(ds, cfg.data.train_limit)
    x, _ = data.example_batch(ds)
    plan = plan_lib.plan_for(cfg, "adam", len(splits.train_y))
    result = loop.fit(plan, splits, loop.initial_progress(plan, x))
    steady = float(np.median(result.history.epoch_seconds[1:]))  # the first epoch also evaluates for the first time

    # The fixed-hyperparameter epoch on the same stacked parameters and orders (training only,
    # so compare it with the engine's training-only time measured the same way below).
    apply = model.apply_fn(tuple(cfg.model.hidden), cfg.model.act)
    params = placement.stack_trees([networks.init_params(cfg.model, x, t.seed) for t in plan.trials])
    fixed = jax.vmap(lambda p: TrainState.create(apply_fn=apply, params=p, tx=optimizers.adam(1e-3)))(params)
    fixed = fixed.replace(step=jnp.zeros(n_seeds, jnp.int32))
    fixed_epoch = jax.jit(steps.over_trials(steps.epoch_kernel, (0, None, None, 0)), donate_argnums=0)
    orders = plan_lib.batch_orders(plan, len(splits.train_y))
    order_of = lambda e: jnp.asarray(np.stack([orders[t.seed][e] for t in plan.trials]))  # noqa: E731
    x_dev, y_dev = jnp.asarray(splits.train_x), jnp.asarray(splits.train_y)

    def train_only(epoch_fn, state):
        state, m = epoch_fn(state, x_dev, y_dev, order_of(0))
        jax.block_until_ready(m)
        times = []
        for e in range(1, epochs + 1):
            start = time.perf_counter()
            state, m = epoch_fn(state, x_dev, y_dev, order_of(e))
            jax.block_until_ready(m)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    fixed_seconds = train_only(fixed_epoch, fixed)
    engine_seconds = train_only(steps.train_epoch, loop.initial_progress(plan, x).state)
    return {
        "seeds": n_seeds,
        "seconds_per_epoch": steady,
        "seconds_per_model_epoch": steady / n_seeds,
        "compile_seconds": result.compile_seconds,
        "train_only_engine_seconds": engine_seconds,
        "train_only_fixed_hyperparameter_seconds": fixed_seconds,
        "ratio_engine_over_fixed": engine_seconds / fixed_seconds,
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
