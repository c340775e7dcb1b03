"""Confidence intervals over seeds: Student's t, means, paired differences (numpy only)."""

from __future__ import annotations

import math

import numpy as np

_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile: a table to 30 degrees of freedom, a Cornish-Fisher expansion beyond."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def ci95_half_width(std, n: int):
    """Half the width of the t-based 95% interval of a mean of ``n`` values (``std`` may be an array)."""
    return t_quantile_975(n - 1) * std / math.sqrt(n)


def mean_ci95(values) -> dict:
    """Mean, sample standard deviation and the t-based 95% interval of the mean."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": None}
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci95": None}
    std = float(x.std(ddof=1))
    half = ci95_half_width(std, n)
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def paired_comparisons(test_acc: dict[str, list[float | None]]) -> list[dict]:
    """For each pair of optimizers: the mean paired difference (a - b) over shared seeds, its 95% CI."""
    names = list(test_acc)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diffs = [x - y for x, y in zip(test_acc[a], test_acc[b]) if x is not None and y is not None]
            s = mean_ci95(diffs)
            excludes = s["ci95"] is not None and (s["ci95"][0] > 0 or s["ci95"][1] < 0)
            out.append({"a": a, "b": b, "n": s["n"], "mean_diff": s["mean"], "std_diff": s["std"],
                        "ci95": s["ci95"], "excludes_zero": bool(excludes)})
    return out
