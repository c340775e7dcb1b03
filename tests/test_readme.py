"""The README's examples, run as a user types them: from a fresh working directory, without
``--out``, with their defaults, through the app the console entry point runs (in this process,
so that one import of JAX and one figure server serve them all; the entry point itself, as a
process, is tested in test_cli).

Every ``initopt`` line of the README's ``bash`` blocks is in exactly one of three tables: run as
written, run in its quick form (the README's line with options appended that make it short:
fewer epochs or steps, the small phase grid), or not runnable here (with the reason). A README
line that is in none of them fails the test, so the README cannot gain an untested example.
The data is a small Fashion-MNIST look-alike named by ``INITOPT_DATA_DIR`` (the README's own
variable), so the commands themselves stay as written.
"""

from __future__ import annotations

import pytest
import json
import re
import shlex
import shutil
import time
from pathlib import Path

import numpy as np

from tests.conftest import make_dataset

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# README line -> (options appended to make it quick, files it must leave, relative to the working
# directory: where the README says they go). Order is the README's: report reads earlier runs.
QUICK: dict[str, tuple[str, tuple[str, ...]]] = {
    "initopt data": ("", ()),
    "initopt init-stats --init kaiming --act relu": (
        "", ("outputs/init-stats/kaiming-relu/metrics.json", "outputs/init-stats/kaiming-relu/weight_hist.png")),
    "initopt init-stats --init normal --scale 0.1 --act tanh": (
        "", ("outputs/init-stats/normal-0.1-tanh/metrics.json",)),
    "initopt init-stats --init xavier --act tanh --hidden 16x256": (
        "", ("outputs/init-stats/xavier-tanh-h256_*/metrics.json",)),
    "initopt init-stats --grid": ("", ("outputs/init-stats/grid/variance_grid.png",)),
    "initopt train --optimizer adam": (
        "", ("outputs/train/reference/adam/metrics.json", "outputs/train/reference/adam/curves.png")),
    "initopt train --optimizer all": ("--epochs 2", ("outputs/train/reference-epochs2/comparison.json",)),
    "initopt train --config configs/tutorial.toml": ("--epochs 2", ("outputs/train/tutorial-epochs2/comparison.json",)),
    "initopt train --config configs/smoke.toml": ("", ("outputs/train/smoke/comparison.json",)),
    "initopt train --optimizer sgd --lr 100": ("", ("outputs/train/reference-lr100.0/sgd/run.json",)),
    "initopt train --optimizer ./myopt.py:make,adam --lr 1e-3 --seeds 4": (
        "--epochs 2", ("outputs/train/reference-lr0.001-epochs2-seeds4/comparison.json",)),
    "initopt train --optimizer ./myopt.py:make --lr 1e-3 --hyper decay=0.95": (
        "", ("outputs/train/reference-lr0.001-hyperdecay0.95/*/metrics.json",)),
    "initopt train --optimizer sgd,momentum,adam --seeds 8": (
        "--epochs 2 --name reference-seeds8", ("outputs/train/reference-seeds8/comparison.json",)),
    "initopt train --optimizer sgd,momentum,adam --seeds 4 --epochs 3": (
        "", ("outputs/train/reference-epochs3-seeds4/comparison.json",)),
    "initopt init-stats --init kaiming --act relu --seeds 16": (
        "", ("outputs/init-stats/kaiming-relu-seeds16/variance_seeds.png",)),
    "initopt train --init kaiming,normal:0.01 --optimizer sgd --epochs 3 --seeds 2": (
        "", ("outputs/train/reference-epochs3-seeds2-initkaiming-normal-0.01/comparison.json",)),
    "initopt tune --optimizer sgd,momentum,adam,optax:lion --lr-grid 1e-4:1:9 --seeds 3 --epochs 10 --final-seeds 8 --target 0.88": (
        "--epochs 1", ("outputs/tune/reference-grid1e-4-1-9-*/tune.json",)),
    "initopt tune --config configs/tune.toml": ("--epochs 1", ("outputs/tune/tune-epochs1/tune.json",)),
    "initopt tune --config configs/smoke.toml --lr-grid 1e-3:1:4 --seeds 2 --final-seeds 2": (
        "", ("outputs/tune/smoke*/tune.json",)),
    "initopt depth": ("", ("outputs/depth/tanh-sw1.76-sb0.05-w256-d64-gaussian/metrics.json",)),
    "initopt depth --act relu --init kaiming": ("", ("outputs/depth/relu-*-kaiming/metrics.json",)),
    "initopt depth --init orthogonal,gaussian --act identity --sigma-w2 1 --sigma-b2 0": (
        "", ("outputs/depth/identity-sw1-sb0-w256-d64-orthogonal_gaussian/jacobian_spectrum.png",)),
    "initopt depth --phase": ("--quick", ("outputs/depth/*-phase-quick/phase.png",)),
    "initopt depth --phase --quick": ("", ("outputs/depth/tanh-sw1.76-sb0.05-w256-d64-gaussian-phase-quick/phase.png",)),
    "initopt report": ("", ("outputs/report/report.md", "outputs/report/report.png")),
    "initopt report outputs/train/reference outputs/train/reference-seeds8": (
        "", ("outputs/report/report.csv", "outputs/report/report.json")),
    "initopt report --html": ("", ("outputs/report/report.html",)),
    "initopt train --optimizer sgd,adam --seeds 2 --epochs 3 --tensorboard": (
        "", ("outputs/train/reference-epochs3-seeds2/adam/tensorboard/adam-seed43-lr0.001/events.out.tfevents.*",)),
    "initopt surface --kind pathological": ("", ("outputs/surface/pathological/trajectories.png",)),
    "initopt surface --kind steep": ("", ("outputs/surface/steep/metrics.json",)),
    "initopt surface --config outputs/surface/steep/config.json": ("", ("outputs/surface/steep/run.json",)),
    "initopt surface --kind rosenbrock --starts 256 --tune": (
        "", ("outputs/surface/rosenbrock-starts256-tune/metrics.json",)),
    "initopt surface --kind saddle --start 1,0.01 --optimizer sgd,adam --lr 0.05 --steps 300": (
        "", ("outputs/surface/saddle-*/loss.png",)),
    "initopt data --dataset mnist": ("", ()),  # INITOPT_DATA_DIR's IDX files, read as MNIST
    "initopt train --dataset mydata.npz --epochs 5": ("", ("outputs/train/reference-epochs5-dataset*/adam/metrics.json",)),
    "initopt init-stats --model 2c2d --init kaiming": ("", ("outputs/init-stats/kaiming-relu-2c2d/activation_hist.png",)),
    "initopt train --model 2c2d --optimizer momentum --epochs 10 --seeds 2": (
        "--epochs 1", ("outputs/train/reference-model2c2d-epochs1-seeds2/momentum/metrics.json",)),
    "initopt train --model ./mymodel.py:small --model-arg width=32 --init default --optimizer adam --epochs 5": (
        "", ("outputs/train/reference-modelmymodel.py-small-width32-epochs5-initdefault/adam/metrics.json",)),
    "initopt tune --config configs/problems/fmnist_2c2d.toml --optimizer momentum,adam --seeds 2 --epochs 5": (
        "--epochs 1 --lr-grid 0.05 --seeds 1", ("outputs/tune/fmnist_2c2d-grid0.05-seeds1-epochs1/tune.json",)),
}
EXIT_CODES = {"initopt train --optimizer sgd --lr 100": 3}  # diverges, as the README says
NOT_RUN_HERE = {
    "initopt data --download": "downloads from the network, which tests do not reach",
    "INITOPT_COORDINATOR=host0:12355 INITOPT_NUM_PROCESSES=2 INITOPT_PROCESS_ID=0 initopt train --seeds 8 ...":
        "a template for two hosts ('...'); two local processes are tested in test_runner",
    "INITOPT_COORDINATOR=host0:12355 INITOPT_NUM_PROCESSES=2 INITOPT_PROCESS_ID=1 initopt train --seeds 8 ...":
        "a template for two hosts ('...'); two local processes are tested in test_runner",
}


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def readme_commands() -> list[str]:
    """Every line of the README's bash blocks that runs initopt, without its comment."""
    lines = (line.split(" #")[0].strip() for block in readme_blocks("bash") for line in block.splitlines())
    return [line for line in lines if "initopt " in line and not line.startswith((".venv/", "make "))]


