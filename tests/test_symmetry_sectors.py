"""Symmetry sectors beyond parity (liouville.symmetry_basis) for M = 2.

References are built here, not from package code: the symmetry operators as numpy matrices (block swap by
transposing the identity's block axes, the Dicke flip |S_z = s⟩ ↦ |−s⟩ as an anti-diagonal, (−1)^n on a mode, the
mode exchange by transposing the mode axes), the polaron basis from ``qutip.displace`` with β_μ(m) from the
stationary cavity equation written out, and QuTiP's own ``liouvillian`` (dense eigenvalues).

Model: Ω = 0.5, κ = 1, g0 = 1; patterns "++++,++--" give blocks of 2 + 2 spins (f columns (1, 1) and (1, −1)):
U2 = (swap of the blocks) × (−1)^{n_2}; with Ω_1 = Ω_2, patterns "+++,++-" (blocks 2 + 1) have
X21 = (a_1 ↔ a_2) × (flip of the block ξ¹ξ² = −1) instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import qutip
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from opendicke import DickeModel
from opendicke.model import parse_patterns
from opendicke.quantum import build
from opendicke.quantum import liouville
from opendicke.quantum.liouville import extra_symmetries, parity_basis, sector_liouvillian, signed_permutation, symmetry_basis
from opendicke.quantum.metastability import FockCutoffWarning, _solve_one, lifetime, metastable_states, steady_state
from opendicke.quantum.polaron import polaron


def m2(patterns, omega_modes=(1.5, 2.0), g0=1.0):
    return DickeModel(omega=0.5, omega_modes=list(omega_modes), kappa=1.0, g0=g0, patterns=parse_patterns(patterns))


EQUAL_BLOCKS = "++++,++--"  # blocks 2 + 2
UNEQUAL_BLOCKS = "+++,++-"  # blocks 2 + 1


def matched_distance(a, b):
    D = np.abs(np.asarray(a)[:, None] - np.asarray(b)[None, :])
    r, c = linear_sum_assignment(D)
    return D[r, c].max()


def numpy_symmetry(sizes, levels, *, swap_blocks=False, flip_block=None, swap_modes=False, sign_mode=None):
    """The operator on Dicke(n_1 + 1) ⊗ Dicke(n_2 + 1) ⊗ Fock ⊗ Fock, written out (sparse): optional flip of one
    block (anti-diagonal) and (−1)^n on one mode, then the block swap and/or the mode exchange (the identity's
    factor axes transposed)."""
    dims = (sizes[0] + 1, sizes[1] + 1, levels, levels)
    d = int(np.prod(dims))
    ops = [sp.identity(n, format="csr") for n in dims]
    if flip_block is not None:
        ops[flip_block] = sp.csr_matrix(np.fliplr(np.eye(dims[flip_block])))
    if sign_mode is not None:
        ops[2 + sign_mode] = sp.diags((-1.0) ** np.arange(levels))
    U = sp.kron(sp.kron(ops[0], ops[1]), sp.kron(ops[2], ops[3]), format="csr")
    axes = [0, 1, 2, 3]
    if swap_blocks:
        axes[0], axes[1] = 1, 0
    if swap_modes:
        axes[2], axes[3] = 3, 2
    # |i⟩ ↦ |i with its factor indices permuted⟩: column i of T is e_j, j = the transposed position of i
    new_dims = tuple(dims[a] for a in axes)
    target = np.arange(d).reshape(new_dims).transpose(np.argsort(axes)).ravel()
    T = sp.csr_matrix((np.ones(d), (np.arange(d), target)), shape=(d, d)).T
    return (T @ U).toarray()


def polaron_unitary(model, plain, levels, big):
    """The displaced basis of tests/test_lifetime.py (qutip.displace per mode, β_μ(m) = c_μ x_μ(m) written out)."""
    from test_lifetime import _polaron_unitary_m2

    return _polaron_unitary_m2(model, plain, (levels, levels), big)


def as_matrix(perm, sign):
    U = np.zeros((len(perm), len(perm)))
    U[perm, np.arange(len(perm))] = sign
    return U


CASES = {
    "U2": dict(patterns=EQUAL_BLOCKS, omega_modes=(1.5, 2.0), numpy=dict(swap_blocks=True, sign_mode=1),
               mode_map=lambda a: [a[0], -a[1]]),
    "X21": dict(patterns=UNEQUAL_BLOCKS, omega_modes=(1.5, 1.5), numpy=dict(flip_block=1, swap_modes=True),
                mode_map=lambda a: [a[1], a[0]]),
}


@pytest.mark.parametrize("name", ["U2", "X21"])
def test_symmetry_commutes_with_h_and_maps_the_losses_plain_and_polaron(name):
    """U built with numpy commutes with H and maps a_μ ↦ s_μ a_σ(μ) (plain basis, 3 levels); the package's signed
    permutation is that matrix; in the polaron basis (qutip.displace in 20 levels) V†UV is the *same* signed
    permutation (the sign check of U|m, n⟩_P = Π s_μ^{n_μ}|m', σn⟩_P) and commutes with the polaron H and losses."""
    case = CASES[name]
    model = m2(case["patterns"], case["omega_modes"])
    levels, big = 3, 20
    plain = build(model, 1, fock=levels)
    sizes = [int(n) for n in plain.block_sizes]
    found = [s for s in extra_symmetries(plain) if s["name"] == name]
    assert len(found) == 1
    U = numpy_symmetry(sizes, levels, **case["numpy"])
    H = plain.hamiltonian.toarray()
    a = [c.toarray() for c in plain.collapse_operators]
    assert np.abs(U @ H @ U.T - H).max() < 1e-12
    mapped = case["mode_map"](a)
    for mu in range(2):
        assert np.abs(U @ a[mu] @ U.T - mapped[mu]).max() < 1e-12
    assert np.array_equal(as_matrix(*signed_permutation(plain, found[0])), U)
    # polaron basis: conjugate the big plain-basis U into the displaced basis built here
    pol = polaron(plain)
    V = polaron_unitary(model, build(model, 1, fock=big), levels, big)
    U_pol = V.conj().T @ numpy_symmetry(sizes, big, **case["numpy"]) @ V
    assert np.abs(U_pol - as_matrix(*signed_permutation(pol, found[0]))).max() < 1e-8
    Hp = pol.hamiltonian.toarray()
    assert np.abs(U_pol @ Hp @ U_pol.T - Hp).max() < 1e-8
    ap = case["mode_map"]([c.toarray() for c in pol.collapse_operators])
    for mu, c in enumerate(pol.collapse_operators):
        assert np.abs(U_pol @ c.toarray() @ U_pol.T - ap[mu]).max() < 1e-8
    # a wrong sign (U2 without (−1)^{n_2}; X21 with (−1)^{n_2}) is no symmetry: it fails both checks
    wrong = dict(case["numpy"])
    wrong["sign_mode"] = None if name == "U2" else 1
    W = numpy_symmetry(sizes, levels, **wrong)
    assert np.abs(W @ H @ W.T - H).max() > 1e-2
    W_pol = V.conj().T @ numpy_symmetry(sizes, big, **wrong) @ V
    assert np.abs(W_pol @ Hp @ W_pol.T - Hp).max() > 1e-2


_REFERENCES = {}


def _reference_spectrum(problem):
    key = (type(problem).__name__, repr(problem.model), tuple(problem.fock))
    if key not in _REFERENCES:
        _REFERENCES[key] = _dense_spectrum(problem)
    return _REFERENCES[key]


def _dense_spectrum(problem):
    dims = [list(problem.dims), list(problem.dims)]
    H = qutip.Qobj(problem.hamiltonian.toarray(), dims=dims)
    cops = [qutip.Qobj(c.toarray(), dims=dims) for c in problem.collapse_operators]
    return np.linalg.eigvals(qutip.liouvillian(H, cops).full())


@pytest.mark.parametrize("name,basis", [pytest.param("U2", "plain", marks=pytest.mark.slow), ("U2", "polaron"),
                                        ("X21", "polaron")])
def test_symmetry_sectors_rebuild_the_full_spectrum(name, basis):
    """Four sectors (P × one extra Z2) whose sizes sum to d², whose spectra together are QuTiP's dense Liouvillian
    spectrum (1e-8), with the stationary 0 only in the fully symmetric sector."""
    case = CASES[name]
    problem = build(m2(case["patterns"], case["omega_modes"]), 1, fock=2)
    if basis == "polaron":
        problem = polaron(problem)
    b = symmetry_basis(problem)
    assert b.symmetries == (name,)
    assert b.sectors == tuple(f"{p},{name}{s}" for s in "+-" for p in ("even", "odd"))
    assert sum(b.sector_size(s) for s in b.sectors) == problem.dim**2
    assert max(b.sector_size(s) for s in b.sectors) <= problem.dim**2 // 4 + problem.dim
    Q = b.Q.toarray()
    assert np.abs(Q.T @ Q - np.eye(problem.dim)).max() < 1e-14
    spectra = [np.linalg.eigvals(sector_liouvillian(b, s).toarray()) for s in b.sectors]
    assert matched_distance(np.concatenate(spectra), _reference_spectrum(problem)) < 1e-8
    assert np.min(np.abs(spectra[0])) < 1e-10 and min(np.min(np.abs(s)) for s in spectra[1:]) > 1e-4


def test_a_wrong_sign_of_the_symmetry_breaks_the_sector_spectra(monkeypatch):
    """Mutation: U2 without its sign (−1)^{n_2} (a plain block swap: an involution commuting with P, but no
    symmetry) gives sectors whose spectra are not the Liouvillian's."""
    problem = build(m2(EQUAL_BLOCKS), 1, fock=2)
    reference = _reference_spectrum(problem)
    original = liouville.signed_permutation
    monkeypatch.setattr(liouville, "signed_permutation",
                        lambda p, s: (original(p, s)[0], np.ones(p.dim, dtype=np.int64)))
    b = symmetry_basis(problem)
    assert b.symmetries == ("U2",)
    spectra = np.concatenate([np.linalg.eigvals(sector_liouvillian(b, s).toarray()) for s in b.sectors])
    assert matched_distance(spectra, reference) > 1e-3


def test_equal_blocks_and_equal_modes_give_a_non_abelian_group():
    """Blocks 2 + 2 and Ω_1 = Ω_2: U2 and X21 are both symmetries but do not commute; (U2 X21)² = P (dihedral group
    of order 8), all written with numpy. The basis uses the commuting pair P, U2."""
    model = m2(EQUAL_BLOCKS, (1.5, 1.5))
    problem = build(model, 1, fock=3)
    names = [s["name"] for s in extra_symmetries(problem)]
    assert set(names) == {"U2", "X21", "X21U2"}
    sizes, levels = [2, 2], 3
    U = numpy_symmetry(sizes, levels, swap_blocks=True, sign_mode=1)
    X = numpy_symmetry(sizes, levels, flip_block=1, swap_modes=True)
    H = problem.hamiltonian.toarray()
    for S in (U, X):
        assert np.abs(S @ H @ S.T - H).max() < 1e-12
    assert np.abs(U @ X - X @ U).max() > 0.5
    P = np.kron(np.kron(np.fliplr(np.eye(3)), np.fliplr(np.eye(3))),
                np.kron(np.diag((-1.0) ** np.arange(levels)), np.diag((-1.0) ** np.arange(levels))))
    assert np.array_equal((U @ X) @ (U @ X), P)
    assert symmetry_basis(problem).symmetries == ("U2",)


def test_m1_and_unequal_blocks_are_exactly_the_parity_basis():
    for problem in (build(DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=3, seed=0), 1, fock=5),
                    polaron(build(m2(UNEQUAL_BLOCKS), 1, fock=3))):
        assert extra_symmetries(problem) == []
        a, b = symmetry_basis(problem), parity_basis(problem)
        assert a.sectors == ("even", "odd") and a.symmetries == ()
        assert (a.Q != b.Q).nnz == 0 and np.array_equal(a.labels, b.labels)
    with pytest.raises(ValueError, match="symmetries"):
        symmetry_basis(problem, "all")


