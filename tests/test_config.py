import pytest

from initopt import commands, config
from initopt.errors import ConfigError


def test_defaults_are_the_reference_recipe():
    cfg = config.load()
    assert cfg.model.hidden == (512, 256, 256, 128) and cfg.model.init == "kaiming" and cfg.model.act == "relu"
    assert cfg.train.epochs == 40 and cfg.train.batch_size == 256 and cfg.train.prng == "legacy"


def test_shipped_configs_load():
    smoke = config.load("configs/smoke.toml")
    assert smoke.train.optimizers == ("sgd", "momentum", "adam") and smoke.data.train_limit == 4096
    assert config.load("configs/tutorial.toml").train.epochs == 40
    assert config.load("configs/seeds.toml").train.seeds == 8
    tune = config.load("configs/tune.toml").tune
    assert tune.final_seeds == 8 and tune.target == 0.88 and len(tune.lr_grid["adam"]) == 7


def test_options_override_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nepochs = 7\nlr = 0.5\n")
    cfg = config.load(path, {"train.epochs": 2, "train.lr": None})
    assert cfg.train.epochs == 2 and cfg.train.lr == 0.5


@pytest.mark.parametrize("text, message", [
    ("[train]\nepoch = 3\n", "Unknown key train.epoch in {path}"),
    ("[train]\nepochs = 'three'\n", "train.epochs in {path} must be an integer"),
    ("[model]\nhidden = 512\n", "model.hidden in {path} must be a non-empty list"),
    ("[model]\nact = 'swish2'\n", "Unknown activation 'swish2' in {path}"),
    ("[optim]\nlr = 1\n", "Unknown section [optim] in {path}"),
    ("[train]\nlr = -1\n", "must be a positive number"),
    ("[train\n", "{path} is not valid TOML"),
])
def test_bad_config_names_key_and_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        commands.load(path)
    assert message.format(path=path) in str(info.value)


@pytest.mark.parametrize("overrides, message", [
    ({"model.act": "Swish"}, "Unknown activation 'Swish' in the options; choose one of identity, tanh"),
    ({"model.init": "nope"}, "Unknown initializer 'nope'"),
    ({"model.init": "kaiming", "model.scale": 2.0}, "Initializer 'kaiming' takes no scale."),
    ({"model.name": "resnet"}, "Unknown model 'resnet' in the options; choose mlp, 2c2d, 3c3d"),
    ({"model.name": "2c2d", "model.hidden": [8]}, "model.hidden is the MLP's sizes; model 2c2d has its own layers"),
    ({"train.schedule": "cosine"}, "Unknown schedule 'cosine' in the options; choose one of constant, warmup_cosine"),
    ({"data.dataset": "svhn"}, "Unknown dataset 'svhn'"),
    ({"train.inits": ["kaiming", "normal:-1"]}, "The scale of 'normal'"),
])
def test_names_are_checked_by_the_registries_that_hold_them(overrides, message):
    """config.load checks types and values only; a command's configuration (commands.load) has
    every name checked where it lives, and spelled as its registry spells it."""
    config.load(overrides=overrides)  # types and values are fine
    with pytest.raises(ConfigError) as info:
        commands.load(overrides=overrides)
    assert message in str(info.value)


def test_a_commands_configuration_spells_names_as_the_registries_do():
    cfg = commands.load(overrides={"model.act": " Leaky-ReLU", "model.init": "Equal-Variance", "model.name": "2C2D",
                                   "train.schedule": "Warmup-Cosine", "train.optimizers": [" adam "]})
    assert (cfg.model.act, cfg.model.init, cfg.model.name) == ("leaky_relu", "equal_variance", "2c2d")
    assert cfg.train.schedule == "warmup_cosine" and cfg.train.optimizers == ("adam",)


def test_parse_hidden():
    assert config.parse_hidden("512,256") == (512, 256)
    assert config.parse_hidden("3x64") == (64, 64, 64)
    with pytest.raises(ConfigError):
        config.parse_hidden("0x5")


def test_parse_inits():
    assert config.parse_inits("kaiming, normal:0.01") == [("kaiming", None), ("normal", 0.01)]
    assert config.parse_inits("Equal-Variance") == [("equal_variance", None)]
    for bad, text in (("kaiming,,xavier", "without empty items"), ("normal:x", "NAME or NAME:SCALE"),
                      ("xavier,Xavier", "twice")):
        with pytest.raises(ConfigError, match=text):
            config.parse_inits(bad)


def test_check_number_accepts_its_range_and_names_the_option_otherwise():
    for value in (1, 7, 10):
        config.check_number(value, "--n", at_least=1, at_most=10)
    config.check_number(None, "--n", at_least=1)  # not given
    config.check_number(1e-9, "--x", above=0)
    cases = [
        ((0, "--n"), {"at_least": 1, "at_most": 10}, "--n must be between 1 and 10, not 0."),
        ((11, "--n"), {"at_least": 1, "at_most": 10}, "--n must be between 1 and 10, not 11."),
        ((0.0, "--x"), {"above": 0}, "--x must be above 0, not 0."),
        ((-0.5, "--b"), {"at_least": 0}, "--b must be at least 0, not -0.5."),
        ((float("nan"), "--b"), {"at_least": 0, "at_most": 1}, "--b must be between 0 and 1, not nan."),
        ((float("inf"), "--x"), {}, "--x must be a finite number, not inf."),
    ]
    for args, bounds, message in cases:
        with pytest.raises(ConfigError) as info:
            config.check_number(*args, **bounds)
        assert str(info.value) == message


def test_check_name_keeps_a_run_inside_its_output_directory():
    for good in (None, "reference-lr0.01", "my run", "a.b", "..x"):
        assert config.check_name(good) == good
    for bad in ("../../escape", "a/b", "..", ".", "", "  ", "a\\b", "/abs"):
        with pytest.raises(ConfigError) as info:
            config.check_name(bad)
        assert str(info.value) == f"--name must be a plain directory name (no '/', not '.' or '..'), not {bad!r}."
