"""A convolutional network's training speed: initopt's engine against per-step jit and PyTorch.

For DeepOBS's 2c2d on Fashion-MNIST-shaped data (and 3c3d on CIFAR-10-shaped data with
``--model 3c3d``), SGD with momentum, batch 128, it times in one run, on the same data:

- ``per-step jit``: one jitted step per batch, a Python loop (issue 23's floor), with XLA's
  defaults and with the compiler options initopt compiles a CNN's training steps with
  (``networks.CONV_COMPILER_OPTIONS``: XLA's own convolutions, YNNPACK's products and sums);
- ``engine``: initopt's epoch for a convolutional network (programs of four unrolled steps),
  without instruments, and with one record per quarter epoch as ``train`` runs by default;
- ``lax.scan``: the MLP's way, all steps in one loop program (``--scan-steps``, few: it is slow);
- with ``--trials 2``: two seeds of one run (one after another on one device);
- PyTorch's eager loop of the same network, in its own virtual environment (``--torch``:
  created on demand with ``pip install torch==2.13.0``; never a dependency of initopt), as a user
  runs it, and with glibc's malloc keeping freed memory as initopt has it (``GLIBC_TUNABLES``).

This process keeps freed memory and runs programs on the calling thread, as every initopt command
does (``env.keep_freed_memory``, ``env.run_programs_inline``).

Seconds per step, and per epoch of 50,000 images (390 steps), extrapolated from ``--steps``
measured steps after a warm-up, the best of two runs each; with ``--torch``, the engine (4 records,
a quarter epoch's 97 steps) and PyTorch (as many steps) are timed in turn over ``--rounds`` rounds,
and the ratio is the best against the best, with each round's ratio and their median. Usage:

    python benchmarks/cnn_speed.py [--model 2c2d] [--steps 40] [--trials 2] [--scan-steps 3] [--torch] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from initopt.runtime import env

env.keep_freed_memory()  # as every initopt command does, before JAX starts its threads
env.run_programs_inline()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from initopt import config  # noqa: E402
from initopt.engine import placement  # noqa: E402
from initopt.engine import steps as engine_steps  # noqa: E402
from initopt.nn import networks  # noqa: E402
from initopt.engine.plan import plan_for  # noqa: E402

STEPS_PER_EPOCH = 50_000 // 128
REPEATS = 2  # each timing the best of two runs: the first after compiling ran up to 1.5x slower
SHAPES = {"2c2d": (28, 28), "3c3d": (32, 32, 3)}


def setup(model: str, n_trials: int, steps: int, instruments: int):
    shape = SHAPES[model]
    rng = np.random.default_rng(0)
    n = 128 * (steps + 8)
    x = rng.normal(size=(n, int(np.prod(shape)))).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int32)
    cfg = config.load(overrides={"model.name": model, "model.init": "default", "train.batch_size": 128,
                                 "train.seeds": n_trials, "train.instruments": instruments, "train.epochs": 1})
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"input_shape": shape})})
    plan = plan_for(cfg, "momentum", n)
    state = engine_steps.initial_state(plan, networks.get(plan.model), x[:128])
    order = np.stack([rng.permutation(n)[: 128 * (steps + 8)].reshape(-1, 128) for _ in range(n_trials)]).astype(np.int32)
    return plan, state, x, y, order


def time_engine(model: str, steps: int, n_trials: int, instruments: int) -> float:
    """Seconds per step of ``engine_steps.stepped_epoch`` (records spread as an epoch of ``steps`` would have them)."""
    plan, state, x, y, order = setup(model, n_trials, steps, instruments)
    mesh = placement.trial_mesh(n_trials)
    xd, yd = placement.replicate(x, mesh), placement.replicate(y, mesh)
    params0 = jax.tree.map(jnp.copy, state.params) if instruments else None
    probe = placement.replicate(x[:1024], mesh) if instruments else None
    # warm-up: every program once (a chunk, a single step, a recorded step)
    state, _ = engine_steps.stepped_epoch(state, xd, yd, order[:, :6], mesh, params0, probe, min(instruments, 1), True)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        state, m = engine_steps.stepped_epoch(state, xd, yd, order[:, 8:8 + steps], mesh, params0, probe, instruments, True)
        jax.block_until_ready(state.params)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def time_per_step(model: str, steps: int, options: dict | None = None) -> float:
    plan, state, x, y, order = setup(model, 1, steps, 0)
    lone = jax.tree.map(lambda a: a[0], state)
    step = jax.jit(engine_steps.train_step, donate_argnums=0, compiler_options=options)
    for idx in order[0, :2]:
        lone, _ = step(lone, x[idx], y[idx])
    jax.block_until_ready(lone.params)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for idx in order[0, 8:8 + steps]:
            lone, _ = step(lone, x[idx], y[idx])
        jax.block_until_ready(lone.params)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def time_scan(model: str, steps: int) -> float:
    plan, state, x, y, order = setup(model, 1, steps, 0)
    mesh = placement.trial_mesh(1)
    xd, yd = placement.replicate(x, mesh), placement.replicate(y, mesh)
    sharded = placement.shard_trials(order[:, :steps], mesh)
    state, _ = engine_steps.train_epoch(state, xd, yd, sharded, n_records=0)  # compiles
    jax.block_until_ready(state.params)
    start = time.perf_counter()
    state, _ = engine_steps.train_epoch(state, xd, yd, sharded, n_records=0)
    jax.block_until_ready(state.params)
    return (time.perf_counter() - start) / steps


TORCH_CODE = r"""
import json, sys, time
import torch
from torch import nn
model, steps = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
if model == "2c2d":
    net = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Linear(1024, 10))
    shape = (1, 28, 28)
