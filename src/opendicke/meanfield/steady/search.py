"""The windowed search of one batch: integrate, seed Newton from the trajectory, accept or give up."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..equations import MeanFieldRHS
from ..integrator import integrate
from ..jacobian import jacobian
from .classification import _MARGINAL, _NOT_CONVERGED, _NOT_STATIONARY, _RUNNING, _STABLE, _UNSTABLE
from .fixed_point import _groups, newton
from .linear_stability import Stability, stability
from .options import SteadyStateOptions


@dataclass
class _Outcome:
    """Per-point results of :func:`_find` for B points, states in the coordinates of the rhs it was given."""

    status: np.ndarray
    fixed: np.ndarray  # (B, n) fixed point (NaN unless stable / marginal / unstable)
    final: np.ndarray  # (B, n) last trajectory state
    message: list
    residual: np.ndarray
    newton_iterations: np.ndarray
    time_integrated: np.ndarray
    n_steps: np.ndarray
    distance: np.ndarray
    linearity: np.ndarray
    leading: np.ndarray
    decay_rate: np.ndarray
    excited_rate: np.ndarray
    settle_time: np.ndarray
    undamped_amplitude: np.ndarray
    overlap_min: np.ndarray  # (B, M_full) over the last window
    overlap_max: np.ndarray
    period: np.ndarray


def _effective_fixed_point(rhs: MeanFieldRHS, y: np.ndarray, opts: SteadyStateOptions):
    """Fixed point whose group vectors are the components ρ_k = m_k·B̂_k of ``y`` along the fields B_k.

    On the invariant tori of undamped precessions α is constant and every group precesses about its field,
    so ρ_k is conserved there and the torus is centred on the fixed point with group lengths |ρ_k|.
    """
    K, M = rhs.n_groups, rhs.n_modes
    m = _groups(y, K)
    h = 4.0 * np.asarray(rhs.g0)[:, None] * (y[:, 3 * K : 3 * K + M] @ rhs.f)
    field = np.stack([np.broadcast_to(2.0 * np.asarray(rhs.omega)[:, None], h.shape), np.zeros_like(h), h], axis=-1)
    unit = field / np.maximum(np.linalg.norm(field, axis=-1, keepdims=True), 1e-300)
    rho = np.sum(m * unit, axis=-1)
    seed = y.copy()
    for a in range(3):
        seed[:, a * K : (a + 1) * K] = rho * unit[..., a]
    return newton(rhs, seed, np.abs(rho), tol=opts.newton_tol, max_iter=opts.newton_max_iter)


def _windows(opts: SteadyStateOptions) -> list[tuple[float, float, int]]:
    """(start, end, samples) of the integration windows: doubling lengths, the last one densely sampled."""
    probe = min(opts.probe_length, 0.5 * opts.t_max)
    out, t, w = [], 0.0, min(opts.first_window, opts.t_max)
    while t + w < opts.t_max - probe - 1e-12 * opts.t_max:
        out.append((t, t + w, max(opts.samples, min(400, round(4 * w)))))
        t += w
        w = min(2.0 * w, opts.max_window)
    while opts.t_max - probe - t > 1e-12 * opts.t_max:  # fill up to the probe with windows of at most max_window
        end = min(t + opts.max_window, opts.t_max - probe)
        out.append((t, end, max(opts.samples, min(400, round(4 * (end - t))))))
        t = end
    out.append((t, opts.t_max, opts.probe_samples))
    return out


def _linearity(J, ys, F, ystar):
    """Over the samples (S, A, n) of a window: max ‖F(y) − J(y − y*)‖/‖J(y − y*)‖ and max ‖y − y*‖∞."""
    d = ys - ystar[None]
    lin = np.einsum("anm,sam->san", J, d, optimize=True)
    num = np.linalg.norm(F - lin, axis=2)
    den = np.linalg.norm(lin, axis=2)
    dist = np.max(np.abs(d), axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((dist > 1e-9) & (den > 0), num / den, 0.0)
    return ratio.max(axis=0), dist.max(axis=0)


@dataclass
class _Search:
    """What the windowed search carries from one window to the next, per point (B points)."""

    y: np.ndarray  # (B, n) current state
    extra: np.ndarray  # time integrated in probes on top of the common window schedule (autonomous equations)
    active: np.ndarray  # indices of the points still running
    prev_star: np.ndarray  # stable Newton point of the previous window (NaN: none)
    chain: np.ndarray  # successive windows whose stable Newton points agree
    history: np.ndarray  # distances of the trajectory from that point in the last three windows
    candidate: dict  # point → (fixed point, linearity, distance) of its last stable Newton point
    eff_prev: np.ndarray  # effective fixed point of the previous window (undamped precessions)
    no_attractor: np.ndarray  # successive windows with a steady oscillation and no stable point
    last_range: np.ndarray  # (B, M) range of the overlaps over the previous window
    last_centre: np.ndarray
    lossless: np.ndarray  # no mode the trajectory drives is damped: conservative flow, no attractor at all

    @classmethod
    def start(cls, rhs: MeanFieldRHS, y0: np.ndarray, M_full: int) -> _Search:
        B, n = y0.shape
        return cls(
            y=y0.copy(), extra=np.zeros(B), active=np.arange(B), prev_star=np.full((B, n), np.nan),
            chain=np.zeros(B, dtype=np.int64), history=np.full((B, 3), np.inf), candidate={},
            eff_prev=np.full((B, n), np.nan), no_attractor=np.zeros(B, dtype=np.int64),
            last_range=np.full((B, M_full), np.nan), last_centre=np.full((B, M_full), np.nan),
            lossless=np.all(np.asarray(rhs.kappa) == 0, axis=1) & (rhs.n_modes > 0),
        )


@dataclass
class _Window:
    """One integrated window of the points still running (A of them, S samples)."""

    t_a: float
    t_b: float
    times: np.ndarray  # (S,)
    sub: MeanFieldRHS  # the A running points' equations
    ys: np.ndarray  # (S, A, n) trajectory samples
    F: np.ndarray  # (S, A, n) vector field along them
    speed: np.ndarray  # (A,) max |dy/dt| over the window
    xi: np.ndarray  # (S, A, M) overlaps along the window


@dataclass
class _Candidates:
    """Newton points seeded from one window: the pick per point and every start (block 0: the end points)."""

    ystar: np.ndarray
    ok: np.ndarray
    code: np.ndarray
    pick: np.ndarray
    ystar_all: np.ndarray
    ok_all: np.ndarray
    it_all: np.ndarray
    res_all: np.ndarray


@dataclass
class _Attraction:
    """Whether each running point is attracted by its stable Newton point (or at rest on a fixed point)."""

    lin: np.ndarray
    dist: np.ndarray
    good: np.ndarray  # Newton converged to a stable point
    linear: np.ndarray  # accepted in the linear regime
    attracted: np.ndarray
    resting: np.ndarray


def _empty_search_outcome(B: int, n: int, M_full: int, y0: np.ndarray, opts: SteadyStateOptions) -> _Outcome:
    nan = np.full(B, np.nan)
    return _Outcome(
        status=np.full(B, _RUNNING), fixed=np.full((B, n), np.nan), final=y0.copy(), message=[""] * B,
        residual=nan.copy(), newton_iterations=np.zeros(B, dtype=np.int64), time_integrated=np.zeros(B),
        n_steps=np.zeros(B, dtype=np.int64), distance=nan.copy(), linearity=nan.copy(),
        leading=np.full((B, opts.n_eigenvalues), np.nan + 0j), decay_rate=nan.copy(), excited_rate=nan.copy(),
        settle_time=nan.copy(), undamped_amplitude=nan.copy(), overlap_min=np.full((B, M_full), np.nan),
        overlap_max=np.full((B, M_full), np.nan), period=nan.copy(),
    )


def _find(rhs: MeanFieldRHS, y0: np.ndarray, lengths: np.ndarray, xi_map, opts: SteadyStateOptions,
          report=None) -> _Outcome:
    """The windowed search for B points at once (see the module docstring).

    ``xi_map = (A, b)`` with shapes (B, n, M) and (B, M) gives the overlaps of all M patterns of each point
    as y @ A + b (for ranges and messages). Per window: integrate (step 1), Newton from the trajectory (2),
    attraction tests (4) and acceptance with stability (3, 5), the oscillation probe and the budget (6).
    """
    B, n = y0.shape
    xi_A, xi_b = xi_map
    res = _empty_search_outcome(B, n, xi_A.shape[2], y0, opts)
    s = _Search.start(rhs, y0, xi_A.shape[2])
    for t_a, t_b, samples in _windows(opts):
        if s.active.size == 0:
            break
        w = _integrate_window(rhs, s, res, t_a, t_b, samples, xi_A, xi_b, opts)
        if w is None:
            break
        nt = _newton_from_window(w, lengths[s.active], opts)
        att = _attraction(w, s, nt, opts)
        _accept(w, s, res, lengths, nt, att, opts)
        _remember_candidates(s, nt, att)
        probe, pt, yp = _probe_oscillations(w, s, res, att.good, xi_A, xi_b, opts)
        _spend_budget(rhs, w, s, res, probe, pt, yp, xi_A, xi_b, opts)
        s.active = s.active[res.status[s.active] == _RUNNING]
        if report is not None:
            report(B - s.active.size)
    return res


def _integrate_window(rhs, s: _Search, res: _Outcome, t_a, t_b, samples, xi_A, xi_b, opts) -> _Window | None:
    """Step 1: integrate the running points over [t_a, t_b]; points whose integration gives up are not converged.
    Returns None when no point is left running."""
    active = s.active
    times = np.linspace(t_a, t_b, samples + 1)
    sub = rhs.take(active)
    ys, stats = integrate(sub, s.y[active], times, rtol=opts.rtol, atol=opts.atol, max_steps=opts.max_steps)
    res.n_steps[active] += stats.n_steps
    if not np.all(stats.success):
        for j in np.nonzero(~stats.success)[0]:
            p = active[j]
            good = np.nonzero(np.all(np.isfinite(ys[:, j]), axis=1))[0][-1]
            res.final[p] = ys[good, j]
            res.time_integrated[p] = times[good] + s.extra[p]
            res.status[p] = _NOT_CONVERGED
            res.message[p] = f"integration gave up after t = {times[good] + s.extra[p]:.6g}: {stats.reason[j]}"
        keep = stats.success
        active, ys, sub = active[keep], ys[:, keep], sub.take(np.nonzero(keep)[0])
        s.active = active
        if active.size == 0:
            return None
    A, S, n = active.size, ys.shape[0], ys.shape[2]
    s.y[active] = ys[-1]
    res.final[active] = ys[-1]
    res.time_integrated[active] = t_b + s.extra[active]
    xi = np.einsum("san,anm->sam", ys, xi_A[active]) + xi_b[active]
    res.overlap_min[active] = xi.min(axis=0)
    res.overlap_max[active] = xi.max(axis=0)
    F = sub.take(np.tile(np.arange(A), S))(ys.reshape(S * A, n)).reshape(S, A, n)
    return _Window(t_a, t_b, times, sub, ys, F, np.max(np.abs(F), axis=(0, 2)), xi)


def _newton_from_window(w: _Window, lengths: np.ndarray, opts) -> _Candidates:
    """Step 2: Newton from several points of the trajectory, all starts of all points in one batch: the end point,
    the window average (plain and with the group vectors rescaled to their conserved lengths) and samples.
    Per point a converged stable candidate wins, then any converged one; among those the nearest the trajectory."""
    sub, ys = w.sub, w.ys
    S, A = ys.shape[:2]
    mean = ys.mean(axis=0)
    centre = mean.copy()
    for k in range(sub.n_groups):
        v = centre[:, [k, sub.n_groups + k, 2 * sub.n_groups + k]]
        norm = np.linalg.norm(v, axis=1)
        scale_k = np.where(norm > 0, lengths[:, k] / np.where(norm > 0, norm, 1.0), 0.0)
        scale_k = np.where(np.isnan(lengths[:, k]), 1.0, scale_k)  # not conserved (spin dissipation): the average
        centre[:, [k, sub.n_groups + k, 2 * sub.n_groups + k]] = v * scale_k[:, None]
    picks = [ys[(S - 1) * q // 5] for q in range(1, 5)]
    seeds = np.concatenate([ys[-1], mean, centre] + picks)
    n_seeds = seeds.shape[0] // A
    rows_all = np.tile(np.arange(A), n_seeds)
    sub_all = sub.take(rows_all)
    ystar_all, ok_all, it_all, res_all = newton(sub_all, seeds, lengths[rows_all], tol=opts.newton_tol,
                                                max_iter=opts.newton_max_iter)
    ok_all &= np.all(np.isfinite(ystar_all), axis=1)
    ystar_all = np.where(ok_all[:, None], ystar_all, seeds)
    code_all = np.full(ok_all.shape, _UNSTABLE)
    conv = np.nonzero(ok_all)[0]
    if conv.size:
        code_all[conv] = stability(sub_all.take(conv), ystar_all[conv], lengths[rows_all[conv]],
                                   eig_tol=opts.eig_tol, n_eigenvalues=1).code
    few = ys[:: max(1, S // 32)]
    near = np.mean(np.max(np.abs(few[:, rows_all] - ystar_all[None]), axis=2), axis=0)
    score = (np.where(ok_all, 0.0, 4.0) + np.where(code_all == _STABLE, 0.0, 2.0)
             + np.minimum(near, 1e6) * 1e-7).reshape(n_seeds, A)
    pick = np.argmin(score, axis=0) * A + np.arange(A)
    return _Candidates(ystar_all[pick], ok_all[pick], code_all[pick], pick, ystar_all, ok_all, it_all, res_all)


def _attraction(w: _Window, s: _Search, nt: _Candidates, opts) -> _Attraction:
    """Step 4: is the trajectory attracted by its stable Newton point (linear regime, or a decaying oscillation),
    or at rest on a fixed point? Updates the chain of agreeing windows and the distance history."""
    active, ys, A = s.active, w.ys, s.active.size
    ystar = nt.ystar
    lin, dist = _linearity(jacobian(w.sub, ystar), ys, w.F, ystar)
    good = nt.ok & (nt.code == _STABLE)
    consistent = good & (np.max(np.abs(ystar - s.prev_star[active]), axis=1) <= opts.same_tol)
    s.chain[active] = np.where(consistent, s.chain[active] + 1, np.where(good, 1, 0))
    hist = np.where(consistent[:, None], s.history[active], np.inf)
    hist = np.concatenate([hist[:, 1:], dist[:, None]], axis=1)
    s.history[active] = hist
    tiny = dist <= 1e-6
    # linear regime: two agreeing windows, the vector field is close to its linearisation, not moving away
    linear = (s.chain[active] >= 2) & (lin <= opts.linearity) & ((hist[:, 2] <= 1.02 * hist[:, 1]) | tiny)
    # decaying oscillation: four agreeing windows, the distance shrinking window after window
    shrink = 1.0 - opts.shrink
    decaying = (s.chain[active] >= 4) & (hist[:, 2] <= shrink * hist[:, 1]) & (hist[:, 1] <= shrink * hist[:, 0]) & (
        lin <= 1.0)
    attracted = good & (linear | decaying)
    # a trajectory that did not move during the whole window sits on the fixed point Newton finds next to it
    scale = 1.0 + np.max(np.abs(ys[-1]), axis=1)
    resting = ~attracted & (w.speed <= opts.rest_tol * scale) & nt.ok_all[:A] & (
        np.max(np.abs(nt.ystar_all[:A] - ys[-1]), axis=1) <= 1e3 * opts.rest_tol * scale)
    return _Attraction(lin, dist, good, linear, attracted, resting)


def _accept(w: _Window, s: _Search, res: _Outcome, lengths, nt: _Candidates, att: _Attraction, opts) -> None:
    """Steps 3 and 5: classify the fixed points of the attracted and resting points and record them; a stable
    point whose trajectory keeps undamped precessions is accepted at the torus centre once two windows agree."""
    active, ys, sub = s.active, w.ys, w.sub
    A = active.size
    done = np.nonzero(att.attracted | att.resting)[0]
    if not done.size:
        return
    rest = att.resting[done]
    yfix = np.where(rest[:, None], nt.ystar_all[:A][done], nt.ystar[done])
    st = stability(sub.take(done), yfix, lengths[active[done]], deviation=ys[-1][done] - yfix,
                   eig_tol=opts.eig_tol, n_eigenvalues=opts.n_eigenvalues)
    undamped_left = (st.code == _STABLE) & (st.undamped_amplitude > opts.undamped_tol) & ~rest
    newton_it = np.where(rest, nt.it_all[:A][done], nt.it_all[nt.pick][done])
    residual = np.where(rest, nt.res_all[:A][done], nt.res_all[nt.pick][done])
    if np.any(undamped_left):
        # undamped precessions persist: the trajectory ends on a torus around the fixed point whose group
        # vectors have the effective lengths ρ_k = m_k·B̂_k (conserved there); accept that fixed point once
        # two successive windows agree on it
        u = np.nonzero(undamped_left)[0]
        y_eff, ok_eff, it_eff, res_eff = _effective_fixed_point(sub.take(done[u]), ys[-1][done[u]], opts)
        prev = s.eff_prev[active[done[u]]]
        agree = ok_eff & (np.max(np.abs(y_eff - prev), axis=1) <= opts.undamped_tol)
        s.eff_prev[active[done[u]]] = np.where(ok_eff[:, None], y_eff, np.nan)
        keep = np.ones(done.size, dtype=bool)
        keep[u[~agree]] = False
        yfix[u[agree]] = y_eff[agree]
        newton_it[u[agree]] = it_eff[agree]
        residual[u[agree]] = res_eff[agree]
        if np.any(agree):
            eff_len = np.linalg.norm(_groups(y_eff[agree], sub.n_groups), axis=-1)
            st_eff = stability(sub.take(done[u[agree]]), y_eff[agree], eff_len, eig_tol=opts.eig_tol,
                               n_eigenvalues=opts.n_eigenvalues)
            st.leading[u[agree]] = st_eff.leading
            st.decay_rate[u[agree]] = st_eff.decay_rate
        done, rest, yfix, newton_it, residual, undamped_left = (
            done[keep], rest[keep], yfix[keep], newton_it[keep], residual[keep], undamped_left[keep])
        st = Stability(**{f.name: getattr(st, f.name)[keep] for f in fields(Stability)})
    if not done.size:
        return
    dist_fix = np.max(np.abs(ys[:, done] - yfix[None]), axis=(0, 2))
    code_fix = st.code.copy()
    code_fix[undamped_left] = _MARGINAL
    pts = active[done]
    res.status[pts] = code_fix
    res.fixed[pts] = yfix
    res.residual[pts] = residual
    res.newton_iterations[pts] = newton_it
    res.distance[pts] = dist_fix
    res.linearity[pts] = np.where(rest, 0.0, att.lin[done])
    res.leading[pts] = st.leading
    res.decay_rate[pts] = st.decay_rate
    res.excited_rate[pts] = st.excited_rate
    res.settle_time[pts] = st.settle_time
    res.undamped_amplitude[pts] = st.undamped_amplitude
    lin = att.lin
    for j, p in enumerate(pts):
        if rest[j]:
            text = (f"the trajectory is at rest on a fixed point over t ∈ [{w.t_a:.6g}, {w.t_b:.6g}] "
                    f"(max |dy/dt| = {w.speed[done[j]]:.2e})")
        elif att.linear[done[j]]:
            text = (f"stable fixed point attracting the trajectory: Newton points from {s.chain[p]} successive "
                    f"windows agree, the last window is in its linear regime (nonlinearity {lin[done[j]]:.2g}) "
                    f"at distance {dist_fix[j]:.2e}; slowest excited decay rate {st.excited_rate[j]:.3g}")
        else:
            h = s.history[p]
            text = (f"stable fixed point attracting the trajectory: Newton points from {s.chain[p]} successive "
                    f"windows agree and the oscillation around it shrinks window after window (distance "
                    f"{h[0]:.3g} → {h[1]:.3g} → {h[2]:.3g}), not yet in its linear regime (nonlinearity "
                    f"{lin[done[j]]:.2g}); slowest excited decay rate {st.excited_rate[j]:.3g}")
        if undamped_left[j]:
            text += (f"; the trajectory keeps an amplitude {st.undamped_amplitude[j]:.2e} in undamped group "
                     "precessions invisible to the modes: overlaps and occupations are stationary, the group "
                     "Bloch vectors precess about the reported ones, whose lengths are the conserved "
                     "components m_k·B_k/|B_k| along the fields")
        elif code_fix[j] == _UNSTABLE:
            text += f"; that fixed point is unstable (max Re λ = {-st.decay_rate[j]:.3g})"
        elif code_fix[j] == _MARGINAL:
            text += f"; its reduced spectrum touches the imaginary axis (max Re λ = {-st.decay_rate[j]:.3g})"
        res.message[p] = text


def _remember_candidates(s: _Search, nt: _Candidates, att: _Attraction) -> None:
    """Keep each point's stable Newton point for the next window and for the final diagnosis."""
    active = s.active
    s.prev_star[active] = np.where(att.good[:, None], nt.ystar, np.nan)
    for j in range(active.size):
        if att.good[j]:
            s.candidate[int(active[j])] = (nt.ystar[j], att.lin[j], att.dist[j])
        else:
            s.candidate.pop(int(active[j]), None)


