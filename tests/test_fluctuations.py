"""Fluctuation solvers (cumulant, truncated Wigner) against independent references.

References are built here from QuTiP primitives on individual, ungauged spins (no package code), or from
closed forms (damped harmonic oscillator).
"""

from __future__ import annotations

import numpy as np
import pytest

qutip = pytest.importorskip("qutip")

from opendicke import BlochState, CorruptedPattern, DickeModel, PatternState  # noqa: E402
from opendicke.fluctuations import cumulant  # noqa: E402
from opendicke.fluctuations.cumulants import CumulantRHS, initial_covariance  # noqa: E402
from opendicke.reduction import reduce  # noqa: E402
from systems.spins import individual_spins  # noqa: E402


# ----------------------------------------------------------------------------------- brute-force references
def product_state(vectors, alphas, fock):
    kets = []
    for v in vectors:
        th, ph = np.arccos(np.clip(v[2], -1, 1)), np.arctan2(v[1], v[0])
        kets.append(np.cos(th / 2) * qutip.basis(2, 0) + np.exp(1j * ph) * np.sin(th / 2) * qutip.basis(2, 1))
    kets += [qutip.coherent(fock, al) for al in alphas]
    psi = qutip.tensor(kets)
    return psi * psi.dag()


def gauged_variables(G, sx, sy, sz, a):
    """The cumulant variables u = [m_x (K), m_y (K), m_z (K), Re α (M), Im α (M)] as operators, groups by hand."""
    G = np.asarray(G)
    M, N = G.shape
    gauge = G[0]
    cols = G * gauge
    keys = sorted({tuple(c) for c in cols.T}, key=lambda c: [1 if v < 0 else 0 for v in c[1:]])
    groups = [[j for j in range(N) if tuple(cols[:, j]) == key] for key in keys]
    ops = []
    for comp in ("x", "y", "z"):
        for members in groups:
            n = len(members)
            if comp == "x":
                ops.append(sum(sx[j] for j in members) / n)
            elif comp == "y":
                ops.append(sum(gauge[j] * sy[j] for j in members) / n)
            else:
                ops.append(sum(gauge[j] * sz[j] for j in members) / n)
    for mu in range(M):
        ops.append((a[mu] + a[mu].dag()) / (2 * np.sqrt(N)))
    for mu in range(M):
        ops.append((a[mu] - a[mu].dag()) / (2j * np.sqrt(N)))
    return ops, groups


def exact_moments_and_rates(G, vectors, alphas, omega, omega_modes, kappa, g0, fock):
    """Exact means, N·Cov_sym and their time derivatives at t = 0 (d/dt ⟨O⟩ = tr(O L ρ0))."""
    s = individual_spins(G, omega, omega_modes, kappa, g0, fock)
    rho = product_state(vectors, alphas, fock)
    drho = -1j * (s.H * rho - rho * s.H)
    for c in s.c_ops:
        drho += c * rho * c.dag() - 0.5 * (c.dag() * c * rho + rho * c.dag() * c)
    ops, _ = gauged_variables(G, s.sx, s.sy, s.sz, s.a)
    n = len(ops)
    N = np.asarray(G).shape[1]
    sparse = [o.to("csr").data_as("csr_matrix") for o in ops]
    rho_d, drho_d = rho.full(), drho.full()
    # Re tr(A B ρ) = ⟨{A, B}⟩/2 for Hermitian A, B, ρ (and the same with ρ̇)
    left = [b @ rho_d for b in sparse]
    dleft = [b @ drho_d for b in sparse]
    trace = lambda A, X: np.sum(A.T.multiply(X)).real  # noqa: E731  tr(A X)
    m = np.array([np.trace(b @ rho_d).real for b in sparse])
    dm = np.array([np.trace(b @ drho_d).real for b in sparse])
    sym = np.array([[trace(sparse[i], left[j]) for j in range(n)] for i in range(n)])
    dsym = np.array([[trace(sparse[i], dleft[j]) for j in range(n)] for i in range(n)])
    cov = N * (sym - np.outer(m, m))
    dcov = N * (dsym - np.outer(dm, m) - np.outer(m, dm))
    return m, cov, dm, dcov