else:
    net = nn.Sequential(nn.Conv2d(3, 64, 5), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(64, 96, 3), nn.ReLU(),
                        nn.MaxPool2d(3, 2, 1), nn.Conv2d(96, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                        nn.Flatten(), nn.Linear(1152, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    shape = (3, 32, 32)
x = torch.randn(128 * (steps + 2), *shape)
y = torch.randint(0, 10, (128 * (steps + 2),))
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
def run(batches):
    for b in batches:
        opt.zero_grad()
        loss_fn(net(x[b * 128:(b + 1) * 128]), y[b * 128:(b + 1) * 128]).backward()
        opt.step()
run(range(2))
best = float("inf")
for _ in range(2):
    start = time.perf_counter()
    run(range(2, 2 + steps))
    best = min(best, (time.perf_counter() - start) / steps)
print(json.dumps({"seconds_per_step": best, "torch": torch.__version__,
                  "threads": torch.get_num_threads()}))
"""


def torch_python() -> str:
    """A virtual environment with PyTorch's CPU build, made on demand (``$INITOPT_TORCH_VENV``, or
    ``benchmarks/.torch-venv``): PyTorch never enters initopt's environment."""
    venv = Path(os.environ.get("INITOPT_TORCH_VENV", Path(__file__).with_name(".torch-venv")))
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"Installing torch==2.13.0 into {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", "numpy"], check=True)
    return str(python)


# glibc's tunables for what initopt's keep_freed_memory sets with mallopt: PyTorch's step runs
# faster with them too, so its time is measured both as a user runs it and with them
KEPT_MEMORY = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647"


def time_torch(model: str, steps: int, kept_memory: bool = False) -> tuple[float, str]:
    run_env = {**os.environ, "GLIBC_TUNABLES": KEPT_MEMORY} if kept_memory else None
    out = subprocess.run([torch_python(), "-c", TORCH_CODE, model, str(steps)], check=True, capture_output=True,
                         text=True, env=run_env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds_per_step"], f"torch {result['torch']}, {result['threads']} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="2c2d", choices=sorted(SHAPES))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--scan-steps", type=int, default=3, help="steps of the lax.scan timing (0: skip it)")
    parser.add_argument("--torch", action="store_true", help="also PyTorch's eager loop (installed on demand)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --torch: rounds in which the engine and PyTorch are timed in turn")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", False)
    per_record = STEPS_PER_EPOCH // 4  # the default: a record per quarter epoch
    rows = {
        "per-step jit": time_per_step(args.model, args.steps),
        "per-step jit, initopt's options": time_per_step(args.model, args.steps, networks.CONV_COMPILER_OPTIONS),
        "engine, no instruments": time_engine(args.model, args.steps, 1, 0),
        "engine, 4 records per epoch": time_engine(args.model, per_record, 1, 1),
    }
    if args.scan_steps:
        rows["lax.scan"] = time_scan(args.model, args.scan_steps)
    if args.trials > 1:
        rows[f"engine, {args.trials} seeds (per seed)"] = time_engine(args.model, args.steps, args.trials, 0) / args.trials
    note, ratios = "", []
    if args.torch:  # in turn, so that both see the same machine (this one's speed drifts by 20%)
        engine, torch, torch_kept = [rows["engine, 4 records per epoch"]], [], []
        for r in range(args.rounds):
            if r:
                engine.append(time_engine(args.model, per_record, 1, 1))
            t, note = time_torch(args.model, per_record)  # as many steps as the engine's timing
            torch.append(t)
            torch_kept.append(time_torch(args.model, per_record, kept_memory=True)[0])
        ratios = [e / t for e, t in zip(engine, torch)]
        rows["engine, 4 records per epoch"], rows["PyTorch eager"] = min(engine), min(torch)
        rows["PyTorch eager, malloc keeping memory"] = min(torch_kept)
    base = rows["per-step jit"]
    print(f"{args.model}, batch 128, {jax.devices()[0].platform}, {args.steps} steps; jax {jax.__version__} {note}")
    print(f"{'':38s} {'s/step':>8s} {'s/epoch':>8s} {'vs per-step jit':>16s}")
    for name, t in rows.items():
        print(f"{name:38s} {t:8.3f} {t * STEPS_PER_EPOCH:8.1f} {t / base:16.2f}")
    if ratios:
        engine = rows["engine, 4 records per epoch"]
        print(f"engine / PyTorch: {engine / rows['PyTorch eager']:.2f} (best against best); per round "
              f"{', '.join(f'{r:.2f}' for r in ratios)} (median {np.median(ratios):.2f}); against PyTorch with "
              f"malloc keeping memory too: {engine / rows['PyTorch eager, malloc keeping memory']:.2f}")
    print(json.dumps({k: round(v, 5) for k, v in rows.items()}))


if __name__ == "__main__":
    main()
