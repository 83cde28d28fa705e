"""Labelled results: xarray Datasets with named dimensions, units and provenance, and their one schema.

Every public computation returns an ``xarray.Dataset`` whose attribute ``kind`` names its result kind.
:data:`RESULT_KINDS` registers, per kind, the variables and dimensions it must have; every kind shares the
attributes of :data:`COMMON_ATTRS` (the model attributes of :func:`model_attrs`, the package version and
``elapsed_seconds``, the wall time of the computation) and the conventions checked by :func:`check_result`:
``pattern`` is the overlap index 1..M, ``initial`` (when present) labels the starts. A new solver adds its
kind with :func:`register_kind`; the schema test then covers it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ._version import __version__
from .grid import ParameterBatch
from .model import DickeModel
from .reduction import Grouping

__all__ = ["meanfield_dataset", "to_paper_units", "paper_factor", "BatchLayout", "model_attrs", "ResultKind",
           "RESULT_KINDS", "COMMON_ATTRS", "MODEL_ATTRS", "register_kind", "check_result", "timed"]

UNITS_OURS = "per spin: alpha = <a>/sqrt(N_sp), occupation = <a^dag a>/N_sp"
UNITS_PAPER = "paper: alpha = <a>/sqrt(N), occupation = <a^dag a>/N, N = N_sp/2^(M-1)"


def paper_factor(n_modes: int) -> float:
    """N_sp/N = 2^(M-1): occupations in the paper's normalisation are this times ours (α: its square root)."""
    return float(2 ** (n_modes - 1))


def to_paper_units(ds: xr.Dataset) -> xr.Dataset:
    """Convert α and occupations of a result to the paper's normalisation (α_paper = √(2^(M-1)) α)."""
    if ds.attrs.get("units") == UNITS_PAPER:
        return ds
    factor = paper_factor(ds.sizes["pattern"])
    out = ds.copy()
    for name in ("occupation", "occupation_theory"):
        if name in out:
            out[name] = out[name] * factor
    for name in ("alpha", "alpha_theory"):
        if name in out:
            out[name] = out[name] * np.sqrt(factor)
    out.attrs["units"] = UNITS_PAPER
    return out


def model_attrs(model: DickeModel, varied: tuple[str, ...] | list[str] = ()) -> dict:
    """The model's attributes on a result (the one builder for every result kind): its parameters, the names
    varied over the grid (``varied``), the model as JSON and the package version."""
    attrs = {
        "omega": model.omega,
        "omega_modes": model.omega_modes.tolist(),
        "kappa": model.kappa.tolist(),
        "g0": model.g0,
        "n_modes": model.n_modes,
        "n_spins": -1 if model.n_spins is None else model.n_spins,
        "thermodynamic_limit": int(model.thermodynamic_limit),
        "varied": ",".join(varied),
        "model_json": json.dumps(model.to_dict()),
        "opendicke_version": __version__,
    }
    if model.spin_dissipation:
        attrs.update({name: getattr(model, name) for name in ("gamma_down", "gamma_up", "gamma_phi")})
    if model.seed is not None:
        attrs["seed"] = model.seed
    return attrs


def _model_attrs(model: DickeModel, params: ParameterBatch) -> dict:
    return model_attrs(model, params.dims)


# ------------------------------------------------------------------------------------------------
# The schema


#: Attributes every result carries.
COMMON_ATTRS = ("kind", "opendicke_version", "elapsed_seconds")
#: Attributes of a result computed with one model (:func:`model_attrs`).
MODEL_ATTRS = ("omega", "omega_modes", "kappa", "g0", "n_modes", "n_spins", "thermodynamic_limit", "model_json")


@dataclass(frozen=True)
class ResultKind:
    """What a result of one kind must contain (beyond :data:`COMMON_ATTRS`)."""

    name: str
    variables: tuple[str, ...] = ()
    dims: tuple[str, ...] = ()
    attrs: tuple[str, ...] = ()
    description: str = ""
    single_model: bool = True  # False: a family of models (e.g. crosstalk over M, N_sp); no model attributes


RESULT_KINDS: dict[str, ResultKind] = {}


def register_kind(name: str, *, variables=(), dims=(), attrs=(), description: str = "",
                  single_model: bool = True) -> ResultKind:
    """Register a result kind (the schema test checks every registered kind that a test produces)."""
    kind = ResultKind(name, tuple(variables), tuple(dims), tuple(attrs), description, single_model)
    RESULT_KINDS[name] = kind
    return kind


register_kind("meanfield_evolution", variables=("overlap", "occupation", "alpha", "bloch_length", "length_drift",
              "success", "n_steps", "outcome", "stiff"), dims=("time", "pattern", "group"),
              attrs=("representation", "units", "rtol", "atol", "message"), description="meanfield.evolve")
register_kind("meanfield_steady_state", variables=("classification", "stable", "stable_on_subspace", "stationary",
              "converged", "message", "overlap", "occupation", "alpha", "full_space_stability", "residual"),
              dims=("pattern", "group", "eigenvalue"), attrs=("representation", "units"),
              description="meanfield.steady_state")
