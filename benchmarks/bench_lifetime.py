"""Steady state and low Liouvillian spectrum: opendicke's parity sectors vs QuTiP, side by side in one process.

QuTiP side: ``qutip.steadystate`` (direct sparse LU of the full complex Liouvillian) and
``scipy.sparse.linalg.eigs(qutip.liouvillian(...), sigma=0.01)`` (shift-invert on the full Liouvillian).
opendicke side: the same on the real parity sectors (``shift-invert``), and ARPACK on the sector propagators
(``propagator``). Same model, same cutoff; medians of ``--repeat`` runs; one BLAS thread.

    python benchmarks/bench_lifetime.py [--sizes 4:12,6:12,8:16] [--repeat 3]
"""

import argparse
import os
import statistics
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402
import qutip  # noqa: E402
import scipy.sparse.linalg as sla  # noqa: E402

from opendicke import DickeModel  # noqa: E402
from opendicke.quantum import build  # noqa: E402
from opendicke.quantum.metastability import sector_eigenpairs, stationary_density_matrix  # noqa: E402
from opendicke.quantum.liouville import parity_basis, sector_liouvillian  # noqa: E402


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4:12,6:12,8:16", help="N_sp:fock pairs")
    ap.add_argument("--g0", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")
    print("| N_sp | n_c | d | task | QuTiP (s) | opendicke shift-invert (s) | opendicke propagator (s) | max diff |")
    print("|---|---|---|---|---|---|---|---|")
    for item in args.sizes.split(","):
        n, c = (int(v) for v in item.split(":"))
        model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=args.g0, n_spins=n, seed=0)
        problem = build(model, 1, fock=c)
        q = problem.to_qutip()
        t_q, rho_q = timed(lambda: qutip.steadystate(q.hamiltonian, q.collapse_operators).full(), args.repeat)
        t_s, (rho_s, _) = timed(lambda: stationary_density_matrix(problem, method="shift-invert"), args.repeat)
        t_p, (rho_p, _) = timed(lambda: stationary_density_matrix(problem, method="propagator"), args.repeat)
        diff = max(np.abs(rho_q - rho_s).max(), np.abs(rho_q - rho_p).max())
        print(f"| {n} | {c} | {problem.dim} | steady state | {t_q:.2f} | {t_s:.2f} | {t_p:.2f} | {diff:.1e} |", flush=True)

        def qutip_gap():
            L = qutip.liouvillian(q.hamiltonian, q.collapse_operators).data.as_scipy().tocsc()
            w = sla.eigs(L, k=6, sigma=0.01, which="LM", return_eigenvectors=False)
            return sorted(w, key=lambda z: -z.real)[1].real

        def our_gap(method):
            basis = parity_basis(problem)
            L = sector_liouvillian(basis, "odd")
            return sector_eigenpairs(L, 3, method=method).values[0].real

        t_qg, g_q = timed(qutip_gap, args.repeat)
        t_sg, g_s = timed(lambda: our_gap("shift-invert"), args.repeat)
        t_pg, g_p = timed(lambda: our_gap("propagator"), args.repeat)
        diff = max(abs(g_q - g_s), abs(g_q - g_p))
        print(f"| {n} | {c} | {problem.dim} | gap λ₁ = {g_q:.6e} | {t_qg:.2f} | {t_sg:.2f} | {t_pg:.2f} | {diff:.1e} |", flush=True)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
