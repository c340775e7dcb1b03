"""The trial engine: trials of one program equal separate runs, hyperparameters are data, sharding."""

import json
import os
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

from initopt import config
from initopt.engine import loop, steps
from initopt.engine import plan as plan_lib
from initopt.runtime import compiles

OVERRIDES = {"model.hidden": [64, 32], "train.epochs": 2, "train.batch_size": 32}


def fit(cfg, splits, x, optimizer, **plan_kwargs):
    plan = plan_lib.plan_for(cfg, optimizer, len(splits.train_y), **plan_kwargs)
    progress = loop.fit(plan, splits, loop.initial_progress(plan, x))
    return plan, progress, loop.test_accuracies(progress, splits)


def test_trials_of_one_program_equal_separate_runs(tiny_splits):
    """Two seeds x two learning rates as one vmapped program against four lone runs."""
    _, splits, x = tiny_splits
    cfg = config.load(overrides={**OVERRIDES, "train.seed": 7})
    plan, multi, accs = fit(cfg, splits, x, "momentum", lrs=[0.05, 0.2], seeds=[7, 8])
    assert [(t.lr, t.seed) for t in plan.trials] == [(0.05, 7), (0.05, 8), (0.2, 7), (0.2, 8)]
    for i, trial in enumerate(plan.trials):
        one = config.load(overrides={**OVERRIDES, "train.seed": trial.seed, "train.lr": trial.lr})
        _, single, single_acc = fit(one, splits, x, "momentum")
        np.testing.assert_allclose(multi.history.train_loss[i], single.history.train_loss[0], rtol=1e-5)
        np.testing.assert_allclose(multi.history.val_scores[i], single.history.val_scores[0], atol=1e-6)
        np.testing.assert_allclose(multi.history.lr[i], [trial.lr] * 2, rtol=1e-6)
        assert accs[i] == pytest.approx(single_acc[0], abs=1e-6)
    assert multi.history.train_loss[0] != multi.history.train_loss[1]  # the seeds differ
    assert multi.history.train_loss[0] != multi.history.train_loss[2]  # the learning rates differ


@pytest.mark.slow
def test_a_new_learning_rate_does_not_recompile_the_epoch(tiny_splits, no_compile_cache):
    """XLA compilations of the epoch program, counted as JAX reports them."""
    _, splits, x = tiny_splits
    counts = []
    for lr in (0.013, 0.031):  # values no other test uses, so nothing is cached before
        cfg = config.load(overrides={**OVERRIDES, "model.hidden": [48, 16], "train.lr": lr})
        start = compiles.mark()
        _, progress, _ = fit(cfg, splits, x, "nesterov")
        counts.append(compiles.since(start, "train_epoch")["count"])
        assert progress.history.lr[0][-1] == pytest.approx(lr)
    assert counts == [1, 0]


def test_some_trials_diverge_the_rest_complete(tiny_splits):
    _, splits, x = tiny_splits
    cfg = config.load(overrides={**OVERRIDES, "train.epochs": 3, "train.batch_size": 16})
    plan, p, accs = fit(cfg, splits, x, "sgd", lrs=[0.05, 100.0])
    h = p.history
    assert p.status == "complete" and p.epoch == 3  # one trial completed: the run went on
    assert h.diverged_epoch[0] is None and h.diverged_epoch[1] == 1
    assert h.best_epoch[1] is None and accs[1] is None and 0.3 < accs[0] <= 1
    metrics = loop.metrics_of(plan, p, accs)
    assert [t["status"] for t in metrics["trials"]] == ["complete", "diverged"]
    assert metrics["trials_diverged"] == 1 and metrics["status"] == "complete"
    # The completed trial kept its best epoch's parameters.
    val = steps.evaluate(p.best_params, p.state.apply_fn, jnp.asarray(splits.val_x), jnp.asarray(splits.val_y))
    assert float(val["acc"][0]) == pytest.approx(h.best_val[0])


@pytest.mark.slow
def test_all_trials_diverged_stops_early(tiny_splits):
    _, splits, x = tiny_splits
    cfg = config.load(overrides={**OVERRIDES, "train.epochs": 5, "train.batch_size": 16, "train.lr": 100.0,
                                 "train.seeds": 2})
    _, p, accs = fit(cfg, splits, x, "sgd")
    assert p.status == "diverged" and p.epoch == 1 and accs == [None, None]


