"""Exact finite-N quantum dynamics (opendicke.quantum) against brute-force QuTiP on individual spins.

The reference is built here from qutip.sigmax/sigmaz/destroy/tensor on the original, ungauged and
unpermuted spins (2^N_sp ⊗ n_c^M), with no package code. The reduced problem is exact at any Fock cutoff,
so both sides use the same (small, unconverged) cutoff and must agree to integrator accuracy.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import qutip

from opendicke import BlochState, CorruptedPattern, DickeModel, PatternState
from opendicke.quantum import FockCutoffWarning, build, propagate, solve
from systems.spins import individual_spins

TIGHT = {"atol": 1e-12, "rtol": 1e-10}


# ----------------------------------------------------------------------------- brute-force reference
def per_spin_system(G, omega, omega_modes, kappa, g0, fock):
    """Per-spin Pauli operators sig[a][j], mode operators a[μ], H and the collapse operators (tests/systems/spins.py)."""
    s = individual_spins(G, omega, omega_modes, kappa, g0, fock)
    return {"x": s.sx, "y": s.sy, "z": s.sz}, s.a, s.H, s.c_ops


def brute_force(G, omega, omega_modes, kappa, g0, sz0, fock, times):
    """Individual spins: ⟨ξ_μ⟩, ⟨a_μ†a_μ⟩/N_sp, ⟨a_μ⟩/√N_sp, and per-spin ⟨σ_x⟩, ⟨σ_y⟩, ⟨σ_z⟩ (original frame)."""
    G = np.asarray(G)
    M, N = G.shape
    sig, a, H, c_ops = per_spin_system(G, omega, omega_modes, kappa, g0, fock)
    # σ_z = +1 is qutip.basis(2, 0)
    psi0 = qutip.tensor([qutip.basis(2, 0 if s > 0 else 1) for s in sz0] + [qutip.basis(fock, 0)] * M)
    e_ops = {}
    for mu in range(M):
        e_ops[f"xi{mu}"] = sum(G[mu, j] * sig["z"][j] for j in range(N)) / N
        e_ops[f"n{mu}"] = a[mu].dag() * a[mu] / N
        e_ops[f"a{mu}"] = a[mu] / np.sqrt(N)
    for comp in "xyz":
        for j in range(N):
            e_ops[f"s{comp}{j}"] = sig[comp][j]
    options = {"method": "dop853", "nsteps": 10**7, **TIGHT}
    res = qutip.mesolve(H, psi0, times, c_ops, e_ops=e_ops, options=options)
    out = {k: np.asarray(v) for k, v in res.e_data.items()}
    return {
        "overlap": np.real(np.stack([out[f"xi{mu}"] for mu in range(M)], axis=1)),
        "occupation": np.real(np.stack([out[f"n{mu}"] for mu in range(M)], axis=1)),
        "alpha": np.stack([out[f"a{mu}"] for mu in range(M)], axis=1),
        "spins": np.real(np.stack([[out[f"s{c}{j}"] for c in "xyz"] for j in range(N)], axis=0)),  # (N, 3, T)
    }


def groups_by_hand(G):
    """Gauge signs and gauged columns per spin, computed independently of opendicke.reduction."""
    G = np.asarray(G)
    gauge = G[0]
    cols = [tuple(int(v) for v in G[:, j] * gauge[j]) for j in range(G.shape[1])]
    return gauge, cols


def random_patterns(M, N, seed, min_groups=1, max_groups=None):
    """Random ±1 patterns with some −1 in pattern 1 (so the gauge matters) and a number of distinct gauged
    columns in [min_groups, max_groups]."""
    rng = np.random.default_rng(seed)
    while True:
        G = rng.choice([-1, 1], size=(M, N)).astype(np.int8)
        n_groups = len(set(groups_by_hand(G)[1]))
        if np.any(G[0] < 0) and np.any(G[0] > 0) and min_groups <= n_groups <= (max_groups or N):
            return G


def model_for(G, g0=1.0):
    M = G.shape[0]
    return DickeModel(
        omega=0.5, omega_modes=1.5 + 0.4 * np.arange(M), kappa=[1.0, 0.6, 0.8][:M], g0=g0, patterns=G,
    )


def check_against_brute_force(G, initial, fock, t_final, n_times=21, g0=1.0):
    model = model_for(G, g0)
    times = np.linspace(0.0, t_final, n_times)
    sz0 = initial.spin_vectors(model)[:, 2]
    ref = brute_force(G, model.omega, model.omega_modes, model.kappa, model.g0, sz0, fock, times)
    with warnings.catch_warnings():  # the cutoff is deliberately small (the same on both sides)
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = solve(model, initial, times=times, fock=fock, cost=False, **TIGHT)
    err = {
        "overlap": np.abs(ds.overlap.values - ref["overlap"]).max(),
        "occupation": np.abs(ds.occupation.values - ref["occupation"]).max(),
        "alpha": np.abs(ds.alpha.values - ref["alpha"]).max(),
    }
    # group Bloch vectors, gauged frame: ⟨σ_x⟩, G[1,j]⟨σ_y⟩, G[1,j]⟨σ_z⟩ averaged over spins with one gauged column
    gauge, cols = groups_by_hand(G)
    f = ds.couplings.values
    for k in range(f.shape[1]):
        members = [j for j, c in enumerate(cols) if c == tuple(int(v) for v in f[:, k])]
        assert len(members) == int(ds.group_size.values[k])
        sign = np.array([1, 1, 1])[:, None] * np.ones((3, len(members)))
        sign[1:] *= gauge[members]
        mean = np.einsum("cj,jct->tc", sign, ref["spins"][members]) / len(members)
        err[f"bloch{k}"] = np.abs(ds.bloch.values[:, k, :] - mean).max()
    return err, ds


CASES = [
    # (M, N_sp, pattern seed, initial, Fock levels, t_final)
    pytest.param(1, 5, 11, PatternState(1), 6, 3.0, id="M1-N5-pattern"),
    pytest.param(1, 6, 12, CorruptedPattern(1, n_flip=2, seed=3), 4, 3.0, id="M1-N6-corrupted"),
    pytest.param(1, 4, 13, PatternState(1, sign=-1), 8, 4.0, id="M1-N4-mirror"),
    pytest.param(2, 4, 21, PatternState(2), 4, 2.0, id="M2-N4-pattern2"),
    pytest.param(2, 5, 22, CorruptedPattern(1, n_flip=1, seed=5), 3, 2.0, id="M2-N5-corrupted"),
    pytest.param(2, 4, 23, CorruptedPattern(2, n_flip=2, seed=1), 4, 2.0, id="M2-N4-corrupted2"),
]


@pytest.mark.parametrize("M, N, seed, initial, fock, t_final", CASES)
def test_reduced_problem_matches_individual_spins(M, N, seed, initial, fock, t_final):
    G = random_patterns(M, N, seed, min_groups=2 if M > 1 else 1)
    err, ds = check_against_brute_force(G, initial, fock, t_final)
    assert max(err.values()) <= 1e-6, err
    # the dynamics is not trivial: the overlap moved and bosons were created
    assert np.ptp(ds.overlap.values[:, 0]) > 0.05
    assert ds.occupation.values.max() > 1e-3


THREE_MODE_CASES = [
    # (pattern seed, initial, groups): 3 modes, 4 spins, Fock cutoff 3 per mode, t ≤ 2
    pytest.param(31, CorruptedPattern(2, n_flip=1, seed=1), 3, id="corrupted-splits-a-group"),
    pytest.param(32, PatternState(3), 3, id="pattern3"),
    pytest.param(34, PatternState(1, sign=-1), 2, id="mirror1", marks=pytest.mark.slow),  # 9 s; pattern3 and the group split stay
    pytest.param(31, CorruptedPattern(2, n_flip=1, seed=0), 3, id="corrupted", marks=pytest.mark.slow),
    pytest.param(33, CorruptedPattern(1, n_flip=2, seed=2), 2, id="corrupted2", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("seed, initial, n_groups", THREE_MODE_CASES)
def test_three_modes_match_individual_spins(seed, initial, n_groups):
    G = random_patterns(3, 4, seed, min_groups=n_groups, max_groups=n_groups)
    err, ds = check_against_brute_force(G, initial, fock=3, t_final=2.0, n_times=11)
    assert max(err.values()) <= 1e-6, err
    assert ds.sizes["group"] == n_groups


def test_corrupted_pattern_splits_a_group_into_blocks():
    G = random_patterns(3, 4, 31, min_groups=3, max_groups=3)
    p = build(model_for(G), CorruptedPattern(2, n_flip=1, seed=1), fock=3)
    assert p.n_groups == 3 and p.n_blocks == 4 and sorted(p.block_sizes.tolist()) == [1, 1, 1, 1]


def test_random_product_state_matches_individual_spins():
    """General unit Bloch vectors (spin coherent blocks) with κ > 0; reference from per-spin states."""
    G = random_patterns(1, 3, 41)
    model = model_for(G)
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    times = np.linspace(0, 2.0, 11)
    fock = 6
    # reference
    N = 3
    sig, (a,), H, c_ops = per_spin_system(G, model.omega, model.omega_modes, model.kappa, model.g0, fock)
    kets = []
    for x, y, z in v:
        th, ph = np.arccos(z), np.arctan2(y, x)
        kets.append(np.cos(th / 2) * qutip.basis(2, 0) + np.exp(1j * ph) * np.sin(th / 2) * qutip.basis(2, 1))
    psi0 = qutip.tensor(kets + [qutip.basis(fock, 0)])
    xi = sum(G[0, j] * sig["z"][j] for j in range(N)) / N
    ref = qutip.mesolve(H, psi0, times, c_ops, e_ops=[xi, a.dag() * a / N], options={"method": "dop853", **TIGHT})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = solve(model, BlochState(v), times=times, fock=fock, cost=False, **TIGHT)
    assert np.abs(ds.overlap.values[:, 0] - np.real(ref.expect[0])).max() <= 1e-8
    assert np.abs(ds.occupation.values[:, 0] - np.real(ref.expect[1])).max() <= 1e-8


# ----------------------------------------------------------------------------- structure of the problem
def test_blocks_refine_groups_and_dimension():
    G = random_patterns(2, 6, 7, min_groups=2)
    model = model_for(G)
    p = build(model, CorruptedPattern(1, n_flip=2, seed=0), fock=5)
    assert p.block_sizes.sum() == 6
    assert p.dim == int(np.prod(p.block_sizes + 1)) * 5**2
    # every block lies in one group and holds spins with one initial σ_z value
    z = p.grouping.to_frame(CorruptedPattern(1, n_flip=2, seed=0).spin_vectors(model))[:, 2]
    for r in range(p.n_blocks):
        members = np.flatnonzero(p.block_of_spin == r)
        assert len(set(p.grouping.group_of_spin[members])) == 1
        assert len(set(z[members])) == 1
    # a pattern state needs no refinement: one block per group
    q = build(model, PatternState(2), fock=5)
    assert q.n_blocks == q.n_groups


def test_qutip_export_runs_with_mesolve():
    G = random_patterns(2, 4, 21, min_groups=2)
    model = model_for(G)
    p = build(model, PatternState(1), fock=4)
    q = p.to_qutip()
    assert q.hamiltonian.isherm and q.hamiltonian.dims == [list(p.dims), list(p.dims)]
    assert abs(q.rho0.tr() - 1) < 1e-12 and len(q.collapse_operators) == 2
    times = np.linspace(0, 1.5, 7)
    res = qutip.mesolve(q.hamiltonian, q.rho0, times, q.collapse_operators,
                        e_ops={k: q.observables[k] for k in ("overlap_1", "occupation_2", "mx_1")}, options=TIGHT)
    run = propagate(p, times, **TIGHT)
    for name in ("overlap_1", "occupation_2", "mx_1"):
        assert np.abs(np.real(res.e_data[name]) - run.real(name)).max() < 1e-8
    # ... and the Schrödinger-picture export works with mcsolve-type pure states
    assert q.psi0.isket and abs(q.psi0.norm() - 1) < 1e-12


def test_expm_engine_agrees_with_mesolve():
    G = random_patterns(1, 6, 3)
    p = build(model_for(G), CorruptedPattern(1, n_flip=1, seed=2), fock=7)
    times = np.linspace(0, 3, 7)
    a = propagate(p, times, method="mesolve", **TIGHT)
    b = propagate(p, times, method="expm")
    assert a.change_from(b) < 1e-9


# ----------------------------------------------------------------------------- Fock cutoff
def test_automatic_cutoff_meets_tolerance():
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=6, seed=2)
    tol = 1e-6
    ds = solve(model, 1, t_final=4.0, times=21, tol=tol)
    assert ds.fock_converged.item() == 1
    assert ds.fock_change.item() <= tol
    assert ds.truncation.values.max() < tol
    # against a much larger cutoff: the returned result is within tol
    big = solve(model, 1, t_final=4.0, times=21, fock=int(ds.fock.values[0]) + 10, cost=False)
    assert np.abs(ds.overlap - big.overlap).max() <= tol
    assert np.abs(ds.occupation - big.occupation).max() <= tol


def test_too_small_cutoff_is_reported():
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=6, seed=2)
    with pytest.warns(FockCutoffWarning, match="too small"):
        ds = solve(model, 1, t_final=4.0, times=11, fock=3, cost=False)
    assert ds.fock_converged.item() == 0
    assert ds.truncation.values[0] > 1e-3
    with pytest.warns(FockCutoffWarning, match="not converged"):
        ds = solve(model, 1, t_final=4.0, times=11, max_fock=6, cost=False)
    assert ds.fock_converged.item() == 0 and ds.fock_change.item() > 1e-6


def test_adequate_fixed_cutoff_is_silent():
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=0.3, n_spins=4, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FockCutoffWarning)
        ds = solve(model, 1, t_final=3.0, times=11, fock=12, cost=False)
    assert ds.fock_converged.item() == 1 and np.isnan(ds.fock_change.item())


# ----------------------------------------------------------------------------- cost function E_N
@pytest.mark.filterwarnings("ignore::opendicke.quantum.FockCutoffWarning")
@pytest.mark.parametrize("initial", [PatternState(2), CorruptedPattern(1, n_flip=2, seed=4)])
def test_initial_cost_is_two_over_group_sizes_plus_modes_over_N(initial):
    G = random_patterns(2, 6, 5, min_groups=2)
    model = model_for(G)
    ds = solve(model, initial, times=[0.0, 0.01], fock=3)
    sizes = ds.group_size.values
    N = 6 / 2
    expected = 2 * np.sum(1.0 / sizes) + 2 / N
    assert ds.cost.values[0] == pytest.approx(expected, rel=1e-12)
    assert ds.cost_initial.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.filterwarnings("ignore::opendicke.quantum.FockCutoffWarning")
def test_cost_function_against_individual_spins():
    """E_N(t) from the reduced problem equals the same sum built from the brute-force per-spin moments."""
    G = random_patterns(1, 4, 9)
    model = model_for(G)
    times = np.linspace(0, 2.0, 5)
    fock = 6
    ds = solve(model, 1, times=times, fock=fock, **TIGHT)
    # brute force: one group (M = 1), gauged collective spin S_a = Σ_j g_a,j σ_a^j, g = (1, G1j, G1j)
    N = 4
    sig, (a,), H, c_ops = per_spin_system(G, model.omega, model.omega_modes, model.kappa, model.g0, fock)
    S = {
        "x": sum(sig["x"][j] for j in range(N)),
        "y": sum(G[0, j] * sig["y"][j] for j in range(N)),
        "z": sum(G[0, j] * sig["z"][j] for j in range(N)),
    }
    psi0 = qutip.tensor([qutip.basis(2, 0 if G[0, j] > 0 else 1) for j in range(N)] + [qutip.basis(fock, 0)])
    e_ops = {f"{c}{p}": S[c] ** p for c in "xyz" for p in (1, 2)}
    e_ops.update({"a": a, "n": a.dag() * a})
    r = qutip.mesolve(H, psi0, times, c_ops, e_ops=e_ops, options={"method": "dop853", **TIGHT})
    e = {k: np.asarray(v) for k, v in r.e_data.items()}
    # mean field from the package (the same trajectory the cost is measured against), per-spin α → paper α (M = 1: same)
    from opendicke import evolve

    mf = evolve(model, 1, times=times, representation="groups")
    mvec = mf.bloch.values[:, 0, :]
    alpha = mf.alpha.values[:, 0]
    cost = np.zeros(times.size)
    for c_i, c in enumerate("xyz"):
        cost += np.real(e[f"{c}2"]) / N**2 - 2 * mvec[:, c_i] * np.real(e[f"{c}1"]) / N + mvec[:, c_i] ** 2
    cost += (2 * np.real(e["n"]) + 1) / N - 4 * np.real(np.conj(alpha) * e["a"]) / np.sqrt(N) + 2 * np.abs(alpha) ** 2
    assert np.abs(ds.cost.values - cost).max() <= 1e-8
    assert cost[-1] > cost[0]  # the trajectories separate


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_rejected_with_a_clear_message():
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=4, seed=1)
    with pytest.raises(ValueError, match="finite n_spins"):
        solve(DickeModel(omega=0.5, omega_modes=[1.5]), 1)
    with pytest.raises(ValueError, match="pure spin states"):
        build(model, BlochState(np.full((4, 3), 0.3)))
    with pytest.raises(ValueError, match="fock"):
        build(model, 1, fock=1)
    with pytest.raises(ValueError, match="fock"):
        build(model, 1, fock=[4, 5])
    with pytest.raises(ValueError, match="max_dim"):
        solve(model, 1, fock=40, max_dim=100)
    with pytest.raises(ValueError, match="tol"):
        solve(model, 1, tol=-1.0)
    with pytest.raises(ValueError, match="method"):
        solve(model, 1, method="rk4")
    with pytest.raises(ValueError, match="pattern"):
        solve(model, 5)


# ----------------------------------------------------------------------------- quantum trajectories
@pytest.fixture(scope="module")
def sixteen_spins():
    """N_sp = 16, M = 1, pattern 1, t ≤ 4 at a common (small) cutoff: master equation reference."""
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=16, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        me = solve(model, 1, t_final=4.0, times=21, fock=12, **TIGHT)
    return model, me


def _trajectories(model, ntraj, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        return solve(model, 1, t_final=4.0, times=21, fock=12, method="mcsolve", ntraj=ntraj, seed=seed)


def test_trajectories_agree_with_master_equation_within_three_sigma(sixteen_spins):
    model, me = sixteen_spins
    mc = _trajectories(model, 300, seed=1)
    for name in ("overlap", "occupation", "cost"):
        diff = np.abs(mc[name].values - me[name].values)
        sigma = mc[f"{name}_error"].values
        assert np.all(diff <= 3 * sigma + 1e-10), (name, np.max(diff / (sigma + 1e-300)))
    # the error bars are informative: the trajectory mean tracks the dynamics, not just the start
    assert mc.overlap_error.values[1:].max() < 0.05 < np.ptp(me.overlap.values)
    assert mc.overlap_error.values[1] > 0  # early times: few jumps, yet an honest (non-zero) error bar


def test_trajectory_error_bars_shrink_as_inverse_square_root(sixteen_spins):
    model, _ = sixteen_spins
    small = _trajectories(model, 100, seed=2)
    large = _trajectories(model, 400, seed=3)
    late = slice(5, None)  # t ≥ 1: most trajectories have jumped
    for name in ("overlap_error", "occupation_error", "cost_error"):
        ratio = np.mean(small[name].values[late]) / np.mean(large[name].values[late])
        assert 1.6 < ratio < 2.5, (name, ratio)


def test_method_is_chosen_by_memory_and_reported():
    from opendicke.quantum import MethodWarning, master_equation_memory

    small = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=4, seed=1)
    ds = solve(small, 1, t_final=1.0, times=5, cost=False)
    assert ds.attrs["method"] == "chebyshev" and "overlap_error" not in ds
    large = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=60, seed=1)
    # 61 × 60 = 3660 states: the master equation needs ~0.43 GiB; with a 0.1 GiB budget it does not fit
    assert master_equation_memory("chebyshev", 3660) > 0.1 * 2**30
    fractions = []
    with pytest.warns(MethodWarning, match="memory budget"):
        ds = solve(large, 1, t_final=0.3, times=4, fock=60, ntraj=4, seed=0, progress=fractions.append,
                   memory=0.1 * 2**30)
    assert ds.attrs["method"] == "trajectories" and ds.attrs["dimension"] > 1000 and ds.attrs["ntraj"] == 4
    assert "overlap_error" in ds and "cost_error" in ds
    assert fractions[-1] == pytest.approx(1.0) and np.all(np.diff(fractions) > 0)
    # an explicit method overrides the choice
    ds = solve(small, 1, t_final=1.0, times=5, method="mcsolve", ntraj=10, seed=0, cost=False)
    assert ds.attrs["method"] == "mcsolve"


def test_results_round_trip_through_netcdf(tmp_path):
    from opendicke.io import load_dataset, save_dataset

    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.0, n_spins=4, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        for method in ("mesolve", "mcsolve"):
            ds = solve(model, 1, t_final=1.0, times=5, fock=4, method=method, ntraj=6, seed=1)
            back = load_dataset(save_dataset(ds, tmp_path / f"{method}.nc"))
            xr_testing = pytest.importorskip("xarray.testing")
            xr_testing.assert_allclose(ds, back)
            assert back.attrs["method"] == method and back.alpha.dtype.kind == "c"
