"""How long a finite quantum memory remembers: exact steady state, low Liouvillian spectrum, metastable states.

At finite N_sp the exact stationary state of the model is Z2 symmetric (⟨ξ⟩ = 0): a retrieved pattern is only
metastable. This module computes, for the reduced problem (:func:`opendicke.quantum.build`, one large spin per
reduction group in its maximal-spin sector, M truncated modes):

* :func:`steady_state`: the stationary state, certified by its residual ‖Lρ‖ and trace, with the Fock cutoff
  enlarged until occupations, second moments and the overlap distribution change by ≤ ``tol``;
* :func:`lifetime`: the few eigenvalues of L with the largest real parts per parity sector (0, the gap λ₁, …),
  each with its residual, ``lifetime = 1/|Re λ₁|``, and the extreme metastable states of Macieszczak et al.,
  PRL 116, 240404 (2016) (their overlaps and occupations: the exact finite-N retrieval states).

Both work on the parity sectors of :mod:`.liouville` (real representation, half of ρ each): the even sector
holds the stationary state, the odd sector holds the tunnelling between ±ξ, whose leading eigenvalue is the gap.
With further symmetries (M ≥ 2 with equal blocks or equal modes, ``symmetries="auto"``) every sector of
:func:`.liouville.symmetry_basis` is solved: the stationary state in the fully symmetric one, the gap the slowest
nonzero eigenvalue over all of them.

Which blocks. A stationary state does not depend on the initial state, but the reduced space does: we use the
reduction's groups (``build(model, 1)``: every group is one block in its maximal-spin sector, the sector a
pattern or its mirror starts in). Initial states that split groups into several blocks live in a larger space
with its own stationary states; they are not covered here.

Bases (``basis``): ``"plain"`` (Dicke ⊗ Fock; H and a real, so the sectors use the real representation) and
``"polaron"`` (:mod:`.polaron`: every spin configuration with the modes displaced by the stationary field it
sustains; the cutoff counts fluctuations only and stays ≈ 10 as N_sp grows, where the plain one grows ∝ N_sp;
complex sectors).

Eigen-solvers (``method``), both per sector, both returning residuals ‖Lv − λv‖/‖v‖ of every eigenpair:

``"shift-invert"``
    ARPACK on (L − σ)⁻¹ with a sparse LU (SuperLU) of the sector Liouvillian, σ slightly right of 0. Exact to
    round-off, but the Liouvillian is a four-index (m, m', n, n') lattice and its LU fills in badly: measured
    fill 165× at N_sp = 8, n_c = 16 (sector size 10⁴); usable to sector sizes of a few 10⁴ only. Returns the
    eigenvalues *nearest* σ.
``"propagator"``
    ARPACK on the propagator e^{Lτ} of the sector (a fixed Taylor polynomial with scaling, the scheme of
    ``scipy.sparse.linalg.expm_multiply`` with its parameters computed once), then the Rayleigh quotient of L
    on every Ritz vector (so λ is not taken from a logarithm). Memory is a few vectors; the cost is set by
    ‖L‖τ. Returns the eigenvalues with the largest real parts: |e^{λτ}| orders them by Re λ.
``"arnoldi"``
    ARPACK's implicitly restarted Arnoldi on L + s·1 itself (s = :data:`ARNOLDI_SHIFT`), ``which="LR"``: the
    eigenvalues with the largest real parts, from sparse products with L only (memory: L and
    :data:`ARNOLDI_NCV` vectors). The shift only moves ARPACK's relative stopping test away from λ ≈ 0 (the
    Krylov space is that of L). Measured (docs/lifetime.md): 10 s CPU and 0.19 GB for the odd sector at N_sp = 16,
    n_c = 12 (polaron, 20 808 entries; the LU took minutes and GBs), 154 s and 0.37 GB at N_sp = 40, n_c = 10
    (84 050 entries, lifetime 1.4·10⁷).
``"davidson"``
    (matrix-free M ≥ 2 polaron sectors only, their ``auto`` choice) preconditioned Davidson on L
    (:func:`.matrix_free.sector_davidson`): the eigenvalues with the largest real parts, as Arnoldi, with the exact
    inverse of the spin-diagonal part of L − σ (σ = 0.05 real, plus the spin flips of the lowest quanta) as the
    preconditioner, in a search space closed under ρ ↦ ρ† (a conjugate pair costs the corrections of one member).
``"auto"``
    shift-invert up to :data:`AUTO_DIRECT_SIZE` sector entries (polaron: :data:`AUTO_DIRECT_SIZE_POLARON`),
    Arnoldi above, and Arnoldi whenever the estimated LU would not fit ``max_memory``.

The gap itself is refined by the two-sided Rayleigh quotient λ₁ = ℓᵀLv / ℓᵀv of its right (v) and left (ℓ)
eigenvectors, summed in extended precision (:func:`two_sided_eigenvalue`): its error is second order in the
residuals, ≈ κ ‖r_v‖ ‖r_ℓ‖ / δ (κ = ‖ℓ‖‖v‖/|ℓᵀv|, δ the distance to the next eigenvalue of the sector), where the
one-sided v†Lv/v†v has a first-order error κ‖r_v‖ ≈ 1e-11 — as large as λ₁ itself at N_sp ≈ 50. Both are
reported (``gap_error``, ``gap_condition``).
"""

from __future__ import annotations

import logging
import math
import time as _time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import xarray as xr

from ..model import DickeModel
from .liouville import SYMMETRIES, ParityBasis, liouville_memory_estimate, parity_basis, sector_liouvillian, symmetry_basis
from .problem import QuantumProblem, build

__all__ = [
    "steady_state", "lifetime", "sector_eigenpairs", "SectorEigenpairs", "METHODS", "AUTO_DIRECT_SIZE",
    "FockCutoffWarning", "SpectrumWarning", "metastable_states", "DEFAULT_TOL", "first_cutoff", "stationary_density_matrix",
]

_log = logging.getLogger(__name__)

METHODS = ("auto", "shift-invert", "arnoldi", "propagator", "davidson")
#: Arnoldi (``method="arnoldi"``): ARPACK on L + ARNOLDI_SHIFT·1 with ``which="LR"`` and at least ARNOLDI_NCV
#: Krylov vectors (N_sp = 40, n_c = 10 polaron odd sector measured: ncv = 30 took 33 502 products and 323 s CPU,
#: ncv = 60 took 13 107 products and 154 s).
ARNOLDI_SHIFT = 1.0
ARNOLDI_NCV = 60
#: Krylov vectors of the matrix-free Arnoldi (M ≥ 2 polaron; lowered to fit ``max_memory``, never below
#: ARNOLDI_NCV). Measured, M = 2, N_sp = 4, odd sector, 4 eigenvalues: n_c = 4: 5 023 / 2 066 / 1 739 products
#: with 60 / 120 / 200 vectors; n_c = 6: 16 446 / 5 814 / 2 320 products (230 / 96 / 46 s CPU, assembled).
ARNOLDI_NCV_MATRIX_FREE = 200
#: Davidson's search space is never cut below this many vectors to fit ``max_memory`` (restarts cost products)
DAVIDSON_MIN_BASIS = 30
#: ``method="auto"`` factorises sectors up to this many entries (measured: SuperLU takes 5.6 s and 190 MB for
#: the odd sector of N_sp = 8, n_c = 16, 10 368 entries, fill 165×; the complex full Liouvillian of the same
#: problem, 20 736 entries, took 99 s).
AUTO_DIRECT_SIZE = 12_000
#: The same for the polaron basis (complex sectors): Arnoldi beat SuperLU at every size measured, odd sector,
#: n_c = 12 (benchmarks/bench_gap_solvers.py): 1.3 s against 5.5 s CPU at N_sp = 8 (5 832 entries), 4.9 s against
#: 21 s at N_sp = 12, 10.5 s against 51 s at N_sp = 16 (0.25 GB against 3.0 GB); the LU is kept for small sectors.
AUTO_DIRECT_SIZE_POLARON = 4_000
BASES = ("plain", "polaron", "auto")
#: how sector Liouvillians are applied (see :func:`_use_matrix_free`)
OPERATORS = ("auto", "sparse", "matrix-free")
#: methods of a matrix-free sector operator (``auto`` = davidson)
MATRIX_FREE_METHODS = ("auto", "arnoldi", "davidson")
#: ``basis="auto"`` takes the polaron basis from this many spins on (its cutoff stays 10–12 where the plain one
#: grows ∝ N_sp: 12 polaron levels against 22 plain ones at N_sp = 8), the plain basis below.
AUTO_POLARON_SPINS = 8
DEFAULT_TOL = 1e-6
#: Default memory budget (bytes) for one sector solve; larger problems fail before allocating.
DEFAULT_MAX_MEMORY = 6 * 2**30


