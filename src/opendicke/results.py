"""Labelled results: xarray Datasets with named dimensions, units and provenance."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from . import __version__
from .grid import ParameterBatch
from .model import DickeModel
from .reduction import Grouping

__all__ = ["meanfield_dataset", "to_paper_units", "paper_factor"]

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


def meanfield_dataset(*, model, grouping: Grouping, params: ParameterBatch, starts, stack_initial, times, bloch, alpha, stats,
                      rtol, atol, paper_units, keep_bloch) -> xr.Dataset:
    """Assemble a mean-field trajectory batch (T, B, ...) into a labelled Dataset."""
    T = times.size
    lead_dims = params.dims + (("initial",) if stack_initial else ())
    lead_shape = params.shape + ((len(starts),) if stack_initial else ())

    def shaped(arr, trailing_dims, time_axis=True):
        # (T, B, *rest) → (*lead, T, *rest) or (B, *rest) → (*lead, *rest)
        if time_axis:
            arr = np.moveaxis(arr, 0, 1)
        arr = arr.reshape(lead_shape + arr.shape[1:])
        return (lead_dims + (("time",) if time_axis else ()) + trailing_dims, arr)

    sz = bloch[..., 2]
    overlap = sz @ grouping.weighted_f
    lengths = np.linalg.norm(bloch, axis=-1)
    with np.errstate(invalid="ignore"):
        drift = np.nanmax(np.abs(lengths - lengths[:1]), axis=(0, 2))
    factor = paper_factor(model.n_modes) if paper_units else 1.0

    data = {
        "overlap": shaped(overlap, ("pattern",)),
        "occupation": shaped(np.abs(alpha) ** 2 * factor, ("pattern",)),
        "alpha": shaped(alpha * np.sqrt(factor), ("pattern",)),
        "bloch_length": shaped(lengths, ("group",)),
        "length_drift": shaped(drift, (), time_axis=False),
        "success": shaped(stats.success, (), time_axis=False),
        "n_steps": shaped(stats.n_steps, (), time_axis=False),
        "couplings": (("pattern", "group"), grouping.f.astype(np.int8)),
    }
    if keep_bloch:
        data["bloch"] = shaped(bloch, ("group", "component"))
    coords = {
        "time": ("time", times),
        "pattern": ("pattern", np.arange(1, model.n_modes + 1)),
        "group": ("group", np.arange(1, grouping.n_groups + 1)),
        "component": ("component", ["x", "y", "z"]),
        "group_weight": ("group", grouping.weights),
    }
    if grouping.sizes is not None:
        coords["group_size"] = ("group", grouping.sizes)
    for name in params.dims:
        coords[name] = (name, params.coords[name])
    if stack_initial:
        coords["initial"] = ("initial", [s.label() for s in starts])
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(_model_attrs(model, params))
    ds.attrs.update(
        {
            "kind": "meanfield_evolution",
            "representation": grouping.representation,
            "frame": "gauged (pi rotation about x on spins with G[1,j] = -1)" if grouping.gauge is not None else "original",
            "rtol": rtol,
            "atol": atol,
            "units": UNITS_PAPER if paper_units else UNITS_OURS,
            "initial_state": "see coordinate 'initial'" if stack_initial else starts[0].label(),
            "all_succeeded": int(bool(np.all(stats.success))),
            "message": stats.message,
        }
    )
    ds["overlap"].attrs["long_name"] = "pattern overlap xi_mu = (1/N_sp) sum_j G[mu,j] <sigma_z^j>"
    ds["occupation"].attrs["long_name"] = "mode occupation per spin |alpha_mu|^2"
    ds["length_drift"].attrs["long_name"] = "max over time and groups of | |m_k(t)| - |m_k(0)| | (conserved by Eq. 7)"
    return ds
