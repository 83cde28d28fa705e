"""The semiclassical escape action (opendicke.fluctuations.escape) against closed forms built here.

* the Gaussian minimum-action method on a 1-D double well with additive noise: S* = 2ΔV/D;
* the Hamiltonian shooting + ε-continuation on a birth-death process, whose exact WKB Hamiltonian
  H = λ(e^p − 1) + μ(e^{−p} − 1) is not quadratic: S* = ∫ ln(μ/λ) dx, while its Gaussian (Kramers–Moyal)
  truncation gives the different ∫ 2(μ − λ)/(μ + λ) dx — the same structure as truncated Wigner vs full WKB;
* the Dicke WKB Hamiltonian: its second-order truncation is the mean-field drift (paper Eq. 7, written out here)
  plus the loss noise, and the remainder is O(p³).
"""

import math

import numba as nb
import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from opendicke.fluctuations.escape import (EscapeOptions, ProjectedEnd, ProjectedStart, _Chart, continue_instanton,
                                           continue_projected, escape_action, minimum_action_gaussian,
                                           retrieval_point, shoot_instanton, solve_projected, wkb_hamiltonian)
from opendicke.model import DickeModel


@nb.njit
def _well_drift(x, params, out):
    out[0] = x[0] - x[0] ** 3  # -V'(x), V = x^4/4 - x^2/2


@nb.njit
def _well_vjp(x, params, w, out):
    out[0] = (1 - 3 * x[0] ** 2) * w[0]


@pytest.mark.slow  # 8.6 s on a fresh clone (mostly compiling); the birth-death closed form stays in the default run
def test_minimum_action_double_well():
    """dx = -V'(x) dt + sqrt(D/N) dW, D = 1: barrier S* = 2 ΔV / D = 1/2 with ΔV = V(0) - V(-1) = 1/4. The error is
    second order in the control step (measured 1.2e-3, 3.0e-4, 7.3e-5 at 50, 100, 200 steps, T = 12), and the
    Richardson value is exact to ~1e-5."""
    exact, actions = 0.5, []
    for steps in (50, 100, 200):
        S, X, P, u = minimum_action_gaussian(_well_drift, _well_vjp, np.zeros(1), [-1.0], [0.0], 12.0, steps, [0],
                                             [1.0])
        actions.append(S)
        assert abs(X[-1, 0]) < 1e-6
    errors = np.abs(np.array(actions) - exact)
    assert errors[-1] < 2e-4
    assert 3.0 < errors[0] / errors[1] < 5.0 and 3.0 < errors[1] / errors[2] < 5.0
    assert (4 * actions[2] - actions[1]) / 3 == pytest.approx(exact, abs=2e-5)
    # the optimal path is the time-reversed relaxation, with costate p = ∂S/∂x = 2 V'(x) = 2 (x^3 - x)
    inside = np.abs(X[:, 0] + 0.5) < 0.4
    assert inside.sum() > 5
    assert np.allclose(P[inside, 0], 2 * (X[inside, 0] ** 3 - X[inside, 0]), atol=2e-2)


_C, _R = 4.0, 0.1  # μ/λ = exp(c V'); the overall rate r only sets the time scale (slow: well-conditioned shooting)


def _birth_death_family(eps):
    """λ = r, μ = r exp(c V'(x)), c = 4, r = 0.1, V = x^4/4 - x^2/2: H_ε = H_G + ε (H - H_G) on batches y = (x, p)."""
    def parts(y):
        x, p = y[0], y[1]
        lam, mu = _R * np.ones_like(x), _R * np.exp(_C * (x**3 - x))
        dmu = _C * (3 * x**2 - 1) * mu
        # H = lam (e^p - 1) + mu (e^-p - 1);  H_G = p (lam - mu) + (lam + mu) p^2 / 2
        hp = lam * np.exp(p) - mu * np.exp(-p)
        hx = dmu * (np.exp(-p) - 1)
        gp = (lam - mu) + (lam + mu) * p
        gx = -dmu * p + dmu * p**2 / 2
        return np.vstack([gp + eps * (hp - gp), -(gx + eps * (hx - gx))])

    def ham(y):
        x, p = y[0], y[1]
        lam, mu = _R * np.ones_like(x), _R * np.exp(_C * (x**3 - x))
        h = lam * (np.exp(p) - 1) + mu * (np.exp(-p) - 1)
        g = p * (lam - mu) + (lam + mu) * p**2 / 2
        return g + eps * (h - g)

    return parts, ham


