"""Exact finite-N master-equation dynamics in the reduced basis, with an automatic Fock cutoff.

One entry point, :func:`solve`, returns an ``xarray.Dataset``; :func:`propagate` runs one problem at one
cutoff and returns raw expectation values (used by :func:`solve`, and handy for convergence studies).

Engines (``method``):

``"mesolve"``
    QuTiP's ``MESolver`` with the DOP853 integrator. The dynamics is limited by stability (the fast
    Fock/coupling frequencies of the top levels), not by accuracy, so an explicit 8th-order method at
    QuTiP's default tolerances is accurate to ~1e-12 in ξ (measurements: docs/exact-dynamics.md).
``"expm"``
    ``scipy.sparse.linalg.expm_multiply`` with the sparse Liouvillian: the exact propagator to double
    precision, interval by interval; a tight reference.
``"mcsolve"``
    Quantum-jump trajectories (QuTiP ``mcsolve``) with error bars; the exact no-jump branch is treated as
    its own stratum, so the error bars are honest at early times, when few trajectories have jumped.
``"auto"`` (default of :func:`solve`)
    The master equation up to :data:`AUTO_MASTER_EQUATION_DIM`, trajectories above.
"""

from __future__ import annotations

import json
import math
import time as _time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from ..model import DickeModel
from ..states import InitialState, as_initial_state
from .options import DEFAULT_MEMORY, DEFAULT_TOL, FRAMES, METHODS, QuantumOptions
from .problem import QuantumProblem, _fock_tuple, build
from .result import FockCutoffWarning, Propagation, _expectations, _split_observables

__all__ = ["solve", "propagate", "Propagation", "FockCutoffWarning", "MethodWarning", "DEFAULT_TOL", "DEFAULT_MEMORY",
           "METHODS", "FRAMES", "QuantumOptions", "master_equation_memory"]

#: ``frame="auto"`` takes the Gaussian frame when every block holds at least this many spins (measured, M = 1,
#: t ≤ 10: at N_sp = 256 its changes between truncations were 4.0e-3 and 3.7e-3 at 153 and 231 states against
#: 8.3e-3 and 7.9e-3 for the co-moving frame at 384 and 640; at N_sp = 64 the co-moving frame won, 9e-3
#: against 1.7e-2), and the co-moving frame from AUTO_COMOVING_SPINS spins on (see :func:`solve`).
AUTO_GAUSSIAN_BLOCK = 128
#: ``frame="auto"`` takes the co-moving frame from this many spins on (see :func:`solve`).
AUTO_COMOVING_SPINS = 24
#: Default dimension limits of the cutoff search per engine (the Chebyshev run is limited by the memory budget).
_MAX_DIM = {"chebyshev": 10**9, "mesolve": 1500, "expm": 1500, "mcsolve": 200_000}
_COMPONENTS = ("x", "y", "z")


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
    :mod:`.plain`; ``atol`` bounds the series terms, ``threads`` the numba threads), ``"mesolve"``,
    ``"expm"`` (master equation) or ``"mcsolve"`` (``ntraj`` quantum-jump
    trajectories from QuTiP's ``mcsolve``, seeded by ``seed``; the values are trajectory means and
    ``errors`` their standard errors). ``squares`` adds S_{a,k}² (for E_N); ``tail`` records the populations
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
    if method == "mcsolve":
        return _trajectories(problem, t, atol, rtol, squares, tail, ntraj, seed, progress)
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
        few = n < 2
        err = np.where(few, bound * (1 + (1j if np.iscomplexobj(samples) else 0)), err)
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


def _trajectories(problem, t, atol, rtol, squares, tail, ntraj, seed, progress) -> Propagation:
    """Quantum-jump trajectories (QuTiP ``mcsolve``), in batches so that progress can be reported;
    averaged with the exact no-jump branch as a separate stratum (see :class:`_Strata`)."""
    import qutip

    if isinstance(ntraj, bool) or int(ntraj) != ntraj or ntraj < 2:
        raise ValueError(f"ntraj must be an integer ≥ 2 (error bars need two trajectories), got {ntraj!r}")
    ntraj = int(ntraj)
    q = problem.to_qutip(squares=False)
    ops = dict(problem.observables(squares, tail))
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
    strata = _Strata(
        jumped=np.asarray(first_jump)[:, None] <= t[None, :], p0=p0, nojump=nojump,
        bounds={name: _op_bound(op) for name, op in ops.items()},
    )
    values, errors = {}, {}
    for name, v in runs.items():
        values[name], errors[name] = strata.estimate(v, nojump[name], strata.bounds[name])
    return Propagation(problem=problem, times=t, values=values, elapsed=elapsed, method="mcsolve",
                       errors=errors, runs=runs, ntraj=ntraj, strata=strata)


