"""The ``initopt`` command line: options into a typed config, one call into :mod:`initopt.commands`,
the result printed, the exit code set.

Heavy imports (JAX, matplotlib) happen inside the commands so that ``--help`` answers at once.
Results go to stdout (tables, or JSON with ``--json``); progress and errors go to stderr.
"""

import enum
import functools
import inspect
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from initopt import commands, config
from initopt.output import tables
from initopt.runtime import env  # JAX's process-wide settings, decided here once per command (setup_jax)

app = typer.Typer(help="Experiments on weight initialization and optimizers: a deep MLP on Fashion-MNIST, "
                       "DeepOBS's CNNs, or your own network and data.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
out_console = Console()
if not out_console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    out_console = Console(width=160)
err_console = Console(stderr=True)


def _choices(name: str, values: str) -> type[enum.Enum]:
    return enum.Enum(name, {v: v for v in values.split()}, type=str)


# The registries' names, spelled here so that --help imports no JAX (a test checks them).
Init = _choices("Init", "constant normal equal_variance xavier xavier_normal kaiming kaiming_uniform lecun_normal "
                        "orthogonal lsuv truncated_normal default")
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


def option(name: str, help: str, path: bool = False):
    return typer.Option(name, help=help, **({"parser": path_value, "metavar": "<path>"} if path else {}))


# Options that several commands share, besides those of the config's keys.
DataDirOpt = Annotated[Optional[Path], option("--data-dir", "Directory with the dataset's files (or a folder "
                       "named after it). Default: $INITOPT_DATA_DIR, Debian's package (Fashion-MNIST), the cache.", path=True)]
OutOpt = Annotated[Path, option("--out", "Where run directories go.", path=True)]
ConfigOpt = Annotated[Optional[Path], option("--config", "A TOML file with this command's sections "
                      "(\\[model], \\[data], \\[train], \\[tune], \\[init_stats], \\[surface], \\[depth], "
                      "\\[optimizer.NAME]), or a run's own config.json; options override it.", path=True)]
JsonOpt = Annotated[bool, option("--json", "Print the result as JSON on stdout and nothing else there.")]
NameOpt = Annotated[Optional[str], option("--name", "The run's directory under OUT/COMMAND (default: from the options).")]
OverwriteOpt = Annotated[bool, option("--overwrite", "Run again even where a run finished.")]
QuietOpt = Annotated[bool, option("--quiet", "No progress output.")]

# A config key's option: named after the key ("depth.sigma_w2": --sigma-w2) but for these, typed and
# documented by its field (description, range, default), read by config.OPTION_PARSERS where it is text.
FLAGS = {"model.name": "--model", "model.args": "--model-arg", "tune.grid": "--lr-grid", "depth.inits": "--init", "train.optimizers": "--optimizer",
         "surface.optimizers": "--optimizer"}
CHOICES = {"model.act": Act, "depth.act": Act, "model.init": Init, "train.prng": Prng, "train.schedule": Schedule,
           "surface.kind": Kind}


def flag(key: str) -> str:
    return FLAGS.get(key, "--" + key.split(".")[1].replace("_", "-"))


def _key_option(key: str) -> inspect.Parameter:
    kind = list[str] if key in ("train.hyper", "model.args") else CHOICES.get(key, config.option_type(key))
    return inspect.Parameter(key.replace(".", "__"), inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[Optional[kind], option(flag(key), config.describe(key))])


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # [brackets] kept
    return typer.Exit(code)


def command(name: str | None = None, draws: int = 2, keys: str = ""):
    """A command: an option per config key of ``keys``, handed to it as ``overrides`` (in that order,
    parsed, None where not given); figure workers started first (matplotlib loads beside JAX), at
    most ``draws`` of them; the errors a user can cause end in one sentence and exit 1, Ctrl-C in
    130, SIGTERM while training (:func:`initopt.runtime.process.sigterm_as_interrupt`) in 143."""

    def wrap(fn):
        @app.command(name)
        @functools.wraps(fn)
        def run(*args, **kwargs):
            from initopt.errors import InitoptError
            from initopt.output import figures
            from initopt.runtime import process

            try:
                if keys:
                    values = {k: kwargs.pop(k.replace(".", "__")) for k in config.keys(keys)}
                    kwargs["overrides"] = {k: config.parse_option(k, getattr(v, "value", v), flag(k))
                                           for k, v in values.items()}
                return fn(figures.Figures(at_most=1 if kwargs.get("overrides", {}).get("init_stats.grid") else draws),
                          *args, **kwargs)
            except InitoptError as e:
                raise fail(str(e)) from None
            except KeyboardInterrupt as e:
                term = isinstance(e, process.Terminated)
                raise fail(f"{'Terminated (SIGTERM)' if term else 'Interrupted'}; run the same command again to "
                           "resume.", code=143 if term else 130) from None

        own = [p for p in inspect.signature(fn).parameters.values() if p.name not in ("figures", "overrides")]
        if keys:  # what Typer reads: the keys' options, then the command's own
            own = [*map(_key_option, config.keys(keys)), *(p.replace(kind=p.KEYWORD_ONLY) for p in own)]
        run.__signature__ = inspect.Signature(own)
        return run

    return wrap


def load(config_file: Optional[Path], overrides: dict):
    return commands.load(config_file, overrides, {k: flag(k) for k in overrides})


def show(command_name: str, result: dict, as_json: bool, wrote: str | None, as_object: dict | None = None) -> None:
    """The result on stdout (its tables, or JSON: ``as_object`` if given), then what was written on
    stderr; nothing in a multi-process run's secondary processes."""
    from initopt.output import io

    if out_console.quiet:
        return
    if as_json:
        return typer.echo(io.to_json(result if as_object is None else as_object))
    for item in tables.of(command_name, result):
        out_console.print(item)
    if wrote:
        err_console.print(wrote)


def _primary() -> bool:
    """Joins a multi-process run where one is configured; False (and stdout quiet) in its secondaries."""
    from initopt.engine import distributed

    out_console.quiet = distributed.initialize() != 0
    return not out_console.quiet


def trials_run(kind: str, cmd, cfg, config_file, overrides: dict, name, out: Path, data_dir, figures,
               overwrite: bool, quiet: bool) -> tuple[dict, Path]:
    """``train`` and ``tune``: the group directory (``--name``, else named by the options given), every
    process joined, progress on stderr, SIGTERM ends it as Ctrl-C does."""
    from initopt.output import io
    from initopt.output.progress import epoch_hooks
    from initopt.runtime import process
    from initopt.studies import experiment

    config.check_name(name)
    io.ensure_dir(Path(out))  # writable before any work; the run directories come once the plan is checked
    group_dir = Path(out) / kind / (name or experiment.group_name(config_file, overrides))
    primary = _primary()  # always: the process group is joined here
    hooks = epoch_hooks(err_console, quiet or not primary, cfg.train.epochs)
    with process.sigterm_as_interrupt():
        return cmd.run(cfg, group_dir, data_dir, figures, overwrite, hooks, env.setup_jax(cfg.train.prng)), group_dir


@command(draws=0, keys="data.dataset")
def data(figures, overrides: dict, data_dir: DataDirOpt = None, as_json: JsonOpt = False,
         download: Annotated[bool, option("--download", "Fetch the files into the cache with TFDS (sha256-checked).")] = False):
    """Show where a dataset comes from, its sizes, classes, checksum and pixel statistics."""
    from initopt.commands import data as cmd

    show("data", cmd.run(load(None, overrides), data_dir, download,
                         lambda title: err_console.print(f"Downloading {title} with TFDS ...")), as_json, None)


@command("init-stats", keys="model.name model.args model.init model.act model.scale init_stats.grid model.hidden train.seed "
                             "init_stats.seeds train.prng data.dataset data.val_size")
def init_stats(figures, overrides: dict, config_file: ConfigOpt = None, data_dir: DataDirOpt = None,
               out: OutOpt = Path("outputs"), as_json: JsonOpt = False):
    """Per-layer weight, activation and gradient statistics of an initialization at step 0."""
    from initopt.commands import init_stats as cmd

    cfg = load(config_file, overrides)
    m = cmd.run(cfg, data_dir, out, figures, env.setup_jax(cfg.train.prng))
    seconds = m.pop("seconds")
    show("init-stats", m, as_json, f"Wrote {m['run_dir']} ({seconds:.1f} s)")


@command(keys="model.name model.args train.optimizers train.lr train.schedule train.warmup_epochs train.hyper train.epochs "
              "train.batch_size model.act train.instruments model.hidden train.seed train.seeds train.prng "
              "data.dataset data.val_size train.tensorboard")
def train(
    figures, overrides: dict, config_file: ConfigOpt = None,
    init: Annotated[Optional[str], option("--init", "Kernel initializer (reference: kaiming), or a comma list to "
                                                   "compare on the same seeds: kaiming,xavier,normal:0.01.")] = None,
    name: NameOpt = None, overwrite: OverwriteOpt = False, quiet: QuietOpt = False, data_dir: DataDirOpt = None,
    out: OutOpt = Path("outputs"), as_json: JsonOpt = False,
):
    """Train a network (the MLP, 2c2d, 3c3d or yours) with any optimizer; keep the best-validation checkpoint; report test accuracy."""
    from initopt.commands import train as cmd
    from initopt.studies import experiment

    naming, comparing = config.init_options(init)
    overrides = {**overrides, **naming}  # in this order: the group's name lists the options given in it
    cfg = load(config_file, {**overrides, **comparing})
    result, group_dir = trials_run("train", cmd, cfg, config_file, overrides, name, out, data_dir, figures,
                                   overwrite, quiet)
    runs, paired = result["runs"], (result["comparison"] or {}).get("paired")
    quiet = quiet or out_console.quiet
    for label, m in runs.items():
        if m.get("skipped") and not quiet:
            err_console.print(f"{label}: already finished in {m['run_dir']} (use --overwrite to retrain).")
    show("train", {"runs": runs, "paired": paired}, as_json, f"Wrote {group_dir}",
         next(iter(runs.values())) if len(runs) == 1 else None)
    error, note = experiment.diverged_message(runs, group_dir)
    if note and not quiet:
        err_console.print(note, highlight=False)
    if error:
        raise fail(error, code=3)


@command(keys="model.name model.args model.init model.scale train.optimizers tune.grid tune.seeds tune.final_seeds tune.target train.epochs train.schedule "
              "train.warmup_epochs train.batch_size model.hidden train.seed data.dataset data.val_size "
              "train.tensorboard")
def tune(figures, overrides: dict, config_file: ConfigOpt = None, name: NameOpt = None,
         overwrite: OverwriteOpt = False, quiet: QuietOpt = False, data_dir: DataDirOpt = None,
         out: OutOpt = Path("outputs"), as_json: JsonOpt = False):
    """Tune each optimizer's learning rate on a grid over seeds (one program each), select on validation, compare."""
    from initopt.commands import tune as cmd
    from initopt.studies import tune as tune_lib

    cfg = load(config_file, overrides)
    cmd.grids(cfg)  # a bad grid is refused before any work
    result, tune_dir = trials_run("tune", cmd, cfg, config_file, overrides, name, out, data_dir, figures,
                                  overwrite, quiet)
    show("tune", result, as_json, f"Wrote {tune_dir}")
    for note in [] if as_json or out_console.quiet else tune_lib.notes(result):
        err_console.print(note, highlight=False)


@command(keys="depth model.name")
def depth(figures, overrides: dict, name: NameOpt = None, config_file: ConfigOpt = None, data_dir: DataDirOpt = None,
          out: OutOpt = Path("outputs"), as_json: JsonOpt = False):
    """Deep-network theory measured: depth scales, signal propagation, Jacobian spectra, trainability, LSUV."""
    from initopt.commands import depth as cmd

    cfg = load(config_file, overrides)
    cmd.check_model(cfg.model)
    primary = _primary()  # the phase grid's trials span every process's devices
    result = cmd.run(cfg.depth, data_dir, out, figures, name, on_depth=(
        lambda d: err_console.print(f"phase: depth {d} done", highlight=False)) if primary else None,
        jax_info=env.setup_jax("legacy"))
    show("depth", result, as_json, f"Wrote {result['run_dir']} ({result['seconds']:.1f} s)")


@command()
def report(
    figures,
    run_dirs: Annotated[Optional[list[Path]], typer.Argument(help="Run directories or folders holding them "
                                                                  "(default: OUT/train and OUT/tune).")] = None,
    out: OutOpt = Path("outputs"), as_json: JsonOpt = False,
    html: Annotated[bool, option("--html", "Also one self-contained page of it all: report.html.")] = False,
):
    """One table (terminal, Markdown, CSV) and one figure of finished training runs."""
    from initopt.commands import report as cmd

    result = cmd.run(run_dirs, out, figures, html)
    for sentence in result.pop("damaged"):
        err_console.print(f"[bold yellow]Warning:[/] left out of the report: {escape(sentence)}", highlight=False, soft_wrap=True)
    show("report", result, as_json, f"Wrote {result['report_dir']}")


@command(keys="surface")
def surface(figures, overrides: dict, config_file: ConfigOpt = None, out: OutOpt = Path("outputs"),
            as_json: JsonOpt = False):
    """Run optimizers on a 2D loss surface; draw their trajectories; judge whether they reach a minimum."""
    from initopt.commands import surface as cmd

    cfg = load(config_file, overrides).surface
    env.setup_jax(None)  # JAX's default PRNG: the surfaces predate the choice
    result = cmd.run(cfg, out, figures)
    show("surface", result, as_json, f"Wrote {result['run_dir']} ({result['seconds']:.1f} s)")


def main() -> None:
    """The console entry point: this app, run as :func:`initopt.runtime.process.run` runs a command."""
    from initopt.runtime import process

    process.run(app)
