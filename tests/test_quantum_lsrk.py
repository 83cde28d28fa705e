"""The Gaussian frame's integrator (quantum/_lsrk.py): a 14-stage fourth-order Runge–Kutta method with an embedded
estimate and a dense output, checked against closed-form solutions and an independent tight reference (scipy's
DOP853 at rtol 1e-12), including a stiff, stability-limited problem; a deliberately corrupted coefficient must
fail the same checks."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from opendicke.quantum import _lsrk

OMEGA0, SWING, DAMP = 3.0, 1.5, 0.2


def _scalar_exact(t):
    """y' = (−i(ω0 + a sin t) − γ) y, y(0) = 1: y = exp(−i(ω0 t + a(1 − cos t)) − γ t)."""
    return np.exp(-1j * (OMEGA0 * t + SWING * (1 - np.cos(t))) - DAMP * t)


def _scalar_rhs(t, y):
    return (-1j * (OMEGA0 + SWING * np.sin(t)) - DAMP) * y


def _run(fun, y0, times, rtol, tableau=None):
    out = np.empty((times.size, np.size(y0)), dtype=complex)

    def on_output(i, t, y):
        out[i] = y

    tab = _lsrk._tableau(tuple(_lsrk._A2), tuple(_lsrk._B2), _lsrk.ESTIMATE_SCALE) if tableau is None else tableau
    stats = _lsrk._ndb14(fun, np.atleast_1d(np.asarray(y0, complex)), times, on_output, rtol=rtol, atol=rtol * 1e-2,
                         first_step=None, max_steps=10**6, tableau=tab)
    return out, stats


def _scalar_error(tableau=None, rtol=1e-8, n_out=401):
    times = np.linspace(0.0, 10.0, n_out)  # many outputs inside steps: the dense output is checked too
    out, stats = _run(_scalar_rhs, [1.0], times, rtol, tableau)
    return float(np.max(np.abs(out[:, 0] - _scalar_exact(times)))), stats


def _stiff_system(seed=3, n=30):
    """y' = (−i H(t) − D) y with H(t) = H0 + sin(t) H1 spread over ±60 and D ≥ 0 up to 20: the step is limited by
    stability, as in the Gaussian frame."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    H0 = X + X.conj().T
    H0 *= 60.0 / np.max(np.abs(np.linalg.eigvalsh(H0)))
    Y = rng.normal(size=(n, n))
    H1 = 0.5 * (Y + Y.T)
    D = np.diag(np.linspace(0.0, 20.0, n))
    y0 = rng.normal(size=n) + 1j * rng.normal(size=n)
    y0 /= np.linalg.norm(y0)

    def rhs(t, y):
        return (-1j * (H0 + np.sin(t) * H1) - D) @ y

    return rhs, y0


def test_tableau_has_order_four_and_the_estimate_order_three():
    A, b, c = _lsrk.butcher(_lsrk._A2, _lsrk._B2)
    # the eight order conditions written out here (not taken from the module)
    conds = [(b.sum(), 1), (b @ c, 1 / 2), (b @ c**2, 1 / 3), (b @ A @ c, 1 / 6), (b @ c**3, 1 / 4),
             (b @ (c * (A @ c)), 1 / 8), (b @ A @ c**2, 1 / 12), (b @ A @ A @ c, 1 / 24)]
    for got, want in conds:
        assert abs(got - want) < 1e-12
    e = _lsrk._tableau(tuple(_lsrk._A2), tuple(_lsrk._B2), _lsrk.ESTIMATE_SCALE)[3]
    assert max(abs(e.sum()), abs(e @ c), abs(e @ c**2), abs(e @ A @ c)) < 1e-14  # embedded third order
    assert abs(e @ c**3 - _lsrk.ESTIMATE_SCALE) < 1e-14


def test_dense_output_weights_have_order_four():
    A, b, c = _lsrk.butcher(_lsrk._A2, _lsrk._B2)
    s = b.size
    Ax = np.zeros((s + 1, s + 1))
    Ax[:s, :s] = A
    Ax[s, :s] = b
    cx = np.append(c, 1.0)
    for theta in (0.13, 0.5, 0.87):
        w = _lsrk.dense_weights(theta)
        conds = [(w.sum(), theta), (w @ cx, theta**2 / 2), (w @ cx**2, theta**3 / 3), (w @ Ax @ cx, theta**3 / 6),
                 (w @ cx**3, theta**4 / 4), (w @ (cx * (Ax @ cx)), theta**4 / 8), (w @ Ax @ cx**2, theta**4 / 12),
                 (w @ Ax @ Ax @ cx, theta**4 / 24)]
        for got, want in conds:
            assert abs(got - want) < 1e-10


@pytest.mark.parametrize("rtol", [1e-6, 1e-9])
def test_scalar_nonautonomous_against_closed_form(rtol):
    err, stats = _scalar_error(rtol=rtol)
    assert err < 30 * rtol
    assert stats["steps"] > 0


def test_error_falls_with_the_tolerance():
    errs = [_scalar_error(rtol=r)[0] for r in (1e-5, 1e-7, 1e-9)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-7


def test_oscillatory_system_against_scipy_reference():
    rhs, y0 = _stiff_system()
    times = np.linspace(0.0, 3.0, 31)
    ref = solve_ivp(rhs, (0.0, 3.0), y0, t_eval=times, method="DOP853", rtol=1e-12, atol=1e-14).y.T
    out, stats = _run(rhs, y0, times, 1e-7)
    assert np.max(np.abs(out - ref)) < 1e-6


def _stability_limited_system(n=24):
    """Fast eigenmodes (|E| up to 400) that carry almost nothing, slow ones that carry the state, weakly coupled
    by a time-dependent term: the step is limited by stability, not accuracy (the Gaussian frame's situation)."""
    rng = np.random.default_rng(5)
    energies = np.concatenate([np.linspace(-2.0, 2.0, 6), np.linspace(-400.0, 400.0, n - 6)])
    V = np.linalg.qr(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))[0]
    H0 = (V * energies) @ V.conj().T
    Y = rng.normal(size=(n, n))
    H1 = 0.05 * (Y + Y.T)
    D = 0.1 * np.eye(n)
    y0 = V[:, :6] @ (rng.normal(size=6) + 1j * rng.normal(size=6))
    y0 /= np.linalg.norm(y0)

    def rhs(t, y):
        return (-1j * (H0 + np.sin(t) * H1) - D) @ y

    return rhs, y0


