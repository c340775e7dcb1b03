"""Every command end to end through Typer's CliRunner, on tiny data."""

import gzip
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from initopt import config
from initopt.cli import Act, Init, app, flag
from initopt.nn import activations, initializers

runner = CliRunner()
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_png(path):
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def assert_clean_error(result, text):
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert text in result.output


def test_cli_choices_match_the_registries():
    assert [m.value for m in Init] == list(initializers.INITIALIZERS)
    assert [m.value for m in Act] == list(activations.ACTIVATIONS)


@pytest.mark.parametrize("command, section", [("depth", "depth"), ("surface", "surface"), ("tune", "tune")])
def test_a_sections_keys_are_its_options(command, section):
    """Each key of the command's section is an option, documented by its field: the description,
    the range of a number and the default, as the config declares them."""
    out = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"}, terminal_width=300).output
    help_text = " ".join(out.replace("│", " ").split())
    for key in config.keys(section):
        if key == "tune.lr_grid":  # a table per optimizer: config files only
            continue
        assert f"{flag(key)} " in help_text and config.describe(key) in help_text, key
    assert "--sigma-w2 <float> Weight variance times fan-in (above 0; default 1.76)." in help_text or command != "depth"


@pytest.mark.slow
def test_help_does_not_import_jax():
    code = "import sys; from initopt import cli; assert 'jax' not in sys.modules and 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="finds OpenBLAS in /proc/self/maps")
