"""Exact finite-N dynamics in a frame co-moving with the mean-field solution, truncated in the fluctuations.

The frame
---------
Let s_r(t) (unit Bloch vector of block r) and α_μ(t) (per spin) be the mean-field solution from the
initial state (docs/physics-notes.md; one Bloch vector per block of :mod:`.problem`), and β_μ = √N_sp α_μ. The
mean-field Hamiltonian of block r is c_r(t)·S_r with c_r = (Ω, 0, 2 g0 Σ_μ f[μ,r] Re α_μ) (Pauli S), so
s_r rotates as ṡ_r = 2 c_r × s_r. The time-dependent unitary

    U(t) = Π_r V_r(t) R_r ⊗ Π_μ D_μ(β_μ(t)),   i dV_r/dt = (c_r(t)·S_r) V_r,   V_r(0) = 1,

(R_r a fixed rotation taking ẑ to s_r(0), D the displacement) maps the frame to the lab: ρ = U ρ̃ U†.
With U† S_{a,r} U = Σ_d W^r_{ad}(t) S'_{d,r}, the columns of W^r ∈ SO(3) rotate like the Bloch vector
(dw/dt = 2 c_r × w; the third column is s_r) and U† a_μ U = b_μ + β_μ. The frame generator is
H̃ = U†HU − iU†U̇ with the same collapse operators √κ_μ b_μ (the displacement of the jump operator is a
Hamiltonian term (iκ/2)(β* b − β b†)). Because (s, α) solve the mean-field equations *exactly*, every term
linear in b, b† and every c-number spin field cancels, and what remains is

    H̃(t) = Σ_μ Ω_μ b_μ†b_μ + (g0/√N_sp) Σ_{μ,r} f[μ,r] (b_μ + b_μ†) [W^r_zx S'_x + W^r_zy S'_y + W^r_zz (S'_z − n_r)]_r,

an exact rewriting (no approximation): the spins only move through their coupling to the boson
fluctuations b_μ. In the frame the initial state is |k = 0⟩ per block ⊗ the vacuum per mode. Near mean
field the state stays close to that: block r is truncated to the Dicke states |j, j − k⟩ of the rotated
spin with k < ``spin_levels[r]`` (S'_z = n_r − 2k, S'_+|k⟩ = 2√(k(n_r − k + 1))|k − 1⟩) and mode μ to
``fock[μ]`` levels of b_μ. The Holstein-Primakoff scaling S'_x ≈ √n_r (c + c†) makes the first two terms
O(1) at any N and the W_zz term O(1/√N): the truncation needed is set by the fluctuations, not by N.
With ``spin_levels[r] = n_r + 1`` the spin part is exact (only the displaced bosons are truncated).

Observables go back to the lab exactly: ⟨S_{a,r}⟩ = Σ_d W^r_{ad} ⟨S'_{d,r}⟩, ⟨a_μ⟩ = β_μ + ⟨b_μ⟩,
⟨a_μ†a_μ⟩ = |β_μ|² + 2 Re(β_μ*⟨b_μ⟩) + ⟨b_μ†b_μ⟩, and second moments through Σ W W ⟨S'S'⟩.

Solver
------
The mean field (with W^r) is integrated once to 1e-13 (DOP853, dense output). The master equation for ρ̃
is integrated with an explicit DOP853 on the dense d × d matrix: K(t) = −iH̃(t) − ½Σκ b†b is a sparse
matrix whose values are updated in place from precomputed term data, and dρ̃/dt = X + X† + Σ_μ κ_μ b_μ ρ̃ b_μ†
with X = K ρ̃ (ρ̃ is Hermitian, so ρ̃K† = X†), computed as Y + Y† with Y = Kρ̃ + ½Σκ b ρ̃ b† so that every
stage is Hermitian to the last bit: three sparse-times-dense products per step stage (M = 1).

Measurements of the co-moving frame: docs/exact-dynamics.md.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .basis import Basis, search
from .problem import QuantumProblem, _embed, _fock_tuple

__all__ = [
    "MeanFieldFrame", "ComovingProblem", "FramePropagation", "TruncationSearch", "comoving", "mean_field_frame",
    "propagate_comoving", "propagate_plain", "search_truncation", "first_truncation", "lab_moments", "MAX_COMOVING_DIM", "ComovingBasis",
]

_COMPONENTS = ("x", "y", "z")


# ------------------------------------------------------------------------------------ mean-field frame
def _frame_matrix(v: np.ndarray) -> np.ndarray:
    """A rotation matrix (columns e1, e2, e3 right-handed) with third column the unit vector ``v``."""
    e3 = np.asarray(v, float) / np.linalg.norm(v)
    ref = np.array([1.0, 0.0, 0.0]) if abs(e3[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = ref - (ref @ e3) * e3
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    return np.stack([e1, e2, e3], axis=1)


@dataclass(frozen=True, eq=False)
class MeanFieldFrame:
    """The mean-field solution per block that defines the co-moving frame (dense output over [0, t_final]).

    ``W(t)`` → (R, 3, 3) rotation matrices (lab component a, frame axis d; third column the Bloch vector),
    ``beta(t)`` → (M,) complex, √N_sp α_μ(t).
    """

    problem: QuantumProblem
    t_final: float
    _sol: object

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        y = self._sol(t)
        R, M = self.problem.n_blocks, self.problem.n_modes
        W = y[: 9 * R].reshape(R, 3, 3)
        beta = y[9 * R: 9 * R + M] + 1j * y[9 * R + M:]
        return W, beta

    def W(self, t: float) -> np.ndarray:
        return self.state(t)[0]

    def beta(self, t: float) -> np.ndarray:
        return self.state(t)[1]


def mean_field_frame(problem: QuantumProblem, t_final: float, rtol: float = 1e-13, atol: float = 1e-13) -> MeanFieldFrame:
    """Integrate the per-block mean-field equations (docs/physics-notes.md) with the frame matrices W^r (dw/dt = 2 c_r × w)."""
    from scipy.integrate import solve_ivp

    m = problem.model
    R, M = problem.n_blocks, problem.n_modes
    f = problem.block_f  # (M, R)
    n = problem.block_sizes.astype(float)
    N = float(problem.n_spins)
    g0, omega = m.g0, m.omega
    decay = 1j * np.asarray(m.omega_modes) + 0.5 * np.asarray(m.kappa)

    def rhs(_t, y):
        W = y[: 9 * R].reshape(R, 3, 3)
        beta = y[9 * R: 9 * R + M] + 1j * y[9 * R + M:]
        cz = (g0 / math.sqrt(N)) * (f.T @ (2.0 * beta.real))  # (R,)
        # 2 c × w for every column, c = (Ω, 0, cz)
        wx, wy, wz = W[:, 0, :], W[:, 1, :], W[:, 2, :]
        dW = np.empty_like(W)
        dW[:, 0, :] = 2.0 * (-cz[:, None] * wy)
        dW[:, 1, :] = 2.0 * (cz[:, None] * wx - omega * wz)
        dW[:, 2, :] = 2.0 * (omega * wy)
        dbeta = -decay * beta - 1j * (g0 / math.sqrt(N)) * (f @ (n * W[:, 2, 2]))
        return np.concatenate([dW.ravel(), dbeta.real, dbeta.imag])

    W0 = np.stack([_frame_matrix(v) for v in problem.block_vectors])
    beta0 = problem.initial.initial_alpha(m) * math.sqrt(N)
    y0 = np.concatenate([W0.ravel(), beta0.real, beta0.imag])
    sol = solve_ivp(rhs, (0.0, float(t_final)), y0, method="DOP853", rtol=rtol, atol=atol, dense_output=True)
    if not sol.success:  # pragma: no cover
        raise RuntimeError(f"mean-field frame integration failed: {sol.message}")
    return MeanFieldFrame(problem=problem, t_final=float(t_final), _sol=sol.sol)


# ------------------------------------------------------------------------------------ truncated frame problem
def _rotated_spin(n: int, levels: int) -> dict[str, sp.csr_matrix]:
    """S'_x, S'_y and S'_z − n on the Dicke states |j, j − k⟩, k = 0 … levels − 1 (Pauli convention)."""
    k = np.arange(levels, dtype=float)
    up = 2.0 * np.sqrt(k[1:] * (n - k[1:] + 1.0))  # ⟨k−1| S'_+ |k⟩
    sp_ = sp.diags(up, 1, shape=(levels, levels), format="csr", dtype=complex)
    sm = sp_.T.tocsr()
    return {
        "x": (0.5 * (sp_ + sm)).tocsr(),
        "y": (-0.5j * (sp_ - sm)).tocsr(),
        "z": sp.diags(-2.0 * k, 0, format="csr", dtype=complex),  # S'_z − n
    }