# ----------------------------------------------------------------------------------- cumulant equations
@pytest.mark.parametrize("seed", [0])
def test_cumulant_equations_give_the_exact_rates_at_t0(seed):
    """For a product state (tilted spins, coherent modes) the closure is exact at t = 0: the cumulant equations
    must give the exact initial values and d/dt of all first and second moments (every coefficient is checked)."""
    rng = np.random.default_rng(seed)
    G = np.array([[1, 1, -1, 1], [1, -1, 1, -1]])
    omega, omega_modes, kappa, g0 = 0.7, np.array([1.3, 2.1]), np.array([0.9, 1.6]), 1.1
    v = rng.normal(size=(4, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    alphas = np.array([0.25 - 0.1j, -0.15 + 0.2j])
    m_ex, cov_ex, dm_ex, dcov_ex = exact_moments_and_rates(G, v, alphas, omega, omega_modes, kappa, g0, fock=8)

    model = DickeModel(omega=omega, omega_modes=omega_modes, kappa=kappa, g0=g0, patterns=G)
    state = BlochState(v, alpha=alphas / np.sqrt(4))
    grouping = reduce(model)
    from opendicke.meanfield.equations import pack

    m0 = pack(state.group_vectors(model, grouping), state.initial_alpha(model))
    s0 = initial_covariance(model, grouping, state)
    np.testing.assert_allclose(m0, m_ex, atol=1e-9)
    np.testing.assert_allclose(s0, cov_ex, atol=1e-9)
    rhs = CumulantRHS(grouping.f, grouping.weights, np.array([omega]), np.array([g0]), omega_modes[None], kappa[None],
                      np.array([1.0 / 4]))
    dy = rhs(np.concatenate([m0, s0.ravel()])[None])[0]
    n = m0.size
    np.testing.assert_allclose(dy[:n], dm_ex, atol=1e-8)
    np.testing.assert_allclose(dy[n:].reshape(n, n), dcov_ex, atol=1e-8)


def test_cumulant_linear_version_is_mean_field_and_n_independent():
    """The linear version's means are mean field (independent reference: opendicke.evolve is the package's, so also
    check |m| conservation and the N-independence of N·cost_linear, which the linear theory implies)."""
    from opendicke import evolve

    G = np.array([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, -1, -1, -1, -1]])
    G8 = np.repeat(G, 4, axis=1)  # 32 spins, two equal groups
    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.0, patterns=G)
    big = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.0, patterns=G8)
    a = cumulant(model, 1, t_final=3, times=7)
    b = cumulant(big, 1, t_final=3, times=7)
    mf = evolve(model, 1, t_final=3, times=7, representation="groups")
    np.testing.assert_allclose(a["overlap_meanfield"].values, mf["overlap"].values, atol=1e-8)
    N = lambda m: m.n_spins / 2 ** (m.n_modes - 1)  # noqa: E731
    np.testing.assert_allclose(N(model) * a["cost_linear"].values, N(big) * b["cost_linear"].values, rtol=1e-6)
    # a coherent spin state is not squeezed: Wineland ξ_R² = 1 in every group at t = 0
    np.testing.assert_allclose(a["squeezing"].values[0], 1.0, rtol=1e-12)
    # E_N(0) = 2 Σ_k 1/n_k + M/N for a pattern state (docs/physics-notes.md, Measured facts): groups of 4 spins here
    assert a["cost"].values[0] == pytest.approx(2 * (1 / 4 + 1 / 4) + 2 / N(model), rel=1e-12)
    # with feedback the means move away from mean field by O(1/N), and less for the larger model
    d_small = np.abs(a["overlap"] - a["overlap_meanfield"]).max()
    d_big = np.abs(b["overlap"] - b["overlap_meanfield"]).max()
    assert 0 < d_big < d_small


# ----------------------------------------------------------------------------------- truncated Wigner
def _oscillator(kappa=1.0, omega_mode=3.0, n_spins=1):
    G = np.ones((1, n_spins), dtype=int)
    return DickeModel(omega=0.0, omega_modes=[omega_mode], kappa=kappa, g0=0.0, patterns=G)


