"""The paper's Fig. 3 model (M = 4, Ω = 0.5, Ω_μ = Ω(μ + 2), κ = 1) and its closed forms (paper Eq. 12;
full-space threshold g_stab from docs/physics-notes.md, Measured facts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReferenceModel:
    """Parameters of a thermodynamic-limit model and its analytic retrieval solution, by hand."""

    omega: float
    omega_modes: np.ndarray
    kappa: np.ndarray

    @property
    def g_crit(self) -> np.ndarray:
        """g_c(ν) = √(½ (Ω/Ω_ν)(Ω_ν² + κ_ν²/4))."""
        return np.sqrt(0.5 * (self.omega / self.omega_modes) * (self.omega_modes**2 + self.kappa**2 / 4))

    @property
    def g_stab(self) -> np.ndarray:
        """g_stab(ν) = g_c(ν)^{3/2} / min_μ g_c(μ)^{1/2}: full-space stability of the Eq. 12 state."""
        g_c = self.g_crit
        return g_c**1.5 / np.sqrt(g_c.min())

    def overlap(self, g0: float) -> np.ndarray:
        """|ξ_ν| of Eq. (12) at g0 (0 below g_c)."""
        return np.sqrt(np.clip(1 - (self.g_crit / g0) ** 4, 0, None))

    def occupation(self, g0: float) -> np.ndarray:
        """n_ν = g0² z² / (Ω_ν² + κ_ν²/4), per spin."""
        return g0**2 * self.overlap(g0) ** 2 / (self.omega_modes**2 + self.kappa**2 / 4)


FIG3 = ReferenceModel(0.5, 0.5 * (np.arange(1, 5) + 2.0), np.ones(4))
