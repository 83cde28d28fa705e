"""opendicke: open multimode Dicke models as associative memories.

Physics: F. Carollo and I. Lesanovsky, PRL 126, 230601 (2021). Conventions: patterns are numbered from 1,
overlaps ξ_μ = (1/N_sp) Σ_j G[μ,j] ⟨σ_z^j⟩, α_μ = ⟨a_μ⟩/√N_sp, occupations ⟨a_μ†a_μ⟩/N_sp (per spin).
"""

from ._version import __version__  # noqa: E402  (the one place the version is defined)

from .model import DickeModel, paper_model, parse_patterns  # noqa: E402
from .reduction import Grouping, per_spin, reduce  # noqa: E402
from .states import BlochState, CorruptedPattern, PatternState, RandomState  # noqa: E402
from .theory import critical_coupling, retrieval_occupation, retrieval_overlap, retrieval_state  # noqa: E402


# The solvers load on first use (``import opendicke`` stays light) and are the functions themselves, with their
# own signatures and docstrings (PEP 562): ``opendicke.evolve is opendicke.meanfield.evolve``.
_LAZY = {
    "evolve": ("meanfield", "evolve"),
    "EvolveOptions": ("meanfield.evolution", "EvolveOptions"),
    "steady_state": ("meanfield.steady", "steady_state"),
    "find_critical_coupling": ("meanfield.steady", "find_critical_coupling"),
    "SteadyStateOptions": ("meanfield.steady", "SteadyStateOptions"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DickeModel", "paper_model", "parse_patterns", "Grouping", "reduce", "per_spin",
    "PatternState", "CorruptedPattern", "RandomState", "BlochState",
    "critical_coupling", "retrieval_overlap", "retrieval_occupation", "retrieval_state", "evolve",
    "steady_state", "find_critical_coupling", "EvolveOptions", "SteadyStateOptions",
]
