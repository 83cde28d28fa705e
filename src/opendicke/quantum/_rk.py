"""A lean adaptive DOP853 (Hairer's 8(5,3) pair, scipy's tableau and step control) for large complex states.

scipy's ``DOP853`` combines the stages with ``np.dot(K.T, a)`` on a complex K and a real ``a``, which numpy
cannot hand to BLAS; on a density matrix of 10^5-10^6 entries that costs more than the right-hand side.
Here the stages are combined as one real matrix-vector product on the float view of K (as ``K.T @ a``, which
BLAS runs in one pass; ``a @ K`` is ten times slower here) (a single pass over
memory), and outputs come from the 7th-order dense output of the step that contains them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.integrate._ivp import dop853_coefficients as _C

_NS = _C.N_STAGES  # 12
_A = _C.A
_B = _C.B
_CC = _C.C
_E3 = _C.E3
_E5 = _C.E5
_D = _C.D
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
_EXPONENT = -1.0 / 8.0


def dop853(
    fun: Callable[[float, np.ndarray], np.ndarray],
    y0: np.ndarray,
    t_out: np.ndarray,
    on_output: Callable[[int, float, np.ndarray], None],
    *,
    rtol: float,
    atol: float,
    first_step: float | None = None,
    max_steps: int = 10**7,
) -> dict:
    """Integrate y' = fun(t, y) from t_out[0] through every t_out, calling ``on_output(i, t_i, y_i)``
    (also for i = 0). Error norm: RMS of err/(atol + rtol·max(|y|, |y_new|)), as scipy. Returns stats.

    BLAS runs single-threaded inside (the stage products are thin; on the shared 2-core machine
    multithreaded OpenBLAS made them up to 10x slower)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _dop853(fun, y0, t_out, on_output, rtol=rtol, atol=atol, first_step=first_step, max_steps=max_steps)


def _dop853(fun, y0, t_out, on_output, *, rtol, atol, first_step, max_steps) -> dict:
    t_out = np.asarray(t_out, dtype=float)
    y = np.array(y0, dtype=complex)
    n = y.size
    K = np.empty((_C.N_STAGES_EXTENDED, n), dtype=complex)
    Kr = K.view(np.float64)  # (stages, 2n)
    on_output(0, float(t_out[0]), y)
    if t_out.size == 1:
        return {"nfev": 0, "steps": 0, "rejected": 0}
    t = float(t_out[0])
    t_end = float(t_out[-1])
    f = fun(t, y)
    nfev = 1
    if first_step is None:
        scale = atol + np.abs(y) * rtol
        d0 = np.sqrt(np.mean(np.abs(y / scale) ** 2))
        d1 = np.sqrt(np.mean(np.abs(f / scale) ** 2))
        h = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        h = min(h, t_end - t)
    else:
        h = float(first_step)
    steps = rejected = 0
    i_out = 1
    while i_out < t_out.size:
        if steps + rejected >= max_steps:
            raise RuntimeError(f"DOP853: more than {max_steps} steps before t = {t_end}")
        h = min(h, t_end - t)
        # ---- one step
        K[0] = f
        for s in range(1, _NS):
            dy = Kr[:s].T @ (h * _A[s, :s])
            K[s] = fun(t + _CC[s] * h, y + dy.view(complex))
        y_new = y + (Kr[:_NS].T @ (h * _B)).view(complex)
        f_new = fun(t + h, y_new)
        K[_NS] = f_new
        nfev += _NS
        scale = atol + np.maximum(np.abs(y), np.abs(y_new)) * rtol
        err5 = (Kr[: _NS + 1].T @ _E5).view(complex) / scale
        err3 = (Kr[: _NS + 1].T @ _E3).view(complex) / scale
        e5 = np.vdot(err5, err5).real
        e3 = np.vdot(err3, err3).real
        err = 0.0 if e5 == 0 and e3 == 0 else abs(h) * e5 / np.sqrt((e5 + 0.01 * e3) * n)
        if err > 1.0 or not np.isfinite(err):
            factor = max(_MIN_FACTOR, _SAFETY * err**_EXPONENT) if np.isfinite(err) else _MIN_FACTOR
            h *= factor
            rejected += 1
            continue
        steps += 1
        t_new = t + h
        if t_out[i_out] <= t_new or t_new >= t_end:
            F = _dense(fun, t, h, y, y_new, f, f_new, K, Kr)
            nfev += 3
            while i_out < t_out.size and (t_out[i_out] <= t_new or (t_new >= t_end)):
                x = (t_out[i_out] - t) / h
                on_output(i_out, float(t_out[i_out]), y_new if t_out[i_out] >= t_new else _interpolate(F, y, x))
                i_out += 1
        factor = _MAX_FACTOR if err == 0 else min(_MAX_FACTOR, _SAFETY * err**_EXPONENT)
        t, y, f = t_new, y_new, f_new
        h *= factor
    return {"nfev": nfev, "steps": steps, "rejected": rejected}


def _dense(fun, t, h, y_old, y, f_old, f, K, Kr):
    for s in range(_NS + 1, _C.N_STAGES_EXTENDED):
        dy = Kr[:s].T @ (h * _A[s, :s])
        K[s] = fun(t + _CC[s] * h, y_old + dy.view(complex))
    F = np.empty((_C.INTERPOLATOR_POWER, y.size), dtype=complex)
    delta = y - y_old
    F[0] = delta
    F[1] = h * f_old - delta
    F[2] = 2 * delta - h * (f + f_old)
    F[3:] = np.ascontiguousarray((Kr.T @ (h * _D.T)).T).view(complex)
    return F


def _interpolate(F, y_old, x):
    out = np.zeros_like(y_old)
    for i, f in enumerate(F[::-1]):
        out += f
        out *= x if i % 2 == 0 else (1 - x)
    return out + y_old
