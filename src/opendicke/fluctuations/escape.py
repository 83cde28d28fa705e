"""Semiclassical (WKB / large-deviation) lifetime of the retrieved pattern of the M = 1 model.

At finite N_sp the two retrieval states ±ξ* are metastable; the rate at which the memory forgets is, for large
N_sp, ``τ ≍ exp(N_sp S*)``. This module computes the exponent S* from a WKB ansatz ``W ≍ exp(−N_sp S)`` for the
Wigner function of the cavity mode and of the collective spin written as one Holstein–Primakoff boson
(docs/semiclassical-lifetime.md has the derivation):

* ``H(z, p) = 2 Im h(z − iJp/2) − (κ/2)(q p_q + π p_π) + (κ/4)(p_q² + p_π²)`` with h the per-spin classical
  Hamiltonian (in a Holstein–Primakoff chart of the spin sphere) and z = (a, b, q, π) canonical, ħ = 1/N_sp;
* its truncation to second order in p is the truncated-Wigner (Gaussian, Freidlin–Wentzell) Hamiltonian
  ``H_G = p·f(z) + (κ/4)(p_q² + p_π²)`` (f = the mean-field vector field of paper Eq. 7).

S* is the action ∫ p dz of the zero-energy path from the retrieval point to the saddle that separates the two
basins (the normal state s = (−1, 0, 0), α = 0, one unstable direction above g_c):

1. the Gaussian instanton by a minimum-action method (noise as a control, L-BFGS with an exact discrete adjoint
   of the RK4 step, endpoint penalty raised to 1e8), generic for additive noise (:func:`minimum_action_gaussian`);
2. the full WKB instanton by multiple shooting on Hamilton's equations with fixed end points and duration,
   continued from the Gaussian one through ``H_ε = H_G + ε (H − H_G)``, ε: 0 → 1 (:func:`shoot_instanton`);
3. both at several durations T, with the T → ∞ limit from an Aitken extrapolation.

Solvers never print; results are xarray Datasets of kind ``"escape_action"``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp
import xarray as xr
from scipy.linalg import expm, solve_continuous_lyapunov
from scipy.optimize import minimize
from scipy.sparse.linalg import spsolve

from ..model import DickeModel
from ..results import model_attrs, register_kind

__all__ = ["EscapeOptions", "escape_action", "minimum_action_gaussian", "shoot_instanton", "continue_instanton",
           "ProjectedStart", "ProjectedEnd", "solve_projected", "continue_projected", "wkb_hamiltonian", "retrieval_point", "aitken", "LifetimeExtrapolation",
           "extrapolate_lifetime"]

ESCAPE_KIND = register_kind(
    "escape_action", variables=("action_gaussian", "action_quantum"), dims=("duration",),
    attrs=("action_gaussian_limit", "action_quantum_limit", "chart_tilt"),
    description="fluctuations.escape.escape_action")

_R2 = math.sqrt(2.0)


# ------------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class EscapeOptions:
    """Settings of :func:`escape_action`.

    durations: path durations T at which the action is reported (increasing; ``None``: T*, T* + 1/γ, T* + 2/γ,
    with T* the duration the continuation ended with and γ the slowest relaxation rate at the retrieval point);
    the path starts on the linear unstable manifold of the retrieval point, so T only sets how close to it.
    start_coupling: the coupling at which the instanton is first found from a minimum-action path (``None``:
    min(g0, 1.55 g_c)); from there it is continued in g0 in steps of at most coupling_step.
    start_duration: T of that first path. start_tolerance: largest quasi-potential ½ p·δz at the path's start
    during the continuation (T is lengthened above it). segments_per_time: shooting segments per unit time;
    substeps: RK4 steps per segment; mam_steps_per_time: control intervals per unit time of the minimum-action
    method; newton_tol: max-norm of the shooting residual; chart_tilt: rotation (about y) of the
    Holstein–Primakoff chart, ``None``: centred on the retrieval point.
    """

    durations: tuple[float, ...] | None = None
    start_coupling: float | None = None
    coupling_step: float = 0.005
    start_duration: float = 30.0
    start_tolerance: float = 5e-4
    segments_per_time: float = 2.0
    substeps: int = 10
    mam_steps_per_time: float = 20.0
    newton_tol: float = 1e-8
    chart_tilt: float | None = None

    def __post_init__(self):
        if self.durations is not None:
            d = tuple(float(x) for x in self.durations)
            if not d or any(not math.isfinite(x) or x <= 0 for x in d) or list(d) != sorted(set(d)):
                raise ValueError(f"durations must be positive, increasing and distinct, got {self.durations!r}")
            object.__setattr__(self, "durations", d)
        for name in ("segments_per_time", "mam_steps_per_time", "newton_tol", "coupling_step", "start_duration",
                     "start_tolerance"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if isinstance(self.substeps, bool) or not isinstance(self.substeps, int) or self.substeps < 1:
            raise ValueError(f"substeps must be a positive integer, got {self.substeps!r}")
        for name in ("chart_tilt", "start_coupling"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number or None, got {v!r}")


# ------------------------------------------------------------------------------------------------
# Generic Gaussian minimum-action method: dx = f(x) dt + B u dt, action ½∫|u|² dt


@nb.njit(cache=True)
def _rk4_step(f, x, params, dt, k1, k2, k3, k4, tmp):
    f(x, params, k1)
    tmp[:] = x + 0.5 * dt * k1
    f(tmp, params, k2)
    tmp[:] = x + 0.5 * dt * k2
    f(tmp, params, k3)
    tmp[:] = x + dt * k3
    f(tmp, params, k4)
    return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


@nb.njit(cache=True)
def _mam_forward(f, params, x0, u, dt, noise_index, noise_scale):
    """Strang splitting: half the control kick, one RK4 step of the drift, the other half kick."""
    K = u.shape[0]
    n = x0.shape[0]
    X = np.empty((K + 1, n))
    Y = np.empty((K, n))
    X[0] = x0
    k1 = np.empty(n); k2 = np.empty(n); k3 = np.empty(n); k4 = np.empty(n); tmp = np.empty(n)
    for k in range(K):
        y = X[k].copy()
        for j in range(noise_index.shape[0]):
            y[noise_index[j]] += 0.5 * dt * noise_scale[j] * u[k, j]
        Y[k] = y
        X[k + 1] = _rk4_step(f, y, params, dt, k1, k2, k3, k4, tmp)
        for j in range(noise_index.shape[0]):
            X[k + 1, noise_index[j]] += 0.5 * dt * noise_scale[j] * u[k, j]
    return X, Y


@nb.njit(cache=True)
def _mam_backward(f, vjp, params, Y, u, dt, noise_index, noise_scale, lam_end):
    """Exact discrete adjoint of :func:`_mam_forward`: gradient of ``lam_end · x_K`` with respect to u, and the
    adjoint (costate) at every step."""
    K, m = u.shape
    n = Y.shape[1]
    grad = np.empty((K, m))
    LAM = np.empty((K + 1, n))
    lam = lam_end.copy()
    LAM[K] = lam
    k1 = np.empty(n); k2 = np.empty(n); k3 = np.empty(n)
    s2 = np.empty(n); s3 = np.empty(n); s4 = np.empty(n)
    a = np.empty(n); b = np.empty(n); ybar = np.empty(n)
    for k in range(K - 1, -1, -1):
        y = Y[k]
        f(y, params, k1)
        s2[:] = y + 0.5 * dt * k1
        f(s2, params, k2)
        s3[:] = y + 0.5 * dt * k2
        f(s3, params, k3)
        s4[:] = y + dt * k3
        ybar[:] = lam
        a[:] = dt / 6.0 * lam
        vjp(s4, params, a, b)           # bar of stage 4 input
        ybar += b
        a[:] = dt / 3.0 * lam + dt * b
        vjp(s3, params, a, b)
        ybar += b
        a[:] = dt / 3.0 * lam + 0.5 * dt * b
        vjp(s2, params, a, b)
        ybar += b
        a[:] = dt / 6.0 * lam + 0.5 * dt * b
        vjp(y, params, a, b)
        ybar += b
        for j in range(m):
            i = noise_index[j]
            grad[k, j] = 0.5 * dt * noise_scale[j] * (lam[i] + ybar[i])
        lam[:] = ybar
        LAM[k] = lam
    return grad, LAM


def minimum_action_gaussian(drift, drift_vjp, params, start, end, duration: float, steps: int, noise_index,
                            noise_scale, *, penalties=(1e2, 1e4, 1e6, 1e8), controls=None):
    """Freidlin–Wentzell minimum action between two points for ``dx = f(x) dt + ε^{1/2} B dW`` (B diagonal on the
    components ``noise_index`` with entries ``noise_scale``): minimise ½∫|u|² dt over controls u with
    ẋ = f(x) + B u, x(0) = start, x(T) = end (enforced by a penalty raised in ``penalties``).

    ``drift(x, params, out)`` and ``drift_vjp(x, params, w, out)`` (out = (∂f/∂x)ᵀ w) are numba-jitted.
    Returns ``(action, X, P, u)``: the action, the path at the K + 1 grid times, the costate p (= ∂S/∂x, the
    adjoint of the discrete scheme) and the optimal controls. The quasi-potential barrier is the T → ∞ limit.
    """
    start = np.asarray(start, float)
    end = np.asarray(end, float)
    noise_index = np.asarray(noise_index, np.int64)
    noise_scale = np.asarray(noise_scale, float)
    params = np.asarray(params, float)
    K = int(steps)
    dt = duration / K
    m = noise_index.size
    u = np.zeros((K, m)) if controls is None else np.array(controls, float).reshape(K, m)
    for mu in penalties:
        def fun(v, mu=mu):
            uu = v.reshape(K, m)
            X, Y = _mam_forward(drift, params, start, uu, dt, noise_index, noise_scale)
            r = X[-1] - end
            g, _ = _mam_backward(drift, drift_vjp, params, Y, uu, dt, noise_index, noise_scale, mu * r)
            return 0.5 * dt * np.sum(uu**2) + 0.5 * mu * r @ r, (dt * uu + g).ravel()

        res = minimize(fun, u.ravel(), jac=True, method="L-BFGS-B",
                       options=dict(maxiter=20000, maxfun=40000, ftol=1e-15, gtol=1e-11))
        u = res.x.reshape(K, m)
    X, Y = _mam_forward(drift, params, start, u, dt, noise_index, noise_scale)
    _, LAM = _mam_backward(drift, drift_vjp, params, Y, u, dt, noise_index, noise_scale, penalties[-1] * (X[-1] - end))
    return 0.5 * dt * float(np.sum(u**2)), X, -LAM, u


# ------------------------------------------------------------------------------------------------
# Generic multiple shooting on Hamilton's equations with fixed end points


def _flow(rhs, lagrangian, Y, dt, steps, n_action=None):
    """RK4 of Hamilton's equations for a batch Y (2d, m); also ∫ (p·ż − H) dt along each piece (only for the first
    ``n_action`` columns when given: the finite-difference columns of a Jacobian need no action)."""
    m = Y.shape[1] if n_action is None else n_action
    action = np.zeros(m)
    y = Y.copy()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # a path off the chart: NaN, handled by the callers
        return _flow_steps(rhs, lagrangian, y, action, m, dt, steps)


def _flow_steps(rhs, lagrangian, y, action, m, dt, steps):
    for _ in range(steps):
        k1 = rhs(y)
        k2 = rhs(y + 0.5 * dt * k1)
        k3 = rhs(y + 0.5 * dt * k2)
        k4 = rhs(y + dt * k3)
        if m:
            action += dt / 6.0 * (lagrangian(y[:, :m], k1[:, :m]) + 2 * lagrangian(y[:, :m] + 0.5 * dt * k1[:, :m], k2[:, :m])
                                  + 2 * lagrangian(y[:, :m] + 0.5 * dt * k2[:, :m], k3[:, :m])
                                  + lagrangian(y[:, :m] + dt * k3[:, :m], k4[:, :m]))
        y = y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y, action


def shoot_instanton(rhs, hamiltonian, guess, duration: float, start, end, *, substeps: int = 10, tol: float = 1e-10,
                    max_iter: int = 60, max_step: float = 0.1):
    """Solve ż = ∂H/∂p, ṗ = −∂H/∂z with z(0) = start, z(T) = end by multiple shooting and damped Newton.

    ``guess`` (2d, n): states at the n segment starts (t = 0, T/n, …); ``rhs(y)`` and ``hamiltonian(y)`` act on
    batches (2d, m). Returns ``(Y, action, converged, residual)`` with action = ∫ (p·ż − H) dt (equal to ∫ p dz on
    a zero-energy path; the −E·T term is the finite-T correction).
    """
    Y = np.array(guess, float)
    n2, n = Y.shape
    d = n2 // 2
    start = np.asarray(start, float)
    end = np.asarray(end, float)
    dt = duration / n / substeps
    h = 1e-7

    def lag(y, f):
        return np.sum(y[d:] * f[:d], axis=0) - hamiltonian(y)

    eye = np.eye(n2)
    res_norm = np.inf
    action = np.nan
    for _ in range(max_iter):
        batch = np.concatenate([Y] + [Y + h * eye[:, [k]] for k in range(n2)], axis=1)
        E, A = _flow(rhs, lag, batch, dt, substeps, n_action=n)
        if not np.all(np.isfinite(E)):
            return Y, np.nan, False, np.inf
        Phi = E[:, :n]
        dPhi = np.stack([(E[:, (k + 1) * n:(k + 2) * n] - Phi) / h for k in range(n2)], axis=1)  # (2d, 2d, n)
        res = np.concatenate([Y[:d, 0] - start, (Phi[:, :-1] - Y[:, 1:]).T.ravel(), Phi[:d, -1] - end])
        res_norm = float(np.abs(res).max())
        action = float(A[:n].sum())
        if res_norm < tol:
            return Y, action, True, res_norm
        # sparse Jacobian: rows [start BC | continuity j=0..n-2 | end BC]
        rows, cols, vals = list(range(d)), list(range(d)), [1.0] * d
        jj, aa, bb = np.meshgrid(np.arange(n - 1), np.arange(n2), np.arange(n2), indexing="ij")
        rows += list((d + n2 * jj + aa).ravel()); cols += list((n2 * jj + bb).ravel())
        vals += list(dPhi[aa, bb, jj].ravel())
        j1, a1 = np.meshgrid(np.arange(n - 1), np.arange(n2), indexing="ij")
        rows += list((d + n2 * j1 + a1).ravel()); cols += list((n2 * (j1 + 1) + a1).ravel())
        vals += [-1.0] * j1.size
        a2, b2 = np.meshgrid(np.arange(d), np.arange(n2), indexing="ij")
        rows += list((d + n2 * (n - 1) + a2).ravel()); cols += list((n2 * (n - 1) + b2).ravel())
        vals += list(dPhi[a2, b2, n - 1].ravel())
        jac = sp.csc_matrix((vals, (rows, cols)), shape=(n2 * n, n2 * n))
        step = spsolve(jac, -res).reshape(n, n2).T
        if not np.all(np.isfinite(step)):
            return Y, np.nan, False, res_norm
        Y = Y + min(1.0, max_step / np.abs(step).max()) * step
    return Y, action, False, res_norm


def _shooting_system(rhs, hamiltonian, Y, duration, start, end, substeps, jacobian=True, bc=None):
    """Residual (start BC | continuity | end BC), action and, optionally, the sparse Jacobian of the multiple
    shooting problem of :func:`shoot_instanton` (one-sided finite differences, step 1e-7).

    ``bc = (Ls, ys, Le, ye)`` replaces the fixed end points z(0) = start, z(T) = end by the linear conditions
    Ls (y(0) − ys) = 0 and Le (y(T) − ye) = 0 (d rows each; projection boundary conditions)."""
    n2, n = Y.shape
    d = n2 // 2
    if bc is None:
        eye_d = np.eye(d, n2)
        bc = (eye_d, np.r_[start, np.zeros(d)], eye_d, np.r_[end, np.zeros(d)])
    Ls, ys, Le, ye = bc
    dt = duration / n / substeps
    h = 1e-7

    def lag(y, f):
        return np.sum(y[d:] * f[:d], axis=0) - hamiltonian(y)

    if jacobian:
        eye = np.eye(n2)
        batch = np.concatenate([Y] + [Y + h * eye[:, [k]] for k in range(n2)], axis=1)
    else:
        batch = Y
    E, A = _flow(rhs, lag, batch, dt, substeps, n_action=n)
    if not np.all(np.isfinite(E)):
        return None, np.nan, None
    Phi = E[:, :n]
    res = np.concatenate([Ls @ (Y[:, 0] - ys), (Phi[:, :-1] - Y[:, 1:]).T.ravel(), Le @ (Phi[:, -1] - ye)])
    action = float(A[:n].sum())
    if not jacobian:
        return res, action, None
    dPhi = np.stack([(E[:, (k + 1) * n:(k + 2) * n] - Phi) / h for k in range(n2)], axis=1)  # (2d, 2d, n)
    r0, c0 = np.meshgrid(np.arange(d), np.arange(n2), indexing="ij")
    rows, cols, vals = list(r0.ravel()), list(c0.ravel()), list(Ls.ravel())
    jj, aa, bb = np.meshgrid(np.arange(n - 1), np.arange(n2), np.arange(n2), indexing="ij")
    rows += list((d + n2 * jj + aa).ravel()); cols += list((n2 * jj + bb).ravel())
    vals += list(dPhi[aa, bb, jj].ravel())
    j1, a1 = np.meshgrid(np.arange(n - 1), np.arange(n2), indexing="ij")
    rows += list((d + n2 * j1 + a1).ravel()); cols += list((n2 * (j1 + 1) + a1).ravel())
    vals += [-1.0] * j1.size
    a2, b2 = np.meshgrid(np.arange(d), np.arange(n2), indexing="ij")
    rows += list((d + n2 * (n - 1) + a2).ravel()); cols += list((n2 * (n - 1) + b2).ravel())
    vals += list((Le @ dPhi[:, :, n - 1]).ravel())
    return res, action, sp.csc_matrix((vals, (rows, cols)), shape=(n2 * n, n2 * n))


def _bordered(J, column, tangent, N):
    """[[J, column], [tangent_Y / N, tangent_T]] as a sparse matrix (the pseudo-arclength system)."""
    return sp.bmat([[J, sp.csc_matrix(column[:, None])],
                    [sp.csc_matrix(tangent[:-1][None, :] / N), sp.csc_matrix([[tangent[-1]]])]], format="csc")


def _arclength(system, Y, lam, lam_final, *, scale, ds, ds_max, min_cosine, tol, max_steps, refine=None,
               callback=None):
    """Pseudo-arclength continuation of ``system(Y, λ, jacobian) → (residual, action, J)`` in λ from a solution
    (Y, λ) until λ ≥ ``lam_final``; arclength |ΔY|²/size(Y) + (Δλ/scale)². ``refine(Y, λ)`` may return a
    re-meshed Y (or None). Returns ``(Y, λ, action, history)``."""
    h = 1e-6 * scale

    def dres(Y, lam, res):
        r2, _, _ = system(Y, lam + h, False)
        return (r2 - res) / h * scale

    def tangent(J, dF, sign):
        v = spsolve(J, -dF)
        return sign * np.r_[v, 1.0] / math.sqrt(v @ v / J.shape[0] + 1.0)

    res, action, J = system(Y, lam, True)
    if res is None or np.abs(res).max() > 10 * tol:
        raise ValueError("the continuation needs a converged starting solution")
    N = Y.size
    tan = tangent(J, dres(Y, lam, res), 1.0)
    history = [(lam, action)]
    steps = 0
    while lam < lam_final and steps < max_steps:
        steps += 1
        xp = np.r_[Y.T.ravel(), lam / scale] + ds * tan
        x = xp.copy()
        ok = False
        for _ in range(8):
            Yx = x[:-1].reshape(-1, Y.shape[0]).T
            res, act, J = system(Yx, x[-1] * scale, True)
            if res is None:
                break
            g = (tan[:-1] @ (x[:-1] - xp[:-1])) / N + tan[-1] * (x[-1] - xp[-1])
            if np.abs(res).max() < tol and abs(g) < 1e-9:
                ok = True
                break
            dx = spsolve(_bordered(J, dres(Yx, x[-1] * scale, res), tan, N), -np.r_[res, g])
            if not np.all(np.isfinite(dx)):
                break
            x = x + dx
        if ok:
            # the new tangent from the bordered system (regular at folds, where J alone is singular), oriented
            # along the old one; a sharp turn means the corrector may have jumped to a neighbouring branch
            t_new = spsolve(_bordered(J, dres(Yx, x[-1] * scale, res), tan, N), np.r_[np.zeros(N), 1.0])
            norm = math.sqrt(t_new[:-1] @ t_new[:-1] / N + t_new[-1] ** 2)
            ok = math.isfinite(norm) and 1.0 / norm >= min_cosine
        if not ok:
            ds /= 2
            if ds < 1e-7:
                break
            continue
        Y, lam, action = Yx, float(x[-1]) * scale, act
        history.append((lam, action))
        if callback is not None:
            callback(lam, action, Y)
        tan = t_new / norm
        ds = min(ds * 1.3, ds_max)
        finer = None if refine is None else refine(Y, lam)
        if finer is not None:
            Y = finer
            N = Y.size
            res, action, J = system(Y, lam, True)
            tan = tangent(J, dres(Y, lam, res), np.sign(tan[-1]) or 1.0)
    return Y, lam, action, np.array(history)


def _linearisation(rhs, y):
    """Jacobian of Hamilton's equations at y (central differences)."""
    n2 = y.size
    M = np.zeros((n2, n2))
    for k in range(n2):
        dy = np.zeros(n2)
        dy[k] = 1e-6
        M[:, k] = (rhs((y + dy)[:, None]) - rhs((y - dy)[:, None]))[:, 0] / 2e-6
    return M


