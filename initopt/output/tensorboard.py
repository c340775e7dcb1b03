"""TensorBoard event files of training runs (``--tensorboard``), under each run directory's
``tensorboard/``: one TensorBoard run per trial, named by its optimizer, seed and hyperparameters,
with per epoch the training and validation accuracy and loss and the learning rate, and every
record of the instruments per layer; for a tune's trials also the HParams dashboard's data.

While a run trains, each epoch's scalars are added as the epoch ends (:func:`live`), so that
``tensorboard --logdir outputs`` shows a long run as it goes and an interrupted one up to where it
stopped; once the run has ended, its directory is written anew from its ``metrics.json`` (the same
numbers, with the instruments and the HParams). With tensorboardX, which needs no TensorFlow;
imported only when asked for, and checked before any work (:func:`require`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

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


def require() -> None:
    """Refuses ``--tensorboard`` before any work where tensorboardX is not installed."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise InitoptError("--tensorboard needs the tensorboardX package, which is not installed; install it with "
                           "`pip install tensorboardX` (or initopt with its extra: pip install 'initopt[tensorboard]').") from None


def _writer(logdir: Path):
    require()
    from tensorboardX import SummaryWriter

    return SummaryWriter(logdir=str(logdir))


def live(hooks: Callable | None) -> Callable:
    """``hooks`` (a run's display, ``hooks(label, run_dir, plan) -> Hooks``) with each epoch's
    scalars added to the run's TensorBoard runs as the epoch ends; refused at once (before any
    work) where tensorboardX is not installed."""
    require()
    from initopt.engine.runner import Hooks

    def both(label: str, run_dir: Path, plan) -> Hooks:
        shown = hooks(label, run_dir, plan) if hooks else Hooks()
        if not io.writes_enabled():
            return shown
        names = [trial_name({"optimizer": plan.optimizer.name}, {"seed": t.seed, "hyperparams": t.values})
                 for t in plan.trials]
        writers: dict = {}

        def epoch_done(progress) -> None:
            h = progress.history
            for t, name in enumerate(names):
                w = writers.get(name) or writers.setdefault(name, _writer(Path(run_dir) / SUBDIR / name))
                for tag, key in CURVES:
                    _scalar(w, tag, getattr(h, key)[t][-1], progress.epoch)
                w.flush()
            if shown.on_epoch is not None:
                shown.on_epoch(progress)

        def done() -> None:
            for w in writers.values():
                w.close()
            if shown.on_done is not None:
                shown.on_done()

        return dataclasses.replace(shown, on_epoch=epoch_done, on_done=done)

    return both


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
