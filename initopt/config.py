"""Typed, frozen configuration: built once at the CLI edge from TOML and options (pydantic v2).

A TOML file has the sections ``[model]``, ``[data]``, ``[train]``, ``[tune]``,
``[init_stats]``, ``[surface]`` and ``[depth]`` whose keys are the fields below
(a run's own ``config.json`` has the same sections), and ``[optimizer.NAME]`` tables of hyperparameters for one
optimizer (``[optimizer.momentum] beta = 0.95``, ``[optimizer."optax:lion"] b1 = 0.95``).
An unknown section or key, a wrong type or an impossible value is a
:class:`ConfigError` naming the key and the file (or "the options").
"""

from __future__ import annotations

import functools
import math
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Union

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


def doc(default: Any, description: str) -> Any:
    """A key's default and what it means: the config's documentation, and its option's help."""
    return Field(default, description=description)


class ModelConfig(_Section):
    name: StrictStr = doc("mlp", "mlp (the reference's), 2c2d or 3c3d (DeepOBS's), or your own: module:factory or "
                                 "file.py:factory, where factory(num_classes, **args) returns a Flax linen Module")
    args: dict[StrictStr, HyperValue] = doc({}, "Keyword arguments of your model's factory, key=value (repeatable)")
    hidden: Annotated[tuple[Count, ...], Field(min_length=1)] = doc(
        (512, 256, 256, 128), "Hidden sizes, e.g. 512,256,256,128 or DEPTHxWIDTH like 8x256")
    act: StrictStr = doc("relu", "Activation")
    init: StrictStr = doc("kaiming", "Initializer of every kernel (default: keep the model's own)")
    scale: Float | None = doc(None, "constant: the value (0.005); normal: the std (0.01); orthogonal: the gain (1)")
    lsuv_tol: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] = doc(
        0.1, "LSUV: stop when |Var - 1| is below this")
    lsuv_max_iter: Count = doc(10, "LSUV: at most this many rescalings per layer")
    num_classes: Count = doc(10, "Outputs of the last layer: set from the dataset's classes")
    input_shape: Annotated[tuple[Count, ...], Field(min_length=1)] = doc((28, 28), "The shape of one sample: set "
                                                                                   "from the dataset")


class DataConfig(_Section):
    dataset: StrictStr = doc("fashion_mnist", "fashion_mnist, mnist, kmnist, cifar10, or a .npz file of yours with "
                                              "x_train, y_train, x_test, y_test (and x_val, y_val)")
    val_size: Count | None = doc(None, "Validation examples held out of the training split (default: a sixth, "
                                       "the reference's 10,000 of 60,000)")
    data_dir: StrictStr | None = None
    train_limit: Count | None = None  # keep the first N examples of a split (smoke runs)
    val_limit: Count | None = None
    test_limit: Count | None = None


class TrainConfig(_Section):
    optimizers: Annotated[tuple[StrictStr, ...], Field(min_length=1)] = doc(("adam",), (
        "A comma list of: sgd, momentum, adam, nesterov, rmsprop, adamw, adagrad; all (the reference three); optax:NAME "
        "(any optax alias with a learning_rate); module:factory or file.py:factory (your factory(learning_rate, **hp))"))
    lr: Float | None = doc(None, "Peak learning rate (default: each optimizer's reference rate)")
    epochs: Count = doc(40, "Epochs")
    batch_size: Count = doc(256, "Batch size")
    seed: Seed = doc(42, "The first seed: initial parameters and batch order (the split stays fixed)")
    seeds: Count = doc(1, "Seeds SEED..SEED+N-1, trained as one program; mean and 95% CI")
    schedule: StrictStr = doc("constant", "Learning-rate schedule (optax's); the learning rate is its peak")
    warmup_epochs: Annotated[StrictInt, Field(ge=0)] | None = doc(None, "Epochs of linear warm-up (onecycle: its "
                                                                        "rising part)")
    beta: Float | None = doc(None, "Momentum of the optimizers that have a beta (momentum, nesterov)")
    weight_decay: Float | None = doc(None, "Weight decay of the optimizers that have one (adamw)")
    hyper: dict[StrictStr, HyperValue] = doc({}, "A hyperparameter of every optimizer, key=value (repeatable)")
    instruments: Annotated[StrictInt, Field(ge=0)] = doc(4, "Per-layer instruments inside the compiled epoch: off, "
                                                            "epoch (one record per epoch) or N records per epoch")
    prng: StrictStr = doc("legacy", "legacy reproduces the published numbers bit for bit; modern is JAX's default")
    inits: Annotated[tuple[StrictStr, ...], Field(min_length=2)] | None = doc(
        None, "Initializations compared by training on the same seeds, NAME or NAME:SCALE")
    tensorboard: StrictBool = doc(False, "Also TensorBoard event files under each run directory: a TensorBoard run "
                                         "per trial (needs tensorboardX)")


