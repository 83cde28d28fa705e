"""One abstraction for every finite basis of the exact problem, and the one truncation search over it.

A :class:`Basis` knows four things about itself: its first truncation, how a truncation grows after a run,
the dimension of a truncation, and how to propagate the master equation at a truncation (returning one
:class:`~opendicke.quantum.result.Propagation` record). A *truncation* is a hashable tuple whose meaning is
the basis's own and is what ``fock`` means for that basis:

============  ==============================================  ===========================================
basis         truncation (what ``fock`` means)                module
============  ==============================================  ===========================================
plain         Fock levels per mode, (n_1, …, n_M)              :mod:`.plain_basis`
comoving      (rotated Dicke states per block, displaced       :mod:`.frame`
              Fock levels per mode)
gaussian      (total quanta kept,)                             :mod:`.gaussian`
============  ==============================================  ===========================================

:func:`search` is the one truncation search: it propagates at the first truncation, grows it, and stops when
two successive truncations agree, measured on the observables (overlaps and occupations, absolute ``tol``)
and, where given, on what the basis is about (``deviations``: N·(ξ − ξ_MF), N·(n − n_MF), N·E_N, relative
``deviation_tol``). A basis whose runs carry statistical noise (trajectories) is accepted on its truncation
indicator instead (``by_indicator``). A new basis (for instance the permutation-invariant basis of individual
spin dissipation) plugs in by subclassing :class:`Basis`; nothing here knows the concrete bases, so there is
no import cycle.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .result import FockCutoffWarning, Propagation

__all__ = ["Basis", "Search", "search", "relative_change"]


class Basis(ABC):
    """A finite basis of the exact problem (see the module docstring). Subclasses are frozen dataclasses."""

    #: Short name, as in ``solve(frame=...)`` and ``attrs["solver_frame"]``.
    name: str = "basis"
    #: Accept a run when its truncation indicator is ≤ tol/10 (no second run compared): for noisy runs.
    by_indicator: bool = False

    @abstractmethod
    def first(self) -> tuple:
        """The first truncation of the search."""

    @abstractmethod
    def dimension(self, truncation: tuple) -> int:
        """Number of basis states kept at ``truncation``."""

    @abstractmethod
    def propagate(self, truncation: tuple, times: np.ndarray, progress: Callable[[float], None] | None = None
                  ) -> Propagation:
        """The master equation at ``truncation``, recorded at ``times``."""

    @abstractmethod
    def grow(self, truncation: tuple, run: Propagation, tol: float) -> tuple:
        """The next truncation after ``run`` (equal to ``truncation`` when it cannot grow any more)."""

    def refuse(self, truncation: tuple) -> str | None:
        """Why ``truncation`` may not be run (too large for a limit or the memory budget), or None."""
        return None

    def out_of_reach(self, history: list, tol: float, deviation_tol: float | None) -> str | None:
        """Why growing further is pointless (for instance: at the measured rate the tolerance needs more than
        the limit), or None. ``history`` holds this search's :meth:`record` entries."""
        return None

    def indicator(self, run: Propagation) -> float:
        """Largest population of the last kept level(s) over the window: judges a given truncation."""
        return float(np.max(run.truncation()))

    def describe(self, truncation: tuple) -> str:
        """The truncation in words, for warnings."""
        return f"{self.name} truncation {list(truncation)}"

    def record(self, truncation: tuple, run: Propagation, change: float, deviation_change: float) -> tuple:
        """One entry of the search history (the basis decides its layout)."""
        return (truncation, run.truncation().tolist(), change, run.elapsed)


@dataclass(frozen=True)
class Search:
    """Result of :func:`search`: the returned run and its truncation, the measured changes against the
    previous truncation (NaN: not measured), whether the tolerances were met, and the history
    (one :meth:`Basis.record` entry per run)."""

    run: Propagation
    truncation: tuple
    change: float
    converged: bool
    history: list
    deviation_change: float = math.nan


