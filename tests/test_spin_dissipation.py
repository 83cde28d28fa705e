"""Individual spin dissipation (issue 15): model fields, mean field with Bloch damping, exact PI solver.

References are built here from QuTiP primitives (sigmam, sigmaz, destroy) on individual, ungauged spins, or
are closed forms derived in docs/spin-dissipation.md; no package code enters a reference.
"""

import math
import warnings

import numpy as np
import pytest
import qutip

import opendicke as od
from opendicke.io import load_model, save_model
from opendicke.quantum import permutation as pi

RATES = dict(gamma_down=0.3, gamma_up=0.1, gamma_phi=0.2)


# ------------------------------------------------------------------------------------ model
@pytest.mark.parametrize("name", ["gamma_down", "gamma_up", "gamma_phi"])
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "x"])
def test_bad_rates_name_the_rate(name, bad):
    with pytest.raises(ValueError, match=name):
        od.DickeModel(omega=0.5, omega_modes=[1.5], **{name: bad})


def test_rates_round_trip_and_old_files_load(tmp_path):
    model = od.DickeModel(omega=0.5, omega_modes=[1.5, 2.0], n_spins=6, seed=1, **RATES)
    save_model(model, tmp_path / "m.toml")
    again = load_model(tmp_path / "m.toml")
    assert again == model and again.gamma_down == 0.3 and again.gamma_phi == 0.2
    assert again != model.replace(gamma_phi=0.0)
    old = tmp_path / "old.toml"
    old.write_text("omega = 0.5\nomega_modes = [1.5]\nkappa = 1.0\ng0 = 1.0\n")
    plain = load_model(old)
    assert (plain.gamma_down, plain.gamma_up, plain.gamma_phi) == (0.0, 0.0, 0.0) and not plain.spin_dissipation
    save_model(plain, tmp_path / "m2.toml")
    assert "gamma" not in (tmp_path / "m2.toml").read_text()  # files of the paper's model stay as they were


def test_cli_model_options_take_the_rates():
    from opendicke.cli.common import build_model

    model = build_model(omega_modes="1.5", gamma_down=0.2, gamma_phi=0.05)
    assert (model.gamma_down, model.gamma_up, model.gamma_phi) == (0.2, 0.0, 0.05)
    with pytest.raises(ValueError, match="gamma_up"):
        build_model(gamma_up=-1.0)


# ------------------------------------------------------------------------------------ reduction
def test_groups_split_by_gauge_sign_only_when_decay_and_pumping_differ():
    model = od.DickeModel(omega=0.5, omega_modes=[1.5, 2.0, 2.5], n_spins=40, seed=2)
    plain = od.reduce(model)
    assert od.reduce(model.replace(gamma_phi=0.3, gamma_down=0.2, gamma_up=0.2, patterns=model.patterns)).n_groups == plain.n_groups
    split = od.reduce(model.replace(gamma_down=0.2, patterns=model.patterns))
    G = model.patterns.astype(int)
    for k in range(split.n_groups):
        spins = np.flatnonzero(split.group_of_spin == k)
        assert np.all(G[0, spins] == split.group_gauge[k])  # one gauge sign per group
        assert np.all((G[:, spins] * G[0, spins]) == split.f[:, [k]])  # one gauged column per group
    assert split.sizes.sum() == 40 and split.n_groups == len({tuple(c) for c in G.T})
    tl = od.reduce(od.paper_model().replace(gamma_up=0.1))
    assert tl.n_groups == 16 and np.allclose(tl.weights, 1 / 16) and tl.group_gauge.tolist() == [1, -1] * 8


# ------------------------------------------------------------------------------------ mean field
def test_meanfield_groups_and_spins_agree_with_dissipation():
    model = od.DickeModel(omega=0.5, omega_modes=[1.5, 2.0, 2.5], kappa=1.0, g0=1.2, n_spins=60, seed=3, **RATES)
    start = od.CorruptedPattern(2, flip=0.1, seed=1)
    groups = od.evolve(model, start, t_final=20, times=41, representation="groups")
    spins = od.evolve(model, start, t_final=20, times=41, representation="spins")
    assert groups.sizes["group"] < 20 and spins.sizes["group"] == 60
    assert float(abs(groups.overlap - spins.overlap).max()) < 1e-9
    assert float(abs(groups.alpha - spins.alpha).max()) < 1e-9
    # the exact Bloch-length equation holds along both trajectories
    assert float(groups.length_drift) < 1e-8 and float(spins.length_drift) < 1e-8
    # and the lengths really change (the check is not the old conserved-length one)
    assert float(abs(groups.bloch_length.isel(time=-1) - groups.bloch_length.isel(time=0)).max()) > 0.1


