"""Typed, frozen configuration, built once at the CLI edge from TOML and options (pydantic v2).

- :mod:`~initopt.config.schema`: the sections, their keys, types, ranges and defaults;
- :mod:`~initopt.config.loading`: a TOML file (or a run's ``config.json``) and the options over it;
- :mod:`~initopt.config.validation`: values checked beyond their types;
- :mod:`~initopt.config.options`: an option's text made a value, and its ``--help``.

The names a configuration holds (activations, initializers, models, schedules, datasets) are
checked by the registries that hold them; :func:`initopt.commands.load` makes a command's
configuration with both. The configuration imports nothing of initopt above :mod:`initopt.errors`.
"""

from initopt.config.loading import load, read_toml
from initopt.config.options import (
                                    OPTION_PARSERS,
                                    describe,
                                    describe_hidden,
                                    hyper_value,
                                    init_label,
                                    init_options,
                                    option_type,
                                    parse_hidden,
                                    parse_hyper,
                                    parse_inits,
                                    parse_instruments,
                                    parse_list,
                                    parse_option,
                                    parse_start,
                                    parse_values,
                                    spelling,
)
from initopt.config.schema import (
                                    PRNG_IMPLS,
                                    SEED_MAX,
                                    Config,
                                    DataConfig,
                                    DepthConfig,
                                    InitStatsConfig,
                                    ModelConfig,
                                    SurfaceConfig,
                                    TrainConfig,
                                    TuneConfig,
                                    field,
                                    keys,
                                    limits,
                                    sections,
                                    to_dict,
)
from initopt.config.validation import (
                                    check_lr,
                                    check_name,
                                    check_number,
                                    number,
                                    validate,
)

__all__ = [
    "OPTION_PARSERS", "PRNG_IMPLS", "SEED_MAX", "Config", "DataConfig", "DepthConfig", "InitStatsConfig", "ModelConfig",
    "SurfaceConfig", "TrainConfig", "TuneConfig", "check_lr", "check_name", "check_number", "describe",
    "describe_hidden", "field", "hyper_value", "init_label", "init_options", "keys", "limits", "load", "number",
    "option_type", "parse_hidden", "parse_hyper", "parse_inits", "parse_instruments", "parse_list", "parse_option",
    "parse_start", "parse_values", "read_toml", "sections", "spelling", "to_dict", "validate",
]
