"""Every schedule, step by step, against optax's own schedule with the peak given to optax."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from initopt.errors import ConfigError
from initopt.optim import hyperparams, optimizers
from initopt.optim.schedules import ScheduleSpec, optax_schedule

TOTAL, WARMUP, PEAK = 40, 8, 0.3

ORACLES = {  # built here from optax, independently of initopt.optim.schedules
    ("constant", None): optax.constant_schedule(PEAK),
    ("constant", WARMUP): optax.warmup_constant_schedule(0.0, PEAK, WARMUP),
    ("warmup_cosine", WARMUP): optax.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, TOTAL, end_value=0.0),
    ("onecycle", None): optax.cosine_onecycle_schedule(TOTAL, PEAK, pct_start=0.3),
    ("onecycle", WARMUP): optax.cosine_onecycle_schedule(TOTAL, PEAK, pct_start=WARMUP / TOTAL),
    ("step", None): optax.piecewise_constant_schedule(PEAK, {20: 0.1, 30: 0.1}),
}


@pytest.mark.parametrize("name, warmup", list(ORACLES))
def test_injected_learning_rate_equals_optax_schedule(name, warmup):
    """The rate each update of an injected SGD uses, read back from its update, against optax."""
    spec = ScheduleSpec(name, TOTAL, warmup)
    tx = hyperparams.inject(optimizers.sgd, optax_schedule(spec), {"learning_rate": PEAK})
    params = {"w": jnp.zeros(1)}
    state = tx.init(params)
    rates = []
    for _ in range(TOTAL):
        updates, state = tx.update({"w": jnp.ones(1)}, state, params)  # sgd: update = -lr * 1
        rates.append(-float(updates["w"][0]))
        assert float(state.learning_rate) == pytest.approx(rates[-1], rel=1e-6)
    expected = [float(ORACLES[name, warmup](i)) for i in range(TOTAL)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-9)


def test_step_schedule_with_warmup():
    spec = ScheduleSpec("step", TOTAL, WARMUP)
    lr = optax_schedule(spec, PEAK)
    assert float(lr(0)) == 0.0 and float(lr(WARMUP)) == pytest.approx(PEAK)
    assert float(lr(25)) == pytest.approx(PEAK * 0.1) and float(lr(35)) == pytest.approx(PEAK * 0.01)


def test_bad_schedules():
    with pytest.raises(ConfigError, match="Unknown schedule"):
        ScheduleSpec("cosine", 10)
    with pytest.raises(ConfigError, match="must be shorter than training"):
        ScheduleSpec("warmup_cosine", 10, 10)