# ------------------------------------------------------------------------------------ Fock cutoff
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


@dataclass(frozen=True)
class _CutoffSearch:
    run: Propagation
    fock: tuple
    change: float
    converged: bool
    history: list  # [(fock tuple, truncation list, change or nan, seconds)]


def _search_fock(problem: QuantumProblem, t, tol, first, run_kwargs, max_dim, max_fock, progress, budget=None) -> _CutoffSearch:
    """Enlarge the cutoff until two successive cutoffs change overlaps and occupations by ≤ tol."""
    history = []
    fock = np.asarray(first)
    if max_fock is not None:
        if max_fock < 3:
            raise ValueError(f"max_fock must be ≥ 3 (two cutoffs ≥ 2 are compared), got {max_fock}")
        fock = np.minimum(fock, max_fock - 1)  # leave room for the comparison run
    prev = None
    while True:
        p = problem.with_fock(fock)
        over_memory = budget is not None and not budget.fits(p.dim)
        if p.dim > max_dim or over_memory:
            limit = (f"the memory budget ({budget.estimate(p.dim) / 2**30:.3g} GiB > {budget.memory / 2**30:.3g} GiB, "
                     "memory=)" if over_memory else f"max_dim = {max_dim}")
            if prev is None:
                raise ValueError(
                    f"the first Fock cutoff {list(p.fock)} (dimension {p.dim}) already exceeds {limit}; "
                    "give a smaller fock= (and check its truncation) or raise the limit"
                )
            last = history[-1][2]
            warnings.warn(
                f"Fock cutoff not converged: growing {list(prev.problem.fock)} → {list(p.fock)} would exceed "
                f"{limit}; the last measured change was {last:.3g} (tol = {tol:g}), the top-level "
                f"population {prev.truncation().max():.3g}",
                FockCutoffWarning, stacklevel=3,
            )
            return _CutoffSearch(prev, tuple(prev.problem.fock), last, False, history)
        run = propagate(p, t, progress=progress, **run_kwargs)
        change = run.change_from(prev) if prev is not None else math.nan
        history.append((tuple(p.fock), run.truncation().tolist(), change, run.elapsed))
        if prev is not None and change <= tol:
            return _CutoffSearch(run, tuple(p.fock), change, True, history)
        nxt = _next_fock(run, tol)
        if max_fock is not None:
            nxt = np.minimum(nxt, max_fock)
            if np.array_equal(nxt, p.fock):
                if prev is None:
                    raise ValueError(f"max_fock = {max_fock} leaves no room to test the cutoff (need two cutoffs)")
                warnings.warn(
                    f"Fock cutoff not converged at max_fock = {max_fock}: the change between the last two cutoffs "
                    f"was {change:.3g} > tol = {tol:g}", FockCutoffWarning, stacklevel=3,
                )
                return _CutoffSearch(run, tuple(p.fock), change, False, history)
        prev, fock = run, nxt


def _search_fock_by_indicator(problem, t, tol, first, run_kwargs, max_dim, max_fock, progress, budget=None) -> _CutoffSearch:
    """Trajectories: enlarge the cutoff until the top-level population is ≤ tol/10 (no change measured)."""
    history = []
    fock = np.asarray(first) if max_fock is None else np.minimum(first, max_fock)
    while True:
        p = problem.with_fock(fock)
        if p.dim > max_dim:
            raise ValueError(f"Fock cutoff {list(p.fock)} gives dimension {p.dim} > max_dim = {max_dim}; raise max_dim")
        run = propagate(p, t, progress=progress, **run_kwargs)
        history.append((tuple(p.fock), run.truncation().tolist(), math.nan, run.elapsed))
        if np.all(run.truncation() <= tol / 10):
            return _CutoffSearch(run, tuple(p.fock), math.nan, True, history)
        nxt = _next_fock(run, tol)
        if max_fock is not None:
            nxt = np.minimum(nxt, max_fock)
            if np.array_equal(nxt, p.fock):
                warnings.warn(
                    f"Fock cutoff not converged at max_fock = {max_fock}: the top level holds up to "
                    f"{run.truncation().max():.3g} of the population (> tol/10 = {tol / 10:g})",
                    FockCutoffWarning, stacklevel=3,
                )
                return _CutoffSearch(run, tuple(p.fock), math.nan, False, history)
        fock = nxt


