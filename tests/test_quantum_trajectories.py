"""Quantum-jump trajectories on the compiled ket kernels (``method="trajectories"``, quantum/trajectories.py).

References are built with no package code: the Lindblad master equation on individual, ungauged spins
(QuTiP ``mesolve`` on tests/systems/spins.py, QuTiP primitives only), and the no-jump branch by a dense
matrix exponential of H_eff = H − (i/2) Σ L†L of those operators. The reduced basis is exact at any Fock
cutoff, so both sides use the same small cutoff.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import qutip
import scipy.linalg

from opendicke import DickeModel
from opendicke.quantum import FockCutoffWarning, build, propagate, solve
from opendicke.quantum import trajectories as engine
from systems.spins import individual_spins

PATTERNS = {1: np.array([[1, -1, 1]]), 2: np.array([[1, -1, 1], [1, 1, -1]])}
PARAMS = {1: dict(omega=0.5, omega_modes=[1.5], kappa=[1.0], g0=1.2, fock=7),
          2: dict(omega=0.5, omega_modes=[1.5, 2.0], kappa=[1.0, 0.7], g0=1.2, fock=5)}
TIMES = np.linspace(0.0, 3.0, 16)


def system(M):
    """H, collapse operators, ξ_μ and a_μ†a_μ/N_sp on individual ungauged spins, and the pattern-1 ket."""
    G, p = PATTERNS[M], PARAMS[M]
    N, fock = G.shape[1], p["fock"]
    spins = individual_spins(G, p["omega"], p["omega_modes"], p["kappa"], p["g0"], fock)
    xi = [sum(G[mu, j] * spins.sz[j] for j in range(N)) / N for mu in range(M)]
    occ = [spins.a[mu].dag() * spins.a[mu] / N for mu in range(M)]
    psi0 = qutip.tensor([qutip.basis(2, 0 if s > 0 else 1) for s in G[0]] + [qutip.basis(fock, 0)] * M)
    return spins.H, spins.c_ops, xi, occ, psi0


def model(M):
    p = PARAMS[M]
    return DickeModel(omega=p["omega"], omega_modes=p["omega_modes"], kappa=p["kappa"], g0=p["g0"],
                      patterns=PATTERNS[M])


def run(M, ntraj, seed, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        return solve(model(M), 1, t_final=TIMES[-1], times=TIMES.size, fock=PARAMS[M]["fock"], method="trajectories",
                     ntraj=ntraj, seed=seed, cost=False, **kw)


@pytest.mark.parametrize("M", [1, 2])
def test_trajectory_statistics_match_master_equation(M):
    """Trajectory means lie within 4 standard errors of the exact master equation at every time, pattern and
    quantity, and the error bars are small enough for that to be a test.

    (With only a handful of jumped trajectories their sample spread under-estimates the error: at M = 2 with 10 of
    1500 jumped, all through the likelier mode, the bar was 8× too small at t = 0.2 — the same with QuTiP's
    mcsolve on the same random numbers. Below 30 jumped the bar is floored by the bound on the quantity.)"""
    H, c_ops, xi, occ, psi0 = system(M)
    ref = qutip.mesolve(H, psi0, TIMES, c_ops, e_ops=xi + occ,
                        options={"method": "dop853", "atol": 1e-12, "rtol": 1e-10, "nsteps": 10**7})
    exact = np.real(np.array(ref.expect))  # (2M, T)
    problem = build(model(M), 1, fock=PARAMS[M]["fock"])
    run = propagate(problem, TIMES, method="trajectories", ntraj=1500, seed=7)
    assert run.method == "trajectories" and run.ntraj == 1500 and run.stats["jumps"] > 1500
    few = run.strata.jumped.sum(axis=0) < 30
    assert 0 < few.sum() <= 3  # the floored early times are checked too
    for q, name in enumerate(("overlap", "occupation")):
        for mu in range(M):
            want = exact[q * M + mu]
            got = np.real(run.values[f"{name}_{mu + 1}"])
            err = np.real(run.errors[f"{name}_{mu + 1}"])
            z = np.abs(got - want)[1:] / err[1:]
            assert np.all(z < 4.0), (name, mu, np.max(z))
            assert got[0] == pytest.approx(want[0], abs=1e-12)
            # informative: the error bars are far below the change the dynamics makes
            assert np.max(err) < 0.1 * np.ptp(want), (name, mu, np.max(err), np.ptp(want))


@pytest.mark.parametrize("M", [1, 2])
def test_nojump_branch_matches_dense_exponential_of_effective_hamiltonian(M):
    """p0(t) = ‖e^{−iH_eff t}ψ0‖² and the normalised no-jump state's ξ_μ, n_μ against scipy's expm of H_eff on
    individual spins (the reduced basis holds the same state)."""
    H, c_ops, xi, occ, psi0 = system(M)
    Heff = (H - 0.5j * sum(c.dag() * c for c in c_ops)).full()
    v0 = psi0.full().ravel()
    p = build(model(M), 1, fock=PARAMS[M]["fock"])
    kets = engine.ket_problem(p.hamiltonian, p.collapse_operators, p.initial_ket, p.observables())
    for tol in (1e-6, 1e-10):
        p0, values = engine.nojump_branch(kets, TIMES, tol=tol)
        worst = 0.0
        for k, t in enumerate(TIMES):
            phi = scipy.linalg.expm(-1j * Heff * t) @ v0
            n2 = np.vdot(phi, phi).real
            worst = max(worst, abs(p0[k] - n2) / n2)
            for mu in range(M):
                for name, op in ((f"overlap_{mu + 1}", xi[mu]), (f"occupation_{mu + 1}", occ[mu])):
                    want = np.vdot(phi, op.full() @ phi).real / n2
                    worst = max(worst, abs(values[name][k] - want))
        assert worst < 30 * tol, (tol, worst)
    assert p0[-1] < 0.5  # the branch decays: the comparison covers the damping, not only the phase


def test_nojump_branch_survives_underflow_of_its_probability():
    """Long windows: p0 underflows (to < 1e-300) while the normalised no-jump state stays a state (the branch is
    renormalised every step); its late-time ξ, n agree with the dense expm's at t = 30."""
    H, c_ops, xi, occ, psi0 = system(1)
    Heff = (H - 0.5j * sum(c.dag() * c for c in c_ops)).full()
    p = build(model(1), 1, fock=PARAMS[1]["fock"])
    kets = engine.ket_problem(p.hamiltonian, p.collapse_operators, p.initial_ket, p.observables())
    times = np.array([0.0, 30.0, 3000.0])
    p0, values = engine.nojump_branch(kets, times, tol=1e-10)
    assert p0[2] < 1e-300 and np.all(np.isfinite(values["overlap_1"])) and np.all(np.isfinite(values["occupation_1"]))
    phi = scipy.linalg.expm(-1j * Heff * 30.0) @ psi0.full().ravel()
    phi /= np.linalg.norm(phi)
    assert values["overlap_1"][1].real == pytest.approx(np.vdot(phi, xi[0].full() @ phi).real, abs=1e-8)
    assert values["occupation_1"][1].real == pytest.approx(np.vdot(phi, occ[0].full() @ phi).real, abs=1e-8)


