"""Associative-memory experiments (issue 5): recognition maps, the pattern-selective regime, census, crosstalk.

References are independent of the code under test: the corrupted-pattern overlap √((1−2p)² − (g_c/g0)^4) and
its boundary g_c/√(1−2p) (docs/physics-notes.md, Measured facts), the closed-form full-space threshold g_stab = g_c(ν)^{3/2}/(g_c,min^{1/2}
√(1−2p)) written out by hand, the dense Jacobian stability of :mod:`opendicke.meanfield.steady`, and the
single-mode model, where every start above g_c must end on the Eq. (12) state.
"""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from opendicke import DickeModel, paper_model
from opendicke import memory as mem
from opendicke.cli import app
from opendicke.io import load_dataset
from opendicke.reduction import Grouping, ideal_columns

from conftest import PAPER_KAPPA, PAPER_OMEGA, PAPER_OMEGA_MODES

runner = CliRunner()

G_C = np.sqrt(0.5 * (PAPER_OMEGA / PAPER_OMEGA_MODES) * (PAPER_OMEGA_MODES**2 + PAPER_KAPPA**2 / 4))
# full-space stability threshold of the corrupted pattern-ν state, by hand: the weakest-threshold mode (pattern 1)
# destabilises every other pattern until g0⁴ r² g_c1² = g_cν⁶
G_STAB = np.maximum(G_C, G_C**1.5 / np.sqrt(G_C.min()))


def _overlap(g0, g_c, p):
    return np.sqrt(np.clip((1 - 2 * p) ** 2 - (g_c / g0) ** 4, 0, None))


# ------------------------------------------------------------------------------------ thermodynamic-limit map


@pytest.fixture(scope="module")
def tl_map():
    return mem.recognition_map(paper_model(), np.linspace(0.4, 2.0, 17), [0.0, 0.15, 0.3, 0.45])


def test_map_overlaps_match_the_corrupted_pattern_formula(tl_map):
    g0 = tl_map["g0"].values[None, None, :]
    p = tl_map["flip"].values[None, :, None]
    gc = G_C[:, None, None]
    expected = _overlap(g0, gc, p)
    away = np.abs(g0 - gc / np.sqrt(1 - 2 * p)) >= 0.01
    err = np.abs(tl_map["overlap"].values - expected)[np.broadcast_to(away, expected.shape)]
    assert err.max() <= 1e-6
    # other patterns stay empty on the subspace
    others = tl_map["overlaps"].values.copy()
    for i in range(4):
        others[i, ..., i] = 0
    assert np.nanmax(others) <= 1e-6


def test_map_boundary_matches_gc_over_sqrt_one_minus_2p(tl_map):
    expected = G_C[:, None] / np.sqrt(1 - 2 * tl_map["flip"].values[None, :])
    numerical = tl_map["boundary"].values
    inside = expected < tl_map["g0"].values[-1]  # boundaries the grid brackets
    assert np.all(np.isfinite(numerical[inside]))
    np.testing.assert_allclose(numerical[inside], expected[inside], atol=2e-4)
    # retrieval on the subspace exactly above the boundary, on the grid
    g0 = tl_map["g0"].values[None, None, :]
    above = g0 > expected[..., None] + 0.01
    below = g0 < expected[..., None] - 0.01
    sub = tl_map["retrievable_on_subspace"].values
    assert sub[np.broadcast_to(above, sub.shape)].all() and not sub[np.broadcast_to(below, sub.shape)].any()


def test_map_robust_region_is_above_the_closed_form_g_stab(tl_map):
    g0 = tl_map["g0"].values[None, None, :]
    g_stab = G_STAB[:, None, None] / np.sqrt(1 - 2 * tl_map["flip"].values[None, :, None])
    np.testing.assert_allclose(tl_map["robust_theory"].values, g_stab[..., 0], rtol=1e-12)
    robust = tl_map["retrievable"].values
    assert robust[np.broadcast_to(g0 > g_stab + 0.01, robust.shape)].all()
    assert not robust[np.broadcast_to(g0 < g_stab - 0.01, robust.shape)].any()
    # the saddle band exists for patterns 2-4 and not for pattern 1
    band = tl_map["retrievable_on_subspace"].values & ~robust
    assert not band[0].any() and all(band[i].any() for i in (1, 2, 3))


def test_map_round_trips_through_netcdf(tl_map, tmp_path):
    from opendicke.io import save_dataset

    save_dataset(tl_map, tmp_path / "map.nc")
    back = load_dataset(tmp_path / "map.nc")
    for name in ("overlap", "boundary", "retrievable", "full_space_stability"):
        np.testing.assert_array_equal(back[name].values, tl_map[name].values)


