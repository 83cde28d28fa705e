"""Verdicts of the steady-state search: the :class:`Classification` enum and its integer codes."""

from __future__ import annotations

from enum import StrEnum


class Classification(StrEnum):
    """Verdict on one point of :func:`steady_state` (string values: stored as such in NetCDF and JSON; a ``StrEnum``,
    so ``ds["classification"] == Classification.STABLE`` works on arrays). ``full_space_stability`` takes the first
    three values."""

    STABLE = "stable"
    MARGINAL = "marginal"
    UNSTABLE = "unstable"
    NOT_STATIONARY = "not stationary"
    NOT_CONVERGED = "not converged"


CLASSIFICATIONS = tuple(c.value for c in Classification)
_STABLE, _MARGINAL, _UNSTABLE, _NOT_STATIONARY, _NOT_CONVERGED = range(5)  # codes = positions in Classification
_RUNNING = -1
