"""Quantum fluctuations of finite models at every size: second-order cumulants and the truncated Wigner method.

* :func:`cumulant`: means and all second-order cumulants of the group spins and the modes (Gaussian closure,
  the 1/N feedback of the covariances into the means kept), plus the leading-order linear version
  (``*_linear`` variables, ``cost_linear``: N·cost_linear = lim N·E_N).
* :func:`twa`: the truncated Wigner approximation (discrete or Gaussian spin sampling, vacuum Wigner modes,
  loss noise) with a weak-order-2 stochastic integrator, batched and chunked over samples.
* :func:`evolve`: either of them by name (``method="cumulant" | "twa"``); a sweep solver for
  :func:`opendicke.sweep.run_sweep`.

Physics, equations and validation: docs/fluctuations.md.
"""

from . import results as _results  # noqa: F401  (registers the result kinds "fluctuations", "fluctuations_figure3")
from .cumulants import CumulantRHS, cumulant, initial_covariance, memory_needed
from .options import CumulantOptions, TWAOptions
from .wigner import twa

__all__ = ["cumulant", "twa", "evolve", "CumulantOptions", "TWAOptions", "CumulantRHS", "initial_covariance",
           "memory_needed", "METHODS"]

METHODS = ("cumulant", "twa")


def evolve(model, initial=1, *, method: str = "cumulant", t_final: float = 10.0, times=101, vary=None, options=None,
           progress=None):
    """Fluctuation dynamics by name: ``method="cumulant"`` (:func:`cumulant`, ``options`` a
    :class:`CumulantOptions`) or ``"twa"`` (:func:`twa`, ``options`` a :class:`TWAOptions`); the other arguments as
    in those functions."""
    solvers = {"cumulant": (cumulant, CumulantOptions), "twa": (twa, TWAOptions)}
    if method not in solvers:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    solver, cls = solvers[method]
    if options is not None and not isinstance(options, cls):
        raise TypeError(f"options for method={method!r} must be a {cls.__name__}, got {type(options).__name__}")
    return solver(model, initial, t_final=t_final, times=times, vary=vary, options=options, progress=progress)
