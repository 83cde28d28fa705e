"""Labelled results: xarray Datasets with named dimensions, units and provenance."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from ._version import __version__
from .grid import ParameterBatch
from .model import DickeModel
from .reduction import Grouping

__all__ = ["meanfield_dataset", "to_paper_units", "paper_factor", "BatchLayout"]

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


def _model_attrs(model: DickeModel, params: ParameterBatch) -> dict:
    attrs = {
        "omega": model.omega,
        "omega_modes": model.omega_modes.tolist(),
        "kappa": model.kappa.tolist(),
        "g0": model.g0,
        "n_modes": model.n_modes,
        "n_spins": -1 if model.n_spins is None else model.n_spins,
        "thermodynamic_limit": int(model.thermodynamic_limit),
        "varied": ",".join(params.dims),
        "model_json": json.dumps(model.to_dict()),
        "opendicke_version": __version__,
    }
    if model.seed is not None:
        attrs["seed"] = model.seed
    return attrs


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
                      rtol, atol, paper_units, keep_bloch) -> xr.Dataset:
    """Assemble a mean-field trajectory batch (T, B, ...) into a labelled Dataset."""
    layout = BatchLayout(model, grouping, params, starts, stack_initial)
    overlap = bloch[..., 2] @ grouping.weighted_f
    lengths = np.linalg.norm(bloch, axis=-1)
    with np.errstate(invalid="ignore"):
        drift = np.nanmax(np.abs(lengths - lengths[:1]), axis=(0, 2))
    factor = paper_factor(model.n_modes) if paper_units else 1.0
    data = {
        "overlap": layout.var(overlap, ("pattern",), time_axis=True),
        "occupation": layout.var(np.abs(alpha) ** 2 * factor, ("pattern",), time_axis=True),
        "alpha": layout.var(alpha * np.sqrt(factor), ("pattern",), time_axis=True),
        "bloch_length": layout.var(lengths, ("group",), time_axis=True),
        "length_drift": layout.var(drift),
        "success": layout.var(stats.success),
        "n_steps": layout.var(stats.n_steps),
    }
    if keep_bloch:
        data["bloch"] = layout.var(bloch, ("group", "component"), time_axis=True)
    ds = layout.dataset(data, kind="meanfield_evolution", paper_units=paper_units, extra_coords={"time": ("time", times)})
    ds.attrs.update({"rtol": rtol, "atol": atol, "all_succeeded": int(bool(np.all(stats.success))), "message": stats.message})
    ds["overlap"].attrs["long_name"] = "pattern overlap xi_mu = (1/N_sp) sum_j G[mu,j] <sigma_z^j>"
    ds["occupation"].attrs["long_name"] = "mode occupation per spin |alpha_mu|^2"
    ds["length_drift"].attrs["long_name"] = "max over time and groups of | |m_k(t)| - |m_k(0)| | (conserved by Eq. 7)"
    return ds
