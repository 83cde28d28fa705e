"""Stationary states of the mean-field equations (issue 3) against independent references.

References: the retrieval fixed point and g_c written out in conftest (docs/physics-notes.md, Conventions, paper Eq. 12); the
corrupted-pattern overlap √(r² − (g_c/g0)^4) and the docs/physics-notes.md, Measured facts example; our own right-hand side
(conftest.reference_rhs) for finite-difference Jacobians, their spectra and long scipy DOP853 runs; the
Z2 symmetry; the per-spin representation; and exact periods of decoupled precession.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PAPER_KAPPA, PAPER_OMEGA, PAPER_OMEGA_MODES, fixed_point, reference_evolve, reference_rhs

import opendicke as od
from opendicke.meanfield import MeanFieldRHS, pack
from opendicke.meanfield.jacobian import jacobian
from opendicke.meanfield.steady import (
    CLASSIFICATIONS,
    SteadyStateOptions,
    find_critical_coupling,
    newton,
    stability,
    steady_state,
)

FIG3 = od.paper_model(1.0)


def _g_c(omega, omega_nu, kappa_nu):
    return fixed_point(omega, omega_nu, kappa_nu, 1e9)[0]  # g_c does not depend on g0


def _eq12(g0, omega, omega_nu, kappa_nu):
    """(|ξ_ν|, n_ν) of the retrieval state, written out (0 below threshold)."""
    g_c = np.sqrt(0.5 * (omega / omega_nu) * (omega_nu**2 + kappa_nu**2 / 4))
    z = np.sqrt(np.clip(1 - (g_c / np.asarray(g0)) ** 4, 0, None))
    return z, np.asarray(g0) ** 2 * z**2 / (omega_nu**2 + kappa_nu**2 / 4)


G_C = np.array([_g_c(PAPER_OMEGA, om, 1.0) for om in PAPER_OMEGA_MODES])  # 0.6455 … 0.8780


def _fd_jacobian(rhs_fn, y, eps=1e-6):
    n = y.size
    J = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = eps
        J[:, j] = (rhs_fn(0.0, y + e) - rhs_fn(0.0, y - e)) / (2 * eps)
    return J


# ---------------------------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("model", [
    od.DickeModel(0.7, [1.0, 2.0, -0.5], [0.3, 1.0, 2.0], g0=1.3),
    od.DickeModel(0.7, [1.0, 2.0, -0.5], [0.3, 1.0, 2.0], g0=1.3, n_spins=13, seed=2),
])
def test_jacobian_matches_finite_differences(model, rng):
    g = od.reduce(model)
    B = 4
    rhs = MeanFieldRHS(g.f, g.weights, rng.normal(size=B), rng.normal(size=B), rng.normal(size=(B, 3)),
                       rng.random((B, 3)))
    y = rng.normal(size=(B, rhs.size))
    J = jacobian(rhs, y)
    for b in range(B):
        fd = _fd_jacobian(lambda t, v: rhs.take([b])(v[None])[0], y[b])
        np.testing.assert_allclose(J[b], fd, atol=2e-8 * max(1.0, np.abs(fd).max()))


def test_newton_keeps_the_conserved_lengths(rng):
    """From a perturbed state Newton lands on a fixed point (F = 0 by the reference rhs) of the given lengths."""
    f = np.array([[1]])
    rhs = MeanFieldRHS(f, np.ones(1), np.array([0.5, 0.5]), np.array([1.0, 1.0]), np.array([[1.5], [1.5]]),
                       np.array([[1.0], [1.0]]))
    g_c, z, sx, a = fixed_point(0.5, 1.5, 1.0, 1.0)
    exact = np.array([sx, 0.0, z, a.real, a.imag])
    seeds = np.stack([exact + 0.05 * rng.normal(size=5), 0.6 * exact + 0.05 * rng.normal(size=5)])
    lengths = np.array([[1.0], [0.6]])
    y, ok, iters, residual = newton(rhs, seeds, lengths)
    assert ok.all() and np.all(residual < 1e-12)
    np.testing.assert_allclose(np.linalg.norm(y[:, :3], axis=1), [1.0, 0.6], atol=1e-13)
    ref = reference_rhs(f, [1.0], 0.5, [1.5], [1.0], 1.0)  # for one group both layouts coincide
    assert max(np.abs(ref(0.0, y[0])).max(), np.abs(ref(0.0, y[1])).max()) < 1e-12
    np.testing.assert_allclose(y[0], exact, atol=1e-12)  # the unit-length fixed point is Eq. 12's
    # the length-0.6 fixed point: s_x keeps −(g_c/g0)², |z| = √(0.36 − (g_c/g0)^4) (docs/physics-notes.md, Measured facts)
    np.testing.assert_allclose(abs(y[1, 2]), np.sqrt(0.36 - (g_c / 1.0) ** 4), atol=1e-12)


def test_options_are_validated():
    with pytest.raises(ValueError, match="t_max"):
        SteadyStateOptions(t_max=-1)
    with pytest.raises(ValueError, match="samples"):
        SteadyStateOptions(samples=0)
    with pytest.raises(ValueError, match="linearity"):
        SteadyStateOptions(linearity=float("nan"))
    with pytest.raises(TypeError, match="SteadyStateOptions"):
        steady_state(FIG3, 1, options={"t_max": 3})  # one options object, not a dict
    with pytest.raises(TypeError, match="t_max"):
        steady_state(FIG3, 1, t_max=3)  # nor loose option keywords


# ---------------------------------------------------------------------------------------------- Eq. 12


@pytest.fixture(scope="module")
def figure3_batch():
    """All four patterns of the Fig. 3 model over g0 ∈ [0.5·g_c(1), 3·g_c(4)], one batched call."""
    g0 = np.linspace(0.5 * G_C[0], 3.0 * G_C[3], 57)
    return g0, steady_state(FIG3, [1, 2, 3, 4], vary={"g0": g0})


def test_figure3_model_matches_eq12(figure3_batch):
    g0, ds = figure3_batch
    assert (ds["classification"] == "stable").all()
    assert ds["converged"].all() and ds["stationary"].all()
    assert float(ds["residual"].max()) < 1e-10
    for nu in range(4):
        sel = ds.isel(initial=nu)
        z, n = _eq12(g0, PAPER_OMEGA, PAPER_OMEGA_MODES[nu], PAPER_KAPPA[nu])
        xi = np.abs(sel["overlap"].values[:, nu])
        occ = sel["occupation"].values[:, nu]
        far = np.abs(g0 - G_C[nu]) >= 0.01
        assert np.abs(xi - z)[far].max() <= 1e-6
        assert np.abs(occ - n)[far].max() <= 1e-6
        assert xi[g0 < G_C[nu]].max() <= 1e-6
        assert np.abs(np.delete(sel["overlap"].values, nu, axis=1)).max() <= 1e-9
        # the stationary spin points along the field: s_x = −(g_c/g0)² above g_c, −1 below (Eq. 12, docs/physics-notes.md, Conventions)
        sx = sel["bloch"].values[:, 0, 0]
        np.testing.assert_allclose(sx[far & (g0 > G_C[nu])], -((G_C[nu] / g0[far & (g0 > G_C[nu])]) ** 2), atol=1e-9)
        np.testing.assert_allclose(sx[g0 < G_C[nu] - 0.01], -1.0, atol=1e-9)
    # never a fixed long time: every point stopped on its own evidence, well inside the budget
    assert float(ds["time_integrated"].max()) < 0.1 * ds.attrs["steady_t_max"]


def test_figure3_evidence_is_recorded(figure3_batch):
    g0, ds = figure3_batch
    for name in ("residual", "newton_iterations", "time_integrated", "distance", "linearity", "decay_rate",
                 "excited_rate", "settle_time", "subspace_dim", "n_conserved", "n_undamped", "message"):
        assert name in ds
    assert ds["eigenvalues"].dims[-1] == "eigenvalue"
    assert np.all(ds["eigenvalues"].values.real[..., 0] < 0)
    assert (ds["subspace_dim"] == 5).all()  # one group and one mode (the pattern-ν invariant subspace)
    # docs/physics-notes.md, Measured facts: one radial zero per group and 2^(M−1) − M undamped combinations (two eigenvalues each)
    assert (ds["n_conserved"] == 8).all() and (ds["n_undamped"] == 8).all()
    assert np.all((ds["linearity"] <= 1.0) | (ds["time_integrated"] == 0))


def test_random_models_match_eq12():
    rng = np.random.default_rng(7)
    for M in (1, 2, 3):
        omega = rng.uniform(0.2, 1.0)
        omega_modes = rng.uniform(0.5, 3.0, M)
        kappa = rng.uniform(0.3, 2.0, M)
        model = od.DickeModel(omega, omega_modes, kappa)
        for nu in range(M):
            g_c = _g_c(omega, omega_modes[nu], kappa[nu])
            g0 = g_c * np.concatenate([np.linspace(0.5, 0.97, 4), np.linspace(1.03, 3.0, 8)])
            ds = steady_state(model, od.PatternState(nu + 1), vary={"g0": g0})
            assert (ds["classification"] == "stable").all(), ds["message"].values
            z, n = _eq12(g0, omega, omega_modes[nu], kappa[nu])
            np.testing.assert_allclose(np.abs(ds["overlap"].values[:, nu]), z, atol=1e-6)
            np.testing.assert_allclose(ds["occupation"].values[:, nu], n, atol=1e-6)
            assert np.abs(np.delete(ds["overlap"].values, nu, axis=1)).max(initial=0.0) <= 1e-9


def test_mirror_start_gives_the_mirror_solution():
    """Z2: from −pattern ν the trajectory is the mirror image (s_z → −s_z, α → −α) of the one from +pattern ν."""
    g0 = np.array([0.5, 0.9, 1.4, 2.2])
    ds = steady_state(FIG3, [od.PatternState(3), od.PatternState(3, sign=-1)], vary={"g0": g0})
    plus, minus = ds.isel(initial=0), ds.isel(initial=1)
    assert (ds["classification"] == "stable").all()
    np.testing.assert_allclose(minus["overlap"], -plus["overlap"], atol=1e-12)
    np.testing.assert_allclose(minus["alpha"], -plus["alpha"], atol=1e-12)
    np.testing.assert_allclose(minus["bloch"].sel(component="x"), plus["bloch"].sel(component="x"), atol=1e-12)
    z, _ = _eq12(g0, PAPER_OMEGA, PAPER_OMEGA_MODES[2], 1.0)
    np.testing.assert_allclose(np.abs(minus["overlap"].values[:, 2]), z, atol=1e-6)
    assert np.any(minus["overlap"].values[:, 2] < -0.5)  # it really lands on the mirror branch somewhere


@pytest.mark.parametrize("flip", [0.1, 0.25])
def test_corrupted_pattern_keeps_its_reduced_overlap(flip):
    """docs/physics-notes.md, Measured facts: the stationary overlap is √(r² − (g_c/g0)^4), r = 1 − 2p; the threshold moves to g_c/√r."""
    r = 1 - 2 * flip
    g_c = G_C[0]
    g0 = np.array([0.9 * g_c / np.sqrt(r), 1.03 * g_c / np.sqrt(r), 1.0, 1.5, 2.0])
    ds = steady_state(FIG3, od.CorruptedPattern(1, flip=flip), vary={"g0": g0})
    assert (ds["classification"] == "stable").all()
    expected = np.sqrt(np.clip(r**2 - (g_c / g0) ** 4, 0, None))
    np.testing.assert_allclose(np.abs(ds["overlap"].values[:, 0]), expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ds["bloch"].values, axis=-1), r, atol=1e-12)  # lengths conserved


def test_corrupted_pattern_finite_n_notes_example_in_both_representations():
    """docs/physics-notes.md, Measured facts: M = 1, N_sp = 400, p = 0.1, g0 = 1 → 0.68293 (Eq. 12 alone would say 0.909)."""
    model = od.DickeModel(0.5, [1.5], 1.0, g0=1.0, n_spins=400, seed=0)
    start = od.CorruptedPattern(1, flip=0.1, seed=2)
    groups = steady_state(model, start, representation="groups")
    spins = steady_state(model, start, representation="spins")
    for ds in (groups, spins):
        assert str(ds["classification"].values) == "stable"
        assert abs(abs(float(ds["overlap"][0])) - 0.68293) < 5e-6
    assert abs(float(groups["overlap"][0]) - float(spins["overlap"][0])) < 1e-10


def test_per_spin_and_groups_agree_on_a_finite_model():
    model = od.DickeModel(0.5, [1.5, 2.0, 2.5], 1.0, n_spins=24, seed=4)
    g0 = np.array([0.6, 1.1, 1.6])
    a = steady_state(model, 1, vary={"g0": g0}, representation="groups")
    b = steady_state(model, 1, vary={"g0": g0}, representation="spins")
    assert (a["classification"] == b["classification"]).all()
    np.testing.assert_allclose(a["overlap"], b["overlap"], atol=1e-9)
    np.testing.assert_allclose(a["occupation"], b["occupation"], atol=1e-9)


def test_batch_gives_the_same_answer_as_single_points():
    g0 = np.array([0.5, 0.8, 1.3, 2.5])
    batch = steady_state(FIG3, [1, 2], vary={"g0": g0})
    for i in (0, 3):
        for s in (0, 1):
            one = steady_state(FIG3.replace(g0=float(g0[i])), s + 1)
            np.testing.assert_allclose(batch["overlap"].values[i, s], one["overlap"].values, atol=1e-10)


def test_accepted_fixed_point_is_the_long_time_limit_of_an_independent_integration():
    """At g0 = 1.2 (slowest rate 0.012, docs/physics-notes.md, Measured facts) the solver stops early; scipy DOP853 on our own rhs, run to
    t = 2500 where e^(−0.012 t) ~ 1e-13, ends on the reported fixed point."""
    ds = steady_state(FIG3.replace(g0=1.2), 1)
    assert str(ds["classification"].values) == "stable"
    assert float(ds["time_integrated"]) <= 200
    one = od.paper_model(1.2, n_modes=1)  # pattern 1 lives on one group and one mode: exactly this model
    bloch, alpha, xi = reference_evolve([[1]], [1.0], [[0.0, 0.0, 1.0]], [0j], [0.0, 2500.0], omega=0.5,
                                        omega_modes=one.omega_modes, kappa=one.kappa, g0=1.2, rtol=1e-10, atol=1e-12)
    assert abs(xi[-1, 0] - float(ds["overlap"][0])) < 1e-8
    assert abs(alpha[-1, 0] - complex(ds["alpha"][0])) < 1e-8


# ---------------------------------------------------------------------------------------------- stability


def _tangent_spectrum(y, omega, omega_nu, kappa_nu, g0):
    """Eigenvalues of the finite-difference Jacobian of one group + one mode (reference rhs), radial zero removed."""
    J = _fd_jacobian(reference_rhs([[1]], [1.0], omega, [omega_nu], [kappa_nu], g0), y, eps=1e-7)
    lam = np.linalg.eigvals(J)
    return np.delete(lam, np.argmin(np.abs(lam)))


def test_slowest_decay_rates_on_the_pattern_subspace_match_the_notes():
    """docs/physics-notes.md, Measured facts (Fig. 3 model, pattern 1): 0.13 at g0 = 0.5, 0.15 at g_c ± 0.01, 0.057 at 1.0, 0.012 at 1.2,
    1.5e-4 at 2.0, 5.8e-6 at 3.0; and a finite-difference spectrum of the reference rhs at the fixed point."""
    quoted = {0.5: 0.13, G_C[0] - 0.01: 0.15, G_C[0] + 0.01: 0.15, 1.0: 0.057, 1.2: 0.012, 2.0: 1.5e-4, 3.0: 5.8e-6}
    g0 = np.array(list(quoted))
    ds = steady_state(FIG3, 1, vary={"g0": g0})
    assert (ds["classification"] == "stable").all()
    for i, (g, rate) in enumerate(quoted.items()):
        sel = ds.isel(g0=i)
        assert abs(float(sel["excited_rate"]) - rate) <= 0.05 * rate  # the notes quote two digits
        y = np.concatenate([sel["bloch"].values[0], [complex(sel["alpha"][0]).real, complex(sel["alpha"][0]).imag]])
        lam = _tangent_spectrum(y, PAPER_OMEGA, PAPER_OMEGA_MODES[0], 1.0, g)
        slowest = -lam.real.max()
        assert abs(slowest - float(sel["excited_rate"])) <= max(1e-3 * slowest, 5e-8 * np.abs(lam).max())


def test_marginal_directions_of_the_full_model_are_counted_as_the_notes_say():
    """docs/physics-notes.md, Measured facts: at g0 = 1, 16 of the 32 eigenvalues of the Fig. 3 model lie on the imaginary axis (8 radial
    zeros, 8 undamped precessions); the rest are damped. Counted on a finite-difference Jacobian."""
    ds = steady_state(FIG3, 1)
    y = pack(ds["bloch"].values, ds["alpha"].values)
    f = od.reduce(FIG3).f
    J = _fd_jacobian(reference_rhs(f, np.full(8, 1 / 8), 0.5, PAPER_OMEGA_MODES, PAPER_KAPPA, 1.0),
                     _to_reference_layout(y, 8, 4), eps=1e-7)
    lam = np.linalg.eigvals(J)
    on_axis = np.abs(lam.real) < 1e-6
    assert on_axis.sum() == 16
    assert lam.real[~on_axis].max() < -1e-3
    assert int(ds["n_conserved"]) == 8 and int(ds["n_undamped"]) == 8
    assert str(ds["full_space_stability"].values) == "stable"


def _to_reference_layout(y, K, M):
    """Package layout [mx(K), my(K), mz(K), Re α, Im α] → reference layout [(mx, my, mz) per group, Re α, Im α]."""
    spins = y[: 3 * K].reshape(3, K).T.ravel()
    return np.concatenate([spins, y[3 * K :]])


def test_stability_function_separates_conserved_and_undamped_directions():
    ds = steady_state(FIG3, 1)
    g = od.reduce(FIG3)
    rhs = MeanFieldRHS(g.f, g.weights, np.array([0.5]), np.array([1.0]), PAPER_OMEGA_MODES[None], PAPER_KAPPA[None])
    y = pack(ds["bloch"].values, ds["alpha"].values)[None]
    st = stability(rhs, y, np.ones((1, 8)), n_eigenvalues=40)
    assert st.code[0] == CLASSIFICATIONS.index("stable")
    assert st.n_conserved[0] == 8 and st.n_undamped[0] == 8
    reduced = st.leading[0][np.isfinite(st.leading[0])]
    assert reduced.size == 32 - 16 and reduced.real.max() < 0


def test_symmetry_breaking_instability_is_reported_and_real():
    """Pattern 2 at g0 = 0.75 (just above its g_c = 0.729): stable on its invariant subspace, a saddle towards
    pattern 1 in the full space. Check: a 1e-7 kick along pattern 1 grows under scipy DOP853 of the reference rhs."""
    ds = steady_state(FIG3.replace(g0=0.75), 2)
    assert str(ds["classification"].values) == "stable"
    assert str(ds["full_space_stability"].values) == "unstable"
    growth = float(ds["full_space_max_real"])
    assert growth > 0.05
    assert "unstable" in str(ds["message"].values)
    bloch = ds["bloch"].values.copy()
    bloch[:, 2] += 1e-7  # uniform tilt of all groups: overlap with pattern 1 (all-+1 gauged row)
    bloch /= np.linalg.norm(bloch, axis=1, keepdims=True)
    f = od.reduce(FIG3).f
    _, _, xi = reference_evolve(f, np.full(8, 1 / 8), bloch, ds["alpha"].values, [0.0, 40.0], omega=0.5,
                                omega_modes=PAPER_OMEGA_MODES, kappa=PAPER_KAPPA, g0=0.75, rtol=1e-10, atol=1e-13)
    assert abs(xi[-1, 0]) > 1e-7 * np.exp(0.5 * growth * 40)


@pytest.mark.parametrize("g0, verdict", [(1.0, "unstable"), (0.5, "stable")])
def test_paramagnet_is_classified_by_its_stability(g0, verdict):
    """All groups along −x with empty modes: a fixed point by symmetry; a saddle above every g_c, stable below."""
    start = od.BlochState(np.tile([-1.0, 0.0, 0.0], (8, 1)), name="-x")
    ds = steady_state(FIG3.replace(g0=g0), start)
    assert str(ds["classification"].values) == verdict
    assert bool(ds["stationary"]) and float(ds["residual"]) == 0.0
    np.testing.assert_allclose(ds["overlap"], 0.0, atol=0)


# ---------------------------------------------------------------------------------------------- giving up


def test_tiny_budget_comes_back_not_converged():
    ds = steady_state(FIG3, 1, options=SteadyStateOptions(t_max=0.5))
    assert str(ds["classification"].values) == "not converged"
    assert not bool(ds["converged"]) and not bool(ds["stationary"]) and not bool(ds["stable"])
    assert np.isnan(ds["overlap"].values).all() and np.isnan(ds["occupation"].values).all()
    assert float(ds["time_integrated"]) == 0.5
    assert "t_max = 0.5" in str(ds["message"].values)
    assert np.isfinite(ds["final_overlap"].values).all()


def test_undamped_precession_is_not_stationary_and_its_period_is_exact():
    """g0 = 0: the spin precesses about x at 2Ω forever (period π/Ω) and the mode decays: not stationary."""
    omega = 0.5
    ds = steady_state(od.DickeModel(omega, [1.5], 1.0, g0=0.0), 1)
    assert str(ds["classification"].values) == "not stationary"
    assert not bool(ds["stationary"]) and bool(ds["converged"])
    assert abs(float(ds["period"]) - np.pi / omega) < 1e-6
    assert float(ds["overlap_min"][0]) < -0.999 and float(ds["overlap_max"][0]) > 0.999
    assert np.isnan(ds["overlap"].values).all()
    assert float(ds["time_integrated"]) < ds.attrs["steady_t_max"]  # recognised early


def test_lossless_mode_is_not_stationary():
    ds = steady_state(od.DickeModel(0.5, [1.5], 0.0, g0=0.3), 1)
    assert str(ds["classification"].values) == "not stationary"
    assert float(ds["overlap_max"][0]) - float(ds["overlap_min"][0]) > 1.0


# ---------------------------------------------------------------------------------------------- g_c


def test_critical_couplings_found_by_bisection_agree_with_eq12():
    ds = find_critical_coupling(FIG3)
    np.testing.assert_allclose(ds["g_crit"].values, G_C, atol=1e-3)
    assert np.all(ds["g_lower"].values < G_C + 1e-4) and np.all(ds["g_upper"].values > G_C - 1e-4)
    assert np.all(ds["g_upper"].values - ds["g_lower"].values <= 1e-4)
    single = find_critical_coupling(FIG3, 4, tol=1e-3)  # a Dataset, like every public result
    assert single["pattern"].values.tolist() == [4]


def test_corrupted_threshold_moves_to_gc_over_sqrt_r():
    flip = 0.2
    g = find_critical_coupling(FIG3, [1], initial=[od.CorruptedPattern(1, flip=flip)], tol=2e-4)
    assert abs(float(g["g_crit"][0]) - G_C[0] / np.sqrt(1 - 2 * flip)) < 1e-3


# ---------------------------------------------------------------------------------------------- results


def test_result_round_trips_through_netcdf(tmp_path, figure3_batch):
    from opendicke.io import load_dataset, save_dataset

    _, ds = figure3_batch
    small = ds.isel(g0=slice(0, 3))
    path = save_dataset(small, tmp_path / "steady.nc")
    back = load_dataset(path)
    for name in ("overlap", "occupation", "alpha", "eigenvalues", "residual", "stable"):
        np.testing.assert_array_equal(back[name].values, small[name].values)
    assert list(back["classification"].values.ravel()) == list(small["classification"].values.ravel())
    assert back.attrs["kind"] == "meanfield_steady_state"
    assert set(back["overlap"].dims) == {"g0", "initial", "pattern"}


def test_paper_units_scale_occupations():
    a = steady_state(FIG3, 1)
    b = steady_state(FIG3, 1, paper_units=True)
    np.testing.assert_allclose(b["occupation"], 8 * a["occupation"], rtol=1e-12)


# ---------------------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_random_models_over_wide_parameter_ranges_match_eq12():
    rng = np.random.default_rng(11)
    for _ in range(4):
        M = int(rng.integers(1, 4))
        omega = rng.uniform(0.1, 2.0)
        omega_modes = rng.uniform(0.2, 4.0, M)
        kappa = rng.uniform(0.1, 3.0, M)
        model = od.DickeModel(omega, omega_modes, kappa)
        for nu in range(M):
            g_c = _g_c(omega, omega_modes[nu], kappa[nu])
            g0 = g_c * np.linspace(0.5, 3.0, 30)
            g0 = g0[np.abs(g0 - g_c) >= 0.01]
            ds = steady_state(model, [od.PatternState(nu + 1), od.PatternState(nu + 1, sign=-1)], vary={"g0": g0})
            assert (ds["classification"] == "stable").all(), ds["message"].values
            z, n = _eq12(g0, omega, omega_modes[nu], kappa[nu])
            np.testing.assert_allclose(np.abs(ds["overlap"].values[:, :, nu]), z[:, None].repeat(2, 1), atol=1e-6)
            np.testing.assert_allclose(ds["occupation"].values[:, :, nu], n[:, None].repeat(2, 1), atol=1e-6)


@pytest.mark.slow
def test_random_start_ends_on_a_torus_of_undamped_precessions():
    """A random start excites the undamped group combinations: marginal, and the reported overlaps are the
    constant overlaps of the long-time trajectory (scipy DOP853 of the reference rhs to t = 3000)."""
    start = od.RandomState(seed=3)
    ds = steady_state(FIG3, start)
    assert str(ds["classification"].values) == "marginal"
    assert float(ds["undamped_amplitude"]) > 0.1
    g = od.reduce(FIG3)
    _, _, xi = reference_evolve(g.f, g.weights, start.group_vectors(FIG3, g), np.zeros(4), [0.0, 2990.0, 3000.0],
                                omega=0.5, omega_modes=PAPER_OMEGA_MODES, kappa=PAPER_KAPPA, g0=1.0, rtol=1e-10,
                                atol=1e-12)
    np.testing.assert_allclose(xi[-1], ds["overlap"].values, atol=1e-5)
    np.testing.assert_allclose(xi[-2], ds["overlap"].values, atol=1e-5)


def test_phase_diagram_thresholds_and_eq12_against_closed_forms():
    """meanfield.steady.phase_diagram (what `figure3` runs): numerical g_c(ν) and the Eq. (12) columns against the
    closed forms written by hand in tests/systems/paper.py."""
    from opendicke.meanfield.steady import phase_diagram

    from systems.paper import FIG3

    model = od.paper_model(1.0, n_modes=2)
    ref = FIG3.__class__(FIG3.omega, FIG3.omega_modes[:2], FIG3.kappa[:2])
    g0 = np.array([0.55, 0.7, 0.85, 1.2])
    ds = phase_diagram(model, g0)
    np.testing.assert_allclose(ds["g_crit_numerical"].values, ref.g_crit, atol=1e-5)
    np.testing.assert_allclose(ds["overlap_theory"].values, np.array([ref.overlap(g) for g in g0]), atol=1e-12)
    own = np.abs([[float(ds["overlap"].sel(g0=g, pattern=nu).isel(initial=nu - 1)) for nu in (1, 2)] for g in g0])
    assert ds.attrs["max_eq12_deviation"] == pytest.approx(np.abs(own - ds["overlap_theory"].values).max(), abs=1e-12)
    assert ds.attrs["max_eq12_deviation"] < 1e-6
    with pytest.raises(ValueError, match="increasing"):
        phase_diagram(model, [1.0, 0.5])
