"""The problem a command works on: the configured dataset, and the network's inputs and outputs set to
its sample shape and classes (one place for every command that trains or measures the configured
network)."""

from __future__ import annotations

from pathlib import Path

from initopt.config import Config


def load(cfg: Config, data_dir: Path | None, splits: bool = True):
    """``(cfg, dataset, splits, example batch)``: the dataset from ``--data-dir``, the config's
    directory or the usual places; the config with ``model.num_classes`` from the dataset. Without
    ``splits`` (statistics at initialization) only the example batch is normalised. The network is
    built here (a user's model is checked on the dataset's shapes before any work)."""
    from initopt import data as data_lib
    from initopt.nn import networks

    d = cfg.data
    ds = data_lib.load(data_dir or d.data_dir, dataset=d.dataset)
    shape = tuple(int(n) for n in ds.train_images.shape[1:])
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"num_classes": ds.num_classes,
                                                                       "input_shape": shape})})
    networks.get(cfg.model)
    made = data_lib.make_splits(ds, d.train_limit, d.val_limit, d.test_limit, val_size=d.val_size) if splits else None
    return cfg, ds, made, data_lib.example_batch(ds, val_size=d.val_size)


def suffix(cfg: Config) -> str:
    """What a run directory's name adds for a model and a dataset other than the reference's:
    ``-2c2d``, ``-<file stem>_<factory>`` for a user's model; ``-mnist``, ``-<file stem>`` for a
    ``.npz`` file."""
    from initopt import data as data_lib

    model, name = cfg.model.name, cfg.data.dataset
    out = "" if model == "mlp" else "-" + (model if ":" not in model else _slug(model))
    out += "".join(f"-{k}{v}" for k, v in sorted(cfg.model.args.items()))
    return out + ("" if name == data_lib.REFERENCE else "-" + (Path(name).stem if data_lib.is_file_dataset(name) else name))


def _slug(spec: str) -> str:
    target, _, factory = spec.rpartition(":")
    return (Path(target).stem if target.endswith(".py") else target.replace(".", "_")) + "_" + factory
