"""TensorBoard event files (--tensorboard), read back with TensorBoard's own event reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from initopt.cli import app

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")
runner = CliRunner()
SMOKE = ["--config", "configs/smoke.toml", "--hidden", "32,16", "--batch-size", "64", "--epochs", "2", "--quiet"]


def events(path):
    acc = event_accumulator.EventAccumulator(str(path), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_train_writes_a_tensorboard_run_per_trial(tiny_data, tmp_path):
    args = ["train", *SMOKE, "--optimizer", "adam", "--seeds", "2", "--data-dir", str(tiny_data), "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--tensorboard", "--json"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    root = next(tmp_path.glob("train/*/adam/tensorboard"))
    assert sorted(p.name for p in root.iterdir()) == ["adam-seed42-lr0.001", "adam-seed43-lr0.001"]
    for t, trial in enumerate(m["trials"]):
        acc = events(root / f"adam-seed{trial['seed']}-lr0.001")
        for tag, key in (("accuracy/validation", "val_scores"), ("loss/train", "train_loss"), ("learning_rate", "lr")):
            steps, values = zip(*scalars(acc, tag))
            assert steps == (1, 2)
            np.testing.assert_allclose(values, trial[key], rtol=1e-6)  # TensorBoard keeps float32
        inst = m["instruments"]
        steps, values = zip(*scalars(acc, "update_ratio/Dense_1"))
        assert list(steps) == inst["steps"]
        np.testing.assert_allclose(values, [record[1] for record in inst["update_ratio"][t]], rtol=1e-6)
    tags = acc.Tags()["scalars"]  # relu's dead units are numbers; the logits have none (NaN, not written)
    assert "dead_fraction/Dense_0" in tags and "dead_fraction/Dense_2" not in tags
    # The flag names no other run: the same command without it finds the run finished.
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["skipped"] is True


def test_tune_writes_hparams_for_every_trial(tiny_data, tmp_path):
    result = runner.invoke(app, ["tune", *SMOKE, "--optimizer", "sgd", "--lr-grid", "0.01,0.1", "--seeds", "1",
                                 "--final-seeds", "1", "--tensorboard", "--data-dir", str(tiny_data), "--out",
                                 str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    tune = json.loads(result.stdout)
    grid = next(tmp_path.glob("tune/*/sgd/grid/tensorboard"))
    metrics = json.loads((grid.parent / "metrics.json").read_text())
    assert sorted(p.name for p in grid.iterdir()) == ["sgd-seed42-lr0.01", "sgd-seed42-lr0.1"]
    for trial in metrics["trials"]:
        acc = events(grid / f"sgd-seed42-lr{trial['hyperparams']['learning_rate']:g}" / "hparams")
        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        assert start.hparams["learning_rate"].number_value == pytest.approx(trial["hyperparams"]["learning_rate"])
        assert start.hparams["optimizer"].string_value == "sgd" and start.hparams["phase"].string_value == "grid"
        (step, value), = scalars(acc, "hparam/best_val_acc")
        assert value == pytest.approx(trial["best_val_acc"], rel=1e-6)
    assert next(tmp_path.glob("tune/*/sgd/final/tensorboard/sgd-seed43-lr*"))  # the final seed, after the tuning one
    assert tune["optimizers"]["sgd"]["selected"]["lr"] in (0.01, 0.1)


def test_without_the_flag_nothing_is_written_or_imported(tiny_data, tmp_path):
    import subprocess
    import sys

    result = runner.invoke(app, ["train", *SMOKE, "--optimizer", "sgd", "--data-dir", str(tiny_data), "--out",
                                 str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.rglob("tensorboard"))
    code = ("import sys; from initopt import cli, config; from initopt.commands import train, tune; "
            "assert 'tensorboardX' not in sys.modules and 'tensorboard' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("command, extra", [
    ("train", ["--optimizer", "adam", "--seeds", "2", "--epochs", "4"]),
    ("tune", ["--optimizer", "sgd", "--lr-grid", "0.01,0.1", "--seeds", "1", "--final-seeds", "0", "--epochs", "4"]),
])
def test_each_epoch_is_written_as_it_ends(tiny_data, tmp_path, monkeypatch, command, extra):
    """A run stopped in its third epoch (Ctrl-C right after that epoch's checkpoint, before anything
    else hears of it) has left every trial's curves of epochs 1 and 2, the numbers its checkpoint
    holds: TensorBoard shows a long run as it goes, not once it has ended."""
    from tests.test_cli import interrupt_after_epoch

    interrupt_after_epoch(monkeypatch, 3)
    args = [command, *SMOKE[:-3], *extra, "--tensorboard", "--quiet", "--data-dir", str(tiny_data),
            "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    (run_dir,) = {p.parents[2] for p in tmp_path.rglob("tensorboard/*/events.out.tfevents.*")}
    ckpt = __import__("initopt.output.io", fromlist=["io"]).load_checkpoint(run_dir / "checkpoint.msgpack")
    history = json.loads(ckpt["history"])
    trials = sorted((run_dir / "tensorboard").iterdir())
    assert len(trials) == 2
    for t, trial in enumerate(trials):  # trial names sort as the plan's trials do here (seed, then rate)
        acc = events(trial)
        for tag, key in (("accuracy/validation", "val_scores"), ("loss/train", "train_loss"), ("learning_rate", "lr")):
            steps, values = zip(*scalars(acc, tag))
            assert steps == (1, 2)
            np.testing.assert_allclose(values, history[key][t][:2], rtol=1e-6)


def test_a_missing_tensorboardx_is_one_sentence_before_any_work(tiny_data, tmp_path, monkeypatch):
    """The exact install command, its brackets kept (rich markup swallowed '[tensorboard]'), and
    nothing trained or written."""
    import sys

    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as where it is not installed
    result = runner.invoke(app, ["train", *SMOKE, "--optimizer", "sgd", "--tensorboard", "--data-dir",
                                 str(tiny_data), "--out", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("--tensorboard needs the tensorboardX package, which is not installed; install it with `pip install "
            "tensorboardX` (or initopt with its extra: pip install 'initopt[tensorboard]').") in " ".join(result.output.split())
    assert not (tmp_path / "train").exists()
