"""TensorBoard event files of training runs (``--tensorboard``), under each run directory's
``tensorboard/``: one TensorBoard run per trial, named by its optimizer, seed and hyperparameters,
with per epoch the training and validation accuracy and loss and the learning rate, and every
record of the instruments per layer; for a tune's trials also the HParams dashboard's data.

Written from a finished run's ``metrics.json`` (the same numbers, once), with tensorboardX, which
needs no TensorFlow; imported only when asked for. ``tensorboard --logdir outputs`` shows them.
"""

from __future__ import annotations

import math
from pathlib import Path

from initopt.errors import InitoptError
from initopt.output import io

SUBDIR = "tensorboard"
CURVES = (("accuracy/train", "train_scores"), ("accuracy/validation", "val_scores"), ("loss/train", "train_loss"),
          ("loss/validation", "val_loss"), ("learning_rate", "lr"))
_SHORT = {"learning_rate": "lr"}


def trial_name(metrics: dict, trial: dict) -> str:
    """``adam-seed42-lr0.001``: the optimizer, the seed and each float hyperparameter."""
    hyper = "-".join(f"{_SHORT.get(k, k)}{v:g}" for k, v in sorted(trial["hyperparams"].items()))
    return "-".join(filter(None, (str(metrics.get("optimizer", "run")).replace(":", "-"), f"seed{trial['seed']}",
                                  hyper)))


def _writer(logdir: Path):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise InitoptError("--tensorboard needs tensorboardX: pip install 'initopt[tensorboard]'.") from None
    return SummaryWriter(logdir=str(logdir))


def _scalar(writer, tag: str, value, step: int) -> None:
    """One point; none where there is no number (a diverged loss, dead units of a layer without relu)."""
    if value is not None and math.isfinite(value):
        writer.add_scalar(tag, float(value), step)


def write_run(run_dir: Path, metrics: dict, hparams: dict | None = None) -> Path | None:
    """Writes ``run_dir/tensorboard/<trial>/`` for every trial of the run (anew: an earlier
    writing is replaced); with ``hparams`` (name -> value, shared by the trials) also each trial's
    HParams entry: its hyperparameters and seed against its best validation accuracy, test
    accuracy and whether it diverged. Nothing in a multi-process run's secondary processes."""
    if not io.writes_enabled():
        return None
    root = io.remove_tree(Path(run_dir) / SUBDIR)
    inst = metrics.get("instruments") or {}
    quantities = [q for q in inst if q not in ("steps", "layers", "records_per_epoch")]
    for t, trial in enumerate(metrics["trials"]):
        with _writer(root / trial_name(metrics, trial)) as w:
            for tag, key in CURVES:
                for epoch, value in enumerate(trial.get(key) or [], start=1):
                    _scalar(w, tag, value, epoch)
            for q in quantities:
                for r, step in enumerate(inst["steps"]):
                    for layer, name in enumerate(inst["layers"]):
                        _scalar(w, f"{q}/{name}", inst[q][t][r][layer], step)
            if hparams is not None:
                values = {**hparams, "seed": trial["seed"], **trial["hyperparams"]}
                scores = {"hparam/best_val_acc": trial.get("best_val_acc"), "hparam/test_acc": trial.get("test_acc")}
                w.add_hparams(values, {**{k: v for k, v in scores.items() if v is not None},
                                       "hparam/diverged": float(trial.get("status") == "diverged")}, name="hparams")
    return root
