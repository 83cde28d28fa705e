"""The compiled real-representation kernel and the Chebyshev propagator (opendicke.quantum.kernels/chebyshev/plain),
against QuTiP (its own Liouvillian and mesolve on the same operators) and against the previous engines;
the automatic method choice by memory; options that fail at once, naming the option."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import qutip

from opendicke import DickeModel
from opendicke.quantum import FockCutoffWarning, MethodWarning, QuantumOptions, build, propagate, solve
from opendicke.quantum.chebyshev import SpectralBound, bessel_table, chebyshev_moments, functionals
from opendicke.quantum.kernels import SplitLayout, band_form
from opendicke.quantum.plain import real_state

CASES = [  # (M, N_sp, fock, seed)
    (1, 4, 10, 0),
    (2, 3, 4, 1),
    (3, 3, 3, 2),
]


def model_for(M, N, seed, g0=1.0):
    rng = np.random.default_rng(seed)
    G = rng.choice([-1, 1], size=(M, N))
    G[0, 0] = 1
    return DickeModel(omega=0.5, omega_modes=[1.5, 1.9, 2.3][:M], kappa=[1.0, 0.6, 0.8][:M], g0=g0, patterns=G)


@pytest.mark.parametrize("M, N, fock, seed", CASES)
def test_kernel_is_the_lindbladian_on_the_real_representation(M, N, fock, seed):
    """L(X) of the band kernel against QuTiP's own Liouvillian superoperator acting on a random Hermitian ρ."""
    p = build(model_for(M, N, seed), 1, fock=fock)
    q = p.to_qutip()
    L = qutip.liouvillian(q.hamiltonian, q.collapse_operators).data_as("csr_matrix")
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(p.dim, p.dim)) + 1j * rng.normal(size=(p.dim, p.dim))
    rho = A + A.conj().T
    drho = (L @ rho.reshape(-1, order="F")).reshape(p.dim, p.dim, order="F")  # QuTiP stacks columns
    op = band_form(p.hamiltonian, p.collapse_operators)
    dX = op.apply(rho.real + rho.imag)
    assert np.abs(dX - (drho.real + drho.imag)).max() < 1e-11 * np.abs(drho).max()
    assert np.abs(drho - drho.conj().T).max() < 1e-10  # the real representation needs ρ̇ Hermitian


@pytest.mark.parametrize("M, N, fock, seed", CASES)
def test_split_kernel_is_the_lindbladian(M, N, fock, seed):
    """The split (A, B) kernel: L(ρ) for ρ = A + iB against QuTiP's Liouvillian, dA = Re L(ρ), dB = Im L(ρ); a
    second application (which reads the band the first one mirrored below the diagonal) and the recurrence form
    α L(X) + β X + π P against the same superoperator; serial and threaded rows agree."""
    p = build(model_for(M, N, seed), 1, fock=fock)
    q = p.to_qutip()
    L = qutip.liouvillian(q.hamiltonian, q.collapse_operators).data_as("csr_matrix")

    def lind(r):
        return (L @ r.reshape(-1, order="F")).reshape(p.dim, p.dim, order="F")  # QuTiP stacks columns

    rng = np.random.default_rng(seed)
    A = rng.normal(size=(p.dim, p.dim)) + 1j * rng.normal(size=(p.dim, p.dim))
    rho = A + A.conj().T
    lay = SplitLayout(band_form(p.hamiltonian, p.collapse_operators))
    S = lay.state(rho.real + rho.imag)
    assert np.allclose(S[0, :, lay.pad: lay.pad + p.dim], rho.real) and np.allclose(S[1, :, lay.pad: lay.pad + p.dim], rho.imag)
    P = rng.normal(size=(p.dim, p.dim)) + 1j * rng.normal(size=(p.dim, p.dim))
    P = P + P.conj().T
    for parallel in (False, True):
        out = lay.state(P.real + P.imag)
        lay.step(S, out, out, 0.7, 0.3, -1.0, parallel)  # out = 0.7 L(ρ) + 0.3 ρ − P
        ref1 = 0.7 * lind(rho) + 0.3 * rho - P
        got1 = lay.to_full(out)
        assert np.abs(got1 - (ref1.real + ref1.imag)).max() < 1e-11 * np.abs(ref1).max()
        out2 = lay.zeros()
        sq = lay.step(out, out2, out2, 1.0, 0.0, 0.0, parallel)
        ref2 = lind(ref1)
        got2 = lay.to_full(out2)
        assert np.abs(got2 - (ref2.real + ref2.imag)).max() < 1e-11 * np.abs(ref2).max()
        assert sq == pytest.approx(np.sum(np.abs(ref2) ** 2), rel=1e-12)  # ‖X‖² = ‖A‖² + ‖B‖² = ‖ρ̇‖²