SHARD_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from initopt import config
from initopt.runtime import env
from initopt import data
from initopt.nn import model
from initopt.engine import loop, placement
from initopt.engine import plan as plan_lib
env.set_prng("legacy")
ds = data.load({data_dir!r})
splits, (x, _) = data.make_splits(ds), data.example_batch(ds)
cfg = config.load(overrides={{"model.hidden": [64, 32], "train.epochs": 2, "train.batch_size": 32, "train.seeds": 2}})
plan = plan_lib.plan_for(cfg, "momentum", len(splits.train_y), lrs=[0.05, 0.1])
p = loop.fit(plan, splits, loop.initial_progress(plan, x))
print(json.dumps({{"devices": len(placement.trial_mesh(4).devices.flat), "loss": p.history.train_loss,
                  "val": p.history.val_scores, "test": loop.test_accuracies(p, splits),
                  "sharding": str(p.state.params["params"]["Dense_0"]["kernel"].sharding)}}))
"""


def _run_sharded(tiny_data, n_devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", SHARD_SCRIPT.format(root=root, data_dir=str(tiny_data))],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_sharded_over_four_cpu_devices_equals_one_device(tiny_data):
    four, one = _run_sharded(tiny_data, 4), _run_sharded(tiny_data, 1)
    assert four["devices"] == 4 and one["devices"] == 1
    assert "trials" in four["sharding"]
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-5)
    np.testing.assert_allclose(four["val"], one["val"], rtol=1e-5)
    np.testing.assert_allclose(four["test"], one["test"], rtol=1e-5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SMOKE_TRAINING = ["--config", "configs/smoke.toml", "--hidden", "64,32", "--batch-size", "32", "--epochs", "2", "--quiet"]


def _tune_numbers(d):
    return [x for e in d["optimizers"].values() for x in (e["selected"]["lr"], *e["final"]["test_per_seed"])]


@pytest.mark.slow
@pytest.mark.parametrize("command, args, numbers", [
    ("train", [*SMOKE_TRAINING, "--optimizer", "adam", "--seeds", "4"], lambda d: d["test_acc_per_seed"]),
    ("tune", [*SMOKE_TRAINING, "--optimizer", "sgd", "--lr-grid", "0.01,0.1", "--seeds", "2", "--final-seeds", "2"],
     _tune_numbers),
    ("depth", ["--phase", "--phase-sigma-w2", "1,2", "--phase-depths", "2,4", "--steps", "5", "--width", "16",
               "--depth", "4", "--jacobian-depths", "2,4"], lambda d: [c["train_acc"] for c in d["phase"]["cells"]]),
])
def test_two_local_processes_equal_one(command, args, numbers, tiny_data, tmp_path):
    """jax.distributed.initialize with two CPU processes on this machine, Gloo collectives: every
    trial-batched command (train's seeds, tune's grid, depth's phase cells) gives the numbers of
    one process; process 0 writes and prints, process 1 computes silently.

    The data is in the array cache before they start, as on any second run: its arrays are memory
    maps, which device_put across processes refused, and process 0 then waited for process 1 in a
    collective for good."""
    args = [sys.executable, "-m", "initopt", command, *args, "--data-dir", str(tiny_data), "--json"]
    subprocess.run([sys.executable, "-m", "initopt", "data", "--data-dir", str(tiny_data)], check=True,
                   capture_output=True)
    port = _free_port()
    procs, logs = [], []
    for pid in (0, 1):
        env = dict(os.environ, INITOPT_COORDINATOR=f"127.0.0.1:{port}", INITOPT_NUM_PROCESSES="2",
                   INITOPT_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu")
        logs.append((tmp_path / f"stdout{pid}.txt", tmp_path / f"stderr{pid}.txt"))
        with open(logs[-1][0], "w") as stdout, open(logs[-1][1], "w") as stderr:  # files: no pipe fills up
            procs.append(subprocess.Popen([*args, "--out", str(tmp_path / "multi")], env=env, stdout=stdout,
                                          stderr=stderr))
    deadline = time.monotonic() + 300
    for p in procs:
        try:
            p.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
    outs = [(out.read_text(), err.read_text()) for out, err in logs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    multi = json.loads(outs[0][0])  # stdout holds only the JSON: Gloo's notices went to stderr
    assert outs[1][0] == ""  # process 1 computes silently and writes nothing
    single = json.loads(subprocess.run([*args, "--out", str(tmp_path / "single")], capture_output=True,
                                       text=True, check=True).stdout)
    np.testing.assert_allclose(numbers(multi), numbers(single), rtol=1e-5)
    if command == "train":
        np.testing.assert_allclose([t["train_loss"] for t in multi["trials"]],
                                   [t["train_loss"] for t in single["trials"]], rtol=1e-5)
        (run_json,) = (tmp_path / "multi" / "train").glob("*/adam/run.json")
        assert len(json.loads(run_json.read_text())["devices"]) == 2
