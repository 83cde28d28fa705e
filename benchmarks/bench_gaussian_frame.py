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
* Integrators (``--integrators``): at each ``--levels`` truncation, a tight reference (DOP853, rtol 1e-10, atol
  1e-12), then the previous integrator (``integrator="dop853"``) and the new one (``"lsrk14"``, :mod:`opendicke.quantum._lsrk`)
  at the goal run's rtol 1e-6, atol 1e-8, in this process, one BLAS thread: CPU and wall time, right-hand sides,
  and each run's largest error against the reference (on ξ, on n, and the worst output relative to its scale).
* Goal (``--goal``): :func:`opendicke.quantum.solve` with ``frame="gaussian"``, ``tol=1e-3``, once with the
  default ``deviation_tol`` (1e-2) and once with ``deviation_tol=None`` (absolute ``tol`` only, as the 69 s row
  of the issue was measured); prints CPU and wall time and the search history.

Run: ``python benchmarks/bench_gaussian_frame.py --levels 12,16,20 --goal`` (about 2 minutes of CPU).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from opendicke import DickeModel
from opendicke.quantum import build, gaussian, solve
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


_PROPAGATE = gaussian.propagate_gaussian


def _with_integrator(forced, *args, **kwargs):
    """propagate_gaussian with the given integrator (the search's basis passes its default one)."""
    kwargs["integrator"] = forced
    return _PROPAGATE(*args, **kwargs)


def integrator_ab(problem, frame, levels, log):
    """Reference, DOP853 and RK4(14) at ``levels`` (see the module docstring)."""
    run = lambda integ, rtol, atol: propagate_gaussian(problem, TIMES, levels, frame=frame, rtol=rtol,  # noqa: E731
                                                       atol=atol, squares=True, integrator=integ)
    ref, wall, cpu = timed(lambda: run("dop853", 1e-10, 1e-12))
    log(f"levels {levels:3d} ({frame_dimension(problem, levels):4d} states) reference (DOP853, rtol 1e-10): "
        f"{cpu:6.2f} s CPU, {ref.nfev} right-hand sides")
    for integ in ("dop853", "lsrk14"):
        out, wall, cpu = timed(lambda: run(integ, 1e-6, 1e-8))
        err = {k: float(np.abs(out.values[k] - ref.values[k]).max()) for k in ref.values}
        worst = max((err[k] / max(np.abs(ref.values[k]).max(), 1e-300), k) for k in ref.values)
        log(f"  {integ:7s}: {cpu:6.2f} s CPU, {wall:6.2f} s wall, {out.nfev:5d} right-hand sides; error in xi "
            f"{err['overlap_1']:.1e}, n {err['occupation_1']:.1e}, worst relative {worst[0]:.1e} ({worst[1]}) "
            f"(load {os.getloadavg()[0]:.1f})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="12,16,20", help="comma-separated truncations for the A/B ('' skips)")
    parser.add_argument("--goal", action="store_true", help="also time the goal row (both deviation_tol settings)")
    parser.add_argument("--integrators", action="store_true",
                        help="A/B of the integrators (dop853, lsrk14) at --levels instead of the engines")
    parser.add_argument("--repeat", type=int, default=1, help="goal runs per setting (medians are printed)")
    parser.add_argument("--goal-integrators", default="lsrk14",
                        help="comma-separated integrators the goal row is timed with (lsrk14 is the default one; "
                             "dop853 forces the previous integrator into the search, for an A/B in this process)")
    args = parser.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731
    model = DickeModel(**MODEL)
    with threadpool_limits(limits=1, user_api="blas"):
        problem = build(model, 1, fock=2)
        frame = gaussian_frame(problem, 10.0)
        for levels in [int(v) for v in args.levels.split(",") if v.strip()]:
            if args.integrators:
                integrator_ab(problem, frame, levels, log)
                continue
            runs = {}
            for engine in ("padded", "normal"):
                run, wall, cpu = timed(lambda: propagate_gaussian(problem, TIMES, levels, frame=frame, rtol=1e-6,
                                                                  atol=1e-8, squares=True, engine=engine))
                runs[engine] = run
                log(f"levels {levels:3d} ({frame_dimension(problem, levels):4d} states) {engine:6s}: {cpu:6.2f} s CPU, "
                    f"{wall:6.2f} s wall, {run.nfev} right-hand sides (load {os.getloadavg()[0]:.1f})")
            log(f"  largest relative difference of the outputs: {relative_difference(runs['normal'], runs['padded']):.1e}")
        if args.goal:
            for integrator, (label, dev) in itertools.product(
                    args.goal_integrators.split(","),
                    (("default deviation_tol (1e-2)", 1e-2), ("deviation_tol=None (tol only)", None))):
                label = f"{label}, {integrator}"
                gaussian.propagate_gaussian = functools.partial(_with_integrator, integrator)
                cpus, walls = [], []
                for _ in range(args.repeat):
                    ds, wall, cpu = timed(lambda: solve(model, 1, frame="gaussian", tol=1e-3, times=TIMES,
                                                        deviation_tol=dev))
                    cpus.append(cpu)
                    walls.append(wall)
                    log(f"goal, {label}: {cpu:.2f} s CPU, {wall:.2f} s wall (load {os.getloadavg()[0]:.1f}); "
                        f"converged {bool(ds['fock_converged'])}, levels {int(ds['fock'].values[0])}, "
                        f"change {float(ds['fock_change']):.2e}, deviation change {float(ds['deviation_change']):.3g}")
                if args.repeat > 1:
                    log(f"goal, {label}: median of {args.repeat}: {np.median(cpus):.2f} s CPU, {np.median(walls):.2f} s wall")
                for h in json.loads(ds.attrs["truncation_history"]):
                    log(f"  {h}")
            gaussian.propagate_gaussian = _PROPAGATE


if __name__ == "__main__":
    main()