# ------------------------------------------------------------------------------------ cost function
def cost_function(run: Propagation, meanfield) -> np.ndarray:
    """E_N(t) of paper Eq. 9 in the paper's normalisation (GUIDE §3), against a mean-field trajectory.

    m^N_{a,k} = S_{a,k}/n_k with the actual group sizes n_k of the reduction, α_{μ,N} = a_μ/√N with
    N = N_sp/2^(M-1). ``meanfield`` is the Dataset of :func:`opendicke.evolve` (groups representation,
    same times, same initial state): its ``bloch`` (time, group, component) and ``alpha`` (per spin).
    Needs a run with ``squares=True``.
    """
    return _cost(run.values, run.problem, meanfield)


def _cost(values: dict, p: QuantumProblem, meanfield) -> np.ndarray:
    """E_N from expectation values (arrays over time, or (ntraj, T) per trajectory: E_N is linear in them)."""
    sizes = p.grouping.sizes.astype(float)
    N_sp = p.n_spins
    N = N_sp / 2 ** (p.n_modes - 1)
    m_mf = np.asarray(meanfield["bloch"].values)  # (T, K, 3)
    alpha_mf = np.asarray(meanfield["alpha"].values) * math.sqrt(N_sp / N)  # paper normalisation
    total = 0.0
    for k in range(p.n_groups):
        for c, a in enumerate(_COMPONENTS):
            s1 = np.real(values[f"m{a}_{k + 1}"])  # ⟨S⟩/n_k
            s2 = np.real(values[f"S{a}2_{k + 1}"]) / sizes[k] ** 2  # ⟨S²⟩/n_k²
            m = m_mf[:, k, c]
            total += s2 - 2.0 * m * s1 + m**2
    for mu in range(p.n_modes):
        a_q = values[f"alpha_{mu + 1}"] * math.sqrt(N_sp / N)  # ⟨a⟩/√N
        n_q = np.real(values[f"occupation_{mu + 1}"]) * N_sp / N  # ⟨a†a⟩/N
        al = alpha_mf[:, mu]
        # ⟨A†A + AA†⟩ with A = a/√N − α: (2⟨a†a⟩ + 1)/N − 4 Re(ᾱ⟨a⟩/√N) + 2|α|²
        total += 2.0 * n_q + 1.0 / N - 4.0 * np.real(np.conj(al) * a_q) + 2.0 * np.abs(al) ** 2
    return total


def initial_cost(problem: QuantumProblem) -> float:
    """E_N(0) for a fully polarised product state: 2 Σ_k 1/n_k + M/N (GUIDE §3)."""
    N = problem.n_spins / 2 ** (problem.n_modes - 1)
    return float(2.0 * np.sum(1.0 / problem.grouping.sizes) + problem.n_modes / N)


