"""A batched Dormand–Prince 8(5,3) integrator with per-point step size and error control, which hands stiff
points to an implicit method and stops hopeless ones early with a verdict.

Every point of the batch carries its own time, step size and error estimate: a step is accepted or
rejected point by point, judged by that point's own max-norm error (never an RMS over the batch, where
one stiff point could hide behind the others). All points advance together as one array operation; points
that have finished drop out of the arrays. Output times are hit exactly (steps are clamped to them), so
no interpolation is involved. The tableau is scipy's DOP853 (Hairer, Nørsett & Wanner).

**Stiff points** (the bad-cavity limit κ ≫ Ω, g0: the modes decay much faster than anything the spins do).
Every accepted step estimates h·|λ| = h‖f(y₁) − f(Y₁₂)‖/‖y₁ − Y₁₂‖ from its last stage, as Hairer's DOP853
does; 15 accepted steps with h·|λ| above 6.1 (the edge of the method's stability region) without 6 calmer
ones in between mark the point as stiff: its step size is limited by stability, not accuracy. If the
explicit method would still need more than :data:`STIFF_MIN_REMAINING` steps at that step size, the point
leaves the batch and continues with scipy's implicit Radau IIA method (order 5) and the analytic Jacobian
(:func:`~opendicke.meanfield.jacobian.jacobian`), output times hit exactly. Measured at κ = 10⁴ (Fig. 3
model otherwise, t = 10, one point, rtol 1e-10): DOP853 needs 7913 steps (≈ 39 s here), Radau 1.5 s, and
both agree with the bad-cavity answer ξ₁ = cos(2Ωt) (coupling negligible at g0 ≪ g_c ≈ 2041).

**Hopeless points.** A fast oscillation (Ω = 10⁷, or g0 = 10⁴ where the spins precess at ≈ 10⁸ about
their field) is not stiff: an implicit method has to resolve it as well and does not pay (measured: Radau
took 150 s for t = 10⁻⁴ at Ω = 10⁷). After 200 accepted steps a point whose projected step count
``n_steps + (t_end − t)/h`` exceeds ``max_steps`` stops at once with the outcome ``too many steps`` and the
projected count, instead of grinding for hours towards the same failure.

BLAS runs single-threaded inside :func:`integrate`: the products here are thin (a few rows), where
multithreaded BLAS is slower, much slower on a loaded machine (measurements: docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from scipy.integrate._ivp import dop853_coefficients as _dop
from threadpoolctl import threadpool_limits

__all__ = ["integrate", "IntegrationStats", "Outcome", "STIFF_HLAMBDA", "STIFF_STEPS", "STIFF_MIN_REMAINING",
           "PROJECTION_AFTER", "CHECK_EVERY"]

_NS = _dop.N_STAGES
_A = _dop.A[:_NS, :_NS]
_B = _dop.B
_E3 = _dop.E3
_E5 = _dop.E5
_ORDER_EXP = -1.0 / 8.0  # error estimator of order 7
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
#: h·|λ| above this on an accepted step counts as stability-limited (Hairer's DOP853 uses 6.1).
STIFF_HLAMBDA = 6.1
#: Stability-limited accepted steps (without 6 calm ones in between) that make a point stiff.
STIFF_STEPS = 15
#: A stiff point goes implicit only if the explicit method still has more steps than this to go: near a
#: damped fixed point DOP853 is mildly stability-limited (h·|λ| ≈ 6 at h ≈ 1 in the Fig. 3 model), and there
#: Radau at the same tolerance needs *more* steps (measured: a −pattern-4 start at g0 = 1, t = 1000).
STIFF_MIN_REMAINING = 5000
#: The stiffness and projection checks run on every CHECK_EVERY-th iteration of the batch.
CHECK_EVERY = 4
#: Accepted steps after which a point's projected step count is compared with ``max_steps``.
PROJECTION_AFTER = 200


class Outcome(StrEnum):
    """How the integration of one point ended (string values, stored as such in results; a ``StrEnum``, so a member
    compares equal to its value inside numpy arrays too, where ``(str, Enum)`` would become "Outcome.SUCCESS")."""

    SUCCESS = "success"
    SUCCESS_IMPLICIT = "success (implicit Radau after stiffness)"
    TOO_MANY_STEPS = "too many steps"
    STEP_UNDERFLOW = "step size underflow"
    NON_FINITE = "non-finite values"

    @property
    def ok(self) -> bool:
        return self in (Outcome.SUCCESS, Outcome.SUCCESS_IMPLICIT)


@dataclass
class IntegrationStats:
    """Per-point bookkeeping of one integration."""

    n_steps: np.ndarray  # accepted steps per point
    n_rejected: np.ndarray  # rejected steps per point
    success: np.ndarray  # False where the point gave up (outputs after that are NaN)
    n_rhs: int  # right-hand-side evaluations of the whole (shrinking) batch
    message: str = ""
    outcome: np.ndarray = field(default=None)  # Outcome value per point (str)
    reason: np.ndarray = field(default=None)  # human-readable reason per point ("" when it succeeded)
    stiff: np.ndarray = field(default=None)  # True where the point was handed to the implicit method

    def __post_init__(self):
        B = self.success.size
        if self.outcome is None:
            self.outcome = np.full(B, Outcome.SUCCESS.value, dtype=object)
        if self.reason is None:
            self.reason = np.full(B, "", dtype=object)
        if self.stiff is None:
            self.stiff = np.zeros(B, dtype=bool)

    def fail(self, point: int, outcome: Outcome, reason: str) -> None:
        self.success[point] = False
        self.outcome[point] = outcome.value
        self.reason[point] = reason


def _max_norm(x: np.ndarray) -> np.ndarray:
    return np.max(np.abs(x), axis=1)


def _initial_step(rhs, y0, f0, rtol, atol, span):
    scale = atol + np.abs(y0) * rtol
    d0 = _max_norm(y0 / scale)
    d1 = _max_norm(f0 / scale)
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = np.where(small, 1e-6, 0.01 * d0 / np.where(d1 == 0, 1.0, d1))
    h0 = np.minimum(h0, span)
    f1 = rhs(y0 + h0[:, None] * f0)
    d2 = _max_norm((f1 - f0) / scale) / h0
    dmax = np.maximum(d1, d2)
    h1 = np.where(dmax <= 1e-15, np.maximum(1e-6, h0 * 1e-3), (0.01 / np.where(dmax == 0, 1.0, dmax)) ** (1.0 / 8.0))
    return np.minimum(np.minimum(100 * h0, h1), span)


def integrate(
    rhs,
    y0: np.ndarray,
    times: np.ndarray,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 1_000_000,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, IntegrationStats]:
    """Integrate ẏ = rhs(y) for a batch of points from ``times[0]`` and return y at every output time.

    Parameters
    ----------
    rhs:
        Callable on arrays of shape (B', n) with a ``take(rows)`` method giving the right-hand side of a
        subset of the batch (see :class:`~opendicke.meanfield.equations.MeanFieldRHS`).
    y0:
        Initial states, shape (B, n), at ``times[0]``.
    times:
        Increasing output times, shape (T,), shared by all points; ``times[0]`` is the start.
    rtol, atol:
        Per-point tolerances: a step is accepted when max_i |err_i| / (atol + rtol·|y_i|) ≤ 1.
    max_steps:
        Accepted plus rejected steps allowed per point before it is marked as failed; a point whose projected
        count exceeds it stops early (module docstring).
    progress:
        Called now and then with the fraction of the time span done by the slowest point.

    Returns
    -------
    ys, stats:
        ``ys`` has shape (T, B, n); points that failed hold NaN after the failure. ``stats.outcome`` and
        ``stats.reason`` say per point how it ended, ``stats.stiff`` which points went implicit.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _integrate(rhs, y0, times, rtol, atol, max_steps, progress)


def _integrate(rhs, y0, times, rtol, atol, max_steps, progress):
    y0 = np.atleast_2d(np.asarray(y0, dtype=float))
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or times.size < 1 or np.any(np.diff(times) <= 0):
        raise ValueError("times must be a non-empty, strictly increasing 1-D array")
    if not (rtol > 0 and atol >= 0):
        raise ValueError(f"need rtol > 0 and atol ≥ 0, got rtol={rtol}, atol={atol}")
    B, n = y0.shape
    T = times.size
    ys = np.full((T, B, n), np.nan)
    ys[0] = y0
    n_steps = np.zeros(B, dtype=np.int64)
    n_rejected = np.zeros(B, dtype=np.int64)
    success = np.ones(B, dtype=bool)
    stats = IntegrationStats(n_steps, n_rejected, success, 0)
    if T == 1:
        return ys, stats

    t0, t_end, span = times[0], times[-1], times[-1] - times[0]
    y = y0.copy()
    f = rhs(y)
    h = _initial_step(rhs, y, f, rtol, atol, times[1] - t0)
    stats.n_rhs += 2
    t = np.full(B, t0)
    out = np.ones(B, dtype=np.int64)  # index of the next output time per point
    stiff_count = np.zeros(B, dtype=np.int64)  # stability-limited accepted steps (Hairer's IASTI)
    calm_count = np.zeros(B, dtype=np.int64)  # accepted steps below the stability edge since (NONSTI)
    handed_over = []  # points that continue with the implicit method after the batch
    active = np.arange(B)
    sub = rhs
    stages = np.empty((_NS + 1, B * n))
    iteration = 0

    while active.size:
        ya, fa, ha, ta = y[active], f[active], h[active], t[active]
        nb = active.size
        target = times[out[active]]
        remaining = target - ta
        clamp = ha >= remaining
        hs = np.where(clamp, remaining, ha)[:, None]

        flat = stages[:, : nb * n]  # contiguous rows: stage combinations are one matrix product each
        K = flat.reshape(_NS + 1, nb, n)
        K[0] = fa
        for s in range(1, _NS):
            arg = ya + hs * (_A[s, :s] @ flat[:s]).reshape(nb, n)
            K[s] = sub(arg)
        y_last_stage = arg  # the stage at c = 1, for the stiffness estimate
        y_new = ya + hs * (_B @ flat[:_NS]).reshape(nb, n)
        f_new = sub(y_new)
        K[_NS] = f_new
        stats.n_rhs += _NS

        scale = atol + rtol * np.maximum(np.abs(ya), np.abs(y_new))
        e5 = _max_norm((_E5 @ flat).reshape(nb, n) / scale)
        e3 = _max_norm((_E3 @ flat).reshape(nb, n) / scale)
        denom = np.sqrt(e5**2 + 0.01 * e3**2)
        err = hs[:, 0] * e5**2 / np.where(denom == 0, 1.0, denom)
        accept = err <= 1.0
        with np.errstate(divide="ignore"):
            factor = np.where(err == 0, _MAX_FACTOR, _SAFETY * err**_ORDER_EXP)
        factor = np.clip(factor, _MIN_FACTOR, _MAX_FACTOR)
        factor = np.where(accept, factor, np.minimum(factor, 1.0))
        h_next = hs[:, 0] * factor
        # after a step shortened only to land on an output time, keep the step the error allowed before
        h_next = np.where(clamp & accept, np.maximum(h_next, ha), h_next)

        # stiffness: h·|λ| along the last stage, as in Hairer's DOP853 (accepted, unclamped steps), judged on
        # every CHECK_EVERY-th iteration only (the norms cost ~20 % of a step in small batches otherwise)
        check = iteration % CHECK_EVERY == 0
        if check:
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                num = np.linalg.norm(f_new - K[_NS - 1], axis=1)
                den = np.linalg.norm(y_new - y_last_stage, axis=1)
                h_lambda = hs[:, 0] * num / np.where(den > 0, den, np.inf)
            judged = accept & ~clamp
            edge = judged & (h_lambda > STIFF_HLAMBDA)
            calm = judged & ~edge
            stiff_count[active[edge]] += 1
            calm_count[active[edge]] = 0
            calm_count[active[calm]] += 1
            stiff_count[active[calm & (calm_count[active] >= 6)]] = 0

        acc = active[accept]
        y[acc] = y_new[accept]
        f[acc] = f_new[accept]
        t[acc] = np.where(clamp[accept], target[accept], ta[accept] + hs[accept, 0])
        h[active] = h_next
        n_steps[acc] += 1
        n_rejected[active[~accept]] += 1

        landed = acc[clamp[accept]]
        if landed.size:
            ys[out[landed], landed] = y[landed]
            out[landed] += 1

        done = out[active] >= T
        underflow = h[active] <= 1e-14 * np.maximum(1.0, np.abs(t[active]))
        nonfinite = ~np.isfinite(err)
        budget = n_steps[active] + n_rejected[active] >= max_steps
        hopeless = stiff = np.zeros(nb, dtype=bool)
        if check:
            with np.errstate(divide="ignore", over="ignore"):
                still_to_go = (t_end - t[active]) / h[active]
            projected = n_steps[active] + n_rejected[active] + still_to_go
            hopeless = ~done & (n_steps[active] >= PROJECTION_AFTER) & (projected > max_steps)
            stiff = ~done & (stiff_count[active] >= STIFF_STEPS) & (still_to_go > STIFF_MIN_REMAINING)
        for j in np.nonzero(~done & (underflow | nonfinite | budget | hopeless | stiff))[0]:
            p = active[j]
            if nonfinite[j]:
                stats.fail(p, Outcome.NON_FINITE, f"non-finite values at t = {t[p]:.6g}")
            elif stiff[j]:
                handed_over.append(p)
                stats.stiff[p] = True
            elif underflow[j]:
                stats.fail(p, Outcome.STEP_UNDERFLOW, f"step size underflow (h = {h[p]:.1e}) at t = {t[p]:.6g}")
            else:
                projected_p = n_steps[p] + n_rejected[p] + (t_end - t[p]) / h[p]
                stats.fail(p, Outcome.TOO_MANY_STEPS, _too_many(max_steps, projected_p, t[p], h[p], t_end))
        keep = ~done & ~(underflow | nonfinite | budget | hopeless | stiff)
        if not np.all(keep):
            active = active[keep]
            sub = rhs.take(active) if active.size else rhs
        iteration += 1
        if progress is not None and iteration % 50 == 0 and active.size:
            progress(float((t[active].min() - t0) / span))

    for p in handed_over:
        _implicit(rhs, p, t[p], y[p], h[p], times, out[p], ys, stats, rtol, atol, max_steps)
    failed = ~stats.success
    if np.any(failed):
        kinds = sorted({str(o) for o in stats.outcome[failed]})
        stats.message = f"{int(failed.sum())} point(s) gave up ({', '.join(kinds)}): {stats.reason[failed][0]}"
    if progress is not None:
        progress(1.0)
    return ys, stats


def _too_many(max_steps: int, projected: float, t: float, h: float, t_end: float) -> str:
    return (f"needs about {projected:.1e} steps to reach t = {t_end:g} (more than max_steps = {max_steps}): step size "
            f"{h:.1e} at t = {t:.6g}, i.e. the dynamics oscillates on a time scale of ~{h:.0e}; not stiff, so an "
            f"implicit method would need as many steps (shorten the time span or raise max_steps)")


def _implicit(rhs, p, t, y, h, times, out_index, ys, stats, rtol, atol, max_steps) -> None:
    """Continue point ``p`` from (t, y) with scipy's Radau IIA, one solver per output interval (outputs exact)."""
    from scipy.integrate import Radau

    from .equations import MeanFieldRHS
    from .jacobian import jacobian

    one = rhs.take(np.array([p]))
    fun = lambda _t, v: one(v[None])[0]  # noqa: E731
    jac = (lambda _t, v: jacobian(one, v[None])[0]) if isinstance(one, MeanFieldRHS) else None  # noqa: E731
    t_end, steps = times[-1], 0
    for k in range(out_index, times.size):
        solver = Radau(fun, t, y, times[k], rtol=max(rtol, 1e-13), atol=atol, jac=jac,
                       first_step=min(max(h, 1e-12), times[k] - t))
        while solver.status == "running":
            message = solver.step()
            steps += 1
            if solver.status == "failed":
                stats.fail(p, Outcome.STEP_UNDERFLOW, f"implicit Radau failed at t = {solver.t:.6g}: {message}")
                break
            if not np.all(np.isfinite(solver.y)):
                stats.fail(p, Outcome.NON_FINITE, f"non-finite values in implicit Radau at t = {solver.t:.6g}")
                break
            step = solver.step_size or 0.0
            projected = stats.n_steps[p] + steps + (t_end - solver.t) / step if step > 0 else np.inf
            if steps >= PROJECTION_AFTER and projected > max_steps:
                stats.fail(p, Outcome.TOO_MANY_STEPS, f"stiff (handed to implicit Radau at t = {times[out_index - 1]:.6g} "
                           f"or later), and Radau too needs about {projected:.1e} steps (more than max_steps = "
                           f"{max_steps}) at step size {step:.1e}")
                break
        stats.n_rhs += solver.nfev
        if not stats.success[p]:
            break
        t, y, h = times[k], solver.y.copy(), solver.step_size or h
        ys[k, p] = y
    stats.n_steps[p] += steps
    if stats.success[p]:
        stats.outcome[p] = Outcome.SUCCESS_IMPLICIT.value