@dataclass(frozen=True)
class ProjectedStart:
    """The linear unstable manifold p = Σ⁻¹ δz of a stable fixed point of the drift (the Gaussian quasi-potential
    ½ δzᵀ Σ⁻¹ δz, with A Σ + Σ Aᵀ + D = 0 from H ≈ p·A δz + ½ pᵀ D p; every WKB Hamiltonian whose truncation is
    H_G has the same one): the boundary rows ``rows`` (``rows @ (y(0) − y_fixed) = 0``), Σ⁻¹ and the flow
    matrix A + D Σ⁻¹ on the manifold."""

    y_fixed: np.ndarray
    rows: np.ndarray
    sigma_inv: np.ndarray
    flow: np.ndarray

    @classmethod
    def at(cls, rhs_gaussian, z_fixed):
        d = len(z_fixed)
        y = np.r_[z_fixed, np.zeros(d)]
        M = _linearisation(rhs_gaussian, y)
        A, D = M[:d, :d], M[:d, d:]
        sigma = solve_continuous_lyapunov(A, -D)
        si = np.linalg.inv(0.5 * (sigma + sigma.T))
        return cls(y, np.hstack([-si, np.eye(d)]), si, A + D @ si)

    def correction(self, Y) -> float:
        """½ p(0)·δz(0): the quasi-potential at the path's start, added to its action."""
        d = self.sigma_inv.shape[0]
        return 0.5 * float(Y[d:, 0] @ (Y[:d, 0] - self.y_fixed[:d]))

    def extend(self, Y, duration, longer):
        """Prepend the backward flow on the linear manifold: the path of duration ``longer`` (rounded to whole
        segments); returns ``(Y, new duration)``."""
        d = self.sigma_inv.shape[0]
        n = Y.shape[1]
        seg = duration / n
        extra = max(0, int(round((longer - duration) / seg)))
        dz0 = Y[:d, 0] - self.y_fixed[:d]
        step = expm(-self.flow * seg)
        cols, dz = [], dz0
        for _ in range(extra):
            dz = step @ dz
            cols.append(np.r_[self.y_fixed[:d] + dz, self.sigma_inv @ dz])
        return (np.hstack([np.array(cols[::-1]).T, Y]) if cols else Y), duration + extra * seg