def test_length_check_detects_wrong_damping():
    """A deliberately wrong damping term (Γ∥ doubled) breaks the length budget: the check can fail."""
    from opendicke.meanfield.equations import MeanFieldRHS
    from opendicke.meanfield.integrator import integrate

    rhs = MeanFieldRHS(np.ones((1, 1)), np.ones(1), np.array([0.5]), np.array([1.0]), np.array([[1.5]]), np.array([[1.0]]),
                       np.array([0.3]), np.array([0.1]), np.array([0.2]), np.array([1]), length_budget=True)
    y0 = np.array([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    good = integrate(rhs, y0, np.linspace(0, 5, 11))[0]
    length2 = lambda ys: np.sum(ys[:, 0, :3] ** 2, axis=-1)  # noqa: E731
    assert np.max(np.abs(length2(good) - 1.0 - good[:, 0, 5])) < 1e-9
    wrong = MeanFieldRHS(rhs.f, rhs.weights, rhs.omega, rhs.g0, rhs.omega_modes, rhs.kappa, np.array([0.6]), np.array([0.1]),
                         np.array([0.05]), np.array([1]), length_budget=False)
    ys = integrate(wrong, y0[:, :5], np.linspace(0, 5, 11))[0]
    assert np.max(np.abs(length2(ys) - 1.0 - good[:, 0, 5])) > 1e-2


@pytest.mark.parametrize("pattern_sign", [1, -1])
def test_single_spin_bloch_equations_match_qutip(pattern_sign):
    """One spin, g0 = 0 (decoupled, so mean field is exact): Bloch vector from evolve vs QuTiP mesolve.

    pattern_sign = −1 makes the spin a gauged one in the reduction (G[1, j] = −1): it must still decay
    towards σ_z = −1 in the original frame.
    """
    gd, gu, gp, omega = 0.4, 0.1, 0.3, 0.7
    model = od.DickeModel(omega=omega, omega_modes=[1.0], kappa=1.0, g0=0.0, patterns=[[pattern_sign]],
                          gamma_down=gd, gamma_up=gu, gamma_phi=gp)
    v0 = np.array([0.6, 0.0, 0.8])
    t = np.linspace(0, 6, 25)
    ds = od.evolve(model, od.BlochState(v0[None, :]), t_final=6, times=t, representation="groups")
    gauged = ds.bloch.isel(group=0).values
    ours = gauged * np.array([1, pattern_sign, pattern_sign])  # back to the original frame
    H = omega * qutip.sigmax()
    c_ops = [math.sqrt(gd) * qutip.sigmam(), math.sqrt(gu) * qutip.sigmap(), math.sqrt(gp / 2) * qutip.sigmaz()]
    rho0 = 0.5 * (qutip.qeye(2) + v0[0] * qutip.sigmax() + v0[1] * qutip.sigmay() + v0[2] * qutip.sigmaz())
    ref = qutip.mesolve(H, rho0, t, c_ops, e_ops=[qutip.sigmax(), qutip.sigmay(), qutip.sigmaz()],
                        options={"atol": 1e-12, "rtol": 1e-10})
    assert np.max(np.abs(ours - np.array(ref.expect).T)) < 1e-7
    # Ω = 0: σ_z relaxes to (γ↑ − γ↓)/(γ↑ + γ↓) at rate γ↓ + γ↑; coherences decay at γφ + (γ↓ + γ↑)/2
    still = od.evolve(model.replace(omega=0.0), od.BlochState(v0[None, :]), t_final=6, times=t, representation="spins")
    b = still.bloch.isel(group=0).values
    z_eq = (gu - gd) / (gu + gd)
    assert np.allclose(b[:, 2], z_eq + (v0[2] - z_eq) * np.exp(-(gd + gu) * t), atol=1e-9)
    assert np.allclose(b[:, 0], v0[0] * np.exp(-(gp + 0.5 * (gd + gu)) * t), atol=1e-9)


# ------------------------------------------------------------------------------------ exact PI solver
def _brute_force(patterns, starts, omega, omega_modes, kappa, g0, rates, fock, t):
    """Individual spins ⊗ modes in QuTiP, ungauged, from sigmam/sigmaz/destroy only."""
    G = np.asarray(patterns)
    M, N = G.shape
    dims = [2] * N + [fock] * M

    def op(single, index):
        parts = [qutip.qeye(d) for d in dims]
        parts[index] = single
        return qutip.tensor(parts)

    sz = [op(qutip.sigmaz(), j) for j in range(N)]
    sx = [op(qutip.sigmax(), j) for j in range(N)]
    a = [op(qutip.destroy(fock), N + mu) for mu in range(M)]
    H = sum(omega * sx[j] for j in range(N)) + sum(omega_modes[mu] * a[mu].dag() * a[mu] for mu in range(M))
    H += sum(g0 / math.sqrt(N) * G[mu, j] * (a[mu] + a[mu].dag()) * sz[j] for mu in range(M) for j in range(N))
    c_ops = [math.sqrt(kappa) * a[mu] for mu in range(M)]
    gd, gu, gp = rates
    for j in range(N):
        if gd:
            c_ops.append(math.sqrt(gd) * op(qutip.sigmam(), j))
        if gu:
            c_ops.append(math.sqrt(gu) * op(qutip.sigmap(), j))
        if gp:
            c_ops.append(math.sqrt(gp / 2) * sz[j])
    psi = qutip.tensor([qutip.basis(2, 0 if s > 0 else 1) for s in starts] + [qutip.basis(fock, 0)] * M)
    e_ops = [sum(G[mu, j] * sz[j] for j in range(N)) / N for mu in range(M)]
    e_ops += [a[mu].dag() * a[mu] / N for mu in range(M)] + [a[mu] / math.sqrt(N) for mu in range(M)]
    res = qutip.mesolve(H, psi, t, c_ops, e_ops=e_ops, options={"atol": 1e-13, "rtol": 1e-11, "nsteps": 100000})
    ex = [np.asarray(e) for e in res.expect]
    return np.stack(ex[:M], 1).real, np.stack(ex[M:2 * M], 1).real, np.stack(ex[2 * M:], 1)


CASES = [
    # (patterns, start: pattern number and flipped spins, rates, fock, t_final); the first six run by default
    ([[1, 1, 1, 1, 1]], (1, [1]), (0.3, 0.1, 0.2), 6, 2.0),  # blocks of 4 and 1 spins, all processes
    ([[1, -1, 1, 1]], (1, []), (0.3, 0.0, 0.0), 6, 2.0),  # decay alone
    ([[1, -1, 1, 1]], (1, [2]), (0.0, 0.2, 0.0), 6, 2.0),  # pumping alone, corrupted start
    ([[1, 1, -1]], (1, []), (0.0, 0.0, 0.4), 6, 2.0),  # dephasing alone
    ([[1, -1, 1], [1, 1, -1]], (2, []), (0.3, 0.1, 0.2), 4, 1.5),
    ([[1, -1, 1], [1, 1, -1], [-1, 1, 1]], (3, []), (0.3, 0.1, 0.2), 3, 1.0),
    ([[1, -1, 1, -1, 1]], (1, [0]), (0.3, 0.1, 0.2), 6, 1.5),
    ([[1, -1, 1, 1], [1, 1, -1, 1]], (1, [3]), (0.2, 0.0, 0.3), 4, 1.5),
    ([[1, -1, 1, 1], [1, 1, -1, 1], [-1, 1, 1, 1]], (2, [1]), (0.3, 0.1, 0.2), 3, 1.0),
    ([[1, -1, 1, 1, -1], [1, 1, -1, 1, 1], [-1, 1, 1, 1, -1]], (1, [0]), (0.3, 0.1, 0.2), 3, 1.0),
]


@pytest.mark.filterwarnings("ignore::opendicke.quantum.permutation.FockCutoffWarning")
@pytest.mark.parametrize("case", CASES[:6])
def test_permutation_solver_matches_individual_spins(case):
    patterns, (nu, flips), rates, fock, t_final = case
    G = np.asarray(patterns)
    starts = G[nu - 1].copy()
    starts[flips] *= -1
    omega, omega_modes, kappa, g0 = 0.5, [1.5, 2.0, 2.5][: G.shape[0]], 1.0, 1.1
    t = np.linspace(0, t_final, 7)
    model = od.DickeModel(omega=omega, omega_modes=omega_modes, kappa=kappa, g0=g0, patterns=G,
                          gamma_down=rates[0], gamma_up=rates[1], gamma_phi=rates[2])
    start = od.CorruptedPattern(nu, n_flip=0) if not flips else od.BlochState(
        np.stack([np.zeros_like(starts), np.zeros_like(starts), starts], 1).astype(float))
    ds = pi.solve(model, start, times=t, fock=fock)
    xi, occ, alpha = _brute_force(G, starts, omega, omega_modes, kappa, g0, rates, fock, t)
    assert np.max(np.abs(ds.overlap.values - xi)) < 1e-8
    assert np.max(np.abs(ds.occupation.values - occ)) < 1e-8
    assert np.max(np.abs(ds.alpha.values - alpha)) < 1e-8
    assert np.max(np.abs(ds.trace.values - 1)) < 1e-10


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::opendicke.quantum.permutation.FockCutoffWarning")
@pytest.mark.parametrize("case", CASES[6:])
def test_permutation_solver_matches_individual_spins_slow(case):
    test_permutation_solver_matches_individual_spins(case)


def test_permutation_solver_without_rates_matches_the_maximal_spin_solver():
    """Zero spin rates: the PI space must reproduce the maximal-spin reduced basis (a second representation)."""
    from opendicke import quantum

    model = od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=5, seed=2)
    start = od.CorruptedPattern(1, n_flip=2, seed=0)
    t = np.linspace(0, 2, 5)
    ours = pi.solve(model, start, times=t, fock=6, compare_meanfield=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small cutoff is deliberate: both sides use the same one
        plain = quantum.solve(model, start, times=t, fock=6, method="expm", frame="plain")
    assert float(abs(ours.overlap - plain.overlap).max()) < 1e-10
    assert float(abs(ours.occupation - plain.occupation).max()) < 1e-10
    assert float(abs(ours.bloch - plain.bloch).max()) < 1e-10  # group Bloch vectors, gauged frame
    with pytest.raises(ValueError, match="permutation"):  # the maximal-spin basis refuses spin rates
        quantum.build(model.replace(gamma_phi=0.1, patterns=model.patterns), start, fock=4)


# ------------------------------------------------------------------------------------ theory
def _bloch_matrix(h, omega, gd, gu, gp):
    """ṡ = A s + b for one spin in the field (2Ω, 0, h) with the issue's processes (built here from the Lindbladian)."""
    t, l = gp + 0.5 * (gd + gu), gd + gu
    A = np.array([[-t, -h, 0.0], [h, -t, -2 * omega], [0.0, 2 * omega, -l]])
    return A, np.array([0.0, 0.0, gu - gd])


def test_stationary_bloch_solves_the_bloch_equations():
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, omega = rng.normal(size=2)
        gd, gu, gp = rng.uniform(0, 1, size=3)
        A, b = _bloch_matrix(h, omega, gd, gu, gp)
        assert np.allclose(od.theory.stationary_bloch(h, omega, gd, gu, gp), np.linalg.solve(A, -b), atol=1e-12)


def test_no_retrieval_state_in_the_thermodynamic_limit():
    """Balanced patterns: the only fixed point is the paramagnet (ξ = 0, α = 0); long runs from every pattern reach it."""
    model = od.paper_model(g0=1.2).replace(**RATES)
    assert np.array_equal(od.theory.dissipative_stationary_overlaps(model), np.zeros((1, 4)))
    ds = od.evolve(model, [1, 2], t_final=150, times=3)
    assert float(abs(ds.overlap.isel(time=-1)).max()) < 1e-8 and float(abs(ds.alpha.isel(time=-1)).max()) < 1e-8
    A, b = _bloch_matrix(0.0, 0.5, RATES["gamma_down"], RATES["gamma_up"], RATES["gamma_phi"])
    para = np.linalg.solve(A, -b)  # original frame; gauged groups see (x, −y, −z)
    g = ds.bloch.isel(time=-1, initial=0).values
    gauge = np.asarray(od.reduce(model).group_gauge)[:, None]
    assert np.allclose(g, para[None, :] * np.where(np.array([1, 0, 0]) == 1, 1, gauge), atol=1e-8)


def test_uniform_pattern_fixed_points_are_the_cubic_roots():
    """M = 1, all-+1 pattern at finite N: the long run lands on one of the roots of the cubic (bistable here)."""
    model = od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.5, patterns=[[1] * 20], gamma_down=0.05, gamma_phi=0.02)
    roots = od.theory.dissipative_stationary_overlaps(model)[:, 0]
    assert roots.size == 3
    # each root satisfies the self-consistency built here: ξ = s_z(h = −λ ξ)
    lam = 4 * 1.5**2 * 1.5 / (1.5**2 + 0.25)
    for xi in roots:
        A, b = _bloch_matrix(-lam * xi, 0.5, 0.05, 0.0, 0.02)
        assert abs(np.linalg.solve(A, -b)[2] - xi) < 1e-10
    final = float(od.evolve(model, 1, t_final=1500, times=3).overlap.isel(time=-1, pattern=0))
    assert np.min(np.abs(roots - final)) < 1e-6


def test_weak_decay_limit_of_the_uniform_pattern():
    """γ↓ → 0: the cubic's decayed branch tends to ξ± = −½[1 ± √(1 − 2(g_c/g0)^4)], born at g0 = 2^{1/4} g_c."""
    g_c = float(od.critical_coupling(0.5, 1.5, 1.0))
    for g0 in (0.8, 1.0, 1.4):
        model = od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=g0, patterns=[[1] * 4], gamma_down=1e-8)
        roots = od.theory.dissipative_stationary_overlaps(model)[:, 0]
        plus, minus = od.theory.weak_decay_uniform_overlaps(g0, 0.5, 1.5, 1.0)
        assert roots.size == 3 and np.min(np.abs(roots - plus)) < 1e-6 and np.min(np.abs(roots - minus)) < 1e-6
    below = od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=0.99 * 2**0.25 * g_c, patterns=[[1] * 4], gamma_down=1e-8)
    assert od.theory.dissipative_stationary_overlaps(below).shape[0] == 1
    assert np.isnan(od.theory.weak_decay_uniform_overlaps(0.99 * 2**0.25 * g_c, 0.5, 1.5, 1.0)[0])