def _probe_oscillations(w: _Window, s: _Search, res: _Outcome, good, xi_A, xi_b, opts):
    """Step 6, early: a persistent oscillation without any stable fixed point in sight (or a lossless flow) is
    confirmed on a dense probe window and stopped as not stationary. Returns (probe indices, times, states)."""
    active, t_b = s.active, w.t_b
    ranges, centres = np.ptp(w.xi, axis=0), 0.5 * (w.xi.max(axis=0) + w.xi.min(axis=0))
    spread = ranges.max(axis=1)
    tol = 1e-2 * spread[:, None]
    steady_osc = (np.all(np.abs(ranges - s.last_range[active]) <= tol, axis=1)
                  & np.all(np.abs(centres - s.last_centre[active]) <= tol, axis=1) & (spread > 1e-6))
    s.no_attractor[active] = np.where(good | ~steady_osc, 0, s.no_attractor[active] + 1)
    s.last_range[active], s.last_centre[active] = ranges, centres
    room = t_b + s.extra[active] + opts.probe_length <= opts.t_max  # probes count against the budget
    pt = yp = None
    probe = np.nonzero(((s.no_attractor[active] >= 3) | s.lossless[active]) & room
                       & (res.status[active] == _RUNNING))[0]
    if probe.size:
        span = opts.probe_length
        pt = np.linspace(t_b, t_b + span, opts.probe_samples + 1)
        yp, sp = integrate(w.sub.take(probe), w.ys[-1][probe], pt, rtol=opts.rtol, atol=opts.atol,
                           max_steps=opts.max_steps)
        for k, p in enumerate(active[probe]):
            res.n_steps[p] += sp.n_steps[k]
            if not sp.success[k]:
                continue
            s.y[p] = res.final[p] = yp[-1, k]
            s.extra[p] += span
            res.time_integrated[p] = t_b + s.extra[p]
            _diagnose(res, int(p), pt, yp[:, k], w.sub.take([probe[k]]), None, xi_A[p], xi_b[p], opts, early=True,
                      conservative=bool(s.lossless[p]))
            if res.status[p] != _NOT_STATIONARY:  # not periodic: keep integrating
                res.status[p] = _RUNNING
                res.message[p] = ""
                s.no_attractor[p] = -3  # and probe again only after a while
            else:
                res.overlap_min[p] = (yp[:, k] @ xi_A[p] + xi_b[p]).min(axis=0)
                res.overlap_max[p] = (yp[:, k] @ xi_A[p] + xi_b[p]).max(axis=0)
    return probe, pt, yp


