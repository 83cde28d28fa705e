"""Exact steady state, low Liouvillian spectrum and metastable states (opendicke.quantum.lifetime).

References are built here: QuTiP's own ``liouvillian``/``steadystate`` on the problem's QuTiP export (QuTiP's
complex, column-stacked superoperator, not our real parity-sector representation), dense ``numpy.linalg.eig``,
``scipy.sparse.linalg.eigs`` in shift-invert mode, the parity operator and the symmetry operators written out
with numpy, and the long-time master-equation dynamics with ``expm_multiply``.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import qutip
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from scipy.optimize import linear_sum_assignment

from opendicke import DickeModel
from opendicke.quantum import build
from opendicke.quantum.metastability import FockCutoffWarning, lifetime, stationary_density_matrix, steady_state
from opendicke.quantum.liouville import extra_symmetries, parity_basis, sector_liouvillian


def model_m1(n_spins, g0=1.0):
    return DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=g0, n_spins=n_spins, seed=0)


def model_m2(patterns=("+++", "++-")):
    from opendicke.model import parse_patterns

    return DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.0, patterns=parse_patterns(",".join(patterns)))


def matched_distance(a, b):
    D = np.abs(np.asarray(a)[:, None] - np.asarray(b)[None, :])
    r, c = linear_sum_assignment(D)
    return D[r, c].max()


def qutip_liouvillian(problem):
    q = problem.to_qutip()
    return q, qutip.liouvillian(q.hamiltonian, q.collapse_operators)


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize("model,fock", [(model_m1(3), 5), pytest.param(model_m2(), 3, marks=pytest.mark.slow)])
def test_parity_commutes_and_sectors_rebuild_the_spectrum(model, fock):
    problem = build(model, 1, fock=fock)
    # P written out: per block the flip |S_z = s> -> |-s>, per mode (-1)^n
    P = np.ones((1, 1))
    for n in problem.block_sizes:
        P = np.kron(P, np.fliplr(np.eye(int(n) + 1)))
    for c in problem.fock:
        P = np.kron(P, np.diag((-1.0) ** np.arange(c)))
    H = problem.hamiltonian.toarray()
    assert np.abs(P @ H @ P - H).max() < 1e-12
    for c in problem.collapse_operators:
        assert np.abs(P @ c.toarray() @ P + c.toarray()).max() < 1e-12
    basis = parity_basis(problem)
    sectors = [np.linalg.eigvals(sector_liouvillian(basis, s).toarray()) for s in ("even", "odd")]
    assert sum(len(s) for s in sectors) == problem.dim**2
    _, L = qutip_liouvillian(problem)
    reference = np.linalg.eigvals(L.full())
    assert matched_distance(np.concatenate(sectors), reference) < 1e-8
    # the stationary 0 sits in the even sector, the odd sector has none
    assert np.min(np.abs(sectors[0])) < 1e-10 and np.min(np.abs(sectors[1])) > 1e-4


def test_extra_symmetries_need_equal_groups_and_commute():
    # groups of sizes 2 and 2: flipping mode 2 and swapping the groups is a symmetry
    problem = build(model_m2(("++++", "++--")), 1, fock=3)
    found = extra_symmetries(problem)
    assert found == [{"name": "U2", "signs": [1, -1], "perm": [1, 0], "modes": [0, 1], "flips": [1, 1]}]
    assert list(problem.block_sizes) == [2, 2]
    d1, d2 = problem.block_sizes + 1
    c1, c2 = problem.fock
    dims = (d1, d2, c1, c2)
    # the operator: swap the two block factors, (-1)^n on mode 2
    U = np.eye(problem.dim).reshape(dims + dims).transpose(1, 0, 2, 3, 4, 5, 6, 7).reshape(problem.dim, problem.dim)
    U = U @ np.kron(np.eye(d1 * d2 * c1), np.diag((-1.0) ** np.arange(c2)))
    H = problem.hamiltonian.toarray()
    assert np.abs(U @ H @ U.T - H).max() < 1e-12
    for c in problem.collapse_operators:
        assert np.abs(U @ c.toarray() @ U.T - c.toarray()).max() < 1e-12 or np.abs(U @ c.toarray() @ U.T + c.toarray()).max() < 1e-12
    # unequal groups (1 and 3 spins): nothing beyond P
    assert extra_symmetries(build(model_m2(("++++", "+---")), 1, fock=3)) == []


# ----------------------------------------------------------------------------- steady state
@pytest.mark.parametrize("method", ["shift-invert", pytest.param("propagator", marks=pytest.mark.slow)])
@pytest.mark.parametrize("model,fock", [(model_m1(4), 10), pytest.param(model_m2(), 3, marks=pytest.mark.slow)])
def test_stationary_state_matches_qutip(model, fock, method):
    problem = build(model, 1, fock=fock)
    q = problem.to_qutip()
    reference = qutip.steadystate(q.hamiltonian, q.collapse_operators, method="direct").full()
    rho, residual = stationary_density_matrix(problem, method=method)
    assert residual < 1e-12
    assert abs(np.trace(rho) - 1) < 1e-12
    assert np.abs(rho - reference).max() < 1e-8


@pytest.mark.slow
def test_steady_state_dataset_and_cutoff_search():
    ds = steady_state(model_m1(4), tol=1e-6)
    assert ds.attrs["kind"] == "quantum_steady_state"
    assert bool(ds.fock_converged) and float(ds.fock_change) <= 1e-6
    assert float(ds.residual) < 1e-12 and abs(float(ds.trace) - 1) < 1e-12
    assert abs(float(ds.overlap.sel(pattern=1))) < 1e-12  # Z2 symmetric
    dist = ds.overlap_distribution.sel(pattern=1)
    assert abs(float(dist.sum()) - 1) < 1e-12
    np.testing.assert_allclose(dist.values, dist.values[::-1], atol=1e-12)
    xi = ds.overlap_value.values
    assert abs(float((dist * xi**2).sum()) - float(ds.overlap_second_moment.sel(pattern=1))) < 1e-12
    # the same observables from QuTiP at the chosen cutoff
    problem = build(model_m1(4), 1, fock=int(ds.fock[0]))
    q = problem.to_qutip()
    rho = qutip.steadystate(q.hamiltonian, q.collapse_operators, method="direct")
    assert abs(qutip.expect(q.observables["occupation_1"], rho) - float(ds.occupation[0])) < 1e-10
    assert abs(qutip.expect(q.observables["mx_1"], rho) - float(ds.mx[0])) < 1e-10


def test_too_small_cutoff_is_reported_and_too_large_problem_refused():
    with pytest.warns(FockCutoffWarning, match="top level"):
        ds = steady_state(model_m1(4), fock=4)
    assert not bool(ds.fock_converged)
    with pytest.raises(MemoryError, match="GiB"):
        lifetime(model_m1(200), fock=400)
    # a factorisation that would not fit: "auto" takes Arnoldi, an explicit shift-invert is refused
    from opendicke.quantum.metastability import AUTO_DIRECT_SIZE, _check_memory
    from opendicke.quantum.polaron import polaron

    big = polaron(build(model_m1(36), 1, fock=10))  # sector of 68 820 complex entries, LU estimate 9 GiB
    assert _check_memory(big, "auto", 3, 2 * 2**30)["method"] == "arnoldi"
    assert _check_memory(big, "shift-invert", 3, 64 * 2**30)["method"] == "shift-invert"
    with pytest.raises(MemoryError, match="GiB"):
        _check_memory(big, "shift-invert", 3, 2 * 2**30)
    # the plain basis: LU below AUTO_DIRECT_SIZE, Arnoldi above and whenever the LU would not fit
    plain = build(model_m1(8), 1, fock=30)  # 270 states, sector 36 720 real entries
    assert (plain.dim**2) // 2 > AUTO_DIRECT_SIZE and _check_memory(plain, "auto", 3, 2**30)["method"] == "arnoldi"
    assert _check_memory(plain.with_fock(10), "auto", 3, 2**30)["method"] == "shift-invert"
    assert _check_memory(plain.with_fock(10), "auto", 3, 0.02 * 2**30)["method"] == "arnoldi"  # LU ≈ 40 MB
    # nothing fits: refused before allocating, the message names the method and the size
    with pytest.raises(MemoryError, match=r"arnoldi.*complex entries"):
        _check_memory(polaron(build(model_m1(40), 1, fock=12)), "auto", 3, 0.2 * 2**30)


# ----------------------------------------------------------------------------- spectrum
@functools.lru_cache(maxsize=None)
def _qutip_low_spectrum(n_spins: int, fock: int):
    """QuTiP's Liouvillian of the plain problem: 8 eigenvalues nearest 0.01 (scipy shift-invert, by decreasing
    real part) and all of them (dense), computed once for every method tested against them."""
    _, L = qutip_liouvillian(build(model_m1(n_spins), 1, fock=fock))
    reference = sla.eigs(L.data.as_scipy().tocsc(), k=8, sigma=0.01, which="LM", return_eigenvectors=False)
    return reference[np.argsort(-reference.real)], np.linalg.eigvals(L.full())


@pytest.mark.parametrize("method", ["shift-invert", "arnoldi", pytest.param("propagator", marks=pytest.mark.slow)])
def test_low_spectrum_matches_qutip_shift_invert(method):
    model = model_m1(4)
    fock = 8
    reference, dense = _qutip_low_spectrum(4, fock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = lifetime(model, fock=fock, eigenvalues=4, method=method)
    ours = ds.eigenvalue_real.values + 1j * ds.eigenvalue_imag.values
    assert abs(ours[0]) < 1e-10 and ds.eigenvalue_sector.values[0] == "even"
    assert abs(float(ds.gap) + reference[1].real) < 1e-8
    assert str(ds.gap_sector.values) == "odd"
    # every eigenvalue we report is an eigenvalue of QuTiP's Liouvillian (nearest one within 1e-8)
    assert max(np.min(np.abs(dense - lam)) for lam in ours) < 1e-8
    assert np.max(ds.eigenvalue_residual.values) < 1e-9


def test_two_sided_rayleigh_quotient_is_second_order_and_resolves_a_tiny_eigenvalue():
    """A = Q T Q† (Q unitary, T upper triangular: non-normal) with one eigenvalue −1e-9 among others of size
    ~50 (a tiny gap among large entries, as λ₁ at N_sp = 40); its exact right eigenvector is Q e_0 and the left
    one comes from a triangular solve with T. Perturbed by 1e-7, the one-sided quotient v†Av is off by far more
    than the eigenvalue, the two-sided one by ~‖A‖ 1e-14, and its error estimate is of that order."""
    import scipy.linalg as sla_dense
    import scipy.sparse as sp

    from opendicke.quantum.metastability import two_sided_eigenvalue

    rng = np.random.default_rng(3)
    n = 60
    lam = np.concatenate([[-1e-9], -0.3 - 2 * rng.random(n - 1) + 50j * rng.standard_normal(n - 1)])
    T = np.diag(lam) + np.triu(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)), 1)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    A = Q @ T @ Q.conj().T
    right = Q[:, 0]
    y = np.zeros(n, dtype=complex)  # yᵀ T = λ₁ yᵀ, y_0 = 1: (T − λ₁)[1:, 1:]ᵀ y[1:] = −T[0, 1:]
    y[0] = 1.0
    y[1:] = sla_dense.solve_triangular((T - lam[0] * np.eye(n))[1:, 1:].T, -T[0, 1:], lower=True)
    left = np.conj(Q) @ y  # ℓᵀ A = yᵀ Q† A = yᵀ T Q† = λ₁ ℓᵀ
    assert np.linalg.norm(A.T @ left - lam[0] * left) < 1e-9 * np.linalg.norm(left)
    v = right + 1e-7 * rng.standard_normal(n)
    ell = left / np.linalg.norm(left) + 1e-7 * rng.standard_normal(n)
    info = two_sided_eigenvalue(sp.csr_matrix(A), v, ell, lam[1:])
    assert abs(info["one_sided"] - lam[0]) > 1e-8  # the one-sided quotient cannot resolve it
    assert abs(info["value"] - lam[0]) < 1e-11
    assert abs(info["value"] - lam[0]) <= info["error"] < 1e-7 and info["condition"] >= 1


def test_arnoldi_polaron_gap_matches_shift_invert_and_starts_from_the_smaller_cutoff():
    """The polaron basis at N_sp = 6: Arnoldi (with the two-sided gap) against the SuperLU shift-invert at the
    same cutoff, 1e-10 relative; the cutoff search's start vector is the smaller cutoff's eigenvector, padded."""
    from opendicke.quantum.metastability import _prolong, _solve_one
    from opendicke.quantum.polaron import polaron

    model = model_m1(6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        a = lifetime(model, fock=8, eigenvalues=3, basis="polaron", method="arnoldi")
        b = lifetime(model, fock=8, eigenvalues=3, basis="polaron", method="shift-invert")
    assert a.attrs["method"] == "arnoldi" and b.attrs["method"] == "shift-invert"
    assert abs(float(a.gap) / float(b.gap) - 1) < 1e-10
    assert float(a.gap_error) < 1e-12 * float(a.gap) and float(a.gap_left_residual) < 1e-9
    np.testing.assert_allclose(sorted(a.metastable_overlap.values.ravel()), sorted(b.metastable_overlap.values.ravel()),
                               atol=1e-9)
    small = _solve_one(polaron(build(model, 1, fock=4)), k=2, method="shift-invert", tau=None, need_left=False,
                       max_memory=2**30)
    big_basis = parity_basis(polaron(build(model, 1, fock=6)))
    v = _prolong(small, "even", big_basis)
    rho_small = small["basis"].to_problem_basis(small["basis"].full_matrix(small["pairs"]["even"].vectors[:, 0], "even"))
    rho_big = big_basis.to_problem_basis(big_basis.full_matrix(v, "even")).reshape(7, 6, 7, 6)
    np.testing.assert_allclose(rho_big[:, :4, :, :4].reshape(28, 28), rho_small, atol=1e-14)
    assert np.abs(rho_big[:, 4:]).max() < 1e-14 and np.abs(rho_big[:, :, :, 4:]).max() < 1e-14


@pytest.mark.slow
def test_metastable_states_match_dense_construction():
    model = model_m1(4)
    fock = 8
    problem = build(model, 1, fock=fock)
    q, L = qutip_liouvillian(problem)
    d = problem.dim
    Ld = L.full()
    w, V = np.linalg.eig(Ld)
    wl, W = np.linalg.eig(Ld.conj().T)
    i1 = np.argsort(-w.real)[1]
    j1 = np.argmin(np.abs(wl.conj() - w[i1]))
    R = V[:, i1].reshape(d, d, order="F")  # QuTiP stacks columns
    O = W[:, j1].reshape(d, d, order="F").conj().T  # tr(O ρ) = ℓ† vec(ρ)
    R = R + R.conj().T if np.linalg.norm(R + R.conj().T) > np.linalg.norm(R - R.conj().T) else 1j * (R - R.conj().T)
    O = O + O.conj().T if np.linalg.norm(O + O.conj().T) > np.linalg.norm(O - O.conj().T) else 1j * (O - O.conj().T)
    O = O / np.trace(O @ R)
    c = np.linalg.eigvalsh(0.5 * (O + O.conj().T))
    xi = q.observables["overlap_1"].full()
    expected = sorted([c[0] * np.trace(xi @ R).real, c[-1] * np.trace(xi @ R).real])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = lifetime(model, fock=fock, eigenvalues=3)
    assert int(ds.n_slow) == 1
    got = sorted(ds.metastable_overlap.sel(pattern=1).values)
    np.testing.assert_allclose(got, expected, atol=1e-8)
    assert got[1] > 0.8  # a retrieved state, not the symmetric mixture
    # their occupations are the stationary one (the slow mode is odd, the occupation even)
    np.testing.assert_allclose(ds.metastable_occupation.values[:, 0], float(ds.occupation[0]), atol=1e-10)
    # their smallest eigenvalues, from the dense stationary state ρ_ss + c± R (positive only up to corrections of
    # the order of the gap ratio |λ₁/λ₂| for the Macieszczak states)
    i0 = np.argmin(np.abs(w))
    rho_ss = V[:, i0].reshape(d, d, order="F")
    rho_ss = rho_ss / np.trace(rho_ss)
    rho_ss = 0.5 * (rho_ss + rho_ss.conj().T)
    low = sorted(np.linalg.eigvalsh(rho_ss + x * R)[0] for x in (c[0], c[-1]))
    np.testing.assert_allclose(sorted(ds.metastable_min_eigenvalue.values), low, atol=1e-8)
    assert min(low) > -0.1


@pytest.mark.slow
def test_gap_is_the_decay_rate_of_the_overlap_in_long_dynamics():
    """Independent check: the master equation from the pattern start (QuTiP's Liouvillian, expm_multiply)
    loses ⟨ξ⟩ at long times at the rate the gap says."""
    model = model_m1(4)
    fock = 8
    problem = build(model, 1, fock=fock)
    q, L = qutip_liouvillian(problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = lifetime(model, fock=fock, eigenvalues=3)
    times = np.array([0.0, 40.0, 80.0, 120.0])
    rho0 = q.rho0.full().ravel(order="F")
    states = sla.expm_multiply(L.data.as_scipy().tocsc(), rho0, start=0, stop=120, num=4, endpoint=True)
    xi = q.observables["overlap_1"].full()
    values = [np.real(np.trace(xi @ s.reshape(problem.dim, problem.dim, order="F"))) for s in states]
    assert values[0] == pytest.approx(1.0)
    rates = -np.diff(np.log(values[1:])) / 40.0
    np.testing.assert_allclose(rates, float(ds.gap), rtol=1e-6)


# ----------------------------------------------------------------------------- CLI
def test_cli_lifetime_json_and_bad_input():
    import json

    from typer.testing import CliRunner

    from opendicke.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["lifetime", "--omega-modes", "1.5", "--g0", "1", "--n-spins", "4", "--fock", "12", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(record) == {"eigenvalues", "gap", "lifetime", "fock", "residuals", "metastable_overlaps", "sectors"}
    assert record["sectors"][:2] == ["even", "odd"] and len(record["sectors"]) == len(record["eigenvalues"])
    eig = np.array(record["eigenvalues"])
    assert abs(eig[0, 0]) < 1e-10 and np.all(np.diff(eig[:, 0]) <= 1e-12)
    assert record["gap"] == pytest.approx(-eig[1, 0]) and record["lifetime"] == pytest.approx(1 / record["gap"])
    assert record["fock"] == [12] and max(record["residuals"]) < 1e-9
    assert sorted(np.ravel(record["metastable_overlaps"]))[1] > 0.8
    # the polaron basis: same contract, the same gap with 10 fluctuation levels (measured relative difference 5e-6)
    result = runner.invoke(app, ["lifetime", "--omega-modes", "1.5", "--g0", "1", "--n-spins", "4", "--fock", "10",
                                 "--basis", "polaron", "--json"])
    assert result.exit_code == 0, result.output
    polaron_record = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(polaron_record) == set(record) and polaron_record["fock"] == [10]
    assert polaron_record["gap"] == pytest.approx(record["gap"], rel=1e-4)
    assert runner.invoke(app, ["lifetime", "--n-spins", "4", "--basis", "fock"]).exit_code == 2
    # --basis auto (the default) takes the polaron basis from N_sp = 8 on; --method arnoldi; the --vary table
    result = runner.invoke(app, ["lifetime", "--omega-modes", "1.5", "--g0", "1", "--vary", "n_spins=4,8", "--fock", "8",
                                 "--method", "arnoldi"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "arnoldi" in line]
    assert len(rows) == 2 and "plain" in rows[0] and "polaron" in rows[1]
    # too small a cutoff: reported on stderr, not silently used
    result = runner.invoke(app, ["lifetime", "--omega-modes", "1.5", "--n-spins", "4", "--fock", "4", "--json"])
    assert result.exit_code == 0 and "top level" in result.stderr
    # too large a problem: refused before allocating, with the memory it needs
    result = runner.invoke(app, ["lifetime", "--omega-modes", "1.5", "--n-spins", "200", "--fock", "300"])
    assert result.exit_code == 2 and "GiB" in result.stderr


# ----------------------------------------------------------------------------- polaron basis
def _polaron_unitary(problem, levels, big):
    """Columns |m> ⊗ D(β_m)|n>, n < levels, in a plain Fock space of `big` levels; β_m from the stationary
    cavity equation 0 = −(iΩ_1 + κ/2)β − i (g0/√N) x(m), written out here (M = 1, one block)."""
    model = problem.model
    N = model.n_spins
    x = N - 2.0 * np.arange(N + 1)  # Σ_j σ_z^j of the Dicke states, S_z = +N first
    beta = -1j * (model.g0 / np.sqrt(N)) * x / (1j * model.omega_modes[0] + 0.5 * model.kappa[0])
    cols = []
    for i in range(N + 1):
        D = qutip.displace(big, beta[i]).full()
        for n in range(levels):
            cols.append(np.kron(np.eye(N + 1)[i], D[:, n]))
    return np.array(cols).T


def test_polaron_operators_are_the_plain_ones_displaced():
    from opendicke.quantum.polaron import polaron

    model = model_m1(3)
    levels, big = 7, 60
    pol = polaron(build(model, 1, fock=levels))
    q = build(model, 1, fock=big).to_qutip()
    U = _polaron_unitary(pol.base, levels, big)
    assert np.abs(U.conj().T @ U - np.eye(U.shape[1])).max() < 1e-12
    assert np.abs(U.conj().T @ q.hamiltonian.full() @ U - pol.hamiltonian.toarray()).max() < 1e-10
    assert np.abs(U.conj().T @ q.collapse_operators[0].full() @ U - pol.collapse_operators[0].toarray()).max() < 1e-10
    sx = q.observables["mx_1"].full() * 3
    assert np.abs(U.conj().T @ sx @ U - pol.group_spin("x", 0).toarray()).max() < 1e-10
    # parity: the plain P (flip ⊗ (−1)^n) commutes with H and anticommutes with a in the polaron basis too
    P = np.kron(np.fliplr(np.eye(4)), np.diag((-1.0) ** np.arange(levels)))
    H, a = pol.hamiltonian.toarray(), pol.destroy(0).toarray()
    assert np.abs(H.imag).max() > 1e-3  # complex: the sectors need the complex representation
    assert np.abs(P @ H @ P - H).max() < 1e-12 and np.abs(P @ a @ P + a).max() < 1e-12


def test_polaron_sectors_rebuild_the_spectrum():
    from opendicke.quantum.polaron import polaron

    pol = polaron(build(model_m1(2), 1, fock=4))
    basis = parity_basis(pol)
    assert not basis.is_real
    sectors = [np.linalg.eigvals(sector_liouvillian(basis, s).toarray()) for s in ("even", "odd")]
    dims = [[3, 4], [3, 4]]
    L = qutip.liouvillian(qutip.Qobj(pol.hamiltonian.toarray(), dims=dims),
                          [qutip.Qobj(c.toarray(), dims=dims) for c in pol.collapse_operators])
    assert matched_distance(np.concatenate(sectors), np.linalg.eigvals(L.full())) < 1e-8


@pytest.mark.slow  # 100+ s of CPU (QuTiP plain-basis reference at converged cutoffs)
def test_polaron_gap_and_steady_state_match_qutip_plain_basis():
    """At converged cutoffs the polaron basis (14 fluctuation levels) and QuTiP's plain-basis Liouvillian
    (30 Fock levels) give the same gap and stationary observables (measured: 9e-10 and 2e-10)."""
    model = model_m1(2)
    problem = build(model, 1, fock=30)
    q, L = qutip_liouvillian(problem)
    rho = qutip.steadystate(q.hamiltonian, q.collapse_operators, method="direct")
    ref = sla.eigs(L.data.as_scipy().tocsc(), k=3, sigma=0.01, which="LM", return_eigenvectors=False)
    ref_gap = -sorted(ref.real)[-2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = lifetime(model, fock=14, eigenvalues=3, basis="polaron")
    assert ds.attrs["basis"] == "polaron" and float(ds.residual) < 1e-12
    assert abs(float(ds.gap) - ref_gap) < 1e-8
    assert abs(float(ds.occupation[0]) - qutip.expect(q.observables["occupation_1"], rho)) < 1e-8
    assert abs(float(ds.mx[0]) - qutip.expect(q.observables["mx_1"], rho)) < 1e-8
    assert abs(float(ds.overlap_second_moment[0]) - qutip.expect(q.observables["overlap_1"] ** 2, rho)) < 1e-8
    assert abs(float(ds.trace) - 1) < 1e-12 and np.max(ds.eigenvalue_residual.values) < 1e-9


@pytest.mark.slow
def test_polaron_metastable_states_match_plain_basis():
    """N_sp = 4 at converged cutoffs (polaron 14, plain 26): same gap, stationary occupation and extreme
    metastable overlaps (measured: 1.5e-9 and 1e-9)."""
    model = model_m1(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        pol = lifetime(model, fock=14, eigenvalues=3, basis="polaron")
        plain = lifetime(model, fock=26, eigenvalues=3)
    assert abs(float(pol.gap) - float(plain.gap)) < 1e-8
    assert abs(float(pol.occupation[0]) - float(plain.occupation[0])) < 1e-8
    np.testing.assert_allclose(sorted(pol.metastable_overlap.values.ravel()),
                               sorted(plain.metastable_overlap.values.ravel()), atol=1e-7)


def _polaron_unitary_m2(model, plain, levels, big):
    """Columns |m⟩ ⊗ qutip.displace(β_1(m))|n_1⟩ ⊗ qutip.displace(β_2(m))|n_2⟩ for two blocks and two modes, in
    ``big`` plain levels per mode, with β_μ(m) = c_μ x_μ(m) from the stationary cavity equation written out here."""
    f, sizes, N = plain.block_f, [int(n) for n in plain.block_sizes], model.n_spins  # f: (M, R) gauged couplings
    c = [-1j * (model.g0 / np.sqrt(N)) / (1j * w + 0.5 * k) for w, k in zip(model.omega_modes, model.kappa)]
    cols = []
    for i1 in range(sizes[0] + 1):
        for i2 in range(sizes[1] + 1):
            s = np.array([sizes[0] - 2 * i1, sizes[1] - 2 * i2], dtype=float)
            spin = np.kron(np.eye(sizes[0] + 1)[i1], np.eye(sizes[1] + 1)[i2])
            D = [qutip.displace(big, c[mu] * (f[mu] @ s)).full() for mu in range(2)]
            for n1 in range(levels[0]):
                for n2 in range(levels[1]):
                    cols.append(np.kron(spin, np.kron(D[0][:, n1], D[1][:, n2])))
    return np.array(cols).T


def test_polaron_operators_two_modes_two_blocks():
    """M = 2, blocks of 2 and 1 spins: every β_μ(m) = c_μ x_μ(m) written out here, the basis built with
    qutip.displace per mode in 20 levels each, H and the losses conjugated into it."""
    from opendicke.quantum.polaron import polaron

    model = model_m2()
    levels, big = 3, 20
    base = build(model, 1, fock=levels)
    pol = polaron(base)
    plain = build(model, 1, fock=big)
    assert [int(n) for n in plain.block_sizes] == [2, 1]
    U = _polaron_unitary_m2(model, plain, (levels, levels), big)
    assert np.abs(U.conj().T @ U - np.eye(U.shape[1])).max() < 1e-10
    H = plain.hamiltonian
    assert np.abs(U.conj().T @ (H @ U) - pol.hamiltonian.toarray()).max() < 1e-8
    for a_plain, a_pol in zip(plain.collapse_operators, pol.collapse_operators):
        assert np.abs(U.conj().T @ (a_plain @ U) - a_pol.toarray()).max() < 1e-8


# ----------------------------------------------------------------------------- matrix-free polaron sectors
def _model_m2_unequal():
    """M = 2, blocks of 2 and 1 spins, unequal cutoffs and loss rates (every coefficient of K distinct)."""
    from opendicke.model import parse_patterns

    return DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=[1.0, 0.7], g0=1.2,
                      patterns=parse_patterns("+++,++-"))


def _mismatch(op, L, v):
    """Largest relative deviation of L, Lᵀ and L† applied to v, operator against assembled matrix."""
    pairs = ((op @ v, L @ v), (op.T @ v, L.T @ v), (op.H @ v, L.conj().T @ v))
    return max(np.abs(a - b).max() / np.abs(b).max() for a, b in pairs)


@pytest.mark.parametrize("case", ["m1", "m2"])
def test_matrix_free_sector_operator_matches_the_assembled_one(case):
    """L, its transpose and adjoint applied matrix-free (products of d × d matrices with the displacement of each
    mode as its own factor) against the assembled sparse sector Liouvillian, both parity sectors, to 1e-12."""
    from opendicke.quantum.matrix_free import sector_operator
    from opendicke.quantum.polaron import polaron

    problem = (polaron(build(model_m1(3, g0=1.2), 1, fock=5)) if case == "m1"
               else polaron(build(_model_m2_unequal(), 1, fock=(3, 4))))
    basis = parity_basis(problem)
    rng = np.random.default_rng(7)
    for sector in ("even", "odd"):
        L = sector_liouvillian(basis, sector)
        op = sector_operator(basis, sector)
        assert op.shape == L.shape
        v = rng.standard_normal(L.shape[0]) + 1j * rng.standard_normal(L.shape[0])
        assert _mismatch(op, L, v) < 1e-12


def test_matrix_free_operator_catches_a_wrong_displacement_sign_and_a_dropped_coherent_loss():
    """The comparison above can fail: a spin flip displaced the wrong way, and the coherent part of the displaced
    loss (−½κ(β* b + β b†) in K) left out, each give O(1) deviations from the assembled Liouvillian."""
    from opendicke.quantum import matrix_free
    from opendicke.quantum.matrix_free import PolaronGenerator, _Structured, sector_operator
    from opendicke.quantum.polaron import displacement_matrix, polaron

    problem = polaron(build(_model_m2_unequal(), 1, fock=(3, 4)))
    basis = parity_basis(problem)
    L = sector_liouvillian(basis, "odd")
    v = np.random.default_rng(3).standard_normal(L.shape[0]) + 0j
    assert _mismatch(sector_operator(basis, "odd"), L, v) < 1e-12
    # 1. wrong sign of the displacement in every spin flip
    original = matrix_free.displacement_matrix
    try:
        matrix_free.displacement_matrix = lambda levels, gamma: displacement_matrix(levels, -gamma)
        wrong = PolaronGenerator(problem)
    finally:
        matrix_free.displacement_matrix = original
    assert _mismatch(sector_operator(basis, "odd", wrong), L, v) > 1e-3
    # 2. the coherent part of the displaced loss dropped from K (and K†)
    gen = PolaronGenerator(problem)
    K = gen.K
    kappa = np.asarray(problem.model.kappa)
    beta = problem.displacements
    lower = [u + 0.5 * kappa[mu] * np.conj(beta[mu]) for mu, u in enumerate(K.lower)]
    upper = [v_ + 0.5 * kappa[mu] * beta[mu] for mu, v_ in enumerate(K.upper)]
    gen.K = _Structured(K.spin_dim, K.fock, K.c0, lower, upper, K.number, K.flips)
    gen.Kh = gen.K.adjoint()
    assert _mismatch(sector_operator(basis, "odd", gen), L, v) > 1e-3


@functools.lru_cache(maxsize=1)
def _qutip_displaced_m2(levels=(2, 3), big=24):
    """QuTiP's ``liouvillian`` and ``steadystate`` of the plain M = 2 operators (blocks 2 + 1) conjugated into a
    polaron basis built here (|m⟩ ⊗ qutip.displace(β_μ(m))|n_μ⟩ in ``big`` levels per mode): dense eigenvalues
    sorted by decreasing real part, the stationary ρ (polaron basis) and the occupations tr(a_μ†a_μ ρ)/N_sp."""
    model = _model_m2_unequal()
    plain = build(model, 1, fock=big)
    U = _polaron_unitary_m2(model, plain, levels, big)
    H = qutip.Qobj(sp.csr_matrix(U.conj().T @ (plain.hamiltonian @ U)))
    a = [U.conj().T @ (op @ U) for op in plain.collapse_operators]  # √κ_μ a_μ
    cops = [qutip.Qobj(sp.csr_matrix(x)) for x in a]
    Lq = sp.csc_matrix(qutip.liouvillian(H, cops).data.as_scipy())
    ref = np.linalg.eigvals(Lq.toarray())  # 1 296 × 1 296, dense
    rho = qutip.steadystate(H, cops).full()
    occ = [np.real(np.trace(x.conj().T @ x @ rho)) / k / model.n_spins for x, k in zip(a, model.kappa)]
    return ref[np.argsort(-ref.real)], rho, np.array(occ)


@pytest.mark.parametrize("method", ["davidson", "arnoldi"])
def test_matrix_free_m2_spectrum_matches_qutip_displaced_liouvillian(method):
    """M = 2 (blocks of 2 + 1 spins), polaron basis at (2, 3) fluctuation levels: the gap and every eigenvalue
    that ``lifetime`` reports with the matrix-free operator (preconditioned Davidson, the default, and ARPACK's
    Arnoldi) against QuTiP's ``liouvillian`` of the plain operators conjugated into a displaced basis built in the
    test, dense eigenvalues, to 1e-8; the stationary occupations against ``qutip.steadystate`` of the same."""
    ref, _, occ = _qutip_displaced_m2()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = lifetime(_model_m2_unequal(), fock=(2, 3), eigenvalues=4, basis="polaron", metastable=False,
                      method="auto" if method == "davidson" else method)
    assert ds.attrs["operator"] == "matrix-free" and ds.attrs["method"] == method
    assert float(ds.gap) == pytest.approx(-ref[1].real, abs=1e-8)
    got = ds.eigenvalue_real.values + 1j * ds.eigenvalue_imag.values
    # the 8 reported eigenvalues (4 per sector) are eigenvalues of the full Liouvillian
    assert max(np.min(np.abs(ref - z)) for z in got) < 1e-8
    assert float(np.max(ds.eigenvalue_residual)) < 1e-9
    np.testing.assert_allclose(ds.occupation.values, occ, atol=1e-8)
    assert float(ds.residual) < 1e-9


def test_davidson_steady_state_m2_matches_qutip_and_has_a_small_residual():
    """steady_state with the matrix-free Davidson (M = 2, polaron): occupations against qutip.steadystate of the
    displaced operators built in the test (1e-8), trace 1, residual ‖Lx‖/‖x‖ < 1e-9."""
    _, _, occ = _qutip_displaced_m2()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = steady_state(_model_m2_unequal(), fock=(2, 3), basis="polaron")
    assert ds.attrs["method"] == "davidson"
    np.testing.assert_allclose(ds.occupation.values, occ, atol=1e-8)
    assert float(ds.residual) < 1e-9 and abs(float(ds.trace) - 1) < 1e-12


def _assembled_liouvillian(problem):
    """The full complex Liouvillian on vec(ρ) (row-major) of a problem's H and jumps, written out with kron."""
    d = problem.dim
    eye = sp.identity(d, format="csr")
    H = problem.hamiltonian
    L = -1j * (sp.kron(H, eye) - sp.kron(eye, H.T))
    for c in problem.collapse_operators:
        n = c.getH() @ c
        L = L + sp.kron(c, c.conj()) - 0.5 * (sp.kron(n, eye) + sp.kron(eye, n.T))
    return L.tocoo()


def _split_spin_diagonal(problem, coarse_quanta=None):
    """From the assembled Liouvillian: D = the entries that keep both spin configurations of ρ's block (m, m')
    (mask on the assembled matrix), plus, with ``coarse_quanta``, the other entries (spin flips) whose row and
    column both have at most that many total quanta Σ_μ (n_μ + n'_μ)."""
    L = _assembled_liouvillian(problem)
    d = problem.dim
    F = int(np.prod(problem.fock))
    quanta = np.indices(problem.fock).reshape(len(problem.fock), -1).sum(axis=0)

    def spins(idx):
        return idx // d // F, idx % d // F

    def total(idx):
        return quanta[idx // d % F] + quanta[idx % d % F]

    (r1, r2), (c1, c2) = spins(L.row), spins(L.col)
    keep = (r1 == c1) & (r2 == c2)
    if coarse_quanta is not None:
        keep |= (total(L.row) <= coarse_quanta) & (total(L.col) <= coarse_quanta)
    return sp.csr_matrix((L.data[keep], (L.row[keep], L.col[keep])), shape=L.shape), L


@pytest.mark.parametrize("coarse", [None, 0, 2])
def test_spin_diagonal_solve_is_exact_against_a_sparse_direct_solve(coarse):
    """(D − σ)⁻¹ by back-substitution over the total quanta (and (D† − σ)⁻¹ by forward substitution), with the
    spin flips of the levels T ≤ ``coarse`` included, against scipy's spsolve of the same operator masked out of
    the assembled Liouvillian (M = 2, blocks 2 + 1, cutoffs (3, 4), κ = (1, 0.7)), 1e-12; and as the sector
    preconditioner (parity sectors map to themselves)."""
    from opendicke.quantum.matrix_free import PolaronGenerator, SpinDiagonalSolver, sector_operator
    from opendicke.quantum.polaron import polaron

    problem = polaron(build(_model_m2_unequal(), 1, fock=(3, 4)))
    d = problem.dim
    Dm, _ = _split_spin_diagonal(problem, coarse)
    gen = PolaronGenerator(problem)
    solver = SpinDiagonalSolver(gen, coarse)
    rng = np.random.default_rng(5)
    R = rng.standard_normal((d, d)) + 1j * rng.standard_normal((d, d))
    sigma = 0.05
    eye = sp.identity(d * d, format="csc")
    for adjoint in (False, True):
        A = (Dm.conj().T if adjoint else Dm) - sigma * eye
        ref = sla.spsolve(A.tocsc(), R.ravel())
        got = solver.solve(R, sigma, adjoint=adjoint).ravel()
        assert np.abs(got - ref).max() < 1e-12 * np.abs(ref).max()
    if coarse is None:
        assert np.abs(solver.apply(R).ravel() - Dm @ R.ravel()).max() < 1e-12 * np.abs(Dm @ R.ravel()).max()
    # the sector preconditioner: (D − σ) applied to its output gives back the input sector vector
    basis = parity_basis(problem)
    for sector in ("even", "odd"):
        op = sector_operator(basis, sector, gen)
        v = rng.standard_normal(op.shape[0]) + 1j * rng.standard_normal(op.shape[0])
        y = op.preconditioner(sigma, coarse_quanta=coarse)(v)
        back = ((Dm - sigma * eye) @ op._to_rho(y).ravel()).reshape(d, d)
        assert np.abs(op._from_rho(back) - v).max() < 1e-11 * np.abs(v).max()
        assert np.abs(back - op._to_rho(op._from_rho(back))).max() < 1e-11 * np.abs(v).max()  # stays in the sector
        yt = op.preconditioner(sigma, transpose=True, coarse_quanta=coarse)(v)
        back = ((Dm.T - sigma * eye) @ op._to_rho(yt).ravel()).reshape(d, d)
        assert np.abs(op._from_rho(back) - v).max() < 1e-11 * np.abs(v).max()


def test_spin_diagonal_solve_catches_a_wrong_diagonal_and_a_nonzero_upper_shift():
    """The comparison above can fail: a diagonal without the jump term κ β(m) β(m')* gives O(1) errors, and a
    generator whose K keeps a b† term (not triangular in the total quanta) is refused."""
    from opendicke.quantum.matrix_free import PolaronGenerator, SpinDiagonalSolver, _Structured
    from opendicke.quantum.polaron import polaron

    problem = polaron(build(_model_m2_unequal(), 1, fock=(3, 4)))
    d = problem.dim
    Dm, _ = _split_spin_diagonal(problem)
    gen = PolaronGenerator(problem)
    R = np.random.default_rng(1).standard_normal((d, d)) + 0j
    sigma = 0.05
    ref = sla.spsolve((Dm - sigma * sp.identity(d * d)).tocsc(), R.ravel())
    wrong = SpinDiagonalSolver(gen)
    wrong._cspin = (gen.K.c0[:, None] + np.conj(gen.K.c0)[None, :]).ravel()  # κ β β'* dropped
    assert np.abs(wrong.solve(R, sigma).ravel() - ref).max() > 1e-3 * np.abs(ref).max()
    K = gen.K
    gen.K = _Structured(K.spin_dim, K.fock, K.c0, K.lower, [u + 0.1 for u in K.upper], K.number, K.flips)
    with pytest.raises(ValueError, match="triangular"):
        SpinDiagonalSolver(gen)


def test_matrix_free_memory_estimate_and_choice():
    """M = 2 polaron problems take the matrix-free operator; its estimate is the Krylov basis plus a few d × d
    arrays (not the ≈ 8 n_c² nonzeros per row of the assembled sector), and too small a budget is refused."""
    from opendicke.quantum.liouville import liouville_memory_estimate
    from opendicke.quantum.metastability import _check_memory
    from opendicke.quantum.polaron import polaron

    m2 = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.2, n_spins=8, seed=0)
    problem = polaron(build(m2, 1, fock=10))  # groups 2 + 6: 2 100 states, sector 2.2·10⁶ complex entries
    mem = _check_memory(problem, "arnoldi", 4, 8 * 2**30)
    assert mem["operator"] == "matrix-free" and mem["method"] == "arnoldi"
    sector = (problem.dim**2) // 2 + problem.dim
    assert mem["bytes"] < 16 * sector * (mem["krylov_vectors"] + 20) + 16 * 11 * problem.dim**2
    assert liouville_memory_estimate(problem)["liouvillian_bytes"] > 4 * mem["bytes"]  # the assembled one
    with pytest.raises(MemoryError, match="GiB"):  # the assembled sector (≈ 36 GB) does not fit
        _check_memory(problem, "auto", 4, 8 * 2**30, operator="sparse")
    assert mem["krylov_vectors"] == 200  # 2.2·10⁶ × 216 × 16 B ≈ 7.1 GiB
    assert _check_memory(problem, "arnoldi", 4, 4 * 2**30)["krylov_vectors"] < 200  # fewer vectors to fit
    with pytest.raises(MemoryError, match=r"arnoldi, matrix-free.*complex entries"):
        _check_memory(problem, "arnoldi", 4, 0.5 * 2**30)
    # the default, preconditioned Davidson: V and W = LV (2 × 60 vectors) plus the coarse block's LU
    dav = _check_memory(problem, "auto", 4, 8 * 2**30)
    assert dav["operator"] == "matrix-free" and dav["method"] == "davidson" and dav["krylov_vectors"] == 60
    assert dav["bytes"] < mem["bytes"]
    spin = problem.dim // 100
    assert dav["coarse_bytes"] == 16 * (spin * spin * 15) ** 2 // 2  # S² spin pairs × 15 Fock pairs with T ≤ 2
    assert _check_memory(problem, "auto", 4, 4 * 2**30)["krylov_vectors"] < 60  # a smaller space to fit
    with pytest.raises(MemoryError, match=r"davidson, matrix-free.*search-space"):
        _check_memory(problem, "auto", 4, 2 * 2**30)
    # M = 1 keeps the assembled sector; an explicit shift-invert keeps it too
    assert _check_memory(polaron(build(model_m1(8), 1, fock=10)), "auto", 4, 2**30)["operator"] == "sparse"
    assert _check_memory(polaron(build(m2, 1, fock=2)), "shift-invert", 4, 2**30)["operator"] == "sparse"
    with pytest.raises(ValueError, match="operator"):
        _check_memory(problem, "auto", 4, 2**30, operator="dense")


def test_gmres_right_solves_a_preconditioned_system():
    """The right-preconditioned GMRES used for the shift-invert measurement: a random non-normal complex system
    with a Jacobi preconditioner, against numpy's dense solve, with restarts (restart 10 < iterations)."""
    from opendicke.quantum.matrix_free import gmres_right

    rng = np.random.default_rng(2)
    n = 80
    A = np.diag(rng.uniform(1, 50, n) + 1j * rng.uniform(-20, 20, n)) + 0.5 * (rng.standard_normal((n, n))
                                                                              + 1j * rng.standard_normal((n, n)))
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    diag = np.diag(A)
    x, iterations, res = gmres_right(lambda v: A @ v, lambda v: v / diag, b, rtol=1e-12, restart=10)
    assert res <= 1e-12 and iterations > 10
    assert np.abs(x - np.linalg.solve(A, b)).max() < 1e-10 * np.abs(x).max()


def test_davidson_lr_selection_finds_a_slow_pair_far_from_the_shift():
    """``davidson_eigenpairs`` on a real non-normal 400 × 400 matrix S D S⁻¹ built here (D: a slow pair
    −0.05 ± 1i, a real −0.1, a pair −0.3 ± 2i, the rest real in [−10, −0.5]) with the diagonal preconditioner at
    the real shift 0.05: the 3 eigenvalues with the largest real parts against ``numpy.linalg.eigvals`` (1e-9),
    with and without the J-closed space (J = complex conjugation commutes with a real matrix; fewer products with
    it); the nearest-σ selection lists −0.1 and faster real ones and misses the pair (the old blind spot)."""
    from opendicke.quantum.matrix_free import davidson_eigenpairs

    rng = np.random.default_rng(0)
    n = 400
    D = np.zeros((n, n))
    D[:2, :2] = [[-0.05, 1.0], [-1.0, -0.05]]
    D[2:4, 2:4] = [[-0.3, 2.0], [-2.0, -0.3]]
    D[4, 4] = -0.1
    D[5:, 5:] = np.diag(-rng.uniform(0.5, 10, n - 5))
    S = np.eye(n) + 0.3 * rng.standard_normal((n, n)) / np.sqrt(n)
    A = S @ D @ np.linalg.inv(S)
    ref = np.linalg.eigvals(A)
    ref = ref[np.argsort(-ref.real)][:3]
    d = np.diag(A)

    def run(select, conjugate):
        return davidson_eigenpairs(lambda v: A @ v, lambda r: r / (d - 0.05), n, 3, target=0.05, v0=[np.ones(n)],
                                   tol=1e-10, max_basis=40, select=select, conjugate=conjugate)

    products = {}
    for conjugate in (None, np.conj):
        values, vectors, residuals, products[conjugate], _ = run("LR", conjugate)
        assert matched_distance(values, ref) < 1e-9 and np.max(residuals) <= 1e-10
        assert np.abs(A @ vectors - vectors * values).max() < 1e-9
    assert products[np.conj] < products[None]
    values = run("nearest", None)[0]
    assert abs(values[0] + 0.1) < 1e-9 and np.min(np.abs(values - ref[0])) > 0.5


def test_sector_conjugation_commutes_with_the_liouvillian_and_the_preconditioner():
    """J: the sector vector of ρ ↦ ρ† (``SectorOperator.conjugate``) is an isometric involution that commutes with
    L, Lᵀ and the real-shift preconditioner in every sector of P × U2 (N_sp = 4, seed 2: blocks 2 + 2), so
    Davidson may keep its space J-closed; J applied as ρ† to the d × d matrices built here."""
    from opendicke.quantum.liouville import symmetry_basis
    from opendicke.quantum.matrix_free import PolaronGenerator, sector_operator
    from opendicke.quantum.polaron import polaron

    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.2, n_spins=4, seed=2)
    problem = polaron(build(model, 1, fock=2))
    basis = symmetry_basis(problem, "auto")
    assert len(basis.sectors) == 4
    generator = PolaronGenerator(problem)
    rng = np.random.default_rng(5)
    for s in basis.sectors:
        op = sector_operator(basis, s, generator)
        v = rng.standard_normal(op.shape[0]) + 1j * rng.standard_normal(op.shape[0])
        X = basis.full_matrix(v, s)
        Jv = op.conjugate(v)
        assert np.abs(basis.full_matrix(Jv, s) - X.conj().T).max() < 1e-15
        assert abs(np.linalg.norm(Jv) - np.linalg.norm(v)) < 1e-12 and np.abs(op.conjugate(Jv) - v).max() < 1e-15
        for A in (op.matvec, op.T.matvec, op.preconditioner(0.05), op.preconditioner(0.05, transpose=True)):
            assert np.abs(A(Jv) - op.conjugate(A(v))).max() < 1e-12 * np.abs(A(v)).max()
    # a mutation: the transpose without the conjugate is not J (it fails on a complex vector)
    assert np.abs(basis.sector_vector(np.ascontiguousarray(X.T), s) - Jv).max() > 1e-3