@dataclass(frozen=True)
class ProjectedEnd:
    """The linear stable subspace of a saddle of the drift in Hamilton's equations (eigenvalues with negative real
    part of their linearisation at (z_saddle, 0)): the boundary rows ``rows`` (``rows @ (y(T) − y_fixed) = 0``).
    A path that ends there reaches the saddle in infinite time, with the rest of its action −½ p(T)·δz(T).

    Ending there instead of *at* the saddle matters when the saddle's stable directions spiral (complex
    eigenvalues): the fixed-end problem then has several solutions, and the measured one at g0 = 1 was not the
    least action (0.24921 against 0.24856)."""

    y_fixed: np.ndarray
    rows: np.ndarray

    @classmethod
    def at(cls, rhs_gaussian, z_fixed):
        d = len(z_fixed)
        y = np.r_[z_fixed, np.zeros(d)]
        w, V = np.linalg.eig(_linearisation(rhs_gaussian, y))
        W = np.linalg.inv(V)  # rows: left eigenvectors
        rows = []
        for k in np.where(w.real > 1e-9)[0]:
            if abs(w[k].imag) < 1e-12:
                rows.append(W[k].real)
            elif w[k].imag > 0:
                rows += [W[k].real, W[k].imag]
        if len(rows) != d:
            raise ValueError(f"the end point is not hyperbolic in Hamilton's equations ({len(rows)} of {d} unstable pairs)")
        return cls(y, np.array(rows))

    def correction(self, y_end) -> float:
        d = self.rows.shape[0]
        return -0.5 * float(y_end[d:] @ (y_end[:d] - self.y_fixed[:d]))


