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
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp
import xarray as xr
from scipy.optimize import minimize
from scipy.sparse.linalg import spsolve

from ..model import DickeModel
from ..results import model_attrs, register_kind

__all__ = ["EscapeOptions", "escape_action", "minimum_action_gaussian", "shoot_instanton", "continue_instanton",
           "wkb_hamiltonian", "retrieval_point", "aitken"]

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

    durations: the fixed path durations T (increasing; ``None``: ``(T0, 7T0/6, 4T0/3)`` with
    T0 = max(30, 3.5/γ), γ the slowest relaxation rate at the retrieval point); segments_per_time: shooting
    segments per unit time; substeps: RK4 steps per segment; mam_steps_per_time: control intervals per unit
    time of the Gaussian minimum-action method; eps_step: continuation step in ε up to ε = 0.94, then steps
    of eps_step/4; newton_tol: max-norm of the shooting residual; chart_tilt: rotation (about y) of the
    Holstein–Primakoff chart, ``None``: centred on the retrieval point (its pole as far from the path as it
    gets).

    The default Newton tolerance is 1e-7: the fixed-duration problem is ill-conditioned (the path waits at both
    end points) and the one-sided finite-difference Jacobian stalls Newton near 1e-8; the action changes by far
    less (1e-10 and 1e-7 agree to 1e-6 at g0 = 1).
    """

    durations: tuple[float, ...] | None = None
    segments_per_time: float = 2.0
    substeps: int = 10
    mam_steps_per_time: float = 20.0
    eps_step: float = 0.02
    newton_tol: float = 1e-7
    chart_tilt: float | None = None

    def __post_init__(self):
        if self.durations is not None:
            d = tuple(float(x) for x in self.durations)
            if not d or any(not math.isfinite(x) or x <= 0 for x in d) or list(d) != sorted(set(d)):
                raise ValueError(f"durations must be positive, increasing and distinct, got {self.durations!r}")
            object.__setattr__(self, "durations", d)
        for name in ("segments_per_time", "mam_steps_per_time", "eps_step", "newton_tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if self.eps_step > 0.5:
            raise ValueError(f"eps_step must be ≤ 0.5, got {self.eps_step!r}")
        if isinstance(self.substeps, bool) or not isinstance(self.substeps, int) or self.substeps < 1:
            raise ValueError(f"substeps must be a positive integer, got {self.substeps!r}")
        if self.chart_tilt is not None and not math.isfinite(self.chart_tilt):
            raise ValueError(f"chart_tilt must be finite or None, got {self.chart_tilt!r}")


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


def _flow(rhs, lagrangian, Y, dt, steps):
    """RK4 of Hamilton's equations for a batch Y (2d, m); also ∫ (p·ż − H) dt along each piece."""
    action = np.zeros(Y.shape[1])
    y = Y.copy()
    for _ in range(steps):
        k1 = rhs(y)
        k2 = rhs(y + 0.5 * dt * k1)
        k3 = rhs(y + 0.5 * dt * k2)
        k4 = rhs(y + dt * k3)
        action += dt / 6.0 * (lagrangian(y, k1) + 2 * lagrangian(y + 0.5 * dt * k1, k2)
                              + 2 * lagrangian(y + 0.5 * dt * k2, k3) + lagrangian(y + dt * k3, k4))
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
        E, A = _flow(rhs, lag, batch, dt, substeps)
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


