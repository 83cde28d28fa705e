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

Further symmetries (M ≥ 2). Permutations and flips of equal-size blocks combined with sign flips and exchanges of
modes with equal (Ω_μ, κ_μ, cutoff) that map the couplings f onto themselves (:func:`extra_symmetries`; for M = 2:
"U2" = swap of the two blocks with a_2 → −a_2 when they have equal sizes, "X21" = a_1 ↔ a_2 with the block
ξ¹ξ² = −1 flipped when the modes are equal). Each is a real signed permutation of the basis states, in the plain
and the polaron basis alike (:func:`signed_permutation`). :func:`symmetry_basis` splits ρ by P and a maximal set of
them that commute (:class:`SymmetryBasis`: 2^(K+1) sectors labelled by row label XOR column label); without any it
is :func:`parity_basis` exactly. docs/lifetime.md derives them and says why the rest (non-commuting pairs) is not
used.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .problem import QuantumProblem

__all__ = ["ParityBasis", "SymmetryBasis", "parity_basis", "symmetry_basis", "SECTORS", "SYMMETRIES",
           "sector_liouvillian", "full_real_liouvillian", "extra_symmetries", "signed_permutation",
           "liouville_memory_estimate"]

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
class SymmetryBasis:
    """The reduced problem in a joint eigenbasis of P and further commuting involutive symmetries U_1 … U_K (each a
    real signed permutation of the basis states, in the plain and the polaron basis alike), states sorted by their
    *label*: bit 0 set when the P-eigenvalue is −1, bit j when U_j's is −1 (label 0 = all +1 first).

    ρ ↦ g ρ g† commutes with L for every g of the group, so the Liouville space splits into sectors labelled by the
    product of a row's and a column's characters, i.e. by ``label_row XOR label_col``: sector s holds the blocks
    (a, a ⊕ s) of ρ. Sector names: ``"even"``/``"odd"`` (P) followed, per extra symmetry, by ``",<name>+"`` or
    ``",<name>-"``; sector 0 (``sectors[0]``, fully symmetric) holds the stationary state. With P alone this is
    exactly the parity basis: sectors ``"even"`` (ρ₊₊ ⊕ ρ₋₋) and ``"odd"`` (ρ₊₋ ⊕ ρ₋₊).

    ``Q`` (d × d, real orthogonal, sparse): columns are the new basis vectors in the problem's basis.
    ``labels``: the label of every new basis state (sorted). ``symmetries``: names of the extra symmetries used
    (bits 1 … K). ``parity``: ±1 (P-eigenvalue) of every new basis state. ``n_even``: number of P = +1 states.
    ``hamiltonian`` and ``jumps`` (√κ_μ a_μ): CSR matrices in the new basis.
    """

    problem: QuantumProblem
    Q: sp.csr_matrix
    labels: np.ndarray
    symmetries: tuple[str, ...] = ()
    #: the generators (P first) as signed permutations (perm, sign) of the problem's basis states, U|i⟩ = sign[i]|perm[i]⟩
    generators: tuple = ()

    @property
    def dim(self) -> int:
        return self.problem.dim

    @cached_property
    def group(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Every group element as (bits, perm, sign): the product of the generators whose bits are set."""
        d = self.dim
        out = [(0, np.arange(d), np.ones(d, dtype=np.int64))]
        for j, g in enumerate(self.generators):
            out = out + [(bits | (1 << j), *_compose(g, (perm, sign))) for bits, perm, sign in out]
        return out

    @cached_property
    def spin_only(self) -> bool:
        """True when every generator maps each Fock level to itself (no mode exchange): the group then acts on the
        rows of ρ through the spin configurations alone (up to signs)."""
        F = int(np.prod(self.problem.fock, dtype=np.int64))
        return all(np.array_equal(perm % F, np.arange(self.dim) % F) for perm, _ in self.generators)

    @cached_property
    def parity(self) -> np.ndarray:
        return np.where(self.labels & 1, -1, 1).astype(np.int8)

    @property
    def n_even(self) -> int:
        return int(np.sum(self.parity > 0))

    @cached_property
    def _slices(self) -> dict[int, slice]:
        """Rows of every label (labels are sorted)."""
        present, first, count = np.unique(self.labels, return_index=True, return_counts=True)
        return {int(a): slice(int(i), int(i + c)) for a, i, c in zip(present, first, count)}

    @property
    def sector_labels(self) -> tuple[int, ...]:
        """The sector labels that occur (XOR of two state labels), fully symmetric first."""
        present = list(self._slices)
        return tuple(sorted({a ^ b for a in present for b in present}))

    def sector_name(self, label: int) -> str:
        name = "odd" if label & 1 else "even"
        return name + "".join(f",{sym}{'-' if label >> (j + 1) & 1 else '+'}" for j, sym in enumerate(self.symmetries))

    @cached_property
    def sectors(self) -> tuple[str, ...]:
        """Sector names, the fully symmetric sector (stationary state) first."""
        return tuple(self.sector_name(s) for s in self.sector_labels)

    @property
    def symmetric_sector(self) -> str:
        return self.sectors[0]

    def sector_label(self, sector: str) -> int:
        for s in self.sector_labels:
            if self.sector_name(s) == sector:
                return s
        raise ValueError(f"sector must be one of {self.sectors}, got {sector!r}")

    def sector_parity(self, sector: str) -> str:
        """"even" or "odd": the P-character of a sector."""
        return "odd" if self.sector_label(sector) & 1 else "even"

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

    def split(self, op) -> dict[tuple[int, int], sp.csr_matrix]:
        """The label blocks of an operator of the new basis: keys (a, b) of row and column labels."""
        op = sp.csr_matrix(op)
        sl = self._slices
        return {(a, b): op[sl[a], sl[b]].tocsr() for a in sl for b in sl}

    def block_shape(self, a: int, b: int) -> tuple[int, int]:
        sl = self._slices
        return sl[a].stop - sl[a].start, sl[b].stop - sl[b].start

    def sector_blocks(self, sector: str) -> tuple[tuple[int, int], ...]:
        """The blocks (row label, column label) of a sector, in the order of the sector vector."""
        s = self.sector_label(sector)
        return tuple((a, a ^ s) for a in self._slices if (a ^ s) in self._slices)

    def sector_size(self, sector: str) -> int:
        return int(sum(np.prod(self.block_shape(*b)) for b in self.sector_blocks(sector)))

    @property
    def max_sector_size(self) -> int:
        return max(self.sector_size(s) for s in self.sectors)

    def sector_matrices(self, vector: np.ndarray, sector: str) -> dict[tuple[int, int], np.ndarray]:
        """Split a sector vector into its blocks X_ab (real or complex)."""
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
        sl = self._slices
        for (a, b), block in blocks.items():
            out[sl[a], sl[b]] = block
        return out

    def sector_vector(self, matrix: np.ndarray, sector: str) -> np.ndarray:
        """The sector part of a d × d matrix given in the new basis."""
        sl = self._slices
        return np.concatenate([np.asarray(matrix[sl[a], sl[b]]).ravel() for a, b in self.sector_blocks(sector)])

    def to_problem_basis(self, matrix: np.ndarray) -> np.ndarray:
        """Q M Qᵀ: a matrix of the new basis in the problem's (Dicke ⊗ Fock) basis."""
        return np.asarray(self.Q @ np.asarray(self.Q @ np.asarray(matrix)).T).T


#: the parity-only basis is a symmetry basis without extra symmetries (the name the solvers used first)
ParityBasis = SymmetryBasis


def parity_basis(problem: QuantumProblem) -> SymmetryBasis:
    """The eigenbasis of P for ``problem`` (see the module docstring): sectors "even" and "odd"."""
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
    return SymmetryBasis(problem=problem, Q=Q, labels=(parity < 0).astype(np.int64),
                         generators=(_parity_permutation(problem),))


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


def _jump_blocks(basis: SymmetryBasis) -> list[dict[tuple[int, int], sp.csr_matrix]]:
    """The nonzero label blocks of every jump (P flips the label's bit 0; an exchange of modes can map one label
    to several). Blocks that vanish by symmetry but hold round-off of Qᵀ c Q (≤ 1e-13 of the largest entry) are
    dropped."""
    out = []
    for c in basis.jumps:
        floor = 1e-13 * (np.abs(c.data).max() if c.nnz else 0.0)
        out.append({key: blk for key, blk in basis.split(c).items() if blk.nnz and np.abs(blk.data).max() > floor})
    return out


def _sector_jump_terms(basis: SymmetryBasis, blocks, jumps, conjugate: bool):
    """Σ_c c_{aa'} ⊗ c_{bb'} (conjugated second factor for the complex representation) from sector block (a', b')
    into sector block (a, b): the jump part of L projected on the sector (exact: L maps the sector into itself)."""
    terms = {}
    for out_i, (a, b) in enumerate(blocks):
        for in_i, (a2, b2) in enumerate(blocks):
            acc = None
            for c in jumps:
                left, right = c.get((a, a2)), c.get((b, b2))
                if left is None or right is None:
                    continue
                term = sp.kron(left, right.conj() if conjugate else right, format="csr")
                acc = term if acc is None else acc + term
            if acc is not None:
                terms[(out_i, in_i)] = acc
    return terms


def _assemble(pieces, sizes, dtype) -> sp.csr_matrix:
    n = len(sizes)
    grid = [[pieces.get((i, j)) for j in range(n)] for i in range(n)]
    for i in range(n):
        for j in range(n):
            if grid[i][j] is None and i == j:
                grid[i][j] = sp.csr_matrix((sizes[i], sizes[j]), dtype=dtype)
    L = sp.bmat(grid, format="csr", dtype=dtype)
    L.sum_duplicates()
    L.eliminate_zeros()
    return L


def _add(pieces, key, mat):
    pieces[key] = mat if key not in pieces else pieces[key] + mat


def sector_liouvillian(basis: SymmetryBasis, sector: str) -> sp.csr_matrix:
    """The Liouvillian of one symmetry sector, CSR, on the sector vector: real representation when H and the
    jumps are real (:attr:`SymmetryBasis.is_real`), complex (vec of ρ, row-major) otherwise."""
    if not basis.is_real:
        return _complex_sector_liouvillian(basis, sector)
    blocks = basis.sector_blocks(sector)
    sl = basis._slices
    H = basis.hamiltonian
    Ntot = sp.csr_matrix((basis.dim, basis.dim))
    for c in basis.jumps:
        Ntot = Ntot + (c.T @ c)
    Ntot = Ntot.tocsr()
    Hd = {a: H[sl[a]][:, sl[a]].tocsr() for a in sl}
    N = {a: Ntot[sl[a]][:, sl[a]].tocsr() for a in sl}
    sizes = [int(np.prod(basis.block_shape(*b))) for b in blocks]
    pieces = {}
    for out_i, (a, b) in enumerate(blocks):
        da, db = basis.block_shape(a, b)
        # Hamiltonian part: Y_ab = X_baᵀ H_b − H_a X_baᵀ, from block (b, a) of shape (db, da) (H commutes with
        # every symmetry: block diagonal in the labels)
        in_i = blocks.index((b, a))
        perm = _transpose_perm(db, da)  # vec(X_baᵀ)[k] = vec(X_ba)[perm[k]]
        T = sp.csr_matrix((np.ones(da * db), (np.arange(da * db), perm)), shape=(da * db, db * da))
        _add(pieces, (out_i, in_i), (sp.kron(_eye(da), Hd[b].T, format="csr") - sp.kron(Hd[a], _eye(db), format="csr")) @ T)
        # anticommutator: −½ (N_a X_ab + X_ab N_b)
        _add(pieces, (out_i, out_i), -0.5 * (sp.kron(N[a], _eye(db), format="csr") + sp.kron(_eye(da), N[b].T, format="csr")))
    for key, mat in _sector_jump_terms(basis, blocks, _jump_blocks(basis), conjugate=False).items():
        _add(pieces, key, mat)  # c X cᵀ
    return _assemble(pieces, sizes, float)


def _complex_sector_liouvillian(basis: SymmetryBasis, sector: str) -> sp.csr_matrix:
    """L on the sector part of vec(ρ) (row-major, complex): vec(A X B) = (A ⊗ Bᵀ) vec(X), so block (a, b) gets
    −i(H_a ⊗ 1 − 1 ⊗ H_bᵀ) from itself, −½(N_a ⊗ 1 + 1 ⊗ N_bᵀ) from itself and Σ c_{aa'} ⊗ conj(c_{bb'}) from
    block (a', b') (H and N = Σ c†c commute with every symmetry; the jumps change the labels)."""
    blocks = basis.sector_blocks(sector)
    sl = basis._slices
    d = basis.dim
    H = basis.hamiltonian
    Nfull = sp.csr_matrix((d, d), dtype=complex)
    for c in basis.jumps:
        Nfull = Nfull + (c.getH() @ c)
    Nfull = Nfull.tocsr()
    Hd = {a: H[sl[a]][:, sl[a]].tocsr() for a in sl}
    N = {a: Nfull[sl[a]][:, sl[a]].tocsr() for a in sl}
    sizes = [int(np.prod(basis.block_shape(*b))) for b in blocks]
    pieces = {}
    for out_i, (a, b) in enumerate(blocks):
        da, db = basis.block_shape(a, b)
        own = (-1j * (sp.kron(Hd[a], _eye(db)) - sp.kron(_eye(da), Hd[b].T))
               - 0.5 * (sp.kron(N[a], _eye(db)) + sp.kron(_eye(da), N[b].T)))
        _add(pieces, (out_i, out_i), own.tocsr())
    for key, mat in _sector_jump_terms(basis, blocks, _jump_blocks(basis), conjugate=True).items():
        _add(pieces, key, mat)
    return _assemble(pieces, sizes, complex)


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


def liouville_memory_estimate(problem: QuantumProblem, fill: float = 60.0, sector_size: int | None = None) -> dict:
    """Rough memory (bytes) the sector solvers need for ``problem``: the larger sector's Liouvillian
    (≈ nnz × 12 bytes) and its sparse LU (``fill`` × nnz × 12 bytes; ``fill`` measured, see docs/lifetime.md)."""
    d = problem.dim
    size = (d * d) // 2 + d if sector_size is None else int(sector_size)
    nnz_per_row = 4 * problem.n_blocks + 6 * problem.n_modes + 2
    entry = 12
    if getattr(problem, "basis_name", "plain") == "polaron":  # complex; spin flips carry dense displacement blocks
        nnz_per_row = 4 * problem.n_blocks * int(np.prod(problem.fock)) + 6 * problem.n_modes + 2
        entry = 20
        fill = max(fill, 150.0)  # measured: peak 5.8 GB at N_sp = 16, n_c = 12 (20 808 entries, two LUs kept)
    nnz = size * nnz_per_row
    return {"dimension": d, "sector_size": size, "liouvillian_bytes": entry * nnz, "lu_bytes": int(entry * nnz * fill)}


def _match_blocks(f: np.ndarray, sizes: np.ndarray, target: np.ndarray) -> list[int] | None:
    """A bijection π of the blocks with f[:, π(r)] = target[:, r] and n_{π(r)} = n_r, or None."""
    R = f.shape[1]
    used, perm = set(), []
    for r in range(R):
        match = [q for q in range(R) if q not in used and np.array_equal(f[:, q], target[:, r]) and sizes[q] == sizes[r]]
        if not match:
            return None
        used.add(match[0])
        perm.append(match[0])
    return perm


def _symmetry_name(modes: list[int], signs: list[int]) -> str:
    """"U2" (sign flip of mode 2 with its block permutation), "X21" (modes exchanged, one-line notation), "X21U2"."""
    M = len(modes)
    name = "" if modes == list(range(M)) else "X" + "".join(str(m + 1) for m in modes)
    flipped = [str(mu + 1) for mu in range(M) if signs[mu] < 0]
    return name + ("U" + "".join(flipped) if flipped else "")


def extra_symmetries(problem: QuantumProblem, exchange: bool = True) -> list[dict]:
    """Symmetries of the reduced problem beyond P, of the form U S_{z,r} U† = t_r S_{z,π(r)} (block r flipped when
    t_r = −1, then moved to π(r); S_{x,r} ↦ S_{x,π(r)}) and U a_μ U† = s_μ a_{σ(μ)}. They leave H and the loss
    invariant iff f[σ(μ), π(r)] = s_μ t_r f[μ, r] for all μ, r, n_{π(r)} = n_r, and (Ω, κ, Fock cutoff) of σ(μ)
    equal those of μ. Up to a product with P (s, t → −s, −t) s_1 = +1. With σ = identity the gauge f[1, ·] = +1
    forces t_r = +1: a sign flip of modes μ ≥ 2 with a permutation of equal-size blocks ("U2": for M = 2 the swap of
    the blocks ξ¹ξ² = ±1 with a_2 → −a_2). With σ ≠ identity (``exchange``; only for modes of equal Ω_μ, κ_μ and
    cutoff) t_r = s_{σ⁻¹(1)} f[σ⁻¹(1), r]: e.g. for M = 2 with Ω_1 = Ω_2, κ_1 = κ_2 the exchange a_1 ↔ a_2 with
    the block ξ¹ξ² = −1 flipped ("X21"), for any block sizes.
    Returns one entry per symmetry found: {"name", "signs": s, "perm": π, "modes": σ, "flips": t}."""
    f = problem.block_f.astype(int)
    sizes = np.asarray(problem.block_sizes)
    M, R = f.shape
    model = problem.model
    keys = [(float(model.omega_modes[mu]), float(model.kappa[mu]), int(problem.fock[mu])) for mu in range(M)]
    found = []
    for modes in itertools.permutations(range(M)):
        modes = list(modes)
        if modes != list(range(M)) and (not exchange or any(keys[modes[mu]] != keys[mu] for mu in range(M))):
            continue
        inv = [modes.index(nu) for nu in range(M)]  # σ⁻¹
        for signs in itertools.product((1, -1), repeat=M - 1):
            s = np.array((1,) + signs)
            if modes == list(range(M)) and np.all(s == 1):
                continue
            t = s[inv[0]] * f[inv[0], :]  # from the gauge row f[1, π(r)] = 1
            target = np.array([[s[inv[nu]] * t[r] * f[inv[nu], r] for r in range(R)] for nu in range(M)])
            perm = _match_blocks(f, sizes, target)
            if perm is not None:
                found.append({"name": _symmetry_name(modes, s.tolist()), "signs": s.tolist(), "perm": perm,
                              "modes": modes, "flips": t.astype(int).tolist()})
    return found


def signed_permutation(problem: QuantumProblem, symmetry: dict) -> tuple[np.ndarray, np.ndarray]:
    """The symmetry ``symmetry`` (an entry of :func:`extra_symmetries`) as a signed permutation of the basis states,
    U|i⟩ = sign[i] |perm[i]⟩: block r's Dicke index i_r goes to block π(r) (n_r − i_r when flipped: the π rotation
    about x is, up to a phase, the flip |S_z = s⟩ ↦ |−s⟩), mode μ's level n_μ to mode σ(μ) with the sign s_μ^{n_μ}.
    The same in the polaron basis: β_{σ(μ)}(m') = s_μ β_μ(m) for the image m' of m (x_{σ(μ)}(m') = s_μ x_μ(m) and
    c_{σ(μ)} = c_μ), and D(sβ) (±1)^{b†b} = (±1)^{b†b} D(β) for s = ±1, so U|m, n⟩_P = Π_μ s_μ^{n_μ} |m', σn⟩_P."""
    dims = list(problem.dims)
    R, M = problem.n_blocks, problem.n_modes
    index = np.indices(dims).reshape(len(dims), -1)
    new = np.empty_like(index)
    sign = np.ones(index.shape[1], dtype=np.int64)
    sizes = problem.block_sizes
    for r in range(R):
        q = symmetry["perm"][r]
        new[q] = index[r] if symmetry["flips"][r] > 0 else int(sizes[r]) - index[r]
    for mu in range(M):
        new[R + symmetry["modes"][mu]] = index[R + mu]
        if symmetry["signs"][mu] < 0:
            sign *= np.where(index[R + mu] % 2 == 0, 1, -1)
    return np.ravel_multi_index(tuple(new), dims), sign


def _compose(g, h):
    """g ∘ h of signed permutations (perm, sign)."""
    return g[0][h[0]], h[1] * g[1][h[0]]


def _parity_permutation(problem: QuantumProblem):
    sym = {"perm": list(range(problem.n_blocks)), "flips": [-1] * problem.n_blocks,
           "modes": list(range(problem.n_modes)), "signs": [-1] * problem.n_modes}
    return signed_permutation(problem, sym)


SYMMETRIES = ("auto", "parity")


def symmetry_basis(problem: QuantumProblem, symmetries: str = "auto") -> SymmetryBasis:
    """The joint eigenbasis of P and of the extra symmetries of ``problem`` (:func:`extra_symmetries`) that are
    involutions and commute with P and with each other (taken in the order found, each one not already generated):
    sectors of about d²/2^(K+1) entries for K extra symmetries. ``symmetries="parity"`` (or no extra symmetry)
    gives :func:`parity_basis` exactly. Several generators that do not commute (M = 2 with equal blocks *and*
    equal modes: "U2" and "X21" generate a dihedral group of order 8 with P = (U2·X21)²) contribute a maximal
    commuting set only; the non-abelian rest would split no sector further than d²/4 (see docs/lifetime.md)."""
    if symmetries not in SYMMETRIES:
        raise ValueError(f"symmetries must be one of {SYMMETRIES}, got {symmetries!r}")
    if symmetries == "parity":
        return parity_basis(problem)
    d = problem.dim
    ident = (np.arange(d), np.ones(d, dtype=np.int64))
    P = _parity_permutation(problem)
    generators, names = [P], []
    elements = [ident, P]  # the group generated so far, element i = product of the generators in the bits of i

    def same(g, h):
        return np.array_equal(g[0], h[0]) and np.array_equal(g[1], h[1])

    for sym in extra_symmetries(problem):
        U = signed_permutation(problem, sym)
        if not same(_compose(U, U), ident):
            continue
        if not all(same(_compose(U, g), _compose(g, U)) for g in generators):
            continue
        if any(same(U, e) for e in elements):
            continue
        generators.append(U)
        names.append(sym["name"])
        elements = elements + [_compose(U, e) for e in elements]
    if len(generators) == 1:
        return parity_basis(problem)
    # the projections Σ_g χ(g) g|i⟩ of every orbit representative i, for every character χ (bits b: χ(g_a) =
    # (−1)^{popcount(a & b)}), exact in integers; nonzero ones are orthogonal and together span the space
    rep = np.min(np.stack([e[0] for e in elements]), axis=0)
    reps = np.flatnonzero(rep == np.arange(d))
    n_reps = len(reps)
    columns, labels = [], []
    for b in range(len(elements)):
        rows, cols, vals = [], [], []
        for a, (perm, sign) in enumerate(elements):
            chi = -1 if bin(a & b).count("1") % 2 else 1
            rows.append(perm[reps])
            cols.append(np.arange(n_reps))
            vals.append(chi * sign[reps])
        A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(d, n_reps))
        A.sum_duplicates()
        A.eliminate_zeros()
        keep = np.flatnonzero(np.diff(A.indptr) > 0)
        A = A[:, keep].astype(float)
        norms = np.sqrt(np.asarray(A.multiply(A).sum(axis=0))).ravel()
        columns.append(A @ sp.diags(1.0 / norms))
        labels.append(np.full(len(keep), b, dtype=np.int64))
    Q = sp.hstack(columns, format="csr")
    assert Q.shape == (d, d)
    return SymmetryBasis(problem=problem, Q=Q, labels=np.concatenate(labels), symmetries=tuple(names),
                         generators=tuple(generators))