def _projected_bc(start: ProjectedStart, end):
    d = start.sigma_inv.shape[0]
    if isinstance(end, ProjectedEnd):
        return start.rows, start.y_fixed, end.rows, end.y_fixed
    return start.rows, start.y_fixed, np.eye(d, 2 * d), np.r_[end, np.zeros(d)]


def _end_correction(rhs, Y, duration, end, substeps) -> float:
    if not isinstance(end, ProjectedEnd):
        return 0.0
    n = Y.shape[1]
    y_end, _ = _flow(rhs, lambda y, f: np.zeros(y.shape[1]), Y[:, -1:], duration / n / substeps, substeps)
    return end.correction(y_end[:, 0])


def solve_projected(rhs, hamiltonian, guess, duration, start: ProjectedStart, end, *, substeps=10, tol=1e-8,
                    max_iter=150, max_step=0.2):
    """Fixed-duration instanton from the linear unstable manifold of the start (:class:`ProjectedStart`) to the
    point z(T) = ``end`` or, when ``end`` is a :class:`ProjectedEnd`, to the saddle's linear stable subspace, by
    multiple shooting and damped Newton. Returns ``(Y, action, converged, residual)`` with the action including
    the start's quasi-potential ½ p(0)·δz(0) and the end's remaining −½ p(T)·δz(T).

    Starting on the manifold instead of at the fixed point removes the long wait at a slowly relaxing focus
    (and the fold structure of the fixed-end problem there); the error left is cubic in the start's distance,
    which shrinks as e^{−γT} when T grows (:meth:`ProjectedStart.extend`)."""
    d = start.sigma_inv.shape[0]
    bc = _projected_bc(start, end)
    Y = np.array(guess, float)
    rn, action, step, lam = np.inf, np.nan, None, 1.0
    for _ in range(max_iter):
        res, action, J = _shooting_system(rhs, hamiltonian, Y, duration, None, None, substeps, True, bc)
        if res is None:  # the step left the chart's domain: take it back and go half as far
            if step is None or lam < 1e-3:
                return Y, np.nan, False, np.inf
            Y = Y - 0.5 * lam * step
            lam *= 0.5
            continue
        rn = float(np.abs(res).max())
        if rn < tol:
            return Y, action + start.correction(Y) + _end_correction(rhs, Y, duration, end, substeps), True, rn
        step = spsolve(J, -res).reshape(Y.shape[1], 2 * d).T
        if not np.all(np.isfinite(step)):
            break
        lam = min(1.0, max_step / np.abs(step).max())
        Y = Y + lam * step
    return Y, np.nan, False, rn