def test_stability_limited_system_against_scipy_reference():
    rhs, y0 = _stability_limited_system()
    times = np.linspace(0.0, 3.0, 31)
    ref = solve_ivp(rhs, (0.0, 3.0), y0, t_eval=times, method="DOP853", rtol=1e-12, atol=1e-14).y.T
    out, stats = _run(rhs, y0, times, 1e-6)
    assert np.max(np.abs(out - ref)) < 3e-5  # measured 5.2e-6 (scipy's DOP853 at the same rtol: 1.3e-6)
    assert stats["rejected"] < 0.2 * stats["steps"]  # the PI controller does not oscillate at the stability limit


def test_a_corrupted_coefficient_fails_the_same_checks():
    """The checks above can fail: one Williamson coefficient off by 1 % breaks fourth order, and the scalar and
    stiff problems then miss their references by far more than the bounds used above."""
    b2 = _lsrk._B2.copy()
    b2[7] *= 1.01
    bad = _lsrk._tableau(tuple(_lsrk._A2), tuple(b2), _lsrk.ESTIMATE_SCALE)
    err, _ = _scalar_error(bad, rtol=1e-9)
    assert err > 30 * 1e-9
    rhs, y0 = _stiff_system()
    times = np.linspace(0.0, 3.0, 31)
    ref = solve_ivp(rhs, (0.0, 3.0), y0, t_eval=times, method="DOP853", rtol=1e-12, atol=1e-14).y.T
    out, _ = _run(rhs, y0, times, 1e-7, bad)
    assert np.max(np.abs(out - ref)) > 1e-6


def test_dense_output_bounded_on_stiff_components():
    """The dense output's stability polynomial stays ≤ 3.5 in modulus on the method's stability region (a
    minimal-norm choice of b(θ) amplified stiff components by up to 800×)."""
    tab = _lsrk._tableau(tuple(_lsrk._A2), tuple(_lsrk._B2), _lsrk.ESTIMATE_SCALE)
    z, zmat = tab[6], tab[7]
    for theta in np.linspace(0.05, 0.95, 10):
        assert np.max(np.abs(1 + zmat @ _lsrk.dense_weights(theta))) < 3.5


def test_gaussian_frame_outputs_as_accurate_as_dop853():
    """The Gaussian frame's run (N_sp = 1000, 8 quanta, t ≤ 2) through the new integrator and through DOP853, both
    at the goal run's rtol 1e-6, against DOP853 at rtol 1e-10 on the same equation: every output is as close to
    the reference as DOP853's to within 10× or 1e-7 (measured at t ≤ 3: closer on ξ, ⟨σ_y⟩, the frame occupation
and the squares, 4.5× farther on ⟨σ_x⟩ (1.2e-7 against 2.7e-8) and on the atol-dominated top-shell population
(1.0e-6 against 3.5e-7))."""
    from opendicke import DickeModel
    from opendicke.quantum import build
    from opendicke.quantum.gaussian import gaussian_frame, propagate_gaussian

    problem = build(DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=1000, seed=1), 1, fock=2)
    times = np.linspace(0.0, 2.0, 21)
    frame = gaussian_frame(problem, 2.0)
    kw = dict(frame=frame, squares=True)
    ref = propagate_gaussian(problem, times, 8, rtol=1e-10, atol=1e-12, integrator="dop853", **kw).values
    new = propagate_gaussian(problem, times, 8, rtol=1e-6, atol=1e-8, **kw).values
    old = propagate_gaussian(problem, times, 8, rtol=1e-6, atol=1e-8, integrator="dop853", **kw).values
    for name, want in ref.items():
        scale = max(float(np.abs(want).max()), 1.0)
        err_new = float(np.abs(new[name] - want).max())
        err_old = float(np.abs(old[name] - want).max())
        assert err_new <= 10 * err_old + 1e-7 * scale, (name, err_new, err_old)
    assert np.any(new["overlap_1"] != old["overlap_1"])  # a different integrator did run
    with pytest.raises(ValueError, match="integrator"):
        propagate_gaussian(problem, times, 4, frame=frame, integrator="rk45")
