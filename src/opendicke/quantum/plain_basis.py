"""The plain basis (Dicke ⊗ Fock): its engines, its first cutoff and growth rule, as a :class:`~.basis.Basis`.

A truncation of this basis is the number of Fock levels per mode, (n_1, …, n_M) (``fock``: levels 0 … n_μ − 1);
the large spins are kept whole (maximal-spin sector of every block). The first cutoff comes from the mean-field
peak boson number, and it grows by the decay of the Fock tail (:func:`_next_fock`).

Engines (``method`` of :func:`propagate`):

``"chebyshev"``
    The compiled real-representation kernel with one Chebyshev expansion of the time-independent Liouvillian
    (:mod:`.plain`), the default.
``"mesolve"``
    QuTiP's ``MESolver`` with the DOP853 integrator. The dynamics is limited by stability (the fast
    Fock/coupling frequencies of the top levels), not by accuracy, so an explicit 8th-order method at
    QuTiP's default tolerances is accurate to ~1e-12 in ξ (measurements: docs/exact-dynamics.md).
``"expm"``
    ``scipy.sparse.linalg.expm_multiply`` with the sparse Liouvillian: the exact propagator to double
    precision, interval by interval; a tight reference.
``"trajectories"``
    Quantum-jump trajectories on the compiled ket kernels (:mod:`.trajectories`: Chebyshev steps of H_eff
    with dense output, jump times to ~1e-14), with error bars; the exact no-jump branch is treated as its own
    stratum, so the error bars are honest at early times, when few trajectories have jumped. What
    ``method="auto"`` falls back to beyond the memory budget.
``"mcsolve"``
    The same estimator on QuTiP's ``mcsolve`` trajectories (a slower reference).
"""

from __future__ import annotations

import time as _time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .basis import Basis
from .options import METHODS, QuantumOptions
from .problem import QuantumProblem
from .result import Propagation, _expectations, _split_observables

__all__ = ["PlainBasis", "propagate", "MethodWarning", "master_equation_memory", "choose_method"]

#: Default dimension limits of the cutoff search per engine (the Chebyshev run is limited by the memory budget).
_MAX_DIM = {"chebyshev": 10**9, "mesolve": 1500, "expm": 1500, "mcsolve": 200_000, "trajectories": 200_000}
#: The trajectory engines (the others integrate the master equation).
TRAJECTORY_METHODS = ("trajectories", "mcsolve")


def _liouvillian(problem: QuantumProblem) -> sp.csr_matrix:
    """Row-major vectorised Liouvillian: vec(ρ) = ρ.ravel(), L vec(ρ) = vec(Kρ + ρK† + Σ c ρ c†)."""
    d = problem.dim
    H = problem.hamiltonian
    K = -1j * H
    for c in problem.collapse_operators:
        K = K - 0.5 * (c.getH() @ c)
    K = K.tocsr()
    eye = sp.identity(d, dtype=complex, format="csr")
    L = sp.kron(K, eye, format="csr") + sp.kron(eye, K.conj(), format="csr")
    for c in problem.collapse_operators:
        L = L + sp.kron(c, c.conj(), format="csr")
    return L.tocsr()