def continue_projected(family, guess, duration, start: ProjectedStart, end, *, substeps=10, tol=1e-8, ds=0.05,
                       ds_max=0.5):
    """Pseudo-arclength continuation of :func:`solve_projected` in ε (``family(ε)`` → (rhs, hamiltonian)) from
    the solution ``guess`` at ε = 0 through folds until ε ≥ 1, then a Newton solve at ε = 1.
    Returns ``(Y, action, eps_reached)``."""
    bc = _projected_bc(start, end)

    def system(Y, eps, jacobian):
        rhs, ham = family(eps)
        return _shooting_system(rhs, ham, Y, duration, None, None, substeps, jacobian, bc)

    Y, eps, _, _ = _arclength(system, np.array(guess, float), 0.0, 1.0, scale=1.0, ds=ds, ds_max=ds_max,
                              min_cosine=0.98, tol=tol, max_steps=5000)
    if eps < 1.0:
        return Y, np.nan, eps
    rhs, ham = family(1.0)
    Y1, a1, ok, _ = solve_projected(rhs, ham, Y, duration, start, end, substeps=substeps, tol=tol)
    return (Y1, a1, 1.0) if ok else (Y, np.nan, eps)


def continue_instanton(family, guess, duration, start, end, *, eps_step=0.02, substeps=10, tol=1e-10):
    """Follow the fixed-duration instanton of ``H_ε`` from ε = 0 to 1 (``family(eps)`` → (rhs, hamiltonian)):
    steps of ``eps_step`` to 0.94, then of eps_step/4; a failed step is retried with half the step (down to
    1/64 of it). Returns ``(Y, action, eps_reached)``."""
    Y = guess
    eps = 0.0
    rhs, ham = family(0.0)
    Y, action, ok, _ = shoot_instanton(rhs, ham, Y, duration, start, end, substeps=substeps, tol=tol)
    if not ok:
        return Y, np.nan, -1.0
    while eps < 1.0:
        base = eps_step if eps < 0.94 - 1e-12 else eps_step / 4
        step = base
        while True:
            trial = min(1.0, eps + step)
            rhs, ham = family(trial)
            Yn, an, ok, _ = shoot_instanton(rhs, ham, Y, duration, start, end, substeps=substeps, tol=tol)
            if ok:
                Y, action, eps = Yn, an, trial
                break
            step /= 2
            if step < base / 64:
                return Y, np.nan, eps
    return Y, action, 1.0


def aitken(values) -> float:
    """Aitken Δ² limit of the last three values of a geometrically converging sequence (the last value when the
    differences do not shrink)."""
    a, b, c = (float(v) for v in values[-3:])
    d1, d2 = b - a, c - b
    if d1 == 0 or abs(d2) >= abs(d1) or d1 * d2 <= 0:
        return c
    return c - d2 * d2 / (d2 - d1)


# ------------------------------------------------------------------------------------------------
# The M = 1 open Dicke model: Cartesian mean field (for the Gaussian MAM) and Holstein–Primakoff charts


@nb.njit(cache=True)
def _dicke_drift(x, params, out):
    """Paper Eq. (7) for M = 1 in per-spin units: x = (s_x, s_y, s_z, q, π), α = (q + iπ)/√2."""
    om, om1, ka, g0 = params[0], params[1], params[2], params[3]
    h = 2.0 * _R2 * g0 * x[3]
    out[0] = -h * x[1]
    out[1] = -2.0 * om * x[2] + h * x[0]
    out[2] = 2.0 * om * x[1]
    out[3] = -0.5 * ka * x[3] + om1 * x[4]
    out[4] = -0.5 * ka * x[4] - om1 * x[3] - _R2 * g0 * x[2]


@nb.njit(cache=True)
def _dicke_vjp(x, params, w, out):
    om, om1, ka, g0 = params[0], params[1], params[2], params[3]
    c = 2.0 * _R2 * g0
    h = c * x[3]
    out[0] = h * w[1]
    out[1] = -h * w[0] + 2.0 * om * w[2]
    out[2] = -2.0 * om * w[1] - _R2 * g0 * w[4]
    out[3] = -c * x[1] * w[0] + c * x[0] * w[1] - 0.5 * ka * w[3] - om1 * w[4]
    out[4] = om1 * w[3] - 0.5 * ka * w[4]


def _check_model(model: DickeModel):
    if model.n_modes != 1:
        raise ValueError(f"the escape action is implemented for M = 1, got M = {model.n_modes}")
    if model.spin_dissipation:
        raise ValueError("the escape action covers the paper's model (boson loss only), not spin dissipation")
    om, om1, ka, g0 = model.omega, float(model.omega_modes[0]), float(model.kappa[0]), model.g0
    if om <= 0 or om1 <= 0 or ka <= 0:
        raise ValueError(f"omega, omega_modes and kappa must be positive, got {om}, {om1}, {ka}")
    gc = math.sqrt(0.5 * (om / om1) * (om1**2 + 0.25 * ka**2))
    if abs(g0) <= gc * (1 + 1e-6):
        raise ValueError(f"|g0| must exceed g_c = {gc:.6g} (retrieval phase), got g0 = {g0}")
    return om, om1, ka, abs(g0), gc


