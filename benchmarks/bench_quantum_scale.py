"""Scale of the exact finite-N solver: the issue's large-N goals, measured.

* M = 1: N_sp = 1000 (Ω = 0.5, Ω_1 = 1.5, κ = 1, g0 = 1, pattern 1), t ∈ [0, 10], 101 outputs, ``tol = 1e-3``:
  :func:`opendicke.quantum.solve` with its automatic frame (the Gaussian frame here) and automatic truncation
  search; prints the search history (total quanta kept, states, change of ξ and n against the previous
  truncation, seconds), the wall time and the peak memory. ``--extra`` also runs two larger truncations to
  show how the changes keep shrinking.
* M = 2: Ω_μ = 1.5, 2, random patterns (seed 1), pattern 1, same window: the Gaussian frame at the given
  ``--m2-sizes`` with 4 and 6 total quanta (4 frame modes: 70 and 210 states), and the change between them.

The naive way cannot be run here at all: the plain basis at N_sp = 1000 needs n_c ≈ 600 Fock levels
(peak occupation 0.42·N_sp), a density matrix of (1001·600)² ≈ 3.6·10^11 entries.

Run: ``python benchmarks/bench_quantum_scale.py`` (about 4 minutes on 2 idle cores).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from threadpoolctl import threadpool_limits

from opendicke import DickeModel
from opendicke.model import paper_model
from opendicke.quantum import build, solve
from opendicke.quantum.gaussian import frame_dimension, gaussian_frame, propagate_gaussian

TIMES = np.linspace(0.0, 10.0, 101)


def one_mode(n_spins: int) -> DickeModel:
    return DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=n_spins, seed=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-spins", type=int, default=1000)
    parser.add_argument("--extra", action="store_true", help="also run 28 and 32 total quanta at N_sp = 1000")
    parser.add_argument("--m2-sizes", default="10000", help="comma-separated N_sp for the M = 2 runs ('' skips)")
    args = parser.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731

    with threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        ds = solve(one_mode(args.n_spins), 1, t_final=10.0, times=TIMES, tol=1e-3)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log(f"M = 1, N_sp = {args.n_spins}, tol 1e-3: frame {ds.attrs['solver_frame']}, {wall:.1f} s, peak RSS {peak:.0f} MB")
        log("  levels  states  change of xi/n  seconds")
        history = json.loads(ds.attrs["truncation_history"])
        for h in history:
            change = "-" if h["change"] is None else f"{h['change']:.2e}"
            log(f"  {h['levels']:6d}  {h['dimension']:6d}  {change:>14}  {h['seconds']:7.1f}")
        xi, mf = ds["overlap"].values[:, 0], ds["overlap_meanfield"].values[:, 0]
        log(f"  converged: {bool(ds['fock_converged'])}; max_t |xi_N - xi_MF| = {np.abs(xi - mf).max():.4f}")
        if args.extra:
            p = build(one_mode(args.n_spins), 1, fock=2)
            frame = gaussian_frame(p, 10.0)
            prev = ds
            for levels in (28, 32):
                run = propagate_gaussian(p, TIMES, levels, frame=frame, rtol=float(ds.attrs["rtol"]),
                                         atol=float(ds.attrs["atol"]))
                change = max(np.abs(run.real("overlap_1") - prev["overlap"].values[:, 0]).max(),
                             np.abs(run.real("occupation_1") - prev["occupation"].values[:, 0]).max())
                log(f"  {levels:6d}  {frame_dimension(p, levels):6d}  {change:14.2e}  {run.elapsed:7.1f}")
                prev = prev.copy()
                prev["overlap"].values[:, 0] = run.real("overlap_1")
                prev["occupation"].values[:, 0] = run.real("occupation_1")

        for n_spins in [int(v) for v in args.m2_sizes.split(",") if v.strip()]:
            p = build(paper_model(1.0, n_modes=2, n_spins=n_spins, seed=1), 1, fock=2)
            frame = gaussian_frame(p, 10.0)
            runs = [propagate_gaussian(p, TIMES, levels, frame=frame, hp_order=2) for levels in (4, 6)]
            log(f"M = 2, N_sp = {n_spins} (blocks {p.block_sizes.tolist()}): 4 → 6 total quanta "
                f"({frame_dimension(p, 4)} → {frame_dimension(p, 6)} states) change {runs[1].change_from(runs[0]):.2e}, "
                f"{runs[0].elapsed:.1f} s + {runs[1].elapsed:.1f} s")


if __name__ == "__main__":
    main()
