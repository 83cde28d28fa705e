"""Analytic Jacobian of the mean-field equations (paper Eq. 7), batched over parameter points.

With the packed state [m_x (K), m_y (K), m_z (K), Re α (M), Im α (M)] of
:mod:`opendicke.meanfield.equations` and h_k = 4 g0 Σ_μ f[μ,k] Re α_μ, the non-zero entries are

    ∂ṁ_x,k/∂m_y,k = −h_k            ∂ṁ_x,k/∂Re α_μ = −4 g0 f[μ,k] m_y,k
    ∂ṁ_y,k/∂m_x,k = +h_k            ∂ṁ_y,k/∂m_z,k  = −2Ω
    ∂ṁ_y,k/∂Re α_μ = +4 g0 f[μ,k] m_x,k
    ∂ṁ_z,k/∂m_y,k = +2Ω
    ∂Re α̇_μ/∂Re α_μ = −κ_μ/2        ∂Re α̇_μ/∂Im α_μ = +Ω_μ
    ∂Im α̇_μ/∂Re α_μ = −Ω_μ          ∂Im α̇_μ/∂Im α_μ = −κ_μ/2
    ∂Im α̇_μ/∂m_z,k = −g0 w_k f[μ,k]

The spin part is the linearisation of ṁ_k = B_k × m_k with B_k = (2Ω, 0, h_k); the group lengths |m_k|
are conserved, so ∇|m_k|² is a left null vector of the Jacobian at every state.

With individual spin dissipation (docs/spin-dissipation.md) the diagonal gains ∂ṁ_x,k/∂m_x,k = ∂ṁ_y,k/∂m_y,k
= −Γ⊥ and ∂ṁ_z,k/∂m_z,k = −Γ∥, and the lengths are no longer conserved. With ``length_budget=True`` the
rows of the budget components Q̇_k = 2[−Γ⊥(m_x² + m_y²) − Γ∥ m_z² + σ_k(γ↑ − γ↓) m_z] are included too.
"""

from __future__ import annotations

import numpy as np

from .equations import MeanFieldRHS

__all__ = ["jacobian"]


def jacobian(rhs: MeanFieldRHS, y: np.ndarray) -> np.ndarray:
    """∂ẏ/∂y of Eq. (7) for every point of the batch: states (B, n) → Jacobians (B, n, n)."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    K, M = rhs.n_groups, rhs.n_modes
    B, n = y.shape
    if n != rhs.size:
        raise ValueError(f"state vectors must have length 3K + 2M = {rhs.size}, got {n}")
    if B != rhs.batch_size:
        raise ValueError(f"batch of {B} states for a right-hand side of {rhs.batch_size} points")
    f = rhs.f  # (M, K)
    g0 = np.asarray(rhs.g0, float)[:, None]  # (B, 1)
    two_omega = 2.0 * np.asarray(rhs.omega, float)  # (B,)
    omega_modes = np.asarray(rhs.omega_modes, float)  # (B, M)
    half_kappa = 0.5 * np.asarray(rhs.kappa, float)  # (B, M)

    sx, sy = y[:, :K], y[:, K : 2 * K]
    ar = y[:, 3 * K : 3 * K + M]
    h = 4.0 * g0 * (ar @ f)  # (B, K)

    ix, iy, iz = np.arange(K), np.arange(K, 2 * K), np.arange(2 * K, 3 * K)
    ir, ii = np.arange(3 * K, 3 * K + M), np.arange(3 * K + M, 3 * K + 2 * M)
    J = np.zeros((B, n, n))
    J[:, ix, iy] = -h
    J[:, iy, ix] = h
    J[:, iy, iz] = -two_omega[:, None]
    J[:, iz, iy] = two_omega[:, None]
    # field derivative: ∂h_k/∂Re α_μ = 4 g0 f[μ,k]
    dh = 4.0 * g0[:, :, None] * f.T[None, :, :]  # (B, K, M)
    J[:, ix[:, None], ir[None, :]] = -dh * sy[:, :, None]
    J[:, iy[:, None], ir[None, :]] = dh * sx[:, :, None]
    J[:, ir, ir] = -half_kappa
    J[:, ir, ii] = omega_modes
    J[:, ii, ir] = -omega_modes
    J[:, ii, ii] = -half_kappa
    J[:, ii[:, None], iz[None, :]] = -(g0[:, :, None] * (rhs.weights * f)[None, :, :])  # (B, M, K)
    if rhs._dissipative or rhs.length_budget:
        J[:, ix, ix] -= rhs._transverse
        J[:, iy, iy] -= rhs._transverse
        J[:, iz, iz] -= rhs._longitudinal
    if rhs.length_budget:
        iq = np.arange(3 * K + 2 * M, 3 * K + 2 * M + K)
        sz = y[:, 2 * K : 3 * K]
        J[:, iq, ix] = -4.0 * rhs._transverse * sx
        J[:, iq, iy] = -4.0 * rhs._transverse * sy
        J[:, iq, iz] = -4.0 * rhs._longitudinal * sz + 2.0 * rhs._source
    return J
