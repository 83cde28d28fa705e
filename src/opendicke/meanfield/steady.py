"""Stationary states of the mean-field equations (paper Eq. 7): found, verified and classified.

Integrating to a fixed "long" time is not a stationary-state method here: the slowest decay rate of the
retrieval state of the paper's Fig. 3 model is 1.5e-4 at g0 = 2 and 5.8e-6 at g0 = 3 (docs/physics-notes.md, Measured facts). Instead,
for a whole batch of parameter points and initial states at once:

0. **Invariant subspace.** Each initial state is reduced to the subspace fixed by its symmetries (see
   :mod:`.symmetry`: the pattern-ν state of the ideal model lives on one group and one mode). The search
   runs on that smaller model, so round-off cannot push the trajectory off the subspace it never leaves
   in exact arithmetic. Initial states with the same reduced model share one batch.
1. **Integrate in windows** with the batched DOP853 integrator (doubling lengths up to ``max_window``,
   the last window densely sampled). Settled points drop out; the others continue until ``t_max``.
2. **Newton from the trajectory.** After each window, Newton's method on the fixed-point equations with
   the conserved group lengths |m_k| = r_k (:func:`newton`) starts from several points of the window: its
   end, its time average (plain and rescaled to the conserved lengths) and four samples. Seeds come from
   the trajectory only, never from Eq. (12). A converged stable candidate nearest to the trajectory wins.
3. **Linear stability on the right subspace** (:func:`stability`). At a fixed point the Jacobian has
   exactly marginal directions that say nothing about stability: one radial zero per group (its length is
   conserved) and, because only the M modes are damped, group precessions that drive no mode (2^(M−1) − M
   undamped combinations, i.e. 2(2^(M−1) − M) eigenvalues ±i|B| in the ideal model). The spectrum is taken
   on the tangent space of the group spheres (radial zeros removed exactly); eigenvectors without a mode
   component are set apart as undamped. The rest, the *reduced spectrum*, decides: all Re λ < 0 stable,
   some Re λ > 0 unstable, otherwise marginal. This is done on the invariant subspace (the
   classification) and on the full space (``full_space_stability``: robustness against perturbations
   that break the initial state's symmetry, e.g. crosstalk at finite N_sp).
4. **Is the trajectory attracted?** A stable Newton point is accepted as the trajectory's end when the
   Newton points of successive windows agree and either (a) the last window lies in its linear regime
   (‖F(y) − J(y − y*)‖ ≤ ``linearity``·‖J(y − y*)‖ along the window) and the trajectory does not move
   away, or (b) four windows agree and the trajectory's largest distance from it shrinks by at least
   ``shrink`` from window to window (a decaying, still nonlinear oscillation). For weakly damped points this
   stops the integration long before the trajectory has settled; the remaining ``distance``, the slowest
   rate among the modes the trajectory excites and a linear ``settle_time`` estimate are reported. A
   trajectory that sits still on any fixed point (even an unstable one) gets that point's classification.
5. **Undamped excitation.** If the trajectory keeps an amplitude in undamped directions (possible from
   non-symmetric initial states), it ends on a torus of undamped precessions: α and the overlaps are
   constant there, every group precesses about its field, and its component ρ_k = m_k·B̂_k along the
   field is conserved. The reported state is then the fixed point with group lengths |ρ_k| (the centre of
   the torus), accepted once two successive windows agree on it, and classified ``marginal``.
6. **Giving up.** A point whose overlaps oscillate with a constant range while no stable fixed point is in
   sight is checked on a densely sampled probe window and reported ``not stationary`` (with the range and,
   if the oscillation is regular, the period). Points not settled when ``t_max`` is spent are ``not
   converged``, with the reason. Neither carries a stationary state: their fixed-point fields are NaN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from enum import Enum

import numpy as np

from ..grid import parameter_batch
from ..model import DickeModel
from ..states import InitialState, as_initial_state
from .equations import MeanFieldRHS, pack, unpack
from .evolve import check_memory, choose_grouping, n_groups
from .integrate import integrate
from .jacobian import jacobian
from .symmetry import invariant_reduction
from ..results import timed

__all__ = [
    "steady_state",
    "SteadyStateOptions",
    "find_critical_coupling",
    "newton",
    "tangent_basis",
    "stability",
    "CLASSIFICATIONS",
    "Classification",
]

class Classification(str, Enum):
    """Verdict on one point of :func:`steady_state` (string values: stored as such in NetCDF and JSON)."""

    STABLE = "stable"
    MARGINAL = "marginal"
    UNSTABLE = "unstable"
    NOT_STATIONARY = "not stationary"
    NOT_CONVERGED = "not converged"


CLASSIFICATIONS = tuple(c.value for c in Classification)
_STABLE, _MARGINAL, _UNSTABLE, _NOT_STATIONARY, _NOT_CONVERGED = range(5)  # codes = positions in Classification
_RUNNING = -1


@dataclass(frozen=True)
class SteadyStateOptions:
    """Numerical settings of :func:`steady_state` (all times in the model's units, 1/κ in the paper).

    Attributes
    ----------
    t_max:
        Time budget per point. Points not settled by then are reported as not converged (or not
        stationary), never as stationary.
    first_window, max_window:
        Length of the first integration window and the cap on the doubling window lengths.
    samples:
        Least number of output samples per window (longer windows get up to 4 per time unit, at most
        400); used for the time average, the Newton seeds, the linear-regime test and the ranges.
    probe_length, probe_samples:
        Densely sampled windows (``probe_samples`` samples over at most ``probe_length``) measure the range
        and period of oscillations: the last window before ``t_max`` and the probe that confirms a
        persistent oscillation early.
    rtol, atol:
        Tolerances of the batched integrator (the trajectory only has to find the right basin; Newton
        makes the stationary state exact).
    newton_tol, newton_max_iter:
        Newton stops when the constrained residual is below ``newton_tol·(1 + max|y|)``.
    linearity:
        Largest accepted relative deviation of the vector field along the last window from its
        linearisation about the fixed point, ‖F(y) − J(y − y*)‖ / ‖J(y − y*)‖.
    shrink:
        Without the linear regime, a stable Newton point is accepted after four windows that agree on it if
        the trajectory's largest distance from it shrinks by at least this fraction from window to window
        (a decaying oscillation).
    rest_tol:
        A trajectory whose max |ẏ| stays below this over a whole window sits on a fixed point.
    same_tol:
        Newton points of successive windows must agree to this (max norm).
    eig_tol:
        Eigenvalues with |Re λ| ≤ eig_tol · (spectral radius) count as marginal.
    undamped_tol:
        Amplitude in the undamped directions above which a settled trajectory is called marginal; the
        centres of its torus from two successive windows must then agree to this.
    n_eigenvalues:
        How many leading eigenvalues of the reduced spectrum to report.
    symmetry:
        Integrate on the invariant subspace of the initial state's symmetry (exactly, see
        :mod:`.symmetry`). With ``False`` the full equations are integrated and round-off can break the
        symmetry where the state is unstable against symmetry-breaking perturbations.
    """

    t_max: float = 10000.0
    first_window: float = 5.0
    max_window: float = 200.0
    samples: int = 48
    probe_length: float = 100.0
    probe_samples: int = 2000
    rtol: float = 1e-8
    atol: float = 1e-10
    max_steps: int = 2_000_000
    newton_tol: float = 1e-12
    newton_max_iter: int = 40
    linearity: float = 0.25
    shrink: float = 2e-3
    rest_tol: float = 1e-9
    same_tol: float = 1e-8
    eig_tol: float = 1e-9
    undamped_tol: float = 1e-6
    n_eigenvalues: int = 6
    symmetry: bool = True

    def __post_init__(self):
        positive = ("t_max", "first_window", "max_window", "probe_length", "rtol", "newton_tol", "linearity", "shrink",
                    "rest_tol", "same_tol", "eig_tol", "undamped_tol")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (np.isfinite(self.atol) and self.atol >= 0):
            raise ValueError(f"atol must be ≥ 0, got {self.atol!r}")
        for name in ("samples", "probe_samples", "max_steps", "newton_max_iter", "n_eigenvalues"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.symmetry, bool):
            raise ValueError(f"symmetry must be True or False, got {self.symmetry!r}")
        if self.samples < 8 or self.probe_samples < 16:
            raise ValueError("need samples ≥ 8 and probe_samples ≥ 16")

    def as_attrs(self) -> dict:
        """The settings as NetCDF-safe attributes (booleans as 0/1)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {f"steady_{k}": (int(v) if isinstance(v, bool) else v) for k, v in values.items()}