def _spend_budget(rhs, w: _Window, s: _Search, res: _Outcome, probe, pt, yp, xi_A, xi_b, opts) -> None:
    """Step 6, at the end: points whose budget is spent (probes count too) get the verdict from this window, the
    densely sampled last one for points that follow the schedule to the end."""
    active = s.active
    spent = np.nonzero((res.status[active] == _RUNNING) & (w.t_b + s.extra[active] >= opts.t_max * (1 - 1e-12)))[0]
    for j in spent:
        p = int(active[j])
        trajectory = yp[:, list(probe).index(j)] if probe.size and j in probe else w.ys[:, j]
        when = pt if probe.size and j in probe else w.times
        _diagnose(res, p, when, trajectory, rhs.take([p]), s.candidate.get(p), xi_A[p], xi_b[p], opts)


def _diagnose(res: _Outcome, p: int, times: np.ndarray, traj: np.ndarray, rhs1, candidate, xi_A, xi_b, opts,
              early=False, conservative=False):
    """Verdict for a point that did not settle, from its states (S, n) over its last, densely sampled window.

    Periodic: successive returns to a Poincaré section agree to 1e-4 of the orbit's size (``not stationary``
    with the period; the only verdict reached before the budget is spent). At the end of the budget, a
    non-periodic motion whose ranges and centres agree to 1e-3 between the two halves of the window is
    ``not stationary`` too; anything else is ``not converged``. With ``conservative`` (no damped mode) a
    moving trajectory is ``not stationary`` at once: volume-preserving dynamics has no attractor.
    """
    xi = traj @ xi_A + xi_b
    spread = float(np.ptp(traj, axis=0).max())
    period, mismatch = _poincare(traj, rhs1, times)
    periodic = np.isfinite(period) and mismatch <= 1e-4 * spread
    mu = int(np.argmax(np.ptp(xi, axis=0)))
    where = (f"stopped at t = {times[-1]:.6g} before the budget t_max = {opts.t_max:g}" if early
             else f"time budget t_max = {opts.t_max:g} spent")
    osc = f"(largest for pattern {mu + 1}: {xi[:, mu].min():.6g} … {xi[:, mu].max():.6g})"
    res.status[p] = _NOT_CONVERGED
    if candidate is not None and not early:
        ystar, lin, dist = candidate
        target = np.abs(ystar @ xi_A + xi_b)
        res.message[p] = (f"{where} while approaching a stable fixed point (|ξ| = {np.round(target, 6).tolist()}) "
                          f"that could not be verified as the trajectory's end: distance {dist:.2e}, nonlinearity "
                          f"{lin:.2g} (accepted ≤ {opts.linearity:g}), or Newton points of successive windows differ")
        return
    if periodic:
        res.status[p] = _NOT_STATIONARY
        res.period[p] = period
        res.message[p] = (f"{where}: the trajectory is periodic with period {period:.8g} (returns to a Poincaré "
                          f"section agree to {mismatch:.1e}) and the overlaps oscillate {osc}; no stable fixed point "
                          "attracts it")
        return
    if conservative and spread > 1e-12:
        res.status[p] = _NOT_STATIONARY
        res.message[p] = (f"{where}: no mode the trajectory drives is damped (κ = 0), so the dynamics conserves phase-"
                          f"space volume and has no attractor; the trajectory moves on, not periodically, and the "
                          f"overlaps oscillate {osc} over the last window")
        return
    if early:
        return
    half = traj.shape[0] // 2
    a, b = traj[:half], traj[half:]
    shift = max(np.abs(np.ptp(a, axis=0) - np.ptp(b, axis=0)).max(),
                np.abs(a.max(axis=0) + a.min(axis=0) - b.max(axis=0) - b.min(axis=0)).max() / 2)
    if spread > 1e-6 and shift <= 1e-3 * spread:
        res.status[p] = _NOT_STATIONARY
        res.message[p] = (f"{where}: the overlaps keep oscillating, not periodically, {osc}; ranges and centres of the "
                          f"state agree to {shift / spread:.1e} between the halves of the last window and no stable "
                          "fixed point attracts the trajectory")
    else:
        res.message[p] = (f"{where}: the trajectory is still changing (ranges or centres of the state move by "
                          f"{shift:.2g} between the halves of the last window, overlaps {osc}) and Newton found no "
                          "stable fixed point that attracts it")


