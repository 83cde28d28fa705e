"""The Liouvillian of the reduced problem split into its Z2 parity sectors, in a real representation.

Parity. P = exp(iπ Σ_μ a_μ†a_μ) × (π rotation of every spin about x) maps σ_z → −σ_z, σ_y → −σ_y,
a_μ → −a_μ and leaves σ_x and a_μ†a_μ alone, so P H P† = H and P a_μ P† = −a_μ: the superoperator
ρ ↦ P ρ P† commutes with L (a *weak* symmetry: the jumps anticommute with P). In the Dicke basis of a block
of n spins the π rotation about x is, up to a global phase, the flip |S_z = s⟩ ↦ |S_z = −s⟩ (its S_x matrix
elements depend on |m| only), so P is the real signed permutation F_1 ⊗ … ⊗ F_R ⊗ (−1)^{n_1} ⊗ … with P² = 1.
In the basis of its eigenvectors (symmetric and antisymmetric combinations of |s⟩ and |−s⟩ per block, Fock
states per mode), sorted "+1 first", ρ = [[ρ₊₊, ρ₊₋], [ρ₋₊, ρ₋₋]] and L maps

* the **even** sector (P ρ P = ρ: ρ₊₊ ⊕ ρ₋₋) into itself: it holds the stationary state and every
  observable that is even under P (occupations, S_z², …);
* the **odd** sector (P ρ P = −ρ: ρ₊₋ ⊕ ρ₋₊) into itself: it holds ⟨ξ⟩, ⟨a⟩ and the slowest decay, the
  tunnelling between the retrieved state ±ξ (the gap λ₁).

Each sector has about half of the d² entries of ρ.

Real representation. H and a_μ are real in this basis, so a Hermitian ρ = A + iB (A real symmetric, B real
antisymmetric) is carried without loss by the real matrix X = A + B, which obeys (docs/physics-notes.md)

    dX/dt = Xᵀ H − H Xᵀ + Σ_μ κ_μ (a_μ X a_μᵀ − ½ {a_μ†a_μ, X}).

This real-linear map on the d² real numbers of X is the restriction of L to Hermitian matrices; its
complexification is L itself, so it has *the same eigenvalues* as L (in conjugate pairs), at a quarter of
the cost of complex arithmetic. Expectation values pair the same way: for a Hermitian observable
O = O_s + i O_a (real symmetric + real antisymmetric), tr(O ρ) = ⟨O_s + O_a, X⟩ (Frobenius), so a left
eigenvector of the real matrix, reshaped, is an observable in the same representation.

Vectorisation is row-major per parity block: the vector of a sector is vec(X_st) of its two blocks
(s, t) ∈ {(+,+), (−,−)} (even) or {(+,−), (−,+)} (odd), concatenated.

Further symmetries (M ≥ 2). A sign flip a_μ → −a_μ of a mode μ ≥ 2, combined with a permutation of the blocks
that maps f[μ, ·] → −f[μ, ·], leaves everything else unchanged and maps every block onto one of the same
size, is a symmetry too; :func:`extra_symmetries` lists the ones a problem has (they need equal group sizes,
which random patterns at finite N_sp rarely give).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .problem import QuantumProblem

__all__ = ["ParityBasis", "parity_basis", "SECTORS", "sector_liouvillian", "full_real_liouvillian",
           "extra_symmetries", "liouville_memory_estimate"]

SECTORS = ("even", "odd")


def _block_flip_basis(n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Orthogonal Q (columns = eigenvectors of the flip i ↔ n − i on n + 1 Dicke states) and their parities."""
    size = n + 1
    rows, cols, vals, parity = [], [], [], []
    col = 0
    r = 1.0 / np.sqrt(2.0)
    for i in range(size // 2):
        j = n - i
        rows += [i, j]
        cols += [col, col]
        vals += [r, r]
        parity.append(1)
        col += 1
        rows += [i, j]
        cols += [col, col]
        vals += [r, -r]
        parity.append(-1)
        col += 1
    if size % 2 == 1:
        rows.append(n // 2)
        cols.append(col)
        vals.append(1.0)
        parity.append(1)
    Q = sp.csr_matrix((vals, (rows, cols)), shape=(size, size))
    return Q, np.array(parity, dtype=np.int8)


@dataclass(frozen=True, eq=False)
class ParityBasis:
    """The reduced problem in the eigenbasis of P, states sorted by parity (+1 first).

    ``Q`` (d × d, real orthogonal, sparse): columns are the new basis vectors in the problem's basis.
    ``parity``: ±1 of every new basis state (sorted). ``n_even``: number of +1 states.
    ``hamiltonian`` and ``jumps`` (√κ_μ a_μ): real CSR matrices in the new basis.
    """

    problem: QuantumProblem
    Q: sp.csr_matrix
    parity: np.ndarray
    n_even: int

    @property
    def dim(self) -> int:
        return self.problem.dim

    def transform(self, op) -> sp.csr_matrix:
        """Qᵀ op Q for an operator of the problem's basis (kept complex if it is)."""
        op = sp.csr_matrix(op)
        out = (self.Q.T @ op @ self.Q).tocsr()
        if np.iscomplexobj(out.data) and np.all(out.data.imag == 0):
            out = out.real.tocsr()
        out.eliminate_zeros()
        return out

    @cached_property
    def hamiltonian(self) -> sp.csr_matrix:
        return self.transform(self.problem.hamiltonian)

    @cached_property
    def is_real(self) -> bool:
        """True when H and every jump are real here (plain basis): the sectors use the real representation
        X = Re ρ + Im ρ; otherwise (polaron basis) the complex one, the sector vector being ρ itself."""
        if getattr(self.problem, "basis_name", "plain") == "polaron":  # complex by construction (κ > 0): skip H
            return False
        return not (np.iscomplexobj(self.hamiltonian.data) or any(np.iscomplexobj(c.data) for c in self.jumps))

    def density(self, vector: np.ndarray, sector: str) -> np.ndarray:
        """The d × d matrix in the problem's basis that a sector vector represents (ρ-like: a density matrix or an
        eigenmatrix of L), complex: ρ = sym(X) + i antisym(X) in the real representation, ρ itself otherwise."""
        M = self.to_problem_basis(self.full_matrix(vector, sector))
        if self.is_real:
            M = np.real(M)
            return 0.5 * (M + M.T) + 0.5j * (M - M.T)
        return M

    def observable(self, vector: np.ndarray, sector: str) -> np.ndarray:
        """The observable O (problem's basis) that a left sector vector ℓ represents, ℓ · x = tr(O ρ):
        O = sym(ℓ) + i antisym(ℓ) reshaped (real representation; tr(Oρ) = ⟨O_s + O_a, X⟩), reshape(ℓ)ᵀ otherwise
        (row-major vec: Σ_ij ℓ_ij ρ_ij = tr(ℓᵀ ρ))."""
        M = self.to_problem_basis(self.full_matrix(vector, sector))
        if self.is_real:
            M = np.real(M)
            return 0.5 * (M + M.T) + 0.5j * (M - M.T)
        return M.T

    @cached_property
    def jumps(self) -> list[sp.csr_matrix]:
        return [self.transform(c) for c in self.problem.collapse_operators]

    def split(self, op) -> dict[tuple[str, str], sp.csr_matrix]:
        """The four parity blocks of an operator of the new basis: keys ('+','+'), ('+','-'), …"""
        e = self.n_even
        op = sp.csr_matrix(op)
        sl = {"+": slice(0, e), "-": slice(e, self.dim)}
        return {(s, t): op[sl[s], sl[t]].tocsr() for s in "+-" for t in "+-"}

    def block_shape(self, s: str, t: str) -> tuple[int, int]:
        size = {"+": self.n_even, "-": self.dim - self.n_even}
        return size[s], size[t]

    def sector_blocks(self, sector: str) -> tuple[tuple[str, str], tuple[str, str]]:
        if sector == "even":
            return (("+", "+"), ("-", "-"))
        if sector == "odd":
            return (("+", "-"), ("-", "+"))
        raise ValueError(f"sector must be one of {SECTORS}, got {sector!r}")

    def sector_size(self, sector: str) -> int:
        return int(sum(np.prod(self.block_shape(*b)) for b in self.sector_blocks(sector)))

    def sector_matrices(self, vector: np.ndarray, sector: str) -> dict[tuple[str, str], np.ndarray]:
        """Split a sector vector into its two blocks X_st (real or complex)."""
        out, start = {}, 0
        for b in self.sector_blocks(sector):
            shape = self.block_shape(*b)
            size = shape[0] * shape[1]
            out[b] = np.asarray(vector[start:start + size]).reshape(shape)
            start += size
        return out

    def full_matrix(self, vector: np.ndarray, sector: str) -> np.ndarray:
        """The d × d matrix (new basis) of a sector vector."""
        blocks = self.sector_matrices(vector, sector)
        dtype = np.result_type(*[b.dtype for b in blocks.values()])
        out = np.zeros((self.dim, self.dim), dtype=dtype)
        e = self.n_even
        sl = {"+": slice(0, e), "-": slice(e, self.dim)}
        for (s, t), block in blocks.items():
            out[sl[s], sl[t]] = block
        return out

    def sector_vector(self, matrix: np.ndarray, sector: str) -> np.ndarray:
        """The sector part of a d × d matrix given in the new basis."""
        e = self.n_even
        sl = {"+": slice(0, e), "-": slice(e, self.dim)}
        return np.concatenate([np.asarray(matrix[sl[s], sl[t]]).ravel() for s, t in self.sector_blocks(sector)])

    def to_problem_basis(self, matrix: np.ndarray) -> np.ndarray:
        """Q M Qᵀ: a matrix of the new basis in the problem's (Dicke ⊗ Fock) basis."""
        return np.asarray(self.Q @ np.asarray(self.Q @ np.asarray(matrix)).T).T


def parity_basis(problem: QuantumProblem) -> ParityBasis:
    """The eigenbasis of P for ``problem`` (see the module docstring)."""
    Q = sp.identity(1, format="csr")
    parity = np.ones(1, dtype=np.int8)
    for n in problem.block_sizes:
        Qr, pr = _block_flip_basis(int(n))
        Q = sp.kron(Q, Qr, format="csr")
        parity = np.kron(parity, pr).astype(np.int8)
    for c in problem.fock:
        Q = sp.kron(Q, sp.identity(c, format="csr"), format="csr")
        parity = np.kron(parity, np.where(np.arange(c) % 2 == 0, 1, -1)).astype(np.int8)
    order = np.argsort(-parity, kind="stable")
    Q = Q[:, order].tocsr()
    parity = parity[order]
    return ParityBasis(problem=problem, Q=Q, parity=parity, n_even=int(np.sum(parity > 0)))


def parity_operator(problem: QuantumProblem) -> sp.csr_matrix:
    """P in the problem's basis (real signed permutation, P² = 1)."""
    P = sp.identity(1, format="csr")
    for n in problem.block_sizes:
        size = int(n) + 1
        F = sp.csr_matrix((np.ones(size), (np.arange(size), np.arange(size)[::-1])), shape=(size, size))
        P = sp.kron(P, F, format="csr")
    for c in problem.fock:
        P = sp.kron(P, sp.diags(np.where(np.arange(c) % 2 == 0, 1.0, -1.0)), format="csr")
    return P.tocsr()


def _transpose_perm(rows: int, cols: int) -> np.ndarray:
    """perm with vec(Yᵀ)[k] = vec(Y)[perm[k]] for Y of shape (rows, cols) (row-major)."""
    return np.arange(rows * cols).reshape(rows, cols).T.ravel()


def _eye(n: int) -> sp.csr_matrix:
    return sp.identity(n, format="csr")


def sector_liouvillian(basis: ParityBasis, sector: str) -> sp.csr_matrix:
    """The Liouvillian of one parity sector, CSR, on the sector vector: real representation when H and the
    jumps are real (:attr:`ParityBasis.is_real`), complex (vec of ρ, row-major) otherwise."""
    if not basis.is_real:
        return _complex_sector_liouvillian(basis, sector)
    blocks = basis.sector_blocks(sector)
    H = basis.split(basis.hamiltonian)
    C = [basis.split(c) for c in basis.jumps]
    N = {}
    for s in "+-":
        acc = sp.csr_matrix(basis.block_shape(s, s))
        for c in basis.jumps:
            acc = acc + (c.T @ c)[(slice(0, basis.n_even) if s == "+" else slice(basis.n_even, basis.dim))][
                :, (slice(0, basis.n_even) if s == "+" else slice(basis.n_even, basis.dim))]
        N[s] = acc.tocsr()
    sizes = [int(np.prod(basis.block_shape(*b))) for b in blocks]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    pieces = [[None, None], [None, None]]
    for out_i, (s, t) in enumerate(blocks):
        ds, dt = basis.block_shape(s, t)
        # Hamiltonian part: Y_st = X_tsᵀ H_t − H_s X_tsᵀ, from block (t, s) of shape (dt, ds)
        in_i = blocks.index((t, s))
        perm = _transpose_perm(dt, ds)  # vec(X_tsᵀ)[k] = vec(X_ts)[perm[k]]
        T = sp.csr_matrix((np.ones(ds * dt), (np.arange(ds * dt), perm)), shape=(ds * dt, dt * ds))
        ham = (sp.kron(_eye(ds), H[(t, t)].T, format="csr") - sp.kron(H[(s, s)], _eye(dt), format="csr")) @ T
        # anticommutator: −½ (N_s X_st + X_st N_t)
        anti = -0.5 * (sp.kron(N[s], _eye(dt), format="csr") + sp.kron(_eye(ds), N[t].T, format="csr"))
        # jumps: c_{s s̄} X_{s̄ t̄} c_{t t̄}ᵀ, from block (s̄, t̄)
        sb, tb = ("-" if s == "+" else "+"), ("-" if t == "+" else "+")
        jump_in = blocks.index((sb, tb))
        jump = None
        for c in C:
            term = sp.kron(c[(s, sb)], c[(t, tb)], format="csr")
            jump = term if jump is None else jump + term
        for j, mat in ((in_i, ham), (out_i, anti), (jump_in, jump)):
            if mat is None:
                continue
            pieces[out_i][j] = mat if pieces[out_i][j] is None else pieces[out_i][j] + mat
    for i in range(2):
        for j in range(2):
            if pieces[i][j] is None:
                pieces[i][j] = sp.csr_matrix((sizes[i], sizes[j]))
    L = sp.bmat(pieces, format="csr")
    L.sum_duplicates()
    L.eliminate_zeros()
    assert L.shape == (offsets[-1], offsets[-1])
    return L


def _complex_sector_liouvillian(basis: ParityBasis, sector: str) -> sp.csr_matrix:
    """L on the sector part of vec(ρ) (row-major, complex): vec(A X B) = (A ⊗ Bᵀ) vec(X), so block (s, t) gets
    −i(H_s ⊗ 1 − 1 ⊗ H_tᵀ) from itself, −½(N_s ⊗ 1 + 1 ⊗ N_tᵀ) from itself and Σ c_{ss̄} ⊗ conj(c_{tt̄}) from
    block (s̄, t̄) (H and N = Σ c†c are parity-even, every jump parity-odd)."""
    blocks = basis.sector_blocks(sector)
    e, d = basis.n_even, basis.dim
    sl = {"+": slice(0, e), "-": slice(e, d)}
    H = basis.split(basis.hamiltonian)
    C = [basis.split(c) for c in basis.jumps]
    Nfull = sp.csr_matrix((d, d), dtype=complex)
    for c in basis.jumps:
        Nfull = Nfull + (c.getH() @ c)
    Nfull = Nfull.tocsr()
    N = {s: Nfull[sl[s]][:, sl[s]].tocsr() for s in "+-"}
    sizes = [int(np.prod(basis.block_shape(*b))) for b in blocks]
    pieces = [[None, None], [None, None]]
    for out_i, (s, t) in enumerate(blocks):
        ds, dt = basis.block_shape(s, t)
        own = (-1j * (sp.kron(H[(s, s)], _eye(dt)) - sp.kron(_eye(ds), H[(t, t)].T))
               - 0.5 * (sp.kron(N[s], _eye(dt)) + sp.kron(_eye(ds), N[t].T)))
        sb, tb = ("-" if s == "+" else "+"), ("-" if t == "+" else "+")
        jump = None
        for c in C:
            term = sp.kron(c[(s, sb)], c[(t, tb)].conj())
            jump = term if jump is None else jump + term
        pieces[out_i][out_i] = own.tocsr()
        j = blocks.index((sb, tb))
        if jump is not None:
            pieces[out_i][j] = jump.tocsr() if pieces[out_i][j] is None else pieces[out_i][j] + jump
    for i in range(2):
        for j in range(2):
            if pieces[i][j] is None:
                pieces[i][j] = sp.csr_matrix((sizes[i], sizes[j]), dtype=complex)
    L = sp.bmat(pieces, format="csr")
    L.sum_duplicates()
    L.eliminate_zeros()
    return L


def full_real_liouvillian(problem: QuantumProblem) -> sp.csr_matrix:
    """The real Liouvillian on vec(X) (row-major, the problem's own basis, no parity split): for tests."""
    H = problem.hamiltonian
    if np.any(H.data.imag != 0):
        raise ValueError("the Hamiltonian is not real in the reduced basis")
    H = H.real.tocsr()
    d = problem.dim
    perm = _transpose_perm(d, d)
    T = sp.csr_matrix((np.ones(d * d), (np.arange(d * d), perm)), shape=(d * d, d * d))
    L = (sp.kron(_eye(d), H.T) - sp.kron(H, _eye(d))) @ T
    for c in problem.collapse_operators:
        c = c.real.tocsr()
        n = (c.T @ c).tocsr()
        L = L + sp.kron(c, c) - 0.5 * (sp.kron(n, _eye(d)) + sp.kron(_eye(d), n.T))
    return sp.csr_matrix(L)


def liouville_memory_estimate(problem: QuantumProblem, fill: float = 60.0) -> dict:
    """Rough memory (bytes) the sector solvers need for ``problem``: the larger sector's Liouvillian
    (≈ nnz × 12 bytes) and its sparse LU (``fill`` × nnz × 12 bytes; ``fill`` measured, see docs/lifetime.md)."""
    d = problem.dim
    size = (d * d) // 2 + d
    nnz_per_row = 4 * problem.n_blocks + 6 * problem.n_modes + 2
    entry = 12
    if getattr(problem, "basis_name", "plain") == "polaron":  # complex; spin flips carry dense displacement blocks
        nnz_per_row = 4 * problem.n_blocks * int(np.prod(problem.fock)) + 6 * problem.n_modes + 2
        entry = 20
        fill = max(fill, 150.0)  # measured: peak 5.8 GB at N_sp = 16, n_c = 12 (20 808 entries, two LUs kept)
    nnz = size * nnz_per_row
    return {"dimension": d, "sector_size": size, "liouvillian_bytes": entry * nnz, "lu_bytes": int(entry * nnz * fill)}


def extra_symmetries(problem: QuantumProblem) -> list[dict]:
    """Symmetries of the reduced problem beyond P: sign flips of modes μ ≥ 2 (as a vector s, s_1 = +1)
    combined with a permutation π of the blocks such that f[μ, π(r)] = s_μ f[μ, r] for every μ and
    n_{π(r)} = n_r (block sizes), which leave H and the loss invariant (the spins' Ω S_x term is permutation
    invariant). Returns one entry per non-trivial sign vector that has such a permutation: {"signs", "perm"}.
    Mode frequencies and rates are not permuted (different Ω_μ rule out mode exchanges)."""
    f = problem.block_f.astype(int)
    sizes = problem.block_sizes
    M, R = f.shape
    found = []
    for signs in itertools.product((1, -1), repeat=M - 1):
        s = np.array((1,) + signs)
        if np.all(s == 1):
            continue
        target = s[:, None] * f
        perm = []
        ok = True
        for r in range(R):
            match = [q for q in range(R) if np.array_equal(f[:, q], target[:, r]) and sizes[q] == sizes[r]]
            if not match:
                ok = False
                break
            perm.append(match[0])
        if ok:
            found.append({"signs": s.tolist(), "perm": perm})
    return found