def test_split_functionals_read_the_same_values():
    rng = np.random.default_rng(4)
    p = build(model_for(1, 4, 0), 1, fock=6)
    lay = SplitLayout(band_form(p.hamiltonian, p.collapse_operators))
    names, F = functionals(p.observables(True, 0), p.dim)
    A = rng.normal(size=(p.dim, p.dim)) + 1j * rng.normal(size=(p.dim, p.dim))
    rho = A @ A.conj().T
    X = rho.real + rho.imag
    assert np.abs(lay.functional(F) @ lay.state(X).ravel() - F @ X.ravel()).max() < 1e-12 * np.abs(F @ X.ravel()).max()


@pytest.mark.parametrize("M, N, fock, seed", CASES)
def test_split_and_full_layouts_give_the_same_propagation(M, N, fock, seed):
    """The split layout against the transpose-based full one (the previous engine), same bound: same outputs to
    rounding and the same number of applications."""
    p = build(model_for(M, N, seed), 1, fock=fock)
    op = band_form(p.hamiltonian, p.collapse_operators)
    names, F = functionals(p.observables(False, 0), p.dim)
    t = np.linspace(0.0, 3.0, 7)
    X0 = real_state(p.initial_ket)
    split = chebyshev_moments(op, X0, F, t, tol=1e-10, layout="split")
    full = chebyshev_moments(op, X0, F, t, tol=1e-10, layout="full")
    assert split.applications == full.applications and split.restarts == full.restarts
    assert np.abs(split.values - full.values).max() < 1e-12
    with pytest.raises(ValueError, match="layout"):
        chebyshev_moments(op, X0, F, t, layout="packed")


def test_functionals_read_expectation_values_of_the_real_representation():
    rng = np.random.default_rng(3)
    d = 7
    A = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    rho = A @ A.conj().T
    ops = {"hermitian": (lambda B: B + B.conj().T)(rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))),
           "general": rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))}
    import scipy.sparse as sp

    names, F = functionals({k: sp.csr_matrix(v) for k, v in ops.items()}, d)
    values = F @ (rho.real + rho.imag).ravel()
    for i, name in enumerate(names):
        assert values[i] == pytest.approx(np.trace(ops[name] @ rho), rel=1e-12)
    psi = rng.normal(size=d) + 1j * rng.normal(size=d)
    r = np.outer(psi, psi.conj())
    assert np.allclose(real_state(psi), r.real + r.imag)


def test_bessel_table_matches_scipy():
    from scipy.special import jv

    x = np.array([0.0, 0.4, 7.0, 180.0, 900.0])
    table = bessel_table(1100, x)
    assert np.abs(table - jv(np.arange(1101)[:, None], x[None, :])).max() < 1e-13


