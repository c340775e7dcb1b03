"""The user's own code, named ``module:factory`` or ``path/to/file.py:factory``: their optimizers and models."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable

from initopt.errors import ConfigError


def load_factory(text: str, kind: str = "Optimizer", makes: str = "an optimizer") -> Callable:
    """The function named by ``module:factory`` or ``file.py:factory`` (``kind`` and ``makes`` word its
    errors); every failure of the user's code is one sentence."""
    target, _, attr = text.rpartition(":")
    if not target or not attr:
        names = "a built-in name, optax:NAME," if kind == "Optimizer" else "a built-in name,"
        raise ConfigError(f"{kind} {text!r} must be {names} module:factory or file.py:factory.")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ConfigError(f"{kind} file {path} does not exist.")
        module_name = f"initopt_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # the user's code: any error is theirs to see in one sentence
            raise ConfigError(f"Importing {path} failed: {type(e).__name__}: {e}.") from None
        sys.modules[module_name] = module
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            raise ConfigError(f"{kind} module {target!r} cannot be imported ({e}).") from None
        except Exception as e:
            raise ConfigError(f"Importing {target} failed: {type(e).__name__}: {e}.") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ConfigError(f"{target} has no {attr!r}.")
    if not callable(factory):
        raise ConfigError(f"{text} is not a function that builds {makes}.")
    return factory
