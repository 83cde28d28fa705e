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

Sector coordinates are those of :class:`.liouville.ParityBasis` (any :class:`.liouville.SymmetryBasis`: complex
representation, row-major vec of the sector's label blocks): x ↦ X (d × d, zero outside the sector) ↦ ρ = Q X Qᵀ ↦ L(ρ) ↦ Qᵀ L(ρ) Q ↦ sector part. L commutes
with the parity superoperator, so the image lies in the same sector and ARPACK sees the sector alone.
"""

from __future__ import annotations

import logging
import time as _time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from .liouville import ParityBasis
from .polaron import PolaronProblem, displacement_matrix
from .problem import _large_spin

__all__ = ["PolaronGenerator", "SectorOperator", "sector_operator", "matrix_free_memory"]

_log = logging.getLogger("opendicke.quantum.metastability")

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
