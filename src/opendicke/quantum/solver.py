"""The entry point of the exact finite-N dynamics, :func:`solve`: options → basis → (search of) its truncation →
``xarray.Dataset``.

The problem (:func:`.problem.build`), the method (a :class:`~.basis.Basis`: the plain Dicke ⊗ Fock basis of
:mod:`.plain_basis` with its engines, the co-moving frame of :mod:`.frame`, the Gaussian frame of :mod:`.gaussian`)
and the options (:class:`~.options.QuantumOptions`, frozen and checked on construction) are separate, as in
dynamiqs (``mesolve(H, jump_ops, rho0, tsave, method=..., options=...)``); the one truncation search is
:func:`.basis.search`. :func:`propagate` (one run of the plain basis at one cutoff) is re-exported from
:mod:`.plain_basis`.
"""

from __future__ import annotations

import json
import math
import time as _time
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..model import DickeModel
from ..states import InitialState, as_initial_state
from .basis import search
from .options import DEFAULT_MEMORY, DEFAULT_TOL, FRAMES, METHODS, QuantumOptions
from .plain_basis import (
    _MAX_DIM, TRAJECTORY_METHODS, MethodWarning, PlainBasis, _Budget, _initial_fock, choose_method,
    master_equation_memory, propagate,
)
from .problem import QuantumProblem, _fock_tuple, build
from .result import FockCutoffWarning, Propagation

__all__ = ["solve", "propagate", "Propagation", "FockCutoffWarning", "MethodWarning", "DEFAULT_TOL", "DEFAULT_MEMORY",
           "METHODS", "FRAMES", "QuantumOptions", "master_equation_memory"]

#: ``frame="auto"`` takes the Gaussian frame when every block holds at least this many spins (measured, M = 1,
#: t ≤ 10: at N_sp = 256 its changes between truncations were 4.0e-3 and 3.7e-3 at 153 and 231 states against
#: 8.3e-3 and 7.9e-3 for the co-moving frame at 384 and 640; at N_sp = 64 the co-moving frame won, 9e-3
#: against 1.7e-2), and the co-moving frame from AUTO_COMOVING_SPINS spins on (see :func:`solve`).
AUTO_GAUSSIAN_BLOCK = 128
#: ``frame="auto"`` takes the co-moving frame from this many spins on (see :func:`solve`).
AUTO_COMOVING_SPINS = 24
_COMPONENTS = ("x", "y", "z")


