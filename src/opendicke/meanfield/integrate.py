"""A batched Dormand–Prince 8(5,3) integrator with per-point step size and error control.

Every point of the batch carries its own time, step size and error estimate: a step is accepted or
rejected point by point, judged by that point's own max-norm error (never an RMS over the batch, where
one stiff point could hide behind the others). All points advance together as one array operation; points
that have finished drop out of the arrays. Output times are hit exactly (steps are clamped to them), so
no interpolation is involved. The tableau is scipy's DOP853 (Hairer, Nørsett & Wanner).

BLAS runs single-threaded inside :func:`integrate`: the products here are thin (a few rows), where
multithreaded BLAS is slower, much slower on a loaded machine (measurements: docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate._ivp import dop853_coefficients as _dop
from threadpoolctl import threadpool_limits

__all__ = ["integrate", "IntegrationStats"]

_NS = _dop.N_STAGES
_A = _dop.A[:_NS, :_NS]
_B = _dop.B
_E3 = _dop.E3
_E5 = _dop.E5
_ORDER_EXP = -1.0 / 8.0  # error estimator of order 7
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0


@dataclass
class IntegrationStats:
    """Per-point bookkeeping of one integration."""

    n_steps: np.ndarray  # accepted steps per point
    n_rejected: np.ndarray  # rejected steps per point
    success: np.ndarray  # False where the point gave up (outputs after that are NaN)
    n_rhs: int  # right-hand-side evaluations of the whole (shrinking) batch
    message: str = ""


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
        Accepted plus rejected steps allowed per point before it is marked as failed.
    progress:
        Called now and then with the fraction of the time span done by the slowest point.

    Returns
    -------
    ys, stats:
        ``ys`` has shape (T, B, n); points that failed hold NaN after the failure.
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

    t0, span = times[0], times[-1] - times[0]
    y = y0.copy()
    f = rhs(y)
    h = _initial_step(rhs, y, f, rtol, atol, times[1] - t0)
    stats.n_rhs += 2
    t = np.full(B, t0)
    out = np.ones(B, dtype=np.int64)  # index of the next output time per point
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
            K[s] = sub(ya + hs * (_A[s, :s] @ flat[:s]).reshape(nb, n))
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

        bad = (n_steps[active] + n_rejected[active] >= max_steps) | (h[active] <= 1e-14 * np.maximum(1.0, np.abs(t[active])))
        bad |= ~np.isfinite(err)
        if np.any(bad):
            success[active[bad]] = False
            stats.message = (
                f"{int((~success).sum())} point(s) gave up (step size underflow, non-finite values or more than "
                f"{max_steps} steps)"
            )
        keep = (out[active] < T) & ~bad
        if not np.all(keep):
            active = active[keep]
            sub = rhs.take(active) if active.size else rhs
        iteration += 1
        if progress is not None and iteration % 50 == 0 and active.size:
            progress(float((t[active].min() - t0) / span))
    if progress is not None:
        progress(1.0)
    return ys, stats