def test_closed_form_thresholds_by_hand():
    np.testing.assert_allclose(mem.robust_threshold(paper_model(), 0.0), G_STAB, rtol=1e-12)
    np.testing.assert_allclose(G_STAB, [0.645497, 0.774510, 0.901027, 1.023937], atol=1e-6)
    np.testing.assert_allclose(mem.recognition_boundary(G_C, 0.2), G_C / np.sqrt(0.6), rtol=1e-14)
    assert np.isinf(mem.recognition_boundary(G_C, 0.5)).all()


def test_stability_threshold_found_numerically_agrees_with_the_closed_form():
    st = mem.stability_threshold(paper_model(), [1, 2, 4], tol=2e-3)
    np.testing.assert_allclose(st["boundary"].values, G_C[[0, 1, 3]], atol=2e-3)
    np.testing.assert_allclose(st["robust_threshold"].values, G_STAB[[0, 1, 3]], atol=2e-3)
    assert "as soon as it exists" in str(st["message"].values[0])  # pattern 1 is robust as soon as it exists


# ------------------------------------------------------------------------------------ selective regime


def test_fig3_model_between_its_thresholds_holds_only_some_patterns():
    out = mem.retrievable_patterns(paper_model(g0=0.85))
    # g0 = 0.85: above g_c for ν = 1, 2, 3, below for 4; above g_stab only for 1, 2
    assert out["retrievable_on_subspace"].values.tolist() == [True, True, True, False]
    assert out["retrievable"].values.tolist() == [True, True, False, False]
    np.testing.assert_allclose(out["overlap"].values[:2], _overlap(0.85, G_C[:2], 0.0), atol=1e-6)
    np.testing.assert_allclose(out["overlap_on_subspace"].values[2], _overlap(0.85, G_C[2], 0.0), atol=1e-6)
    # the saddle: a 1e-6 kick sends pattern 3 (and the pattern-4 paramagnet) to pattern 1
    assert out["perturbed_ends_on"].values.tolist() == [1, 2, 1, 1]
    assert out["overlap"].values[2] <= 1e-6


def test_corruption_moves_the_selective_regime():
    # p = 0.2: pattern 1 needs g0 > g_c/√0.6 = 0.8333; at 0.75 it is held only without corruption
    clean = mem.retrievable_patterns(paper_model(g0=0.75), 0.0, perturbation=0.0)
    dirty = mem.retrievable_patterns(paper_model(g0=0.75), 0.2, perturbation=0.0)
    assert bool(clean["retrievable"].values[0]) and not bool(dirty["retrievable"].values[0])
    assert not dirty["retrievable_on_subspace"].values.any()
    # and pattern 2 above its corrupted g_stab (0.7745/√0.6 = 1.0) at g0 = 1.05
    high = mem.retrievable_patterns(paper_model(g0=1.05), 0.2, perturbation=0.0)
    assert high["retrievable"].values.tolist() == [True, True, False, False]
    np.testing.assert_allclose(high["overlap"].values[:2], _overlap(1.05, G_C[:2], 0.2), atol=1e-6)