# ------------------------------------------------------------------------------------ entry point
def solve(
    model: DickeModel,
    initial: InitialState | int = 1,
    *,
    options: QuantumOptions | None = None,
    progress: Callable[[float], None] | None = None,
    announce: Callable[[str], None] | None = None,
    **kwargs,
):
    """Exact finite-N dynamics (Lindblad master equation or quantum trajectories) in the reduced basis.

    Parameters
    ----------
    model:
        A finite model (explicit or random patterns).
    initial:
        A pattern number (1-based), :class:`~opendicke.states.PatternState`,
        :class:`~opendicke.states.CorruptedPattern`, or any state with pure spins (unit Bloch vectors).
    t_final, times:
        A count of equally spaced outputs on [0, t_final], or explicit increasing times starting at 0.
    fock:
        ``"auto"`` (default): start from the mean-field peak boson number and enlarge every mode's cutoff
        until the largest change of any overlap or occupation over the window, between two successive
        cutoffs, is ≤ ``tol``; the larger cutoff's run is returned. Or an explicit number of Fock levels
        (one for all modes or one per mode): then the change is not measured and a
        :class:`FockCutoffWarning` is raised when the top level holds more than ``tol/10`` population.
    tol:
        Target accuracy of overlaps and occupations (also sets the propagator's own error control: the
        Chebyshev series to min(1e-8, tol/100), the integrator tolerances of the other engines).
    method:
        ``"auto"`` (default): the exact master equation by ``"chebyshev"`` (compiled real-representation
        kernel, one Chebyshev expansion of the Liouvillian, :mod:`.plain`) whenever its memory estimate at the
        first cutoff fits ``memory``; quantum trajectories (``"mcsolve"``) only beyond it, with a
        :class:`MethodWarning` saying why. The choice is in ``attrs["method"]``. Or explicitly
        ``"chebyshev"``, ``"mesolve"`` (QuTiP, DOP853), ``"expm"`` (sparse Liouvillian exponential, exact to
        double precision) or ``"mcsolve"`` (``ntraj`` quantum-jump trajectories with QuTiP, seeded by ``seed``;
        every variable gets a ``<name>_error``, the standard error of the trajectory mean). For trajectories
        ``fock="auto"`` is judged by the truncation indicator only (top-level population ≤ tol/10;
        ``fock_change`` is NaN): differences between two cutoffs would be buried in statistical noise.
    cost:
        Also integrate mean field (:func:`opendicke.evolve`) from the same state and compute the paper's cost
        function E_N(t) (Eq. 9, paper normalisation) with the mean-field overlaps and occupations.
    atol, rtol:
        Integrator tolerances (default: min(1e-8, tol/100) and min(1e-6, tol)).
    max_dim, max_fock:
        Limits on the Hilbert-space dimension (default: the memory budget for ``"chebyshev"``, 1500 for
        ``"mesolve"``/``"expm"``, 200 000 for trajectories) and on the cutoff of the automatic search.
    memory:
        Memory budget of the master equation in bytes (default 2 GiB): the automatic method choice, the
        cutoff search and the frames' dimension limits all respect it; a given ``fock`` is checked against it
        before any operator is built.
    threads:
        numba threads of the compiled kernel (default 1).
    deviation_tol:
        Gaussian frame: a relative tolerance on what the frame is about, N·(ξ − ξ_MF), N·(n − n_MF) and N·E_N
        (max over time of the change between truncations over the max of the value), required besides ``tol``;
        the measured relative change is always reported as ``deviation_change``.
    options:
        All of the above as one :class:`QuantumOptions` (validated on construction); keywords given as well
        replace its fields.
    announce:
        Called once with one line naming the chosen basis, engine, (first) dimension and memory estimate,
        before the propagation starts (the CLI prints it).
    ntraj, seed:
        Number of trajectories and the seed of their random numbers (``"mcsolve"``).
    progress:
        Called with the fraction of the time window done (per run of the cutoff search).
    frame:
        ``"plain"``: the Dicke ⊗ Fock basis above. ``"comoving"``: the exact problem in the frame that
        follows the mean-field solution (each block rotated with its mean-field Bloch vector, each mode
        displaced by √N_sp α_MF(t); :mod:`opendicke.quantum.frame`), truncated in the fluctuations: ``fock``
        is then the number of *displaced* Fock levels and ``spin_levels`` the number of rotated Dicke states
        |j, j − k⟩ per block (``None``: searched with ``fock="auto"``, else all n_r + 1); the master equation is
        integrated with the package's DOP853 (``method`` must be ``"auto"``), and the search enlarges both
        truncations until overlaps and occupations change by ≤ ``tol``. ``"gaussian"``: the co-moving frame
        squeezed along the leading-order fluctuations (:mod:`opendicke.quantum.gaussian`), truncated to total
        quanta ≤ ``fock`` (one integer; ``"auto"`` enlarges it by 4 from 12 until the change is ≤ ``tol``);
        for large blocks only (each ≥ 16 spins; it pays from about 128). ``"auto"`` (default), when ``fock``
        and ``method`` are automatic: the Gaussian frame if every block holds ≥ :data:`AUTO_GAUSSIAN_BLOCK`
        spins, else the co-moving frame if N_sp ≥ :data:`AUTO_COMOVING_SPINS` (measured: below it the plain
        basis needs fewer levels), else the plain basis. The choice is in ``attrs["solver_frame"]``;
        co-moving results also carry ``spin_levels`` and ``spin_truncation`` (block; the largest population
        of the last kept Dicke state over the window).

    Returns
    -------
    xarray.Dataset
        ``overlap``, ``occupation``, ``alpha`` (time, pattern; per spin: α = ⟨a⟩/√N_sp, occupation
        ⟨a†a⟩/N_sp), ``bloch`` (time, group, component; ⟨S_{a,k}⟩/n_k in the gauged frame of the
        reduction), ``top_population`` (time, pattern), ``fock`` and ``truncation`` (pattern; the largest top-level
        population over the window), ``fock_change`` (the measured change, NaN for a given cutoff),
        ``fock_converged``; with ``cost``: ``cost`` (E_N), ``cost_initial`` (2 Σ 1/n_k + M/N),
        ``overlap_meanfield``, ``occupation_meanfield``.
    """
    opts = QuantumOptions(**kwargs) if options is None else (replace(options, **kwargs) if kwargs else options)
    opts.check_model(model)  # every option checked before any mean-field or problem building
    start = as_initial_state(initial)
    frame = opts.frame
    if frame == "auto":
        frame = _auto_frame(model, start, opts.method, opts.fock)
    from ..meanfield.evolution import output_times

    t = output_times(opts.t_final, opts.times)
    if t[0] != 0.0:
        raise ValueError("times must start at 0 (the initial state)")
    tol, fock, cost = opts.tol, opts.fock, opts.cost
    atol = min(1e-8, tol / 100) if opts.atol is None else float(opts.atol)
    rtol = min(1e-6, tol) if opts.rtol is None else float(opts.rtol)
    problem = build(model, start, fock=2)
    if not opts.fock_auto and frame in ("plain",):
        # memory check first: a given cutoff that does not fit never builds its operators
        _fixed = problem.with_fock(_fock_tuple(fock, model.n_modes))
        method = _choose_method(opts, _fixed.dim, len(_fixed.dims), fixed=True)
    meanfield = None
    if cost or opts.fock_auto:
        from ..meanfield import evolve

        meanfield = evolve(model, start, times=t, representation="groups")
    if opts.fock_auto:
        peak = model.n_spins * np.asarray(meanfield["occupation"].values).max(axis=0)
        first = _initial_fock(peak)
    else:
        first = _fock_tuple(fock, model.n_modes)
    max_dim = opts.max_dim
    gib = 2**30
    if frame in ("gaussian", "comoving") and announce is not None:
        announce(f"basis: {frame} frame (truncation searched from a small start), master equation, memory budget "
                 f"{opts.memory / gib:.3g} GiB")
    if frame == "gaussian":
        return _solve_gaussian(model, start, problem, t, fock, tol, atol, rtol, cost, meanfield, max_dim, progress,
                               opts.memory, opts.deviation_tol)
    if frame == "comoving":
        return _solve_comoving(model, start, problem, t, fock, opts.spin_levels, tol, atol, rtol, cost, meanfield,
                               max_dim, progress, opts.memory)
    if opts.fock_auto:
        method = _choose_method(opts, problem.with_fock(first).dim, len(problem.dims), fixed=False)
    max_dim = _MAX_DIM[method] if max_dim is None else int(max_dim)
    run_kwargs = dict(method=method, atol=atol, rtol=rtol, squares=cost, tail=3, threads=opts.threads)
    if method == "mcsolve":
        run_kwargs.update(ntraj=opts.ntraj, seed=opts.seed)
    budget = _Budget(method, opts.memory, len(problem.dims))
    if announce is not None:
        dim0 = problem.with_fock(first).dim
        announce(f"basis: plain (Dicke ⊗ Fock), method {method}, {'first ' if opts.fock_auto else ''}Fock levels "
                 f"{list(first)}, dimension {dim0}, memory estimate {budget.estimate(dim0) / gib:.3g} GiB of "
                 f"{opts.memory / gib:.3g} GiB")
    wall = _time.perf_counter()
    if opts.fock_auto:
        finder = _search_fock_by_indicator if method == "mcsolve" else _search_fock
        search = finder(problem, t, tol, first, run_kwargs, max_dim, opts.max_fock, progress, budget)
        run, change, converged, history = search.run, search.change, search.converged, search.history
    else:
        p = problem.with_fock(first)
        if p.dim > max_dim:
            raise ValueError(f"fock = {fock} gives dimension {p.dim} > max_dim = {max_dim}; raise max_dim to run it")
        run = propagate(p, t, progress=progress, **run_kwargs)
        change, history = math.nan, [(tuple(p.fock), run.truncation().tolist(), math.nan, run.elapsed)]
        converged = bool(np.all(run.truncation() <= tol / 10))
        if not converged:
            warnings.warn(
                f"Fock cutoff {list(p.fock)} may be too small: the top level holds up to {run.truncation().max():.3g} "
                f"of the population (> tol/10 = {tol / 10:g}); use fock='auto' to measure the error",
                FockCutoffWarning, stacklevel=2,
            )
    total = _time.perf_counter() - wall
    ds = _dataset(model, start, run, meanfield if cost else None, change, converged, history, tol, atol, rtol, total,
                  opts.seed if method == "mcsolve" else None)
    ds.attrs["memory_budget"] = float(opts.memory)
    ds.attrs["memory_estimate"] = float(budget.estimate(run.problem.dim))
    if run.stats:
        ds.attrs["propagator_stats"] = json.dumps(run.stats)
    return ds


