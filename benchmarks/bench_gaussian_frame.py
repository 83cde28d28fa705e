"""The Gaussian frame's generator engines side by side, and the issue's N_sp = 1000 goal row.

Work: M = 1, Ω = 0.5, Ω_1 = 1.5, κ = 1, g0 = 1, N_sp = 1000, pattern 1, t ∈ [0, 10], 101 outputs (the model of
docs/exact-dynamics.md's convergence study and of ``opendicke quantum --omega-modes 1.5 --n-spins 1000 --frame
gaussian --tol 1e-3``).

* A/B (``--levels``): :func:`opendicke.quantum.gaussian.propagate_gaussian` at each given truncation with
  ``engine="padded"`` (the previous engine: the generator formed by sparse products on a padded basis at every
  right-hand side, observables likewise) and ``engine="normal"`` (normal-ordered coefficients laid onto fixed
  monomial matrices, observables through the monomials' moments), same integrator settings as the goal run
  (rtol 1e-6, atol 1e-8), in this process, one BLAS thread. Prints CPU and wall time, right-hand sides, and
  the largest difference of the outputs relative to each output's scale.
* Goal (``--goal``): :func:`opendicke.quantum.solve` with ``frame="gaussian"``, ``tol=1e-3``, once with the
  default ``deviation_tol`` (1e-2) and once with ``deviation_tol=None`` (absolute ``tol`` only, as the 69 s row
  of the issue was measured); prints CPU and wall time and the search history.

Run: ``python benchmarks/bench_gaussian_frame.py --levels 12,16,20 --goal`` (about 2 minutes of CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from opendicke import DickeModel
from opendicke.quantum import build, solve
from opendicke.quantum.gaussian import frame_dimension, gaussian_frame, propagate_gaussian

TIMES = np.linspace(0.0, 10.0, 101)
MODEL = dict(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=1000, seed=1)


def relative_difference(a, b) -> float:
    """max over outputs of max_t |a − b| / max(max_t |b|, 1e-300)."""
    return max(float(np.abs(a.values[k] - b.values[k]).max() / max(np.abs(b.values[k]).max(), 1e-300))
               for k in b.values)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="12,16,20", help="comma-separated truncations for the A/B ('' skips)")
    parser.add_argument("--goal", action="store_true", help="also time the goal row (both deviation_tol settings)")
    args = parser.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731
    model = DickeModel(**MODEL)
    with threadpool_limits(limits=1, user_api="blas"):
        problem = build(model, 1, fock=2)
        frame = gaussian_frame(problem, 10.0)
        for levels in [int(v) for v in args.levels.split(",") if v.strip()]:
            runs = {}
            for engine in ("padded", "normal"):
                run, wall, cpu = timed(lambda: propagate_gaussian(problem, TIMES, levels, frame=frame, rtol=1e-6,
                                                                  atol=1e-8, squares=True, engine=engine))
                runs[engine] = run
                log(f"levels {levels:3d} ({frame_dimension(problem, levels):4d} states) {engine:6s}: {cpu:6.2f} s CPU, "
                    f"{wall:6.2f} s wall, {run.nfev} right-hand sides (load {os.getloadavg()[0]:.1f})")
            log(f"  largest relative difference of the outputs: {relative_difference(runs['normal'], runs['padded']):.1e}")
        if args.goal:
            for label, dev in (("default deviation_tol (1e-2)", 1e-2), ("deviation_tol=None (tol only)", None)):
                ds, wall, cpu = timed(lambda: solve(model, 1, frame="gaussian", tol=1e-3, times=TIMES, deviation_tol=dev))
                log(f"goal, {label}: {cpu:.2f} s CPU, {wall:.2f} s wall (load {os.getloadavg()[0]:.1f}); "
                    f"converged {bool(ds['fock_converged'])}, levels {int(ds['fock'].values[0])}, "
                    f"change {float(ds['fock_change']):.2e}, deviation change {float(ds['deviation_change']):.3g}")
                for h in json.loads(ds.attrs["truncation_history"]):
                    log(f"  {h}")


if __name__ == "__main__":
    main()
