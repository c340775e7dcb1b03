"""Matplotlib figure builders: the only module that imports matplotlib.

Each function returns a Figure; :func:`initopt.output.io.save_figure` writes it.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

matplotlib.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9})
COLORS = {"sgd": "C0", "momentum": "C1", "adam": "C2"}


def _subplots(*args, figsize, **kwargs):
    """Like ``plt.subplots`` but outside pyplot's registry, so figures are freed when dropped."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def _fixed_margins(fig, left: float, right: float, bottom: float, top: float, wspace: float, hspace: float):
    """Margins in inches, instead of tight_layout, which measures every tick label (half a figure's time)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wspace, hspace=hspace)


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def _power_of_ten(value: float, _pos=None) -> str:
    """``10⁻⁵`` in plain text: mathtext's ``$10^{-5}$`` costs ~20 ms a label to parse."""
    if value <= 0:
        return ""
    exponent = round(math.log10(value))
    return f"10{str(exponent).translate(_SUPERSCRIPT)}" if math.isclose(value, 10.0**exponent) else f"{value:g}"


def _log_decades(ax, which: str = "y", numticks: int = 8) -> None:
    """A log axis labelled at (a few) decades, without minor ticks: an axis spanning 40 decades
    otherwise lays out hundreds of tick labels."""
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_locator(matplotlib.ticker.LogLocator(numticks=numticks))
    axis.set_minor_locator(matplotlib.ticker.NullLocator())
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(_power_of_ten))


def _density_curve(values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """A binned Gaussian KDE (Silverman bandwidth): fast for millions of values."""
    grid_n = 512
    counts, edges = np.histogram(values, bins=grid_n, range=(lo, hi), density=True)
    centres = (edges[:-1] + edges[1:]) / 2
    step = edges[1] - edges[0]
    bandwidth = 1.06 * float(np.std(values)) * len(values) ** (-1 / 5)
    sigma = max(bandwidth / step, 0.5)
    half = min(int(4 * sigma) + 1, (grid_n - 1) // 2)  # a kernel no longer than the grid: as many points out
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    return centres, np.convolve(counts, kernel, mode="same")


def histograms(arrays: list[np.ndarray], layers: list[str], title: str, xlabel: str, color: str = "C0"):
    """One panel per layer: a histogram, and a density curve where the values vary."""
    n = len(arrays)
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = _subplots(rows, cols, figsize=(3.0 * cols, 2.6 * rows + 0.6), squeeze=False)
    for ax, values, name in zip(axes.flat, arrays, layers):
        values = np.asarray(values, np.float64)
        finite = values[np.isfinite(values)]
        var = float(np.var(finite)) if finite.size else float("nan")
        if finite.size == 0:
            ax.text(0.5, 0.5, "no finite values", ha="center", transform=ax.transAxes)
        elif np.ptp(finite) == 0:
            ax.axvline(finite[0], color=color, lw=3)
            ax.text(0.5, 0.9, f"all = {finite[0]:.3g}", ha="center", transform=ax.transAxes)
        else:
            lo, hi = np.percentile(finite, [0.05, 99.95])
            if lo == hi:
                lo, hi = finite.min(), finite.max()
            counts, edges = np.histogram(finite, bins=60, range=(lo, hi), density=True)
            ax.stairs(counts, edges, fill=True, color=color, alpha=0.55)  # from counts: no per-bar patches
            xs, ys = _density_curve(finite, lo, hi)
            ax.plot(xs, ys, color="k", lw=1)
            ax.set_xlim(lo, hi)
        # At y = 1, as matplotlib places it here anyway (nothing of a panel is above it: the same
        # pixels), without its search for decorations above the axes: 16 ms a panel, a fifth of the figure.
        ax.set_title(f"{name}\nvar = {var:.3g}", y=1.0)
        ax.set_xlabel(xlabel)
        ax.tick_params(labelsize=7)
        # A few ticks a panel: each one is several artists to lay out (a third of the drawing time).
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4, steps=[1, 2, 5, 10]))
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    _fixed_margins(fig, left=0.45, right=0.15, bottom=0.55, top=0.75, wspace=0.35, hspace=0.9)
    return fig


