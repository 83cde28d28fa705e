"""Model files (TOML) and results files (NetCDF via h5netcdf), written atomically.

A model file holds the same fields as :class:`~opendicke.model.DickeModel`::

    omega = 0.5
    omega_modes = [1.5, 2.0, 2.5, 3.0]
    kappa = 1.0            # or one value per mode
    g0 = 1.0
    n_spins = 400          # omit for the thermodynamic limit
    seed = 7               # random patterns ...
    patterns = ["++-+", "+-+-"]   # ... or explicit ones (rows of + and -), implying n_spins
    gamma_down = 0.1       # optional individual spin decay, pumping and dephasing rates (default 0)
    gamma_up = 0.0
    gamma_phi = 0.05

Every field is optional: :func:`load_model` fills the missing ones from the paper's Fig. 3 model (Ω = 0.5,
Ω_μ = Ω(μ + 2), κ = 1, g0 = 1, thermodynamic limit), so a file with only ``g0 = 0.8`` is valid. When the file
gives patterns (or mode frequencies) for M modes but no mode frequencies, the paper's family Ω_μ = Ω(μ + 2)
is continued to those M modes.

Results are written to a temporary file in the target directory and renamed into place, so a reader
never sees a half-written file. Complex variables (α) are stored as ``<name>_real``/``<name>_imag``
pairs and joined again on reading.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr

from .model import DickeModel, parse_patterns

__all__ = ["load_model", "read_model_file", "model_from_dict", "merge_with_defaults", "save_model", "save_dataset",
           "load_dataset", "atomic_path", "check_writable"]

MODEL_FIELDS = ("omega", "omega_modes", "kappa", "g0", "n_spins", "seed", "patterns", "gamma_down", "gamma_up", "gamma_phi")


def model_from_dict(data: dict) -> DickeModel:
    """Build a model from a dict with the TOML file's fields (unknown keys are an error)."""
    unknown = set(data) - set(MODEL_FIELDS)
    if unknown:
        raise ValueError(f"unknown model field(s) {sorted(unknown)}; allowed: {', '.join(MODEL_FIELDS)}")
    missing = {"omega", "omega_modes"} - set(data)
    if missing:
        raise ValueError(f"model needs {', '.join(sorted(missing))}")
    kwargs = dict(data)
    if "patterns" in kwargs and kwargs["patterns"] is not None:
        pats = kwargs["patterns"]
        kwargs["patterns"] = parse_patterns(",".join(pats) if isinstance(pats, list) and all(isinstance(p, str) for p in pats) else pats)
    return DickeModel(**kwargs)


def merge_with_defaults(data: dict) -> dict:
    """The model fields in ``data`` on top of the paper's Fig. 3 model (see the module docstring).

    The number of modes M comes from ``omega_modes``, else from the rows of ``patterns``, else from a list of
    ``kappa`` values, else it is the paper's 4; missing mode frequencies continue the family Ω_μ = Ω(μ + 2).
    """
    from .model import paper_model

    unknown = set(data) - set(MODEL_FIELDS)
    if unknown:
        raise ValueError(f"unknown model field(s) {sorted(unknown)}; allowed: {', '.join(MODEL_FIELDS)}")
    out = {k: v for k, v in data.items() if v is not None}
    if "omega_modes" not in out:
        n_modes = None
        if "patterns" in out:
            pats = out["patterns"]
            pats = parse_patterns(",".join(pats) if isinstance(pats, list) and all(isinstance(p, str) for p in pats) else pats)
            out["patterns"] = pats
            n_modes = pats.shape[0]
        elif isinstance(out.get("kappa"), (list, tuple)) and len(out["kappa"]) > 0:
            n_modes = len(out["kappa"])
        omega = float(out.get("omega", 0.5)) if isinstance(out.get("omega", 0.5), (int, float)) else 0.5
        out["omega_modes"] = (omega * (np.arange(1, (n_modes or 4) + 1) + 2.0)).tolist()
    defaults = paper_model().to_dict()
    for key in ("omega", "kappa", "g0"):
        out.setdefault(key, defaults[key][0] if key == "kappa" else defaults[key])
    return out


