"""A finite-N paper Fig. 3: the overlap held at a fixed late time against g0, for several N_sp, with its spread."""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from ..model import DickeModel
from ..theory import retrieval_overlap

__all__ = ["finite_n_figure3"]


def finite_n_figure3(
    model: DickeModel,
    n_spins: Sequence[int],
    g0: Sequence[float],
    *,
    t_final: float = 100.0,
    method: str = "cumulant",
    samples: int = 200,
    seed: int | None = 0,
    dt: float = 0.01,
    spin_sampling: str = "discrete",
    progress: Callable[[float], None] | None = None,
) -> xr.Dataset:
    """|ξ_ν(t_final)| from every pattern-ν start against g0, for each N_sp (random patterns drawn with ``seed``).

    ``model`` gives Ω, Ω_μ, κ (its g0 and N_sp are replaced). Returns a Dataset with dims (n_spins, g0, pattern):
    ``overlap`` (|⟨ξ_ν⟩| from start ν), ``overlap_std`` (the quantum spread √Var ξ_ν), ``overlap_meanfield`` and,
    for TWA, ``overlap_error``; ``overlap_theory`` is Eq. (12) (thermodynamic limit, NaN where not applicable).
    """
    from . import evolve
    from .options import TWAOptions

    if model.spin_dissipation:
        raise ValueError("gamma_down/gamma_up/gamma_phi: the finite-N Fig. 3 compares with Eq. (12) of the lossless "
                         "spins, which has no counterpart with individual spin dissipation (docs/spin-dissipation.md); "
                         "run cumulant or twa directly")
    g0 = np.asarray(g0, dtype=float)
    sizes = [int(n) for n in n_spins]
    M = model.n_modes
    starts = list(range(1, M + 1))
    shape = (len(sizes), g0.size, M)
    out = {name: np.full(shape, np.nan) for name in ("overlap", "overlap_std", "overlap_meanfield", "overlap_error")}
    clock = _time.perf_counter()
    for i, n in enumerate(sizes):
        m = model.replace(n_spins=n, seed=seed)
        options = (TWAOptions(samples=samples, seed=seed, dt=dt, spin_sampling=spin_sampling, keep_bloch=False)
                   if method == "twa" else None)
        sub = None if progress is None else (lambda x, i=i: progress((i + x) / len(sizes)))
        ds = evolve(m, starts, method=method, t_final=t_final, times=2, vary={"g0": g0}, options=options,
                    progress=sub).isel(time=-1)
        for nu in range(M):
            pick = ds.isel(initial=nu, pattern=nu)
            out["overlap"][i, :, nu] = np.abs(pick["overlap"].values)
            out["overlap_std"][i, :, nu] = pick["overlap_std"].values
            out["overlap_meanfield"][i, :, nu] = np.abs(pick["overlap_meanfield"].values)
            if "overlap_error" in pick:
                out["overlap_error"][i, :, nu] = pick["overlap_error"].values
    theory = np.full((g0.size, M), np.nan)
    for nu in range(M):
        with np.errstate(invalid="ignore"):
            for j, g in enumerate(g0):
                try:
                    theory[j, nu] = abs(retrieval_overlap(g, model.omega, model.omega_modes[nu], model.kappa[nu]))
                except ValueError:
                    pass
    dims = ("n_spins", "g0", "pattern")
    data = {name: (dims, arr) for name, arr in out.items() if not (name == "overlap_error" and method != "twa")}
    data["overlap_theory"] = (("g0", "pattern"), theory)
    ds = xr.Dataset(data, coords={"n_spins": sizes, "g0": g0, "pattern": np.arange(1, M + 1)})
    from .._version import __version__
    from .results import FIGURE3_KIND

    ds.attrs.update({
        "kind": FIGURE3_KIND.name,
        "opendicke_version": __version__,
        "method": method,
        "t_final": float(t_final),
        "pattern_seed": -1 if seed is None else int(seed),
        "omega": model.omega,
        "omega_modes": model.omega_modes.tolist(),
        "kappa": model.kappa.tolist(),
        "elapsed_seconds": _time.perf_counter() - clock,
        "description": "|xi_nu(t_final)| from the pattern-nu start (pattern dim = start = overlap index)",
    })
    return ds