def variance_grid(cells: list[dict]):
    """Activation and gradient variance against layer, one column per activation."""
    acts = list(dict.fromkeys(c["act"] for c in cells))
    fig, axes = _subplots(2, len(acts), figsize=(4.2 * len(acts), 7), squeeze=False)
    for col, act in enumerate(acts):
        for c in (c for c in cells if c["act"] == act):
            label = c["init"] + (f" {c['scale']:g}" if c["scale"] is not None else "")
            x = np.arange(len(c["act_var"])) * 2
            axes[0, col].plot(x, c["act_var"], marker="o", label=label)
            axes[1, col].plot(x, c["grad_var"], marker="o", label=label)
        axes[0, col].set_title(f"activation: {act}")
        for row, what in enumerate(("activation variance", "gradient variance")):
            _log_decades(axes[row, col])
            axes[row, col].set_xlabel("layer")
            axes[row, col].set_ylabel(what)
            axes[row, col].set_xticks(x)
        axes[0, col].axhline(1.0, color="k", lw=0.6, ls=":")
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.suptitle("Variance through the network at initialization")
    _fixed_margins(fig, left=0.75, right=0.15, bottom=0.5, top=0.6, wspace=0.3, hspace=0.3)
    return fig


def curve_band(values) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Mean and 95% band over seeds per epoch for a list of per-seed curves; the curve itself otherwise."""
    arr = np.asarray(values, np.float64)
    if arr.ndim == 1:
        return arr, None, None
    mean = arr.mean(0)
    if len(arr) < 2:
        return mean, None, None
    from initopt.engine.intervals import ci95_half_width

    half = ci95_half_width(arr.std(0, ddof=1), len(arr))
    return mean, mean - half, mean + half


def trial_curves(metrics: dict, key: str):
    """A run's per-epoch ``key`` (``val_scores`` ...): one list per trial (runs before trials: as stored)."""
    if "trials" in metrics:
        return [t[key] for t in metrics["trials"]]
    return metrics[key]


def _plot_band(ax, values, color, **kwargs):
    mean, lo, hi = curve_band(values)
    epochs = np.arange(1, len(mean) + 1)
    ax.plot(epochs, mean, color=color, **kwargs)
    if lo is not None:
        ax.fill_between(epochs, lo, hi, color=color, alpha=0.2, lw=0)


def training_curves(runs: dict[str, dict], title: str = "Training"):
    """Accuracy (train dashed, validation solid) and loss per epoch, one colour per run;
    multi-seed runs show the mean over seeds with a shaded 95% confidence band."""
    fig, (ax_acc, ax_loss) = _subplots(1, 2, figsize=(11, 4))
    for i, (name, m) in enumerate(runs.items()):
        color = COLORS.get(name, f"C{i}")
        test = f", test {m['test_acc']:.2%}" if m.get("test_acc") is not None else ""
        _plot_band(ax_acc, trial_curves(m, "val_scores"), color, label=f"{name} val{test}")
        _plot_band(ax_acc, trial_curves(m, "train_scores"), color, ls="--", alpha=0.7, label=f"{name} train")
        _plot_band(ax_loss, trial_curves(m, "train_loss"), color, ls="--", alpha=0.7, label=f"{name} train")
        _plot_band(ax_loss, trial_curves(m, "val_loss"), color, label=f"{name} val")
        if m.get("best_epoch"):
            ax_acc.plot(m["best_epoch"], m["val_scores"][m["best_epoch"] - 1], "*", color=color, ms=12)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy (star: best validation epoch)")
    for ax in (ax_acc, ax_loss):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss", yscale="log")
    ax_acc.legend(fontsize=7)
    ax_loss.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _surface_values(Z: np.ndarray, log: bool, min_value: float):
    """log10(loss - min + 1e-3) for surfaces with a huge range, else the loss itself."""
    return (np.log10(Z - min_value + 1e-3), "log10(loss - min)") if log else (Z, "loss")


