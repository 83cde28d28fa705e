"""Exact finite-N dynamics with individual spin dissipation in a permutation-invariant Liouville space.

Individual decay, pumping and dephasing (``DickeModel.gamma_down/gamma_up/gamma_phi``) break the
conservation of each block's total spin, so the maximal-spin basis of :mod:`opendicke.quantum.problem` no
longer suffices. Every *block* (spins with the same pattern column G[:, j] and the same initial single-spin
state) is still symmetric under permutations of its spins, and so is the whole generator, so the density
matrix stays in the space of permutation-invariant operators of each block.

Basis (the construction differs from PIQS, Shammah et al. PRA 98, 063815 (2018), which uses Dicke states
|j, m⟩⟨j, m'| of every total-spin sector j; the space is the same, of dimension C(n + 3, 3) = O(n³) per
block of n spins). Write a single-spin operator in the four units e_t = |r⟩⟨c| (t = 2r + c, r, c ∈ {0, 1},
|0⟩ the excited state σ_z = +1, |1⟩ the ground state). A permutation-invariant operator of n spins is a
combination of the *type* operators

    S(n_0, n_1, n_2, n_3) = Σ over the distinct arrangements of n_t units e_t on the n spins,

and S(n)/√M(n), M(n) = n!/Π_t n_t! the number of arrangements, is orthonormal in the Hilbert-Schmidt
product. Any sum over spins of one single-spin superoperator ℓ (4 × 4 on the units), Σ_j ℓ_j — and every
term of the generator is of this form: left and right multiplication by Σ_j σ_a^j, and every individual
dissipator Σ_j D[A_j] — acts on these coefficients as a bilinear of four bosonic modes b_t,

    Σ_j ℓ_j  ↦  Σ_{t, t'} ℓ[t', t] b_{t'}† b_t,     b_{t'}† b_t |n⟩ = √(n_t (n_{t'} + 1)) |n − e_t + e_{t'}⟩,

on the n-"particle" sector (the Schwinger-boson form of the symmetric tensor power). Traces: Tr S(n)/√M(n)
= √M(n) when n_1 = n_2 = 0 (no off-diagonal units), else 0. A product state with single-spin density matrix
ρ₁ on every spin of the block has coefficients √M(n) Π_t ρ₁[t]^{n_t}.

Modes are truncated to ``fock`` levels and carried as full n_c × n_c density matrices. The Liouvillian is a
sparse matrix on block 1 ⊗ … ⊗ block R ⊗ mode 1 ⊗ … ⊗ mode M (each mode factor n_c², row-major), in the
**original, ungauged** frame (blocks are defined by the original columns, so the reduction's gauge never
enters; decay is decay for every spin). Propagation: by default the compiled real-representation kernel and
Chebyshev propagator of :mod:`.permutation_fast` (which never builds the sparse matrix; also its displaced
boson frame); ``scipy.sparse.linalg.expm_multiply`` or DOP853 on the sparse matrix as the reference.

Model (paper Eqs. 1-2 plus the spin rates, docs/spin-dissipation.md):

    H = Ω Σ_j σ_x^j + Σ_μ Ω_μ a_μ†a_μ + (g0/√N_sp) Σ_{μ,j} G[μ,j] (a_μ + a_μ†) σ_z^j,
    L = κ_μ D[a_μ] + Σ_j (γ↓ D[σ_-^j] + γ↑ D[σ_+^j] + (γφ/2) D[σ_z^j]).
"""

from __future__ import annotations

import json
import math
import time as _time
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..model import DickeModel
from ..reduction import Grouping, reduce
from ..states import InitialState, as_initial_state
from .basis import Basis
from .permutation_fast import _MODE_FUNCTIONALS, _TAIL
from .result import FockCutoffWarning, Propagation  # one warning for every basis's cutoff

__all__ = [
    "PermutationProblem", "build", "propagate", "solve", "block_types", "block_dimension", "one_body",
    "PermutationRun", "FockCutoffWarning", "PermutationBasis", "as_propagation", "PiqsProblem", "QUTIP_MAX_DIM",
]

#: Largest Liouville-space dimension :meth:`PermutationProblem.to_qutip` builds (a dense-ish QuTiP superoperator).
QUTIP_MAX_DIM = 1_000_000

# Single-spin operators in the basis (|excited⟩, |ground⟩), the paper's σ_z = +1 first.
_SX = np.array([[0, 1], [1, 0]], dtype=complex)
_SY = np.array([[0, -1j], [1j, 0]], dtype=complex)
_SZ = np.array([[1, 0], [0, -1]], dtype=complex)
_SM = np.array([[0, 0], [1, 0]], dtype=complex)  # σ_- = (σ_x − iσ_y)/2 = |ground⟩⟨excited|
_SP = _SM.conj().T
_I2 = np.eye(2, dtype=complex)
_PAULI = {"x": _SX, "y": _SY, "z": _SZ}
_COMPONENTS = ("x", "y", "z")


# ------------------------------------------------------------------------------------ one block
def block_types(n: int) -> np.ndarray:
    """All (n_0, n_1, n_2, n_3) with sum n, shape (C(n+3, 3), 4), in lexicographic order."""
    out = [(a, b, c, n - a - b - c) for a in range(n + 1) for b in range(n + 1 - a) for c in range(n + 1 - a - b)]
    return np.array(out, dtype=np.int64).reshape(-1, 4)


def block_dimension(n: int) -> int:
    """Dimension C(n + 3, 3) of the permutation-invariant operator space of n spins."""
    return math.comb(n + 3, 3)


def _left(op: np.ndarray) -> np.ndarray:
    """Single-spin superoperator X ↦ op X on the units e_t (t = 2r + c, row-major)."""
    return np.kron(op, _I2)


def _right(op: np.ndarray) -> np.ndarray:
    """Single-spin superoperator X ↦ X op."""
    return np.kron(_I2, op.T)


def _dissipator(op: np.ndarray) -> np.ndarray:
    """Single-spin superoperator D[A] X = A X A† − ½{A†A, X}."""
    ada = op.conj().T @ op
    return _left(op) @ _right(op.conj().T) - 0.5 * (_left(ada) + _right(ada))


