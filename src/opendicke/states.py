"""Initial states: a stored pattern, a corrupted pattern, a random state, or explicit Bloch vectors.

Each state knows its per-spin Bloch vectors in the original (ungauged) frame for a finite model, and its
group mean Bloch vectors (gauged frame of the reduction) for any :class:`~opendicke.reduction.Grouping`,
including the thermodynamic limit. Bosons start from ``alpha`` (α = ⟨a⟩/√N_sp; the vacuum by default).

"Pattern ν" (docs/physics-notes.md, Conventions): every spin j in the σ_z eigenstate with eigenvalue G[ν, j], bosons in vacuum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .model import DickeModel
from .reduction import Grouping

__all__ = ["PatternState", "CorruptedPattern", "RandomState", "BlochState", "InitialState", "as_initial_state"]


def _check_pattern(model: DickeModel, pattern) -> int:
    from .theory import _pattern_index

    return _pattern_index(model, pattern)


def _alpha(model: DickeModel, alpha) -> np.ndarray:
    if alpha is None:
        return np.zeros(model.n_modes, dtype=complex)
    a = np.asarray(alpha, dtype=complex).ravel()
    if a.size == 1:
        a = np.full(model.n_modes, a[0])
    if a.size != model.n_modes:
        raise ValueError(f"alpha must have one value or M = {model.n_modes} values, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError("alpha must be finite")
    return a


class InitialState:
    """Base class: subclasses give per-spin vectors (finite N_sp) and group means (any grouping)."""

    alpha = None

    def label(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def spin_vectors(self, model: DickeModel) -> np.ndarray:
        """Per-spin Bloch vectors (N_sp, 3) in the original frame."""
        if model.thermodynamic_limit:
            raise ValueError(f"{self.label()}: per-spin vectors need a finite n_spins")
        return self._spin_vectors(model)

    def group_vectors(self, model: DickeModel, grouping: Grouping) -> np.ndarray:
        """Mean Bloch vector of each group (K, 3), gauged frame. Exact for the mean-field dynamics."""
        if model.thermodynamic_limit:
            return self._ideal_group_vectors(model, grouping)
        return grouping.group_means(self.spin_vectors(model))

    def initial_alpha(self, model: DickeModel) -> np.ndarray:
        return _alpha(model, self.alpha)

    def _ideal_group_vectors(self, model, grouping):  # pragma: no cover - abstract
        raise NotImplementedError

    def _spin_vectors(self, model):  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class PatternState(InitialState):
    """Every spin j along +G[ν, j] ẑ (or −G[ν, j] ẑ with ``sign=-1``, the mirror pattern)."""

    pattern: int
    sign: int = 1
    alpha: object = None

    def __post_init__(self):
        if self.sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {self.sign!r}")

    def label(self) -> str:
        return f"{'-' if self.sign < 0 else ''}pattern {self.pattern}"

    def _spin_vectors(self, model):
        nu = _check_pattern(model, self.pattern)
        v = np.zeros((model.n_spins, 3))
        v[:, 2] = self.sign * model.patterns[nu]
        return v

    def _ideal_group_vectors(self, model, grouping):
        nu = _check_pattern(model, self.pattern)
        v = np.zeros((grouping.n_groups, 3))
        v[:, 2] = self.sign * grouping.f[nu]
        return v


@dataclass(frozen=True)
class CorruptedPattern(InitialState):
    """Pattern ν with some spins flipped (σ_z → −σ_z).

    Give either ``flip`` (a fraction in [0, 1]) or ``n_flip`` (a number of spins). At finite N_sp the
    flipped spins are drawn uniformly at random with ``seed``; in the thermodynamic limit a fraction p is
    flipped evenly in every group, so each group vector has length |1 − 2p| (docs/physics-notes.md, Measured facts).
    """

    pattern: int
    flip: float | None = None
    n_flip: int | None = None
    seed: int | None = None
    sign: int = 1
    alpha: object = None

    def __post_init__(self):
        if (self.flip is None) == (self.n_flip is None):
            raise ValueError("give exactly one of flip (a fraction in [0, 1]) and n_flip (a number of spins)")
        if self.flip is not None and not (np.isfinite(self.flip) and 0.0 <= self.flip <= 1.0):
            raise ValueError(f"flip must be a fraction in [0, 1], got {self.flip!r}")
        if self.n_flip is not None and (int(self.n_flip) != self.n_flip or self.n_flip < 0):
            raise ValueError(f"n_flip must be a non-negative integer, got {self.n_flip!r}")
        if self.sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {self.sign!r}")

    def label(self) -> str:
        amount = f"{self.flip:g}" if self.flip is not None else f"{self.n_flip} spins"
        return f"{'-' if self.sign < 0 else ''}pattern {self.pattern}, flip {amount}"

    def flipped(self, model: DickeModel) -> np.ndarray:
        """Indices of the flipped spins (finite N_sp)."""
        n = model.n_spins
        count = round(self.flip * n) if self.flip is not None else int(self.n_flip)
        if count > n:
            raise ValueError(f"n_flip = {count} exceeds n_spins = {n}")
        return np.sort(np.random.default_rng(self.seed).choice(n, size=count, replace=False))

    def _spin_vectors(self, model):
        v = PatternState(self.pattern, self.sign)._spin_vectors(model)
        v[self.flipped(model), 2] *= -1
        return v

    def _ideal_group_vectors(self, model, grouping):
        if self.flip is None:
            raise ValueError("in the thermodynamic limit give the corruption as a fraction (flip), not n_flip")
        v = PatternState(self.pattern, self.sign)._ideal_group_vectors(model, grouping)
        return v * (1.0 - 2.0 * self.flip)


@dataclass(frozen=True)
class RandomState(InitialState):
    """Each spin (or, in the thermodynamic limit, each fully polarised group) along a random direction."""

    seed: int | None = None
    alpha: object = None

    def label(self) -> str:
        return f"random (seed {self.seed})"

    @staticmethod
    def _directions(rng, n):
        v = rng.normal(size=(n, 3))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def _spin_vectors(self, model):
        return self._directions(np.random.default_rng(self.seed), model.n_spins)

    def _ideal_group_vectors(self, model, grouping):
        return self._directions(np.random.default_rng(self.seed), grouping.n_groups)


@dataclass(frozen=True)
class BlochState(InitialState):
    """Explicit Bloch vectors in the original spin frame: one per spin (N_sp, 3), or in the thermodynamic
    limit one per group (K, 3) in the gauged frame of the reduction. Lengths may not exceed 1."""

    vectors: np.ndarray = field(repr=False)
    alpha: object = None
    name: str = "explicit"

    def __post_init__(self):
        v = np.asarray(self.vectors, dtype=float)
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"vectors must have shape (N, 3), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError("vectors must be finite")
        if np.any(np.linalg.norm(v, axis=1) > 1 + 1e-12):
            raise ValueError("Bloch vectors may not be longer than 1")
        object.__setattr__(self, "vectors", v)

    def label(self) -> str:
        return self.name

    def _spin_vectors(self, model):
        if self.vectors.shape[0] != model.n_spins:
            raise ValueError(f"vectors has {self.vectors.shape[0]} rows but n_spins = {model.n_spins}")
        return self.vectors

    def _ideal_group_vectors(self, model, grouping):
        if self.vectors.shape[0] != grouping.n_groups:
            raise ValueError(f"in the thermodynamic limit give one vector per group ({grouping.n_groups})")
        return self.vectors


def as_initial_state(spec) -> InitialState:
    """Accept an InitialState or a plain pattern number (1-based)."""
    if isinstance(spec, InitialState):
        return spec
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return PatternState(int(spec))
    raise TypeError(f"cannot use {spec!r} as an initial state (give a pattern number or an InitialState)")