class FockCutoffWarning(UserWarning):
    """The Fock cutoff could not be shown to meet the tolerance (given too small, or the search stopped)."""


class SpectrumWarning(UserWarning):
    """A slower mode than the reported gap was found by the cross-check of the Davidson eigenvalues."""


#: Fock levels per mode of the Arnoldi cross-check of a Davidson result (:func:`_slowest_mode_check`)
CHECK_FOCK = 4


# --------------------------------------------------------------------------------------------- propagator
class _TaylorPropagator:
    """v ↦ e^{Lτ} v as one fixed polynomial: (e^{μh} T_m((L − μ)h))^s v, h = τ/s, truncated Taylor of degree m.

    (m, s) from the bound of Al-Mohy & Higham (as ``expm_multiply``) computed once; no early termination, so the
    map is the same linear operator for every vector (ARPACK needs that)."""

    def __init__(self, L: sp.csr_matrix, tau: float, block: int = 1):
        n = L.shape[0]
        self.mu = float(np.real(L.diagonal().sum())) / n
        self.A = (L - self.mu * sp.identity(n, format="csr")).tocsr()
        self.tau = float(tau)
        norm1 = float(abs(self.A).sum(axis=0).max())
        try:
            from scipy.sparse.linalg._expm_multiply import LazyOperatorNormInfo, _fragment_3_1

            info = LazyOperatorNormInfo(self.tau * self.A, A_1_norm=self.tau * norm1, ell=2)
            self.m, self.s = _fragment_3_1(info, block, 2.0**-53, ell=2)
        except Exception:  # pragma: no cover - private scipy API changed: a safe fixed choice
            self.m = 40
            self.s = max(1, int(math.ceil(self.tau * norm1 / 6.0)))
        self.applications = 0

    @property
    def matvecs_per_call(self) -> int:
        return int(self.m * self.s)

    def __call__(self, v: np.ndarray) -> np.ndarray:
        h = self.tau / self.s
        eta = math.exp(self.mu * h)
        F = np.array(v, dtype=np.result_type(v, self.A.dtype), copy=True)
        for _ in range(self.s):
            B = F.copy()
            for j in range(self.m):
                B = (h / (j + 1)) * (self.A @ B)
                F += B
            F *= eta
        self.applications += 1
        return F


# --------------------------------------------------------------------------------------------- eigenpairs
@dataclass(frozen=True)
class SectorEigenpairs:
    """Eigenpairs of one sector Liouvillian: ``values`` (k,), right ``vectors`` (n, k) (complex), ``residuals``
    ‖Lv − λv‖/‖v‖ (k,), the ``method`` and its statistics (``matvecs``, ``seconds``)."""

    sector: str
    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    method: str
    matvecs: int
    seconds: float
    factor_nnz: int = 0
    lu: object = field(default=None, repr=False, compare=False)


def _rayleigh(L, vecs: np.ndarray):
    values, residuals, out = [], [], []
    for i in range(vecs.shape[1]):
        v = vecs[:, i]
        v = v / np.linalg.norm(v)
        Lv = L @ v
        lam = np.vdot(v, Lv)
        values.append(lam)
        residuals.append(np.linalg.norm(Lv - lam * v))
        out.append(v)
    return np.array(values), np.stack(out, axis=1), np.array(residuals)


def _bilinear(L, left: np.ndarray, right: np.ndarray) -> complex:
    """ℓᵀ L v summed in extended precision (np.clongdouble), in chunks of the nonzeros (a matrix-free operator:
    L v in double precision, the sum ℓᵀ(Lv) in extended precision)."""
    if not sp.issparse(L):
        return L.bilinear(left, right)
    coo = L.tocoo()
    ext = np.clongdouble
    total = ext(0)
    step = 1 << 20
    for i in range(0, coo.nnz, step):
        r, c, d = coo.row[i:i + step], coo.col[i:i + step], coo.data[i:i + step]
        total += np.sum(left[r].astype(ext) * d.astype(ext) * right[c].astype(ext))
    return total


def two_sided_eigenvalue(L, right: np.ndarray, left: np.ndarray, others: np.ndarray = np.zeros(0)) -> dict:
    """The two-sided Rayleigh quotient λ = ℓᵀLv / ℓᵀv of a right eigenvector v (Lv ≈ λv) and a left one ℓ
    (ℓᵀL ≈ λℓᵀ), with the products summed in extended precision, and its error estimate.

    With the residuals r_v = Lv − λv, r_ℓ = Lᵀℓ − λℓ (unit vectors) the error of λ is second order,
    ≈ κ ‖r_v‖ ‖r_ℓ‖ / δ, κ = 1/|ℓᵀv| the eigenvalue's condition number and δ its distance to the nearest of
    ``others`` (the sector's other computed eigenvalues; 1 if none); the one-sided v†Lv has error up to κ‖r_v‖.
    Returns {"value", "error", "condition", "right_residual", "left_residual", "one_sided"}."""
    v = right / np.linalg.norm(right)
    ell = left / np.linalg.norm(left)
    ext = np.clongdouble
    overlap = np.sum(ell.astype(ext) * v.astype(ext))
    lam = complex(_bilinear(L, ell, v) / overlap)
    one_sided = complex(np.vdot(v, L @ v))
    r_v = float(np.linalg.norm(L @ v - lam * v))
    r_l = float(np.linalg.norm(L.T @ ell - lam * ell))
    kappa = float(1.0 / abs(complex(overlap)))
    others = np.asarray(others)
    delta = float(np.min(np.abs(others - lam))) if others.size else 1.0
    return {"value": lam, "error": kappa * r_v * r_l / max(delta, 1e-300), "condition": kappa,
            "right_residual": r_v, "left_residual": r_l, "one_sided": one_sided}


def _resolve_method(method: str, size: int, basis: str = "plain") -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        limit = AUTO_DIRECT_SIZE_POLARON if basis == "polaron" else AUTO_DIRECT_SIZE
        return "shift-invert" if size <= limit else "arnoldi"
    return method