def retrieval_point(model: DickeModel, sign: int = -1) -> np.ndarray:
    """The Eq. (12) fixed point (s_x, s_y, s_z, q, π) with s_z = sign·z (per-spin units, α = (q + iπ)/√2)."""
    om, om1, ka, g0, gc = _check_model(model)
    z = sign * math.sqrt(1 - (gc / g0) ** 4)
    alpha = -1j * g0 * z / (1j * om1 + 0.5 * ka)
    return np.array([-(gc / g0) ** 2, 0.0, z, _R2 * alpha.real, _R2 * alpha.imag])


class _Chart:
    """Holstein–Primakoff chart of the spin sphere, rotated by ``tilt`` about y: s = R_y(tilt) s′ with
    s′ = (√2 a w, −√2 b w, a² + b² − 1), w = √(1 − (a² + b²)/2); (a, b) canonical with ħ = 1/N_sp
    (β = (a + ib)/√2 is the HP boson per √N_sp). The chart is centred at s = −R ẑ and singular at s = +R ẑ."""

    def __init__(self, tilt: float):
        c, s = math.cos(tilt), math.sin(tilt)
        self.R = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    def spin(self, a, b):
        w = np.sqrt(1 - (a * a + b * b) / 2)
        sp_ = np.array([_R2 * a * w, -_R2 * b * w, a * a + b * b - 1])
        return np.einsum("ij,j...->i...", self.R, sp_)

    def coords(self, s):
        sp_ = np.einsum("ji,j...->i...", self.R, np.asarray(s))
        w = np.sqrt((1 - sp_[2]) / 2)
        return np.array([sp_[0] / (_R2 * w), -sp_[1] / (_R2 * w)])

    def grad_h(self, z, params):
        """∇h for complex or real z = (a, b, q, π), shape (4, ...): h = Ω s_x + Ω₁(q² + π²)/2 + √2 g0 q s_z."""
        om, om1, ka, g0 = params
        a, b, q, pi = z
        w = np.sqrt(1 - (a * a + b * b) / 2)
        R = self.R
        sz = R[2, 0] * _R2 * a * w - R[2, 1] * _R2 * b * w + R[2, 2] * (a * a + b * b - 1)
        bz = _R2 * g0 * q
        cx = R[0, 0] * om + R[2, 0] * bz
        cy = R[0, 1] * om + R[2, 1] * bz
        cz = R[0, 2] * om + R[2, 2] * bz
        ha = cx * _R2 * (w - a * a / (2 * w)) + cy * _R2 * a * b / (2 * w) + cz * 2 * a
        hb = -cx * _R2 * a * b / (2 * w) - cy * _R2 * (w - b * b / (2 * w)) + cz * 2 * b
        return np.array([ha, hb, om1 * q + _R2 * g0 * sz, om1 * pi])

    def h(self, z, params):
        om, om1, ka, g0 = params
        a, b, q, pi = z
        s = self.spin(a, b)
        return om * s[0] + 0.5 * om1 * (q * q + pi * pi) + _R2 * g0 * q * s[2]


_J = np.array([[0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1], [0, 0, -1, 0]], float)


def wkb_hamiltonian(chart: _Chart, params, eps: float = 1.0):
    """``(rhs, hamiltonian)`` of H_ε = H_G + ε (H − H_G) on batches y = (z, p) of shape (8, m).

    H = 2 Im h(z − iJp/2) + loss part (the leading order of the Moyal bracket of the Weyl symbol on a WKB
    function, exact for the loss); H_G = p·J∇h(z) + loss part (truncated Wigner)."""
    ka = params[2]
    loss = np.diag([0.0, 0.0, -0.5 * ka, -0.5 * ka])
    diff = np.diag([0.0, 0.0, 0.5 * ka, 0.5 * ka])

    def parts(y):
        z, p = y[:4], y[4:]
        v = 0.5 * (_J @ p)
        Gm = chart.grad_h(z - 1j * v, params)
        Gp = chart.grad_h(z + 1j * v, params)
        G0 = chart.grad_h(z, params)
        s = 1e-5
        d = _J.T @ p
        hess_d = (chart.grad_h(z + s * d, params) - chart.grad_h(z - s * d, params)) / (2 * s)
        zdot_q = -_J.T @ np.real(0.5 * (Gm + Gp))
        pdot_q = -2 * np.real((Gm - Gp) / 2j)
        zdot = _J @ G0 + eps * (zdot_q - _J @ G0) + loss @ z + diff @ p
        pdot = -hess_d + eps * (pdot_q + hess_d) - loss @ p
        return np.vstack([zdot, pdot])

    def hamiltonian(y):
        z, p = y[:4], y[4:]
        hq = 2 * np.imag(chart.h(z - 0.5j * (_J @ p), params))
        hg = np.sum(p * (_J @ chart.grad_h(z, params)), axis=0)
        return np.sum(p * (loss @ z), axis=0) + 0.5 * np.sum(p * (diff @ p), axis=0) + hg + eps * (hq - hg)

    return parts, hamiltonian


def _slowest_rate(params, x):
    J = np.zeros((5, 5))
    e = np.eye(5)
    for k in range(5):
        _dicke_vjp(x, params, e[k], J[k])  # row k of Jᵀ
    ev = np.linalg.eigvals(J.T)
    ev = ev[np.abs(ev) > 1e-9]  # the radial zero mode (|s| conserved)
    return float(-ev.real.max())


class _Problem:
    """The M = 1 escape problem at one coupling, in a fixed chart."""

    def __init__(self, model: DickeModel, chart: _Chart):
        om, om1, ka, g0, gc = _check_model(model)
        self.params = np.array([om, om1, ka, g0])
        self.gc = gc
        self.x_ret = retrieval_point(model, -1)
        self.x_sad = np.array([-1.0, 0.0, 0.0, 0.0, 0.0])
        self.chart = chart
        self.z_ret = np.r_[chart.coords(self.x_ret[:3]), self.x_ret[3:]]
        self.z_sad = np.r_[chart.coords(self.x_sad[:3]), self.x_sad[3:]]
        self.rate = _slowest_rate(self.params, self.x_ret)
        self.start = ProjectedStart.at(self.family(0.0)[0], self.z_ret)
        self.end = ProjectedEnd.at(self.family(0.0)[0], self.z_sad)

    def family(self, eps):
        return wkb_hamiltonian(self.chart, self.params, eps)

    def solve(self, eps, Y, T, opts):
        rhs, ham = self.family(eps)
        return solve_projected(rhs, ham, Y, T, self.start, self.end, substeps=opts.substeps, tol=opts.newton_tol)