def relative_change(new: dict, old: dict, floor: float = 0.0) -> float:
    """max over the named arrays of max|new − old| / max(max|new|, floor) (NaN when nothing is compared).

    With ``floor`` > 0 a quantity that stays below ``floor`` over the window is compared in absolute terms
    against it (N·(ξ − ξ_MF) is 0 at t = 0 and tiny at early times; a relative change of noise means nothing)."""
    out = math.nan
    for key, value in new.items():
        a, b = np.asarray(value), np.asarray(old[key])
        scale = max(float(np.max(np.abs(a))) if a.size else 0.0, floor)
        if scale > 0:
            r = float(np.max(np.abs(a - b))) / scale
            out = r if math.isnan(out) else max(out, r)
    return out


#: Below this size (in units of 1/N: N·(ξ − ξ_MF), N·(n − n_MF), N·E_N) a deviation from mean field is
#: compared in absolute terms (a change of 1e-2/N in ξ is far below any tolerance a user sets on ξ).
DEVIATION_FLOOR = 1.0


def search(
    basis: Basis,
    times: np.ndarray,
    tol: float,
    *,
    deviations: Callable[[Propagation], dict] | None = None,
    deviation_tol: float | None = None,
    progress: Callable[[float], None] | None = None,
    stacklevel: int = 3,
) -> Search:
    """Grow ``basis``'s truncation from :meth:`Basis.first` until two successive truncations change every overlap
    and occupation by ≤ ``tol`` over the window (absolute) and, with ``deviations`` and ``deviation_tol``, the
    arrays ``deviations(run)`` by ≤ ``deviation_tol`` relative to their largest value (:func:`relative_change`;
    measured and reported whenever ``deviations`` is given). The larger truncation's run is returned.

    The search stops, flagged not converged (a :class:`FockCutoffWarning` says why), when the next truncation
    would be refused (:meth:`Basis.refuse`), cannot grow, or is out of reach (:meth:`Basis.out_of_reach`); it
    then returns the last run made. A first truncation that is refused is a ``ValueError``.
    """
    truncation = tuple(basis.first())
    reason = basis.refuse(truncation)
    if reason is not None:
        raise ValueError(f"the first {basis.describe(truncation)} (dimension {basis.dimension(truncation)}) already "
                         f"exceeds {reason}; give a smaller truncation (fock=) or raise the limit")
    history: list = []
    prev: Propagation | None = None
    while True:
        run = basis.propagate(truncation, times, progress)
        change = run.change_from(prev) if (prev is not None and not basis.by_indicator) else math.nan
        dev = (relative_change(deviations(run), deviations(prev), DEVIATION_FLOOR)
               if (deviations is not None and prev is not None) else math.nan)
        history.append(basis.record(truncation, run, change, dev))
        if basis.by_indicator:
            if np.all(run.truncation() <= tol / 10):
                return Search(run, truncation, math.nan, True, history, dev)
        elif prev is not None and change <= tol and (deviation_tol is None or dev <= deviation_tol):
            return Search(run, truncation, change, True, history, dev)
        nxt = tuple(basis.grow(truncation, run, tol))
        if nxt == truncation:
            why = f"the {basis.describe(truncation)} cannot grow any further (max_fock)"
        else:
            why = basis.refuse(nxt)
            why = (f"growing to the {basis.describe(nxt)} (dimension {basis.dimension(nxt)}) would exceed {why}"
                   if why is not None else basis.out_of_reach(history, tol, deviation_tol))
        if why is not None:
            if basis.by_indicator:
                measured = f"the top level holds up to {run.truncation().max():.3g} (> tol/10 = {tol / 10:g})"
            else:
                measured = (f"the last measured change was {change:.3g} (tol = {tol:g})" if not math.isnan(change)
                            else "no change measured yet")
                if not math.isnan(dev):
                    measured += (f", the relative change of the deviations from mean field {dev:.3g}"
                                 + ("" if deviation_tol is None else f" (deviation_tol = {deviation_tol:g})"))
            warnings.warn(f"{basis.name} truncation not converged: {why}; {measured}", FockCutoffWarning,
                          stacklevel=stacklevel)
            return Search(run, truncation, change, False, history, dev)
        prev, truncation = run, nxt
