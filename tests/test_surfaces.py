import jax
import jax.numpy as jnp
import numpy as np
import pytest

from initopt.studies import surfaces as S


@pytest.mark.parametrize("name", [n for n in S.SURFACES if n != "pathological"])
def test_known_minima_have_the_stated_value_and_zero_gradient(name):
    surf = S.SURFACES[name]
    for m in surf.minima:
        w = jnp.asarray(m, jnp.float32)
        np.testing.assert_allclose(float(surf.fn(w)), surf.min_value, atol=1e-4)
        np.testing.assert_allclose(np.asarray(jax.grad(surf.fn)(w)), 0.0, atol=2e-3)
        # and it is a minimum: nearby points are higher
        for d in ((0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05)):
            assert float(surf.fn(w + jnp.asarray(d))) > float(surf.fn(w))


def test_pathological_ravine_floor():
    surf = S.SURFACES["pathological"]
    for w2 in (-4.0, 0.0, 3.0):
        left = np.asarray(jax.grad(surf.fn)(jnp.asarray([-1e-3, w2])))
        right = np.asarray(jax.grad(surf.fn)(jnp.asarray([1e-3, w2])))
        assert left[0] < 0 < right[0]  # w1 = 0 is the floor: the w1-gradient changes sign there
        assert left[1] > 0  # and the floor keeps descending towards w2 -> -inf
    np.testing.assert_allclose(float(surf.fn(jnp.asarray(surf.minima[0]))), surf.min_value, rtol=1e-5)
    assert float(surf.fn(jnp.asarray([0.5, -5.0]))) > surf.min_value


def test_steep_is_minus_three_gaussian_densities():
    w = jnp.asarray([0.3, -0.1])
    expected = -sum(np.exp(-((0.3 - mx) ** 2 + (-0.1 - my) ** 2) / (2 * 0.04)) / (2 * np.pi * 0.04)
                    for mx, my in S.STEEP_CENTRES)
    np.testing.assert_allclose(float(S.steep(w)), expected, rtol=1e-5)


def run(name, opt):
    surf = S.SURFACES[name]
    ((rows, w, loss),) = S.trajectories(name, (opt,), np.float32([S.default_lr(surf, opt)]), 0.9,
                                        np.float32(surf.start), 100)
    return np.asarray(rows), S.verdict(surf, w, loss)


def test_one_program_for_every_optimizer_gives_each_lone_run():
    surf = S.SURFACES["himmelblau"]
    opts = ("sgd", "momentum", "adam", "nesterov")
    lrs = np.float32([S.default_lr(surf, o) for o in opts])
    together = S.trajectories("himmelblau", opts, lrs, 0.8, np.float32(surf.start), 60)
    assert len(together) == len(opts)
    for i, opt in enumerate(opts):
        (alone,) = S.trajectories("himmelblau", (opt,), lrs[i:i + 1], 0.8, np.float32(surf.start), 60)
        for a, b in zip(together[i], alone):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # and they differ from each other (a mixed-up optimizer or rate would show here)
    assert not np.allclose(np.asarray(together[0][0]), np.asarray(together[2][0]))


def test_trajectory_rows_start_at_the_start():
    rows, _ = run("steep", "adam")
    assert rows.shape == (100, 3)
    np.testing.assert_allclose(rows[0], [0.0, 0.0, float(S.steep(jnp.zeros(2)))], rtol=1e-6)


def test_reference_outcome_pathological():
    verdicts = {opt: run("pathological", opt)[1] for opt in ("sgd", "momentum", "adam")}
    assert not verdicts["sgd"]["converged"] and verdicts["sgd"]["distance_to_minimum"] > 1.0
    assert verdicts["momentum"]["converged"] and verdicts["adam"]["converged"]
    sgd_rows, _ = run("pathological", "sgd")
    assert np.sum(np.diff(np.sign(sgd_rows[:, 0])) != 0) >= 4  # SGD bounces across the ravine
    assert np.abs(sgd_rows[50:, 0]).min() > 0.2  # and never settles at its centre


def test_reference_outcome_steep():
    verdicts = {opt: run("steep", opt)[1] for opt in ("sgd", "momentum", "adam")}
    assert [o for o, v in verdicts.items() if v["converged"]] == ["adam"]
    assert verdicts["adam"]["final_loss"] == pytest.approx(S.SURFACES["steep"].min_value, rel=1e-3)


def test_vmapped_starts_match_single_runs_and_compile_once():
    surf = S.SURFACES["himmelblau"]
    starts = S.random_starts(surf, 8, seed=1)
    opts = ("sgd", "adam")
    lrs = np.asarray([[0.002, 0.01], [0.001, 0.01]], np.float32)  # a row of rates per optimizer
    before = S.batch_final._cache_size()
    w, loss = S.batch_final("himmelblau", opts, lrs, 0.9, starts, 50)
    S.batch_final("himmelblau", opts, lrs * 2, 0.9, starts + 0.1, 50)
    assert S.batch_final._cache_size() - before == 1
    assert w.shape == (2, 2, 8, 2) and loss.shape == (2, 2, 8)
    for o, opt in enumerate(opts):
        for li in range(2):
            for i in (0, 7):
                ((_, w1, l1),) = S.trajectories("himmelblau", (opt,), lrs[o, li:li + 1], 0.9, starts[i], 50)
                np.testing.assert_allclose(np.asarray(w[o, li, i]), np.asarray(w1), rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(float(loss[o, li, i]), float(l1), rtol=1e-4, atol=1e-5)


def test_start_statistics_and_best_of():
    surf = S.SURFACES["himmelblau"]
    w = np.array([[[3.0, 2.0], [0.0, 0.0], [np.nan, 1.0]]])
    loss = np.array([[0.0, 170.0, np.nan]])
    (st,) = S.start_statistics(surf, w, loss)
    assert st["success_rate"] == pytest.approx(1 / 3) and st["diverged"] == 1 and st["median_final_loss"] == 170.0
    stats = [{"success_rate": 0.5, "median_final_loss": 1.0}, {"success_rate": 0.5, "median_final_loss": 0.1},
             {"success_rate": 0.2, "median_final_loss": 0.0}]
    assert S.best_of([1, 2, 3], stats) == 1


def test_verdict_of_a_diverged_run():
    v = S.verdict(S.SURFACES["rosenbrock"], jnp.asarray([jnp.nan, 1.0]), jnp.nan)
    assert v["converged"] is False and v["final_loss"] is None
