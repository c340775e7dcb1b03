"""Figures drawn by worker processes: the same PNG bytes as drawn here, errors surfaced, dead workers survived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from initopt.errors import InitoptError
from initopt.output import figures
from tests.conftest import blas_threads

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def curves():
    steps = np.linspace(0, 1, 50)
    rows = {name: np.stack([steps, steps**2, np.exp(-k * steps)], 1) for k, name in enumerate(("sgd", "adam"), 1)}
    return rows, "steep", 0.0


def test_a_worker_draws_the_same_png_as_this_process(tmp_path):
    pool = figures.Figures(workers=1)
    pool.draw(tmp_path / "worker.png", "loss_curves", *curves())
    assert pool.wait() == [(tmp_path / "worker.png").resolve()]
    figures.Figures(workers=0).draw(tmp_path / "here.png", "loss_curves", *curves())
    worker, here = (tmp_path / "worker.png").read_bytes(), (tmp_path / "here.png").read_bytes()
    assert worker.startswith(PNG_MAGIC) and len(worker) > 10_000
    assert worker == here
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temporary file behind


def test_a_builders_error_is_raised_by_wait(tmp_path):
    pool = figures.Figures(workers=1)
    pool.draw(tmp_path / "bad.png", "no_such_figure")
    with pytest.raises(AttributeError, match="no_such_figure"):
        pool.wait()
    assert not (tmp_path / "bad.png").exists()
    pool.draw(tmp_path / "good.png", "loss_curves", *curves())  # the pool still works afterwards
    pool.wait()
    assert (tmp_path / "good.png").read_bytes().startswith(PNG_MAGIC)


def test_figures_survive_a_killed_worker(tmp_path):
    pool = figures.Figures(workers=1)
    pool.draw(tmp_path / "first.png", "loss_curves", *curves())
    pool.wait()
    for process in list(pool._pool._processes.values()):  # as the kernel's OOM killer would
        process.kill()
        process.join()
    pool.draw(tmp_path / "second.png", "loss_curves", *curves())
    pool.wait()  # drawn in this process instead
    assert (tmp_path / "second.png").read_bytes() == (tmp_path / "first.png").read_bytes()
    fresh = figures.Figures(workers=1)  # a broken pool is replaced, not reused
    fresh.draw(tmp_path / "third.png", "loss_curves", *curves())
    fresh.wait()
    assert (tmp_path / "third.png").read_bytes() == (tmp_path / "first.png").read_bytes()


def test_ctrl_c_is_left_to_the_main_process(tmp_path):
    """A terminal's Ctrl-C reaches every process of the job: the workers ignore it (no tracebacks);
    the main process handles it and ends them."""
    pool = figures.Figures(workers=1)
    pool.draw(tmp_path / "first.png", "loss_curves", *curves())
    pool.wait()
    (worker,) = pool._pool._processes.values()
    os.kill(worker.pid, signal.SIGINT)
    pool.draw(tmp_path / "second.png", "loss_curves", *curves())
    pool.wait()
    assert worker.is_alive() and (tmp_path / "second.png").read_bytes() == (tmp_path / "first.png").read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads parent pids from /proc")
def test_workers_are_forked_from_one_server_that_imported_matplotlib(tmp_path):
    """Both workers are children of the fork server (one import of matplotlib for all of them), not
    of this process, and arrive settled: niced, with matplotlib loaded."""
    pool = figures.Figures(workers=2)
    pool.draw(tmp_path / "a.png", "loss_curves", *curves())
    pool.draw(tmp_path / "b.png", "loss_curves", *curves())
    pool.wait()
    pool._pool.submit(int).result()  # every worker has started by now
    parents = {worker_parent(p.pid) for p in pool._pool._processes.values()}
    assert len(pool._pool._processes) == 2 and len(parents) == 1 and os.getpid() not in parents
    assert pool._pool.submit(os.nice, 0).result() >= 10
    assert pool._pool.submit(settled_with_matplotlib).result()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="finds OpenBLAS in /proc/self/maps")
def test_a_worker_keeps_numpy_to_one_blas_thread():
    """numpy's BLAS in a worker runs one thread, asked of OpenBLAS itself (by default it starts one
    per core, and the 3D surface's projections kept a second core busy)."""
    if blas_threads() is None:
        pytest.skip("numpy here has no OpenBLAS to ask")
    pool = figures.Figures(workers=1)
    assert pool._pool.submit(blas_threads).result() == 1