def propagate(
    problem: QuantumProblem,
    times: Sequence[float],
    *,
    method: str = "chebyshev",
    atol: float = 1e-8,
    rtol: float = 1e-6,
    squares: bool = False,
    tail: int = 3,
    ntraj: int = 500,
    seed: int | None = None,
    progress: Callable[[float], None] | None = None,
    threads: int = 1,
) -> Propagation:
    """Run the dynamics of ``problem`` and record every observable of :meth:`QuantumProblem.observables`
    at ``times`` (the first time is the initial state).

    ``method``: ``"chebyshev"`` (the compiled real-representation kernel with one Chebyshev expansion,
    :mod:`.plain`; ``atol`` bounds the series terms, ``threads`` the numba threads; with ``"trajectories"``
    the number of trajectories run at once), ``"mesolve"``,
    ``"expm"`` (master equation), ``"trajectories"`` (``ntraj`` quantum-jump trajectories on the compiled
    ket kernels, seeded by ``seed``; ``atol`` bounds the no-jump propagation's error per unit time; the values
    are trajectory means and ``errors`` their standard errors) or ``"mcsolve"`` (the same from QuTiP's
    ``mcsolve``). ``squares`` adds S_{a,k}² (for E_N); ``tail`` records the populations
    of that many Fock levels below the top (for :meth:`Propagation.tail_ratio`). ``progress`` is called with
    the fraction of the work done (after every output time, or every batch of trajectories).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("times must be a strictly increasing list of finite times")
    diag_ops, full_ops = _split_observables(problem, squares, tail)
    d = problem.dim
    psi = problem.initial_ket
    rho = np.outer(psi, psi.conj())
    records = [_expectations(rho, diag_ops, full_ops)]
    span = t[-1] - t[0] if t.size > 1 else 1.0
    start = _time.perf_counter()
    if method in TRAJECTORY_METHODS:
        return _trajectories(problem, t, atol, rtol, squares, tail, ntraj, seed, progress, engine=method,
                             threads=threads)
    if method == "chebyshev":
        from .plain import propagate_chebyshev

        return propagate_chebyshev(problem, t, tol=atol, squares=squares, tail=tail, threads=threads, progress=progress)
    if method == "mesolve":
        import qutip

        q = problem.to_qutip(squares=False)
        solver = qutip.MESolver(
            q.hamiltonian, q.collapse_operators,
            options={"method": "dop853", "atol": atol, "rtol": rtol, "nsteps": 10**8, "progress_bar": False},
        )
        solver.start(q.rho0, t[0])
        for ti in t[1:]:
            state = solver.step(ti)
            records.append(_expectations(state.full(), diag_ops, full_ops))
            if progress is not None:
                progress((ti - t[0]) / span)
    else:
        from scipy.sparse.linalg import expm_multiply

        L = _liouvillian(problem)
        vec = rho.ravel()
        for t0, t1 in zip(t[:-1], t[1:]):
            vec = expm_multiply(L * (t1 - t0), vec)
            records.append(_expectations(vec.reshape(d, d), diag_ops, full_ops))
            if progress is not None:
                progress((t1 - t[0]) / span)
    elapsed = _time.perf_counter() - start
    values = {name: np.array([r[name] for r in records]) for name in records[0]}
    return Propagation(problem=problem, times=t, values=values, elapsed=elapsed, method=method)


#: Below this many jumped trajectories the stratified error bar is floored (see :meth:`_Strata.estimate`).
FEW_JUMPED = 30


@dataclass(frozen=True)
class _Strata:
    """Exact no-jump branch of the trajectories: with p0(t) the probability of no jump up to t (the squared
    norm of the unnormalised no-jump state) and x0(t) its expectation values, the master-equation value is
    ⟨x⟩(t) = p0 x0 + (1 − p0) E[x(t) | a jump before t]; only the second term is sampled (stratified
    sampling), so early times, where few trajectories have jumped, get honest error bars instead of zero."""

    jumped: np.ndarray  # (ntraj, T) bool: the trajectory jumped at or before t
    p0: np.ndarray  # (T,)
    nojump: dict  # name -> (T,) expectation values on the normalised no-jump state
    bounds: dict  # name -> bound on |x − x0| (2‖O‖), used where fewer than two trajectories have jumped

    def estimate(self, samples: np.ndarray, x0: np.ndarray, bound: float | None = None):
        """(mean, standard error) over time from per-trajectory samples (ntraj, T)."""
        J = self.jumped
        n = J.sum(axis=0)
        w = 1.0 - self.p0
        with np.errstate(invalid="ignore", divide="ignore"):
            cond_mean = np.where(n > 0, np.sum(np.where(J, samples, 0), axis=0) / np.maximum(n, 1), x0)
            dev = np.where(J, samples - cond_mean, 0)
            var = lambda d: np.sum(d**2, axis=0) / np.maximum(n - 1, 1) / np.maximum(n, 1)  # noqa: E731
            err = np.sqrt(var(np.real(dev)))
            if np.iscomplexobj(samples):
                err = err + 1j * np.sqrt(var(np.imag(dev)))
        if bound is None:  # empirical range of the jumped samples
            bound = float(np.max(np.abs(np.where(J, samples - x0, 0)), initial=0.0)) or np.nan
        # With a handful of jumped trajectories their sample spread is itself a noisy estimate (measured: 10 of
        # 1500 jumped gave an error bar 8x too small), so below FEW_JUMPED the bar is at least the largest standard
        # error a quantity within ±bound/2 can have; below two it is the bound itself.
        floor = np.where(n < 2, bound, np.where(n < FEW_JUMPED, 0.5 * bound / np.sqrt(np.maximum(n, 1)), 0.0))
        err = np.maximum(np.real(err), floor) + (1j * np.maximum(np.imag(err), floor) if np.iscomplexobj(samples) else 0)
        mean = self.p0 * x0 + w * cond_mean
        return mean, w * err


def _nojump_branch(problem: QuantumProblem, t, ops: dict):
    """p0(t) and the expectation values on the normalised no-jump state (exact propagator expm_multiply)."""
    from scipy.sparse.linalg import expm_multiply

    K = -1j * problem.hamiltonian
    for c in problem.collapse_operators:
        K = K - 0.5 * (c.getH() @ c)
    K = K.tocsc()
    psi = problem.initial_ket.copy()
    states = [psi]
    for t0, t1 in zip(t[:-1], t[1:]):
        psi = expm_multiply(K * (t1 - t0), psi)
        states.append(psi)
    states = np.array(states)  # (T, d)
    p0 = np.real(np.sum(np.abs(states) ** 2, axis=1))
    unit = states / np.sqrt(p0)[:, None]
    values = {name: np.einsum("ti,ti->t", unit.conj(), (op @ unit.T).T) for name, op in ops.items()}
    return np.minimum(p0, 1.0), values


def _op_bound(op: sp.spmatrix) -> float:
    """2‖O‖ bounded by the max row sum: no two states' ⟨O⟩ differ by more."""
    return float(2.0 * np.max(np.abs(op).sum(axis=1))) if op.nnz else 0.0


