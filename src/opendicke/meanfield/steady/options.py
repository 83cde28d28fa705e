"""Numerical settings of the steady-state search: :class:`SteadyStateOptions`, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class SteadyStateOptions:
    """Numerical settings of :func:`steady_state` (all times in the model's units, 1/κ in the paper).

    Attributes
    ----------
    t_max:
        Time budget per point. Points not settled by then are reported as not converged (or not
        stationary), never as stationary.
    first_window, max_window:
        Length of the first integration window and the cap on the doubling window lengths.
    samples:
        Least number of output samples per window (longer windows get up to 4 per time unit, at most
        400); used for the time average, the Newton seeds, the linear-regime test and the ranges.
    probe_length, probe_samples:
        Densely sampled windows (``probe_samples`` samples over at most ``probe_length``) measure the range
        and period of oscillations: the last window before ``t_max`` and the probe that confirms a
        persistent oscillation early.
    rtol, atol:
        Tolerances of the batched integrator (the trajectory only has to find the right basin; Newton
        makes the stationary state exact).
    newton_tol, newton_max_iter:
        Newton stops when the constrained residual is below ``newton_tol·(1 + max|y|)``.
    linearity:
        Largest accepted relative deviation of the vector field along the last window from its
        linearisation about the fixed point, ‖F(y) − J(y − y*)‖ / ‖J(y − y*)‖.
    shrink:
        Without the linear regime, a stable Newton point is accepted after four windows that agree on it if
        the trajectory's largest distance from it shrinks by at least this fraction from window to window
        (a decaying oscillation).
    rest_tol:
        A trajectory whose max |ẏ| stays below this over a whole window sits on a fixed point.
    same_tol:
        Newton points of successive windows must agree to this (max norm).
    eig_tol:
        Eigenvalues with |Re λ| ≤ eig_tol · (spectral radius) count as marginal.
    undamped_tol:
        Amplitude in the undamped directions above which a settled trajectory is called marginal; the
        centres of its torus from two successive windows must then agree to this.
    n_eigenvalues:
        How many leading eigenvalues of the reduced spectrum to report.
    symmetry:
        Integrate on the invariant subspace of the initial state's symmetry (exactly, see
        :mod:`.symmetry`). With ``False`` the full equations are integrated and round-off can break the
        symmetry where the state is unstable against symmetry-breaking perturbations.
    """

    t_max: float = 10000.0
    first_window: float = 5.0
    max_window: float = 200.0
    samples: int = 48
    probe_length: float = 100.0
    probe_samples: int = 2000
    rtol: float = 1e-8
    atol: float = 1e-10
    max_steps: int = 2_000_000
    newton_tol: float = 1e-12
    newton_max_iter: int = 40
    linearity: float = 0.25
    shrink: float = 2e-3
    rest_tol: float = 1e-9
    same_tol: float = 1e-8
    eig_tol: float = 1e-9
    undamped_tol: float = 1e-6
    n_eigenvalues: int = 6
    symmetry: bool = True

    def __post_init__(self):
        positive = ("t_max", "first_window", "max_window", "probe_length", "rtol", "newton_tol", "linearity", "shrink",
                    "rest_tol", "same_tol", "eig_tol", "undamped_tol")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (np.isfinite(self.atol) and self.atol >= 0):
            raise ValueError(f"atol must be ≥ 0, got {self.atol!r}")
        for name in ("samples", "probe_samples", "max_steps", "newton_max_iter", "n_eigenvalues"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.symmetry, bool):
            raise ValueError(f"symmetry must be True or False, got {self.symmetry!r}")
        if self.samples < 8 or self.probe_samples < 16:
            raise ValueError("need samples ≥ 8 and probe_samples ≥ 16")

    def as_attrs(self) -> dict:
        """The settings as NetCDF-safe attributes (booleans as 0/1)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {f"steady_{k}": (int(v) if isinstance(v, bool) else v) for k, v in values.items()}


def steady_options(options: SteadyStateOptions | None = None, *, t_max: float | None = None) -> SteadyStateOptions:
    """The :class:`SteadyStateOptions` a public entry point works with: ``options`` (default: the defaults), with
    ``t_max`` replaced when an experiment gives its own time budget.

    Public entry points (:func:`steady_state`, :func:`find_critical_coupling`, the memory experiments) call this
    once, before any work, and pass the object on; nothing takes loose option keywords. Anything but a
    :class:`SteadyStateOptions` (a dict, say) is a ``TypeError``; bad values fail when the object is built.
    """
    if options is not None and not isinstance(options, SteadyStateOptions):
        raise TypeError(f"options must be a SteadyStateOptions (e.g. SteadyStateOptions(t_max=5000)), "
                        f"got {type(options).__name__}")
    opts = options or SteadyStateOptions()
    return opts if t_max is None else dataclasses.replace(opts, t_max=t_max)
