"""A configuration read: a TOML file (or a run's ``config.json``) and the options laid over it,
type-checked against :mod:`initopt.config.schema`, then its values checked
(:func:`initopt.config.validation.validate`). An unknown section or key, a wrong type or an
impossible value is one :class:`ConfigError` sentence naming the key and the file (or "the options")."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from initopt.config.schema import Config, field, limits
from initopt.config.validation import check_number, validate
from initopt.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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


def read_toml(path: str | Path) -> dict:
    """A config file: TOML, or the ``config.json`` a run wrote (the same sections, as JSON)."""
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
