"""Exact finite-N quantum dynamics of the open multimode Dicke model in the reduced basis.

* :func:`build` → :class:`QuantumProblem`: the Lindblad problem of a finite model and a pure product
  initial state (pattern, corrupted pattern, …) with one large spin per block (reduction group refined by
  the initial state) in its maximal-spin sector and M truncated modes; :meth:`QuantumProblem.to_qutip`
  exports Hamiltonian, collapse operators, initial state and observables as QuTiP objects.
* :func:`solve`: master-equation dynamics (exact by default: a compiled Chebyshev propagator, :mod:`.plain`,
  whenever it fits the memory budget) with an automatic Fock cutoff, as an ``xarray.Dataset``
  (overlaps, occupations, α, group Bloch vectors, truncation indicators, cost function E_N(t)).
* :func:`propagate`: one run at a fixed cutoff (raw expectation values).
* :mod:`.frame`: the same exact problem in the frame co-moving with the mean-field solution (rotated large
  spins, displaced modes), truncated in the fluctuations (:func:`comoving`, :func:`propagate_comoving`,
  :func:`search_truncation`); ``solve(frame="comoving")`` uses it, ``frame="auto"`` picks it for large N_sp.
* :func:`steady_state`, :func:`lifetime` (:mod:`.metastability`, :mod:`.liouville`): the exact stationary state, the
  low Liouvillian spectrum per Z2 parity sector, the gap (lifetime of a retrieved pattern) and the extreme
  metastable states.
"""

from .problem import QuantumProblem, QutipProblem, build
from .frame import (
    ComovingProblem, FramePropagation, MeanFieldFrame, comoving, mean_field_frame, propagate_comoving, propagate_plain,
    search_truncation,
)
from .options import DEFAULT_MEMORY, DEFAULT_TOL, FRAMES, METHODS, QuantumOptions
from .result import FockCutoffWarning, Propagation
from .solver import (
    AUTO_COMOVING_SPINS, MethodWarning, cost_function, initial_cost, master_equation_memory, propagate, solve,
)

from .metastability import lifetime, stationary_density_matrix, steady_state

__all__ = [
    "lifetime", "steady_state", "stationary_density_matrix",
    "QuantumProblem", "QutipProblem", "build", "solve", "propagate", "Propagation", "FockCutoffWarning",
    "cost_function", "initial_cost", "DEFAULT_TOL", "DEFAULT_MEMORY", "METHODS", "QuantumOptions", "MethodWarning",
    "master_equation_memory",
    "FRAMES", "AUTO_COMOVING_SPINS", "ComovingProblem", "FramePropagation", "MeanFieldFrame", "comoving",
    "mean_field_frame", "propagate_comoving", "propagate_plain", "search_truncation",
]
