"""Associative-memory experiments: recognition maps, the pattern-selective regime, attractor census, crosstalk.

Physics (docs/physics-notes.md, Measured facts, paper Eq. 12 and Discussion). Boson loss is the only dissipation, so mean field never
repairs a corrupted pattern: every group rotates rigidly and keeps the length r_k = |1 − 2p_k| of its mean
Bloch vector. From pattern ν with a fraction p flipped evenly (thermodynamic limit) the stationary overlap is
√(r² − (g_c/g0)^4), r = |1 − 2p|, and it exists above g_c/√r. *Recognition* means keeping a finite overlap
with the stored pattern, not restoring it.

**What "retrievable" means here.** In the thermodynamic limit the pattern-ν start (corrupted or not) never
leaves the invariant subspace of its symmetry, and on that subspace the Eq. (12) state is stable for every
g0 above the existence threshold. Against perturbations that break the symmetry (crosstalk at finite N_sp,
noise, a finite-N quantum fluctuation) it is not: we call pattern ν

* ``retrievable_on_subspace`` when the exact thermodynamic-limit dynamics from the start relaxes to a
  stationary state with |ξ_ν| > ``threshold`` that is stable on the start's invariant subspace;
* ``retrievable`` when, in addition, that state is linearly stable in the full phase space (robust: every
  small perturbation decays or stays bounded in the undamped directions).

At finite N_sp there is no symmetry left to hide behind: a sample *recognises* pattern ν when its dynamics
(crosstalk included) relaxes to a state whose largest overlap is |ξ_ν| > ``threshold``, and the success
probability is the fraction of samples (pattern realisations × corruption draws) that do.

**Full-space stability, in closed form.** At a fixed point where every group vector is anti-aligned with its
field B_k = (2Ω, 0, h_k) (signed length ρ_k = m_k·B̂_k ≤ 0, as in the retrieval and paramagnetic states), with
Ω, Ω_μ > 0, eliminating the spins from the linearisation leaves an M × M problem: no eigenvalue with
Re λ > 0 and Im λ ≠ 0 exists (the spin susceptibilities and the mode responses have imaginary parts of
opposite sign in the right half-plane), and a real one exists iff the symmetric matrix

    H = diag((Ω_μ² + κ_μ²/4) / (4 g0² Ω_μ)) + Σ_k w_k ρ_k (4Ω²/|B_k|³) f_k f_kᵀ

is not positive definite (H grows monotonically with λ ≥ 0). For the corrupted pattern-ν state of the ideal
model H is diagonal in the patterns, which gives the robust threshold

    g_stab(ν, p) = (g_c(ν)/√r) · max(1, √(g_c(ν)/min_μ g_c(μ))),

i.e. every pattern whose g_c is not the smallest is a saddle between g_c(ν)/√r and g_stab: the weakest-threshold
pattern's mode takes over. Fig. 3 model, p = 0: g_stab = 0.6455, 0.7746, 0.9010, 1.0240 (patterns 1..4).
:func:`stability_threshold` finds g_stab numerically from the dynamics and the full Jacobian, without this
formula; the tests compare the two.

**Finite N_sp without a dense Jacobian.** At a fixed point every group lies along its field, so the state is
fixed by the M numbers x_μ = Re α_μ: :func:`self_consistent_state` solves the M-dimensional self-consistency
x_μ = −g0 Ω_μ/(Ω_μ² + κ_μ²/4) · Σ_k w_k f_μk ρ_k h_k/|B_k| by Newton (cost O(K M²) per step) and judges
stability with H above; :func:`paramagnet_thresholds` gives the exact finite-N bifurcation couplings of the
paramagnet (1/√ eigenvalues of D^(-1/2) C D^(-1/2), C the weighted pattern-overlap matrix, D = diag g_c²).
:func:`crosstalk` uses them with the batched dynamics for M up to 20 and N_sp ≥ 10^4.

All results are labelled :class:`xarray.Dataset` objects; patterns are numbered from 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .model import DickeModel, paper_model
from .reduction import Grouping, reduce
from .results import timed
from .states import BlochState, CorruptedPattern, InitialState, PatternState, RandomState

__all__ = [
    "RECOGNITION_THRESHOLD",
    "CENSUS_THRESHOLD",
    "MIXTURE_RATIO",
    "OUTCOMES",
    "MixtureState",
    "critical_couplings",
    "corrupted_overlap",
    "recognition_boundary",
    "robust_threshold",
    "recognition_map",
    "recognition_map_task",
    "retrievable_patterns",
    "stability_threshold",
    "attractor_census",
    "census_examples",
    "self_consistent_state",
    "paramagnet_thresholds",
    "crosstalk",
]

#: |ξ_ν| above this counts as a finite overlap in recognition maps and the selective regime.
RECOGNITION_THRESHOLD = 1e-3
#: |ξ_μ| above this counts as a finite overlap in the attractor census (outcomes judged from trajectories).
CENSUS_THRESHOLD = 1e-2
#: A second overlap makes a mixture only if it is at least this fraction of the largest; smaller ones are the
#: admixture a recognised state picks up from unequal group lengths (reported as ``second_overlap``).
MIXTURE_RATIO = 0.2
#: Outcomes of one start (attractor census, finite-N recognition).
OUTCOMES = ("recognition", "mixture", "paramagnetic", "non-stationary", "undecided")
_STATIONARY = ("stable", "marginal", "unstable")

_RETRIEVABLE_DOC = (
    "retrievable: the start relaxes to a stationary state with |xi_nu| > threshold that is stable on the start's "
    "invariant subspace AND linearly stable in the full phase space (robust against symmetry-breaking "
    "perturbations); retrievable_on_subspace: the first two conditions only"
)
_RECOGNISED_DOC = (
    "recognised (finite N_sp): the dynamics from the corrupted start, crosstalk included, relaxes (stationary "
    "overlaps) to a state whose largest overlap is |xi_nu| > threshold; success_probability: fraction of samples"
)


# ------------------------------------------------------------------------------------------------
# Initial states: mixtures of patterns


@dataclass(frozen=True)
class MixtureState(InitialState):
    """A start mixing several patterns.

    ``kind="tilt"`` (default): every spin j has σ_z component z_j = Σ_μ c_μ G[μ, j] / Σ_μ |c_μ| and the rest of
    its unit length along −x, so in the ideal model the initial overlaps are exactly ξ_μ = c_μ / Σ|c|.
    ``kind="sign"``: every spin along sign(Σ_μ c_μ G[μ, j]) ẑ (the Hopfield mixture; ties go to the first
    listed pattern). ``weights`` may be negative (a mirrored component); by default all 1.
    """

    patterns: tuple = (1, 2, 3)
    weights: tuple | None = None
    kind: str = "tilt"
    alpha: object = None

    def __post_init__(self):
        pats = tuple(int(p) for p in np.atleast_1d(self.patterns))
        if len(pats) < 1 or len(set(pats)) != len(pats):
            raise ValueError(f"MixtureState: give distinct pattern numbers, got {self.patterns!r}")
        object.__setattr__(self, "patterns", pats)
        w = np.ones(len(pats)) if self.weights is None else np.asarray(self.weights, dtype=float).ravel()
        if w.size != len(pats) or not np.all(np.isfinite(w)) or not np.any(w != 0):
            raise ValueError(f"MixtureState: weights must be {len(pats)} finite numbers, not all zero, got {self.weights!r}")
        object.__setattr__(self, "weights", tuple(float(v) for v in w))
        if self.kind not in ("tilt", "sign"):
            raise ValueError(f"MixtureState: kind must be 'tilt' or 'sign', got {self.kind!r}")

    def label(self) -> str:
        parts = "+".join(f"{w:.3g}·{p}" for p, w in zip(self.patterns, self.weights))
        return f"mixture[{self.kind}] {parts}"

    def _vectors(self, columns: np.ndarray) -> np.ndarray:
        """columns: (M, n) ±1 couplings (patterns × spins or groups) → (n, 3) unit vectors."""
        rows = [_pattern_index_safe(columns.shape[0], p) for p in self.patterns]
        w = np.asarray(self.weights)
        field = w @ columns[rows].astype(float)
        v = np.zeros((columns.shape[1], 3))
        if self.kind == "sign":
            tie = np.sign(w[0]) * columns[rows[0]]
            v[:, 2] = np.where(field != 0, np.sign(field), tie)
        else:
            z = field / np.abs(w).sum()
            v[:, 2] = z
            v[:, 0] = -np.sqrt(np.clip(1.0 - z * z, 0.0, None))
        return v

    def _spin_vectors(self, model):
        return self._vectors(np.asarray(model.patterns))

    def _ideal_group_vectors(self, model, grouping):
        return self._vectors(np.asarray(grouping.f))


def _pattern_index_safe(n_modes: int, pattern) -> int:
    if not 1 <= int(pattern) <= n_modes:
        raise ValueError(f"pattern must be an integer in 1..{n_modes} (patterns are numbered from 1), got {pattern!r}")
    return int(pattern) - 1


# ------------------------------------------------------------------------------------------------
# Analytic references (thermodynamic limit, ideal equal groups)


def _check_regime(omega, omega_modes):
    omega_modes = np.asarray(omega_modes, dtype=float)
    if not (omega > 0 and np.all(omega_modes > 0)):
        raise ValueError(
            f"the closed-form memory theory needs Ω > 0 and every Ω_μ > 0 (got Ω = {omega:g}, Ω_μ = "
            f"{omega_modes.tolist()}); use the numerical functions instead"
        )


def critical_couplings(model: DickeModel) -> np.ndarray:
    """g_c(μ) = √(½ (Ω/Ω_μ)(Ω_μ² + κ_μ²/4)) for every pattern (needs Ω, Ω_μ > 0; κ_μ = 0 allowed)."""
    _check_regime(model.omega, model.omega_modes)
    om = model.omega_modes
    return np.sqrt(0.5 * (model.omega / om) * (om**2 + 0.25 * model.kappa**2))


def _length(flip):
    return np.abs(1.0 - 2.0 * np.asarray(flip, dtype=float))


def corrupted_overlap(g0, g_crit, flip):
    """Stationary |ξ_ν| from pattern ν with a fraction ``flip`` flipped evenly: √(r² − (g_c/g0)^4), r = |1 − 2p|,
    and 0 below the boundary (docs/physics-notes.md, Measured facts). Broadcasts."""
    g0 = np.abs(np.asarray(g0, dtype=float))
    r = _length(flip)
    with np.errstate(divide="ignore"):
        ratio4 = (np.asarray(g_crit, dtype=float) / g0) ** 4
    return np.sqrt(np.clip(r**2 - ratio4, 0.0, None))


def recognition_boundary(g_crit, flip):
    """g_c/√(1 − 2p) (with |1 − 2p|): the coupling above which the corrupted pattern keeps a finite overlap
    (∞ at p = 1/2). Broadcasts."""
    r = _length(flip)
    with np.errstate(divide="ignore"):
        return np.asarray(g_crit, dtype=float) / np.sqrt(r)


def robust_threshold(model: DickeModel, flip=0.0) -> np.ndarray:
    """g_stab(ν, p) = (g_c(ν)/√r) · max(1, √(g_c(ν)/min_μ g_c(μ))): above it the corrupted pattern-ν state of
    the ideal model is linearly stable in the full phase space (module docstring). Shape (M,) + shape(flip)."""
    g_c = critical_couplings(model)
    factor = np.maximum(1.0, np.sqrt(g_c / g_c.min()))
    flip = np.asarray(flip, dtype=float)
    return recognition_boundary((g_c * factor).reshape((-1,) + (1,) * flip.ndim), flip)


# ------------------------------------------------------------------------------------------------
# Outcome of a start, from a steady-state result


def _outcomes(cls, full, overlap, omin, omax, undamped, threshold, settle_tol, mixture_ratio=MIXTURE_RATIO):
    """Classify starts from steady-state fields (leading dims ..., last dim pattern for the overlaps).

    Stationary verdicts use the fixed point (the torus centre for undamped precessions); other verdicts use
    the last integration window, whose overlaps count as settled when their range is ≤ ``settle_tol``.
    Returns dict of outcome codes (index into OUTCOMES), ends_on, |ξ| used, settled, precessing, robust.
    """
    cls = np.asarray(cls).astype(str)
    stationary = np.isin(cls, _STATIONARY)
    size_fixed = np.abs(np.asarray(overlap, dtype=float))
    omin, omax = np.asarray(omin, dtype=float), np.asarray(omax, dtype=float)
    window = np.maximum(np.abs(omin), np.abs(omax))
    window_range = np.nanmax(omax - omin, axis=-1)
    xi = np.where(stationary[..., None], size_fixed, window)
    settled = stationary | (window_range <= settle_tol)
    size = np.nan_to_num(xi, nan=0.0)
    largest = size.max(axis=-1, keepdims=True)
    finite = (size > threshold) & (size >= mixture_ratio * largest)
    n_finite = finite.sum(axis=-1)
    second = np.sort(size, axis=-1)[..., -2] if size.shape[-1] > 1 else np.zeros(size.shape[:-1])
    code = np.where(n_finite == 0, 2, np.where(n_finite == 1, 0, 1))
    code = np.where(settled, code, np.where(cls == "not stationary", 3, 4))
    ends_on = np.where(n_finite > 0, np.nanargmax(np.nan_to_num(xi, nan=-1.0), axis=-1) + 1, 0)
    ends_on = np.where(settled, ends_on, -1)
    undamped = np.nan_to_num(np.asarray(undamped, dtype=float), nan=0.0)
    precessing = np.where(stationary, undamped > 1e-6, settled)
    robust = stationary & np.isin(np.asarray(full).astype(str), ("stable", "marginal")) & (cls != "unstable")
    return {"code": code, "ends_on": ends_on, "xi": xi, "settled": settled, "precessing": precessing,
            "robust": robust, "window_range": window_range, "second": second}


# ------------------------------------------------------------------------------------------------
# Recognition map over (g0, p)


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
    **steady_options,
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
    import xarray as xr

    from .meanfield.steady import find_critical_coupling, steady_state

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
        runs.append(steady_state(m, starts, vary={"g0": g0}, t_max=t_max, representation=representation,
                                 progress=report, **steady_options))
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
        on_sub = (c0 == "stable") & (np.nan_to_num(xi_nu) > threshold)
        robust = on_sub & (f0 == "stable")
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
            data.update(_refined_boundary(model, pats, flips, g0, on_sub, threshold, t_max, find_critical_coupling,
                                          steady_options))
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


def recognition_map_task(model: DickeModel, initial, *, vary, g0, progress=None, **options):
    """:func:`recognition_map` as a sweep solver (:func:`~opendicke.sweep.run_sweep`): one chunk of flips.

    ``initial``: the pattern numbers (as states: a list of :class:`~opendicke.states.PatternState`);
    ``vary={"flip": ...}``: the chunk's flipped fractions; ``g0``: the whole coupling grid (never split, so the
    numerical boundary sees the grid's own bracket); ``options``: the rest of :func:`recognition_map`'s
    keywords. Chunks along ``flip`` are independent: each (pattern, flip) is solved over the whole g0 grid.
    """
    if set(vary) != {"flip"}:
        raise ValueError(f"recognition_map_task varies the flipped fraction only (vary={{'flip': ...}}), got {sorted(vary)}")
    starts = initial if isinstance(initial, (list, tuple)) else [initial]
    if not all(isinstance(s, PatternState) and s.sign == 1 for s in starts):
        raise ValueError("recognition_map_task: the initial states are the patterns to map (pattern numbers)")
    return recognition_map(model, g0, vary["flip"], [s.pattern for s in starts], progress=progress, **options)


def _map_solves_per_point(model, initial, options):
    """Steady-state solves of one flip value: couplings × patterns × samples × draws."""
    n_patterns = len(initial) if isinstance(initial, (list, tuple)) else 1
    return (np.size(options.get("g0", 1)) * n_patterns * int(options.get("samples", 1))
            * int(options.get("draws", 1)))


recognition_map_task.sweep_axes = ("flip",)
recognition_map_task.sweep_solves_per_point = _map_solves_per_point


def _safe_gc(model):
    try:
        return critical_couplings(model)
    except ValueError:
        return np.full(model.n_modes, np.nan)


def _refined_boundary(model, pats, flips, g0, on_sub, threshold, t_max, find_critical_coupling, steady_options):
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
                                     bracket=(np.array(lower), np.array(upper)), threshold=threshold, t_max=t_max,
                                     **steady_options)
        for k, (i, j) in enumerate(where):
            out[i, j] = float(res["g_crit"].values[k])
    return {"boundary": (("pattern", "flip"), out)}


# ------------------------------------------------------------------------------------------------
# Pattern-selective regime at one coupling


def _perturbed(start: InitialState, model: DickeModel, size: float, seed: int):
    """The start with every group (TL) or spin vector rotated by a random angle of order ``size``."""
    rng = np.random.default_rng(seed)
    if model.thermodynamic_limit:
        v = start.group_vectors(model, reduce(model))
    else:
        v = start.spin_vectors(model)
    axis = rng.normal(size=v.shape)
    w = v + size * np.cross(axis, v)
    norm_v, norm_w = np.linalg.norm(v, axis=1, keepdims=True), np.linalg.norm(w, axis=1, keepdims=True)
    w = np.where(norm_w > 0, w * norm_v / np.where(norm_w > 0, norm_w, 1.0), w)
    return BlochState(w, alpha=start.alpha, name=f"{start.label()} + perturbation {size:g}")


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
    **steady_options,
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
    import xarray as xr

    from .meanfield.steady import steady_state

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
        ds = steady_state(model, starts, t_max=t_max, **steady_options)
        cls = ds["classification"].values.astype(str)
        full = ds["full_space_stability"].values.astype(str)
        xi = np.abs(ds["overlap"].values[np.arange(M), np.arange(M)])
        on_sub = (cls == "stable") & (np.nan_to_num(xi) > threshold)
        robust = on_sub & (full == "stable")
        overlap = np.where(robust, xi, 0.0)
        ends = np.where(on_sub, np.array(pats), 0)
        pert_ends = np.full(M, -2)
        pert_xi = np.full(M, np.nan)
        pert_cls = np.full(M, "", dtype=object)
        if perturbation > 0:
            kicked = [_perturbed(s, model, perturbation, perturbation_seed + i) for i, s in enumerate(starts)]
            dp = steady_state(model, kicked, t_max=t_max, **steady_options)
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
            "overlap_on_subspace": (("pattern",), np.where(cls == "stable", xi, np.nan)),
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
                             refine_boundary=False, t_max=t_max, **steady_options).isel(flip=0, g0=0)
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
        st = stability_threshold(model, flip=flip, threshold=threshold, t_max=t_max, **steady_options)
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
    **steady_options,
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
    import xarray as xr

    from .meanfield.steady import find_critical_coupling, steady_state

    M = model.n_modes
    pats = list(range(1, M + 1)) if patterns is None else [int(p) for p in np.atleast_1d(patterns)]
    n = len(pats)
    if probes < 1 or tol <= 0:
        raise ValueError("need probes ≥ 1 and tol > 0")
    starts = [CorruptedPattern(nu, flip=float(flip), seed=0) if flip > 0 else PatternState(nu) for nu in pats]
    crit = find_critical_coupling(model, pats, initial=starts, threshold=threshold, tol=tol, **steady_options)
    boundary = crit["g_crit"].values.astype(float)
    g_max = float(g_max) if g_max is not None else 4.0 * float(np.nanmax(boundary))

    def verdicts(which, g0s):
        """1: robust retrieval of pattern pats[i] at g0; 0: a stationary verdict without it; -1: undecided."""
        order = sorted(set(int(i) for i in which))
        grid = np.unique(g0s)
        ds = steady_state(model, [starts[i] for i in order], vary={"g0": grid}, **steady_options)
        cls = ds["classification"].values.astype(str)
        full = ds["full_space_stability"].values.astype(str)
        xi = np.abs(ds["overlap"].values)
        out = np.empty(len(which), dtype=int)
        for b, (i, g) in enumerate(zip(which, g0s)):
            gi, si = int(np.searchsorted(grid, g)), order.index(int(i))
            c, x = cls[gi, si], xi[gi, si, pats[i] - 1]
            if c == "stable" and x > threshold:
                out[b] = 1 if full[gi, si] == "stable" else 0
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
    while busy.size:
        g0s = np.concatenate([np.linspace(lower[i], upper[i], probes + 2)[1:-1] for i in busy])
        v = verdicts(np.repeat(busy, probes), g0s).reshape(busy.size, probes)
        g0s = g0s.reshape(busy.size, probes)
        for k, i in enumerate(busy):
            rounds[i] += 1
            bad = np.nonzero(v[k] != 1)[0]  # robust from the last probe that is not (undecided counts as not)
            if bad.size:
                lower[i] = g0s[k, bad[-1]]
            if bad.size < probes:
                upper[i] = g0s[k, (bad[-1] + 1) if bad.size else 0]
            if np.any(v[k] == -1):
                messages[i] = "some probes reached no verdict (not converged); treated as not robust"
        busy = np.array([i for i in busy if upper[i] - lower[i] > tol and rounds[i] < max_rounds], dtype=int)
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


# ------------------------------------------------------------------------------------------------
# Attractor census


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
    **steady_options,
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
    (g0, kind, outcome) with kind ∈ {all, random, mixture, ...}.
    """
    import xarray as xr

    from .meanfield.steady import steady_state

    g0 = np.atleast_1d(np.asarray(model.g0 if g0 is None else g0, dtype=float))
    base = list(starts) if starts is not None else census_starts(model, n_random, n_mixtures, sizes=sizes, kind=kind,
                                                                    seed=seed)
    if not base:
        raise ValueError("the census needs at least one start")
    run = [(_perturbed(s, model, perturbation, seed + 7919 * (i + 1)) if perturbation > 0 else s)
           for i, s in enumerate(base)]
    t0 = time.perf_counter()
    ds = steady_state(model, run, vary={"g0": g0}, t_max=t_max, representation=representation, progress=progress,
                      **steady_options)
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
            "fraction": (("g0", "kind", "outcome_name"), frac),
        },
        coords={
            "g0": ("g0", g0),
            "start": ("start", np.arange(len(base))),
            "start_label": ("start", labels.astype(str)),
            "start_kind": ("start", kinds.astype(str)),
            "pattern": ("pattern", np.arange(1, model.n_modes + 1)),
            "kind": ("kind", np.array(names)),
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
    import xarray as xr

    from .meanfield import evolve

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


# ------------------------------------------------------------------------------------------------
# Finite N_sp without dense linear algebra: the M-dimensional self-consistency


def _mode_arrays(model, g0):
    om = np.asarray(model.omega_modes, dtype=float)
    ka = np.asarray(model.kappa, dtype=float)
    D = om**2 + 0.25 * ka**2
    return om, ka, D, g0 * om / D


def self_consistent_state(
    model: DickeModel,
    pattern: int | None = 1,
    *,
    g0: float | None = None,
    lengths: np.ndarray | float = -1.0,
    grouping: Grouping | None = None,
    x0: np.ndarray | None = None,
    tol: float = 1e-13,
    max_iter: int = 60,
) -> dict:
    """Fixed point of Eq. (7) with every group along its field, from the M-dimensional self-consistency.

    At a fixed point m_k = ρ_k B_k/|B_k| with B_k = (2Ω, 0, h_k), h_k = 4 g0 Σ_μ f_μk x_μ and x_μ = Re α_μ, so
    x_μ = −c_μ ξ_μ(x), c_μ = g0 Ω_μ/(Ω_μ² + κ_μ²/4), ξ_μ = Σ_k w_k f_μk ρ_k h_k/|B_k|. Newton on these M
    equations costs O(K M²) per step (no 3K-dimensional Jacobian). ``lengths`` are the signed lengths ρ_k
    (one value or one per group of ``grouping``, default the exact reduction of ``model``): −1 is the fully
    polarised state anti-aligned with its field (the retrieval and paramagnetic states). The start ``x0`` is by
    default the ideal retrieval state of ``pattern`` (None: the paramagnet x = 0).

    Returns a dict: ``x``, ``alpha`` (M, complex), ``overlaps`` (M), ``bloch`` (K, 3, gauged frame),
    ``converged``, ``iterations``, ``residual``, ``curvature`` (smallest eigenvalue of H, module docstring),
    ``stable`` (H positive definite; meaningful when all ρ_k ≤ 0 and Ω, Ω_μ > 0), ``stability_applies``.
    """
    g0 = float(model.g0 if g0 is None else g0)
    grouping = grouping if grouping is not None else reduce(model)
    f = np.asarray(grouping.f, dtype=float)
    w = np.asarray(grouping.weights, dtype=float)
    rho = np.broadcast_to(np.asarray(lengths, dtype=float), (f.shape[1],))
    M = f.shape[0]
    om, ka, D, c = _mode_arrays(model, g0)
    two_omega = 2.0 * model.omega
    if x0 is None:
        x = np.zeros(M)
        if pattern is not None:
            nu = _pattern_index_safe(M, pattern)
            r = float(np.sum(w * np.abs(rho)))
            gc = np.sqrt(0.5 * abs(model.omega / om[nu]) * D[nu])
            z = np.sqrt(max(r**2 - (gc / g0) ** 4, 0.0)) if g0 != 0 else 0.0
            x[nu] = -c[nu] * max(z, 0.5 * r)  # a finite seed keeps Newton off the paramagnet near threshold
    else:
        x = np.array(x0, dtype=float)

    def parts(x):
        h = 4.0 * g0 * (x @ f)
        B = np.sqrt(two_omega**2 + h**2)
        xi = f @ (w * rho * h / B)
        return h, B, xi, x + c * xi

    h, B, xi, R = parts(x)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        d = w * rho * two_omega**2 / B**3
        S = (f * d) @ f.T
        J = np.eye(M) + (4.0 * g0 * c)[:, None] * S
        try:
            step = np.linalg.solve(J, -R)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(J, -R, rcond=None)[0]
        lam, r0 = 1.0, np.max(np.abs(R))
        for _ in range(30):
            h2, B2, xi2, R2 = parts(x + lam * step)
            if np.max(np.abs(R2)) < r0 or lam < 1e-6:
                break
            lam *= 0.5
        x = x + lam * step
        h, B, xi, R = h2, B2, xi2, R2
        if np.max(np.abs(R)) <= tol * (1.0 + np.max(np.abs(x))):
            converged = True
            break
    d = w * rho * two_omega**2 / B**3
    H = np.diag(D / (4.0 * g0**2 * om)) + (f * d) @ f.T
    curvature = float(np.linalg.eigvalsh(H)[0])
    alpha = -1j * g0 * xi / (1j * om + 0.5 * ka)
    bloch = (rho / B)[:, None] * np.column_stack([np.full_like(h, two_omega), np.zeros_like(h), h])
    applies = bool(np.all(rho <= 0) and model.omega > 0 and np.all(om > 0))
    return {
        "x": x, "alpha": alpha, "overlaps": xi, "bloch": bloch, "converged": converged, "iterations": it,
        "residual": float(np.max(np.abs(R))), "curvature": curvature, "stable": applies and curvature > 0,
        "stability_applies": applies,
    }


def paramagnet_thresholds(model: DickeModel, *, lengths: np.ndarray | float = 1.0,
                          grouping: Grouping | None = None) -> dict:
    """Exact bifurcation couplings of the paramagnet (every group along −x with length r_k, α = 0).

    H at the paramagnet is (1/2Ω)[D/g0² − C_r] with D = diag g_c(μ)² and C_r = Σ_k w_k r_k f_k f_kᵀ (the
    weighted pattern-overlap matrix), so it loses positive definiteness at g0 = 1/√λ_i, λ_i the eigenvalues of
    D^(-1/2) C_r D^(-1/2). Each branch is assigned to the pattern that dominates its eigenvector (greedily, in
    decreasing weight). In the ideal model C_r = r·I and the thresholds are g_c(μ)/√r.

    Returns ``threshold`` (M, per pattern; the paramagnet is stable below the smallest), ``purity`` (squared
    eigenvector component on that pattern) and ``overlap_matrix`` C_r.
    """
    g_c = critical_couplings(model)
    grouping = grouping if grouping is not None else reduce(model)
    f = np.asarray(grouping.f, dtype=float)
    r = np.broadcast_to(np.abs(np.asarray(lengths, dtype=float)), (f.shape[1],))
    C = (f * (grouping.weights * r)) @ f.T
    A = C / np.outer(g_c, g_c)
    lam, V = np.linalg.eigh(A)
    M = g_c.size
    weight = V**2  # (pattern, branch)
    thresholds = np.full(M, np.nan)
    purity = np.full(M, np.nan)
    free_p, free_b = set(range(M)), set(range(M))
    for flat in np.argsort(-weight, axis=None):
        p, b = np.unravel_index(flat, weight.shape)
        if p in free_p and b in free_b:
            thresholds[p] = 1.0 / np.sqrt(lam[b]) if lam[b] > 0 else np.inf
            purity[p] = weight[p, b]
            free_p.discard(p)
            free_b.discard(b)
    return {"threshold": thresholds, "purity": purity, "overlap_matrix": C}


def _window_overlaps(rhs, y0, t_start, t_end, samples, wf, chunk=10):
    """Integrate from t_start to t_end and return (state at t_end, overlaps at ``samples`` times), keeping
    only a few full states in memory at a time."""
    from .meanfield import integrate

    K = wf.shape[0]
    times = np.linspace(t_start, t_end, samples)
    xis = []
    y = y0
    t = t_start
    for a in range(1, samples, chunk):
        seg = np.concatenate([[t], times[a : a + chunk]])
        ys, stats = integrate(rhs, y, seg, rtol=1e-9, atol=1e-11)
        if not np.all(stats.success):
            raise RuntimeError(f"integration failed: {stats.message}")
        if a == 1:
            xis.append(ys[0][:, 2 * K : 3 * K] @ wf)
        xis.extend(ys[k][:, 2 * K : 3 * K] @ wf for k in range(1, ys.shape[0]))
        y, t = ys[-1], seg[-1]
    return y, np.stack(xis)  # (B, n), (T, B, M)


@timed
def crosstalk(
    n_spins: Sequence[int],
    n_modes: Sequence[int],
    *,
    g0: float | Sequence[float] = 1.0,
    pattern: int = 1,
    seeds: Sequence[int] = (0,),
    model_factory: Callable[..., DickeModel] | None = None,
    t_final: float = 300.0,
    window: float = 50.0,
    window_samples: int = 101,
    dynamics: bool = True,
    progress: Callable[[float], None] | None = None,
):
    """Crosstalk and load at finite N_sp: recognised overlap and threshold vs N_sp and vs M/N_sp.

    For every M in ``n_modes``, N_sp in ``n_spins`` and pattern seed in ``seeds`` the model is
    ``model_factory(n_modes=M, n_spins=N, seed=s)`` (default: the paper's family, Ω = 0.5, Ω_μ = Ω(μ + 2),
    κ = 1). From the pattern-``pattern`` start (``dynamics``) the batched mean-field dynamics in the exact
    reduction (per spin when M is large: K ≈ N_sp groups) runs to ``t_final`` for all g0 at once, and the
    overlaps are averaged over the last ``window``. Without a dense Jacobian:

    * ``overlap_centre``: the torus centre — the self-consistent fixed point with the signed group lengths
      ρ_k = m_k·B̂_k of the final state (conserved once α is constant) — which the window average approaches;
    * ``overlap_static``: the fully polarised fixed point (ρ_k = −1), i.e. crosstalk alone, without the
      dephasing the transient leaves behind; ``stable_static`` from the M × M criterion;
    * ``threshold``: the exact bifurcation of the fully polarised paramagnet into the branch of ``pattern``
      (:func:`paramagnet_thresholds`), vs ``threshold_tl`` = g_c;
    * ``overlap_tl``: Eq. (12); ``shift`` = window mean − Eq. (12); ``crosstalk_rms``: rms of the pattern
      overlaps (1/N) Σ_j G_νj G_μj, μ ≠ ν (≈ 1/√N_sp).

    Returns a Dataset with dims (n_modes, n_spins, seed[, g0]) and coordinate ``load`` = M/N_sp.
    """
    import xarray as xr

    from .meanfield.equations import MeanFieldRHS, pack

    factory = model_factory or (lambda **kw: paper_model(**kw))
    if not (0 < window < t_final) or window_samples < 2:
        raise ValueError(f"need 0 < window < t_final and window_samples ≥ 2, got window={window}, t_final={t_final}, "
                         f"window_samples={window_samples}")
    g0s = np.atleast_1d(np.asarray(g0, dtype=float))
    Ms, Ns, seeds = [int(m) for m in n_modes], [int(n) for n in n_spins], [int(s) for s in seeds]
    shape = (len(Ms), len(Ns), len(seeds))
    shp_g = shape + (g0s.size,)
    nan = lambda s: np.full(s, np.nan)  # noqa: E731
    res = {k: nan(shp_g) for k in ("overlap_dynamics", "overlap_min", "overlap_max", "overlap_centre",
                                     "overlap_static", "overlap_tl", "curvature_static", "rho_deficit",
                                     "other_overlap_rms")}
    stable_static = np.zeros(shp_g, dtype=bool)
    thr, thr_tl, purity, ct_rms, n_groups, elapsed = (nan(shape) for _ in range(6))
    total = np.prod(shape)
    done = 0
    for a, M in enumerate(Ms):
        for b, N in enumerate(Ns):
            for c_, s in enumerate(seeds):
                t0 = time.perf_counter()
                model = factory(n_modes=M, n_spins=N, seed=s)
                nu = _pattern_index_safe(M, pattern)
                grouping = reduce(model)
                n_groups[a, b, c_] = grouping.n_groups
                G = np.asarray(model.patterns, dtype=float)
                cross = (G @ G[nu]) / N
                ct_rms[a, b, c_] = np.sqrt(np.mean(np.delete(cross, nu) ** 2)) if M > 1 else 0.0
                pt = paramagnet_thresholds(model, grouping=grouping)
                thr[a, b, c_], purity[a, b, c_] = pt["threshold"][nu], pt["purity"][nu]
                g_c = critical_couplings(model)
                thr_tl[a, b, c_] = g_c[nu]
                res["overlap_tl"][a, b, c_] = corrupted_overlap(g0s, g_c[nu], 0.0)
                for gi, g in enumerate(g0s):
                    st = self_consistent_state(model, pattern, g0=g, grouping=grouping)
                    if st["converged"]:
                        res["overlap_static"][a, b, c_, gi] = abs(st["overlaps"][nu])
                        res["curvature_static"][a, b, c_, gi] = st["curvature"]
                        stable_static[a, b, c_, gi] = st["stable"]
                if dynamics:
                    B = g0s.size
                    rhs = MeanFieldRHS(grouping.f, grouping.weights, np.full(B, model.omega), g0s,
                                       np.tile(model.omega_modes, (B, 1)), np.tile(model.kappa, (B, 1)))
                    start = PatternState(pattern)
                    y0 = np.tile(pack(start.group_vectors(model, grouping), start.initial_alpha(model)), (B, 1))
                    wf = grouping.weighted_f
                    y_mid, _ = _window_overlaps(rhs, y0, 0.0, t_final - window, 2, wf, chunk=1)
                    y_end, xis = _window_overlaps(rhs, y_mid, t_final - window, t_final, window_samples, wf)
                    own = np.abs(xis[:, :, nu])
                    res["overlap_dynamics"][a, b, c_] = own.mean(axis=0)
                    res["overlap_min"][a, b, c_] = own.min(axis=0)
                    res["overlap_max"][a, b, c_] = own.max(axis=0)
                    others = np.delete(xis[-1], nu, axis=1)
                    res["other_overlap_rms"][a, b, c_] = np.sqrt(np.mean(others**2, axis=1)) if M > 1 else 0.0
                    K = grouping.n_groups
                    for gi, g in enumerate(g0s):
                        y = y_end[gi]
                        m = np.column_stack([y[:K], y[K : 2 * K], y[2 * K : 3 * K]])
                        h = 4.0 * g * (y[3 * K : 3 * K + M] @ grouping.f)
                        Bv = np.column_stack([np.full(K, 2.0 * model.omega), np.zeros(K), h])
                        rho = np.sum(m * Bv, axis=1) / np.linalg.norm(Bv, axis=1)
                        res["rho_deficit"][a, b, c_, gi] = float(np.sum(grouping.weights * (1.0 - np.abs(rho))))
                        ctr = self_consistent_state(model, pattern, g0=g, grouping=grouping, lengths=rho,
                                                    x0=y[3 * K : 3 * K + M])
                        if ctr["converged"]:
                            res["overlap_centre"][a, b, c_, gi] = abs(ctr["overlaps"][nu])
                elapsed[a, b, c_] = time.perf_counter() - t0
                done += 1
                if progress is not None:
                    progress(done / total)
    dims = ("n_modes", "n_spins", "seed")
    dg = dims + ("g0",)
    data = {k: (dg, v) for k, v in res.items()}
    data.update({
        "shift": (dg, res["overlap_dynamics"] - res["overlap_tl"]),
        "shift_static": (dg, res["overlap_static"] - res["overlap_tl"]),
        "stable_static": (dg, stable_static),
        "threshold": (dims, thr),
        "threshold_tl": (dims, thr_tl),
        "threshold_shift": (dims, thr - thr_tl),
        "threshold_purity": (dims, purity),
        "crosstalk_rms": (dims, ct_rms),
        "n_groups": (dims, n_groups),
        "elapsed_seconds": (dims, elapsed),
    })
    ds = xr.Dataset(data, coords={
        "n_modes": ("n_modes", np.array(Ms)), "n_spins": ("n_spins", np.array(Ns)), "seed": ("seed", np.array(seeds)),
        "g0": ("g0", g0s), "load": (("n_modes", "n_spins"), np.array(Ms)[:, None] / np.array(Ns)[None, :]),
    })
    ds.attrs.update({"kind": "crosstalk", "pattern": pattern, "t_final": t_final, "window": window,
                     "dynamics": int(dynamics), "model_family": "paper_model(n_modes=M, n_spins=N, seed=s)"
                     if model_factory is None else getattr(model_factory, "__name__", "custom"),
                     "opendicke_version": _version()})
    _long_names(ds)
    return ds


# ------------------------------------------------------------------------------------------------
# Labels


def _version() -> str:
    from . import __version__

    return __version__


def _attrs(model: DickeModel, kind: str, **extra) -> dict:
    from .results import model_attrs

    attrs = {"kind": kind, **model_attrs(model)}
    attrs.update({k: (int(v) if isinstance(v, bool) else v) for k, v in extra.items() if v is not None})
    return attrs


_LONG_NAMES = {
    "overlap": "stationary |xi_nu| reached from the start of pattern nu",
    "overlaps": "stationary |xi_mu| of every pattern mu reached from the start",
    "overlap_theory": "sqrt((1-2p)^2 - (g_c/g0)^4), 0 below the boundary (docs/physics-notes.md)",
    "boundary_theory": "g_c/sqrt(|1-2p|): existence boundary of the corrupted retrieval state",
    "robust_theory": "g_stab = g_c/sqrt(r) max(1, sqrt(g_c/min g_c)): full-space stability threshold (closed form)",
    "boundary": "existence boundary found numerically by multisection (no formula)",
    "retrievable": "relaxes to a finite-overlap state stable on its subspace and in the full space (robust)",
    "retrievable_on_subspace": "relaxes to a finite-overlap state stable on the start's invariant subspace",
    "success_probability": "fraction of samples that recognise the pattern (TL: 1 if retrievable, else 0)",
    "mean_overlap": "mean over samples of the final |xi_nu| (all settled samples, recognised or not)",
    "overlap_std": "standard deviation over samples of the stationary |xi_nu|",
    "deviation": "recognised_overlap - overlap_theory (TL: overlap - overlap_theory)",
    "recognised_overlap": "mean |xi_nu| over the samples that recognise the pattern",
    "recognised_overlap_std": "standard deviation of |xi_nu| over the samples that recognise the pattern",
    "recognised": "the sample relaxes to a state whose largest overlap is |xi_nu| > threshold",
    "ends_on": "pattern with the largest overlap at the end (0: paramagnetic, -1: not settled)",
    "outcome": "recognition / mixture / paramagnetic / non-stationary / undecided",
    "precessing": "group Bloch vectors still move (undamped directions) although the overlaps are settled",
    "fraction": "fraction of starts with each outcome, per kind of start",
    "overlap_dynamics": "|xi_nu| averaged over the last window of the trajectory",
    "overlap_centre": "|xi_nu| of the torus centre (self-consistent fixed point with the final signed lengths)",
    "overlap_static": "|xi_nu| of the fully polarised finite-N fixed point (crosstalk only)",
    "overlap_tl": "Eq. (12) (thermodynamic limit)",
    "shift": "overlap_dynamics - overlap_tl",
    "threshold": "exact finite-N bifurcation coupling of the paramagnet into this pattern's branch",
    "threshold_tl": "g_c of Eq. (12)",
    "rho_deficit": "sum_k w_k (1 - |rho_k|): polarisation lost to dephasing during the transient",
    "crosstalk_rms": "rms of the pattern overlaps (1/N) sum_j G_nu,j G_mu,j, mu != nu",
}


def _long_names(ds):
    for name, text in _LONG_NAMES.items():
        if name in ds:
            ds[name].attrs["long_name"] = text
