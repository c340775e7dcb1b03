"""The ``initopt`` command line: parse, build the config, call the library, write, exit.

Heavy imports (JAX, matplotlib) happen inside the commands so that ``--help``
answers at once. Results go to stdout (a table, or JSON with ``--json``);
progress and errors go to stderr.
"""

import contextlib
import enum
import functools
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from initopt.output import tables

app = typer.Typer(
    help="Experiments on weight initialization and optimizers for a deep MLP on Fashion-MNIST.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out_console = Console()
if not out_console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    out_console = Console(width=160)
err_console = Console(stderr=True)


class Init(str, enum.Enum):
    constant = "constant"
    normal = "normal"
    equal_variance = "equal_variance"
    xavier = "xavier"
    xavier_normal = "xavier_normal"
    kaiming = "kaiming"
    kaiming_uniform = "kaiming_uniform"
    lecun_normal = "lecun_normal"
    orthogonal = "orthogonal"
    lsuv = "lsuv"


class Act(str, enum.Enum):
    identity = "identity"
    tanh = "tanh"
    relu = "relu"
    leaky_relu = "leaky_relu"
    gelu = "gelu"
    silu = "silu"
    sigmoid = "sigmoid"


class Prng(str, enum.Enum):
    legacy = "legacy"
    modern = "modern"


def path_value(value: "str | os.PathLike[str]") -> Path:
    """A path option's value: the text typed, or (Typer 0.29 and later) the option's default
    ``Path``. An empty one (``--out "$UNSET"``) is refused: as a Path it would be '.', and the
    command would read or write the current directory."""
    text = os.fspath(value)
    if not text.strip():
        raise typer.BadParameter("an empty path; give a file or directory.")
    return Path(text)


def path_option(name: str, help: str):
    return typer.Option(name, parser=path_value, metavar="<path>", help=help)


DataDirOpt = Annotated[
    Optional[Path],
    path_option("--data-dir", help="Directory with the four Fashion-MNIST IDX files (.gz or plain). "
                 "Default: $INITOPT_DATA_DIR, /usr/share/datasets/fashion-mnist, then the download cache."),
]
OutOpt = Annotated[Path, path_option("--out", help="Where run directories go.")]
ConfigOpt = Annotated[
    Optional[Path],
    path_option("--config", help="A TOML file with this command's sections, or a run's own config.json; options override it."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout and nothing else there.")]
HiddenOpt = Annotated[
    Optional[str], typer.Option("--hidden", help="Hidden sizes, e.g. 512,256,256,128 or DEPTHxWIDTH like 8x256.")
]
PrngOpt = Annotated[
    Prng, typer.Option("--prng", help="legacy reproduces the published numbers bit for bit; modern is JAX's default.")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def start_figures(at_most: int = 2):
    """Figure workers for a command that draws: started first, so matplotlib loads beside JAX. No
    more of them than the figures the command draws at one time (the grid draws one)."""
    from initopt.output import figures

    return figures.Figures(at_most=at_most)


def handles_errors(fn):
    """Turns the errors a user can cause into one sentence and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from initopt.errors import InitoptError

        try:
            return fn(*args, **kwargs)
        except InitoptError as e:
            raise fail(str(e)) from None

    return wrapper


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch scheduler's or container's stop): handled like Ctrl-C, exit code 143."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While training: SIGTERM raises :class:`Terminated`, so the run ends as an interrupted one
    (last completed epoch checkpointed, status ``interrupted``) and resumes when run again."""

    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_interruptible(work, resume_hint: str):
    """``work()`` with SIGTERM handled as Ctrl-C; either ends in one sentence: 130 (Ctrl-C) or 143 (SIGTERM)."""
    try:
        with sigterm_as_interrupt():
            return work()
    except KeyboardInterrupt as e:
        how = "Terminated (SIGTERM)" if isinstance(e, Terminated) else "Interrupted"
        raise fail(f"{how}; run the same command again to resume {resume_hint}.",
                   code=143 if isinstance(e, Terminated) else 130) from None


def emit_json(obj) -> None:
    from initopt.output import io

    typer.echo(io.to_json(obj))


# ----------------------------------------------------------------------------- data
@app.command()
@handles_errors
def data(
    data_dir: DataDirOpt = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch the files into the cache with TFDS (sha256-checked).")] = False,
    as_json: JsonOpt = False,
):
    """Show where the Fashion-MNIST data comes from, its sizes, checksum and pixel statistics."""
    from initopt.data import fashion_mnist as data_lib

    if download:
        err_console.print("Downloading Fashion-MNIST with TFDS ...")
        data_lib.fetch()
    ds = data_lib.load(data_dir, download=False)
    summary = ds.summary()
    if as_json:
        return emit_json(summary)
    out_console.print(tables.data_table(summary))


# ----------------------------------------------------------------------------- init-stats
@app.command("init-stats")
@handles_errors
def init_stats(
    init: Annotated[Optional[Init], typer.Option("--init", help="Initializer of the kernels (default: kaiming).")] = None,
    act: Annotated[Optional[Act], typer.Option("--act", help="Activation after each hidden layer (default: relu).")] = None,
    scale: Annotated[Optional[float], typer.Option("--scale", help="constant: the value (0.005); normal: the std (0.01); orthogonal: the gain (1).")] = None,
    grid: Annotated[Optional[bool], typer.Option("--grid", help="The reference grid: 6 inits x identity/tanh/relu in one go.")] = None,
    hidden: HiddenOpt = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="PRNGKey of model.init (default: 42).")] = None,
    n_seeds: Annotated[Optional[int], typer.Option("--seeds", help="Initialisations SEED..SEED+N-1: mean and spread of every per-layer variance (1 to 10000).")] = None,
    prng: Annotated[Optional[Prng], typer.Option("--prng", help="legacy (default) reproduces the published numbers bit for bit; modern is JAX's default.")] = None,
    config_file: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    out: OutOpt = Path("outputs"),
    as_json: JsonOpt = False,
):
    """Per-layer weight, activation and gradient statistics of an initialization at step 0."""
    figures = start_figures(at_most=1 if grid else 2)
    from initopt import config
    from initopt.commands import init_stats as command

    config.check_number(n_seeds, "--seeds", at_least=1, at_most=10_000)
    cfg = config.load(config_file, {
        "model.init": init.value if init else None, "model.act": act.value if act else None, "model.scale": scale,
        "model.hidden": list(config.parse_hidden(hidden)) if hidden is not None else None,
        "train.prng": prng.value if prng else None, "train.seed": seed,
        "init_stats.grid": grid, "init_stats.seeds": n_seeds,
    })
    metrics = command.run(cfg, data_dir, out, figures)
    if as_json:
        return emit_json({k: v for k, v in metrics.items() if k != "seconds"})
    if cfg.init_stats.grid:
        out_console.print(tables.grid_table(metrics["cells"]))
    else:
        out_console.print(tables.stats_table(metrics))
        if cfg.init_stats.seeds > 1:
            out_console.print(tables.seeds_table(metrics, cfg.train.seed, cfg.init_stats.seeds))
    err_console.print(f"Wrote {metrics['run_dir']} ({metrics['seconds']:.1f} s)")


# ----------------------------------------------------------------------------- train
class Schedule(str, enum.Enum):
    constant = "constant"
    warmup_cosine = "warmup_cosine"
    onecycle = "onecycle"
    step = "step"


def _last_val(h) -> float:
    """The latest validation accuracy, the mean over trials."""
    return sum(v[-1] for v in h.val_scores) / len(h.val_scores)


def _epoch_hooks(quiet: bool, n_epochs: int):
    """Per optimizer: (on_epoch, on_resume, on_done). A rich progress bar on a terminal, one plain
    line per epoch otherwise; nothing with --quiet."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    def hooks(label: str):
        if quiet:
            return None, None, None

        def resumed(epoch):
            err_console.print(f"{label}: resuming after epoch {epoch}.")

        if err_console.is_terminal:
            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("val {task.fields[val]}"), TimeRemainingColumn(), console=err_console)
            task = bar.add_task(label, total=n_epochs, val="-")
            bar.start()
            return (lambda p: bar.update(task, completed=p.epoch, val=f"{_last_val(p.history):.4f}"),
                    resumed, bar.stop)

        def line(p):
            h = p.history
            over = f" (mean over {len(h.val_scores)} trials)" if len(h.val_scores) > 1 else ""
            err_console.print(f"{label} epoch {p.epoch}/{n_epochs}: val acc {_last_val(h):.4f}{over}"
                              f" ({h.epoch_seconds[-1]:.2f} s)", highlight=False)

        return line, resumed, None

    return hooks


@app.command()
@handles_errors
def train(
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="A comma list of: sgd, momentum, adam, nesterov, rmsprop, adamw, adagrad; all (the reference three); optax:NAME (any optax alias with a learning_rate); module:factory or file.py:factory (your own factory(learning_rate, **hyperparameters)).")] = None,
    config_file: Annotated[Optional[Path], path_option("--config", help="TOML file with \\[model], \\[data], \\[train] and \\[optimizer.NAME] sections; options override it.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate (default: each optimizer's reference rate).")] = None,
    schedule: Annotated[Optional[Schedule], typer.Option("--schedule", help="Learning-rate schedule (optax's); --lr is its peak.")] = None,
    warmup_epochs: Annotated[Optional[int], typer.Option("--warmup-epochs", help="Epochs of linear warm-up (onecycle: its rising part, default 30%).")] = None,
    hyper: Annotated[Optional[list[str]], typer.Option("--hyper", help="A hyperparameter of the optimizers, key=value (repeatable), e.g. --hyper b1=0.95.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs (reference: 40).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Batch size (reference: 256).")] = None,
    init: Annotated[Optional[str], typer.Option("--init", help="Kernel initializer (reference: kaiming), or a comma list to compare by training on the same seeds, with a scale where it takes one: kaiming,xavier,normal:0.01.")] = None,
    instruments_opt: Annotated[Optional[str], typer.Option("--instruments", help="Per-layer instruments inside the compiled epoch: off, epoch (one record per epoch) or N records per epoch (default 4).")] = None,
    act: Annotated[Optional[Act], typer.Option("--act", help="Activation (reference: relu).")] = None,
    hidden: HiddenOpt = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Init key and batch order (reference: 42); the split stays fixed.")] = None,
    n_seeds: Annotated[Optional[int], typer.Option("--seeds", help="Train seeds SEED..SEED+N-1 as one program (trials sharded over all devices); report mean and 95% CI.")] = None,
    prng: Annotated[Optional[Prng], typer.Option("--prng", help="legacy (default) reproduces the published runs; modern is JAX's default.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run group directory under OUT/train (default: from the config and options).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Retrain even if the run finished.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
    data_dir: DataDirOpt = None,
    out: OutOpt = Path("outputs"),
    as_json: JsonOpt = False,
):
    """Train the MLP with any optimizer; keep the best-validation checkpoint; report test accuracy."""
    figures = start_figures()
    from initopt import config
    from initopt.engine import instruments as instruments_lib
    from initopt.output import io
    from initopt.studies import experiment

    config.check_name(name)
    inits = config.parse_inits(init) if init is not None else None

    overrides = {
        "train.optimizers": config.parse_list(optimizer, "--optimizer") if optimizer is not None else None,
        "train.lr": lr, "train.schedule": schedule.value if schedule else None,
        "train.warmup_epochs": warmup_epochs, "train.hyper": config.parse_hyper(hyper),
        "train.epochs": epochs, "train.batch_size": batch_size,
        "model.act": act.value if act else None,
        "train.instruments": instruments_lib.parse(instruments_opt) if instruments_opt is not None else None,
        "model.hidden": list(config.parse_hidden(hidden)) if hidden is not None else None,
        "train.seed": seed, "train.seeds": n_seeds, "train.prng": prng.value if prng else None,
    }
    if inits and len(inits) == 1:
        overrides["model.init"], overrides["model.scale"] = inits[0]
    elif inits:
        overrides["model.init"] = init  # names the run group; each arm sets its own below
    several = {"model.init": None, "train.inits": [experiment.init_label(*i) for i in inits]} if inits and len(inits) > 1 else {}
    cfg = config.load(config_file, {**overrides, **several})
    io.ensure_dir(Path(out))  # writable before any work; the run directories come once the plan is checked
    group_dir = Path(out) / "train" / (name or experiment.group_name(config_file, overrides))

    from initopt.data import fashion_mnist as data_lib
    from initopt.engine import distributed
    from initopt.runtime import env

    if distributed.initialize() != 0:  # a secondary process of a multi-process run: compute, stay silent
        quiet, as_json = True, False
        out_console.quiet = True
    jax_info = env.setup_jax(cfg.train.prng)
    ds = data_lib.load(data_dir or cfg.data.data_dir)
    splits = data_lib.make_splits(ds, cfg.data.train_limit, cfg.data.val_limit, cfg.data.test_limit)
    x_example, _ = data_lib.example_batch(ds)
    inits = config.parse_inits(",".join(cfg.train.inits)) if cfg.train.inits else None
    results = run_interruptible(
        lambda: experiment.train_arms(experiment.arms(cfg, inits), group_dir, splits, x_example,
                                      {**env.environment(), **jax_info}, overwrite, _epoch_hooks(quiet, cfg.train.epochs)),
        f"the runs in {group_dir}")
    for label, metrics in results.items():
        if metrics.get("skipped"):
            if not quiet:
                err_console.print(f"{label}: already finished in {metrics['run_dir']} (use --overwrite to retrain).")
        else:
            figures.draw(Path(metrics["run_dir"]) / "curves.png", "training_curves", {label: metrics},
                         f"{label}, lr {metrics['lr']:g}")
            if metrics.get("instruments"):
                figures.draw(Path(metrics["run_dir"]) / "instruments.png", "instruments_figure", metrics, label)
    io.write_json(group_dir / "config.json", config.sections(cfg, "model", "data", "train", "optimizer"))
    comp = experiment.comparison(results)
    if comp is not None:
        figures.draw(group_dir / "comparison.png", "training_curves", results, "Comparison")
    figures.wait()
    if comp is not None:
        io.write_json(group_dir / "comparison.json", comp)
    paired = comp["paired"] if comp else None
    if as_json:
        emit_json(next(iter(results.values())) if len(results) == 1 else {"runs": results, "paired": paired})
    else:
        out_console.print(tables.results_table(results))
        if paired:
            out_console.print(tables.paired_table(paired))
        err_console.print(f"Wrote {group_dir}")
    error, note = experiment.diverged_message(results, group_dir)
    if note and not quiet:
        err_console.print(note, highlight=False)
    if error:
        raise fail(error, code=3)


# ----------------------------------------------------------------------------- tune
@app.command()
@handles_errors
def tune(
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="Comma list of optimizers, as for train (default: the config's).")] = None,
    config_file: Annotated[Optional[Path], path_option("--config", help="TOML file; \\[tune] gives seeds, final_seeds, target, grid and per-optimizer \\[tune.lr_grid].")] = None,
    lr_grid: Annotated[Optional[str], typer.Option("--lr-grid", help="LO:HI:K (K log-spaced rates) or a comma list, for every optimizer (default: 7 rates from 0.01x to 10x each optimizer's reference rate).")] = None,
    n_seeds: Annotated[Optional[int], typer.Option("--seeds", help="Tuning seeds per learning rate (default 3).")] = None,
    final_seeds: Annotated[Optional[int], typer.Option("--final-seeds", help="Fresh seeds trained at each selected rate for the test accuracies and paired differences (default 0: report the tuning seeds', optimistic).")] = None,
    target: Annotated[Optional[float], typer.Option("--target", help="Validation accuracy in (0, 1): report each trial's epochs and seconds to reach it.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs per trial.")] = None,
    schedule: Annotated[Optional[Schedule], typer.Option("--schedule", help="Learning-rate schedule; the grid gives its peak.")] = None,
    warmup_epochs: Annotated[Optional[int], typer.Option("--warmup-epochs", help="Warm-up epochs of the schedule.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Batch size.")] = None,
    hidden: HiddenOpt = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="First tuning seed (final seeds follow the tuning seeds).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Directory under OUT/tune (default: from the config and options).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Retrain even if runs finished.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
    data_dir: DataDirOpt = None,
    out: OutOpt = Path("outputs"),
    as_json: JsonOpt = False,
):
    """Tune each optimizer's learning rate on a grid over seeds (one program each), select on validation, compare."""
    figures = start_figures()
    from initopt import config
    from initopt.optim import optimizer_specs
    from initopt.output import io
    from initopt.studies import experiment
    from initopt.studies import tune as tune_lib

    config.check_name(name)
    overrides = {
        "train.optimizers": config.parse_list(optimizer, "--optimizer") if optimizer is not None else None,
        "tune.grid": lr_grid, "tune.seeds": n_seeds, "tune.final_seeds": final_seeds, "tune.target": target,
        "train.epochs": epochs, "train.schedule": schedule.value if schedule else None,
        "train.warmup_epochs": warmup_epochs, "train.batch_size": batch_size,
        "model.hidden": list(config.parse_hidden(hidden)) if hidden is not None else None, "train.seed": seed,
    }
    cfg = config.load(config_file, overrides)
    names = optimizer_specs.parse_names(cfg.train.optimizers)
    cli_grid = tune_lib.parse_grid(lr_grid) if lr_grid is not None else None
    grids = {n: tune_lib.grid_for(cfg, n, cli_grid) for n in names}
    io.ensure_dir(Path(out))
    tune_dir = Path(out) / "tune" / (name or experiment.group_name(config_file, overrides))

    from initopt.data import fashion_mnist as data_lib
    from initopt.engine import budget
    from initopt.runtime import env

    jax_info = env.setup_jax(cfg.train.prng)
    ds = data_lib.load(data_dir or cfg.data.data_dir)
    splits = data_lib.make_splits(ds, cfg.data.train_limit, cfg.data.val_limit, cfg.data.test_limit)
    biggest = max(len(g) for g in grids.values()) * cfg.tune.seeds
    budget.check(budget.train_bytes(cfg.model.hidden, cfg.train.batch_size, biggest, len(splits.train_y),
                                    max(len(splits.val_y), len(splits.test_y)), cfg.train.epochs, cfg.tune.seeds),
                 f"Tuning {biggest} trials of hidden sizes {config.describe_hidden(cfg.model.hidden)}")
    x_example, _ = data_lib.example_batch(ds)
    io.remove_files(tune_dir, "tune.json")  # from here on, an old result must not look complete
    result = run_interruptible(
        lambda: tune_lib.run(cfg, names, grids, tune_dir, splits, x_example, {**env.environment(), **jax_info},
                             overwrite, _epoch_hooks(quiet, cfg.train.epochs)),
        f"the tuning in {tune_dir}")
    for builder, file in (("lr_sensitivity", "lr_sensitivity.png"), ("budget_curves", "budget.png"),
                          ("final_results", "final.png")):
        figures.draw(tune_dir / file, builder, result)
    figures.wait()
    io.write_json(tune_dir / "config.json", config.sections(cfg, "model", "data", "train", "tune", "optimizer"))
    io.write_json(tune_dir / "tune.json", result)  # last: its presence means the tuning is complete
    result["tune_dir"] = str(tune_dir)
    if as_json:
        return emit_json(result)
    out_console.print(tables.tune_table(result))
    if result["paired"]:
        out_console.print(tables.paired_table(result["paired"]))
    for n, e in result["optimizers"].items():
        if e["selected"]["edge"]:
            err_console.print(f"{n}: the selected rate lies at the {e['selected']['edge']} edge of the grid; "
                              "widen the grid.", highlight=False)
        if e["selected"]["lr"] is None:
            err_console.print(f"{n}: a trial diverged at every rate of the grid; nothing selected.", highlight=False)
    if not result["final_seeds"]:
        err_console.print("Test accuracies are those of the tuning seeds at the selected rate: optimistic "
                          "(selected on the same seeds); pass --final-seeds for fresh ones.", highlight=False)
    err_console.print(f"Wrote {tune_dir}")


# ----------------------------------------------------------------------------- depth
@app.command()
@handles_errors
def depth(
    act: Annotated[Optional[Act], typer.Option("--act", help="Activation (default: tanh).")] = None,
    init: Annotated[Optional[str], typer.Option("--init", help="Comma list: gaussian (normal; the default), orthogonal, lsuv (with --sigma-w2), or kaiming, xavier, lecun_normal, equal_variance (their own sigma_w^2).")] = None,
    sigma_w2: Annotated[Optional[float], typer.Option("--sigma-w2", help="Weight variance times fan-in (above 0; default 1.76).")] = None,
    sigma_b2: Annotated[Optional[float], typer.Option("--sigma-b2", help="Bias variance (at least 0; default 0.05).")] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Hidden width (1 to 65536; default 256).")] = None,
    n_layers: Annotated[Optional[int], typer.Option("--depth", help="Layers of the measured network (1 to 10000; default 64).")] = None,
    jacobian_depths: Annotated[Optional[str], typer.Option("--jacobian-depths", help="Depths at which to take the Jacobian's spectrum (default 4,16,64).")] = None,
    phase: Annotated[Optional[bool], typer.Option("--phase", help="Also train the (sigma_w^2, depth) grid: the trainability phase diagram (tanh, sigma_b^2 0.05).")] = None,
    quick: Annotated[Optional[bool], typer.Option("--quick", help="A small phase grid for tests (well under a minute).")] = None,
    phase_sigma_w2: Annotated[Optional[str], typer.Option("--phase-sigma-w2", help="sigma_w^2 values, LO:HI:K or a list (default 1:4:16).")] = None,
    phase_depths: Annotated[Optional[str], typer.Option("--phase-depths", help="Depths, LO:HI:K or a list (default 5:60:12).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="SGD steps per phase cell (default 300; at most 1562, one pass over the training split).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="SGD learning rate of the phase cells (default 0.01).")] = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Training accuracy above which a cell counts as trained (0 to 1; default 0.5).")] = None,
    lsuv_tol: Annotated[Optional[float], typer.Option("--lsuv-tol", help="LSUV: stop when |Var - 1| is below this (above 0; default 0.1).")] = None,
    lsuv_max_iter: Annotated[Optional[int], typer.Option("--lsuv-max-iter", help="LSUV: at most this many rescalings per layer (default 10).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="PRNG seed of the weights (0 to 4294967295; default 0).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Directory under OUT/depth.")] = None,
    config_file: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    out: OutOpt = Path("outputs"),
    as_json: JsonOpt = False,
):
    """Deep-network theory measured: depth scales, signal propagation, Jacobian spectra, trainability, LSUV."""
    figures = start_figures()
    from initopt import config
    from initopt.commands import depth as command
    from initopt.studies.depth import parse_values

    for value, option, bounds in ((sigma_w2, "--sigma-w2", {"above": 0}), (sigma_b2, "--sigma-b2", {"at_least": 0}),
                                  (width, "--width", {"at_least": 1, "at_most": 65536}),
                                  (n_layers, "--depth", {"at_least": 1, "at_most": 10_000}),
                                  (lr, "--lr", {"above": 0}),
                                  (threshold, "--threshold", {"at_least": 0, "at_most": 1}),
                                  (lsuv_tol, "--lsuv-tol", {"above": 0}), (lsuv_max_iter, "--lsuv-max-iter", {"at_least": 1}),
                                  (seed, "--seed", {"at_least": 0, "at_most": config.SEED_MAX})):
        config.check_number(value, option, **bounds)
    config.check_name(name)
    cfg = config.load(config_file, {
        "depth.act": act.value if act else None, "depth.sigma_w2": sigma_w2, "depth.sigma_b2": sigma_b2,
        "depth.inits": config.parse_list(init, "--init") if init is not None else None,
        "depth.width": width, "depth.depth": n_layers, "depth.phase": phase, "depth.quick": quick,
        "depth.jacobian_depths": (parse_values(jacobian_depths, "--jacobian-depths", integer=True)
                                  if jacobian_depths is not None else None),
        "depth.phase_sigma_w2": (parse_values(phase_sigma_w2, "--phase-sigma-w2")
                                 if phase_sigma_w2 is not None else None),
        "depth.phase_depths": (parse_values(phase_depths, "--phase-depths", integer=True)
                               if phase_depths is not None else None),
        "depth.steps": steps, "depth.lr": lr, "depth.threshold": threshold, "depth.lsuv_tol": lsuv_tol,
        "depth.lsuv_max_iter": lsuv_max_iter, "depth.seed": seed,
    })
    result = command.run(cfg.depth, data_dir, out, figures, name,
                         on_depth=lambda d: err_console.print(f"phase: depth {d} done", highlight=False))
    if as_json:
        return emit_json(result)
    out_console.print(tables.depth_table(result))
    if "phase" in result:
        p = result["phase"]
        out_console.print(f"Phase diagram: {p['agree_count']} of {p['n_cells']} cells ({p['agreement']:.0%}) agree: "
                          f"trained (training accuracy > {p['threshold']}) exactly when depth < 6 xi_c.")
    err_console.print(f"Wrote {result['run_dir']} ({result['seconds']:.1f} s)")


# ----------------------------------------------------------------------------- report
@app.command()
@handles_errors
def report(
    run_dirs: Annotated[Optional[list[Path]], typer.Argument(help="Run directories or folders holding them (default: OUT/train).")] = None,
    out: OutOpt = Path("outputs"),
    as_json: JsonOpt = False,
):
    """One table (terminal, Markdown, CSV) and one figure of finished training runs."""
    figures = start_figures()
    from initopt.output import io
    from initopt.output import report as rep

    root = Path(out) / "train"
    defaults = [d for d in (root, Path(out) / "tune") if d.exists()]
    paths = list(run_dirs) if run_dirs else defaults
    if not run_dirs and not defaults:
        raise fail(f"No training runs under {root}; run `initopt train` first or name run directories.")
    runs, damaged = rep.load_runs(rep.find_runs(paths), Path(out))
    for sentence in damaged:
        err_console.print(f"[bold yellow]Warning:[/] left out of the report: {sentence}", highlight=False,
                          soft_wrap=True)
    if not runs:
        raise fail(f"No finished training runs found in {', '.join(map(str, paths))}"
                   + (f" ({len(damaged)} damaged)." if damaged else "."))
    rows = [rep.row(r) for r in runs]
    report_dir = io.ensure_dir(Path(out) / "report")

    io.write_text(report_dir / "report.md", rep.markdown(rows))
    io.write_text(report_dir / "report.csv", rep.csv_text(rows))
    figures.draw(report_dir / "report.png", "report_figure", runs)
    io.remove_files(report_dir, "instruments.png")
    if any(r["metrics"].get("instruments") for r in runs):
        figures.draw(report_dir / "instruments.png", "instruments_side_by_side", runs)
    figures.wait()
    io.write_json(report_dir / "report.json", rows)
    if as_json:
        return emit_json({"runs": rows, "report_dir": str(report_dir)})
    out_console.print(tables.report_table(rows))
    err_console.print(f"Wrote {report_dir}")


# ----------------------------------------------------------------------------- surface
class Kind(str, enum.Enum):
    pathological = "pathological"
    steep = "steep"
    rosenbrock = "rosenbrock"
    beale = "beale"
    himmelblau = "himmelblau"
    rastrigin = "rastrigin"
    saddle = "saddle"


@app.command()
@handles_errors
def surface(
    kind: Annotated[Optional[Kind], typer.Option("--kind", help="The 2D loss surface (default: steep).")] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="Comma list of optimizers, or all (sgd, momentum, adam; the default).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="One learning rate for every optimizer (default: the surface's reference rates).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Updates per trajectory (1 to 100000; default 100).")] = None,
    start: Annotated[Optional[str], typer.Option("--start", help="Start point w1,w2 (default: the surface's).")] = None,
    starts: Annotated[Optional[int], typer.Option("--starts", help="Also run N random starts in the plot range (vmapped); report success rates (1 to 1000000).")] = None,
    tune: Annotated[Optional[bool], typer.Option("--tune", help="Try a grid of learning rates (x0.01 .. x10 the default) per optimizer, same step budget; report the best.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the random starts (0 to 4294967295; default 0).")] = None,
    beta: Annotated[Optional[float], typer.Option("--beta", help="Momentum coefficient (0 to 0.999999; default 0.9).")] = None,
    config_file: ConfigOpt = None,
    out: OutOpt = Path("outputs"),
    as_json: JsonOpt = False,
):
    """Run optimizers on a 2D loss surface; draw their trajectories; judge whether they reach a minimum."""
    figures = start_figures()
    from initopt import config
    from initopt.commands import surface as command
    from initopt.studies.surfaces import parse_start

    config.check_number(steps, "--steps", at_least=1, at_most=100_000)
    config.check_number(starts, "--starts", at_least=1, at_most=1_000_000)
    config.check_number(beta, "--beta", at_least=0, at_most=0.999999)
    config.check_number(seed, "--seed", at_least=0, at_most=config.SEED_MAX)
    cfg = config.load(config_file, {
        "surface.kind": kind.value if kind else None, "surface.lr": lr, "surface.steps": steps,
        "surface.optimizers": config.parse_list(optimizer, "--optimizer") if optimizer is not None else None,
        "surface.start": list(parse_start(start)) if start is not None else None, "surface.starts": starts,
        "surface.tune": tune, "surface.seed": seed, "surface.beta": beta,
    })
    result = command.run(cfg.surface, out, figures)
    if as_json:
        return emit_json(result)
    out_console.print(tables.surface_table(result))
    if "starts" in result:
        out_console.print(tables.starts_table(result))
    err_console.print(f"Wrote {result['run_dir']} ({result['seconds']:.1f} s)")


def main() -> None:
    """The console entry point: this app, run the way :func:`initopt.runtime.process.run` runs a command."""
    from initopt.runtime import process

    process.run(app)
