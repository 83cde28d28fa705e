"""Mean-field dynamics of the open multimode Dicke model (paper Eq. 7)."""

from .equations import MeanFieldRHS, pack, unpack
from .evolution import DEFAULT_ATOL, DEFAULT_RTOL, EvolveOptions, choose_grouping, evolve
from .integrator import IntegrationStats, integrate
from .steady import SteadyStateOptions, find_critical_coupling, steady_state

__all__ = ["MeanFieldRHS", "pack", "unpack", "evolve", "EvolveOptions", "choose_grouping", "integrate", "IntegrationStats",
           "DEFAULT_RTOL", "DEFAULT_ATOL", "steady_state", "find_critical_coupling", "SteadyStateOptions"]