def test_finite_n_fixed_point_matches_long_run():
    model = od.DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.5, n_spins=30, seed=4, **RATES)
    found = od.theory.dissipative_stationary_overlaps(model)
    final = od.evolve(model, [1, 2], t_final=300, times=3).overlap.isel(time=-1).values
    assert found.shape[0] == 1
    assert np.max(np.abs(final - found[0])) < 1e-8


def test_kirton_keeling_threshold_is_where_the_normal_state_turns_unstable():
    """KK's processes act in the σ_x eigenbasis here; an independent mean field (built in this test) of one spin
    with x-basis decay/dephasing and one mode: the normal state loses stability exactly at the formula's g_c."""
    omega, om, kap, gd, gp = 0.5, 1.5, 1.0, 0.2, 0.1

    def rhs(y, g0):
        sx, sy, sz, ar, ai = y
        h = 4 * g0 * ar
        t, l = gp + gd / 2, gd
        return np.array([-h * sy - l * (sx + 1), h * sx - 2 * omega * sz - t * sy, 2 * omega * sy - t * sz,
                         om * ai - kap / 2 * ar, -om * ar - kap / 2 * ai - g0 * sz])

    def growth(g0):
        y = np.array([-1.0, 0, 0, 0, 0])
        J = np.array([(rhs(y + 1e-7 * e, g0) - rhs(y - 1e-7 * e, g0)) / 2e-7 for e in np.eye(5)]).T
        return np.max(np.linalg.eigvals(J).real)

    g_c = float(od.theory.kirton_keeling_threshold(omega, om, kap, gd, gp))
    assert growth(g_c * 0.999) < 0 < growth(g_c * 1.001)
    assert g_c > float(od.critical_coupling(omega, om, kap))  # dissipation raises the threshold
    assert np.isinf(od.theory.kirton_keeling_threshold(omega, om, kap, 0.0, gp))  # pure dephasing: no transition
    assert np.isclose(od.theory.kirton_keeling_threshold(omega, om, kap, 1e-12, 0.0), od.critical_coupling(omega, om, kap))


