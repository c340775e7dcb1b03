"""The ``initopt`` command line: options into a typed config, one call into :mod:`initopt.commands`,
the result printed, the exit code set.

Heavy imports (JAX, matplotlib) happen inside the commands so that ``--help`` answers at once.
Results go to stdout (a table, or JSON with ``--json``); progress and errors go to stderr.
"""

import enum
import functools
import inspect
import os
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


def _choices(name: str, values: str) -> type[enum.Enum]:
    return enum.Enum(name, {v: v for v in values.split()}, type=str)


# The registries' names, spelled here so that --help imports no JAX (a test checks them).
Init = _choices("Init", "constant normal equal_variance xavier xavier_normal kaiming kaiming_uniform lecun_normal "
                        "orthogonal lsuv")
Act = _choices("Act", "identity tanh relu leaky_relu gelu silu sigmoid")
Prng = _choices("Prng", "legacy modern")
Schedule = _choices("Schedule", "constant warmup_cosine onecycle step")
Kind = _choices("Kind", "pathological steep rosenbrock beale himmelblau rastrigin saddle")


def path_value(value: "str | os.PathLike[str]") -> Path:
    """A path option's value: the text typed, or (Typer 0.29 and later) the option's default
    ``Path``. An empty one (``--out "$UNSET"``) is refused: as a Path it would be '.', and the
    command would read or write the current directory."""
    text = os.fspath(value)
    if not text.strip():
        raise typer.BadParameter("an empty path; give a file or directory.")
    return Path(text)


def option(name: str, help: str, **kwargs):
    return typer.Option(name, help=help, **kwargs)


def path_option(name: str, help: str):
    return typer.Option(name, parser=path_value, metavar="<path>", help=help)


# Options that several commands share, declared once.
DataDirOpt = Annotated[Optional[Path], path_option("--data-dir", "Directory with the four Fashion-MNIST IDX files "
                       "(.gz or plain). Default: $INITOPT_DATA_DIR, /usr/share/datasets/fashion-mnist, the cache.")]
OutOpt = Annotated[Path, path_option("--out", "Where run directories go.")]
ConfigOpt = Annotated[Optional[Path], path_option("--config", "A TOML file with this command's sections "
                      "(\\[model], \\[data], \\[train], \\[tune], \\[init_stats], \\[surface], \\[depth], "
                      "\\[optimizer.NAME]), or a run's own config.json; options override it.")]
JsonOpt = Annotated[bool, option("--json", "Print the result as JSON on stdout and nothing else there.")]
HiddenOpt = Annotated[Optional[str], option("--hidden", "Hidden sizes, e.g. 512,256,256,128 or DEPTHxWIDTH like 8x256.")]
ActOpt = Annotated[Optional[Act], option("--act", "Activation (default: relu; depth: tanh).")]
PrngOpt = Annotated[Optional[Prng], option("--prng", "legacy (default) reproduces the published numbers bit for bit; "
                                                     "modern is JAX's default.")]
OptimizerOpt = Annotated[Optional[str], option("--optimizer", "A comma list of: sgd, momentum, adam, nesterov, "
                         "rmsprop, adamw, adagrad; all (the reference three); optax:NAME (any optax alias with a "
                         "learning_rate); module:factory or file.py:factory (your own factory(learning_rate, **hp)).")]