def _spin_levels_tuple(levels, sizes: np.ndarray) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(levels))
    if arr.ndim != 1 or arr.size not in (1, sizes.size):
        raise ValueError(f"spin_levels must be one value or one per block ({sizes.size}), got {levels!r}")
    if arr.size == 1:
        arr = np.full(sizes.size, arr[0])
    if not all(float(c).is_integer() and c >= 1 for c in arr):
        raise ValueError(f"spin_levels must be integers ≥ 1 (Dicke states k = 0 … levels − 1), got {levels!r}")
    return tuple(int(min(c, s + 1)) for c, s in zip(arr, sizes))


@dataclass(frozen=True, eq=False)
class ComovingProblem:
    """The exact problem of ``problem`` in the co-moving mean-field frame, truncated to ``spin_levels``
    rotated Dicke states per block and ``fock`` displaced Fock levels per mode (see the module docstring).

    Build it with :func:`comoving`. Factor order as in :class:`QuantumProblem`: blocks, then modes.
    """

    problem: QuantumProblem
    spin_levels: tuple[int, ...]
    fock: tuple[int, ...]

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(self.spin_levels) + tuple(self.fock)

    @property
    def dim(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))

    @property
    def n_blocks(self) -> int:
        return self.problem.n_blocks

    @property
    def n_modes(self) -> int:
        return self.problem.n_modes

    @property
    def spin_exact(self) -> bool:
        """True when no block is truncated (spin_levels = n_r + 1 everywhere)."""
        return all(c == int(n) + 1 for c, n in zip(self.spin_levels, self.problem.block_sizes))

    def with_truncation(self, spin_levels=None, fock=None) -> ComovingProblem:
        return comoving(self.problem, self.spin_levels if spin_levels is None else spin_levels,
                        self.fock if fock is None else fock)

    # ---------------------------------------------------------------- local operators on the full space
    @cached_property
    def spin_ops(self) -> list[dict[str, sp.csr_matrix]]:
        """Per block: S'_x, S'_y, S'_z − n_r on the full (truncated) space."""
        return [
            {a: _embed(op, r, self.dims) for a, op in _rotated_spin(int(n), c).items()}
            for r, (n, c) in enumerate(zip(self.problem.block_sizes, self.spin_levels))
        ]

    @cached_property
    def destroy_ops(self) -> list[sp.csr_matrix]:
        out = []
        for mu, c in enumerate(self.fock):
            b = sp.diags(np.sqrt(np.arange(1, c, dtype=float)), 1, shape=(c, c), format="csr", dtype=complex)
            out.append(_embed(b, self.n_blocks + mu, self.dims))
        return out

    def _level_diagonal(self, factor: int, level: int) -> np.ndarray:
        from .problem import _diag_embed

        v = np.zeros(self.dims[factor])
        v[level] = 1.0
        return _diag_embed(v, factor, self.dims)

    # ---------------------------------------------------------------- generator K(t) = −iH̃(t) − ½ Σ κ b†b
    @cached_property
    def _generator_terms(self):
        """K(t) = K0 + Σ_{r,d} coef_{r,d}(t) K_{r,d} with coef_{r,d} = (g0/√N) W^r_{z,d}(t), all on one sparsity
        pattern: returns (pattern CSR with K0 values, data of K0, stacked data of the K_{r,d})."""
        m = self.problem.model
        f = self.problem.block_f
        K0 = sp.csr_matrix((self.dim, self.dim), dtype=complex)
        for mu, b in enumerate(self.destroy_ops):
            nb = (b.getH() @ b).tocsr()
            K0 = K0 + (-1j * m.omega_modes[mu] - 0.5 * m.kappa[mu]) * nb
        terms = []
        for r in range(self.n_blocks):
            quad = sp.csr_matrix((self.dim, self.dim), dtype=complex)
            for mu, b in enumerate(self.destroy_ops):
                if f[mu, r] != 0:
                    quad = quad + f[mu, r] * (b + b.getH())
            for a in _COMPONENTS:
                terms.append((-1j * (quad @ self.spin_ops[r][a])).tocsr())
        total = K0.copy()
        for T in terms:
            total = total + abs(T)
        pattern = total.tocsr()
        pattern.sum_duplicates()
        pattern.sort_indices()

        def on_pattern(A):
            A = A.tocoo()
            out = np.zeros(pattern.nnz, dtype=complex)
            np.add.at(out, _positions(pattern, A.row, A.col), A.data)
            return out

        d0 = on_pattern(K0)
        dterms = np.stack([on_pattern(T) for T in terms]) if terms else np.zeros((0, pattern.nnz), complex)
        K = pattern.copy()
        K.data = d0.copy()
        return K, d0, dterms

    def coefficients(self, W: np.ndarray) -> np.ndarray:
        """coef_{r,d} = (g0/√N_sp) W^r_{z,d}, flattened in the order of the generator terms (r, then d)."""
        return (self.problem.model.g0 / math.sqrt(self.problem.n_spins)) * W[:, 2, :].ravel()

    # ---------------------------------------------------------------- initial state
    @cached_property
    def initial_ket(self) -> np.ndarray:
        psi = np.zeros(self.dim, dtype=complex)
        psi[0] = 1.0  # k = 0 on every block, vacuum of every displaced mode
        return psi


