"""Training progress on stderr as a user sees it: rich's bar on a terminal, a line per epoch in a log."""

from __future__ import annotations

import io
import types

from rich.console import Console

from initopt.engine.loop import History
from initopt.output import progress


def fake_run(n_trials: int, steps_per_epoch: int):
    plan = types.SimpleNamespace(n_trials=n_trials, steps_per_epoch=steps_per_epoch)
    history = History.empty(n_trials)
    return plan, types.SimpleNamespace(epoch=0, history=history)


def end_epoch(p, val: float, seconds: float = 0.5) -> None:
    p.epoch += 1
    for scores in p.history.val_scores:
        scores.append(val)
    p.history.epoch_seconds.append(seconds)


def test_a_terminal_bar_moves_within_an_epoch():
    """Steps done (every trial's), their rate and the time left show before the first epoch ends."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    plan, p = fake_run(n_trials=2, steps_per_epoch=10)
    hooks = progress.epoch_hooks(console, quiet=False, n_epochs=3)("adam", None, plan)
    for _ in range(3):
        hooks.on_steps(4)
    within = out.getvalue()
    assert "12/60" in within and "steps/s" in within and "epoch 0/3" in within  # 3 programs of 4 steps, of 2 x 10 x 3
    hooks.on_epoch(end_epoch(p, 0.8125) or p)
    hooks.on_done()
    assert "20/60" in out.getvalue() and "epoch 1/3" in out.getvalue() and "val 0.8125" in out.getvalue()


def test_a_log_gets_a_line_per_epoch_and_quiet_gets_nothing():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    plan, p = fake_run(n_trials=2, steps_per_epoch=10)
    hooks = progress.epoch_hooks(console, quiet=False, n_epochs=3)("adam", None, plan)
    assert hooks.on_steps is None  # within an epoch a log stays quiet
    hooks.on_epoch(end_epoch(p, 0.75) or p)
    assert out.getvalue() == "adam epoch 1/3: val acc 0.7500 (mean over 2 trials) (0.50 s)\n"
    quiet = progress.epoch_hooks(console, quiet=True, n_epochs=3)("adam", None, plan)
    assert (quiet.on_epoch, quiet.on_steps, quiet.on_resume, quiet.on_done) == (None, None, None, None)