LrOpt = Annotated[Optional[float], option("--lr", "Learning rate (default: the reference rate).")]
EpochsOpt = Annotated[Optional[int], option("--epochs", "Epochs (reference: 40).")]
BatchOpt = Annotated[Optional[int], option("--batch-size", "Batch size (reference: 256).")]
ScheduleOpt = Annotated[Optional[Schedule], option("--schedule", "Learning-rate schedule (optax's); the rate is its peak.")]
WarmupOpt = Annotated[Optional[int], option("--warmup-epochs", "Epochs of linear warm-up (onecycle: its rising part).")]
SeedOpt = Annotated[Optional[int], option("--seed", "The first seed (init key and batch order; the split stays fixed).")]
SeedsOpt = Annotated[Optional[int], option("--seeds", "Seeds SEED..SEED+N-1, as one program; mean and 95% CI.")]
NameOpt = Annotated[Optional[str], option("--name", "The run's directory under OUT/COMMAND (default: from the options).")]
OverwriteOpt = Annotated[bool, option("--overwrite", "Run again even where a run finished.")]
QuietOpt = Annotated[bool, option("--quiet", "No progress output.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def command(name: str | None = None, draws: int = 2):
    """A command: figure workers started first (matplotlib loads beside JAX), at most ``draws`` of
    them; the errors a user can cause end in one sentence and exit 1, Ctrl-C in 130, SIGTERM while
    training (:func:`initopt.runtime.process.sigterm_as_interrupt`) in 143."""

    def wrap(fn):
        @app.command(name)
        @functools.wraps(fn)
        def run(*args, **kwargs):
            from initopt.errors import InitoptError
            from initopt.output import figures
            from initopt.runtime import process

            try:
                return fn(figures.Figures(at_most=1 if kwargs.get("grid") else draws), *args, **kwargs)
            except InitoptError as e:
                raise fail(str(e)) from None
            except KeyboardInterrupt as e:
                term = isinstance(e, process.Terminated)
                raise fail(f"{'Terminated (SIGTERM)' if term else 'Interrupted'}; run the same command again to "
                           "resume.", code=143 if term else 130) from None

        signature = inspect.signature(fn)  # what Typer reads: the options, without ``figures``
        run.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
        return run

    return wrap


def emit_json(obj) -> None:
    from initopt.output import io

    typer.echo(io.to_json(obj))


def given(value, parse):
    """``parse(value)`` for an option that was given (an empty text included), None otherwise."""
    return None if value is None else parse(value)


def load(config_file: Optional[Path], overrides: dict):
    from initopt import config

    return config.load(config_file, overrides)


@command(draws=0)
def data(figures, data_dir: DataDirOpt = None, as_json: JsonOpt = False,
         download: Annotated[bool, option("--download", "Fetch the files into the cache with TFDS (sha256-checked).")] = False):
    """Show where the Fashion-MNIST data comes from, its sizes, checksum and pixel statistics."""
    from initopt.data import fashion_mnist as data_lib

    if download:
        err_console.print("Downloading Fashion-MNIST with TFDS ...")
        data_lib.fetch()
    summary = data_lib.load(data_dir, download=False).summary()
    emit_json(summary) if as_json else out_console.print(tables.data_table(summary))


@command("init-stats")
def init_stats(
    figures,
    init: Annotated[Optional[Init], option("--init", "Initializer of the kernels (default: kaiming).")] = None,
    act: ActOpt = None,
    scale: Annotated[Optional[float], option("--scale", "constant: the value (0.005); normal: the std (0.01); "
                                                        "orthogonal: the gain (1).")] = None,
    grid: Annotated[Optional[bool], option("--grid", "The reference grid: 6 inits x identity/tanh/relu in one go.")] = None,
    hidden: HiddenOpt = None,
    seed: Annotated[Optional[int], option("--seed", "PRNGKey of model.init (default: 42).")] = None,
    n_seeds: Annotated[Optional[int], option("--seeds", "Initialisations SEED..SEED+N-1: mean and spread of every "
                                                        "per-layer variance (1 to 10000).")] = None,
    prng: PrngOpt = None, config_file: ConfigOpt = None, data_dir: DataDirOpt = None, out: OutOpt = Path("outputs"),
    as_json: JsonOpt = False,
):
    """Per-layer weight, activation and gradient statistics of an initialization at step 0."""
    from initopt import config
    from initopt.commands import init_stats as cmd

    config.check_number(n_seeds, "--seeds", at_least=1, at_most=10_000)
    cfg = load(config_file, {
        "model.init": init and init.value, "model.act": act and act.value, "model.scale": scale,
        "model.hidden": given(hidden, lambda h: list(config.parse_hidden(h))), "train.prng": prng and prng.value,
        "train.seed": seed, "init_stats.grid": grid, "init_stats.seeds": n_seeds,
    })
    m = cmd.run(cfg, data_dir, out, figures)
    if as_json:
        return emit_json({k: v for k, v in m.items() if k != "seconds"})
    if cfg.init_stats.grid:
        out_console.print(tables.grid_table(m["cells"]))
    else:
        out_console.print(tables.stats_table(m))
        if cfg.init_stats.seeds > 1:
            out_console.print(tables.seeds_table(m, cfg.train.seed, cfg.init_stats.seeds))
    err_console.print(f"Wrote {m['run_dir']} ({m['seconds']:.1f} s)")


def _progress(quiet: bool, n_epochs: int):
    from initopt.output.progress import epoch_hooks

    return epoch_hooks(err_console, quiet, n_epochs)


def _primary() -> bool:
    """Joins a multi-process run where one is configured; False in its secondary processes."""
    from initopt.engine import distributed

    if distributed.initialize() == 0:
        return True
    out_console.quiet = True
    return False


@command()
def train(
    figures, optimizer: OptimizerOpt = None, config_file: ConfigOpt = None, lr: LrOpt = None,
    schedule: ScheduleOpt = None, warmup_epochs: WarmupOpt = None,
    hyper: Annotated[Optional[list[str]], option("--hyper", "A hyperparameter of the optimizers, key=value "
                                                            "(repeatable), e.g. --hyper b1=0.95.")] = None,
    epochs: EpochsOpt = None, batch_size: BatchOpt = None,
    init: Annotated[Optional[str], option("--init", "Kernel initializer (reference: kaiming), or a comma list to "
                                                   "compare on the same seeds: kaiming,xavier,normal:0.01.")] = None,
    instruments: Annotated[Optional[str], option("--instruments", "Per-layer instruments inside the compiled "
                           "epoch: off, epoch (one record per epoch) or N records per epoch (default 4).")] = None,
    act: ActOpt = None, hidden: HiddenOpt = None, seed: SeedOpt = None, n_seeds: SeedsOpt = None, prng: PrngOpt = None,
    name: NameOpt = None, overwrite: OverwriteOpt = False, quiet: QuietOpt = False, data_dir: DataDirOpt = None,
    out: OutOpt = Path("outputs"), as_json: JsonOpt = False,
):
    """Train the MLP with any optimizer; keep the best-validation checkpoint; report test accuracy."""
    from initopt import config
    from initopt.commands import train as cmd
    from initopt.engine import instruments as instruments_lib
    from initopt.output import io
    from initopt.runtime import process
    from initopt.studies import experiment

    config.check_name(name)
    inits = config.parse_inits(init) if init is not None else []
    overrides = {  # in this order: the group's name lists the options given in it
        "train.optimizers": given(optimizer, lambda o: config.parse_list(o, "--optimizer")), "train.lr": lr,
        "train.schedule": schedule and schedule.value, "train.warmup_epochs": warmup_epochs,
        "train.hyper": config.parse_hyper(hyper), "train.epochs": epochs, "train.batch_size": batch_size,
        "model.act": act and act.value, "train.instruments": given(instruments, instruments_lib.parse),
        "model.hidden": given(hidden, lambda h: list(config.parse_hidden(h))), "train.seed": seed, "train.seeds": n_seeds,
        "train.prng": prng and prng.value,
    }
    if len(inits) == 1:
        overrides["model.init"], overrides["model.scale"] = inits[0]
    elif inits:
        overrides["model.init"] = init  # names the group; each arm sets its own
    several = {"model.init": None, "train.inits": [experiment.init_label(*i) for i in inits]} if len(inits) > 1 else {}
    cfg = load(config_file, {**overrides, **several})
    io.ensure_dir(Path(out))  # writable before any work; the run directories come once the plan is checked
    group_dir = Path(out) / "train" / (name or experiment.group_name(config_file, overrides))
    primary = _primary()
    quiet, as_json = quiet or not primary, as_json and primary
    with process.sigterm_as_interrupt():
        result = cmd.run(cfg, group_dir, data_dir, figures, overwrite, _progress(quiet, cfg.train.epochs))
    runs, comp = result["runs"], result["comparison"]
    paired = comp["paired"] if comp else None
    for label, m in runs.items():
        if m.get("skipped") and not quiet:
            err_console.print(f"{label}: already finished in {m['run_dir']} (use --overwrite to retrain).")
    if as_json:
        emit_json(next(iter(runs.values())) if len(runs) == 1 else {"runs": runs, "paired": paired})
    else:
        out_console.print(tables.results_table(runs))
        if paired:
            out_console.print(tables.paired_table(paired))
        err_console.print(f"Wrote {group_dir}")
    error, note = experiment.diverged_message(runs, group_dir)
    if note and not quiet:
        err_console.print(note, highlight=False)
    if error:
        raise fail(error, code=3)


@command()
def tune(
    figures, optimizer: OptimizerOpt = None, config_file: ConfigOpt = None,
    lr_grid: Annotated[Optional[str], option("--lr-grid", "LO:HI:K (K log-spaced rates) or a comma list, for every "
                       "optimizer (default: 7 rates from 0.01x to 10x each optimizer's reference rate).")] = None,
    n_seeds: Annotated[Optional[int], option("--seeds", "Tuning seeds per learning rate (default 3).")] = None,
    final_seeds: Annotated[Optional[int], option("--final-seeds", "Fresh seeds trained at each selected rate for the "
                           "test accuracies and paired differences (default 0: the tuning seeds', optimistic).")] = None,
    target: Annotated[Optional[float], option("--target", "Validation accuracy in (0, 1): report each trial's "
                                                           "epochs and seconds to reach it.")] = None,
    epochs: EpochsOpt = None, schedule: ScheduleOpt = None, warmup_epochs: WarmupOpt = None,
    batch_size: BatchOpt = None, hidden: HiddenOpt = None, seed: SeedOpt = None, name: NameOpt = None,
    overwrite: OverwriteOpt = False, quiet: QuietOpt = False, data_dir: DataDirOpt = None,
    out: OutOpt = Path("outputs"), as_json: JsonOpt = False,
):
    """Tune each optimizer's learning rate on a grid over seeds (one program each), select on validation, compare."""
    from initopt import config
    from initopt.commands import tune as cmd
    from initopt.output import io
    from initopt.runtime import process
    from initopt.studies import experiment
    from initopt.studies import tune as tune_lib

    config.check_name(name)
    overrides = {  # in this order: the directory's name lists the options given in it
        "train.optimizers": given(optimizer, lambda o: config.parse_list(o, "--optimizer")), "tune.grid": lr_grid,
        "tune.seeds": n_seeds, "tune.final_seeds": final_seeds, "tune.target": target, "train.epochs": epochs,
        "train.schedule": schedule and schedule.value, "train.warmup_epochs": warmup_epochs,
        "train.batch_size": batch_size, "model.hidden": given(hidden, lambda h: list(config.parse_hidden(h))),
        "train.seed": seed,
    }
    cfg = load(config_file, overrides)
    cmd.grids(cfg)  # a bad grid is refused before any work
    io.ensure_dir(Path(out))
    tune_dir = Path(out) / "tune" / (name or experiment.group_name(config_file, overrides))
    primary = _primary()
    quiet, as_json = quiet or not primary, as_json and primary
    with process.sigterm_as_interrupt():
        result = cmd.run(cfg, tune_dir, data_dir, figures, overwrite, _progress(quiet, cfg.train.epochs))
    if as_json:
        return emit_json(result)
    out_console.print(tables.tune_table(result))
    if result["paired"]:
        out_console.print(tables.paired_table(result["paired"]))
    for note in tune_lib.notes(result):
        err_console.print(note, highlight=False)
    err_console.print(f"Wrote {tune_dir}")


@command()
def depth(
    figures, act: Annotated[Optional[Act], option("--act", "Activation (default: tanh).")] = None,
    init: Annotated[Optional[str], option("--init", "Comma list: gaussian (normal; the default), orthogonal, lsuv "
                    "(with --sigma-w2), or kaiming, xavier, lecun_normal, equal_variance (their own sigma_w^2).")] = None,
    sigma_w2: Annotated[Optional[float], option("--sigma-w2", "Weight variance times fan-in (above 0; default 1.76).")] = None,
    sigma_b2: Annotated[Optional[float], option("--sigma-b2", "Bias variance (at least 0; default 0.05).")] = None,
    width: Annotated[Optional[int], option("--width", "Hidden width (1 to 65536; default 256).")] = None,
    n_layers: Annotated[Optional[int], option("--depth", "Layers of the measured network (1 to 10000; default 64).")] = None,
    jacobian_depths: Annotated[Optional[str], option("--jacobian-depths", "Depths of the Jacobian's spectrum "
                                                                          "(default 4,16,64).")] = None,
    phase: Annotated[Optional[bool], option("--phase", "Also train the (sigma_w^2, depth) grid: the trainability "
                                                       "phase diagram.")] = None,
    quick: Annotated[Optional[bool], option("--quick", "A small phase grid for tests (well under a minute).")] = None,
    phase_sigma_w2: Annotated[Optional[str], option("--phase-sigma-w2", "sigma_w^2 values, LO:HI:K or a list "
                                                                        "(default 1:4:16).")] = None,
    phase_depths: Annotated[Optional[str], option("--phase-depths", "Depths, LO:HI:K or a list (default 5:60:12).")] = None,
    steps: Annotated[Optional[int], option("--steps", "SGD steps per phase cell (default 300; at most 1562, one pass "
                                                      "over the training split).")] = None,
    lr: Annotated[Optional[float], option("--lr", "SGD learning rate of the phase cells (default 0.01).")] = None,
    threshold: Annotated[Optional[float], option("--threshold", "Training accuracy above which a cell counts as "
                                                                "trained (0 to 1; default 0.5).")] = None,
    lsuv_tol: Annotated[Optional[float], option("--lsuv-tol", "LSUV: stop when |Var - 1| is below this (default 0.1).")] = None,
    lsuv_max_iter: Annotated[Optional[int], option("--lsuv-max-iter", "LSUV: at most this many rescalings per layer "
                                                                      "(default 10).")] = None,
    seed: Annotated[Optional[int], option("--seed", "PRNG seed of the weights (default 0).")] = None,
    name: NameOpt = None, config_file: ConfigOpt = None, data_dir: DataDirOpt = None, out: OutOpt = Path("outputs"),
    as_json: JsonOpt = False,
):
    """Deep-network theory measured: depth scales, signal propagation, Jacobian spectra, trainability, LSUV."""
    from initopt import config
    from initopt.commands import depth as cmd
    from initopt.studies.depth import parse_values

    for value, flag, bounds in ((sigma_w2, "--sigma-w2", {"above": 0}), (sigma_b2, "--sigma-b2", {"at_least": 0}),
                                (width, "--width", {"at_least": 1, "at_most": 65536}),
                                (n_layers, "--depth", {"at_least": 1, "at_most": 10_000}), (lr, "--lr", {"above": 0}),
                                (threshold, "--threshold", {"at_least": 0, "at_most": 1}),
                                (lsuv_tol, "--lsuv-tol", {"above": 0}), (lsuv_max_iter, "--lsuv-max-iter", {"at_least": 1}),
                                (seed, "--seed", {"at_least": 0, "at_most": config.SEED_MAX})):
        config.check_number(value, flag, **bounds)
    config.check_name(name)

    def values(text, flag, integer=False):
        return given(text, lambda t: parse_values(t, flag, integer=integer))

    cfg = load(config_file, {
        "depth.act": act and act.value, "depth.inits": given(init, lambda i: config.parse_list(i, "--init")),
        "depth.sigma_w2": sigma_w2, "depth.sigma_b2": sigma_b2, "depth.width": width, "depth.depth": n_layers,
        "depth.jacobian_depths": values(jacobian_depths, "--jacobian-depths", True), "depth.phase": phase,
        "depth.quick": quick, "depth.phase_sigma_w2": values(phase_sigma_w2, "--phase-sigma-w2"),
        "depth.phase_depths": values(phase_depths, "--phase-depths", True), "depth.steps": steps, "depth.lr": lr,
        "depth.threshold": threshold, "depth.lsuv_tol": lsuv_tol, "depth.lsuv_max_iter": lsuv_max_iter,
        "depth.seed": seed,
    })
    primary = _primary()  # the phase grid's trials span every process's devices
    as_json = as_json and primary
    result = cmd.run(cfg.depth, data_dir, out, figures, name, on_depth=(
        lambda d: err_console.print(f"phase: depth {d} done", highlight=False)) if primary else None)
    if not primary:
        return
    if as_json:
        return emit_json(result)
    out_console.print(tables.depth_table(result))
    if "phase" in result:
        p = result["phase"]
        out_console.print(f"Phase diagram: {p['agree_count']} of {p['n_cells']} cells ({p['agreement']:.0%}) agree: "
                          f"trained (training accuracy > {p['threshold']}) exactly when depth < 6 xi_c.")
    err_console.print(f"Wrote {result['run_dir']} ({result['seconds']:.1f} s)")


@command()
def report(
    figures,
    run_dirs: Annotated[Optional[list[Path]], typer.Argument(help="Run directories or folders holding them "
                                                                  "(default: OUT/train and OUT/tune).")] = None,
    out: OutOpt = Path("outputs"), as_json: JsonOpt = False,
):
    """One table (terminal, Markdown, CSV) and one figure of finished training runs."""
    from initopt.commands import report as cmd

    result = cmd.run(run_dirs, out, figures)
    for sentence in result.pop("damaged"):
        err_console.print(f"[bold yellow]Warning:[/] left out of the report: {sentence}", highlight=False,
                          soft_wrap=True)
    if as_json:
        return emit_json(result)
    out_console.print(tables.report_table(result["runs"]))
    err_console.print(f"Wrote {result['report_dir']}")


@command()
def surface(
    figures, kind: Annotated[Optional[Kind], option("--kind", "The 2D loss surface (default: steep).")] = None,
    optimizer: Annotated[Optional[str], option("--optimizer", "Comma list of optimizers, or all (sgd, momentum, adam; "
                                                              "the default).")] = None,
    lr: Annotated[Optional[float], option("--lr", "One learning rate for every optimizer (default: the surface's "
                                                  "reference rates).")] = None,
    steps: Annotated[Optional[int], option("--steps", "Updates per trajectory (1 to 100000; default 100).")] = None,
    start: Annotated[Optional[str], option("--start", "Start point w1,w2 (default: the surface's).")] = None,
    starts: Annotated[Optional[int], option("--starts", "Also run N random starts in the plot range (vmapped); report "
                                                        "success rates (1 to 1000000).")] = None,
    tune: Annotated[Optional[bool], option("--tune", "Try a grid of learning rates (x0.01 .. x10 the default) per "
                                                     "optimizer, same step budget; report the best.")] = None,
    seed: Annotated[Optional[int], option("--seed", "Seed of the random starts (default 0).")] = None,
    beta: Annotated[Optional[float], option("--beta", "Momentum coefficient (0 to 0.999999; default 0.9).")] = None,
    config_file: ConfigOpt = None, out: OutOpt = Path("outputs"), as_json: JsonOpt = False,
):
    """Run optimizers on a 2D loss surface; draw their trajectories; judge whether they reach a minimum."""
    from initopt import config
    from initopt.commands import surface as cmd
    from initopt.studies.surfaces import parse_start

    for value, flag, low, high in ((steps, "--steps", 1, 100_000), (starts, "--starts", 1, 1_000_000),
                                   (beta, "--beta", 0, 0.999999), (seed, "--seed", 0, config.SEED_MAX)):
        config.check_number(value, flag, at_least=low, at_most=high)
    cfg = load(config_file, {
        "surface.kind": kind and kind.value, "surface.lr": lr, "surface.steps": steps,
        "surface.optimizers": given(optimizer, lambda o: config.parse_list(o, "--optimizer")),
        "surface.start": given(start, lambda s: list(parse_start(s))), "surface.starts": starts, "surface.tune": tune,
        "surface.seed": seed, "surface.beta": beta,
    })
    result = cmd.run(cfg.surface, out, figures)
    if as_json:
        return emit_json(result)
    out_console.print(tables.surface_table(result))
    if "starts" in result:
        out_console.print(tables.starts_table(result))
    err_console.print(f"Wrote {result['run_dir']} ({result['seconds']:.1f} s)")


def main() -> None:
    """The console entry point: this app, run as :func:`initopt.runtime.process.run` runs a command."""
    from initopt.runtime import process

    process.run(app)
