"""Analytic retrieval theory: the fixed point of Eq. (7) aligned with one pattern, Eq. (12) and g_crit.

For pattern ν (thermodynamic limit, ideal equal groups, Ω/Ω_ν > 0, κ_ν > 0):

    g_c  = √(½ (Ω/Ω_ν) (Ω_ν² + κ_ν²/4))
    z    = √(1 − (g_c/g0)^4)                       (Eq. 12; z = 0 for |g0| < g_c)
    s_x  = −(g_c/g0)²,  s_y = 0,  s_z^j = G[ν, j] z
    α_ν  = −i g0 z / (iΩ_ν + κ_ν/2),  α_{μ≠ν} = 0  (α = ⟨a⟩/√N_sp)
    n_ν  = |α_ν|² = g0² z² / (Ω_ν² + κ_ν²/4)

All functions broadcast over their arguments. Below g_c the only solution of this family is the
paramagnet z = 0, s_x = ±1 (we return s_x = −1, the state the retrieval branch joins continuously).
"""

from __future__ import annotations

import time

import numpy as np

from .model import DickeModel

__all__ = [
    "critical_coupling", "retrieval_overlap", "retrieval_occupation", "retrieval_state", "check_applicable",
    "spin_rates", "stationary_bloch", "dissipative_fixed_point", "dissipative_stationary_overlaps",
    "kirton_keeling_threshold", "weak_decay_uniform_overlaps",
]


def check_applicable(omega, omega_mode, kappa, pattern: int | None = None) -> None:
    """Raise ``ValueError`` unless Ω/Ω_ν > 0 and κ_ν > 0 (where the analytic theory holds)."""
    omega, omega_mode, kappa = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (omega, omega_mode, kappa)))
    where = f" (pattern {pattern})" if pattern is not None else ""
    if np.any(omega_mode == 0) or np.any(omega / np.where(omega_mode == 0, 1, omega_mode) <= 0):
        raise ValueError(
            f"the analytic retrieval theory needs Ω/Ω_ν > 0{where}; got omega={omega.ravel()[:4].tolist()}, "
            f"omega_mode={omega_mode.ravel()[:4].tolist()}"
        )
    if np.any(kappa <= 0):
        raise ValueError(f"the analytic retrieval theory needs κ_ν > 0{where}; got kappa={kappa.ravel()[:4].tolist()}")


def critical_coupling(omega, omega_mode, kappa):
    """g_c = √(½ (Ω/Ω_ν)(Ω_ν² + κ_ν²/4)), the threshold for retrieving pattern ν (paper, below Eq. 12)."""
    check_applicable(omega, omega_mode, kappa)
    omega, omega_mode, kappa = (np.asarray(x, dtype=float) for x in (omega, omega_mode, kappa))
    return np.sqrt(0.5 * (omega / omega_mode) * (omega_mode**2 + 0.25 * kappa**2))


def retrieval_overlap(g0, omega, omega_mode, kappa):
    """|ξ_ν| = z = √(1 − (g_c/g0)^4) above threshold, 0 below (Eq. 12)."""
    g_c = critical_coupling(omega, omega_mode, kappa)
    g0 = np.abs(np.asarray(g0, dtype=float))
    ratio4 = np.divide(g_c, g0, out=np.full(np.broadcast(g_c, g0).shape, np.inf), where=g0 > 0) ** 4
    return np.sqrt(np.clip(1.0 - ratio4, 0.0, None))


def retrieval_occupation(g0, omega, omega_mode, kappa):
    """n_ν = |α_ν|² = g0² z² / (Ω_ν² + κ_ν²/4): photons per spin in the retrieved mode."""
    z = retrieval_overlap(g0, omega, omega_mode, kappa)
    g0 = np.asarray(g0, dtype=float)
    return g0**2 * z**2 / (np.asarray(omega_mode, float) ** 2 + 0.25 * np.asarray(kappa, float) ** 2)