def test_shooting_continuation_birth_death():
    """Fixed-duration instanton by multiple shooting: ε = 0 gives the Gaussian ∫2 tanh(cV'/2) dx, ε = 1 the exact
    ∫ cV' dx = c/4 = 1 — and the two differ by ~10 %, so the continuation matters."""
    exact = _C / 4
    gaussian = quad(lambda x: 2 * np.tanh(_C * (x**3 - x) / 2), -1, 0)[0]
    assert abs(gaussian - exact) > 0.05
    T, n = 40.0, 80
    # guess: the uphill path ẋ = μ - λ with p = 2 tanh(V'/2), placed in the middle of [0, T]
    up = solve_ivp(lambda t, x: _R * (np.exp(_C * (x**3 - x)) - 1), (0, 400), [-1 + 1e-3], dense_output=True,
                   events=lambda t, x: x[0] + 1e-3, rtol=1e-10)
    t_up = up.t_events[0][0]
    ts = np.linspace(0, T, n + 1)[:-1]
    x = np.where(ts < (T - t_up) / 2, -1.0, np.where(ts > (T + t_up) / 2, 0.0,
                 up.sol(np.clip(ts - (T - t_up) / 2, 0, t_up))[0]))
    guess = np.vstack([x, 2 * np.tanh(_C * (x**3 - x) / 2)])
    rhs, ham = _birth_death_family(0.0)
    # the fixed-duration problem is ill-conditioned here (waiting at the fast end points): the one-sided
    # finite-difference Jacobian limits Newton to ~1e-7, which is ample for the action
    Y, S0, ok, res = shoot_instanton(rhs, ham, guess, T, [-1.0], [0.0], substeps=10, tol=1e-7)
    assert ok and res < 1e-7
    assert S0 == pytest.approx(gaussian, abs=1e-5)
    Y1, S1, reached = continue_instanton(_birth_death_family, guess, T, [-1.0], [0.0], eps_step=0.1, tol=1e-7)
    assert reached == 1.0
    assert S1 == pytest.approx(exact, abs=1e-5 * exact)
    _, ham1 = _birth_death_family(1.0)
    assert np.abs(ham1(Y1)).max() < 1e-6  # a zero-energy path at this T


def test_projected_boundary_conditions_birth_death():
    """Start on the linear unstable manifold of x = −1 (Σ⁻¹ = 2|A|/D = 2·0.8/0.2 = 8 by hand, quasi-potential
    ½ p δx added) and end on the stable subspace of x = 0: the exact WKB barrier 1 and the Gaussian one, at a
    duration where the fixed-end problem still carries a visible waiting error, and ε-continuation between them."""
    exact = _C / 4
    gaussian = quad(lambda x: 2 * np.tanh(_C * (x**3 - x) / 2), -1, 0)[0]
    rhs0, ham0 = _birth_death_family(0.0)
    start = ProjectedStart.at(rhs0, np.array([-1.0]))
    end = ProjectedEnd.at(rhs0, np.array([0.0]))
    assert start.sigma_inv[0, 0] == pytest.approx(8.0, rel=1e-6)
    T, n = 20.0, 40
    x = np.clip(-1 + 0.98 * np.linspace(0, T, n + 1)[:-1] / T, -0.99, -0.01)
    guess = np.vstack([x, 2 * np.tanh(_C * (x**3 - x) / 2)])
    Y0, S0, ok, _ = solve_projected(rhs0, ham0, guess, T, start, end)
    assert ok and S0 == pytest.approx(gaussian, abs=1e-6)
    assert start.correction(Y0) > 1e-7  # the start is off the fixed point: its quasi-potential is part of S0
    Y1, S1, reached = continue_projected(_birth_death_family, Y0, T, start, end)
    assert reached == 1.0 and S1 == pytest.approx(exact, abs=1e-6)
    # ending *at* the saddle instead: same barrier (no spiralling at a 1-D end point), to the waiting error
    rhs1, ham1 = _birth_death_family(1.0)
    _, S_fixed, ok, _ = solve_projected(rhs1, ham1, Y1, T, start, np.array([0.0]))
    assert ok and S_fixed == pytest.approx(exact, abs=1e-5)