def read_model_file(path: str | os.PathLike) -> dict:
    """The fields of a model file (TOML, optionally under a ``[model]`` table) as a dict, checked for unknown keys."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config file {path} is a directory, not a model file (TOML)")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path} is not a valid TOML model file: {exc}") from None
    except OSError as exc:
        raise ValueError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    if "model" in data and isinstance(data["model"], dict):
        data = data["model"]
    unknown = set(data) - set(MODEL_FIELDS)
    if unknown:
        raise ValueError(f"{path}: unknown model field(s) {sorted(unknown)}; allowed: {', '.join(MODEL_FIELDS)}")
    return data


def load_model(path: str | os.PathLike) -> DickeModel:
    """Read a model from a TOML file; missing fields come from the paper's Fig. 3 model (module docstring)."""
    data = read_model_file(path)
    try:
        return model_from_dict(merge_with_defaults(data))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def check_writable(path: str | os.PathLike, *, directory: bool = False, option: str = "out") -> Path:
    """Check, before any work, that a result can be written to ``path``; raise ValueError naming ``option`` if not.

    ``directory=False``: ``path`` is a file; it must not be an existing directory. ``directory=True``: ``path``
    is a folder that receives several files; it must not be an existing file. In both cases the nearest
    existing ancestor must be a directory in which a file can be created (probed with a temporary file that
    is removed at once); nothing else is created.
    """
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: exists and is not a directory (this command writes several files into a folder)")
    if not directory and path.is_dir():
        raise ValueError(f"{option} {path}: is a directory; give a file name (e.g. {path / 'result.nc'})")
    probe_dir = path if directory else path.parent
    existing = probe_dir
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {path}: {existing} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".opendicke-probe-", dir=existing)
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot write in {existing} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)
    return path


def _toml_value(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def save_model(model: DickeModel, path: str | os.PathLike) -> Path:
    """Write a model as TOML (atomically)."""
    text = "".join(f"{key} = {_toml_value(value)}\n" for key, value in model.to_dict().items())
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results should get the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _split_complex(ds: xr.Dataset) -> xr.Dataset:
    # Encodings carried over from a file this data was read from (e.g. a fixed string width) must not
    # truncate the new, possibly longer values.
    out = ds.drop_encoding()
    for name in list(out.data_vars) + [c for c in out.coords if c not in out.dims]:
        var = out[name]
        if np.iscomplexobj(var.values):
            out[f"{name}_real"] = var.real.assign_attrs(var.attrs, complex_part="real")
            out[f"{name}_imag"] = var.imag.assign_attrs(var.attrs, complex_part="imag")
            out = out.drop_vars(name)
    for name in out.data_vars:
        if out[name].dtype == bool:
            out[name] = out[name].astype(np.int8).assign_attrs(out[name].attrs, dtype_bool=1)
    return out


def _join_complex(ds: xr.Dataset) -> xr.Dataset:
    out = ds
    for name in [n for n in ds.variables if n.endswith("_real") and ds[n].attrs.get("complex_part") == "real"]:
        base = name[: -len("_real")]
        imag = f"{base}_imag"
        if imag in ds.variables:
            var = ds[name] + 1j * ds[imag]
            var.attrs = {k: v for k, v in ds[name].attrs.items() if k != "complex_part"}
            out = out.assign({base: var}).drop_vars([name, imag])
    for name in list(out.data_vars):
        if out[name].attrs.get("dtype_bool") == 1:
            var = out[name].astype(bool)
            var.attrs = {k: v for k, v in out[name].attrs.items() if k != "dtype_bool"}
            out[name] = var
    return out


def save_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a result to NetCDF-4 (h5netcdf) atomically; complex and boolean variables round-trip."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _split_complex(ds).to_netcdf(tmp, engine="h5netcdf")
    return path


def load_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Read a result written by :func:`save_dataset` (fully loaded into memory, file closed)."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return _join_complex(ds.load())