def escape_action(model: DickeModel, options: EscapeOptions | None = None) -> xr.Dataset:
    """WKB exponent S* of the lifetime τ ≍ exp(N_sp S*) of a retrieved pattern, M = 1 (docs/semiclassical-lifetime.md).

    Returns a Dataset (kind ``"escape_action"``) with, over ``duration`` T: ``action_gaussian`` (truncated-Wigner /
    Freidlin–Wentzell noise, minimum-action method), ``action_quantum`` (full WKB Hamiltonian, continued from the
    Gaussian instanton), ``eps_reached`` (1 when the continuation reached the full Hamiltonian); attrs
    ``action_gaussian_limit``, ``action_quantum_limit`` (Aitken T → ∞), ``first_order_correction`` (−∫ (H − H_G) dt
    on the Gaussian instanton), the chart, and the quantum instanton at the longest T (``instanton_*`` over ``time``).
    """
    t_wall = time.perf_counter()
    opts = options or EscapeOptions()
    om, om1, ka, g0, gc = _check_model(model)
    params = np.array([om, om1, ka, g0])
    x_ret = retrieval_point(model, -1)
    x_sad = np.array([-1.0, 0.0, 0.0, 0.0, 0.0])
    rate = _slowest_rate(params, x_ret)
    if opts.durations is None:
        T0 = max(30.0, 3.5 / rate)
        durations = (T0, 7 * T0 / 6, 4 * T0 / 3)
    else:
        durations = opts.durations
    tilt = math.asin((gc / g0) ** 2) if opts.chart_tilt is None else float(opts.chart_tilt)
    chart = _Chart(tilt)
    z_ret = np.r_[chart.coords(x_ret[:3]), x_ret[3:]]
    z_sad = np.r_[chart.coords(x_sad[:3]), x_sad[3:]]

    sq = math.sqrt(0.5 * ka)
    S_g, S_q, reached, first_order = [], [], [], np.nan
    Yq = None
    u_prev = None
    for T in durations:
        K = int(round(opts.mam_steps_per_time * T))
        # warm start from the previous (shorter) optimum: the extra time is spent waiting at the retrieval point
        u0 = None if u_prev is None or K <= u_prev.shape[0] else np.vstack([np.zeros((K - u_prev.shape[0], 2)), u_prev])
        Sg_mam, X, P, u_prev = minimum_action_gaussian(_dicke_drift, _dicke_vjp, params, x_ret, x_sad, T, K, [3, 4],
                                                       [sq, sq], controls=u0)
        # to the chart: z from s; p_z = (∂x/∂z)ᵀ p_x (the radial part of p_x drops out)
        Z = np.vstack([chart.coords(X[:, :3].T), X[:, 3:].T])
        Pz = np.empty_like(Z)
        Pz[2:] = P[:, 3:].T
        e = 1e-7
        for k, ab in enumerate(((e, 0.0), (0.0, e))):
            ds = (chart.spin(Z[0] + ab[0], Z[1] + ab[1]) - chart.spin(Z[0] - ab[0], Z[1] - ab[1])) / (2 * e)
            Pz[k] = np.sum(ds * P[:, :3].T, axis=0)
        n = max(4, int(round(opts.segments_per_time * T)))
        t_grid = np.linspace(0, T, X.shape[0])
        ts = np.linspace(0, T, n + 1)[:-1]
        guess = np.vstack([np.interp(ts, t_grid, c) for c in np.vstack([Z, Pz])])
        if T == durations[0]:
            rhs0, ham0 = wkb_hamiltonian(chart, params, 0.0)
            _, ham1 = wkb_hamiltonian(chart, params, 1.0)
            yg = np.vstack([Z, Pz])
            first_order = -float(np.trapezoid(ham1(yg) - ham0(yg), t_grid))
        family = lambda eps: wkb_hamiltonian(chart, params, eps)  # noqa: E731
        rhs0, ham0 = family(0.0)
        Y0, a0, ok0, _ = shoot_instanton(rhs0, ham0, guess, T, z_ret, z_sad, substeps=opts.substeps,
                                         tol=opts.newton_tol)
        S_g.append(a0 if ok0 else Sg_mam)
        Y1, a1, eps_reached = continue_instanton(family, Y0 if ok0 else guess, T, z_ret, z_sad, eps_step=opts.eps_step,
                                                 substeps=opts.substeps, tol=opts.newton_tol)
        S_q.append(a1)
        reached.append(eps_reached)
        if eps_reached == 1.0:
            Yq, Tq = Y1, T
    ds = xr.Dataset(
        {"action_gaussian": ("duration", np.array(S_g)), "action_quantum": ("duration", np.array(S_q)),
         "eps_reached": ("duration", np.array(reached))},
        coords={"duration": ("duration", np.array(durations), {"long_name": "path duration T"})})
    ds["action_gaussian"].attrs["long_name"] = "truncated-Wigner (Gaussian noise) escape action S_G, tau ~ exp(N_sp S)"
    ds["action_quantum"].attrs["long_name"] = "full WKB escape action S*, tau ~ exp(N_sp S*)"
    if Yq is not None:
        s = chart.spin(Yq[0], Yq[1])
        ds = ds.assign_coords(time=("time", np.linspace(0, Tq, Yq.shape[1], endpoint=False)))
        ds["instanton_bloch"] = (("component", "time"), s)
        ds = ds.assign_coords(component=("component", ["x", "y", "z"]))
        ds["instanton_alpha_re"] = ("time", Yq[2] / _R2)
        ds["instanton_alpha_im"] = ("time", Yq[3] / _R2)
    attrs = model_attrs(model)
    attrs.update({
        "kind": "escape_action",
        "action_gaussian_limit": aitken(S_g) if len(S_g) >= 3 else S_g[-1],
        "action_quantum_limit": (aitken(S_q) if len(S_q) >= 3 else S_q[-1]) if np.all(np.isfinite(S_q)) else np.nan,
        "first_order_correction": first_order,
        "chart_tilt": tilt,
        "slowest_relaxation_rate": rate,
        "g_c": gc,
        "segments_per_time": opts.segments_per_time, "substeps": opts.substeps,
        "elapsed_seconds": round(time.perf_counter() - t_wall, 6),
    })
    ds.attrs.update(attrs)
    return ds
