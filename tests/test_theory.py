"""Analytic retrieval theory (paper Eq. 12 and g_crit, docs/physics-notes.md, Conventions).

References: the paper's formulas typed in again (conftest.fixed_point and Eq. 12 in the paper's own
form), hand-computed g_c for the Fig. 3 model, and the mean-field right-hand side written independently
(conftest.reference_rhs) as well as the package's MeanFieldRHS.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PAPER_KAPPA, PAPER_OMEGA, PAPER_OMEGA_MODES, fixed_point, ideal_f, ref_pack, reference_rhs

import opendicke as od
from opendicke.meanfield import MeanFieldRHS, pack


def signed_overlap(state):
    """Signed overlap ξ_ν of a retrieval_state Dataset with the pattern it is aligned with."""
    return float(state["overlap"].sel(pattern=int(state["retrieved"])))


def test_critical_coupling_of_the_paper_fig3_model():
    # g_c² = ½ (Ω/Ω_ν)(Ω_ν² + κ²/4), Ω = 0.5, Ω_ν = 1.5, 2, 2.5, 3, κ = 1:
    #   ν=1: ½·(1/3)·2.5   = 0.416667 → 0.645497
    #   ν=2: ½·(1/4)·4.25  = 0.53125  → 0.728869
    #   ν=3: ½·(1/5)·6.5   = 0.65     → 0.806226
    #   ν=4: ½·(1/6)·9.25  = 0.770833 → 0.877971
    expected = np.sqrt([2.5 / 6, 4.25 / 8, 6.5 / 10, 9.25 / 12])
    got = od.critical_coupling(PAPER_OMEGA, PAPER_OMEGA_MODES, PAPER_KAPPA)
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    np.testing.assert_allclose(got, [0.6455, 0.7289, 0.8062, 0.8780], atol=6e-5)  # docs/physics-notes.md, Conventions values
    m = od.paper_model(1.0)
    for nu in range(1, 5):
        assert float(od.retrieval_state(m, nu)["g_crit"]) == pytest.approx(expected[nu - 1], rel=1e-14)


def test_overlap_is_eq12_in_the_papers_form_and_vanishes_below_threshold(rng):
    omega = rng.uniform(0.1, 2.0, 50)
    omega_nu = rng.uniform(0.1, 3.0, 50)
    kappa = rng.uniform(0.05, 3.0, 50)
    g_c = np.sqrt(0.5 * (omega / omega_nu) * (omega_nu**2 + kappa**2 / 4))
    g0 = g_c * rng.uniform(0.3, 3.0, 50) * rng.choice([-1, 1], 50)
    # Eq. (12) as printed: |z| = √(1 − (1/(4 g0⁴)) (Ω/Ω_ν)² [Ω_ν² + (κ_ν/2)²]²)
    arg = 1 - (omega / omega_nu) ** 2 * (omega_nu**2 + (kappa / 2) ** 2) ** 2 / (4 * g0**4)
    expected = np.where(arg > 0, np.sqrt(np.clip(arg, 0, None)), 0.0)
    got = od.retrieval_overlap(g0, omega, omega_nu, kappa)
    assert got.shape == (50,)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert np.all(got[np.abs(g0) < g_c] == 0.0) and np.all(got[np.abs(g0) > g_c] > 0)
    # occupation per spin n_ν = g0² z² / (Ω_ν² + κ_ν²/4)
    np.testing.assert_allclose(od.retrieval_occupation(g0, omega, omega_nu, kappa),
                               g0**2 * expected**2 / (omega_nu**2 + kappa**2 / 4), rtol=1e-12, atol=1e-15)


def test_theory_broadcasts_over_parameters():
    g0 = np.linspace(0.2, 2.0, 7)[:, None]
    got = od.retrieval_overlap(g0, PAPER_OMEGA, PAPER_OMEGA_MODES[None, :], 1.0)
    assert got.shape == (7, 4)
    for i in range(7):
        for nu in range(4):
            assert got[i, nu] == od.retrieval_overlap(g0[i, 0], PAPER_OMEGA, PAPER_OMEGA_MODES[nu], 1.0)


def _random_fixed_points(rng, M, count):
    """Random models (Ω, Ω_ν, κ_ν > 0; other modes arbitrary), g0 of either sign above g_c, any ν and sign."""
    cases = []
    for _ in range(count):
        nu = int(rng.integers(1, M + 1))
        omega = rng.uniform(0.05, 3.0)
        omega_modes = rng.uniform(-3.0, 3.0, M)
        kappa = rng.uniform(0.0, 3.0, M)
        omega_modes[nu - 1] = rng.uniform(0.05, 4.0)
        kappa[nu - 1] = rng.uniform(0.05, 4.0)
        g_c = np.sqrt(0.5 * omega / omega_modes[nu - 1] * (omega_modes[nu - 1] ** 2 + kappa[nu - 1] ** 2 / 4))
        g0 = g_c * rng.uniform(1.0001, 4.0) * rng.choice([-1.0, 1.0])
        sign = int(rng.choice([-1, 1]))
        m = od.DickeModel(omega=omega, omega_modes=omega_modes, kappa=kappa, g0=g0)
        cases.append((m, nu, sign))
    return cases


@pytest.mark.parametrize("M", [1, 2, 3, 4, 6])
def test_analytic_fixed_point_is_a_zero_of_the_mean_field_rhs(M, rng):
    """Thermodynamic limit, ideal equal groups: |RHS| ≤ 1e-12 at the analytic fixed point (issue 2)."""
    cases = _random_fixed_points(rng, M, 40)
    f = ideal_f(M)
    K = f.shape[1]
    w = np.full(K, 1.0 / K)
    states, worst_own = [], 0.0
    for m, nu, sign in cases:
        st = od.retrieval_state(m, nu, sign=sign)
        # the package's values against the formulas typed in here
        g_c, z, sx, alpha_nu = fixed_point(m.omega, m.omega_modes[nu - 1], m.kappa[nu - 1], m.g0)
        assert float(st["g_crit"]) == pytest.approx(g_c, rel=1e-13)
        assert signed_overlap(st) == pytest.approx(sign * z, rel=1e-12)
        assert float(st["sx"]) == pytest.approx(sx, rel=1e-12)
        expected_alpha = np.zeros(M, complex)
        expected_alpha[nu - 1] = sign * alpha_nu
        np.testing.assert_allclose(st["alpha"].values, expected_alpha, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(st["occupation"].values, np.abs(expected_alpha) ** 2, rtol=1e-12, atol=1e-15)
        # the fixed point, built from the definitions: s_y = 0, s_x = −(g_c/g0)², s_z,k = sign·f[ν,k]·z
        bloch = np.zeros((K, 3))
        bloch[:, 0] = float(st["sx"])
        bloch[:, 2] = signed_overlap(st) * f[nu - 1]  # signed overlap = sign·z
        np.testing.assert_allclose(np.linalg.norm(bloch, axis=1), 1.0, rtol=1e-13)  # on the Bloch sphere
        own = reference_rhs(f, w, m.omega, m.omega_modes, m.kappa, m.g0)(0.0, ref_pack(bloch, st["alpha"].values))
        worst_own = max(worst_own, np.max(np.abs(own)))
        states.append(pack(bloch, st["alpha"].values))
    # the package's batched right-hand side, all random points in one batch
    rhs = MeanFieldRHS(f, w, np.array([c[0].omega for c in cases]), np.array([c[0].g0 for c in cases]),
                       np.array([c[0].omega_modes for c in cases]), np.array([c[0].kappa for c in cases]))
    worst_pkg = np.max(np.abs(rhs(np.array(states))))
    print(f"M={M}: worst |RHS| own {worst_own:.2e}, package {worst_pkg:.2e}")
    assert worst_own <= 1e-12
    assert worst_pkg <= 1e-12


def test_a_wrong_fixed_point_is_not_a_zero():
    """Control for the test above: the same check rejects a slightly wrong z or the wrong sign of α."""
    m = od.paper_model(1.3)
    f, K = ideal_f(4), 8
    st = od.retrieval_state(m, 2)
    rhs = reference_rhs(f, np.full(K, 1 / K), m.omega, m.omega_modes, m.kappa, m.g0)
    for dz, flip_alpha in [(1e-6, False), (0.0, True)]:
        z = signed_overlap(st) + dz
        bloch = np.zeros((K, 3))
        bloch[:, 0] = -np.sqrt(1 - z**2)
        bloch[:, 2] = z * f[1]
        alpha = -st["alpha"].values if flip_alpha else st["alpha"].values
        assert np.max(np.abs(rhs(0.0, ref_pack(bloch, alpha)))) > 1e-8


def test_below_threshold_the_theory_state_is_the_paramagnet_and_a_zero():
    m = od.paper_model(0.7)  # g_c(3) = 0.806, g_c(4) = 0.878 > 0.7
    f, K = ideal_f(4), 8
    for nu in (3, 4):
        st = od.retrieval_state(m, nu)
        assert signed_overlap(st) == 0.0 and float(st["sx"]) == -1.0
        np.testing.assert_array_equal(st["alpha"].values, 0.0)
        bloch = np.zeros((K, 3))
        bloch[:, 0] = float(st["sx"])
        res = reference_rhs(f, np.full(K, 1 / K), m.omega, m.omega_modes, m.kappa, m.g0)(0.0, ref_pack(bloch, st["alpha"].values))
        assert np.max(np.abs(res)) == 0.0


def test_mirror_solution_flips_overlap_and_alpha():
    m = od.paper_model(1.1)
    plus, minus = od.retrieval_state(m, 1, sign=+1), od.retrieval_state(m, 1, sign=-1)
    assert signed_overlap(minus) == -signed_overlap(plus) and signed_overlap(plus) > 0
    np.testing.assert_array_equal(minus["alpha"].values, -plus["alpha"].values)
    np.testing.assert_array_equal(minus["occupation"].values, plus["occupation"].values)
    assert float(minus["sx"]) == float(plus["sx"])


# ---------------------------------------------------------------------------------------------- validity
@pytest.mark.parametrize(
    "omega, omega_nu, kappa, match",
    [
        (0.5, -1.5, 1.0, "Ω/Ω_ν > 0"),
        (-0.5, 1.5, 1.0, "Ω/Ω_ν > 0"),
        (0.0, 1.5, 1.0, "Ω/Ω_ν > 0"),
        (0.5, 0.0, 1.0, "Ω/Ω_ν > 0"),
        (0.5, 1.5, 0.0, "κ_ν > 0"),
        (0.5, 1.5, -1.0, "κ_ν > 0"),
    ],
)
def test_theory_says_when_it_does_not_apply(omega, omega_nu, kappa, match):
    for fn in (lambda: od.critical_coupling(omega, omega_nu, kappa),
               lambda: od.retrieval_overlap(1.0, omega, omega_nu, kappa),
               lambda: od.retrieval_occupation(1.0, omega, omega_nu, kappa)):
        with pytest.raises(ValueError, match=match):
            fn()


def test_theory_rejects_an_inapplicable_point_inside_an_array():
    with pytest.raises(ValueError, match="κ_ν > 0"):
        od.critical_coupling(0.5, [1.5, 2.0], [1.0, 0.0])


def test_retrieval_state_checks_the_pattern_it_is_asked_about():
    m = od.DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=[1.0, 0.0], g0=1.0)
    assert signed_overlap(od.retrieval_state(m, 1)) > 0  # mode 1 is fine
    with pytest.raises(ValueError, match=r"κ_ν > 0.*pattern 2"):
        od.retrieval_state(m, 2)
    with pytest.raises(ValueError, match=r"Ω/Ω_ν > 0"):
        od.retrieval_state(m.replace(omega=-0.5), 1)
    with pytest.raises(ValueError, match=r"pattern.*1\.\.2"):
        od.retrieval_state(m, 3)
    with pytest.raises(ValueError, match="sign"):
        od.retrieval_state(m, 1, sign=2)
