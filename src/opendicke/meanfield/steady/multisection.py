"""Multisection in g0: shrink brackets around a transition of a yes/no verdict, all brackets in one batch per round.

Used by :func:`~opendicke.meanfield.steady.find_critical_coupling` (the *lowest* coupling where a pattern is
retrieved) and :func:`~opendicke.memory.stability_threshold` (the *highest* coupling where retrieval is not yet
robust). The verdict function decides the physics; this file only moves the brackets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: Which transition a search locates.
EDGES = ("lowest", "highest")


def _lowest(g, v, lower, upper):
    """Lowest transition 0 → 1: the first probe with verdict 1 is the new upper end, the last 0 below it the new
    lower end; undecided probes (-1) stay inside the bracket."""
    note, stalled = "", False
    yes = np.nonzero(v == 1)[0]
    new_upper = g[yes[0]] if yes.size else upper
    below = np.nonzero((v == 0) & (g < new_upper))[0]
    new_lower = g[below[-1]] if below.size else lower
    if np.any((v == 0) & (g > new_upper)):
        note = "retrieval is not monotonic in g0 inside the bracket; reporting the lowest transition"
    if new_upper - new_lower >= upper - lower:
        note = (f"stopped at bracket width {upper - lower:.3g}: no probe inside the bracket reached a verdict (not "
                "converged within the time budget)")
        stalled = True
    return new_lower, new_upper, note, stalled


def _highest(g, v, lower, upper):
    """Highest transition: the verdict is 1 from the last probe that is not 1 on (undecided counts as not)."""
    no = np.nonzero(v != 1)[0]
    if no.size:
        lower = g[no[-1]]
    if no.size < v.size:
        upper = g[(no[-1] + 1) if no.size else 0]
    note = "some probes reached no verdict (not converged); treated as not robust" if np.any(v == -1) else ""
    return lower, upper, note, False


def multisect(
    verdicts: Callable[[np.ndarray, np.ndarray], np.ndarray],
    lower: np.ndarray,
    upper: np.ndarray,
    busy: Sequence[int],
    *,
    edge: str,
    tol: float,
    probes: int,
    max_rounds: int,
    rounds: np.ndarray,
    messages: list[str],
) -> None:
    """Shrink the brackets ``[lower[i], upper[i]]`` for ``i`` in ``busy`` in place until narrower than ``tol``.

    ``verdicts(which, g0s)`` returns, per probe ``b``, 1 (the property holds for bracket ``which[b]`` at coupling
    ``g0s[b]``), 0 (it does not) or -1 (no verdict). Each round places ``probes`` equally spaced couplings inside
    every busy bracket and asks for all of them in one call. ``edge`` is ``"lowest"`` (the lowest coupling where
    the verdict turns to 1; a round without progress stops that bracket) or ``"highest"`` (the coupling above
    which every verdict is 1). ``rounds`` and ``messages`` are updated in place; a bracket stops after
    ``max_rounds`` rounds.
    """
    if edge not in EDGES:
        raise ValueError(f"edge must be one of {EDGES}, got {edge!r}")
    if probes < 1 or not tol > 0:
        raise ValueError("need probes ≥ 1 and tol > 0")
    step = _lowest if edge == "lowest" else _highest
    busy = np.asarray(busy, dtype=int)
    while busy.size:
        g0s = np.concatenate([np.linspace(lower[i], upper[i], probes + 2)[1:-1] for i in busy])
        v = np.asarray(verdicts(np.repeat(busy, probes), g0s)).reshape(busy.size, probes)
        g0s = g0s.reshape(busy.size, probes)
        for k, i in enumerate(busy):
            rounds[i] += 1
            lower[i], upper[i], note, stalled = step(g0s[k], v[k], lower[i], upper[i])
            if note:
                messages[i] = note
            if stalled:
                rounds[i] = max_rounds
        busy = busy[(upper[busy] - lower[busy] > tol) & (rounds[busy] < max_rounds)]
