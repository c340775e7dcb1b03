"""Typed, frozen configuration: built once at the CLI edge from TOML and options (pydantic v2).

A TOML file has the sections ``[model]``, ``[data]``, ``[train]``, ``[tune]``,
``[init_stats]``, ``[surface]`` and ``[depth]`` whose keys are the fields below
(a run's own ``config.json`` has the same sections), and ``[optimizer.NAME]`` tables of hyperparameters for one
optimizer (``[optimizer.momentum] beta = 0.95``, ``[optimizer."optax:lion"] b1 = 0.95``).
An unknown section or key, a wrong type or an impossible value is a
:class:`ConfigError` naming the key and the file (or "the options").
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from initopt.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRNG_IMPLS = ("legacy", "modern")
Float = Annotated[float, Field(strict=True)]  # ints accepted, strings and booleans not
Count = Annotated[StrictInt, Field(ge=1)]
SEED_MAX = 2**32 - 1  # jax.random.PRNGKey keeps a seed's low 32 bits: a larger seed would repeat a smaller one
Seed = Annotated[StrictInt, Field(ge=0, le=SEED_MAX)]
HyperValue = Union[StrictBool, StrictInt, Float, StrictStr]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    hidden: Annotated[tuple[Count, ...], Field(min_length=1)] = (512, 256, 256, 128)
    act: StrictStr = "relu"
    init: StrictStr = "kaiming"
    scale: Float | None = None  # constant value / normal std / orthogonal gain
    lsuv_tol: Annotated[float, Field(strict=True, gt=0)] = 0.1  # lsuv: stop when |Var - 1| < tol
    lsuv_max_iter: Count = 10  # lsuv: at most this many rescalings per layer


class DataConfig(_Section):
    data_dir: StrictStr | None = None
    train_limit: Count | None = None  # keep the first N examples of a split (smoke runs)
    val_limit: Count | None = None
    test_limit: Count | None = None


class TrainConfig(_Section):
    optimizers: Annotated[tuple[StrictStr, ...], Field(min_length=1)] = ("adam",)
    lr: Float | None = None  # the peak learning rate; None: each optimizer's reference rate
    epochs: Count = 40
    batch_size: Count = 256
    seed: Seed = 42  # init key and batch order; the split is always seed 42
    seeds: Count = 1  # trials with seeds seed, seed+1, ... as one program
    schedule: StrictStr = "constant"  # see initopt.optim.schedules
    warmup_epochs: Annotated[StrictInt, Field(ge=0)] | None = None
    beta: Float | None = None  # momentum of the optimizers that have a ``beta`` (momentum, nesterov)
    weight_decay: Float | None = None  # of the optimizers that have a ``weight_decay`` (adamw)
    hyper: dict[StrictStr, HyperValue] = {}  # --hyper key=value: for every optimizer of the run
    instruments: Annotated[StrictInt, Field(ge=0)] = 4  # per-layer records per epoch (0: off)
    prng: StrictStr = "legacy"
    # initializations compared by training on the same seeds, NAME or NAME:SCALE (None: model.init)
    inits: Annotated[tuple[StrictStr, ...], Field(min_length=2)] | None = None


class TuneConfig(_Section):
    grid: StrictStr | None = None  # "LO:HI:K" or "a,b,c" for every optimizer
    lr_grid: dict[StrictStr, Annotated[tuple[Float, ...], Field(min_length=1)]] = {}  # per optimizer
    seeds: Count = 3  # tuning seeds seed .. seed+seeds-1
    final_seeds: Annotated[StrictInt, Field(ge=0)] = 0  # fresh seeds after those, at the selected rate
    target: Float | None = None  # validation accuracy for the time to target, in (0, 1)


class InitStatsConfig(_Section):
    """``initopt init-stats``; the network is ``[model]``, the key ``train.seed`` and ``train.prng``."""
    grid: StrictBool = False  # the reference grid: 6 initializers x identity/tanh/relu
    seeds: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1  # initialisations seed .. seed+seeds-1


class SurfaceConfig(_Section):
    """``initopt surface``: optimizers on a 2D loss surface."""
    kind: StrictStr = "steep"
    optimizers: Annotated[tuple[StrictStr, ...], Field(min_length=1)] = ("sgd", "momentum", "adam")
    lr: Float | None = None  # one rate for every optimizer; None: the surface's reference rates
    steps: Annotated[StrictInt, Field(ge=1, le=100_000)] = 100
    start: tuple[Float, Float] | None = None  # None: the surface's start point
    starts: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None  # random starts
    tune: StrictBool = False  # a learning-rate grid per optimizer (64 random starts unless given)
    seed: Seed = 0
    beta: Annotated[float, Field(strict=True, ge=0, le=0.999999)] = 0.9


PositiveFloat = Annotated[float, Field(strict=True, gt=0)]


class DepthConfig(_Section):
    """``initopt depth``: signal propagation, Jacobian spectra and the trainability phase diagram."""
    act: StrictStr = "tanh"
    inits: Annotated[tuple[StrictStr, ...], Field(min_length=1)] = ("gaussian",)
    sigma_w2: PositiveFloat = 1.76
    sigma_b2: Annotated[float, Field(strict=True, ge=0)] = 0.05
    width: Annotated[StrictInt, Field(ge=1, le=65536)] = 256
    depth: Annotated[StrictInt, Field(ge=1, le=10_000)] = 64
    jacobian_depths: Annotated[tuple[Count, ...], Field(min_length=1)] = (4, 16, 64)
    phase: StrictBool = False  # also train the (sigma_w^2, depth) grid
    quick: StrictBool = False  # the small phase grid
    phase_sigma_w2: Annotated[tuple[PositiveFloat, ...], Field(min_length=1)] | None = None  # None: the grid's
    phase_depths: Annotated[tuple[Count, ...], Field(min_length=1)] | None = None
    steps: Count | None = None  # SGD steps per phase cell; None: the grid's
    lr: PositiveFloat = 0.01
    threshold: Annotated[float, Field(strict=True, ge=0, le=1)] = 0.5
    lsuv_tol: PositiveFloat = 0.1
    lsuv_max_iter: Count = 10
    seed: Seed = 0


class Config(_Section):
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    tune: TuneConfig = TuneConfig()
    init_stats: InitStatsConfig = InitStatsConfig()
    surface: SurfaceConfig = SurfaceConfig()
    depth: DepthConfig = DepthConfig()
    optimizer: dict[StrictStr, dict[StrictStr, HyperValue]] = {}  # [optimizer.NAME] tables

    def hyperparams_for(self, spec_name: str, keys: set[str]) -> dict[str, Any]:
        """The hyperparameters the configuration gives one optimizer: ``train.beta`` /
        ``train.weight_decay`` where it has such a key, then its ``[optimizer.NAME]`` table,
        then ``--hyper``."""
        values: dict[str, Any] = {}
        for key in ("beta", "weight_decay"):
            if getattr(self.train, key) is not None and key in keys:
                values[key] = getattr(self.train, key)
        values.update(self.optimizer.get(spec_name, {}))
        values.update(self.train.hyper)
        return values


_ALIASES = {("train", "optimizer"): "optimizers"}
_PHRASES = {
    "int_type": "must be an integer", "float_type": "must be a number", "string_type": "must be a string",
    "bool_type": "must be true or false", "tuple_type": "must be a non-empty list", "dict_type": "must be a table",
    "too_short": "must be a non-empty list", "model_type": "must be a table",
    "hyper_value": "must be a number, true/false or a string",
}


_UNION_TAGS = {"bool", "int", "float", "str"}  # pydantic names a union's members in the error location


def _message(error: dict, sources: dict[str, str]) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).isdigit()]
    if loc and loc[-1] in _UNION_TAGS:
        loc = loc[:-1]
        error = {**error, "type": "hyper_value"}
    dotted = ".".join(loc)
    source = sources.get(dotted, sources.get(loc[0] if loc else "", "the options"))
    if error["type"] == "extra_forbidden":
        if len(loc) == 1:
            return f"Unknown section [{loc[0]}] in {source}."
        return f"Unknown key {dotted} in {source}."
    if error["type"] in ("greater_than_equal",):
        phrase = f"must be at least {error['ctx']['ge']}"
    elif error["type"] in ("less_than_equal",):
        phrase = f"must be at most {error['ctx']['le']}"
    else:
        phrase = _PHRASES.get(error["type"], error["msg"].lower())
    return f"{dotted} in {source} {phrase}, not {error['input']!r}."


def check_name(name: str | None, option: str = "--name") -> str | None:
    """A run's own directory name is one plain directory, so its files stay under --out: no path
    separator, not empty, ``.`` or ``..`` (``--name ../../x`` wrote two levels above the command's
    directory)."""
    if name is not None and (name.strip() in ("", ".", "..") or any(c in name for c in "/\\\0")):
        raise ConfigError(f"{option} must be a plain directory name (no '/', not '.' or '..'), not {name!r}.")
    return name


def check_lr(lr: float, source: str = "the options") -> float:
    """A learning rate is a positive finite number (every command checks it here)."""
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"The learning rate must be a positive number, not {lr} ({source}).")
    return lr


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def check_number(value: float | None, option: str, *, at_least: float | None = None, above: float | None = None,
                 at_most: float | None = None) -> None:
    """A command-line number within its range (None: the option was not given); else one sentence
    naming the option, like every other bad input (Typer's own range check printed a usage box and
    exited 2)."""
    if value is None:
        return
    ok = (math.isfinite(value) and (at_least is None or value >= at_least) and (above is None or value > above)
          and (at_most is None or value <= at_most))
    if not ok:
        if at_least is not None and at_most is not None:
            bounds = [f"between {_number(at_least)} and {_number(at_most)}"]
        else:
            bounds = [f"{word} {_number(b)}" for word, b in (("at least", at_least), ("above", above),
                                                             ("at most", at_most)) if b is not None]
        raise ConfigError(f"{option} must be {' and '.join(bounds) or 'a finite number'}, not {_number(value)}.")


def validate(cfg: Config, source: str = "the options") -> Config:
    """Checks names and ranges beyond types; returns ``cfg`` with names in canonical form."""
    from initopt.nn.activations import ACTIVATIONS
    from initopt.nn.initializers import canonical_name, resolve_scale
    from initopt.optim.schedules import SCHEDULES

    m, t = cfg.model, cfg.train
    act = canonical_name(m.act)
    if act not in ACTIVATIONS:
        raise ConfigError(f"Unknown activation {m.act!r} in {source}; choose one of {', '.join(ACTIVATIONS)}.")
    init = canonical_name(m.init)
    resolve_scale(init, m.scale)
    if t.prng not in PRNG_IMPLS:
        raise ConfigError(f"Unknown PRNG {t.prng!r} in {source}; choose legacy or modern.")
    schedule = canonical_name(t.schedule)
    if schedule not in SCHEDULES:
        raise ConfigError(f"Unknown schedule {t.schedule!r} in {source}; choose one of {', '.join(SCHEDULES)}.")
    if t.warmup_epochs is not None and t.warmup_epochs >= t.epochs:
        raise ConfigError(f"train.warmup_epochs ({t.warmup_epochs}) must be fewer than train.epochs ({t.epochs}) "
                          f"({source}).")
    if t.lr is not None:
        check_lr(t.lr, source)
    if t.beta is not None and not 0 <= t.beta < 1:
        raise ConfigError(f"train.beta must lie in [0, 1), not {t.beta} ({source}).")
    if t.weight_decay is not None and not (math.isfinite(t.weight_decay) and t.weight_decay >= 0):
        raise ConfigError(f"train.weight_decay must be a non-negative number, not {t.weight_decay} ({source}).")
    if cfg.tune.target is not None and not 0 < cfg.tune.target < 1:
        raise ConfigError(f"tune.target must lie in (0, 1), not {cfg.tune.target} ({source}).")
    if any(not o.strip() for o in t.optimizers):
        raise ConfigError(f"train.optimizers has an empty name ({source}).")
    if t.inits is not None:
        parse_inits(",".join(t.inits))
    return cfg.model_copy(update={
        "model": m.model_copy(update={"act": act, "init": init}),
        "train": t.model_copy(update={"schedule": schedule, "optimizers": tuple(o.strip() for o in t.optimizers)}),
    })


def read_toml(path: str | Path) -> dict:
    """A config file: TOML, or the ``config.json`` a run wrote (the same sections, as JSON)."""
    import json

    try:
        text = Path(path).read_text()
        if Path(path).suffix == ".json":
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError("not a table of sections")
            raw.pop("plan", None)  # a training run's trials, derived from the sections
            return raw
        return tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Cannot read config file {path}: {e}.") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}.") from None
    except ValueError as e:
        raise ConfigError(f"{path} is not a valid JSON config: {e}.") from None


def load(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Reads a TOML file (optional), applies ``{"section.key": value}`` overrides (None: not given),
    validates and returns the frozen :class:`Config`."""
    raw: dict = read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "the options"
    sources = {section: source for section in raw}
    for section, values in raw.items():
        if isinstance(values, dict):
            for key in list(values):
                alias = _ALIASES.get((section, key))
                if alias:
                    values[alias] = values.pop(key)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".")
        if not isinstance(raw.setdefault(section, {}), dict):
            raw[section] = {}
        raw[section][key] = value
        sources[dotted] = "the options"
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_message(e.errors()[0], sources)) from None
    return validate(cfg, source)


