"""Stationary states of the mean-field equations (paper Eq. 7): found, verified and classified.

Integrating to a fixed "long" time is not a stationary-state method here: the slowest decay rate of the
retrieval state of the paper's Fig. 3 model is 1.5e-4 at g0 = 2 and 5.8e-6 at g0 = 3 (docs/physics-notes.md, Measured facts). Instead,
for a whole batch of parameter points and initial states at once:

0. **Invariant subspace.** Each initial state is reduced to the subspace fixed by its symmetries (see
   :mod:`.symmetry`: the pattern-ν state of the ideal model lives on one group and one mode). The search
   runs on that smaller model, so round-off cannot push the trajectory off the subspace it never leaves
   in exact arithmetic. Initial states with the same reduced model share one batch.
1. **Integrate in windows** with the batched DOP853 integrator (doubling lengths up to ``max_window``,
   the last window densely sampled). Settled points drop out; the others continue until ``t_max``.
2. **Newton from the trajectory.** After each window, Newton's method on the fixed-point equations with
   the conserved group lengths |m_k| = r_k (:func:`newton`) starts from several points of the window: its
   end, its time average (plain and rescaled to the conserved lengths) and four samples. Seeds come from
   the trajectory only, never from Eq. (12). A converged stable candidate nearest to the trajectory wins.
3. **Linear stability on the right subspace** (:func:`stability`). At a fixed point the Jacobian has
   exactly marginal directions that say nothing about stability: one radial zero per group (its length is
   conserved) and, because only the M modes are damped, group precessions that drive no mode (2^(M−1) − M
   undamped combinations, i.e. 2(2^(M−1) − M) eigenvalues ±i|B| in the ideal model). The spectrum is taken
   on the tangent space of the group spheres (radial zeros removed exactly); eigenvectors without a mode
   component are set apart as undamped. The rest, the *reduced spectrum*, decides: all Re λ < 0 stable,
   some Re λ > 0 unstable, otherwise marginal. This is done on the invariant subspace (the
   classification) and on the full space (``full_space_stability``: robustness against perturbations
   that break the initial state's symmetry, e.g. crosstalk at finite N_sp).
4. **Is the trajectory attracted?** A stable Newton point is accepted as the trajectory's end when the
   Newton points of successive windows agree and either (a) the last window lies in its linear regime
   (‖F(y) − J(y − y*)‖ ≤ ``linearity``·‖J(y − y*)‖ along the window) and the trajectory does not move
   away, or (b) four windows agree and the trajectory's largest distance from it shrinks by at least
   ``shrink`` from window to window (a decaying, still nonlinear oscillation). For weakly damped points this
   stops the integration long before the trajectory has settled; the remaining ``distance``, the slowest
   rate among the modes the trajectory excites and a linear ``settle_time`` estimate are reported. A
   trajectory that sits still on any fixed point (even an unstable one) gets that point's classification.
5. **Undamped excitation.** If the trajectory keeps an amplitude in undamped directions (possible from
   non-symmetric initial states), it ends on a torus of undamped precessions: α and the overlaps are
   constant there, every group precesses about its field, and its component ρ_k = m_k·B̂_k along the
   field is conserved. The reported state is then the fixed point with group lengths |ρ_k| (the centre of
   the torus), accepted once two successive windows agree on it, and classified ``marginal``.
6. **Giving up.** A point whose overlaps oscillate with a constant range while no stable fixed point is in
   sight is checked on a densely sampled probe window and reported ``not stationary`` (with the range and,
   if the oscillation is regular, the period). Points not settled when ``t_max`` is spent are ``not
   converged``, with the reason. Neither carries a stationary state: their fixed-point fields are NaN.

Files: ``options`` (:class:`SteadyStateOptions`), ``classification`` (the verdicts), ``fixed_point`` (Newton,
step 2), ``linear_stability`` (step 3), ``search`` (the windowed search of one batch, steps 1, 4–6), ``batch``
(step 0: reduce each initial state to its invariant subspace, search, map back), ``driver`` (the public entry
points and the result Dataset), ``multisection`` (bracketing a transition in g0), ``diagram`` (paper Fig. 3: every pattern over g0, with
Eq. 12 and the numerical thresholds).
"""

from ..._public import keep_package_address
from .classification import CLASSIFICATIONS, Classification
from .driver import find_critical_coupling, steady_state
from .fixed_point import newton
from .linear_stability import Stability, stability, tangent_basis
from .options import SteadyStateOptions, steady_options
from .diagram import phase_diagram

__all__ = [
    "steady_state",
    "SteadyStateOptions",
    "steady_options",
    "find_critical_coupling",
    "phase_diagram",
    "newton",
    "tangent_basis",
    "stability",
    "Stability",
    "CLASSIFICATIONS",
    "Classification",
]

keep_package_address(globals())  # public names keep the package's address (stored sweep specs name them)
