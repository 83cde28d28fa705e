"""Newton's method on the fixed-point equations with the conserved group lengths.

With individual spin dissipation the lengths are not conserved: a group whose length is given as NaN is
*free*, and Newton solves F = 0 on its full Bloch vector (the damping makes the Jacobian non-singular there).
"""

from __future__ import annotations

import numpy as np

from ..equations import MeanFieldRHS
from ..jacobian import jacobian


def _groups(y, K):
    """(B, n) packed states → (B, K, 3) Bloch vectors."""
    return np.stack([y[:, :K], y[:, K : 2 * K], y[:, 2 * K : 3 * K]], axis=-1)


def _constrained_residual(rhs, y, lengths, empty, u):
    """G_k = F_k + ½(|m_k|² − r_k²) u_k on the spins (G_k = m_k for empty groups), G = F on the modes.

    u_k is a fixed unit vector (the direction of m_k at the Newton start). Since F_k = B_k × m_k ⊥ m_k,
    m_k·G_k = ½(|m_k|² − r_k²)(u_k·m_k): wherever u_k·m_k ≠ 0, G = 0 ⇔ F = 0 and |m_k| = r_k. (With m_k in
    place of u_k, m_k = 0 would be a spurious root.)
    """
    K = rhs.n_groups
    F = rhs(y)
    m = _groups(y, K)
    excess = np.nan_to_num(0.5 * (np.sum(m * m, axis=-1) - lengths**2))  # free groups (NaN length): none
    G = F.copy()
    for a in range(3):
        cols = slice(a * K, (a + 1) * K)
        G[:, cols] = np.where(empty, m[..., a], F[:, cols] + excess * u[..., a])
    return G


def _constrained_jacobian(rhs, y, lengths, empty, u):
    K = rhs.n_groups
    J = jacobian(rhs, y)
    m = _groups(y, K)
    k = np.arange(K)
    fixed = np.isfinite(lengths)  # conserved length: the constraint term; free groups: the plain Jacobian
    for a in range(3):
        for b in range(3):
            J[:, a * K + k, b * K + k] += np.where(fixed, u[..., a] * m[..., b], 0.0)
    if np.any(empty):
        pts, grp = np.nonzero(empty)
        for a in range(3):
            J[pts, a * K + grp, :] = 0.0
            J[pts, a * K + grp, a * K + grp] = 1.0
    return J


def _linsolve(A, b):
    """Batched A x = b, falling back to least squares point by point where A is singular."""
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.empty_like(b)
        for i in range(A.shape[0]):
            try:
                out[i] = np.linalg.solve(A[i], b[i])
            except np.linalg.LinAlgError:
                out[i] = np.linalg.lstsq(A[i], b[i], rcond=None)[0]
        return out


def newton(rhs: MeanFieldRHS, y0, lengths, *, tol: float = 1e-12, max_iter: int = 40):
    """Newton's method on F(y) = 0 with |m_k| = r_k, batched, with backtracking on the residual.

    Parameters
    ----------
    rhs:
        The batched right-hand side (one row per point).
    y0:
        Starting states (B, n), e.g. taken from trajectories.
    lengths:
        Conserved group lengths r_k (B, K); groups with r_k = 0 stay empty; NaN: not conserved (spin
        dissipation), F = 0 is solved on the full Bloch vector.

    Returns
    -------
    y, converged, iterations, residual:
        The polished states (B, n), a convergence flag, the Newton iterations and the max-norm of the
        true right-hand side F(y) (B,).
    """
    y = np.array(y0, dtype=float, copy=True)
    lengths = np.asarray(lengths, dtype=float)
    empty = lengths < 1e-12
    B = y.shape[0]
    iters = np.zeros(B, dtype=np.int64)
    m0 = _groups(y, rhs.n_groups)
    norm0 = np.linalg.norm(m0, axis=-1, keepdims=True)
    u = np.where(norm0 > 1e-12, m0 / np.where(norm0 > 1e-12, norm0, 1.0), np.array([1.0, 0.0, 0.0]))
    G = _constrained_residual(rhs, y, lengths, empty, u)
    with np.errstate(invalid="ignore"):
        gnorm = np.max(np.abs(G), axis=1)
    target = tol * (1.0 + np.max(np.abs(y), axis=1))
    converged = gnorm <= target
    active = np.nonzero(~converged & np.isfinite(gnorm))[0]
    for _ in range(max_iter):
        if active.size == 0:
            break
        sub = rhs.take(active)
        ya = y[active]
        step = _linsolve(_constrained_jacobian(sub, ya, lengths[active], empty[active], u[active]), -G[active])
        lam = np.ones(active.size)
        accepted = np.zeros(active.size, dtype=bool)
        for _ in range(16):  # backtracking: halve the step until the residual decreases
            todo = np.nonzero(~accepted)[0]
            if todo.size == 0:
                break
            cand = ya[todo] + lam[todo, None] * step[todo]
            rows = active[todo]
            Gc = _constrained_residual(rhs.take(rows), cand, lengths[rows], empty[rows], u[rows])
            with np.errstate(invalid="ignore"):
                gc = np.max(np.abs(Gc), axis=1)
            ok = np.isfinite(gc) & (gc < gnorm[rows] * (1.0 - 1e-4 * lam[todo]))
            good = rows[ok]
            y[good], G[good], gnorm[good] = cand[ok], Gc[ok], gc[ok]
            accepted[todo[ok]] = True
            lam[todo[~ok]] *= 0.5
        iters[active] += 1
        converged[active] = gnorm[active] <= target[active]
        tiny_step = np.max(np.abs(step), axis=1) <= 4e-16 * (1.0 + np.max(np.abs(ya), axis=1))
        stuck = active[tiny_step & accepted]  # no further progress possible: accept a residual near the target
        converged[stuck] |= gnorm[stuck] <= 1e3 * target[stuck]
        active = active[~(converged[active] | ~accepted | tiny_step)]
    with np.errstate(invalid="ignore"):
        residual = np.max(np.abs(rhs(y)), axis=1)
        length_error = np.max(np.nan_to_num(np.abs(np.linalg.norm(_groups(y, rhs.n_groups), axis=-1) - lengths)),
                              axis=1, initial=0.0)
    # guard against roots of the auxiliary system that are not fixed points (where u_k·m_k = 0)
    converged &= (residual <= 1e3 * target) & (length_error <= 1e3 * target)
    return y, converged, iters, residual
