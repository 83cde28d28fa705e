"""Recognition maps over (g0, p): which corrupted patterns are retrieved, and the numerical boundary."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..model import DickeModel
from ..results import timed
from ..states import CorruptedPattern, PatternState
from .analytic import _safe_gc, corrupted_overlap, recognition_boundary, robust_threshold
from ..meanfield.steady.classification import Classification
from .common import (
    _refuse_spin_rates,
    OUTCOMES, RECOGNITION_THRESHOLD, _RECOGNISED_DOC, _RETRIEVABLE_DOC, _attrs, _long_names, _outcomes,
    _pattern_index_safe,
)

if TYPE_CHECKING:
    from ..meanfield.steady import SteadyStateOptions


def _seeds(model: DickeModel, samples: int, draws: int, seed: int | None):
    if samples < 1 or draws < 1:
        raise ValueError(f"samples and draws must be ≥ 1, got samples={samples}, draws={draws}")
    if model.thermodynamic_limit:
        if samples != 1 or draws != 1:
            raise ValueError("samples/draws average over pattern realisations and corruption draws: they need a "
                             "finite n_spins (the thermodynamic limit has neither)")
        return [None], [None]
    explicit = model.seed is None and seed is None
    if explicit and samples > 1:
        raise ValueError("samples > 1 draws new random patterns: give the model a seed (or seed=...), not explicit "
                         "patterns")
    base = seed if seed is not None else (model.seed if model.seed is not None else 0)
    model_seeds = [None] if explicit else [base + s for s in range(samples)]
    return model_seeds, list(range(draws))


@timed
def recognition_map(
    model: DickeModel,
    g0: Sequence[float],
    flips: Sequence[float],
    patterns: Sequence[int] | None = None,
    *,
    samples: int = 1,
    draws: int = 1,
    seed: int | None = None,
    threshold: float = RECOGNITION_THRESHOLD,
    settle_tol: float = 1e-3,
    refine_boundary: bool = True,
    t_max: float = 2000.0,
    representation: str = "auto",
    progress: Callable[[float], None] | None = None,
    options: SteadyStateOptions | None = None,
):
    """Recognition of corrupted patterns over a grid of couplings g0 and flipped fractions p, per pattern.

    Thermodynamic limit (``model.n_spins is None``): exact reduction refined by the corruption (a fraction p
    flipped evenly in every group), one batched :func:`~opendicke.meanfield.steady.steady_state` call;
    ``retrievable`` and ``retrievable_on_subspace`` as defined in the module docstring, and (with
    ``refine_boundary``) the existence boundary found by multisection from the grid's own bracket.
    Finite N_sp: ``samples`` pattern realisations (model seeds ``seed``, ``seed + 1``, ...; default the
    model's seed) × ``draws`` corruption draws (seeds 0..draws−1); each sample is solved with crosstalk and
    judged by its outcome (module docstring).

    Returns
    -------
    xarray.Dataset
        Dims (pattern, flip, g0) [+ sample]: ``overlap`` (stationary |ξ_ν|; per sample at finite N),
        ``success_probability``, ``mean_overlap`` and ``overlap_std`` (final |ξ_ν| over all settled samples),
        ``recognised_overlap`` (mean over the samples that recognise ν), ``overlap_theory`` (√(r² − (g_c/g0)^4)),
        ``deviation`` (recognised_overlap − theory; TL: overlap − theory); ``boundary_theory`` g_c/√r and
        ``robust_theory`` g_stab per (pattern, flip); ``g_crit`` per pattern; TL: ``retrievable``, ``retrievable_on_subspace``,
        ``full_space_stability``, ``boundary`` (numerical); finite N: ``recognised``, ``outcome``, ``ends_on``.
    """
    _refuse_spin_rates(model, "recognition_map")
    import xarray as xr

    from ..meanfield.steady import find_critical_coupling, steady_options, steady_state

    opts = steady_options(options, t_max=t_max)  # validated before any work
    g0 = np.atleast_1d(np.asarray(g0, dtype=float))
    flips = np.atleast_1d(np.asarray(flips, dtype=float))
    if g0.ndim != 1 or flips.ndim != 1 or g0.size == 0 or flips.size == 0:
        raise ValueError("g0 and flips must be non-empty 1-D lists")
    if np.any(~np.isfinite(flips)) or np.any((flips < 0) | (flips > 1)):
        raise ValueError(f"flips must be fractions in [0, 1], got {flips.tolist()}")
    if np.any(~np.isfinite(g0)):
        raise ValueError("g0 values must be finite")
    pats = list(range(1, model.n_modes + 1)) if patterns is None else [int(p) for p in np.atleast_1d(patterns)]
    for p in pats:
        _pattern_index_safe(model.n_modes, p)
    model_seeds, draw_seeds = _seeds(model, samples, draws, seed)
    P, F, G = len(pats), flips.size, g0.size
    M = model.n_modes
    t0 = time.perf_counter()

    runs = []  # per model seed: steady-state dataset over (g0, initial=(pattern, flip, draw), overlap pattern)
    for i, ms in enumerate(model_seeds):
        m = model if ms is None or ms == model.seed else model.replace(seed=ms)
        starts = [CorruptedPattern(nu, flip=float(p), seed=d) for nu in pats for p in flips for d in draw_seeds]
        report = None if progress is None else (lambda x, i=i: progress((i + x) / len(model_seeds)))
        runs.append(steady_state(m, starts, vary={"g0": g0}, representation=representation, progress=report,
                                 options=opts))
    D, S = len(draw_seeds), len(model_seeds) * len(draw_seeds)

    def field(name, trailing=False):
        # (g0, initial, [pattern]) per run → (pattern_start, flip, g0, sample[, pattern])
        arrs = []
        for ds in runs:
            a = np.asarray(ds[name].values)
            a = a.reshape((G, P, F, D) + a.shape[2:])
            arrs.append(np.moveaxis(a, 0, 2))  # (P, F, G, D, ...)
        out = np.concatenate(arrs, axis=3)  # samples: model seed major, draw minor
        return out

    cls = field("classification")
    full = field("full_space_stability")
    overlap_all = field("overlap")  # (P, F, G, S, M)
    omin, omax = field("overlap_min"), field("overlap_max")
    und = field("undamped_amplitude")
    outc = _outcomes(cls, full, overlap_all, omin, omax, und, threshold, settle_tol)
    own = np.array(pats) - 1
    pick = lambda a: np.take_along_axis(a, own[:, None, None, None, None], axis=-1)[..., 0]  # noqa: E731
    xi_own = pick(outc["xi"])  # (P, F, G, S)

    g_c_all = _safe_gc(model)
    g_c = g_c_all[own]
    theory = corrupted_overlap(g0[None, None, :], g_c[:, None, None], flips[None, :, None])
    boundary_theory = recognition_boundary(g_c[:, None], flips[None, :])
    try:
        robust_th = robust_threshold(model, flips)[own]
    except ValueError:
        robust_th = np.full((P, F), np.nan)

    dims3 = ("pattern", "flip", "g0")
    coords = {"pattern": ("pattern", np.array(pats)), "flip": ("flip", flips), "g0": ("g0", g0)}
    data = {
        "g_crit": (("pattern",), g_c),
        "overlap_theory": (dims3, theory),
        "boundary_theory": (("pattern", "flip"), boundary_theory),
        "robust_theory": (("pattern", "flip"), robust_th),
    }
    if model.thermodynamic_limit:
        c0, f0 = cls[..., 0], full[..., 0]
        xi = np.abs(overlap_all[..., 0, :])  # (P, F, G, M)
        xi_nu = np.take_along_axis(xi, own[:, None, None, None], axis=-1)[..., 0]
        on_sub = (c0 == Classification.STABLE) & (np.nan_to_num(xi_nu) > threshold)
        robust = on_sub & (f0 == Classification.STABLE)
        data.update({
            "overlap": (dims3, xi_nu),
            "overlaps": (dims3 + ("overlap_pattern",), xi),
            "retrievable_on_subspace": (dims3, on_sub),
            "retrievable": (dims3, robust),
            "success_probability": (dims3, robust.astype(float)),
            "mean_overlap": (dims3, xi_nu),
            "overlap_std": (dims3, np.zeros_like(xi_nu)),
            "deviation": (dims3, xi_nu - theory),
            "classification": (dims3, c0.astype(str)),
            "full_space_stability": (dims3, f0.astype(str)),
            "full_space_max_real": (dims3, field("full_space_max_real")[..., 0]),
            "residual": (dims3, field("residual")[..., 0]),
        })
        coords["overlap_pattern"] = ("overlap_pattern", np.arange(1, M + 1))
        if refine_boundary:
            data.update(_refined_boundary(model, pats, flips, g0, on_sub, threshold, find_critical_coupling, opts))
    else:
        ends = outc["ends_on"]
        recognised = (outc["code"] == 0) & (ends == np.array(pats)[:, None, None, None])
        import warnings

        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices (nothing settled / recognised) → NaN
            mean = np.nanmean(np.where(outc["settled"], xi_own, np.nan), axis=-1)
            std = np.nanstd(np.where(outc["settled"], xi_own, np.nan), axis=-1)
            rec_mean = np.nanmean(np.where(recognised, xi_own, np.nan), axis=-1)
            rec_std = np.nanstd(np.where(recognised, xi_own, np.nan), axis=-1)
        dims4 = dims3 + ("sample",)
        sample_seeds = np.repeat([(-1 if s is None else s) for s in model_seeds], D)
        data.update({
            "overlap": (dims4, xi_own),
            "recognised": (dims4, recognised),
            "outcome": (dims4, np.array(OUTCOMES)[outc["code"]]),
            "ends_on": (dims4, outc["ends_on"]),
            "classification": (dims4, cls.astype(str)),
            "full_space_stability": (dims4, full.astype(str)),
            "success_probability": (dims3, recognised.mean(axis=-1)),
            "mean_overlap": (dims3, mean),
            "overlap_std": (dims3, std),
            "recognised_overlap": (dims3, rec_mean),
            "recognised_overlap_std": (dims3, rec_std),
            "deviation": (dims3, rec_mean - theory),
        })
        coords["sample"] = ("sample", np.arange(S))
        coords["model_seed"] = ("sample", sample_seeds)
        coords["draw_seed"] = ("sample", np.tile(draw_seeds, len(model_seeds)))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(_attrs(model, "recognition_map", threshold=threshold, settle_tol=settle_tol, t_max=t_max,
                           elapsed_seconds=time.perf_counter() - t0))
    ds.attrs["definition"] = _RETRIEVABLE_DOC if model.thermodynamic_limit else _RECOGNISED_DOC
    _long_names(ds)
    return ds


def recognition_map_task(
    model: DickeModel,
    initial,
    *,
    vary,
    g0: Sequence[float],
    samples: int = 1,
    draws: int = 1,
    seed: int | None = None,
    threshold: float = RECOGNITION_THRESHOLD,
    settle_tol: float = 1e-3,
    refine_boundary: bool = True,
    t_max: float = 2000.0,
    representation: str = "auto",
    options: SteadyStateOptions | None = None,
    progress: Callable[[float], None] | None = None,
):
    """:func:`recognition_map` as a sweep solver (:func:`~opendicke.sweep.run_sweep`): one chunk of flips.

    ``initial``: the pattern numbers (as states: a list of :class:`~opendicke.states.PatternState`);
    ``vary={"flip": ...}``: the chunk's flipped fractions; ``g0``: the whole coupling grid (never split, so the
    numerical boundary sees the grid's own bracket); the other keywords are :func:`recognition_map`'s (a sweep
    gives them as ``arguments``, and ``options`` as the :class:`SteadyStateOptions` object). Chunks along
    ``flip`` are independent: each (pattern, flip) is solved over the whole g0 grid.
    """
    if set(vary) != {"flip"}:
        raise ValueError(f"recognition_map_task varies the flipped fraction only (vary={{'flip': ...}}), got {sorted(vary)}")
    starts = initial if isinstance(initial, (list, tuple)) else [initial]
    if not all(isinstance(s, PatternState) and s.sign == 1 for s in starts):
        raise ValueError("recognition_map_task: the initial states are the patterns to map (pattern numbers)")
    return recognition_map(model, g0, vary["flip"], [s.pattern for s in starts], samples=samples, draws=draws,
                           seed=seed, threshold=threshold, settle_tol=settle_tol, refine_boundary=refine_boundary,
                           t_max=t_max, representation=representation, options=options, progress=progress)


def _map_solves_per_point(model, initial, arguments):
    """Steady-state solves of one flip value: couplings × patterns × samples × draws."""
    n_patterns = len(initial) if isinstance(initial, (list, tuple)) else 1
    return (np.size(arguments.get("g0", 1)) * n_patterns * int(arguments.get("samples", 1))
            * int(arguments.get("draws", 1)))


recognition_map_task.sweep_axes = ("flip",)
recognition_map_task.sweep_solves_per_point = _map_solves_per_point


def _refined_boundary(model, pats, flips, g0, on_sub, threshold, find_critical_coupling, opts):
    """Existence boundary per (pattern, flip) by multisection inside the bracket the grid gives (no formula)."""
    P, F = on_sub.shape[:2]
    lower, upper, where = [], [], []
    for i in range(P):
        for j in range(F):
            hit = np.nonzero(on_sub[i, j])[0]
            if hit.size == 0 or hit[0] == 0:
                continue
            lower.append(g0[hit[0] - 1])
            upper.append(g0[hit[0]])
            where.append((i, j))
    out = np.full((P, F), np.nan)
    if where:
        starts = [CorruptedPattern(pats[i], flip=float(flips[j])) for i, j in where]
        res = find_critical_coupling(model, [pats[i] for i, _ in where], initial=starts,
                                     bracket=(np.array(lower), np.array(upper)), threshold=threshold, options=opts)
        for k, (i, j) in enumerate(where):
            out[i, j] = float(res["g_crit"].values[k])
    return {"boundary": (("pattern", "flip"), out)}
