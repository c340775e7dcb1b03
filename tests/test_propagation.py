"""Mean-field theory against closed forms."""

import math

import numpy as np
import pytest

from initopt.nn import propagation as P


@pytest.mark.parametrize("sw2", [0.5, 1.0, 2.0, 3.0])
def test_relu_chi1_is_half_sigma_w2(sw2):
    t = P.theory("relu", sw2, 0.0)
    assert t.chi_1 == pytest.approx(sw2 / 2, rel=1e-12)
    assert (t.phase == "critical") == (sw2 == 2.0)


@pytest.mark.parametrize("sw2", [0.3, 0.9, 1.0, 1.7])
def test_identity_chi1_is_sigma_w2(sw2):
    assert P.theory("identity", sw2, 0.0).chi_1 == pytest.approx(sw2, rel=1e-12)


@pytest.mark.parametrize("sw2", [0.25, 0.6, 0.9, 1.0])
def test_tanh_without_bias_below_one_has_q_star_zero_and_chi1_sigma_w2(sw2):
    t = P.theory("tanh", sw2, 0.0)
    assert t.q_star == 0.0 and t.chi_1 == pytest.approx(sw2, rel=1e-9)


def test_tanh_fixed_point_solves_the_map_and_criticality_is_near_1_76():
    t = P.theory("tanh", 1.5, 0.05)
    assert P.q_map("tanh", t.q_star, 1.5, 0.05) == pytest.approx(t.q_star, rel=1e-9)
    # Schoenholz et al.: with sigma_b^2 = 0.05 the order-to-chaos transition of tanh lies near sigma_w^2 = 1.76.
    assert P.theory("tanh", 1.70, 0.05).phase == "ordered" and P.theory("tanh", 1.80, 0.05).phase == "chaotic"
    assert P.theory("tanh", 1.76, 0.05).xi_c > 100  # the depth scale diverges at the transition
    chaotic = P.theory("tanh", 3.0, 0.05)
    assert 0 < chaotic.c_star < 1 and chaotic.xi_c == pytest.approx(-1 / math.log(chaotic.chi_c))


def test_relu_correlation_map_is_the_arc_cosine_kernel():
    """The closed form against Monte Carlo of correlated Gaussians."""
    rng = np.random.default_rng(0)
    c = 0.3
    z1, z2 = rng.standard_normal((2, 2_000_000))
    u, v = z1, c * z1 + math.sqrt(1 - c * c) * z2
    mc = np.mean(np.maximum(u, 0) * np.maximum(v, 0))
    assert P.c_map("relu", 1.0, 1.0, c, 1.0, 0.0) == pytest.approx(mc, abs=2e-3)
    assert P.c_map("tanh", 1.0, 1.0, c, 1.0, 0.0) == pytest.approx(np.mean(np.tanh(u) * np.tanh(v)), abs=2e-3)


@pytest.mark.parametrize("act, sw2, sb2", [("tanh", 3.0, 0.05), ("tanh", 1.9, 0.05), ("tanh", 2.5, 0.01)])
def test_the_correlation_fixed_point_is_the_one_the_map_iterates_to(act, sw2, sb2):
    """c* solves the map, and is where the map's iteration from c = 0 (the definition) arrives."""
    q = P.fixed_point_q(act, sw2, sb2)
    c_star = P.fixed_point_c(act, sw2, sb2, q)
    assert 0 < c_star < 1
    assert P.c_map(act, q, q, c_star * q, sw2, sb2) / q == pytest.approx(c_star, abs=1e-12)
    c = 0.0
    for _ in range(20_000):
        c = P.c_map(act, q, q, c * q, sw2, sb2) / q
    assert c == pytest.approx(c_star, abs=1e-9)