# ------------------------------------------------------------------------------------ cost function
def cost_function(run: Propagation, meanfield) -> np.ndarray:
    """E_N(t) of paper Eq. 9 in the paper's normalisation (docs/physics-notes.md), against a mean-field trajectory.

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
    """E_N(0) for a fully polarised product state: 2 Σ_k 1/n_k + M/N (docs/physics-notes.md)."""
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
    options:
        All the settings below as one :class:`QuantumOptions` (validated on construction); keywords given as
        well (the settings under *Other Parameters*) replace its fields.
    announce:
        Called once with one line naming the chosen basis, engine, (first) dimension and memory estimate,
        before the propagation starts (the CLI prints it).
    progress:
        Called with the fraction of the time window done (per run of the cutoff search).

    Other Parameters
    ----------------
    t_final, times : float; int or array
        A count of equally spaced outputs on [0, t_final], or explicit increasing times starting at 0.
    fock : "auto", int or sequence of int
        ``"auto"`` (default): start from the mean-field peak boson number and enlarge every mode's cutoff
        until the largest change of any overlap or occupation over the window, between two successive
        cutoffs, is ≤ ``tol``; the larger cutoff's run is returned. Or an explicit number of Fock levels
        (one for all modes or one per mode): then the change is not measured and a
        :class:`FockCutoffWarning` is raised when the top level holds more than ``tol/10`` population.
    tol : float
        Target accuracy of overlaps and occupations (also sets the propagator's own error control: the
        Chebyshev series to min(1e-8, tol/100), the integrator tolerances of the other engines).
    method : str
        ``"auto"`` (default): the exact master equation by ``"chebyshev"`` (compiled real-representation
        kernel, one Chebyshev expansion of the Liouvillian, :mod:`.plain`) whenever its memory estimate at the
        first cutoff fits ``memory``; quantum trajectories (``"trajectories"``) only beyond it, with a
        :class:`MethodWarning` saying why. The choice is in ``attrs["method"]``. Or explicitly
        ``"chebyshev"``, ``"mesolve"`` (QuTiP, DOP853), ``"expm"`` (sparse Liouvillian exponential, exact to
        double precision), ``"trajectories"`` (``ntraj`` quantum-jump trajectories on the compiled ket kernels,
        :mod:`.trajectories`, seeded by ``seed``; every variable gets a ``<name>_error``, the standard error of
        the trajectory mean) or ``"mcsolve"`` (the same with QuTiP's trajectories, slower). For trajectories
        ``fock="auto"`` is judged by the truncation indicator only (top-level population ≤ tol/10;
        ``fock_change`` is NaN): differences between two cutoffs would be buried in statistical noise.
    cost : bool
        Also integrate mean field (:func:`opendicke.evolve`) from the same state and compute the paper's cost
        function E_N(t) (Eq. 9, paper normalisation) with the mean-field overlaps and occupations.
    atol, rtol : float or None
        Integrator tolerances (default: min(1e-8, tol/100) and min(1e-6, tol)).
    max_dim, max_fock : int or None
        Limits on the Hilbert-space dimension (default: the memory budget for ``"chebyshev"``, 1500 for
        ``"mesolve"``/``"expm"``, 200 000 for trajectories) and on the cutoff of the automatic search.
    memory : int or str
        Memory budget of the master equation in bytes (default 2 GiB): the automatic method choice, the
        cutoff search and the frames' dimension limits all respect it; a given ``fock`` is checked against it
        before any operator is built.
    threads : int
        numba threads of the compiled kernel (default 1); with trajectories, the trajectories run at once.
    deviation_tol : float or None
        Frames (co-moving, Gaussian): a relative tolerance on what the frame is about, N·(ξ − ξ_MF),
        N·(n − n_MF) and N·E_N (max over time of the change between the last two truncations over
        max(the largest value, 1)), required of the truncation search besides ``tol``; default 1e-2
        (:data:`~.options.DEFAULT_DEVIATION_TOL`), ``None``: measured only. The measured relative change is
        reported as ``deviation_change``. It also tightens the frames' integrator (rtol ≤ 1e-3·deviation_tol)
        unless ``rtol`` is given.
    ntraj, seed : int; int or None
        Number of trajectories and the seed of their random numbers (``"trajectories"``, ``"mcsolve"``).
    frame : str
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
    if frame in ("comoving", "gaussian") and opts.deviation_tol is not None and opts.rtol is None:
        # the deviations from mean field are O(1/N) of ξ and n: the frame's integrator must resolve them to a small
        # fraction of deviation_tol (measured, N_sp = 16000, 16 quanta, t ≤ 10: rtol 1e-3 moves N·E_N by 0.29 = 1 %,
        # rtol 1e-5 by 1.5e-3, at the same cost: the step is limited by stability, not accuracy)
        rtol = min(rtol, 1e-3 * opts.deviation_tol)
        atol = min(atol, rtol / 100) if opts.atol is None else atol
    problem = build(model, start, fock=2)
    if not opts.fock_auto and frame in ("plain",):
        # memory check first: a given cutoff that does not fit never builds its operators
        _fixed = problem.with_fock(_fock_tuple(fock, model.n_modes))
        method = choose_method(opts, _fixed.dim, len(_fixed.dims), fixed=True)
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
                               max_dim, progress, opts.memory, opts.deviation_tol)
    if opts.fock_auto:
        method = choose_method(opts, problem.with_fock(first).dim, len(problem.dims), fixed=False)
    max_dim = _MAX_DIM[method] if max_dim is None else int(max_dim)
    run_kwargs = dict(method=method, atol=atol, rtol=rtol, squares=cost, tail=3, threads=opts.threads)
    if method in TRAJECTORY_METHODS:
        run_kwargs.update(ntraj=opts.ntraj, seed=opts.seed)
    budget = _Budget(method, opts.memory, len(problem.dims))
    if announce is not None:
        dim0 = problem.with_fock(first).dim
        announce(f"basis: plain (Dicke ⊗ Fock), method {method}, {'first ' if opts.fock_auto else ''}Fock levels "
                 f"{list(first)}, dimension {dim0}, memory estimate {budget.estimate(dim0) / gib:.3g} GiB of "
                 f"{opts.memory / gib:.3g} GiB")
    wall = _time.perf_counter()
    basis = PlainBasis(problem, tuple(first), run_kwargs, max_dim, opts.max_fock, budget)
    if opts.fock_auto:
        found = search(basis, t, tol, progress=progress)
        run, change, converged, history = found.run, found.change, found.converged, found.history
    else:
        if basis.dimension(tuple(first)) > max_dim:  # the memory budget was checked by choose_method
            raise ValueError(f"fock = {fock} gives dimension {basis.dimension(tuple(first))} > max_dim = {max_dim}; "
                             "raise max_dim to run it")
        run = basis.propagate(tuple(first), t, progress)
        change, history = math.nan, [basis.record(tuple(first), run, math.nan, math.nan)]
        converged = bool(np.all(run.truncation() <= tol / 10))
        if not converged:
            warnings.warn(
                f"Fock cutoff {list(first)} may be too small: the top level holds up to {run.truncation().max():.3g} "
                f"of the population (> tol/10 = {tol / 10:g}); use fock='auto' to measure the error",
                FockCutoffWarning, stacklevel=2,
            )
    total = _time.perf_counter() - wall
    ds = _dataset(model, start, run, meanfield if cost else None, change, converged, history, tol, atol, rtol, total,
                  opts.seed if method in TRAJECTORY_METHODS else None)
    ds.attrs["memory_budget"] = float(opts.memory)
    ds.attrs["memory_estimate"] = float(budget.estimate(run.problem.dim))
    if run.stats:
        ds.attrs["propagator_stats"] = json.dumps(run.stats)
    return ds


def _solve_comoving(model, start, problem, t, fock, spin_levels, tol, atol, rtol, cost, meanfield, max_dim, progress,
                    memory=DEFAULT_MEMORY, deviation_tol=None):
    """``solve(frame="comoving")``: fixed truncation, or the search of :func:`.frame.search_truncation`."""
    from .frame import MAX_COMOVING_DIM, ComovingBasis, comoving, first_truncation

    max_dim = min(MAX_COMOVING_DIM if max_dim is None else int(max_dim), frame_max_dim(memory))
    wall = _time.perf_counter()
    if isinstance(fock, str):
        first = first_truncation(problem)
        if spin_levels is not None:
            first = (comoving(problem, spin_levels, first[1]).spin_levels, first[1])
        fixed = None
    else:
        cp = comoving(problem, spin_levels, fock)
        first = fixed = (cp.spin_levels, cp.fock)
    basis = ComovingBasis(problem, float(t[-1]), start=first, max_dim=max_dim, rtol=rtol, atol=atol, squares=cost)
    run, change, converged, history, deviation_change = _run_basis(
        basis, t, tol, fixed, None if meanfield is None else deviation_measure(meanfield, cost), deviation_tol,
        progress)
    total = _time.perf_counter() - wall
    plain_history = [(f, tr, ch, sec) for _s, f, _st, tr, ch, sec, _dev in history]
    ds = _dataset(model, start, run, meanfield if cost else None, change, converged, plain_history, tol, atol, rtol, total)
    _add_deviation_change(ds, deviation_change)
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
             "change": None if math.isnan(ch) else ch, "seconds": sec,
             "deviation_change": None if math.isnan(dev) else dev}
            for s_, f, st, tr, ch, sec, dev in history
        ]),
    })
    return ds


def _run_basis(basis, t, tol, fixed, deviations, deviation_tol, progress):
    """The one search over ``basis`` (``fixed`` None), or one run at the given truncation ``fixed`` judged by its
    truncation indicator (:meth:`.basis.Basis.indicator` ≤ tol/10, else a :class:`FockCutoffWarning`).
    Returns (run, change, converged, history, deviation_change)."""
    if fixed is None:
        found = search(basis, t, tol, deviations=deviations, deviation_tol=deviation_tol, progress=progress,
                       stacklevel=5)
        return found.run, found.change, found.converged, found.history, found.deviation_change
    refused = basis.refuse(fixed)
    if refused is not None:
        raise ValueError(f"fock: the {basis.describe(fixed)} keeps {basis.dimension(fixed)} states > {refused}; "
                         "raise max_dim to run it")
    run = basis.propagate(fixed, t, progress)
    top = basis.indicator(run)
    converged = bool(top <= tol / 10)
    if not converged:
        warnings.warn(
            f"the {basis.describe(fixed)} may be too small: the last kept level holds up to {top:.3g} of the "
            f"population (> tol/10 = {tol / 10:g}); use fock='auto' to measure the error", FockCutoffWarning,
            stacklevel=4)
    return run, math.nan, converged, [basis.record(fixed, run, math.nan, math.nan)], math.nan


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

    from .gaussian import MAX_GAUSSIAN_DIM, GaussianBasis, _check_blocks, frame_dimension

    max_dim = min(MAX_GAUSSIAN_DIM if max_dim is None else int(max_dim), frame_max_dim(memory))
    wall = _time.perf_counter()
    fixed = None
    if not isinstance(fock, str):
        levels = np.atleast_1d(np.asarray(fock))
        if levels.size != 1 or not float(levels[0]).is_integer() or levels[0] < 1:
            raise ValueError(f"frame='gaussian' keeps the states with total quanta ≤ fock: give one integer ≥ 1, got {fock!r}")
        fixed = (int(levels[0]),)
    else:
        _check_blocks(problem)
    basis = GaussianBasis(problem, float(t[-1]), max_dim=max_dim, rtol=rtol, atol=atol, squares=cost)
    run, change, converged, history, deviation_change = _run_basis(
        basis, t, tol, fixed, None if meanfield is None else deviation_measure(meanfield, cost), deviation_tol,
        progress)
    total = _time.perf_counter() - wall
    plain_history = [((lv,) * model.n_modes, [top] * model.n_modes, ch, sec) for lv, _d, top, ch, sec, _dev in history]
    ds = _dataset(model, start, run, meanfield if cost else None, change, converged, plain_history, tol, atol, rtol, total)
    _add_deviation_change(ds, deviation_change)
    ds["fock"].attrs["long_name"] = "total quanta kept in the Gaussian frame (the same number for every mode)"
    ds["truncation"].attrs["long_name"] = "largest population of the last kept shell (total quanta = fock) over the window"
    ds.attrs.update({
        "solver_frame": "gaussian",
        "dimension": frame_dimension(problem, int(run.problem.fock[0])),
        "truncation_history": json.dumps([
            {"levels": lv, "dimension": dim, "truncation": top, "change": None if math.isnan(ch) else ch, "seconds": sec,
             "deviation_change": None if math.isnan(dev) else dev}
            for lv, dim, top, ch, sec, dev in history
        ]),
    })
    return ds


def _add_deviation_change(ds, deviation_change: float) -> None:
    ds["deviation_change"] = ((), float(deviation_change))
    ds["deviation_change"].attrs["long_name"] = (
        "relative change of N(xi - xi_MF), N(n - n_MF) and N E_N between the last two truncations, over "
        "max(their largest value, 1) (NaN: not measured)")


def _dataset(model, start, run: Propagation, meanfield, change, converged, history, tol, atol, rtol, total, seed=None,
             *, with_cost: bool = True):
    """The one Dataset builder of every basis (plain, frames, permutation-invariant). ``history``: one entry per
    run of the search, (fock, truncation, change, seconds[, cpu seconds]). ``meanfield`` adds the mean-field
    overlaps and occupations and, ``with_cost``, the cost function E_N (needs a run with ``squares=True``)."""
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
    if meanfield is not None and with_cost:
        data["cost"] = (("time",), cost_function(run, meanfield))
        if run.runs is not None:
            mean, err = run.strata.estimate(_cost(run.runs, p, meanfield), _cost(run.strata.nojump, p, meanfield))
            data["cost"] = (("time",), mean)
            data["cost_error"] = (("time",), err)
        data["cost_initial"] = ((), initial_cost(p))
    if meanfield is not None:
        T = run.times.size
        data["overlap_meanfield"] = (("time", "pattern"), np.asarray(meanfield["overlap"].values)[:T])
        data["occupation_meanfield"] = (("time", "pattern"), np.asarray(meanfield["occupation"].values)[:T])
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
            {"fock": list(f), "truncation": tr, "change": None if math.isnan(ch) else ch, "seconds": sec,
             **({"cpu_seconds": rest[0]} if rest else {})}
            for f, tr, ch, sec, *rest in history
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
    if meanfield is not None and with_cost:
        ds["cost"].attrs["long_name"] = "cost function E_N(t), paper Eq. 9, m = S/n_k, alpha = a/sqrt(N), N = N_sp/2^(M-1)"
    return ds
