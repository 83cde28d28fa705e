"""The plain (Dicke ⊗ Fock) basis on the compiled kernel: real representation, band operator, Chebyshev run.

H and the jump operators √κ_μ a_μ are real in this basis (S_x = J_+ + J_−, S_z and a_μ real), so the state is
propagated as X = Re ρ + Im ρ (:mod:`.kernels`) by one Chebyshev expansion of the time-independent
Liouvillian (:mod:`.chebyshev`), and every observable is read as a linear functional of X.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Sequence

import numpy as np

from .chebyshev import chebyshev_moments, functionals
from .kernels import band_form, set_threads
from .problem import QuantumProblem

__all__ = ["real_state", "chebyshev_memory", "propagate_chebyshev"]

#: Real d × d arrays held by the Chebyshev run: M_k and M_{k−1} (overwritten in place by M_{k+1}), each as the
#: two triangles-with-margins A and B of the split layout (four arrays), and the initial state X0.
_ARRAYS = 5


def chebyshev_memory(dim: int, n_factors: int = 2) -> int:
    """Bytes the Chebyshev master-equation run needs at dimension ``dim`` (state arrays with their margins, band
    operator, observables as functionals, sparse operators of the problem)."""
    d = int(dim)
    # margins: 2P per row of the four arrays, P = the largest stride, taken as twice d^(1 − 1/n) (the stride of the
    # outermost of n factors of similar size; small spin groups at M ≥ 2 have larger strides)
    margins = 4 * 8 * d * 4 * d ** (1.0 - 1.0 / max(n_factors, 1))
    return int(_ARRAYS * 8 * d * d + margins + 400 * d * (n_factors + 4))


def real_state(psi: np.ndarray) -> np.ndarray:
    """X = Re ρ + Im ρ of ρ = |ψ⟩⟨ψ|, built without forming the complex ρ."""
    re, im = np.real(psi), np.imag(psi)
    X = np.outer(re, re)
    if np.any(im):
        X += np.outer(im, im)
        X += np.outer(im, re)  # Im ρ = Im ψ Re ψᵀ − Re ψ Im ψᵀ
        X -= np.outer(re, im)
    return X


def propagate_chebyshev(
    problem: QuantumProblem,
    times: Sequence[float],
    *,
    tol: float = 1e-8,
    squares: bool = False,
    tail: int = 3,
    threads: int = 1,
    progress: Callable[[float], None] | None = None,
):
    """The plain-basis master equation by one Chebyshev expansion on the compiled real-representation kernel.

    Returns a :class:`~opendicke.quantum.result.Propagation` (``method = "chebyshev"``) whose ``stats`` hold the
    number of Liouvillian applications, restarts of the spectral bound, the bound, the cancellation factor and
    the truncation estimate of the series. ``tol``: the series is truncated when its terms stay below tol/1000.
    """
    from .result import Propagation

    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("times must be a strictly increasing list of finite times")
    start = _time.perf_counter()
    previous = set_threads(None)
    set_threads(threads)
    try:
        op = band_form(problem.hamiltonian, problem.collapse_operators)
        names, F = functionals(problem.observables(squares, tail), problem.dim)
        X0 = real_state(problem.initial_ket)
        res = chebyshev_moments(op, X0, F, t - t[0], tol=tol, progress=progress)
    finally:
        set_threads(previous)
    values = {name: res.values[i] for i, name in enumerate(names)}
    stats = {"applications": res.applications, "restarts": res.restarts, "bound_a": res.bound.a,
             "bound_b": res.bound.b, "cancellation": res.cancellation, "series_truncation": res.truncation}
    return Propagation(problem=problem, times=t, values=values, elapsed=_time.perf_counter() - start,
                       method="chebyshev", stats=stats)