class MethodWarning(UserWarning):
    """``method="auto"`` could not use the exact master equation (it does not fit the memory budget)."""


def master_equation_memory(method: str, dim: int, n_factors: int = 2) -> int:
    """Bytes a master-equation run needs at Hilbert-space dimension ``dim`` (state, work arrays, operators):
    the Chebyshev run holds four real d × d arrays; QuTiP's DOP853 (``"mesolve"``) about 13 complex ones (state,
    stages) and the sparse Liouvillian (≈ 10 entries per row of d², 24 bytes each); ``"expm"`` the Liouvillian
    and a few complex vectors of d²; trajectories a few kets per trajectory."""
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


def _choose_method(opts: QuantumOptions, dim: int, n_factors: int, fixed: bool) -> str:
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
        return "mcsolve"
    if opts.method != "mcsolve" and fixed:
        need = master_equation_memory(opts.method, dim, n_factors)
        if need > opts.memory:
            raise ValueError(f"memory: method={opts.method!r} at dimension {dim} needs {need / gib:.3g} GiB > the "
                             f"memory budget {opts.memory / gib:.3g} GiB; raise memory= or choose a smaller fock")
    return opts.method


def _solve_comoving(model, start, problem, t, fock, spin_levels, tol, atol, rtol, cost, meanfield, max_dim, progress,
                    memory=DEFAULT_MEMORY):
    """``solve(frame="comoving")``: fixed truncation, or the search of :func:`.frame.search_truncation`."""
    from .frame import MAX_COMOVING_DIM, comoving, first_truncation, propagate_comoving, search_truncation

    max_dim = min(MAX_COMOVING_DIM if max_dim is None else int(max_dim), frame_max_dim(memory))
    wall = _time.perf_counter()
    if isinstance(fock, str):
        first = first_truncation(problem)
        if spin_levels is not None:
            first = (comoving(problem, spin_levels, first[1]).spin_levels, first[1])
        search = search_truncation(problem, t, tol, first=first, rtol=rtol, atol=atol, squares=cost, max_dim=max_dim,
                                   progress=progress)
        run, change, converged, history = search.run, search.change, search.converged, search.history
    else:
        cp = comoving(problem, spin_levels, fock)
        if cp.dim > max_dim:
            raise ValueError(f"spin_levels × fock give dimension {cp.dim} > max_dim = {max_dim}; raise max_dim to run it")
        run = propagate_comoving(cp, t, rtol=rtol, atol=atol, squares=cost, progress=progress)
        change = math.nan
        history = [(cp.spin_levels, cp.fock, run.spin_truncation().tolist(), run.truncation().tolist(), math.nan,
                    run.elapsed)]
        top = max(run.truncation().max(), 0.0 if cp.spin_exact else run.spin_truncation().max())
        converged = bool(top <= tol / 10)
        if not converged:
            warnings.warn(
                f"co-moving truncation (spin levels {list(cp.spin_levels)}, Fock {list(cp.fock)}) may be too small: "
                f"the last kept level holds up to {top:.3g} of the population (> tol/10 = {tol / 10:g}); "
                "use fock='auto' to measure the error", FockCutoffWarning, stacklevel=3,
            )
    total = _time.perf_counter() - wall
    plain_history = [(f, tr, ch, sec) for _s, f, _st, tr, ch, sec in history]
    ds = _dataset(model, start, run, meanfield if cost else None, change, converged, plain_history, tol, atol, rtol, total)
    import json

    ds["spin_levels"] = (("block",), np.asarray(run.spin_levels, dtype=np.int64))
    ds["spin_truncation"] = (("block",), run.spin_truncation())
    ds["spin_levels"].attrs["long_name"] = "rotated Dicke states |j, j-k> kept per block (k = 0 .. levels-1)"
    ds["spin_truncation"].attrs["long_name"] = "largest population of the last kept Dicke state over the window"
    ds["fock"].attrs["long_name"] = "displaced Fock levels kept per mode (0 .. fock-1), co-moving frame"
    ds.attrs.update({
        "solver_frame": "comoving",
        "dimension": int(np.prod(run.spin_levels) * np.prod(run.problem.fock)),
        "truncation_history": json.dumps([
            {"spin_levels": list(s_), "fock": list(f), "spin_truncation": st, "truncation": tr,
             "change": None if math.isnan(ch) else ch, "seconds": sec}
            for s_, f, st, tr, ch, sec in history
        ]),
    })
    return ds