class TuneConfig(_Section):
    grid: StrictStr | None = doc(None, "LO:HI:K (K log-spaced rates) or a comma list, for every optimizer (default: "
                                       "7 rates from 0.01x to 10x each optimizer's reference rate)")
    lr_grid: dict[StrictStr, Annotated[tuple[Float, ...], Field(min_length=1)]] = doc({}, "A grid per optimizer")
    seeds: Count = doc(3, "Tuning seeds per learning rate")
    final_seeds: Annotated[StrictInt, Field(ge=0)] = doc(0, "Fresh seeds trained at each selected rate for the test "
                                                            "accuracies and paired differences (0: the tuning seeds')")
    target: Float | None = doc(None, "Validation accuracy in (0, 1): each trial's epochs and seconds to reach it")


class InitStatsConfig(_Section):
    """``initopt init-stats``; the network is ``[model]``, the key ``train.seed`` and ``train.prng``."""
    grid: StrictBool = doc(False, "The reference grid: 6 inits x identity/tanh/relu in one go")
    seeds: Annotated[StrictInt, Field(ge=1, le=10_000)] = doc(1, "Initialisations SEED..SEED+N-1: mean and spread "
                                                                 "of every per-layer variance")


PositiveFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]


class SurfaceConfig(_Section):
    """``initopt surface``: optimizers on a 2D loss surface."""
    kind: StrictStr = doc("steep", "The 2D loss surface")
    optimizers: Annotated[tuple[StrictStr, ...], Field(min_length=1)] = doc(
        ("sgd", "momentum", "adam"), "Comma list of optimizers, or all")
    lr: Float | None = doc(None, "One learning rate for every optimizer (default: the surface's reference rates)")
    steps: Annotated[StrictInt, Field(ge=1, le=100_000)] = doc(100, "Updates per trajectory")
    start: tuple[Float, Float] | None = doc(None, "Start point w1,w2 (default: the surface's)")
    starts: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = doc(
        None, "Also run N random starts in the plot range (vmapped); report success rates")
    tune: StrictBool = doc(False, "Try learning rates x0.01 .. x10 the default per optimizer, same steps (64 random "
                                  "starts unless given); report the best")
    seed: Seed = doc(0, "Seed of the random starts")
    beta: Annotated[float, Field(strict=True, ge=0, le=0.999999, allow_inf_nan=False)] = doc(
        0.9, "Momentum coefficient")


class DepthConfig(_Section):
    """``initopt depth``: signal propagation, Jacobian spectra and the trainability phase diagram."""
    act: StrictStr = doc("tanh", "Activation")
    inits: Annotated[tuple[StrictStr, ...], Field(min_length=1)] = doc(("gaussian",), (
        "Comma list: gaussian (normal), orthogonal, lsuv (with sigma_w^2), or kaiming, xavier, lecun_normal, "
        "equal_variance (their own sigma_w^2)"))
    sigma_w2: PositiveFloat = doc(1.76, "Weight variance times fan-in")
    sigma_b2: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] = doc(0.05, "Bias variance")
    width: Annotated[StrictInt, Field(ge=1, le=65536)] = doc(256, "Hidden width")
    depth: Annotated[StrictInt, Field(ge=1, le=10_000)] = doc(64, "Layers of the measured network")
    jacobian_depths: Annotated[tuple[Count, ...], Field(min_length=1)] = doc((4, 16, 64), "Depths of the Jacobian's "
                                                                                       "spectrum")
    phase: StrictBool = doc(False, "Also train the (sigma_w^2, depth) grid: the trainability phase diagram")
    quick: StrictBool = doc(False, "A small phase grid for tests (well under a minute)")
    phase_sigma_w2: Annotated[tuple[PositiveFloat, ...], Field(min_length=1)] | None = doc(
        None, "sigma_w^2 values of the phase grid, LO:HI:K or a list (default 1:4:16)")
    phase_depths: Annotated[tuple[Count, ...], Field(min_length=1)] | None = doc(
        None, "Depths of the phase grid, LO:HI:K or a list (default 5:60:12)")
    steps: Count | None = doc(None, "SGD steps per phase cell, 300 unless given, at most 1562: one pass over "
                                    "the training split")
    lr: PositiveFloat = doc(0.01, "SGD learning rate of the phase cells")
    threshold: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)] = doc(
        0.5, "Training accuracy above which a cell counts as trained")
    lsuv_tol: PositiveFloat = doc(0.1, "LSUV: stop when |Var - 1| is below this")
    lsuv_max_iter: Count = doc(10, "LSUV: at most this many rescalings per layer")
    seed: Seed = doc(0, "PRNG seed of the weights")


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


