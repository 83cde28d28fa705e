"""Independent references shared by the physics tests.

Nothing here imports opendicke: the mean-field equations are written out again from docs/physics-notes.md, Conventions (paper
Eq. 7) in a different form (precession ṡ = B × s with B = (2Ω, 0, h)), integrated with scipy's own
DOP853, and the ideal f matrix / fixed point are built from their definitions.
"""

from __future__ import annotations

import itertools
import os

# One BLAS thread for the whole test run: the solvers' products are thin, and multithreaded OpenBLAS on a busy
# 2-core machine made one Davidson test take 300 s instead of 4.7 s. Set before numpy loads its BLAS, and again
# through threadpoolctl in case a plugin imported numpy first.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from threadpoolctl import threadpool_limits

threadpool_limits(1)

# Tolerances of the reference integrations (the issue asks for rtol 1e-12).
REF_RTOL = 1e-12
REF_ATOL = 1e-14

# Paper Fig. 3 model: M = 4, Ω = 0.5, Ω_μ = Ω(μ + 2), κ = 1.
PAPER_OMEGA = 0.5
PAPER_OMEGA_MODES = PAPER_OMEGA * (np.arange(1, 5) + 2.0)
PAPER_KAPPA = np.ones(4)


def reference_rhs(couplings, weights, omega, omega_modes, kappa, g0):
    """Right-hand side of Eq. (7) for K spins (or groups) and M modes, written from docs/physics-notes.md, Conventions.

    State layout (ours, not the package's): [s (K×3, row-major), Re α (M), Im α (M)].
    Spin j precesses about B_j = (2Ω, 0, h_j), h_j = 2 g0 Σ_μ f[μ,j] · 2 Re α_μ, i.e.
    ṡ_x = −h s_y, ṡ_y = −2Ω s_z + h s_x, ṡ_z = 2Ω s_y; and
    α̇_μ = −(iΩ_μ + κ_μ/2) α_μ − i g0 Σ_j w_j f[μ,j] s_z^j   (w_j = 1/N_sp per spin, n_k/N_sp per group).
    """
    f = np.asarray(couplings, dtype=float)
    w = np.asarray(weights, dtype=float)
    M, K = f.shape
    omega_modes = np.asarray(omega_modes, dtype=float)
    kappa = np.broadcast_to(np.asarray(kappa, dtype=float), (M,))
    decay = 1j * omega_modes + 0.5 * kappa
    fw = f * w

    def rhs(t, y):
        sx, sy, sz = y[0 : 3 * K : 3], y[1 : 3 * K : 3], y[2 : 3 * K : 3]
        a = y[3 * K : 3 * K + M] + 1j * y[3 * K + M :]
        h = (4.0 * g0) * (a.real @ f)  # h_j = 2 g0 Σ_μ f[μ,j] · 2 Re α_μ
        out = np.empty_like(y)
        # ṡ = B × s with B = (2Ω, 0, h):  (B_y s_z − B_z s_y, B_z s_x − B_x s_z, B_x s_y − B_y s_x)
        out[0 : 3 * K : 3] = -h * sy
        out[1 : 3 * K : 3] = h * sx - (2.0 * omega) * sz
        out[2 : 3 * K : 3] = (2.0 * omega) * sy
        da = -decay * a - 1j * g0 * (fw @ sz)
        out[3 * K : 3 * K + M] = da.real
        out[3 * K + M :] = da.imag
        return out

    return rhs


def ref_pack(bloch, alpha):
    bloch = np.asarray(bloch, dtype=float)
    alpha = np.asarray(alpha, dtype=complex)
    return np.concatenate([bloch.ravel(), alpha.real, alpha.imag])


def ref_unpack(y, K, M):
    """(n, T) solution array → bloch (T, K, 3), alpha (T, M)."""
    y = np.asarray(y)
    T = y.shape[1]
    bloch = y[: 3 * K].T.reshape(T, K, 3)
    alpha = (y[3 * K : 3 * K + M] + 1j * y[3 * K + M :]).T
    return bloch, alpha


def reference_evolve(couplings, weights, bloch0, alpha0, times, *, omega, omega_modes, kappa, g0,
                     rtol=REF_RTOL, atol=REF_ATOL):
    """scipy DOP853 integration of :func:`reference_rhs` for ONE parameter point.

    Returns (bloch (T, K, 3), alpha (T, M), overlaps (T, M)) with ξ_μ = Σ_j w_j f[μ,j] s_z^j.
    """
    f = np.asarray(couplings, dtype=float)
    w = np.asarray(weights, dtype=float)
    M, K = f.shape
    rhs = reference_rhs(f, w, omega, omega_modes, kappa, g0)
    times = np.asarray(times, dtype=float)
    sol = solve_ivp(rhs, (times[0], times[-1]), ref_pack(bloch0, alpha0), method="DOP853",
                    t_eval=times, rtol=rtol, atol=atol)
    assert sol.success, sol.message
    bloch, alpha = ref_unpack(sol.y, K, M)
    overlaps = bloch[..., 2] @ (f * w).T
    return bloch, alpha, overlaps


def ideal_f(M: int) -> np.ndarray:
    """All ±1 columns with row 1 = +1, ordered with pattern 2 (+1 first), then pattern 3, ... ."""
    cols = [(1,) + c for c in itertools.product((1, -1), repeat=M - 1)]
    return np.array(cols, dtype=int).T


def hand_gauge_and_groups(G):
    """Gauge signs and groups of a pattern matrix, following the paper's Fig. 2 recipe literally.

    Returns (gauge signs (N,), list of (column tuple, sorted spin indices)) with empty groups dropped
    and the groups in the paper's order.
    """
    G = np.asarray(G, dtype=int)
    gauge = G[0].copy()
    gauged = G * gauge
    groups = []
    for col in ideal_f(G.shape[0]).T:
        members = [j for j in range(G.shape[1]) if np.array_equal(gauged[:, j], col)]
        if members:
            groups.append((tuple(int(c) for c in col), members))
    return gauge, groups


def fixed_point(omega, omega_nu, kappa_nu, g0):
    """docs/physics-notes.md, Conventions retrieval fixed point, written out: (g_c, z, s_x, α_ν)."""
    g_c = np.sqrt(0.5 * (omega / omega_nu) * (omega_nu**2 + kappa_nu**2 / 4))
    z = np.sqrt(1 - (g_c / g0) ** 4)
    sx = -((g_c / g0) ** 2)
    alpha_nu = -1j * g0 * z / (1j * omega_nu + kappa_nu / 2)
    return g_c, z, sx, alpha_nu


@pytest.fixture
def rng():
    return np.random.default_rng(20210608)