# ------------------------------------------------------------------------------------ CLI
def test_cli_quantum_uses_the_permutation_solver_and_other_commands_refuse_rates():
    import json

    from typer.testing import CliRunner

    from opendicke.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["quantum", "--omega-modes", "1.5", "--patterns", "++-", "--gamma-down", "0.2",
                                 "--gamma-phi", "0.1", "--t-final", "1", "--times", "3", "--fock", "8", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["frame"] == "permutation" and len(record["overlaps"][0]) == 3
    model = od.DickeModel(omega=0.5, omega_modes=[1.5], patterns=[[1, 1, -1]], gamma_down=0.2, gamma_phi=0.1)
    direct = pi.solve(model, 1, t_final=1, times=3, fock=8, compare_meanfield=False)
    assert np.allclose(record["overlaps"][0], direct.overlap.values[:, 0], atol=1e-12)
    for command in (["theory"], ["memory", "which"]):
        refused = runner.invoke(app, [*command, "--gamma-up", "0.1"])
        assert refused.exit_code == 2 and "gamma" in refused.output


def test_jacobian_with_damping_and_length_budget_matches_finite_differences():
    from opendicke.meanfield.equations import MeanFieldRHS
    from opendicke.meanfield.jacobian import jacobian

    rng = np.random.default_rng(1)
    f = np.array([[1, 1], [1, -1]], dtype=float)
    rhs = MeanFieldRHS(f, np.array([0.5, 0.5]), np.array([0.5]), np.array([1.1]), np.array([[1.5, 2.0]]), np.array([[1.0, 0.7]]),
                       np.array([0.3]), np.array([0.1]), np.array([0.2]), np.array([1, -1]), length_budget=True)
    y = rng.normal(size=(1, rhs.size))
    J = jacobian(rhs, y)[0]
    eps = 1e-6
    fd = np.array([(rhs(y + eps * e[None]) - rhs(y - eps * e[None]))[0] / (2 * eps) for e in np.eye(rhs.size)]).T
    assert np.max(np.abs(J - fd)) < 1e-8


def test_permutation_result_carries_the_common_and_model_attributes(tmp_path):
    from opendicke.io import load_dataset, save_dataset
    from opendicke.results import COMMON_ATTRS, MODEL_ATTRS

    model = od.DickeModel(omega=0.5, omega_modes=[1.5], patterns=[[1, -1]], gamma_up=0.2)
    ds = pi.solve(model, 1, t_final=0.5, times=3, fock=4, compare_meanfield=False)
    assert set(COMMON_ATTRS + MODEL_ATTRS) <= set(ds.attrs) and ds.attrs["gamma_up"] == 0.2
    back = load_dataset(save_dataset(ds, tmp_path / "pi.nc"))
    assert np.allclose(back.alpha.values, ds.alpha.values) and list(back.pattern.values) == [1]


# ------------------------------------------------------------------------------------ fast paths (compiled kernel)
def _three_block_two_mode_problem(fock=4):
    model = od.DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=[1.0, 0.7], g0=1.1, patterns=[[1, -1, 1], [1, 1, -1]],
                          gamma_down=0.3, gamma_up=0.1, gamma_phi=0.2)
    start = od.BlochState(np.array([[0.3, 0.4, 0.5], [0.0, 0.0, -1.0], [0.6, 0.0, 0.8]]))
    return pi.build(model, start, fock=fock)


