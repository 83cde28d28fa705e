"""Cost of the fluctuation solvers against the exact solver, and the largest (M, N_sp) each handles in a minute.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_fluctuations.py [--scale-only | --twa-scale]
Prints Markdown tables (load average with every timing). One process, one BLAS thread.
"""

import os
import sys
import time
import warnings

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

import opendicke as od  # noqa: E402
from opendicke.fluctuations import cumulant, twa  # noqa: E402
from opendicke.quantum import solve  # noqa: E402

warnings.simplefilter("ignore")


def load() -> str:
    return "%.1f" % os.getloadavg()[0]


def timed(fn, repeats=1):
    best, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best.append(time.perf_counter() - t)
    return float(np.median(best)), out


def side_by_side():
    print("| N_sp | exact (plain, tol 1e-6) | cumulant | TWA (1000 samples, dt 0.01) | max err ξ, t ≤ 2: MF / cumulant / TWA | load |")
    print("|---|---|---|---|---|---|")
    for n in (4, 8):
        model = od.DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=n, seed=0)
        te, ex = timed(lambda: solve(model, 1, t_final=10, times=101, tol=1e-6, frame="plain"))
        tc, c = timed(lambda: cumulant(model, 1, t_final=10, times=101), repeats=3)
        tw, w = timed(lambda: twa(model, 1, t_final=10, times=101, samples=1000, seed=1))
        sel = ex["time"].values <= 2.0
        err = lambda ds: float(np.abs(ds["overlap"].values - ex["overlap"].values)[sel].max())  # noqa: E731
        mf = float(np.abs(ex["overlap_meanfield"].values - ex["overlap"].values)[sel].max())
        print(f"| {n} | {te:.1f} s | {tc:.2f} s ({te / tc:.0f}×) | {tw:.1f} s ({te / tw:.1f}×) | "
              f"{mf:.3f} / {err(c):.3f} / {err(w):.3f} | {load()} |", flush=True)


def scale(limit=60.0, cumulants=True):
    print("\n| method | M | N_sp | groups K | t ≤ 10, 101 outputs | load |")
    print("|---|---|---|---|---|---|")
    for M in (4, 6, 8, 10, 12) if cumulants else ():
        model = od.DickeModel(omega=0.5, omega_modes=0.5 * (np.arange(1, M + 1) + 2.0), kappa=1.0, g0=1.0,
                              n_spins=10_000, seed=0)
        sec, ds = timed(lambda: cumulant(model, 1, t_final=10, times=101))
        print(f"| cumulant | {M} | 10⁴ | {ds.sizes['group']} | {sec:.1f} s | {load()} |", flush=True)
        if sec > limit:
            break
    for M, n in ((4, 10_000), (8, 10_000), (12, 10_000), (16, 10_000), (16, 100_000)):
        model = od.DickeModel(omega=0.5, omega_modes=0.5 * (np.arange(1, M + 1) + 2.0), kappa=1.0, g0=1.0,
                              n_spins=n, seed=0)
        sec, ds = timed(lambda: twa(model, 1, t_final=10, times=101, samples=100, seed=1, dt=0.02, keep_bloch=False))
        print(f"| TWA (100 samples, dt 0.02) | {M} | {n:.0e} | {ds.sizes['group']} | {sec:.1f} s | {load()} |", flush=True)
        if sec > limit:
            break


if __name__ == "__main__":
    if "--scale-only" not in sys.argv and "--twa-scale" not in sys.argv:
        side_by_side()
    scale(cumulants="--twa-scale" not in sys.argv)