def test_dicke_wkb_hamiltonian_truncation():
    """H_G (ε = 0) moves the spin by paper Eq. (7) (written out here) and the mode with its loss; H − H_G is O(p³)."""
    g0, om, om1, ka = 1.1, 0.5, 1.5, 1.0
    params = np.array([om, om1, ka, g0])
    chart = _Chart(0.3)
    rng = np.random.default_rng(1)
    z = np.array([0.2, -0.3, 0.4, 0.1])[:, None]
    rhs0, ham0 = wkb_hamiltonian(chart, params, 0.0)
    zdot = rhs0(np.vstack([z, np.zeros((4, 1))]))[:4, 0]
    s = chart.spin(z[0, 0], z[1, 0])
    e = 1e-6
    jac = np.column_stack([(chart.spin(z[0, 0] + e * d[0], z[1, 0] + e * d[1]) - chart.spin(z[0, 0] - e * d[0],
                           z[1, 0] - e * d[1])) / (2 * e) for d in ((1, 0), (0, 1))])
    q, pi = z[2, 0], z[3, 0]
    alpha = (q + 1j * pi) / math.sqrt(2)
    h = 2 * g0 * 2 * alpha.real
    sdot = np.array([-h * s[1], -2 * om * s[2] + h * s[0], 2 * om * s[1]])
    adot = -(1j * om1 + ka / 2) * alpha - 1j * g0 * s[2]
    assert np.allclose(jac @ zdot[:2], sdot, atol=1e-8)
    assert np.allclose(zdot[2:] / math.sqrt(2), [adot.real, adot.imag], atol=1e-12)
    p = rng.normal(size=(4, 1))
    rhs1, ham1 = wkb_hamiltonian(chart, params, 1.0)
    y = lambda c: np.vstack([z, c * p])  # noqa: E731
    # H_G: drift + diffusion (κ/4)(p_q² + p_π²) exactly
    assert ham0(y(1.0))[0] == pytest.approx(zdot @ p[:, 0] + ka / 4 * (p[2, 0] ** 2 + p[3, 0] ** 2), abs=1e-12)
    r1 = ham1(y(1e-2))[0] - ham0(y(1e-2))[0]
    r2 = ham1(y(2e-2))[0] - ham0(y(2e-2))[0]
    assert r1 != 0 and r2 / r1 == pytest.approx(8.0, rel=1e-2)
    # Hamilton's equations of the full H against finite differences of H
    Y = np.vstack([z, p])
    F = rhs1(Y)[:, 0]
    grad = np.array([(ham1(Y + 1e-6 * v[:, None]) - ham1(Y - 1e-6 * v[:, None]))[0] / 2e-6 for v in np.eye(8)])
    assert np.allclose(F[:4], grad[4:], atol=1e-7) and np.allclose(F[4:], -grad[:4], atol=1e-7)


def test_escape_input_errors():
    with pytest.raises(ValueError, match="M = 1"):
        escape_action(DickeModel(omega=0.5, omega_modes=[1.5, 2.0], g0=1.0))
    with pytest.raises(ValueError, match="g_c"):
        escape_action(DickeModel(omega=0.5, omega_modes=[1.5], g0=0.5))
    with pytest.raises(ValueError, match="durations"):
        EscapeOptions(durations=(60.0, 50.0))
    with pytest.raises(ValueError, match="substeps"):
        EscapeOptions(substeps=0)
    x = retrieval_point(DickeModel(omega=0.5, omega_modes=[1.5], g0=1.0))
    assert np.linalg.norm(x[:3]) == pytest.approx(1.0) and x[2] < 0


@pytest.mark.slow
def test_escape_action_chart_independent():
    """The exponents at g0 = 1 are the same in two Holstein–Primakoff charts (pole at +z, and pole at the antipode
    of the retrieval point), although the WKB Hamiltonians and the ε-paths differ, and they are converged in T.
    Measured: S_G = 0.248563, S* = 0.353096 (the fixed-end values 0.24921, 0.35356 belong to a path of larger
    action that ends exactly at the spiralling saddle)."""
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0)
    a = escape_action(model)
    b = escape_action(model, EscapeOptions(chart_tilt=0.0))
    for ds in (a, b):
        assert np.all(ds["eps_reached"].values == 1.0)
        assert np.ptp(ds["action_quantum"].values) < 1e-5 and np.ptp(ds["action_gaussian"].values) < 1e-5
    assert a.attrs["action_quantum_limit"] == pytest.approx(b.attrs["action_quantum_limit"], abs=2e-5)
    assert a.attrs["action_gaussian_limit"] == pytest.approx(0.24856, abs=2e-5)
    assert a.attrs["action_quantum_limit"] == pytest.approx(0.35310, abs=2e-5)