register_kind("critical_coupling", variables=("g_crit", "g_lower", "g_upper", "message"), dims=("pattern",),
              attrs=("threshold", "tol"), description="meanfield.find_critical_coupling")
register_kind("retrieval_state", variables=("overlap", "alpha", "occupation", "g_crit", "sx", "retrieved"),
              dims=("pattern",), attrs=("sign", "units"), description="theory.retrieval_state (closed form, Eq. 12)")
register_kind("recognition_map", variables=("retrievable", "overlap", "boundary_theory"), dims=("g0", "flip", "pattern"),
              description="memory.recognition_map")
register_kind("selective_regime", variables=("retrievable", "overlap", "g_crit"), dims=("pattern",),
              description="memory.retrievable_patterns")
register_kind("stability_threshold", variables=("boundary", "robust_threshold", "message"), dims=("pattern",),
              description="memory.stability_threshold")
register_kind("attractor_census", variables=("outcome", "ends_on", "overlap", "fraction", "start_vectors"),
              dims=("g0", "start", "pattern"), description="memory.attractor_census")
register_kind("census_examples", variables=("overlap",), dims=("example", "time", "pattern"),
              description="memory.census_examples")
register_kind("transient_retrieval_map", variables=("overlap", "retrieved", "retention_time", "n_retrieved",
              "g_crit_lossless"), dims=("pattern", "g0"), attrs=("rate", "t_obs", "t_final", "threshold"),
              description="memory.transient_retrieval_map (spin dissipation)")
register_kind("self_consistent_state", variables=("x", "overlap", "alpha", "bloch", "converged", "curvature", "stable"),
              dims=("pattern", "group"), attrs=("start",), description="memory.self_consistent_state")
register_kind("paramagnet_thresholds", variables=("threshold", "purity", "overlap_matrix"), dims=("pattern",),
              description="memory.paramagnet_thresholds")
register_kind("crosstalk", variables=("overlap_dynamics", "threshold", "crosstalk_rms", "elapsed_seconds"),
              dims=("n_modes", "n_spins", "seed", "g0"), attrs=("model_family",), description="memory.crosstalk",
              single_model=False)


_OLD_TIME_NAMES = ("elapsed_s", "sweep_seconds", "elapsed", "wall_seconds")


def check_result(ds: xr.Dataset) -> list[str]:
    """Problems of ``ds`` against the schema of its kind (empty when it conforms)."""
    problems = []
    kind = ds.attrs.get("kind")
    if kind not in RESULT_KINDS:
        return [f"unknown result kind {kind!r} (registered: {', '.join(sorted(RESULT_KINDS))})"]
    spec = RESULT_KINDS[kind]
    for name in COMMON_ATTRS + (MODEL_ATTRS if spec.single_model else ()) + spec.attrs:
        if name not in ds.attrs:
            problems.append(f"{kind}: attribute {name!r} missing")
    for name in spec.variables:
        if name not in ds.variables:
            problems.append(f"{kind}: variable {name!r} missing")
    for name in spec.dims:
        if name not in ds.dims:
            problems.append(f"{kind}: dimension {name!r} missing")
    if "pattern" in ds.dims:
        pattern = ds["pattern"].values
        if not np.array_equal(np.sort(pattern), pattern) or pattern.min() < 1 or pattern.max() > ds.attrs.get("n_modes", np.inf):
            problems.append(f"{kind}: 'pattern' must be overlap indices within 1..M, got {pattern.tolist()}")
    if "initial" in ds.dims and ds["initial"].dtype.kind not in "UOS":
        problems.append(f"{kind}: 'initial' must label the starts (strings)")
    if "kind" in ds.variables or "kind" in ds.dims:
        problems.append(f"{kind}: 'kind' is the result's attribute; a dimension or variable must be named otherwise")
    for name in _OLD_TIME_NAMES:
        if name in ds.attrs or name in ds.variables:
            problems.append(f"{kind}: wall time is called elapsed_seconds, found {name!r}")
    return problems


def timed(func):
    """Decorator: set ``elapsed_seconds`` (wall time of the call) on the Dataset a public function returns."""
    import functools
    import time

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = func(*args, **kwargs)
        if isinstance(out, xr.Dataset):
            out.attrs["elapsed_seconds"] = round(time.perf_counter() - t0, 6)
        return out

    return wrapper