def frame_max_dim(memory: float) -> int:
    """Largest frame dimension whose master equation fits ``memory`` bytes (the frames' DOP853 holds about 17
    complex d × d arrays: state, 12 stages, error estimate, dense output)."""
    return max(1, int(math.sqrt(memory / (17 * 16))))


def _auto_frame(model, start, method, fock) -> str:
    if method != "auto" or not isinstance(fock, str):
        return "plain"
    if model.n_spins >= AUTO_COMOVING_SPINS:
        blocks = build(model, start, fock=2).block_sizes
        return "gaussian" if blocks.min() >= AUTO_GAUSSIAN_BLOCK else "comoving"
    return "plain"


def deviation_measure(meanfield, with_cost: bool):
    """What a frame is about, per run: N_sp·(ξ − ξ_MF), N_sp·(n − n_MF) over time and patterns, and with
    ``with_cost`` N·E_N (paper normalisation); the truncation search compares these between truncations."""
    xi_mf = np.asarray(meanfield["overlap"].values)
    n_mf = np.asarray(meanfield["occupation"].values)

    def measure(run: Propagation) -> dict:
        N_sp = run.problem.n_spins
        out = {"overlap": N_sp * (np.real(run.per_pattern("overlap")) - xi_mf),
               "occupation": N_sp * (np.real(run.per_pattern("occupation")) - n_mf)}
        if with_cost:
            out["cost"] = N_sp / 2 ** (run.problem.n_modes - 1) * cost_function(run, meanfield)
        return out

    return measure