def test_settling_imports_matplotlib_without_collecting():
    """The collector is off while the fork server (or a spawned worker) imports matplotlib, in a fresh
    interpreter as theirs: about 150 passes over the objects of the import, 45 ms, on the old code.
    The process collects as usual afterwards."""
    code = ("import gc; from initopt.output import figures; count = lambda: sum(s['collections'] for s in gc.get_stats()); "
            "before = count(); figures.settle(); print(count() - before, gc.isenabled(), 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", "import sys; " + code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "True", "True"]


def worker_parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def settled_with_matplotlib() -> bool:
    import sys

    return figures._SETTLED and "matplotlib" in sys.modules


def test_worker_count_from_the_environment(monkeypatch):
    monkeypatch.setenv(figures.WORKERS_ENV, "0")
    assert figures.default_workers() == 0
    monkeypatch.setenv(figures.WORKERS_ENV, "3")
    assert figures.default_workers() == 3
    monkeypatch.setenv(figures.WORKERS_ENV, " ")  # empty is unset, as for INITOPT_CACHE_DIR
    assert figures.default_workers() == (2 if (os.cpu_count() or 1) >= 2 else 0)
    for bad in ("two", "-1", "1.5"):
        monkeypatch.setenv(figures.WORKERS_ENV, bad)
        with pytest.raises(InitoptError, match=figures.WORKERS_ENV):
            figures.default_workers()


def test_a_command_caps_its_workers_and_zero_still_draws_in_process(monkeypatch, tmp_path):
    """A command asks for at most as many workers as it draws figures at once; the environment's
    0 (draw in the main process) is never raised by the cap."""
    monkeypatch.setenv(figures.WORKERS_ENV, "3")
    one = figures.Figures(at_most=1)
    assert len(one._pool._processes) <= 1 and one._pool._max_workers == 1
    monkeypatch.setenv(figures.WORKERS_ENV, "0")
    here = figures.Figures(at_most=2)
    assert here._pool is None
    here.draw(tmp_path / "loss.png", "loss_curves", *curves())
    assert here.wait() == [] and (tmp_path / "loss.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_a_command_leaves_matplotlib_to_the_workers_and_ends_cleanly(tmp_path):
    """A whole `initopt surface` process: it exits 0 through the console entry point (which ends the
    workers and skips Python's teardown), its PNGs are complete, and the main process never
    imported matplotlib."""
    code = (
        "import sys, runpy\n"
        "import initopt.cli as cli\n"
        "import atexit\n"
        f"atexit.register(lambda: open({str(tmp_path / 'modules.json')!r}, 'w').write("
        "__import__('json').dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))))\n"
        f"sys.argv = ['initopt', 'surface', '--kind', 'steep', '--steps', '20', '--out', {str(tmp_path)!r}]\n"
        "cli.main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, figures.WORKERS_ENV: "2"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "resource_tracker" not in proc.stderr  # workers ended cleanly
    run_dir = next((tmp_path / "surface").iterdir())
    for name in ("surface_3d.png", "trajectories.png", "loss.png"):
        assert (run_dir / name).read_bytes().startswith(PNG_MAGIC)
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 20
    assert json.loads((tmp_path / "modules.json").read_text()) == []


def test_histogram_titles_sit_where_matplotlib_would_place_them(monkeypatch):
    """The panels' titles are set at y = 1, which skips matplotlib's search for decorations above
    each panel (a fifth of the figure's time): the same pixels as the titles it places itself, for
    ordinary, tiny and offset (1e7) values and panels with nothing finite to draw."""
    import io

    from matplotlib.axes import Axes

    from initopt.output import plots

    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=4000).astype(np.float32) * 0.05, rng.normal(size=3000).astype(np.float32) * 1e-9,
              (rng.normal(size=2000) * 1e6 + 5e7).astype(np.float32), np.full(10, 0.005, np.float32),
              np.array([np.nan], np.float32)]

    def png() -> bytes:
        buffer = io.BytesIO()
        plots.histograms(arrays, [f"Layer {2 * i}" for i in range(5)], "weight distribution", "weight").savefig(
            buffer, format="png")
        return buffer.getvalue()

    fixed = png()
    set_title = Axes.set_title
    monkeypatch.setattr(Axes, "set_title", lambda self, label, *args, y=None, **kwargs: set_title(self, label, *args,
                                                                                                  **kwargs))
    assert png() == fixed


