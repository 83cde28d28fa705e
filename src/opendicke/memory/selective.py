"""The pattern-selective regime at one coupling, and the numerical existence and robust thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..model import DickeModel
from ..results import timed
from ..states import CorruptedPattern, PatternState
from .analytic import _safe_gc, corrupted_overlap, recognition_boundary, robust_threshold
from ..meanfield.steady.classification import Classification
from .common import (
    _refuse_spin_rates,
    RECOGNITION_THRESHOLD, _RECOGNISED_DOC, _RETRIEVABLE_DOC, _STATIONARY, _attrs, _long_names, _outcomes,
)
from .recognition import recognition_map
from .starts import _perturbed

if TYPE_CHECKING:
    from ..meanfield.steady import SteadyStateOptions


@timed
def retrievable_patterns(
    model: DickeModel,
    flip: float = 0.0,
    *,
    samples: int = 1,
    draws: int = 1,
    seed: int | None = None,
    perturbation: float = 1e-6,
    perturbation_seed: int = 0,
    threshold: float = RECOGNITION_THRESHOLD,
    t_max: float = 3000.0,
    numerical_thresholds: bool = False,
    options: SteadyStateOptions | None = None,
):
    """Which patterns the model holds at its coupling ``model.g0`` when started from them with a fraction
    ``flip`` flipped: the pattern-selective regime (paper, Discussion).

    Thermodynamic limit: per pattern, the stationary state of the exact dynamics from the corrupted start,
    its full-space stability, and (``perturbation`` > 0) where the same start goes when every group vector is
    rotated by a random angle of that size (seeded) — the robust outcome. ``retrievable`` as in the module
    docstring; ``overlap`` is the |ξ_ν| the model holds robustly (the stationary overlap if retrievable, else
    |ξ_ν| at the end of the perturbed run, normally 0), ``overlap_on_subspace`` the exact-dynamics value.
    Finite N_sp: ``samples`` × ``draws`` realisations; ``retrievable`` is success probability ≥ 1/2 and
    ``overlap`` the mean stationary |ξ_ν|.

    Returns a Dataset over ``pattern`` with ``g_crit``, ``boundary_theory`` (g_c/√(1 − 2p)), ``robust_theory``
    (g_stab), ``retrievable``, ``retrievable_on_subspace``, ``overlap``, ``overlap_on_subspace``,
    ``success_probability``, ``ends_on``, ``classification``, ``full_space_stability`` and, with
    ``numerical_thresholds``, ``boundary`` and ``robust_threshold`` found numerically.
    """
    _refuse_spin_rates(model, "retrievable_patterns")
    import xarray as xr

    from ..meanfield.steady import steady_options, steady_state

    opts = steady_options(options, t_max=t_max)  # validated before any work
    if not (np.isfinite(flip) and 0.0 <= flip <= 1.0):
        raise ValueError(f"flip must be a fraction in [0, 1], got {flip!r}")
    M = model.n_modes
    pats = list(range(1, M + 1))
    g_c = _safe_gc(model)
    try:
        robust_th = robust_threshold(model, flip)
    except ValueError:
        robust_th = np.full(M, np.nan)
    data = {
        "g_crit": (("pattern",), g_c),
        "boundary_theory": (("pattern",), recognition_boundary(g_c, flip)),
        "robust_theory": (("pattern",), robust_th),
        "overlap_theory": (("pattern",), corrupted_overlap(model.g0, g_c, flip)),
    }
    if model.thermodynamic_limit:
        starts = [CorruptedPattern(nu, flip=float(flip)) for nu in pats]
        ds = steady_state(model, starts, options=opts)
        cls = ds["classification"].values.astype(str)
        full = ds["full_space_stability"].values.astype(str)
        xi = np.abs(ds["overlap"].values[np.arange(M), np.arange(M)])
        on_sub = (cls == Classification.STABLE) & (np.nan_to_num(xi) > threshold)
        robust = on_sub & (full == Classification.STABLE)
        overlap = np.where(robust, xi, 0.0)
        ends = np.where(on_sub, np.array(pats), 0)
        pert_ends = np.full(M, -2)
        pert_xi = np.full(M, np.nan)
        pert_cls = np.full(M, "", dtype=object)
        if perturbation > 0:
            kicked = [_perturbed(s, model, perturbation, perturbation_seed + i) for i, s in enumerate(starts)]
            dp = steady_state(model, kicked, options=opts)
            o = _outcomes(dp["classification"].values, dp["full_space_stability"].values, dp["overlap"].values,
                          dp["overlap_min"].values, dp["overlap_max"].values, dp["undamped_amplitude"].values,
                          threshold, 1e-3)
            pert_ends = o["ends_on"]
            pert_xi = o["xi"][np.arange(M), np.arange(M)]
            pert_cls = dp["classification"].values.astype(str)
            overlap = np.where(robust, xi, np.where(o["settled"], np.nan_to_num(pert_xi), np.nan))
        data.update({
            "retrievable": (("pattern",), robust),
            "retrievable_on_subspace": (("pattern",), on_sub),
            "overlap": (("pattern",), overlap),
            "overlap_on_subspace": (("pattern",), np.where(cls == Classification.STABLE, xi, np.nan)),
            "success_probability": (("pattern",), robust.astype(float)),
            "ends_on": (("pattern",), ends),
            "classification": (("pattern",), cls),
            "full_space_stability": (("pattern",), full),
            "full_space_max_real": (("pattern",), ds["full_space_max_real"].values),
            "perturbed_ends_on": (("pattern",), pert_ends),
            "perturbed_overlap": (("pattern",), pert_xi),
            "perturbed_classification": (("pattern",), pert_cls.astype(str)),
        })
    else:
        rm = recognition_map(model, [model.g0], [flip], samples=samples, draws=draws, seed=seed, threshold=threshold,
                             refine_boundary=False, t_max=t_max, options=opts).isel(flip=0, g0=0)
        prob = rm["success_probability"].values
        ends = rm["ends_on"].values  # (pattern, sample)
        most = np.array([np.bincount(e[e >= 0], minlength=M + 1).argmax() if np.any(e >= 0) else -1 for e in ends])
        data.update({
            "retrievable": (("pattern",), prob >= 0.5),
            "retrievable_on_subspace": (("pattern",), prob >= 0.5),
            "overlap": (("pattern",), rm["mean_overlap"].values),
            "overlap_on_subspace": (("pattern",), rm["mean_overlap"].values),
            "overlap_std": (("pattern",), rm["overlap_std"].values),
            "success_probability": (("pattern",), prob),
            "ends_on": (("pattern",), most),
            "n_samples": ((), int(rm.sizes["sample"])),
        })
    if numerical_thresholds:
        st = stability_threshold(model, flip=flip, threshold=threshold, options=opts)
        data["boundary"] = (("pattern",), st["boundary"].values)
        data["robust_threshold"] = (("pattern",), st["robust_threshold"].values)
    out = xr.Dataset(data, coords={"pattern": ("pattern", np.array(pats))})
    out.attrs.update(_attrs(model, "selective_regime", threshold=threshold, flip=flip, t_max=t_max,
                            perturbation=perturbation))
    out.attrs["definition"] = _RETRIEVABLE_DOC if model.thermodynamic_limit else _RECOGNISED_DOC
    _long_names(out)
    return out


@timed
def stability_threshold(
    model: DickeModel,
    patterns: Sequence[int] | None = None,
    *,
    flip: float = 0.0,
    tol: float = 1e-4,
    probes: int = 7,
    max_rounds: int = 30,
    threshold: float = RECOGNITION_THRESHOLD,
    g_max: float | None = None,
    options: SteadyStateOptions | None = None,
):
    """Existence threshold and robust threshold g_stab per pattern, found numerically (no closed form used).

    The existence boundary comes from :func:`~opendicke.meanfield.steady.find_critical_coupling` with the
    corrupted starts. g_stab is the smallest g0 above which the start relaxes to a state with |ξ_ν| >
    ``threshold``, stable on its subspace and in the full space (``full_space_stability``), found by
    multisection: each round solves ``probes`` couplings inside every pattern's bracket, all patterns in one
    batch. The search starts from the bracket (boundary, ``g_max``), ``g_max`` by default 4× the largest
    boundary. If the state is robust right above the boundary, g_stab is the boundary.

    Returns a Dataset over ``pattern``: ``boundary``, ``robust_threshold`` (midpoint of the final bracket),
    ``robust_lower``, ``robust_upper``, ``rounds``, ``message``.
    """
    _refuse_spin_rates(model, "stability_threshold")
    import xarray as xr

    from ..meanfield.steady import find_critical_coupling, steady_options, steady_state
    from ..meanfield.steady.multisection import multisect

    opts = steady_options(options)  # validated before any work
    M = model.n_modes
    pats = list(range(1, M + 1)) if patterns is None else [int(p) for p in np.atleast_1d(patterns)]
    n = len(pats)
    if probes < 1 or tol <= 0:
        raise ValueError("need probes ≥ 1 and tol > 0")
    starts = [CorruptedPattern(nu, flip=float(flip), seed=0) if flip > 0 else PatternState(nu) for nu in pats]
    crit = find_critical_coupling(model, pats, initial=starts, threshold=threshold, tol=tol, options=opts)
    boundary = crit["g_crit"].values.astype(float)
    g_max = float(g_max) if g_max is not None else 4.0 * float(np.nanmax(boundary))

    def verdicts(which, g0s):
        """1: robust retrieval of pattern pats[i] at g0; 0: a stationary verdict without it; -1: undecided."""
        order = sorted(set(int(i) for i in which))
        grid = np.unique(g0s)
        ds = steady_state(model, [starts[i] for i in order], vary={"g0": grid}, options=opts)
        cls = ds["classification"].values.astype(str)
        full = ds["full_space_stability"].values.astype(str)
        xi = np.abs(ds["overlap"].values)
        out = np.empty(len(which), dtype=int)
        for b, (i, g) in enumerate(zip(which, g0s)):
            gi, si = int(np.searchsorted(grid, g)), order.index(int(i))
            c, x = cls[gi, si], xi[gi, si, pats[i] - 1]
            if c == Classification.STABLE and x > threshold:
                out[b] = 1 if full[gi, si] == Classification.STABLE else 0
            else:
                out[b] = 0 if c in _STATIONARY else -1
        return out

    lower = crit["g_upper"].values.astype(float)  # retrieving on the subspace just above the boundary
    upper = np.full(n, g_max)
    result_lower, result_upper = np.full(n, np.nan), np.full(n, np.nan)
    rounds = np.zeros(n, dtype=np.int64)
    messages = [""] * n
    found = np.nonzero(np.isfinite(lower))[0]
    for i in np.nonzero(~np.isfinite(lower))[0]:
        messages[i] = "existence boundary not found: " + str(crit["message"].values[i])
    busy = []
    if found.size:
        ends = verdicts(np.repeat(found, 2), np.column_stack([lower[found], upper[found]]).ravel())
        for k, i in enumerate(found):
            if ends[2 * k] == 1:
                result_lower[i], result_upper[i] = crit["g_lower"].values[i], crit["g_upper"].values[i]
                messages[i] = "g_stab = boundary (robust as soon as it exists)"
            elif ends[2 * k + 1] != 1:
                messages[i] = f"not robust at g_max = {g_max:.6g} (verdict {ends[2 * k + 1]}); give a larger g_max"
            else:
                busy.append(i)
    busy = np.array(busy, dtype=int)
    searched = busy.copy()
    multisect(verdicts, lower, upper, busy, edge="highest", tol=tol, probes=probes, max_rounds=max_rounds,
              rounds=rounds, messages=messages)
    result_lower[searched], result_upper[searched] = lower[searched], upper[searched]
    ds = xr.Dataset(
        {
            "boundary": (("pattern",), boundary),
            "robust_threshold": (("pattern",), 0.5 * (result_lower + result_upper)),
            "robust_lower": (("pattern",), result_lower),
            "robust_upper": (("pattern",), result_upper),
            "rounds": (("pattern",), rounds),
            "message": (("pattern",), np.array(messages, dtype=str)),
        },
        coords={"pattern": ("pattern", np.array(pats))},
    )
    ds.attrs.update(_attrs(model, "stability_threshold", threshold=threshold, flip=flip, tol=tol))
    return ds