def _solve_gaussian(model, start, problem, t, fock, tol, atol, rtol, cost, meanfield, max_dim, progress,
                    memory=DEFAULT_MEMORY, deviation_tol=None):
    """``solve(frame="gaussian")``: a given total-quanta truncation, or the search of :func:`.gaussian.search_levels`."""
    import json

    from .gaussian import MAX_GAUSSIAN_DIM, frame_dimension, propagate_gaussian, search_levels

    max_dim = min(MAX_GAUSSIAN_DIM if max_dim is None else int(max_dim), frame_max_dim(memory))
    wall = _time.perf_counter()
    if isinstance(fock, str):
        search = search_levels(problem, t, tol, rtol=rtol, atol=atol, squares=cost, max_dim=max_dim, progress=progress,
                               deviations=deviation_measure(meanfield, cost), deviation_tol=deviation_tol)
        run, change, converged, history = search.run, search.change, search.converged, search.history
        deviation_change = search.deviation_change
    else:
        levels = np.atleast_1d(np.asarray(fock))
        if levels.size != 1 or not float(levels[0]).is_integer() or levels[0] < 1:
            raise ValueError(f"frame='gaussian' keeps the states with total quanta ≤ fock: give one integer ≥ 1, got {fock!r}")
        levels = int(levels[0])
        if frame_dimension(problem, levels) > max_dim:
            raise ValueError(f"fock = {levels} keeps {frame_dimension(problem, levels)} states > max_dim = {max_dim}; "
                             "raise max_dim to run it")
        run = propagate_gaussian(problem, t, levels, rtol=rtol, atol=atol, squares=cost, progress=progress)
        change = deviation_change = math.nan
        history = [(levels, frame_dimension(problem, levels), float(run.truncation().max()), math.nan, run.elapsed)]
        converged = bool(run.truncation().max() <= tol / 10)
        if not converged:
            warnings.warn(
                f"Gaussian-frame truncation (total quanta ≤ {levels}) may be too small: the last kept shell holds up to "
                f"{run.truncation().max():.3g} of the population (> tol/10 = {tol / 10:g}); use fock='auto' to measure "
                "the error", FockCutoffWarning, stacklevel=3)
    total = _time.perf_counter() - wall
    plain_history = [((lv,) * model.n_modes, [top] * model.n_modes, ch, sec) for lv, _d, top, ch, sec in history]
    ds = _dataset(model, start, run, meanfield if cost else None, change, converged, plain_history, tol, atol, rtol, total)
    ds["deviation_change"] = ((), float(deviation_change))
    ds["deviation_change"].attrs["long_name"] = (
        "relative change of N(xi - xi_MF), N(n - n_MF) and N E_N between the last two truncations (NaN: not measured)")
    ds["fock"].attrs["long_name"] = "total quanta kept in the Gaussian frame (the same number for every mode)"
    ds["truncation"].attrs["long_name"] = "largest population of the last kept shell (total quanta = fock) over the window"
    ds.attrs.update({
        "solver_frame": "gaussian",
        "dimension": frame_dimension(problem, int(run.problem.fock[0])),
        "truncation_history": json.dumps([
            {"levels": lv, "dimension": dim, "truncation": top, "change": None if math.isnan(ch) else ch, "seconds": sec}
            for lv, dim, top, ch, sec in history
        ]),
    })
    return ds


