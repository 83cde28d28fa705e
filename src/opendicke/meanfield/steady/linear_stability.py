"""Linear stability of a fixed point with the conserved and undamped directions accounted for."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..equations import MeanFieldRHS
from ..jacobian import jacobian
from .classification import _MARGINAL, _STABLE, _UNSTABLE
from .fixed_point import _groups, _linsolve


def tangent_basis(rhs: MeanFieldRHS, y, lengths) -> np.ndarray:
    """Orthonormal basis (B, n, d) of the tangent space of the group spheres times the mode space.

    Two directions per non-empty group (orthogonal to m_k) and the 2M mode directions; empty groups
    (r_k = 0, they stay empty) contribute none. All points must have the same empty groups. With spin
    dissipation (all lengths NaN: not conserved) the whole space is the tangent space: the identity.
    """
    K, M = rhs.n_groups, rhs.n_modes
    B, n = y.shape
    free = np.isnan(np.asarray(lengths, dtype=float))
    if np.all(free):
        return np.broadcast_to(np.eye(n), (B, n, n)).copy()
    if np.any(free):
        raise ValueError("tangent_basis: either every group length is conserved or none is")
    empty = np.asarray(lengths) < 1e-12
    if not np.all(empty == empty[:1]):
        raise ValueError("tangent_basis: all points of the batch must have the same empty groups")
    live = np.nonzero(~empty[0])[0]
    m = _groups(y, K)[:, live]
    u = m / np.linalg.norm(m, axis=-1, keepdims=True)
    helper = np.zeros_like(u)
    np.put_along_axis(helper, np.argmin(np.abs(u), axis=-1)[..., None], 1.0, axis=-1)
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    e2 = np.cross(u, e1)
    L = live.size
    Q = np.zeros((B, n, 2 * L + 2 * M))
    cols = np.arange(L)
    for c in range(3):
        Q[:, c * K + live, cols] = e1[..., c]
        Q[:, c * K + live, L + cols] = e2[..., c]
    Q[:, 3 * K + np.arange(2 * M), 2 * L + np.arange(2 * M)] = 1.0
    return Q


@dataclass
class Stability:
    """Linear stability of B fixed points (see :func:`stability`)."""

    code: np.ndarray  # (B,) _STABLE / _MARGINAL / _UNSTABLE
    leading: np.ndarray  # (B, E) complex, reduced spectrum sorted by real part (descending), NaN-padded
    decay_rate: np.ndarray  # (B,) −max Re of the reduced spectrum
    n_conserved: np.ndarray  # (B,) radial zeros removed (one per non-empty group)
    n_undamped: np.ndarray  # (B,) eigenvalues of undamped, mode-free directions
    undamped_amplitude: np.ndarray  # (B,) amplitude of the deviation in undamped directions
    excited_rate: np.ndarray  # (B,) slowest decay rate among the modes the deviation excites
    settle_time: np.ndarray  # (B,) linear estimate of the time for the deviation to fall below 1e-10


def stability(rhs: MeanFieldRHS, ystar, lengths, deviation=None, *, eig_tol: float = 1e-9,
              n_eigenvalues: int = 6) -> Stability:
    """Linear stability of fixed points ``ystar`` (B, n) with the exactly marginal directions set apart.

    The Jacobian is restricted to the tangent space of the group spheres, which it leaves invariant at a
    fixed point (∇|m_k|² is a left null vector), so the radial zeros are removed exactly. With spin
    dissipation (``lengths`` NaN: nothing is conserved) the full Jacobian decides: the damping makes the
    radial directions decay (at a rate between Γ⊥ and Γ∥ in the field's absence) and damps every precession. Eigenvectors
    with no mode component (‖δα‖ < 1e-8‖v‖) are undamped spin precessions invisible to the modes; they
    are counted in ``n_undamped`` and excluded from the reduced spectrum that decides stability.
    ``deviation`` (B, n), the trajectory minus the fixed point, is decomposed on the eigenvectors to give
    the amplitude in the undamped directions, the slowest rate it excites and a settling-time estimate.
    """
    ystar = np.atleast_2d(ystar)
    lengths = np.atleast_2d(lengths)
    B = ystar.shape[0]
    M = rhs.n_modes
    E = n_eigenvalues
    out = Stability(
        code=np.full(B, _MARGINAL), leading=np.full((B, E), np.nan + 0j), decay_rate=np.full(B, np.nan),
        n_conserved=np.zeros(B, dtype=np.int64), n_undamped=np.zeros(B, dtype=np.int64),
        undamped_amplitude=np.full(B, np.nan), excited_rate=np.full(B, np.nan), settle_time=np.full(B, np.nan),
    )
    empty = np.where(np.isnan(lengths), False, lengths < 1e-12)
    masks, which = np.unique(empty, axis=0, return_inverse=True)
    for mi in range(masks.shape[0]):
        rows = np.nonzero(which.ravel() == mi)[0]
        sub = rhs.take(rows)
        Q = tangent_basis(sub, ystar[rows], lengths[rows])
        Qt = np.swapaxes(Q, 1, 2)
        JT = Qt @ (jacobian(sub, ystar[rows]) @ Q)
        lam, V = np.linalg.eig(JT)
        mode_part = np.linalg.norm(V[:, -2 * M :, :], axis=1)  # eigenvector columns have unit norm
        radius = np.max(np.abs(lam), axis=1)
        tol = eig_tol * np.where(radius > 0, radius, 1.0)
        undamped = (mode_part < 1e-8) & (np.abs(lam.real) <= np.maximum(tol[:, None], 1e-12 * radius[:, None]))
        reduced_re = np.where(undamped, -np.inf, lam.real)
        max_re = reduced_re.max(axis=1)
        code = np.where(max_re > tol, _UNSTABLE, np.where(max_re < -tol, _STABLE, _MARGINAL))
        code = np.where(np.all(undamped, axis=1), _MARGINAL, code)
        order = np.argsort(-reduced_re, axis=1, kind="stable")
        sorted_lam = np.take_along_axis(lam, order, axis=1)
        sorted_und = np.take_along_axis(undamped, order, axis=1)
        lead = np.where(sorted_und, np.nan + 0j, sorted_lam)[:, :E]
        out.code[rows] = code
        out.leading[rows, : lead.shape[1]] = lead
        out.decay_rate[rows] = np.where(np.isfinite(max_re), -max_re, np.nan)
        out.n_conserved[rows] = int((~masks[mi] & ~np.isnan(lengths[rows[0]])).sum())
        out.n_undamped[rows] = undamped.sum(axis=1)
        if deviation is not None:
            dT = (Qt @ deviation[rows][:, :, None])[:, :, 0]
            c = _linsolve(V, dT.astype(complex))
            amp = np.abs(c)
            und_vec = np.einsum("bij,bj->bi", V, np.where(undamped, c, 0.0))
            out.undamped_amplitude[rows] = np.linalg.norm(und_vec, axis=1)
            big = amp.max(axis=1, keepdims=True)
            excited = ~undamped & (amp > 1e-9 * big) & (amp > 1e-14)
            rates = np.where(excited, -lam.real, np.inf)
            out.excited_rate[rows] = np.where(excited.any(axis=1), rates.min(axis=1), np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(-lam.real > 0, -lam.real, 0.0)
                need = np.where(excited & (amp > 1e-10), np.log(amp / 1e-10) / rate, 0.0)
            out.settle_time[rows] = need.max(axis=1)
    return out