def surface_3d(X, Y, Z, name: str, log: bool = False, min_value: float = 0.0):
    """The loss surface in 3D."""
    values, label = _surface_values(Z, log, min_value)
    fig = Figure(figsize=(7, 5.5))
    ax = fig.add_subplot(projection="3d")
    # A 50 x 50 mesh of the 200 x 200 grid: smooth at this size, a quarter of the polygons of 100 x 100.
    ax.plot_surface(X, Y, values, cmap="viridis", linewidth=0, antialiased=True, rstride=4, cstride=4)
    ax.set(xlabel="w1", ylabel="w2", zlabel=label, title=f"{name} surface")
    ax.view_init(elev=35, azim=-60)
    fig.subplots_adjust(left=0.0, right=0.95, bottom=0.03, top=0.95)
    return fig


def surface_trajectories(X, Y, Z, trajectories: dict[str, np.ndarray], minima, name: str,
                         log: bool = False, min_value: float = 0.0, ends: dict[str, np.ndarray] | None = None,
                         ravine: bool = False):
    """A heat map of the loss with each optimizer's path: start (o), end (x), known minima (*).

    ``ends`` (optional): final points of many random starts per optimizer, drawn as dots.
    """
    values, label = _surface_values(Z, log, min_value)
    fig, ax = _subplots(figsize=(7.5, 6.2))
    _fixed_margins(fig, left=0.7, right=0.3, bottom=0.55, top=0.4, wspace=0.0, hspace=0.0)  # before the colorbar
    mesh = ax.pcolormesh(X, Y, values, cmap="viridis", shading="auto")
    ax.contour(X, Y, values, levels=15, colors="white", linewidths=0.4, alpha=0.5)
    fig.colorbar(mesh, ax=ax, label=label)
    for i, (opt, rows) in enumerate(trajectories.items()):
        color = COLORS.get(opt, f"C{i + 3}")
        if ends is not None and opt in ends:
            ax.scatter(ends[opt][:, 0], ends[opt][:, 1], s=6, color=color, alpha=0.5, zorder=2)
        (x0, x1), (y0, y1) = (X.min(), X.max()), (Y.min(), Y.max())
        end = rows[-1]
        inside = x0 <= end[0] <= x1 and y0 <= end[1] <= y1
        label = f"{opt}: ends at ({end[0]:.3g}, {end[1]:.3g})" + ("" if inside else ", off the map")
        ax.plot(rows[:, 0], rows[:, 1], "-", color=color, lw=1.6, label=label, zorder=3)
        ax.plot(rows[:, 0], rows[:, 1], ".", color=color, ms=3, zorder=3)
        ax.plot(rows[-1, 0], rows[-1, 1], "x", color=color, ms=11, mew=2.5, zorder=4)
    first = next(iter(trajectories.values()))
    ax.plot(first[0, 0], first[0, 1], "o", color="white", mec="black", ms=10, zorder=5, label="start")
    if ravine:
        ax.axvline(0.0, color="gold", ls="--", lw=1.5, zorder=2, label="ravine floor (w1 = 0)")
    elif minima:
        m = np.asarray(minima)
        ax.plot(m[:, 0], m[:, 1], "*", color="gold", mec="black", ms=14, zorder=5, label="known minimum")
    ax.set(xlim=(X.min(), X.max()), ylim=(Y.min(), Y.max()), xlabel="w1", ylabel="w2",
           title=f"{name}: optimizer trajectories (x: last position"
                 + (", dots: ends from random starts)" if ends else ")"))
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    return fig


def loss_curves(trajectories: dict[str, np.ndarray], name: str, min_value: float):
    """Loss against step for every optimizer, with the global minimum as a dotted line."""
    fig, ax = _subplots(figsize=(7, 4))
    for i, (opt, rows) in enumerate(trajectories.items()):
        ax.plot(np.arange(len(rows)), rows[:, 2], color=COLORS.get(opt, f"C{i + 3}"), label=opt)
    ax.axhline(min_value, color="k", ls=":", lw=1, label="global minimum")
    ax.set(xlabel="step", ylabel="loss", title=f"{name}: loss against step")
    ax.legend(fontsize=8)
    _fixed_margins(fig, left=0.75, right=0.2, bottom=0.5, top=0.35, wspace=0.0, hspace=0.0)
    return fig