def test_compiled_real_kernel_is_the_sparse_liouvillian():
    """One application of the structured real kernel equals the complex sparse Liouvillian (3 blocks, 2 modes,
    mixed complex single-spin states, unequal κ) mapped to X = Re ρ + Im ρ."""
    from scipy.sparse.linalg import expm_multiply

    from opendicke.quantum.permutation_fast import RealGenerator

    p = _three_block_two_mode_problem()
    gen = RealGenerator.build(p)
    rho = expm_multiply(p.liouvillian * 0.3, p.initial_vector())  # a generic state with coherences
    X = gen.to_real(rho)
    out = np.empty_like(X)
    gen.apply(X, out, out, gen.coefficients())
    ref = gen.to_real(p.liouvillian @ rho)
    assert np.max(np.abs(out - ref)) < 1e-13 * np.max(np.abs(ref))
    # the observables as real functionals of X reproduce the complex expectation values
    names, F_re, F_im = gen.functionals()
    values = F_re @ X.ravel() + 1j * (F_im @ X.ravel())
    direct = p.expectations(rho[None, :])
    assert max(abs(values[i] - direct[name][0]) for i, name in enumerate(names)) < 1e-14


@pytest.mark.parametrize("method", ["chebyshev", "rk", "dop853"])
def test_propagation_methods_agree_with_expm(method):
    p = _three_block_two_mode_problem()
    t = np.linspace(0, 1.5, 7)
    ref = pi.propagate(p, t, method="expm")
    run = pi.propagate(p, t, method=method, atol=1e-12, rtol=1e-10)
    assert max(np.max(np.abs(run.values[k] - ref.values[k])) for k in ref.values) < 1e-9


def test_chebyshev_recovers_from_a_too_small_spectral_bound():
    """The ellipse is verified at run time: one that misses most of the spectrum is enlarged, not trusted."""
    from opendicke.quantum.chebyshev import SpectralBound
    from opendicke.quantum.permutation_fast import RealGenerator, chebyshev_values

    p = _three_block_two_mode_problem()
    gen = RealGenerator.build(p)
    names, F_re, F_im = gen.functionals()
    t = np.linspace(0, 1.5, 7)
    X0 = gen.to_real(p.initial_vector())
    good, stats = chebyshev_values(gen, X0, F_re, F_im, t)
    bad, bad_stats = chebyshev_values(gen, X0, F_re, F_im, t, bound=SpectralBound(a=2.0, b=0.5))
    assert stats.restarts == 0 and bad_stats.restarts > 0
    assert np.max(np.abs(bad - good)) < 1e-10
    ref = pi.propagate(p, t, method="expm")
    assert max(np.max(np.abs(good[i] - ref.values[name])) for i, name in enumerate(names)) < 1e-10


