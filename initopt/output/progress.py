"""Training progress on stderr: a bar on a terminal, one line per epoch otherwise, nothing quiet."""

from __future__ import annotations

from typing import Callable


def _last_val(history) -> float:
    """The latest validation accuracy, the mean over trials."""
    return sum(v[-1] for v in history.val_scores) / len(history.val_scores)


def epoch_hooks(console, quiet: bool, n_epochs: int) -> Callable[[str], tuple]:
    """Per run label: ``(on_epoch, on_resume, on_done)`` for :func:`initopt.engine.runner.run_labelled`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    def hooks(label: str):
        if quiet:
            return None, None, None

        def resumed(epoch: int) -> None:
            console.print(f"{label}: resuming after epoch {epoch}.")

        if console.is_terminal:
            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("val {task.fields[val]}"), TimeRemainingColumn(), console=console)
            task = bar.add_task(label, total=n_epochs, val="-")
            bar.start()
            return lambda p: bar.update(task, completed=p.epoch, val=f"{_last_val(p.history):.4f}"), resumed, bar.stop

        def line(p) -> None:
            h = p.history
            over = f" (mean over {len(h.val_scores)} trials)" if len(h.val_scores) > 1 else ""
            console.print(f"{label} epoch {p.epoch}/{n_epochs}: val acc {_last_val(h):.4f}{over}"
                          f" ({h.epoch_seconds[-1]:.2f} s)", highlight=False)

        return line, resumed, None

    return hooks