def _trajectories(problem, t, atol, rtol, squares, tail, ntraj, seed, progress, engine="mcsolve",
                  threads=1) -> Propagation:
    """Quantum-jump trajectories (``engine``: ``"trajectories"``, the compiled engine of :mod:`.trajectories`,
    or ``"mcsolve"``, QuTiP's, in batches so that progress can be reported); averaged with the exact no-jump
    branch as a separate stratum (see :class:`_Strata`)."""
    if isinstance(ntraj, bool) or int(ntraj) != ntraj or ntraj < 2:
        raise ValueError(f"ntraj must be an integer ≥ 2 (error bars need two trajectories), got {ntraj!r}")
    ntraj = int(ntraj)
    ops = dict(problem.observables(squares, tail))
    stats = None
    if engine == "trajectories":
        from . import trajectories as engine_module

        start = _time.perf_counter()
        kets = engine_module.ket_problem(problem.hamiltonian, problem.collapse_operators, problem.initial_ket, ops)
        runs, first_jump, stats = engine_module.sample(kets, t, ntraj, seed, tol=atol, progress=progress,
                                                       threads=threads)
        p0, nojump = engine_module.nojump_branch(kets, t, tol=atol)
        elapsed = _time.perf_counter() - start
        runs = {name: runs[name] for name in ops}
    else:
        runs, first_jump, p0, nojump, elapsed = _mcsolve_runs(problem, ops, t, atol, rtol, ntraj, seed, progress)
    strata = _Strata(
        jumped=np.asarray(first_jump)[:, None] <= t[None, :], p0=p0, nojump=nojump,
        bounds={name: _op_bound(op) for name, op in ops.items()},
    )
    values, errors = {}, {}
    for name, v in runs.items():
        values[name], errors[name] = strata.estimate(v, nojump[name], strata.bounds[name])
    return Propagation(problem=problem, times=t, values=values, elapsed=elapsed, method=engine,
                       errors=errors, runs=runs, ntraj=ntraj, strata=strata, stats=stats)