@pytest.mark.filterwarnings("ignore::opendicke.quantum.permutation.FockCutoffWarning")
def test_displaced_frame_matches_individual_spins_and_the_lab_frame():
    """Displaced frame (modes displaced along the exact <a>(t)) at a converged cutoff against brute-force QuTiP on
    individual spins and against the lab frame, all three rates, a pattern with two blocks."""
    G, rates, fock = [[1, 1, -1]], (0.3, 0.1, 0.2), 22
    model = od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.1, patterns=G, gamma_down=rates[0],
                          gamma_up=rates[1], gamma_phi=rates[2])
    t = np.linspace(0, 2.0, 7)
    shifted = pi.propagate(pi.build(model, 1, fock=fock), t, frame="displaced", atol=1e-13, rtol=1e-11)
    lab = pi.propagate(pi.build(model, 1, fock=26), t)
    xi, occ, alpha = _brute_force(G, np.array(G[0]), 0.5, [1.5], 1.0, 1.1, rates, fock, t)
    for ref_xi, ref_occ, ref_alpha in ((xi, occ, alpha), (lab.overlaps(), lab.occupations(), lab.alphas())):
        assert np.max(np.abs(shifted.overlaps() - ref_xi)) < 1e-8
        assert np.max(np.abs(shifted.occupations() - ref_occ)) < 1e-8
        assert np.max(np.abs(shifted.alphas() - ref_alpha)) < 1e-8
    # <b> stays ~0 (β follows the exact <a>) and the fluctuations hold fewer quanta than the mode
    assert np.max(np.abs(shifted.values["b_0"])) < 1e-8
    assert np.max(np.real(shifted.values["bn_0"])) < np.max(np.real(shifted.values["n_0"]))
    # a wrong frame (β frozen at its initial value while the generator assumes it moves) would fail: check the
    # lab observable is not simply the fluctuation part
    assert np.max(np.abs(shifted.values["beta_0"])) > 0.1


def test_displaced_frame_with_two_modes_matches_the_lab_frame():
    """Three blocks with mixed, complex single-spin states, two modes (unequal κ), short window, converged cutoffs."""
    t = np.linspace(0, 0.3, 4)
    lab = pi.propagate(_three_block_two_mode_problem(fock=11), t)
    shifted = pi.propagate(_three_block_two_mode_problem(fock=9), t, frame="displaced", atol=1e-13, rtol=1e-11)
    assert np.max(np.abs(shifted.overlaps() - lab.overlaps())) < 1e-8
    assert np.max(np.abs(shifted.occupations() - lab.occupations())) < 1e-8
    assert np.max(np.abs(shifted.alphas() - lab.alphas())) < 1e-8
    assert np.max(np.abs(shifted.block_bloch() - lab.block_bloch())) < 1e-8


def test_solve_in_the_displaced_frame_and_bad_options():
    model = od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, patterns=[[1, 1, 1, 1]], gamma_down=0.1,
                          gamma_phi=0.1)
    ds = pi.solve(model, 1, t_final=2.0, times=5, tol=1e-4, frame="displaced", compare_meanfield=False)
    lab = pi.solve(model, 1, t_final=2.0, times=5, tol=1e-4, compare_meanfield=False)
    assert ds.attrs["boson_frame"] == "displaced" and lab.attrs["boson_frame"] == "lab"
    assert float(abs(ds.overlap - lab.overlap).max()) < 1e-3
    assert float(abs(ds.occupation - lab.occupation).max()) < 1e-3
    with pytest.raises(ValueError, match="frame"):
        pi.propagate(pi.build(model, 1, fock=4), [0, 1], frame="rotating")
    with pytest.raises(ValueError, match="displaced"):
        pi.propagate(pi.build(model, 1, fock=4), [0, 1], frame="displaced", method="chebyshev")
    with pytest.raises(ValueError, match="method"):
        pi.propagate(pi.build(model, 1, fock=4), [0, 1], method="euler")


def test_cutoff_search_is_the_basis_search_and_meets_tol_against_a_far_larger_cutoff():
    """The permutation-invariant basis runs the one truncation search (quantum/basis.py): cutoffs grow by the
    measured Fock tail, the run is accepted on a change ≤ tol, every run's CPU time is recorded; the accepted run
    agrees with a fixed cutoff 12 levels larger (no search involved) to ≤ tol."""
    import json

    model = od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, patterns=[[1] * 4], gamma_down=0.1,
                          gamma_phi=0.1)
    t = np.linspace(0, 3.0, 7)
    tol = 1e-5
    ds = pi.solve(model, 1, times=t, tol=tol, compare_meanfield=False)
    history = json.loads(ds.attrs["fock_history"])
    assert int(ds.fock_converged) == 1 and float(ds.fock_change) <= tol and len(history) >= 2
    assert all(h["cpu_seconds"] >= 0 for h in history) and history[-1]["fock"] == ds.fock.values.tolist()
    assert ds.attrs["solver_frame"] == "permutation" and ds.attrs["kind"] == "quantum_evolution"
    big = pi.propagate(pi.build(model, 1, fock=int(ds.fock.values[0]) + 12), t)
    assert np.max(np.abs(ds.overlap.values - big.overlaps())) <= tol
    assert np.max(np.abs(ds.occupation.values - big.occupations())) <= tol
    # the tail was measured (levels below the top), and the search's steps follow it, not fixed +25 % steps
    run = pi.as_propagation(pi.propagate(pi.build(model, 1, fock=history[0]["fock"]), t))
    assert np.all(np.isfinite(run.tail_ratio())) and np.all(run.tail_ratio() < 1)


@pytest.mark.slow  # compiling the parallel kernel takes 13-27 s on a fresh clone
def test_threads_give_the_serial_result():
    p = _three_block_two_mode_problem()
    t = np.linspace(0, 1.0, 4)
    serial = pi.propagate(p, t)
    threaded = pi.propagate(p, t, threads=2)
    assert max(np.max(np.abs(threaded.values[k] - serial.values[k])) for k in serial.values) < 1e-12