def _poincare(traj: np.ndarray, rhs1, times: np.ndarray) -> tuple[float, float]:
    """Period and return mismatch from upward crossings of the widest component through its mid value.

    Crossing times and states are interpolated with cubic Hermite polynomials (using dy/dt from ``rhs1``).
    Returns (NaN, inf) unless there are at least four crossings with regular gaps (spread < 1e-3).
    """
    c = int(np.argmax(np.ptp(traj, axis=0)))
    s = traj[:, c] - 0.5 * (traj[:, c].max() + traj[:, c].min())
    up = np.nonzero((s[:-1] < 0) & (s[1:] >= 0))[0]
    if up.size < 4:
        return np.nan, np.inf
    F = rhs1.take(np.zeros(2 * up.size, dtype=np.int64))(np.concatenate([traj[up], traj[up + 1]]))
    F0, F1 = F[: up.size], F[up.size :]
    h = times[up + 1] - times[up]
    tc, yc = np.empty(up.size), np.empty((up.size, traj.shape[1]))
    for i, k in enumerate(up):
        y0, y1, d0, d1 = traj[k], traj[k + 1], F0[i] * h[i], F1[i] * h[i]

        def hermite(u, y0=y0, y1=y1, d0=d0, d1=d1):
            return ((2 * u**3 - 3 * u**2 + 1) * y0 + (u**3 - 2 * u**2 + u) * d0 + (-2 * u**3 + 3 * u**2) * y1
                    + (u**3 - u**2) * d1)

        u = s[k] / (s[k] - s[k + 1])
        for _ in range(8):  # Newton on the crossing condition of component c
            val = hermite(u)[c] - (traj[:, c].max() + traj[:, c].min()) / 2
            der = ((6 * u**2 - 6 * u) * y0[c] + (3 * u**2 - 4 * u + 1) * d0[c] + (-6 * u**2 + 6 * u) * y1[c]
                   + (3 * u**2 - 2 * u) * d1[c])
            if der == 0:
                break
            u = min(max(u - val / der, 0.0), 1.0)
        tc[i] = times[k] + u * h[i]
        yc[i] = hermite(u)
    gaps = np.diff(tc)
    if gaps.mean() <= 0 or np.ptp(gaps) > 1e-3 * gaps.mean():
        return np.nan, np.inf
    return float((tc[-1] - tc[0]) / (tc.size - 1)), float(np.abs(yc[-1] - yc[0]).max())
