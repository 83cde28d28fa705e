"""Mean-field time evolution (paper Eq. 7) of many parameter points and initial states at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..grid import parameter_batch
from ..model import DickeModel
from ..reduction import Grouping, per_spin, reduce
from ..states import InitialState, as_initial_state
from .equations import MeanFieldRHS, pack, unpack
from .integrate import integrate

__all__ = ["evolve", "choose_grouping", "DEFAULT_RTOL", "DEFAULT_ATOL"]

DEFAULT_RTOL = 1e-10
DEFAULT_ATOL = 1e-12


def choose_grouping(model: DickeModel, representation: str = "auto") -> Grouping:
    """The grouping to integrate with: ``"groups"`` (exact reduction), ``"spins"`` or ``"auto"``.

    ``auto`` takes the reduction unless it saves nothing (as many groups as spins, e.g. M ≳ log2 N_sp),
    where the per-spin form is the same cost without the gauge.
    """
    if representation not in ("auto", "groups", "spins"):
        raise ValueError(f"representation must be 'auto', 'groups' or 'spins', got {representation!r}")
    if representation == "spins" or (representation == "auto" and model.thermodynamic_limit is False and _no_gain(model)):
        return per_spin(model)
    return reduce(model)


def _no_gain(model: DickeModel) -> bool:
    # Distinct gauged columns can't exceed 2^(M-1); if that bound is below N_sp the reduction surely wins.
    if model.n_modes - 1 < 62 and 2 ** (model.n_modes - 1) < model.n_spins:
        return False
    return reduce(model).n_groups == model.n_spins


def output_times(t_final: float, times: int | Sequence[float]) -> np.ndarray:
    """``times`` as a count of equally spaced outputs on [0, t_final], or as explicit increasing times."""
    if np.ndim(times) == 0:
        count = int(times)
        if count < 2:
            raise ValueError(f"times must be at least 2 (the start and the end), got {times}")
        if not (np.isfinite(t_final) and t_final > 0):
            raise ValueError(f"t_final must be a positive finite time, got {t_final}")
        return np.linspace(0.0, float(t_final), count)
    arr = np.asarray(times, dtype=float)
    if arr.ndim != 1 or arr.size < 1 or np.any(np.diff(arr) <= 0) or not np.all(np.isfinite(arr)):
        raise ValueError("times must be a count or a strictly increasing list of finite times")
    return arr


def evolve(
    model: DickeModel,
    initial: InitialState | int | Sequence[InitialState | int] = 1,
    *,
    t_final: float = 100.0,
    times: int | Sequence[float] = 101,
    vary: dict | None = None,
    representation: str = "auto",
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    paper_units: bool = False,
    keep_bloch: bool = True,
    max_steps: int = 1_000_000,
    progress: Callable[[float], None] | None = None,
):
    """Integrate the mean-field equations (Eq. 7) for every varied parameter point and initial state.

    A model with individual spin rates (γ↓, γ↑, γφ) adds the Bloch damping terms of
    :mod:`opendicke.meanfield.equations`; ``length_drift`` then checks the exact Bloch-length equation.

    Parameters
    ----------
    model:
        The model; its parameters are the defaults for the names not in ``vary``.
    initial:
        An initial state (or a pattern number, 1-based), or a list of them: a list adds a dimension
        ``initial`` to the result.
    t_final, times:
        Output times: a count of equally spaced times on [0, t_final], or explicit times.
    vary:
        ``{name: values}`` with names ``g0``, ``omega``, ``kappa``, ``kappa_<n>``, ``omega_mode_<n>``:
        the outer product is evolved as one vectorised batch, one labelled dimension per name.
    representation:
        ``"auto"``, ``"groups"`` (exact large-spin reduction, cost independent of N_sp) or ``"spins"``.
    rtol, atol:
        Per-point error tolerances of the batched DOP853 integrator.
    paper_units:
        Report α and occupations in the paper's normalisation (α_paper = √(2^(M-1)) α).
    keep_bloch:
        Store the group Bloch vectors at every output time (the largest part of the result).

    Returns
    -------
    xarray.Dataset
        ``overlap``, ``occupation``, ``alpha`` (time, pattern), ``bloch`` (time, group, component),
        ``bloch_length``, the per-point ``length_drift`` (with spin dissipation: the violation of the integrated
        Bloch-length equation), ``success`` and ``n_steps``, with the varied
        parameters (and ``initial``) as leading dimensions.
    """
    from ..results import meanfield_dataset

    many = isinstance(initial, (list, tuple))
    starts = [as_initial_state(s) for s in (initial if many else [initial])]
    if not starts:
        raise ValueError("initial: give at least one initial state")
    t = output_times(t_final, times)
    grouping = choose_grouping(model, representation)
    params = parameter_batch(model, vary)

    y_start = np.stack([pack(s.group_vectors(model, grouping), s.initial_alpha(model)) for s in starts])  # (S, n)
    P, S = params.size, len(starts)
    y0 = np.broadcast_to(y_start, (P, S, y_start.shape[1])).reshape(P * S, -1)
    rep = lambda a: np.repeat(a, S, axis=0)  # noqa: E731  (parameters per point, initial state fastest)
    if model.spin_dissipation:
        # individual spin dissipation: Bloch damping per group, and the exact length equation integrated alongside
        B, K = y0.shape[0], grouping.n_groups
        rates = {name: np.full(B, getattr(model, name)) for name in ("gamma_down", "gamma_up", "gamma_phi")}
        rhs = MeanFieldRHS(grouping.f, grouping.weights, rep(params.omega), rep(params.g0), rep(params.omega_modes),
                           rep(params.kappa), **rates, group_gauge=grouping.group_gauge, length_budget=True)
        y0 = np.concatenate([y0, np.zeros((B, K))], axis=1)
        ys, stats = integrate(rhs, y0, t, rtol=rtol, atol=atol, max_steps=max_steps, progress=progress)
        ys, budget = ys[..., : -K], ys[..., -K:]
    else:
        rhs = MeanFieldRHS(grouping.f, grouping.weights, rep(params.omega), rep(params.g0), rep(params.omega_modes), rep(params.kappa))
        ys, stats = integrate(rhs, y0, t, rtol=rtol, atol=atol, max_steps=max_steps, progress=progress)
        budget = None
    bloch, alpha = unpack(ys, grouping.n_groups)  # (T, B, K, 3), (T, B, M)
    return meanfield_dataset(
        model=model,
        grouping=grouping,
        params=params,
        starts=starts,
        stack_initial=many,
        times=t,
        bloch=bloch,
        alpha=alpha,
        stats=stats,
        rtol=rtol,
        atol=atol,
        paper_units=paper_units,
        keep_bloch=keep_bloch,
        length_budget=budget,
    )