def test_threads_are_validated_before_any_work():
    with pytest.raises(ValueError, match="threads"):
        pi.solve(od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, patterns=[[1, 1]], gamma_down=0.1),
                 1, t_final=1, times=3, fock=4, threads=0)


# ------------------------------------------------------------------------------------ cost function E_N of the PI solver
COST_CASES = [
    # (patterns, start: pattern number and flipped spins, rates, fock, t_final)
    ([[1, -1, 1]], (1, []), (0.2, 0.2, 0.1), 6, 2.0),  # γ↓ = γ↑: one group of blocks with gauge signs +1 and -1
    ([[1, -1, 1, 1]], (1, [2]), (0.3, 0.1, 0.2), 6, 2.0),  # γ↓ ≠ γ↑, corrupted start: a group of two blocks
    ([[1, -1, 1, -1], [1, -1, -1, 1]], (1, []), (0.2, 0.2, 0.1), 4, 1.5),  # M = 2: two groups of two blocks each
]


def _reference_groups(G, gamma_down, gamma_up):
    """Gauge signs g_j = G[1, j] and the partition of the spins into groups: same gauged column G[:, j] g_j, and
    with γ↓ ≠ γ↑ also the same gauge sign (docs/spin-dissipation.md), as sets of spin indices."""
    g = G[0].astype(int)
    keys = [tuple(G[:, j] * g[j]) + ((g[j],) if gamma_down != gamma_up else ()) for j in range(G.shape[1])]
    return g, sorted(sorted(j for j in range(len(keys)) if keys[j] == key) for key in set(keys))


@pytest.mark.filterwarnings("ignore::opendicke.quantum.permutation.FockCutoffWarning")
@pytest.mark.parametrize("case", COST_CASES)
def test_permutation_cost_matches_individual_spins(case):
    """E_N (paper Eq. 9) of the PI solver against ⟨(S_{a,k}/n_k − m_{a,k})²⟩ + Σ_μ ⟨A†A + AA†⟩, A = a/√N − α_MF,
    evaluated directly on the QuTiP states of individual, ungauged spins, with the mean field of opendicke.evolve."""
    from systems.spins import individual_spins

    patterns, (nu, flips), rates, fock, t_final = case
    G = np.asarray(patterns)
    M, N_sp = G.shape
    starts = G[nu - 1].copy()
    starts[flips] *= -1
    omega, omega_modes, kappa, g0 = 0.5, [1.5, 2.0][:M], 1.0, 1.1
    t = np.linspace(0, t_final, 6)
    model = od.DickeModel(omega=omega, omega_modes=omega_modes, kappa=kappa, g0=g0, patterns=G,
                          gamma_down=rates[0], gamma_up=rates[1], gamma_phi=rates[2])
    start = od.CorruptedPattern(nu, n_flip=0) if not flips else od.BlochState(
        np.stack([np.zeros_like(starts), np.zeros_like(starts), starts], 1).astype(float))
    ds = pi.solve(model, start, times=t, fock=fock, cost=True)
    # the groups: our own rule, checked against the reduction's partition (whose order the mean field uses)
    g, groups = _reference_groups(G, rates[0], rates[1])
    grouping = od.reduce(model)
    assert np.array_equal(grouping.gauge, g)
    labels = grouping.group_of_spin
    assert sorted(sorted(np.flatnonzero(labels == k).tolist()) for k in range(grouping.n_groups)) == groups
    # some group spans two PI blocks (same original column and start), so its S² has a cross term
    assert any(len({(*G[:, j].tolist(), int(starts[j])) for j in grp}) > 1 for grp in groups)
    # brute force: states on individual spins ⊗ modes
    s = individual_spins(G, omega, omega_modes, [kappa] * M, g0, fock, rates)
    psi = qutip.tensor([qutip.basis(2, 0 if v > 0 else 1) for v in starts] + [qutip.basis(fock, 0)] * M)
    states = qutip.mesolve(s.H, psi, t, s.c_ops, options={"atol": 1e-13, "rtol": 1e-11, "nsteps": 100000,
                                                           "store_states": True}).states
    mf = od.evolve(model, start, times=t, representation="groups")
    N = N_sp / 2 ** (M - 1)  # the paper's normalisation
    m_mf = mf["bloch"].values  # (T, K, 3), gauged frame
    alpha_mf = mf["alpha"].values * math.sqrt(N_sp / N)  # ⟨a⟩/√N
    eye = s.a[0] * 0 + qutip.qeye(s.a[0].dims[0])
    expected = np.zeros(t.size)
    for k in range(grouping.n_groups):
        members = np.flatnonzero(labels == k)
        S = {"x": sum(s.sx[j] for j in members), "y": sum(g[j] * s.sy[j] for j in members),
             "z": sum(g[j] * s.sz[j] for j in members)}
        for c, a in enumerate("xyz"):
            for i, rho in enumerate(states):
                X = S[a] / len(members) - m_mf[i, k, c] * eye
                expected[i] += qutip.expect(X * X, rho)
    for mu in range(M):
        for i, rho in enumerate(states):
            A = s.a[mu] / math.sqrt(N) - alpha_mf[i, mu] * eye
            # AA† = A†A + 1/N ([a, a†] = 1; the truncated matrix of a a† misses the top level)
            expected[i] += qutip.expect(2 * A.dag() * A, rho) + 1.0 / N
    assert np.max(np.abs(ds.cost.values - expected)) < 1e-8
    assert ds.cost_initial.values == pytest.approx(expected[0], abs=1e-10)  # a fully polarised product state