class _Block:
    """The type basis of one block of n spins and its index."""

    def __init__(self, n: int):
        self.n = int(n)
        self.types = block_types(self.n)
        self.dim = self.types.shape[0]
        # index of a type vector: lexicographic rank via a dense lookup table over (n0, n1, n2)
        self._table = np.full((self.n + 1,) * 3, -1, dtype=np.int64)
        self._table[self.types[:, 0], self.types[:, 1], self.types[:, 2]] = np.arange(self.dim)

    def index(self, types: np.ndarray) -> np.ndarray:
        return self._table[types[:, 0], types[:, 1], types[:, 2]]

    @cached_property
    def log_arrangements(self) -> np.ndarray:
        """log M(n) = log(n!/Π n_t!) per basis element."""
        from scipy.special import gammaln

        return gammaln(self.n + 1.0) - gammaln(self.types + 1.0).sum(axis=1)

    @cached_property
    def trace(self) -> np.ndarray:
        """Tr of every basis element S(n)/√M(n): √M(n) without off-diagonal units, else 0."""
        diagonal = (self.types[:, 1] == 0) & (self.types[:, 2] == 0)
        return np.where(diagonal, np.exp(0.5 * self.log_arrangements), 0.0)

    def product_state(self, rho1: np.ndarray) -> np.ndarray:
        """Coefficients of ρ₁^{⊗n}: √M(n) Π_t ρ₁[t]^{n_t}."""
        units = np.asarray(rho1, dtype=complex).reshape(4)
        out = np.zeros(self.dim, dtype=complex)
        nonzero = np.all((units[None, :] != 0) | (self.types == 0), axis=1)
        logs = np.where(units != 0, np.log(np.where(units != 0, units, 1.0)), 0.0)
        t = self.types[nonzero]
        out[nonzero] = np.exp(0.5 * self.log_arrangements[nonzero] + t @ logs)
        return out

    def one_body(self, ell: np.ndarray) -> sp.csr_matrix:
        """Σ_j ℓ_j on the block: Σ_{t,t'} ℓ[t', t] b_{t'}† b_t."""
        rows, cols, vals = [], [], []
        n_t = self.types
        for t in range(4):
            for tp in range(4):
                value = ell[tp, t]
                if value == 0:
                    continue
                if t == tp:
                    src = np.flatnonzero(n_t[:, t] > 0)
                    rows.append(src)
                    cols.append(src)
                    vals.append(value * n_t[src, t])
                    continue
                src = np.flatnonzero(n_t[:, t] > 0)
                new = n_t[src].copy()
                new[:, t] -= 1
                new[:, tp] += 1
                rows.append(self.index(new))
                cols.append(src)
                vals.append(value * np.sqrt(n_t[src, t] * (n_t[src, tp] + 1.0)))
        if not rows:
            return sp.csr_matrix((self.dim, self.dim), dtype=complex)
        return sp.csr_matrix(
            (np.concatenate(vals).astype(complex), (np.concatenate(rows), np.concatenate(cols))), shape=(self.dim, self.dim)
        )


def one_body(n: int, ell: np.ndarray) -> sp.csr_matrix:
    """The superoperator Σ_j ℓ_j of n spins (ℓ: 4 × 4 on the units e_t) in the orthonormal type basis."""
    return _Block(n).one_body(np.asarray(ell, dtype=complex))


# ------------------------------------------------------------------------------------ the problem
def _kron_all(factors: list) -> sp.csr_matrix:
    out = factors[0]
    for f in factors[1:]:
        out = sp.kron(out, f, format="csr")
    return sp.csr_matrix(out)


@dataclass(frozen=True, eq=False)
class PermutationProblem:
    """The Lindblad problem of a finite model with spin dissipation, one permutation-invariant factor per block.

    Attributes
    ----------
    model, initial:
        The model (finite N_sp) and the initial state (per-spin Bloch vectors of length ≤ 1, original frame).
    block_columns:
        Pattern column G[:, b] of every block (original frame), shape (M, R).
    block_sizes:
        Spins per block, shape (R,).
    block_vectors:
        Initial single-spin Bloch vector of every block (original frame), shape (R, 3).
    block_of_spin:
        Block index (0-based) of every spin.
    fock:
        Fock levels per mode.
    """

    model: DickeModel
    initial: InitialState
    block_columns: np.ndarray
    block_sizes: np.ndarray
    block_vectors: np.ndarray
    block_of_spin: np.ndarray = field(repr=False)
    fock: tuple[int, ...] = ()

    @cached_property
    def grouping(self) -> Grouping:
        """The reduction's groups (the gauged frame of ``bloch``)."""
        return reduce(self.model)

    @property
    def n_groups(self) -> int:
        return self.grouping.n_groups

    @property
    def block_group(self) -> np.ndarray:
        """Reduction group (0-based) of every block."""
        spin0 = np.array([np.flatnonzero(self.block_of_spin == b)[0] for b in range(self.n_blocks)])
        return self.grouping.group_of_spin[spin0]

    @property
    def n_blocks(self) -> int:
        return int(self.block_sizes.size)

    @property
    def n_modes(self) -> int:
        return self.model.n_modes

    @property
    def n_spins(self) -> int:
        return int(self.model.n_spins)

    @cached_property
    def _blocks(self) -> list[_Block]:
        return [_Block(int(n)) for n in self.block_sizes]

    @property
    def dims(self) -> tuple[int, ...]:
        """Liouville-space factor dimensions: C(n_b + 3, 3) per block, fock² per mode."""
        return tuple(b.dim for b in self._blocks) + tuple(int(c) ** 2 for c in self.fock)

    @property
    def dim(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))

    def with_fock(self, fock) -> PermutationProblem:
        return PermutationProblem(self.model, self.initial, self.block_columns, self.block_sizes, self.block_vectors,
                                  self.block_of_spin, _fock_tuple(fock, self.n_modes))

    def to_qutip(self, max_dim: int = QUTIP_MAX_DIM) -> PiqsProblem:
        """The problem as QuTiP objects in the Dicke basis of PIQS (``qutip.piqs``, Shammah et al. 2018): every
        block in all its total-spin sectors j (``piqs.num_dicke_states(n_b)`` states), its individual decay,
        pumping and dephasing from ``piqs.Dicke(n_b, emission=γ↓, pumping=γ↑, dephasing=2γφ).liouvillian()``
        (PIQS's dephasing jump is σ_z/2; built at unit rates and scaled, as PIQS keeps rates in single
        precision), tensored with the other blocks and the modes, plus
        ``qutip.liouvillian(H, [√κ_μ a_μ])`` for H = Ω Σ_b 2J_x^{(b)} + Σ_μ Ω_μ a_μ†a_μ
        + (g0/√N_sp) Σ_{μ,b} G[μ, b] 2J_z^{(b)} (a_μ + a_μ†). Same original (ungauged) frame, blocks and order
        (block 1 … R, then mode 1 … M, ``fock`` levels each) as :attr:`liouvillian`, so
        ``qutip.mesolve(q.liouvillian, q.rho0, t, e_ops=q.observables)`` reproduces :func:`propagate`.

        Raises ``ValueError`` before building anything when the Liouville-space dimension
        (Π_b num_dicke_states(n_b) · Π_μ fock_μ)² exceeds ``max_dim`` (default 10⁶).
        """
        return _to_qutip(self, max_dim)

    # ------------------------------------------------------------- factors
    def _identities(self) -> list[sp.csr_matrix]:
        return [sp.identity(d, dtype=complex, format="csr") for d in self.dims]

    def _embed(self, pieces: dict[int, sp.spmatrix]) -> sp.csr_matrix:
        factors = self._identities()
        for index, op in pieces.items():
            factors[index] = op
        return _kron_all(factors)

    def _mode_ops(self, mu: int) -> dict[str, sp.csr_matrix]:
        c = self.fock[mu]
        a = sp.diags(np.sqrt(np.arange(1, c, dtype=float)), 1, shape=(c, c), format="csr", dtype=complex)
        eye = sp.identity(c, dtype=complex, format="csr")
        left = lambda op: sp.kron(op, eye, format="csr")  # noqa: E731  (row-major vec: op ρ)
        right = lambda op: sp.kron(eye, op.T, format="csr")  # noqa: E731  (ρ op)
        x = (a + a.T).tocsr()
        num = (a.T @ a).tocsr()
        return {
            "Lx": left(x), "Rx": right(x), "Ln": left(num), "Rn": right(num),
            "D": (sp.kron(a, a.conj(), format="csr") - 0.5 * (left(num) + right(num))).tocsr(),
        }

    @cached_property
    def liouvillian(self) -> sp.csr_matrix:
        """The generator L (dρ/dt = L ρ) as a sparse matrix on the product Liouville space."""
        m = self.model
        R = self.n_blocks
        spin_single = -1j * float(m.omega) * (_left(_SX) - _right(_SX))
        spin_single = spin_single + m.gamma_down * _dissipator(_SM) + m.gamma_up * _dissipator(_SP)
        spin_single = spin_single + 0.5 * m.gamma_phi * _dissipator(_SZ)
        total = sp.csr_matrix((self.dim, self.dim), dtype=complex)
        z_left, z_right = [], []
        for b, block in enumerate(self._blocks):
            total = total + self._embed({b: block.one_body(spin_single)})
            z_left.append(block.one_body(_left(_SZ)))
            z_right.append(block.one_body(_right(_SZ)))
        coupling = m.g0 / math.sqrt(m.n_spins)
        for mu in range(self.n_modes):
            ops = self._mode_ops(mu)
            index = R + mu
            mode = -1j * float(m.omega_modes[mu]) * (ops["Ln"] - ops["Rn"]) + float(m.kappa[mu]) * ops["D"]
            total = total + self._embed({index: mode})
            for b in range(R):
                c = coupling * float(self.block_columns[mu, b])
                if c == 0:
                    continue
                total = total - 1j * c * (self._embed({index: ops["Lx"], b: z_left[b]}) - self._embed({index: ops["Rx"], b: z_right[b]}))
        total.sum_duplicates()
        total.eliminate_zeros()
        return total.tocsr()

    def initial_vector(self, vacuum: bool = False) -> np.ndarray:
        """ρ(0) as a vector: every block a product of its single-spin state, every mode a coherent state (the
        vacuum with ``vacuum=True``: the initial state of the displaced frame)."""
        parts = []
        for block, v in zip(self._blocks, self.block_vectors):
            rho1 = 0.5 * (_I2 + v[0] * _SX + v[1] * _SY + v[2] * _SZ)
            parts.append(block.product_state(rho1))
        alpha = self.initial.initial_alpha(self.model) * math.sqrt(self.n_spins)
        if vacuum:
            alpha = np.zeros_like(alpha)
        for mu, c in enumerate(self.fock):
            psi = _coherent(c, complex(alpha[mu]))
            parts.append(np.outer(psi, psi.conj()).reshape(-1))
        out = parts[0]
        for p in parts[1:]:
            out = np.kron(out, p)
        return out

    # ------------------------------------------------------------- observables
    @property
    def square_pairs(self) -> list[tuple[int, int]]:
        """Pairs of distinct blocks (b < c) in the same reduction group: their products S_a^{(b)} S_a^{(c)} enter
        the group's ⟨S_{a,k}²⟩ (a group spans several blocks when its spins have opposite original columns, which
        the gauge maps together unless γ↓ ≠ γ↑ splits the group by gauge sign, or different initial states)."""
        group = self.block_group
        return [(b, c) for b in range(self.n_blocks) for c in range(b + 1, self.n_blocks) if group[b] == group[c]]

    def functionals(self, squares: bool = False) -> dict:
        """Per-factor linear functionals: 'trace' for every factor; per block S_x, S_y, S_z (with ``squares`` also
        S_a², 'S{a}S{a}'); per mode a, a†a, top."""
        out = {"trace": []}
        for b, block in enumerate(self._blocks):
            trace = block.trace.astype(complex)
            out["trace"].append(trace)
            for a in _COMPONENTS:
                # Tr(Σ_j σ_a^j ρ) = trace · (Σ_j L_{σ_a}); Tr((Σ_j σ_a^j)² ρ) = trace · (L L)
                left = block.one_body(_left(_PAULI[a]))
                out.setdefault(f"S{a}", {})[b] = left.T @ trace
                if squares:
                    out.setdefault(f"S{a}S{a}", {})[b] = left.T @ (left.T @ trace)
        for mu, c in enumerate(self.fock):
            eye = np.eye(c).reshape(-1).astype(complex)
            out["trace"].append(eye)
            a = np.diag(np.sqrt(np.arange(1, c, dtype=float)), 1)
            out.setdefault("a", {})[mu] = a.T.reshape(-1).astype(complex)  # Tr(a ρ) = Σ a[c, r] ρ[r, c]
            out.setdefault("n", {})[mu] = np.diag(np.arange(c, dtype=float)).reshape(-1).astype(complex)
            top = np.zeros((c, c))
            top[c - 1, c - 1] = 1.0
            out.setdefault("top", {})[mu] = top.reshape(-1).astype(complex)
            for k in range(1, _TAIL + 1):  # the Fock tail below the top (its decay chooses the next cutoff)
                level = np.zeros((c, c))
                level[max(c - 1 - k, 0), max(c - 1 - k, 0)] = 1.0
                out.setdefault(f"level{k}", {})[mu] = level.reshape(-1).astype(complex)
        return out

    def expectations(self, states: np.ndarray, squares: bool = False) -> dict[str, np.ndarray]:
        """Raw expectation values for states (T, dim): 'trace', 'S{a}_{b}', 'a_{mu}', 'n_{mu}', 'top_{mu}'; with
        ``squares`` also ⟨S_a^{(b)} S_a^{(c)}⟩ as 'S{a}S{a}_{b}_{c}' for b = c and the :attr:`square_pairs`."""
        fun = self.functionals(squares)
        traces = fun["trace"]
        tensor = states.reshape((states.shape[0],) + self.dims)
        values = {}
        for i in range(len(self.dims)):
            marginal = _marginal(tensor, traces, i)
            if i == 0:
                values["trace"] = marginal @ traces[0]
            if i < self.n_blocks:
                for a in _COMPONENTS:
                    values[f"S{a}_{i}"] = marginal @ fun[f"S{a}"][i]
                    if squares:
                        values[f"S{a}S{a}_{i}_{i}"] = marginal @ fun[f"S{a}S{a}"][i]
            else:
                mu = i - self.n_blocks
                for name in _MODE_FUNCTIONALS:
                    values[f"{name}_{mu}"] = marginal @ fun[name][mu]
        if squares:
            for b, c in self.square_pairs:  # different blocks commute: ⟨S^{(b)} S^{(c)}⟩ from the two-block marginal
                marginal = _marginal(tensor, traces, (b, c))
                for a in _COMPONENTS:
                    values[f"S{a}S{a}_{b}_{c}"] = np.einsum("tij,i,j->t", marginal, fun[f"S{a}"][b], fun[f"S{a}"][c])
        return values


def _marginal(tensor: np.ndarray, traces: list[np.ndarray], keep) -> np.ndarray:
    """Contract every factor except ``keep`` (one index or several) with its trace functional:
    (T, *dims) → (T, *dims[keep])."""
    keep = {keep} if isinstance(keep, int | np.integer) else set(keep)
    out = tensor
    axis = 1
    for j, w in enumerate(traces):
        if j in keep:
            axis += 1
            continue
        out = np.tensordot(out, w, axes=([axis], [0]))
    return out


def _coherent(levels: int, beta: complex) -> np.ndarray:
    out = np.zeros(levels, dtype=complex)
    if beta == 0:
        out[0] = 1.0
        return out
    n = np.arange(levels)
    logmag = n * math.log(abs(beta)) - 0.5 * np.array([math.lgamma(i + 1) for i in n])
    out = np.exp(logmag - logmag.max()) * np.exp(1j * n * np.angle(beta))
    return out / np.linalg.norm(out)


def _fock_tuple(fock, n_modes: int) -> tuple[int, ...]:
    values = np.atleast_1d(np.asarray(fock))
    if values.size == 1:
        values = np.full(n_modes, values[0])
    if values.size != n_modes or not all(float(v).is_integer() and v >= 2 for v in values):
        raise ValueError(f"fock must be one integer ≥ 2 or M = {n_modes} of them, got {fock!r}")
    return tuple(int(v) for v in values)


def build(model: DickeModel, initial: InitialState | int = 1, fock=8) -> PermutationProblem:
    """The permutation-invariant problem of a finite model and an initial product state.

    Blocks: spins with the same original pattern column and the same initial Bloch vector (so corrupted
    patterns, mirrored patterns and any per-spin product state are exact). Bloch vectors may be shorter than
    1 (mixed single-spin states).
    """
    if model.thermodynamic_limit:
        raise ValueError("the exact solver needs a finite n_spins (the thermodynamic limit has no finite Hilbert space)")
    start = as_initial_state(initial)
    vectors = np.asarray(start.spin_vectors(model), dtype=float)
    G = np.asarray(model.patterns, dtype=np.int64)
    keys = np.concatenate([G.T.astype(float), np.round(vectors, 12)], axis=1)
    unique, block_of_spin = np.unique(keys, axis=0, return_inverse=True)
    block_of_spin = block_of_spin.ravel()
    sizes = np.bincount(block_of_spin, minlength=unique.shape[0])
    M = model.n_modes
    columns = unique[:, :M].T.astype(np.int8)
    block_vectors = np.stack([vectors[block_of_spin == b][0] for b in range(unique.shape[0])])
    return PermutationProblem(model, start, columns, sizes, block_vectors, block_of_spin, _fock_tuple(fock, M))


# ------------------------------------------------------------------------------------ QuTiP export
@dataclass(frozen=True)
class PiqsProblem:
    """QuTiP view of a :class:`PermutationProblem` (Dicke basis of every block ⊗ Fock modes, original frame).

    Attributes
    ----------
    liouvillian:
        The generator as a QuTiP superoperator (``dρ/dt = L ρ``), tensor dims [[d_1, …, d_R, fock_1, …], …],
        d_b = ``piqs.num_dicke_states(n_b)``.
    hamiltonian, collapse_operators:
        H and the mode losses √κ_μ a_μ (the spin dissipation is in ``liouvillian`` only: it is not a sum of
        collective jumps).
    rho0:
        ρ(0): every block ρ₁^{⊗n_b} of its Bloch vector in the Dicke basis (all j sectors, with their
        degeneracies, trace 1), every mode the coherent state of :meth:`PermutationProblem.initial_vector`.
    observables:
        ``overlap_μ`` = (1/N_sp) Σ_b G[μ, b] 2J_z^{(b)}, ``occupation_μ`` = a_μ†a_μ/N_sp, ``alpha_μ`` = a_μ/√N_sp
        (not Hermitian: a complex expectation) for μ = 1…M, and the mean block Bloch components
        ``bloch_{a}_{b}`` = 2J_a^{(b)}/n_b (a ∈ x, y, z; b = 1…R), as :meth:`PermutationRun.overlaps`,
        ``occupations``, ``alphas`` and ``block_bloch``.
    """

    liouvillian: object
    hamiltonian: object
    collapse_operators: list
    rho0: object
    observables: dict


def _dicke_product_state(n: int, v: np.ndarray):
    """ρ₁^{⊗n}, ρ₁ = (1 + v·σ)/2, in the Dicke basis of PIQS: ⊕_j d_j ρ_j, ρ_j = U diag(p^{n/2+m}(1−p)^{n/2−m}) U†
    (p = (1 + |v|)/2, U the spin-j rotation taking J_z to the direction of v) and d_j the multiplicity of j."""
    import qutip
    from qutip import piqs

    v = np.asarray(v, dtype=float)
    r = float(np.linalg.norm(v))
    axis = v / r if r > 0 else np.array([0.0, 0.0, 1.0])
    p = 0.5 * (1.0 + min(r, 1.0))
    blocks = []
    j = n / 2.0
    while j >= -1e-9:
        size = int(round(2 * j + 1))
        jn = (sum(axis[k] * qutip.jmat(j, c).full() for k, c in enumerate("xyz")) if size > 1
              else np.zeros((1, 1), dtype=complex))  # qutip.jmat(0) fails
        m, vecs = np.linalg.eigh(jn)  # eigenvalues −j … j
        m = np.round(m * 2) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(n / 2 + m > 0, p ** (n / 2 + m), 1.0) * np.where(n / 2 - m > 0, (1.0 - p) ** (n / 2 - m), 1.0)
        blocks.append(piqs.state_degeneracy(n, j) * (vecs * w) @ vecs.conj().T)
        assert size == blocks[-1].shape[0]
        j -= 1.0
    from scipy.linalg import block_diag

    rho = block_diag(*blocks)
    return qutip.Qobj(rho / np.trace(rho).real)


def _to_qutip(problem: PermutationProblem, max_dim: int = QUTIP_MAX_DIM) -> PiqsProblem:
    from qutip import piqs

    import qutip

    m = problem.model
    nds = [int(piqs.num_dicke_states(int(n))) for n in problem.block_sizes]
    hilbert = int(np.prod(nds + list(problem.fock), dtype=np.int64))
    if hilbert ** 2 > max_dim:
        raise ValueError(f"the Dicke-basis Liouville space has dimension {hilbert ** 2} > max_dim = {max_dim} "
                         f"(blocks {problem.block_sizes.tolist()} → Dicke states {nds}, fock {list(problem.fock)}); "
                         "use permutation.propagate, or raise max_dim")
    R, M = problem.n_blocks, problem.n_modes
    eyes = [qutip.qeye(d) for d in nds] + [qutip.qeye(int(c)) for c in problem.fock]

    def embed(pieces: dict):
        ops = list(eyes)
        for i, op in pieces.items():
            ops[i] = op
        return qutip.tensor(ops)

    J = [{a: piqs.jspin(int(n), a) for a in _COMPONENTS} for n in problem.block_sizes]
    a_ops = [embed({R + mu: qutip.destroy(int(c))}) for mu, c in enumerate(problem.fock)]
    coupling = float(m.g0) / math.sqrt(m.n_spins)
    H = 0
    for b in range(R):
        H = H + 2.0 * float(m.omega) * embed({b: J[b]["x"]})
    for mu in range(M):
        H = H + float(m.omega_modes[mu]) * a_ops[mu].dag() * a_ops[mu]
        x = a_ops[mu] + a_ops[mu].dag()
        for b in range(R):
            c = float(problem.block_columns[mu, b])
            if c:
                H = H + 2.0 * coupling * c * embed({b: J[b]["z"]}) * x
    c_ops = [math.sqrt(float(m.kappa[mu])) * a_ops[mu] for mu in range(M) if m.kappa[mu] > 0]
    L = qutip.liouvillian(H, c_ops)
    if m.gamma_down or m.gamma_up or m.gamma_phi:
        super_eyes = [qutip.to_super(e) for e in eyes]
        for b, n in enumerate(problem.block_sizes):
            # PIQS's compiled Dicke class stores the rates as C floats (single precision: emission=0.3 gives
            # 0.30000001192…, an error of 1e-8 in the dynamics), so build unit-rate generators and scale them
            local = sum(rate * piqs.Dicke(N=int(n), **{name: 1.0}).liouvillian()
                        for name, rate in (("emission", float(m.gamma_down)), ("pumping", float(m.gamma_up)),
                                           ("dephasing", 2.0 * float(m.gamma_phi))) if rate)
            factors = list(super_eyes)
            factors[b] = local
            L = L + qutip.super_tensor(*factors)
    parts = [_dicke_product_state(int(n), v) for n, v in zip(problem.block_sizes, problem.block_vectors)]
    alpha = problem.initial.initial_alpha(m) * math.sqrt(m.n_spins)
    for mu, c in enumerate(problem.fock):
        psi = qutip.Qobj(_coherent(int(c), complex(alpha[mu])).reshape(-1, 1))
        parts.append(psi.proj())
    rho0 = qutip.tensor(parts)
    obs = {}
    for mu in range(M):
        obs[f"overlap_{mu + 1}"] = sum(2.0 * float(problem.block_columns[mu, b]) * embed({b: J[b]["z"]})
                                       for b in range(R)) / m.n_spins
        obs[f"occupation_{mu + 1}"] = a_ops[mu].dag() * a_ops[mu] / m.n_spins
        obs[f"alpha_{mu + 1}"] = a_ops[mu] / math.sqrt(m.n_spins)
    for b in range(R):
        for a in _COMPONENTS:
            obs[f"bloch_{a}_{b + 1}"] = 2.0 * embed({b: J[b][a]}) / float(problem.block_sizes[b])
    return PiqsProblem(liouvillian=L, hamiltonian=H, collapse_operators=c_ops, rho0=rho0, observables=obs)


# ------------------------------------------------------------------------------------ propagation
@dataclass(frozen=True, eq=False)
class PermutationRun:
    """One propagation at a fixed cutoff: raw expectation values per output time."""

    problem: PermutationProblem
    times: np.ndarray
    values: dict
    elapsed: float
    method: str
    frame: str = "lab"
    stats: dict = field(default_factory=dict)

    def overlaps(self) -> np.ndarray:
        """ξ_μ(t) = (1/N_sp) Σ_b G[μ, b] ⟨S_z,b⟩, shape (T, M)."""
        p = self.problem
        sz = np.stack([np.real(self.values[f"Sz_{b}"]) for b in range(p.n_blocks)], axis=1)  # (T, R)
        return sz @ p.block_columns.T.astype(float) / p.n_spins

    def occupations(self) -> np.ndarray:
        p = self.problem
        return np.stack([np.real(self.values[f"n_{mu}"]) for mu in range(p.n_modes)], axis=1) / p.n_spins

    def alphas(self) -> np.ndarray:
        p = self.problem
        return np.stack([self.values[f"a_{mu}"] for mu in range(p.n_modes)], axis=1) / math.sqrt(p.n_spins)

    def top_populations(self) -> np.ndarray:
        p = self.problem
        return np.stack([np.real(self.values[f"top_{mu}"]) for mu in range(p.n_modes)], axis=1)

    def block_bloch(self) -> np.ndarray:
        """Mean Bloch vector of every block (original frame), shape (T, R, 3)."""
        p = self.problem
        return np.stack([np.stack([np.real(self.values[f"S{a}_{b}"]) for a in _COMPONENTS], axis=-1) / p.block_sizes[b]
                         for b in range(p.n_blocks)], axis=1)

    def change_from(self, other: PermutationRun) -> float:
        """Largest difference in overlaps and occupations against another run on the same times."""
        return float(max(np.max(np.abs(self.overlaps() - other.overlaps())),
                         np.max(np.abs(self.occupations() - other.occupations()))))


METHODS = ("auto", "chebyshev", "rk", "expm", "dop853")


def propagate(problem: PermutationProblem, times, *, method: str = "auto", frame: str = "lab", atol: float = 1e-10,
              rtol: float = 1e-8, threads: int = 1, squares: bool = False) -> PermutationRun:
    """Integrate dρ/dt = L ρ from ``times[0]`` and return the expectation values at every time.

    ``method``:

    * ``"chebyshev"``: the compiled real-representation kernel of :mod:`.permutation_fast` with one Chebyshev
      expansion of the (time-independent) generator and a run-time verified spectral ellipse; accurate to
      ≈ 1e-12 (the series is truncated far below ``atol``). Lab frame only.
    * ``"rk"``: the same kernel with an adaptive DOP853 (``atol``/``rtol``); the only method of the displaced frame.
    * ``"expm"`` (``scipy.sparse.linalg.expm_multiply``) or ``"dop853"`` (``scipy.integrate.solve_ivp`` with
      ``atol``/``rtol``) on the complex sparse Liouvillian: the reference implementation (lab frame).
    * ``"auto"`` (default): ``"chebyshev"`` in the lab frame, ``"rk"`` in the displaced frame.

    ``frame``: ``"lab"`` or ``"displaced"`` (modes displaced along the exact ⟨a_μ⟩(t); the Fock cutoff then
    counts the fluctuations b_μ = a_μ − ⟨a_μ⟩, see :mod:`.permutation_fast`).

    ``threads``: threads of the compiled kernel (``"chebyshev"``, ``"rk"``; 1, the default: single-threaded).

    ``squares``: also ⟨S_a^{(b)} S_a^{(c)}⟩ of every block and every pair of blocks in one reduction group
    (``S{a}S{a}_{b}_{c}``, b ≤ c; :meth:`PermutationProblem.expectations`), the input of the cost function.
    """
    from threadpoolctl import threadpool_limits

    from .permutation_fast import FRAMES, propagate_fast

    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("times must be a strictly increasing list of finite times")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
    if method == "auto":
        method = "chebyshev" if frame == "lab" else "rk"
    if not (isinstance(threads, int | np.integer) and threads >= 1):
        raise ValueError(f"threads must be an integer ≥ 1, got {threads!r}")
    if frame == "displaced" and method != "rk":
        raise ValueError(f"the displaced frame has a time-dependent generator: method must be 'rk' or 'auto', got {method!r}")
    start = _time.perf_counter()
    cpu = _time.process_time()
    if method in ("chebyshev", "rk"):
        with threadpool_limits(limits=1, user_api="blas"):
            if t.size == 1:
                values = problem.expectations(problem.initial_vector()[None, :], squares)
                stats = {}
            else:
                values, stats, _ = propagate_fast(problem, t, method="chebyshev" if method == "chebyshev" else "dop853",
                                                  frame=frame, atol=atol, rtol=rtol, tol=min(atol, 1e-10),
                                                  threads=threads, squares=squares)
        stats = {**stats, "cpu_seconds": _time.process_time() - cpu}
        return PermutationRun(problem, t, values, _time.perf_counter() - start, method, frame, stats)
    with threadpool_limits(limits=1, user_api="blas"):
        L = problem.liouvillian
        rho0 = problem.initial_vector()
        states = np.empty((t.size, rho0.size), dtype=complex)
        states[0] = rho0
        if t.size > 1:
            if method == "expm":
                from scipy.sparse.linalg import expm_multiply

                steps = np.diff(t)
                if np.allclose(steps, steps[0], rtol=1e-12, atol=0):
                    states[:] = expm_multiply(L, rho0, start=t[0], stop=t[-1], num=t.size, endpoint=True)
                    states[0] = rho0
                else:
                    for i, dt in enumerate(steps):
                        states[i + 1] = expm_multiply(L * dt, states[i])
            else:
                from scipy.integrate import solve_ivp

                sol = solve_ivp(lambda _t, y: L @ y, (t[0], t[-1]), rho0, method="DOP853", t_eval=t, atol=atol, rtol=rtol)
                if not sol.success:
                    raise RuntimeError(f"DOP853 failed: {sol.message}")
                states[:] = sol.y.T
    values = problem.expectations(states, squares)
    return PermutationRun(problem, t, values, _time.perf_counter() - start, method, frame,
                          {"cpu_seconds": _time.process_time() - cpu})


# ------------------------------------------------------------------------------------ solve
def _first_fock(model: DickeModel, start: InitialState, t: np.ndarray, tol: float | None = None) -> np.ndarray:
    """First cutoff per mode from the mean-field peak boson number n (with the spin rates): n + k√(n + 1) + 4
    levels, k = max(4, √(2 ln(40/tol))) (a Poisson-like tail at k standard deviations holds ≈ e^{−k²/2} ≈ tol/40,
    the top population the search aims at). Measured at tol = 1e-3 (M = 1, one block, t ≤ 10): k = 4 left a
    change of 1.0e-3 (N_sp = 16), 9.6e-4 (24) and 7.7e-4 (32) to the next cutoff, one run too few."""
    from ..meanfield.evolution import evolve

    mf = evolve(model, start, times=t if t.size > 1 else [t[0], t[0] + 1e-9], representation="spins", keep_bloch=False)
    peak = np.max(np.asarray(mf["occupation"].values), axis=0) * model.n_spins
    k = 4.0 if tol is None else max(4.0, math.sqrt(2.0 * math.log(40.0 / tol)))
    return np.ceil(peak + k * np.sqrt(peak + 1.0) + 4.0).astype(int)


@dataclass(frozen=True, eq=False)
class PermutationBasis(Basis):
    """The permutation-invariant basis as a :class:`~.basis.Basis` of the one truncation search: truncation = Fock
    levels per mode (the blocks are exact), grown by the decay of the Fock tail (:func:`.plain_basis._next_fock`);
    every run is a :class:`PermutationRun` seen as a :class:`~.result.Propagation` (:func:`as_propagation`)."""

    problem: PermutationProblem
    start: tuple
    run_kwargs: dict = field(default_factory=dict)
    max_dim: int = 50_000_000
    name = "permutation"

    def first(self) -> tuple:
        return tuple(int(c) for c in self.start)

    def dimension(self, truncation) -> int:
        return self.problem.with_fock(truncation).dim

    def propagate(self, truncation, times, progress=None) -> Propagation:
        return as_propagation(propagate(self.problem.with_fock(truncation), times, **self.run_kwargs))

    def grow(self, truncation, run, tol) -> tuple:
        from .plain_basis import _next_fock

        return tuple(int(c) for c in _next_fock(run, tol))

    def refuse(self, truncation):
        return f"max_dim = {self.max_dim}" if self.dimension(truncation) > self.max_dim else None

    def describe(self, truncation) -> str:
        return f"Fock cutoff {list(truncation)}"

    def record(self, truncation, run, change, deviation_change) -> tuple:
        return (tuple(truncation), run.truncation().tolist(), change, run.elapsed, run.stats["cpu_seconds"])


def as_propagation(run: PermutationRun) -> Propagation:
    """A :class:`PermutationRun` as the :class:`~.result.Propagation` of every basis: ``overlap_μ``,
    ``occupation_μ``, ``alpha_μ``, ``top_μ``, ``level_μ_k`` (μ, k from 1), the gauged group Bloch vectors
    ``m{a}_k`` of :func:`opendicke.reduce`'s groups, and the raw values of the run."""
    p = run.problem
    values = dict(run.values)
    for mu in range(p.n_modes):
        values[f"overlap_{mu + 1}"] = run.overlaps()[:, mu]
        values[f"occupation_{mu + 1}"] = run.occupations()[:, mu]
        values[f"alpha_{mu + 1}"] = run.alphas()[:, mu]
        values[f"top_{mu + 1}"] = run.top_populations()[:, mu]
        for k in range(1, _TAIL + 1):
            values[f"level_{mu + 1}_{k}"] = np.real(run.values[f"level{k}_{mu}"])
    bloch = _group_bloch(run, p.grouping)
    for k in range(p.grouping.n_groups):
        for c, a in enumerate(_COMPONENTS):
            values[f"m{a}_{k + 1}"] = bloch[:, k, c]
    if "SxSx_0_0" in run.values:
        values.update(_group_squares(run, p.grouping))
    return Propagation(problem=p, times=run.times, values=values, elapsed=run.elapsed, method=run.method,
                       stats={**run.stats, "frame": run.frame})


def solve(
    model: DickeModel,
    initial: InitialState | int = 1,
    *,
    t_final: float = 10.0,
    times: int | np.ndarray = 101,
    fock=None,
    tol: float = 1e-6,
    method: str = "auto",
    frame: str = "lab",
    atol: float = 1e-10,
    rtol: float = 1e-8,
    max_dim: int = 50_000_000,
    compare_meanfield: bool = True,
    threads: int = 1,
    cost: bool = False,
):
    """Exact master-equation dynamics with individual spin dissipation, as an ``xarray.Dataset``.

    Parameters
    ----------
    model:
        A finite model; its ``gamma_down``, ``gamma_up``, ``gamma_phi`` may be zero (then this is an
        independent check of the maximal-spin solver, at a larger cost).
    initial:
        Pattern number (1-based) or an :class:`~opendicke.states.InitialState` (product state).
    t_final, times:
        Output times: a count on [0, t_final] or explicit increasing times.
    fock:
        Fock levels per mode (one value or M). ``None``: the one truncation search of :func:`.basis.search`,
        from the mean-field peak boson number (in the displaced frame: at most 10 levels of the fluctuations),
        grown by the decay of the Fock tail until overlaps and occupations change by ≤ ``tol`` over the whole
        window between two successive cutoffs.
    method, atol, rtol:
        ``"auto"`` (default: Chebyshev in the lab frame, compiled DOP853 in the displaced frame), ``"chebyshev"``,
        ``"rk"``, or the sparse reference methods ``"expm"`` and ``"dop853"``; see :func:`propagate`.
    frame:
        ``"lab"`` (default) or ``"displaced"``: the modes displaced along the exact ⟨a_μ⟩(t), so the cutoff
        counts the fluctuations, not the N_sp·n photons of a retrieved pattern (:mod:`.permutation_fast`).
    max_dim:
        Largest Liouville-space dimension the cutoff search may try.
    compare_meanfield:
        Also integrate the mean field (with the same rates) on the same times: ``overlap_meanfield``,
        ``occupation_meanfield``.
    threads:
        Threads of the compiled kernel (1, the default: single-threaded).
    cost:
        Also the paper's cost function E_N(t) (Eq. 9, paper normalisation; ``cost``, ``cost_initial``) against
        the mean field with the same rates (groups representation), from ⟨S_{a,k}⟩ and ⟨S_{a,k}²⟩ of the gauged
        group operators (block products within a group included) and ⟨a_μ⟩, ⟨a_μ†a_μ⟩; implies
        ``compare_meanfield``.

    Returns
    -------
    xarray.Dataset
        The variables and attributes of :func:`opendicke.quantum.solve` (one builder; ``cost`` with ``cost``):
        ``overlap``, ``occupation``, ``alpha`` (time, pattern), ``bloch`` (time, group, component; gauged
        frame of :func:`opendicke.reduce`, as the other solvers), ``top_population``, ``fock``, ``fock_change``,
        ``fock_converged``; besides ``trace``; attrs ``kind = "quantum_evolution"``, ``solver_frame =
        "permutation"``, ``boson_frame``, the rates, ``dimension``, ``blocks``, ``fock_history`` (with the CPU
        seconds of every run) and ``elapsed_seconds``.
    """
    from ..meanfield.evolution import output_times
    from .basis import search

    total_start = _time.perf_counter()
    start = as_initial_state(initial)
    t = output_times(t_final, times)
    if not (tol > 0):
        raise ValueError(f"tol must be positive, got {tol}")
    if not (isinstance(threads, int | np.integer) and threads >= 1):
        raise ValueError(f"threads must be an integer ≥ 1, got {threads!r}")
    base = build(model, start, fock=2)
    run_kwargs = dict(method=method, frame=frame, atol=atol, rtol=rtol, threads=int(threads), squares=bool(cost))
    if fock is not None:
        basis = PermutationBasis(base, _fock_tuple(fock, model.n_modes), run_kwargs, max_dim)
        problem = base.with_fock(fock)
        _check_dim(problem, max_dim)
        run = basis.propagate(basis.first(), t)
        history = [basis.record(basis.first(), run, math.nan, math.nan)]
        change, converged = math.nan, False
        top = run.truncation()
        if np.any(top > tol):
            warnings.warn(f"Fock cutoff {problem.fock} holds top-level populations up to {top.max():.2e} > tol = {tol:g}",
                          FockCutoffWarning, stacklevel=2)
    else:
        levels = np.maximum(_first_fock(model, start, t, tol), 3)
        if frame == "displaced":
            levels = np.minimum(levels, 10)
        basis = PermutationBasis(base, tuple(int(c) for c in levels), run_kwargs, max_dim)
        _check_dim(base.with_fock(levels), max_dim)
        found = search(basis, t, tol, stacklevel=3)
        run, change, converged, history = found.run, found.change, found.converged, found.history
    meanfield = None
    if compare_meanfield or cost:
        from ..meanfield.evolution import evolve

        mf_times = t if t.size > 1 else [t[0], t[0] + 1e-9]
        # the cost function needs the groups' Bloch vectors in the reduction's gauged frame
        meanfield = (evolve(model, start, times=mf_times, representation="groups").isel(time=slice(0, t.size))
                     if cost else evolve(model, start, times=mf_times, keep_bloch=False))
    return _dataset(model, start, run, change, converged, history, tol, atol, rtol, _time.perf_counter() - total_start,
                    meanfield, cost=bool(cost))


def _check_dim(problem: PermutationProblem, max_dim: int) -> None:
    if problem.dim > max_dim:
        raise ValueError(f"the Liouville space has dimension {problem.dim} > max_dim = {max_dim} "
                         f"(blocks {problem.block_sizes.tolist()}, fock {list(problem.fock)})")


def _group_bloch(run: PermutationRun, grouping: Grouping) -> np.ndarray:
    """Mean gauged Bloch vector of every reduction group from the block vectors, (T, K, 3)."""
    p = run.problem
    blocks = run.block_bloch()  # (T, R, 3) original frame
    spin0 = np.array([np.flatnonzero(p.block_of_spin == b)[0] for b in range(p.n_blocks)])
    gauge = grouping.gauge[spin0].astype(float)
    group = grouping.group_of_spin[spin0]
    gauged = blocks.copy()
    gauged[..., 1] *= gauge
    gauged[..., 2] *= gauge
    out = np.zeros((blocks.shape[0], grouping.n_groups, 3))
    for b in range(p.n_blocks):
        out[:, group[b]] += p.block_sizes[b] * gauged[:, b]
    return out / grouping.sizes[None, :, None]


def _group_squares(run: PermutationRun, grouping: Grouping) -> dict:
    """⟨S_{a,k}²⟩ of the gauged group operators (S_x = Σ_j σ_x^j, S_{y,z} = Σ_j g_j σ_{y,z}^j) as ``S{a}2_k``
    (k from 1; the names of the plain basis's ``squares``): Σ_b ⟨(S_a^{(b)})²⟩ + 2 Σ_{b<c} s_b s_c ⟨S_a^{(b)} S_a^{(c)}⟩
    over the blocks of group k, s = 1 for x and the gauge sign for y, z."""
    p = run.problem
    spin0 = np.array([np.flatnonzero(p.block_of_spin == b)[0] for b in range(p.n_blocks)])
    gauge = grouping.gauge[spin0].astype(float)
    group = grouping.group_of_spin[spin0]
    out = {}
    for a in _COMPONENTS:
        sign = np.ones_like(gauge) if a == "x" else gauge
        total = np.zeros((grouping.n_groups, run.times.size), dtype=complex)
        for b in range(p.n_blocks):
            total[group[b]] += run.values[f"S{a}S{a}_{b}_{b}"]
        for b, c in p.square_pairs:
            total[group[b]] += 2.0 * sign[b] * sign[c] * run.values[f"S{a}S{a}_{b}_{c}"]
        for k in range(grouping.n_groups):
            out[f"S{a}2_{k + 1}"] = total[k]
    return out


def _dataset(model, start, run: Propagation, change, converged, history, tol, atol, rtol, total, meanfield=None,
             cost: bool = False):
    """The Dataset of :func:`opendicke.quantum.solve` (its builder; the cost function with ``cost``, from a run with
    ``squares`` and a groups-representation ``meanfield``), plus ``trace`` and the attributes of this basis."""
    from .solver import _dataset as quantum_dataset

    p = run.problem
    ds = quantum_dataset(model, start, run, meanfield, change, converged, history, tol, atol, rtol, total,
                         with_cost=cost)
    ds["trace"] = (("time",), np.real(run.values["trace"]))
    ds["trace"].attrs["long_name"] = "Tr rho (1 up to the propagation error)"
    ds.attrs.update({
        "boson_frame": run.stats["frame"],
        "blocks": json.dumps({"sizes": p.block_sizes.tolist(), "columns": p.block_columns.T.tolist()}),
        "solver_frame": "permutation",
        "units": "per spin: alpha = <a>/sqrt(N_sp), occupation = <a^dag a>/N_sp"
                 + ("; cost E_N in the paper's normalisation" if cost else ""),
    })
    if run.stats.get("applications") is not None:
        ds.attrs["propagator_stats"] = json.dumps({k: v for k, v in run.stats.items() if k != "frame"})
    return ds
