import numpy as np
import pytest
from scipy import stats as st

from initopt.engine import intervals


def test_mean_ci95_against_hand_computation():
    s = intervals.mean_ci95([1.0, 2.0, 3.0, 4.0])
    sd = np.std([1, 2, 3, 4], ddof=1)
    assert s["mean"] == 2.5 and s["std"] == pytest.approx(sd)
    assert s["ci95"] == pytest.approx([2.5 - 3.182446 * sd / 2, 2.5 + 3.182446 * sd / 2])
    assert intervals.mean_ci95([0.5])["ci95"] is None and intervals.mean_ci95([None])["n"] == 0


def test_t_quantiles_are_scipys():
    for df in (1, 2, 7, 30, 40, 120):
        assert intervals.t_quantile_975(df) == pytest.approx(st.t.ppf(0.975, df), rel=1e-12)
    assert intervals.t_quantile_975(1) == pytest.approx(12.7062, abs=1e-4)


def test_paired_comparisons():
    out = intervals.paired_comparisons({"a": [0.90, 0.91, 0.92], "b": [0.89, 0.90, 0.91], "c": [0.95, 0.80, 0.99]})
    ab = next(p for p in out if (p["a"], p["b"]) == ("a", "b"))
    assert ab["mean_diff"] == pytest.approx(0.01) and ab["excludes_zero"] and ab["n"] == 3
    ac = next(p for p in out if (p["a"], p["b"]) == ("a", "c"))
    assert not ac["excludes_zero"]
    assert len(out) == 3
