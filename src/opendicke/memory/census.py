"""Attractor census: where the dynamics goes from random states and mixtures of patterns."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..model import DickeModel
from ..reduction import reduce
from ..results import timed
from ..states import BlochState, CorruptedPattern, InitialState, PatternState, RandomState
from .common import CENSUS_THRESHOLD, _refuse_spin_rates, MIXTURE_RATIO, OUTCOMES, _STATIONARY, _attrs, _long_names, _outcomes
from .starts import MixtureState, _perturbed

if TYPE_CHECKING:
    from ..meanfield.steady import SteadyStateOptions


def census_starts(model: DickeModel, n_random: int = 32, n_mixtures: int = 32, *, sizes: Sequence[int] = (2, 3),
                  kind: str = "tilt", seed: int = 0) -> list[InitialState]:
    """Random states (seeds ``seed``, ``seed + 1``, ...) and random mixtures of patterns: a random subset of
    ``sizes`` patterns (capped at M) with weights uniform in [0.5, 1.5] and random signs (see
    :class:`MixtureState`)."""
    rng = np.random.default_rng(seed)
    M = model.n_modes
    out: list[InitialState] = [RandomState(seed=seed + i) for i in range(n_random)]
    sizes = [s for s in sizes if 1 <= s <= M] or [min(2, M)]
    for _ in range(n_mixtures):
        k = int(rng.choice(sizes))
        pats = tuple(int(p) for p in np.sort(rng.choice(np.arange(1, M + 1), size=k, replace=False)))
        w = rng.uniform(0.5, 1.5, size=k) * rng.choice([-1.0, 1.0], size=k)
        out.append(MixtureState(pats, tuple(np.round(w, 6)), kind=kind))
    return out


def _kind(start: InitialState) -> str:
    if isinstance(start, RandomState):
        return "random"
    if isinstance(start, MixtureState):
        return "mixture"
    if isinstance(start, (PatternState, CorruptedPattern)):
        return "pattern"
    return "other"


@timed
def attractor_census(
    model: DickeModel,
    g0: Sequence[float] | None = None,
    starts: Sequence[InitialState] | None = None,
    *,
    n_random: int = 32,
    n_mixtures: int = 32,
    sizes: Sequence[int] = (2, 3),
    kind: str = "tilt",
    seed: int = 0,
    perturbation: float = 1e-6,
    threshold: float = CENSUS_THRESHOLD,
    mixture_ratio: float = MIXTURE_RATIO,
    settle_tol: float = 1e-2,
    t_max: float = 3000.0,
    representation: str = "auto",
    progress: Callable[[float], None] | None = None,
    options: SteadyStateOptions | None = None,
):
    """Where the dynamics goes from random states and mixtures of patterns: fractions of outcomes.

    Every start (``starts``, or :func:`census_starts`) is rotated by a random angle of order ``perturbation``
    (seeded; 0 to switch off) so that the census is about generic starts, not about exactly symmetric ones,
    and solved by :func:`~opendicke.meanfield.steady.steady_state` at every g0 in one batch. Outcomes are
    judged on the overlaps (what the modes' output shows), from the verified fixed point (the centre of the
    torus, if groups keep precessing along undamped directions) or, when the solver gives no stationary
    verdict, from the last window of the trajectory:

    * ``recognition``: one finite overlap |ξ_μ| (``ends_on`` = μ); others either ≤ ``threshold`` or smaller
      than ``mixture_ratio``·|ξ_μ| (an admixture, reported as ``second_overlap``);
    * ``mixture``: two or more overlaps above ``threshold`` and above ``mixture_ratio`` × the largest;
    * ``paramagnetic``: all overlaps → 0 (|ξ_μ| ≤ ``threshold``). Not the same as stationary: ``precessing``
      says whether the group vectors still move (undamped directions, docs/physics-notes.md, Measured facts);
    * ``non-stationary``: the overlaps keep oscillating (range over the last window > ``settle_tol``, solver
      verdict "not stationary");
    * ``undecided``: the overlaps are still changing when ``t_max`` is spent.

    Returns a Dataset with dims (g0, start): ``outcome``, ``ends_on``, ``overlap`` (g0, start, pattern),
    ``precessing``, ``settled``, ``robust`` (stationary verdict, stable or marginal in the full space),
    ``classification``, ``window_range``; coordinates ``start_label`` and ``start_kind``; and ``fraction``
    (g0, start_group, outcome_name) with start_group ∈ {all, random, mixture, ...} (the starts counted).
    """
    _refuse_spin_rates(model, "attractor_census")
    import xarray as xr

    from ..meanfield.steady import steady_options, steady_state

    opts = steady_options(options, t_max=t_max)  # validated before any work
    g0 = np.atleast_1d(np.asarray(model.g0 if g0 is None else g0, dtype=float))
    base = list(starts) if starts is not None else census_starts(model, n_random, n_mixtures, sizes=sizes, kind=kind,
                                                                    seed=seed)
    if not base:
        raise ValueError("the census needs at least one start")
    run = [(_perturbed(s, model, perturbation, seed + 7919 * (i + 1)) if perturbation > 0 else s)
           for i, s in enumerate(base)]
    t0 = time.perf_counter()
    ds = steady_state(model, run, vary={"g0": g0}, representation=representation, progress=progress, options=opts)
    o = _outcomes(ds["classification"].values, ds["full_space_stability"].values, ds["overlap"].values,
                  ds["overlap_min"].values, ds["overlap_max"].values, ds["undamped_amplitude"].values, threshold,
                  settle_tol, mixture_ratio)
    kinds = np.array([_kind(s) for s in base])
    labels = np.array([s.label() for s in base])
    names = ["all"] + [k for k in ("random", "mixture", "pattern", "other") if np.any(kinds == k)]
    frac = np.zeros((g0.size, len(names), len(OUTCOMES)))
    for a, name in enumerate(names):
        cols = np.ones(kinds.size, bool) if name == "all" else kinds == name
        for b in range(len(OUTCOMES)):
            frac[:, a, b] = np.mean(o["code"][:, cols] == b, axis=1)
    dims = ("g0", "start")
    out = xr.Dataset(
        {
            "outcome": (dims, np.array(OUTCOMES)[o["code"]]),
            "ends_on": (dims, o["ends_on"]),
            "overlap": (dims + ("pattern",), o["xi"]),
            "second_overlap": (dims, o["second"]),
            "signed_overlap": (dims + ("pattern",), np.where(np.isin(ds["classification"].values, _STATIONARY)[..., None],
                                                               ds["overlap"].values, ds["final_overlap"].values)),
            "precessing": (dims, o["precessing"]),
            "settled": (dims, o["settled"]),
            "robust": (dims, o["robust"]),
            "window_range": (dims, o["window_range"]),
            "classification": (dims, ds["classification"].values.astype(str)),
            "undamped_amplitude": (dims, ds["undamped_amplitude"].values),
            "fraction": (("g0", "start_group", "outcome_name"), frac),
        },
        coords={
            "g0": ("g0", g0),
            "start": ("start", np.arange(len(base))),
            "start_label": ("start", labels.astype(str)),
            "start_kind": ("start", kinds.astype(str)),
            "pattern": ("pattern", np.arange(1, model.n_modes + 1)),
            "start_group": ("start_group", np.array(names)),  # not "kind": that is the result attribute
            "outcome_name": ("outcome_name", np.array(OUTCOMES)),
        },
    )
    out.attrs.update(_attrs(model, "attractor_census", threshold=threshold, mixture_ratio=mixture_ratio,
                            settle_tol=settle_tol, t_max=t_max,
                            perturbation=perturbation, seed=seed, elapsed_seconds=time.perf_counter() - t0))
    out.attrs["definition"] = (
        "outcomes judged on the overlaps: recognition (one |xi| > threshold; others below threshold or below "
        "mixture_ratio x the largest), mixture (several), paramagnetic (none; "
        "'precessing' says whether group vectors still move along undamped directions), non-stationary (overlaps keep "
        "oscillating), undecided (still changing at t_max)"
    )
    # the starts as solved (after the perturbation), so that census_examples can rerun any of them
    grouping = reduce(model) if model.thermodynamic_limit else None
    vectors = np.stack([s.group_vectors(model, grouping) if grouping is not None else s.spin_vectors(model) for s in run])
    alphas = np.stack([np.broadcast_to(np.asarray(s.initial_alpha(model), dtype=complex), (model.n_modes,)) for s in run])
    out["start_vectors"] = (("start", "site", "component"), vectors)
    out["start_alpha"] = (("start", "pattern"), alphas)
    out = out.assign_coords(component=("component", ["x", "y", "z"]))
    out["start_vectors"].attrs["long_name"] = ("Bloch vectors of the starts as solved (per group in the thermodynamic "
                                               "limit, gauged frame; per spin at finite N_sp)")
    _long_names(out)
    return out


def _run_starts(model: DickeModel, census) -> list:
    """The starts of a census as :class:`BlochState` objects, from its ``start_vectors``/``start_alpha``."""
    return [BlochState(v, alpha=a, name=str(n)) for v, a, n in zip(census["start_vectors"].values,
                                                                   census["start_alpha"].values,
                                                                   census["start_label"].values)]


@timed
def census_examples(model: DickeModel, census, run_starts=None, *, t_final: float = 400.0, times: int = 801):
    """One trajectory per outcome found in a census (the first start of each outcome at the g0 where that outcome
    is most frequent), integrated with :func:`~opendicke.meanfield.evolve`. Returns a Dataset with dims
    (example, time, pattern) and coordinates ``outcome``, ``g0``, ``start_label``."""
    _refuse_spin_rates(model, "census_examples")
    import xarray as xr

    from ..meanfield import evolve

    rows = []
    for name in OUTCOMES:
        hits = census["outcome"].values == name
        if not hits.any():
            continue
        gi = int(np.argmax(hits.sum(axis=1)))
        si = int(np.nonzero(hits[gi])[0][0])
        rows.append((name, gi, si))
    if not rows:
        raise ValueError("the census has no outcomes to show")
    if run_starts is None:
        run_starts = _run_starts(model, census)
    xs, labels = [], []
    for name, gi, si in rows:
        g = float(census["g0"].values[gi])
        ev = evolve(model.replace(g0=g), run_starts[si], t_final=t_final, times=times, keep_bloch=False,
                    rtol=1e-9, atol=1e-11)
        xs.append(ev["overlap"].transpose("time", "pattern").values)
        labels.append(str(census["start_label"].values[si]))
    return xr.Dataset(
        {"overlap": (("example", "time", "pattern"), np.stack(xs))},
        attrs=_attrs(model, "census_examples", t_final=t_final),
        coords={
            "example": ("example", np.arange(len(rows))),
            "outcome": ("example", np.array([r[0] for r in rows])),
            "g0": ("example", np.array([float(census["g0"].values[r[1]]) for r in rows])),
            "start_label": ("example", np.array(labels)),
            "time": ("time", np.linspace(0.0, t_final, times)),
            "pattern": ("pattern", np.arange(1, model.n_modes + 1)),
        },
    )