# ------------------------------------------------------------------------------------------------
# Newton's method on the fixed-point equations with the conserved lengths


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
    excess = 0.5 * (np.sum(m * m, axis=-1) - lengths**2)
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
    for a in range(3):
        for b in range(3):
            J[:, a * K + k, b * K + k] += u[..., a] * m[..., b]
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
        Conserved group lengths r_k (B, K); groups with r_k = 0 stay empty.

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
        length_error = np.max(np.abs(np.linalg.norm(_groups(y, rhs.n_groups), axis=-1) - lengths), axis=1,
                              initial=0.0)
    # guard against roots of the auxiliary system that are not fixed points (where u_k·m_k = 0)
    converged &= (residual <= 1e3 * target) & (length_error <= 1e3 * target)
    return y, converged, iters, residual


# ------------------------------------------------------------------------------------------------
# Linear stability with the conserved and undamped directions accounted for


def tangent_basis(rhs: MeanFieldRHS, y, lengths) -> np.ndarray:
    """Orthonormal basis (B, n, d) of the tangent space of the group spheres times the mode space.

    Two directions per non-empty group (orthogonal to m_k) and the 2M mode directions; empty groups
    (r_k = 0, they stay empty) contribute none. All points must have the same empty groups.
    """
    K, M = rhs.n_groups, rhs.n_modes
    B, n = y.shape
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
    fixed point (∇|m_k|² is a left null vector), so the radial zeros are removed exactly. Eigenvectors
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
    empty = lengths < 1e-12
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
        out.n_conserved[rows] = int((~masks[mi]).sum())
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


# ------------------------------------------------------------------------------------------------
# The windowed search


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


