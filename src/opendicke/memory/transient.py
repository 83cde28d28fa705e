"""Transient retrieval with individual spin dissipation: a map over the coupling and one spin rate.

With decay, pumping or dephasing in the σ_z basis (docs/spin-dissipation.md) balanced patterns have no
stationary retrieval state: every start ends on the paramagnet. What survives is a *transient*: from the
pattern-ν state the overlap |ξ_ν(t)| stays large for a while and then decays. This module measures it on a grid
of g0 and one rate (``gamma_phi`` by default) with the batched mean-field dynamics (:func:`opendicke.evolve`,
Bloch damping included), from every stored pattern:

* ``overlap``: |ξ_ν(t_obs)| of the start's own pattern at the observation time ``t_obs``;
* ``retrieved``: at ``t_obs`` that overlap exceeds ``threshold`` and is the largest of all overlaps;
* ``retention_time``: the last output time at which |ξ_ν(t)| ≥ ``threshold`` (0 if never, ``inf`` if still at
  ``t_final``: censored);
* ``n_retrieved``: how many patterns are retrieved at ``t_obs`` (the pattern-selective regime is where some, not
  all, are), and ``g_crit_lossless``: the Eq. (12) thresholds g_c(ν) without spin dissipation, for reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..grid import SPIN_RATES
from ..model import DickeModel
from ..results import timed
from ..theory import critical_coupling

__all__ = ["transient_retrieval_map"]


@timed
def transient_retrieval_map(
    model: DickeModel,
    g0: Sequence[float],
    rates: Sequence[float],
    *,
    rate: str = "gamma_phi",
    patterns: Sequence[int] | None = None,
    t_obs: float = 50.0,
    t_final: float = 200.0,
    times: int = 401,
    threshold: float = 0.5,
    representation: str = "auto",
    progress: Callable[[float], None] | None = None,
):
    """Transient retrieval from every pattern over (g0, rate): overlap at ``t_obs`` and retention time.

    Parameters
    ----------
    model:
        The model (its other rates are kept; ``rate`` is replaced by the grid values).
    g0, rates:
        The grid: couplings and values of the spin rate named by ``rate`` (≥ 0).
    rate:
        ``"gamma_phi"`` (default), ``"gamma_down"`` or ``"gamma_up"``.
    patterns:
        Pattern numbers (1-based) to start from; all by default.
    t_obs, t_final, times:
        Observation time, end of the integration and number of equally spaced output times on [0, t_final]
        (``t_obs`` is added to them if missing).
    threshold:
        |ξ_ν| at or above this counts as retrieved.

    Returns
    -------
    xarray.Dataset
        ``kind = "transient_retrieval_map"`` over (pattern, g0, <rate>): ``overlap``, ``retrieved``,
        ``retention_time``; over (g0, <rate>): ``n_retrieved``; ``g_crit_lossless`` over pattern.
    """
    import xarray as xr

    from ..meanfield.evolution import evolve
    from ..results import model_attrs

    if rate not in SPIN_RATES:
        raise ValueError(f"rate must be one of {SPIN_RATES}, got {rate!r}")
    rates = np.atleast_1d(np.asarray(rates, dtype=float))
    if rates.ndim != 1 or rates.size == 0 or np.any(~np.isfinite(rates)) or np.any(rates < 0):
        raise ValueError(f"{rate}: give a non-empty list of finite rates ≥ 0, got {rates.tolist()}")
    g0 = np.atleast_1d(np.asarray(g0, dtype=float))
    if not (np.isfinite(t_obs) and 0 <= t_obs <= t_final):
        raise ValueError(f"t_obs must be in [0, t_final = {t_final}], got {t_obs}")
    if not (np.isfinite(threshold) and 0 < threshold < 1):
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    M = model.n_modes
    pats = list(range(1, M + 1)) if patterns is None else [int(p) for p in patterns]
    if not pats or any(not 1 <= p <= M for p in pats):
        raise ValueError(f"patterns must be numbers in 1..{M} (patterns are numbered from 1), got {patterns}")
    t = np.union1d(np.linspace(0.0, t_final, int(times)), [t_obs])
    i_obs = int(np.searchsorted(t, t_obs))

    overlap = np.empty((len(pats), g0.size, rates.size))
    retrieved = np.empty_like(overlap, dtype=bool)
    retention = np.empty_like(overlap)
    for r, value in enumerate(rates):  # one rate at a time bounds the memory of the stored trajectories
        ds = evolve(model, pats, times=t, vary={"g0": g0, rate: [value]}, representation=representation,
                    keep_bloch=False)
        xi = np.abs(ds["overlap"].isel({rate: 0}).values)  # (g0, initial, time, pattern)
        own = np.stack([xi[:, s, :, p - 1] for s, p in enumerate(pats)])  # (start, g0, time)
        at = xi[:, :, i_obs, :]  # (g0, start, pattern)
        overlap[:, :, r] = own[:, :, i_obs]
        best = np.stack([np.argmax(at[:, s, :], axis=-1) == p - 1 for s, p in enumerate(pats)])
        retrieved[:, :, r] = (own[:, :, i_obs] >= threshold) & best
        above = own >= threshold
        last = np.where(above.any(axis=-1), t[::-1][np.argmax(above[..., ::-1], axis=-1)], 0.0)
        retention[:, :, r] = np.where(above[..., -1], np.inf, last)
        if progress is not None:
            progress((r + 1) / rates.size)
    om, kap = np.asarray(model.omega_modes), np.asarray(model.kappa)
    with np.errstate(invalid="ignore", divide="ignore"):
        g_crit = np.array([float(critical_coupling(model.omega, om[p - 1], kap[p - 1])) for p in pats])
    out = xr.Dataset(
        {
            "overlap": (("pattern", "g0", rate), overlap,
                        {"long_name": f"|xi_nu(t_obs)| from the pattern-nu start, t_obs = {t_obs:g}"}),
            "retrieved": (("pattern", "g0", rate), retrieved,
                          {"long_name": "at t_obs the own overlap is >= threshold and the largest"}),
            "retention_time": (("pattern", "g0", rate), retention,
                               {"long_name": "last output time with |xi_nu| >= threshold (inf: still at t_final)"}),
            "n_retrieved": (("g0", rate), retrieved.sum(axis=0),
                            {"long_name": "number of patterns retrieved at t_obs"}),
            "g_crit_lossless": (("pattern",), g_crit, {"long_name": "Eq. (12) threshold without spin dissipation"}),
        },
        coords={"pattern": ("pattern", np.array(pats)), "g0": ("g0", g0), rate: (rate, rates)},
    )
    out.attrs.update({"kind": "transient_retrieval_map", **model_attrs(model), "rate": rate, "t_obs": float(t_obs),
                      "t_final": float(t_final), "threshold": float(threshold)})
    return out
