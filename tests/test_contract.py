"""The contract of options, results and the command line (issue 10): every measured failure is a test here.

Each test names the failure it guards against; all of them failed on the main branch before the fix.
"""

import json
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import opendicke.meanfield
from opendicke.cli import app
from opendicke.model import DickeModel, paper_model
from systems.paper import FIG3

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(result, *needles):
    """Exit 2, one 'error:' line naming what is wrong, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    text = result.stderr
    assert text.startswith("error:") and "Traceback" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.fixture
def no_solver(monkeypatch):
    """Any mean-field solve fails the test: checks must happen before the computation."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the computation started although its options were invalid")

    monkeypatch.setattr(opendicke.meanfield, "evolve", forbidden)
    import opendicke.meanfield.steady as steady

    monkeypatch.setattr(steady, "steady_state", forbidden)
    import opendicke.sweep as sweep

    monkeypatch.setattr(sweep, "_execute", forbidden)


# ---------------------------------------------------------------------------------------------------
# worker counts, output paths, memory: checked before any work


@pytest.mark.parametrize("workers", ["-2", "0"])
def test_worker_count_below_one_is_refused_up_front(workers, no_solver):
    # main: -2 hung with no output (a local cluster of -2 workers), 0 silently meant all cores
    assert_clean_error(invoke("sweep", "--vary", "g0=1,2", "--pattern", "1", "--workers", workers), "--workers", workers)


def test_run_sweep_rejects_bad_worker_counts_before_planning():
    from opendicke.sweep import run_sweep

    for workers in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            run_sweep(paper_model(), 1, vary={"g0": [1.0]}, scheduler="local", workers=workers)


@pytest.mark.parametrize("args", [
    ("evolve", "--out", "/proc/q.nc"),
    ("steady", "--out", "/proc/q.nc"),
    ("sweep", "--vary", "g0=1,2", "--out", "/proc/q.nc"),
    ("evolve", "--plot", "/proc/fig"),
    ("figure3", "--out", "/proc/fig"),
    ("demo", "--out", "/proc/fig"),
])
def test_unwritable_output_is_refused_before_the_computation(args, no_solver):
    # main: a traceback after the computation, and the result was lost
    assert_clean_error(invoke(*args), "/proc")


def test_out_naming_a_directory_is_refused_for_commands_that_write_one_file(tmp_path, no_solver):
    assert_clean_error(invoke("evolve", "--out", tmp_path), "is a directory")
    assert_clean_error(invoke("memory", "census", "--vary", "g0=1", "--out", tmp_path), "is a directory")


def test_out_naming_a_file_is_refused_for_commands_that_write_a_folder(tmp_path, no_solver):
    existing = tmp_path / "f.nc"
    existing.write_text("x")
    assert_clean_error(invoke("figure3", "--out", existing), "not a directory")
    assert_clean_error(invoke("demo", "--out", existing), "not a directory")


def test_check_writable_probes_without_creating_anything(tmp_path):
    from opendicke.io import check_writable

    target = tmp_path / "a" / "b" / "r.nc"
    assert check_writable(target) == target
    assert list(tmp_path.iterdir()) == []  # no folders made, no probe left behind
    with pytest.raises(ValueError, match="not a directory"):
        (tmp_path / "file").write_text("")
        check_writable(tmp_path / "file" / "r.nc")


def test_evolve_with_40_modes_in_the_thermodynamic_limit_is_refused_with_the_bytes():
    # main: a 4 TiB MemoryError traceback (40 modes) or a 4 GiB allocation (30 modes)
    from opendicke.meanfield.evolution import MemoryBudgetError

    for M in (40, 30):
        model = paper_model(n_modes=M)
        with pytest.raises(MemoryBudgetError, match=r"needs about \d+ bytes") as info:
            opendicke.meanfield.evolve(model, 1, t_final=1.0, times=2)
        needed = int(str(info.value).split("needs about ")[1].split(" bytes")[0])
        # at least the stored trajectory: 2 output times × (3·2^(M-1) + 2M) float64 values
        assert needed >= 8 * 2 * (3 * 2 ** (M - 1) + 2 * M)