def test_which_json_contract_and_corrupted_threshold():
    def which(*args):
        result = runner.invoke(app, ["memory", "which", *args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    out = which("--g0", "0.75", "--flip", "0.2", "--perturbation", "0")
    assert next(iter(out)) == "patterns" and len(out["patterns"]) == 4
    for i, row in enumerate(out["patterns"], start=1):
        assert {"pattern", "g_crit", "retrievable", "overlap"} <= set(row)
        assert row["pattern"] == i and isinstance(row["retrievable"], bool)
        assert row["g_crit"] == pytest.approx(G_C[i - 1], rel=1e-12)
        assert row["threshold"] == pytest.approx(G_C[i - 1] / np.sqrt(0.6), rel=1e-12)
    # g_c < 0.75 < g_c/√(1−2p) for pattern 1 and 2: must say false
    assert [r["retrievable"] for r in out["patterns"]] == [False] * 4
    assert G_C[0] < 0.75 < G_C[0] / np.sqrt(0.6)
    clean = which("--g0", "0.75", "--perturbation", "0")
    assert [r["retrievable"] for r in clean["patterns"]] == [True, False, False, False]
    assert clean["patterns"][0]["overlap"] == pytest.approx(_overlap(0.75, G_C[0], 0.0), abs=1e-6)


def test_finite_n_single_mode_recognition_matches_the_notes_example():
    # docs/physics-notes.md, Measured facts: M = 1, N_sp = 400, p = 0.1, g0 = 1 → 0.68293 (Eq. 12 alone would say 0.909)
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, n_spins=400, seed=3)
    rm = mem.recognition_map(model, [0.7, 1.0], [0.1], samples=2, draws=2)
    assert rm.sizes["sample"] == 4
    np.testing.assert_allclose(rm["success_probability"].values[0, 0], [0.0, 1.0])
    np.testing.assert_allclose(rm["overlap"].values[0, 0, 1], 0.68293, atol=5e-6)
    assert rm["overlap_std"].values[0, 0, 1] <= 1e-8


# ------------------------------------------------------------------------------------ census


def test_census_single_mode_has_a_known_answer():
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0)
    census = mem.attractor_census(model, [0.5, 1.2], n_random=6, n_mixtures=0)
    frac = census["fraction"].sel(start_group="all")
    assert float(frac.sel(g0=0.5, outcome_name="paramagnetic")) == 1.0
    assert float(frac.sel(g0=1.2, outcome_name="recognition")) == 1.0
    np.testing.assert_allclose(census["overlap"].sel(g0=1.2).values[:, 0], _overlap(1.2, G_C[0], 0.0), atol=1e-6)


def test_census_below_every_threshold_is_paramagnetic_but_not_stationary_spins():
    census = mem.attractor_census(paper_model(), [0.5], n_random=4, n_mixtures=4, t_max=1500)
    assert (census["outcome"].values == "paramagnetic").all()
    # overlaps vanish while generic starts keep group vectors precessing along undamped directions
    assert census["precessing"].values[0, :4].all()
    # (stationary verdicts give 0 to round-off; starts still relaxing at t_max are judged on their last window)
    assert np.nanmax(census["overlap"].values) <= 1e-4


def test_mixture_state_initial_overlaps():
    from opendicke.reduction import reduce

    model = paper_model()
    grouping = reduce(model)
    tilt = mem.MixtureState((1, 3), (0.75, -0.25))
    xi = grouping.overlaps(tilt.group_vectors(model, grouping)[:, 2])
    np.testing.assert_allclose(xi, [0.75, 0.0, -0.25, 0.0], atol=1e-14)
    sign = mem.MixtureState((1, 2, 3), kind="sign")
    xi = grouping.overlaps(sign.group_vectors(model, grouping)[:, 2])
    np.testing.assert_allclose(xi, [0.5, 0.5, 0.5, 0.0], atol=1e-14)  # the Hopfield 3-mixture
    with pytest.raises(ValueError, match="1..4"):
        mem.MixtureState((1, 5)).group_vectors(model, grouping)


# ------------------------------------------------------------------------------------ finite N, structured


def test_self_consistent_state_reproduces_eq12_and_the_stability_threshold_in_the_ideal_model():
    model = paper_model()
    ideal = Grouping(f=ideal_columns(4), weights=np.full(8, 1 / 8))
    for nu in (1, 2, 4):
        for g0 in (G_STAB[nu - 1] - 0.02, G_STAB[nu - 1] + 0.02):
            if g0 <= G_C[nu - 1]:
                continue
            st = mem.self_consistent_state(model, nu, g0=g0, grouping=ideal)
            assert bool(st["converged"]) and st.attrs["g0"] == g0
            assert abs(float(st["overlap"].sel(pattern=nu))) == pytest.approx(_overlap(g0, G_C[nu - 1], 0.0), abs=1e-10)
            assert bool(st["stable"]) == (g0 > G_STAB[nu - 1])
    th = mem.paramagnet_thresholds(model, grouping=ideal, lengths=0.6)
    np.testing.assert_allclose(th["threshold"].values, G_C / np.sqrt(0.6), rtol=1e-12)