def report_figure(runs: list[dict]):
    """Validation accuracy per epoch (mean and 95% band over seeds) and test accuracy with intervals."""
    fig, (ax_curve, ax_test) = _subplots(1, 2, figsize=(13, max(4.0, 0.35 * len(runs) + 2)),
                                            gridspec_kw={"width_ratios": [3, 2]})
    for i, run in enumerate(runs):
        m = run["metrics"]
        _plot_band(ax_curve, trial_curves(m, "val_scores"), f"C{i % 10}", label=run["name"])
        acc = m.get("test_acc")
        if acc is not None:
            ci = m.get("test_acc_ci95")
            err = [[acc - ci[0]], [ci[1] - acc]] if ci else None
            ax_test.errorbar([acc], [i], xerr=err, fmt="o", color=f"C{i % 10}", capsize=4)
    ax_curve.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy (band: 95% CI over seeds)")
    ax_curve.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax_curve.legend(fontsize=7)
    ax_test.set_yticks(range(len(runs)), [r["name"] for r in runs], fontsize=7)
    ax_test.invert_yaxis()
    ax_test.set(xlabel="test accuracy", title="test accuracy (bars: 95% CI over seeds)")
    fig.tight_layout()
    return fig


def variance_over_seeds(summary: dict):
    """Activation and gradient variance per layer: mean and spread (std) over initialisations."""
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(summary["layers"])) * 2
    for ax, key, what in ((axes[0], "act_var", "activation variance"), (axes[1], "grad_var", "gradient variance")):
        per_seed = np.asarray(summary[f"{key}_per_seed"])
        for row in per_seed:
            ax.plot(x, row, color="C0", alpha=0.15, lw=0.8)
        ax.errorbar(x, summary[f"{key}_seed_mean"], yerr=summary[f"{key}_seed_std"], color="C0", marker="o",
                    capsize=4, label=f"mean ± std over {len(per_seed)} seeds")
        predicted = [np.nan if v is None else v for v in summary["act_var_predicted"]]
        if key == "act_var" and not np.isnan(predicted).all():  # a CNN's theory may hold for its first layer only
            ax.plot(x, predicted, "k--", marker="D", ms=4, label="theory")
        ax.set(xlabel="layer", ylabel=what, yscale="log", xticks=x)
        ax.set_xticklabels([name.removeprefix("Layer ") for name in summary["layers"]])  # the MLP's 0, 2, ...; Conv_0
        ax.legend(fontsize=8)
    fig.suptitle(f"{summary['init']}, {summary['act']}: variance over initialisations")
    fig.tight_layout()
    return fig


