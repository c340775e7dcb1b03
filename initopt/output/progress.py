"""Training progress on stderr: a bar on a terminal, one line per epoch otherwise, nothing quiet.

The bar counts steps (every trial's, for trials trained in turn), so a long epoch moves it and
rich shows the steps done, their rate and the time left; a convolutional network's epoch reports
its steps as its programs end, a dense network's epoch (one program) when it ends."""

from __future__ import annotations

from typing import Callable

from initopt.engine.runner import Hooks


def _last_val(history) -> float:
    """The latest validation accuracy, the mean over trials."""
    return sum(v[-1] for v in history.val_scores) / len(history.val_scores)


def epoch_hooks(console, quiet: bool, n_epochs: int) -> Callable[..., Hooks]:
    """Per run: ``hooks(label, run_dir, plan)`` for :func:`initopt.engine.runner.run_labelled`."""

    def hooks(label: str, run_dir, plan) -> Hooks:
        if quiet:
            return Hooks()

        def resumed(epoch: int) -> None:
            console.print(f"{label}: resuming after epoch {epoch}.")

        if console.is_terminal:
            return _bar(console, label, n_epochs, plan, resumed)

        def line(p) -> None:
            h = p.history
            over = f" (mean over {len(h.val_scores)} trials)" if len(h.val_scores) > 1 else ""
            console.print(f"{label} epoch {p.epoch}/{n_epochs}: val acc {_last_val(h):.4f}{over}"
                          f" ({h.epoch_seconds[-1]:.2f} s)", highlight=False)

        return Hooks(on_epoch=line, on_resume=resumed)

    return hooks


def _bar(console, label: str, n_epochs: int, plan, resumed) -> Hooks:
    """A rich bar over the run's steps (every trial's): steps done, steps per second, time left,
    the epoch and the latest mean validation accuracy."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    per_epoch = plan.steps_per_epoch * plan.n_trials
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TextColumn("epoch {task.fields[epoch]}/%d  val {task.fields[val]}" % n_epochs),
                   TimeRemainingColumn(), console=console)
    task = bar.add_task(label, total=per_epoch * n_epochs, epoch=0, val="-", rate="")
    bar.start()

    def show_rate() -> None:
        speed = bar.tasks[task].speed
        bar.update(task, rate=f"{speed:.1f} steps/s" if speed else "")

    def advance(k: int) -> None:  # steps come a program at a time (a tenth of a second or more): shown at once
        bar.advance(task, k)
        show_rate()
        bar.refresh()

    def epoch_done(p) -> None:
        bar.update(task, completed=per_epoch * p.epoch, epoch=p.epoch, val=f"{_last_val(p.history):.4f}")
        show_rate()

    def on_resume(epoch: int) -> None:
        resumed(epoch)
        bar.reset(task, total=per_epoch * n_epochs, completed=per_epoch * epoch, epoch=epoch)

    return Hooks(on_epoch=epoch_done, on_steps=advance, on_resume=on_resume, on_done=bar.stop)