def _first_path(problem: _Problem, opts: EscapeOptions):
    """Gaussian path at the start coupling: minimum action with fixed ends, polished by shooting, then moved onto
    the projected start; returns (Y, T) or raises."""
    T = opts.start_duration
    K = int(round(opts.mam_steps_per_time * T))
    sq = math.sqrt(0.5 * problem.params[2])
    _, X, P, _ = minimum_action_gaussian(_dicke_drift, _dicke_vjp, problem.params, problem.x_ret, problem.x_sad, T, K,
                                         [3, 4], [sq, sq])
    chart = problem.chart
    Z = np.vstack([chart.coords(X[:, :3].T), X[:, 3:].T])
    Pz = np.empty_like(Z)
    Pz[2:] = P[:, 3:].T
    e = 1e-7
    for k, ab in enumerate(((e, 0.0), (0.0, e))):  # p_z = (∂x/∂z)ᵀ p_x (the radial part of p_x drops out)
        ds = (chart.spin(Z[0] + ab[0], Z[1] + ab[1]) - chart.spin(Z[0] - ab[0], Z[1] - ab[1])) / (2 * e)
        Pz[k] = np.sum(ds * P[:, :3].T, axis=0)
    n = max(4, int(round(opts.segments_per_time * T)))
    t_grid = np.linspace(0, T, X.shape[0])
    guess = np.vstack([np.interp(np.linspace(0, T, n + 1)[:-1], t_grid, c) for c in np.vstack([Z, Pz])])
    rhs0, ham0 = problem.family(0.0)
    Y, _, ok, _ = shoot_instanton(rhs0, ham0, guess, T, problem.z_ret, problem.z_sad, substeps=opts.substeps, tol=1e-7,
                                  max_iter=100)
    Y, _, ok, res = problem.solve(0.0, Y if ok else guess, T, opts)
    if not ok:
        raise RuntimeError(f"the Gaussian instanton was not found at the start coupling (residual {res:.1e})")
    return Y, T


def _lengthen(problem, tracks, T, opts):
    """Lengthen T (prepending the linear manifold) until every track starts within ``start_tolerance``."""
    for _ in range(40):
        if all(problem.start.correction(Y) <= opts.start_tolerance for Y in tracks.values() if Y is not None):
            break
        longer = T + max(10.0, 0.5 / problem.rate)
        new_T = T
        for eps, Y in tracks.items():
            if Y is None:
                continue
            Yl, new_T = problem.start.extend(Y, T, longer)
            Yl, _, ok, _ = problem.solve(eps, Yl, new_T, opts)
            tracks[eps] = Yl if ok else None
        T = new_T
    return T


def escape_action(model: DickeModel, options: EscapeOptions | None = None, *,
                  progress: Callable[[float], None] | None = None) -> xr.Dataset:
    """WKB exponent S* of the lifetime τ ≍ exp(N_sp S*) of a retrieved pattern, M = 1 (docs/semiclassical-lifetime.md).

    The instanton starts on the linear unstable manifold of the retrieval point (its quasi-potential added) and
    ends at the saddle. It is found at a start coupling from a minimum-action path, continued in ε from the
    truncated-Wigner Hamiltonian H_G to the full WKB Hamiltonian H, then continued in g0 to the model's coupling,
    with T lengthened as the relaxation slows.

    Returns a Dataset (kind ``"escape_action"``) with, over ``duration`` T: ``action_gaussian`` (H_G; NaN where
    that branch was lost in the continuation), ``action_quantum`` (H; NaN everywhere when the continuation in g0
    stopped short of the model's coupling, attr ``coupling_reached``), ``start_correction`` (the quasi-potential
    at the path's start, part of the action) and ``eps_reached`` (1 when the full Hamiltonian was reached); attrs
    ``action_gaussian_limit`` and ``action_quantum_limit`` (the values at the longest T),
    ``first_order_correction`` (−∫ (H − H_G) dt on the Gaussian instanton), the chart, the couplings continued
    through, and the quantum instanton at the longest T (``instanton_*`` over ``time``). ``progress(fraction)``
    is called as the continuation advances.
    """
    t_wall = time.perf_counter()
    opts = options or EscapeOptions()
    om, om1, ka, g0, gc = _check_model(model)
    g_start = min(g0, 1.55 * gc) if opts.start_coupling is None else float(opts.start_coupling)
    if g_start <= gc * (1 + 1e-6):
        raise ValueError(f"start_coupling must exceed g_c = {gc:.6g}, got {g_start}")
    tilt = math.asin((gc / g0) ** 2) if opts.chart_tilt is None else float(opts.chart_tilt)
    chart = _Chart(tilt)
    problem = _Problem(model.replace(g0=g_start), chart)
    Y0, T = _first_path(problem, opts)
    rhs1, _ = problem.family(1.0)
    Y1, _, eps_reached = continue_projected(problem.family, Y0, T, problem.start, problem.end,
                                            substeps=opts.substeps, tol=opts.newton_tol)
    tracks = {0.0: Y0, 1.0: Y1 if eps_reached == 1.0 else None}
    T = _lengthen(problem, tracks, T, opts)
    couplings = [g_start]
    gaussian_lost_at = g_start
    if progress is not None:
        progress(0.1)
    # continuation in g0, halving the step where Newton fails
    g, step = g_start, math.copysign(opts.coupling_step, g0 - g_start)
    while tracks[1.0] is not None and abs(g0 - g) > 1e-12:
        g_next = g0 if abs(g0 - g) <= abs(step) else g + step
        trial = _Problem(model.replace(g0=g_next), chart)
        new = {}
        for eps, Y in tracks.items():
            if Y is None:
                new[eps] = None
                continue
            Yn, _, ok, _ = trial.solve(eps, Y, T, opts)
            new[eps] = Yn if ok else None
        if new[1.0] is None:
            step /= 2
            if abs(step) < opts.coupling_step / 64:
                tracks[1.0] = None
                eps_reached = 0.0
                break
            continue
        if tracks[0.0] is not None and new[0.0] is None:
            gaussian_lost_at = g_next
        tracks, problem, g = new, trial, g_next
        couplings.append(g)
        T = _lengthen(problem, tracks, T, opts)
        step = math.copysign(min(abs(step) * 1.5, opts.coupling_step), step)
        if progress is not None and g0 != g_start:
            progress(0.1 + 0.7 * (g - g_start) / (g0 - g_start))
    coupling_reached = g
    if abs(g0 - g) > 1e-12:  # the continuation stopped short of the model's coupling: report nothing at g0
        tracks = {0.0: None, 1.0: None}
    gaussian_route = "continued with the full instanton"
    if tracks[0.0] is None and tracks[1.0] is not None:
        # the Gaussian branch was lost on the way (it changes shape where the full one does not): follow the full
        # instanton back to ε = 0 at the target coupling instead
        Yg, _, back = continue_projected(lambda lam: problem.family(1.0 - lam), tracks[1.0], T, problem.start,
                                         problem.end, substeps=opts.substeps, tol=opts.newton_tol)
        tracks[0.0] = Yg if back == 1.0 else None
        gaussian_route = (f"lost at g0 = {gaussian_lost_at:.6g}; " + (
            "recovered from the full instanton, continued back to ε = 0 at the target coupling" if back == 1.0 else
            f"not recovered from the full instanton (the continuation back reached ε = {1.0 - back:.3g})"))
    # the reported durations
    durations = opts.durations or (T, T + 1.0 / problem.rate, T + 2.0 / problem.rate)
    S_g, S_q, corr, reached, rows = [], [], [], [], []
    first_order = np.nan
    last = {}
    for Tk in durations:
        vals = {}
        for eps in (0.0, 1.0):
            Y = tracks.get(eps)
            if Y is None:
                vals[eps] = (np.nan, np.nan)
                continue
            if Tk >= T:
                Yk, Tk_ = problem.start.extend(Y, T, Tk)
            else:  # shorter: drop segments at the start (Newton moves the start back onto the manifold)
                seg = T / Y.shape[1]
                drop = int(round((T - Tk) / seg))
                Yk, Tk_ = Y[:, drop:], T - drop * seg
            Yk, a, ok, _ = problem.solve(eps, Yk, Tk_, opts)
            vals[eps] = (a, problem.start.correction(Yk)) if ok else (np.nan, np.nan)
            if ok:
                last[eps] = (Yk, Tk_)
        S_g.append(vals[0.0][0])
        S_q.append(vals[1.0][0])
        corr.append(vals[1.0][1])
        reached.append(1.0 if np.isfinite(vals[1.0][0]) else eps_reached if eps_reached < 1 else 0.0)
        rows.append(Tk)
    if 0.0 in last:
        Yg, Tg = last[0.0]
        rhs0, ham0 = problem.family(0.0)
        _, ham1 = problem.family(1.0)
        n = Yg.shape[1]
        _, dA = _flow(rhs0, lambda y, f: ham1(y) - ham0(y), Yg, Tg / n / opts.substeps, opts.substeps)
        first_order = -float(dA.sum())
    if progress is not None:
        progress(1.0)
    ds = xr.Dataset(
        {"action_gaussian": ("duration", np.array(S_g)), "action_quantum": ("duration", np.array(S_q)),
         "start_correction": ("duration", np.array(corr)), "eps_reached": ("duration", np.array(reached))},
        coords={"duration": ("duration", np.array(rows, float), {"long_name": "path duration T"})})
    ds["action_gaussian"].attrs["long_name"] = "truncated-Wigner (Gaussian noise) escape action S_G, tau ~ exp(N_sp S)"
    ds["action_quantum"].attrs["long_name"] = "full WKB escape action S*, tau ~ exp(N_sp S*)"
    ds["start_correction"].attrs["long_name"] = "quasi-potential at the path's start (included in the actions)"
    if 1.0 in last:
        Yq, Tq = last[1.0]
        s = chart.spin(Yq[0], Yq[1])
        ds = ds.assign_coords(time=("time", np.linspace(0, Tq, Yq.shape[1], endpoint=False)))
        ds["instanton_bloch"] = (("component", "time"), s)
        ds = ds.assign_coords(component=("component", ["x", "y", "z"]))
        ds["instanton_alpha_re"] = ("time", Yq[2] / _R2)
        ds["instanton_alpha_im"] = ("time", Yq[3] / _R2)
    attrs = model_attrs(model)
    attrs.update({
        "kind": "escape_action",
        "action_gaussian_limit": float(S_g[-1]),
        "action_quantum_limit": float(S_q[-1]),
        "first_order_correction": first_order,
        "chart_tilt": tilt,
        "slowest_relaxation_rate": problem.rate,
        "g_c": gc,
        "start_coupling": g_start,
        "coupling_reached": coupling_reached,
        "couplings_continued": len(couplings),
        "gaussian_route": gaussian_route,
        "segments_per_time": opts.segments_per_time, "substeps": opts.substeps,
        "elapsed_seconds": round(time.perf_counter() - t_wall, 6),
    })
    ds.attrs.update(attrs)
    return ds


