"""Cumulant method, TWA and mean field against the exact Gaussian frame at M = 2, large N_sp.

Model: opendicke.paper_model(1.0, n_modes=2, n_spins=N, seed=1) (Ω = 0.5, Ω_μ = 1.5, 2, κ = 1, g0 = 1, random
patterns drawn with seed 1), start in pattern 1, t ≤ 10, 21 outputs. The exact reference is
``opendicke.quantum.solve(model, 1, frame="gaussian", fock=6)``: a FIXED truncation of 6 total quanta in the
Gaussian frame (its own error, measured as the change 4 → 6 quanta, is stated in docs/fluctuations.md).

Usage:
  python benchmarks/validate_fluctuations_m2.py run N [--samples S] [--out DIR]   # one size, saves DIR/m2_N.nc
  python benchmarks/validate_fluctuations_m2.py twa N --samples S [--out DIR]     # add TWA to a saved size
  python benchmarks/validate_fluctuations_m2.py table [--out DIR]                 # Markdown table + slopes

`run` takes one BLAS thread; it prints the exact run's wall time and the load average. `table` prints, per N_sp,
max_t |ξ − ξ_exact| and max_t |n − n_exact| (over both patterns) for mean field, the cumulant method and TWA
(when it was run), and the fitted log-log slopes between successive sizes and over all sizes.
"""

from __future__ import annotations

import argparse
import glob
import os
import time
import warnings

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

from opendicke.fluctuations import cumulant, twa
from opendicke.model import paper_model
from opendicke.quantum import solve

TIMES = np.linspace(0.0, 10.0, 21)
FOCK = 6


def run(n_spins: int, samples: int, out: str, fock: int = FOCK) -> None:
    model = paper_model(1.0, n_modes=2, n_spins=n_spins, seed=1)
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load0 = os.getloadavg()[0]
        start = time.perf_counter()
        ex = solve(model, 1, frame="gaussian", fock=fock, times=TIMES)
        wall = time.perf_counter() - start
        load1 = os.getloadavg()[0]
        c = cumulant(model, 1, times=TIMES)
        data = {"overlap_exact": ex["overlap"], "occupation_exact": ex["occupation"],
                "overlap_meanfield": c["overlap_meanfield"], "occupation_meanfield": c["occupation_meanfield"],
                "overlap_cumulant": c["overlap"], "occupation_cumulant": c["occupation"]}
        if samples:
            w = twa(model, 1, times=TIMES, samples=samples, seed=1)
            data.update(overlap_twa=w["overlap"], occupation_twa=w["occupation"],
                        overlap_twa_error=w["overlap_error"], occupation_twa_error=w["occupation_error"])
    ds = xr.Dataset({k: (("time", "pattern"), np.asarray(v.values)) for k, v in data.items()},
                    coords={"time": TIMES, "pattern": [1, 2]},
                    attrs={"n_spins": n_spins, "fock": fock, "exact_seconds": wall, "load_start": load0,
                           "load_end": load1, "twa_samples": samples,
                           "solver_frame": str(ex.attrs.get("solver_frame", ""))})
    os.makedirs(out, exist_ok=True)
    name = f"m2_{n_spins}.nc" if fock == FOCK else f"m2_{n_spins}_q{fock}.nc"
    ds.to_netcdf(os.path.join(out, name), engine="h5netcdf")
    print(f"N_sp = {n_spins}: exact (frame {ds.attrs['solver_frame']}, {fock} quanta) {wall:.1f} s, "
          f"load {load0:.1f} → {load1:.1f}", flush=True)


def add_twa(n_spins: int, samples: int, out: str) -> None:
    """Add TWA (``samples`` samples, seed 1) to the saved run of one size, without redoing the exact run."""
    path = os.path.join(out, f"m2_{n_spins}.nc")
    with xr.open_dataset(path, engine="h5netcdf") as saved:
        ds = saved.load()
    model = paper_model(1.0, n_modes=2, n_spins=n_spins, seed=1)
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = twa(model, 1, times=TIMES, samples=samples, seed=1)
    for k in ("overlap", "occupation"):
        ds[f"{k}_twa"] = (("time", "pattern"), w[k].values)
        ds[f"{k}_twa_error"] = (("time", "pattern"), w[f"{k}_error"].values)
    ds.attrs["twa_samples"] = samples
    ds.to_netcdf(path, engine="h5netcdf")
    print(f"N_sp = {n_spins}: TWA with {samples} samples added", flush=True)


def table(out: str) -> None:
    sets = sorted((xr.open_dataset(f, engine="h5netcdf") for f in glob.glob(os.path.join(out, "m2_*.nc"))
                   if "_q" not in os.path.basename(f)),
                  key=lambda d: d.attrs["n_spins"])
    methods = ["meanfield", "cumulant"] + (["twa"] if any("overlap_twa" in d for d in sets) else [])
    errs = {}
    print("| N_sp | " + " | ".join(f"max\\|{q}_{m} − {q}_exact\\|" for q in ("ξ", "n") for m in methods)
          + " | exact run | load |")
    print("|---" * (2 + 2 * len(methods) + 1) + "|")
    for d in sets:
        n = d.attrs["n_spins"]
        cells = []
        for q in ("overlap", "occupation"):
            for m in methods:
                if f"{q}_{m}" not in d:
                    cells.append("—")
                    continue
                e = float(np.abs(d[f"{q}_{m}"] - d[f"{q}_exact"]).max())
                errs[(q, m, n)] = e
                cell = f"{e:.2e}"
                if m == "twa":
                    cell += f" (±{float(d[f'{q}_twa_error'].max()):.1e})"
                cells.append(cell)
        print(f"| {n} | " + " | ".join(cells) + f" | {d.attrs['exact_seconds']:.0f} s | "
              f"{d.attrs['load_start']:.1f}–{d.attrs['load_end']:.1f} |")
    ns = [d.attrs["n_spins"] for d in sets]
    if len(ns) >= 2:
        print("\nlog-log slopes (successive pairs; least squares over all sizes):")
        for q in ("overlap", "occupation"):
            for m in methods:
                if any((q, m, n) not in errs for n in ns):
                    continue
                y = np.log([errs[(q, m, n)] for n in ns])
                x = np.log(ns)
                pairs = ", ".join(f"{(y[i + 1] - y[i]) / (x[i + 1] - x[i]):.2f}" for i in range(len(ns) - 1))
                fit = np.polyfit(x, y, 1)[0]
                print(f"  {q:10s} {m:9s}: {pairs}; fit {fit:.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "twa", "table"))
    parser.add_argument("n_spins", type=int, nargs="?")
    parser.add_argument("--samples", type=int, default=0, help="TWA samples (0: no TWA)")
    parser.add_argument("--fock", type=int, default=FOCK, help="total quanta of the exact run (files of other "
                        "values are saved as m2_N_qF.nc and left out of the table)")
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args(argv)
    if args.action == "run":
        if args.n_spins is None:
            parser.error("run needs N_sp")
        run(args.n_spins, args.samples, args.out, args.fock)
    elif args.action == "twa":
        if args.n_spins is None or not args.samples:
            parser.error("twa needs N_sp and --samples")
        add_twa(args.n_spins, args.samples, args.out)
    else:
        table(args.out)


if __name__ == "__main__":
    main()