def _dataset(model, start, run: Propagation, meanfield, change, converged, history, tol, atol, rtol, total, seed=None):
    import json

    import xarray as xr

    from ..results import model_attrs

    p = run.problem
    M, K = p.n_modes, p.n_groups
    bloch = np.stack(
        [np.stack([np.real(run.values[f"m{a}_{k + 1}"]) for a in _COMPONENTS], axis=-1) for k in range(K)], axis=1
    )
    data = {
        "overlap": (("time", "pattern"), np.real(run.per_pattern("overlap"))),
        "occupation": (("time", "pattern"), np.real(run.per_pattern("occupation"))),
        "alpha": (("time", "pattern"), run.per_pattern("alpha")),
        "bloch": (("time", "group", "component"), bloch),
        "top_population": (("time", "pattern"), np.real(run.per_pattern("top"))),
        "fock": (("pattern",), np.asarray(p.fock, dtype=np.int64)),
        "truncation": (("pattern",), run.truncation()),
        "fock_change": ((), float(change)),
        "fock_converged": ((), int(bool(converged))),
        "couplings": (("pattern", "group"), p.grouping.f.astype(np.int8)),
    }
    if run.errors is not None:
        err = run.errors
        data["overlap_error"] = (("time", "pattern"), np.real(run.per_pattern("overlap", err)))
        data["occupation_error"] = (("time", "pattern"), np.real(run.per_pattern("occupation", err)))
        data["alpha_error"] = (("time", "pattern"), run.per_pattern("alpha", err))
        data["bloch_error"] = (("time", "group", "component"), np.stack(
            [np.stack([np.real(err[f"m{a}_{k + 1}"]) for a in _COMPONENTS], axis=-1) for k in range(K)], axis=1))
    if meanfield is not None:
        data["cost"] = (("time",), cost_function(run, meanfield))
        if run.runs is not None:
            mean, err = run.strata.estimate(_cost(run.runs, p, meanfield), _cost(run.strata.nojump, p, meanfield))
            data["cost"] = (("time",), mean)
            data["cost_error"] = (("time",), err)
        data["cost_initial"] = ((), initial_cost(p))
        data["overlap_meanfield"] = (("time", "pattern"), np.asarray(meanfield["overlap"].values))
        data["occupation_meanfield"] = (("time", "pattern"), np.asarray(meanfield["occupation"].values))
    coords = {
        "time": ("time", run.times),
        "pattern": ("pattern", np.arange(1, M + 1)),
        "group": ("group", np.arange(1, K + 1)),
        "component": ("component", list(_COMPONENTS)),
        "group_size": ("group", p.grouping.sizes.astype(np.int64)),
    }
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(model_attrs(model))
    ds.attrs.update({
        "kind": "quantum_evolution",
        "method": run.method,
        "initial_state": start.label(),
        "blocks": json.dumps({"sizes": p.block_sizes.tolist(), "group": (p.block_group + 1).tolist()}),
        "dimension": p.dim,
        "tol": tol,
        "atol": atol,
        "rtol": rtol,
        "fock_history": json.dumps([
            {"fock": list(f), "truncation": tr, "change": None if math.isnan(ch) else ch, "seconds": sec}
            for f, tr, ch, sec in history
        ]),
        "elapsed_seconds": total,
        "ntraj": run.ntraj,
        "trajectory_seed": -1 if seed is None else int(seed),
        "frame": "gauged (pi rotation about x on spins with G[1,j] = -1) for bloch; overlaps are frame-independent",
        "solver_frame": "plain",
        "units": "per spin: alpha = <a>/sqrt(N_sp), occupation = <a^dag a>/N_sp; cost E_N in the paper's normalisation",
    })
    ds["overlap"].attrs["long_name"] = "pattern overlap xi_mu = (1/N_sp) sum_j G[mu,j] <sigma_z^j>"
    ds["occupation"].attrs["long_name"] = "mode occupation per spin <a_mu^dag a_mu>/N_sp"
    ds["truncation"].attrs["long_name"] = "largest population of the top Fock level over the time window"
    ds["fock"].attrs["long_name"] = "Fock levels kept per mode (0 .. fock-1)"
    ds["fock_change"].attrs["long_name"] = (
        "max over time and patterns of |change| of overlaps and occupations between the last two cutoffs (NaN: not measured)"
    )
    if meanfield is not None:
        ds["cost"].attrs["long_name"] = "cost function E_N(t), paper Eq. 9, m = S/n_k, alpha = a/sqrt(N), N = N_sp/2^(M-1)"
    return ds
