"""The polaron-basis Liouvillian of one parity sector applied matrix-free: ρ ↦ L(ρ) as d × d products.

Why. In the polaron basis (:mod:`.polaron`) every spin flip of block r carries the displacement of *every* mode,
S_±,r ⊗ D_1(∓2c_1 f[1, r]) ⊗ … ⊗ D_M(∓2c_M f[M, r]), a dense n_c^M × n_c^M block. Assembled as a sparse
superoperator on the d²/2 entries of a parity sector (:func:`.liouville.sector_liouvillian`) that is ≈ 8 n_c² nonzeros
per row at M = 2 (n_c = 12: 1 152 per row, 2.5·10⁹ for N_sp = 8), which does not fit beyond tiny sizes. Here L is
never assembled:

    L(ρ) = K ρ + ρ K† + Σ_μ a'_μ ρ a'_μ†,     K = −iH − ½ Σ_μ a'_μ† a'_μ,     a'_μ = √κ_μ a_μ,

with every product a left multiplication of a d × d matrix (ρ K† = (K ρ†)†, a ρ a† = (a (a ρ)†)†), and K applied in
its tensor structure (spin configurations m ⊗ Fock levels n_1 … n_M of the fluctuations):

* spin-diagonal parts, per mode μ: u(m) ⊗ b_μ, v(m) ⊗ b_μ†, w_μ b_μ†b_μ and a scalar function of m, read off
  :class:`.polaron.PolaronProblem` (H = Ω Σ_r S_x,r + Σ_μ [Ω_μ (b† + β*)(b + β) + (g0/√N_sp) x_μ (b + b† + 2 Re β)] and
  a_μ = b_μ + β_μ(m), which includes the coherent part of the displaced loss): shifts along one Fock axis, O(d²);
* the spin flips: (D_1 ⊗ … ⊗ D_M) applied as M small matrix products along the Fock axes (n_c × n_c each), then the
  sparse spin-flip matrix along the spin axis: O(d² M n_c) per flip and direction, BLAS-3.

The adjoint (Heisenberg) map L†(O) = K†O + OK + Σ a'† O a' gives the transpose on the sector vector (the sector
basis is real: ``L.T`` = conj ∘ L† ∘ conj, what :class:`scipy.sparse.linalg.LinearOperator` does with ``rmatvec``),
used for the left eigenvectors.

Eigen-solver. ARPACK's Arnoldi on L needs thousands of products per sector at M = 2 (the wanted eigenvalues, ≈ 0.03,
are tiny next to the spectrum's imaginary extent ∝ Ω_μ n_c). :class:`SpinDiagonalSolver` solves exactly with
D − σ, D the part of L diagonal in the spin configurations (m, m′) of ρ's blocks (upper triangular in the total
quanta, back-substitution), optionally with the spin flips of the lowest levels included; :func:`sector_davidson`
uses it as the preconditioner of a Davidson method on L itself that follows the Ritz values with the largest real
parts, as Arnoldi's ``which="LR"``, in a search space closed under ρ ↦ ρ† (4–9× fewer products than Arnoldi at
M = 2, N_sp = 3–4, n_c ≤ 6, measured in docs/lifetime.md, where shift-invert Arnoldi with GMRES inner solves on the
same preconditioner needed 2× more).

Sector coordinates are those of :class:`.liouville.ParityBasis` (any :class:`.liouville.SymmetryBasis`: complex
representation, row-major vec of the sector's label blocks): x ↦ X (d × d, zero outside the sector) ↦ ρ = Q X Qᵀ ↦ L(ρ) ↦ Qᵀ L(ρ) Q ↦ sector part. L commutes
with the parity superoperator, so the image lies in the same sector and ARPACK sees the sector alone.
"""

from __future__ import annotations

import logging
import math
import time as _time

import numpy as np
import scipy.sparse as sp
import scipy.linalg
import scipy.sparse.linalg as sla

from .liouville import ParityBasis
from .polaron import PolaronProblem, displacement_matrix
from .problem import _large_spin

__all__ = ["PolaronGenerator", "SectorOperator", "sector_operator", "matrix_free_memory", "SpinDiagonalSolver",
           "davidson_eigenpairs", "sector_davidson", "gmres_right"]

_log = logging.getLogger("opendicke.quantum.metastability")

#: Davidson (``method="davidson"``): the preconditioner's shift σ (real, > 0, so that D − σ is regular, near the
#: slow real eigenvalues), levels of total quanta on which the preconditioner keeps the spin flips exactly, largest
#: search space (lowered to fit ``max_memory``) and residual tolerance ‖Lu − θu‖ (u of unit norm)
DAVIDSON_TARGET = 0.05
COARSE_QUANTA = 2
DAVIDSON_BASIS = 60
DAVIDSON_TOL = 1e-10
#: which Ritz values Davidson follows: ``"LR"`` (largest real parts, the default) or ``"nearest"`` (nearest σ, the
#: selection before; it misses slow oscillating modes far from σ, see docs/lifetime.md; kept for comparison)
DAVIDSON_SELECTIONS = ("LR", "nearest")
DAVIDSON_SELECT = "LR"
#: whether Davidson keeps its search space closed under ρ ↦ ρ† (:meth:`SectorOperator.conjugate`)
DAVIDSON_CONJUGATE_PAIRS = True

#: columns of ρ treated at once by an operator with spin flips: at least COLUMN_CHUNK, else CHUNK_ENTRIES / d
#: (bounds the work arrays to ≈ 2²² complex numbers, 64 MB)
COLUMN_CHUNK = 64
CHUNK_ENTRIES = 1 << 22


def _kron_dims(sizes):
    return int(np.prod(sizes, dtype=np.int64)) if len(sizes) else 1


