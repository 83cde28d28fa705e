"""Paper Fig. 3 data: steady_state vs the naive "integrate to t = 2000 and read the last value" loop (issue 3).

Work: the Fig. 3 model (M = 4, Ω = 0.5, Ω_μ = Ω(μ+2), κ = 1), 161 values of g0 in [0.5, 2] × 4 patterns,
each started from its own pattern state. Both sides run in this one process.

* ours:  ``opendicke.meanfield.steady_state`` (windowed batched integration + Newton from the trajectory,
  classified), median of ``--repeats`` runs.
* naive: a Python loop of ``solve_ivp(method="DOP853", rtol=1e-8, atol=1e-10)`` per point to t = 2000 with
  a plain numpy right-hand side, reading |ξ_ν| and n_ν at the last time (one run: it takes minutes).
* accuracy: the worst | |ξ_ν| − Eq. (12) | and | n_ν − Eq. (12) | over the points with |g0 − g_c| ≥ 0.01.

Usage: python benchmarks/bench_figure3.py [--repeats 3] [--naive-points 644]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy.integrate import solve_ivp

import opendicke as od
from opendicke.meanfield import pack
from opendicke.meanfield.steady import steady_state

T_NAIVE = 2000.0


def naive_point(model, grouping, g0, nu):
    f, w = grouping.f.astype(float), grouping.weights
    K, M = f.shape[1], f.shape[0]
    omega, om, kap = model.omega, model.omega_modes, model.kappa

    def rhs(t, y):
        sx, sy, sz = y[:K], y[K:2 * K], y[2 * K:3 * K]
        alpha = y[3 * K:3 * K + M] + 1j * y[3 * K + M:]
        h = 4 * g0 * (f.T @ alpha.real)
        da = -(1j * om + kap / 2) * alpha - 1j * g0 * (f @ (w * sz))
        return np.concatenate([-h * sy, -2 * omega * sz + h * sx, 2 * omega * sy, da.real, da.imag])

    v = np.zeros((K, 3))
    v[:, 2] = grouping.f[nu - 1]
    sol = solve_ivp(rhs, (0, T_NAIVE), pack(v, np.zeros(M)), method="DOP853", rtol=1e-8, atol=1e-10, t_eval=[T_NAIVE])
    y = sol.y[:, -1]
    xi = (y[2 * K:3 * K] * w) @ f[nu - 1]
    return abs(xi), y[3 * K + nu - 1] ** 2 + y[3 * K + M + nu - 1] ** 2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive-points", type=int, default=644, help="run the naive loop on this many of the 644 points")
    args = ap.parse_args()

    model = od.paper_model()
    g0 = np.linspace(0.5, 2.0, 161)
    M = model.n_modes
    xi_th = od.retrieval_overlap(g0[:, None], model.omega, model.omega_modes, model.kappa)
    n_th = od.retrieval_occupation(g0[:, None], model.omega, model.omega_modes, model.kappa)
    away = np.abs(g0[:, None] - od.critical_coupling(model.omega, model.omega_modes, model.kappa)) >= 0.01

    steady_state(model, 1, vary={"g0": [1.0]})  # warm-up (imports)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ds = steady_state(model, list(range(1, M + 1)), vary={"g0": g0})
        times.append(time.perf_counter() - t0)
    ours_xi = np.abs(np.stack([ds["overlap"].values[:, i, i] for i in range(M)], axis=1))
    ours_n = np.stack([ds["occupation"].values[:, i, i] for i in range(M)], axis=1)
    err_ours = (np.nanmax(np.where(away, np.abs(ours_xi - xi_th), 0)), np.nanmax(np.where(away, np.abs(ours_n - n_th), 0)))
    classes = dict(zip(*np.unique(ds["classification"].values, return_counts=True)))
    print(f"ours : median {statistics.median(times):.2f} s ({', '.join(f'{t:.2f}' for t in times)}); "
          f"classification {classes}; worst error |ξ| {err_ours[0]:.1e}, n {err_ours[1]:.1e}", flush=True)

    grouping = od.reduce(model)
    all_points = [(i, nu) for i in range(g0.size) for nu in range(1, M + 1)]
    pick = np.sort(np.random.default_rng(0).choice(len(all_points), size=min(args.naive_points, len(all_points)), replace=False))
    naive_xi, naive_n = np.full(xi_th.shape, np.nan), np.full(xi_th.shape, np.nan)
    t0 = time.perf_counter()
    for k in pick:
        i, nu = all_points[k]
        naive_xi[i, nu - 1], naive_n[i, nu - 1] = naive_point(model, grouping, g0[i], nu)
    t_naive = time.perf_counter() - t0
    scale = len(all_points) / pick.size
    mask = away & np.isfinite(naive_xi)
    err_naive = (np.max(np.abs(naive_xi - xi_th)[mask]), np.max(np.abs(naive_n - n_th)[mask]))
    print(f"naive: {pick.size} points in {t_naive:.1f} s" + (f" (×{scale:.2f} → {t_naive * scale:.0f} s for all 644)" if scale > 1 else "")
          + f"; worst error |ξ| {err_naive[0]:.1e}, n {err_naive[1]:.1e}")
    print()
    print("| work | naive loop (t = 2000) | opendicke steady_state | speed-up | worst error in \\|ξ_ν\\|, naive / ours | worst error in n_ν, naive / ours |")
    print("|---|---|---|---|---|---|")
    print(f"| Fig. 3, 161 g0 × 4 patterns | {t_naive * scale:.0f} s | {statistics.median(times):.2f} s | "
          f"**{t_naive * scale / statistics.median(times):.0f}×** | {err_naive[0]:.1e} / {err_ours[0]:.1e} "
          f"({err_naive[0] / err_ours[0]:.0e}×) | {err_naive[1]:.1e} / {err_ours[1]:.1e} |")


if __name__ == "__main__":
    main()