def test_twa_damped_oscillator_matches_the_closed_form_within_three_sigma():
    """g0 = 0: a damped coherent mode. ⟨a⟩ = a0 e^{−(iΩ+κ/2)t}, ⟨a†a⟩ = |a0|² e^{−κt}; without the loss noise the
    vacuum part of ⟨|α|²⟩_W would decay and the occupation would go negative by (1 − e^{−κt})/2 (N_sp = 1)."""
    from opendicke.fluctuations import twa

    model = _oscillator()
    a0 = 0.8 - 0.3j
    state = PatternState(1, alpha=a0)
    ds = twa(model, state, t_final=3.0, times=7, samples=4000, seed=3, dt=0.01)
    t = ds["time"].values
    n_exact = abs(a0) ** 2 * np.exp(-t)
    a_exact = a0 * np.exp(-(3j + 0.5) * t)
    occ, err = ds["occupation"].values[:, 0], ds["occupation_error"].values[:, 0]
    assert np.all(np.abs(occ - n_exact)[1:] < 3 * err[1:] + 1e-12)
    assert np.all(err[1:] > 0.003)  # the bound is not vacuous and not absurdly tight
    np.testing.assert_allclose(ds["alpha"].values[:, 0], a_exact, atol=0.05)


def test_twa_stationary_variance_has_the_weak_order_two_bias_of_the_scheme():
    """Strang splitting of an Ornstein–Uhlenbeck process: the stationary ⟨|α|²⟩_W of the scheme is
    (κh/4)(1 + ρ)/(1 − ρ) with ρ = |R(h)|², R the RK4 polynomial of −(iΩ + κ/2)h — i.e. ½(1 + (κh)²/12 + …):
    weak order 2. At κh = 1 the bias (0.04) is well above the error bars, so the scheme itself is tested."""
    from opendicke.fluctuations import twa

    kappa, omega_mode, h = 1.0, 0.5, 1.0
    z = -(1j * omega_mode + kappa / 2) * h
    R = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    rho = abs(R) ** 2
    predicted = (kappa * h / 4) * (1 + rho) / (1 - rho) - 0.5
    ds = twa(_oscillator(kappa, omega_mode), 1, t_final=30.0, times=[0.0, 28.0, 29.0, 30.0], samples=20000, seed=5, dt=h)
    occ = ds["occupation"].values[1:, 0]
    err = ds["occupation_error"].values[1:, 0]
    assert predicted > 0.03
    assert np.all(np.abs(occ - predicted) < 3 * err)
    fine = twa(_oscillator(kappa, omega_mode), 1, t_final=8.0, times=[0.0, 8.0], samples=20000, seed=5, dt=0.1)
    assert abs(fine["occupation"].values[-1, 0]) < 3 * fine["occupation_error"].values[-1, 0] + 5e-4  # bias 4e-4


def test_twa_is_reproducible_and_error_bars_shrink_as_inverse_square_root():
    from opendicke.fluctuations import twa

    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=16, seed=0)
    kw = dict(t_final=2.0, times=5, seed=11, dt=0.02)
    a = twa(model, 1, samples=400, **kw)
    b = twa(model, 1, samples=400, **kw)
    np.testing.assert_array_equal(a["overlap"].values, b["overlap"].values)
    c = twa(model, 1, samples=1600, **kw)
    ratio = a["overlap_error"].values[1:, 0] / c["overlap_error"].values[1:, 0]
    np.testing.assert_allclose(ratio, 2.0, rtol=0.15)
    # the quantum spread does not shrink with samples
    np.testing.assert_allclose(a["overlap_std"].values[1:, 0], c["overlap_std"].values[1:, 0], rtol=0.15)


def test_twa_and_cumulant_agree_at_large_n_early_times():
    """At N_sp = 10⁴ and t ≤ 1.5 both should hold: TWA within 3σ of the cumulant means; spreads agree."""
    from opendicke.fluctuations import twa

    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.0, n_spins=10_000, seed=1)
    c = cumulant(model, 1, t_final=1.5, times=4)
    w = twa(model, 1, t_final=1.5, times=4, samples=300, seed=2, dt=0.02)
    diff = np.abs(w["overlap"] - c["overlap"]).values[1:]
    assert np.all(diff < 3 * w["overlap_error"].values[1:] + 1e-12)
    occ = np.abs(w["occupation"] - c["occupation"]).values[1:]
    assert np.all(occ < 3 * w["occupation_error"].values[1:] + 1e-12)
    np.testing.assert_allclose(w["overlap_std"].values[1:], c["overlap_std"].values[1:], rtol=0.25)