def test_cli_refuses_40_modes_and_the_budget_flag_decides():
    modes = ",".join(str(1.0 + 0.1 * k) for k in range(40))
    assert_clean_error(invoke("evolve", "--omega-modes", modes, "--t-final", "1", "--times", "2"), "bytes", "--memory-budget")
    # a tiny budget refuses even the Fig. 3 model; a generous one lets it run
    assert_clean_error(invoke("evolve", "--memory-budget", "1KB", "--t-final", "1", "--times", "2"), "bytes")


def test_memory_budget_flag_lets_a_small_run_through():
    out = invoke("evolve", "--memory-budget", "100MB", "--t-final", "1", "--times", "2", "--json")
    assert out.exit_code == 0, out.output
    from opendicke.meanfield.evolution import parse_bytes

    assert parse_bytes("8GiB") == 8 * 2**30 and parse_bytes("500MB") == 500 * 10**6 and parse_bytes(2e9) == 2 * 10**9
    for bad in ("-1", "many", "0"):
        with pytest.raises(ValueError, match="memory budget"):
            parse_bytes(bad)


# ---------------------------------------------------------------------------------------------------
# `stable` means stable in the full space


def test_stable_means_full_space_stable_and_the_subspace_verdict_keeps_its_own_name():
    # Fig. 3 model at g0 = 1: pattern 4 lies between g_c(4) and g_stab(4) = g_c(4)^{3/2}/g_c(1)^{1/2} (by hand)
    assert FIG3.g_crit[3] < 1.0 < FIG3.g_stab[3]  # 0.878 < 1 < 1.024
    from opendicke.meanfield.steady import steady_state

    ds = steady_state(paper_model(1.0), [1, 4])
    saddle, held = ds.sel(initial="pattern 4"), ds.sel(initial="pattern 1")
    assert str(saddle["classification"].values) == "stable" and str(saddle["full_space_stability"].values) == "unstable"
    assert bool(saddle["stable_on_subspace"]) and not bool(saddle["stable"])  # main: stable = True
    assert bool(held["stable"]) and bool(held["stable_on_subspace"])


def test_sweep_summary_does_not_count_full_space_saddles_as_stable():
    result = invoke("sweep", "--vary", "g0=1.0", "--pattern", "4")
    assert result.exit_code == 0, result.output
    assert "1 stable on subspace only (full-space saddle)" in result.stdout
    assert " stable," not in result.stdout.replace("only (", "")


# ---------------------------------------------------------------------------------------------------
# piped output


def test_piped_tables_keep_every_digit():
    # main: rich shrank tables to 80 columns when piped and printed '2.0e-…'
    result = invoke("memory", "crosstalk", "--n-spins", "200", "--n-modes", "3", "--seeds", "1", "--t-final", "60")
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    row = [line for line in result.stdout.splitlines() if "│ 3 " in line or line.strip().startswith("3 ")]
    assert row, result.stdout
    assert "1.5e-02" in row[0]  # M/N_sp = 3/200, printed in full


def test_progress_lines_reach_a_log_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    from opendicke.cli.common import Progress

    monkeypatch.setattr(Progress, "LOG_INTERVAL", 0.0)
    assert not sys.stderr.isatty()
    with Progress("solving") as progress:
        for f in (0.05, 0.25, 0.5, 0.97, 1.0):
            progress(f)
    lines = capsys.readouterr().err.splitlines()
    assert lines[:3] == [line for line in lines[:3] if line.startswith("solving: ")]
    assert [line.split()[1] for line in lines[:-1]] == ["20", "50", "90"]
    assert lines[-1].startswith("solving: done in ")


def test_progress_is_silent_when_disabled(capsys):
    from opendicke.cli.common import Progress

    with Progress("x", enabled=False) as progress:
        progress(0.5)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------------
# option parsing


def test_vary_given_twice_names_the_duplicate(no_solver):
    # main: the first list was silently dropped
    assert_clean_error(invoke("sweep", "--vary", "g0=1,2", "--vary", "g0=3"), "g0", "more than once")


def test_vary_with_repeated_values_is_an_error(no_solver):
    # main: a duplicate coordinate in the result
    assert_clean_error(invoke("sweep", "--vary", "g0=1,1"), "g0", "more than once")
    from opendicke.grid import parameter_batch

    with pytest.raises(ValueError, match="more than once"):
        parameter_batch(paper_model(), {"omega": [0.5, 0.7, 0.5]})


