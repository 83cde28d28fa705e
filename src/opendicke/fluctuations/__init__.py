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
from .wigner import twa

__all__ = ["cumulant", "twa", "evolve", "CumulantRHS", "initial_covariance", "memory_needed", "METHODS"]

METHODS = ("cumulant", "twa")


def evolve(model, initial=1, *, method: str = "cumulant", **options):
    """Fluctuation dynamics by name: ``method="cumulant"`` (:func:`cumulant`) or ``"twa"`` (:func:`twa`)."""
    if method == "cumulant":
        return cumulant(model, initial, **options)
    if method == "twa":
        return twa(model, initial, **options)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
