import json

import pytest

from initopt import config
from initopt import data
from initopt.engine import loop, runner
from initopt.engine import plan as plan_lib
from initopt.errors import InitoptError
from initopt.runtime import env


def test_plan_has_every_lr_and_seed_and_the_schedule_in_steps():
    cfg = config.load(overrides={"train.epochs": 4, "train.batch_size": 100, "train.seeds": 2, "train.seed": 5,
                                 "train.schedule": "warmup_cosine", "train.warmup_epochs": 1, "train.beta": 0.8})
    plan = plan_lib.plan_for(cfg, "momentum", n_train=1050, lrs=[0.1, 0.2])
    assert [(t.lr, t.seed) for t in plan.trials] == [(0.1, 5), (0.1, 6), (0.2, 5), (0.2, 6)]
    assert plan.trials[0].values["beta"] == 0.8 and plan.trials[0].values["dampening"] == pytest.approx(0.2)
    assert (plan.schedule.total_steps, plan.schedule.warmup_steps) == (40, 10)  # 10 steps per epoch
    with pytest.raises(InitoptError, match="exceeds the 50 training examples"):
        plan_lib.plan_for(cfg, "momentum", n_train=50)


def test_resolved_config_names_what_defines_the_run():
    cfg = config.load(overrides={"train.seeds": 2})
    a = runner.resolved_config(cfg, plan_lib.plan_for(cfg, "adam", 1000))
    b = runner.resolved_config(cfg, plan_lib.plan_for(cfg, "adam", 1000, lrs=[0.01]))
    assert a["train"]["lr"] == 0.001 and a["train"]["optimizers"] == ["adam"] and "data_dir" not in a["data"]
    assert [t["seed"] for t in a["plan"]["trials"]] == [42, 43] and a != b
    json.dumps(a)  # plain JSON


def test_run_writes_metrics_last_and_skips_when_finished(tiny_data, tmp_path):
    env.set_prng("legacy")
    ds = data.load(tiny_data)
    splits, x = data.make_splits(ds), data.example_batch(ds)[0]
    cfg = config.load(overrides={"model.hidden": [16], "train.epochs": 2, "train.batch_size": 50})
    plan = plan_lib.plan_for(cfg, "sgd", len(splits.train_y))
    metrics = runner.run(cfg, plan, tmp_path / "r", splits, x, {"python": "x"})
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.json", "run.json", "metrics.json", runner.CHECKPOINT, runner.BEST_PARAMS} <= files
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "complete"
    assert metrics["best_epoch"] in (1, 2) and metrics["lr_per_epoch"] == pytest.approx([0.1, 0.1])
    again = runner.run(cfg, plan, tmp_path / "r", splits, x, {"python": "x"})
    assert again["skipped"] is True and again["trials"] == metrics["trials"]
    # The kept best parameters are the best epoch's.
    restored = runner.restore_progress(tmp_path / "r", loop.initial_progress(plan, x))
    assert restored.epoch == 2 and restored.history.best_epoch == [metrics["best_epoch"]]


def test_a_plan_walks_down_the_engine(tiny_splits, tmp_path):
    """The plan followed as data from where it enters the engine (runner.run): each call of a
    function that is handed the plan (or its model), module by module; a stop each time it enters
    a module, a return each time it enters one it had left. The plan's own properties and the
    comprehensions inside a function are not calls of another function."""
    import sys

    _, splits, x = tiny_splits
    cfg = config.load(overrides={"model.hidden": [16], "train.epochs": 2, "train.batch_size": 50})
    plan = plan_lib.plan_for(cfg, "sgd", len(splits.train_y))
    walk = []

    def visit(frame, event, arg):
        module, name = frame.f_globals.get("__name__", ""), frame.f_code.co_name
        if event != "call" or not module.startswith("initopt") or name.startswith("<"):
            return
        handed = [v for k, v in frame.f_locals.items() if k != "self"]
        if any(v is plan or v is plan.model for v in handed) and (not walk or walk[-1] != module):
            walk.append(module)

    sys.setprofile(visit)
    try:
        runner.run(cfg, plan, tmp_path / "r", splits, x, {})
    finally:
        sys.setprofile(None)
    returns = sum(module in walk[:i] for i, module in enumerate(walk))
    assert walk[0] == "initopt.engine.runner" and len(walk) <= 15 and returns <= 5, walk