def sector_eigenpairs(L: sp.csr_matrix, k: int, *, sector: str = "", method: str = "auto", sigma: float = 1e-2,
                      tau: float | None = None, tol: float = 1e-12, transpose: bool = False,
                      v0: np.ndarray | None = None, lu=None, ncv: int | None = None,
                      v0s: list | None = None, target: float | None = None) -> SectorEigenpairs:
    """The ``k`` eigenpairs of a sector Liouvillian with the largest real parts (arnoldi, propagator) or nearest
    ``sigma`` (shift-invert), as :class:`SectorEigenpairs`. ``transpose``: of Lᵀ (left eigenvectors of L).
    ``tau`` (propagator): the time step of e^{Lτ} (default 8, about 3/(fastest non-slow decay) in the Fig. 3
    models measured). ``lu``: the factorisation kept by an earlier shift-invert call on the same L and
    ``sigma`` (``SectorEigenpairs.lu``), reused here for Lᵀ (``transpose=True``) instead of a second LU.
    ``ncv``: Arnoldi's Krylov vectors (default :data:`ARNOLDI_NCV`; a matrix-free operator brings its own), or
    Davidson's largest search space. ``method="davidson"`` (matrix-free operators only, the ``auto`` choice for
    them): the k eigenvalues with the largest real parts by preconditioned Davidson
    (:func:`.matrix_free.sector_davidson`, preconditioner shift ``target``, default
    :data:`.matrix_free.DAVIDSON_TARGET`), started from ``v0s`` (several vectors, e.g. all eigenvectors of a
    smaller cutoff) or ``v0``. It lists what its preconditioned search space reaches: the slow modes, but it can
    miss a fast oscillation with a larger real part than the k-th it lists (measured in docs/lifetime.md)."""
    n = L.shape[0]
    ncv_arg = ncv
    matrix_free = not sp.issparse(L)
    A = L.T if transpose else L
    if matrix_free:  # a LinearOperator (matrix_free.SectorOperator): products only, so Arnoldi or Davidson
        if method not in MATRIX_FREE_METHODS:
            raise ValueError(f"a matrix-free sector operator supports methods {MATRIX_FREE_METHODS}, got {method!r}")
        method = "davidson" if method == "auto" else method
    else:
        if method == "davidson":
            raise ValueError("method 'davidson' needs the matrix-free polaron operator (operator='matrix-free')")
        A = A.tocsr()
        method = _resolve_method(method, n)
    k = int(min(k, n - 2))
    ncv = min(n, max(2 * k + 1, k + 12))
    if v0 is not None:  # ARPACK wants the operator's dtype: a real sector takes the larger of Re v0, Im v0
        v0 = np.asarray(v0)
        if not np.issubdtype(A.dtype, np.complexfloating) and np.iscomplexobj(v0):
            v0 = v0.real if np.linalg.norm(v0.real) >= np.linalg.norm(v0.imag) else v0.imag
        v0 = v0.astype(A.dtype)
    start = _time.perf_counter()
    factor_nnz = 0
    if method == "davidson":
        from .matrix_free import DAVIDSON_BASIS, DAVIDSON_TARGET, sector_davidson

        basis_size = ncv_arg or getattr(L, "krylov_vectors", None) or DAVIDSON_BASIS
        starts = v0s if v0s is not None else ([] if v0 is None else [v0])
        _, vecs, _, matvecs, _ = sector_davidson(L, k, target=DAVIDSON_TARGET if target is None else target,
                                                 v0=starts or None, transpose=transpose, max_basis=basis_size)
        values, vecs, residuals = _rayleigh(A, vecs)
        order = np.argsort(-values.real, kind="stable")
        return SectorEigenpairs(sector=sector, values=values[order], vectors=vecs[:, order],
                                residuals=residuals[order], method=method, matvecs=int(matvecs) + len(values),
                                seconds=_time.perf_counter() - start)
    if method == "shift-invert":
        if lu is not None and transpose:
            op = sla.LinearOperator((n, n), matvec=lambda b: lu.solve(np.asarray(b, dtype=A.dtype), trans="T"),
                                    dtype=A.dtype)
        else:
            lu = sla.splu((A - sigma * sp.identity(n, format="csc")).tocsc(), permc_spec="COLAMD")
            op = sla.LinearOperator((n, n), matvec=lu.solve, dtype=A.dtype)
        factor_nnz = int(lu.L.nnz + lu.U.nnz)
        mu, vecs = sla.eigs(op, k=k, which="LM", ncv=ncv, tol=tol, v0=v0)
        matvecs = 0
    elif method == "arnoldi":
        count = [0]

        def shifted(v):
            count[0] += 1
            return A @ v + ARNOLDI_SHIFT * v

        op = sla.LinearOperator((n, n), matvec=shifted, dtype=A.dtype)
        wanted = ncv_arg or ARNOLDI_NCV
        if ncv_arg is None and getattr(L, "krylov_vectors", None):  # matrix-free: more vectors on large sectors
            wanted = min(L.krylov_vectors, max(ARNOLDI_NCV, n // 50))  # (n = 648: 200 vectors took 1–4× more)
        mu, vecs = sla.eigs(op, k=k, which="LR", ncv=min(n, max(ncv, wanted)), tol=tol, v0=v0,
                            maxiter=max(1000, n))
        matvecs = count[0]
    else:
        prop = _TaylorPropagator(A, 8.0 if tau is None else tau)
        op = sla.LinearOperator((n, n), matvec=prop, dtype=A.dtype)
        mu, vecs = sla.eigs(op, k=k, which="LM", ncv=ncv, tol=tol, v0=v0)
        matvecs = prop.applications * prop.matvecs_per_call
    values, vecs, residuals = _rayleigh(A, vecs)
    order = np.argsort(-values.real, kind="stable")
    return SectorEigenpairs(sector=sector, values=values[order], vectors=vecs[:, order], residuals=residuals[order],
                            method=method, matvecs=int(matvecs), seconds=_time.perf_counter() - start,
                            factor_nnz=factor_nnz, lu=lu if method == "shift-invert" and not transpose else None)


# --------------------------------------------------------------------------------------------- observables
def _hermitian_phase(M: np.ndarray) -> np.ndarray:
    """An eigenmatrix of a real eigenvalue is e^{iφ} × Hermitian (M and M† are both eigenmatrices): the Hermitian
    one, M + M† or i(M − M†) whichever is larger, halved (M itself when M is Hermitian)."""
    a, b = M + M.conj().T, 1j * (M - M.conj().T)
    return 0.5 * (a if np.linalg.norm(a) >= np.linalg.norm(b) else b)


def _hermitian_from_real(X: np.ndarray) -> np.ndarray:
    """ρ = sym(X) + i antisym(X) (the inverse of X = Re ρ + Im ρ)."""
    return 0.5 * (X + X.T) + 0.5j * (X - X.T)


def _real_if_real(op) -> sp.csr_matrix:
    op = sp.csr_matrix(op)
    if np.iscomplexobj(op.data) and not np.any(op.data.imag):
        op = op.real.tocsr()
    return op


def _trace_product(op, rho: np.ndarray) -> float:
    """Re tr(O ρ) for a sparse O and a dense ρ."""
    return float(np.real(np.sum(op.multiply(rho.T))))


class _Observables:
    """Steady-state observables of a problem, evaluated on d × d matrices of the problem's basis."""

    def __init__(self, problem: QuantumProblem):
        self.problem = problem
        N = problem.n_spins
        # a†a is diagonal in the plain basis, not in the polaron one (a = b + β(m))
        self.occupation_ops = ([problem.occupation_operator(mu) for mu in range(problem.n_modes)]
                               if hasattr(problem, "occupation_operator") else None)
        self.occupation = (None if self.occupation_ops is not None else
                           [problem.number_diagonal(mu) / N for mu in range(problem.n_modes)])
        self.overlap = [problem.overlap_diagonal(mu) for mu in range(problem.n_modes)]
        self.top = [problem.top_level_diagonal(mu) for mu in range(problem.n_modes)]
        # S_z of every group is diagonal; S_x is not
        self.group_sz = [sum((problem.sz_diagonal(int(r)) for r in np.flatnonzero(problem.block_group == k)),
                             np.zeros(problem.dim)) for k in range(problem.n_groups)]
        self.group_sx = [_real_if_real(problem.group_spin("x", k)) for k in range(problem.n_groups)]

    def evaluate(self, rho: np.ndarray) -> dict:
        """Observables of ρ (or of its real representation X in the plain basis: every observable used here
        is real symmetric there, so tr(O X) = tr(O ρ))."""
        p = self.problem
        pop = np.real(np.diagonal(rho))
        sizes = p.grouping.sizes.astype(float)
        N = p.n_spins
        values = np.round(np.array(self.overlap) * N).astype(int)  # N ξ_μ, integers of the parity of N
        grid = np.arange(-N, N + 1, 2)
        dist = np.zeros((p.n_modes, grid.size))
        for mu in range(p.n_modes):
            dist[mu] = np.bincount((values[mu] + N) // 2, weights=pop, minlength=grid.size)[: grid.size]
        return {
            "trace": float(np.real(np.trace(rho))),
            "occupation": (np.array([o @ pop for o in self.occupation]) if self.occupation is not None else
                           np.array([_trace_product(o, rho) for o in self.occupation_ops])),
            "overlap": np.array([o @ pop for o in self.overlap]),
            "overlap_second_moment": np.array([(o**2) @ pop for o in self.overlap]),
            "top_population": np.array([t @ pop for t in self.top]),
            "sz2": np.array([(s**2) @ pop for s in self.group_sz]) / sizes**2,
            "mx": np.array([_trace_product(sx, rho) for sx in self.group_sx]) / sizes,
            "overlap_distribution": dist,
            "overlap_values": grid / N,
        }


# --------------------------------------------------------------------------------------------- one cutoff
def _use_matrix_free(problem, operator: str, method: str = "auto") -> bool:
    """Whether the sector Liouvillians are applied matrix-free (:mod:`.matrix_free`): ``operator="auto"`` takes
    it for the polaron basis with M ≥ 2 (dense displacement blocks of both modes in every spin flip; at M = 1 the
    assembled sparse sector is ≈ 5× faster per product, measured in docs/lifetime.md) and Arnoldi (or ``auto``)."""
    if operator not in OPERATORS:
        raise ValueError(f"operator must be one of {OPERATORS}, got {operator!r}")
    polaron_basis = getattr(problem, "basis_name", "plain") == "polaron"
    if method == "davidson" and not polaron_basis:
        raise ValueError("method 'davidson' needs basis='polaron' (the matrix-free operator)")
    if operator == "matrix-free":
        if not polaron_basis:
            raise ValueError("operator='matrix-free' needs basis='polaron'")
        if method not in MATRIX_FREE_METHODS:
            raise ValueError(f"operator='matrix-free' supports methods {MATRIX_FREE_METHODS}, got {method!r}")
        return True
    if method == "davidson":
        if operator == "sparse":
            raise ValueError("method 'davidson' needs the matrix-free operator, not operator='sparse'")
        return True
    return operator == "auto" and polaron_basis and problem.n_modes >= 2 and method in MATRIX_FREE_METHODS


def _check_memory(problem: QuantumProblem, method: str, k: int, max_memory: float, operator: str = "auto",
                  sector_size: int | None = None) -> dict:
    """The method, operator and memory of one cutoff; ``sector_size``: the largest sector of the symmetry basis
    used (default: a parity sector, d²/2 + d)."""
    if _use_matrix_free(problem, operator, method):
        from .matrix_free import DAVIDSON_BASIS, davidson_memory, matrix_free_memory

        m = "arnoldi" if method == "arnoldi" else "davidson"
        if m == "arnoldi":
            ncv, floor, memory = max(2 * k + 1, ARNOLDI_NCV_MATRIX_FREE), max(2 * k + 1, ARNOLDI_NCV), matrix_free_memory
        else:  # the search space V and W = LV: two vectors per basis vector
            ncv, floor, memory = max(2 * k + 2, DAVIDSON_BASIS), max(2 * k + 2, DAVIDSON_MIN_BASIS), davidson_memory
        est = memory(problem, ncv, sector_size)
        while est["bytes"] > max_memory and ncv > floor:
            ncv = max(floor, ncv - 10)
            est = memory(problem, ncv, sector_size)
        if est["bytes"] > max_memory:
            raise MemoryError(
                f"the problem needs about {est['bytes'] / 2**30:.1f} GiB ({m}, matrix-free: dimension "
                f"{est['dimension']}, largest sector {est['sector_size']} complex entries, {ncv} "
                f"{'Krylov' if m == 'arnoldi' else 'search-space'} vectors), more than the allowed "
                f"{max_memory / 2**30:.1f} GiB (max_memory); use a smaller Fock cutoff or N_sp, or raise max_memory")
        return {"method": m, "operator": "matrix-free", "krylov_vectors": ncv, **est}
    est = liouville_memory_estimate(problem, sector_size=sector_size)
    size = est["sector_size"]
    m = _resolve_method(method, size, getattr(problem, "basis_name", "plain"))
    vector = 16 if getattr(problem, "basis_name", "plain") == "polaron" else 8
    need = est["liouvillian_bytes"] * 3 + vector * size * (2 * k + 16) * 2
    krylov = vector * size * max(2 * k + 1, ARNOLDI_NCV) * 2  # ARPACK's basis and workspace
    if m == "shift-invert":
        if method == "auto" and need + est["lu_bytes"] > max_memory:
            m = "arnoldi"  # the LU would not fit: Arnoldi needs L and a Krylov basis only
            need += krylov
        else:
            need += est["lu_bytes"]
    elif m == "arnoldi":
        need += krylov
    if need > max_memory:
        raise MemoryError(
            f"the problem needs about {need / 2**30:.1f} GiB ({m}: dimension {est['dimension']}, largest sector "
            f"{size} {'complex' if vector == 16 else 'real'} entries), more than the allowed {max_memory / 2**30:.1f} GiB (max_memory); use a smaller "
            "Fock cutoff or N_sp, or raise max_memory"
        )
    return {"method": m, "operator": "sparse", "bytes": need, **est}


def _steady_from_even(basis: ParityBasis, pairs: SectorEigenpairs, L_even) -> tuple[np.ndarray, float]:
    """The stationary state (symmetry basis, d × d, trace 1) from the eigenpair nearest 0 of the fully symmetric
    sector (the even one of the parity basis): its real representation X (plain basis) or ρ itself, Hermitian
    (polaron basis)."""
    sector = basis.symmetric_sector
    i = int(np.argmin(np.abs(pairs.values)))
    v = pairs.vectors[:, i]
    if basis.is_real:
        v = np.real(v * np.exp(-1j * np.angle(v[np.argmax(np.abs(v))])))
    X = basis.full_matrix(v, sector)
    X = X / np.trace(X)
    if not basis.is_real:
        X = 0.5 * (X + X.conj().T)
    x = basis.sector_vector(X, sector)
    residual = float(np.linalg.norm(L_even @ x) / np.linalg.norm(x))
    return X, residual


def _solve_one(problem: QuantumProblem, *, k: int, method: str, tau, need_left: bool, max_memory: float,
               observables: _Observables | None = None, previous: dict | None = None, operator: str = "auto",
               symmetries: str = "auto") -> dict:
    start = _time.perf_counter()
    basis = symmetry_basis(problem, symmetries)
    mem = _check_memory(problem, method, k, max_memory, operator, sector_size=basis.max_sector_size)
    if mem["operator"] == "matrix-free":
        from .matrix_free import PolaronGenerator, sector_operator

        generator = PolaronGenerator(problem)
        L = {s: sector_operator(basis, s, generator) for s in basis.sectors}
        for op in L.values():
            op.krylov_vectors = mem["krylov_vectors"]
    else:
        L = {s: sector_liouvillian(basis, s) for s in basis.sectors}
    # the symmetric sector's factorisation is dropped at once (the slow modes of M = 1 are odd; an even slow mode
    # gets a new LU in metastable_states); of the others only the gap's sector keeps its LU (left eigenvectors)
    pairs = {}
    for s in basis.sectors:
        v0, v0s = None, None
        if previous is not None and mem["method"] == "arnoldi":  # start from the previous cutoff's slowest mode
            v0 = _prolong(previous, s, basis)
        if previous is not None and mem["method"] == "davidson":  # from all of the previous cutoff's eigenvectors
            v0s = [_prolong(previous, s, basis, j) for j in range(len(previous["pairs"][s].values))]
        pairs[s] = sector_eigenpairs(L[s], k, sector=s, method=mem["method"], tau=tau, v0=v0, v0s=v0s)
        _log.debug("fock %s, %s sector (%s, %d entries): %d products, %.1f s wall", list(problem.fock), s,
                   mem["operator"], L[s].shape[0], pairs[s].matvecs, pairs[s].seconds)
        if s == basis.symmetric_sector:
            pairs[s] = replace(pairs[s], lu=None)
    X_ss, residual = _steady_from_even(basis, pairs[basis.symmetric_sector], L[basis.symmetric_sector])
    obs = (observables or _Observables(problem)).evaluate(basis.to_problem_basis(X_ss))
    if not basis.is_real:
        obs["trace"] = float(np.real(np.trace(X_ss)))
    out = {"problem": problem, "basis": basis, "L": L, "pairs": pairs, "X_ss": X_ss, "residual": residual,
           "observables": obs, "method": mem["method"], "memory": mem, "operator": mem["operator"]}
    if len(basis.sectors) > 2:
        keep = _gap(out)[2]
        out["pairs"] = {s: (p if s == keep else replace(p, lu=None)) for s, p in pairs.items()}
    out["elapsed"] = _time.perf_counter() - start
    return out


def _prolong(run: dict, sector: str, basis: ParityBasis, index: int = 0) -> np.ndarray:
    """The slowest eigenvector of ``sector`` of a run at smaller cutoffs (index 0: the pairs are sorted by
    decreasing real part, so the stationary state or λ₁), zero on the new Fock levels, as a sector vector of
    ``basis`` (same blocks, larger cutoffs). Exact for the part the smaller space holds; used as Arnoldi's start.
    None when the smaller run has no such sector (another symmetry group)."""
    if sector not in run["pairs"]:
        return None
    old_basis: ParityBasis = run["basis"]
    old, new = old_basis.problem, basis.problem
    M = old_basis.to_problem_basis(old_basis.full_matrix(run["pairs"][sector].vectors[:, index], sector))
    dims_old, dims_new = list(old.dims), list(new.dims)
    M = M.reshape(dims_old + dims_old)
    pad = [(0, b - a) for a, b in zip(dims_old, dims_new)]
    M = np.pad(M, pad + pad).reshape(new.dim, new.dim)
    Q = basis.Q
    M = np.asarray(Q.T @ np.asarray(Q.T @ M).T).T  # Qᵀ M Q
    return basis.sector_vector(M, sector)


def first_cutoff(model: DickeModel, basis: str = "plain") -> int:
    """First Fock cutoff of the search: the mean-field retrieval occupation N_sp n_ν (Eq. 12, largest over the
    modes; 0 below threshold) plus six standard deviations of a Poisson distribution, at least 8; in the
    polaron basis (fluctuations only) 6."""
    if basis == "polaron":
        return 6
    from ..theory import retrieval_occupation

    try:
        n = float(np.max(retrieval_occupation(model.g0, model.omega, model.omega_modes, model.kappa))) * model.n_spins
    except ValueError:
        n = 0.0
    return int(max(8, math.ceil(n + 6 * math.sqrt(n) + 4)))


def _next_cutoff(c: int, basis: str = "plain") -> int:
    if basis == "polaron":
        return int(c + 2)
    return int(c + max(4, math.ceil(0.25 * c)))


def _check_symmetries(symmetries: str) -> None:
    if symmetries not in SYMMETRIES:
        raise ValueError(f"symmetries must be one of {SYMMETRIES}, got {symmetries!r}")


def _symmetry_attr(basis: ParityBasis) -> str:
    """The symmetries the sectors use, for a result attribute: "P" or e.g. "P,U2"."""
    return ",".join(("P",) + tuple(basis.symmetries))


def _resolve_basis(model: DickeModel, basis: str) -> str:
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
    if basis == "auto":
        return "polaron" if model.n_spins >= AUTO_POLARON_SPINS else "plain"
    return basis


def _problem(model: DickeModel, basis: str):
    if basis not in BASES or basis == "auto":
        raise ValueError(f"basis must be one of {BASES[:2]}, got {basis!r}")
    problem = build(model, 1, fock=2)
    if basis == "polaron":
        from .polaron import polaron

        problem = polaron(problem)
    return problem


_STEADY_KEYS = ("occupation", "overlap_second_moment", "sz2", "mx", "overlap_distribution")


def _steady_changes(a: dict, b: dict) -> dict:
    """Largest change of every stationary observable the cutoff search watches."""
    return {key: float(np.max(np.abs(a[key] - b[key]))) for key in _STEADY_KEYS}


def _steady_change(a: dict, b: dict) -> float:
    return max(_steady_changes(a, b).values())


def _search(model: DickeModel, *, fock, tol: float, gap_rtol: float, k: int, method: str, tau, max_memory: float,
            max_fock: int, with_gap: bool, basis: str = "plain", fock_start: int | None = None,
            operator: str = "auto", symmetries: str = "auto"):
    """Run at the given cutoff, or enlarge it until the steady-state observables change by ≤ tol (and, with
    ``with_gap``, the gap by ≤ gap_rtol relative). Returns (final run, previous run or None, change, gap change,
    converged flag, note)."""
    problem = _problem(model, basis)
    if fock != "auto":
        run = _solve_one(problem.with_fock(fock), k=k, method=method, tau=tau, need_left=with_gap, max_memory=max_memory,
                         operator=operator, symmetries=symmetries)
        top = float(np.max(run["observables"]["top_population"]))
        converged = top <= tol
        note = "" if converged else (f"the given Fock cutoff {list(run['problem'].fock)} leaves {top:.1e} of the "
                                     f"stationary population on the top level, more than tol = {tol:g}")
        return run, None, top, math.nan, converged, note
    c = first_cutoff(model, basis) if fock_start is None else int(fock_start)
    prev = _strip(_solve_one(problem.with_fock(c), k=k, method=method, tau=tau, need_left=with_gap,
                             max_memory=max_memory, operator=operator, symmetries=symmetries))
    _progress(prev)
    while True:
        c_next = _next_cutoff(c, basis)
        if c_next > max_fock:
            return prev, None, math.nan, math.nan, False, f"the cutoff search reached max_fock = {max_fock}"
        try:
            run = _solve_one(problem.with_fock(c_next), k=k, method=method, tau=tau, need_left=with_gap,
                             max_memory=max_memory, previous=prev, operator=operator, symmetries=symmetries)
            _progress(run)
        except MemoryError as exc:
            return prev, None, math.nan, math.nan, False, f"the cutoff search stopped: {exc}"
        changes = _steady_changes(run["observables"], prev["observables"])
        change = max(changes.values())
        gap_change = math.nan
        if with_gap:
            g1, g0 = _gap(run)[0], _gap(prev)[0]
            gap_change = abs(g1 - g0) / max(abs(g1), 1e-300)
        if _log.isEnabledFor(logging.DEBUG):
            missed = [f"{key} {value:.1e}" for key, value in changes.items() if value > tol]
            _log.debug("fock %s → %s: gap change %.1e (gap_rtol %g), stationary changes above tol = %g: %s",
                       list(prev["problem"].fock), list(run["problem"].fock), gap_change, gap_rtol, tol,
                       ", ".join(missed) or "none")
        if change <= tol and (not with_gap or gap_change <= gap_rtol):
            return run, prev, change, gap_change, True, ""
        prev, c = _strip(run), c_next


def _progress(run: dict) -> None:
    """One DEBUG log line per solved cutoff (logger ``opendicke.quantum.metastability``): long searches show
    where they are without the solver printing."""
    if _log.isEnabledFor(logging.DEBUG):
        lam = _gap(run)[1]
        _log.debug("fock %s: %s, gap %.10e, stationary residual %.1e, %.1f s",
                   list(run["problem"].fock), run["method"], -lam.real, run["residual"], run["elapsed"])


def _strip(run: dict) -> dict:
    """Drop the factorisations of a run kept only for comparison (they can be GiB)."""
    run["pairs"] = {s: replace(p, lu=None) for s, p in run["pairs"].items()}
    return run


def _gap(run: dict) -> tuple[float, complex, str]:
    """Re λ₁ (the largest real part below the stationary 0, over all sectors), λ₁, its sector."""
    sym = run["basis"].symmetric_sector
    cands = []
    for s, pairs in run["pairs"].items():
        for j, lam in enumerate(pairs.values):
            cands.append((lam, s, j))
    i0 = int(np.argmin([abs(c[0]) for c in cands if c[1] == sym]))
    stationary = [c for c in cands if c[1] == sym][i0]
    rest = [c for c in cands if c is not stationary]
    lam, s, _ = max(rest, key=lambda c: c[0].real)
    return float(lam.real), complex(lam), s


def _slowest_mode_check(run: dict, k: int, max_memory: float, symmetries: str) -> dict:
    """Davidson follows the Ritz values with the largest real parts, but it can only find what its search space,
    grown by residuals preconditioned at a real σ, reaches: an oscillating mode far from σ (large |Im λ|, Re λ
    above the reported λ₁) could be missed and the gap overstated (with the older selection of the eigenvalues
    nearest σ this happened below threshold, docs/lifetime.md). Cross-check, independent of Davidson: ARPACK's
    Arnoldi with ``which="LR"`` (the largest real parts), assembled, on the same model at the small cutoff
    :data:`CHECK_FOCK` (cheap; the slow eigenvalues move by a few per cent between it and converged cutoffs). The
    check fails when the slowest nonzero eigenvalue λ_A found there is slower than the reported λ₁ and no reported
    eigenvalue lies within 0.25 |λ_A| + 0.02 of it. Returns {"fock", "eigenvalue": λ_A, "passed"}."""
    problem = run["problem"]
    small = problem.with_fock([min(CHECK_FOCK, int(c)) for c in problem.fock])
    check = _solve_one(small, k=k, method="arnoldi", tau=None, need_left=False, max_memory=max_memory,
                       operator="sparse", symmetries=symmetries)
    _, lam_a, _ = _gap(check)
    gap_re, _, _ = _gap(run)
    found = [complex(v) for p in run["pairs"].values() for v in p.values]
    matched = any(abs(v - lam_a) <= 0.25 * abs(lam_a) + 0.02 for v in found)
    passed = bool(matched or lam_a.real <= gap_re)
    _log.debug("slowest-mode check at fock %s (arnoldi): λ = %s, %s", list(small.fock), lam_a,
               "passed" if passed else "FAILED")
    return {"fock": [int(c) for c in small.fock], "eigenvalue": lam_a, "passed": passed}


def _left_pairs(run: dict, sector: str, *, method: str, tau, v0: np.ndarray | None = None,
                k: int | None = None) -> SectorEigenpairs:
    """Left eigenpairs (of Lᵀ) of a sector, computed once per run (kept in ``run["left"]``). ``v0``: start
    vector, e.g. conj(v) of a right eigenvector v of the wanted eigenvalue (its component along the left
    eigenvector ℓ is vᵀconj(v)/vᵀℓ ≠ 0, where a random start can lack it)."""
    cache = run.setdefault("left", {})
    if sector not in cache or (k is not None and len(cache[sector].values) < k):
        pairs = run["pairs"][sector]
        cache[sector] = sector_eigenpairs(run["L"][sector], k or min(2, len(pairs.values)), sector=sector,
                                          method=run["method"] if method == "auto" else method, tau=tau,
                                          lu=pairs.lu if pairs.method == "shift-invert" else None, transpose=True,
                                          v0=v0)
    return cache[sector]


def _refine_gap(run: dict, *, method: str, tau) -> dict:
    """Replace λ₁ in ``run`` by its two-sided Rayleigh quotient (:func:`two_sided_eigenvalue`) and return the
    estimate's record (value, error, condition, residuals)."""
    _, lam, s = _gap(run)
    pairs = run["pairs"][s]
    j = int(np.argmin(np.abs(pairs.values - lam)))
    others = np.delete(pairs.values, j)
    separation = float(np.min(np.abs(others - lam))) if others.size else 1.0
    # Davidson returns the eigenvalues with the largest real parts: λ₁ is among the first 3 (0, then λ₁ and, for an
    # oscillating mode, its conjugate partner of the same real part, which may come first)
    k = 3 if pairs.method == "davidson" else len(pairs.values)
    for attempt in range(2):
        left = _left_pairs(run, s, method=method, tau=tau, v0=np.conj(pairs.vectors[:, j]), k=k)
        i = int(np.argmin(np.abs(left.values - lam)))
        if abs(left.values[i] - lam) <= 1e-3 * separation:
            break
        run["left"].pop(s)  # ARPACK missed λ₁ on the left (its start had too little of it): once more, wider
        k += 4
    else:
        warnings.warn(f"the left eigenvector of λ₁ = {lam:.6e} was not found (nearest left eigenvalue "
                      f"{left.values[i]:.6e}); the gap is the one-sided Rayleigh quotient", RuntimeWarning,
                      stacklevel=3)
        return {"value": lam, "error": math.nan, "condition": math.nan, "right_residual": float(pairs.residuals[j]),
                "left_residual": math.nan, "one_sided": lam}
    info = two_sided_eigenvalue(run["L"][s], pairs.vectors[:, j], left.vectors[:, i], others)
    values, residuals = pairs.values.copy(), pairs.residuals.copy()
    values[j], residuals[j] = info["value"], info["right_residual"]
    run["pairs"][s] = replace(pairs, values=values, residuals=residuals)
    return info


# --------------------------------------------------------------------------------------------- metastability
def metastable_states(run: dict, n_slow: int | None = None, *, method: str = "auto", tau=None,
                      slow_ratio: float = 10.0) -> dict:
    """Extreme metastable states (Macieszczak et al., PRL 116, 240404 (2016)) from the stationary state and
    the slow eigenmatrices R_k (right) and their left partners O_k (observables, tr(O_k R_l) = δ_kl):
    ρ_v = ρ_ss + Σ_k c_{v,k} R_k with c_v at the vertices of the simplex spanned by the possible values of
    (tr O_k ρ)_k. One slow mode (M = 1): c_± = the extreme eigenvalues of O_1, exactly. Several: the vertices
    are found greedily (extreme eigenvectors of combinations of the O_k, each direction orthogonal to the
    vertices found so far), then refined to the simplex of largest volume (:func:`_largest_simplex`); each state's
    smallest eigenvalue is reported as ``min_eigenvalue``: ≈ 0, negative only by corrections of the order of the
    gap ratio, for well-separated slow modes; clearly negative where a vertex is not a density matrix. The slow modes are the real eigenvalues before the largest drop of |Re λ| by at
    least ``slow_ratio`` (or the first ``n_slow``). Returns {"n_slow", "slow": eigenvalues, "coefficients",
    "observables": per state, "left_residuals"}."""
    basis: ParityBasis = run["basis"]
    cands = []
    for s, pairs in run["pairs"].items():
        for j, lam in enumerate(pairs.values):
            cands.append((complex(lam), s, j))
    cands.sort(key=lambda c: -c[0].real)
    sym = basis.symmetric_sector
    rest = [c for c in cands if abs(c[0]) > 0 and not (c[1] == sym and abs(c[0]) == min(abs(x[0]) for x in cands if x[1] == sym))]
    rest.sort(key=lambda c: -c[0].real)
    if n_slow is None:
        rates = np.array([abs(c[0].real) for c in rest])
        n_slow = 0
        for i in range(len(rates) - 1):
            if rates[i + 1] > slow_ratio * max(rates[i], 1e-300) and all(abs(c[0].imag) < 1e-8 * max(1.0, abs(c[0].real)) + 1e-12 for c in rest[: i + 1]):
                n_slow = i + 1
                break
    slow = rest[:n_slow]
    oscillating = [c[0] for c in slow if abs(c[0].imag) > 1e-8 * max(1.0, abs(c[0].real)) + 1e-12]
    if oscillating:
        raise ValueError(f"the {n_slow} slowest modes include complex eigenvalues {oscillating}: an oscillating pair "
                         "is not a metastable manifold (Macieszczak et al. need real slow eigenvalues); choose n_slow "
                         "so that only real eigenvalues are slow")
    out = {"n_slow": n_slow, "slow": np.array([c[0] for c in slow]), "coefficients": np.zeros((0, n_slow)),
           "observables": [], "left_residuals": np.zeros(n_slow)}
    if n_slow == 0:
        return out
    R, O, left_res = [], [], []
    for lam, s, j in slow:
        r = run["pairs"][s].vectors[:, j]
        if basis.is_real:
            r = np.real(r)
        left = _left_pairs(run, s, method=method, tau=tau)
        # the left eigenvector of lam: the one with the nearest eigenvalue
        i = int(np.argmin(np.abs(left.values - lam)))
        ell = left.vectors[:, i]
        if basis.is_real:
            ell = np.real(ell)
        left_res.append(float(left.residuals[i]))
        Rk = _hermitian_phase(basis.density(r, s))
        Ok = _hermitian_phase(basis.observable(ell, s))
        R.append(Rk)
        O.append(Ok / np.real(np.sum(Ok * Rk.T)))  # tr(O_k R_k) = 1
    rho_ss = (_hermitian_from_real(basis.to_problem_basis(run["X_ss"])) if basis.is_real
              else basis.to_problem_basis(run["X_ss"]))

    def extreme(weights):
        A = sum(w * o for w, o in zip(weights, O))
        vals, vecs = np.linalg.eigh(0.5 * (A + A.conj().T))
        points = []
        for idx in (0, -1):
            psi = vecs[:, idx]
            points.append(np.array([float(np.real(np.vdot(psi, o @ psi))) for o in O]))
        return points

    vertices = extreme(np.eye(n_slow)[0])
    rng = np.random.default_rng(0)
    while len(vertices) < n_slow + 1:
        base = np.array(vertices)
        D = (base[1:] - base[0]).T
        Qd, _ = np.linalg.qr(D)
        w = rng.standard_normal(n_slow)
        w -= Qd @ (Qd.T @ w)
        cand = extreme(w)
        dist = [np.linalg.norm((p - base[0]) - Qd @ (Qd.T @ (p - base[0]))) for p in cand]
        vertices.append(cand[int(np.argmax(dist))])
    coeff = _largest_simplex(np.array(vertices), extreme)
    # the normalisation tr(O_k R_k) = 1 (the coefficient scale cancels in ρ_ss + c R but fixes the signs)
    ev = _Observables(run["problem"])
    states = []
    for c in coeff:
        rho = rho_ss + sum(ck * Rk for ck, Rk in zip(c, R))
        state = ev.evaluate(rho)
        # exact for one slow mode; the greedy vertices of several need not be density matrices: say so
        state["min_eigenvalue"] = float(np.linalg.eigvalsh(0.5 * (rho + rho.conj().T))[0])
        states.append(state)
    out.update({"coefficients": coeff, "observables": states, "left_residuals": np.array(left_res)})
    return out


def _largest_simplex(coeff: np.ndarray, extreme, sweeps: int = 50, rtol: float = 1e-12) -> np.ndarray:
    """Refine the greedy vertices to the simplex of largest volume inside the set of attainable (tr O_k ρ)_k:
    coordinate ascent, each vertex moved to the support point along the outward normal of the facet of the
    others (the volume is that facet's area times the vertex's distance from it). Deterministic and symmetric
    where the set is (a ± pair of vertices comes out as a ± pair); for one slow mode the extreme eigenvalues of
    O_1 are already the answer."""
    n = coeff.shape[1]
    if n < 2:
        return coeff
    coeff = coeff.copy()
    for _ in range(sweeps):
        moved = 0.0
        for i in range(n + 1):
            others = np.delete(coeff, i, axis=0)
            Q, _ = np.linalg.qr((others[1:] - others[0]).T, mode="complete")
            normal = Q[:, -1]
            height = float(normal @ (coeff[i] - others[0]))
            if height < 0:
                normal, height = -normal, -height
            best = max(extreme(normal), key=lambda p: float(normal @ (p - others[0])))
            if float(normal @ (best - others[0])) > height * (1 + rtol):
                moved = max(moved, float(np.linalg.norm(best - coeff[i])))
                coeff[i] = best
        if moved <= 1e-13 * max(1.0, float(np.abs(coeff).max())):
            break
    return coeff


# --------------------------------------------------------------------------------------------- datasets
class _NoGrid:
    dims: tuple = ()


def _base_dataset(problem: QuantumProblem, data: dict, coords: dict, kind: str) -> xr.Dataset:
    from ..results import UNITS_OURS, _model_attrs

    g = problem.grouping
    coords = dict(coords)
    coords.update({"pattern": ("pattern", np.arange(1, problem.n_modes + 1)),
                   "group": ("group", np.arange(1, g.n_groups + 1)), "group_size": ("group", g.sizes)})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(_model_attrs(problem.model, _NoGrid()))
    ds.attrs.update({"kind": kind, "units": UNITS_OURS,
                     "frame": "gauged (pi rotation about x on spins with G[1,j] = -1)",
                     "blocks": "reduction groups, maximal-spin sector each (build(model, 1))",
                     "dimension": problem.dim})
    return ds


def _steady_vars(obs: dict) -> dict:
    return {
        "occupation": ("pattern", obs["occupation"]),
        "overlap": ("pattern", obs["overlap"]),
        "overlap_second_moment": ("pattern", obs["overlap_second_moment"]),
        "overlap_distribution": (("pattern", "overlap_value"), obs["overlap_distribution"]),
        "top_population": ("pattern", obs["top_population"]),
        "sz2": ("group", obs["sz2"]),
        "mx": ("group", obs["mx"]),
    }


def _check_model(model: DickeModel, fock, tol: float):
    if model.thermodynamic_limit:
        raise ValueError("the exact steady state needs a finite n_spins (give n_spins or patterns)")
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if np.all(np.asarray(model.kappa) == 0):
        raise ValueError("kappa: all loss rates are 0, the model has no unique steady state")


def steady_state(model: DickeModel, *, fock="auto", tol: float = DEFAULT_TOL, method: str = "auto", tau=None,
                 max_memory: float = DEFAULT_MAX_MEMORY, max_fock: int = 200, basis: str = "plain",
                 fock_start: int | None = None, operator: str = "auto", symmetries: str = "auto") -> xr.Dataset:
    """The exact stationary state of the finite model in the reduced basis (kind ``"quantum_steady_state"``).

    ``fock="auto"`` enlarges the cutoff (from :func:`first_cutoff`) until occupations, ⟨ξ_μ²⟩, ⟨S_z²⟩/n_k²,
    ⟨S_x⟩/n_k and the overlap distribution change by ≤ ``tol``; a given ``fock`` is checked by the stationary
    population of its top level (> ``tol`` gives a :class:`FockCutoffWarning` and ``fock_converged = False``).
    The result carries the residual ‖L x‖/‖x‖ (real representation) and the trace.

    ``basis="polaron"``: the conditional-displacement basis of :mod:`.polaron` (each spin configuration m with the
    modes displaced by their stationary field β(m)); ``fock`` then counts the fluctuation levels around it, which
    do not grow with N_sp (6–10 where the plain basis needs N_sp n_ν + 6√(N_sp n_ν)). ``fock_start``: first
    cutoff of the search (default :func:`first_cutoff`), e.g. the converged one of a neighbouring N_sp.
    ``operator``: how the sector Liouvillians are applied, ``"sparse"`` (assembled CSR), ``"matrix-free"``
    (:mod:`.matrix_free`, polaron basis, Arnoldi only) or ``"auto"`` (matrix-free for the polaron basis with M ≥ 2).
    ``symmetries``: ``"auto"`` splits ρ by P and every commuting extra symmetry of the reduced model
    (:func:`.liouville.symmetry_basis`: M ≥ 2 with equal blocks or equal modes), ``"parity"`` by P alone; the
    attribute ``symmetries`` lists those used.
    """
    _check_model(model, fock, tol)
    _check_symmetries(symmetries)
    basis = _resolve_basis(model, basis)
    start = _time.perf_counter()
    run, prev, change, _, converged, note = _search(model, fock=fock, tol=tol, gap_rtol=math.inf, k=2, method=method,
                                                     tau=tau, max_memory=max_memory, max_fock=max_fock, with_gap=False,
                                                     basis=basis, fock_start=fock_start, operator=operator,
                                                     symmetries=symmetries)
    if not converged:
        warnings.warn(note, FockCutoffWarning, stacklevel=2)
    problem, obs = run["problem"], run["observables"]
    data = _steady_vars(obs)
    data.update({"fock": ("pattern", np.array(problem.fock)), "residual": run["residual"], "trace": obs["trace"],
                 "fock_change": change, "fock_converged": bool(converged)})
    ds = _base_dataset(problem, data, {"overlap_value": ("overlap_value", obs["overlap_values"])}, "quantum_steady_state")
    ds.attrs.update({"method": run["method"], "tol": tol, "elapsed_seconds": _time.perf_counter() - start,
                     "fock_note": note, "basis": basis, "symmetries": _symmetry_attr(run["basis"])})
    return ds


def lifetime(model: DickeModel, *, fock="auto", tol: float = DEFAULT_TOL, gap_rtol: float = 1e-3,
             eigenvalues: int = 4, method: str = "auto", tau=None, max_memory: float = DEFAULT_MAX_MEMORY,
             max_fock: int = 200, metastable: bool = True, basis: str = "plain",
             fock_start: int | None = None, operator: str = "auto", symmetries: str = "auto") -> xr.Dataset:
    """Low Liouvillian spectrum, gap, lifetime and metastable states of the finite model (kind ``"lifetime"``).

    ``eigenvalues`` per parity sector are computed (with residuals) and listed together sorted by decreasing
    real part, the stationary 0 first. ``gap`` = −Re λ₁ (λ₁ the next one), ``lifetime`` = 1/gap. With
    ``fock="auto"`` the cutoff is enlarged until the steady-state observables change by ≤ ``tol`` *and* the gap
    by ≤ ``gap_rtol`` (relative); ``gap_converged``/``fock_converged`` say whether that was reached (a
    :class:`FockCutoffWarning` otherwise, never silently). ``metastable``: the extreme metastable states
    (:func:`metastable_states`), with dims (metastable, pattern). ``basis``: ``"plain"`` (Dicke ⊗ Fock, real
    representation) or ``"polaron"`` (see :func:`steady_state`; complex sectors, cutoff independent of N_sp), or
    ``"auto"`` (polaron from :data:`AUTO_POLARON_SPINS` spins on; the result's ``basis`` attribute says which).
    The gap is the two-sided Rayleigh quotient of λ₁ (:func:`two_sided_eigenvalue`); ``gap_error`` is its estimated
    error from the eigen-solver (the cutoff's share is ``gap_change``), ``gap_condition`` the condition number of λ₁.
    ``fock_start``: first cutoff of the search, ``operator``: sparse or matrix-free (see :func:`steady_state`).
    ``symmetries``: ``"auto"`` (P and every commuting extra symmetry found, :func:`.liouville.symmetry_basis`) or
    ``"parity"``; ``eigenvalues`` are then computed per symmetry sector. ``eigenvalue_sector`` and ``gap_sector``
    keep the parity ("even"/"odd"); ``eigenvalue_symmetry_sector`` and ``gap_symmetry_sector`` name the full sector
    (e.g. "odd,U2-"), the attribute ``symmetries`` the extra symmetries used.
    """
    _check_model(model, fock, tol)
    _check_symmetries(symmetries)
    if eigenvalues < 2:
        raise ValueError(f"eigenvalues must be ≥ 2 (per parity sector), got {eigenvalues}")
    basis = _resolve_basis(model, basis)
    start = _time.perf_counter()
    run, prev, change, gap_change, converged, note = _search(
        model, fock=fock, tol=tol, gap_rtol=gap_rtol, k=eigenvalues, method=method, tau=tau, max_memory=max_memory,
        max_fock=max_fock, with_gap=True, basis=basis, fock_start=fock_start, operator=operator,
        symmetries=symmetries)
    if not converged:
        warnings.warn(note or "the Fock cutoff was not shown to converge the gap", FockCutoffWarning, stacklevel=2)
    check = _slowest_mode_check(run, eigenvalues, max_memory, symmetries) if run["method"] == "davidson" else None
    if check is not None and not check["passed"]:
        redo = method == "auto"
        if redo:
            method = "arnoldi"  # also for the left eigenvectors and the metastable states below
        warnings.warn(f"the Arnoldi cross-check at fock {check['fock']} finds a mode slower than the reported gap, "
                      f"λ = {check['eigenvalue']:.4g}, which Davidson did not list: "
                      + ("recomputed with method='arnoldi'" if redo else "the gap may be overstated; run with "
                         "method='arnoldi'"), SpectrumWarning, stacklevel=2)
        if redo:  # auto chose Davidson: redo the search with Arnoldi (an unpreconditioned Krylov space)
            run, prev, change, gap_change, converged, note = _search(
                model, fock=fock, tol=tol, gap_rtol=gap_rtol, k=eigenvalues, method=method, tau=tau,
                max_memory=max_memory, max_fock=max_fock, with_gap=True, basis=basis, fock_start=fock_start,
                operator=operator, symmetries=symmetries)
            if not converged:
                warnings.warn(note or "the Fock cutoff was not shown to converge the gap", FockCutoffWarning,
                              stacklevel=2)
    refined = _refine_gap(run, method=method, tau=tau)
    problem, obs = run["problem"], run["observables"]
    vals, secs, res = [], [], []
    for s, pairs in run["pairs"].items():
        vals += list(pairs.values)
        secs += [s] * len(pairs.values)
        res += list(pairs.residuals)
    vals = np.array(vals)
    order = np.lexsort((np.abs(vals.imag), -np.round(vals.real, 12)))
    sb = run["basis"]
    i0 = int(np.argmin(np.where(np.array(secs) == sb.symmetric_sector, np.abs(vals), np.inf)))
    order = [i0] + [i for i in order if i != i0]
    vals, secs, res = vals[order], np.array(secs)[order], np.array(res)[order]
    parities = np.array([sb.sector_parity(s) for s in secs])
    gap_re, lam1, sector1 = _gap(run)
    gap = -gap_re
    data = _steady_vars(obs)
    data.update({
        "eigenvalue_real": ("eigenvalue", vals.real), "eigenvalue_imag": ("eigenvalue", vals.imag),
        "eigenvalue_sector": ("eigenvalue", parities.astype(str)), "eigenvalue_residual": ("eigenvalue", res),
        "eigenvalue_symmetry_sector": ("eigenvalue", secs.astype(str)),
        "gap": gap, "lifetime": (1.0 / gap) if gap > 0 else math.inf, "gap_sector": sb.sector_parity(sector1),
        "gap_symmetry_sector": sector1,
        "gap_change": gap_change, "gap_converged": bool(converged),
        "gap_error": refined["error"], "gap_condition": refined["condition"],
        "gap_left_residual": refined["left_residual"],
        "fock": ("pattern", np.array(problem.fock)), "residual": run["residual"], "trace": obs["trace"],
        "fock_change": change, "fock_converged": bool(converged),
    })
    coords = {"overlap_value": ("overlap_value", obs["overlap_values"]), "eigenvalue": ("eigenvalue", np.arange(len(vals)))}
    if metastable:
        ms = metastable_states(run, method=method, tau=tau)
        n_states = len(ms["observables"])
        data["n_slow"] = ms["n_slow"]
        if n_states:
            data["metastable_overlap"] = (("metastable", "pattern"), np.array([o["overlap"] for o in ms["observables"]]))
            data["metastable_occupation"] = (("metastable", "pattern"), np.array([o["occupation"] for o in ms["observables"]]))
            data["metastable_trace"] = ("metastable", np.array([o["trace"] for o in ms["observables"]]))
            data["metastable_min_eigenvalue"] = ("metastable", np.array([o["min_eigenvalue"] for o in ms["observables"]]))
            data["metastable_left_residual"] = ("slow", ms["left_residuals"])
            coords["metastable"] = ("metastable", np.arange(1, n_states + 1))
    ds = _base_dataset(problem, data, coords, "lifetime")
    ds.attrs.update({"method": run["method"], "tol": tol, "gap_rtol": gap_rtol, "fock_note": note, "basis": basis,
                     "operator": run["operator"], "symmetries": _symmetry_attr(sb),
                     "sectors": list(sb.sectors), "sector_sizes": [int(sb.sector_size(s)) for s in sb.sectors],
                     "sector_matvecs": [int(run["pairs"][s].matvecs) for s in sb.sectors],
                     "sector_seconds": [float(run["pairs"][s].seconds) for s in sb.sectors],
                     "elapsed_seconds": _time.perf_counter() - start,
                     "matvecs": int(sum(p.matvecs for p in run["pairs"].values()))})
    if check is not None:
        ds.attrs.update({"slowest_mode_check": ("passed" if check["passed"] else
                                                "failed (recomputed with arnoldi)" if run["method"] == "arnoldi" else
                                                "failed"),
                         "slowest_mode_check_fock": check["fock"],
                         "slowest_mode_check_eigenvalue": [check["eigenvalue"].real, check["eigenvalue"].imag]})
    return ds


def stationary_density_matrix(problem: QuantumProblem, *, method: str = "auto", tau=None) -> tuple[np.ndarray, float]:
    """The stationary ρ (dense, the problem's own Dicke ⊗ Fock basis) at the problem's cutoff, and the residual
    ‖L x‖/‖x‖ of its real representation (even sector)."""
    basis = parity_basis(problem)
    L = sector_liouvillian(basis, "even")
    pairs = sector_eigenpairs(L, 2, sector="even", method=method, tau=tau)
    X, residual = _steady_from_even(basis, pairs, L)
    if not basis.is_real:  # polaron basis: ρ itself, in the polaron basis
        return basis.to_problem_basis(X), residual
    return _hermitian_from_real(basis.to_problem_basis(X)), residual


def _register_kinds():
    from ..results import register_kind

    register_kind("quantum_steady_state", variables=("occupation", "overlap", "overlap_second_moment",
                  "overlap_distribution", "residual", "trace", "fock", "fock_converged"), dims=("pattern", "group"),
                  attrs=("method", "tol"), description="quantum.steady_state")
    register_kind("lifetime", variables=("eigenvalue_real", "eigenvalue_imag", "eigenvalue_residual", "gap", "lifetime",
                  "gap_converged", "fock", "residual"), dims=("pattern", "eigenvalue"), attrs=("method", "tol"),
                  description="quantum.lifetime")


_register_kinds()
