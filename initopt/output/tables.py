"""Rich tables of results: what the CLI prints on stdout."""

from __future__ import annotations

from rich.table import Table


def fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def stats_table(summary: dict) -> Table:
    table = Table(title=f"init {summary['init']}, activation {summary['act']}")
    for col in ("layer", "weight var", "act var", "act var (theory)", "grad var", "grad mean", "grad std"):
        table.add_column(col, justify="right")
    for i, layer in enumerate(summary["layers"]):
        table.add_row(
            layer, fmt(summary["weight_var"][i]), fmt(summary["act_var"][i]),
            fmt(summary["act_var_predicted"][i]), fmt(summary["grad_var"][i]),
            fmt(summary["grad_mean"][i]), fmt(summary["grad_std"][i]),
        )
    return table


def grid_table(cells: list[dict]) -> Table:
    table = Table(title="Init statistics grid: activation variance per layer (last = logits)")
    table.add_column("init")
    table.add_column("act")
    table.add_column("act var by layer")
    table.add_column("grad var by layer")
    for c in cells:
        name = c["init"] + (f" {c['scale']:g}" if c["scale"] is not None else "")
        table.add_row(name, c["act"], " ".join(fmt(v) for v in c["act_var"]), " ".join(fmt(v) for v in c["grad_var"]))
    return table


def seeds_table(metrics: dict) -> Table:
    seed, n_seeds = metrics["seeds"][0], len(metrics["seeds"])
    table = Table(title=f"Over {n_seeds} initialisations (seeds {seed}..{seed + n_seeds - 1}): mean ± std")
    for col in ("layer", "weight var", "act var", "grad var"):
        table.add_column(col, justify="right")
    for i, layer in enumerate(metrics["layers"]):
        table.add_row(layer, *(f"{metrics[k + '_seed_mean'][i]:.4g} ± {metrics[k + '_seed_std'][i]:.2g}"
                               for k in ("weight_var", "act_var", "grad_var")))
    return table


