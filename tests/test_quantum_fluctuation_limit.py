"""The Gaussian frame at large N_sp against the leading-order fluctuation theory, derived here independently.

Reference (built in this file, no package code): M = 1, one group of N spins (N = N_sp, the paper's N for M = 1),
pattern 1, i.e. all spins up in the gauged frame (every G[1, j] σ_z^j = +1) and the mode in vacuum. With
s = ⟨S⟩/N and α = ⟨a⟩/√N the exact Heisenberg equations of the first moments are the mean-field equations
(docs/physics.md, Eq. 7) with products of operators in place of products of numbers (spin and boson operators commute):

    d(S_x/N)/dt = −2 g0 ((a + a†)/√N)(S_y/N),    d(S_y/N)/dt = −2Ω S_z/N + 2 g0 ((a + a†)/√N)(S_x/N),
    d(S_z/N)/dt = 2Ω S_y/N,                      d(a/√N)/dt = −(iΩ_1 + κ/2) a/√N − i g0 S_z/N.

Write the fluctuations y = (δS_x, δS_y, δS_z)/√N and δa = q + ip (Cartesian spin components, no
Holstein–Primakoff boson: a different parametrisation from the frame's). To leading order in 1/N their symmetrised
covariance C obeys the linear equation Ċ = A C + C Aᵀ + D, with A the Jacobian of the mean-field flow in the
variables (s_x, s_y, s_z, Re α, Im α) and D = diag(0, 0, 0, κ/4, κ/4) from the loss (vacuum noise of q and p is
1/4 each); at t = 0, C = diag(1, 1, 0, 1/4, 1/4) (a spin coherent state along z: Var S_x = Var S_y = N).
The first moments move away from mean field at order 1/N, ⟨y⟩ = μ/√N, with μ̇ = A μ + b(C), b collecting the
covariances of the two bilinear terms: b_x = −4 g0 C(q, y_y), b_y = +4 g0 C(q, y_x), μ(0) = 0. Then, as N → ∞,

    N (ξ − ξ_MF) → μ_z,   N (n − n_MF) → 2 (Re α μ_q + Im α μ_p) + C_qq + C_pp − ½,
    N · E_N → C_xx + C_yy + C_zz + 2 (C_qq + C_pp)            (paper Eq. 9: Σ_a ⟨(S_a/N − m_a)²⟩ + ⟨A†A + AA†⟩).

Measured with this reference: peak N·E_N = 30.771 at t = 4.43 and N·E_N(4) = 26.323 (Ω = 0.5, Ω_1 = 1.5,
κ = 1, g0 = 1), the "N → ∞" row of docs/exact-dynamics.md.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from opendicke import DickeModel
from opendicke.quantum import solve

OMEGA, OMEGA_1, KAPPA, G0 = 0.5, 1.5, 1.0, 1.0


def linear_fluctuations(times: np.ndarray) -> dict[str, np.ndarray]:
    """Mean field and the leading-order fluctuation theory of the module docstring at ``times``."""
    D = np.diag([0.0, 0.0, 0.0, KAPPA / 4, KAPPA / 4])

    def jacobian(s, al):
        sx, sy, _sz = s
        h = 4 * G0 * al[0]  # 2 g0 (α + α*)
        A = np.zeros((5, 5))
        A[0, 1], A[0, 3] = -h, -4 * G0 * sy
        A[1, 0], A[1, 2], A[1, 3] = h, -2 * OMEGA, 4 * G0 * sx
        A[2, 1] = 2 * OMEGA
        A[3, 3], A[3, 4] = -KAPPA / 2, OMEGA_1
        A[4, 2], A[4, 3], A[4, 4] = -G0, -OMEGA_1, -KAPPA / 2
        return A

    def rhs(_t, y):
        s, al = y[:3], y[3:5]
        C, mu = y[5:30].reshape(5, 5), y[30:35]
        h = 4 * G0 * al[0]
        ds = [-h * s[1], -2 * OMEGA * s[2] + h * s[0], 2 * OMEGA * s[1]]
        dal = [-KAPPA / 2 * al[0] + OMEGA_1 * al[1], -OMEGA_1 * al[0] - KAPPA / 2 * al[1] - G0 * s[2]]
        A = jacobian(s, al)
        b = np.array([-4 * G0 * C[3, 1], 4 * G0 * C[3, 0], 0.0, 0.0, 0.0])
        return np.concatenate([ds, dal, (A @ C + C @ A.T + D).ravel(), A @ mu + b])

    y0 = np.concatenate([[0.0, 0.0, 1.0, 0.0, 0.0], np.diag([1.0, 1.0, 0.0, 0.25, 0.25]).ravel(), np.zeros(5)])
    y = solve_ivp(rhs, (0.0, float(times[-1])), y0, t_eval=times, method="DOP853", rtol=1e-11, atol=1e-12).y.T
    C, mu = y[:, 5:30].reshape(-1, 5, 5), y[:, 30:35]
    re, im = y[:, 3], y[:, 4]
    return {
        "overlap_meanfield": y[:, 2],
        "overlap": mu[:, 2],
        "occupation": 2 * (re * mu[:, 3] + im * mu[:, 4]) + C[:, 3, 3] + C[:, 4, 4] - 0.5,
        "cost": C[:, 0, 0] + C[:, 1, 1] + C[:, 2, 2] + 2 * (C[:, 3, 3] + C[:, 4, 4]),
    }


def test_reference_limit_values():
    """The reference's own checks: N·E_N(0) = 3 (2/N + 1/N, docs/physics-notes.md), and the values quoted in the docs."""
    t = np.linspace(0.0, 10.0, 1001)
    ref = linear_fluctuations(t)
    assert ref["cost"][0] == pytest.approx(3.0, abs=1e-12)
    assert ref["overlap"][0] == 0.0 and ref["occupation"][0] == pytest.approx(0.0, abs=1e-12)
    i = int(np.argmax(ref["cost"]))
    assert ref["cost"][i] == pytest.approx(30.771, abs=2e-3) and t[i] == pytest.approx(4.43, abs=0.011)
    assert ref["cost"][400] == pytest.approx(26.323, abs=2e-3)