def test_forced_metastable_states_refuse_an_oscillating_slow_mode():
    """Below threshold (g0 = 0.3, N_sp = 2) the slowest odd mode is a damped oscillation (Im λ ≈ −0.91): forcing
    it into the Macieszczak construction would divide by tr(O R) of a complex pair (an M = 2 run at g0 = 0.8 gave
    overlaps of 10¹¹ that way); it must be refused, and the automatic rule must find no slow modes."""
    from opendicke.quantum import metastability as ms

    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=0.3, n_spins=2, seed=0)
    run, *_ = ms._search(model, fock=6, tol=1e-5, gap_rtol=1e-3, k=3, method="auto", tau=None,
                         max_memory=ms.DEFAULT_MAX_MEMORY, max_fock=20, with_gap=True)
    slowest = max((v for p in run["pairs"].values() for v in p.values if abs(v) > 1e-9), key=lambda v: v.real)
    assert abs(slowest.imag) > 0.5  # the premise: an oscillating slowest mode
    with pytest.raises(ValueError, match="complex eigenvalues"):
        ms.metastable_states(run, n_slow=1)
    assert ms.metastable_states(run)["n_slow"] == 0


def _model_precession():
    """M = 2, N_sp = 3 (seed 2: blocks of 1 and 2 spins) below threshold, g0 = 0.3: the slowest mode is a damped
    spin precession λ₁ ≈ −0.0365 ± 0.968i, far from Davidson's real preconditioner shift σ = 0.05."""
    return DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=0.3, n_spins=3, seed=2)


