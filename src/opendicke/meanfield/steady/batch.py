"""One initial state, many parameter points: reduce to the invariant subspace, search, map back."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from ..equations import MeanFieldRHS, unpack
from ..symmetry import invariant_reduction
from .classification import CLASSIFICATIONS, _MARGINAL, _RUNNING, _STABLE, _UNSTABLE
from .linear_stability import stability
from .options import SteadyStateOptions
from .search import _Outcome, _find


def _empty_outcome(B: int, n: int, M: int, opts: SteadyStateOptions) -> _Outcome:
    nan = np.full(B, np.nan)
    return _Outcome(
        status=np.full(B, _RUNNING), fixed=np.full((B, n), np.nan), final=np.full((B, n), np.nan), message=[""] * B,
        residual=nan.copy(), newton_iterations=np.zeros(B, dtype=np.int64), time_integrated=np.zeros(B),
        n_steps=np.zeros(B, dtype=np.int64), distance=nan.copy(), linearity=nan.copy(),
        leading=np.full((B, opts.n_eigenvalues), np.nan + 0j), decay_rate=nan.copy(), excited_rate=nan.copy(),
        settle_time=nan.copy(), undamped_amplitude=nan.copy(), overlap_min=np.full((B, M), np.nan),
        overlap_max=np.full((B, M), np.nan), period=nan.copy(),
    )


def _solve(grouping, y_starts, which, omega, g0, omega_modes, kappa, opts: SteadyStateOptions, progress=None,
           rates: dict | None = None) -> dict:
    """Single-threaded BLAS around :func:`_solve_batch`: its matrices are small and many (multi-threaded
    LAPACK made one 800×800 eigendecomposition 30 times slower on a busy 2-core machine).

    ``rates`` (``{gamma_down, gamma_up, gamma_phi: (B,)}``, individual spin dissipation): the points with a
    nonzero rate are solved with free group lengths (Newton on the full Bloch vectors, stability from the full
    Jacobian), the others with the conserved lengths, and the results are merged.
    """
    from threadpoolctl import threadpool_limits

    which = np.asarray(which, dtype=np.int64)
    damped = np.zeros(which.size, dtype=bool)
    if rates is not None:
        damped = np.any([np.asarray(r, float) != 0 for r in rates.values()], axis=0)
    with threadpool_limits(limits=1, user_api="blas"):
        if not damped.any():
            return _solve_batch(grouping, y_starts, which, omega, g0, omega_modes, kappa, opts, progress)
        parts = []
        for mask, rr in ((~damped, None), (damped, rates)):
            idx = np.nonzero(mask)[0]
            if idx.size:
                sub_rates = None if rr is None else {k: np.asarray(v, float)[idx] for k, v in rr.items()}
                parts.append((idx, _solve_batch(grouping, y_starts, which[idx], omega[idx], g0[idx],
                                                omega_modes[idx], kappa[idx], opts, None, sub_rates)))
        if progress is not None:
            progress(1.0)
        return _merge(parts, which.size)


def _merge(parts, B):
    """Merge the solutions of disjoint sub-batches (index arrays, results of :func:`_solve_batch`)."""
    if len(parts) == 1 and parts[0][0].size == B:
        return parts[0][1]
    first = parts[0][1]
    out = {}
    for name, value in first.items():
        if name == "out":
            continue
        out[name] = np.empty((B,) + value.shape[1:], dtype=value.dtype)
        for idx, part in parts:
            out[name][idx] = part[name]
    fields_out = {}
    for f in fields(_Outcome):
        v0 = getattr(first["out"], f.name)
        if isinstance(v0, list):
            merged = [""] * B
            for idx, part in parts:
                for j, p in enumerate(idx):
                    merged[p] = getattr(part["out"], f.name)[j]
        else:
            merged = np.empty((B,) + v0.shape[1:], dtype=v0.dtype)
            for idx, part in parts:
                merged[idx] = getattr(part["out"], f.name)
        fields_out[f.name] = merged
    out["out"] = _Outcome(**fields_out)
    return out


def _solve_batch(grouping, y_starts, which, omega, g0, omega_modes, kappa, opts: SteadyStateOptions,
                 progress=None, rates: dict | None = None) -> dict:
    """Steady states of B points: point b starts from ``y_starts[which[b]]`` (packed, full coordinates) with
    parameters ``omega[b]``, ``g0[b]``, ``omega_modes[b]``, ``kappa[b]``.

    Every initial state is reduced to its invariant subspace (:mod:`.symmetry`); initial states whose reduced
    models coincide (e.g. all pattern states of the ideal model) are solved together in one batch. Fixed points
    are then also judged against all perturbations in the full space.
    """
    y_starts = np.asarray(y_starts, dtype=float)
    which = np.asarray(which, dtype=np.int64)
    B = which.size
    K, M = grouping.n_groups, grouping.n_modes
    n = 3 * K + 2 * M
    wf = grouping.weighted_f
    damped = rates is not None
    # the σ_z source of decay/pumping is not gauge invariant: the gauge signs are part of the groups' identity
    source = damped and np.any(np.asarray(rates["gamma_down"]) != np.asarray(rates["gamma_up"]))
    gauge = grouping.group_gauge if source else None
    if source and gauge is None:
        raise ValueError("γ↓ ≠ γ↑ needs a grouping split by gauge sign (reduction.reduce does this for the model)")
    reductions = [invariant_reduction(grouping.f, grouping.weights, y, use_symmetry=opts.symmetry,
                                      group_gauge=gauge, damped=damped) for y in y_starts]
    result = _empty_outcome(B, n, M, opts)
    batches: dict = {}
    for s, red in enumerate(reductions):
        if np.any(which == s):
            gkey = b"" if red.group_gauge is None else red.group_gauge.tobytes()
            batches.setdefault((red.f.shape, red.f.tobytes(), red.weights.tobytes(), gkey), []).append(s)
    settled = 0
    for members in batches.values():
        red0 = reductions[members[0]]
        pts = np.nonzero(np.isin(which, members))[0]
        report = None if progress is None else (lambda k, base=settled: progress(min(1.0, (base + k) / max(B, 1))))
        if red0.size == 0:  # nothing moves: the initial state is a fixed point by symmetry alone
            out = _frozen_outcome(pts.size, M, opts)
        else:
            nr, Mr = red0.size, red0.f.shape[0]
            om, ka = np.empty((pts.size, Mr)), np.empty((pts.size, Mr))
            y0, lengths = np.empty((pts.size, nr)), np.empty((pts.size, red0.f.shape[1]))
            xi_A, xi_b = np.empty((pts.size, nr, M)), np.empty((pts.size, M))
            for s in members:
                red, rows = reductions[s], np.nonzero(which[pts] == s)[0]
                om[rows] = omega_modes[pts[rows]][:, red.modes]
                ka[rows] = kappa[pts[rows]][:, red.modes]
                y0[rows], lengths[rows] = red.y0, red.lengths
                xi_A[rows] = red.embedding[2 * K : 3 * K].T @ wf
                xi_b[rows] = red.offset[2 * K : 3 * K] @ wf
            rr = {} if not damped else {k: np.asarray(v, float)[pts] for k, v in rates.items()}
            rhs = MeanFieldRHS(red0.f, red0.weights, omega[pts], g0[pts], om, ka, **rr,
                               group_gauge=red0.group_gauge)
            out = _find(rhs, y0, lengths, (xi_A, xi_b), opts, report)
        settled += pts.size
        if progress is not None:
            progress(settled / B)
        for f in fields(_Outcome):
            if f.name in ("fixed", "final", "message"):
                continue
            getattr(result, f.name)[pts] = getattr(out, f.name)
        for j, p in enumerate(pts):
            red = reductions[which[p]]
            result.fixed[p] = red.embed(out.fixed[j]) if red.size else red.offset
            result.final[p] = red.embed(out.final[j]) if red.size else red.offset
            result.message[p] = out.message[j]

    E = opts.n_eigenvalues
    extra = {"subspace_dim": np.array([reductions[s].size for s in which], dtype=np.int64),
             "full_code": np.full(B, -1), "full_leading": np.full((B, E), np.nan + 0j),
             "full_max_real": np.full(B, np.nan), "n_conserved": np.zeros(B, dtype=np.int64),
             "n_undamped": np.zeros(B, dtype=np.int64)}
    pts = np.nonzero(np.isin(result.status, (_STABLE, _MARGINAL, _UNSTABLE)))[0]
    if pts.size:
        lengths_full = np.linalg.norm(unpack(y_starts[which[pts]], K)[0], axis=-1)
        rr = {}
        if damped:
            lengths_full = np.full_like(lengths_full, np.nan)
            rr = {k: np.asarray(v, float)[pts] for k, v in rates.items()}
        rhs_full = MeanFieldRHS(grouping.f, grouping.weights, omega[pts], g0[pts], omega_modes[pts], kappa[pts],
                                **rr, group_gauge=gauge)
        st = stability(rhs_full, result.fixed[pts], lengths_full, eig_tol=opts.eig_tol, n_eigenvalues=E)
        extra["full_code"][pts] = st.code
        extra["full_leading"][pts] = st.leading
        extra["full_max_real"][pts] = -st.decay_rate
        extra["n_conserved"][pts] = st.n_conserved
        extra["n_undamped"][pts] = st.n_undamped
        for j, p in enumerate(pts):
            dim = extra["subspace_dim"][p]
            if dim == 0:  # no invariant dynamics to judge by: the full-space verdict is the verdict
                result.status[p] = st.code[j]
                result.leading[p] = st.leading[j]
                result.decay_rate[p] = st.decay_rate[j]
            elif dim < n and result.status[p] == _STABLE and st.code[j] != _STABLE:
                result.message[p] += (
                    f"; stable on the invariant subspace of the initial state's symmetry (dimension {dim} of {n}), "
                    f"which the trajectory never leaves; against perturbations that break this symmetry the fixed "
                    f"point is {CLASSIFICATIONS[st.code[j]]} (max Re λ = {-st.decay_rate[j]:.3g})")
    return {"out": result, **extra}


def _frozen_outcome(P, M, opts) -> _Outcome:
    """Outcome for an initial state that its symmetries pin down completely (invariant subspace of dimension 0)."""
    nan = np.full(P, np.nan)
    xi = np.zeros((P, M))  # every group points along x
    message = ("the initial state is a fixed point by symmetry alone (its invariant subspace has dimension 0: every "
               "group is mapped onto itself with a π rotation about x and every mode is silent); classified by its "
               "stability against all perturbations")
    return _Outcome(
        status=np.full(P, _MARGINAL), fixed=np.zeros((P, 0)), final=np.zeros((P, 0)), message=[message] * P,
        residual=np.zeros(P), newton_iterations=np.zeros(P, dtype=np.int64), time_integrated=np.zeros(P),
        n_steps=np.zeros(P, dtype=np.int64), distance=np.zeros(P), linearity=np.zeros(P),
        leading=np.full((P, opts.n_eigenvalues), np.nan + 0j), decay_rate=nan.copy(), excited_rate=nan.copy(),
        settle_time=np.zeros(P), undamped_amplitude=np.zeros(P), overlap_min=xi, overlap_max=xi.copy(),
        period=nan.copy(),
    )
