"""Seconds per epoch: initopt's engine (one trial) against a fixed-hyperparameter scanned epoch
and against per-step loops fed numpy batches.

The engine's epoch holds the learning rate as data in the optimizer state and runs
through the trial axis; the fixed-hyperparameter epoch is the same ``lax.scan`` with
the learning rate compiled in as a constant (the engine before hyperparameters
became data), so their ratio is what the engine costs.

The per-step loop is the reference experiment's way: a Python iterator yields
numpy batches, and a jitted ``train_step`` runs per batch. Its loader is timed in
two forms: as the reference had it (torchvision's per-item PIL image, the
reference's ``image_to_numpy`` transform, and a collate that stacks them: the
target's baseline),
and a best case for per-step loops (one vectorised numpy gather per batch).
All train the reference MLP with Adam on the same data in the same order, in
one process, so the ratios are comparable. Usage:

    python benchmarks/train_speed.py [--epochs 3] [--train-limit N] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState

from initopt import config
from initopt import data
from initopt.engine import instruments, loop, steps
from initopt.engine import plan as plan_lib
from initopt.nn import model, networks
from initopt.optim import optimizers
from initopt.runtime import env


class ReferenceDataset:
    """Per-example access as torchvision's FashionMNIST does it (a PIL image per item),
    followed by the reference's transform ``image_to_numpy``."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __getitem__(self, i):
        from PIL import Image  # Pillow comes with matplotlib

        img = Image.fromarray(self.images[i])  # mode "L" for uint8
        img = np.array(img, dtype=np.float32)
        img = (img / 255.0 - data.PIXEL_MEAN) / data.PIXEL_STD
        return img, self.labels[i]


def reference_batches(dataset: ReferenceDataset, order_SxB):
    """The reference loader: fetch each example, then ``numpy_collate`` (np.stack)."""
    for idx in order_SxB:
        items = [dataset[i] for i in idx]
        yield np.stack([img for img, _ in items]).reshape(len(idx), -1), np.array([lbl for _, lbl in items])


def gathered_batches(x, y, order_SxB):
    """The fastest host-side loader: one vectorised gather per batch."""
    for idx in order_SxB:
        yield x[idx], y[idx]


def per_step_epoch(step, state, batches):
    losses = []
    for xb, yb in batches:
        state, (loss, _) = step(state, xb, yb)
        losses.append(loss)
    jax.block_until_ready(losses[-1])
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loop (after one warm-up)")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    env.set_prng("legacy")
    ds = data.load(args.data_dir)
    cfg = config.load(overrides={"train.epochs": args.epochs + 1, "data.train_limit": args.train_limit})
    splits = data.make_splits(ds, cfg.data.train_limit, instruments.PROBE_SIZE, 1)
    x_example, _ = data.example_batch(ds)
    plan = plan_lib.plan_for(cfg, "adam", len(splits.train_y))
    orders = plan_lib.batch_orders(plan, len(splits.train_y))[cfg.train.seed]
    params = networks.init_params(cfg.model, x_example)
    apply = model.apply_fn(tuple(cfg.model.hidden), cfg.model.act)

    def fixed_state():
        state = TrainState.create(apply_fn=apply, params=jax.tree.map(jnp.copy, params), tx=optimizers.adam(1e-3))
        return state.replace(step=jnp.zeros((), jnp.int32))  # the type it has after an update: no recompile

    # Per-step loops (reference style), on the same training examples.
    train_idx, _ = data.split_indices(len(ds.train_labels))
    train_idx = train_idx[: cfg.data.train_limit]
    reference_ds = ReferenceDataset(ds.train_images[train_idx], ds.train_labels[train_idx].astype(np.int32))
    loaders = {
        "reference_loader": lambda order: reference_batches(reference_ds, order),
        "gather_loader": lambda order: gathered_batches(splits.train_x, splits.train_y, order),
    }
    step = jax.jit(steps.train_step, donate_argnums=0)
    per_step = {}
    for name, loader in loaders.items():
        state = fixed_state()
        state = per_step_epoch(step, state, loader(orders[0]))  # warm-up (compiles)
        times = []
        for epoch in range(1, args.epochs + 1):
            start = time.perf_counter()
            state = per_step_epoch(step, state, loader(orders[epoch]))
            times.append(time.perf_counter() - start)
        per_step[name] = float(np.median(times))

    x_dev, y_dev = jnp.asarray(splits.train_x), jnp.asarray(splits.train_y)
    orders_dev = jnp.asarray(orders, jnp.int32)

    def time_epochs(epoch_fn, state, order_of):
        start = time.perf_counter()
        state, m = epoch_fn(state, x_dev, y_dev, order_of(0))  # warm-up: compiles
        jax.block_until_ready(m)
        compile_seconds = time.perf_counter() - start
        times = []
        for epoch in range(1, args.epochs + 1):
            start = time.perf_counter()
            state, m = epoch_fn(state, x_dev, y_dev, order_of(epoch))
            jax.block_until_ready(m)
            times.append(time.perf_counter() - start)
        return float(np.median(times)), compile_seconds

    # The fixed-hyperparameter scanned epoch (the learning rate a compiled-in constant), then the
    # engine's (one trial, hyperparameters as data), alternating twice to even out drift.
    fixed_epoch = jax.jit(steps.epoch_kernel, donate_argnums=0)
    # The engine with the default instruments (4 records per epoch, probe batch of 1024 images).
    progress = loop.initial_progress(plan, x_example)
    probe = jnp.asarray(splits.val_x[: instruments.PROBE_SIZE]) if len(splits.val_x) else x_dev[: instruments.PROBE_SIZE]
    instrumented_epoch = functools.partial(steps.train_epoch, params0_T=progress.params0, probe_x_PxD=probe,
                                           n_records=instruments.DEFAULT_RECORDS, dead_units=True)
    fixed, engine, instrumented = [], [], []
    for _ in range(2):
        fixed.append(time_epochs(fixed_epoch, fixed_state(), lambda e: orders_dev[e]))
        engine.append(time_epochs(steps.train_epoch, loop.initial_progress(plan, x_example).state,
                                  lambda e: orders_dev[e][None]))
        instrumented.append(time_epochs(instrumented_epoch, loop.initial_progress(plan, x_example).state,
                                        lambda e: orders_dev[e][None]))
    scanned = min(t for t, _ in engine)
    fixed_seconds = min(t for t, _ in fixed)
    instrumented_seconds = min(t for t, _ in instrumented)

    result = {
        "train_examples": int(len(splits.train_y)),
        "steps_per_epoch": int(orders.shape[1]),
        "device": jax.devices()[0].device_kind,
        "per_step_reference_loader_seconds_per_epoch": per_step["reference_loader"],
        "per_step_gather_loader_seconds_per_epoch": per_step["gather_loader"],
        "fixed_hyperparameter_scanned_seconds_per_epoch": fixed_seconds,
        "engine_seconds_per_epoch": scanned,
        "engine_compile_seconds": engine[0][1],
        "ratio_engine_over_fixed_hyperparameter_epoch": scanned / fixed_seconds,
        "engine_with_instruments_seconds_per_epoch": instrumented_seconds,
        "ratio_instruments_on_over_off": instrumented_seconds / scanned,
        "ratio_engine_over_reference_loop": scanned / per_step["reference_loader"],
        "ratio_engine_over_gather_loop": scanned / per_step["gather_loader"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