def test_davidson_finds_a_slow_oscillating_mode_by_itself():
    """Davidson follows the Ritz values with the largest real parts (as ARPACK's ``which="LR"``), so it finds the
    precession λ₁ ≈ −0.0365 ± 0.968i of the g0 = 0.3 case itself: λ₁ and the gap against the dense eigenvalues of
    QuTiP's ``liouvillian`` of the plain operators conjugated into a displaced basis built in the test (24 levels
    per mode), to 1e-8; every reported eigenvalue is one of them; the Arnoldi cross-check passes."""
    model = _model_precession()
    levels, big = (2, 2), 24
    plain = build(model, 1, fock=big)
    U = _polaron_unitary_m2(model, plain, levels, big)
    H = qutip.Qobj(sp.csr_matrix(U.conj().T @ (plain.hamiltonian @ U)))
    cops = [qutip.Qobj(sp.csr_matrix(U.conj().T @ (op @ U))) for op in plain.collapse_operators]
    ref = np.linalg.eigvals(qutip.liouvillian(H, cops).full())
    ref = ref[np.argsort(-ref.real)]
    assert abs(ref[0]) < 1e-10 and abs(ref[1].imag) > 0.9  # the premise: an oscillating slowest mode
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = lifetime(model, fock=list(levels), basis="polaron", eigenvalues=4, metastable=False)
    assert ds.attrs["method"] == "davidson" and ds.attrs["slowest_mode_check"] == "passed"
    lam1 = complex(float(ds.eigenvalue_real[1]), float(ds.eigenvalue_imag[1]))
    assert min(abs(lam1 - ref[1]), abs(lam1 - ref[1].conjugate())) < 1e-8
    assert float(ds.gap) == pytest.approx(-ref[1].real, abs=1e-8)
    got = ds.eigenvalue_real.values + 1j * ds.eigenvalue_imag.values
    assert max(np.min(np.abs(ref - z)) for z in got) < 1e-8
    assert float(np.max(ds.eigenvalue_residual)) < 1e-9