@pytest.mark.parametrize("M, N, fock, seed", CASES)
def test_chebyshev_agrees_with_qutip_mesolve_and_with_expm(M, N, fock, seed):
    """The new propagator against QuTiP mesolve at tight tolerances on the same problem, and against the
    package's previous exact engine (sparse expm_multiply), for M = 1, 2, 3."""
    p = build(model_for(M, N, seed), 1, fock=fock)
    t = np.linspace(0.0, 3.0 if M < 3 else 1.0, 11)
    q = p.to_qutip()
    e_ops = {name: op for name, op in q.observables.items() if name.split("_")[0] in ("overlap", "occupation", "alpha", "mx", "my")}
    ref = qutip.mesolve(q.hamiltonian, q.rho0, t, q.collapse_operators, e_ops=e_ops,
                        options={"atol": 1e-12, "rtol": 1e-10, "method": "dop853", "nsteps": 10**7})
    run = propagate(p, t, method="chebyshev", atol=1e-11)
    old = propagate(p, t, method="expm")
    assert run.stats["restarts"] >= 0 and run.stats["cancellation"] < 1e3
    for name in e_ops:
        assert np.abs(run.values[name] - np.asarray(ref.e_data[name])).max() < 1e-8, name
        assert np.abs(run.values[name] - old.values[name]).max() < 1e-9, name


def test_too_small_spectral_bound_is_detected_and_enlarged():
    """A bound far inside the spectrum makes the Chebyshev terms grow; the run must notice (cancellation
    factor), enlarge the ellipse, and still return the exact answer."""
    p = build(model_for(1, 4, 0), 1, fock=10)
    t = np.linspace(0.0, 2.0, 5)
    op = band_form(p.hamiltonian, p.collapse_operators)
    names, F = functionals({"overlap_1": p.observables()["overlap_1"]}, p.dim)
    good = chebyshev_moments(op, real_state(p.initial_ket), F, t, tol=1e-11)
    bad = chebyshev_moments(op, real_state(p.initial_ket), F, t, tol=1e-11, bound=SpectralBound(12.0, 2.0))
    assert bad.restarts >= 2 and good.restarts == 0
    assert np.abs(bad.values - good.values).max() < 1e-9


def test_solve_default_is_exact_master_equation_to_tol():
    """Default settings: the Chebyshev master equation, cutoff searched to tol = 1e-6, against QuTiP mesolve
    (tight) at a cutoff well above the one chosen."""
    model = model_for(1, 4, 5)
    ds = solve(model, 1, t_final=2.0, times=11, cost=False)
    assert ds.attrs["method"] == "chebyshev" and bool(ds.fock_converged)
    p = build(model, 1, fock=int(ds.fock.values[0]) + 6)
    q = p.to_qutip()
    ref = qutip.mesolve(q.hamiltonian, q.rho0, ds.time.values, q.collapse_operators,
                        e_ops={k: q.observables[k] for k in ("overlap_1", "occupation_1")},
                        options={"atol": 1e-12, "rtol": 1e-10, "method": "dop853", "nsteps": 10**7})
    err = max(np.abs(ds.overlap.values[:, 0] - np.real(ref.e_data["overlap_1"])).max(),
              np.abs(ds.occupation.values[:, 0] - np.real(ref.e_data["occupation_1"])).max())
    assert err < 1e-6


def test_given_cutoff_is_checked_against_memory_before_building(monkeypatch):
    import opendicke.quantum.problem as problem_module

    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=1000, seed=1)
    built = []
    original = problem_module.QuantumProblem.hamiltonian.func
    monkeypatch.setattr(problem_module.QuantumProblem, "hamiltonian",
                        property(lambda self: built.append(self.dim) or original(self)))
    with pytest.raises(ValueError, match="memory"):
        solve(model, 1, fock=32, frame="plain", method="chebyshev")  # 32 032 states: ~30 GiB
    with pytest.raises(ValueError, match="memory"):
        solve(model, 1, fock=32, frame="plain", method="mesolve")
    assert built == []