def retrieval_state(model: DickeModel, pattern: int, sign: int = +1):
    """The analytic fixed point aligned with ``pattern`` (1-based), for the model's parameters, as a Dataset.

    Over ``pattern`` (the overlap index 1..M, as in every result): ``overlap`` (signed ξ_μ: ``sign``·z for the
    retrieved pattern, 0 for the others), ``alpha`` (complex, α = ⟨a⟩/√N_sp) and ``occupation`` (|α_μ|²).
    Scalars: ``g_crit`` (of the retrieved pattern), ``sx`` (the common s_x of every spin) and ``retrieved``
    (the pattern number asked for). ``sign = −1`` gives the mirror solution (s_z → −s_z and α → −α).
    Attributes: ``kind = "retrieval_state"`` and the model's attributes.
    """
    import xarray as xr

    from .results import model_attrs

    t0 = time.perf_counter()
    if model.spin_dissipation:
        raise ValueError(
            "gamma_down/gamma_up/gamma_phi: retrieval_state is the Eq. (12) state of the lossless spins; with "
            "individual spin dissipation no stationary retrieval state exists for balanced patterns (only the "
            "paramagnet; docs/spin-dissipation.md): use dissipative_stationary_overlaps / dissipative_fixed_point, "
            "or steady_state / evolve for the transient")
    nu = _pattern_index(model, pattern)
    if isinstance(sign, bool) or sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign}")
    om, kap = model.omega_modes[nu], model.kappa[nu]
    check_applicable(model.omega, om, kap, pattern)
    g_c = float(critical_coupling(model.omega, om, kap))
    z = float(retrieval_overlap(model.g0, model.omega, om, kap))
    alpha = np.zeros(model.n_modes, dtype=complex)
    alpha[nu] = sign * (-1j * model.g0 * z / (1j * om + 0.5 * kap))
    overlap = np.zeros(model.n_modes)
    overlap[nu] = sign * z
    sx = -((g_c / model.g0) ** 2) if z > 0 else -1.0
    ds = xr.Dataset(
        {
            "overlap": ("pattern", overlap, {"long_name": "signed overlap xi_mu of the Eq. (12) state"}),
            "alpha": ("pattern", alpha, {"long_name": "mode amplitude <a_mu>/sqrt(N_sp)"}),
            "occupation": ("pattern", np.abs(alpha) ** 2, {"long_name": "photons per spin |alpha_mu|^2"}),
            "g_crit": ((), g_c, {"long_name": "critical coupling of the retrieved pattern"}),
            "sx": ((), sx, {"long_name": "s_x of every spin"}),
            "retrieved": ((), int(nu + 1), {"long_name": "the pattern the state is aligned with (1-based)"}),
        },
        coords={"pattern": ("pattern", np.arange(1, model.n_modes + 1))},
    )
    ds.attrs.update({"kind": "retrieval_state", **model_attrs(model), "sign": int(sign), "units": "per spin",
                     "elapsed_seconds": round(time.perf_counter() - t0, 6)})
    return ds


def _pattern_index(model: DickeModel, pattern) -> int:
    if isinstance(pattern, bool) or not float(pattern).is_integer() or not 1 <= int(pattern) <= model.n_modes:
        raise ValueError(f"pattern must be an integer in 1..{model.n_modes} (patterns are numbered from 1), got {pattern!r}")
    return int(pattern) - 1


# ------------------------------------------------------------------------------------ spin dissipation
# Individual decay √γ↓ σ_-, pumping √γ↑ σ_+ and dephasing √(γφ/2) σ_z (docs/spin-dissipation.md). In the
# original frame every spin obeys the Bloch equations in the field B_j = (2Ω, 0, h_j),
# h_j = 4 g0 Σ_μ G[μ,j] Re α_μ, with Γ⊥ = γφ + (γ↓ + γ↑)/2, Γ∥ = γ↓ + γ↑ and source c = γ↑ − γ↓ on s_z.
# For a given field this is linear with a unique, field-even s_z; hence the results below.


def spin_rates(gamma_down, gamma_up, gamma_phi):
    """(Γ⊥, Γ∥, c) = (γφ + (γ↓+γ↑)/2, γ↓ + γ↑, γ↑ − γ↓): transverse and longitudinal rates and the σ_z source."""
    gd, gu, gp = (np.asarray(x, dtype=float) for x in (gamma_down, gamma_up, gamma_phi))
    return gp + 0.5 * (gd + gu), gd + gu, gu - gd


def stationary_bloch(h, omega, gamma_down, gamma_up, gamma_phi):
    """Stationary Bloch vector (s_x, s_y, s_z) of one spin in the field B = (2Ω, 0, h), original frame.

        s_z = c / (Γ∥ + 4Ω²Γ⊥/(h² + Γ⊥²)),  s_y = −2ΩΓ⊥ s_z/(h² + Γ⊥²),  s_x = 2Ω h s_z/(h² + Γ⊥²)

    Needs Γ⊥ > 0 (some spin dissipation). For a spin gauged by the reduction (G[1, j] = −1), the gauged
    vector is (s_x, −s_y, −s_z). Broadcasts; returns an array (..., 3).
    """
    transverse, longitudinal, source = spin_rates(gamma_down, gamma_up, gamma_phi)
    if np.any(transverse <= 0):
        raise ValueError("stationary_bloch needs some spin dissipation (γφ + (γ↓ + γ↑)/2 > 0)")
    h = np.asarray(h, dtype=float)
    omega = np.asarray(omega, dtype=float)
    denom = h**2 + transverse**2
    sz = source / (longitudinal + 4.0 * omega**2 * transverse / denom)
    sy = -2.0 * omega * transverse * sz / denom
    sx = 2.0 * omega * h * sz / denom
    return np.stack(np.broadcast_arrays(sx, sy, sz), axis=-1)


