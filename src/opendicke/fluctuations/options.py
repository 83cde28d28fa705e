"""The numerical settings of the fluctuation solvers: one frozen, validated object per method."""

from __future__ import annotations

import math
from numbers import Integral
from dataclasses import dataclass

__all__ = ["CumulantOptions", "TWAOptions", "DEFAULT_MAX_MEMORY", "DEFAULT_DT", "SPIN_SAMPLINGS"]

#: cumulant states larger than this (bytes) are refused before any work
DEFAULT_MAX_MEMORY = 4 * 2**30
#: largest time step of the TWA integrator
DEFAULT_DT = 0.01
#: spin phase-space samplings of the TWA
SPIN_SAMPLINGS = ("discrete", "gaussian")


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _flag(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False{' or None' if allow_none else ''}, got {value!r}")


@dataclass(frozen=True)
class CumulantOptions:
    """Settings of :func:`~opendicke.fluctuations.cumulant`.

    rtol, atol: per-point tolerances of the batched DOP853 integrator; keep_covariance: also return Σ(t)
    (memory ∝ T·(3K + 2M)²); max_memory: refuse (naming the need) above this many bytes.
    """

    rtol: float = 1e-9
    atol: float = 1e-11
    keep_covariance: bool = False
    max_memory: float = DEFAULT_MAX_MEMORY

    def __post_init__(self):
        _positive("rtol", self.rtol)
        _positive("atol", self.atol)
        _flag("keep_covariance", self.keep_covariance)
        _positive("max_memory", self.max_memory)


@dataclass(frozen=True)
class TWAOptions:
    """Settings of :func:`~opendicke.fluctuations.twa`.

    samples: phase-space samples (≥ 2) per point and start; seed: of all random numbers (``None``: fresh);
    dt: largest step of the stochastic integrator; spin_sampling: ``"discrete"`` or ``"gaussian"``;
    chunk_size: samples integrated at once (``None``: as many as fit in ~64 MB); keep_bloch: store group Bloch
    vectors and squeezing (``None``: when T·K·points ≤ 10⁷).
    """

    samples: int = 1000
    seed: int | None = None
    dt: float = DEFAULT_DT
    spin_sampling: str = "discrete"
    chunk_size: int | None = None
    keep_bloch: bool | None = None

    def __post_init__(self):
        if isinstance(self.samples, bool) or not isinstance(self.samples, Integral) or self.samples < 2:
            raise ValueError(f"samples must be an integer ≥ 2 (error bars need two samples), got {self.samples!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, Integral) or self.seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {self.seed!r}")
        _positive("dt", self.dt)
        if self.spin_sampling not in SPIN_SAMPLINGS:
            raise ValueError(f"spin_sampling must be one of {SPIN_SAMPLINGS}, got {self.spin_sampling!r}")
        if self.chunk_size is not None and (isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, Integral)
                                            or self.chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {self.chunk_size!r}")
        _flag("keep_bloch", self.keep_bloch, allow_none=True)
