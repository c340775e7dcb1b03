"""How an option's text becomes a configuration value (``--hidden 8x64``, ``--init kaiming,normal:0.01``,
``--hyper b1=0.95``), and what an option of each key reads and says in ``--help``."""

from __future__ import annotations

import functools
import math
import typing
from typing import Annotated, Any, Callable, Union

from initopt.config.schema import field, limits
from initopt.config.validation import number
from initopt.errors import ConfigError


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


def spelling(name: str) -> str:
    """A registry name as typed, in the registries' spelling: ``Equal-Variance`` -> ``equal_variance``."""
    return name.strip().lower().replace("-", "_")


def parse_inits(text: str) -> list[tuple[str, float | None]]:
    """``"kaiming,xavier,normal:0.01"`` -> ``[("kaiming", None), ("xavier", None), ("normal", 0.01)]``.
    The names and scales are checked by :mod:`initopt.nn.initializers`, where the initializers are."""
    out = []
    for item in parse_list(text, "--init"):
        name, sep, scale_text = item.partition(":")
        try:
            scale = float(scale_text) if sep else None
        except ValueError:
            raise ConfigError(f"--init takes NAME or NAME:SCALE, not {item!r}.") from None
        out.append((spelling(name), scale))
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


def hyper_value(text: str) -> Any:
    """``--hyper key=value`` values: numbers become floats (data); true/false flags; else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        value = float(text)
    except ValueError:
        return text.strip()
    if not math.isfinite(value):
        raise ConfigError(f"Hyperparameter values must be finite, not {text!r}.")
    return value


def parse_hyper(items: list[str] | None, what: str = "--hyper") -> dict[str, Any] | None:
    """``["b1=0.95", "nesterov=true"]`` -> ``{"b1": 0.95, "nesterov": True}``. A model's arguments
    keep integers as integers (``--model-arg width=32``: a layer size)."""
    if not items:
        return None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{what} takes key=value, not {item!r}.")
        out[key.strip()] = int(value) if what == "--model-arg" and value.strip().lstrip("+-").isdigit() else hyper_value(value)
    return out


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