def _field_gains(model: DickeModel) -> np.ndarray:
    """λ_μ = 4 g0² Ω_μ/(Ω_μ² + κ_μ²/4): at a fixed point Re α_μ = −(λ_μ/(4 g0)) ξ_μ, so h_j = −Σ_μ λ_μ G[μ,j] ξ_μ."""
    om, kap = model.omega_modes, model.kappa
    return 4.0 * model.g0**2 * om / (om**2 + 0.25 * kap**2)


def dissipative_fixed_point(model: DickeModel, overlaps) -> dict:
    """The mean-field fixed point with spin dissipation that has the given overlaps ξ_μ (after solving for them).

    At a fixed point α_μ = −i g0 ξ_μ/(iΩ_μ + κ_μ/2), every spin sits at :func:`stationary_bloch` in its field
    h_j = −Σ_μ λ_μ G[μ,j] ξ_μ, and self-consistency demands ξ_μ = (1/N_sp) Σ_j G[μ,j] s_z,j. This returns the
    state built from ``overlaps`` and the residual of that condition (finite N_sp: per spin; thermodynamic
    limit: over the ideal columns and both gauge signs, each of weight 1/2^M).
    """
    xi = np.asarray(overlaps, dtype=float).reshape(model.n_modes)
    G = _columns(model)
    weights = np.full(G.shape[1], 1.0 / G.shape[1])
    h = -(_field_gains(model) * xi) @ G
    spins = stationary_bloch(h, model.omega, model.gamma_down, model.gamma_up, model.gamma_phi)
    alpha = -1j * model.g0 * xi / (1j * model.omega_modes + 0.5 * model.kappa)
    return {
        "overlap": xi,
        "alpha": alpha,
        "occupations": np.abs(alpha) ** 2,
        "spins": spins,
        "residual": G @ (weights * spins[:, 2]) - xi,
    }


def _columns(model: DickeModel) -> np.ndarray:
    """Pattern columns of every spin (finite N_sp) or all 2^M ±1 columns (ideal thermodynamic limit)."""
    if model.thermodynamic_limit:
        from .reduction import ideal_columns

        f = ideal_columns(model.n_modes).astype(float)
        return np.concatenate([f, -f], axis=1)
    return np.asarray(model.patterns, dtype=float)


def dissipative_stationary_overlaps(model: DickeModel, seeds=None, *, tol: float = 1e-12) -> np.ndarray:
    """Overlaps ξ of the mean-field fixed points with spin dissipation (distinct solutions, one per row).

    * Thermodynamic limit (ideal, balanced patterns): the columns come in ± pairs and s_z is even in the
      field, so ξ = 0 is the only fixed point — no retrieval state exists for any γ's with Γ⊥ > 0 (the
      stationary state is the paramagnet of :func:`stationary_bloch` with h = 0).
    * M = 1: the real roots of the cubic  Γ∥λ²ξ³ − c b λ²ξ² + (Γ∥Γ⊥² + 4Ω²Γ⊥) ξ − c b Γ⊥² = 0,
      b = mean of the pattern (the spins' field is h_j = −λ G_j ξ, so every s_z,j is the same).
    * M > 1 (finite N_sp): Newton (scipy ``root``) on the self-consistency from each seed (default: 0 and
      ±0.9 along every pattern).
    """
    if not model.spin_dissipation:
        raise ValueError("dissipative_stationary_overlaps needs nonzero spin rates (gamma_down, gamma_up or gamma_phi)")
    transverse, longitudinal, source = (float(x) for x in spin_rates(model.gamma_down, model.gamma_up, model.gamma_phi))
    M = model.n_modes
    if model.thermodynamic_limit:
        return np.zeros((1, M))
    if M == 1:
        lam = float(_field_gains(model)[0])
        b = float(np.mean(model.patterns[0]))
        coeffs = [longitudinal * lam**2, -source * b * lam**2, longitudinal * transverse**2 + 4 * model.omega**2 * transverse,
                  -source * b * transverse**2]
        if coeffs[0] == 0:  # no longitudinal relaxation (pure dephasing): only ξ = 0
            return np.zeros((1, 1))
        roots = np.roots(coeffs)
        real = np.sort(roots[np.abs(roots.imag) <= 1e-9 * max(1.0, np.max(np.abs(roots)))].real)
        return _distinct(real[:, None], tol=1e-9)
    from scipy.optimize import root

    if seeds is None:
        seeds = [np.zeros(M)] + [s * 0.9 * np.eye(M)[mu] for mu in range(M) for s in (1, -1)]
    found = []
    for seed in seeds:
        sol = root(lambda x: dissipative_fixed_point(model, x)["residual"], np.asarray(seed, float), tol=tol, method="hybr")
        if sol.success and np.max(np.abs(dissipative_fixed_point(model, sol.x)["residual"])) < 1e-10:
            found.append(sol.x)
    return _distinct(np.array(found).reshape(-1, M), tol=1e-8)


