"""Closed forms of the memory theory (thermodynamic limit, ideal equal groups): g_c, Eq. (12), g_stab."""

from __future__ import annotations

import numpy as np

from ..model import DickeModel
from .common import _refuse_spin_rates

def _check_regime(omega, omega_modes):
    omega_modes = np.asarray(omega_modes, dtype=float)
    if not (omega > 0 and np.all(omega_modes > 0)):
        raise ValueError(
            f"the closed-form memory theory needs Ω > 0 and every Ω_μ > 0 (got Ω = {omega:g}, Ω_μ = "
            f"{omega_modes.tolist()}); use the numerical functions instead"
        )


def critical_couplings(model: DickeModel) -> np.ndarray:
    """g_c(μ) = √(½ (Ω/Ω_μ)(Ω_μ² + κ_μ²/4)) for every pattern (needs Ω, Ω_μ > 0; κ_μ = 0 allowed)."""
    _refuse_spin_rates(model, "critical_couplings")
    _check_regime(model.omega, model.omega_modes)
    om = model.omega_modes
    return np.sqrt(0.5 * (model.omega / om) * (om**2 + 0.25 * model.kappa**2))


def _length(flip):
    return np.abs(1.0 - 2.0 * np.asarray(flip, dtype=float))


def corrupted_overlap(g0, g_crit, flip):
    """Stationary |ξ_ν| from pattern ν with a fraction ``flip`` flipped evenly: √(r² − (g_c/g0)^4), r = |1 − 2p|,
    and 0 below the boundary (docs/physics-notes.md, Measured facts). Broadcasts."""
    g0 = np.abs(np.asarray(g0, dtype=float))
    r = _length(flip)
    with np.errstate(divide="ignore"):
        ratio4 = (np.asarray(g_crit, dtype=float) / g0) ** 4
    return np.sqrt(np.clip(r**2 - ratio4, 0.0, None))


def recognition_boundary(g_crit, flip):
    """g_c/√(1 − 2p) (with |1 − 2p|): the coupling above which the corrupted pattern keeps a finite overlap
    (∞ at p = 1/2). Broadcasts."""
    r = _length(flip)
    with np.errstate(divide="ignore"):
        return np.asarray(g_crit, dtype=float) / np.sqrt(r)


def robust_threshold(model: DickeModel, flip=0.0) -> np.ndarray:
    """g_stab(ν, p) = (g_c(ν)/√r) · max(1, √(g_c(ν)/min_μ g_c(μ))): above it the corrupted pattern-ν state of
    the ideal model is linearly stable in the full phase space (module docstring). Shape (M,) + shape(flip)."""
    g_c = critical_couplings(model)
    factor = np.maximum(1.0, np.sqrt(g_c / g_c.min()))
    flip = np.asarray(flip, dtype=float)
    return recognition_boundary((g_c * factor).reshape((-1,) + (1,) * flip.ndim), flip)


def _safe_gc(model):
    try:
        return critical_couplings(model)
    except ValueError:
        return np.full(model.n_modes, np.nan)
