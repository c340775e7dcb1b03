"""Typed, frozen configuration: built once at the CLI edge from TOML and options.

A TOML file has the sections ``[model]``, ``[data]`` and ``[train]`` whose keys
are the fields below; an unknown section or key, a wrong type or an impossible
value is a :class:`ConfigError` naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from pathlib import Path

from initopt.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRNG_IMPLS = ("legacy", "modern")
REFERENCE_LR = {"sgd": 0.1, "momentum": 0.1, "adam": 1e-3}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...] = (512, 256, 256, 128)
    act: str = "relu"
    init: str = "kaiming"
    scale: float | None = None  # constant value / normal std / orthogonal gain


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data_dir: str | None = None
    train_limit: int | None = None  # keep the first N examples of a split (smoke runs)
    val_limit: int | None = None
    test_limit: int | None = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    optimizers: tuple[str, ...] = ("adam",)
    lr: float | None = None  # None: each optimizer's reference learning rate
    epochs: int = 40
    batch_size: int = 256
    seed: int = 42  # init key and batch order; the train/val split is always seed 42
    seeds: int = 1  # train seeds seed, seed+1, ... as one vmapped program
    beta: float = 0.9  # momentum
    weight_decay: float = 1e-4  # adamw only
    prng: str = "legacy"


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
_ALIASES = {("train", "optimizer"): "optimizers"}


def _coerce(value, hint, where: str):
    """Checks ``value`` against a field's type hint; returns it in the field's type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{where} must be a non-empty list.")
        return tuple(_coerce(v, args[0], where) for v in value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, not {value!r}.")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, not {value!r}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, not {value!r}.")
        return value.strip()
    raise TypeError(hint)  # pragma: no cover


def _section(cls, values: dict, source: str, section: str):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        field = _ALIASES.get((section, key), key)
        if field not in hints:
            raise ConfigError(f"Unknown key {section}.{key} in {source}.")
        kwargs[field] = _coerce(value, hints[field], f"{section}.{key} in {source}")
    return kwargs


def validate(cfg: Config, source: str = "the options") -> Config:
    """Checks names and ranges; returns ``cfg`` with names in canonical form."""
    from initopt.activations import ACTIVATIONS
    from initopt.initializers import canonical_name, resolve_scale

    m, d, t = cfg.model, cfg.data, cfg.train
    act = canonical_name(m.act)
    if act not in ACTIVATIONS:
        raise ConfigError(f"Unknown activation {m.act!r} in {source}; choose one of {', '.join(ACTIVATIONS)}.")
    init = canonical_name(m.init)
    resolve_scale(init, m.scale)
    if any(h < 1 for h in m.hidden):
        raise ConfigError(f"Hidden sizes must be positive integers, not {list(m.hidden)} ({source}).")
    for name in ("train_limit", "val_limit", "test_limit"):
        value = getattr(d, name)
        if value is not None and value < 1:
            raise ConfigError(f"data.{name} must be at least 1, not {value} ({source}).")
    if t.prng not in PRNG_IMPLS:
        raise ConfigError(f"Unknown PRNG {t.prng!r} in {source}; choose legacy or modern.")
    if t.epochs < 1 or t.batch_size < 1:
        raise ConfigError(f"train.epochs and train.batch_size must be at least 1 ({source}).")
    if t.lr is not None and not (math.isfinite(t.lr) and t.lr > 0):
        raise ConfigError(f"The learning rate must be a positive number, not {t.lr} ({source}).")
    if not 0 <= t.beta < 1:
        raise ConfigError(f"train.beta must lie in [0, 1), not {t.beta} ({source}).")
    if t.seeds < 1:
        raise ConfigError(f"train.seeds must be at least 1, not {t.seeds} ({source}).")
    if t.seed < 0:
        raise ConfigError(f"train.seed must be non-negative, not {t.seed} ({source}).")
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(m, act=act, init=init),
        train=dataclasses.replace(t, optimizers=tuple(canonical_name(o) for o in t.optimizers)),
    )


def load(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Reads a TOML file (optional), applies ``{"section.key": value}`` overrides, validates."""
    raw: dict = {}
    source = "the options"
    if path is not None:
        source = str(path)
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"Config file {path} does not exist.") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"Cannot read config file {path}: {e}.") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path} is not valid TOML: {e}.") from None
    sections = {}
    for name, values in raw.items():
        if name not in _SECTIONS:
            raise ConfigError(f"Unknown section [{name}] in {source}.")
        if not isinstance(values, dict):
            raise ConfigError(f"[{name}] in {source} must be a table.")
        sections[name] = _section(_SECTIONS[name], values, source, name)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        name, key = dotted.split(".")
        sections.setdefault(name, {}).update(_section(_SECTIONS[name], {key: value}, "the options", name))
    cfg = Config(**{name: cls(**sections.get(name, {})) for name, cls in _SECTIONS.items()})
    return validate(cfg, source)


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"512,256,256,128"`` -> ``(512, 256, 256, 128)``; ``"8x64"`` -> eight layers of 64."""
    text = text.strip().lower()
    try:
        if "x" in text:
            depth, width = text.split("x")
            sizes = (int(width),) * int(depth)
        else:
            sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--hidden takes sizes like 512,256,256,128 or DEPTHxWIDTH, not {text!r}.") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--hidden needs at least one positive size, not {text!r}.")
    return sizes


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