def lr_sensitivity(result: dict):
    """Best validation accuracy against learning rate (log axis), per optimizer: mean over seeds
    with a min-max band, the selected rate circled, rates with a diverged trial as crosses."""
    fig, ax = _subplots(figsize=(7.5, 4.5))
    for i, (name, entry) in enumerate(result["optimizers"].items()):
        color = COLORS.get(name, f"C{i}")
        lrs = np.asarray([r["lr"] for r in entry["grid"]])
        vals = [np.asarray(r["val_per_seed"], np.float64) for r in entry["grid"]]
        mean = np.asarray([v.mean() for v in vals])
        ax.plot(lrs, mean, "-o", color=color, ms=4, label=name)
        ax.fill_between(lrs, [v.min() for v in vals], [v.max() for v in vals], color=color, alpha=0.15, lw=0)
        diverged = np.asarray([r["diverged"] > 0 for r in entry["grid"]])
        if diverged.any():
            ax.plot(lrs[diverged], mean[diverged], "x", color="k", ms=9, mew=2)
        sel = entry["selected"]
        if sel["index"] is not None:
            ax.plot([sel["lr"]], [sel["val_mean"]], "o", ms=13, mfc="none", mec=color, mew=2)
    ax.plot([], [], "x", color="k", ms=9, mew=2, label="a trial diverged (counted as chance)")
    ax.plot([], [], "o", ms=11, mfc="none", mec="gray", mew=2, label="selected rate")
    ax.set(xscale="log", xlabel="learning rate (peak)", ylabel="best validation accuracy",
           title=f"Learning-rate sensitivity (mean over {len(result['tuning_seeds'])} seeds, band: min-max)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def budget_curves(result: dict):
    """Expected best validation accuracy against the number of grid points tried at random."""
    fig, ax = _subplots(figsize=(6.5, 4.2))
    for i, (name, entry) in enumerate(result["optimizers"].items()):
        curve = entry["budget_curve"]
        ax.plot(range(1, len(curve) + 1), curve, "-o", ms=4, color=COLORS.get(name, f"C{i}"), label=name)
    ax.set(xlabel="learning rates tried (drawn at random from the grid)",
           ylabel="expected best validation accuracy", title="How much tuning each optimizer needs")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def final_results(result: dict):
    """Test accuracy at the selected rates (mean, 95% interval) and the paired differences."""
    fig, (ax_acc, ax_diff) = _subplots(1, 2, figsize=(11, 4.2))
    names = [n for n, e in result["optimizers"].items() if e.get("final")]
    for i, name in enumerate(names):
        final = result["optimizers"][name]["final"]
        color = COLORS.get(name, f"C{i}")
        tests = [v for v in final["test_per_seed"] if v is not None]
        ax_acc.plot(tests, [i] * len(tests), "|", color=color, ms=12, alpha=0.6)
        if final["test_mean"] is not None:
            ci = final["test_ci95"]
            err = [[final["test_mean"] - ci[0]], [ci[1] - final["test_mean"]]] if ci else None
            ax_acc.errorbar([final["test_mean"]], [i], xerr=err, fmt="o", color=color, capsize=5)
    ax_acc.set_yticks(range(len(names)), [f"{n}\nlr {result['optimizers'][n]['final']['lr']:.3g}" for n in names])
    kind = "tuning seeds: optimistic" if names and result["optimizers"][names[0]]["final"]["optimistic"] \
        else f"{len(result['final_seeds'])} fresh seeds"
    ax_acc.set(xlabel="test accuracy", title=f"Test accuracy at the selected rate ({kind})")
    paired = result.get("paired") or []
    for j, p in enumerate(paired):
        if p["mean_diff"] is None:
            continue
        ci = p["ci95"]
        err = [[p["mean_diff"] - ci[0]], [ci[1] - p["mean_diff"]]] if ci else None
        ax_diff.errorbar([p["mean_diff"]], [j], xerr=err, fmt="o", color="C3" if p["excludes_zero"] else "gray",
                         capsize=5)
    ax_diff.axvline(0, color="k", lw=1)
    ax_diff.set_yticks(range(len(paired)), [f"{p['a']} - {p['b']}" for p in paired])
    ax_diff.set(xlabel="paired difference in test accuracy (95% CI)",
                title="Paired differences (red: interval excludes 0)" if paired else "Paired differences: "
                "need --final-seeds and two optimizers")
    fig.tight_layout()
    return fig


INSTRUMENT_PANELS = {  # quantity -> (title, log y axis)
    "grad_norm": ("gradient norm ||g||", True),
    "update_ratio": ("log10 std(update) / std(W)", False),
    "dist_from_init": ("||W - W0|| / ||W0||", False),
    "weight_var": ("weight variance", True),
    "preact_var": ("pre-activation variance (probe batch)", True),
    "dead_fraction": ("dead units (zero on every probe image)", False),
}


def _instrument_panel(ax, inst: dict, quantity: str, legend: bool = True):
    steps = np.asarray(inst["steps"])
    values = np.asarray(inst[quantity], np.float64)  # (trial, record, layer)
    title, log = INSTRUMENT_PANELS[quantity]
    for layer, name in enumerate(inst["layers"]):
        v = values[:, :, layer]
        if not np.isfinite(v).any():
            continue
        mean = np.nanmean(v, 0)
        ax.plot(steps, mean, color=f"C{layer}", lw=1.4, label=name)
        if len(v) > 1:
            ax.fill_between(steps, np.nanmin(v, 0), np.nanmax(v, 0), color=f"C{layer}", alpha=0.15, lw=0)
    if quantity == "update_ratio":
        ax.axhline(-3, color="k", ls="--", lw=1, label="1e-3 (rule of thumb)")
    if log and np.nanmin(values, initial=np.inf) > 0:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)