def _mcsolve_runs(problem, ops, t, atol, rtol, ntraj, seed, progress):
    """Per-trajectory values, first jump times and the no-jump branch from QuTiP's ``mcsolve``."""
    import qutip

    q = problem.to_qutip(squares=False)
    e_ops = {name: qutip.Qobj(op, dims=q.hamiltonian.dims) for name, op in ops.items()}
    seeds = np.random.SeedSequence(seed).spawn(ntraj)
    batch = max(1, -(-ntraj // 10))
    runs = {name: [] for name in e_ops}
    first_jump = []
    start = _time.perf_counter()
    done = 0
    while done < ntraj:
        n = min(batch, ntraj - done)
        res = qutip.mcsolve(
            q.hamiltonian, q.psi0, t, q.collapse_operators, e_ops=e_ops, ntraj=n, seeds=seeds[done:done + n],
            options={"keep_runs_results": True, "progress_bar": False, "atol": atol, "rtol": rtol, "map": "serial"},
        )
        for name in e_ops:
            runs[name].append(np.asarray(res.runs_e_data[name]).reshape(n, t.size))
        first_jump += [float(c[0]) if len(c) else np.inf for c in res.col_times]
        done += n
        if progress is not None:
            progress(done / ntraj)
    p0, nojump = _nojump_branch(problem, t, ops)
    elapsed = _time.perf_counter() - start
    runs = {name: np.concatenate(v, axis=0) for name, v in runs.items()}
    return runs, first_jump, p0, nojump, elapsed


def _initial_fock(peak_occupation: np.ndarray) -> np.ndarray:
    """First guess from the mean-field peak number of bosons per mode (n = N_sp · occupation)."""
    n = np.maximum(peak_occupation, 0.0)
    return np.ceil(n + 4.0 * np.sqrt(n + 1.0) + 4.0).astype(int)


# Measured (M = 1, pattern 1, g0 = 1, t ≤ 10, N_sp = 4, 8, 16): the error of a run in ξ and occupations is
# 8-11 × its top-level population (the truncation indicator). Used only to *choose* the next cutoff; acceptance is always by the
# measured change between two cutoffs.
_ERROR_PER_TOP = 10.0


def _next_fock(run: Propagation, tol: float) -> np.ndarray:
    """Next cutoff per mode: enough levels that the predicted top population (from the tail decay) is
    ≤ tol / (4·_ERROR_PER_TOP); at least +2 levels (+1 for modes whose top level is already negligible)."""
    fock = np.asarray(run.problem.fock)
    top = run.truncation()
    ratio = run.tail_ratio()
    step = np.empty_like(fock)
    for mu, (c, p, q) in enumerate(zip(fock, top, ratio)):
        target = tol / (4.0 * _ERROR_PER_TOP)
        if p <= target / 100:
            step[mu] = 1
        elif not np.isfinite(q) or q >= 0.9:  # flat tail: the cutoff is far too small
            step[mu] = max(3, int(np.ceil(0.5 * c)))
        elif p <= target:
            step[mu] = 2
        else:
            need = int(np.ceil(np.log(target / p) / np.log(max(q, 1e-3))))
            step[mu] = int(np.clip(need, 2, max(3, c)))  # at most doubling per step
    return fock + step


class MethodWarning(UserWarning):
    """``method="auto"`` could not use the exact master equation (it does not fit the memory budget)."""


def master_equation_memory(method: str, dim: int, n_factors: int = 2) -> int:
    """Bytes a master-equation run needs at Hilbert-space dimension ``dim`` (state, work arrays, operators):
    the Chebyshev run holds five real d × d arrays plus row margins (:func:`~.plain.chebyshev_memory`); QuTiP's
    DOP853 (``"mesolve"``) about 13 complex ones (state, stages) and the sparse Liouvillian (≈ 10 entries per row
    of d², 24 bytes each); ``"expm"`` the Liouvillian and a few complex vectors of d²; trajectories a few kets per
    trajectory."""
    from .plain import chebyshev_memory

    d = int(dim)
    if method == "chebyshev":
        return chebyshev_memory(d, n_factors)
    if method == "mesolve":
        return 13 * 16 * d * d + 24 * 10 * d * d
    if method == "expm":
        return 8 * 16 * d * d + 24 * 10 * d * d
    return 64 * 16 * d + 24 * 10 * d


@dataclass(frozen=True)
class _Budget:
    method: str
    memory: float
    n_factors: int

    def estimate(self, dim: int) -> int:
        return master_equation_memory(self.method, dim, self.n_factors)

    def fits(self, dim: int) -> bool:
        return self.estimate(dim) <= self.memory


def choose_method(opts: QuantumOptions, dim: int, n_factors: int, fixed: bool) -> str:
    """The engine for a plain-basis run whose (first) dimension is ``dim``: ``method="auto"`` takes the
    Chebyshev master equation when it fits the memory budget, trajectories (with a :class:`MethodWarning`)
    when not; an explicit master-equation method that does not fit is an error."""
    gib = 2**30
    if opts.method == "auto":
        need = master_equation_memory("chebyshev", dim, n_factors)
        if need <= opts.memory:
            return "chebyshev"
        warnings.warn(
            f"the master equation at dimension {dim} needs {need / gib:.3g} GiB > the memory budget "
            f"{opts.memory / gib:.3g} GiB (memory=): using quantum trajectories instead (statistical errors in "
            f"the *_error variables); raise memory=, or use a frame (frame='comoving' or 'gaussian') for large N_sp",
            MethodWarning, stacklevel=3)
        return "trajectories"
    if opts.method not in TRAJECTORY_METHODS and fixed:
        need = master_equation_memory(opts.method, dim, n_factors)
        if need > opts.memory:
            raise ValueError(f"memory: method={opts.method!r} at dimension {dim} needs {need / gib:.3g} GiB > the "
                             f"memory budget {opts.memory / gib:.3g} GiB; raise memory= or choose a smaller fock")
    return opts.method


@dataclass(frozen=True, eq=False)
class PlainBasis(Basis):
    """The plain basis as a :class:`~.basis.Basis`: truncation = Fock levels per mode; ``run_kwargs`` go to
    :func:`propagate` (engine and its tolerances); the search stays below ``max_dim``, ``max_fock`` (per mode)
    and the memory ``budget``. Trajectory runs are noisy, so they are accepted on the top-level population."""

    problem: QuantumProblem
    start: tuple
    run_kwargs: dict = field(default_factory=dict)
    max_dim: int = 10**9
    max_fock: int | None = None
    budget: object = None  # _Budget
    name = "plain"

    @property
    def by_indicator(self) -> bool:
        return self.run_kwargs.get("method") in TRAJECTORY_METHODS

    def first(self) -> tuple:
        fock = np.asarray(self.start)
        if self.max_fock is not None:
            if not self.by_indicator and self.max_fock < 3:
                raise ValueError(f"max_fock must be ≥ 3 (two cutoffs ≥ 2 are compared), got {self.max_fock}")
            # leave room for the comparison run
            fock = np.minimum(fock, self.max_fock if self.by_indicator else self.max_fock - 1)
        return tuple(int(c) for c in fock)

    def dimension(self, truncation) -> int:
        return self.problem.with_fock(truncation).dim

    def propagate(self, truncation, times, progress=None):
        return propagate(self.problem.with_fock(truncation), times, progress=progress, **self.run_kwargs)

    def grow(self, truncation, run, tol):
        nxt = _next_fock(run, tol)
        if self.max_fock is not None:
            nxt = np.minimum(nxt, self.max_fock)
        return tuple(int(c) for c in nxt)

    def refuse(self, truncation):
        dim = self.dimension(truncation)
        if dim > self.max_dim:
            return f"max_dim = {self.max_dim}"
        if self.budget is not None and not self.budget.fits(dim):
            return (f"the memory budget ({self.budget.estimate(dim) / 2**30:.3g} GiB > "
                    f"{self.budget.memory / 2**30:.3g} GiB, memory=)")
        return None

    def describe(self, truncation):
        return f"Fock cutoff {list(truncation)}"

    def record(self, truncation, run, change, deviation_change):
        return (tuple(truncation), run.truncation().tolist(), change, run.elapsed)
