"""Exact large-spin reduction (paper Fig. 2, Eq. 3), checked by hand and against per-spin dynamics.

References: a hand-worked M = 3, N_sp = 8 example (gauge signs, groups, f matrix, sizes), a literal
implementation of the Fig. 2 recipe (conftest.hand_gauge_and_groups), and our own per-spin mean-field
integration in the ORIGINAL spin frame (conftest.reference_evolve, scipy DOP853 at rtol 1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import hand_gauge_and_groups, ideal_f, reference_evolve

import opendicke as od
from opendicke.meanfield import evolve

# ------------------------------------------------------------------------------------------------------
# Hand-worked example, M = 3, N_sp = 8 (as in paper Fig. 2a). Spins j = 0..7 (0-based here).
#
#   G1 = + - + - + + - -      gauge sign of spin j = G1[j]
#   G2 = + + - - + - + -
#   G3 = + - + + - - - +
#
# Gauged columns f_j = G[:, j]·G1[j]:
#   j:   0      1      2      3      4      5      6      7
#       +++    +-+    +-+    ++-    ++-    +--    +-+    ++-
# Groups in the paper's order (pattern 2: + first; then pattern 3: + first inside each block):
#   Γ1 = (+,+,+): {0}          size 1
#   Γ2 = (+,+,-): {3, 4, 7}    size 3
#   Γ3 = (+,-,+): {1, 2, 6}    size 3
#   Γ4 = (+,-,-): {5}          size 1
# After the relabelling the gauged matrix reads (Fig. 2a, right):
#   ++++++++ / ++++---- / +---+++-
# ------------------------------------------------------------------------------------------------------
HAND_G = np.array([
    [+1, -1, +1, -1, +1, +1, -1, -1],
    [+1, +1, -1, -1, +1, -1, +1, -1],
    [+1, -1, +1, +1, -1, -1, -1, +1],
])
HAND_GAUGE = np.array([+1, -1, +1, -1, +1, +1, -1, -1])
HAND_F = np.array([
    [+1, +1, +1, +1],
    [+1, +1, -1, -1],
    [+1, -1, +1, -1],
])
HAND_SIZES = np.array([1, 3, 3, 1])
HAND_MEMBERS = [{0}, {3, 4, 7}, {1, 2, 6}, {5}]
HAND_RELABELLED = np.array([
    [+1, +1, +1, +1, +1, +1, +1, +1],
    [+1, +1, +1, +1, -1, -1, -1, -1],
    [+1, -1, -1, -1, +1, +1, +1, -1],
])

# Same but spin 5 has G3 = +1: its gauged column becomes (+,-,+), group (+,-,-) is empty and dropped.
HAND_G_EMPTY = HAND_G.copy()
HAND_G_EMPTY[2, 5] = +1
HAND_F_EMPTY = HAND_F[:, :3]
HAND_SIZES_EMPTY = np.array([1, 3, 4])
HAND_MEMBERS_EMPTY = [{0}, {3, 4, 7}, {1, 2, 5, 6}]


def finite(patterns, **kw):
    kwargs = dict(omega=0.5, omega_modes=0.5 * (np.arange(1, len(patterns) + 1) + 2.0), kappa=1.0, g0=1.0)
    kwargs.update(kw)
    return od.DickeModel(patterns=patterns, **kwargs)


def members(grouping):
    return [set(np.flatnonzero(grouping.group_of_spin == k).tolist()) for k in range(grouping.n_groups)]


def test_hand_example_m3_n8():
    g = od.reduce(finite(HAND_G))
    np.testing.assert_array_equal(g.gauge, HAND_GAUGE)
    np.testing.assert_array_equal(g.f, HAND_F)
    np.testing.assert_array_equal(g.sizes, HAND_SIZES)
    np.testing.assert_allclose(g.weights, HAND_SIZES / 8)
    assert members(g) == HAND_MEMBERS
    # permutation: a relabelling of the 8 spins, group by group, giving the Fig. 2a matrix
    assert sorted(g.permutation.tolist()) == list(range(8))
    assert np.all(np.diff(g.group_of_spin[g.permutation]) >= 0)
    np.testing.assert_array_equal((HAND_G * HAND_GAUGE)[:, g.permutation], HAND_RELABELLED)


def test_hand_example_with_an_empty_group_drops_it():
    g = od.reduce(finite(HAND_G_EMPTY))
    np.testing.assert_array_equal(g.gauge, HAND_GAUGE)
    np.testing.assert_array_equal(g.f, HAND_F_EMPTY)
    np.testing.assert_array_equal(g.sizes, HAND_SIZES_EMPTY)
    assert members(g) == HAND_MEMBERS_EMPTY
    assert np.all(g.sizes > 0)


def test_hand_example_group_means_and_overlap_map():
    """Gauge = π rotation about x: (s_x, s_y, s_z) → (s_x, −s_y, −s_z) on spins with G1 = −1."""
    vectors = np.array([
        [0.1, 0.2, 0.3],
        [0.0, 0.6, -0.8],
        [0.5, -0.5, 0.5],
        [-0.3, 0.4, 0.0],
        [0.2, 0.1, -0.9],
        [0.0, 0.0, 1.0],
        [0.6, 0.0, 0.8],
        [0.0, -1.0, 0.0],
    ])
    g = od.reduce(finite(HAND_G))
    means = g.group_means(vectors)
    # Γ2 = {3 (gauge −), 4 (+), 7 (−)}:  x: (−0.3 + 0.2 + 0)/3;  y: (−0.4 + 0.1 + 1.0)/3;  z: (0 − 0.9 − 0)/3
    np.testing.assert_allclose(means[1], [-0.1 / 3, 0.7 / 3, -0.9 / 3], atol=1e-15)
    # Γ3 = {1 (−), 2 (+), 6 (−)}:  x: (0 + 0.5 + 0.6)/3;  y: (−0.6 − 0.5 − 0)/3;  z: (0.8 + 0.5 − 0.8)/3
    np.testing.assert_allclose(means[2], [1.1 / 3, -1.1 / 3, 0.5 / 3], atol=1e-15)
    np.testing.assert_allclose(means[0], vectors[0])  # Γ1 = {0}, gauge +
    np.testing.assert_allclose(means[3], vectors[5])  # Γ4 = {5}, gauge +
    # the map back to the overlaps: ξ_μ = (1/N_sp) Σ_j G[μ, j] s_z^j (in the original frame)
    xi_hand = HAND_G @ vectors[:, 2] / 8
    np.testing.assert_allclose(g.overlaps(means[:, 2]), xi_hand, atol=1e-15)
    # and the same initial state through the state classes
    np.testing.assert_allclose(od.BlochState(vectors).group_vectors(finite(HAND_G), g), means, atol=1e-15)


def test_pattern_states_in_the_hand_example():
    m = finite(HAND_G)
    g = od.reduce(m)
    for nu in (1, 2, 3):
        for sign in (1, -1):
            v = od.PatternState(nu, sign=sign).group_vectors(m, g)
            # every spin along sign·G[ν, j] ẑ; gauged: sign·G[ν, j]·G1[j] = sign·f[ν, k]
            np.testing.assert_array_equal(v[:, 2], sign * HAND_F[nu - 1])
            np.testing.assert_array_equal(v[:, :2], 0.0)
            xi = g.overlaps(v[:, 2])
            np.testing.assert_allclose(xi, sign * HAND_G @ HAND_G[nu - 1] / 8, atol=1e-15)
            assert xi[nu - 1] == sign * 1.0


@pytest.mark.parametrize("M, n_spins, seed", [(2, 9, 0), (3, 40, 1), (5, 64, 2), (6, 20, 3), (8, 500, 4)])
def test_random_patterns_match_literal_fig2_recipe(M, n_spins, seed):
    m = od.DickeModel(omega=0.5, omega_modes=np.arange(1, M + 1), n_spins=n_spins, seed=seed)
    gauge, groups = hand_gauge_and_groups(m.patterns)
    g = od.reduce(m)
    np.testing.assert_array_equal(g.gauge, gauge)
    np.testing.assert_array_equal(g.f, np.array([col for col, _ in groups]).T)
    np.testing.assert_array_equal(g.sizes, [len(js) for _, js in groups])
    assert members(g) == [set(js) for _, js in groups]
    assert g.sizes.sum() == n_spins and g.n_groups <= min(2 ** (M - 1), n_spins)
    # the gauged couplings of every spin are its group's column
    np.testing.assert_array_equal(m.patterns * gauge, g.f[:, g.group_of_spin])


@pytest.mark.parametrize("M", [1, 2, 3, 4, 5])
def test_thermodynamic_limit_is_ideal_f_with_equal_weights(M):
    m = od.DickeModel(omega=0.5, omega_modes=np.arange(1, M + 1))
    g = od.reduce(m)
    np.testing.assert_array_equal(g.f, ideal_f(M))
    np.testing.assert_allclose(g.weights, np.full(2 ** (M - 1), 1.0 / 2 ** (M - 1)), rtol=0, atol=1e-16)
    if M == 3:  # written out: pattern 2 ++--, pattern 3 +-+-
        np.testing.assert_array_equal(g.f, HAND_F)


def test_large_random_model_approaches_ideal_groups():
    """N_sp → ∞ with random patterns: every group occupied, fraction → 1/2^(M-1) (binomial spread)."""
    M, n = 4, 200_000
    g = od.reduce(od.paper_model(1.0, n_spins=n, seed=11))
    np.testing.assert_array_equal(g.f, ideal_f(M))
    p = 1 / 8
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.max(np.abs(g.weights - p)) < 5 * sigma


def test_m1_is_one_large_spin():
    pats = [[+1, -1, -1, +1, -1]]
    m = finite(pats)
    g = od.reduce(m)
    np.testing.assert_array_equal(g.f, [[1]])
    np.testing.assert_array_equal(g.sizes, [5])
    np.testing.assert_array_equal(g.gauge, pats[0])
    np.testing.assert_array_equal(g.group_of_spin, 0)
    assert od.reduce(od.DickeModel(omega=0.5, omega_modes=[1.5])).f.tolist() == [[1]]


# ------------------------------------------------------------------------------------------------------
# Dynamics: the reduced (groups) representation against our per-spin reference in the original frame.
# ------------------------------------------------------------------------------------------------------
TIGHT = dict(rtol=1e-12, atol=1e-14)
# Both sides integrate to rtol 1e-12 over ~100-300 steps (measured worst 5e-12); 1e-10 leaves a factor 20.
DYN_TOL = 1e-10


def _own_initial_vectors(m, rng):
    """Per-spin Bloch vectors in the original frame, built here from the definitions."""
    G = m.patterns
    n = m.n_spins
    out = {}
    nu = min(2, m.n_modes)
    v = np.zeros((n, 3))
    v[:, 2] = G[nu - 1]
    out[f"pattern {nu}"] = (od.PatternState(nu), v)
    v = np.zeros((n, 3))
    v[:, 2] = -G[0]
    out["-pattern 1"] = (od.PatternState(1, sign=-1), v)
    # explicit Bloch vectors with s_y ≠ 0 everywhere (in particular on spins with G1 = −1) and |s| < 1
    d = rng.normal(size=(n, 3))
    d[:, 1] += 2.0 * np.sign(rng.normal(size=n))
    d *= rng.uniform(0.3, 1.0, size=(n, 1)) / np.linalg.norm(d, axis=1, keepdims=True)
    out["bloch"] = (od.BlochState(d), d)
    return out


@pytest.mark.parametrize("M, n_spins, seed", [(3, 24, 7), (4, 40, 8), (1, 6, 9)])
def test_reduced_dynamics_matches_per_spin_reference(M, n_spins, seed, rng):
    m = od.DickeModel(omega=0.6, omega_modes=np.linspace(1.2, 2.4, M), kappa=np.linspace(0.7, 1.3, M),
                      g0=1.3, n_spins=n_spins, seed=seed)
    G = m.patterns
    starts = _own_initial_vectors(m, rng)
    states = [s for s, _ in starts.values()]
    vectors = [v for _, v in starts.values()]
    # package-generated per-spin states, checked for what they must be, then used as reference input
    corrupted = od.CorruptedPattern(M, flip=0.25, seed=3)
    cv = corrupted.spin_vectors(m)
    flipped = cv[:, 2] != G[M - 1]
    assert flipped.sum() == round(0.25 * n_spins)
    np.testing.assert_array_equal(cv[:, 2], np.where(flipped, -G[M - 1], G[M - 1]))
    np.testing.assert_array_equal(cv[:, :2], 0.0)
    random_state = od.RandomState(seed=4)
    rv = random_state.spin_vectors(m)
    np.testing.assert_allclose(np.linalg.norm(rv, axis=1), 1.0, atol=1e-14)
    states += [corrupted, random_state]
    vectors += [cv, rv]
    # a coherent boson start as well
    alpha0 = 0.3 * np.exp(1j * np.arange(M))
    states.append(od.PatternState(1, alpha=alpha0))
    v = np.zeros((n_spins, 3))
    v[:, 2] = G[0]
    vectors.append(v)

    times = np.linspace(0.0, 15.0, 16)
    ds = evolve(m, states, times=times, representation="groups", **TIGHT)
    assert ds.attrs["representation"] == "groups"
    assert bool(ds.success.all())
    gauge, groups = hand_gauge_and_groups(G)
    for i, (state, v0) in enumerate(zip(states, vectors)):
        a0 = alpha0 if i == len(states) - 1 else np.zeros(M)
        bloch, alpha, xi = reference_evolve(G, np.full(n_spins, 1 / n_spins), v0, a0, times, omega=m.omega,
                                            omega_modes=m.omega_modes, kappa=m.kappa, g0=m.g0)
        got = ds.isel(initial=i)
        np.testing.assert_allclose(got.overlap.values, xi, rtol=0, atol=DYN_TOL, err_msg=state.label())
        np.testing.assert_allclose(got.alpha.values, alpha, rtol=0, atol=DYN_TOL, err_msg=state.label())
        # group Bloch vectors = gauged (π about x) means of our per-spin vectors over each group
        gauged = bloch.copy()
        gauged[..., 1] *= gauge
        gauged[..., 2] *= gauge
        ref_groups = np.stack([gauged[:, js].mean(axis=1) for _, js in groups], axis=1)
        np.testing.assert_allclose(got.bloch.values, ref_groups, rtol=0, atol=DYN_TOL, err_msg=state.label())


def test_gauge_must_flip_s_y_too():
    """Only a π rotation about x (s_y and s_z flipped) reproduces the per-spin dynamics; a gauge that
    flips s_z alone gives a different trajectory, so the comparison above can tell them apart."""
    m = finite(HAND_G, g0=1.4)
    vectors = np.zeros((8, 3))
    vectors[:, 1] = 0.6
    vectors[:, 2] = 0.8 * HAND_G[1]  # near pattern 2, tilted towards +y in the ORIGINAL frame
    times = np.linspace(0.0, 5.0, 6)
    ds = evolve(m, od.BlochState(vectors), times=times, representation="groups", **TIGHT)
    _, _, xi_ref = reference_evolve(HAND_G, np.full(8, 1 / 8), vectors, np.zeros(3), times, omega=m.omega,
                                    omega_modes=m.omega_modes, kappa=m.kappa, g0=m.g0)
    np.testing.assert_allclose(ds.overlap.values, xi_ref, rtol=0, atol=DYN_TOL)
    # the wrong gauge (s_y kept): evolve its group vectors with our reference and see it differ
    wrong = vectors.copy()
    wrong[:, 2] *= HAND_GAUGE
    g = od.reduce(m)
    wrong_groups = np.stack([wrong[g.group_of_spin == k].mean(axis=0) for k in range(g.n_groups)])
    _, _, xi_wrong = reference_evolve(g.f, g.weights, wrong_groups, np.zeros(3), times, omega=m.omega,
                                      omega_modes=m.omega_modes, kappa=m.kappa, g0=m.g0)
    assert np.max(np.abs(xi_wrong - xi_ref)) > 1e-2