def test_a_short_command_runs_no_garbage_collection_and_one_blas_thread(tmp_path):
    """A real surface command, from the console entry point. The collector's passes over the
    start-up's long-lived objects cost 0.17 s of it (316 collections): there are none now. numpy's
    BLAS runs one thread (by default one per core, each spinning 0.1 s after a call, the second
    core taken from the figure workers' fork server)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    code = ("import atexit, gc, sys; from initopt import cli; n = [0]; "
            "gc.callbacks.append(lambda phase, info: n.__setitem__(0, n[0] + (phase == 'start'))); "
            "atexit.register(lambda: print('collections', n[0], 'blas', __import__('tests.conftest').conftest.blas_threads(), "
            "file=sys.stderr)); "
            f"sys.argv = ['initopt', 'surface', '--steps', '10', '--out', {str(tmp_path)!r}]; cli.main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[-1] in ("collections 0 blas 1", "collections 0 blas None")  # None: no OpenBLAS
    assert (tmp_path / "surface" / "steep-steps10" / "trajectories.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("args, text", [
    (["init-stats", "--hidden", "512,,256"], "--hidden takes sizes like"),  # fails before JAX is imported
    (["surface", "--optimizer", "foo"], "Unknown optimizer 'foo'"),  # fails while the workers are forked
    (["surface", "--starts", "0"], "--starts must be between 1 and 1000000, not 0."),  # exit 1, not a usage box
])
def test_a_real_process_that_fails_says_one_sentence_and_nothing_after(tmp_path, args, text):
    """The whole stderr of a failing command, workers included: a figure worker left half-started
    when the command ended printed a traceback after the command's sentence (the pipe stays open
    until every process holding it has ended, so that output would be captured here)."""
    proc = subprocess.run([sys.executable, "-m", "initopt", *args, "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and text in lines[0], proc.stderr


def test_data_command(tiny_data):
    result = invoke("data", "--data-dir", tiny_data, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["train"] == 600 and summary["test"] == 100 and len(summary["sha256"]) == 64


def test_init_stats_end_to_end(tiny_data, tmp_path):
    out = tmp_path / "out"
    result = invoke("init-stats", "--init", "kaiming", "--act", "relu", "--data-dir", tiny_data,
                    "--out", out, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    run_dir = out / "init-stats" / "kaiming-relu"
    written = json.loads((run_dir / "metrics.json").read_text())
    assert printed["grad_var"] == written["grad_var"] and len(written["act_var"]) == 5
    for key in ("weight_var", "act_var", "grad_var", "act_var_predicted", "dataset_sha256"):
        assert key in written
    for name in ("weight_hist.png", "gradient_hist.png", "activation_hist.png"):
        assert_png(run_dir / name)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete" and run["dataset"]["sha256"] == written["dataset_sha256"]


def test_init_stats_scale_hidden_and_table(tiny_data, tmp_path):
    result = invoke("init-stats", "--init", "normal", "--scale", "0.1", "--act", "tanh", "--hidden", "3x32",
                    "--data-dir", tiny_data, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Layer 6" in result.stdout and "Layer 8" not in result.stdout
    metrics = json.loads((tmp_path / "init-stats" / "normal-0.1-tanh-h32_32_32" / "metrics.json").read_text())
    assert metrics["hidden"] == [32, 32, 32] and metrics["scale"] == 0.1
    assert metrics["weight_var"][1] == pytest.approx(0.01, rel=0.2)


def test_init_stats_grid(tiny_data, tmp_path):
    result = invoke("init-stats", "--grid", "--hidden", "32,32", "--data-dir", tiny_data, "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["cells"]
    assert len(cells) == 18 and {c["act"] for c in cells} == {"identity", "tanh", "relu"}
    assert_png(tmp_path / "init-stats" / "grid-h32_32" / "variance_grid.png")


@pytest.mark.parametrize("args, text", [
    (["--init", "nope"], "'nope' is not one of"),
    (["--act", "nope"], "'nope' is not one of"),
    (["--data-dir", "/nonexistent"], "Data directory /nonexistent does not exist."),
    (["--data-dir", ""], "Invalid value for '--data-dir': an empty path"),  # not the current directory
    (["--init", "kaiming", "--scale", "2"], "takes no scale"),
    (["--hidden", "12,abc"], "--hidden takes sizes like"),
    (["--hidden", "512,,256"], "--hidden takes sizes like"),
    (["--hidden", "512,"], "--hidden takes sizes like"),
    (["--hidden", ""], "--hidden takes sizes like"),  # an empty value is not the default architecture
    (["--hidden", "100000x100000"], "init-stats with hidden sizes 100000x100000 needs about"),
    (["--grid", "--hidden", "4x20000"], "over 18 cells needs about"),
    (["--seeds", "0"], "--seeds must be between 1 and 10000, not 0."),
    (["--seed", "4294967296"], "--seed must be between 0 and 4294967295, not 4294967296."),
])
def test_init_stats_bad_input(args, text, tmp_path):
    assert_clean_error(invoke("init-stats", *args, "--out", tmp_path), text)
    assert not (tmp_path / "init-stats").exists()  # nothing written


def test_init_stats_truncated_idx(tiny_data, tmp_path):
    path = tiny_data / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-1000]))
    result = invoke("init-stats", "--data-dir", tiny_data, "--out", tmp_path)
    assert_clean_error(result, "truncated IDX file")
    assert "train-images-idx3-ubyte.gz" in result.output
    assert not (tmp_path / "init-stats" / "kaiming-relu" / "metrics.json").exists()


def test_unwritable_output_directory(tiny_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_clean_error(invoke("init-stats", "--data-dir", tiny_data, "--out", blocker), "Cannot write to")


# ----------------------------------------------------------------------------- train
SMOKE = ["--config", "configs/smoke.toml", "--hidden", "64,32", "--batch-size", "32", "--quiet"]


def only_group(out):
    (group,) = (out / "train").iterdir()
    return group


def train_json(*args):
    result = invoke("train", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_smoke_writes_every_file(tiny_data, tmp_path, no_compile_cache):
    jax.clear_caches()  # compile_seconds counts what XLA compiles: nothing this process compiled before
    out = train_json(*SMOKE, "--data-dir", tiny_data, "--out", tmp_path)
    group = only_group(tmp_path)
    assert group.name == "smoke-batchsize32-hidden64_32"
    assert set(out["runs"]) == {"sgd", "momentum", "adam"}
    for opt in ("sgd", "momentum", "adam"):
        run_dir = group / opt
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics == {k: v for k, v in out["runs"][opt].items() if k != "run_dir"}
        assert len(metrics["train_scores"]) == len(metrics["val_scores"]) == len(metrics["train_loss"]) == 2
        assert metrics["status"] == "complete" and 0 <= metrics["test_acc"] <= 1 and metrics["best_epoch"] in (1, 2)
        run = json.loads((run_dir / "run.json").read_text())
        assert run["status"] == "complete" and run["compile_seconds"] > 0 and len(run["epoch_seconds"]) == 2
        for key in ("python", "jax", "jaxlib", "flax", "optax", "device_kind", "dataset_sha256"):
            assert run[key]
        config = json.loads((run_dir / "config.json").read_text())
        assert config["train"]["epochs"] == 2 and config["model"]["hidden"] == [64, 32]
        assert (run_dir / "best_params.msgpack").stat().st_size > 1000
        assert_png(run_dir / "curves.png")
    assert_png(group / "comparison.png")
    assert json.loads((group / "comparison.json").read_text())["runs"]["adam"]["lr"] == 0.001


def test_train_skips_a_finished_run(tiny_data, tmp_path):
    args = [*SMOKE, "--optimizer", "sgd", "--data-dir", tiny_data, "--out", tmp_path]
    first = train_json(*args)
    again = train_json(*args)
    assert again["skipped"] is True and again["test_acc"] == first["test_acc"]
    redone = train_json(*args, "--overwrite")
    assert "skipped" not in redone and redone["val_scores"] == first["val_scores"]


def interrupt_after_epoch(monkeypatch, epoch):
    """Simulates Ctrl-C right after the checkpoint of ``epoch``; returns the real save function."""
    from initopt.engine import runner

    real_save = runner.save_progress

    def save_then_interrupt(run_dir, progress):
        real_save(run_dir, progress)
        if progress.epoch == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "save_progress", save_then_interrupt)
    return real_save


def test_interrupted_run_resumes_to_the_same_metrics(tiny_data, tmp_path, monkeypatch):
    from initopt.engine import runner

    args = [*SMOKE, "--epochs", "4", "--optimizer", "momentum",
            "--data-dir", tiny_data]
    uninterrupted = train_json(*args, "--out", tmp_path / "a")

    real_save = interrupt_after_epoch(monkeypatch, 2)
    result = invoke("train", *args, "--out", tmp_path / "b")
    assert result.exit_code == 130 and "run the same command again to resume" in result.output
    run_dir = only_group(tmp_path / "b") / "momentum"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert not (run_dir / "metrics.json").exists()

    monkeypatch.setattr(runner, "save_progress", real_save)
    result = invoke("train", *args, "--out", tmp_path / "b", "--json")
    assert result.exit_code == 0, result.output
    resumed = json.loads(result.stdout)
    assert "resuming after epoch 2" not in result.stdout  # diagnostics stay off stdout
    for key in ("train_scores", "val_scores", "train_loss", "val_loss", "test_acc", "best_epoch"):
        assert resumed[key] == uninterrupted[key], key


def test_train_refuses_to_mix_configurations(tiny_data, tmp_path):
    args = [*SMOKE, "--optimizer", "sgd", "--data-dir", tiny_data, "--out", tmp_path, "--name", "mine"]
    train_json(*args)
    assert_clean_error(invoke("train", *args, "--lr", "0.5"), "holds a run with another configuration")


def test_train_divergence_is_reported(tiny_data, tmp_path):
    loud = [a for a in SMOKE if a != "--quiet"]  # the message must show without --quiet
    result = invoke("train", *loud, "--optimizer", "sgd", "--lr", "100", "--batch-size", "16", "--data-dir", tiny_data,
                    "--out", tmp_path, "--json")
    assert result.exit_code == 3
    metrics = json.loads(result.stdout)
    assert metrics["status"] == "diverged" and metrics["test_acc"] is None
    assert "Training diverged (non-finite loss): sgd at epoch 1" in result.output
    saved = json.loads((only_group(tmp_path) / "sgd" / "metrics.json").read_text())
    assert saved["status"] == "diverged"


@pytest.mark.parametrize("args, text", [
    (["--optimizer", "nope"], "Unknown optimizer 'nope'"),
    (["--epochs", "0"], "must be at least 1"),
    (["--epochs", "99999999"], "needs about"),  # its batch orders alone: terabytes (a crash before)
    (["--lr", "-1"], "must be a positive number"),
    (["--config", "/nonexistent.toml"], "Config file /nonexistent.toml does not exist."),
    (["--config", ""], "Invalid value for '--config': an empty path"),
    (["--batch-size", "100000"], "exceeds the"),
    (["--seeds", "0"], "--seeds must be at least 1, not 0."),
    (["--seed", "4294967296"], "--seed must be between 0 and 4294967295, not 4294967296."),
    (["--name", "../../escape"], "--name must be a plain directory name (no '/', not '.' or '..'), not '../../escape'."),
    (["--optimizer", "sgd,,adam"], "--optimizer takes a comma list without empty items"),
    (["--hidden", "64,,32"], "--hidden takes sizes like"),
    (["--hidden", ""], "--hidden takes sizes like"),
    (["--optimizer", ""], "--optimizer takes a comma list without empty items"),
    (["--init", ""], "--init takes a comma list without empty items"),
    (["--instruments", ""], "--instruments takes off, epoch or a number"),
    (["--hidden", "100000x100000"], "Training hidden sizes 100000x100000 with 1 trial(s) needs about"),
    (["--schedule", "cosine"], "Invalid value for '--schedule'"),
    (["--warmup-epochs", "2"], "train.warmup_epochs (2) must be fewer than train.epochs (2)"),
    (["--hyper", "b1"], "--hyper takes key=value"),
    (["--optimizer", "adam", "--hyper", "nope=1"], "Optimizer adam has no hyperparameter 'nope'"),
])
def test_train_bad_input(tiny_data, tmp_path, args, text):
    assert_clean_error(invoke("train", *SMOKE, *args, "--data-dir", tiny_data, "--out", tmp_path), text)
    assert not (tmp_path / "train").exists() or not list((tmp_path / "train").rglob("*.json"))  # nothing written


@pytest.mark.skipif(not __import__("tests.conftest").conftest.DEBIAN_PRESENT, reason="no Debian data")
@pytest.mark.slow
def test_train_smoke_config_on_real_data(tmp_path):
    out = train_json("--config", "configs/smoke.toml", "--optimizer", "adam", "--quiet", "--out", tmp_path)
    assert out["status"] == "complete" and out["test_acc"] > 0.7  # 2 epochs on 4096 images


# ----------------------------------------------------------------------------- surface
@pytest.mark.parametrize("kind, converged", [("pathological", {"momentum", "adam"}), ("steep", {"adam"})])
def test_surface_reference_outcomes(tmp_path, kind, converged):
    result = invoke("surface", "--kind", kind, "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert {o for o, r in printed["optimizers"].items() if r["converged"]} == converged
    run_dir = tmp_path / "surface" / kind
    written = json.loads((run_dir / "metrics.json").read_text())
    for opt in ("sgd", "momentum", "adam"):
        rows = written["optimizers"][opt]["trajectory"]
        assert len(rows) == 100 and rows[0][:2] == printed["start"]
    for name in ("surface_3d.png", "trajectories.png", "loss.png"):
        assert_png(run_dir / name)


def test_surface_starts_and_tune(tmp_path):
    result = invoke("surface", "--kind", "himmelblau", "--starts", "32", "--tune", "--steps", "60",
                    "--optimizer", "sgd,adam", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    starts = json.loads(result.stdout)["starts"]
    assert starts["n"] == 32 and set(starts["optimizers"]) == {"sgd", "adam"}
    for entry in starts["optimizers"].values():
        assert len(entry["grid"]) == 7 and 0 <= entry["success_rate"] <= 1
        best = max(g["success_rate"] for g in entry["grid"])
        assert entry["success_rate"] == best
    rows = json.loads((tmp_path / "surface" / "himmelblau-steps60-sgd_adam-starts32-tune" / "metrics.json").read_text())
    assert len(rows["optimizers"]["adam"]["trajectory"]) == 60


def test_surface_start_and_lr_override(tmp_path):
    result = invoke("surface", "--kind", "saddle", "--start", "1,0.5", "--lr", "0.05", "--optimizer", "sgd",
                    "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["start"] == [1.0, 0.5] and out["optimizers"]["sgd"]["lr"] == 0.05


@pytest.mark.parametrize("args, text", [
    (["--kind", "nope"], "'nope' is not one of"),
    (["--optimizer", "nope"], "Unknown optimizer 'nope'"),
    (["--start", "a,b"], "--start takes two numbers"),
    (["--lr", "-1"], "must be a positive number"),
    (["--steps", "0"], "--steps must be between 1 and 100000, not 0."),
    (["--starts", "0"], "--starts must be between 1 and 1000000, not 0."),
    (["--beta", "1"], "--beta must be between 0 and 0.999999, not 1."),
    (["--optimizer", "sgd,"], "--optimizer takes a comma list without empty items"),
    (["--start", ""], "--start takes two numbers"),
    (["--optimizer", "optax:lion"], "Unknown optimizer 'optax:lion' for surfaces"),
    (["--seed", "-1", "--starts", "4"], "--seed must be between 0 and 4294967295, not -1."),
])
def test_surface_bad_input(tmp_path, args, text):
    assert_clean_error(invoke("surface", *args, "--out", tmp_path), text)


def test_an_empty_out_is_refused_not_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an unset variable in --out "$OUT" wrote the run into the current directory
    assert_clean_error(invoke("surface", "--out", ""), "Invalid value for '--out': an empty path")
    assert list(tmp_path.iterdir()) == []


def test_written_files_are_readable_by_others(tmp_path):
    from initopt.output import io

    path = io.write_json(tmp_path / "x.json", {"a": 1})
    assert path.stat().st_mode & 0o044 == 0o044


# ----------------------------------------------------------------------------- seeds and report
@pytest.mark.slow
def test_train_seeds_compiles_once_per_optimizer(tiny_data, tmp_path, no_compile_cache):
    from initopt.runtime import compiles

    start = compiles.mark()
    out = train_json(*SMOKE, "--optimizer", "sgd,momentum,adam", "--seeds", "4", "--epochs", "3",
                     "--hidden", "40,24", "--data-dir", tiny_data, "--out", tmp_path)
    assert compiles.since(start, "train_epoch")["count"] == 3  # one program per optimizer: all seeds, all epochs
    for opt, m in out["runs"].items():
        assert m["seeds"] == [42, 43, 44, 45] and len(m["test_acc_per_seed"]) == 4 and m["n_trials"] == 4
        assert [t["seed"] for t in m["trials"]] == m["seeds"] and all(len(t["val_scores"]) == 3 for t in m["trials"])
        assert m["test_acc_mean"] == pytest.approx(np.mean(m["test_acc_per_seed"]))
        lo, hi = m["test_acc_ci95"]
        assert lo <= m["test_acc_mean"] <= hi
    paired = {(p["a"], p["b"]): p for p in out["paired"]}
    assert set(paired) == {("sgd", "momentum"), ("sgd", "adam"), ("momentum", "adam")}
    diffs = np.subtract(out["runs"]["sgd"]["test_acc_per_seed"], out["runs"]["adam"]["test_acc_per_seed"])
    assert paired[("sgd", "adam")]["mean_diff"] == pytest.approx(diffs.mean())
    comparison = json.loads((only_group(tmp_path) / "comparison.json").read_text())
    assert comparison["paired"] == out["paired"]


@pytest.mark.slow
def test_two_runs_differing_in_lr_compile_the_epoch_once(tiny_data, tmp_path, no_compile_cache):
    """Two `train` commands in one process, only --lr differs: XLA compiles the epoch once."""
    from initopt.runtime import compiles

    args = [*SMOKE, "--optimizer", "adam", "--hidden", "56,8", "--data-dir", tiny_data, "--out", tmp_path]
    start = compiles.mark()
    first = train_json(*args, "--lr", "0.002")
    second_mark = compiles.mark()
    second = train_json(*args, "--lr", "0.004")
    assert compiles.since(start, "train_epoch")["count"] == 1
    assert compiles.since(second_mark)["count"] == 0  # nothing at all compiled again
    assert first["lr_per_epoch"] == pytest.approx([0.002] * 2) and second["lr_per_epoch"] == pytest.approx([0.004] * 2)
    assert first["train_loss"] != second["train_loss"]


@pytest.mark.slow
def test_train_seeds_resume(tiny_data, tmp_path, monkeypatch):
    from initopt.engine import runner

    args = [*SMOKE, "--optimizer", "adam", "--seeds", "2", "--epochs", "3", "--data-dir", tiny_data]
    whole = train_json(*args, "--out", tmp_path / "a")
    real_save = interrupt_after_epoch(monkeypatch, 1)
    assert invoke("train", *args, "--out", tmp_path / "b").exit_code == 130
    monkeypatch.setattr(runner, "save_progress", real_save)
    resumed = train_json(*args, "--out", tmp_path / "b")
    for key in ("trials", "test_acc_per_seed", "best_epoch_per_seed"):
        assert resumed[key] == whole[key], key


@pytest.mark.slow
def test_report(tiny_data, tmp_path):
    train_json(*SMOKE, "--optimizer", "sgd,adam", "--seeds", "2", "--data-dir", tiny_data, "--out", tmp_path)
    train_json(*SMOKE, "--optimizer", "momentum", "--data-dir", tiny_data, "--out", tmp_path, "--name", "single")
    result = invoke("report", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["runs"]
    assert sorted(r["optimizer"] for r in rows) == ["adam", "momentum", "sgd"]
    seeded = next(r for r in rows if r["optimizer"] == "adam")
    assert seeded["seeds"] == 2 and seeded["ci95_low"] <= seeded["test_acc"] <= seeded["ci95_high"]
    report_dir = tmp_path / "report"
    csv_lines = (report_dir / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("run,optimizer,lr,seeds") and len(csv_lines) == 4
    assert (report_dir / "report.md").read_text().count("\n") == 5
    assert_png(report_dir / "report.png")
    only = invoke("report", str(tmp_path / "train" / "single"), "--out", tmp_path, "--json")
    assert [r["optimizer"] for r in json.loads(only.stdout)["runs"]] == ["momentum"]
    # One damaged run: the others are reported, the damaged one is named in a warning, exit 0.
    damaged = tmp_path / "train" / "single" / "momentum" / "metrics.json"
    damaged.write_text('{"optimizer": "momentum", "test_a')
    partial = invoke("report", "--out", tmp_path, "--json")
    assert partial.exit_code == 0, partial.output
    assert sorted(r["optimizer"] for r in json.loads(partial.stdout)["runs"]) == ["adam", "sgd"]
    assert f"left out of the report: {damaged} is not readable JSON" in " ".join(partial.stderr.split())
    # Nothing readable: one sentence, exit 1.
    none_left = invoke("report", str(tmp_path / "train" / "single"), "--out", tmp_path)
    assert_clean_error(none_left, "No finished training runs found")
    assert "(1 damaged)" in none_left.output


def test_report_bad_input(tmp_path):
    assert_clean_error(invoke("report", str(tmp_path / "nope"), "--out", tmp_path), "does not exist")
    assert_clean_error(invoke("report", "--out", tmp_path), "No training runs under")
    (tmp_path / "empty").mkdir()
    assert_clean_error(invoke("report", str(tmp_path / "empty"), "--out", tmp_path), "No finished training runs")


def test_init_stats_seeds_cli(tiny_data, tmp_path):
    result = invoke("init-stats", "--seeds", "3", "--hidden", "32,32", "--data-dir", tiny_data, "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["seeds"] == [42, 43, 44] and len(m["act_var_per_seed"]) == 3 and len(m["grad_var_seed_std"]) == 3
    assert_png(tmp_path / "init-stats" / "kaiming-relu-h32_32-seeds3" / "variance_seeds.png")


def test_corrupt_checkpoint_is_a_clear_error(tiny_data, tmp_path):
    from initopt.engine import runner

    args = [*SMOKE, "--optimizer", "sgd", "--data-dir", tiny_data, "--out", tmp_path, "--name", "c"]
    train_json(*args)
    run_dir = tmp_path / "train" / "c" / "sgd"
    (run_dir / "run.json").write_text(json.dumps({"command": "train", "status": "running"}))
    (run_dir / runner.CHECKPOINT).write_bytes(b"\x00not msgpack at all")
    metrics_before = (run_dir / "metrics.json").read_text()
    result = invoke("train", *args)
    assert_clean_error(result, "is corrupt or from another model")
    assert "run the same command with --overwrite" in " ".join(result.output.split())
    assert (run_dir / "metrics.json").read_text() == metrics_before  # nothing already written is lost
    started_over = train_json(*args, "--overwrite")  # the way out the sentence names
    assert started_over["status"] == "complete"


def test_a_run_that_fails_midway_says_failed(tiny_data, tmp_path, monkeypatch):
    """A disk that fills during training: one sentence, exit 1, and run.json says ``failed`` with it
    (not ``running``), with no metrics.json to look complete."""
    from initopt.engine import runner
    from initopt.errors import InitoptError

    real_save, epochs = runner.save_progress, []

    def save_then_fill(run_dir, progress):
        epochs.append(progress.epoch)
        if len(epochs) == 2:
            raise InitoptError(f"Cannot write {run_dir / runner.BEST_PARAMS}: No space left on device.")
        real_save(run_dir, progress)

    monkeypatch.setattr(runner, "save_progress", save_then_fill)
    result = invoke("train", *SMOKE, "--optimizer", "sgd", "--data-dir", tiny_data, "--out", tmp_path, "--name", "f")
    sentence = f"Cannot write {tmp_path / 'train' / 'f' / 'sgd' / runner.BEST_PARAMS}: No space left on device."
    assert_clean_error(result, "No space left on device")
    run_json = json.loads((tmp_path / "train" / "f" / "sgd" / "run.json").read_text())
    assert run_json["status"] == "failed" and run_json["error"] == sentence
    assert not (tmp_path / "train" / "f" / "sgd" / "metrics.json").exists()


def descendants(pid: int) -> list[int] | None:
    """Every process below ``pid`` (read from /proc), or None where there is no /proc."""
    import os

    if not os.path.isdir("/proc/self"):
        return None
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError):
            continue
    below, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        below += children
        frontier = children
    return below


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


STOPPED_RUN = [sys.executable, "-m", "initopt", "train", "--config", "configs/smoke.toml", "--optimizer", "adam",
               "--epochs", "20", "--json"]


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, compile_cache) -> dict:
    """The metrics of :data:`STOPPED_RUN` trained without a stop: what the runs stopped by kill -9
    and by SIGTERM must resume to (one run for both)."""
    from tests.conftest import share_compile_cache

    cache = tmp_path_factory.mktemp("cache")
    share_compile_cache(cache, compile_cache)
    env = {k: v for k, v in os.environ.items() if k != "INITOPT_DATA_DIR"} | {"INITOPT_CACHE_DIR": str(cache)}
    out = tmp_path_factory.mktemp("whole")
    return json.loads(subprocess.run([*STOPPED_RUN, "--quiet", "--out", str(out)], capture_output=True, text=True,
                                     check=True, env=env).stdout)


@pytest.mark.slow
@pytest.mark.skipif(not __import__("tests.conftest").conftest.DEBIAN_PRESENT, reason="no Debian data")
def test_killed_run_resumes_to_the_same_metrics(tmp_path, whole_run):
    """SIGKILL a real `initopt train` process on the smoke config mid-way, then start it again; its
    figure workers and their helpers end with it."""
    import signal
    import time

    args = [*STOPPED_RUN, "--quiet"]
    proc = subprocess.Popen([*args, "--out", str(tmp_path / "killed")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    run_dir = tmp_path / "killed" / "train" / "smoke-epochs20" / "adam"
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoint.msgpack").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    helpers = descendants(proc.pid)  # the figure workers, their fork server, the resource tracker
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    if helpers is not None:  # none outlives the killed command (they used to wait forever)
        assert helpers, "the command had no figure workers to check"
        deadline = time.monotonic() + 10
        while any(running(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in helpers if running(p)]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"  # killed, not finished
    assert not (run_dir / "metrics.json").exists()

    resume_args = [a for a in args if a != "--quiet"]
    resumed = subprocess.run([*resume_args, "--out", str(tmp_path / "killed")], capture_output=True, text=True, check=True)
    assert "adam: resuming after epoch" in resumed.stderr
    a, b = json.loads(resumed.stdout), whole_run
    for key in ("train_scores", "val_scores", "train_loss", "val_loss", "test_acc", "best_epoch"):
        assert a[key] == b[key], key


@pytest.mark.slow
@pytest.mark.parametrize("group", [False, True], ids=["command", "process-group"])
def test_a_command_stopped_by_sigterm_leaves_no_warning_and_no_process(tmp_path, group):
    """SIGTERM outside training (where it is a preemption) ends a command at once, as it ends any
    process: to the command alone (kill PID, docker stop) or to its whole process group (timeout,
    systemd, Slurm). Its figure workers and their helpers end with it, and nothing is printed after:
    multiprocessing's resource tracker used to warn of 5 leaked semaphores (the workers' queues) a
    moment after the command had ended."""
    import os
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "initopt", "surface", "--starts", "100000", "--tune", "--steps",
                             "100000", "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=group)  # minutes of work
    deadline = time.monotonic() + 60
    helpers = descendants(proc.pid)  # the resource tracker, the fork server and both workers, once they exist
    while helpers is not None and len(helpers) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        helpers = descendants(proc.pid)
    time.sleep(1.0)  # past the workers' start: a kill while one reads its start-up data makes the fork server print a traceback
    if group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)  # to EOF: what any helper still holding stderr writes is read too
    assert proc.returncode == -signal.SIGTERM
    assert err == ""
    if helpers is not None:
        assert len(helpers) >= 4, "the command had no figure workers to check"
        deadline = time.monotonic() + 10
        while any(running(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in helpers if running(p)]
    assert not list(tmp_path.rglob("metrics.json"))


@pytest.mark.slow
def test_failed_rerun_does_not_leave_old_metrics_looking_complete(tiny_data, tmp_path, monkeypatch):
    from initopt.output import figures, plots

    monkeypatch.setenv(figures.WORKERS_ENV, "0")  # figures drawn here, where the patch below applies

    args = ["init-stats", "--hidden", "16,16", "--data-dir", tiny_data, "--out", tmp_path]
    assert invoke(*args).exit_code == 0
    run_dir = tmp_path / "init-stats" / "kaiming-relu-h16_16"
    assert (run_dir / "metrics.json").exists()

    def broken(*a, **k):
        raise MemoryError("simulated failure half-way through the figures")

    monkeypatch.setattr(plots, "histograms", broken)
    assert invoke(*args).exit_code != 0
    assert not (run_dir / "metrics.json").exists()


# ----------------------------------------------------------------------------- any optimizer, schedules
MYOPT = """import optax