def _distinct(rows: np.ndarray, tol: float) -> np.ndarray:
    out = []
    for r in rows:
        if not any(np.max(np.abs(r - o)) <= tol for o in out):
            out.append(r)
    return np.array(out).reshape(-1, rows.shape[1] if rows.ndim == 2 else 1)


def kirton_keeling_threshold(omega, omega_mode, kappa, gamma_down, gamma_phi, gamma_up=0.0):
    """Mean-field threshold of one mode with Kirton & Keeling's processes (PRL 118, 123602 (2017)), our units.

    Kirton & Keeling damp the spins in the eigenbasis of the bare spin Hamiltonian, which in the paper's
    basis is σ_x (Ω σ_x), not σ_z: decay √Γ↓ τ_- towards σ_x = −1, pumping √Γ↑ τ_+, dephasing of the σ_x
    coherences at rate Γφ (so Γ⊥ = Γφ + (Γ↓ + Γ↑)/2, as for :func:`spin_rates`), with τ_± the ladder
    operators of σ_x. Their Dicke model maps onto ours by the rotation (x, y, z) → (z, −y, x) (their ω0 σ_z
    ↦ our Ω σ_x with ω0 = Ω, their coupling σ_x (a + a†) ↦ our σ_z (a + a†) with g = g0, Pauli matrices).
    With p = (Γ↓ − Γ↑)/(Γ↓ + Γ↑) the normal state has s_x = −p, and a superradiant (retrieval) state exists for

        g0² > g_c² = (Ω_ν² + κ²/4)(4Ω² + Γ⊥²) / (8 Ω Ω_ν p),

    which is the paper's g_c at Γ = 0; pure dephasing (Γ↓ = Γ↑ = 0) has no transition (p undefined: the
    spins go to the centre of the Bloch ball), decay restores it. Returns ``inf`` where p ≤ 0.
    """
    transverse, longitudinal, _ = spin_rates(gamma_down, gamma_up, gamma_phi)
    omega, omega_mode, kappa = (np.asarray(x, dtype=float) for x in (omega, omega_mode, kappa))
    gd, gu = np.asarray(gamma_down, float), np.asarray(gamma_up, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(longitudinal > 0, (gd - gu) / np.where(longitudinal > 0, longitudinal, 1.0), 0.0)
        g2 = (omega_mode**2 + 0.25 * kappa**2) * (4 * omega**2 + transverse**2) / (8 * omega * omega_mode * p)
    return np.where(p > 0, np.sqrt(np.where(p > 0, g2, 1.0)), np.inf)


def weak_decay_uniform_overlaps(g0, omega, omega_mode, kappa):
    """Decayed-branch fixed points of one mode and a uniform pattern (all G_j = +1) as γ↓ → 0 (γ↑ = γφ = 0).

    With pure decay the stationary s_z in the field h = −λξ tends to −h²/(h² + 2Ω²) for any small γ↓, so
    self-consistency gives λ²ξ² + λ²ξ + 2Ω² = 0, i.e. (with λ = 2Ω g0²/g_c², g_c of Eq. 12)

        ξ± = −½ [1 ± √(1 − 2 (g_c/g0)^4)],   for |g0| ≥ 2^{1/4} g_c,

    beside the paramagnet ξ → 0. Returns (ξ₊, ξ₋) (NaN below 2^{1/4} g_c). The retrieval state of Eq. 12
    (ξ = +z) has no counterpart: decay in the σ_z basis breaks the Z2 symmetry.
    """
    g_c = critical_coupling(omega, omega_mode, kappa)
    g0 = np.abs(np.asarray(g0, dtype=float))
    disc = 1.0 - 2.0 * (g_c / g0) ** 4
    root = np.sqrt(np.where(disc >= 0, disc, np.nan))
    return -0.5 * (1 + root), -0.5 * (1 - root)
