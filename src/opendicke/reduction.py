"""Exact reduction to large spins (paper Fig. 2 and Eq. 3).

1. Gauge: a π rotation about x (σ_z → −σ_z, σ_y → −σ_y) on every spin j with G[1, j] = −1 makes the
   first pattern all +1. The gauged couplings are f_j = G[:, j] · G[1, j].
2. Regroup: spins with the same gauged column f_j form one group Γ_k; the groups are ordered as in the
   paper, sorting on pattern 2 (+1 first), then pattern 3 within each block, and so on. For M patterns
   there are at most 2^(M-1) groups; empty groups are dropped.

All spins of a group feel the same field, so the mean-field dynamics of the group's mean Bloch vector is
exact (for any initial state); in the quantum problem each group is one large spin
S_{a,k} = Σ_{j∈Γ_k} σ_a^j.

With individual spin dissipation that is not gauge invariant (decay ≠ pumping, γ↓ ≠ γ↑), the gauge maps
σ_- to σ_+ on the spins with G[1, j] = −1: in the gauged frame they are pumped where the others decay. The
groups are then split by their gauge sign as well (``group_gauge``; at most 2^M groups, each paper group
followed by its G[1, j] = −1 half); in the thermodynamic limit every ideal column then stands for two groups
of weight 1/2^M. Dephasing and γ↓ = γ↑ are gauge invariant and keep the paper's groups.

A :class:`Grouping` also describes the trivial "one spin per group" representation used by the per-spin
mean-field path (no gauge), so both representations share one set of equations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .model import DickeModel

__all__ = ["Grouping", "reduce", "per_spin", "ideal_columns"]


def ideal_columns(n_modes: int) -> np.ndarray:
    """The ideal f matrix (M × 2^(M-1)): every ±1 column with f[1, k] = +1, in the paper's order.

    Column k (0-based) written in binary with M-1 digits, pattern 2 most significant, has +1 where the
    digit is 0 and −1 where it is 1; so pattern 2 is + on the left half, − on the right half, and so on.
    """
    k = np.arange(2 ** (n_modes - 1))
    rows = [np.ones_like(k)]
    for mu in range(1, n_modes):
        bit = (k >> (n_modes - 1 - mu)) & 1
        rows.append(1 - 2 * bit)
    return np.array(rows, dtype=np.int8)


@dataclass(frozen=True, eq=False)
class Grouping:
    """How the spins are gathered into groups that share one coupling column.

    Attributes
    ----------
    f:
        Couplings per group, shape (M, K), entries ±1 (paper's f^M_{μ,k}; gauged for the reduction).
    weights:
        Fraction of the spins in each group, n_k / N_sp, shape (K,); 1/K in the thermodynamic limit.
    sizes:
        Number of spins n_k per group, or None in the thermodynamic limit.
    gauge:
        Gauge sign per original spin (G[1, j] for the reduction, +1 per spin), or None.
    group_of_spin:
        Group index (0-based) of every original spin, or None.
    permutation:
        Original spin indices ordered group by group (the relabelling of Fig. 2), or None.
    representation:
        "groups" (the exact reduction) or "spins" (one group per spin, no gauge).
    group_gauge:
        Gauge sign (G[1, j]) shared by all spins of each group, shape (K,), when the groups are split by
        gauge sign (spin dissipation with γ↓ ≠ γ↑); +1 per spin in the per-spin representation; None when a
        group may hold both signs.
    """

    f: np.ndarray
    weights: np.ndarray
    sizes: np.ndarray | None = None
    gauge: np.ndarray | None = field(default=None, repr=False)
    group_of_spin: np.ndarray | None = field(default=None, repr=False)
    permutation: np.ndarray | None = field(default=None, repr=False)
    representation: str = "groups"
    group_gauge: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_groups(self) -> int:
        return int(self.f.shape[1])

    @property
    def n_modes(self) -> int:
        return int(self.f.shape[0])

    @property
    def weighted_f(self) -> np.ndarray:
        """(K, M) matrix w_k f[μ, k]: overlaps are ``s_z @ weighted_f``."""
        return (self.f * self.weights).T

    def overlaps(self, sz: np.ndarray) -> np.ndarray:
        """ξ_μ = Σ_k w_k f[μ, k] m_{z,k} for group z-components of shape (..., K) → (..., M)."""
        return np.asarray(sz) @ self.weighted_f

    def to_frame(self, vectors: np.ndarray) -> np.ndarray:
        """Per-spin Bloch vectors in the original frame (..., N_sp, 3) → the gauged frame."""
        v = np.array(vectors, dtype=float, copy=True)
        if self.gauge is not None:
            v[..., 1] *= self.gauge
            v[..., 2] *= self.gauge
        return v

    def group_means(self, vectors: np.ndarray) -> np.ndarray:
        """Mean gauged Bloch vector of each group, from per-spin vectors (..., N_sp, 3) in the original frame."""
        if self.group_of_spin is None:
            raise ValueError("group means need a finite model (the thermodynamic limit has no individual spins)")
        v = self.to_frame(vectors)
        if self.representation == "spins":
            return v
        lead = v.shape[:-2]
        flat = np.moveaxis(v, -2, 0).reshape(v.shape[-2], -1)  # (N_sp, rest)
        sums = np.zeros((self.n_groups, flat.shape[1]))
        np.add.at(sums, self.group_of_spin, flat)
        means = sums / self.sizes[:, None]
        return np.moveaxis(means.reshape((self.n_groups,) + lead + (3,)), 0, -2)


def reduce(model: DickeModel) -> Grouping:
    """The exact large-spin reduction of ``model`` (paper Fig. 2).

    In the thermodynamic limit this is the ideal f matrix with equal weights 1/2^(M-1). At finite N_sp
    the groups are the distinct gauged coupling columns, with their actual sizes (unequal in general).
    With spin dissipation that is not gauge invariant (γ↓ ≠ γ↑) every group is split by its gauge sign.
    """
    grouping = _reduce(model)
    if model.gauge_symmetric:
        return grouping
    return _split_by_gauge(model, grouping)


def _split_by_gauge(model: DickeModel, grouping: Grouping) -> Grouping:
    """Each group k → (k, gauge +1), (k, gauge −1), in this order; empty halves dropped at finite N_sp."""
    K = grouping.n_groups
    if model.thermodynamic_limit:
        f = np.repeat(grouping.f, 2, axis=1)
        return Grouping(f=f, weights=np.full(2 * K, 0.5 / K), group_gauge=np.tile(np.array([1, -1], dtype=np.int8), K))
    key = 2 * grouping.group_of_spin + (grouping.gauge < 0)
    unique_keys, group_of_spin = np.unique(key, return_inverse=True)
    group_of_spin = group_of_spin.ravel()
    sizes = np.bincount(group_of_spin, minlength=unique_keys.size)
    return Grouping(
        f=grouping.f[:, unique_keys // 2],
        weights=sizes / model.n_spins,
        sizes=sizes,
        gauge=grouping.gauge,
        group_of_spin=group_of_spin,
        permutation=np.argsort(group_of_spin, kind="stable"),
        representation="groups",
        group_gauge=np.where(unique_keys % 2 == 1, -1, 1).astype(np.int8),
    )


def _reduce(model: DickeModel) -> Grouping:
    M = model.n_modes
    if model.thermodynamic_limit:
        f = ideal_columns(M)
        K = f.shape[1]
        return Grouping(f=f, weights=np.full(K, 1.0 / K))
    G = model.patterns.astype(np.int64)
    gauge = G[0].copy()
    gauged = G * gauge
    # Key of each spin: the binary number of its gauged column, pattern 2 most significant, −1 ↦ 1.
    bits = (gauged[1:] < 0).astype(np.int64)
    if M - 1 <= 62:
        weights_of_bits = 1 << np.arange(M - 2, -1, -1, dtype=np.int64)
        keys = weights_of_bits @ bits if M > 1 else np.zeros(G.shape[1], dtype=np.int64)
        unique_keys, group_of_spin = np.unique(keys, return_inverse=True)
        f = np.vstack([np.ones(unique_keys.size, dtype=np.int8)] + [
            (1 - 2 * ((unique_keys >> (M - 1 - mu)) & 1)).astype(np.int8) for mu in range(1, M)
        ])
    else:  # lexicographic order of the bit columns equals the binary order
        cols, group_of_spin = np.unique(bits.T, axis=0, return_inverse=True)
        f = np.vstack([np.ones(cols.shape[0], dtype=np.int8), (1 - 2 * cols.T).astype(np.int8)])
    group_of_spin = group_of_spin.ravel()
    sizes = np.bincount(group_of_spin, minlength=f.shape[1])
    permutation = np.argsort(group_of_spin, kind="stable")
    return Grouping(
        f=f,
        weights=sizes / model.n_spins,
        sizes=sizes,
        gauge=gauge.astype(np.int8),
        group_of_spin=group_of_spin,
        permutation=permutation,
        representation="groups",
    )


def per_spin(model: DickeModel) -> Grouping:
    """The per-spin representation: one "group" per spin, f = G, no gauge."""
    if model.thermodynamic_limit:
        raise ValueError("the per-spin representation needs a finite n_spins (the thermodynamic limit has no spins)")
    n = model.n_spins
    return Grouping(
        f=np.asarray(model.patterns, dtype=np.int8),
        weights=np.full(n, 1.0 / n),
        sizes=np.ones(n, dtype=np.int64),
        gauge=None,
        group_of_spin=np.arange(n),
        permutation=np.arange(n),
        representation="spins",
        group_gauge=np.ones(n, dtype=np.int8),
    )
