"""The Gaussian (squeezed co-moving) frame, opendicke.quantum.gaussian.

The frame is an exact time-dependent unitary change of basis; what is approximated is the truncation in
total quanta and the Holstein–Primakoff series. Checked here: against the plain Dicke ⊗ Fock basis (one
mode) and the co-moving frame (two modes, four frame modes) where both are converged; independence of the
result from the frame itself (a deliberately different squeezing must give the same physics); the
symplectic algebra of the frame; the search and its errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from opendicke import DickeModel
from opendicke.quantum import FockCutoffWarning, build, propagate, solve
from opendicke.quantum.frame import comoving, propagate_comoving
from opendicke.quantum.gaussian import (
    GaussianFrame, _pure_log, _symplectic_form, fock_basis, frame_dimension, gaussian_frame, propagate_gaussian,
    search_levels, williamson_occupations,
)

TIGHT = {"atol": 1e-12, "rtol": 1e-10}


def one_mode(n_spins, g0=1.0):
    return DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=g0, n_spins=n_spins, seed=1)


def max_diff(a, b, names):
    return {n: float(np.abs(a.values[n] - b.values[n]).max()) for n in names}


# ----------------------------------------------------------------------------- symplectic algebra
def random_symplectic(L, rng):
    """exp of a random Hamiltonian matrix J·S (S symmetric) times a random passive rotation."""
    from scipy.linalg import expm

    J = _symplectic_form(L)
    A = rng.normal(size=(2 * L, 2 * L)) * 0.4
    return expm(J @ (A + A.T))


@pytest.mark.parametrize("L", [1, 2, 4])
def test_pure_part_and_its_root_are_symplectic(L):
    """For Σ = S_W D S_Wᵀ: expm(pure_log(Σ)) is symplectic, its square is S_W S_Wᵀ, and the Williamson
    occupations are recovered."""
    rng = np.random.default_rng(L)
    J = _symplectic_form(L)
    SW = random_symplectic(L, rng)
    assert np.allclose(SW @ J @ SW.T, J, atol=1e-10)
    nu = 0.5 + rng.uniform(0, 2, size=L)
    Sig = SW @ np.diag(np.concatenate([nu, nu])) @ SW.T
    from scipy.linalg import expm

    S = expm(_pure_log(Sig, J))
    assert np.allclose(S, S.T, atol=1e-10)
    assert np.allclose(S @ J @ S.T, J, atol=1e-9)
    assert np.allclose(S @ S, SW @ SW.T, atol=1e-8)
    assert np.allclose(williamson_occupations(Sig), np.sort(nu - 0.5), atol=1e-9)
    # in the frame the state is a passive rotation of thermal states: no squeezing left
    Sinv = np.linalg.inv(S)
    frame_cov = Sinv @ Sig @ Sinv.T
    x, p = frame_cov[:L, :L], frame_cov[L:, L:]
    assert np.allclose(x, p, atol=1e-9) and np.allclose(frame_cov[:L, L:], -frame_cov[L:, :L], atol=1e-9)


def test_fock_basis_is_ordered_by_total_and_counts():
    b = fock_basis(3, 4)
    assert b.shape == (35, 3) and np.all(np.diff(b.sum(axis=1)) >= 0)
    assert len({tuple(r) for r in b}) == 35


# ----------------------------------------------------------------------------- the frame is exact
def test_gaussian_equals_plain_basis_one_mode():
    """N = 20, t ≤ 0.6: both converged (plain cutoff 24: top level 2e-9; 10 frame quanta: 3e-11), every
    observable and the squares that enter E_N agree (measured: ≤ 1e-9 and ≤ 2e-7 of ⟨S²⟩ ~ 10²)."""
    p = build(one_mode(20), 1, fock=24)
    times = np.linspace(0, 0.6, 7)
    ref = propagate(p, times, method="mesolve", squares=True, **TIGHT)
    with pytest.warns(UserWarning, match="asymptotic"):  # 20 spins: fine this early, not in general
        run = propagate_gaussian(p, times, 10, hp_order=4, squares=True, **TIGHT)
    assert ref.truncation().max() < 1e-8 and run.truncation().max() < 1e-9
    diffs = max_diff(run, ref, ("overlap_1", "occupation_1", "alpha_1", "mx_1", "my_1", "mz_1"))
    assert max(diffs.values()) < 1e-8, diffs
    squares = max_diff(run, ref, ("Sx2_1", "Sy2_1", "Sz2_1"))
    assert max(squares.values()) < 1e-6, squares


@pytest.mark.slow  # 40-80 s at load 13 (issue 10); fast representatives: plain-basis and dataset tests
def test_gaussian_equals_comoving_two_modes():
    """Two modes, two blocks (four frame modes), N_sp = 400, t ≤ 0.4: against the co-moving frame with 4 rotated
    Dicke states and 4 displaced levels (measured agreement 1e-9 in the occupations, 1e-12 in the overlaps)."""
    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=[1.0, 0.7], g0=1.0, n_spins=400, seed=3)
    p = build(model, 1, fock=2)
    times = np.linspace(0, 0.4, 5)
    ref = propagate_comoving(comoving(p, 4, 4), times, **TIGHT)
    run = propagate_gaussian(p, times, 5, hp_order=2, **TIGHT)
    diffs = max_diff(run, ref, ("overlap_1", "overlap_2", "occupation_1", "occupation_2", "mx_1", "my_2", "alpha_2"))
    assert max(diffs.values()) < 1e-7, diffs


@pytest.mark.slow  # 40-80 s at load 13 (issue 10); fast representatives: plain-basis and dataset tests
def test_result_does_not_depend_on_the_frame():
    """The frame is a change of basis: a squeezing at 60 % of the fitted one gives the same observables
    (N_sp = 10^5, t ≤ 2, 12 quanta; measured 3e-8, limited by the truncation of the worse frame; with the sign
    of the frame generator G flipped, ξ moves by 6e-5 and m_x by 2e-4 and the last shell fills to 8e-2)."""
    p = build(one_mode(100_000), 1, fock=2)
    times = np.linspace(0, 2.0, 11)
    frame = gaussian_frame(p, 2.0)
    other = GaussianFrame(problem=p, meanfield=frame.meanfield, nodes=frame.nodes, covariances=frame.covariances,
                          _spline=CubicSpline(frame.nodes, 0.6 * frame._spline(frame.nodes), axis=0))
    a = propagate_gaussian(p, times, 12, frame=frame, **TIGHT)
    b = propagate_gaussian(p, times, 12, frame=other, **TIGHT)
    assert b.truncation().max() > 100 * a.truncation().max()  # the other frame really is worse
    diffs = max_diff(a, b, ("overlap_1", "occupation_1", "mx_1", "my_1", "alpha_1"))
    assert max(diffs.values()) < 3e-7, diffs
    assert a.truncation().max() < 1e-7


@pytest.mark.slow  # 40-80 s at load 13 (issue 10); fast representatives: plain-basis and dataset tests
def test_frame_state_is_nearly_thermal_as_predicted():
    """At N_sp = 10^5 the exact state in the frame has the total occupation of the leading-order Williamson
    modes (t = 3: predicted 0.70)."""
    p = build(one_mode(100_000), 1, fock=2)
    frame = gaussian_frame(p, 3.0)
    predicted = williamson_occupations(frame.covariances[-1]).sum()
    run = propagate_gaussian(p, [0.0, 1.5, 3.0], 14, frame=frame)
    from opendicke.quantum.gaussian import _FrameOperators

    fo = _FrameOperators(frame, 14, 1, 0)
    quanta = np.real(np.diagonal(run.final_state)) @ fo.shell
    assert quanta == pytest.approx(predicted, rel=0.02)


# ----------------------------------------------------------------------------- search, solve, errors
@pytest.mark.slow  # 40-80 s at load 13 (issue 10); fast representatives: plain-basis and dataset tests
def test_search_converges_and_small_limit_warns():
    p = build(one_mode(10_000), 1, fock=2)
    times = np.linspace(0, 2.0, 11)
    s = search_levels(p, times, 1e-7, first=6, step=4)
    assert s.converged and s.change <= 1e-7 and len(s.history) >= 2
    assert [h[0] for h in s.history] == list(range(6, 6 + 4 * len(s.history), 4))
    with pytest.warns(FockCutoffWarning, match="not converged"):
        s = search_levels(p, times, 1e-14, first=4, step=4, max_dim=frame_dimension(p, 8))
    assert not s.converged and s.levels == 8


@pytest.mark.slow  # 40-80 s at load 13 (issue 10); fast representatives: plain-basis and dataset tests
def test_search_stops_early_when_the_tolerance_is_out_of_reach():
    from opendicke.quantum.gaussian import _levels_needed

    # changes 1.7e-3, 1.2e-3 (rate 0.71): 1e-3 needs one more step, 1e-6 another 21
    history = [(12, 91, 0.0, np.nan, 1.0), (16, 153, 0.0, 1.7e-3, 1.0), (20, 231, 0.0, 1.2e-3, 1.0)]
    assert _levels_needed(history, 1e-3, 4) == 24
    assert _levels_needed(history, 1e-6, 4) == 20 + 4 * 21
    assert _levels_needed(history[:2], 1e-6, 4) == 20  # one change: no rate yet
    growing = history[:2] + [(20, 231, 0.0, 2e-3, 1.0)]
    assert _levels_needed(growing, 1e-3, 4) == 10**6
    p = build(one_mode(10_000), 1, fock=2)
    with pytest.warns(FockCutoffWarning, match="measured rate"):
        s = search_levels(p, np.linspace(0, 2.0, 11), 1e-12, first=4, step=2, max_dim=frame_dimension(p, 14))
    assert not s.converged and len(s.history) == 3  # stopped once the rate was known, before 10 and 12 quanta


def test_solve_gaussian_dataset_and_cost():
    model = one_mode(2000)
    ds = solve(model, 1, t_final=1.0, times=11, frame="gaussian", fock=10, tol=1e-4)
    assert ds.attrs["solver_frame"] == "gaussian" and ds.attrs["dimension"] == frame_dimension(build(model, 1), 10)
    assert ds["cost"].values[0] == pytest.approx(float(ds["cost_initial"]), rel=1e-9)
    # E_N is of order 1/N here and grows from its t = 0 value
    assert 0 < ds["cost"].values.max() < 50 / 2000
    assert abs(ds["overlap"].values[-1, 0] - ds["overlap_meanfield"].values[-1, 0]) < 1e-2


@pytest.mark.slow  # 40-80 s at load 13 (issue 10); fast representatives: plain-basis and dataset tests
def test_gaussian_validation():
    with pytest.raises(ValueError, match="needs every block to hold"):
        propagate_gaussian(build(one_mode(8), 1), [0.0, 1.0], 4)
    with pytest.raises(ValueError, match="two output times"):
        propagate_gaussian(build(one_mode(1000), 1), [0.0], 4)
    model = one_mode(1000)
    with pytest.raises(ValueError, match="fock"):
        solve(model, 1, t_final=1.0, frame="gaussian", fock=[4, 5])
    with pytest.raises(ValueError, match="own DOP853"):
        solve(model, 1, t_final=1.0, frame="gaussian", method="mesolve")
    with pytest.raises(ValueError, match="max_dim"):
        solve(model, 1, t_final=1.0, frame="gaussian", fock=40, max_dim=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FockCutoffWarning, match="too small"):
            solve(model, 1, t_final=3.0, times=4, frame="gaussian", fock=2, tol=1e-8, cost=False)


# ----------------------------------------------------------------------------- slow: the N_sp = 1000 goal
@pytest.mark.slow
def test_n1000_one_mode_meets_tol_but_not_the_deviations():
    """M = 1, N_sp = 1000, t ≤ 10, tol 1e-3. With the absolute tol alone (deviation_tol=None) the search converges
    (measured: 12 → 24 quanta, last change 9.3e-4) while N·(ξ − ξ_MF), N·(n − n_MF), N·E_N still move by several %
    per step; with the default relative tolerance (1e-2) it says so and stops (measured: 12, 16, 20 quanta,
    relative changes 0.13, 0.085; 51 s of CPU). Either way the exact ξ stays within the O(1/N) distance of mean
    field (measured max 0.0142 and 0.0151; the converged value is ≈ 0.021, issue 11)."""
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=1000, seed=1)
    with pytest.warns(FockCutoffWarning, match="relative change of the deviations"):
        ds = solve(model, 1, t_final=10.0, times=101, tol=1e-3)
    assert ds.attrs["solver_frame"] == "gaussian" and not bool(ds["fock_converged"])
    assert float(ds["deviation_change"]) > 1e-2
    loose = solve(model, 1, t_final=10.0, times=101, tol=1e-3, deviation_tol=None)
    assert bool(loose["fock_converged"]) and float(loose["fock_change"]) <= 1e-3 and loose.attrs["dimension"] <= 500
    assert float(loose["deviation_change"]) > 1e-2  # measured and reported: the bias is visible
    for result in (ds, loose):
        distance = np.abs(result["overlap"].values - result["overlap_meanfield"].values).max()
        assert 0.005 < distance < 0.03
        assert result["cost"].values.max() < 40 / 1000