@pytest.mark.slow  # ≈ 4.4 s; the default Davidson (largest real parts) finds this mode itself, tested in the default run
def test_davidson_cross_check_catches_a_slow_oscillating_mode(monkeypatch):
    """With the Ritz values *nearest* its real σ followed instead (the selection before LR, kept as
    ``matrix_free.DAVIDSON_SELECT = "nearest"``), Davidson misses the slowest mode of the g0 = 0.3 case, a damped
    precession λ ≈ −0.0365 ± 0.968i, and reports a gap of ≈ 0.070. The cross-check (Arnoldi, largest real parts,
    small cutoff) must flag it; with ``method="auto"`` the result must then be Arnoldi's (the complex λ₁), with the
    explicit ``method="davidson"`` a warning and the attribute."""
    from opendicke.quantum import matrix_free
    from opendicke.quantum.metastability import SpectrumWarning

    monkeypatch.setattr(matrix_free, "DAVIDSON_SELECT", "nearest")
    model = _model_precession()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        with pytest.warns(SpectrumWarning, match="recomputed with method='arnoldi'"):
            auto = lifetime(model, fock=[2, 2], basis="polaron", eigenvalues=4, metastable=False)
        with pytest.warns(SpectrumWarning, match="may be overstated"):
            dav = lifetime(model, fock=[2, 2], basis="polaron", method="davidson", eigenvalues=4, metastable=False)
    assert auto.attrs["method"] == "arnoldi" and auto.attrs["slowest_mode_check"].startswith("failed (recomputed")
    assert dav.attrs["method"] == "davidson" and dav.attrs["slowest_mode_check"] == "failed"
    lam1 = complex(float(auto.eigenvalue_real[1]), float(auto.eigenvalue_imag[1]))
    assert abs(lam1.imag) > 0.9 and float(auto.gap) == pytest.approx(-lam1.real, rel=1e-12)
    check = complex(*dav.attrs["slowest_mode_check_eigenvalue"])
    assert min(abs(check - lam1), abs(check - lam1.conjugate())) < 0.01  # the same mode (or its conjugate)
    assert float(dav.gap) > 1.5 * float(auto.gap)  # what Davidson alone would have reported