@pytest.mark.parametrize("values", [np.arange(12.0), np.random.default_rng(0).normal(size=100_000)])
def test_density_curve_has_a_point_per_bin_however_few_the_values(values):
    """A layer of a dozen weights (a small network's last layer) has a kernel wider than the grid:
    the curve used to come back longer than its x values and the histogram figure failed."""
    from initopt.output import plots

    xs, ys = plots._density_curve(values, float(values.min()), float(values.max()))
    assert xs.shape == ys.shape == (512,) and np.all(ys >= 0)
    if len(values) > 1000:  # a narrow kernel keeps the mass in the range: a density
        np.testing.assert_allclose(np.sum(ys) * (xs[1] - xs[0]), 1.0, atol=0.01)


def test_instruments_side_by_side_draws_at_most_twelve_runs_and_says_so():
    """Forty runs made a figure of 240 panels that took a minute to draw and could not be read."""
    from initopt.output import plots

    inst = {"steps": [1, 2], "layers": ["Dense_0", "Dense_1"], "records_per_epoch": 1,
            **{q: [[[1.0, 2.0], [1.5, 2.5]]] for q in plots.INSTRUMENT_PANELS}}
    runs = [{"name": f"train/g/run{i}", "metrics": {"instruments": inst, "trials": [{}]}} for i in range(14)]
    fig = plots.instruments_side_by_side(runs + [{"name": "train/g/none", "metrics": {}}])
    assert len(fig.axes) == 12 * len(plots.INSTRUMENT_PANELS)
    assert fig._suptitle.get_text() == "The first 12 of 14 runs with instruments (name runs to see others)"
    few = plots.instruments_side_by_side(runs[:3])
    assert len(few.axes) == 3 * len(plots.INSTRUMENT_PANELS) and few._suptitle is None


@pytest.mark.parametrize("depths, six_xi_c, says", [
    ([3, 6, 9, 12], [57.0, 400.0, 42.0], ": above these depths (at least 42)"),  # --quick's grid
    ([5, 30, 60], [57.0, 400.0, 42.0], ""),  # the line crosses the grid: drawn over it, nothing to say
])
def test_the_phase_figure_says_where_a_line_above_its_grid_is(depths, six_xi_c, says):
    """A grid shallower than the whole 6 xi_c line drew the line out of sight, its legend still naming it."""
    from initopt.output import plots

    cells = [{"sigma_w2": s, "depth": d, "train_acc": 0.5} for s in (1.0, 2.5, 4.0) for d in depths]
    fig = plots.phase_figure({"cells": cells, "steps": 60, "sigma_b2": 0.05, "agreement": 0.5, "threshold": 0.5,
                              "xi_line": {"sigma_w2": [1.0, 2.5, 4.0], "six_xi_c": six_xi_c}})
    (label,) = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert label == "6 xi_c (theory)" + says
