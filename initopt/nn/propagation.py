"""Signal propagation in deep networks at initialization: mean-field theory (Poole et al. 2016,
Schoenholz et al. 2017) by Gauss-Hermite quadrature.

Weights ``N(0, sigma_w^2 / fan_in)``, biases ``N(0, sigma_b^2)``, pre-activations ``z``:
- the variance map ``q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2`` with fixed point ``q*``;
- the covariance map of two inputs, ``q12 -> sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2`` with
  ``(u1, u2)`` jointly Gaussian, and its correlation ``c = q12 / sqrt(q11 q22)``;
- ``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]``: ordered phase below 1, chaotic above;
- the depth scale of correlations ``xi_c = -1 / ln(chi_c)``, ``chi_c = sigma_w^2 E[phi'(u1) phi'(u2)]``
  at the fixed point ``c*`` (``chi_c = chi_1`` in the ordered phase, where ``c* = 1``); it
  diverges at ``chi_1 = 1``; networks train when their depth is below about ``6 xi_c``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from initopt.nn.activations import LEAKY_SLOPE

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(101)  # probabilists': weight exp(-z^2 / 2)
_WEIGHTS = _WEIGHTS / np.sqrt(2 * np.pi)  # E[f(z)] = sum w f(z), z ~ N(0, 1)
_HOMOGENEOUS = {"identity": 1.0, "relu": 0.5, "leaky_relu": (1 + LEAKY_SLOPE**2) / 2}  # E[phi(z)^2] / q
Q_MAX = 1e6


def phi(act: str, x: np.ndarray) -> np.ndarray:
    """The activation in float64 (numpy), for the theory."""
    if act == "identity":
        return x
    if act == "tanh":
        return np.tanh(x)
    if act == "relu":
        return np.maximum(x, 0.0)
    if act == "leaky_relu":
        return np.where(x > 0, x, LEAKY_SLOPE * x)
    if act == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if act == "silu":
        return x / (1 + np.exp(-x))
    if act == "gelu":
        from scipy.special import erf

        return 0.5 * x * (1 + erf(x / np.sqrt(2)))
    raise KeyError(act)


def dphi(act: str, x: np.ndarray) -> np.ndarray:
    """The activation's derivative (float64)."""
    if act == "identity":
        return np.ones_like(x)
    if act == "tanh":
        return 1 - np.tanh(x) ** 2
    if act == "relu":
        return (x > 0).astype(np.float64)
    if act == "leaky_relu":
        return np.where(x > 0, 1.0, LEAKY_SLOPE)
    if act == "sigmoid":
        s = 1 / (1 + np.exp(-x))
        return s * (1 - s)
    if act == "silu":
        s = 1 / (1 + np.exp(-x))
        return s * (1 + x * (1 - s))
    if act == "gelu":
        from scipy.special import erf

        return 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)
    raise KeyError(act)


def _expect(f) -> float:
    return float(np.sum(_WEIGHTS * f(_NODES)))


_Z1, _Z2 = np.meshgrid(_NODES, _NODES, indexing="ij")  # the 2D rule's nodes and weights, made once
_W2 = np.outer(_WEIGHTS, _WEIGHTS)


def _expect2(f, c: float) -> float:
    """E[f(z1, z2)] for standard normals with correlation c (2D Gauss-Hermite); ``f`` gets the
    first variable's nodes (:data:`_Z1`, the same array every call) and the second's."""
    c = float(np.clip(c, -1.0, 1.0))
    return float(np.sum(_W2 * f(_Z1, c * _Z1 + math.sqrt(max(1 - c * c, 0.0)) * _Z2)))


@functools.lru_cache(maxsize=64)
def _phi_of_first(act: str, scale: float) -> np.ndarray:
    """``phi(scale * z1)`` on the 2D rule's first nodes: the same for every correlation, so a
    fixed point's thousands of iterations evaluate it once."""
    return phi(act, scale * _Z1)


def q_map(act: str, q: float, sw2: float, sb2: float) -> float:
    if act in _HOMOGENEOUS:
        return sw2 * _HOMOGENEOUS[act] * q + sb2
    return sw2 * _expect(lambda z: phi(act, math.sqrt(q) * z) ** 2) + sb2


def _relu_kernel(c: float) -> float:
    """E[relu(u) relu(v)] for standard normals with correlation c (the arc-cosine kernel)."""
    theta = math.acos(max(-1.0, min(1.0, c)))
    return (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2 * math.pi)


def _product_moment(act: str, q1: float, q2: float, c: float) -> float:
    """E[phi(u1) phi(u2)], Var u_i = q_i, correlation c: closed forms for the piecewise-linear ones."""
    scale = math.sqrt(q1 * q2)
    if act == "identity":
        return c * scale
    if act == "relu":
        return scale * _relu_kernel(c)
    if act == "leaky_relu":
        a = LEAKY_SLOPE
        return scale * ((1 + a * a) * _relu_kernel(c) - 2 * a * _relu_kernel(-c))
    sa, sb = math.sqrt(q1), math.sqrt(q2)
    first = _phi_of_first(act, sa)
    return _expect2(lambda u, v: first * phi(act, sb * v), c)


