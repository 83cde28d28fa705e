"""Initial states of the memory experiments: mixtures of patterns and small random kicks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import DickeModel
from ..reduction import reduce
from ..states import BlochState, InitialState
from .common import _pattern_index_safe

@dataclass(frozen=True)
class MixtureState(InitialState):
    """A start mixing several patterns.

    ``kind="tilt"`` (default): every spin j has σ_z component z_j = Σ_μ c_μ G[μ, j] / Σ_μ |c_μ| and the rest of
    its unit length along −x, so in the ideal model the initial overlaps are exactly ξ_μ = c_μ / Σ|c|.
    ``kind="sign"``: every spin along sign(Σ_μ c_μ G[μ, j]) ẑ (the Hopfield mixture; ties go to the first
    listed pattern). ``weights`` may be negative (a mirrored component); by default all 1.
    """

    patterns: tuple = (1, 2, 3)
    weights: tuple | None = None
    kind: str = "tilt"
    alpha: object = None

    def __post_init__(self):
        pats = tuple(int(p) for p in np.atleast_1d(self.patterns))
        if len(pats) < 1 or len(set(pats)) != len(pats):
            raise ValueError(f"MixtureState: give distinct pattern numbers, got {self.patterns!r}")
        object.__setattr__(self, "patterns", pats)
        w = np.ones(len(pats)) if self.weights is None else np.asarray(self.weights, dtype=float).ravel()
        if w.size != len(pats) or not np.all(np.isfinite(w)) or not np.any(w != 0):
            raise ValueError(f"MixtureState: weights must be {len(pats)} finite numbers, not all zero, got {self.weights!r}")
        object.__setattr__(self, "weights", tuple(float(v) for v in w))
        if self.kind not in ("tilt", "sign"):
            raise ValueError(f"MixtureState: kind must be 'tilt' or 'sign', got {self.kind!r}")

    def label(self) -> str:
        parts = "+".join(f"{w:.3g}·{p}" for p, w in zip(self.patterns, self.weights))
        return f"mixture[{self.kind}] {parts}"

    def _vectors(self, columns: np.ndarray) -> np.ndarray:
        """columns: (M, n) ±1 couplings (patterns × spins or groups) → (n, 3) unit vectors."""
        rows = [_pattern_index_safe(columns.shape[0], p) for p in self.patterns]
        w = np.asarray(self.weights)
        field = w @ columns[rows].astype(float)
        v = np.zeros((columns.shape[1], 3))
        if self.kind == "sign":
            tie = np.sign(w[0]) * columns[rows[0]]
            v[:, 2] = np.where(field != 0, np.sign(field), tie)
        else:
            z = field / np.abs(w).sum()
            v[:, 2] = z
            v[:, 0] = -np.sqrt(np.clip(1.0 - z * z, 0.0, None))
        return v

    def _spin_vectors(self, model):
        return self._vectors(np.asarray(model.patterns))

    def _ideal_group_vectors(self, model, grouping):
        return self._vectors(np.asarray(grouping.f))


def _perturbed(start: InitialState, model: DickeModel, size: float, seed: int):
    """The start with every group (TL) or spin vector rotated by a random angle of order ``size``."""
    rng = np.random.default_rng(seed)
    if model.thermodynamic_limit:
        v = start.group_vectors(model, reduce(model))
    else:
        v = start.spin_vectors(model)
    axis = rng.normal(size=v.shape)
    w = v + size * np.cross(axis, v)
    norm_v, norm_w = np.linalg.norm(v, axis=1, keepdims=True), np.linalg.norm(w, axis=1, keepdims=True)
    w = np.where(norm_w > 0, w * norm_v / np.where(norm_w > 0, norm_w, 1.0), w)
    return BlochState(w, alpha=start.alpha, name=f"{start.label()} + perturbation {size:g}")
