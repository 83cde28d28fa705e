"""Mean-field time evolution (paper Eq. 7) of many parameter points and initial states at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..grid import parameter_batch
from ..model import DickeModel
from ..options import merge_options
from ..reduction import Grouping, per_spin, reduce
from ..states import InitialState, as_initial_state
from .equations import MeanFieldRHS, pack, unpack
from .integrator import integrate
from ..results import timed

__all__ = ["evolve", "EvolveOptions", "choose_grouping", "DEFAULT_RTOL", "DEFAULT_ATOL", "DEFAULT_MEMORY_BUDGET", "MemoryBudgetError",
           "n_groups", "check_memory", "format_bytes", "parse_bytes"]

DEFAULT_RTOL = 1e-10
DEFAULT_ATOL = 1e-12
#: Memory a mean-field computation may plan to use unless told otherwise (``memory_budget``, ``--memory-budget``).
DEFAULT_MEMORY_BUDGET = 2 * 2**30


class MemoryBudgetError(ValueError):
    """The estimated memory of a computation exceeds its budget (raised before anything large is allocated)."""


def format_bytes(n: float) -> str:
    """``4398046511104`` → ``"4.0 TiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int | float) -> int:
    """A memory size: a number of bytes or a number with a unit (``"8GiB"``, ``"500 MB"``, ``"2e9"``)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        import re

        m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([A-Za-z]*)\s*", str(text))
        if m is None or m.group(2).lower() not in _UNITS:
            raise ValueError(f"memory budget: expected bytes or a size like 8GiB or 500MB, got {text!r}")
        try:
            value = float(m.group(1)) * _UNITS[m.group(2).lower()]
        except ValueError:
            raise ValueError(f"memory budget: expected bytes or a size like 8GiB or 500MB, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"memory budget must be positive, got {text!r}")
    return int(value)


@dataclass(frozen=True)
class EvolveOptions:
    """Numerical settings of :func:`evolve`, validated on construction (before any work)."""

    representation: str = "auto"
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    paper_units: bool = False
    keep_bloch: bool = True
    max_steps: int = 1_000_000
    memory_budget: int | str | None = None

    def __post_init__(self):
        if self.representation not in ("auto", "groups", "spins"):
            raise ValueError(f"representation must be 'auto', 'groups' or 'spins', got {self.representation!r}")
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not np.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not (self.rtol > 0 and self.atol >= 0):
            raise ValueError(f"need rtol > 0 and atol ≥ 0, got rtol={self.rtol}, atol={self.atol}")
        for name in ("paper_units", "keep_bloch"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, (int, np.integer)) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive whole number, got {self.max_steps!r}")
        if self.memory_budget is not None:
            parse_bytes(self.memory_budget)

    @classmethod
    def merged(cls, options: EvolveOptions | None = None, **fields) -> EvolveOptions:
        """``options`` (default: the defaults) with the fields given as keywords (``None``: keep) replaced."""
        return merge_options(cls, options, "options", fields)


def n_groups(model: DickeModel, representation: str = "auto") -> int:
    """Number of groups K the mean-field equations will have, without building the grouping when it is large:
    2^(M-1) in the thermodynamic limit, at most N_sp at finite N_sp."""
    if model.thermodynamic_limit:
        return 2 ** (model.n_modes - 1) * (1 if model.gauge_symmetric else 2)
    return choose_grouping(model, representation).n_groups


def check_memory(needed: float, budget: float | None, what: str) -> None:
    """Raise :class:`MemoryBudgetError` (with the number of bytes) when ``needed`` exceeds ``budget``."""
    budget = DEFAULT_MEMORY_BUDGET if budget is None else parse_bytes(budget)
    if needed > budget:
        raise MemoryBudgetError(
            f"{what} needs about {int(needed):d} bytes ({format_bytes(needed)}), above the memory budget of "
            f"{int(budget):d} bytes ({format_bytes(budget)}); use fewer modes, points or output times, or raise the "
            f"budget (memory_budget=..., --memory-budget)")


def evolve_bytes(n_modes: int, K: int, n_points: int, n_times: int, keep_bloch: bool) -> float:
    """Estimated peak memory of :func:`evolve`: the stored trajectories (T·B·n values, n = 3K + 2M), the
    integrator's 13 stage arrays and temporaries (about 22·B·n) and the labelled result (bloch, lengths)."""
    n = 3 * K + 2 * n_modes
    per_output = n + K + (3 * K if keep_bloch else 0) + 4 * n_modes
    return 8.0 * (n_times * n_points * per_output + 22 * n_points * n + 2 * n_modes * K)


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


