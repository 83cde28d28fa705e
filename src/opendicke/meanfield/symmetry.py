"""The invariant subspace a mean-field trajectory lives in, and the smaller model that describes it.

Eq. (7) has a group of exact linear symmetries, independent of Ω, Ω_μ, κ_μ and g0: flip the sign of some
modes (α_μ → s_μ α_μ, s ∈ {±1}^M) and map every group k onto the group k' whose coupling column is
f[:, k'] = σ_k s∘f[:, k] (σ_k = ±1), applying the gauge rotation D_σ = diag(1, σ, σ) (a π rotation about x
when σ = −1) to its Bloch vector. This is a symmetry whenever such a k' exists with the same weight for
every k. Groups with identical couplings, weights and initial vectors can in addition be permuted.

The symmetries that leave an initial state unchanged also leave its whole trajectory unchanged, so the
trajectory stays in their fixed-point subspace. There:

* a mode that some symmetry flips stays exactly empty (``silent``);
* groups related by a symmetry stay equal up to D_σ, so each orbit behaves as one group of the summed
  weight, with the couplings of its representative to the remaining modes;
* a group mapped onto itself with σ = −1 can only point along x, feels no field and is frozen.

The result is again a model of the form of Eq. (7), usually much smaller (the pattern-ν state of the ideal
model reduces to one group and one mode, 5 numbers instead of 3·2^(M−1) + 2M). Integrating it keeps the
trajectory *exactly* on the invariant subspace, where round-off would otherwise seed symmetry-breaking
perturbations that grow wherever the state is unstable against them (e.g. the retrieval state of pattern 2
of the paper's Fig. 3 model just above its g_c, which is a saddle towards pattern 1). Stability on the
invariant subspace and on the full space are both reported by :func:`~opendicke.meanfield.steady.steady_state`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .equations import unpack

__all__ = ["InvariantReduction", "invariant_reduction"]

_MAX_SIGN_FLIPS = 1 << 14  # enumerate mode-sign symmetries only up to M = 14


@dataclass(frozen=True, eq=False)
class InvariantReduction:
    """A model of the form of Eq. (7) on the invariant subspace of one initial state.

    Attributes
    ----------
    f, weights:
        Couplings (M' × K') and weights (K') of the reduced groups (orbits) to the kept modes.
    modes:
        Indices (0-based) of the kept modes; the other modes stay empty.
    embedding, offset:
        Full packed state = reduced state @ embedding.T + offset; ``embedding`` has shape (n, n').
    y0:
        The initial state in reduced coordinates (n',).
    lengths:
        Conserved Bloch-vector lengths of the reduced groups (K'); NaN with spin dissipation (not conserved).
    n_symmetries:
        Order of the group of mode-sign symmetries that fix the initial state (1: none).
    """

    f: np.ndarray
    weights: np.ndarray
    modes: np.ndarray
    embedding: np.ndarray
    offset: np.ndarray
    y0: np.ndarray
    lengths: np.ndarray
    n_symmetries: int
    group_gauge: np.ndarray | None = None  # (K') gauge signs of the reduced groups (given a group_gauge)

    @property
    def size(self) -> int:
        return int(self.embedding.shape[1])

    def embed(self, z: np.ndarray) -> np.ndarray:
        """Reduced packed states (..., n') → full packed states (..., n)."""
        return np.asarray(z) @ self.embedding.T + self.offset


def _key(column, weight, vector, gauge=0):
    return (tuple(int(c) for c in column), round(float(weight), 13), tuple(round(float(v), 12) + 0.0 for v in vector),
            int(gauge))


def invariant_reduction(f: np.ndarray, weights: np.ndarray, y0: np.ndarray, *,
                        use_symmetry: bool = True, group_gauge: np.ndarray | None = None,
                        damped: bool = False) -> InvariantReduction:
    """The reduced model on the fixed-point subspace of the symmetries that fix ``y0`` (packed, full).

    With ``use_symmetry=False`` only identical groups (same couplings, weight and initial vector) are
    merged, which is exact without any symmetry argument beyond relabelling.

    Individual spin dissipation (docs/spin-dissipation.md): the damping −Γ⊥(m_x, m_y), −Γ∥ m_z commutes with
    every D_σ, but the source σ_k(γ↑ − γ↓) on m_z,k does only if the map k → k' with D_σ has
    σ_k' = σ·σ_k. Give ``group_gauge`` (the σ_k) when γ↓ ≠ γ↑: it becomes part of every group's identity, and
    the reduced groups carry theirs in ``InvariantReduction.group_gauge``. With ``damped`` the lengths are not
    conserved (reported as NaN) and a frozen group (mapped onto itself by a π rotation; it feels no field and
    drives nothing) relaxes to the centre, m_x ∝ e^{−Γ⊥ t}: its stationary value 0 is used as the offset.
    """
    f = np.asarray(f)
    w = np.asarray(weights, dtype=float)
    M, K = f.shape
    gauge = np.zeros(K, dtype=np.int64) if group_gauge is None else np.asarray(group_gauge, dtype=np.int64)
    y0 = np.asarray(y0, dtype=float)
    bloch0, alpha0 = unpack(y0, K)
    n = 3 * K + 2 * M

    # classes of interchangeable groups
    class_of = {}
    members: list[list[int]] = []
    for k in range(K):
        key = _key(f[:, k], w[k], bloch0[k], gauge[k])
        if key not in class_of:
            class_of[key] = len(members)
            members.append([])
        members[class_of[key]].append(k)

    # union-find with parities: m_k = D_{parity} m_root
    parent = list(range(K))
    parity = [1] * K
    frozen_root = set()

    def find(k):
        sign = 1
        while parent[k] != k:
            sign *= parity[k]
            k = parent[k]
        return k, sign

    def union(a, b, sigma):  # m_a = D_sigma m_b
        ra, sa = find(a)
        rb, sb = find(b)
        rel = sa * sigma * sb  # m_ra = D_rel m_rb
        if ra == rb:
            if rel == -1:
                frozen_root.add(ra)
            return
        parent[ra] = rb
        parity[ra] = rel
        if ra in frozen_root:
            frozen_root.discard(ra)
            frozen_root.add(rb)

    for group in members:
        for k in group[1:]:
            union(k, group[0], 1)

    silent = np.zeros(M, dtype=bool)
    n_sym = 1
    if use_symmetry and (1 << M) <= _MAX_SIGN_FLIPS:
        flip = np.array([1.0, -1.0, -1.0])
        for signs in itertools.product((1, -1), repeat=M):
            s = np.array(signs)
            if np.all(s == 1):
                continue
            if np.any((s < 0) & (np.abs(alpha0) > 1e-14)):
                continue
            pairs = []
            for c, group in enumerate(members):
                k = group[0]
                target = s * f[:, k]
                found = None
                for sigma in (1, -1):
                    key = _key(sigma * target, w[k], (flip if sigma < 0 else 1.0) * bloch0[k], sigma * gauge[k])
                    c2 = class_of.get(key)
                    if c2 is not None and len(members[c2]) == len(group):
                        found = (c2, sigma)
                        break
                if found is None:
                    pairs = None
                    break
                pairs.append((k, members[found[0]][0], found[1]))
            if pairs is None:
                continue
            n_sym += 1
            silent |= s < 0
            for k, k2, sigma in pairs:  # m_k = D_sigma m_k2
                union(k, k2, sigma)

    roots = {}
    for k in range(K):
        r, _ = find(k)
        roots.setdefault(r, []).append(k)
    live_roots = [r for r in roots if r not in frozen_root]
    keep = np.nonzero(~silent)[0]
    Kr, Mr = len(live_roots), keep.size
    nr = 3 * Kr + 2 * Mr
    E = np.zeros((n, nr))
    offset = np.zeros(n)
    f_red = np.zeros((Mr, Kr), dtype=f.dtype)
    w_red = np.zeros(Kr)
    z0 = np.zeros(nr)
    lengths = np.zeros(Kr)
    gauge_red = np.zeros(Kr, dtype=np.int64)
    for o, r in enumerate(live_roots):
        for k in roots[r]:
            _, sigma = find(k)
            E[k, o] = 1.0
            E[K + k, Kr + o] = sigma
            E[2 * K + k, 2 * Kr + o] = sigma
            w_red[o] += w[k]
        f_red[:, o] = f[keep, r]
        z0[[o, Kr + o, 2 * Kr + o]] = bloch0[r]
        lengths[o] = np.nan if damped else np.linalg.norm(bloch0[r])
        gauge_red[o] = gauge[r]
    # gauge each reduced group so that its coupling to the first kept mode is +1 (as the paper's gauge does);
    # then reductions of different initial states often coincide and can share one batch
    if Mr:
        for o in range(Kr):
            if f_red[0, o] < 0:
                f_red[:, o] *= -1
                E[:, Kr + o] *= -1
                E[:, 2 * Kr + o] *= -1
                z0[[Kr + o, 2 * Kr + o]] *= -1
                gauge_red[o] *= -1
    for r in frozen_root:
        for k in roots[r]:
            offset[k] = 0.0 if damped else bloch0[k, 0]
    for i, mu in enumerate(keep):
        E[3 * K + mu, 3 * Kr + i] = 1.0
        E[3 * K + M + mu, 3 * Kr + Mr + i] = 1.0
        z0[3 * Kr + i] = alpha0[mu].real
        z0[3 * Kr + Mr + i] = alpha0[mu].imag
    return InvariantReduction(f=f_red, weights=w_red, modes=keep, embedding=E, offset=offset, y0=z0, lengths=lengths,
                              n_symmetries=n_sym, group_gauge=None if group_gauge is None else gauge_red)
