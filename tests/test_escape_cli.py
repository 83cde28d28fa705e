"""`opendicke escape`: the JSON against the Python functions, the lifetime extrapolation against the formula
written out here, and the errors that name the option. The solver itself is replaced by a stub in the default
run (a real instanton costs ~40 s of CPU); the slow test compares the real CLI with the real function."""

import json
import math

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from opendicke.cli import app
from opendicke.fluctuations import escape as escape_module
from opendicke.fluctuations.escape import EscapeOptions, escape_action, extrapolate_lifetime
from opendicke.model import DickeModel

runner = CliRunner()
MODEL = ("--omega", "0.5", "--omega-modes", "1.5", "--kappa", "1", "--g0", "1.0")


def invoke(*args):
    return runner.invoke(app, ["escape", *args])


@pytest.fixture
def stub(monkeypatch):
    """escape_action replaced by a stub that records its arguments and returns fixed actions."""
    calls = []

    def fake(model, options=None, *, progress=None):
        calls.append((model, options))
        T = np.array(options.durations or (60.0, 70.0, 80.0))
        ds = xr.Dataset({"action_gaussian": ("duration", 0.25 + 0.01 / T), "action_quantum": ("duration", 0.35 + 0.01 / T),
                         "start_correction": ("duration", 1e-4 / T), "eps_reached": ("duration", np.ones(T.size))},
                        coords={"duration": T})
        ds.attrs.update(action_gaussian_limit=0.25, action_quantum_limit=0.35, first_order_correction=0.05,
                        slowest_relaxation_rate=0.057, g_c=0.6455, elapsed_seconds=1.0, g0=model.g0,
                        start_coupling=model.g0)
        return ds

    monkeypatch.setattr(escape_module, "escape_action", fake)
    return calls


def test_json_carries_the_actions_and_the_extrapolation(stub):
    result = invoke(*MODEL, "--durations", "60,70,80", "--n-spins", "16,1000,1e6", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    model, options = stub[0]
    assert model.n_modes == 1 and model.g0 == 1.0 and model.thermodynamic_limit
    assert options.durations == (60.0, 70.0, 80.0)
    assert data["action"] == 0.35 and data["action_gaussian"] == 0.25
    assert data["action_first_order"] == pytest.approx(0.30)
    assert data["durations"] == [60.0, 70.0, 80.0] and data["eps_reached"] == [1.0, 1.0, 1.0]
    assert data["n_spins"] == [16, 1000, 1000000]
    # no anchor: τ = e^{N S*}, log10 τ = N S*/ln 10; the prefactor is not fitted and said so (null)
    assert data["log10_lifetime"] == pytest.approx([n * 0.35 / math.log(10) for n in (16, 1000, 10**6)], rel=1e-12)
    assert data["prefactor"] is None and data["power"] is None and data["anchors"] == []


def test_anchors_fix_the_prefactor(stub):
    one = json.loads(invoke(*MODEL, "--n-spins", "40", "--anchor", "16=2611.5", "--json").stdout)
    A = 2611.5 / math.exp(16 * 0.35)  # by hand
    assert one["prefactor"] == pytest.approx(A, rel=1e-12) and one["power"] == 0.0
    assert one["log10_lifetime"][0] == pytest.approx(math.log10(A * math.exp(40 * 0.35)), rel=1e-12)
    two = json.loads(invoke(*MODEL, "--n-spins", "24", "--anchor", "8=120", "--anchor", "16=2611.5", "--json").stdout)
    # two points: A N^b e^{N S} passes through both exactly
    b = math.log((2611.5 / math.exp(16 * 0.35)) / (120 / math.exp(8 * 0.35))) / math.log(2)
    assert two["power"] == pytest.approx(b, rel=1e-10)
    assert two["log10_lifetime"][0] == pytest.approx(
        math.log10(120 / math.exp(8 * 0.35) * 3**b * math.exp(24 * 0.35)), rel=1e-10)


def test_table_says_whether_the_prefactor_was_fitted(stub):
    plain = invoke(*MODEL, "--n-spins", "100")
    assert plain.exit_code == 0, plain.output
    assert "prefactor is not computed" in plain.stdout and "0.350000" in plain.stdout
    fitted = invoke(*MODEL, "--n-spins", "100", "--anchor", "16=2611.5")
    assert "fitted to the exact lifetime at N_sp = 16" in fitted.stdout


@pytest.mark.parametrize("args, words", [
    (("--n-spins", "0"), "--n-spins"),
    (("--n-spins", "1.5"), "--n-spins"),
    (("--n-spins", "ten"), "--n-spins"),
    (("--anchor", "16:2611"), "--anchor"),
    (("--anchor", "16=-1"), "anchors"),
    (("--durations", "70,60"), "durations"),
    (("--durations", "a"), "--durations"),
    (("--newton-tol", "0"), "newton_tol"),
])
def test_bad_input_is_named(stub, args, words):
    result = invoke(*MODEL, *args)
    assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output


def test_model_errors_before_any_work(stub):
    many = invoke("--omega-modes", "1.5,2")  # the paper's default model has M = 4
    assert many.exit_code == 2 and "--omega-modes 1.5" in many.output
    assert stub == []


def test_below_the_threshold_is_refused_by_the_solver():
    result = invoke("--omega-modes", "1.5", "--g0", "0.5")  # g_c = 0.6455: no retrieval point to escape from
    assert result.exit_code == 2 and "g_c" in result.output and "Traceback" not in result.output


def test_extrapolate_lifetime_errors():
    with pytest.raises(ValueError, match="action"):
        extrapolate_lifetime(float("nan"), [10])
    with pytest.raises(ValueError, match="twice"):
        extrapolate_lifetime(0.3, [10], [(8, 1.0), (8, 2.0)])


@pytest.mark.slow
def test_cli_json_equals_the_python_function():
    """The real CLI and the real function at g0 = 1, T = 60: the CLI adds nothing."""
    result = invoke(*MODEL, "--durations", "60", "--n-spins", "1000", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    ds = escape_action(DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0), EscapeOptions(durations=(60.0,)))
    assert data["action"] == pytest.approx(float(ds.attrs["action_quantum_limit"]), rel=1e-9)
    assert data["action_gaussian"] == pytest.approx(float(ds.attrs["action_gaussian_limit"]), rel=1e-9)
    assert data["action"] == pytest.approx(0.35310, abs=2e-5)  # docs/semiclassical-lifetime.md
    assert data["log10_lifetime"][0] == pytest.approx(1000 * data["action"] / math.log(10), rel=1e-12)