# ------------------------------------------------------------------------------------------------
# From the exponent to lifetimes


@dataclass(frozen=True)
class LifetimeExtrapolation:
    """τ ≈ A N_sp^b e^{N_sp S} at ``n_spins``: ``log10_lifetime`` (lifetimes overflow floats long before
    N_sp = 10⁶), the prefactor A and power b (``None`` where not fitted: then τ is e^{N_sp S} alone and only the
    exponent is meaningful), the exact points they were fitted to and the fit's residuals in ln τ."""

    action: float
    n_spins: tuple[int, ...]
    log10_lifetime: tuple[float, ...]
    prefactor: float | None
    power: float | None
    anchors: tuple[tuple[int, float], ...]
    residuals: tuple[float, ...]


def extrapolate_lifetime(action: float, n_spins, anchors=()) -> LifetimeExtrapolation:
    """Lifetimes τ ≈ A N^b e^{N S*} from the WKB exponent ``action`` = S* at the sizes ``n_spins``.

    The WKB calculation gives the exponent only. ``anchors``: exact (N_sp, τ) pairs (e.g. from
    ``quantum.lifetime``) that fix the prefactor: none, τ = e^{N S*} (A = 1, b = 0, reported as not fitted); one,
    A = τ e^{−N S*} (b = 0); two or more, A and b by least squares of ln τ − N S* = ln A + b ln N.
    """
    S = float(action)
    if not math.isfinite(S) or S <= 0:
        raise ValueError(f"action must be a positive number, got {action!r}")
    sizes = tuple(int(n) for n in np.atleast_1d(n_spins))
    if not sizes or any(n < 1 for n in sizes):
        raise ValueError(f"n_spins must be positive integers, got {n_spins!r}")
    pairs = tuple((int(n), float(t)) for n, t in anchors)
    for n, t in pairs:
        if n < 1 or not math.isfinite(t) or t <= 0:
            raise ValueError(f"anchors must be (N_sp ≥ 1, lifetime > 0) pairs, got ({n}, {t})")
    if len({n for n, _ in pairs}) != len(pairs):
        raise ValueError(f"anchors name an N_sp twice: {[n for n, _ in pairs]}")
    A = b = None
    residuals: tuple[float, ...] = ()
    if pairs:
        ns = np.array([n for n, _ in pairs], float)
        y = np.log([t for _, t in pairs]) - ns * S
        if len(pairs) == 1:
            lnA, b = float(y[0]), 0.0
        else:
            b, lnA = (float(v) for v in np.polyfit(np.log(ns), y, 1))
        A = math.exp(lnA)
        residuals = tuple(float(r) for r in y - (lnA + b * np.log(ns)))
    lnA_, b_ = (0.0, 0.0) if A is None else (math.log(A), b)
    log10 = tuple((lnA_ + b_ * math.log(n) + n * S) / math.log(10) for n in sizes)
    return LifetimeExtrapolation(S, sizes, log10, A, b, pairs, residuals)