def make(learning_rate, decay=0.9):
    return optax.chain(optax.scale_by_rms(decay=decay), optax.scale_by_learning_rate(learning_rate))
"""


@pytest.mark.slow
def test_optax_alias_and_adam_pair_up(tiny_data, tmp_path):
    out = train_json(*SMOKE, "--optimizer", "optax:lion,adam", "--seeds", "2", "--data-dir", tiny_data,
                     "--out", tmp_path)
    assert set(out["runs"]) == {"optax:lion", "adam"}
    assert out["runs"]["optax:lion"]["lr"] == 1e-4 and out["runs"]["optax:lion"]["seeds"] == [42, 43]
    (pair,) = out["paired"]
    assert (pair["a"], pair["b"], pair["n"]) == ("optax:lion", "adam", 2)
    assert (only_group(tmp_path) / "optax-lion" / "metrics.json").is_file()


@pytest.mark.slow
def test_user_optimizer_file_in_the_current_directory(tiny_data, tmp_path, monkeypatch):
    (tmp_path / "myopt.py").write_text(MYOPT)
    monkeypatch.chdir(tmp_path)
    out = train_json(*[a if a != "configs/smoke.toml" else str(ROOT / a) for a in SMOKE],
                     "--optimizer", "./myopt.py:make", "--lr", "0.003", "--hyper", "decay=0.8",
                     "--data-dir", tiny_data, "--out", tmp_path / "out")
    assert out["optimizer"] == "./myopt.py:make" and out["status"] == "complete" and out["test_acc"] > 0.2
    assert out["trials"][0]["hyperparams"] == {"decay": 0.8, "learning_rate": 0.003}
    assert (only_group(tmp_path / "out") / "myopt.py-make" / "curves.png").is_file()


@pytest.mark.parametrize("source, args, text", [
    ("def make(learning_rate):\n    raise ValueError('no')\n", ["--lr", "0.1"], "raised ValueError when built: no"),
    ("def make(learning_rate):\n    return None\n", ["--lr", "0.1"], "returned NoneType, not an optax"),
    (MYOPT, [], "has no reference learning rate; pass --lr"),
    (MYOPT, ["--lr", "0.1", "--hyper", "beta=0.9"], "has no hyperparameter 'beta'"),
])
def test_broken_user_optimizer_is_one_sentence(tiny_data, tmp_path, monkeypatch, source, args, text):
    from initopt.optim import optimizer_specs

    optimizer_specs.resolve.cache_clear()
    (tmp_path / "bad.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--optimizer", "./bad.py:make", *args, "--data-dir", tiny_data, "--out", tmp_path)
    assert_clean_error(result, text)
    assert result.exit_code == 1 and not (tmp_path / "train").exists() or not list((tmp_path / "train").rglob("*.json"))


@pytest.mark.slow
def test_warmup_cosine_schedule_records_lr_per_epoch(tiny_data, tmp_path):
    import optax

    out = train_json(*SMOKE, "--optimizer", "sgd", "--epochs", "4", "--schedule", "warmup_cosine",
                     "--warmup-epochs", "2", "--lr", "0.05", "--data-dir", tiny_data, "--out", tmp_path)
    steps = 500 // 32  # the tiny training split over the batch size
    oracle = optax.warmup_cosine_decay_schedule(0.0, 0.05, 2 * steps, 4 * steps, end_value=0.0)
    np.testing.assert_allclose(out["lr_per_epoch"], [oracle(e * steps - 1) for e in (1, 2, 3, 4)], rtol=1e-5)
    assert out["schedule"] == "warmup_cosine" and out["lr"] == 0.05


@pytest.mark.slow
def test_optimizer_table_in_the_config(tiny_data, tmp_path):
    config_file = tmp_path / "c.toml"
    config_file.write_text("[train]\noptimizer = ['momentum']\nepochs = 1\nbatch_size = 32\n\n"
                           "[model]\nhidden = [16]\n\n[optimizer.momentum]\nbeta = 0.5\n")
    out = train_json("--config", config_file, "--quiet", "--data-dir", tiny_data, "--out", tmp_path)
    assert out["trials"][0]["hyperparams"] == {"beta": 0.5, "dampening": 0.5, "learning_rate": 0.1}
    config_file.write_text("[train]\noptimizer = ['momentum']\n[optimizer.momentum]\nbeta = 'high'\n")
    assert_clean_error(invoke("train", "--config", config_file, "--data-dir", tiny_data, "--out", tmp_path),
                       "Hyperparameter beta of momentum must be a number, not 'high'.")
    config_file.write_text("[optimizer.momentum]\nbeta = [1, 2]\n")
    assert_clean_error(invoke("train", "--config", config_file, "--data-dir", tiny_data, "--out", tmp_path),
                       f"optimizer.momentum.beta in {config_file}")


def test_report_reads_runs_from_before_trials(tiny_data, tmp_path):
    """A run directory written before metrics had per-trial lists still reports and plots."""
    old = tmp_path / "train" / "old" / "sgd"
    old.mkdir(parents=True)
    (old / "run.json").write_text(json.dumps({"command": "train", "status": "complete"}))
    (old / "metrics.json").write_text(json.dumps({
        "optimizer": "sgd", "lr": 0.1, "status": "complete", "epochs_completed": 2, "test_acc": 0.81,
        "best_epoch": 2, "best_val_acc": 0.8, "train_scores": [0.7, 0.8], "val_scores": [0.75, 0.8],
        "train_loss": [0.9, 0.6], "val_loss": [0.8, 0.6], "seconds_per_epoch": 1.0}))
    train_json(*SMOKE, "--optimizer", "adam", "--seeds", "2", "--data-dir", tiny_data, "--out", tmp_path)
    result = invoke("report", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    rows = {r["optimizer"]: r for r in json.loads(result.stdout)["runs"]}
    assert rows["sgd"]["test_acc"] == 0.81 and rows["sgd"]["seeds"] == 1 and rows["adam"]["seeds"] == 2
    assert_png(tmp_path / "report" / "report.png")


def test_diverged_message_counts_trials():
    from pathlib import Path

    from initopt.studies import experiment

    results = {"sgd": {"status": "complete", "trials_diverged": 1, "n_trials": 4, "epochs_completed": 3},
               "adam": {"status": "diverged", "trials_diverged": 2, "n_trials": 2, "epochs_completed": 1}}
    error, note = experiment.diverged_message(results, Path("g"))
    assert error == "Training diverged (non-finite loss): adam at epoch 1; metrics kept in g."
    assert note == "Diverged (kept their best epoch; the rest completed): sgd: 1 of 4 trials."


@pytest.mark.slow
@pytest.mark.skipif(not __import__("tests.conftest").conftest.DEBIAN_PRESENT, reason="no Debian data")
def test_sigterm_is_a_preemption(tmp_path, whole_run):
    """SIGTERM a real `initopt train`: status interrupted, exit 143, and the rerun resumes to the same metrics."""
    import signal
    import time

    args = STOPPED_RUN
    proc = subprocess.Popen([*args, "--out", str(tmp_path / "stopped")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "stopped" / "train" / "smoke-epochs20" / "adam"
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoint.msgpack").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Terminated (SIGTERM); run the same command again to resume" in err
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted" and 1 <= run["epochs_completed"] < 20
    assert not (run_dir / "metrics.json").exists()
    resumed = subprocess.run([*args, "--out", str(tmp_path / "stopped")], capture_output=True, text=True, check=True)
    assert f"adam: resuming after epoch {run['epochs_completed']}" in resumed.stderr
    a, b = json.loads(resumed.stdout), whole_run
    for key in ("train_scores", "val_scores", "train_loss", "val_loss", "test_acc", "best_epoch"):
        assert a[key] == b[key], key


def test_run_json_records_the_compile_cache(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("INITOPT_COMPILE_CACHE", "off")
    train_json(*SMOKE, "--optimizer", "sgd", "--epochs", "1", "--data-dir", tiny_data, "--out", tmp_path)
    (run_json,) = (tmp_path / "train").glob("*/sgd/run.json")
    run = json.loads(run_json.read_text())
    assert run["compile_cache"] == {"enabled": False, "dir": None}
    assert run["compiles"]["from_cache"] == 0
    assert run["malloc_keeps_freed_memory"] is (sys.platform == "linux")


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    """After keep_freed_memory, a 64 MB block freed and taken again is the same memory: touching
    it again costs almost no page faults (glibc's default maps such a block anew: 16,384 faults)."""
    import ctypes
    import resource

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    size = 64 << 20

    def faults_of_a_touched_block():
        block = libc.malloc(size)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        libc.memset(block, 1, size)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        libc.free(block)
        return faults

    from initopt.runtime import env

    assert env.keep_freed_memory()
    faults_of_a_touched_block()  # the first time the pages are new
    assert faults_of_a_touched_block() < 100


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc arenas")
@pytest.mark.parametrize("inline", [True, False])
def test_a_program_reuses_its_temporaries_when_run_inline(inline):
    """A program with 78 MB of temporaries (a loop's carried array) reuses the memory of the call
    before when it runs on the calling thread (run_programs_inline), and maps its 20,000 pages
    anew on every call on a dispatch thread: the second case shows that the first can fail.
    Counted over 20 calls, as a run's steps see it: inline, an early call now and then still
    faults its block in anew (the arena's free space is not yet in one piece; 0 to 2 calls of 20
    here, on a loaded machine too), dispatched every call does."""
    code = f"""
import resource
from initopt.runtime import env
env.keep_freed_memory()
if {inline}:
    env.run_programs_inline()
import jax, jax.numpy as jnp
f = jax.jit(lambda x: jax.lax.fori_loop(0, 3, lambda i, a: jnp.sin(a) + i, jnp.tile(x, 20_000)).sum())
x = jnp.ones(1024)
assert f.lower(x).compile().memory_analysis().temp_size_in_bytes > 64 << 20
f(x).block_until_ready()
for _ in range(20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x).block_until_ready()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    thp = type(ROOT)("/sys/kernel/mm/transparent_hugepage/enabled")
    if not inline and thp.exists() and "[always]" in thp.read_text():
        pytest.skip("fresh mappings come as 2 MiB pages here: a few dozen faults either way")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fresh = sum(int(n) > 10_000 for n in out.stdout.split())  # calls that faulted 78 MB of 4 KiB pages in anew
    assert fresh <= 5 if inline else fresh >= 15


@pytest.mark.parametrize("value, wanted", [("on", True), (" Yes", True), ("1", True), ("OFF", False), ("no", False),
                                           ("0", False), ("", True), ("maybe", None),
                                           ("of", None)])
def test_compile_cache_switch(value, wanted, tmp_path, monkeypatch):
    """INITOPT_COMPILE_CACHE is on or off; anything else ends the command before it writes anything."""
    from initopt.runtime import env

    monkeypatch.setenv("INITOPT_COMPILE_CACHE", value)
    if wanted is not None:
        assert env.compile_cache_wanted() is wanted
        return
    result = invoke("surface", "--out", tmp_path)
    assert_clean_error(result, f"INITOPT_COMPILE_CACHE must be on or off, not {value!r}.")
    assert not (tmp_path / "surface").exists()


@pytest.mark.slow
@pytest.mark.parametrize("user_filter", ["default", "ignore"])
def test_a_corrupt_compilation_cache_entry_is_removed_and_written_again(tmp_path, user_filter):
    """JAX never overwrites a cache entry it cannot read: without initopt's mending every later run
    warned and compiled again. Real processes, since a process compiles a program once; the
    mending holds whatever the user's warning filters (it keys on JAX's warning)."""
    env = {**__import__("os").environ, "INITOPT_CACHE_DIR": str(tmp_path / "own-cache"), "INITOPT_COMPILE_CACHE": "on",
           "PYTHONWARNINGS": user_filter}
    command = [sys.executable, "-m", "initopt", "surface", "--optimizer", "adam", "--steps", "5",
               "--out", str(tmp_path / "out")]
    subprocess.run(command, env=env, capture_output=True, check=True)
    entries = sorted((tmp_path / "own-cache" / "jax-compilation-cache").glob("jit_trajectories-*-cache"))
    assert len(entries) == 1
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # truncated
    mended = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert mended.stderr.splitlines()[0] == ("A corrupt entry of the compilation cache (jit_trajectories) was removed; "
                                             "this run compiles it again and the next one reads it from the cache.")
    assert "Warning" not in mended.stderr
    assert len(entries[0].read_bytes()) > 1000  # written again by the run that removed it
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert again.stderr.startswith("Wrote ")  # read back from the cache without a word


def test_path_options_take_text_or_the_default_path():
    """Typer 0.29 hands an option's default (``Path("outputs")``) to its parser; older versions
    only the typed text. Both are paths; an empty text is still refused."""
    from pathlib import Path

    import typer

    from initopt.cli import path_value

    assert path_value(Path("outputs")) == Path("outputs")
    assert path_value("runs/a") == Path("runs/a")
    with pytest.raises(typer.BadParameter):
        path_value("  ")


def _without_timings(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("seconds", "run_dir")}


@pytest.mark.slow
@pytest.mark.parametrize("command, args", [
    ("init-stats", ["--init", "normal", "--scale", "0.05", "--act", "tanh", "--hidden", "16,8", "--seed", "3"]),
    ("init-stats", ["--grid", "--hidden", "8,8"]),
    ("surface", ["--kind", "rosenbrock", "--optimizer", "sgd,adam", "--steps", "30", "--starts", "8", "--seed", "5"]),
    ("depth", ["--act", "relu", "--init", "kaiming,orthogonal", "--width", "16", "--depth", "6",
               "--jacobian-depths", "2,6", "--phase", "--phase-sigma-w2", "1,2", "--phase-depths", "2,4",
               "--steps", "5", "--seed", "2"]),
])
def test_a_run_reproduces_from_its_own_config_json(command, args, tiny_data, tmp_path):
    """``initopt COMMAND --config RUN_DIR/config.json`` runs the same configuration again: the same
    metrics, bit for bit, in the same run directory; the run directory says complete."""
    data = [] if command == "surface" else ["--data-dir", tiny_data]
    first = invoke(command, *args, *data, "--out", tmp_path / "a", "--json")
    assert first.exit_code == 0, first.output
    run_dir = __import__("pathlib").Path(json.loads(first.stdout)["run_dir"])
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    again = invoke(command, "--config", run_dir / "config.json", *data, "--out", tmp_path / "b", "--json")
    assert again.exit_code == 0, again.output
    assert _without_timings(json.loads(again.stdout)) == _without_timings(json.loads(first.stdout))
    assert json.loads(again.stdout)["run_dir"] == str(run_dir).replace(str(tmp_path / "a"), str(tmp_path / "b"))


def test_a_command_config_file_gives_its_section_and_options_override_it(tmp_path):
    (tmp_path / "s.toml").write_text('[surface]\nkind = "saddle"\noptimizers = ["adam"]\nsteps = 40\nstart = [1.0, 0.01]\n')
    result = invoke("surface", "--config", tmp_path / "s.toml", "--steps", "25", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["surface"] == "saddle" and list(m["optimizers"]) == ["adam"] and m["steps"] == 25
    assert m["start"] == [1.0, 0.01]
    (tmp_path / "bad.toml").write_text("[depth]\nwidth = 0\n")
    assert_clean_error(invoke("depth", "--config", tmp_path / "bad.toml", "--out", tmp_path),
                       f"depth.width in {tmp_path / 'bad.toml'} must be at least 1, not 0.")


@pytest.mark.slow
@pytest.mark.parametrize("command, args, config_json", [
    ("train", ["--optimizer", "sgd,adam", "--seeds", "2", "--init", "kaiming,normal:0.05"], "config.json"),
    ("train", ["--optimizer", "momentum", "--lr", "0.05", "--hyper", "beta=0.8"], "momentum/config.json"),
    ("tune", ["--optimizer", "sgd", "--lr-grid", "0.01,0.1", "--seeds", "2", "--final-seeds", "1"], "config.json"),
])
def test_a_training_run_reproduces_from_its_config_json(command, args, config_json, tiny_data, tmp_path):
    """The group's config.json (or one run's, with its trials) trains the same runs again: the same
    test accuracies, bit for bit, whatever the directory it is given from."""
    base = [*SMOKE, "--data-dir", tiny_data, "--name", "g"]
    first = invoke(command, *base, *args, "--out", tmp_path / "a", "--json")
    assert first.exit_code == 0, first.output
    group = tmp_path / "a" / command / "g"
    again = invoke(command, "--config", group / config_json, "--hidden", "64,32", "--batch-size", "32", "--quiet",
                   "--data-dir", tiny_data, "--name", "g", "--out", tmp_path / "b", "--json")
    assert again.exit_code == 0, again.output

    def accuracies(stdout):
        d = json.loads(stdout)
        if command == "tune":
            return {n: (e["selected"], e["final"]["test_per_seed"]) for n, e in d["optimizers"].items()}
        runs = d["runs"] if "runs" in d else {d["optimizer"]: d}
        return {label: (m["test_acc_per_seed"] if "test_acc_per_seed" in m else m["test_acc"]) for label, m in runs.items()}

    assert accuracies(again.stdout) == accuracies(first.stdout)