class BatchLayout:
    """How a flat batch of B = P·S points (parameter points × initial states, initial state fastest) maps onto
    labelled leading dimensions: the varied parameters, then ``initial`` when several starts were given."""

    def __init__(self, model: DickeModel, grouping: Grouping, params: ParameterBatch, starts, stack_initial: bool):
        self.model, self.grouping, self.params, self.starts = model, grouping, params, starts
        self.stack_initial = stack_initial
        self.dims = params.dims + (("initial",) if stack_initial else ())
        self.shape = params.shape + ((len(starts),) if stack_initial else ())

    def var(self, arr, trailing_dims=(), time_axis=False):
        """(B, *rest) → (*lead, *rest); with ``time_axis`` (T, B, *rest) → (*lead, T, *rest)."""
        arr = np.asarray(arr)
        if time_axis:
            arr = np.moveaxis(arr, 0, 1)
        return (self.dims + (("time",) if time_axis else ()) + tuple(trailing_dims), arr.reshape(self.shape + arr.shape[1:]))

    def dataset(self, data: dict, *, kind: str, paper_units: bool, extra_coords: dict | None = None) -> xr.Dataset:
        """A Dataset with the shared coordinates (pattern, group, component, varied parameters, initial) and attrs."""
        g = self.grouping
        coords = dict(extra_coords or {})
        coords.update({
            "pattern": ("pattern", np.arange(1, self.model.n_modes + 1)),
            "group": ("group", np.arange(1, g.n_groups + 1)),
            "component": ("component", ["x", "y", "z"]),
            "group_weight": ("group", g.weights),
        })
        if g.sizes is not None:
            coords["group_size"] = ("group", g.sizes)
        for name in self.params.dims:
            coords[name] = (name, self.params.coords[name])
        if self.stack_initial:
            coords["initial"] = ("initial", [s.label() for s in self.starts])
        data = dict(data, couplings=(("pattern", "group"), g.f.astype(np.int8)))
        ds = xr.Dataset(data, coords=coords)
        ds.attrs.update(_model_attrs(self.model, self.params))
        ds.attrs.update({
            "kind": kind,
            "representation": g.representation,
            "frame": "gauged (pi rotation about x on spins with G[1,j] = -1)" if g.gauge is not None else "original",
            "units": UNITS_PAPER if paper_units else UNITS_OURS,
            "initial_state": "see coordinate 'initial'" if self.stack_initial else self.starts[0].label(),
        })
        return ds


def meanfield_dataset(*, model, grouping: Grouping, params: ParameterBatch, starts, stack_initial, times, bloch, alpha, stats,
                      rtol, atol, paper_units, keep_bloch, length_budget=None) -> xr.Dataset:
    """Assemble a mean-field trajectory batch (T, B, ...) into a labelled Dataset.

    ``length_budget`` (T, B, K): Q_k(t) = ∫ d|m_k|²/dt dt from the exact Bloch-length equation (spin
    dissipation); the drift is then measured against √(|m_k(0)|² + Q_k(t)) instead of |m_k(0)|.
    """
    layout = BatchLayout(model, grouping, params, starts, stack_initial)
    overlap = bloch[..., 2] @ grouping.weighted_f
    lengths = np.linalg.norm(bloch, axis=-1)
    with np.errstate(invalid="ignore"):
        expected = lengths[:1] if length_budget is None else np.sqrt(np.clip(lengths[:1] ** 2 + length_budget, 0.0, None))
        drift = np.nanmax(np.abs(lengths - expected), axis=(0, 2))
    factor = paper_factor(model.n_modes) if paper_units else 1.0
    data = {
        "overlap": layout.var(overlap, ("pattern",), time_axis=True),
        "occupation": layout.var(np.abs(alpha) ** 2 * factor, ("pattern",), time_axis=True),
        "alpha": layout.var(alpha * np.sqrt(factor), ("pattern",), time_axis=True),
        "bloch_length": layout.var(lengths, ("group",), time_axis=True),
        "length_drift": layout.var(drift),
        "success": layout.var(stats.success),
        "n_steps": layout.var(stats.n_steps),
        "outcome": layout.var(np.asarray(stats.outcome, dtype=str)),
        "stiff": layout.var(stats.stiff),
    }
    if keep_bloch:
        data["bloch"] = layout.var(bloch, ("group", "component"), time_axis=True)
    ds = layout.dataset(data, kind="meanfield_evolution", paper_units=paper_units, extra_coords={"time": ("time", times)})
    ds.attrs.update({"rtol": rtol, "atol": atol, "all_succeeded": int(bool(np.all(stats.success))), "message": stats.message})
    ds["overlap"].attrs["long_name"] = "pattern overlap xi_mu = (1/N_sp) sum_j G[mu,j] <sigma_z^j>"
    ds["occupation"].attrs["long_name"] = "mode occupation per spin |alpha_mu|^2"
    ds["outcome"].attrs["long_name"] = "how the integration of the point ended (success, success after switching " \
                                       "to implicit Radau, too many steps, step size underflow, non-finite values)"
    ds["stiff"].attrs["long_name"] = "the point was detected stiff and continued with the implicit Radau method"
    ds["length_drift"].attrs["long_name"] = "max over time and groups of | |m_k(t)| - |m_k(0)| | (conserved by Eq. 7)"
    if length_budget is not None:
        ds["length_drift"].attrs["long_name"] = (
            "max over time and groups of | |m_k(t)| - sqrt(|m_k(0)|^2 + Q_k(t)) |, Q_k = integral of the exact "
            "Bloch-length equation d|m_k|^2/dt (spin dissipation)"
        )
    return ds