def number(x: float) -> str:
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
            bounds = [f"between {number(at_least)} and {number(at_most)}"]
        else:
            bounds = [f"{word} {number(b)}" for word, b in (("at least", at_least), ("above", above),
                                                             ("at most", at_most)) if b is not None]
        raise ConfigError(f"{option} must be {' and '.join(bounds) or 'a finite number'}, not {number(value)}.")


def validate(cfg: Config, source: str = "the options") -> Config:
    """Checks names and ranges beyond types; returns ``cfg`` with names in canonical form."""
    from initopt import data as data_lib
    from initopt.nn.activations import ACTIVATIONS
    from initopt.nn.initializers import canonical_name, resolve_scale
    from initopt.optim.schedules import SCHEDULES

    m, t = cfg.model, cfg.train
    act = canonical_name(m.act)
    if act not in ACTIVATIONS:
        raise ConfigError(f"Unknown activation {m.act!r} in {source}; choose one of {', '.join(ACTIVATIONS)}.")
    init = canonical_name(m.init)
    resolve_scale(init, m.scale)
    model_name = m.name.strip()
    if model_name.lower() in ("mlp", "2c2d", "3c3d"):
        model_name = model_name.lower()
    elif ":" not in model_name:
        raise ConfigError(f"Unknown model {m.name!r} in {source}; choose mlp, 2c2d, 3c3d, or module:factory or "
                          "file.py:factory of your own.")
    if model_name != "mlp" and m.hidden != ModelConfig.model_fields["hidden"].default:
        raise ConfigError(f"model.hidden is the MLP's sizes; model {model_name} has its own layers ({source}).")
    if model_name == "mlp" and m.args:
        raise ConfigError(f"model.args are a model factory's arguments; the MLP takes --hidden ({source}).")
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
    data_lib.check_name(cfg.data.dataset)
    if any(not o.strip() for o in t.optimizers):
        raise ConfigError(f"train.optimizers has an empty name ({source}).")
    if t.inits is not None:
        parse_inits(",".join(t.inits))
    return cfg.model_copy(update={
        "model": m.model_copy(update={"act": act, "init": init, "name": model_name}),
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


_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}


def limits(annotation, metadata=()) -> dict[str, float]:
    """The bounds a field declares (``Field(ge=..., gt=..., le=...)``, also inside ``Optional`` and
    tuples), as :func:`check_number`'s keywords."""
    found: dict[str, float] = {}
    for m in metadata:
        for attr, word in (("ge", "at_least"), ("gt", "above"), ("le", "at_most")):
            if getattr(m, attr, None) is not None:
                found[word] = getattr(m, attr)
    for arg in typing.get_args(annotation):
        found.update(limits(arg, getattr(arg, "metadata", ())))
    return found


def _flag_message(error: dict, flags: dict[str, str]) -> None:
    """A value given as an option and out of its field's range: :func:`check_number`'s sentence,
    naming the option (``--steps must be between 1 and 100000, not 0.``)."""
    loc = [str(p) for p in error["loc"] if not str(p).isdigit()]
    if len(loc) == 2 and ".".join(loc) in flags and error["type"] in _RANGE_ERRORS:
        f = field(".".join(loc))
        check_number(float(error["input"]), flags[".".join(loc)], **limits(f.annotation, f.metadata))


def load(path: str | Path | None = None, overrides: dict | None = None, flags: dict[str, str] | None = None
         ) -> Config:
    """Reads a TOML file (optional), applies ``{"section.key": value}`` overrides (None: not given),
    validates and returns the frozen :class:`Config`. ``flags`` names the option of each override,
    for the sentence on a value out of range."""
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
        error = e.errors()[0]
        if sources.get(".".join(str(p) for p in error["loc"][:2])) == "the options":
            _flag_message(error, flags or {})
        raise ConfigError(_message(error, sources)) from None
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


def init_label(init: str, scale: float | None) -> str:
    return init if scale is None else f"{init}:{scale:g}"


def init_options(text: str | None) -> tuple[dict, dict]:
    """``--init``'s overrides: ``(naming, comparing)``. One initializer sets ``model.init`` and
    ``model.scale``; a list names the group by the text and compares its members (``train.inits``)."""
    inits = parse_inits(text) if text is not None else []
    if len(inits) == 1:
        return {"model.init": inits[0][0], "model.scale": inits[0][1]}, {}
    if inits:
        return {"model.init": text}, {"model.init": None, "train.inits": [init_label(*i) for i in inits]}
    return {}, {}


def parse_values(text: str, what: str, integer: bool = False) -> list:
    """``LO:HI:K`` (K evenly spaced values) or a comma list of distinct positive numbers."""
    import numpy as np

    try:
        if ":" in text:
            lo, hi, k = text.split(":")
            values = np.linspace(float(lo), float(hi), int(k)).tolist()
        else:
            values = [float(v) for v in parse_list(text, what)]
    except ValueError:
        raise ConfigError(f"{what} takes LO:HI:K or a comma list of numbers, not {text!r}.") from None
    values = [int(round(v)) for v in values] if integer else values
    if not values or min(values) <= 0 or len(set(values)) != len(values):
        raise ConfigError(f"{what} needs distinct positive values, not {text!r}.")
    return values


def parse_start(text: str, what: str = "--start") -> list[float]:
    try:
        w1, w2 = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{what} takes two numbers like 5,5, not {text!r}.") from None
    if not (math.isfinite(w1) and math.isfinite(w2)):
        raise ConfigError(f"{what} must be finite, not {text!r}.")
    return [w1, w2]


def parse_instruments(text: str, what: str = "--instruments") -> int:
    """``off`` -> 0, ``epoch`` -> 1, ``N`` -> N records per epoch."""
    text = text.strip().lower()
    if text in ("off", "epoch"):
        return int(text == "epoch")
    n = int(text) if text.isdigit() else 0
    if n < 1:
        raise ConfigError(f"{what} takes off, epoch or a number of records per epoch (>= 1), not {text!r}.")
    return n


# How an option's text becomes its key's value (keys not here take the option's value as it is).
OPTION_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "model.hidden": lambda text, what: list(parse_hidden(text)),
    "train.optimizers": parse_list, "surface.optimizers": parse_list, "depth.inits": parse_list,
    "train.hyper": lambda items, what: parse_hyper(items),
    "model.args": lambda items, what: parse_hyper(items, what),
    "train.instruments": parse_instruments,
    "surface.start": parse_start,
    "depth.jacobian_depths": functools.partial(parse_values, integer=True),
    "depth.phase_depths": functools.partial(parse_values, integer=True),
    "depth.phase_sigma_w2": parse_values,
}


