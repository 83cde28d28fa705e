"""Normal-ordered polynomials and the Gaussian frame's generator engine, opendicke.quantum.normal_order.

The algebra is checked against matrix products of ladder operators built here, on a Fock basis large enough
for every product to be exact on the kept states. The Gaussian frame's generator and observables formed through
it are checked against the previous engine (sparse products on a padded basis) at several times, for one and
two modes, and the propagations of both engines against each other.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp

from opendicke import DickeModel
from opendicke.model import paper_model
from opendicke.quantum import build
from opendicke.quantum.gaussian import _FrameOperators, _trace, gaussian_frame, propagate_gaussian
from opendicke.quantum.normal_order import (KeptMatrices, NormalOrdered, add_sandwich, hermitian_part, pack_hermitian,
    pack_hermitian_part, unpack_hermitian)


def fock_states(n_modes: int, levels: int) -> np.ndarray:
    """Occupations with total ≤ levels, ordered by total (the kept states are a prefix of a larger basis)."""
    rows = [s for total in range(levels + 1)
            for s in itertools.product(range(total + 1), repeat=n_modes) if sum(s) == total]
    return np.array(rows, dtype=np.int64).reshape(-1, n_modes)


def ladder_matrices(states: np.ndarray) -> list[np.ndarray]:
    """Dense a_k on ``states`` (a_k|s⟩ = √s_k |s − e_k⟩), built directly."""
    index = {tuple(s): i for i, s in enumerate(states)}
    out = []
    for k in range(states.shape[1]):
        a = np.zeros((len(states),) * 2)
        for j, s in enumerate(states):
            if s[k] > 0:
                lower = list(s)
                lower[k] -= 1
                a[index[tuple(lower)], j] = math.sqrt(s[k])
        out.append(a)
    return out


@pytest.mark.parametrize("n_modes", [1, 2, 3])
def test_products_adjoint_and_quadratic_match_matrix_products(n_modes):
    degree, levels = 5, 4
    rng = np.random.default_rng(n_modes)
    alg = NormalOrdered(n_modes, degree)
    big = fock_states(n_modes, levels + degree + 1)
    a = ladder_matrices(big)
    v = a + [x.T for x in a]  # (a_1 … a_L, a_1† … a_L†)
    kept = KeptMatrices(alg, big, levels)
    d = kept.dim
    assert d == len(fock_states(n_modes, levels))

    def lin(ell):
        return sum(e * x for e, x in zip(ell, v))

    forms = [rng.normal(size=2 * n_modes) + 1j * rng.normal(size=2 * n_modes) for _ in range(degree)]
    poly, mat = alg.constant(1.0), np.eye(len(big))
    for ell in forms[:3]:
        poly, mat = alg.times(poly, ell), mat @ lin(ell)
    poly, mat = alg.left_times(forms[3], poly), lin(forms[3]) @ mat
    poly, mat = alg.adjoint(poly), mat.conj().T
    quad = np.outer(forms[0], forms[4])
    poly = poly + 0.5 * alg.quadratic(quad)
    mat = mat + 0.5 * lin(forms[0]) @ lin(forms[4])
    ref = mat[:d, :d]
    assert np.abs(kept.dense(poly) - ref).max() <= 1e-12 * np.abs(ref).max()
    # moments: tr(P O P ρ) of the same polynomial
    rho = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    assert abs(poly @ kept.moments(rho) - np.trace(ref @ rho)) <= 1e-11 * np.abs(ref).max() * np.abs(rho).sum()
    with pytest.raises(ValueError, match="degree"):
        for ell in forms + forms:
            poly = alg.times(poly, ell)


def test_sandwich_is_b_rho_b_dagger():
    rng = np.random.default_rng(3)
    d = 40
    B = sp.random(d, d, density=0.1, format="csr", random_state=4, dtype=float)
    B.data = B.data + 1j * rng.normal(size=B.nnz)
    rho = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    rho = rho + rho.conj().T
    out = np.ones((d, d), dtype=complex)
    add_sandwich(out, (B.indptr.astype(np.int64), B.indices.astype(np.int64), B.data), rho, 0.5)
    Bd = B.toarray()
    assert np.abs(out - (1 + 0.5 * Bd @ rho @ Bd.conj().T)).max() < 1e-12


@pytest.mark.parametrize("d", [1, 31, 32, 33, 70])
def test_hermitian_part_is_y_plus_y_dagger(d):
    """The tiled kernel (32 × 32 tiles) at sizes below, at and across a tile edge: exactly Y + Y†."""
    rng = np.random.default_rng(d)
    Y = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    expected = np.array([[Y[i, j] + np.conj(Y[j, i]) for j in range(d)] for i in range(d)])
    assert np.array_equal(hermitian_part(Y), expected)


@pytest.mark.parametrize("d", [1, 2, 33, 70])
def test_packed_hermitian_round_trip(d):
    """Packing keeps d² reals (even length, viewed as complex) and unpacks to the same Hermitian matrix."""
    rng = np.random.default_rng(d + 1)
    Y = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    H = Y + Y.conj().T
    packed = pack_hermitian_part(Y)
    assert packed.dtype == complex and 2 * packed.size in (d * d, d * d + 1)
    assert np.allclose(unpack_hermitian(packed, d), H, rtol=0, atol=1e-14)
    reals = packed.view(np.float64)
    assert np.array_equal(np.sort(reals[: d * d]), np.sort(np.concatenate(
        [H[np.triu_indices(d)].real, H[np.tril_indices(d, -1)].imag])))
    assert np.allclose(unpack_hermitian(pack_hermitian(H), d), H, rtol=0, atol=1e-14)


def test_eigen_frechet_derivative_matches_scipy():
    from scipy.linalg import expm_frechet

    problem = build(DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=1000, seed=1), 1, fock=2)
    frame = gaussian_frame(problem, 6.0)
    for t in (0.0, 1e-3, 2.0, 4.4, 5.9):
        n = 2 * frame.n_modes_total
        X, Xd = frame._spline(t).reshape(n, n), frame._spline(t, 1).reshape(n, n)
        S0, Sd0 = expm_frechet(X, Xd)
        S, Sd, S_inv = frame.symplectic_inverse(t)
        assert np.abs(S - S0).max() < 1e-13 * np.abs(S0).max()
        assert np.abs(Sd - Sd0).max() < 1e-12 * max(np.abs(Sd0).max(), 1.0)
        assert np.abs(S_inv @ S - np.eye(n)).max() < 1e-13


CASES = {
    "one mode": (DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=1000, seed=1), 10, 3),
    "two modes": (paper_model(1.0, n_modes=2, n_spins=3000, seed=1), 4, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_generator_and_observables_equal_the_padded_engine(case):
    model, levels, hp = CASES[case]
    problem = build(model, 1, fock=2)
    frame = gaussian_frame(problem, 3.0)
    fo = _FrameOperators(frame, levels, hp + 1, hp)
    fo_sq = _FrameOperators(frame, levels, 2 * hp + 1, hp)
    d = fo.dim
    rng = np.random.default_rng(0)
    A = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    rho = A @ A.conj().T
    rho /= np.trace(rho)
    for t in (0.0, 0.9, 2.7):
        (indptr, indices, data), jumps = fo.generator(t)
        K = sp.csr_matrix((data, indices, indptr), shape=(d, d)).toarray()
        K0, jumps0 = fo.generator_padded(t)
        assert np.abs(K - K0).max() <= 1e-13 * np.abs(K0).max()
        for (indptr, indices, data), B0 in zip(jumps, jumps0, strict=True):
            assert np.abs(sp.csr_matrix((data, indices, indptr), shape=B0.shape) - B0).max() < 1e-14
        s_frame, b_mean, n_mean, sq = fo.measure(t, rho, squares=True)
        spin, bos, sq0 = fo_sq.observables(t, squares=True)
        s0 = np.array([[np.real(_trace(op, rho)) for op in parts] for parts in spin])
        assert np.abs(s_frame - s0).max() < 1e-12 * max(np.abs(s0).max(), 1.0)
        assert np.abs(b_mean - [_trace(b, rho) for b, _ in bos]).max() < 1e-13
        assert np.abs(n_mean - [np.real(_trace(nb, rho)) for _, nb in bos]).max() < 1e-12
        assert set(sq) == set(sq0)
        for name, op in sq0.items():
            ref = _trace(op, rho)
            assert abs(sq[name] - ref) <= 1e-12 * abs(ref)


def test_propagation_equals_the_padded_engine():
    """Both engines integrate the same equation. With the same fixed steps (RK4, built here) the states agree to
    rounding; through the adaptive integrator the outputs agree to its tolerance (the step sequences differ
    from the first rounding difference on)."""
    problem = build(DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=1000, seed=1), 1, fock=2)
    frame = gaussian_frame(problem, 0.3)
    fo = _FrameOperators(frame, 6, 4, 3)
    d = fo.dim

    def rhs(generator, t, rho):
        K, jumps = generator(t)
        K = sp.csr_matrix((K[2], K[1], K[0]), shape=(d, d)) if isinstance(K, tuple) else K
        Y = K @ rho
        for B in jumps:
            B = sp.csr_matrix((B[2], B[1], B[0]), shape=(d, d)) if isinstance(B, tuple) else B
            Y += 0.5 * (B @ rho @ B.conj().T)
        return Y + Y.conj().T

    finals = []
    for generator in (fo.generator, fo.generator_padded):
        rho, h = np.zeros((d, d), dtype=complex), 2e-3
        rho[0, 0] = 1.0
        for step in range(100):
            t = step * h
            k1 = rhs(generator, t, rho)
            k2 = rhs(generator, t + h / 2, rho + h / 2 * k1)
            k3 = rhs(generator, t + h / 2, rho + h / 2 * k2)
            k4 = rhs(generator, t + h, rho + h * k3)
            rho = rho + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        finals.append(rho)
    assert np.abs(finals[0] - finals[1]).max() < 1e-13
    times = np.linspace(0.0, 0.3, 4)
    runs = [propagate_gaussian(problem, times, 6, frame=frame, rtol=1e-10, atol=1e-12, squares=True, engine=e)
            for e in ("normal", "padded")]
    for name, ref in runs[1].values.items():
        assert np.abs(runs[0].values[name] - ref).max() <= 1e-7 * np.abs(ref).max(), name
    with pytest.raises(ValueError, match="engine"):
        propagate_gaussian(problem, times, 6, frame=frame, engine="dense")


@pytest.mark.parametrize("modes, degree, levels", [(1, 5, 10), (2, 8, 12), (3, 6, 6)])
def test_compiled_entries_equal_the_lookup_loop(modes, degree, levels):
    """The compiled construction of the monomials' kept-state entries equals the per-monomial loop (kept as the
    fallback for grids too large to index), with and without a support mask, entry for entry."""
    from opendicke.quantum.gaussian import fock_basis
    from opendicke.quantum.normal_order import KeptMatrices, algebra

    alg = algebra(modes, degree)
    basis = fock_basis(modes, levels + 3)
    mask = np.random.default_rng(modes).random(alg.size) < 0.7
    for support in (None, mask):
        kept = KeptMatrices(alg, basis, levels, support=support)
        fast = kept._entries
        slow = kept._entries_by_lookup(np.ascontiguousarray(basis[: kept.dim]))
        assert fast[0].size > 0
        for a, b in zip(fast, slow):
            assert np.array_equal(a, b)