def test_lifetime_dataset_reports_symmetry_sectors_plain_basis():
    """Plain basis, blocks 2 + 2, 2 levels (assembled sectors, shift-invert): the gap with P × U2 equals the
    parity-only one (1e-10 relative); the parity labels keep their meaning beside the full sector labels."""
    model = m2(EQUAL_BLOCKS, g0=1.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        a = lifetime(model, fock=2, eigenvalues=3, symmetries="parity")
        b = lifetime(model, fock=2, eigenvalues=3)
    assert a.attrs["symmetries"] == "P" and b.attrs["symmetries"] == "P,U2" and a.attrs["operator"] == "sparse"
    assert b.attrs["sectors"] == ["even,U2+", "odd,U2+", "even,U2-", "odd,U2-"]
    assert sum(b.attrs["sector_sizes"]) == sum(a.attrs["sector_sizes"]) == 36**2
    assert abs(float(b.gap) / float(a.gap) - 1) < 1e-10
    assert list(a.eigenvalue_sector.values) == list(a.eigenvalue_symmetry_sector.values)
    parity = [s.split(",")[0] for s in b.eigenvalue_symmetry_sector.values]
    assert list(b.eigenvalue_sector.values) == parity and str(b.eigenvalue_symmetry_sector.values[0]) == "even,U2+"
    assert str(b.gap_sector.values) == str(a.gap_sector.values) == str(b.gap_symmetry_sector.values).split(",")[0]
    assert abs(float(b.occupation[1]) - float(a.occupation[1])) < 1e-10 and float(b.residual) < 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        st = steady_state(model, fock=2)
    assert st.attrs["symmetries"] == "P,U2" and abs(float(st.mx[0]) - float(a.mx[0])) < 1e-10


def test_prolonged_start_vector_of_a_symmetry_sector():
    """The cutoff search's start vector in a non-trivial sector ("odd,U2-"): the smaller cutoff's eigenmatrix, zero on
    the new levels, exactly (1e-14), in the new basis's sector."""
    from opendicke.quantum.metastability import _prolong

    model = m2(EQUAL_BLOCKS, g0=1.2)
    small = _solve_one(build(model, 1, fock=2), k=2, method="shift-invert", tau=None, need_left=False, max_memory=2**30)
    big = symmetry_basis(build(model, 1, fock=3))
    sector = "odd,U2-"
    v = _prolong(small, sector, big)
    assert v.shape == (big.sector_size(sector),)
    old = small["basis"]
    rho_small = old.to_problem_basis(old.full_matrix(small["pairs"][sector].vectors[:, 0], sector)).reshape(3, 3, 2, 2, 9, 4)
    rho_big = big.to_problem_basis(big.full_matrix(v, sector)).reshape(3, 3, 3, 3, 3, 3, 3, 3)
    np.testing.assert_allclose(rho_big[:, :, :2, :2][..., :2, :2].reshape(36, 36), rho_small.reshape(36, 36), atol=1e-14)
    assert abs(np.linalg.norm(rho_big) - np.linalg.norm(rho_small)) < 1e-14  # nothing on the new levels
    assert _prolong(small, "no such sector", big) is None


@pytest.mark.slow  # ≈ 10 s CPU (matrix-free Arnoldi on four sectors twice, left eigenvectors)
def test_lifetime_with_the_swap_equals_parity_only_and_builds_metastable_states_across_sectors():
    """M = 2, blocks 2 + 2, polaron basis, 2 levels, matrix-free Arnoldi: the gap with P × U2 equals the parity-only
    one (1e-10 relative) and every eigenvalue either reports is an eigenvalue of QuTiP's dense Liouvillian (1e-8);
    the stationary state sits in the fully symmetric sector. Metastable states from two slow modes that lie in
    *different* U2 sectors equal those from the parity-only run (where both are odd)."""
    model = m2(EQUAL_BLOCKS, g0=1.2)
    reference = _reference_spectrum(polaron(build(model, 1, fock=2)))
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        for sym in ("parity", "auto"):
            runs[sym] = lifetime(model, fock=2, eigenvalues=4, basis="polaron", symmetries=sym, metastable=False)
    a, b = runs["parity"], runs["auto"]
    assert a.attrs["symmetries"] == "P" and b.attrs["symmetries"] == "P,U2"
    assert b.attrs["operator"] == "matrix-free" and len(b.attrs["sector_sizes"]) == 4
    assert abs(float(b.gap) / float(a.gap) - 1) < 1e-10
    for ds in (a, b):
        z = ds.eigenvalue_real.values + 1j * ds.eigenvalue_imag.values
        assert max(np.min(np.abs(reference - x)) for x in z) < 1e-8
    assert str(b.eigenvalue_symmetry_sector.values[0]) == "even,U2+" and str(b.eigenvalue_sector.values[0]) == "even"
    assert str(b.gap_sector.values) == str(a.gap_sector.values) == "odd"
    # the two slowest decays: one in each U2 sector of the odd parity
    pol = polaron(build(model, 1, fock=2))
    kw = dict(k=4, method="auto", tau=None, need_left=True, max_memory=2**30)
    run_a, run_b = _solve_one(pol, symmetries="parity", **kw), _solve_one(pol, symmetries="auto", **kw)
    ms_a, ms_b = metastable_states(run_a, n_slow=2), metastable_states(run_b, n_slow=2)
    np.testing.assert_allclose(ms_a["slow"], ms_b["slow"], atol=1e-9)
    slow_sectors = {s for s, p in run_b["pairs"].items() for lam in ms_b["slow"] if np.min(np.abs(p.values - lam)) < 1e-9}
    assert slow_sectors == {"odd,U2+", "odd,U2-"}
    # the first two states (extremes along the slowest mode) agree; the third (greedy, along the second mode) is
    # one of two mirror images under U2 (ξ_2 → −ξ_2), equally far: compare |ξ| and the occupations
    for key in ("overlap", "occupation"):
        got = sorted(map(tuple, np.abs(np.round([o[key] for o in ms_b["observables"]], 8))))
        want = sorted(map(tuple, np.abs(np.round([o[key] for o in ms_a["observables"]], 8))))
        np.testing.assert_allclose(got, want, atol=1e-7)


def test_matrix_free_symmetry_reduced_product_matches_the_assembled_sectors():
    """The matrix-free operator of every sector (P × U2, blocks 2 + 2; P × X21, equal modes), with L, Lᵀ and L†,
    against the assembled sector Liouvillian (1e-12). P × U2 computes L(ρ) on 4 of the 9 spin configurations and
    copies the rest with the sector's characters; the exchange X21 moves Fock levels, so it uses the full product.
    Mutation: copies with the wrong character (χ = +1 everywhere) fail in the sectors where χ ≠ 1."""
    from opendicke.quantum.matrix_free import sector_operator

    rng = np.random.default_rng(5)
    for patterns, modes, rows in ((EQUAL_BLOCKS, (1.5, 2.0), 4), (UNEQUAL_BLOCKS, (1.5, 1.5), None)):
        problem = polaron(build(m2(patterns, modes, g0=1.2), 1, fock=3))
        b = symmetry_basis(problem)
        for sector in b.sectors:
            L = sector_liouvillian(b, sector)
            op = sector_operator(b, sector)
            assert (None if op.rows is None else len(op.rows)) == rows
            v = rng.standard_normal(L.shape[0]) + 1j * rng.standard_normal(L.shape[0])
            for got, want in ((op @ v, L @ v), (op.T @ v, L.T @ v), (op.H @ v, L.conj().T @ v)):
                assert np.abs(got - want).max() < 1e-12 * np.abs(want).max()
            if rows is not None and sector != b.sectors[0]:
                op._copies = [(1, perm, sign) for _, perm, sign in op._copies]
                assert np.abs(op @ v - L @ v).max() > 1e-3 * np.abs(L @ v).max()
