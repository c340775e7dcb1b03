"""Every command end to end through Typer's CliRunner, on tiny data."""

import gzip
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from initopt import activations, initializers
from initopt.cli import Act, Init, app

runner = CliRunner()
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


def test_help_does_not_import_jax():
    code = "import sys; from initopt import cli; assert 'jax' not in sys.modules and 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


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
    (["--init", "kaiming", "--scale", "2"], "takes no scale"),
    (["--hidden", "12,abc"], "--hidden takes sizes like"),
])
def test_init_stats_bad_input(args, text, tmp_path):
    assert_clean_error(invoke("init-stats", *args, "--out", tmp_path), text)


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
