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
from opendicke.fluctuations.cumulant import CumulantRHS, initial_covariance  # noqa: E402
from opendicke.reduction import reduce  # noqa: E402


# ----------------------------------------------------------------------------------- brute-force references
def spin_system(G, omega, omega_modes, kappa, g0, fock):
    """H, collapse operators and the per-spin / per-mode operators of individual spins ⊗ Fock modes."""
    G = np.asarray(G)
    M, N = G.shape
    dims = [2] * N + [fock] * M
    eye = [qutip.qeye(d) for d in dims]

    def embed(op, where):
        ops = list(eye)
        ops[where] = op
        return qutip.tensor(ops)

    sx = [embed(qutip.sigmax(), j) for j in range(N)]
    sy = [embed(qutip.sigmay(), j) for j in range(N)]
    sz = [embed(qutip.sigmaz(), j) for j in range(N)]
    a = [embed(qutip.destroy(fock), N + mu) for mu in range(M)]
    H = omega * sum(sx)
    for mu in range(M):
        H += omega_modes[mu] * a[mu].dag() * a[mu]
        H += (g0 / np.sqrt(N)) * (a[mu] + a[mu].dag()) * sum(G[mu, j] * sz[j] for j in range(N))
    c_ops = [np.sqrt(kappa[mu]) * a[mu] for mu in range(M)]
    return H, c_ops, sx, sy, sz, a


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
    H, c_ops, sx, sy, sz, a = spin_system(G, omega, omega_modes, kappa, g0, fock)
    rho = product_state(vectors, alphas, fock)
    drho = -1j * (H * rho - rho * H)
    for c in c_ops:
        drho += c * rho * c.dag() - 0.5 * (c.dag() * c * rho + rho * c.dag() * c)
    ops, _ = gauged_variables(G, sx, sy, sz, a)
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
