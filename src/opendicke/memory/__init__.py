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

**Numerical settings.** The experiments that solve steady states take ``options=``, one
:class:`~opendicke.meanfield.steady.SteadyStateOptions` (validated when it is built, so before any work), and
pass it down as is; there are no loose option keywords. An experiment's own ``t_max`` keyword is its time
budget per point and replaces ``options.t_max``.

All results are labelled :class:`xarray.Dataset` objects; patterns are numbered from 1. Files: ``analytic`` (closed
forms), ``starts`` (mixtures, kicks), ``recognition`` (maps over (g0, p)), ``selective`` (one coupling; numerical
thresholds), ``census``, ``finite_n`` (self-consistency, crosstalk), ``common`` (thresholds, outcomes, labels),
``transient`` (retrieval with individual spin dissipation, which is only transient: :func:`transient_retrieval_map`).

**Individual spin dissipation.** The experiments above describe the lossless spins of the paper and refuse a
model with ``gamma_down``/``gamma_up``/``gamma_phi`` (rather than silently ignore them): with those rates balanced
patterns have no stationary retrieval state (docs/spin-dissipation.md). :func:`transient_retrieval_map` measures
what is left, the retrieval at a time and the retention time, over g0 and one rate.
"""

from .._public import keep_package_address
from .analytic import corrupted_overlap, critical_couplings, recognition_boundary, robust_threshold
from .census import attractor_census, census_examples, census_starts
from .common import CENSUS_THRESHOLD, MIXTURE_RATIO, OUTCOMES, RECOGNITION_THRESHOLD, MemoryOutcome
from .finite_n import crosstalk, paramagnet_thresholds, self_consistent_state
from .recognition import recognition_map, recognition_map_task
from .selective import retrievable_patterns, stability_threshold
from .starts import MixtureState
from .transient import transient_retrieval_map

__all__ = [
    "RECOGNITION_THRESHOLD",
    "CENSUS_THRESHOLD",
    "MIXTURE_RATIO",
    "OUTCOMES",
    "MemoryOutcome",
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
    "census_starts",
    "census_examples",
    "self_consistent_state",
    "paramagnet_thresholds",
    "crosstalk",
    "transient_retrieval_map",
]

keep_package_address(globals())  # public names keep the package's address (stored sweep specs name them)
