"""The command line: JSON contracts named in the issues, option handling and clean errors."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from opendicke.cli import app
from opendicke.io import load_dataset

runner = CliRunner()


def run_json(*args):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_theory_json_contract_matches_eq12_by_hand():
    out = run_json("theory", "--g0", "0.75")
    assert set(out) >= {"g_crit", "overlap", "occupation"}
    # paper Fig. 3 model: g_c = sqrt(0.5 (Ω/Ω_ν)(Ω_ν² + 1/4)), by hand
    omega_nu = 0.5 * (np.arange(1, 5) + 2)
    g_c = np.sqrt(0.5 * (0.5 / omega_nu) * (omega_nu**2 + 0.25))
    np.testing.assert_allclose(out["g_crit"], g_c, rtol=1e-14)
    z = np.sqrt(np.clip(1 - (g_c / 0.75) ** 4, 0, None))
    np.testing.assert_allclose(out["overlap"], z, rtol=1e-12)
    np.testing.assert_allclose(out["occupation"], 0.75**2 * z**2 / (omega_nu**2 + 0.25), rtol=1e-12)
    assert out["overlap"][2] == 0.0 and out["overlap"][3] == 0.0  # 0.75 is below g_c(3), g_c(4)


def test_theory_paper_units_scale_occupation_by_2_to_the_M_minus_1():
    ours = run_json("theory", "--g0", "1.0")
    paper = run_json("theory", "--g0", "1.0", "--paper-units")
    np.testing.assert_allclose(paper["occupation"], 8 * np.array(ours["occupation"]), rtol=1e-14)


def test_evolve_json_shapes_and_start():
    out = run_json("evolve", "--pattern", "2", "--t-final", "5", "--times", "6")
    assert set(out) >= {"t", "overlaps", "occupations"}
    assert out["t"] == pytest.approx(np.linspace(0, 5, 6).tolist())
    xi = np.array(out["overlaps"])
    n = np.array(out["occupations"])
    assert xi.shape == (4, 6) and n.shape == (4, 6)
    np.testing.assert_allclose(xi[:, 0], [0, 1, 0, 0], atol=1e-15)  # starts in pattern 2
    np.testing.assert_allclose(n[:, 0], 0, atol=1e-15)  # bosons in vacuum
    assert np.all(n[1, 1:] > 0)  # the driven mode fills up


def test_evolve_mirror_flips_the_overlap():
    a = np.array(run_json("evolve", "--pattern", "1", "--t-final", "3", "--times", "4")["overlaps"])
    b = np.array(run_json("evolve", "--pattern", "1", "--mirror", "--t-final", "3", "--times", "4")["overlaps"])
    np.testing.assert_allclose(a, -b, atol=1e-9)


def test_flags_override_config_file(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text('omega = 0.5\nomega_modes = [1.5, 2.0]\nkappa = [1.0, 0.5]\ng0 = 0.3\n')
    out = run_json("theory", "--config", str(cfg), "--g0", "2.0")
    assert out["g0"] == 2.0 and len(out["g_crit"]) == 2
    expected = np.sqrt(0.5 * (0.5 / 2.0) * (2.0**2 + 0.5**2 / 4))
    assert out["g_crit"][1] == pytest.approx(expected, rel=1e-14)  # κ_2 = 0.5 from the file


def test_explicit_patterns_imply_n_spins_and_write_netcdf(tmp_path):
    path = tmp_path / "run.nc"
    result = runner.invoke(app, ["evolve", "--omega-modes", "1.5,2", "--patterns", "++-+,+-+-", "--t-final", "2",
                                 "--times", "3", "--out", str(path)])
    assert result.exit_code == 0, result.output
    ds = load_dataset(path)
    assert ds.attrs["n_spins"] == 4
    # start σ_z = (+,+,-,+); ξ_2 = (1/4)(+1·+1 + -1·+1 + +1·-1 + -1·+1) = -1/2
    np.testing.assert_allclose(ds["overlap"].isel(time=0).values, [1.0, -0.5])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kappa", "-1"], "kappa"),
        (["--pattern", "5"], "pattern"),
        (["--flip", "1.5"], "flip"),
        (["--omega-modes", "1,2", "--kappa", "1,2,3"], "kappa"),
        (["--patterns", "++0+"], "patterns"),
        (["--seed", "3"], "--seed needs --n-spins"),
        (["--omega", "nan"], "omega"),
    ],
)
def test_bad_input_gives_clear_error(args, message):
    result = runner.invoke(app, ["evolve", "--t-final", "1", "--times", "2", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_quantum_json_contract_small_model():
    out = run_json("quantum", "--omega-modes", "1.5", "--n-spins", "3", "--t-final", "1", "--times", "3", "--fock", "12")
    assert set(out) >= {"t", "overlaps", "occupations", "cost", "method", "fock", "truncation_error"}
    assert np.array(out["overlaps"]).shape == (1, 3) and len(out["cost"]) == 3
    assert out["overlaps"][0][0] == pytest.approx(1.0) and out["fock"] == [12]
    assert out["truncation_error"] < 1e-6


def test_quantum_needs_finite_model():
    result = runner.invoke(app, ["quantum", "--t-final", "1"])
    assert result.exit_code == 2 and "--n-spins" in result.output


def test_convergence_writes_files_and_fits_a_slope(tmp_path):
    out = run_json("convergence", "--omega-modes", "1.5", "--n-spins", "2,3", "--t-final", "1", "--times", "5",
                   "--out", str(tmp_path))
    assert out["n_spins"] == [2, 3] and len(out["deviation"]) == 2 and np.isfinite(out["slope"])
    assert {"convergence.nc", "convergence.png", "convergence.pdf"} <= {p.name for p in tmp_path.iterdir()}


def test_steady_json_contract_and_eq12():
    out = run_json("steady", "--pattern", "2", "--g0", "1.2")
    assert set(out) >= {"overlaps", "occupations", "converged", "stable", "classification", "residual"}
    z = np.sqrt(1 - (np.sqrt(0.5 * (0.5 / 2.0) * (4.0 + 0.25)) / 1.2) ** 4)  # Eq. (12) by hand, pattern 2
    assert abs(abs(out["overlaps"][1]) - z) < 1e-6
    assert max(abs(out["overlaps"][i]) for i in (0, 2, 3)) < 1e-6
    assert out["converged"] and out["stable"] and out["classification"] == "stable" and out["residual"] < 1e-10


def test_steady_reports_not_converged_on_a_tiny_budget():
    out = run_json("steady", "--pattern", "1", "--g0", "1.0", "--t-max", "0.5")
    assert out["converged"] is False and out["classification"] == "not converged"
    assert out["overlaps"] == [None] * 4  # never a stationary state without convergence


def test_figure3_writes_all_outputs(tmp_path):
    result = runner.invoke(app, ["figure3", "--points", "6", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = {p.name for p in tmp_path.iterdir()}
    assert {"figure3.png", "figure3.pdf", "figure3.nc", "figure3.csv"} <= names
    rows = (tmp_path / "figure3.csv").read_text().splitlines()
    assert rows[0].startswith("g0,pattern,overlap") and len(rows) == 1 + 6 * 4
    assert "g_c numerical" in result.output


@pytest.mark.parametrize("name", ["fig3.toml", "finite.toml"])
def test_example_model_files_load(name):
    from pathlib import Path

    from opendicke.io import load_model

    model = load_model(Path(__file__).resolve().parents[1] / "examples" / name)
    assert model.n_modes in (2, 4)