class _Structured:
    """An operator A = diag(c0(m)) + Σ_μ [u_μ(m) b_μ + v_μ(m) b_μ† + w_μ b_μ†b_μ] + Σ_t coef_t S_t ⊗ (⊗_μ D_{t,μ})
    on the polaron space (spin configurations m ⊗ Fock levels), applied from the left to d × ncol arrays. Every
    spin matrix S_t has at most one nonzero per row (a flip of one block in one direction), so it is applied as a
    gather of the rows it reads, then the D_{t,μ} as small matrix products along the Fock axes, then a scatter-add."""

    def __init__(self, spin_dim, fock, c0, lower, upper, number, flips):
        self.spin_dim = int(spin_dim)
        self.fock = tuple(int(c) for c in fock)
        M = len(self.fock)
        self.c0 = np.asarray(c0, dtype=complex)
        self.lower = [np.asarray(u, dtype=complex) for u in lower]
        self.upper = [np.asarray(v, dtype=complex) for v in upper]
        self.number = [complex(w) for w in number]
        self.flips = flips  # list of (coef, spin csr (S × S, real), [D_μ dense])
        # the diagonal, c0(m) + Σ_μ w_μ n_μ, as one array (S, n_1, …, n_M, 1)
        diag = self.c0.reshape((-1,) + (1,) * M)
        for mu in range(M):
            shape = [1] * (M + 1)
            shape[1 + mu] = self.fock[mu]
            diag = diag + self.number[mu] * np.arange(self.fock[mu], dtype=float).reshape(shape)
        self._diag = np.ascontiguousarray(np.broadcast_to(diag, (self.spin_dim, *self.fock)))[..., None]
        self._diag_zero = not np.any(self._diag)
        # the shifts: (b X)[n] = √(n+1) X[n+1], (b† X)[n] = √n X[n−1], with their spin coefficients folded in
        self._shifts = []
        for mu in range(M):
            if self.fock[mu] < 2:
                continue
            shape = [1] * (M + 2)
            shape[0] = self.spin_dim
            shape[1 + mu] = self.fock[mu] - 1
            sq = np.sqrt(np.arange(1, self.fock[mu], dtype=float))
            hi = [slice(None)] * (M + 2)
            lo = [slice(None)] * (M + 2)
            hi[1 + mu] = slice(1, None)
            lo[1 + mu] = slice(0, -1)
            for coef, dst, src in ((self.lower[mu], tuple(lo), tuple(hi)), (self.upper[mu], tuple(hi), tuple(lo))):
                if np.any(coef):
                    self._shifts.append((dst, src, (coef[:, None] * sq[None, :]).reshape(shape)))
        self._gathers = []
        for coef, spin, Ds in flips:
            coo = spin.tocoo()
            keep = coo.data != 0
            rows, cols, vals = coo.row[keep], coo.col[keep], coo.data[keep]
            if len(np.unique(rows)) != len(rows):
                raise ValueError("a spin-flip matrix with more than one nonzero in a row")
            self._gathers.append((rows, cols, (coef * vals).reshape((-1,) + (1,) * (M + 1)), Ds))

    def adjoint(self) -> _Structured:
        return _Structured(self.spin_dim, self.fock, np.conj(self.c0), [np.conj(v) for v in self.upper],
                           [np.conj(u) for u in self.lower], [np.conj(w) for w in self.number],
                           [(np.conj(c), S.T.tocsr(), [D.conj().T.copy() for D in Ds]) for c, S, Ds in self.flips])

    def apply(self, X: np.ndarray) -> np.ndarray:
        """A @ X for X of shape (d, ncol), in column chunks of ≈ 2²² complex numbers when A has spin flips (their
        gathered copies are the large work arrays), in one piece otherwise."""
        d, ncol = X.shape
        chunk = max(COLUMN_CHUNK, CHUNK_ENTRIES // d) if self._gathers else ncol
        if chunk >= ncol:
            return self._apply(np.ascontiguousarray(X))
        out = np.empty((d, ncol), dtype=complex)
        for j in range(0, ncol, chunk):
            out[:, j:j + chunk] = self._apply(np.ascontiguousarray(X[:, j:j + chunk]))
        return out

    def apply_rows(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(A @ X) on the spin configurations ``rows`` only (sorted spin indices, every Fock level of each): shape
        (len(rows) · Π fock, ncol). Every part of A keeps or gathers spin rows, so this costs ≈ len(rows)/S of
        :meth:`apply`."""
        d, ncol = X.shape
        chunk = max(COLUMN_CHUNK, CHUNK_ENTRIES // d) if self._gathers else ncol
        F = _kron_dims(self.fock)
        out = np.empty((len(rows) * F, ncol), dtype=complex)
        for j in range(0, ncol, chunk):
            out[:, j:j + chunk] = self._apply(np.ascontiguousarray(X[:, j:j + chunk]), rows)
        return out

    def _row_gathers(self, rows: np.ndarray):
        key = rows.tobytes()
        cache = self.__dict__.setdefault("_row_cache", {})
        if key not in cache:
            cache.clear()
            out = []
            for r, c, vals, Ds in self._gathers:
                keep = np.isin(r, rows)
                out.append((np.searchsorted(rows, r[keep]), c[keep], vals[keep], Ds))
            cache[key] = out
        return cache[key]

    def _apply(self, X: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """A @ X for one column chunk; with ``rows`` only the rows of those spin configurations."""
        ncol = X.shape[1]
        S, fock = self.spin_dim, self.fock
        T = X.reshape((S, *fock, ncol))
        if rows is None:
            Tr, diag, gathers = T, self._diag, self._gathers
        else:
            Tr, diag, gathers = T[rows], self._diag[rows], self._row_gathers(rows)
        out = np.zeros_like(Tr) if self._diag_zero else diag * Tr
        for dst, src, coef in self._shifts:
            out[dst] += (coef if rows is None else coef[rows]) * Tr[src]
        for dest, cols, vals, Ds in gathers:
            Z = vals * T[cols]
            k = len(dest)
            for mu, D in enumerate(Ds):
                before = k * _kron_dims(fock[:mu])
                after = _kron_dims(fock[mu + 1:]) * ncol
                Z = np.matmul(D, Z.reshape(before, fock[mu], after))
            out[dest] += Z.reshape((k, *fock, ncol))
        return out.reshape(-1, ncol)


class PolaronGenerator:
    """K = −iH − ½ Σ a'†a' and the loss operators a'_μ = √κ_μ (b_μ + β_μ(m)) of a :class:`.PolaronProblem`, in
    structured form; :meth:`apply` and :meth:`apply_adjoint` act with L and L† on d × d matrices."""

    def __init__(self, problem: PolaronProblem):
        m = problem.model
        self.problem = problem
        self.dim = problem.dim
        S = problem.spin_dim
        fock = tuple(int(c) for c in problem.fock)
        M = problem.n_modes
        g = m.g0 / np.sqrt(problem.n_spins)
        beta, x = problem.displacements, problem.field_values
        kappa = np.asarray(m.kappa, dtype=float)
        omega_modes = np.asarray(m.omega_modes, dtype=float)
        c0 = np.zeros(S, dtype=complex)
        lower, upper, number = [], [], []
        for mu in range(M):
            w, k = omega_modes[mu], kappa[mu]
            # H: Ω_μ b†b + (Ω_μ β* + g x) b + (Ω_μ β + g x) b† + Ω_μ|β|² + 2 g x Re β;  a†a = b†b + β* b + β b† + |β|²
            number.append(-1j * w - 0.5 * k)
            lower.append(-1j * (w * np.conj(beta[mu]) + g * x[mu]) - 0.5 * k * np.conj(beta[mu]))
            upper.append(-1j * (w * beta[mu] + g * x[mu]) - 0.5 * k * beta[mu])
            c0 += -1j * (w * np.abs(beta[mu]) ** 2 + 2 * g * x[mu] * beta[mu].real) - 0.5 * k * np.abs(beta[mu]) ** 2
        flips = []
        sizes = [int(n) + 1 for n in problem.block_sizes]
        for r, n in enumerate(problem.block_sizes):
            sx = _large_spin(int(n))["x"]
            left = sp.identity(_kron_dims(sizes[:r]), format="csr")
            right = sp.identity(_kron_dims(sizes[r + 1:]), format="csr")
            f = problem.block_f[:, r]
            for part, sign in ((sp.triu(sx, 1, format="csr"), -2.0), (sp.tril(sx, -1, format="csr"), 2.0)):
                spin = sp.kron(sp.kron(left, part), right, format="csr").real.tocsr()
                Ds = [displacement_matrix(fock[mu], sign * problem.shift[mu] * f[mu]) for mu in range(M)]
                flips.append((-1j * m.omega, spin, Ds))
        self.K = _Structured(S, fock, c0, lower, upper, number, flips)
        self.Kh = self.K.adjoint()
        self.fock = fock
        self.spin_dim = S
        # the jumps Σ_μ a'_μ ρ a'_μ† = Σ_μ κ_μ (b_μ + β_μ(m)) ρ (b_μ† + β_μ(m')*), term by term on ρ's tensor form
        self.kappa = kappa
        self.beta = beta
        self._beta_beta = sum(kappa[mu] * np.outer(beta[mu], np.conj(beta[mu])) for mu in range(M))

    def _jumps(self, rho: np.ndarray, adjoint: bool, rows: np.ndarray | None = None) -> np.ndarray:
        """Σ_μ κ_μ a_μ ρ a_μ† (``adjoint``: Σ_μ κ_μ a_μ† ρ a_μ) for a d × d ρ, with a_μ = b_μ + β_μ(m): the β β* part
        as one (S × S) weight, the b parts as shifts along a row and/or a column Fock axis. ``rows``: ρ holds (and
        the result is) only the rows of these spin configurations (a_μ is diagonal in m)."""
        S, fock, M = self.spin_dim, self.fock, len(self.fock)
        rows = np.arange(S) if rows is None else rows
        Sr = len(rows)
        R = rho.reshape((Sr, *fock, S, *fock))
        nd = 2 * M + 2
        w = (np.conj(self._beta_beta) if adjoint else self._beta_beta)[rows]
        out = w.reshape((Sr,) + (1,) * M + (S,) + (1,) * M) * R
        for mu in range(M):
            k, c = self.kappa[mu], fock[mu]
            if k == 0 or c < 2:
                continue
            row_ax, col_ax = 1 + mu, 2 + M + mu
            sq = np.sqrt(np.arange(1, c, dtype=float))
            left = (np.conj(self.beta[mu]) if adjoint else self.beta[mu])[rows].reshape((Sr,) + (1,) * (nd - 1))
            right = (self.beta[mu] if adjoint else np.conj(self.beta[mu])).reshape((1,) * (M + 1) + (S,) + (1,) * M)

            def along(ax):
                shape = [1] * nd
                shape[ax] = c - 1
                return sq.reshape(shape)

            def part(**axes):
                idx = [slice(None)] * nd
                for ax, sl in axes.items():
                    idx[int(ax[1:])] = sl
                return tuple(idx)

            lo, hi = slice(0, -1), slice(1, None)
            # a ρ a†: b ρ → out[n] ← √(n+1) ρ[n+1] (rows); ρ b† → out[n'] ← √(n'+1) ρ[n'+1] (columns)
            # a† ρ a: b† ρ → out[n+1] ← √(n+1) ρ[n] (rows); ρ b → out[n'+1] ← √(n'+1) ρ[n'] (columns)
            dst, src = (hi, lo) if adjoint else (lo, hi)
            r_dst, r_src = part(**{f"a{col_ax}": dst}), part(**{f"a{col_ax}": src})
            out[r_dst] += (k * left * along(col_ax)) * R[r_src]  # β(m) ρ b† (or β* ρ b)
            r_dst, r_src = part(**{f"a{row_ax}": dst}), part(**{f"a{row_ax}": src})
            out[r_dst] += (k * right * along(row_ax)) * R[r_src]  # b ρ β* (or b† ρ β)
            r_dst = part(**{f"a{row_ax}": dst, f"a{col_ax}": dst})
            r_src = part(**{f"a{row_ax}": src, f"a{col_ax}": src})
            out[r_dst] += (k * along(row_ax) * along(col_ax)) * R[r_src]  # b ρ b† (or b† ρ b)
        return out.reshape(rho.shape)

    def apply(self, rho: np.ndarray) -> np.ndarray:
        """L(ρ) = Kρ + (Kρ†)† + Σ_μ κ_μ a_μ ρ a_μ†."""
        out = self.K.apply(rho)
        out += self.K.apply(rho.conj().T).conj().T
        out += self._jumps(np.ascontiguousarray(rho), adjoint=False)
        return out

    def apply_rows(self, rho: np.ndarray, rows: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """L(ρ) (``adjoint``: L†(ρ)) on the rows of the spin configurations ``rows`` only: K[R] ρ + (K ρ[R]†)† + jumps."""
        K = self.Kh if adjoint else self.K
        F = _kron_dims(self.fock)
        full = (rows[:, None] * F + np.arange(F)[None, :]).ravel()
        part = np.ascontiguousarray(rho[full])
        out = K.apply_rows(rho, rows)
        out += K.apply(np.ascontiguousarray(part.conj().T)).conj().T
        out += self._jumps(part, adjoint=adjoint, rows=rows)
        return out

    def apply_adjoint(self, obs: np.ndarray) -> np.ndarray:
        """L†(O) = K†O + (K†O†)† + Σ_μ κ_μ a_μ† O a_μ."""
        out = self.Kh.apply(obs)
        out += self.Kh.apply(obs.conj().T).conj().T
        out += self._jumps(np.ascontiguousarray(obs), adjoint=True)
        return out


class SectorOperator(sla.LinearOperator):
    """The Liouvillian of one parity sector of ``basis`` (a polaron problem) on its sector vector, matrix-free:
    ``matvec`` = L, ``rmatvec`` = L† (so ``.T`` is the transpose, the map of left eigenvectors). Counts its
    products (``products``) and logs one DEBUG line (logger ``opendicke.quantum.metastability``) every
    ``log_every`` seconds of a long eigen-solve."""

    def __init__(self, basis: ParityBasis, sector: str, generator: PolaronGenerator | None = None,
                 log_every: float = 60.0):
        n = basis.sector_size(sector)
        super().__init__(dtype=np.complex128, shape=(n, n))
        self.basis = basis
        self.sector = sector
        self.generator = generator or PolaronGenerator(basis.problem)
        self.Q = basis.Q.tocsr()
        self.Qt = basis.Q.T.tocsr()
        self.products = 0
        self.krylov_vectors: int | None = None  # set by the solver from its memory budget
        self._setup_rows()
        self.log_every = float(log_every)
        self._started = self._last_log = None  # the clock starts at the first product

    def _setup_rows(self):
        """The symmetry-reduced product: ρ of the sector obeys g ρ gᵀ = χ(g) ρ for every element g of the basis's
        group (χ the sector's character), and so does L(ρ). With no mode exchange the group moves rows through the
        spin configurations, so L(ρ) is computed on one spin configuration per orbit (``rows``, ≈ 1/|G| of them:
        K, the adjoint half and the jumps all cost ∝ rows) and the other rows are copied with their signs."""
        basis = self.basis
        self.rows = None
        if not getattr(basis, "generators", ()) or not basis.spin_only:
            return
        F = _kron_dims(self.generator.fock)
        S = self.generator.spin_dim
        images = np.stack([perm[np.arange(S) * F] // F for _, perm, _ in basis.group])
        rows = np.flatnonzero(images.min(axis=0) == np.arange(S))
        if len(rows) == S:
            return
        self.rows = rows
        self._full_rows = (rows[:, None] * F + np.arange(F)[None, :]).ravel()
        s = basis.sector_label(self.sector)
        self._copies = [((-1) ** bin(bits & s).count("1"), perm, sign) for bits, perm, sign in basis.group]

    def _unfold(self, part: np.ndarray) -> np.ndarray:
        """The d × d matrix Y from its rows ``_full_rows``: Y[perm_i, perm_j] = χ(g) sign_i sign_j Y[i, j]."""
        d = self.basis.dim
        Y = np.empty((d, d), dtype=complex)
        R = self._full_rows
        for chi, perm, sign in self._copies:
            Y[np.ix_(perm[R], perm)] = (chi * sign[R])[:, None] * part * sign[None, :]
        return Y

    def _apply(self, rho: np.ndarray, adjoint: bool) -> np.ndarray:
        if self.rows is None:
            return self.generator.apply_adjoint(rho) if adjoint else self.generator.apply(rho)
        return self._unfold(self.generator.apply_rows(rho, self.rows, adjoint=adjoint))

    def _to_rho(self, v: np.ndarray) -> np.ndarray:
        X = self.basis.full_matrix(np.asarray(v, dtype=complex).ravel(), self.sector)
        return np.asarray(self.Q @ np.asarray(self.Q @ X).T).T  # Q X Qᵀ

    def _from_rho(self, Y: np.ndarray) -> np.ndarray:
        Z = np.asarray(self.Qt @ np.asarray(self.Qt @ Y).T).T  # Qᵀ Y Q
        return self.basis.sector_vector(Z, self.sector)

    def _tick(self):
        self.products += 1
        now = _time.perf_counter()
        if self._started is None:
            self._started = self._last_log = now
        if now - self._last_log >= self.log_every and _log.isEnabledFor(logging.DEBUG):
            self._last_log = now
            _log.debug("%s sector (matrix-free, %d entries): %d products, %.0f s wall, %.0f s CPU",
                       self.sector, self.shape[0], self.products, now - self._started, _time.process_time())

    def _matvec(self, v):
        self._tick()
        return self._from_rho(self._apply(self._to_rho(v), adjoint=False))

    def _rmatvec(self, v):
        self._tick()
        return self._from_rho(self._apply(self._to_rho(v), adjoint=True))

    def preconditioner(self, sigma: float, transpose: bool = False, coarse_quanta: int | None = COARSE_QUANTA):
        """v ↦ (M − σ)⁻¹ v on the sector vector (``transpose``: (Mᵀ − σ)⁻¹ = conj ∘ (M† − σ)⁻¹ ∘ conj), M the
        spin-diagonal part of L plus the spin flips among the levels T ≤ ``coarse_quanta``
        (:class:`SpinDiagonalSolver`, built once per generator and shared by the two sectors). M commutes with the
        parity, so the image of a sector vector lies in the sector."""
        cache = self.generator.__dict__.setdefault("_spin_solvers", {})
        if coarse_quanta not in cache:
            cache[coarse_quanta] = SpinDiagonalSolver(self.generator, coarse_quanta)
        solver = cache[coarse_quanta]
        sigma = float(sigma)
        if transpose:
            return lambda v: np.conj(self._from_rho(solver.solve(self._to_rho(np.conj(v)), sigma, adjoint=True)))
        return lambda v: self._from_rho(solver.solve(self._to_rho(v), sigma))

    def conjugate(self, v: np.ndarray) -> np.ndarray:
        """J v: the sector vector of ρ† for the ρ of ``v`` (antilinear, isometric). L(ρ†) = L(ρ)† and the sector is
        closed under † (a block (a, b) goes to (b, a), same label), so J commutes with L and Lᵀ: J maps an
        eigenvector of λ to one of λ*."""
        X = self.basis.full_matrix(np.asarray(v, dtype=complex).ravel(), self.sector)
        return self.basis.sector_vector(np.ascontiguousarray(X.conj().T), self.sector)

    def bilinear(self, left: np.ndarray, right: np.ndarray):
        """ℓᵀ L v with L v in double precision and the sum in extended precision (np.clongdouble)."""
        Lv = self @ right
        ext = np.clongdouble
        return np.sum(np.asarray(left).astype(ext) * np.asarray(Lv).astype(ext))


def sector_operator(basis: ParityBasis, sector: str, generator: PolaronGenerator | None = None) -> SectorOperator:
    """The matrix-free Liouvillian of one parity sector of a polaron-basis problem (see the module docstring)."""
    if getattr(basis.problem, "basis_name", "plain") != "polaron":
        raise ValueError("the matrix-free sector operator is written for the polaron basis")
    return SectorOperator(basis, sector, generator)


def matrix_free_memory(problem, krylov_vectors: int, sector_size: int | None = None) -> dict:
    """Bytes the matrix-free Arnoldi needs for ``problem``: ARPACK's Krylov basis and workspace (``krylov_vectors``
    + 16 complex sector vectors: its 3 work vectors, the Ritz vectors, the previous cutoff's start vector) and the
    d × d work arrays of one product (≈ 10 complex d × d: X, Q X Qᵀ, ρ†, Kρ, the column chunks, Qᵀ Y Q).
    ``sector_size``: the largest sector (default: a parity sector, d²/2 + d)."""
    d = int(problem.dim)
    size = (d * d) // 2 + d if sector_size is None else int(sector_size)
    krylov = 16 * size * (krylov_vectors + 16)
    work = 16 * 10 * d * d
    return {"dimension": d, "sector_size": size, "krylov_bytes": krylov, "work_bytes": work,
            "bytes": krylov + work}


# --------------------------------------------------------------------------------------------- shift-invert
class SpinDiagonalSolver:
    """Exact solves with D − σ, D the part of L that is diagonal in the spin configurations of ρ's blocks.

    Split L = D + F in the polaron basis, F the spin flips (Ω S_x,r with their displacement matrices) and D
    everything else. On one block X = ρ_{m m'} (a Fock ⊗ Fock matrix), with ν_μ = −iΩ_μ − κ_μ/2 (K's number term)
    and l_μ(m) K's coefficient of b_μ (K's coefficient of b_μ† vanishes identically because β_μ(m) is the *damped*
    stationary field: checked at construction),

        D(X) = c(m, m') X + Σ_μ [ν_μ N_μ X + ν_μ* X N_μ]
               + Σ_μ [(l_μ(m) + κ_μ β_μ(m')*) b_μ X + (l_μ(m')* + κ_μ β_μ(m)) X b_μ† + κ_μ b_μ X b_μ†],
        c(m, m') = c0(m) + c0(m')* + Σ_μ κ_μ β_μ(m) β_μ(m')*.

    b X, X b† and b X b† read entries of higher total quanta T = Σ_μ (n_μ + n'_μ), so D is upper triangular in
    T with the explicit diagonal c(m, m') + Σ_μ (ν_μ n_μ + ν_μ* n'_μ): (D − σ) Y = R is solved exactly by
    back-substitution from the top level of T down, all (m, m') blocks at once, O(d² M) per solve. The adjoint
    D†(O) = c* O + Σ[ν* N O + ν O N] + Σ[(l(m)* + κβ(m')) b† O + (l(m') + κβ(m)*) O b + κ b† O b] reads lower T
    and is solved from the bottom up. Re of the diagonal at n = n' = 0 is −Σκ|β(m) − β(m')|²/2, exactly 0 for
    m = m' (every displaced vacuum is stationary under D): hence a shift σ ≠ 0.

    Arrays are ρ in the problem's (polaron) basis, d × d. Internally ρ is held as (F², S²): Fock pair (n, n')
    first, spin pair (m, m') last, so one level of T is a set of rows."""

    def __init__(self, generator: PolaronGenerator, coarse_quanta: int | None = None):
        K = generator.K
        S, fock = generator.spin_dim, generator.fock
        M = len(fock)
        scale = max(1.0, max(float(np.abs(u).max()) for u in K.lower))
        for mu, v in enumerate(K.upper):
            if np.abs(v).max() > 1e-10 * scale:
                raise ValueError(f"K's coefficient of b_{mu + 1}† does not vanish ({np.abs(v).max():.1e}): the "
                                 "spin-diagonal part is not triangular in the total quanta")
        self.spin_dim, self.fock, self.n_modes = S, fock, M
        F = _kron_dims(fock)
        self.F = F
        kappa, beta = generator.kappa, generator.beta
        c0 = K.c0
        cspin = c0[:, None] + np.conj(c0)[None, :] + generator._beta_beta
        # spin-pair weights of the shift terms, forward (D) and adjoint (D†), each (S²,)
        self._weights = {False: [], True: []}
        for mu in range(M):
            lo = K.lower[mu]
            k = kappa[mu]
            self._weights[False] += [(lo[:, None] + k * np.conj(beta[mu])[None, :]).ravel(),
                                     (np.conj(lo)[None, :] + k * beta[mu][:, None]).ravel(),
                                     np.full(S * S, k, dtype=complex)]
            self._weights[True] += [(np.conj(lo)[:, None] + k * beta[mu][None, :]).ravel(),
                                    (lo[None, :] + k * np.conj(beta[mu])[:, None]).ravel(),
                                    np.full(S * S, k, dtype=complex)]
        self._cspin = cspin.ravel()
        # Fock pair multi-index (n_1 … n_M, n'_1 … n'_M), row-major, F² rows
        grids = np.indices(tuple(fock) + tuple(fock)).reshape(2 * M, -1)
        n, n2 = grids[:M], grids[M:]
        nu = np.array([K.number[mu] for mu in range(M)])
        self._fock_diag = (nu @ n + np.conj(nu) @ n2).astype(complex)  # (F²,)
        total = grids.sum(axis=0)
        strides = np.array([_kron_dims(tuple(fock)[i + 1:] + tuple(fock)) for i in range(M)]
                           + [_kron_dims(tuple(fock)[i + 1:]) for i in range(M)], dtype=np.int64)
        self._levels = {False: [], True: []}
        top = int(total.max())
        for adjoint in (False, True):
            order = range(top, -1, -1) if not adjoint else range(top + 1)
            for t in order:
                rows = np.flatnonzero(total == t)
                terms = []
                for mu in range(M):
                    for j, (dn, dn2) in enumerate(((1, 0), (0, 1), (1, 1))):
                        a, b = n[mu, rows], n2[mu, rows]
                        if adjoint:  # b† O, O b, b† O b: read n − 1 / n' − 1, factors √n, √n'
                            ok = ((a >= 1) | (dn == 0)) & ((b >= 1) | (dn2 == 0))
                            src = rows - dn * strides[mu] - dn2 * strides[M + mu]
                            fac = np.sqrt(np.where(dn, a, 1.0) * np.where(dn2, b, 1.0))
                        else:  # b X, X b†, b X b†: read n + 1 / n' + 1, factors √(n+1), √(n'+1)
                            ok = ((a + 1 < fock[mu]) | (dn == 0)) & ((b + 1 < fock[mu]) | (dn2 == 0))
                            src = rows + dn * strides[mu] + dn2 * strides[M + mu]
                            fac = np.sqrt(np.where(dn, a + 1.0, 1.0) * np.where(dn2, b + 1.0, 1.0))
                        if np.any(ok):
                            pos = np.flatnonzero(ok)
                            terms.append((3 * mu + j, pos, src[pos], fac[pos][:, None]))
                self._levels[adjoint].append((rows, terms))
        self._inverse = {}
        self._total = total
        self.coarse_quanta = None if coarse_quanta is None else int(coarse_quanta)
        self._coarse_lu = {}
        if self.coarse_quanta is not None:
            self._setup_coarse(generator)

    def _setup_coarse(self, generator: PolaronGenerator) -> None:
        """L restricted to the coarse levels T ≤ coarse_quanta (all spin pairs), assembled sparse: the
        preconditioner is then M = [[L_cc, D_cf], [0, D_ff]] (c: T ≤ T_c, f: T > T_c), block upper triangular,
        so a solve is the back-substitution of the fine levels followed by one sparse LU solve on the coarse
        ones. M − L = F_cf + F_fc + F_ff: every spin flip that touches a level above T_c."""
        S, fock, M, F = self.spin_dim, self.fock, self.n_modes, self.F
        Tc = self.coarse_quanta
        occ = np.indices(fock).reshape(M, -1)
        small_fock = np.flatnonzero(occ.sum(axis=0) <= Tc)  # Fock states with Σn ≤ T_c
        nf = len(small_fock)
        small = (np.arange(S)[:, None] * F + small_fock[None, :]).ravel()  # (m, n) in the problem basis
        ns = len(small)
        E = np.zeros((S * F, ns), dtype=complex)
        E[small, np.arange(ns)] = 1.0
        K_s = sp.csr_matrix(generator.K.apply(E)[small])
        where = {int(f): i for i, f in enumerate(small_fock)}
        a_s = []
        for mu in range(M):
            rows, cols, vals = [], [], []
            step = _kron_dims(fock[mu + 1:])
            for i, f in enumerate(small_fock):
                p = occ[mu, f]
                if p >= 1:
                    rows.append(where[int(f - step)])
                    cols.append(i)
                    vals.append(np.sqrt(p))
            b = sp.csr_matrix((vals, (rows, cols)), shape=(nf, nf), dtype=complex)
            a_s.append(sp.kron(sp.identity(S), b, format="csr")
                       + sp.kron(sp.diags(generator.beta[mu]), sp.identity(nf), format="csr"))
        I = sp.identity(ns, format="csr")
        L_s = sp.kron(K_s, I, format="csr") + sp.kron(I, K_s.conj(), format="csr")
        for mu in range(M):
            L_s = L_s + generator.kappa[mu] * sp.kron(a_s[mu], a_s[mu].conj(), format="csr")
        # the coarse unknowns in the packed order: coarse Fock-pair rows × S² spin pairs
        crow = np.flatnonzero(self._total <= Tc)
        n_idx, n2_idx = crow // F, crow % F
        m = np.repeat(np.arange(S), S)
        m2 = np.tile(np.arange(S), S)
        row_small = (m[None, :] * nf + np.array([where[int(f)] for f in n_idx])[:, None])
        col_small = (m2[None, :] * nf + np.array([where[int(f)] for f in n2_idx])[:, None])
        perm = (row_small * ns + col_small).ravel()
        self._coarse_rows = crow
        self._coarse_matrix = L_s[perm][:, perm].tocsc()

    def _coarse_solver(self, sigma: complex):
        key = complex(sigma)
        if key not in self._coarse_lu:
            import scipy.sparse.linalg as _sla

            A = (self._coarse_matrix - sigma * sp.identity(self._coarse_matrix.shape[0], format="csc")).tocsc()
            self._coarse_lu = {key: _sla.splu(A)}
        return self._coarse_lu[key]

    def _inverse_diagonal(self, sigma: complex, adjoint: bool) -> np.ndarray:
        key = (complex(sigma), adjoint)
        if key not in self._inverse:
            diag = self._fock_diag[:, None] + self._cspin[None, :] - sigma
            if adjoint:
                diag = np.conj(self._fock_diag)[:, None] + np.conj(self._cspin)[None, :] - sigma
            if np.any(diag == 0):
                raise ZeroDivisionError(f"D − σ is singular at σ = {sigma}")
            self._inverse = {key: 1.0 / diag}  # one σ kept at a time (F² × S² complex)
        return self._inverse[key]

    def _pack(self, X: np.ndarray) -> np.ndarray:
        S, F = self.spin_dim, self.F
        return np.ascontiguousarray(X.reshape(S, F, S, F).transpose(1, 3, 0, 2)).reshape(F * F, S * S)

    def _unpack(self, Z: np.ndarray) -> np.ndarray:
        S, F = self.spin_dim, self.F
        return np.ascontiguousarray(Z.reshape(F, F, S, S).transpose(2, 0, 3, 1)).reshape(S * F, S * F)

    def apply(self, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """D(X) (``adjoint``: D†(X)) for a d × d X: for tests of the solve."""
        Z = self._pack(np.asarray(X, dtype=complex))
        diag = self._fock_diag[:, None] + self._cspin[None, :]
        out = (np.conj(diag) if adjoint else diag) * Z
        weights = self._weights[adjoint]
        for rows, terms in self._levels[adjoint]:
            for w, pos, src, fac in terms:
                out[rows[pos]] += fac * weights[w][None, :] * Z[src]
        return self._unpack(out)

    def solve(self, R: np.ndarray, sigma: complex, adjoint: bool = False) -> np.ndarray:
        """Y with (M − σ) Y = R (``adjoint``: (M† − σ) Y = R), exact, for a d × d R; M = D, or with
        ``coarse_quanta`` D plus the spin flips among the levels T ≤ coarse_quanta (see :meth:`_setup_coarse`)."""
        Z = self._pack(np.asarray(R, dtype=complex))
        inv = self._inverse_diagonal(sigma, adjoint)
        weights = self._weights[adjoint]
        Tc = self.coarse_quanta
        if Tc is None:
            for rows, terms in self._levels[adjoint]:  # levels already solved come first
                acc = Z[rows]
                for w, pos, src, fac in terms:
                    acc[pos] -= fac * weights[w][None, :] * Z[src]
                Z[rows] = acc * inv[rows]
            return self._unpack(Z)
        lu = self._coarse_solver(sigma)
        crow = self._coarse_rows
        levels = self._levels[adjoint]
        if adjoint:  # M† = [[L_cc†, 0], [D_cf†, D_ff†]]: the coarse block first, then upwards
            Z[crow] = lu.solve(Z[crow].ravel(), trans="H").reshape(len(crow), -1)
            for rows, terms in levels[Tc + 1:]:
                acc = Z[rows]
                for w, pos, src, fac in terms:
                    acc[pos] -= fac * weights[w][None, :] * Z[src]
                Z[rows] = acc * inv[rows]
            return self._unpack(Z)
        top = len(levels) - 1
        for rows, terms in levels[:top - Tc]:  # the fine levels T > T_c, from the top down
            acc = Z[rows]
            for w, pos, src, fac in terms:
                acc[pos] -= fac * weights[w][None, :] * Z[src]
            Z[rows] = acc * inv[rows]
        rhs = Z[crow]
        Z[crow] = 0
        parts = []
        for rows, terms in levels[top - Tc:]:  # what the coarse levels read from the fine ones (D_cf Y_f)
            acc = np.zeros((len(rows), Z.shape[1]), dtype=complex)
            for w, pos, src, fac in terms:
                acc[pos] -= fac * weights[w][None, :] * Z[src]
            parts.append((rows, acc))
        for rows, acc in parts:
            Z[rows] = acc
        Z[crow] = lu.solve((rhs + Z[crow]).ravel()).reshape(len(crow), -1)
        return self._unpack(Z)


def gmres_right(matvec, precondition, b: np.ndarray, *, rtol: float, restart: int = 60,
                max_iterations: int = 2000) -> tuple[np.ndarray, int, float]:
    """x with ‖b − A x‖ ≤ rtol ‖b‖ by right-preconditioned restarted GMRES: A M⁻¹ u = b, x = M⁻¹ u, so the
    residual minimised is the true one of A x = b (checked with one product at the end of every cycle).
    Classical Gram–Schmidt twice (two matrix–vector BLAS calls per iteration), Givens rotations for the small
    least-squares problem. Returns (x, iterations, relative residual)."""
    b = np.asarray(b, dtype=complex)
    n = b.shape[0]
    bnorm = float(np.linalg.norm(b))
    x = np.zeros(n, dtype=complex)
    if bnorm == 0:
        return x, 0, 0.0
    r = b.copy()
    beta = bnorm
    iterations = 0
    V = np.empty((restart + 1, n), dtype=complex)
    while True:
        V[0] = r / beta
        Hs = np.zeros((restart + 1, restart), dtype=complex)
        cs = np.zeros(restart, dtype=complex)
        sn = np.zeros(restart, dtype=complex)
        g = np.zeros(restart + 1, dtype=complex)
        g[0] = beta
        j = 0
        while j < restart and iterations < max_iterations:
            w = matvec(precondition(V[j]))
            iterations += 1
            h = (V[:j + 1] @ w.conj()).conj()
            w -= h @ V[:j + 1]
            h2 = (V[:j + 1] @ w.conj()).conj()
            w -= h2 @ V[:j + 1]
            h += h2
            hn = float(np.linalg.norm(w))
            Hs[:j + 1, j] = h
            Hs[j + 1, j] = hn
            for i in range(j):  # earlier rotations
                t = np.conj(cs[i]) * Hs[i, j] + np.conj(sn[i]) * Hs[i + 1, j]
                Hs[i + 1, j] = -sn[i] * Hs[i, j] + cs[i] * Hs[i + 1, j]
                Hs[i, j] = t
            a, c = Hs[j, j], Hs[j + 1, j]
            rho = math_hypot(a, c)
            cs[j], sn[j] = (a / rho, c / rho) if rho else (1.0, 0.0)
            Hs[j, j] = rho
            Hs[j + 1, j] = 0
            g[j + 1] = -sn[j] * g[j]
            g[j] = np.conj(cs[j]) * g[j]
            j += 1
            if hn > 0:
                V[j] = w / hn
            if abs(g[j]) <= rtol * bnorm or hn == 0:
                break
        y = np.linalg.solve(np.triu(Hs[:j, :j]), g[:j]) if j else np.zeros(0)
        x += precondition(y @ V[:j])
        r = b - matvec(x)
        beta = float(np.linalg.norm(r))
        if beta <= rtol * bnorm or iterations >= max_iterations:
            return x, iterations, beta / bnorm


def math_hypot(a: complex, b: complex) -> float:
    return float(np.sqrt(abs(a) ** 2 + abs(b) ** 2))


def _orthonormalize_against(V: np.ndarray, count: int, t: np.ndarray, image: np.ndarray | None = None):
    """t orthogonalised against the rows V[:count] (classical Gram–Schmidt twice) and normalised; None when it
    lies in their span (to round-off). With ``image`` = (A t, W), W = A V row by row: returns (t', A t'), A t' being
    the same combination of A t and the rows of W (no product)."""
    norm0 = float(np.linalg.norm(t))
    if norm0 == 0:
        return None
    coef = np.zeros(count, dtype=complex)
    for _ in range(2):
        if count:  # V^H t as conj(V conj(t)): no conjugated copy of the basis
            c = (V[:count] @ t.conj()).conj()
            t = t - c @ V[:count]
            coef += c
    norm = float(np.linalg.norm(t))
    # with an image, the round-off of w − coef W is amplified by norm0 / norm: keep it below 1e-13 relative
    if norm <= (1e-10 if image is None else 1e-3) * norm0:
        return None
    if image is None:
        return t / norm
    w, W = image
    return t / norm, (w - coef @ W[:count]) / norm


def _ritz_order(theta: np.ndarray, target: float, select: str) -> np.ndarray:
    """Indices of ``theta`` best first: ``"nearest"`` by |θ − target|, ``"LR"`` by decreasing real part (ties, e.g.
    the two members of a converged conjugate pair, by decreasing imaginary part)."""
    if select == "nearest":
        return np.argsort(np.abs(theta - target), kind="stable")
    if select == "LR":
        return np.lexsort((-theta.imag, -theta.real))
    raise ValueError(f"select must be one of {DAVIDSON_SELECTIONS}, got {select!r}")


def davidson_eigenpairs(matvec, precondition, n: int, k: int, *, target: float, v0=None, tol: float = 1e-11,
                        max_basis: int = 120, max_products: int = 20_000, progress=None, select: str = "LR",
                        conjugate=None):
    """The ``k`` eigenpairs of a (non-Hermitian) operator A with the largest real parts (``select="LR"``) or
    nearest ``target`` (``select="nearest"``) by preconditioned (generalised) Davidson with thick restarts.

    The search space (orthonormal rows V) grows by the preconditioned residuals t = P r of the Ritz pairs not yet
    converged, r = A u − θ u (P ≈ (A − target)⁻¹, a fixed map); Rayleigh–Ritz with A itself (W = A V is kept and
    H = V^H A V updated by one row and column per vector, so the projection costs no extra product); when V is
    full it is cut to its best ``max(2k, 8)`` Ritz vectors. Converged pairs (‖A u − θ u‖ ≤ tol, u of unit norm)
    are locked; the k best of the locked and the free Ritz values together are followed, so a locked value is
    displaced by a better one entering the space later, and it stops when those k are all locked. Every product
    is one of A itself, so the residuals are those of A, not of a shifted or inverted map, and an inexact P only
    slows convergence, it does not bias the result. It can only follow what enters the space: an eigenvalue whose
    eigenvector P never brings in (e.g. a fast oscillation far from ``target``) is not listed, whatever ``select``.

    ``conjugate``: an antilinear isometry J with A J = J A (for a Liouvillian, ρ ↦ ρ†): every vector t added is
    followed by J t, whose image A J t = J (A t) costs no product, so the space stays J-closed, its Ritz values
    come in conjugate pairs, and of a pair θ, θ* only θ (Im θ > 0) is corrected (J P = P J when P commutes with J,
    as the real-shift preconditioner does). ``progress(info)`` is called after every step. Returns (values (k,),
    vectors (n, k), residuals (k,), products, steps), best first."""
    max_basis = int(max(max_basis, k + 2))
    keep = min(max(2 * k, 8), max_basis - k - 1)
    V = np.empty((max_basis, n), dtype=complex)
    W = np.empty((max_basis, n), dtype=complex)
    H = np.zeros((max_basis, max_basis), dtype=complex)
    count = 0
    products = 0
    rng = np.random.default_rng(12345)

    def add(t, image=None, pair=True):
        """t (orthonormalised) into the space; ``image`` = A t when known (no product), else one product; then,
        with ``conjugate`` and ``pair``, J t (a correction of a real θ in a J-closed space is J-symmetric already)."""
        nonlocal count, products
        if image is not None:
            got = _orthonormalize_against(V, count, t, (image, W))
            if got is None:
                return
            V[count], W[count] = got
        else:
            t = _orthonormalize_against(V, count, t)
            if t is None:  # the correction lies in the space: a random direction instead
                t = _orthonormalize_against(V, count, rng.standard_normal(n) + 1j * rng.standard_normal(n))
            V[count] = t
            W[count] = matvec(t)
            products += 1
        t = V[count]
        H[:count + 1, count] = (V[:count + 1] @ W[count].conj()).conj()
        H[count, :count] = W[:count] @ t.conj()  # v_new^H A v_i
        count += 1
        if conjugate is not None and pair and image is None and count < max_basis:  # J t: A J t = J A t, no product
            add(conjugate(V[count - 1]), conjugate(W[count - 1]))

    starts = [] if v0 is None else [np.asarray(v, dtype=complex) for v in (v0 if isinstance(v0, (list, tuple)) else [v0])]
    if not starts:
        starts = [rng.standard_normal(n) + 1j * rng.standard_normal(n)]
    for s in starts:
        if count >= max_basis - k - 1:
            break
        add(s)
    locked_values, locked_vectors, locked_res = [], [], []  # converged pairs, kept out of the selection

    def is_locked(z):
        return any(abs(z - w) <= 1e-8 * max(1.0, abs(w)) for w in locked_values)

    def is_complex(z):
        return abs(z.imag) > 1e-6 * max(1.0, abs(z))

    steps = 0
    while True:
        theta, Y = np.linalg.eig(H[:count, :count])
        order = _ritz_order(theta, target, select)
        theta, Y = theta[order], Y[:, order]
        Y = Y / np.linalg.norm(Y, axis=0)
        free = [j for j in range(len(theta)) if not is_locked(theta[j])]
        # the k best of the locked and the free Ritz values together: a locked pair is displaced by a better one
        # that appears later (e.g. a slow oscillating mode entering the space after faster real ones converged)
        nl = len(locked_values)
        best = _ritz_order(np.concatenate([np.array(locked_values, dtype=complex), theta[free]]), target, select)[:k]
        active = [free[b - nl] for b in best if b >= nl]
        U = Y[:, active].T @ V[:count]  # rows: Ritz vectors (unit norm)
        R = Y[:, active].T @ W[:count] - theta[active, None] * U
        res = np.linalg.norm(R, axis=1)
        steps += 1
        if progress is not None:
            progress({"step": steps, "products": products, "basis": count, "locked": len(locked_values),
                      "values": theta[active], "residuals": res})
        for i, j in enumerate(active):  # lock what converged (it stays in the space; it is not corrected again)
            if res[i] <= tol and not is_locked(theta[j]):  # (θ* may have been locked with θ just before)
                locked_values.append(theta[j])
                locked_vectors.append(U[i].copy())
                locked_res.append(res[i])
                if conjugate is not None and is_complex(theta[j]) and not is_locked(theta[j].conjugate()):
                    locked_values.append(theta[j].conjugate())  # J u: an eigenvector of θ* with the same residual
                    locked_vectors.append(conjugate(U[i]))
                    locked_res.append(res[i])
        pending = [i for i in range(len(active)) if res[i] > tol]
        if not pending or products >= max_products:
            values = np.array(locked_values + [theta[active[i]] for i in pending])
            vectors = np.array(locked_vectors + [U[i] for i in pending]).T
            residuals = np.array(locked_res + [res[i] for i in pending])
            order = _ritz_order(values, target, select)[:k]
            return values[order], vectors[:, order], residuals[order], products, steps
        todo = pending
        if conjugate is not None:  # the space is J-closed: θ* is corrected by J of θ's correction, added with it
            values = theta[active]
            todo = [i for i in pending if not (values[i].imag < 0 and is_complex(values[i])
                                               and np.min(np.abs(values[pending] - values[i].conjugate()))
                                               <= 1e-6 * max(1.0, abs(values[i])))]
        if count + (2 if conjugate is not None else 1) * len(todo) > max_basis:  # thick restart on the best Ritz
            # vectors (W, H rotate)
            cut = keep  # with J: do not split a conjugate pair, so that the space stays J-closed
            if (conjugate is not None and cut < count and is_complex(theta[cut - 1])
                    and abs(theta[cut] - theta[cut - 1].conjugate()) <= 1e-6 * max(1.0, abs(theta[cut]))):
                cut += 1
            Qy, _ = np.linalg.qr(Y[:, :cut])
            V[:cut] = Qy.T @ V[:count]
            W[:cut] = Qy.T @ W[:count]
            H[:cut, :cut] = Qy.conj().T @ H[:count, :count] @ Qy
            count = cut
        for i in todo:
            add(precondition(R[i]), pair=is_complex(theta[active[i]]))


def sector_davidson(L: SectorOperator, k: int, *, target: float = DAVIDSON_TARGET, v0=None, tol: float = DAVIDSON_TOL,
                    transpose: bool = False, max_basis: int = DAVIDSON_BASIS,
                    coarse_quanta: int | None = COARSE_QUANTA, log_every: float = 60.0,
                    select: str | None = None, conjugate_pairs: bool | None = None):
    """The ``k`` eigenpairs of a matrix-free sector Liouvillian (``transpose``: of Lᵀ, the left eigenvectors)
    with the largest real parts (``select``: default :data:`DAVIDSON_SELECT`; ``"nearest"``: nearest the real
    ``target``) by :func:`davidson_eigenpairs` with the preconditioner :meth:`SectorOperator.preconditioner`
    (shift σ = ``target``, fixed) and, with ``conjugate_pairs`` (default :data:`DAVIDSON_CONJUGATE_PAIRS`), a
    search space closed under ρ ↦ ρ†
    (:meth:`SectorOperator.conjugate`). Logs one DEBUG line every ``log_every`` seconds (step, products,
    search-space size, residuals). Returns (values, vectors (n, k), residuals, products, steps)."""
    n = L.shape[0]
    A = L.T if transpose else L
    precondition = L.preconditioner(target, transpose=transpose, coarse_quanta=coarse_quanta)
    clock = {"start": _time.perf_counter(), "last": _time.perf_counter()}

    def progress(info):
        now = _time.perf_counter()
        if now - clock["last"] >= log_every and _log.isEnabledFor(logging.DEBUG):
            clock["last"] = now
            _log.debug("%s sector%s (davidson, %d entries): step %d, %d products, space %d, residuals [%s], locked %d, "
                       "%.0f s wall, %.0f s CPU", L.sector, " (left)" if transpose else "", n, info["step"],
                       info["products"], info["basis"], " ".join(f"{r:.1e}" for r in info["residuals"]), info["locked"],
                       now - clock["start"], _time.process_time())

    return davidson_eigenpairs(lambda v: A @ v, precondition, n, k, target=target, v0=v0, tol=tol,
                               max_basis=min(max_basis, n - 1), progress=progress,
                               select=DAVIDSON_SELECT if select is None else select,
                               conjugate=L.conjugate if (DAVIDSON_CONJUGATE_PAIRS if conjugate_pairs is None
                                                         else conjugate_pairs) else None)


def davidson_memory(problem, basis_vectors: int, sector_size: int | None = None,
                    coarse_quanta: int | None = COARSE_QUANTA) -> dict:
    """Bytes the matrix-free Davidson needs for ``problem``: the search space V and W = L V (2 × ``basis_vectors``
    complex sector vectors) plus 16 more (start vectors, Ritz vectors, residuals), the d × d work arrays of one
    product (≈ 10, as :func:`matrix_free_memory`) and of one preconditioner solve (≈ 4: the inverse diagonal, the
    packed copy, a level's gather), and the sparse LU of the coarse block (S² spin pairs × the Fock pairs of at
    most ``coarse_quanta`` quanta: half its dense size, measured 0.51, 0.36, 0.30 of it at N_sp = 4, 6, 8).
    ``sector_size``: the largest sector (default: a parity sector, d²/2 + d)."""
    d = int(problem.dim)
    size = (d * d) // 2 + d if sector_size is None else int(sector_size)
    search = 16 * size * (2 * basis_vectors + 16)
    work = 16 * 14 * d * d
    coarse = 0
    if coarse_quanta is not None:
        M = problem.n_modes
        spin = d // int(np.prod(problem.fock))
        fock_pairs = math.comb(int(coarse_quanta) + 2 * M, 2 * M)
        c = spin * spin * fock_pairs
        coarse = 16 * c * c // 2
    return {"dimension": d, "sector_size": size, "krylov_bytes": search, "work_bytes": work, "coarse_bytes": coarse,
            "bytes": search + work + coarse}