def report_table(rows: list[dict]) -> Table:
    table = Table(title=f"{len(rows)} training runs")
    for col in ("run", "optimizer", "lr", "seeds", "status", "test acc", "95% CI"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for r in rows:
        ci = "-" if r["ci95_low"] is None else f"[{r['ci95_low']:.4f}, {r['ci95_high']:.4f}]"
        table.add_row(r["run"], r["optimizer"], fmt(r["lr"]), str(r["seeds"]), r["status"], fmt(r["test_acc"]), ci)
    return table


def data_table(summary: dict) -> Table:
    table = Table(title=summary["dataset"], show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    return table


def acc_with_ci(m: dict) -> str:
    if m.get("test_acc_ci95"):
        lo, hi = m["test_acc_ci95"]
        return f"{m['test_acc_mean']:.4f} ± {(hi - lo) / 2:.4f}"
    return fmt(m["test_acc"])


def results_table(results: dict) -> Table:
    table = Table(title="Training results (test accuracy of the best-validation epoch; ± is the 95% CI over seeds)")
    for col in ("run", "lr", "seeds", "status", "best epoch", "best val acc", "test acc", "s / epoch"):
        table.add_column(col, justify="right")
    for name, m in results.items():
        table.add_row(name, f"{m['lr']:g}", str(len(m.get("seeds", [0]))), m["status"], str(m.get("best_epoch") or "-"),
                      fmt(m["best_val_acc"]), acc_with_ci(m), fmt(m["seconds_per_epoch"]))
    return table


def paired_table(paired: list[dict]) -> Table:
    table = Table(title="Paired differences in test accuracy (same seeds: same inits and batch orders)")
    for col in ("a - b", "seeds", "mean difference", "95% CI", "excludes 0"):
        table.add_column(col, justify="right")
    for p in paired:
        ci = "-" if p["ci95"] is None else f"[{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}]"
        diff = "-" if p["mean_diff"] is None else f"{p['mean_diff']:+.4f}"
        table.add_row(f"{p['a']} - {p['b']}", str(p["n"]), diff, ci, "yes" if p["excludes_zero"] else "no")
    return table


def surface_table(result: dict) -> Table:
    table = Table(title=f"{result['surface']}: {result['steps']} updates from {result['start']} "
                        f"(converged: within {result['tolerance']} of a known minimum)")
    for col in ("optimizer", "lr", "final loss", "distance to min", "converged"):
        table.add_column(col, justify="right")
    for opt, r in result["optimizers"].items():
        table.add_row(opt, f"{r['lr']:g}", fmt(r["final_loss"]), fmt(r["distance_to_minimum"]),
                      "yes" if r["converged"] else "no")
    return table


def starts_table(result: dict) -> Table:
    n = result["starts"]["n"]
    table = Table(title=f"{n} random starts" + (", learning rates tuned" if result.get("tune") else ""))
    for col in ("optimizer", "lr", "success rate", "median final loss", "diverged"):
        table.add_column(col, justify="right")
    for opt, r in result["starts"]["optimizers"].items():
        table.add_row(opt, f"{r['lr']:g}", f"{r['success_rate']:.1%}", fmt(r["median_final_loss"]), str(r["diverged"]))
    return table


def tune_table(result: dict) -> Table:
    target = result.get("target")
    final_kind = "final seeds" if result["final_seeds"] else "tuning seeds, optimistic"
    table = Table(title=f"Tuned learning rates (selected on validation over {len(result['tuning_seeds'])} seeds; "
                        f"test accuracy on the {final_kind})")
    cols = ["optimizer", "grid", "selected lr", "val acc", "diverged trials", "test acc"]
    if target is not None:
        cols.append(f"epochs to {target:g}")
    for col in cols:
        table.add_column(col, justify="right")
    for name, e in result["optimizers"].items():
        sel, final = e["selected"], e.get("final")
        lr = "-" if sel["lr"] is None else f"{sel['lr']:.3g}" + (f" ({sel['edge']} edge!)" if sel["edge"] else "")
        test = "-"
        if final and final["test_mean"] is not None:
            ci = final["test_ci95"]
            test = f"{final['test_mean']:.4f}" + (f" ± {(ci[1] - ci[0]) / 2:.4f}" if ci else "")
        row = [name, f"{e['lrs'][0]:.2g}..{e['lrs'][-1]:.2g} ({len(e['lrs'])})", lr,
               fmt(sel.get("val_mean")), str(sum(r["diverged"] for r in e["grid"])), test]
        if target is not None:
            ttt = final.get("time_to_target") if final else None
            row.append("not reached" if not ttt or ttt["epoch"] is None else f"{ttt['epoch']:g}")
        table.add_row(*row)
    return table


def depth_table(result: dict) -> Table:
    table = Table(title=f"Signal propagation, {result['act']}, sigma_b^2 {result['sigma_b2']:g}, width {result['width']}")
    for col in ("init", "sigma_w^2", "q*", "chi_1", "phase", "xi_c", "6 xi_c", "q error (last layer)",
                "c error (last layer)"):
        table.add_column(col, justify="right")
    for p in result["propagation"]:
        t = p["theory"]
        q_err = p["measured"]["q"][-1] / p["predicted"]["q"][-1] - 1 if p["predicted"]["q"][-1] else None
        c_err = p["measured"]["c"][-1] - p["predicted"]["c"][-1]
        table.add_row(p["init"], f"{p['sigma_w2']:.4g}", fmt(t["q_star"]), fmt(t["chi_1"]), t["phase"], fmt(t["xi_c"]),
                      fmt(t["trainable_depth"]), "-" if q_err is None else f"{q_err:+.1%}", f"{c_err:+.3f}")
    for j in result["jacobian"]:
        s = j["summary"]
        table.add_row(f"J {j['init']}", f"depth {j['depth']}", "", "", "", "", "",
                      f"mean s^2 {s['mean_sq']:.3g}", f"std log s {fmt(s['std_log'])}, max/min {fmt(s['max_over_min'])}")
    return table


def phase_line(p: dict) -> str:
    return (f"Phase diagram: {p['agree_count']} of {p['n_cells']} cells ({p['agreement']:.0%}) agree: trained "
            f"(training accuracy > {p['threshold']}) exactly when depth < 6 xi_c.")


def of(command: str, result: dict) -> list:
    """What the command line prints on stdout for a command's result: tables, and sentences."""
    if command == "init-stats":
        if "cells" in result:
            return [grid_table(result["cells"])]
        return [stats_table(result)] + ([seeds_table(result)] if len(result.get("seeds", ())) > 1 else [])
    if command == "train":
        return [results_table(result["runs"])] + ([paired_table(result["paired"])] if result["paired"] else [])
    if command == "tune":
        return [tune_table(result)] + ([paired_table(result["paired"])] if result["paired"] else [])
    if command == "depth":
        return [depth_table(result)] + ([phase_line(result["phase"])] if "phase" in result else [])
    if command == "surface":
        return [surface_table(result)] + ([starts_table(result)] if "starts" in result else [])
    if command == "report":
        return [report_table(result["runs"])]
    return [data_table(result)]