def _derivative_moment(act: str, q: float, c: float) -> float:
    """E[phi'(u1) phi'(u2)], Var u_i = q, correlation c."""
    theta = math.acos(max(-1.0, min(1.0, c)))
    if act == "identity":
        return 1.0
    if act == "relu":
        return (math.pi - theta) / (2 * math.pi)
    if act == "leaky_relu":
        a = LEAKY_SLOPE
        return ((1 + a * a) * (math.pi - theta) + 2 * a * theta) / (2 * math.pi)
    s = math.sqrt(q)
    if c >= 1 - 1e-12:
        return _expect(lambda z: dphi(act, s * z) ** 2)
    return _expect2(lambda u, v: dphi(act, s * u) * dphi(act, s * v), c)


def c_map(act: str, q1: float, q2: float, q12: float, sw2: float, sb2: float) -> float:
    """The next layer's covariance of two inputs whose pre-activations have variances q1, q2, covariance q12."""
    c = q12 / math.sqrt(q1 * q2) if q1 > 0 and q2 > 0 else 1.0
    return sw2 * _product_moment(act, q1, q2, c) + sb2


def fixed_point_q(act: str, sw2: float, sb2: float, q_input: float = 1.0) -> float:
    """``q*``: 0 when the origin attracts, ``inf`` when the variance grows without bound."""
    if act in _HOMOGENEOUS:
        slope = sw2 * _HOMOGENEOUS[act]
        if slope < 1:
            return sb2 / (1 - slope)
        return q_input if (slope == 1 and sb2 == 0) else math.inf
    from scipy.optimize import brentq

    f = lambda q: q_map(act, q, sw2, sb2) - q  # noqa: E731
    eps = 1e-10
    if f(eps) <= 0 and sb2 == 0:
        return 0.0
    if f(Q_MAX) > 0:
        return math.inf
    return float(brentq(f, eps, Q_MAX, xtol=1e-14, rtol=1e-12))


def chi_1(act: str, sw2: float, q: float) -> float:
    """``sigma_w^2 E[phi'(sqrt(q) z)^2]``."""
    return sw2 * _derivative_moment(act, q, 1.0)


def fixed_point_c(act: str, sw2: float, sb2: float, q: float) -> float:
    """``c*``: the stable fixed point of the correlation map at ``q*``, the one its iteration from
    c = 0 reaches. The map is increasing and convex on [0, 1] (its Hermite expansion has
    non-negative coefficients; Poole et al. 2016) and maps 1 to 1, so in the chaotic phase
    ``c_map(c) - c`` changes sign once in [0, 1): found by bisection (brentq), in a few tens of
    evaluations where the iteration, contracting at rate chi_c near 1, took hundreds."""
    if q == 0:
        return 1.0
    from scipy.optimize import brentq

    gap = lambda c: c_map(act, q, q, c * q, sw2, sb2) / q - c  # noqa: E731
    top = 1 - 1e-9
    if gap(0.0) <= 0:  # c_map(0) >= 0: zero exactly for an odd activation without bias
        return 0.0
    if gap(top) >= 0:  # no crossing below 1: the ordered side, where c* = 1
        return 1.0
    return float(brentq(gap, 0.0, top, xtol=1e-14, rtol=4 * np.finfo(float).eps))


def chi_c(act: str, sw2: float, q: float, c: float) -> float:
    if q == 0 or c >= 1 - 1e-9:
        return chi_1(act, sw2, q)
    return sw2 * _derivative_moment(act, q, c)


@dataclasses.dataclass(frozen=True)
class Theory:
    act: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    c_star: float
    chi_1: float
    chi_c: float
    xi_c: float  # depth scale of correlations (inf at criticality)
    trainable_depth: float  # 6 xi_c

    @property
    def phase(self) -> str:
        if math.isclose(self.chi_1, 1.0, rel_tol=1e-6):
            return "critical"
        return "ordered" if self.chi_1 < 1 else "chaotic"


def theory(act: str, sigma_w2: float, sigma_b2: float, q_input: float = 1.0) -> Theory:
    q = fixed_point_q(act, sigma_w2, sigma_b2, q_input)
    x1 = chi_1(act, sigma_w2, q if math.isfinite(q) else q_input)
    if math.isfinite(q):
        c = 1.0 if x1 <= 1 else fixed_point_c(act, sigma_w2, sigma_b2, q)
        xc = chi_c(act, sigma_w2, q, c)
    else:
        c, xc = math.nan, x1
    xi = math.inf if math.isclose(xc, 1.0, rel_tol=1e-9) or xc <= 0 else -1 / math.log(xc)
    xi = abs(xi) if math.isfinite(xi) else xi
    return Theory(act, sigma_w2, sigma_b2, q, c, x1, xc, xi, 6 * xi)


def iterate_maps(act: str, sw2: float, sb2: float, q1_0: float, q2_0: float, q12_0: float, depth: int) -> dict:
    """Per layer 1..depth: the predicted pre-activation variance of input a and correlation of a and b,
    starting from the first layer's (q1_0, q2_0, q12_0)."""
    q1, q2, q12 = q1_0, q2_0, q12_0
    qs, cs = [], []
    for _ in range(depth):
        qs.append(q1)
        cs.append(q12 / math.sqrt(q1 * q2) if q1 > 0 and q2 > 0 else 1.0)
        q1, q2, q12 = q_map(act, q1, sw2, sb2), q_map(act, q2, sw2, sb2), c_map(act, q1, q2, q12, sw2, sb2)
    return {"q": qs, "c": cs}
