"""Mean-field equations of motion, paper Eq. (7), batched over parameter points.

Per group k (or per spin: a "group" of one), with h_k = 2 g0 Σ_μ f[μ,k] · 2 Re α_μ:

    ṁ_x,k = −h_k m_y,k
    ṁ_y,k = −2Ω m_z,k + h_k m_x,k
    ṁ_z,k = 2Ω m_y,k
    α̇_μ   = −(iΩ_μ + κ_μ/2) α_μ − i g0 Σ_k w_k f[μ,k] m_z,k

with w_k = n_k/N_sp and α_μ = ⟨a_μ⟩/√N_sp (docs/physics-notes.md, Conventions). The state of one point is packed as a real
vector [m_x (K), m_y (K), m_z (K), Re α (M), Im α (M)]; a batch is an array of shape (B, 3K + 2M).
|m_k| is conserved exactly by these equations.

Individual spin dissipation (decay √γ↓ σ_-, pumping √γ↑ σ_+, dephasing √(γφ/2) σ_z on every spin; derived
from the Lindbladian in docs/spin-dissipation.md) adds the Bloch damping terms

    ṁ_x,k += −Γ⊥ m_x,k,   ṁ_y,k += −Γ⊥ m_y,k,   ṁ_z,k += −Γ∥ m_z,k + σ_k (γ↑ − γ↓),
    Γ⊥ = γφ + (γ↓ + γ↑)/2,   Γ∥ = γ↓ + γ↑,

with σ_k the gauge sign of group k (+1 per spin and for ungauged spins, −1 for gauged ones, which are pumped
where the others decay). |m_k| is then no longer conserved: it obeys the exact Bloch-length equation

    d|m_k|²/dt = 2 [−Γ⊥ (m_x,k² + m_y,k²) − Γ∥ m_z,k² + σ_k (γ↑ − γ↓) m_z,k],

which ``length_budget=True`` integrates alongside (K extra components Q_k(t) = ∫ d|m_k|²/dt dt at the end of
the state), so that |m_k(t)|² − |m_k(0)|² − Q_k(t) is a check of the integration as |m_k| drift is without
dissipation.
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
    gamma_down: np.ndarray | None = None  # (B,) individual spin rates; None: no spin dissipation
    gamma_up: np.ndarray | None = None
    gamma_phi: np.ndarray | None = None
    group_gauge: np.ndarray | None = None  # (K,) gauge sign per group (needed when γ↓ ≠ γ↑)
    length_budget: bool = False  # K extra state components integrating d|m_k|²/dt

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
        rates = [self.gamma_down, self.gamma_up, self.gamma_phi]
        dissipative = any(r is not None for r in rates)
        set_("_dissipative", dissipative)
        if dissipative:
            B = self._g0.shape[0]
            down, up, phi = (np.zeros(B) if r is None else np.broadcast_to(np.asarray(r, float), (B,)) for r in rates)
            set_("gamma_down", down)
            set_("gamma_up", up)
            set_("gamma_phi", phi)
            set_("_transverse", (phi + 0.5 * (down + up))[:, None])
            set_("_longitudinal", (down + up)[:, None])
            asym = up - down
            if self.group_gauge is None:
                if np.any(asym != 0):
                    raise ValueError(
                        "decay and pumping rates differ (γ↓ ≠ γ↑): the grouping must be split by gauge sign "
                        "(reduction.reduce does this for the model) and carry group_gauge"
                    )
                set_("_source", np.zeros((B, self.n_groups)))
            else:
                gauge = np.asarray(self.group_gauge, float)
                if gauge.shape != (self.n_groups,):
                    raise ValueError(f"group_gauge must have one sign per group ({self.n_groups}), got shape {gauge.shape}")
                set_("_source", asym[:, None] * gauge[None, :])
        elif self.length_budget:
            set_("_transverse", np.zeros((self._g0.shape[0], 1)))
            set_("_longitudinal", np.zeros((self._g0.shape[0], 1)))
            set_("_source", np.zeros((self._g0.shape[0], self.n_groups)))

    @property
    def n_groups(self) -> int:
        return self.f.shape[1]

    @property
    def n_modes(self) -> int:
        return self.f.shape[0]

    @property
    def size(self) -> int:
        """Length of one point's state vector, 3K + 2M (+ K with ``length_budget``)."""
        return 3 * self.n_groups + 2 * self.n_modes + (self.n_groups if self.length_budget else 0)

    @property
    def batch_size(self) -> int:
        return self._g0.shape[0]

    def take(self, rows: np.ndarray) -> MeanFieldRHS:
        """The same equations for a subset of the batch."""
        pick = lambda r: None if r is None or not self._dissipative else r[rows]  # noqa: E731
        return MeanFieldRHS(self.f, self.weights, self.omega[rows], self.g0[rows], self.omega_modes[rows], self.kappa[rows],
                            pick(self.gamma_down), pick(self.gamma_up), pick(self.gamma_phi), self.group_gauge,
                            self.length_budget)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        K, M = self.n_groups, self.n_modes
        sx, sy, sz = y[:, :K], y[:, K : 2 * K], y[:, 2 * K : 3 * K]
        ar, ai = y[:, 3 * K : 3 * K + M], y[:, 3 * K + M : 3 * K + 2 * M]
        dy = np.empty_like(y)
        h = (ar @ self.f) * self._four_g0
        np.multiply(h, sy, out=dy[:, :K])
        np.negative(dy[:, :K], out=dy[:, :K])
        np.multiply(h, sx, out=dy[:, K : 2 * K])
        dy[:, K : 2 * K] -= self._two_omega * sz
        np.multiply(self._two_omega, sy, out=dy[:, 2 * K : 3 * K])
        drive = (sz @ self._wf) * self._g0
        dy[:, 3 * K : 3 * K + M] = self._omega_modes * ai - self._half_kappa * ar
        dy[:, 3 * K + M : 3 * K + 2 * M] = -(self._omega_modes * ar) - self._half_kappa * ai - drive
        if self._dissipative:
            dy[:, :K] -= self._transverse * sx
            dy[:, K : 2 * K] -= self._transverse * sy
            dy[:, 2 * K : 3 * K] += self._source - self._longitudinal * sz
        if self.length_budget:
            dy[:, 3 * K + 2 * M :] = 2.0 * (-self._transverse * (sx * sx + sy * sy) - self._longitudinal * sz * sz + self._source * sz)
        return dy
