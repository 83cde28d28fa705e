"""Reach of the plain-basis master equation: the largest problem solved in a CPU budget (issue 11 goal rows).

Runs :func:`opendicke.quantum.solve` with ``frame="plain"`` (Chebyshev engine, automatic Fock-cutoff search:
the run is accepted when two successive cutoffs agree to ``tol``) over t ∈ [0, 10], 101 outputs, at the given
N_sp, with one BLAS and one numba thread, and prints the CPU time (``time.process_time``, what counts on this
shared machine), the wall time, the load average, the cutoffs searched with the seconds each took, and whether
the search converged.

* ``--modes 1`` (default): Ω = 0.5, Ω_1 = 1.5, κ = 1, g0 = 1, pattern 1 (the goal row "M = 1, largest N at 1e-6").
* ``--modes 2``: Ω = 0.5, Ω_μ = 2.5, 3, κ = 1, g0 = 1.2, random patterns (seed 1), pattern 1 (the issue's M = 2
  example; the goal row "M = 2, largest N_sp at 1e-3").

Run: ``python benchmarks/bench_quantum_reach.py --modes 1 --n-spins 24,32 --tol 1e-6``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
from threadpoolctl import threadpool_limits

from opendicke import DickeModel
from opendicke.quantum import solve
from opendicke.quantum.kernels import set_threads

TIMES = np.linspace(0.0, 10.0, 101)


def model(modes: int, n_spins: int) -> DickeModel:
    if modes == 1:
        return DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, patterns=np.ones((1, n_spins), dtype=int))
    return DickeModel(omega=0.5, omega_modes=[2.5, 3.0], kappa=1.0, g0=1.2, n_spins=n_spins, seed=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", type=int, default=1, choices=(1, 2))
    parser.add_argument("--n-spins", default="16", help="comma-separated N_sp")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731
    set_threads(args.threads)
    with threadpool_limits(limits=1, user_api="blas"):
        for n in [int(v) for v in args.n_spins.split(",")]:
            cpu, wall = time.process_time(), time.perf_counter()
            load0 = os.getloadavg()[0]
            ds = solve(model(args.modes, n), 1, times=TIMES, tol=args.tol, frame="plain", threads=args.threads)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            stats = json.loads(ds.attrs["propagator_stats"])
            hist = json.loads(ds.attrs["fock_history"])
            steps = ", ".join(f"{h['fock']}: {h['seconds']:.0f} s" + ("" if h["change"] is None else f" (change {h['change']:.1e})")
                              for h in hist)
            log(f"M = {args.modes}, N_sp = {n}, tol {args.tol:g}: {cpu:.1f} s CPU, {wall:.1f} s wall (load "
                f"{load0:.1f} → {os.getloadavg()[0]:.1f}); converged {bool(ds.fock_converged.values.all())}, final "
                f"fock {ds.fock.values.tolist()}, dimension {ds.attrs['dimension']}, {stats['applications']} "
                f"applications (restarts {stats['restarts']}); peak RSS "
                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
            log(f"  search (wall seconds per cutoff): {steps}")


if __name__ == "__main__":
    main()
