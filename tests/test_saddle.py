"""The full-space saddle band g_c(ν) < g0 < g_stab(ν), checked by plain dynamics (no Jacobian, no steady_state).

g_stab(ν) = g_c(ν)^{3/2} / min_μ g_c(μ)^{1/2} (derived in docs/memory.md). A pattern-ν start kicked by a small
random perturbation must leave pattern ν for pattern 1 just below g_stab, and stay on the Eq. (12) state just
above it.
"""

import numpy as np
import pytest

import opendicke as od
from opendicke.reduction import reduce
from opendicke.states import BlochState


def kicked_pattern_state(model, nu, size=1e-4, seed=3):
    f = reduce(model).f
    v = np.zeros((f.shape[1], 3))
    v[:, 2] = f[nu - 1]
    v += size * np.random.default_rng(seed).normal(size=v.shape)
    return BlochState(v / np.linalg.norm(v, axis=1)[:, None])


@pytest.mark.parametrize("nu", [2, 3])
def test_kicked_retrieval_state_is_lost_below_g_stab_and_kept_above(nu):
    model = od.paper_model()
    g_c = od.critical_coupling(model.omega, model.omega_modes, model.kappa)
    g_stab = g_c[nu - 1] ** 1.5 / g_c.min() ** 0.5
    assert g_stab > g_c[nu - 1] + 0.02  # a real band, not a rounding effect
    below, above = model.replace(g0=g_stab - 0.02), model.replace(g0=g_stab + 0.02)
    lost = od.evolve(below, kicked_pattern_state(below, nu), t_final=1500, times=2).overlap.isel(time=-1).values
    kept = od.evolve(above, kicked_pattern_state(above, nu), t_final=1500, times=2).overlap.isel(time=-1).values
    assert abs(lost[nu - 1]) < 1e-3 and abs(lost[0]) > 0.5  # captured by pattern 1
    z = od.retrieval_overlap(above.g0, model.omega, model.omega_modes[nu - 1], model.kappa[nu - 1])
    assert abs(abs(kept[nu - 1]) - z) < 1e-3  # still on the Eq. (12) state of pattern ν (either sign)
    assert np.all(np.abs(np.delete(kept, nu - 1)) < 1e-3)
