"""Public entry points: :func:`steady_state` and :func:`find_critical_coupling`, and the result Dataset."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ...grid import parameter_batch
from ...model import DickeModel
from ...results import timed
from ...states import InitialState, as_initial_state
from ..equations import pack, unpack
from ..evolution import check_memory, choose_grouping, n_groups
from .batch import _solve
from .classification import CLASSIFICATIONS, _MARGINAL, _NOT_CONVERGED, _STABLE, _UNSTABLE
from .multisection import multisect
from .options import SteadyStateOptions, steady_options


def _starts_and_batch(model, initial, vary, representation, memory_budget=None):
    many = isinstance(initial, (list, tuple))
    starts = [as_initial_state(s) for s in (initial if many else [initial])]
    if not starts:
        raise ValueError("initial: give at least one initial state")
    params = parameter_batch(model, vary, spin_rates=True)
    split = params.grouping_model(model)  # split by gauge sign when some point has γ↓ ≠ γ↑
    K, B = n_groups(split, representation), params.size * len(starts)
    # one window of up to 400 samples per point plus the integrator's stages; the Jacobians act on the
    # (much smaller) invariant subspaces and are not counted
    check_memory(8.0 * B * (3 * K + 2 * model.n_modes) * 430 + 16.0 * model.n_modes * K, memory_budget,
                 f"steady_state ({B} points × {K} groups)")
    grouping = choose_grouping(split, representation)
    y_start = np.stack([pack(s.group_vectors(model, grouping), s.initial_alpha(model)) for s in starts])
    return many, starts, grouping, params, y_start


@timed
def steady_state(
    model: DickeModel,
    initial: InitialState | int | Sequence[InitialState | int] = 1,
    *,
    vary: dict | None = None,
    representation: str = "auto",
    options: SteadyStateOptions | None = None,
    paper_units: bool = False,
    memory_budget: int | str | None = None,
    progress: Callable[[float], None] | None = None,
):
    """Stationary states reached by the mean-field dynamics (Eq. 7), verified and classified.

    With individual spin dissipation (model rates or varied ``gamma_*``) the group lengths are not
    conserved: Newton runs on the full Bloch vectors with the damping, stability is read from the full
    Jacobian (``n_conserved`` = 0: there is no radial zero), the invariant subspaces keep the gauge signs
    of the groups (the σ_z source of decay and pumping is not gauge invariant). Points without rates in
    the same batch are solved as without dissipation.

    Parameters
    ----------
    model:
        The model; its parameters are the defaults for the names not in ``vary``.
    initial:
        An initial state (or a pattern number, 1-based), or a list of them (adds a dimension ``initial``).
    vary:
        ``{name: values}`` as in :func:`~opendicke.meanfield.evolve`: the outer product of the values is
        solved as one batch, one labelled dimension per name (the spin rates ``gamma_*`` included).

    representation:
        ``"auto"``, ``"groups"`` (exact large-spin reduction) or ``"spins"``.
    options:
        The numerical settings, one :class:`SteadyStateOptions` (``options=SteadyStateOptions(t_max=5000)``);
        default: its defaults.
    paper_units:
        Report α and occupations in the paper's normalisation (α_paper = √(2^(M-1)) α).
    memory_budget:
        Bytes (or ``"8GiB"``) the search may use (default 2 GiB); checked before anything large is allocated.
    progress:
        Called now and then with the fraction of points settled so far.

    Returns
    -------
    xarray.Dataset
        Per point: ``classification`` (one of :data:`CLASSIFICATIONS`, decided on the invariant subspace
        the trajectory lives in), ``stationary``, ``stable`` (stable in the full space: classification
        "stable" *and* ``full_space_stability`` "stable"), ``stable_on_subspace`` (classification "stable"
        alone), ``converged``, ``message`` (why); the fixed
        point (``overlap``, ``occupation``, ``alpha`` per pattern, ``bloch`` per group; NaN when there is
        none) and its evidence: ``residual`` (max |dy/dt| there), ``newton_iterations``, ``time_integrated``,
        ``n_steps``, ``distance`` (trajectory to fixed point over the last window), ``linearity``,
        ``eigenvalues`` (leading ones of the reduced spectrum on the invariant subspace), ``decay_rate``,
        ``excited_rate`` (slowest rate the trajectory excites), ``settle_time``, ``undamped_amplitude``,
        ``subspace_dim``; stability against all perturbations: ``full_space_stability``,
        ``full_space_max_real``, ``eigenvalues_full``, ``n_conserved`` (radial zeros, one per group) and
        ``n_undamped`` (undamped group precessions); and from the trajectory ``final_overlap``,
        ``overlap_min``/``overlap_max`` over the last window and ``period`` (not stationary, periodic).
    """
    opts = steady_options(options)
    if not isinstance(paper_units, (bool, np.bool_)):
        raise ValueError(f"paper_units must be True or False, got {paper_units!r}")
    many, starts, grouping, params, y_start = _starts_and_batch(model, initial, vary, representation, memory_budget)
    P, S = params.size, len(starts)
    rep = lambda a: np.repeat(a, S, axis=0)  # noqa: E731  (parameters per point, initial state fastest, as in evolve)
    rates = {k: rep(v) for k, v in params.rates.items()} if params.spin_dissipation else None
    solved = _solve(grouping, y_start, np.tile(np.arange(S), P), rep(params.omega), rep(params.g0),
                    rep(params.omega_modes), rep(params.kappa), opts, progress, rates)
    return _dataset(model, grouping, params, starts, many, solved, opts, paper_units)


steady_state.sweep_spin_rates = True  # run_sweep may pass individual spin rates (model or varied gamma_*)


def _dataset(model, grouping, params, starts, many, solved, opts, paper_units):
    from ...results import BatchLayout, paper_factor

    K, M = grouping.n_groups, grouping.n_modes
    layout = BatchLayout(model, grouping, params, starts, many)
    shaped = layout.var

    out = lambda name: getattr(solved["out"], name)  # noqa: E731
    part = lambda name: out(name) if name in ("fixed", "final") else solved[name]  # noqa: E731
    status = out("status")
    bloch, alpha = unpack(part("fixed"), K)
    final_bloch, _ = unpack(part("final"), K)
    factor = paper_factor(M) if paper_units else 1.0
    full_code = part("full_code")
    full_names = np.where(full_code >= 0, np.array(CLASSIFICATIONS)[np.clip(full_code, 0, 2)], "")
    data = {
        "classification": shaped(np.array(CLASSIFICATIONS)[status].astype(str)),
        "stationary": shaped(np.isin(status, (_STABLE, _MARGINAL, _UNSTABLE))),
        "stable": shaped((status == _STABLE) & (full_code == _STABLE)),
        "stable_on_subspace": shaped(status == _STABLE),
        "converged": shaped(status != _NOT_CONVERGED),
        "message": shaped(np.array(out("message"), dtype=str)),
        "overlap": shaped(bloch[..., 2] @ grouping.weighted_f, ("pattern",)),
        "occupation": shaped(np.abs(alpha) ** 2 * factor, ("pattern",)),
        "alpha": shaped(alpha * np.sqrt(factor), ("pattern",)),
        "bloch": shaped(bloch, ("group", "component")),
        "residual": shaped(out("residual")),
        "newton_iterations": shaped(out("newton_iterations")),
        "time_integrated": shaped(out("time_integrated")),
        "n_steps": shaped(out("n_steps")),
        "distance": shaped(out("distance")),
        "linearity": shaped(out("linearity")),
        "eigenvalues": shaped(out("leading"), ("eigenvalue",)),
        "decay_rate": shaped(out("decay_rate")),
        "excited_rate": shaped(out("excited_rate")),
        "settle_time": shaped(out("settle_time")),
        "undamped_amplitude": shaped(out("undamped_amplitude")),
        "subspace_dim": shaped(part("subspace_dim")),
        "full_space_stability": shaped(full_names.astype(str)),
        "full_space_max_real": shaped(part("full_max_real")),
        "eigenvalues_full": shaped(part("full_leading"), ("eigenvalue",)),
        "n_conserved": shaped(part("n_conserved")),
        "n_undamped": shaped(part("n_undamped")),
        "final_overlap": shaped(final_bloch[..., 2] @ grouping.weighted_f, ("pattern",)),
        "overlap_min": shaped(out("overlap_min"), ("pattern",)),
        "overlap_max": shaped(out("overlap_max"), ("pattern",)),
        "period": shaped(out("period")),
    }
    ds = layout.dataset(data, kind="meanfield_steady_state", paper_units=paper_units,
                        extra_coords={"eigenvalue": ("eigenvalue", np.arange(1, opts.n_eigenvalues + 1))})
    ds.attrs["classifications"] = ", ".join(CLASSIFICATIONS)
    ds.attrs.update(opts.as_attrs())
    long_names = {
        "classification": "stable / marginal / unstable fixed point (on the invariant subspace of the trajectory), "
                          "not stationary, or not converged",
        "stationary": "the trajectory ends on a fixed point (stable, marginal or unstable)",
        "stable": "stable against all perturbations: stable on the invariant subspace (classification) and in the "
                  "full space (full_space_stability)",
        "stable_on_subspace": "stable on the invariant subspace of the trajectory (classification == 'stable'); "
                              "may still be a saddle in the full space",
        "converged": "the solver reached a verdict within the time budget",
        "message": "why the point was classified as it was",
        "overlap": "stationary overlap xi_mu (NaN unless stationary)",
        "occupation": "stationary mode occupation per spin |alpha_mu|^2 (NaN unless stationary)",
        "alpha": "stationary mode amplitude (NaN unless stationary)",
        "bloch": "stationary group Bloch vectors, gauged frame (NaN unless stationary)",
        "residual": "max |dy/dt| at the reported fixed point",
        "newton_iterations": "Newton iterations from the trajectory to the fixed point",
        "time_integrated": "time the trajectory was integrated",
        "n_steps": "accepted integrator steps",
        "distance": "max-norm distance of the trajectory from the fixed point over the last window",
        "linearity": "max relative deviation of the vector field from its linearisation over the last window",
        "eigenvalues": "leading eigenvalues on the invariant subspace of the trajectory (tangent to the group "
                       "spheres, undamped mode-free precessions removed), sorted by real part",
        "decay_rate": "-max Re of the reduced spectrum on the invariant subspace (slowest linear decay rate)",
        "excited_rate": "slowest decay rate among the eigenmodes the trajectory excites",
        "settle_time": "linear estimate of the further time until the trajectory is within 1e-10 of the fixed point",
        "undamped_amplitude": "amplitude of the trajectory's deviation in undamped directions",
        "subspace_dim": "dimension of the invariant subspace the trajectory lives in (3K + 2M: none)",
        "full_space_stability": "stability of the fixed point against all perturbations, including those breaking "
                                "the initial state's symmetry",
        "full_space_max_real": "max Re of the reduced spectrum on the full tangent space",
        "eigenvalues_full": "leading eigenvalues on the full tangent space, undamped mode-free precessions removed",
        "n_conserved": "exact zero eigenvalues removed: one radial direction per non-empty group",
        "n_undamped": "eigenvalues on the imaginary axis from undamped group precessions invisible to the modes",
        "final_overlap": "overlap at the end of the integrated trajectory",
        "overlap_min": "min of the overlap over the last integration window",
        "overlap_max": "max of the overlap over the last integration window",
        "period": "period of the oscillation (not stationary and periodic), else NaN",
    }
    for name, text in long_names.items():
        ds[name].attrs["long_name"] = text
    return ds


@timed
def find_critical_coupling(
    model: DickeModel,
    patterns: int | Sequence[int] | None = None,
    *,
    initial: Sequence[InitialState] | None = None,
    bracket=None,
    tol: float = 1e-4,
    threshold: float = 1e-3,
    probes: int = 7,
    max_rounds: int = 30,
    representation: str = "auto",
    options: SteadyStateOptions | None = None,
):
    """Critical couplings g_c found numerically, by multisection in g0 on retrieval (no use of Eq. 12).

    For each pattern ν, start from the pattern-ν state (or the matching entry of ``initial``) and call
    g0 *retrieving* when the stationary state is stable with |ξ_ν| > ``threshold`` and *not retrieving*
    when it is stationary with |ξ_ν| ≤ ``threshold``. Each round solves ``probes`` couplings inside every
    bracket in one batch and keeps the interval between the largest non-retrieving and the smallest
    retrieving coupling; points without a verdict (not converged) stay inside the bracket.

    Parameters
    ----------
    patterns:
        Pattern numbers (1-based); all by default.
    bracket:
        (g_low, g_high) with g_low non-retrieving and g_high retrieving, each a number or one value per
        searched pattern; by default (0.1, 3)·√(|Ω|(|Ω_ν| + κ_ν)), a dimensional estimate. A bracket
        that does not hold the transition is reported (NaN), never silently widened.

    Returns
    -------
    xarray.Dataset
        Over ``pattern`` (length 1 for a single pattern number) with ``g_crit`` (the midpoint of the final
        bracket, NaN if the bracket did not hold the transition), ``g_lower``, ``g_upper``, ``rounds`` and
        ``message``. All patterns are searched in the same batches.
    """
    import xarray as xr

    if model.spin_dissipation:
        raise ValueError("gamma_down/gamma_up/gamma_phi: find_critical_coupling brackets the Eq. (12) transition of "
                         "the lossless spins; with individual spin dissipation balanced patterns have no stationary "
                         "retrieval state (docs/spin-dissipation.md), so there is no such threshold to find")
    opts = steady_options(options)
    M = model.n_modes
    pats = list(range(1, M + 1)) if patterns is None else ([patterns] if np.ndim(patterns) == 0 else list(patterns))
    from ...states import PatternState

    starts = list(initial) if initial is not None else [PatternState(int(p)) for p in pats]
    if len(starts) != len(pats):
        raise ValueError("initial must give one initial state per pattern")
    if probes < 1 or tol <= 0 or threshold <= 0:
        raise ValueError("need probes ≥ 1, tol > 0 and threshold > 0")
    grouping = choose_grouping(model, representation)
    lower, upper = np.zeros(len(pats)), np.zeros(len(pats))
    for i, p in enumerate(pats):
        nu = int(p) - 1
        if not 0 <= nu < M:
            raise ValueError(f"pattern must be in 1..{M}, got {p}")
        if bracket is None:
            s = np.sqrt(abs(model.omega) * (abs(model.omega_modes[nu]) + model.kappa[nu]))
            lower[i], upper[i] = 0.1 * s, 3.0 * s
        else:
            lower[i], upper[i] = (float(np.broadcast_to(b, (len(pats),))[i]) for b in bracket)
    if np.any(lower >= upper) or np.any(lower < 0):
        raise ValueError(f"bracket must be 0 ≤ g_low < g_high, got {bracket}")
    y_start = [pack(s.group_vectors(model, grouping), s.initial_alpha(model)) for s in starts]
    rounds = np.zeros(len(pats), dtype=np.int64)
    messages = [""] * len(pats)

    def verdicts(which, g0s):
        """1 retrieving, 0 not retrieving, -1 undecided, for pattern index ``which[b]`` at ``g0s[b]``."""
        B = g0s.size
        solved = _solve(grouping, y_start, which, np.full(B, model.omega), g0s, np.tile(model.omega_modes, (B, 1)),
                        np.tile(model.kappa, (B, 1)), opts)
        status = solved["out"].status
        nu = np.array([int(pats[i]) - 1 for i in which])
        xi = np.abs(np.take_along_axis(unpack(solved["out"].fixed, grouping.n_groups)[0][..., 2] @ grouping.weighted_f,
                                       nu[:, None], axis=1)[:, 0])
        return np.where((status == _STABLE) & (xi > threshold), 1,
                        np.where(np.isin(status, (_STABLE, _MARGINAL, _UNSTABLE)) & (xi <= threshold), 0, -1))

    n = len(pats)
    ends = verdicts(np.repeat(np.arange(n), 2), np.ravel(np.column_stack([lower, upper])))
    for i in range(n):
        if ends[2 * i] != 0 or ends[2 * i + 1] != 1:
            messages[i] = (f"bracket ({lower[i]:.6g}, {upper[i]:.6g}) does not bracket the transition: verdicts "
                           f"{ends[2 * i : 2 * i + 2].tolist()} at its ends (1 retrieving, 0 not, -1 undecided)")
            lower[i] = upper[i] = np.nan
    multisect(verdicts, lower, upper, np.nonzero(np.isfinite(lower) & (upper - lower > tol))[0], edge="lowest",
              tol=tol, probes=probes, max_rounds=max_rounds, rounds=rounds, messages=messages)
    ds = xr.Dataset(
        {
            "g_crit": (("pattern",), 0.5 * (lower + upper)),
            "g_lower": (("pattern",), lower),
            "g_upper": (("pattern",), upper),
            "rounds": (("pattern",), rounds),
            "message": (("pattern",), np.array(messages, dtype=str)),
        },
        coords={"pattern": ("pattern", np.array(pats, dtype=int))},
    )
    from ...results import model_attrs

    ds.attrs.update({"kind": "critical_coupling", **model_attrs(model), "threshold": threshold, "tol": tol,
                     **opts.as_attrs()})
    return ds