def parse_option(key: str, value: Any, what: str) -> Any:
    """An option's value for its key (None: not given)."""
    return None if value is None else OPTION_PARSERS.get(key, lambda v, _: v)(value, what)


def _section(name: str) -> type[_Section]:
    """The model class of a section (``"depth"`` -> :class:`DepthConfig`)."""
    return Config.model_fields[name].annotation


def field(key: str):
    """The pydantic field of ``section.key``."""
    section, name = key.split(".")
    return _section(section).model_fields[name]


def keys(names: str) -> list[str]:
    """``"model.act depth"`` -> ``["model.act", "depth.act", "depth.inits", ...]``: a section stands for its keys."""
    return [k for n in names.split() for k in ([n] if "." in n else [f"{n}.{f}" for f in _section(n).model_fields])]


def _base(annotation):
    """``Annotated[StrictInt, ...] | None`` -> ``int``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return _base(args[0]) if args and typing.get_origin(annotation) in (Union, Annotated) else annotation


def option_type(key: str) -> type:
    """What an option of ``key`` reads: ``bool``, ``int`` or ``float``, else text (:data:`OPTION_PARSERS`)."""
    base = _base(field(key).annotation)
    return base if base in (bool, int, float) and key not in OPTION_PARSERS else str


def describe(key: str) -> str:
    """What a key means, with its range (of a number) and default: its option's help."""
    f = field(key)
    d = f.default
    b = limits(f.annotation, f.metadata) if option_type(key) in (int, float) else {}
    notes = [f"{number(b['at_least'])} to {number(b['at_most'])}"] if {"at_least", "at_most"} <= b.keys() else [
        f"{word.replace('_', ' ')} {number(v)}" for word, v in b.items()]
    if not (d is None or d is False or d == {}):
        notes.append("default " + (",".join(map(str, d)) if isinstance(d, tuple) else str(d)))
    return f.description + (f" ({'; '.join(notes)})." if notes else ".")


def describe_hidden(hidden) -> str:
    """``(256, 256, 256)`` -> ``3x256``; other lists as ``512,256`` (long ones shortened)."""
    hidden = list(hidden)
    if len(hidden) > 1 and len(set(hidden)) == 1:
        return f"{len(hidden)}x{hidden[0]}"
    text = ",".join(map(str, hidden))
    return text if len(text) <= 60 else text[:40] + f",... ({len(hidden)} layers)"


def parse_hyper(items: list[str] | None, what: str = "--hyper") -> dict[str, Any] | None:
    """``["b1=0.95", "nesterov=true"]`` -> ``{"b1": 0.95, "nesterov": True}``. A model's arguments
    keep integers as integers (``--model-arg width=32``: a layer size)."""
    if not items:
        return None
    from initopt.optim.optimizer_specs import hyper_value

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{what} takes key=value, not {item!r}.")
        out[key.strip()] = int(value) if what == "--model-arg" and value.strip().lstrip("+-").isdigit() else hyper_value(value)
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