def test_partial_model_file_is_merged_with_the_paper_model(tmp_path):
    # main: "model needs omega, omega_modes"
    cfg = tmp_path / "g.toml"
    cfg.write_text("g0 = 0.8\n")
    out = json.loads(invoke("theory", "--config", cfg, "--json").stdout)
    assert out["g0"] == 0.8
    np.testing.assert_allclose(out["g_crit"], FIG3.g_crit, rtol=1e-14)
    np.testing.assert_allclose(out["overlaps"], FIG3.overlap(0.8), rtol=1e-12)
    from opendicke.io import load_model

    assert load_model(cfg) == paper_model(g0=0.8)


def test_config_that_is_a_directory_or_binary_gives_a_clean_error(tmp_path):
    assert_clean_error(invoke("theory", "--config", tmp_path), "directory")
    binary = tmp_path / "b.toml"
    binary.write_bytes(bytes(range(256)))
    assert_clean_error(invoke("theory", "--config", binary), str(binary))


def test_patterns_flag_sets_the_number_of_modes():
    # main: "patterns has 3 rows but the model has M = 4 modes"
    out = json.loads(invoke("theory", "--patterns", "++,+-,--", "--json").stdout)
    assert len(out["g_crit"]) == 3


def test_negative_seed_names_the_option():
    assert_clean_error(invoke("theory", "--n-spins", "10", "--seed", "-1"), "--seed")


