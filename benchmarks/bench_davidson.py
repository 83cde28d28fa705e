"""ARPACK's Arnoldi on L against the preconditioned Davidson (quantum/matrix_free.py) on the matrix-free M = 2 polaron
sectors, same process, one BLAS thread: L products, CPU time and the agreement of the eigenvalues.

    python benchmarks/bench_davidson.py [--spins 4] [--seed 2] [--fock 6,8] [--k 4] [--sectors even,odd]

Ω = 0.5, Ω_μ = (1.5, 2), κ = 1, g0 = 1.2. Both start from the same vector (all ones on the sector); Arnoldi with
200 Krylov vectors (the library's choice for these sizes), Davidson with its defaults (target σ = 0.05, spin flips
kept exactly on the levels of ≤ 2 total quanta, search space 60). Arnoldi returns the k eigenvalues with the largest
real parts, Davidson the k nearest σ: the slowest ones (here the two per sector with |λ| < 0.2) are common to
both and compared; every pair's residual is taken with the true L.
"""

import argparse
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402

from opendicke import DickeModel  # noqa: E402
from opendicke.quantum import build  # noqa: E402
from opendicke.quantum.liouville import parity_basis  # noqa: E402
from opendicke.quantum.matrix_free import PolaronGenerator, sector_operator  # noqa: E402
from opendicke.quantum.metastability import ARNOLDI_NCV_MATRIX_FREE, sector_eigenpairs  # noqa: E402
from opendicke.quantum.polaron import polaron  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spins", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--fock", default="6,8")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--sectors", default="even,odd")
    args = ap.parse_args()
    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=1.2, n_spins=args.spins, seed=args.seed)
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| n_c | sector | entries | method | L products | CPU | slow eigenvalues | max residual | slow difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fock in (int(x) for x in args.fock.split(",")):
        problem = polaron(build(model, 1, fock=fock))
        basis = parity_basis(problem)
        generator = PolaronGenerator(problem)
        for sector in args.sectors.split(","):
            results = {}
            for method in ("arnoldi", "davidson"):
                op = sector_operator(basis, sector, generator)
                op.krylov_vectors = ARNOLDI_NCV_MATRIX_FREE
                v0 = np.ones(op.shape[0], dtype=complex)
                cpu = time.process_time()
                pairs = sector_eigenpairs(op, args.k, sector=sector, method=method, v0=v0)
                cpu = time.process_time() - cpu
                slow = np.sort_complex(pairs.values[np.abs(pairs.values) < 0.2])
                results[method] = slow
                diff = ""
                if method == "davidson" and len(slow) == len(results["arnoldi"]):
                    diff = f"{np.max(np.abs(slow - results['arnoldi']) / np.maximum(np.abs(slow), 1e-2)):.1e}"
                print(f"| {fock} | {sector} | {op.shape[0]} | {method} | {op.products} | {cpu:.1f} s | "
                      f"{', '.join(f'{z.real:.10f}' for z in slow)} | {np.max(pairs.residuals):.1e} | {diff} |",
                      flush=True)


if __name__ == "__main__":
    main()
