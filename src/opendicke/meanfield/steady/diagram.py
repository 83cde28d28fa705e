"""Paper Fig. 3 as a result: the stationary state reached from every pattern over a grid of g0, with Eq. (12)
beside it and the numerical thresholds g_c(ν) located by multisection."""

from __future__ import annotations

import numpy as np

from ...model import DickeModel
from ...results import paper_factor, timed
from ...theory import critical_coupling, retrieval_occupation, retrieval_overlap
from .classification import Classification
from .driver import find_critical_coupling, steady_state
from .options import SteadyStateOptions, steady_options

#: Eq. (12) is drawn on this many couplings (its square-root onset at g_c needs more points than the numerics)
EQ12_POINTS = 1200


@timed
def phase_diagram(model: DickeModel, g0, *, paper_units: bool = False, options: SteadyStateOptions | None = None,
                  progress=None):
    """Stationary states started from each pattern ν = 1..M at every coupling of ``g0`` (paper Fig. 3).

    Returns the :func:`steady_state` Dataset (dims g0, initial, pattern, …) with, beside the numerics:
    ``overlap_theory``/``occupation_theory`` (Eq. 12 at the computed couplings, dims g0 × initial),
    ``overlap_eq12``/``occupation_eq12`` on a dense grid ``g0_eq12`` (for drawing), ``g_crit_theory`` and
    ``g_crit_numerical`` (the coupling where pattern ν starts to be retrieved stably, by multisection inside the
    bracket the grid gives; no Eq. (12) input), and the attribute ``max_eq12_deviation``: the largest
    | |ξ_ν| − Eq. (12) | over couplings at least 0.01 away from g_c(ν). ``options``: the
    :class:`SteadyStateOptions` of every solve (the steady states and the multisection).
    """
    opts = steady_options(options)  # checked before any work
    g0 = np.asarray(g0, dtype=float)
    if g0.ndim != 1 or g0.size < 2 or not np.all(np.diff(g0) > 0):
        raise ValueError("g0 must be an increasing grid of at least two couplings")
    M = model.n_modes
    ds = steady_state(model, list(range(1, M + 1)), vary={"g0": g0}, paper_units=paper_units, progress=progress,
                      options=opts)
    factor = paper_factor(M) if paper_units else 1.0
    omega, om, kap = model.omega, model.omega_modes, model.kappa
    ds["overlap_theory"] = (("g0", "initial"), retrieval_overlap(g0[:, None], omega, om, kap))
    ds["occupation_theory"] = (("g0", "initial"), retrieval_occupation(g0[:, None], omega, om, kap) * factor)
    dense = np.linspace(g0[0], g0[-1], EQ12_POINTS)
    ds = ds.assign_coords(g0_eq12=dense)
    ds["overlap_eq12"] = (("initial", "g0_eq12"), retrieval_overlap(dense, omega, om[:, None], kap[:, None]))
    ds["occupation_eq12"] = (("initial", "g0_eq12"), retrieval_occupation(dense, omega, om[:, None], kap[:, None]) * factor)
    g_c = critical_coupling(omega, om, kap)
    # numerical thresholds: multisection inside the bracket that the computed grid already gives
    own = np.abs(np.stack([ds["overlap"].values[:, i, i] for i in range(M)], axis=1))
    stable = ds["classification"].values == Classification.STABLE
    retrieving = np.stack([stable[:, i] for i in range(M)], axis=1) & (own > 1e-3)
    upper = np.array([g0[r].min() if r.any() else 3 * g0[-1] for r in retrieving.T])
    lower = np.array([g0[~r & (g0 < u)].max() if (~r & (g0 < u)).any() else 0.0 for r, u in zip(retrieving.T, upper)])
    ds["g_crit_theory"] = (("initial",), g_c)
    crit = find_critical_coupling(model, bracket=(lower, upper), options=opts)
    ds["g_crit_numerical"] = (("initial",), crit["g_crit"].values)
    away = np.abs(g0[:, None] - g_c[None, :]) >= 0.01
    ds.attrs["max_eq12_deviation"] = float(np.nanmax(np.where(away, np.abs(own - ds["overlap_theory"].values), 0.0)))
    return ds
