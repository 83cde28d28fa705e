"""Shared pieces of the memory experiments: thresholds, outcome of a start, dataset labels."""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from ..meanfield.steady.classification import Classification
from ..model import DickeModel

#: |ξ_ν| above this counts as a finite overlap in recognition maps and the selective regime.
RECOGNITION_THRESHOLD = 1e-3
#: |ξ_μ| above this counts as a finite overlap in the attractor census (outcomes judged from trajectories).
CENSUS_THRESHOLD = 1e-2
#: A second overlap makes a mixture only if it is at least this fraction of the largest; smaller ones are the
#: admixture a recognised state picks up from unequal group lengths (reported as ``second_overlap``).
MIXTURE_RATIO = 0.2


class MemoryOutcome(StrEnum):
    """Where one start went (attractor census, finite-N recognition); the values are stored in results."""

    RECOGNITION = "recognition"
    MIXTURE = "mixture"
    PARAMAGNETIC = "paramagnetic"
    NON_STATIONARY = "non-stationary"
    UNDECIDED = "undecided"


#: Outcomes of one start, in code order (``outcome`` variables hold these strings).
OUTCOMES = tuple(o.value for o in MemoryOutcome)
_STATIONARY = (Classification.STABLE, Classification.MARGINAL, Classification.UNSTABLE)

_RETRIEVABLE_DOC = (
    "retrievable: the start relaxes to a stationary state with |xi_nu| > threshold that is stable on the start's "
    "invariant subspace AND linearly stable in the full phase space (robust against symmetry-breaking "
    "perturbations); retrievable_on_subspace: the first two conditions only"
)
_RECOGNISED_DOC = (
    "recognised (finite N_sp): the dynamics from the corrupted start, crosstalk included, relaxes (stationary "
    "overlaps) to a state whose largest overlap is |xi_nu| > threshold; success_probability: fraction of samples"
)


def _refuse_spin_rates(model: DickeModel, what: str) -> None:
    """The lossless memory experiments refuse individual spin rates instead of silently ignoring them."""
    if model.spin_dissipation:
        raise ValueError(
            f"gamma_down/gamma_up/gamma_phi: {what} describes the lossless spins of the paper (Eq. 12, its "
            "thresholds and stationary retrieval states); with individual spin dissipation no stationary retrieval "
            "state exists for balanced patterns and retrieval is transient: use transient_retrieval_map "
            "(`opendicke memory transient`), steady_state or evolve (docs/spin-dissipation.md)")


def _pattern_index_safe(n_modes: int, pattern) -> int:
    if not 1 <= int(pattern) <= n_modes:
        raise ValueError(f"pattern must be an integer in 1..{n_modes} (patterns are numbered from 1), got {pattern!r}")
    return int(pattern) - 1


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
    code = np.where(settled, code, np.where(cls == Classification.NOT_STATIONARY, 3, 4))
    ends_on = np.where(n_finite > 0, np.nanargmax(np.nan_to_num(xi, nan=-1.0), axis=-1) + 1, 0)
    ends_on = np.where(settled, ends_on, -1)
    undamped = np.nan_to_num(np.asarray(undamped, dtype=float), nan=0.0)
    precessing = np.where(stationary, undamped > 1e-6, settled)
    robust = (stationary & np.isin(np.asarray(full).astype(str), (Classification.STABLE, Classification.MARGINAL))
              & (cls != Classification.UNSTABLE))
    return {"code": code, "ends_on": ends_on, "xi": xi, "settled": settled, "precessing": precessing,
            "robust": robust, "window_range": window_range, "second": second}


# ------------------------------------------------------------------------------------------------
# Labels


def _version() -> str:
    from .._version import __version__

    return __version__


def _attrs(model: DickeModel, kind: str, **extra) -> dict:
    from ..results import model_attrs

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
