"""Confidence intervals over seeds: Student's t (scipy.special), means, paired differences."""

from __future__ import annotations

import math

import numpy as np


def t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile: scipy.special's inverse of the t distribution function, which
    ``scipy.stats.t.ppf`` calls (the same bits) without importing scipy.stats (0.8 s a command)."""
    if df < 1:
        return math.nan
    from scipy import special

    return float(special.stdtrit(df, 0.975))


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
