import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from initopt.cli import app
from initopt.output import report
from tests.conftest import make_dataset

runner = CliRunner()


def write_run(directory, metrics, command="train"):
    directory.mkdir(parents=True)
    (directory / "run.json").write_text(json.dumps({"command": command, "status": "complete"}))
    (directory / "metrics.json").write_text(json.dumps(metrics))


def test_finds_training_runs_only_and_makes_rows(tmp_path):
    write_run(tmp_path / "g" / "sgd", {"optimizer": "sgd", "lr": 0.1, "test_acc": 0.8, "status": "complete",
                                        "epochs_completed": 2, "best_val_acc": 0.79, "seconds_per_epoch": 1.0})
    write_run(tmp_path / "g" / "adam", {"optimizer": "adam", "lr": 1e-3, "seeds": [1, 2], "test_acc": 0.85,
                                         "test_acc_ci95": [0.84, 0.86], "status": "complete", "epochs_completed": 2})
    write_run(tmp_path / "s" / "kaiming-relu", {"act_var": [1.0]}, command="init-stats")
    runs = [report.load_run(d, tmp_path) for d in report.find_runs([tmp_path])]
    rows = sorted((report.row(r) for r in runs), key=lambda r: r["optimizer"])
    assert [r["run"] for r in rows] == ["g/adam", "g/sgd"]
    assert rows[0]["seeds"] == 2 and rows[0]["ci95_low"] == 0.84 and rows[1]["seeds"] == 1
    md = report.markdown(rows).splitlines()
    assert md[0].startswith("| run | optimizer") and len(md) == 4 and "0.85" in md[2]
    csv_lines = report.csv_text(rows).splitlines()
    assert csv_lines[1].startswith("g/adam,adam,0.001,2,2,complete,0.85,0.84,0.86")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def dom_in_chromium(page: Path, fragment: str = "") -> str:
    """The page's DOM after its script ran, in headless Chromium (Debian's package)."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           "--dump-dom", page.resolve().as_uri() + fragment], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A small tune (its grid and final runs are training runs too), two training runs, and their
    report page."""
    root = tmp_path_factory.mktemp("report")
    data_dir = make_dataset(root / "fmnist")
    out = root / "outputs"
    result = runner.invoke(app, ["tune", "--config", "configs/smoke.toml", "--optimizer", "sgd", "--lr-grid",
                                 "0.01,0.1", "--seeds", "1", "--final-seeds", "1", "--epochs", "1", "--hidden", "16",
                                 "--data-dir", str(data_dir), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--config", "configs/smoke.toml", "--optimizer", "adam,momentum", "--epochs",
                                 "1", "--hidden", "16", "--data-dir", str(data_dir), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", "--html", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


@pytest.mark.slow
def test_report_html_is_one_self_contained_page(tuned):
    out, result = tuned
    page = (out / "report" / "report.html").read_text()
    assert page.count("<tr><td") == len(result["runs"]) == 4  # tune's grid and final runs, two train runs
    # The report's two figures (accuracies, instruments) and the tune's three, embedded; nothing
    # fetched from the network.
    assert page.count('src="data:image/png;base64,') == 5
    assert not re.search(r'(src|href)="(https?:)?//', page)
    links = re.findall(r'<a href="([^"]+)/">', page)
    assert len(links) == 4 and all((out / "report" / link / "metrics.json").is_file() for link in links)
    # A report without --html leaves no page of an earlier one behind.
    assert runner.invoke(app, ["report", "--out", str(out)]).exit_code == 0
    assert not (out / "report" / "report.html").exists()
    assert runner.invoke(app, ["report", "--html", "--out", str(out)]).exit_code == 0


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_html_renders_in_a_browser_and_sorts(tuned):
    out, result = tuned
    dom = dom_in_chromium(out / "report" / "report.html", "#sort=test_acc")
    loaded = re.findall(r'<img [^>]*data-loaded="(\d+)"', dom)
    assert len(loaded) == 5 and all(int(width) > 100 for width in loaded)  # every figure decoded and drawn
    body = dom.split("<tbody>")[1].split("</tbody>")[0]
    column = report.COLUMNS.index("test_acc")
    accs = [float(re.findall(r'data-value="([^"]*)"', row)[column]) for row in re.findall(r"<tr>(.*?)</tr>", body)]
    assert len(accs) == 4 and accs == sorted(accs) and len(set(accs)) > 1  # sorted by test accuracy, as #sort= asked
