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

__all__ = ["critical_coupling", "retrieval_overlap", "retrieval_occupation", "retrieval_state", "check_applicable"]


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