def test_same_seed_same_trajectories_other_seed_other():
    a = run(2, 20, seed=3)
    b = run(2, 20, seed=3)
    c = run(2, 20, seed=4)
    for name in ("overlap", "occupation", "overlap_error"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert not np.array_equal(a.overlap.values, c.overlap.values)


def test_jump_times_are_hit_and_trajectories_are_pure_and_normalised():
    """Per trajectory: the unnormalised norm at the first jump equals the drawn threshold (root finding), and the
    normalised expectation values stay physical (|ξ| ≤ 1, n ≥ 0, top-level population in [0, 1])."""
    p = build(model(1), 1, fock=PARAMS[1]["fock"])
    kets = engine.ket_problem(p.hamiltonian, p.collapse_operators, p.initial_ket, p.observables())
    values, first, stats = engine.sample(kets, TIMES, 50, seed=11)
    assert stats["jumps"] > 50 and np.all(np.isfinite(first[first < np.inf]))
    assert np.all(np.abs(values["overlap_1"].real) <= 1 + 1e-9) and np.all(values["occupation_1"].real >= -1e-12)
    # first-jump time t1 of trajectory i: p0(t1) = r_i, the first uniform number of its own seed
    seeds = np.random.SeedSequence(11).spawn(50)
    r = np.array([np.random.default_rng(s).random(1)[0] for s in seeds])
    jumped = first < TIMES[-1]
    p0, _ = engine.nojump_branch(kets, np.concatenate([[0.0], np.sort(first[jumped])]), tol=1e-12)
    np.testing.assert_allclose(p0[1:], np.sort(r[jumped])[::-1], rtol=1e-8)


def test_bad_arguments_fail_with_the_option_named():
    p = build(model(1), 1, fock=4)
    kets = engine.ket_problem(p.hamiltonian, p.collapse_operators, p.initial_ket, p.observables())
    with pytest.raises(ValueError, match="tol"):
        engine.sample(kets, TIMES, 4, tol=-1.0)
    with pytest.raises(ValueError, match="terms"):
        engine.sample(kets, TIMES, 4, terms=3)
    with pytest.raises(ValueError, match="times"):
        engine.sample(kets, TIMES[::-1], 4)
    with pytest.raises(ValueError, match="ntraj"):
        run(1, 1, seed=0)


def test_error_bars_shrink_as_inverse_square_root():
    problem = build(model(1), 1, fock=PARAMS[1]["fock"])
    small = propagate(problem, TIMES, method="trajectories", ntraj=200, seed=1)
    large = propagate(problem, TIMES, method="trajectories", ntraj=800, seed=2)
    late = slice(5, None)  # t ≥ 1: most trajectories have jumped
    for name in ("overlap_1", "occupation_1"):
        ratio = np.mean(np.real(small.errors[name])[late]) / np.mean(np.real(large.errors[name])[late])
        assert 1.6 < ratio < 2.5, (name, ratio)


def test_threads_give_the_same_trajectories():
    problem = build(model(2), 1, fock=PARAMS[2]["fock"])
    kets = engine.ket_problem(problem.hamiltonian, problem.collapse_operators, problem.initial_ket,
                              problem.observables())
    one, first1, stats1 = engine.sample(kets, TIMES, 12, seed=5)
    two, first2, stats2 = engine.sample(kets, TIMES, 12, seed=5, threads=2)
    np.testing.assert_array_equal(first1, first2)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])
    assert stats1 == stats2
