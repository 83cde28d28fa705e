"""The one truncation search over the Basis abstraction, on a toy basis with known answers, and its use by the frames."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

from opendicke import DickeModel
from opendicke.quantum import FockCutoffWarning, QuantumOptions, solve
from opendicke.quantum.basis import Basis, relative_change, search
from opendicke.quantum.options import DEFAULT_DEVIATION_TOL
from opendicke.quantum.result import Propagation


@dataclass(frozen=True)
class _Problem:
    n_modes: int = 1
    n_spins: int = 1000


@dataclass(frozen=True, eq=False)
class ToyBasis(Basis):
    """Truncation (k,): ξ(t) = t·(1 + 0.5^k)/N (a deviation from mean field 0 of size ~1/N whose truncation error
    halves per level), occupation exact; top-level population 0.5^k."""

    max_k: int = 40
    by_indicator: bool = False
    name = "toy"

    def first(self):
        return (2,)

    def dimension(self, truncation):
        return truncation[0]

    def propagate(self, truncation, times, progress=None):
        k = truncation[0]
        xi = times * (1 + 0.5**k) / 1000
        values = {"overlap_1": xi.astype(complex), "occupation_1": np.zeros_like(times, complex),
                  "top_1": np.full_like(times, 0.5**k, dtype=complex)}
        return Propagation(problem=_Problem(), times=times, values=values, elapsed=0.0, method="toy")

    def grow(self, truncation, run, tol):
        return (truncation[0] + 1,)

    def refuse(self, truncation):
        return f"max_k = {self.max_k}" if truncation[0] > self.max_k else None


def _deviations(run):
    return {"overlap": 1000 * np.real(run.values["overlap_1"])}


def test_search_stops_on_the_absolute_change_alone_and_is_biased_at_large_n():
    times = np.linspace(0.0, 10.0, 11)
    found = search(ToyBasis(), times, 2e-3)
    # max_t |Δξ| from k − 1 to k is 10·0.5^k/1000: ≤ 2e-3 already at k = 3, where N·ξ is still 12 % off its limit 10
    assert found.converged and found.truncation == (3,) and math.isnan(found.deviation_change)
    n_xi = 1000 * np.real(found.run.values["overlap_1"])
    assert abs(n_xi.max() - 10.0) > 1.0


def test_search_with_a_relative_tolerance_on_the_deviations():
    times = np.linspace(0.0, 10.0, 11)
    found = search(ToyBasis(), times, 2e-3, deviations=_deviations, deviation_tol=1e-2)
    # relative change 0.5^k/(1 + 0.5^k) ≤ 1e-2 first at k = 7
    assert found.converged and found.truncation == (7,)
    assert found.deviation_change <= 1e-2 < relative_change(_deviations(found.run), {"overlap": 10 * times * (1 + 0.5**5)})
    assert [h[0] for h in found.history] == [(k,) for k in range(2, 8)]
    # measured only: reported, the search stops as without it
    loose = search(ToyBasis(), times, 2e-3, deviations=_deviations)
    assert loose.truncation == (3,) and loose.deviation_change == pytest.approx(0.125 / 1.125)


def test_search_reports_why_it_stopped():
    times = np.linspace(0.0, 1.0, 3)
    with pytest.warns(FockCutoffWarning, match="toy truncation not converged: growing .* max_k = 4.*deviation"):
        found = search(ToyBasis(max_k=4), times, 1e-3, deviations=_deviations, deviation_tol=1e-6)
    assert not found.converged and found.truncation == (4,)
    with pytest.raises(ValueError, match="first .* already exceeds max_k = 1"):
        search(ToyBasis(max_k=1), times, 1e-3)
    # noisy runs: accepted on the top-level population alone (≤ tol/10), no change measured
    found = search(ToyBasis(by_indicator=True), times, 1e-3)
    assert found.converged and found.truncation == (14,) and math.isnan(found.change)


def test_relative_change_floor():
    new, old = {"x": np.array([0.0, 1e-3])}, {"x": np.array([0.0, 2e-3])}
    assert relative_change(new, old) == pytest.approx(1.0)
    assert relative_change(new, old, floor=1.0) == pytest.approx(1e-3)


def test_deviation_tolerance_is_on_by_default_in_both_frames():
    assert QuantumOptions().deviation_tol == DEFAULT_DEVIATION_TOL == 1e-2
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=100, seed=1)
    ds = solve(model, 1, t_final=0.5, times=3, frame="comoving", tol=1e-3, cost=False)
    assert ds.fock_converged.item() == 1 and 0 <= ds.deviation_change.item() <= 1e-2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = solve(model.replace(n_spins=200), 1, t_final=0.5, times=3, frame="gaussian", tol=1e-3)
    assert ds.fock_converged.item() == 1 and 0 <= ds.deviation_change.item() <= 1e-2


@pytest.mark.slow
def test_comoving_search_can_be_held_by_the_deviations():
    """tol alone is met at (16, 16) → (23, 18) here; an unreachable deviation_tol holds the search until max_dim."""
    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=100, seed=1)
    with pytest.warns(FockCutoffWarning, match="relative change of the deviations"):
        ds = solve(model, 1, t_final=1.5, times=4, frame="comoving", tol=1e-3, cost=False, deviation_tol=1e-12,
                   max_dim=420)
    assert ds.fock_converged.item() == 0 and ds.deviation_change.item() > 1e-12