def _positions(A: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Positions in ``A.data`` of the entries (rows, cols) (all present in the sorted pattern A)."""
    n = np.int64(A.shape[1])
    keys = np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(A.indptr)) * n + A.indices
    wanted = rows.astype(np.int64) * n + cols
    pos = np.searchsorted(keys, wanted)
    if np.any(keys[np.minimum(pos, keys.size - 1)] != wanted):  # pragma: no cover - construction error
        raise RuntimeError("entry outside the generator's sparsity pattern")
    return pos


def comoving(problem: QuantumProblem, spin_levels=None, fock=None) -> ComovingProblem:
    """The co-moving-frame problem of ``problem`` with ``spin_levels`` rotated Dicke states per block
    (default: all, n_r + 1, the spin part exact) and ``fock`` displaced Fock levels per mode (default: the
    problem's cutoff)."""
    sizes = np.asarray(problem.block_sizes)
    levels = _spin_levels_tuple(sizes + 1 if spin_levels is None else spin_levels, sizes)
    fock_t = _fock_tuple(problem.fock if fock is None else fock, problem.n_modes)
    return ComovingProblem(problem=problem, spin_levels=levels, fock=fock_t)


# ------------------------------------------------------------------------------------ observables
def _trace_with(op: sp.coo_matrix, rho: np.ndarray) -> complex:
    """tr(O ρ) = Σ O_ij ρ_ji for a COO operator."""
    return complex(np.sum(op.data * rho[op.col, op.row]))


def lab_moments(problem: QuantumProblem, s_frame: np.ndarray, b_mean: np.ndarray, n_mean: np.ndarray,
                W: np.ndarray, beta: np.ndarray) -> dict[str, complex]:
    """Lab observables from the co-moving-frame moments: s_frame (R, 3) = ⟨S'_{x,y,z}⟩ per block,
    b_mean and n_mean = ⟨b_μ⟩, ⟨b_μ†b_μ⟩ (the displaced bosons), W and β of the mean-field frame."""
    N = problem.n_spins
    out = {}
    s_lab = np.einsum("rad,rd->ra", W, s_frame)
    f = problem.block_f
    for mu in range(problem.n_modes):
        out[f"overlap_{mu + 1}"] = complex(np.sum(f[mu] * s_lab[:, 2]) / N)
        out[f"alpha_{mu + 1}"] = (beta[mu] + b_mean[mu]) / math.sqrt(N)
        out[f"occupation_{mu + 1}"] = complex((abs(beta[mu]) ** 2 + 2 * np.real(np.conj(beta[mu]) * b_mean[mu])
                                               + n_mean[mu]) / N)
        out[f"fluct_occupation_{mu + 1}"] = complex(n_mean[mu] - abs(b_mean[mu]) ** 2)
    gsizes = problem.grouping.sizes.astype(float)
    for k in range(problem.n_groups):
        blocks = np.flatnonzero(problem.block_group == k)
        for i, a in enumerate("xyz"):
            out[f"m{a}_{k + 1}"] = complex(s_lab[blocks, i].sum() / gsizes[k])
    return out


@dataclass(frozen=True, eq=False)
class _FrameObservables:
    """Frame-side operators measured at every output time, and their map back to the lab."""

    cp: ComovingProblem
    squares: bool
    tail: int

    @cached_property
    def spin(self):
        return [{a: op.tocoo() for a, op in ops.items()} for ops in self.cp.spin_ops]

    @cached_property
    def modes(self):
        return [(b.tocoo(), np.real((b.getH() @ b).diagonal())) for b in self.cp.destroy_ops]

    @cached_property
    def diagonals(self) -> dict[str, np.ndarray]:
        cp = self.cp
        out = {}
        for r in range(cp.n_blocks):
            out[f"spintop_{r + 1}"] = cp._level_diagonal(r, cp.spin_levels[r] - 1)
        for mu in range(cp.n_modes):
            c = cp.fock[mu]
            out[f"top_{mu + 1}"] = cp._level_diagonal(cp.n_blocks + mu, c - 1)
            for below in range(1, min(self.tail, c - 1) + 1):
                out[f"level_{mu + 1}_{below}"] = cp._level_diagonal(cp.n_blocks + mu, c - 1 - below)
        return out

    def measure(self, rho: np.ndarray, W: np.ndarray, beta: np.ndarray) -> dict[str, complex]:
        cp = self.cp
        pop = np.real(np.diagonal(rho))
        out = {name: complex(d @ pop) for name, d in self.diagonals.items()}
        s_frame = np.array([[np.real(_trace_with(self.spin[r][a], rho)) for a in _COMPONENTS]
                            for r in range(cp.n_blocks)])
        s_frame[:, 2] += cp.problem.block_sizes  # S'_z = (S'_z − n) + n
        b_mean = np.array([_trace_with(b, rho) for b, _ in self.modes])
        n_mean = np.array([float(nb @ pop) for _, nb in self.modes])
        out.update(lab_moments(cp.problem, s_frame, b_mean, n_mean, W, beta))
        if self.squares:
            out.update(self._squares(rho, W))
        return out

    def _squares(self, rho, W) -> dict[str, complex]:
        """⟨S_{a,k}²⟩ = ⟨(Σ_{r∈k} Σ_d W^r_{ad} S'_{d,r})²⟩ with S'_z = (S'_z − n) + n."""
        cp, p = self.cp, self.cp.problem
        sizes = p.block_sizes.astype(float)
        out = {}
        for k in range(p.n_groups):
            blocks = np.flatnonzero(p.block_group == k)
            for i, a in enumerate(_COMPONENTS):
                X = sp.csr_matrix((cp.dim, cp.dim), dtype=complex)
                shift = 0.0
                for r in blocks:
                    for dd, d in enumerate(_COMPONENTS):
                        X = X + W[r, i, dd] * cp.spin_ops[r][d]
                    shift += W[r, i, 2] * sizes[r]
                X = (X + shift * sp.identity(cp.dim, dtype=complex, format="csr")).tocsr()
                XR = X @ rho
                out[f"S{a}2_{k + 1}"] = complex(np.sum(X.T.multiply(XR).sum()))  # tr(X X ρ)
        return out


# ------------------------------------------------------------------------------------ propagation
from .result import Propagation  # noqa: E402


@dataclass(frozen=True)
class FramePropagation(Propagation):
    """A co-moving-frame run: ``problem.fock`` is the displaced cutoff, ``spin_levels`` the Dicke states kept."""

    spin_levels: tuple = ()
    nfev: int = 0
    final_state: np.ndarray | None = None  # ρ̃ at the last time, in the frame (d × d)

    def spin_truncation(self) -> np.ndarray:
        """Largest population of the last kept Dicke state of each block over the window, (R,)."""
        return np.array([np.max(np.real(self.values[f"spintop_{r + 1}"])) for r in range(len(self.spin_levels))])

def propagate_comoving(
    cp: ComovingProblem,
    times: Sequence[float],
    *,
    frame: MeanFieldFrame | None = None,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    squares: bool = False,
    tail: int = 3,
    progress: Callable[[float], None] | None = None,
    engine: str = "tensor",
):
    """Master equation for ρ̃ in the co-moving frame (DOP853 on the dense matrix), observables in the lab.

    Returns a :class:`~opendicke.quantum.result.Propagation` whose ``problem`` is the plain-basis problem
    with ``fock`` set to the displaced cutoff (so its per-pattern helpers work); extra values:
    ``spintop_<r>`` (population of the last kept Dicke state of block r) and ``fluct_occupation_<μ>``
    (⟨b†b⟩ − |⟨b⟩|², the boson fluctuations in the frame).
    """
    from ._rk import dop853

    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("times must be a strictly increasing list of finite times")
    if t[0] != 0.0:
        raise ValueError("times must start at 0 (the frame starts at the initial state)")
    start = _time.perf_counter()
    if frame is None or frame.t_final < t[-1]:
        frame = mean_field_frame(cp.problem, t[-1])
    d = cp.dim
    K, d0, dterms = cp._generator_terms
    K = K.copy()
    kappas = [float(k) for k in cp.problem.model.kappa]
    jumps = [(kap, b) for kap, b in zip(kappas, cp.destroy_ops) if kap > 0]
    obs = _FrameObservables(cp, squares, tail)

    tensor_rhs = _TensorRHS(cp)

    def rhs(time, y):
        W, _ = frame.state(time)
        # Y + Y† is Hermitian to the last bit, so ρ̃ stays exactly Hermitian (a non-Hermitian rounding part
        # would evolve under Kρ + (Kρ)†, which is not the Lindbladian for it, and grows)
        return tensor_rhs(W, y.reshape(d, d)).ravel()

    def rhs_sparse(time, y):  # the same with scipy's sparse products (kept as a cross-check)
        W, _ = frame.state(time)
        K.data[:] = d0 + cp.coefficients(W) @ dterms
        rho = y.reshape(d, d)
        X = K @ rho
        for kap, b in jumps:
            X += (0.5 * kap) * (b @ (b @ rho).conj().T)
        return _add_adjoint(X).ravel()

    if engine == "sparse":
        rhs = rhs_sparse  # noqa: F811

    rho0 = np.outer(cp.initial_ket, cp.initial_ket.conj())
    span = t[-1] - t[0] if t.size > 1 else 1.0
    records: list = [None] * t.size
    final = [None]

    def on_output(i, time, y):
        W, beta = frame.state(time)
        records[i] = obs.measure(y.reshape(d, d), W, beta)
        if i == t.size - 1:
            final[0] = y.reshape(d, d).copy()
        if progress is not None and i > 0:
            progress((time - t[0]) / span)

    stats = dop853(rhs, rho0.ravel(), t, on_output, rtol=rtol, atol=atol)
    nfev = stats["nfev"]
    elapsed = _time.perf_counter() - start
    values = {name: np.array([r[name] for r in records]) for name in records[0]}
    return FramePropagation(problem=cp.problem.with_fock(cp.fock), times=t, values=values, elapsed=elapsed,
                            method="comoving", spin_levels=cp.spin_levels, nfev=nfev,
                            final_state=final[0])


# ------------------------------------------------------------------------------------ truncation search
#: Largest dimension of the truncated frame space for the master equation (ρ̃ is dense: d² complex entries,
#: 17 copies inside DOP853; d = 2500 is ~1.7 GB).
MAX_COMOVING_DIM = 2500


@dataclass(frozen=True)
class TruncationSearch:
    """Result of :func:`search_truncation`: the last run, its truncation, the measured change against the
    previous truncation, whether it met the tolerance, and the history ``[(spin_levels, fock, spin_truncation,
    fock_truncation, change, seconds, relative change of the deviations)]`` (the records of :class:`ComovingBasis`)."""

    run: FramePropagation
    spin_levels: tuple
    fock: tuple
    change: float
    converged: bool
    history: list
    deviation_change: float = math.nan


def _grow(levels: int, top: float, tol: float, cap: int | None) -> int:
    """Next number of levels of one factor: ×1.4 while its last level holds more than tol/100, else +2."""
    nxt = int(math.ceil(1.4 * levels)) if top > tol / 100 else levels + 2
    return nxt if cap is None else min(nxt, cap)


def first_truncation(problem: QuantumProblem) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Starting truncation of the automatic search: 16 rotated Dicke states per block (all of them for
    blocks of ≤ 15 spins) and 16 displaced Fock levels per mode."""
    return tuple(int(min(16, n + 1)) for n in problem.block_sizes), (16,) * problem.n_modes


@dataclass(frozen=True, eq=False)
class ComovingBasis(Basis):
    """The co-moving frame as a :class:`~opendicke.quantum.basis.Basis`: a truncation is ``(spin_levels, fock)``,
    rotated Dicke states per block and displaced Fock levels per mode (``fock`` of this frame is the second);
    each factor grows by ×1.4 while its last level holds more than tol/100, else by 2 (blocks stop at n_r + 1);
    it propagates with :func:`propagate_comoving` in one mean-field frame built once."""

    problem: QuantumProblem
    t_final: float
    start: tuple | None = None
    max_dim: int = MAX_COMOVING_DIM
    rtol: float = 1e-7
    atol: float = 1e-9
    squares: bool = False
    name = "comoving"

    @cached_property
    def frame(self) -> MeanFieldFrame:
        return mean_field_frame(self.problem, float(self.t_final))

    def first(self) -> tuple:
        spin, fock = first_truncation(self.problem) if self.start is None else self.start
        return (tuple(spin), tuple(fock))

    def dimension(self, truncation) -> int:
        return comoving(self.problem, *truncation).dim

    def propagate(self, truncation, times, progress=None):
        return propagate_comoving(comoving(self.problem, *truncation), times, frame=self.frame, rtol=self.rtol,
                                  atol=self.atol, squares=self.squares, progress=progress)

    def grow(self, truncation, run, tol):
        spin, fock = truncation
        caps = [int(n) + 1 for n in self.problem.block_sizes]
        return (tuple(_grow(c, top, tol, cap) for c, top, cap in zip(spin, run.spin_truncation(), caps)),
                tuple(_grow(c, top, tol, None) for c, top in zip(fock, run.truncation())))

    def refuse(self, truncation):
        return f"max_dim = {self.max_dim}" if self.dimension(truncation) > self.max_dim else None

    def describe(self, truncation):
        return f"co-moving truncation (spin levels {list(truncation[0])}, Fock {list(truncation[1])})"

    def indicator(self, run):
        spin_exact = all(c == int(n) + 1 for c, n in zip(run.spin_levels, self.problem.block_sizes))
        return float(max(run.truncation().max(), 0.0 if spin_exact else run.spin_truncation().max()))

    def record(self, truncation, run, change, deviation_change):
        return (tuple(run.spin_levels), tuple(run.problem.fock), run.spin_truncation().tolist(),
                run.truncation().tolist(), change, run.elapsed, deviation_change)


def search_truncation(
    problem: QuantumProblem,
    times: np.ndarray,
    tol: float,
    *,
    first=None,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    squares: bool = False,
    max_dim: int = MAX_COMOVING_DIM,
    progress: Callable[[float], None] | None = None,
    deviations: Callable | None = None,
    deviation_tol: float | None = None,
    stacklevel: int = 3,
) -> TruncationSearch:
    """Enlarge (spin levels, displaced Fock levels) until the largest change of any overlap or occupation
    over the window between two successive truncations is ≤ ``tol`` and, with ``deviations`` and
    ``deviation_tol``, the relative change of ``deviations(run)`` (N·(ξ − ξ_MF), N·(n − n_MF), N·E_N) is
    ≤ ``deviation_tol``; the larger truncation's run is returned (:func:`~opendicke.quantum.basis.search` on a
    :class:`ComovingBasis`). Blocks already complete (n_r + 1 levels) are not enlarged."""
    basis = ComovingBasis(problem, float(times[-1]), start=first, max_dim=int(max_dim), rtol=rtol, atol=atol,
                          squares=squares)
    found = search(basis, times, tol, deviations=deviations, deviation_tol=deviation_tol, progress=progress,
                   stacklevel=stacklevel)
    return TruncationSearch(found.run, tuple(found.run.spin_levels), tuple(found.run.problem.fock), found.change,
                            found.converged, found.history, found.deviation_change)


# ------------------------------------------------------------------------------------ plain basis, same integrator
def propagate_plain(
    problem: QuantumProblem,
    times: Sequence[float],
    *,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    squares: bool = False,
    tail: int = 3,
    progress: Callable[[float], None] | None = None,
):
    """The plain-basis master equation of :func:`~opendicke.quantum.propagate` with this module's DOP853
    on the dense ρ (dρ/dt = Y + Y†, Y = Kρ + ½Σ c ρ c†, K = −iH − ½Σ c†c): ``method = "dop853"``."""
    from ._rk import dop853
    from .result import Propagation, _expectations, _split_observables

    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("times must be a strictly increasing list of finite times")
    start = _time.perf_counter()
    d = problem.dim
    K = -1j * problem.hamiltonian
    for c in problem.collapse_operators:
        K = K - 0.5 * (c.getH() @ c)
    K = K.tocsr()
    jumps = [c.tocsr() for c in problem.collapse_operators]
    diag_ops, full_ops = _split_observables(problem, squares, tail)

    def rhs(_time_, y):
        rho = y.reshape(d, d)
        X = K @ rho
        for c in jumps:
            X += 0.5 * (c @ (c @ rho).conj().T)
        return (X + X.conj().T).ravel()

    records: list = [None] * t.size
    span = t[-1] - t[0] if t.size > 1 else 1.0

    def on_output(i, time, y):
        records[i] = _expectations(y.reshape(d, d), diag_ops, full_ops)
        if progress is not None and i > 0:
            progress((time - t[0]) / span)

    psi = problem.initial_ket
    dop853(rhs, np.outer(psi, psi.conj()).ravel(), t, on_output, rtol=rtol, atol=atol)
    values = {name: np.array([r[name] for r in records]) for name in records[0]}
    return Propagation(problem=problem, times=t, values=values, elapsed=_time.perf_counter() - start, method="dop853")


# ------------------------------------------------------------------------------------ structured right-hand side
def _shape(n: int, axis: int, ndim: int) -> tuple:
    s = [1] * ndim
    s[axis] = n
    return tuple(s)


def _sl(axis: int, ndim: int, part: slice) -> tuple:
    idx = [slice(None)] * ndim
    idx[axis] = part
    return tuple(idx)


class _TensorRHS:
    """dρ̃/dt for a :class:`ComovingProblem` by slicing the tensor ρ̃[left factors..., right factors...]:
    every operator acts on one factor and is (tri)diagonal there, so the generator costs a dozen
    memory passes over ρ̃ instead of scipy's sparse-times-dense products (3-5× slower here).

    Y = Kρ̃ + ½ Σ_μ κ_μ b_μ ρ̃ b_μ†, dρ̃/dt = Y + Y† (Hermitian to the last bit), with
    K = Σ_μ (−iΩ_μ − κ_μ/2) b_μ†b_μ − i Σ_r [Σ_μ f[μ,r] (b_μ + b_μ†)] Q_r(t),
    Q_r(t) = (g0/√N)(W^r_zx S'_x + W^r_zy S'_y + W^r_zz (S'_z − n_r)) tridiagonal in k_r.
    """

    def __init__(self, cp: ComovingProblem):
        m = cp.problem.model
        self.cp = cp
        self.dims = cp.dims
        self.R, self.M = cp.n_blocks, cp.n_modes
        self.nd = len(self.dims)
        self.d = cp.dim
        ndim2 = 2 * self.nd
        from .problem import _diag_embed

        diag = np.zeros(self.d, dtype=complex)
        for mu, c in enumerate(cp.fock):
            diag += (-1j * m.omega_modes[mu] - 0.5 * m.kappa[mu]) * _diag_embed(np.arange(c, dtype=float), self.R + mu, self.dims)
        self.diag = diag.reshape(self.dims + (1,) * self.nd)
        self.f = cp.problem.block_f
        self.spin = []
        for r, (n, c) in enumerate(zip(cp.problem.block_sizes, cp.spin_levels)):
            k = np.arange(c, dtype=float)
            up = 2.0 * np.sqrt(k[1:] * (n - k[1:] + 1.0))  # ⟨k−1|S'_+|k⟩
            self.spin.append((k, up))
        self.sqrt_n = [np.sqrt(np.arange(1, c, dtype=float)) for c in cp.fock]
        self.scale = m.g0 / math.sqrt(cp.problem.n_spins)
        self.kappa = np.asarray(m.kappa, dtype=float)
        self.ndim2 = ndim2

    def _tridiag(self, A, axis, diag, up, low):
        """T A along ``axis`` with T[k,k] = diag[k], T[k,k+1] = up[k], T[k+1,k] = low[k]."""
        nd = A.ndim
        n = A.shape[axis]
        out = A * diag.reshape(_shape(n, axis, nd))
        if n > 1:
            out[_sl(axis, nd, slice(0, n - 1))] += up.reshape(_shape(n - 1, axis, nd)) * A[_sl(axis, nd, slice(1, n))]
            out[_sl(axis, nd, slice(1, n))] += low.reshape(_shape(n - 1, axis, nd)) * A[_sl(axis, nd, slice(0, n - 1))]
        return out

    def __call__(self, W: np.ndarray, rho: np.ndarray) -> np.ndarray:
        dims, nd, R = self.dims, self.nd, self.R
        A = rho.reshape(dims + dims)
        Y = self.diag * A
        for r in range(R):
            cx, cy, cz = self.scale * W[r, 2, :]
            k, up = self.spin[r]
            # Q = cx S'_x + cy S'_y + cz (S'_z − n): S'_x = (S+ + S−)/2, S'_y = (S+ − S−)/(2i)
            upper = (0.5 * cx - 0.5j * cy) * up
            lower = (0.5 * cx + 0.5j * cy) * up
            QA = self._tridiag(A, r, (-2.0 * cz) * k.astype(complex), upper, lower)
            for mu, sq in enumerate(self.sqrt_n):
                fr = self.f[mu, r]
                if fr == 0:
                    continue
                w = (-1j * fr) * sq
                Y += self._tridiag(QA, R + mu, np.zeros(sq.size + 1, dtype=complex), w, w)
        for mu, sq in enumerate(self.sqrt_n):
            if self.kappa[mu] <= 0:
                continue
            ax_l, ax_r = R + mu, nd + R + mu
            n = sq.size + 1
            w = (0.5 * self.kappa[mu]) * sq.reshape(_shape(n - 1, ax_l, 2 * nd)) * sq.reshape(_shape(n - 1, ax_r, 2 * nd))
            src = A[_sl(ax_r, 2 * nd, slice(1, n))][_sl(ax_l, 2 * nd, slice(1, n))]
            Y[_sl(ax_r, 2 * nd, slice(0, n - 1))][_sl(ax_l, 2 * nd, slice(0, n - 1))] += w * src
        Y = Y.reshape(self.d, self.d)
        return _add_adjoint(Y)


def _add_adjoint(Y: np.ndarray, block: int = 64) -> np.ndarray:
    """Y + Y† with a blocked transpose (a plain ``Y.conj().T`` walks memory with a stride of d)."""
    d = Y.shape[0]
    out = np.empty_like(Y)
    for i in range(0, d, block):
        np.conjugate(Y[:, i:i + block].T, out=out[i:i + block])
    out += Y
    return out
