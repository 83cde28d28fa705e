"""`opendicke fluctuations`: the JSON contract and the errors that name the option."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from opendicke.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["fluctuations", *args])


def test_cumulant_json_contract():
    result = invoke("--omega-modes", "1.5,2", "--n-spins", "200", "--seed", "3", "--pattern", "2", "--t-final", "1",
                    "--times", "5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"t", "overlaps", "occupations", "overlaps_std", "cost", "method"}
    assert data["method"] == "cumulant"
    assert np.shape(data["overlaps"]) == (2, 5) and np.shape(data["overlaps_std"]) == (2, 5)
    assert data["overlaps"][1][0] == pytest.approx(1.0)  # pattern 2 start: ξ_2(0) = 1 (patterns numbered from 1)
    assert data["overlaps_std"][1][0] == pytest.approx(0.0, abs=1e-12)  # σ_z eigenstate: no spread
    assert len(data["cost"]) == 5


def test_twa_json_adds_statistical_errors_and_is_reproducible():
    args = ("--omega-modes", "1.5", "--n-spins", "50", "--method", "twa", "--samples", "40", "--seed", "1",
            "--flip", "0.1", "--t-final", "0.5", "--times", "3", "--dt", "0.05", "--json")
    first, second = invoke(*args), invoke(*args)
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["method"] == "twa" and "overlaps_error" in data
    assert data["overlaps"][0][0] == pytest.approx(0.8)  # 10 % flipped
    assert first.stdout == second.stdout


@pytest.mark.parametrize("args, option", [
    (("--t-final", "1"), "--n-spins"),
    (("--n-spins", "10", "--method", "twa", "--samples", "1"), "--samples"),
    (("--n-spins", "10", "--method", "exact"), "--method"),
    (("--omega-modes", ",".join(["1"] * 16), "--n-spins", "100000"), "--n-spins/--omega-modes"),
])
def test_bad_input_names_the_option(args, option):
    result = invoke(*args)
    assert result.exit_code == 2
    assert option in result.output
    if option.startswith("--n-spins/"):
        assert re.search(r"would need [0-9.]+ GiB", result.output)


@pytest.mark.slow
def test_figure3_writes_figure_and_data(tmp_path: Path):
    result = invoke("--figure3", "--n-spins", "100,400", "--points", "2", "--g0-min", "0.9", "--g0-max", "1.5",
                    "--t-final", "1", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert np.shape(data["overlaps"]) == (2, 2, 4)
    assert (tmp_path / "figure3_finite_n.png").exists() and (tmp_path / "figure3_finite_n.nc").exists()