@timed
def evolve(
    model: DickeModel,
    initial: InitialState | int | Sequence[InitialState | int] = 1,
    *,
    t_final: float = 100.0,
    times: int | Sequence[float] = 101,
    vary: dict | None = None,
    options: EvolveOptions | None = None,
    progress: Callable[[float], None] | None = None,
    representation: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    paper_units: bool | None = None,
    keep_bloch: bool | None = None,
    max_steps: int | None = None,
    memory_budget: int | str | None = None,
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
        ``{name: values}`` with names ``g0``, ``omega``, ``kappa``, ``kappa_<n>``, ``omega_mode_<n>``,
        ``gamma_down``, ``gamma_up``, ``gamma_phi``: the outer product is evolved as one vectorised batch, one labelled dimension per name.
    options:
        The numerical settings, one :class:`EvolveOptions` (default: its defaults). The keywords
        ``representation`` … ``memory_budget`` below are shorthand for its fields: given (not ``None``), they
        replace them, and the merged object is validated on entry, before any work.
    representation:
        ``"auto"``, ``"groups"`` (exact large-spin reduction, cost independent of N_sp) or ``"spins"``.
    rtol, atol:
        Per-point error tolerances of the batched DOP853 integrator.
    paper_units:
        Report α and occupations in the paper's normalisation (α_paper = √(2^(M-1)) α).
    keep_bloch:
        Store the group Bloch vectors at every output time (the largest part of the result).
    memory_budget:
        Bytes (or a size such as ``"8GiB"``) the computation may use; default :data:`DEFAULT_MEMORY_BUDGET`.
        The need is estimated before anything large is allocated (the thermodynamic limit has 2^(M-1)
        groups: 40 modes would need TiB) and a larger one raises :class:`MemoryBudgetError` with the number.

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
    opts = EvolveOptions.merged(options, representation=representation, rtol=rtol, atol=atol, paper_units=paper_units,
                                keep_bloch=keep_bloch, max_steps=max_steps, memory_budget=memory_budget)  # up front
    representation, rtol, atol, paper_units = opts.representation, opts.rtol, opts.atol, opts.paper_units
    keep_bloch, max_steps, memory_budget = opts.keep_bloch, opts.max_steps, opts.memory_budget
    params = parameter_batch(model, vary, spin_rates=True)
    model_g = params.grouping_model(model)  # split by gauge sign when some point has γ↓ ≠ γ↑
    K = n_groups(model_g, representation)
    check_memory(evolve_bytes(model.n_modes, K, params.size * len(starts), t.size, keep_bloch), memory_budget,
                 f"evolve ({params.size * len(starts)} trajectories × {K} groups × {t.size} output times)")
    grouping = choose_grouping(model_g, representation)

    y_start = np.stack([pack(s.group_vectors(model, grouping), s.initial_alpha(model)) for s in starts])  # (S, n)
    P, S = params.size, len(starts)
    y0 = np.broadcast_to(y_start, (P, S, y_start.shape[1])).reshape(P * S, -1)
    rep = lambda a: np.repeat(a, S, axis=0)  # noqa: E731  (parameters per point, initial state fastest)
    if params.spin_dissipation:
        # individual spin dissipation: Bloch damping per group, and the exact length equation integrated alongside
        B, K = y0.shape[0], grouping.n_groups
        rates = {name: rep(r) for name, r in params.rates.items()}
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
