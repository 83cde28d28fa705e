"""The open multimode Dicke model of Carollo & Lesanovsky, PRL 126, 230601 (2021), Eqs. (1)-(2).

    H = Ω Σ_j σ_x^j + Σ_μ Ω_μ a_μ† a_μ + (g0/√N_sp) Σ_{μ,j} G[μ,j] (a_μ + a_μ†) σ_z^j,
    loss κ_μ D[a_μ] on every mode.

Optional individual spin dissipation (docs/spin-dissipation.md), added to the paper's Lindbladian for every
spin j in the paper's basis (σ_z = +1 excited, σ_- = (σ_x − iσ_y)/2): decay √γ↓ σ_-^j, pumping √γ↑ σ_+^j,
dephasing √(γφ/2) σ_z^j (a single spin's coherence decays at rate γφ).

A :class:`DickeModel` is immutable and validated on construction. It is either in the
thermodynamic limit (``n_spins is None``: ideal, equally populated large-spin groups) or has a
finite number of spins with explicit ±1 patterns ``G`` (shape ``M × N_sp``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DickeModel", "paper_model", "parse_patterns", "SPIN_RATES"]

SPIN_RATES = ("gamma_down", "gamma_up", "gamma_phi")  # individual spin decay, pumping, dephasing


def _finite_float(name: str, value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _finite_vector(name: str, value, length: int | None) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or a list of real numbers, got {value!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one value or a list of M values, got shape {arr.shape}")
    if length is not None:
        if arr.size == 1:
            arr = np.full(length, arr[0])
        elif arr.size != length:
            raise ValueError(f"{name} must have one value or M = {length} values (one per mode), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    arr = arr.copy()
    arr.flags.writeable = False
    return arr


def parse_patterns(text: str | Sequence) -> np.ndarray:
    """Patterns from ``"++-+,+-+-"`` (rows separated by commas), or from a nested list of ±1.

    Returns an ``int8`` array of shape ``(M, N_sp)``.
    """
    if isinstance(text, str):
        rows = [r.strip() for r in text.split(",") if r.strip()]
        if not rows:
            raise ValueError("patterns: empty pattern string")
        table = {"+": 1, "-": -1}
        out = []
        for i, row in enumerate(rows, start=1):
            bad = set(row) - set(table)
            if bad:
                raise ValueError(f"patterns: row {i} {row!r} may only contain '+' and '-', found {sorted(bad)}")
            out.append([table[c] for c in row])
        lengths = {len(r) for r in out}
        if len(lengths) != 1:
            raise ValueError(f"patterns: all rows must have the same length (N_sp), got lengths {[len(r) for r in out]}")
        return np.array(out, dtype=np.int8)
    rows = [parse_patterns(r)[0] if isinstance(r, str) else r for r in text]
    return _validate_patterns(rows, None, None)


def _validate_patterns(patterns, n_modes: int | None, n_spins: int | None) -> np.ndarray:
    try:
        arr = np.asarray(patterns, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("patterns must be an M × N_sp array of ±1") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"patterns must be an M × N_sp array of ±1 with M, N_sp ≥ 1, got shape {arr.shape}")
    if not np.all(np.isin(arr, (-1.0, 1.0))):
        bad = arr[~np.isin(arr, (-1.0, 1.0))]
        raise ValueError(f"patterns may only contain +1 and -1, found {np.unique(bad)[:5].tolist()}")
    if n_modes is not None and arr.shape[0] != n_modes:
        raise ValueError(f"patterns has {arr.shape[0]} rows but the model has M = {n_modes} modes")
    if n_spins is not None and arr.shape[1] != n_spins:
        raise ValueError(f"patterns has {arr.shape[1]} columns but n_spins = {n_spins}")
    out = arr.astype(np.int8)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class DickeModel:
    """Parameters and patterns of an open multimode Dicke model (paper Eqs. 1-2).

    Parameters
    ----------
    omega:
        Spin frequency Ω (the transverse field Ω Σ_j σ_x^j). Any real number.
    omega_modes:
        Mode frequencies Ω_μ, one per mode; their number fixes M. Any real numbers.
    kappa:
        Loss rates κ_μ ≥ 0: one value for all modes or M values.
    g0:
        Spin-boson coupling g0 of Eq. (2). Any real number.
    n_spins:
        Number of spins N_sp, or ``None`` for the thermodynamic limit (ideal equal groups).
    patterns:
        Explicit ±1 patterns, shape ``(M, N_sp)``. Implies ``n_spins``.
    seed:
        Seed for random patterns when ``n_spins`` is given without ``patterns``.
    gamma_down, gamma_up, gamma_phi:
        Individual spin decay γ↓ (jump √γ↓ σ_-^j), pumping γ↑ (√γ↑ σ_+^j) and dephasing γφ
        (√(γφ/2) σ_z^j) rates, ≥ 0; default 0 (the paper's model).
    """

    omega: float
    omega_modes: np.ndarray
    kappa: np.ndarray = 1.0
    g0: float = 1.0
    n_spins: int | None = None
    patterns: np.ndarray | None = field(default=None, repr=False)
    seed: int | None = None
    gamma_down: float = 0.0
    gamma_up: float = 0.0
    gamma_phi: float = 0.0

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_("omega", _finite_float("omega", self.omega))
        set_("g0", _finite_float("g0", self.g0))
        for name in SPIN_RATES:
            rate = _finite_float(name, getattr(self, name))
            if rate < 0:
                raise ValueError(f"{name} must be ≥ 0 (a spin dissipation rate), got {rate}")
            set_(name, rate)
        modes = _finite_vector("omega_modes", self.omega_modes, None)
        if modes.size < 1:
            raise ValueError("omega_modes must list at least one mode (M ≥ 1)")
        set_("omega_modes", modes)
        kappa = _finite_vector("kappa", self.kappa, modes.size)
        if np.any(kappa < 0):
            raise ValueError(f"kappa must be ≥ 0 (loss rates), got {kappa.tolist()}")
        set_("kappa", kappa)
        n_spins = self.n_spins
        if n_spins is not None:
            try:
                whole = not isinstance(n_spins, bool) and float(n_spins).is_integer()
            except (TypeError, ValueError):
                whole = False
            if not whole:
                raise ValueError(f"n_spins must be a positive integer, got {n_spins!r}")
            n_spins = int(n_spins)
            if n_spins < 1:
                raise ValueError(f"n_spins must be ≥ 1, got {n_spins}")
        seed = self.seed
        if seed is not None:
            if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
                raise ValueError(f"seed must be a non-negative integer or None, got {seed!r} ({type(seed).__name__})")
            if seed < 0:
                raise ValueError(f"seed must be a non-negative integer, got {seed}")
            set_("seed", int(seed))
        if self.patterns is not None:
            pats = _validate_patterns(self.patterns, modes.size, n_spins)
            n_spins = pats.shape[1]
        elif n_spins is not None:
            rng = np.random.default_rng(self.seed)
            pats = (2 * rng.integers(0, 2, size=(modes.size, n_spins)) - 1).astype(np.int8)
            pats.flags.writeable = False
        else:
            if self.seed is not None:
                raise ValueError("seed only applies with a finite n_spins (random patterns)")
            pats = None
        set_("n_spins", n_spins)
        set_("patterns", pats)

    # ----------------------------------------------------------------------------------------
    @property
    def n_modes(self) -> int:
        """Number of modes (= number of patterns) M."""
        return int(self.omega_modes.size)

    @property
    def thermodynamic_limit(self) -> bool:
        """True when the model has no finite N_sp (ideal equal large-spin groups)."""
        return self.n_spins is None

    @property
    def spin_dissipation(self) -> bool:
        """True when any individual spin rate (γ↓, γ↑, γφ) is nonzero."""
        return self.gamma_down > 0 or self.gamma_up > 0 or self.gamma_phi > 0

    @property
    def gauge_symmetric(self) -> bool:
        """True when the spin dissipation is invariant under the reduction's gauge (γ↓ = γ↑).

        The gauge (a π rotation about x) maps σ_- to σ_+, so spins with G[1, j] = −1 are pumped at γ↓ and
        decay at γ↑ in the gauged frame; dephasing is invariant.
        """
        return self.gamma_down == self.gamma_up

    def replace(self, **changes) -> DickeModel:
        """A copy with some fields changed (validated again).

        Changing ``n_spins`` or ``seed`` draws new random patterns unless ``patterns`` is given.
        """
        if ("n_spins" in changes or "seed" in changes) and "patterns" not in changes:
            changes["patterns"] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain-Python description (for TOML files and result metadata)."""
        out = {
            "omega": self.omega,
            "omega_modes": self.omega_modes.tolist(),
            "kappa": self.kappa.tolist(),
            "g0": self.g0,
        }
        if self.n_spins is not None:
            out["n_spins"] = self.n_spins
            if self.seed is not None:
                out["seed"] = self.seed
            out["patterns"] = ["".join("+" if v > 0 else "-" for v in row) for row in self.patterns]
        for name in SPIN_RATES:  # only when set, so files of the paper's model stay as they were
            if getattr(self, name) != 0:
                out[name] = getattr(self, name)
        return out

    def __repr__(self) -> str:
        size = "thermodynamic limit" if self.n_spins is None else f"n_spins={self.n_spins}"
        rates = "".join(f", {name}={getattr(self, name):g}" for name in SPIN_RATES if getattr(self, name) != 0)
        return (
            f"DickeModel(M={self.n_modes}, omega={self.omega:g}, omega_modes={self.omega_modes.tolist()}, "
            f"kappa={self.kappa.tolist()}, g0={self.g0:g}, {size}{rates})"
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, DickeModel):
            return NotImplemented
        same_patterns = (self.patterns is None and other.patterns is None) or (
            self.patterns is not None and other.patterns is not None and np.array_equal(self.patterns, other.patterns)
        )
        return (
            self.omega == other.omega
            and self.g0 == other.g0
            and np.array_equal(self.omega_modes, other.omega_modes)
            and np.array_equal(self.kappa, other.kappa)
            and all(getattr(self, name) == getattr(other, name) for name in SPIN_RATES)
            and same_patterns
        )

    __hash__ = None


def paper_model(g0: float = 1.0, *, n_modes: int = 4, n_spins: int | None = None, seed: int | None = None) -> DickeModel:
    """The model of the paper's Fig. 3: Ω = 0.5, Ω_μ = Ω(μ + 2), κ = 1 (rates in units of κ), M = 4."""
    omega = 0.5
    return DickeModel(
        omega=omega,
        omega_modes=omega * (np.arange(1, n_modes + 1) + 2.0),
        kappa=1.0,
        g0=g0,
        n_spins=n_spins,
        seed=seed,
    )