def parse_list(text: str, what: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``; an empty item (``"a,,b"``, ``"a,"``) is an error."""
    items = [v.strip() for v in text.split(",")]
    if not text.strip() or any(not v for v in items):
        raise ConfigError(f"{what} takes a comma list without empty items, not {text!r}.")
    return items


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"512,256,256,128"`` -> ``(512, 256, 256, 128)``; ``"8x64"`` -> eight layers of 64."""
    text = text.strip().lower()
    try:
        if "x" in text:
            depth, width = text.split("x")
            sizes = (int(width),) * int(depth)
        else:
            sizes = tuple(int(v) for v in parse_list(text, "--hidden"))
    except (ValueError, ConfigError):
        raise ConfigError(f"--hidden takes sizes like 512,256,256,128 or DEPTHxWIDTH, not {text!r}.") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--hidden needs at least one positive size, not {text!r}.")
    return sizes


def parse_inits(text: str) -> list[tuple[str, float | None]]:
    """``"kaiming,xavier,normal:0.01"`` -> ``[("kaiming", None), ("xavier", None), ("normal", 0.01)]``, checked."""
    from initopt.nn.initializers import canonical_name, resolve_scale

    out = []
    for item in parse_list(text, "--init"):
        name, sep, scale_text = item.partition(":")
        name = canonical_name(name)
        try:
            scale = float(scale_text) if sep else None
        except ValueError:
            raise ConfigError(f"--init takes NAME or NAME:SCALE, not {item!r}.") from None
        resolve_scale(name, scale)
        out.append((name, scale))
    if len(set(out)) != len(out):
        raise ConfigError(f"--init lists an initializer twice: {text!r}.")
    return out


def describe_hidden(hidden) -> str:
    """``(256, 256, 256)`` -> ``3x256``; other lists as ``512,256`` (long ones shortened)."""
    hidden = list(hidden)
    if len(hidden) > 1 and len(set(hidden)) == 1:
        return f"{len(hidden)}x{hidden[0]}"
    text = ",".join(map(str, hidden))
    return text if len(text) <= 60 else text[:40] + f",... ({len(hidden)} layers)"


def parse_hyper(items: list[str] | None) -> dict[str, Any] | None:
    """``["b1=0.95", "nesterov=true"]`` -> ``{"b1": 0.95, "nesterov": True}``."""
    if not items:
        return None
    from initopt.optim.optimizer_specs import hyper_value

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--hyper takes key=value, not {item!r}.")
        out[key.strip()] = hyper_value(value)
    return out


def to_dict(cfg: Config) -> dict:
    return cfg.model_dump(mode="json")


def sections(cfg: Config, *names: str) -> dict:
    """The named sections of ``cfg`` as JSON, for a run's ``config.json``; where the data files
    live is left out (it does not change the run; their sha256, in run.json, does)."""
    d = to_dict(cfg)
    if "data" in names:
        d["data"].pop("data_dir")
    return {name: d[name] for name in names}
