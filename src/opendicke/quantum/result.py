"""One propagation result for every basis and engine: expectation values over time, plus what the run knows
about its own truncation. No imports from the solvers, so every basis module can use it (no import cycle)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..results import register_kind

__all__ = ["Propagation", "FockCutoffWarning"]


class FockCutoffWarning(UserWarning):
    """The Fock cutoff could not be shown to meet the tolerance (too small, or not converged)."""


@dataclass(frozen=True)
class Propagation:
    """Expectation values of one run at one cutoff: ``values[name]`` is a complex array over time."""

    problem: object  # QuantumProblem (or one with .n_modes and .fock)
    times: np.ndarray
    values: dict
    elapsed: float
    method: str
    errors: dict | None = None  # trajectories: standard error of the mean of every value
    runs: dict | None = None  # trajectories: per-trajectory values (ntraj, T)
    ntraj: int = 0
    strata: object = None  # trajectories: the exact no-jump branch (_Strata)
    stats: dict | None = None  # engine statistics (Chebyshev: applications, restarts, spectral bound, ...)

    def real(self, name: str) -> np.ndarray:
        return np.real(self.values[name])

    def per_pattern(self, prefix: str, source: dict | None = None) -> np.ndarray:
        """(T, M) array of ``<prefix>_<μ>`` (from ``values``, or from ``source``, e.g. ``errors``)."""
        source = self.values if source is None else source
        return np.stack([source[f"{prefix}_{mu + 1}"] for mu in range(self.problem.n_modes)], axis=1)

    def truncation(self) -> np.ndarray:
        """Largest population of the top Fock level of each mode over the window, (M,)."""
        return np.max(np.real(self.per_pattern("top")), axis=0)

    def tail_ratio(self) -> np.ndarray:
        """Per-level decay of the Fock tail of each mode, (M,): (p_top / p_{top−L})^(1/L) with p the largest
        population of a level over the window (NaN where the tail was not recorded or is empty)."""
        out = np.full(self.problem.n_modes, np.nan)
        for mu in range(self.problem.n_modes):
            names = [n for n in self.values if n.startswith(f"level_{mu + 1}_")]
            if not names:
                continue
            deepest = max(int(n.rsplit("_", 1)[1]) for n in names)
            p_top = self.truncation()[mu]
            p_low = np.max(np.real(self.values[f"level_{mu + 1}_{deepest}"]))
            if p_low > 0 and p_top > 0:
                out[mu] = (p_top / p_low) ** (1.0 / deepest)
        return out

    def change_from(self, other: Propagation) -> float:
        """max over time and patterns of |Δξ| and |Δ occupation| between two runs on the same times."""
        d_xi = np.abs(np.real(self.per_pattern("overlap") - other.per_pattern("overlap")))
        d_occ = np.abs(np.real(self.per_pattern("occupation") - other.per_pattern("occupation")))
        return float(max(d_xi.max(), d_occ.max()))


def _expectations(rho: np.ndarray, diag_ops: dict, full_ops: dict) -> dict:
    """tr(O ρ) for diagonal operators (given as diagonals) and sparse ones."""
    out = {}
    pop = np.real(np.diagonal(rho))
    for name, d in diag_ops.items():
        out[name] = complex(d @ pop)
    rho_t = rho.T
    for name, op in full_ops.items():
        coo = op.tocoo() if not isinstance(op, sp.coo_matrix) else op
        out[name] = complex(np.sum(coo.data * rho_t[coo.row, coo.col]))
    return out


def _split_observables(problem, squares: bool, tail: int):
    ops = problem.observables(squares, tail)
    diag_ops, full_ops = {}, {}
    for name, op in ops.items():
        coo = op.tocoo()
        if coo.nnz == 0 or np.all(coo.row == coo.col):
            d = np.zeros(problem.dim, dtype=complex)
            d[coo.row] = coo.data
            diag_ops[name] = np.real(d) if np.all(np.abs(np.imag(d)) == 0) else d
        else:
            full_ops[name] = coo
    return diag_ops, full_ops


register_kind("quantum_evolution", variables=("overlap", "occupation", "alpha", "fock", "truncation"),
              dims=("time", "pattern"), attrs=("method", "initial_state", "solver_frame", "dimension", "tol"),
              description="exact finite-N dynamics (Lindblad master equation or trajectories) in a reduced basis")
