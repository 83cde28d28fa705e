"""Fluctuation methods against exact reference runs (NetCDF files of opendicke.quantum.solve).

Usage: python benchmarks/validate_fluctuations.py REF.nc [REF.nc ...]
For each reference: max |error| of ξ_μ and n_μ (all patterns) over time windows, for mean field, the cumulant
method and TWA (4000 samples, discrete spins), as Markdown rows; and t*, the longest window [0, t*] over which
each method's running max error is below mean field's in both ξ and n (for TWA up to twice its statistical error).
"""

import json
import sys
import warnings

import numpy as np
import xarray as xr

import opendicke as od
from opendicke.fluctuations import cumulant, twa

warnings.simplefilter("ignore")
WINDOWS = ((0, 1), (1, 2), (2, 5), (5, 10))


def model_of(ref):
    spec = json.loads(ref.attrs["model_json"])
    return od.DickeModel(omega=spec["omega"], omega_modes=spec["omega_modes"], kappa=spec["kappa"], g0=spec["g0"],
                         patterns=od.parse_patterns(",".join(spec["patterns"])))


def first_loss(t, err, err_mf, slack=0.0):
    """Largest t with max_[0,t] err ≤ max_[0,t] err_mf + slack (slack: TWA's 2σ statistical error)."""
    worse = np.maximum.accumulate(err) > np.maximum.accumulate(err_mf) + slack
    worse[0] = False
    return float(t[np.argmax(worse)]) if worse.any() else float(t[-1])


def main(files):
    print("| M | N_sp | method | " + " | ".join(f"ξ, t∈({a},{b}]" for a, b in WINDOWS) + " | "
          + " | ".join(f"n, t∈({a},{b}]" for a, b in WINDOWS) + " | closer than MF up to t |")
    print("|---|---|---|" + "---|" * (2 * len(WINDOWS) + 1))
    for f in files:
        ref = xr.open_dataset(f, engine="h5netcdf")
        model = model_of(ref)
        t = ref["time"].values
        xi_ex, n_ex = ref["overlap"].values, ref["occupation"].values
        c = cumulant(model, 1, times=t)
        w = twa(model, 1, times=t, samples=4000, seed=1)
        runs = {"mean field": (ref["overlap_meanfield"].values, ref["occupation_meanfield"].values),
                "cumulant": (c["overlap"].values, c["occupation"].values),
                f"TWA (±{float(w['overlap_error'].max()):.3f})": (w["overlap"].values, w["occupation"].values)}
        errs = {k: (np.abs(xi - xi_ex).max(axis=1), np.abs(n - n_ex).max(axis=1)) for k, (xi, n) in runs.items()}
        slack = {k: (0.0, 0.0) for k in runs}
        slack[list(runs)[-1]] = (2 * w["overlap_error"].values.max(axis=1), 2 * w["occupation_error"].values.max(axis=1))
        e_mf = errs["mean field"]
        for name, (ex, en) in errs.items():
            cells = []
            for arr in (ex, en):
                for a, b in WINDOWS:
                    sel = (t > a) & (t <= b + 1e-9)
                    cells.append(f"{arr[sel].max():.3f}" if sel.any() else "—")
            sx, sn = slack[name]
            reach = "—" if name == "mean field" else f"{min(first_loss(t, ex, e_mf[0], sx), first_loss(t, en, e_mf[1], sn)):g}"
            print(f"| {model.n_modes} | {model.n_spins} | {name} | " + " | ".join(cells) + f" | {reach} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
