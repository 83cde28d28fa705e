"""opendicke: open multimode Dicke models as associative memories.

Physics: F. Carollo and I. Lesanovsky, PRL 126, 230601 (2021). Conventions: patterns are numbered from 1,
overlaps ξ_μ = (1/N_sp) Σ_j G[μ,j] ⟨σ_z^j⟩, α_μ = ⟨a_μ⟩/√N_sp, occupations ⟨a_μ†a_μ⟩/N_sp (per spin).
"""

from ._version import __version__  # noqa: E402  (the one place the version is defined)

from .model import DickeModel, paper_model, parse_patterns  # noqa: E402
from .reduction import Grouping, per_spin, reduce  # noqa: E402
from .states import BlochState, CorruptedPattern, PatternState, RandomState  # noqa: E402
from .theory import critical_coupling, retrieval_occupation, retrieval_overlap, retrieval_state  # noqa: E402


def evolve(*args, **kwargs):
    """Mean-field time evolution; see :func:`opendicke.meanfield.evolve`."""
    from .meanfield import evolve as _evolve

    return _evolve(*args, **kwargs)


def steady_state(*args, **kwargs):
    """Stationary states, verified and classified; see :func:`opendicke.meanfield.steady.steady_state`."""
    from .meanfield.steady import steady_state as _steady_state

    return _steady_state(*args, **kwargs)


def find_critical_coupling(*args, **kwargs):
    """Critical couplings found numerically; see :func:`opendicke.meanfield.steady.find_critical_coupling`."""
    from .meanfield.steady import find_critical_coupling as _find

    return _find(*args, **kwargs)


__all__ = [
    "DickeModel", "paper_model", "parse_patterns", "Grouping", "reduce", "per_spin",
    "PatternState", "CorruptedPattern", "RandomState", "BlochState",
    "critical_coupling", "retrieval_overlap", "retrieval_occupation", "retrieval_state", "evolve",
    "steady_state", "find_critical_coupling",
]