def test_api_rejects_a_string_for_a_flag_and_a_float_seed():
    from opendicke.meanfield.steady import steady_state

    with pytest.raises(ValueError, match="paper_units"):
        opendicke.meanfield.evolve(paper_model(), 1, t_final=1.0, times=2, paper_units="no")
    with pytest.raises(ValueError, match="paper_units"):
        steady_state(paper_model(), 1, paper_units="no")
    with pytest.raises(ValueError, match="seed"):
        DickeModel(0.5, [1.5], n_spins=10, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        DickeModel(0.5, [1.5], n_spins=10, seed=-3)


# ---------------------------------------------------------------------------------------------------
# one CLI: keys, --config, help


def test_theory_json_has_the_plural_keys_of_the_other_commands_and_keeps_the_old_ones():
    out = json.loads(invoke("theory", "--g0", "1.2", "--json").stdout)
    assert out["overlaps"] == out["overlap"] and out["occupations"] == out["occupation"]
    assert len(out["overlaps"]) == 4


def _commands():
    root = typer.main.get_command(app)

    def walk(c, path):
        if hasattr(c, "commands"):
            for name, sub in c.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield " ".join(path), c

    return dict(walk(root, []))


@pytest.mark.parametrize("name", ["figure3", "demo", "memory crosstalk"])
def test_commands_that_compute_with_a_model_accept_config(name):
    opts = {o for p in _commands()[name].params for o in p.opts}
    assert "--config" in opts


def test_crosstalk_takes_omega_from_the_config(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text("omega = 0.4\n")
    result = invoke("memory", "crosstalk", "--config", cfg, "--n-spins", "64", "--n-modes", "2", "--seeds", "1",
                    "--t-final", "60", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # g_c of pattern 1 for Ω = 0.4, Ω_1 = 3Ω = 1.2, κ = 1 (Eq. 12), by hand
    assert out["threshold_tl"][0][0][0] == pytest.approx(np.sqrt(0.5 * (0.4 / 1.2) * (1.2**2 + 0.25)), rel=1e-12)


def test_every_option_has_help_and_flags_show_no_type():
    # main: several options without help; flags shown as <bool> although they take no value
    ours = _commands()  # every command, the exact-solver ones (cli/quantum.py) included
    assert {"evolve", "steady", "sweep", "figure3", "theory", "demo", "memory map", "quantum", "convergence"} <= set(ours)
    missing = [(name, p.opts) for name, c in ours.items() for p in c.params
               if getattr(p, "param_type_name", "") == "option" and not p.hidden and not (p.help or "").strip()]
    assert missing == []
    for args in (["evolve", "--help"], ["sweep", "--help"], ["memory", "map", "--help"]):
        text = invoke(*args).stdout
        assert "<bool>" not in text and "--json" in text or "--resume" in text


# ---------------------------------------------------------------------------------------------------
# stiff and hopelessly fast problems answer in seconds


def test_bad_cavity_kappa_1e4_switches_to_implicit_and_matches_free_precession():
    # κ = 10⁴ ≫ g_c(κ) ≈ 2041·g0-scale: the coupling is negligible and a pattern start precesses freely about x,
    # ξ_1(t) = cos(2Ω t) (by hand); main: DOP853 needed 7913 steps for t = 10 and `steady` ran on without end
    model = paper_model().replace(kappa=1e4)
    ds = opendicke.meanfield.evolve(model, 1, t_final=10.0, times=11)
    assert bool(ds["success"]) and bool(ds["stiff"]) and str(ds["outcome"].values).startswith("success (implicit")
    t = ds["time"].values
    np.testing.assert_allclose(ds["overlap"].sel(pattern=1).values, np.cos(2 * 0.5 * t), atol=1e-6)
    assert int(ds["n_steps"]) < 3000  # the explicit method alone needed 7913


@pytest.mark.parametrize("changes", [dict(omega=1e7), dict(g0=1e4)])
def test_fast_oscillation_stops_early_with_an_honest_verdict(changes):
    # main: ran on without end or message (Ω = 10⁷: ~10⁹ steps needed; an implicit method does not pay)
    ds = opendicke.meanfield.evolve(paper_model().replace(**changes), 1, t_final=10.0, times=11)
    assert not bool(ds["success"]) and str(ds["outcome"].values) == "too many steps"
    assert "needs about" in ds.attrs["message"] and "not stiff" in ds.attrs["message"]
    assert int(ds["n_steps"]) < 20000


def test_steady_bad_cavity_reports_the_free_precession():
    from opendicke.meanfield.steady import steady_state

    ds = steady_state(paper_model().replace(kappa=1e4), 1)
    assert str(ds["classification"].values) == "not stationary"
    assert float(ds["period"]) == pytest.approx(2 * np.pi / (2 * 0.5), rel=1e-6)  # free precession at 2Ω


# ---------------------------------------------------------------------------------------------------
# results re-plot from their NetCDF file


def test_plot_replots_results_from_their_files(tmp_path):
    from opendicke.io import save_dataset
    from opendicke.meanfield.steady import steady_state

    model = paper_model(1.0, n_modes=2)
    files = {
        "evolution": opendicke.meanfield.evolve(model, [1, 2], t_final=2.0, times=3, vary={"g0": [0.8, 1.2]}),
        "phase": steady_state(model, [1, 2], vary={"g0": [0.5, 1.2]}),
    }
    for name, ds in files.items():
        path = save_dataset(ds, tmp_path / f"{name}.nc")
        result = invoke("plot", path)
        assert result.exit_code == 0, result.output
        png = path.with_suffix(".png")
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    assert "drawing g0 = 0.8" in invoke("plot", tmp_path / "evolution.nc").stderr  # what was chosen is said
    (tmp_path / "junk.nc").write_text("not netcdf")
    assert_clean_error(invoke("plot", tmp_path / "junk.nc"), "not a result file")


# ------------------------------------------------------------------------------------------------
# Steady-state options: one validated object, built at the public entry point, passed on unchanged


@pytest.mark.parametrize("call", [
    lambda mem, m: mem.recognition_map(m, [1.0], [0.0], options={"rtol": 1e-9}),
    lambda mem, m: mem.retrievable_patterns(m, 0.0, options={"samples": 64}),
    lambda mem, m: mem.stability_threshold(m, [1], options={"newton_max_iter": 3}),
    lambda mem, m: mem.attractor_census(m, [1.0], n_random=2, n_mixtures=0, options={"symmetry": True}),
    lambda mem, m: mem.recognition_map(m, [1.0], [0.0], rtol=1e-9),  # no loose option keywords either
    lambda mem, m: mem.attractor_census(m, [1.0], n_random=2, n_mixtures=0, symmetry=True),
])
def test_memory_experiments_take_one_options_object_and_refuse_anything_else_before_any_work(call, no_solver):
    import opendicke.memory as mem

    with pytest.raises(TypeError, match="SteadyStateOptions|unexpected keyword"):
        call(mem, paper_model())


def test_memory_experiments_pass_one_options_object_down(monkeypatch):
    import opendicke.meanfield.steady as steady
    import opendicke.memory as mem

    seen = []

    class Stop(Exception):
        pass

    def capture(*args, **kwargs):
        seen.append(kwargs)
        raise Stop

    monkeypatch.setattr(steady, "steady_state", capture)
    given = steady.SteadyStateOptions(rtol=1e-9, samples=64, atol=1e-11)
    with pytest.raises(Stop):
        mem.attractor_census(paper_model(), [1.0], n_random=2, n_mixtures=0, t_max=700.0, options=given)
    (kw,) = seen
    assert set(kw) == {"vary", "representation", "progress", "options"}  # no loose option keywords
    assert kw["options"] == steady.SteadyStateOptions(rtol=1e-9, samples=64, atol=1e-11, t_max=700.0)
    with pytest.raises(TypeError, match="SteadyStateOptions"):
        steady.steady_options({"rtol": 1e-9})


def test_evolve_takes_one_options_object_with_keyword_shorthand_merged_on_entry(no_solver):
    from opendicke.meanfield.evolution import EvolveOptions
    from opendicke.meanfield.integrator import integrate as real_integrate

    import opendicke.meanfield.evolution as evolution

    seen = []

    def spy(rhs, y0, times, **kwargs):
        seen.append(kwargs)
        return real_integrate(rhs, y0, times, **kwargs)

    model = paper_model()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evolution, "integrate", spy)
        a = evolution.evolve(model, 1, t_final=2.0, times=3, options=EvolveOptions(rtol=1e-7, keep_bloch=False))
        b = evolution.evolve(model, 1, t_final=2.0, times=3, rtol=1e-7, keep_bloch=False)  # shorthand, same thing
        c = evolution.evolve(model, 1, t_final=2.0, times=3, options=EvolveOptions(rtol=1e-7), atol=1e-9)  # merged
    assert [kw["rtol"] for kw in seen] == [1e-7, 1e-7, 1e-7] and [kw["atol"] for kw in seen] == [1e-12, 1e-12, 1e-9]
    assert a.identical(b.assign_attrs(elapsed_seconds=a.attrs["elapsed_seconds"])) and "bloch" not in a
    assert "bloch" in c and c.attrs["atol"] == 1e-9
    with pytest.raises(TypeError, match="EvolveOptions"):
        evolution.evolve(model, 1, options={"rtol": 1e-7})  # not a dict
    with pytest.raises(ValueError, match="rtol"):
        evolution.evolve(model, 1, options=EvolveOptions(), rtol=-1.0)  # the merged object is validated


def test_run_sweep_takes_the_solver_options_object_and_one_execution_object(no_solver, tmp_path):
    from opendicke.meanfield.evolution import EvolveOptions
    from opendicke.meanfield.steady import SteadyStateOptions
    from opendicke.sweep import ExecutionOptions, plan_sweep, run_sweep

    with pytest.raises(TypeError, match="options object"):
        run_sweep(paper_model(), 1, vary={"g0": [1.0]}, options={"t_max": 500.0})  # a dict is not an options object
    with pytest.raises(ValueError, match="workers"):
        run_sweep(paper_model(), 1, vary={"g0": [1.0]}, execution=ExecutionOptions(), workers=0)
    with pytest.raises(TypeError, match="ExecutionOptions"):
        run_sweep(paper_model(), 1, vary={"g0": [1.0]}, execution={"workers": 2})
    plan = plan_sweep(paper_model(), 1, vary={"g0": [0.5, 1.0]}, solver=opendicke.meanfield.evolution.evolve,
                      arguments={"times": 3, "t_final": 1.0}, options=EvolveOptions(rtol=1e-8))
    assert plan.spec["arguments"] == {"t_final": 1.0, "times": 3}
    assert plan.spec["options"]["type"] == "EvolveOptions" and plan.spec["options"]["rtol"] == 1e-8
    other = plan_sweep(paper_model(), 1, vary={"g0": [0.5, 1.0]}, solver=opendicke.meanfield.evolution.evolve,
                       arguments={"times": 3, "t_final": 1.0}, options=EvolveOptions(rtol=1e-9))
    assert other.key != plan.key  # the options are part of what a stored sweep is
    steady_plan = plan_sweep(paper_model(), 1, vary={"g0": [1.0]}, options=SteadyStateOptions(t_max=500.0))
    assert steady_plan.options == SteadyStateOptions(t_max=500.0)


# ------------------------------------------------------------------------------------------------
# Layout: packages of files with one job each, public names at their old addresses, no shadowed modules


@pytest.mark.parametrize("package", ["opendicke.memory", "opendicke.meanfield.steady"])
def test_split_packages_keep_public_addresses_and_shadow_no_module(package):
    import importlib
    import pkgutil
    import types

    pkg = importlib.import_module(package)
    for name in pkg.__all__:
        obj = getattr(pkg, name)
        if callable(obj):
            assert obj.__module__ == package, name  # stored sweep specs name e.g. opendicke.memory.recognition_map_task
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{package}.{info.name}")
        assert isinstance(getattr(pkg, info.name), types.ModuleType), f"{package}.{info.name} is shadowed"


def test_figure3_replots_with_its_theory_lines(tmp_path):
    """`opendicke plot figure3.nc` draws the same figure as `figure3`: Eq. (12) lines included."""
    from opendicke.meanfield.steady import steady_state
    from opendicke.plotting import plot_result

    model = paper_model(1.0, n_modes=2)
    g0 = np.array([0.5, 1.0, 1.5])
    ds = steady_state(model, [1, 2], vary={"g0": g0})
    eq12 = np.array([[0.0, 0.0], [0.3, 0.2], [0.6, 0.5]])  # any stored values: the figure must draw these
    ds["overlap_theory"] = (("g0", "initial"), eq12)
    ds["occupation_theory"] = (("g0", "initial"), 2 * eq12)
    fig, _ = plot_result(ds)
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"]
    assert len(lines) == 2
    assert np.allclose(lines[1].get_ydata(), eq12[:, 1]) and np.allclose(lines[1].get_xdata(), g0)


def test_no_module_of_the_package_is_shadowed_by_an_attribute_of_its_parent():
    """``opendicke.a.b`` must be the module ``b``, not a function ``b`` that hides it (was: ``meanfield.evolve``, ``quantum.solve``, ``quantum.lifetime``,
    ``fluctuations.cumulant``, ``fluctuations.twa``)."""
    import importlib
    import pkgutil
    import sys

    import opendicke

    names = [info.name for info in pkgutil.walk_packages(opendicke.__path__, "opendicke.")]
    assert "opendicke.meanfield.evolution" in names and "opendicke.meanfield.steady.driver" in names
    shadowed = []
    for name in names:
        module = importlib.import_module(name)
        parent, _, leaf = name.rpartition(".")
        if getattr(sys.modules[parent], leaf) is not module:
            shadowed.append(f"{name} (hidden by {type(getattr(sys.modules[parent], leaf)).__name__})")
    assert not shadowed, f"modules hidden by a same-named attribute of their package: {shadowed}"


def test_verdict_enums_compare_equal_to_their_stored_values_inside_arrays():
    """Classifications and outcomes are enums whose values are what results store; a ``(str, Enum)`` member would
    turn into "Classification.STABLE" inside numpy arrays and match nothing, so they are StrEnums."""
    import numpy as np

    from opendicke.meanfield.integrator import Outcome
    from opendicke.meanfield.steady import CLASSIFICATIONS, Classification
    from opendicke.memory import OUTCOMES, MemoryOutcome

    for enum, stored in ((Classification, CLASSIFICATIONS), (MemoryOutcome, OUTCOMES),
                         (Outcome, [o.value for o in Outcome])):
        values = np.array(stored)
        for member in enum:
            assert (values == member).sum() == 1 and np.array([member]).astype(str)[0] == member.value
        assert tuple(m.value for m in enum) == tuple(stored)
    assert OUTCOMES == ("recognition", "mixture", "paramagnetic", "non-stationary", "undecided")  # stored, unchanged


def test_code_tests_and_docs_cite_the_repository_s_own_documents():
    """The shared engineering guide is not in the repository: what the code relies on lives in docs/ (mostly
    docs/physics-notes.md), and that is what comments, docstrings and pages cite."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [p for folder in ("src", "tests", "docs", "benchmarks") for p in (root / folder).rglob("*")
             if p.suffix in (".py", ".md") and p.is_file()] + [root / "README.md"]
    citing = [f"{p.relative_to(root)}:{n}" for p in files
              for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if re.search(r"\bGUIDE\b", line)
              and p.name != "test_contract.py"]
    assert not citing, f"cite docs/ instead of the guide outside the repository: {citing}"
    assert "Real representation" in (root / "docs" / "physics-notes.md").read_text()  # the facts moved in


def test_no_module_imports_the_package_init():
    """Data flows one way: no module of the package takes a name from ``opendicke/__init__.py`` (the version lives
    in ``_version.py``), which would tie every module to the public façade and invite import cycles."""
    import ast
    from pathlib import Path

    import opendicke

    root = Path(opendicke.__file__).parent
    submodules = {p.stem for p in root.iterdir() if p.suffix == ".py"} | {p.name for p in root.iterdir() if p.is_dir()}
    offenders = []
    for path in root.rglob("*.py"):
        package = [root.name, *path.relative_to(root).parent.parts]  # the package this file sits in
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = node.module if node.level == 0 else ".".join(
                    package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                if target == "opendicke" and any(a.name not in submodules for a in node.names):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
            elif isinstance(node, ast.Import) and any(a.name == "opendicke" for a in node.names):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not offenders, offenders


def test_every_command_prints_tables_through_the_console_that_never_cuts_numbers():
    """Piped output keeps every digit only through ``cli.common.console`` (a plain rich Console shrinks tables to
    80 columns and cuts numbers when stdout is not a terminal); no command module builds its own."""
    import re
    from pathlib import Path

    import opendicke.cli as cli

    own = [f"{p.name}:{n}" for p in Path(cli.__file__).parent.glob("*.py") if p.name != "common.py"
           for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"from rich\.console import", line)]
    assert not own, own


def test_fluctuation_solvers_take_one_options_object_and_check_it_first(monkeypatch):
    """cumulant/twa take CumulantOptions/TWAOptions (keywords are shorthand merged into them); bad values fail on
    construction, before any integration; `fluctuations.evolve` threads no loose keywords."""
    import dataclasses

    from opendicke import fluctuations as fl
    from opendicke.fluctuations import cumulants, wigner

    for bad in (dict(samples=1), dict(samples=2.5), dict(seed=-1), dict(dt=0.0), dict(spin_sampling="poisson"),
                dict(chunk_size=0), dict(keep_bloch="no")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fl.TWAOptions(**bad)
    for bad in (dict(rtol=0.0), dict(atol=float("nan")), dict(keep_covariance="yes"), dict(max_memory=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fl.CumulantOptions(**bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fl.TWAOptions().samples = 5

    def no_work(*args, **kwargs):
        raise AssertionError("integration started before the options were checked")

    monkeypatch.setattr(cumulants, "_integrate_segments", no_work)
    monkeypatch.setattr(wigner, "integrate", no_work)
    model = paper_model(1.0, n_modes=1, n_spins=4)
    with pytest.raises(ValueError, match="samples"):
        fl.twa(model, 1, samples=1)
    with pytest.raises(ValueError, match="rtol"):
        fl.cumulant(model, 1, rtol=-1.0)
    with pytest.raises(TypeError, match="CumulantOptions"):
        fl.cumulant(model, 1, options={"rtol": 1e-6})
    with pytest.raises(TypeError, match="TWAOptions"):
        fl.evolve(model, 1, method="twa", options=fl.CumulantOptions())
    with pytest.raises(TypeError):
        fl.evolve(model, 1, method="twa", samples=10)  # no loose keywords through the dispatcher
    monkeypatch.undo()
    shorthand = fl.twa(model, 1, t_final=0.5, times=3, samples=8, seed=3)
    as_object = fl.evolve(model, 1, method="twa", t_final=0.5, times=3, options=fl.TWAOptions(samples=8, seed=3))
    np.testing.assert_array_equal(shorthand["overlap"].values, as_object["overlap"].values)