def scaled_deviations(n_spins: int, times: np.ndarray, quanta: int, ref: dict, rtol: float = 1e-6) -> dict[str, np.ndarray]:
    """N·(ξ − ξ_MF), N·(n − n_MF), N·E_N of the Gaussian frame at a fixed truncation (ξ_MF from the reference)."""
    model = DickeModel(omega=OMEGA, omega_modes=[OMEGA_1], kappa=KAPPA, g0=G0, n_spins=n_spins, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the fixed truncation's own indicator is not the point here
        ds = solve(model, 1, times=times, frame="gaussian", fock=quanta, rtol=rtol, atol=rtol / 100)
    N = n_spins
    return {
        "overlap": N * (ds["overlap"].values[:, 0] - ref["overlap_meanfield"]),
        "occupation": N * (ds["occupation"].values[:, 0] - ds["occupation_meanfield"].values[:, 0]),
        "cost": N * ds["cost"].values,
    }


def check_one_over_n(sizes, times, quanta, rate_range=(3.0, 5.5), final=None):
    """The distance to the N → ∞ theory falls by ≈ 4 per factor 4 in N_sp (the 1/N rate) for every quantity."""
    ref = linear_fluctuations(times)
    runs = [scaled_deviations(n, times, quanta, ref) for n in sizes]
    errors = {}
    for name in ("overlap", "occupation", "cost"):
        err = np.array([np.max(np.abs(r[name] - ref[name])) for r in runs])
        errors[name] = err
        ratios = err[:-1] / err[1:]
        factor = sizes[1] / sizes[0]
        slope = np.polyfit(np.log(sizes), np.log(err), 1)[0]
        assert np.all(ratios >= rate_range[0] * factor / 4) and np.all(ratios <= rate_range[1] * factor / 4), \
            (name, err, ratios)
        assert -1.25 <= slope <= -0.8, (name, err, slope)
        # and the limit itself is what the exact dynamics approaches: at the largest N_sp within 1 % of its scale
        assert err[-1] <= (final or 1e-2) * np.max(np.abs(ref[name])), (name, err)
    return errors


def test_gaussian_frame_approaches_the_linear_theory_as_one_over_n():
    """N_sp = 1000, 4000, 16000, t ≤ 2.25 (14 quanta, where the frame's truncation is far below 1/N). Measured
    max_t distances to the limit: N·E_N 0.036, 0.0091, 0.0022; N·(ξ − ξ_MF) 5.5e-3, 1.5e-3, 3.6e-4;
    N·(n − n_MF) 2.3e-3, 5.5e-4, 1.4e-4 (ratios 3.8–4.2 per factor 4; about 1 s of CPU each)."""
    check_one_over_n([1000, 4000, 16000], np.linspace(0.0, 2.25, 10), 14)


@pytest.mark.slow
def test_gaussian_frame_approaches_the_linear_theory_through_the_peak_of_the_cost():
    """t ≤ 5, through the peak of N·E_N (t = 4.43) where the fluctuations are squeezed most, 20 quanta. Measured
    distances to the limit for N_sp = 4000, 16000, 64000: N·E_N 2.36, 0.56, 0.10; N·(ξ − ξ_MF) 2.15, 0.58, 0.18;
    N·(n − n_MF) 1.30, 0.36, 0.066 (about 10 s of CPU each). At fixed quanta the frame's truncation error falls as
    1/N too (the non-Gaussian part of the frame state that reaches the high shells is a 1/N effect), so this
    checks the approach to the limit, not the size of the 1/N correction."""
    check_one_over_n([4000, 16000, 64000], np.linspace(0.0, 5.0, 21), 20)
