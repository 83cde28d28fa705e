"""Finite N_sp without dense linear algebra: self-consistent states, paramagnet thresholds, crosstalk."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ..model import DickeModel, paper_model
from ..reduction import Grouping, reduce
from ..results import timed
from ..states import PatternState
from .analytic import corrupted_overlap, critical_couplings
from .common import _attrs, _long_names, _pattern_index_safe, _refuse_spin_rates, _version

def _mode_arrays(model, g0):
    om = np.asarray(model.omega_modes, dtype=float)
    ka = np.asarray(model.kappa, dtype=float)
    D = om**2 + 0.25 * ka**2
    return om, ka, D, g0 * om / D


@timed
def self_consistent_state(
    model: DickeModel,
    pattern: int | None = 1,
    *,
    g0: float | None = None,
    lengths: np.ndarray | float = -1.0,
    grouping: Grouping | None = None,
    x0: np.ndarray | None = None,
    tol: float = 1e-13,
    max_iter: int = 60,
):
    """Fixed point of Eq. (7) with every group along its field, from the M-dimensional self-consistency.

    At a fixed point m_k = ρ_k B_k/|B_k| with B_k = (2Ω, 0, h_k), h_k = 4 g0 Σ_μ f_μk x_μ and x_μ = Re α_μ, so
    x_μ = −c_μ ξ_μ(x), c_μ = g0 Ω_μ/(Ω_μ² + κ_μ²/4), ξ_μ = Σ_k w_k f_μk ρ_k h_k/|B_k|. Newton on these M
    equations costs O(K M²) per step (no 3K-dimensional Jacobian). ``lengths`` are the signed lengths ρ_k
    (one value or one per group of ``grouping``, default the exact reduction of ``model``): −1 is the fully
    polarised state anti-aligned with its field (the retrieval and paramagnetic states). The start ``x0`` is by
    default the ideal retrieval state of ``pattern`` (None: the paramagnet x = 0).

    Returns a Dataset (kind ``self_consistent_state``): ``x`` and ``overlap`` (signed ξ_μ) and ``alpha``
    (complex) over ``pattern`` 1..M, ``bloch`` (group, component; gauged frame), and the scalars ``converged``,
    ``iterations``, ``residual``, ``curvature`` (smallest eigenvalue of H, module docstring), ``stable`` (H
    positive definite; meaningful when all ρ_k ≤ 0 and Ω, Ω_μ > 0) and ``stability_applies``; attrs ``g0`` (the
    coupling solved at) and ``start`` (the pattern whose retrieval state seeded Newton, 0: the paramagnet).
    """
    _refuse_spin_rates(model, "self_consistent_state")
    g0 = float(model.g0 if g0 is None else g0)
    st = _self_consistent(model, pattern, g0, lengths, grouping, x0, tol, max_iter)
    import xarray as xr

    M, K = st["overlaps"].size, st["bloch"].shape[0]
    ds = xr.Dataset(
        {
            "x": ("pattern", st["x"]),
            "overlap": ("pattern", st["overlaps"]),
            "alpha": ("pattern", st["alpha"]),
            "bloch": (("group", "component"), st["bloch"]),
            **{name: ((), st[name]) for name in ("converged", "iterations", "residual", "curvature", "stable",
                                                 "stability_applies")},
        },
        coords={"pattern": np.arange(1, M + 1), "group": np.arange(K), "component": ["x", "y", "z"]},
    )
    ds.attrs.update(_attrs(model, "self_consistent_state", start=0 if pattern is None else int(pattern), tol=tol))
    ds.attrs["g0"] = g0  # the coupling solved at (the model's unless g0 was given)
    return ds


def _self_consistent(model, pattern, g0, lengths, grouping, x0, tol, max_iter) -> dict:
    """:func:`self_consistent_state` as plain arrays (a dict), for the loops of :func:`crosstalk`."""
    grouping = grouping if grouping is not None else reduce(model)
    f = np.asarray(grouping.f, dtype=float)
    w = np.asarray(grouping.weights, dtype=float)
    rho = np.broadcast_to(np.asarray(lengths, dtype=float), (f.shape[1],))
    M = f.shape[0]
    om, ka, D, c = _mode_arrays(model, g0)
    two_omega = 2.0 * model.omega
    if x0 is None:
        x = np.zeros(M)
        if pattern is not None:
            nu = _pattern_index_safe(M, pattern)
            r = float(np.sum(w * np.abs(rho)))
            gc = np.sqrt(0.5 * abs(model.omega / om[nu]) * D[nu])
            z = np.sqrt(max(r**2 - (gc / g0) ** 4, 0.0)) if g0 != 0 else 0.0
            x[nu] = -c[nu] * max(z, 0.5 * r)  # a finite seed keeps Newton off the paramagnet near threshold
    else:
        x = np.array(x0, dtype=float)

    def parts(x):
        h = 4.0 * g0 * (x @ f)
        B = np.sqrt(two_omega**2 + h**2)
        xi = f @ (w * rho * h / B)
        return h, B, xi, x + c * xi

    h, B, xi, R = parts(x)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        d = w * rho * two_omega**2 / B**3
        S = (f * d) @ f.T
        J = np.eye(M) + (4.0 * g0 * c)[:, None] * S
        try:
            step = np.linalg.solve(J, -R)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(J, -R, rcond=None)[0]
        lam, r0 = 1.0, np.max(np.abs(R))
        for _ in range(30):
            h2, B2, xi2, R2 = parts(x + lam * step)
            if np.max(np.abs(R2)) < r0 or lam < 1e-6:
                break
            lam *= 0.5
        x = x + lam * step
        h, B, xi, R = h2, B2, xi2, R2
        if np.max(np.abs(R)) <= tol * (1.0 + np.max(np.abs(x))):
            converged = True
            break
    d = w * rho * two_omega**2 / B**3
    H = np.diag(D / (4.0 * g0**2 * om)) + (f * d) @ f.T
    curvature = float(np.linalg.eigvalsh(H)[0])
    alpha = -1j * g0 * xi / (1j * om + 0.5 * ka)
    bloch = (rho / B)[:, None] * np.column_stack([np.full_like(h, two_omega), np.zeros_like(h), h])
    applies = bool(np.all(rho <= 0) and model.omega > 0 and np.all(om > 0))
    return {
        "x": x, "alpha": alpha, "overlaps": xi, "bloch": bloch, "converged": converged, "iterations": it,
        "residual": float(np.max(np.abs(R))), "curvature": curvature, "stable": applies and curvature > 0,
        "stability_applies": applies,
    }


@timed
def paramagnet_thresholds(model: DickeModel, *, lengths: np.ndarray | float = 1.0, grouping: Grouping | None = None):
    """Exact bifurcation couplings of the paramagnet (every group along −x with length r_k, α = 0).

    H at the paramagnet is (1/2Ω)[D/g0² − C_r] with D = diag g_c(μ)² and C_r = Σ_k w_k r_k f_k f_kᵀ (the
    weighted pattern-overlap matrix), so it loses positive definiteness at g0 = 1/√λ_i, λ_i the eigenvalues of
    D^(-1/2) C_r D^(-1/2). Each branch is assigned to the pattern that dominates its eigenvector (greedily, in
    decreasing weight). In the ideal model C_r = r·I and the thresholds are g_c(μ)/√r.

    Returns a Dataset (kind ``paramagnet_thresholds``) over ``pattern`` 1..M: ``threshold`` (the paramagnet is
    stable below the smallest), ``purity`` (squared eigenvector component on that pattern) and ``overlap_matrix``
    C_r (pattern, pattern_2).
    """
    _refuse_spin_rates(model, "paramagnet_thresholds")
    import xarray as xr

    pt = _paramagnet_thresholds(model, lengths, grouping)
    M = pt["threshold"].size
    ds = xr.Dataset({"threshold": ("pattern", pt["threshold"]), "purity": ("pattern", pt["purity"]),
                     "overlap_matrix": (("pattern", "pattern_2"), pt["overlap_matrix"])},
                    coords={"pattern": np.arange(1, M + 1), "pattern_2": np.arange(1, M + 1)})
    ds.attrs.update(_attrs(model, "paramagnet_thresholds"))
    return ds


def _paramagnet_thresholds(model, lengths, grouping) -> dict:
    """:func:`paramagnet_thresholds` as plain arrays (a dict), for the loops of :func:`crosstalk`."""
    g_c = critical_couplings(model)
    grouping = grouping if grouping is not None else reduce(model)
    f = np.asarray(grouping.f, dtype=float)
    r = np.broadcast_to(np.abs(np.asarray(lengths, dtype=float)), (f.shape[1],))
    C = (f * (grouping.weights * r)) @ f.T
    A = C / np.outer(g_c, g_c)
    lam, V = np.linalg.eigh(A)
    M = g_c.size
    weight = V**2  # (pattern, branch)
    thresholds = np.full(M, np.nan)
    purity = np.full(M, np.nan)
    free_p, free_b = set(range(M)), set(range(M))
    for flat in np.argsort(-weight, axis=None):
        p, b = np.unravel_index(flat, weight.shape)
        if p in free_p and b in free_b:
            thresholds[p] = 1.0 / np.sqrt(lam[b]) if lam[b] > 0 else np.inf
            purity[p] = weight[p, b]
            free_p.discard(p)
            free_b.discard(b)
    return {"threshold": thresholds, "purity": purity, "overlap_matrix": C}


def _window_overlaps(rhs, y0, t_start, t_end, samples, wf, chunk=10):
    """Integrate from t_start to t_end and return (state at t_end, overlaps at ``samples`` times), keeping
    only a few full states in memory at a time."""
    from ..meanfield import integrate

    K = wf.shape[0]
    times = np.linspace(t_start, t_end, samples)
    xis = []
    y = y0
    t = t_start
    for a in range(1, samples, chunk):
        seg = np.concatenate([[t], times[a : a + chunk]])
        ys, stats = integrate(rhs, y, seg, rtol=1e-9, atol=1e-11)
        if not np.all(stats.success):
            raise RuntimeError(f"integration failed: {stats.message}")
        if a == 1:
            xis.append(ys[0][:, 2 * K : 3 * K] @ wf)
        xis.extend(ys[k][:, 2 * K : 3 * K] @ wf for k in range(1, ys.shape[0]))
        y, t = ys[-1], seg[-1]
    return y, np.stack(xis)  # (B, n), (T, B, M)


@timed
def crosstalk(
    n_spins: Sequence[int],
    n_modes: Sequence[int],
    *,
    g0: float | Sequence[float] = 1.0,
    pattern: int = 1,
    seeds: Sequence[int] = (0,),
    model_factory: Callable[..., DickeModel] | None = None,
    t_final: float = 300.0,
    window: float = 50.0,
    window_samples: int = 101,
    dynamics: bool = True,
    progress: Callable[[float], None] | None = None,
):
    """Crosstalk and load at finite N_sp: recognised overlap and threshold vs N_sp and vs M/N_sp.

    For every M in ``n_modes``, N_sp in ``n_spins`` and pattern seed in ``seeds`` the model is
    ``model_factory(n_modes=M, n_spins=N, seed=s)`` (default: the paper's family, Ω = 0.5, Ω_μ = Ω(μ + 2),
    κ = 1). From the pattern-``pattern`` start (``dynamics``) the batched mean-field dynamics in the exact
    reduction (per spin when M is large: K ≈ N_sp groups) runs to ``t_final`` for all g0 at once, and the
    overlaps are averaged over the last ``window``. Without a dense Jacobian:

    * ``overlap_centre``: the torus centre — the self-consistent fixed point with the signed group lengths
      ρ_k = m_k·B̂_k of the final state (conserved once α is constant) — which the window average approaches;
    * ``overlap_static``: the fully polarised fixed point (ρ_k = −1), i.e. crosstalk alone, without the
      dephasing the transient leaves behind; ``stable_static`` from the M × M criterion;
    * ``threshold``: the exact bifurcation of the fully polarised paramagnet into the branch of ``pattern``
      (:func:`paramagnet_thresholds`), vs ``threshold_tl`` = g_c;
    * ``overlap_tl``: Eq. (12); ``shift`` = window mean − Eq. (12); ``crosstalk_rms``: rms of the pattern
      overlaps (1/N) Σ_j G_νj G_μj, μ ≠ ν (≈ 1/√N_sp).

    Returns a Dataset with dims (n_modes, n_spins, seed[, g0]) and coordinate ``load`` = M/N_sp.
    """
    import xarray as xr

    from ..meanfield.equations import MeanFieldRHS, pack

    factory = model_factory or (lambda **kw: paper_model(**kw))
    if not (0 < window < t_final) or window_samples < 2:
        raise ValueError(f"need 0 < window < t_final and window_samples ≥ 2, got window={window}, t_final={t_final}, "
                         f"window_samples={window_samples}")
    g0s = np.atleast_1d(np.asarray(g0, dtype=float))
    Ms, Ns, seeds = [int(m) for m in n_modes], [int(n) for n in n_spins], [int(s) for s in seeds]
    shape = (len(Ms), len(Ns), len(seeds))
    shp_g = shape + (g0s.size,)
    nan = lambda s: np.full(s, np.nan)  # noqa: E731
    res = {k: nan(shp_g) for k in ("overlap_dynamics", "overlap_min", "overlap_max", "overlap_centre",
                                     "overlap_static", "overlap_tl", "curvature_static", "rho_deficit",
                                     "other_overlap_rms")}
    stable_static = np.zeros(shp_g, dtype=bool)
    thr, thr_tl, purity, ct_rms, n_groups, elapsed = (nan(shape) for _ in range(6))
    total = np.prod(shape)
    done = 0
    for a, M in enumerate(Ms):
        for b, N in enumerate(Ns):
            for c_, s in enumerate(seeds):
                t0 = time.perf_counter()
                model = factory(n_modes=M, n_spins=N, seed=s)
                _refuse_spin_rates(model, "crosstalk")
                nu = _pattern_index_safe(M, pattern)
                grouping = reduce(model)
                n_groups[a, b, c_] = grouping.n_groups
                G = np.asarray(model.patterns, dtype=float)
                cross = (G @ G[nu]) / N
                ct_rms[a, b, c_] = np.sqrt(np.mean(np.delete(cross, nu) ** 2)) if M > 1 else 0.0
                pt = _paramagnet_thresholds(model, 1.0, grouping)
                thr[a, b, c_], purity[a, b, c_] = pt["threshold"][nu], pt["purity"][nu]
                g_c = critical_couplings(model)
                thr_tl[a, b, c_] = g_c[nu]
                res["overlap_tl"][a, b, c_] = corrupted_overlap(g0s, g_c[nu], 0.0)
                for gi, g in enumerate(g0s):
                    st = _self_consistent(model, pattern, float(g), -1.0, grouping, None, 1e-13, 60)
                    if st["converged"]:
                        res["overlap_static"][a, b, c_, gi] = abs(st["overlaps"][nu])
                        res["curvature_static"][a, b, c_, gi] = st["curvature"]
                        stable_static[a, b, c_, gi] = st["stable"]
                if dynamics:
                    B = g0s.size
                    rhs = MeanFieldRHS(grouping.f, grouping.weights, np.full(B, model.omega), g0s,
                                       np.tile(model.omega_modes, (B, 1)), np.tile(model.kappa, (B, 1)))
                    start = PatternState(pattern)
                    y0 = np.tile(pack(start.group_vectors(model, grouping), start.initial_alpha(model)), (B, 1))
                    wf = grouping.weighted_f
                    y_mid, _ = _window_overlaps(rhs, y0, 0.0, t_final - window, 2, wf, chunk=1)
                    y_end, xis = _window_overlaps(rhs, y_mid, t_final - window, t_final, window_samples, wf)
                    own = np.abs(xis[:, :, nu])
                    res["overlap_dynamics"][a, b, c_] = own.mean(axis=0)
                    res["overlap_min"][a, b, c_] = own.min(axis=0)
                    res["overlap_max"][a, b, c_] = own.max(axis=0)
                    others = np.delete(xis[-1], nu, axis=1)
                    res["other_overlap_rms"][a, b, c_] = np.sqrt(np.mean(others**2, axis=1)) if M > 1 else 0.0
                    K = grouping.n_groups
                    for gi, g in enumerate(g0s):
                        y = y_end[gi]
                        m = np.column_stack([y[:K], y[K : 2 * K], y[2 * K : 3 * K]])
                        h = 4.0 * g * (y[3 * K : 3 * K + M] @ grouping.f)
                        Bv = np.column_stack([np.full(K, 2.0 * model.omega), np.zeros(K), h])
                        rho = np.sum(m * Bv, axis=1) / np.linalg.norm(Bv, axis=1)
                        res["rho_deficit"][a, b, c_, gi] = float(np.sum(grouping.weights * (1.0 - np.abs(rho))))
                        ctr = _self_consistent(model, pattern, float(g), rho, grouping, y[3 * K : 3 * K + M], 1e-13, 60)
                        if ctr["converged"]:
                            res["overlap_centre"][a, b, c_, gi] = abs(ctr["overlaps"][nu])
                elapsed[a, b, c_] = time.perf_counter() - t0
                done += 1
                if progress is not None:
                    progress(done / total)
    dims = ("n_modes", "n_spins", "seed")
    dg = dims + ("g0",)
    data = {k: (dg, v) for k, v in res.items()}
    data.update({
        "shift": (dg, res["overlap_dynamics"] - res["overlap_tl"]),
        "shift_static": (dg, res["overlap_static"] - res["overlap_tl"]),
        "stable_static": (dg, stable_static),
        "threshold": (dims, thr),
        "threshold_tl": (dims, thr_tl),
        "threshold_shift": (dims, thr - thr_tl),
        "threshold_purity": (dims, purity),
        "crosstalk_rms": (dims, ct_rms),
        "n_groups": (dims, n_groups),
        "elapsed_seconds": (dims, elapsed),
    })
    ds = xr.Dataset(data, coords={
        "n_modes": ("n_modes", np.array(Ms)), "n_spins": ("n_spins", np.array(Ns)), "seed": ("seed", np.array(seeds)),
        "g0": ("g0", g0s), "load": (("n_modes", "n_spins"), np.array(Ms)[:, None] / np.array(Ns)[None, :]),
    })
    ds.attrs.update({"kind": "crosstalk", "pattern": pattern, "t_final": t_final, "window": window,
                     "dynamics": int(dynamics), "model_family": "paper_model(n_modes=M, n_spins=N, seed=s)"
                     if model_factory is None else getattr(model_factory, "__name__", "custom"),
                     "opendicke_version": _version()})
    _long_names(ds)
    return ds
