"""The problem a command works on: the configured dataset, and the network's outputs set to its
classes (one place for every command that trains or measures the configured network)."""

from __future__ import annotations

from pathlib import Path

from initopt.config import Config


def load(cfg: Config, data_dir: Path | None, splits: bool = True):
    """``(cfg, dataset, splits, example batch)``: the dataset from ``--data-dir``, the config's
    directory or the usual places; the config with ``model.num_classes`` from the dataset. Without
    ``splits`` (statistics at initialization) only the example batch is normalised."""
    from initopt import data as data_lib

    d = cfg.data
    ds = data_lib.load(data_dir or d.data_dir, dataset=d.dataset)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"num_classes": ds.num_classes})})
    made = data_lib.make_splits(ds, d.train_limit, d.val_limit, d.test_limit, val_size=d.val_size) if splits else None
    return cfg, ds, made, data_lib.example_batch(ds, val_size=d.val_size)


def suffix(cfg: Config) -> str:
    """What a run directory's name adds for a dataset other than the reference's: ``-mnist``, or
    ``-<file stem>`` for a ``.npz`` file."""
    from initopt import data as data_lib

    name = cfg.data.dataset
    return "" if name == data_lib.REFERENCE else "-" + (Path(name).stem if data_lib.is_file_dataset(name) else name)