def instruments_figure(metrics: dict, label: str):
    """One panel per instrument, one line per layer over training steps (mean over trials, band: min-max)."""
    inst = metrics["instruments"]
    fig, axes = _subplots(2, 3, figsize=(13, 7))
    for ax, quantity in zip(axes.flat, INSTRUMENT_PANELS):
        _instrument_panel(ax, inst, quantity)
    n = len(metrics.get("trials", [])) or 1
    fig.suptitle(f"Inside the training: {label} ({n} trial{'s' if n > 1 else ''}"
                 f"{', mean and min-max band' if n > 1 else ''})")
    fig.tight_layout()
    return fig


SIDE_BY_SIDE_RUNS = 12  # rows of instruments_side_by_side: more are unreadable, and took a minute to draw


def instruments_side_by_side(runs: list[dict]):
    """The instruments of several runs (the first :data:`SIDE_BY_SIDE_RUNS` that have them, the
    title says how many are left out): one row per run, one column per instrument."""
    recorded = [r for r in runs if r["metrics"].get("instruments")]
    runs = recorded[:SIDE_BY_SIDE_RUNS]
    fig, axes = _subplots(len(runs), len(INSTRUMENT_PANELS), figsize=(3.2 * len(INSTRUMENT_PANELS),
                                                                       2.6 * len(runs) + 0.5), squeeze=False)
    for row, run in zip(axes, runs):
        for ax, quantity in zip(row, INSTRUMENT_PANELS):
            _instrument_panel(ax, run["metrics"]["instruments"], quantity, legend=ax is row[0])
        short = "/".join(Path(run["name"]).parts[-2:])  # the group and the run: full paths crowd the row
        title = row[0].get_title()
        row[0].set_title("")
        row[0].set_title(f"{short}\n{title}", fontsize=8, loc="left")
    if len(recorded) > len(runs):  # above the panels' own titles: tight_layout leaves it room
        fig.suptitle(f"The first {len(runs)} of {len(recorded)} runs with instruments (name runs to see others)")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    else:
        fig.tight_layout()
    return fig


def propagation_figure(result: dict):
    """Measured pre-activation variance and correlation per layer (points) against the maps (lines)."""
    fig, (ax_q, ax_c) = _subplots(1, 2, figsize=(11, 4.2))
    for i, run in enumerate(result["propagation"]):
        layers = np.arange(1, len(run["measured"]["q"]) + 1)
        color = f"C{i}"
        label = f"{run['init']} (sigma_w^2 {run['sigma_w2']:.3g})"
        ax_q.plot(layers, run["predicted"]["q"], "-", color=color, label=f"{label}: q-map")
        ax_q.plot(layers, run["measured"]["q"], "o", ms=3, color=color, alpha=0.7, label=f"{label}: measured")
        ax_c.plot(layers, run["predicted"]["c"], "-", color=color, label=f"{label}: c-map")
        ax_c.plot(layers, run["measured"]["c"], "o", ms=3, color=color, alpha=0.7, label=f"{label}: measured")
    if all(min(r["measured"]["q"]) > 0 for r in result["propagation"]):
        ax_q.set_yscale("log")
    ax_q.set(xlabel="layer", ylabel="pre-activation variance q", title="variance map")
    ax_c.set(xlabel="layer", ylabel="correlation of two inputs c", title="correlation map")
    ax_q.legend(fontsize=6)
    ax_c.legend(fontsize=6)
    t = result["theory"]
    fig.suptitle(f"{t['act']}, sigma_w^2 {t['sigma_w2']:.3g}, sigma_b^2 {t['sigma_b2']:.3g}: q* {t['q_star']:.3g}, "
                 f"chi_1 {t['chi_1']:.3g} ({t['phase']}), xi_c {t['xi_c']:.3g}, width {result['width']}")
    fig.tight_layout()
    return fig


