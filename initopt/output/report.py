"""Collects finished training runs into one table (rows, Markdown, CSV)."""

from __future__ import annotations

import csv
import io as _stdio
import json
from pathlib import Path

from initopt.errors import InitoptError

COLUMNS = ("run", "optimizer", "lr", "seeds", "epochs", "status", "test_acc", "ci95_low", "ci95_high",
           "best_val_acc", "seconds_per_epoch")


RUN_COMMANDS = ("train", "tune")  # tune's grid and final runs are training runs too


def find_runs(paths: list[Path]) -> list[Path]:
    """Training run directories (run.json of a train or tune run, and metrics.json) under ``paths``."""
    runs = []
    for path in paths:
        if not path.exists():
            raise InitoptError(f"{path} does not exist.")
        candidates = [path / "metrics.json"] if (path / "metrics.json").is_file() else sorted(path.rglob("metrics.json"))
        for metrics in candidates:
            run_json = metrics.parent / "run.json"
            try:
                command = json.loads(run_json.read_text()).get("command") if run_json.is_file() else None
            except (OSError, ValueError):
                command = None
            if command in RUN_COMMANDS and metrics.parent not in runs:
                runs.append(metrics.parent)
    return runs


def load_run(run_dir: Path, root: Path | None = None) -> dict:
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        raise InitoptError(f"{run_dir / 'metrics.json'} is not readable JSON ({e}).") from None
    if not isinstance(metrics, dict):
        raise InitoptError(f"{run_dir / 'metrics.json'} holds no run's metrics.")
    name = str(run_dir.relative_to(root)) if root and run_dir.is_relative_to(root) else str(run_dir)
    return {"name": name, "dir": str(run_dir), "metrics": metrics}


def load_runs(run_dirs: list[Path], root: Path | None = None) -> tuple[list[dict], list[str]]:
    """Every readable run of ``run_dirs``, and a sentence for each damaged one (left out)."""
    runs, damaged = [], []
    for run_dir in run_dirs:
        try:
            runs.append(load_run(run_dir, root))
        except InitoptError as e:
            damaged.append(str(e))
    return runs, damaged


def row(run: dict) -> dict:
    m = run["metrics"]
    ci = m.get("test_acc_ci95") or [None, None]
    return {
        "run": run["name"],
        "optimizer": m.get("optimizer"),
        "lr": m.get("lr"),
        "seeds": len(m.get("seeds", [0])),
        "epochs": m.get("epochs_completed"),
        "status": m.get("status"),
        "test_acc": m.get("test_acc"),
        "ci95_low": ci[0],
        "ci95_high": ci[1],
        "best_val_acc": m.get("best_val_acc"),
        "seconds_per_epoch": m.get("seconds_per_epoch"),
    }


def _cell(v) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
    buffer = _stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: ("" if r[c] is None else r[c]) for c in COLUMNS} for r in rows)
    return buffer.getvalue()