def test_convergence_study_reports_the_cost_with_rates():
    from opendicke.quantum.convergence import convergence_study

    model = od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.1, gamma_down=0.2, gamma_phi=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = convergence_study(model, [3], 1, t_final=1.0, times=5, seed=0,
                                  options=od.quantum.QuantumOptions(fock=6))
        alone = pi.solve(model.replace(n_spins=3, seed=0, patterns=None), 1, t_final=1.0, times=5, fock=6, cost=True)
    assert np.all(np.isfinite(study["cost"].values))
    assert np.allclose(study["cost"].values[0], alone.cost.values, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ QuTiP (PIQS) export
_EXPORT_OPTIONS = {"atol": 1e-12, "rtol": 1e-10, "nsteps": 100000}
EXPORT_CASES = [
    # (patterns, start, rates, fock): one block; two blocks of opposite sign with γ↓ ≠ γ↑; M = 2, corrupted start
    ([[1, 1, 1, 1]], 1, (0.3, 0.1, 0.2), 6),
    ([[1, -1, 1, 1, -1]], 1, (0.3, 0.05, 0.1), 6),
    ([[1, -1, 1], [1, 1, -1]], "corrupted", (0.3, 0.1, 0.2), 4),
]


def _export_model(patterns, rates):
    G = np.asarray(patterns)
    return od.DickeModel(omega=0.5, omega_modes=[1.5, 2.0][: G.shape[0]], kappa=1.0, g0=1.1, patterns=G,
                         gamma_down=rates[0], gamma_up=rates[1], gamma_phi=rates[2])


@pytest.mark.parametrize("case", EXPORT_CASES)
def test_qutip_export_reproduces_the_permutation_solver(case):
    patterns, start, rates, fock = case
    model = _export_model(patterns, rates)
    if start == "corrupted":  # spin 1 flipped: three blocks of one spin, one of them against its pattern
        start = od.BlochState(np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]))
    problem = pi.build(model, start, fock=fock)
    t = np.linspace(0, 1.5, 6)
    run = pi.propagate(problem, t)
    q = problem.to_qutip()
    assert q.liouvillian.issuper and abs(q.rho0.tr() - 1) < 1e-12
    names = list(q.observables)
    res = qutip.mesolve(q.liouvillian, q.rho0, t, e_ops=[q.observables[k] for k in names], options=_EXPORT_OPTIONS)
    got = dict(zip(names, (np.asarray(e) for e in res.expect)))
    bloch = run.block_bloch()
    assert np.max(np.abs(bloch[-1] - bloch[0])) > 0.05  # the dynamics moves the spins
    for mu in range(problem.n_modes):
        assert np.max(np.abs(got[f"overlap_{mu + 1}"] - run.overlaps()[:, mu])) < 1e-7
        assert np.max(np.abs(got[f"occupation_{mu + 1}"] - run.occupations()[:, mu])) < 1e-7
        assert np.max(np.abs(got[f"alpha_{mu + 1}"] - run.alphas()[:, mu])) < 1e-7
    for b in range(problem.n_blocks):
        for c, a in enumerate("xyz"):
            assert np.max(np.abs(got[f"bloch_{a}_{b + 1}"] - bloch[:, b, c])) < 1e-7


@pytest.mark.parametrize("case", [
    # two blocks (mixed signs), the first spin flipped against its pattern, γ↓ ≠ γ↑
    ([[1, -1, 1]], [[0, 0, -1], [0, 0, -1], [0, 0, 1]], (0.3, 0.05, 0.2)),
    # one block of 3 tilted spins: every j sector of the Dicke basis is populated
    ([[1, 1, 1]], [[0.6, 0, 0.8]] * 3, (0.2, 0.1, 0.3)),
])
def test_qutip_export_matches_individual_spins(case):
    from systems.spins import individual_spins

    patterns, vectors, rates = case
    G, vectors = np.asarray(patterns), np.asarray(vectors, dtype=float)
    n, fock = G.shape[1], 6
    model = _export_model(G, rates)
    t = np.linspace(0, 1.5, 6)
    q = pi.build(model, od.BlochState(vectors), fock=fock).to_qutip()
    res = qutip.mesolve(q.liouvillian, q.rho0, t, e_ops=[q.observables["overlap_1"], q.observables["occupation_1"]],
                        options=_EXPORT_OPTIONS)
    s = individual_spins(G, 0.5, [1.5], [1.0], 1.1, fock, rates)
    spins = [qutip.Qobj(0.5 * np.array([[1 + v[2], v[0] - 1j * v[1]], [v[0] + 1j * v[1], 1 - v[2]]])) for v in vectors]
    rho = qutip.tensor(spins + [qutip.fock_dm(fock, 0)])
    ref = qutip.mesolve(s.H, rho, t, s.c_ops, e_ops=[sum(G[0, j] * s.sz[j] for j in range(n)) / n,
                                                    s.a[0].dag() * s.a[0] / n], options=_EXPORT_OPTIONS)
    assert np.max(np.abs(res.expect[0] - ref.expect[0])) < 1e-7
    assert np.max(np.abs(res.expect[1] - ref.expect[1])) < 1e-7
    assert np.max(np.abs(ref.expect[0] - ref.expect[0][0])) > 0.05


def test_qutip_export_refuses_a_large_dicke_space_before_building():
    model = _export_model(np.ones((1, 400), int), (0.1, 0.0, 0.0))
    problem = pi.build(model, 1, fock=4)
    import time

    start = time.process_time()
    with pytest.raises(ValueError, match="max_dim"):
        problem.to_qutip()
    assert time.process_time() - start < 1.0
    with pytest.raises(ValueError, match="max_dim"):
        pi.build(_export_model([[1, 1]], (0.1, 0, 0)), 1, fock=4).to_qutip(max_dim=100)