def test_finite_n_structured_stability_agrees_with_the_dense_jacobian():
    from opendicke.meanfield.equations import MeanFieldRHS, pack
    from opendicke.meanfield.steady import stability
    from opendicke.reduction import per_spin

    model = paper_model(n_modes=3, n_spins=60, seed=5)
    grouping = per_spin(model)
    for g0 in (0.8, 0.95, 1.2):
        for nu in (1, 2, 3):
            st = mem.self_consistent_state(model, nu, g0=g0, grouping=grouping)
            if not bool(st["converged"]) or abs(float(st["overlap"].sel(pattern=nu))) < 0.05:
                continue
            rhs = MeanFieldRHS(grouping.f, grouping.weights, np.array([model.omega]), np.array([g0]),
                               model.omega_modes[None], model.kappa[None])
            y = pack(st["bloch"].values, st["alpha"].values)[None]
            assert np.max(np.abs(rhs(y))) <= 1e-10  # a fixed point of Eq. (7)
            dense = stability(rhs, y, np.ones((1, grouping.n_groups))).code[0]
            assert (dense == 0) == bool(st["stable"]), (g0, nu, dense, float(st["curvature"]))
    # paramagnet bifurcation: unstable just above the threshold, stable just below (dense check)
    thr = float(mem.paramagnet_thresholds(model, grouping=grouping)["threshold"].min())
    para = np.zeros((grouping.n_groups, 3))
    para[:, 0] = -1.0
    for g0, code in ((thr * (1 - 1e-3), 0), (thr * (1 + 1e-3), 2)):
        rhs = MeanFieldRHS(grouping.f, grouping.weights, np.array([model.omega]), np.array([g0]),
                           model.omega_modes[None], model.kappa[None])
        assert stability(rhs, pack(para, np.zeros(3))[None], np.ones((1, grouping.n_groups))).code[0] == code


def test_crosstalk_small_case():
    ds = mem.crosstalk([2000], [4, 6], g0=[1.0], seeds=[0], t_final=200, window=40)
    sel = ds.isel(g0=0, n_spins=0, seed=0)
    tl = _overlap(1.0, G_C[0], 0.0)
    np.testing.assert_allclose(sel["overlap_tl"].values, tl, rtol=1e-12)
    # the window average sits on the torus centre and both are close to Eq. (12)
    np.testing.assert_allclose(sel["overlap_dynamics"].values, sel["overlap_centre"].values, atol=2e-4)
    assert np.all(np.abs(sel["shift"].values) < 5e-3)
    assert np.all(sel["stable_static"].values)
    # crosstalk ~ 1/√N, threshold shift of order 1/N
    assert np.all((sel["crosstalk_rms"].values > 0.3 / np.sqrt(2000)) & (sel["crosstalk_rms"].values < 3 / np.sqrt(2000)))
    assert np.all(np.abs(sel["threshold_shift"].values) < 5e-3)


# ------------------------------------------------------------------------------------ CLI


def test_map_command_writes_netcdf_figure_and_checks_the_formula(tmp_path):
    out = tmp_path / "map.nc"
    result = runner.invoke(app, ["memory", "map", "--vary", "g0=0.5:1.5:5", "--flips", "0,0.25", "--pattern", "1,3",
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["worst_overlap_error"] <= 1e-6
    assert summary["worst_boundary_error"] <= 2e-4
    ds = load_dataset(out)
    assert ds["overlap"].dims == ("pattern", "flip", "g0") and ds["pattern"].values.tolist() == [1, 3]
    assert (tmp_path / "map.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (["map", "--vary", "omega=0.1:1:3", "--out", "x.nc"], "g0"),
    (["map", "--vary", "g0=0.5:1:3", "--flips", "0,1.5", "--out", "x.nc"], "flips"),
    (["which", "--flip", "1.5"], "flip"),
    (["map", "--vary", "g0=0.5:1:3", "--samples", "3", "--out", "x.nc"], "n_spins"),
])
def test_memory_commands_reject_bad_input(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["memory", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x.nc").exists()


# ------------------------------------------------------------------------------------ slow


@pytest.mark.slow
def test_crosstalk_at_m20_and_ten_thousand_spins():
    ds = mem.crosstalk([10000], [20], g0=[1.0], seeds=[3], t_final=300)
    sel = ds.isel(g0=0, n_spins=0, n_modes=0, seed=0)
    # measured here: window mean 0.90868 ± 5e-5, Eq. (12) 0.90906, fully polarised fixed point 0.90913
    assert abs(float(sel["overlap_dynamics"]) - float(sel["overlap_centre"])) < 1e-4
    assert -2e-3 < float(sel["shift"]) < 0
    assert float(sel["shift_static"]) > 0


@pytest.mark.slow
def test_census_fig3_model_finds_recognition_of_every_robust_pattern():
    census = mem.attractor_census(paper_model(), [1.4], n_random=24, n_mixtures=24)
    ends = census["ends_on"].values[census["outcome"].values == "recognition"]
    assert float(census["fraction"].sel(start_group="all", outcome_name="recognition").isel(g0=0)) >= 0.8
    assert set(np.unique(ends)) >= {1}
