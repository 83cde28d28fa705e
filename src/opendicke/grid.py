"""Parameter grids: the outer product of varied model parameters, flattened into one batch.

Varied names: ``g0``, ``omega``, ``kappa`` (all modes at once), ``kappa_<n>`` and ``omega_mode_<n>``
(mode n, numbered from 1), and the individual spin rates ``gamma_down``, ``gamma_up``, ``gamma_phi``. Each varied name becomes one labelled dimension of the results, in the
order given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .model import DickeModel

__all__ = ["ParameterBatch", "parameter_batch", "parse_range", "parse_vary", "check_distinct", "VARIABLE_NAMES", "SPIN_RATES"]

VARIABLE_NAMES = ("g0", "omega", "kappa", "kappa_<n>", "omega_mode_<n>", "gamma_down", "gamma_up", "gamma_phi")
SPIN_RATES = ("gamma_down", "gamma_up", "gamma_phi")
_MODE_NAME = re.compile(r"^(kappa|omega_mode)_(\d+)$")


@dataclass(frozen=True, eq=False)
class ParameterBatch:
    """P parameter points: the flattened outer product of the varied values (C order)."""

    dims: tuple[str, ...]
    coords: dict[str, np.ndarray]
    omega: np.ndarray  # (P,)
    g0: np.ndarray  # (P,)
    omega_modes: np.ndarray  # (P, M)
    kappa: np.ndarray  # (P, M)
    gamma_down: np.ndarray | None = None  # (P,) individual spin rates (None: zero everywhere)
    gamma_up: np.ndarray | None = None
    gamma_phi: np.ndarray | None = None

    @property
    def spin_dissipation(self) -> bool:
        """Some point has a nonzero individual spin rate."""
        return any(r is not None and np.any(r != 0) for r in (self.gamma_down, self.gamma_up, self.gamma_phi))

    @property
    def rates(self) -> dict:
        """``{gamma_down, gamma_up, gamma_phi: (P,) arrays}`` for :class:`~opendicke.meanfield.equations.MeanFieldRHS`."""
        P = self.size
        return {n: (np.zeros(P) if getattr(self, n) is None else getattr(self, n)) for n in SPIN_RATES}

    def grouping_model(self, model: DickeModel) -> DickeModel:
        """The model whose reduction fits every point: split by gauge sign when some point has γ↓ ≠ γ↑."""
        r = self.rates
        if model.gauge_symmetric and np.any(r["gamma_down"] != r["gamma_up"]):
            return model.replace(gamma_down=1.0, gamma_up=0.0)
        return model

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.coords[d].size for d in self.dims)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _values(name: str, values) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"vary {name}: give a non-empty 1-D list of values")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"vary {name}: values must be finite")
    check_distinct(name, arr)
    return arr


def check_distinct(name: str, values: np.ndarray) -> None:
    """A grid dimension is a coordinate: repeated values would make it ambiguous (raise ValueError)."""
    unique, counts = np.unique(values, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"vary {name}: value(s) {unique[counts > 1].tolist()} given more than once; "
                         f"each value of a grid dimension must be distinct")


def parameter_batch(model: DickeModel, vary: dict | None = None, *, spin_rates: bool = False) -> ParameterBatch:
    """Expand ``vary`` ({name: values}) around ``model`` into a flat batch of parameter points.

    The spin rates can be varied only by callers that take them (``spin_rates=True``); elsewhere varying them
    is an error rather than a silently ignored dimension.
    """
    vary = dict(vary or {})
    if not spin_rates:
        for name in vary:
            if name in SPIN_RATES:
                raise ValueError(f"cannot vary {name!r} here: this computation does not take individual spin "
                                 "rates (evolve and steady_state do)")
    M = model.n_modes
    dims = tuple(vary)
    coords = {name: _values(name, vals) for name, vals in vary.items()}
    shape = tuple(c.size for c in coords.values())
    P = int(np.prod(shape, dtype=np.int64))
    grids = dict(zip(dims, (g.ravel() for g in np.meshgrid(*coords.values(), indexing="ij")))) if dims else {}

    omega = np.full(P, model.omega)
    g0 = np.full(P, model.g0)
    omega_modes = np.tile(model.omega_modes, (P, 1))
    kappa = np.tile(model.kappa, (P, 1))
    rates = {n: np.full(P, float(getattr(model, n, 0.0))) for n in SPIN_RATES}
    for name, values in grids.items():
        if name == "g0":
            g0 = values.copy()
        elif name == "omega":
            omega = values.copy()
        elif name == "kappa":
            kappa = np.repeat(values[:, None], M, axis=1)
        elif name in SPIN_RATES:
            if np.any(values < 0):
                raise ValueError(f"vary {name}: spin rates must be ≥ 0")
            rates[name] = values.copy()
        elif (m := _MODE_NAME.match(name)) is not None:
            mode = int(m.group(2))
            if not 1 <= mode <= M:
                raise ValueError(f"vary {name}: mode {mode} is outside 1..{M} (modes are numbered from 1)")
            target = kappa if m.group(1) == "kappa" else omega_modes
            target[:, mode - 1] = values
        else:
            raise ValueError(f"cannot vary {name!r}: choose from {', '.join(VARIABLE_NAMES)}")
        if name.startswith("kappa") and np.any(values < 0):
            raise ValueError(f"vary {name}: loss rates must be ≥ 0")
    return ParameterBatch(dims, coords, omega, g0, omega_modes, kappa, **rates)


def parse_range(text: str) -> tuple[str, np.ndarray]:
    """``"g0=0.4:2.0:161"`` (start:stop:count, inclusive) or ``"g0=0.5,1,1.5"`` → (name, values)."""
    if "=" not in text:
        raise ValueError(f"--vary {text!r}: expected NAME=START:STOP:COUNT or NAME=V1,V2,...")
    name, spec = (s.strip() for s in text.split("=", 1))
    try:
        if ":" in spec:
            parts = spec.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1:
                raise ValueError
            values = np.linspace(start, stop, count)
        else:
            values = np.array([float(v) for v in spec.split(",") if v.strip()])
    except ValueError:
        raise ValueError(f"--vary {text!r}: expected NAME=START:STOP:COUNT (COUNT ≥ 1) or NAME=V1,V2,...") from None
    return name, values


def parse_vary(texts) -> dict[str, np.ndarray]:
    """Several ``--vary`` specifications → ``{name: values}`` in the order given; a name given twice is an error."""
    out: dict[str, np.ndarray] = {}
    for text in texts:
        name, values = parse_range(text)
        if name in out:
            raise ValueError(f"--vary {name} is given more than once ({text!r}); give all its values in one "
                             f"--vary {name}=V1,V2,... or {name}=START:STOP:COUNT")
        check_distinct(name, values)
        out[name] = values
    return out
