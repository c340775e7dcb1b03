import json
import os
import subprocess
import sys

import numpy as np
import pytest

from initopt import config, data, seeds, stats, train


def test_mean_ci95_against_hand_computation():
    s = seeds.mean_ci95([1.0, 2.0, 3.0, 4.0])
    sd = np.std([1, 2, 3, 4], ddof=1)
    assert s["mean"] == 2.5 and s["std"] == pytest.approx(sd)
    assert s["ci95"] == pytest.approx([2.5 - 3.182 * sd / 2, 2.5 + 3.182 * sd / 2])
    assert seeds.mean_ci95([0.5])["ci95"] is None and seeds.mean_ci95([None])["n"] == 0


def test_t_quantiles():
    assert seeds.t_quantile_975(1) == 12.706 and seeds.t_quantile_975(30) == 2.042
    assert seeds.t_quantile_975(40) == pytest.approx(2.0211, abs=2e-4)
    assert seeds.t_quantile_975(120) == pytest.approx(1.9799, abs=2e-4)


def test_paired_comparisons():
    out = seeds.paired_comparisons({"a": [0.90, 0.91, 0.92], "b": [0.89, 0.90, 0.91], "c": [0.95, 0.80, 0.99]})
    ab = next(p for p in out if (p["a"], p["b"]) == ("a", "b"))
    assert ab["mean_diff"] == pytest.approx(0.01) and ab["excludes_zero"] and ab["n"] == 3
    ac = next(p for p in out if (p["a"], p["b"]) == ("a", "c"))
    assert not ac["excludes_zero"]
    assert len(out) == 3


def test_vmapped_seeds_match_single_seed_runs(tiny_data):
    stats.set_prng("legacy")
    ds = data.load(tiny_data)
    splits, (x, _) = data.make_splits(ds), data.example_batch(ds)
    cfg = config.load(overrides={"model.hidden": [64, 32], "train.epochs": 2, "train.batch_size": 32,
                                 "train.seed": 7, "train.seeds": 2})
    multi = seeds.fit_seeds(cfg, splits, seeds.initial_progress(cfg, x, "adam", 2), 2)
    accs = seeds.test_accuracies(multi, splits)
    for i, seed in enumerate((7, 8)):
        one_cfg = config.load(overrides={"model.hidden": [64, 32], "train.epochs": 2, "train.batch_size": 32,
                                         "train.seed": seed})
        single = train.fit(one_cfg, splits, train.initial_progress(one_cfg, x, "adam"))
        np.testing.assert_allclose(multi.history.train_loss[i], single.history.train_loss, rtol=1e-5)
        np.testing.assert_allclose(multi.history.val_scores[i], single.history.val_scores, atol=1e-6)
        assert accs[i] == pytest.approx(train.test_accuracy(single, splits), abs=1e-6)
    assert multi.history.train_loss[0] != multi.history.train_loss[1]  # the seeds differ


SHARD_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from initopt import config, data, seeds, stats
import jax
stats.set_prng("legacy")
ds = data.load({data_dir!r})
splits, (x, _) = data.make_splits(ds), data.example_batch(ds)
cfg = config.load(overrides={{"model.hidden": [64, 32], "train.epochs": 2, "train.batch_size": 32, "train.seeds": 4}})
p = seeds.fit_seeds(cfg, splits, seeds.initial_progress(cfg, x, "momentum", 4), 4)
print(json.dumps({{"devices": len(seeds.seed_mesh(4).devices.flat), "loss": p.history.train_loss,
                  "val": p.history.val_scores, "test": seeds.test_accuracies(p, splits),
                  "sharding": str(p.state.params["params"]["Dense_0"]["kernel"].sharding)}}))
"""


def _run_sharded(tiny_data, n_devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", SHARD_SCRIPT.format(root=root, data_dir=str(tiny_data))],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sharded_over_four_cpu_devices_equals_one_device(tiny_data):
    four, one = _run_sharded(tiny_data, 4), _run_sharded(tiny_data, 1)
    assert four["devices"] == 4 and one["devices"] == 1
    assert "seeds" in four["sharding"]
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-5)
    np.testing.assert_allclose(four["val"], one["val"], rtol=1e-5)
    np.testing.assert_allclose(four["test"], one["test"], rtol=1e-5)


def test_init_stats_over_seeds(tiny_data):
    ds = data.load(tiny_data)
    x, y = data.example_batch(ds)
    cfg = config.ModelConfig(hidden=(64, 64))
    s = stats.seeds_stats(cfg, x, y, [3, 4, 5]).summary
    singles = [stats.init_stats(cfg, x, y, seed).summary["act_var"] for seed in (3, 4, 5)]
    np.testing.assert_allclose(s["act_var_per_seed"], singles, rtol=1e-5)
    np.testing.assert_allclose(s["act_var_seed_mean"], np.mean(singles, 0), rtol=1e-5)
    np.testing.assert_allclose(s["act_var_seed_std"], np.std(singles, 0, ddof=1), rtol=1e-4)
    assert s["act_var"] == pytest.approx(singles[0], rel=1e-5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_local_processes_equal_one(tiny_data, tmp_path):
    """jax.distributed.initialize with two CPU processes on this machine, Gloo collectives."""
    args = [sys.executable, "-m", "initopt", "train", "--config", "configs/smoke.toml", "--hidden", "64,32",
            "--batch-size", "32", "--optimizer", "adam", "--seeds", "4", "--epochs", "2",
            "--data-dir", str(tiny_data), "--json", "--quiet"]
    port = _free_port()
    procs = []
    for pid in (0, 1):
        env = dict(os.environ, INITOPT_COORDINATOR=f"127.0.0.1:{port}", INITOPT_NUM_PROCESSES="2",
                   INITOPT_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu")
        procs.append(subprocess.Popen([*args, "--out", str(tmp_path / "multi")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    multi = json.loads(outs[0][0])  # stdout holds only the JSON: Gloo's notices went to stderr
    assert outs[1][0] == ""  # process 1 computes silently and writes nothing
    single = json.loads(subprocess.run([*args, "--out", str(tmp_path / "single")], capture_output=True,
                                       text=True, check=True).stdout)
    np.testing.assert_allclose(multi["train_loss"], single["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(multi["test_acc_per_seed"], single["test_acc_per_seed"], rtol=1e-5)
    (run_json,) = (tmp_path / "multi" / "train").glob("*/adam/run.json")
    assert len(json.loads(run_json.read_text())["devices"]) == 2