def test_initial_spin_samples_have_the_exact_moments():
    """Both samplings reproduce ⟨S⟩ and the symmetrised covariance Σ_j (1 − s_j s_jᵀ) of a product state."""
    from opendicke.fluctuations.wigner import sample_spins

    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=40, seed=0)
    state = CorruptedPattern(1, flip=0.25, seed=2)
    # gauged frame: pattern-1 spins all along +z, the 10 flipped ones along −z (one group at M = 1)
    for method in ("discrete", "gaussian"):
        s = sample_spins(model, state, 40000, method=method, seed=1)[:, 0, :] * 40  # S (one group)
        mean = s.mean(axis=0)
        cov = np.cov(s.T)
        np.testing.assert_allclose(mean, [0, 0, 40 * 0.5], atol=0.15)
        np.testing.assert_allclose(cov, np.diag([40.0, 40.0, 0.0]), atol=1.2)


def test_both_methods_run_through_run_sweep_like_one_call():
    """A chunked sweep (one g0 per chunk) gives exactly one call over the whole grid, for TWA too (per-point
    random streams)."""
    from opendicke.fluctuations import twa
    from opendicke.sweep import run_sweep

    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.0, n_spins=100, seed=0)
    vary = {"g0": [0.8, 1.2]}
    for solver, options in ((cumulant, {"t_final": 1.0, "times": 3}),
                            (twa, {"t_final": 1.0, "times": 3, "samples": 20, "seed": 1, "dt": 0.05})):
        swept = run_sweep(model, [1, 2], vary=vary, solver=solver, arguments=options, chunk_size=1, scheduler="in-process")
        direct = solver(model, [1, 2], vary=vary, **options)
        assert swept.attrs["sweep_chunks"] == 2
        # same random numbers per point; the arithmetic of a smaller batch may differ in the last bit
        np.testing.assert_allclose(swept["overlap"].values, direct["overlap"].values, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(swept["overlap_std"].values, direct["overlap_std"].values, rtol=1e-12, atol=1e-15)


def test_twa_step_has_strong_order_one():
    """Strong (pathwise) convergence of the Strang step on a damped, rotating, weakly nonlinear mode driven by one
    fixed Brownian path per sample: halving h halves the rms error against h/2^7 (order 1)."""
    from opendicke.fluctuations.wigner import strang_step

    A = np.array([[-0.5, 3.0], [-3.0, -0.5]])
    rhs = lambda y: y @ A.T - 0.3 * y * (y**2).sum(axis=1, keepdims=True)  # noqa: E731
    T, R, top = 2.0, 1000, 9
    rng = np.random.default_rng(0)
    half = T / 2 ** (top + 1)
    W = np.concatenate([np.zeros((1, R, 2)), np.cumsum(rng.standard_normal((2 ** (top + 1), R, 2)) * np.sqrt(half), axis=0)])

    def run(level):
        n, stride = 2**level, 2 ** (top - level)
        h = T / n
        bounds = [0] + [stride * (2 * k + 1) for k in range(n)] + [2 ** (top + 1)]
        taus = iter([h / 2] + [h] * (n - 1) + [h / 2])
        increments = iter([W[b] - W[a] for a, b in zip(bounds[:-1], bounds[1:])])
        draw = lambda: next(increments) / np.sqrt(next(taus))  # noqa: E731
        y = np.tile([[0.8, -0.3]], (R, 1))
        for k in range(n):
            y = strang_step(rhs, y, h, np.full((R, 2), 0.5), draw, first=(k == 0), last=(k == n - 1))
        return y

    ref = run(top)
    errors = [np.sqrt(np.mean(np.sum((run(level) - ref) ** 2, axis=1))) for level in (3, 4, 5)]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)
