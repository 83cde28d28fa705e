"""Parameter grids: the outer product of varied model parameters, flattened into one batch.

Varied names: ``g0``, ``omega``, ``kappa`` (all modes at once), ``kappa_<n>`` and ``omega_mode_<n>``
(mode n, numbered from 1). Each varied name becomes one labelled dimension of the results, in the
order given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .model import DickeModel

__all__ = ["ParameterBatch", "parameter_batch", "parse_range", "parse_vary", "check_distinct", "VARIABLE_NAMES"]

VARIABLE_NAMES = ("g0", "omega", "kappa", "kappa_<n>", "omega_mode_<n>")
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


def parameter_batch(model: DickeModel, vary: dict | None = None) -> ParameterBatch:
    """Expand ``vary`` ({name: values}) around ``model`` into a flat batch of parameter points."""
    vary = dict(vary or {})
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
    for name, values in grids.items():
        if name == "g0":
            g0 = values.copy()
        elif name == "omega":
            omega = values.copy()
        elif name == "kappa":
            kappa = np.repeat(values[:, None], M, axis=1)
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
    return ParameterBatch(dims, coords, omega, g0, omega_modes, kappa)


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