@pytest.mark.parametrize("kwargs, option", [
    ({"tol": -1.0}, "tol"),
    ({"tol": float("nan")}, "tol"),
    ({"memory": 0}, "memory"),
    ({"threads": 0}, "threads"),
    ({"ntraj": 1}, "ntraj"),
    ({"fock": [4, 5, 6]}, "fock"),
    ({"fock": [12, 12], "frame": "gaussian"}, "fock"),
    ({"fock": 1}, "fock"),
    ({"method": "rk4"}, "method"),
    ({"frame": "polaron"}, "frame"),
    ({"times": [0.5, 1.0]}, "times"),
    ({"atol": 0.0}, "atol"),
    ({"deviation_tol": -1e-3}, "deviation_tol"),
])
def test_bad_options_fail_at_once_naming_the_option(monkeypatch, kwargs, option):
    import sys

    import opendicke.meanfield as meanfield

    solve_module = sys.modules["opendicke.quantum.solver"]  # the package attribute is the function

    def forbidden(*args, **kw):
        raise AssertionError("built something before checking the options")

    monkeypatch.setattr(solve_module, "build", forbidden)
    monkeypatch.setattr(meanfield, "evolve", forbidden)
    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.0, n_spins=4, seed=1)
    with pytest.raises(ValueError, match=option):
        solve(model, 1, **kwargs)
    if "fock" not in kwargs:  # the options object alone fails the same way
        with pytest.raises(ValueError, match=option):
            QuantumOptions(**kwargs)


def test_options_are_frozen_and_combine_with_keywords():
    opts = QuantumOptions(tol=1e-5, t_final=1.0, times=5)
    with pytest.raises(Exception):
        opts.tol = 1.0  # type: ignore[misc]
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=3, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FockCutoffWarning)
        ds = solve(model, 1, options=opts, fock=6, cost=False)
    assert ds.attrs["tol"] == 1e-5 and ds.time.size == 5 and int(ds.fock.values[0]) == 6


def test_cli_memory_flag_and_chosen_basis_are_reported():
    from typer.testing import CliRunner

    from opendicke.cli import app

    runner = CliRunner()
    base = ["quantum", "--omega-modes", "1.5", "--n-spins", "3", "--t-final", "1", "--times", "3", "--fock", "12"]
    result = runner.invoke(app, base + ["--memory", "1GiB"])
    assert result.exit_code == 0, result.output
    assert "basis: plain" in result.output and "method chebyshev" in result.output
    result = runner.invoke(app, base + ["--method", "chebyshev", "--memory", "1KiB"])
    assert result.exit_code != 0 and "memory" in result.output
    result = runner.invoke(app, base + ["--memory", "lots"])
    assert result.exit_code != 0 and "--memory" in result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.invoke(app, base + ["--memory", "1KiB", "--ntraj", "4", "--json"])
    assert result.exit_code == 0 and "trajectories" in result.output and '"method": "trajectories"' in result.output


def test_propagation_does_not_import_in_a_circle():
    """quantum/ modules import each other one way: result and options at the bottom, solve at the top."""
    import ast
    import pathlib

    import opendicke.quantum as q

    root = pathlib.Path(q.__file__).parent
    imports = {}
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        imports[path.stem] = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}

    def reach(start, seen=()):
        for nxt in imports.get(start, ()):
            if nxt in seen:
                continue
            yield nxt
            yield from reach(nxt, seen + (nxt,))

    for module in imports:
        if module == "__init__":
            continue
        assert module not in set(reach(module)), f"import cycle through {module}"


def test_threads_give_the_same_answer():
    p = build(model_for(2, 3, 1), 1, fock=4)
    t = np.linspace(0.0, 2.0, 5)
    one = propagate(p, t, method="chebyshev", atol=1e-11, threads=1)
    two = propagate(p, t, method="chebyshev", atol=1e-11, threads=2)
    for name in ("overlap_1", "overlap_2", "occupation_1", "alpha_2"):
        assert np.abs(one.values[name] - two.values[name]).max() < 1e-12


def test_relative_change_of_the_deviations():
    from opendicke.quantum.gaussian import relative_change

    new = {"overlap": np.array([0.0, 2.0, -4.0]), "cost": np.array([10.0, 20.0])}
    old = {"overlap": np.array([0.0, 2.2, -4.0]), "cost": np.array([10.0, 19.0])}
    assert relative_change(new, old) == pytest.approx(max(0.2 / 4.0, 1.0 / 20.0))


@pytest.mark.slow
def test_gaussian_search_reports_and_can_require_the_relative_change():
    """An absolute tol on ξ can pass while N·(ξ − ξ_MF) still moves; deviation_tol makes the search see it."""
    from opendicke.quantum.gaussian import frame_dimension, search_levels

    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=10_000, seed=1)
    p = build(model, 1, fock=2)
    times = np.linspace(0.0, 2.0, 11)
    from opendicke import evolve

    mf = evolve(model, 1, times=times, representation="groups")

    def deviations(run):
        N = run.problem.n_spins
        return {"overlap": N * (np.real(run.per_pattern("overlap")) - mf["overlap"].values)}

    loose = search_levels(p, times, 1e-3, first=4, step=4, deviations=deviations)
    assert loose.converged and np.isfinite(loose.deviation_change) and loose.deviation_change > 0
    with pytest.warns(FockCutoffWarning, match="relative change"):
        strict = search_levels(p, times, 1e-3, first=4, step=4, deviations=deviations, deviation_tol=1e-14,
                               max_dim=frame_dimension(p, 12))
    assert not strict.converged and strict.levels > loose.levels


def test_quantum_and_convergence_options_all_have_help():
    import typer.main

    from opendicke.cli import app

    group = typer.main.get_command(app)
    for name in ("quantum", "convergence"):
        command = group.commands[name]
        missing = [p.opts for p in command.params
                   if getattr(p, "param_type_name", "") == "option" and not p.hidden and not (p.help or "").strip()]
        assert missing == [], (name, missing)


def test_generic_chebyshev_driver_matches_expm_on_a_non_normal_generator():
    """chebyshev_series (the driver shared by the plain and permutation-invariant bases) on a dense, non-normal
    real generator given only as a step function, against scipy's expm; a far too small ellipse restarts and
    gives the same values."""
    from scipy.linalg import expm

    from opendicke.quantum.chebyshev import CallbackStepper, chebyshev_series

    rng = np.random.default_rng(3)
    d = 40
    A = rng.normal(size=(d, d))
    B = rng.normal(size=(d, d)) / np.sqrt(d)
    L = 2.0 * (A - A.T) / np.sqrt(d) - B @ B.T - 0.1 * np.eye(d) + 0.2 * np.triu(rng.normal(size=(d, d)), 1)
    X0 = rng.normal(size=d)
    F = rng.normal(size=(3, d)) + 1j * rng.normal(size=(3, d))
    t = np.linspace(0, 4.0, 9)
    ref = np.array([F @ expm(tt * L) @ X0 for tt in t]).T

    def apply(cur, out, alpha, beta, pi):
        out[:] = alpha * (L @ cur) + beta * cur + pi * out
        return float(out @ out)

    lam = np.linalg.eigvals(L)
    good = chebyshev_series(CallbackStepper(X0, apply, F.real, F.imag), t,
                            SpectralBound(1.3 * np.abs(lam.imag).max() + 1.0, 0.6 * np.abs(lam.real).max()), tol=1e-12)
    bad = chebyshev_series(CallbackStepper(X0, apply, F.real, F.imag), t, SpectralBound(0.5, 0.1), tol=1e-12)
    assert good.restarts == 0 and bad.restarts > 0
    assert np.max(np.abs(good.values - ref)) < 1e-9 * np.max(np.abs(ref))
    assert np.max(np.abs(bad.values - ref)) < 1e-9 * np.max(np.abs(ref))