def jacobian_spectra(result: dict):
    """Histograms of the input-output Jacobian's singular values, one panel per depth, one colour per init."""
    spectra = result["jacobian"]
    depths = sorted({s["depth"] for s in spectra})
    fig, axes = _subplots(1, len(depths), figsize=(4.2 * len(depths), 3.8), squeeze=False)
    inits = list(dict.fromkeys(s["init"] for s in spectra))
    for ax, d in zip(axes[0], depths):
        for s in (s for s in spectra if s["depth"] == d):
            sv = np.asarray(s["singular_values"], np.float64)
            sv = sv[sv > 0]
            color = f"C{inits.index(s['init'])}"
            counts, edges = np.histogram(np.log10(sv), bins=40)
            ax.stairs(counts, edges, fill=True, alpha=0.45, color=color,
                      label=f"{s['init']}: E[s^2] {s['summary']['mean_sq']:.3g}, std log s {s['summary']['std_log']:.2g}")
        ax.set(xlabel="log10 singular value", ylabel="count", title=f"depth {d}")
        ax.legend(fontsize=6)
    fig.suptitle(f"Input-output Jacobian at initialization ({result['theory']['act']}, width {result['width']})")
    fig.tight_layout()
    return fig


def phase_figure(phase: dict):
    """Training accuracy over (sigma_w^2, depth) with the 6 xi_c line."""
    cells = phase["cells"]
    sws = sorted({c["sigma_w2"] for c in cells})
    depths = sorted({c["depth"] for c in cells})
    grid = np.full((len(depths), len(sws)), np.nan)
    for c in cells:
        grid[depths.index(c["depth"]), sws.index(c["sigma_w2"])] = np.nan if c["train_acc"] is None else c["train_acc"]
    fig, ax = _subplots(figsize=(7.5, 5))
    sw_edges = np.r_[sws[0] - (sws[1] - sws[0]) / 2 if len(sws) > 1 else sws[0] - 0.5,
                     [(a + b) / 2 for a, b in zip(sws, sws[1:])],
                     sws[-1] + (sws[-1] - sws[-2]) / 2 if len(sws) > 1 else sws[0] + 0.5]
    d_edges = np.r_[depths[0] - (depths[1] - depths[0]) / 2 if len(depths) > 1 else depths[0] - 0.5,
                    [(a + b) / 2 for a, b in zip(depths, depths[1:])],
                    depths[-1] + (depths[-1] - depths[-2]) / 2 if len(depths) > 1 else depths[0] + 0.5]
    mesh = ax.pcolormesh(sw_edges, d_edges, grid, cmap="viridis", vmin=0.1, vmax=1.0, shading="flat")
    fig.colorbar(mesh, ax=ax, label=f"training accuracy after {phase['steps']} SGD steps")
    line_sw = np.linspace(sw_edges[0], sw_edges[-1], 200)
    six_xi = np.interp(line_sw, phase["xi_line"]["sigma_w2"], np.minimum(phase["xi_line"]["six_xi_c"], 1e6))
    label = "6 xi_c (theory)"
    if six_xi.min() > d_edges[-1]:  # a grid shallower than the whole line (--quick's): say where it is
        label += f": above these depths (at least {six_xi.min():.0f})"
    ax.plot(line_sw, six_xi, color="w", lw=2, label=label)
    ax.set_ylim(d_edges[0], d_edges[-1])
    ax.set(xlabel="sigma_w^2", ylabel="depth",
           title=f"Trainability, tanh, sigma_b^2 {phase['sigma_b2']}: agreement {phase['agreement']:.0%} "
                 f"(trained: accuracy > {phase['threshold']})")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig
