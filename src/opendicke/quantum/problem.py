"""The exact finite-N Lindblad problem in the reduced (large-spin ⊗ Fock) basis.

Model (paper Eqs. 1-2, docs/physics-notes.md), Pauli spin operators:

    H = Ω Σ_j σ_x^j + Σ_μ Ω_μ a_μ†a_μ + (g0/√N_sp) Σ_{μ,j} G[μ,j] (a_μ + a_μ†) σ_z^j,   loss κ_μ D[a_μ].

The gauge of the paper (a π rotation about x on the spins with G[1, j] = −1: σ_z → −σ_z, σ_y → −σ_y,
σ_x unchanged) makes the first pattern all +1; the Hamiltonian keeps its form with G → f_j = G[:, j] G[1, j].
Spins with the same gauged column f_j *and* the same gauged initial Bloch vector form one *block*: the
initial state is symmetric inside a block and the generator is symmetric under permutations inside a
block, so each block stays in its maximal-spin sector (boson loss is the only dissipation). A block of
n_r spins is one large spin S_{a,r} = Σ_{j∈r} σ_a^j with S_z eigenvalues −n_r, −n_r + 2, …, n_r.
Blocks are the reduction groups of :func:`opendicke.reduction.reduce` refined by the initial state, so a
corrupted pattern stays exact. Each mode is truncated to ``fock[μ]`` levels (0 … fock[μ] − 1).

Hilbert space: block 1 ⊗ … ⊗ block R ⊗ mode 1 ⊗ … ⊗ mode M, dimension Π_r (n_r + 1) · Π_μ fock[μ].
The large-spin basis is ordered m = +n_r/2 first (S_z = +n_r first), as ``qutip.jmat``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..model import DickeModel
from ..reduction import Grouping, reduce
from ..states import InitialState, as_initial_state

__all__ = ["QuantumProblem", "build", "QutipProblem"]

_COMPONENTS = ("x", "y", "z")


def _large_spin(n: int) -> dict[str, sp.csr_matrix]:
    """Pauli-convention collective operators S_a = 2 J_a of n spins in the maximal-spin sector (j = n/2)."""
    j = n / 2.0
    m = j - np.arange(n + 1)  # +j … −j
    # J_+ |j, m⟩ = √(j(j+1) − m(m+1)) |j, m+1⟩ ; in our order |m+1⟩ is the previous index.
    up = np.sqrt(j * (j + 1) - m[1:] * (m[1:] + 1))  # element (i-1, i) for i = 1..n
    jp = sp.diags(up, 1, shape=(n + 1, n + 1), format="csr", dtype=complex)
    jm = jp.T.tocsr()
    return {
        "x": (jp + jm).tocsr(),
        "y": (-1j * (jp - jm)).tocsr(),
        "z": sp.diags(2.0 * m, 0, format="csr", dtype=complex),
    }


def _spin_coherent(n: int, vector: np.ndarray) -> np.ndarray:
    """n spins all along the unit Bloch vector ``vector``, in the Dicke basis (S_z = +n first)."""
    x, y, z = vector
    theta = math.acos(max(-1.0, min(1.0, z)))
    phi = math.atan2(y, x)
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    k = np.arange(n + 1)  # number of spins down
    if s < 1e-300:
        amp = (k == 0).astype(complex)
    elif c < 1e-300:
        amp = (k == n).astype(complex)
    else:
        logbinom = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
        logmag = 0.5 * logbinom + (n - k) * math.log(c) + k * math.log(s)
        amp = np.exp(logmag - logmag.max()) * np.exp(1j * k * phi)
    return amp / np.linalg.norm(amp)


def _coherent(levels: int, beta: complex) -> np.ndarray:
    """Coherent state |β⟩ truncated to ``levels`` Fock levels and renormalised."""
    if beta == 0:
        out = np.zeros(levels, dtype=complex)
        out[0] = 1.0
        return out
    n = np.arange(levels)
    logmag = n * math.log(abs(beta)) - 0.5 * np.array([math.lgamma(i + 1) for i in n])
    amp = np.exp(logmag - logmag.max()) * np.exp(1j * n * np.angle(beta))
    return amp / np.linalg.norm(amp)


def _embed(op: sp.spmatrix, index: int, dims: tuple[int, ...]) -> sp.csr_matrix:
    left = int(np.prod(dims[:index], dtype=np.int64))
    right = int(np.prod(dims[index + 1:], dtype=np.int64))
    out = op
    if right > 1:
        out = sp.kron(out, sp.identity(right, dtype=complex, format="csr"), format="csr")
    if left > 1:
        out = sp.kron(sp.identity(left, dtype=complex, format="csr"), out, format="csr")
    return sp.csr_matrix(out)


def _diag_embed(values: np.ndarray, index: int, dims: tuple[int, ...]) -> np.ndarray:
    """Diagonal of an operator diagonal on factor ``index`` (values per level), on the full space."""
    left = int(np.prod(dims[:index], dtype=np.int64))
    right = int(np.prod(dims[index + 1:], dtype=np.int64))
    return np.repeat(np.tile(np.asarray(values), left), right)


@dataclass(frozen=True, eq=False)
class QuantumProblem:
    """The exact Lindblad problem of a finite model and a σ-product initial state, in the reduced basis.

    Build it with :func:`build`. All operators are ``scipy.sparse`` CSR matrices on the full space
    (blocks ⊗ modes); :meth:`to_qutip` gives the same as QuTiP objects.

    Attributes
    ----------
    model, initial:
        The model (finite N_sp) and the initial state.
    grouping:
        The reduction (paper Fig. 2): groups k = 1..K, gauged couplings ``grouping.f`` (M × K).
    block_group:
        Reduction group (0-based) of every block, shape (R,).
    block_sizes:
        Spins per block n_r, shape (R,).
    block_vectors:
        Initial gauged Bloch vector shared by the spins of every block, shape (R, 3).
    fock:
        Fock levels per mode (cutoff), shape (M,).
    """

    model: DickeModel
    initial: InitialState
    grouping: Grouping
    block_group: np.ndarray
    block_sizes: np.ndarray
    block_vectors: np.ndarray
    fock: tuple[int, ...]
    block_of_spin: np.ndarray = field(repr=False)

    # ---------------------------------------------------------------- sizes
    @property
    def n_spins(self) -> int:
        return int(self.model.n_spins)

    @property
    def n_modes(self) -> int:
        return self.model.n_modes

    @property
    def n_blocks(self) -> int:
        return int(self.block_sizes.size)

    @property
    def n_groups(self) -> int:
        return self.grouping.n_groups

    @property
    def block_f(self) -> np.ndarray:
        """Gauged couplings of every block, (M, R)."""
        return self.grouping.f[:, self.block_group].astype(float)

    @property
    def dims(self) -> tuple[int, ...]:
        """Factor dimensions: (n_1 + 1, …, n_R + 1, fock_1, …, fock_M)."""
        return tuple(int(n) + 1 for n in self.block_sizes) + tuple(int(c) for c in self.fock)

    @property
    def dim(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))

    def with_fock(self, fock) -> QuantumProblem:
        """The same problem with another Fock cutoff (one value for all modes or one per mode)."""
        return QuantumProblem(
            model=self.model, initial=self.initial, grouping=self.grouping, block_group=self.block_group,
            block_sizes=self.block_sizes, block_vectors=self.block_vectors, fock=_fock_tuple(fock, self.n_modes),
            block_of_spin=self.block_of_spin,
        )

    # ---------------------------------------------------------------- elementary operators
    def _mode_index(self, mu: int) -> int:
        return self.n_blocks + mu

    @cached_property
    def _block_ops(self) -> list[dict[str, sp.csr_matrix]]:
        return [{a: _embed(op, r, self.dims) for a, op in _large_spin(int(n)).items()} for r, n in enumerate(self.block_sizes)]

    def block_spin(self, component: str, block: int) -> sp.csr_matrix:
        """S_{a,r} of one block (0-based), gauged frame."""
        return self._block_ops[block][component]

    def group_spin(self, component: str, group: int) -> sp.csr_matrix:
        """S_{a,k} = Σ_{r∈k} S_{a,r} of one reduction group (0-based), gauged frame."""
        blocks = np.flatnonzero(self.block_group == group)
        out = sp.csr_matrix((self.dim, self.dim), dtype=complex)
        for r in blocks:
            out = out + self.block_spin(component, int(r))
        return out.tocsr()

    def destroy(self, mu: int) -> sp.csr_matrix:
        """a_μ (0-based mode index) on the full space."""
        c = self.fock[mu]
        a = sp.diags(np.sqrt(np.arange(1, c, dtype=float)), 1, shape=(c, c), format="csr", dtype=complex)
        return _embed(a, self._mode_index(mu), self.dims)

    def number_diagonal(self, mu: int) -> np.ndarray:
        """Diagonal of a_μ†a_μ on the full space."""
        return _diag_embed(np.arange(self.fock[mu], dtype=float), self._mode_index(mu), self.dims)

    def top_level_diagonal(self, mu: int, below: int = 0) -> np.ndarray:
        """Diagonal of the projector on Fock level fock[μ] − 1 − ``below`` of mode μ (``below = 0``: the top
        level, the truncation indicator)."""
        v = np.zeros(self.fock[mu])
        v[-1 - below] = 1.0
        return _diag_embed(v, self._mode_index(mu), self.dims)

    def sz_diagonal(self, block: int) -> np.ndarray:
        n = int(self.block_sizes[block])
        return _diag_embed(n - 2.0 * np.arange(n + 1), block, self.dims)

    def overlap_diagonal(self, mu: int) -> np.ndarray:
        """Diagonal of ξ_μ = (1/N_sp) Σ_j G[μ,j] σ_z^j = (1/N_sp) Σ_r f[μ,r] S_{z,r}."""
        f = self.block_f
        out = np.zeros(self.dim)
        for r in range(self.n_blocks):
            out += f[mu, r] * self.sz_diagonal(r)
        return out / self.n_spins

    # ---------------------------------------------------------------- generator
    @cached_property
    def hamiltonian(self) -> sp.csr_matrix:
        """H in the gauged reduced basis (CSR)."""
        m = self.model
        H = sp.csr_matrix((self.dim, self.dim), dtype=complex)
        for r in range(self.n_blocks):
            H = H + m.omega * self.block_spin("x", r)
        diag = np.zeros(self.dim)
        for mu in range(self.n_modes):
            diag += m.omega_modes[mu] * self.number_diagonal(mu)
        H = H + sp.diags(diag, 0, format="csr")
        scale = m.g0 / math.sqrt(self.n_spins)
        for mu in range(self.n_modes):
            a = self.destroy(mu)
            field_mu = sp.diags(scale * self.n_spins * self.overlap_diagonal(mu), 0, format="csr")
            H = H + (a + a.getH()) @ field_mu
        H = H.tocsr()
        H.sum_duplicates()
        H.eliminate_zeros()
        return H

    @cached_property
    def collapse_operators(self) -> list[sp.csr_matrix]:
        """√κ_μ a_μ for every mode with κ_μ > 0."""
        return [math.sqrt(k) * self.destroy(mu) for mu, k in enumerate(self.model.kappa) if k > 0]

    # ---------------------------------------------------------------- initial state
    @cached_property
    def initial_ket(self) -> np.ndarray:
        """The initial pure state (spin coherent state per block ⊗ coherent state per mode)."""
        parts = [_spin_coherent(int(n), v) for n, v in zip(self.block_sizes, self.block_vectors)]
        beta = self.initial.initial_alpha(self.model) * math.sqrt(self.n_spins)
        parts += [_coherent(c, b) for c, b in zip(self.fock, beta)]
        out = np.ones(1, dtype=complex)
        for p in parts:
            out = np.kron(out, p)
        return out

    # ---------------------------------------------------------------- observables
    def observables(self, squares: bool = False, tail: int = 0) -> dict[str, sp.csr_matrix]:
        """Named observable operators (CSR), patterns/groups numbered from 1 in the names.

        ``overlap_<μ>`` ξ_μ, ``alpha_<μ>`` a_μ/√N_sp (not Hermitian), ``occupation_<μ>`` a_μ†a_μ/N_sp,
        ``top_<μ>`` the top Fock level projector, ``m<a>_<k>`` = S_{a,k}/n_k (gauged frame, reduction group k),
        with ``squares`` also ``S<a>2_<k>`` = S_{a,k}² (for the cost function E_N), and with ``tail`` = L > 0
        the projectors ``level_<μ>_<l>`` on Fock level fock[μ] − 1 − l for l = 1..L (the tail below the top).
        """
        N = self.n_spins
        ops: dict[str, sp.csr_matrix] = {}
        for mu in range(self.n_modes):
            ops[f"overlap_{mu + 1}"] = sp.diags(self.overlap_diagonal(mu), 0, format="csr", dtype=complex)
            ops[f"alpha_{mu + 1}"] = self.destroy(mu) / math.sqrt(N)
            ops[f"occupation_{mu + 1}"] = sp.diags(self.number_diagonal(mu) / N, 0, format="csr", dtype=complex)
            ops[f"top_{mu + 1}"] = sp.diags(self.top_level_diagonal(mu), 0, format="csr", dtype=complex)
            for below in range(1, min(tail, self.fock[mu] - 1) + 1):
                ops[f"level_{mu + 1}_{below}"] = sp.diags(self.top_level_diagonal(mu, below), 0, format="csr", dtype=complex)
        sizes = self.grouping.sizes
        for k in range(self.n_groups):
            for a in _COMPONENTS:
                S = self.group_spin(a, k)
                ops[f"m{a}_{k + 1}"] = (S / float(sizes[k])).tocsr()
                if squares:
                    ops[f"S{a}2_{k + 1}"] = (S @ S).tocsr()
        return ops

    # ---------------------------------------------------------------- QuTiP export
    def to_qutip(self, squares: bool = False) -> QutipProblem:
        """The problem as QuTiP objects (Hamiltonian, collapse operators, initial ket and density matrix,
        named observables), with tensor dims [[n_1+1, …, fock_1, …], …] so any QuTiP solver can run it."""
        import qutip

        dims = [list(self.dims), list(self.dims)]
        q = lambda m: qutip.Qobj(m, dims=dims)  # noqa: E731
        psi0 = qutip.Qobj(self.initial_ket.reshape(-1, 1), dims=[list(self.dims), [1] * len(self.dims)])
        return QutipProblem(
            hamiltonian=q(self.hamiltonian),
            collapse_operators=[q(c) for c in self.collapse_operators],
            psi0=psi0,
            rho0=psi0.proj(),
            observables={name: q(op) for name, op in self.observables(squares).items()},
        )

    def describe(self) -> str:
        return (
            f"{self.n_blocks} blocks (sizes {self.block_sizes.tolist()}) in {self.n_groups} groups, "
            f"Fock levels {list(self.fock)}, dimension {self.dim}"
        )


@dataclass(frozen=True)
class QutipProblem:
    """QuTiP view of a :class:`QuantumProblem` (gauged reduced basis)."""

    hamiltonian: object
    collapse_operators: list
    psi0: object
    rho0: object
    observables: dict


def _fock_tuple(fock, n_modes: int) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(fock))
    if arr.ndim != 1 or arr.size not in (1, n_modes):
        raise ValueError(f"fock must be one cutoff or M = {n_modes} cutoffs (Fock levels per mode), got {fock!r}")
    if arr.size == 1:
        arr = np.full(n_modes, arr[0])
    if not all(float(c).is_integer() and c >= 2 for c in arr):
        raise ValueError(f"fock must be integers ≥ 2 (Fock levels per mode, 0 … fock − 1), got {fock!r}")
    return tuple(int(c) for c in arr)


def build(model: DickeModel, initial: InitialState | int = 1, fock=20) -> QuantumProblem:
    """The exact reduced Lindblad problem of ``model`` from ``initial`` with ``fock`` levels per mode.

    ``initial`` is any state whose spins are pure (unit Bloch vectors): a pattern, a corrupted pattern,
    a random product state, explicit unit vectors; bosons start in the coherent state √N_sp α (vacuum by
    default). Spins with the same gauged coupling column and the same gauged initial vector form a block.
    """
    if model.thermodynamic_limit:
        raise ValueError("the exact quantum dynamics needs a finite n_spins (give n_spins or patterns)")
    if model.spin_dissipation:  # the maximal-spin sector is not invariant any more (issue 15)
        raise ValueError("this basis keeps each block's total spin, which individual spin rates break: use "
                         "opendicke.quantum.permutation.solve for models with gamma_down/gamma_up/gamma_phi")
    start = as_initial_state(initial)
    grouping = reduce(model)
    fock_t = _fock_tuple(fock, model.n_modes)
    vectors = grouping.to_frame(start.spin_vectors(model))  # (N_sp, 3), gauged frame
    lengths = np.linalg.norm(vectors, axis=1)
    if np.any(np.abs(lengths - 1.0) > 1e-9):
        raise ValueError(
            "initial: the exact quantum problem needs pure spin states (unit Bloch vectors, e.g. a pattern or a "
            f"corrupted pattern); found lengths down to {lengths.min():.3g}"
        )
    # block key: (reduction group, rounded gauged vector); ordered by group, then by first appearance in the group
    rounded = np.round(vectors, 12) + 0.0
    keys: dict[tuple, int] = {}
    block_of_spin = np.empty(model.n_spins, dtype=np.int64)
    order = np.lexsort((np.arange(model.n_spins), grouping.group_of_spin))
    for j in order:
        key = (int(grouping.group_of_spin[j]),) + tuple(rounded[j])
        block_of_spin[j] = keys.setdefault(key, len(keys))
    block_group = np.array([k[0] for k in keys], dtype=np.int64)
    block_vectors = np.array([k[1:] for k in keys], dtype=float)
    block_vectors /= np.linalg.norm(block_vectors, axis=1, keepdims=True)
    block_sizes = np.bincount(block_of_spin, minlength=len(keys))
    return QuantumProblem(
        model=model, initial=start, grouping=grouping, block_group=block_group, block_sizes=block_sizes,
        block_vectors=block_vectors, fock=fock_t, block_of_spin=block_of_spin,
    )
