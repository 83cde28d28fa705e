"""Typed, immutable options of the exact solver, checked on construction (before any mean-field or problem
building), each error naming the option and its allowed range."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["QuantumOptions", "DEFAULT_TOL", "DEFAULT_DEVIATION_TOL", "DEFAULT_MEMORY", "METHODS", "FRAMES"]

DEFAULT_TOL = 1e-6
#: Default relative tolerance of the frames' truncation search on what a frame is about: N·(ξ − ξ_MF),
#: N·(n − n_MF) and N·E_N must change by ≤ 1 % of their largest value over the window between the last two
#: truncations (besides the absolute ``tol`` on ξ and n). At large N_sp an absolute tol on ξ is as large as
#: ξ − ξ_MF ≈ 20/N_sp itself and E_N is invisible in ξ and n, so without it the search stops with a biased
#: answer (docs/exact-dynamics.md, "Convergence to mean field").
DEFAULT_DEVIATION_TOL = 1e-2
#: Default memory budget of the master equation (bytes): above it ``method="auto"`` takes trajectories.
DEFAULT_MEMORY = 2 * 2**30
METHODS = ("chebyshev", "mesolve", "expm", "trajectories", "mcsolve")
FRAMES = ("auto", "plain", "comoving", "gaussian")


def _positive(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _positive_int(name: str, value, minimum: int = 1, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")


@dataclass(frozen=True)
class QuantumOptions:
    """Options of :func:`opendicke.quantum.solve` (see there for their meaning).

    ``memory`` is the budget in bytes of the master equation (state, work arrays, operators);
    ``threads`` the numba threads of the compiled kernel (1: single-threaded, the default; trajectories: how
    many run at once);
    ``deviation_tol`` a relative tolerance on what the frames (co-moving, Gaussian) are about, N·(ξ − ξ_MF),
    N·(n − n_MF) and N·E_N, required of their truncation search besides the absolute ``tol`` (default
    :data:`DEFAULT_DEVIATION_TOL`; ``None``: measured and reported only; the plain basis does not use it).
    """

    t_final: float = 10.0
    times: int | Sequence[float] = 101
    fock: str | int | Sequence[int] = "auto"
    tol: float = DEFAULT_TOL
    method: str = "auto"
    frame: str = "auto"
    cost: bool = True
    atol: float | None = None
    rtol: float | None = None
    max_dim: int | None = None
    max_fock: int | None = None
    ntraj: int = 500
    seed: int | None = None
    spin_levels: int | Sequence[int] | None = None
    memory: float = DEFAULT_MEMORY
    threads: int = 1
    deviation_tol: float | None = DEFAULT_DEVIATION_TOL

    def __post_init__(self):
        _positive("tol", self.tol)
        _positive("t_final", self.t_final)
        _positive("memory (bytes)", self.memory)
        _positive("atol", self.atol, allow_none=True)
        _positive("rtol", self.rtol, allow_none=True)
        _positive_int("threads", self.threads)
        _positive("deviation_tol", self.deviation_tol, allow_none=True)
        _positive_int("max_dim", self.max_dim, allow_none=True)
        _positive_int("max_fock", self.max_fock, minimum=3, allow_none=True)
        _positive_int("ntraj", self.ntraj, minimum=2)
        if self.method not in METHODS + ("auto",):
            raise ValueError(f"method must be 'auto' or one of {METHODS}, got {self.method!r}")
        if self.frame not in FRAMES:
            raise ValueError(f"frame must be one of {FRAMES}, got {self.frame!r}")
        if self.frame in ("comoving", "gaussian") and self.method != "auto":
            raise ValueError(f"frame={self.frame!r} integrates the master equation with its own DOP853: leave "
                             f"method='auto' (got {self.method!r})")
        if self.spin_levels is not None and self.frame != "comoving":
            raise ValueError("spin_levels applies to frame='comoving' only")
        if isinstance(self.times, (int, np.integer)) and not isinstance(self.times, bool):
            if self.times < 2:
                raise ValueError(f"times must be ≥ 2 output times (or an explicit list), got {self.times!r}")
        else:
            t = np.asarray(self.times, dtype=float)
            if t.ndim != 1 or t.size < 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
                raise ValueError("times must be a count ≥ 2 or a strictly increasing list of finite times")
            if t[0] != 0.0:
                raise ValueError("times must start at 0 (the initial state)")
        fock = self.fock
        if isinstance(fock, str):
            if fock != "auto":
                raise ValueError(f"fock must be 'auto' or a number of Fock levels, got {fock!r}")
        else:
            arr = np.atleast_1d(np.asarray(fock))
            if arr.ndim != 1 or arr.size < 1 or not all(float(c).is_integer() for c in arr):
                raise ValueError(f"fock must be 'auto', an integer or a list of integers, got {fock!r}")
            low = 1 if self.frame == "gaussian" else 2
            if arr.min() < low:
                raise ValueError(f"fock must be integers ≥ {low} (Fock levels per mode, 0 … fock − 1), got {fock!r}")

    @property
    def fock_auto(self) -> bool:
        return isinstance(self.fock, str)

    def check_model(self, model) -> None:
        """Checks that need the model (no problem is built): finite N_sp, ``fock`` of the right length for the
        basis (one per mode, or one value; the Gaussian frame takes one total-quanta number)."""
        if model.thermodynamic_limit:
            raise ValueError("the exact quantum dynamics needs a finite n_spins (give n_spins or patterns)")
        if self.fock_auto:
            return
        size = np.atleast_1d(np.asarray(self.fock)).size
        if self.frame == "gaussian" and size != 1:
            raise ValueError(f"fock: frame='gaussian' keeps the states with total quanta ≤ fock: give one integer, "
                             f"got {self.fock!r}")
        if size not in (1, model.n_modes):
            raise ValueError(f"fock must be one cutoff or M = {model.n_modes} cutoffs (Fock levels per mode), "
                             f"got {self.fock!r}")