def _find(rhs: MeanFieldRHS, y0: np.ndarray, lengths: np.ndarray, xi_map, opts: SteadyStateOptions,
          report=None) -> _Outcome:
    """The windowed search for B points at once (see the module docstring).

    ``xi_map = (A, b)`` with shapes (B, n, M) and (B, M) gives the overlaps of all M patterns of each point
    as y @ A + b (for ranges and messages).
    """
    B, n = y0.shape
    xi_A, xi_b = xi_map
    M_full = xi_A.shape[2]
    nan = np.full(B, np.nan)
    res = _Outcome(
        status=np.full(B, _RUNNING), fixed=np.full((B, n), np.nan), final=y0.copy(), message=[""] * B,
        residual=nan.copy(), newton_iterations=np.zeros(B, dtype=np.int64), time_integrated=np.zeros(B),
        n_steps=np.zeros(B, dtype=np.int64), distance=nan.copy(), linearity=nan.copy(),
        leading=np.full((B, opts.n_eigenvalues), np.nan + 0j), decay_rate=nan.copy(), excited_rate=nan.copy(),
        settle_time=nan.copy(), undamped_amplitude=nan.copy(), overlap_min=np.full((B, M_full), np.nan),
        overlap_max=np.full((B, M_full), np.nan), period=nan.copy(),
    )
    prev_star = np.full((B, n), np.nan)  # stable Newton point of the previous window (NaN: none)
    chain = np.zeros(B, dtype=np.int64)  # successive windows whose stable Newton points agree
    history = np.full((B, 3), np.inf)  # distances of the trajectory from that point in the last windows
    candidate = {}  # point → (fixed point, linearity, distance) of its last stable Newton point
    eff_prev = np.full((B, n), np.nan)  # effective fixed point of the previous window (undamped precessions)
    no_attractor = np.zeros(B, dtype=np.int64)  # successive windows with a steady oscillation and no stable point
    last_range = np.full((B, M_full), np.nan)
    last_centre = np.full((B, M_full), np.nan)
    # no mode the trajectory drives is damped: the flow is conservative and has no attractor at all
    lossless = np.all(np.asarray(rhs.kappa) == 0, axis=1) & (rhs.n_modes > 0)
    y = y0.copy()
    extra = np.zeros(B)  # time integrated in probes on top of the common window schedule (autonomous equations)
    active = np.arange(B)

    for t_a, t_b, samples in _windows(opts):
        if active.size == 0:
            break
        times = np.linspace(t_a, t_b, samples + 1)
        sub = rhs.take(active)
        ys, stats = integrate(sub, y[active], times, rtol=opts.rtol, atol=opts.atol, max_steps=opts.max_steps)
        res.n_steps[active] += stats.n_steps
        if not np.all(stats.success):
            for j in np.nonzero(~stats.success)[0]:
                p = active[j]
                good = np.nonzero(np.all(np.isfinite(ys[:, j]), axis=1))[0][-1]
                res.final[p] = ys[good, j]
                res.time_integrated[p] = times[good] + extra[p]
                res.status[p] = _NOT_CONVERGED
                res.message[p] = f"integration gave up after t = {times[good] + extra[p]:.6g}: {stats.reason[j]}"
            keep = stats.success
            active, ys, sub = active[keep], ys[:, keep], sub.take(np.nonzero(keep)[0])
            if active.size == 0:
                break
        A = active.size
        S = ys.shape[0]
        y[active] = ys[-1]
        res.final[active] = ys[-1]
        res.time_integrated[active] = t_b + extra[active]
        xi = np.einsum("san,anm->sam", ys, xi_A[active]) + xi_b[active]
        res.overlap_min[active] = xi.min(axis=0)
        res.overlap_max[active] = xi.max(axis=0)
        F = sub.take(np.tile(np.arange(A), S))(ys.reshape(S * A, n)).reshape(S, A, n)
        speed = np.max(np.abs(F), axis=(0, 2))
        mean = ys.mean(axis=0)

        # Newton from several points of the trajectory, all starts of all points in one batch: the end point,
        # the window average (plain and with the group vectors rescaled to their conserved lengths) and samples
        centre = mean.copy()
        for k in range(sub.n_groups):
            v = centre[:, [k, sub.n_groups + k, 2 * sub.n_groups + k]]
            norm = np.linalg.norm(v, axis=1)
            scale_k = np.where(norm > 0, lengths[active][:, k] / np.where(norm > 0, norm, 1.0), 0.0)
            centre[:, [k, sub.n_groups + k, 2 * sub.n_groups + k]] = v * scale_k[:, None]
        picks = [ys[(S - 1) * q // 5] for q in range(1, 5)]
        seeds = np.concatenate([ys[-1], mean, centre] + picks)
        n_seeds = seeds.shape[0] // A
        rows_all = np.tile(np.arange(A), n_seeds)
        sub_all = sub.take(rows_all)
        ystar_all, ok_all, it_all, res_all = newton(sub_all, seeds, lengths[active][rows_all], tol=opts.newton_tol,
                                                    max_iter=opts.newton_max_iter)
        ok_all &= np.all(np.isfinite(ystar_all), axis=1)
        ystar_all = np.where(ok_all[:, None], ystar_all, seeds)
        code_all = np.full(ok_all.shape, _UNSTABLE)
        conv = np.nonzero(ok_all)[0]
        if conv.size:
            code_all[conv] = stability(sub_all.take(conv), ystar_all[conv], lengths[active][rows_all[conv]],
                                       eig_tol=opts.eig_tol, n_eigenvalues=1).code
        # per point: a converged stable candidate first, then any converged one; the one nearest the trajectory wins
        few = ys[:: max(1, S // 32)]
        near = np.mean(np.max(np.abs(few[:, rows_all] - ystar_all[None]), axis=2), axis=0)
        score = (np.where(ok_all, 0.0, 4.0) + np.where(code_all == _STABLE, 0.0, 2.0)
                 + np.minimum(near, 1e6) * 1e-7).reshape(n_seeds, A)
        pick = np.argmin(score, axis=0) * A + np.arange(A)
        ystar, ok, code = ystar_all[pick], ok_all[pick], code_all[pick]
        ystar2, ok2, it2, res2 = ystar_all, ok_all, it_all, res_all  # block 0 holds the end-point starts

        lin, dist = _linearity(jacobian(sub, ystar), ys, F, ystar)
        good = ok & (code == _STABLE)
        consistent = good & (np.max(np.abs(ystar - prev_star[active]), axis=1) <= opts.same_tol)
        chain[active] = np.where(consistent, chain[active] + 1, np.where(good, 1, 0))
        hist = np.where(consistent[:, None], history[active], np.inf)
        hist = np.concatenate([hist[:, 1:], dist[:, None]], axis=1)
        history[active] = hist
        tiny = dist <= 1e-6
        # linear regime: two agreeing windows, the vector field is close to its linearisation, not moving away
        linear = (chain[active] >= 2) & (lin <= opts.linearity) & ((hist[:, 2] <= 1.02 * hist[:, 1]) | tiny)
        # decaying oscillation: four agreeing windows, the distance shrinking window after window
        shrink = 1.0 - opts.shrink
        decaying = (chain[active] >= 4) & (hist[:, 2] <= shrink * hist[:, 1]) & (hist[:, 1] <= shrink * hist[:, 0]) & (
            lin <= 1.0)
        attracted = good & (linear | decaying)
        # a trajectory that did not move during the whole window sits on the fixed point Newton finds next to it
        scale = 1.0 + np.max(np.abs(ys[-1]), axis=1)
        resting = ~attracted & (speed <= opts.rest_tol * scale) & ok2[:A] & (
            np.max(np.abs(ystar2[:A] - ys[-1]), axis=1) <= 1e3 * opts.rest_tol * scale)

        done = np.nonzero(attracted | resting)[0]
        if done.size:
            rest = resting[done]
            yfix = np.where(rest[:, None], ystar2[:A][done], ystar[done])
            st = stability(sub.take(done), yfix, lengths[active[done]], deviation=ys[-1][done] - yfix,
                           eig_tol=opts.eig_tol, n_eigenvalues=opts.n_eigenvalues)
            undamped_left = (st.code == _STABLE) & (st.undamped_amplitude > opts.undamped_tol) & ~rest
            newton_it = np.where(rest, it2[:A][done], it2[pick][done])
            residual = np.where(rest, res2[:A][done], res2[pick][done])
            if np.any(undamped_left):
                # undamped precessions persist: the trajectory ends on a torus around the fixed point whose group
                # vectors have the effective lengths ρ_k = m_k·B̂_k (conserved there); accept that fixed point once
                # two successive windows agree on it
                u = np.nonzero(undamped_left)[0]
                y_eff, ok_eff, it_eff, res_eff = _effective_fixed_point(sub.take(done[u]), ys[-1][done[u]], opts)
                prev = eff_prev[active[done[u]]]
                agree = ok_eff & (np.max(np.abs(y_eff - prev), axis=1) <= opts.undamped_tol)
                eff_prev[active[done[u]]] = np.where(ok_eff[:, None], y_eff, np.nan)
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
        if done.size:
            dist_fix = np.max(np.abs(ys[:, done] - yfix[None]), axis=(0, 2))
            code_fix = st.code.copy()
            code_fix[undamped_left] = _MARGINAL
            pts = active[done]
            res.status[pts] = code_fix
            res.fixed[pts] = yfix
            res.residual[pts] = residual
            res.newton_iterations[pts] = newton_it
            res.distance[pts] = dist_fix
            res.linearity[pts] = np.where(rest, 0.0, lin[done])
            res.leading[pts] = st.leading
            res.decay_rate[pts] = st.decay_rate
            res.excited_rate[pts] = st.excited_rate
            res.settle_time[pts] = st.settle_time
            res.undamped_amplitude[pts] = st.undamped_amplitude
            for j, p in enumerate(pts):
                if rest[j]:
                    text = (f"the trajectory is at rest on a fixed point over t ∈ [{t_a:.6g}, {t_b:.6g}] "
                            f"(max |dy/dt| = {speed[done[j]]:.2e})")
                elif linear[done[j]]:
                    text = (f"stable fixed point attracting the trajectory: Newton points from {chain[p]} successive "
                            f"windows agree, the last window is in its linear regime (nonlinearity {lin[done[j]]:.2g}) "
                            f"at distance {dist_fix[j]:.2e}; slowest excited decay rate {st.excited_rate[j]:.3g}")
                else:
                    h = history[p]
                    text = (f"stable fixed point attracting the trajectory: Newton points from {chain[p]} successive "
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

        prev_star[active] = np.where(good[:, None], ystar, np.nan)
        for j in range(A):
            if good[j]:
                candidate[int(active[j])] = (ystar[j], lin[j], dist[j])
            else:
                candidate.pop(int(active[j]), None)

        # persistent oscillation without any stable fixed point in sight: confirm on a dense probe and stop early
        ranges, centres = np.ptp(xi, axis=0), 0.5 * (xi.max(axis=0) + xi.min(axis=0))
        spread = ranges.max(axis=1)
        tol = 1e-2 * spread[:, None]
        steady_osc = (np.all(np.abs(ranges - last_range[active]) <= tol, axis=1)
                      & np.all(np.abs(centres - last_centre[active]) <= tol, axis=1) & (spread > 1e-6))
        no_attractor[active] = np.where(good | ~steady_osc, 0, no_attractor[active] + 1)
        last_range[active], last_centre[active] = ranges, centres
        room = t_b + extra[active] + opts.probe_length <= opts.t_max  # probes count against the budget
        pt = yp = None
        probe = np.nonzero(((no_attractor[active] >= 3) | lossless[active]) & room
                           & (res.status[active] == _RUNNING))[0]
        if probe.size:
            span = opts.probe_length
            pt = np.linspace(t_b, t_b + span, opts.probe_samples + 1)
            yp, sp = integrate(sub.take(probe), ys[-1][probe], pt, rtol=opts.rtol, atol=opts.atol,
                               max_steps=opts.max_steps)
            for k, p in enumerate(active[probe]):
                res.n_steps[p] += sp.n_steps[k]
                if not sp.success[k]:
                    continue
                y[p] = res.final[p] = yp[-1, k]
                extra[p] += span
                res.time_integrated[p] = t_b + extra[p]
                _diagnose(res, int(p), pt, yp[:, k], sub.take([probe[k]]), None, xi_A[p], xi_b[p], opts, early=True,
                          conservative=bool(lossless[p]))
                if res.status[p] != _NOT_STATIONARY:  # not periodic: keep integrating
                    res.status[p] = _RUNNING
                    res.message[p] = ""
                    no_attractor[p] = -3  # and probe again only after a while
                else:
                    res.overlap_min[p] = (yp[:, k] @ xi_A[p] + xi_b[p]).min(axis=0)
                    res.overlap_max[p] = (yp[:, k] @ xi_A[p] + xi_b[p]).max(axis=0)
        # budget spent (probes count too): give the verdict from this window, the densely sampled last one
        # for points that follow the schedule to the end
        spent = np.nonzero((res.status[active] == _RUNNING) & (t_b + extra[active] >= opts.t_max * (1 - 1e-12)))[0]
        for j in spent:
            p = int(active[j])
            trajectory = yp[:, list(probe).index(j)] if probe.size and j in probe else ys[:, j]
            when = pt if probe.size and j in probe else times
            _diagnose(res, p, when, trajectory, rhs.take([p]), candidate.get(p), xi_A[p], xi_b[p], opts)
        active = active[res.status[active] == _RUNNING]
        if report is not None:
            report(B - active.size)
    return res


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


# ------------------------------------------------------------------------------------------------
# One initial state, many parameter points: reduce, search, map back, full-space stability


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


def _solve(grouping, y_starts, which, omega, g0, omega_modes, kappa, opts: SteadyStateOptions, progress=None) -> dict:
    """Single-threaded BLAS around :func:`_solve_batch`: its matrices are small and many (multi-threaded
    LAPACK made one 800×800 eigendecomposition 30 times slower on a busy 2-core machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _solve_batch(grouping, y_starts, which, omega, g0, omega_modes, kappa, opts, progress)


def _solve_batch(grouping, y_starts, which, omega, g0, omega_modes, kappa, opts: SteadyStateOptions,
                 progress=None) -> dict:
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
    reductions = [invariant_reduction(grouping.f, grouping.weights, y, use_symmetry=opts.symmetry) for y in y_starts]
    result = _empty_outcome(B, n, M, opts)
    batches: dict = {}
    for s, red in enumerate(reductions):
        if np.any(which == s):
            batches.setdefault((red.f.shape, red.f.tobytes(), red.weights.tobytes()), []).append(s)
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
            rhs = MeanFieldRHS(red0.f, red0.weights, omega[pts], g0[pts], om, ka)
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
        rhs_full = MeanFieldRHS(grouping.f, grouping.weights, omega[pts], g0[pts], omega_modes[pts], kappa[pts])
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


# ------------------------------------------------------------------------------------------------
# Public entry points


def _starts_and_batch(model, initial, vary, representation, memory_budget=None):
    many = isinstance(initial, (list, tuple))
    starts = [as_initial_state(s) for s in (initial if many else [initial])]
    if not starts:
        raise ValueError("initial: give at least one initial state")
    params = parameter_batch(model, vary)
    K, B = n_groups(model, representation), params.size * len(starts)
    # one window of up to 400 samples per point plus the integrator's stages; the Jacobians act on the
    # (much smaller) invariant subspaces and are not counted
    check_memory(8.0 * B * (3 * K + 2 * model.n_modes) * 430 + 16.0 * model.n_modes * K, memory_budget,
                 f"steady_state ({B} points × {K} groups)")
    grouping = choose_grouping(model, representation)
    y_start = np.stack([pack(s.group_vectors(model, grouping), s.initial_alpha(model)) for s in starts])
    return many, starts, grouping, params, y_start


def _options(options, overrides) -> SteadyStateOptions:
    opts = options or SteadyStateOptions()
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(SteadyStateOptions)}
        if unknown:
            raise TypeError(f"unknown steady-state option(s) {sorted(unknown)}; see SteadyStateOptions")
        opts = dataclasses.replace(opts, **overrides)
    return opts


@timed
def steady_state(
    model: DickeModel,
    initial: InitialState | int | Sequence[InitialState | int] = 1,
    *,
    vary: dict | None = None,
    representation: str = "auto",
    options: SteadyStateOptions | None = None,
    paper_units: bool = False,
    memory_budget: int | str | None = None,
    progress: Callable[[float], None] | None = None,
    **option_overrides,
):
    """Stationary states reached by the mean-field dynamics (Eq. 7), verified and classified.

    Parameters
    ----------
    model:
        The model; its parameters are the defaults for the names not in ``vary``.
    initial:
        An initial state (or a pattern number, 1-based), or a list of them (adds a dimension ``initial``).
    vary:
        ``{name: values}`` as in :func:`~opendicke.meanfield.evolve`: the outer product of the values is
        solved as one batch, one labelled dimension per name.
    representation:
        ``"auto"``, ``"groups"`` (exact large-spin reduction) or ``"spins"``.
    options:
        A :class:`SteadyStateOptions`; single fields can also be given as keywords (``t_max=5000``).
    paper_units:
        Report α and occupations in the paper's normalisation (α_paper = √(2^(M-1)) α).
    memory_budget:
        Bytes (or ``"8GiB"``) the search may use (default 2 GiB); checked before anything large is allocated.
    progress:
        Called now and then with the fraction of points settled so far.

    Returns
    -------
    xarray.Dataset
        Per point: ``classification`` (one of :data:`CLASSIFICATIONS`, decided on the invariant subspace
        the trajectory lives in), ``stationary``, ``stable`` (stable in the full space: classification
        "stable" *and* ``full_space_stability`` "stable"), ``stable_on_subspace`` (classification "stable"
        alone), ``converged``, ``message`` (why); the fixed
        point (``overlap``, ``occupation``, ``alpha`` per pattern, ``bloch`` per group; NaN when there is
        none) and its evidence: ``residual`` (max |dy/dt| there), ``newton_iterations``, ``time_integrated``,
        ``n_steps``, ``distance`` (trajectory to fixed point over the last window), ``linearity``,
        ``eigenvalues`` (leading ones of the reduced spectrum on the invariant subspace), ``decay_rate``,
        ``excited_rate`` (slowest rate the trajectory excites), ``settle_time``, ``undamped_amplitude``,
        ``subspace_dim``; stability against all perturbations: ``full_space_stability``,
        ``full_space_max_real``, ``eigenvalues_full``, ``n_conserved`` (radial zeros, one per group) and
        ``n_undamped`` (undamped group precessions); and from the trajectory ``final_overlap``,
        ``overlap_min``/``overlap_max`` over the last window and ``period`` (not stationary, periodic).
    """
    opts = _options(options, option_overrides)
    if not isinstance(paper_units, (bool, np.bool_)):
        raise ValueError(f"paper_units must be True or False, got {paper_units!r}")
    many, starts, grouping, params, y_start = _starts_and_batch(model, initial, vary, representation, memory_budget)
    P, S = params.size, len(starts)
    rep = lambda a: np.repeat(a, S, axis=0)  # noqa: E731  (parameters per point, initial state fastest, as in evolve)
    solved = _solve(grouping, y_start, np.tile(np.arange(S), P), rep(params.omega), rep(params.g0),
                    rep(params.omega_modes), rep(params.kappa), opts, progress)
    return _dataset(model, grouping, params, starts, many, solved, opts, paper_units)


def _dataset(model, grouping, params, starts, many, solved, opts, paper_units):
    from ..results import BatchLayout, paper_factor

    K, M = grouping.n_groups, grouping.n_modes
    layout = BatchLayout(model, grouping, params, starts, many)
    shaped = layout.var

    out = lambda name: getattr(solved["out"], name)  # noqa: E731
    part = lambda name: out(name) if name in ("fixed", "final") else solved[name]  # noqa: E731
    status = out("status")
    bloch, alpha = unpack(part("fixed"), K)
    final_bloch, _ = unpack(part("final"), K)
    factor = paper_factor(M) if paper_units else 1.0
    full_code = part("full_code")
    full_names = np.where(full_code >= 0, np.array(CLASSIFICATIONS)[np.clip(full_code, 0, 2)], "")
    data = {
        "classification": shaped(np.array(CLASSIFICATIONS)[status].astype(str)),
        "stationary": shaped(np.isin(status, (_STABLE, _MARGINAL, _UNSTABLE))),
        "stable": shaped((status == _STABLE) & (full_code == _STABLE)),
        "stable_on_subspace": shaped(status == _STABLE),
        "converged": shaped(status != _NOT_CONVERGED),
        "message": shaped(np.array(out("message"), dtype=str)),
        "overlap": shaped(bloch[..., 2] @ grouping.weighted_f, ("pattern",)),
        "occupation": shaped(np.abs(alpha) ** 2 * factor, ("pattern",)),
        "alpha": shaped(alpha * np.sqrt(factor), ("pattern",)),
        "bloch": shaped(bloch, ("group", "component")),
        "residual": shaped(out("residual")),
        "newton_iterations": shaped(out("newton_iterations")),
        "time_integrated": shaped(out("time_integrated")),
        "n_steps": shaped(out("n_steps")),
        "distance": shaped(out("distance")),
        "linearity": shaped(out("linearity")),
        "eigenvalues": shaped(out("leading"), ("eigenvalue",)),
        "decay_rate": shaped(out("decay_rate")),
        "excited_rate": shaped(out("excited_rate")),
        "settle_time": shaped(out("settle_time")),
        "undamped_amplitude": shaped(out("undamped_amplitude")),
        "subspace_dim": shaped(part("subspace_dim")),
        "full_space_stability": shaped(full_names.astype(str)),
        "full_space_max_real": shaped(part("full_max_real")),
        "eigenvalues_full": shaped(part("full_leading"), ("eigenvalue",)),
        "n_conserved": shaped(part("n_conserved")),
        "n_undamped": shaped(part("n_undamped")),
        "final_overlap": shaped(final_bloch[..., 2] @ grouping.weighted_f, ("pattern",)),
        "overlap_min": shaped(out("overlap_min"), ("pattern",)),
        "overlap_max": shaped(out("overlap_max"), ("pattern",)),
        "period": shaped(out("period")),
    }
    ds = layout.dataset(data, kind="meanfield_steady_state", paper_units=paper_units,
                        extra_coords={"eigenvalue": ("eigenvalue", np.arange(1, opts.n_eigenvalues + 1))})
    ds.attrs["classifications"] = ", ".join(CLASSIFICATIONS)
    ds.attrs.update(opts.as_attrs())
    long_names = {
        "classification": "stable / marginal / unstable fixed point (on the invariant subspace of the trajectory), "
                          "not stationary, or not converged",
        "stationary": "the trajectory ends on a fixed point (stable, marginal or unstable)",
        "stable": "stable against all perturbations: stable on the invariant subspace (classification) and in the "
                  "full space (full_space_stability)",
        "stable_on_subspace": "stable on the invariant subspace of the trajectory (classification == 'stable'); "
                              "may still be a saddle in the full space",
        "converged": "the solver reached a verdict within the time budget",
        "message": "why the point was classified as it was",
        "overlap": "stationary overlap xi_mu (NaN unless stationary)",
        "occupation": "stationary mode occupation per spin |alpha_mu|^2 (NaN unless stationary)",
        "alpha": "stationary mode amplitude (NaN unless stationary)",
        "bloch": "stationary group Bloch vectors, gauged frame (NaN unless stationary)",
        "residual": "max |dy/dt| at the reported fixed point",
        "newton_iterations": "Newton iterations from the trajectory to the fixed point",
        "time_integrated": "time the trajectory was integrated",
        "n_steps": "accepted integrator steps",
        "distance": "max-norm distance of the trajectory from the fixed point over the last window",
        "linearity": "max relative deviation of the vector field from its linearisation over the last window",
        "eigenvalues": "leading eigenvalues on the invariant subspace of the trajectory (tangent to the group "
                       "spheres, undamped mode-free precessions removed), sorted by real part",
        "decay_rate": "-max Re of the reduced spectrum on the invariant subspace (slowest linear decay rate)",
        "excited_rate": "slowest decay rate among the eigenmodes the trajectory excites",
        "settle_time": "linear estimate of the further time until the trajectory is within 1e-10 of the fixed point",
        "undamped_amplitude": "amplitude of the trajectory's deviation in undamped directions",
        "subspace_dim": "dimension of the invariant subspace the trajectory lives in (3K + 2M: none)",
        "full_space_stability": "stability of the fixed point against all perturbations, including those breaking "
                                "the initial state's symmetry",
        "full_space_max_real": "max Re of the reduced spectrum on the full tangent space",
        "eigenvalues_full": "leading eigenvalues on the full tangent space, undamped mode-free precessions removed",
        "n_conserved": "exact zero eigenvalues removed: one radial direction per non-empty group",
        "n_undamped": "eigenvalues on the imaginary axis from undamped group precessions invisible to the modes",
        "final_overlap": "overlap at the end of the integrated trajectory",
        "overlap_min": "min of the overlap over the last integration window",
        "overlap_max": "max of the overlap over the last integration window",
        "period": "period of the oscillation (not stationary and periodic), else NaN",
    }
    for name, text in long_names.items():
        ds[name].attrs["long_name"] = text
    return ds


@timed
def find_critical_coupling(
    model: DickeModel,
    patterns: int | Sequence[int] | None = None,
    *,
    initial: Sequence[InitialState] | None = None,
    bracket=None,
    tol: float = 1e-4,
    threshold: float = 1e-3,
    probes: int = 7,
    max_rounds: int = 30,
    representation: str = "auto",
    options: SteadyStateOptions | None = None,
    **option_overrides,
):
    """Critical couplings g_c found numerically, by multisection in g0 on retrieval (no use of Eq. 12).

    For each pattern ν, start from the pattern-ν state (or the matching entry of ``initial``) and call
    g0 *retrieving* when the stationary state is stable with |ξ_ν| > ``threshold`` and *not retrieving*
    when it is stationary with |ξ_ν| ≤ ``threshold``. Each round solves ``probes`` couplings inside every
    bracket in one batch and keeps the interval between the largest non-retrieving and the smallest
    retrieving coupling; points without a verdict (not converged) stay inside the bracket.

    Parameters
    ----------
    patterns:
        Pattern numbers (1-based); all by default.
    bracket:
        (g_low, g_high) with g_low non-retrieving and g_high retrieving, each a number or one value per
        searched pattern; by default (0.1, 3)·√(|Ω|(|Ω_ν| + κ_ν)), a dimensional estimate. A bracket
        that does not hold the transition is reported (NaN), never silently widened.

    Returns
    -------
    xarray.Dataset
        Over ``pattern`` (length 1 for a single pattern number) with ``g_crit`` (the midpoint of the final
        bracket, NaN if the bracket did not hold the transition), ``g_lower``, ``g_upper``, ``rounds`` and
        ``message``. All patterns are searched in the same batches.
    """
    import xarray as xr

    opts = _options(options, option_overrides)
    M = model.n_modes
    pats = list(range(1, M + 1)) if patterns is None else ([patterns] if np.ndim(patterns) == 0 else list(patterns))
    from ..states import PatternState

    starts = list(initial) if initial is not None else [PatternState(int(p)) for p in pats]
    if len(starts) != len(pats):
        raise ValueError("initial must give one initial state per pattern")
    if probes < 1 or tol <= 0 or threshold <= 0:
        raise ValueError("need probes ≥ 1, tol > 0 and threshold > 0")
    grouping = choose_grouping(model, representation)
    lower, upper = np.zeros(len(pats)), np.zeros(len(pats))
    for i, p in enumerate(pats):
        nu = int(p) - 1
        if not 0 <= nu < M:
            raise ValueError(f"pattern must be in 1..{M}, got {p}")
        if bracket is None:
            s = np.sqrt(abs(model.omega) * (abs(model.omega_modes[nu]) + model.kappa[nu]))
            lower[i], upper[i] = 0.1 * s, 3.0 * s
        else:
            lower[i], upper[i] = (float(np.broadcast_to(b, (len(pats),))[i]) for b in bracket)
    if np.any(lower >= upper) or np.any(lower < 0):
        raise ValueError(f"bracket must be 0 ≤ g_low < g_high, got {bracket}")
    y_start = [pack(s.group_vectors(model, grouping), s.initial_alpha(model)) for s in starts]
    rounds = np.zeros(len(pats), dtype=np.int64)
    messages = [""] * len(pats)

    def verdicts(which, g0s):
        """1 retrieving, 0 not retrieving, -1 undecided, for pattern index ``which[b]`` at ``g0s[b]``."""
        B = g0s.size
        solved = _solve(grouping, y_start, which, np.full(B, model.omega), g0s, np.tile(model.omega_modes, (B, 1)),
                        np.tile(model.kappa, (B, 1)), opts)
        status = solved["out"].status
        nu = np.array([int(pats[i]) - 1 for i in which])
        xi = np.abs(np.take_along_axis(unpack(solved["out"].fixed, grouping.n_groups)[0][..., 2] @ grouping.weighted_f,
                                       nu[:, None], axis=1)[:, 0])
        return np.where((status == _STABLE) & (xi > threshold), 1,
                        np.where(np.isin(status, (_STABLE, _MARGINAL, _UNSTABLE)) & (xi <= threshold), 0, -1))

    n = len(pats)
    ends = verdicts(np.repeat(np.arange(n), 2), np.ravel(np.column_stack([lower, upper])))
    for i in range(n):
        if ends[2 * i] != 0 or ends[2 * i + 1] != 1:
            messages[i] = (f"bracket ({lower[i]:.6g}, {upper[i]:.6g}) does not bracket the transition: verdicts "
                           f"{ends[2 * i : 2 * i + 2].tolist()} at its ends (1 retrieving, 0 not, -1 undecided)")
            lower[i] = upper[i] = np.nan
    busy = np.nonzero(np.isfinite(lower) & (upper - lower > tol))[0]
    while busy.size:
        g0s = np.concatenate([np.linspace(lower[i], upper[i], probes + 2)[1:-1] for i in busy])
        v = verdicts(np.repeat(busy, probes), g0s).reshape(busy.size, probes)
        g0s = g0s.reshape(busy.size, probes)
        for k, i in enumerate(busy):
            rounds[i] += 1
            retrieving = np.nonzero(v[k] == 1)[0]
            new_upper = g0s[k, retrieving[0]] if retrieving.size else upper[i]
            below = np.nonzero((v[k] == 0) & (g0s[k] < new_upper))[0]
            new_lower = g0s[k, below[-1]] if below.size else lower[i]
            if np.any((v[k] == 0) & (g0s[k] > new_upper)):
                messages[i] = "retrieval is not monotonic in g0 inside the bracket; reporting the lowest transition"
            if new_upper - new_lower >= upper[i] - lower[i]:
                messages[i] = (f"stopped at bracket width {upper[i] - lower[i]:.3g}: no probe inside the bracket "
                               "reached a verdict (not converged within the time budget)")
                rounds[i] = max_rounds
            lower[i], upper[i] = new_lower, new_upper
        busy = np.nonzero(np.isfinite(lower) & (upper - lower > tol) & (rounds < max_rounds))[0]
    ds = xr.Dataset(
        {
            "g_crit": (("pattern",), 0.5 * (lower + upper)),
            "g_lower": (("pattern",), lower),
            "g_upper": (("pattern",), upper),
            "rounds": (("pattern",), rounds),
            "message": (("pattern",), np.array(messages, dtype=str)),
        },
        coords={"pattern": ("pattern", np.array(pats, dtype=int))},
    )
    from ..results import model_attrs

    ds.attrs.update({"kind": "critical_coupling", **model_attrs(model), "threshold": threshold, "tol": tol,
                     **opts.as_attrs()})
    return ds
