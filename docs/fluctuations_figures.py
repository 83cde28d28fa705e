"""Figures of docs/fluctuations.md: finite-N retrieval in the paper's Fig. 3 model (M = 4).

Run: python docs/fluctuations_figures.py [--quick] [--retrieval-only] [--no-twa]   (writes docs/figures/fluctuations_*.png and prints tables)
"""

import sys
import time
from pathlib import Path

import numpy as np

from opendicke import paper_model
from opendicke.fluctuations import cumulant, twa
from opendicke.fluctuations.figure3 import finite_n_figure3
from opendicke.plotting_fluctuations import plot_finite_n_figure3, plot_retrieval_spread

HERE = Path(__file__).resolve().parent / "figures"
quick = "--quick" in sys.argv
sizes = (100, 1000, 10_000)
T_LATE = 100.0

# 1. ξ_ν(t) with its quantum spread from every pattern start, g0 = 1.2 (above every threshold)
clock = time.perf_counter()
runs = {}
for n in sizes:
    model = paper_model(g0=1.2, n_spins=n, seed=0)
    runs[n] = cumulant(model, [1, 2, 3, 4], t_final=T_LATE, times=201)
plot_retrieval_spread(runs, HERE / "fluctuations_retrieval.png", title="Fig. 3 model, $g_0 = 1.2$, second-order cumulants")
print(f"retrieval trajectories: {time.perf_counter() - clock:.0f} s")
for n, ds in runs.items():
    last = ds.isel(time=-1)
    row = [f"{float(abs(last.isel(initial=nu, pattern=nu)['overlap'])):.4f} ± {float(last.isel(initial=nu, pattern=nu)['overlap_std']):.4f}"
           f" (MF {float(abs(last.isel(initial=nu, pattern=nu)['overlap_meanfield'])):.4f})" for nu in range(4)]
    print(f"| {n} | " + " | ".join(row) + " |")

if "--retrieval-only" in sys.argv:
    sys.exit(0)

# TWA at N_sp = 100 and 1000 from every pattern, for comparison with the cumulants at the same late time
for n in (100, 1000):
    model = paper_model(g0=1.2, n_spins=n, seed=0)
    w = twa(model, [1, 2, 3, 4], t_final=T_LATE, times=5, samples=100 if quick else 400, seed=1, dt=0.02)
    last = w.isel(time=-1)
    print(f"TWA N_sp={n}: " + ", ".join(
        f"{float(abs(last.isel(initial=nu, pattern=nu)['overlap'])):.4f} ± {float(last.isel(initial=nu, pattern=nu)['overlap_error']):.4f}"
        f" (spread {float(last.isel(initial=nu, pattern=nu)['overlap_std']):.4f})" for nu in range(4)))

# 2. finite-N Fig. 3 at t = T_LATE
clock = time.perf_counter()
g0 = np.linspace(0.5, 2.0, 16 if quick else 31)
ds = finite_n_figure3(paper_model(), sizes, g0, t_final=T_LATE, method="cumulant", seed=0)
plot_finite_n_figure3(ds, HERE / "fluctuations_figure3.png")
print(f"finite-N Fig. 3: {time.perf_counter() - clock:.0f} s")
for nu in range(4):
    for j in range(0, g0.size, max(1, g0.size // 6)):
        print(f"pattern {nu + 1} g0 {g0[j]:.2f}: " + ", ".join(
            f"N={n}: {ds['overlap'].values[i, j, nu]:.3f}±{ds['overlap_std'].values[i, j, nu]:.3f}" for i, n in enumerate(sizes))
              + f" | Eq.12 {ds['overlap_theory'].values[j, nu]:.3f}")

# 3. the same with TWA (trustworthy where the state is far from Gaussian: bimodal retrieval at small N_sp)
if "--no-twa" not in sys.argv:
    clock = time.perf_counter()
    g0 = np.linspace(0.5, 2.0, 16)
    ds = finite_n_figure3(paper_model(), sizes, g0, t_final=T_LATE, method="twa", samples=50 if quick else 100,
                          seed=0, dt=0.02)
    plot_finite_n_figure3(ds, HERE / "fluctuations_figure3_twa.png")
    ds.to_netcdf(HERE.parent.parent / "results_fluctuations_figure3_twa.nc") if "--keep" in sys.argv else None
    print(f"finite-N Fig. 3 (TWA): {time.perf_counter() - clock:.0f} s")
    for nu in range(4):
        for j in range(0, g0.size, 3):
            print(f"TWA pattern {nu + 1} g0 {g0[j]:.2f}: " + ", ".join(
                f"N={n}: {ds['overlap'].values[i, j, nu]:.3f}±{ds['overlap_error'].values[i, j, nu]:.3f} (spread {ds['overlap_std'].values[i, j, nu]:.3f})"
                for i, n in enumerate(sizes)) + f" | Eq.12 {ds['overlap_theory'].values[j, nu]:.3f}")