def test_every_readme_command_is_tested_or_excused():
    commands = readme_commands()
    assert len(commands) > 20  # the parser still finds the README's examples
    untested = [c for c in commands if c not in QUICK and c not in NOT_RUN_HERE]
    assert not untested, f"README commands without a test: {untested}"
    stale = [c for c in [*QUICK, *NOT_RUN_HERE] if c not in commands]
    assert not stale, f"tested commands the README no longer shows: {stale}"


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path, monkeypatch):
    """Each README command, in README order, in one working directory: exit code, no traceback,
    and the files where the README says they go."""
    from typer.testing import CliRunner

    from initopt.cli import app

    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "configs", work / "configs")
    (work / "myopt.py").write_text(next(b for b in readme_blocks("python") if "def make(" in b))
    (work / "mymodel.py").write_text(next(b for b in readme_blocks("python") if "def small(" in b))
    rng = np.random.default_rng(0)  # the user's arrays: 3 classes of 4 x 4 x 2 samples
    np.savez(work / "mydata.npz", x_train=rng.normal(size=(600, 4, 4, 2)), y_train=np.arange(600) % 3,
             x_test=rng.normal(size=(60, 4, 4, 2)), y_test=np.arange(60) % 3)
    monkeypatch.setenv("INITOPT_DATA_DIR", str(make_dataset(tmp_path / "data", n_train=1500, n_test=200)))
    monkeypatch.chdir(work)
    failures, done = [], set()
    for command in readme_commands():
        if command in NOT_RUN_HERE:
            continue
        extra, files = QUICK[command]
        args = shlex.split(command)[1:] + shlex.split(extra)
        where = f"`{command}` {extra}".strip()
        if tuple(args) not in done:  # `depth --phase` in its quick form is the README's next line
            done.add(tuple(args))
            start = time.perf_counter()
            result = CliRunner().invoke(app, args)
            print(f"{time.perf_counter() - start:5.1f} s  {where}")
            crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
            if result.exit_code != EXIT_CODES.get(command, 0) or crashed or "Traceback" in result.output:
                failures.append(f"{where}: exit {result.exit_code} ({result.exception!r})\n{result.output[-2000:]}")
        for pattern in files:
            found = list(work.glob(pattern))
            if not found:
                failures.append(f"{where} left no {pattern}")
            for path in found:
                if path.suffix == ".json":
                    json.loads(path.read_text())
                elif path.suffix == ".png":
                    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert not failures, "\n".join(failures) + "\noutputs: " + " ".join(
        str(p.relative_to(work)) for p in sorted(work.glob("outputs/*/*")))
