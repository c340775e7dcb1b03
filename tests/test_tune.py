"""The tuning protocol: selection on validation only, diverged rates never selected, exact budget curves."""

import dataclasses
import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from initopt import config
from initopt.cli import app
from initopt.errors import ConfigError
from initopt.studies import tune

PNG = b"\x89PNG\r\n\x1a\n"


def test_expected_best_equals_brute_force_over_all_subsets():
    values = [0.61, 0.85, 0.1, 0.79, 0.85, 0.7]
    for k in range(1, len(values) + 1):
        subsets = list(itertools.combinations(values, k))
        brute = sum(max(s) for s in subsets) / len(subsets)
        assert tune.expected_best(values, k) == pytest.approx(brute, rel=1e-12)
    curve = tune.budget_curve(values)
    assert curve[0] == pytest.approx(np.mean(values)) and curve[-1] == max(values)
    assert all(a <= b + 1e-15 for a, b in zip(curve, curve[1:]))


def test_parse_grid():
    assert tune.parse_grid("1e-3:1:4") == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert tune.parse_grid("0.1, 0.01") == [0.01, 0.1]
    assert tune.default_grid(0.1) == pytest.approx(0.1 * np.logspace(-2, 1, 7))
    for bad, text in (("", "without empty items"), ("1:0.1:3", "needs LO < HI"), ("0:1:3", "must be positive"),
                      ("0.1,-1", "must be a positive number"), ("1e-3:1:1", "K of at least 2"),
                      ("0.1,,1", "without empty items"), ("a:b:c", "LO:HI:K or a comma list of numbers")):
        with pytest.raises(ConfigError, match=text):
            tune.parse_grid(bad)


def test_time_to_target_and_median():
    assert tune.time_to_target([0.5, 0.8, 0.9], 2.0, 0.8) == {"epoch": 2, "seconds": 4.0}
    assert tune.time_to_target([0.5, 0.6], 2.0, 0.8) == {"epoch": None, "seconds": None}
    assert tune.median_or_none([2, 3, None]) == 3 and tune.median_or_none([2, None, None]) is None


def _tune(tmp_path, splits, x, grid, optimizers=("sgd",), final_seeds=0, target=None):
    cfg = config.load(overrides={"model.hidden": [32], "train.epochs": 2, "train.batch_size": 16, "tune.seeds": 2,
                                 "tune.final_seeds": final_seeds, "tune.target": target})
    return tune.run(cfg, optimizers, {o: grid for o in optimizers}, tmp_path / "t", splits, x, {})


def test_a_diverging_rate_is_marked_and_never_selected(tiny_splits, tmp_path):
    _, splits, x = tiny_splits
    result = _tune(tmp_path, splits, x, [0.01, 0.1, 100.0], target=0.5)
    entry = result["optimizers"]["sgd"]
    rows = {r["lr"]: r for r in entry["grid"]}
    assert rows[100.0]["diverged"] == 2 and rows[100.0]["val_per_seed"] == [tune.CHANCE] * 2
    assert rows[0.1]["diverged"] == 0 and len(entry["trials"]) == 6
    assert entry["selected"]["lr"] in (0.01, 0.1) and entry["selected"]["lr"] != 100.0
    assert [t["status"] for t in entry["trials"]].count("diverged") == 2  # the rest completed
    assert all("time_to_target" in t for t in entry["trials"])
    assert entry["final"]["optimistic"] is True and len(entry["final"]["test_per_seed"]) == 2


@pytest.mark.slow
def test_selection_ignores_the_test_split(tiny_splits, tmp_path):
    _, splits, x = tiny_splits
    shuffled = dataclasses.replace(splits, test_y=np.random.default_rng(0).permutation(splits.test_y))
    a = _tune(tmp_path / "a", splits, x, [0.003, 0.03, 0.3], optimizers=("sgd", "adam"))
    b = _tune(tmp_path / "b", shuffled, x, [0.003, 0.03, 0.3], optimizers=("sgd", "adam"))
    for name in ("sgd", "adam"):
        assert a["optimizers"][name]["selected"] == b["optimizers"][name]["selected"]
        assert a["optimizers"][name]["final"]["test_per_seed"] != b["optimizers"][name]["final"]["test_per_seed"]


@pytest.mark.slow
def test_final_seeds_are_fresh_and_paired(tiny_splits, tmp_path):
    _, splits, x = tiny_splits
    result = _tune(tmp_path, splits, x, [0.01, 0.1], optimizers=("sgd", "momentum"), final_seeds=3)
    assert result["tuning_seeds"] == [42, 43] and result["final_seeds"] == [44, 45, 46]
    for entry in result["optimizers"].values():
        assert entry["final"]["seeds"] == [44, 45, 46] and entry["final"]["optimistic"] is False
    (pair,) = result["paired"]
    assert pair["n"] == 3 and (pair["a"], pair["b"]) == ("sgd", "momentum")


@pytest.mark.slow
def test_tune_command_end_to_end_and_resume(tiny_data, tmp_path):
    runner = CliRunner()
    args = ["tune", "--optimizer", "sgd,adam", "--lr-grid", "1e-3:1:4", "--seeds", "2", "--final-seeds", "2",
            "--epochs", "2", "--batch-size", "32", "--hidden", "32", "--target", "0.5", "--data-dir", str(tiny_data),
            "--out", str(tmp_path), "--name", "t", "--quiet"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    tune_dir = tmp_path / "tune" / "t"
    written = json.loads((tune_dir / "tune.json").read_text())
    assert written["optimizers"]["adam"]["lrs"] == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert out["paired"] == written["paired"] and len(written["optimizers"]["sgd"]["budget_curve"]) == 4
    for png in ("lr_sensitivity.png", "budget.png", "final.png"):
        assert (tune_dir / png).read_bytes()[:8] == PNG
    assert json.loads((tune_dir / "sgd" / "grid" / "run.json").read_text())["command"] == "tune"
    again = runner.invoke(app, [*args, "--json"])  # finished runs are skipped: the same numbers
    assert again.exit_code == 0 and json.loads(again.stdout)["optimizers"]["sgd"]["grid"] == out["optimizers"]["sgd"]["grid"]
    report = runner.invoke(app, ["report", "--out", str(tmp_path), "--json"])
    assert report.exit_code == 0 and len(json.loads(report.stdout)["runs"]) == 4  # grid and final per optimizer


@pytest.mark.parametrize("args, text", [
    (["--lr-grid", ""], "without empty items"),
    (["--lr-grid", "1:0.1:3"], "needs LO < HI"),
    (["--lr-grid", "0.1,-0.5"], "must be a positive number"),
    (["--seeds", "0"], "--seeds must be at least 1, not 0."),
    (["--optimizer", "nope"], "Unknown optimizer 'nope'"),
    (["--optimizer", ""], "--optimizer takes a comma list without empty items"),
    (["--hidden", ""], "--hidden takes sizes like"),
    (["--target", "1.5"], "tune.target must lie in (0, 1)"),
    (["--target", "0"], "tune.target must lie in (0, 1)"),
    (["--final-seeds", "-1"], "--final-seeds must be at least 0, not -1."),
    (["--name", "a/b"], "--name must be a plain directory name"),
])
def test_tune_bad_input(tiny_data, tmp_path, args, text):
    result = CliRunner().invoke(app, ["tune", *args, "--data-dir", str(tiny_data), "--out", str(tmp_path)])
    assert result.exit_code == 1 and text in result.output and "Traceback" not in result.output
    assert not (tmp_path / "tune").exists()
