"""The configuration's schema: its sections, their keys, types, ranges and defaults (pydantic v2).

A TOML file has the sections ``[model]``, ``[data]``, ``[train]``, ``[tune]``,
``[init_stats]``, ``[surface]`` and ``[depth]`` whose keys are the fields below
(a run's own ``config.json`` has the same sections), and ``[optimizer.NAME]`` tables of hyperparameters for one
optimizer (``[optimizer.momentum] beta = 0.95``, ``[optimizer."optax:lion"] b1 = 0.95``).
An unknown section or key, a wrong type or an impossible value is a
:class:`ConfigError` naming the key and the file (or "the options").
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

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


def to_dict(cfg: Config) -> dict:
    return cfg.model_dump(mode="json")


def sections(cfg: Config, *names: str) -> dict:
    """The named sections of ``cfg`` as JSON, for a run's ``config.json``; where the data files
    live is left out (it does not change the run; their sha256, in run.json, does)."""
    d = to_dict(cfg)
    if "data" in names:
        d["data"].pop("data_dir")
    return {name: d[name] for name in names}
