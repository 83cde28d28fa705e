"""Mean-field equations of motion, paper Eq. (7), batched over parameter points.

Per group k (or per spin: a "group" of one), with h_k = 2 g0 Σ_μ f[μ,k] · 2 Re α_μ:

    ṁ_x,k = −h_k m_y,k
    ṁ_y,k = −2Ω m_z,k + h_k m_x,k
    ṁ_z,k = 2Ω m_y,k
    α̇_μ   = −(iΩ_μ + κ_μ/2) α_μ − i g0 Σ_k w_k f[μ,k] m_z,k

with w_k = n_k/N_sp and α_μ = ⟨a_μ⟩/√N_sp (docs/physics-notes.md, Conventions). The state of one point is packed as a real
vector [m_x (K), m_y (K), m_z (K), Re α (M), Im α (M)]; a batch is an array of shape (B, 3K + 2M).
|m_k| is conserved exactly by these equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MeanFieldRHS", "pack", "unpack"]


def pack(bloch: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(..., K, 3) Bloch vectors and (..., M) complex α → (..., 3K + 2M) real state."""
    bloch = np.asarray(bloch, dtype=float)
    alpha = np.asarray(alpha, dtype=complex)
    spins = np.swapaxes(bloch, -1, -2).reshape(bloch.shape[:-2] + (-1,))
    return np.concatenate([spins, alpha.real, alpha.imag], axis=-1)


def unpack(y: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack`: (..., 3K + 2M) → (..., K, 3) Bloch vectors and (..., M) complex α."""
    K = n_groups
    M = (y.shape[-1] - 3 * K) // 2
    bloch = np.swapaxes(y[..., : 3 * K].reshape(y.shape[:-1] + (3, K)), -1, -2)
    alpha = y[..., 3 * K : 3 * K + M] + 1j * y[..., 3 * K + M :]
    return bloch, alpha


@dataclass(frozen=True, eq=False)
class MeanFieldRHS:
    """Batched right-hand side of Eq. (7) for B parameter points sharing one grouping.

    ``omega`` and ``g0`` have shape (B,), ``omega_modes`` and ``kappa`` shape (B, M); ``f`` is (M, K) and
    ``weights`` (K,).
    """

    f: np.ndarray
    weights: np.ndarray
    omega: np.ndarray
    g0: np.ndarray
    omega_modes: np.ndarray
    kappa: np.ndarray

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("f", np.asarray(self.f, dtype=float))
        set_("weights", np.asarray(self.weights, dtype=float))
        set_("_wf", (self.f * self.weights).T.copy())
        set_("_two_omega", (2.0 * np.asarray(self.omega, float))[:, None])
        set_("_four_g0", (4.0 * np.asarray(self.g0, float))[:, None])
        set_("_g0", np.asarray(self.g0, float)[:, None])
        set_("_half_kappa", 0.5 * np.asarray(self.kappa, float))
        set_("_omega_modes", np.asarray(self.omega_modes, float))

    @property
    def n_groups(self) -> int:
        return self.f.shape[1]

    @property
    def n_modes(self) -> int:
        return self.f.shape[0]

    @property
    def size(self) -> int:
        """Length of one point's state vector, 3K + 2M."""
        return 3 * self.n_groups + 2 * self.n_modes

    @property
    def batch_size(self) -> int:
        return self._g0.shape[0]

    def take(self, rows: np.ndarray) -> MeanFieldRHS:
        """The same equations for a subset of the batch."""
        return MeanFieldRHS(self.f, self.weights, self.omega[rows], self.g0[rows], self.omega_modes[rows], self.kappa[rows])

    def __call__(self, y: np.ndarray) -> np.ndarray:
        K, M = self.n_groups, self.n_modes
        sx, sy, sz = y[:, :K], y[:, K : 2 * K], y[:, 2 * K : 3 * K]
        ar, ai = y[:, 3 * K : 3 * K + M], y[:, 3 * K + M :]
        dy = np.empty_like(y)
        h = (ar @ self.f) * self._four_g0
        np.multiply(h, sy, out=dy[:, :K])
        np.negative(dy[:, :K], out=dy[:, :K])
        np.multiply(h, sx, out=dy[:, K : 2 * K])
        dy[:, K : 2 * K] -= self._two_omega * sz
        np.multiply(self._two_omega, sy, out=dy[:, 2 * K : 3 * K])
        drive = (sz @ self._wf) * self._g0
        dy[:, 3 * K : 3 * K + M] = self._omega_modes * ai - self._half_kappa * ar
        dy[:, 3 * K + M :] = -(self._omega_modes * ar) - self._half_kappa * ai - drive
        return dy
