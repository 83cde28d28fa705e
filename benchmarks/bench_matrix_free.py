"""One product with the polaron-basis sector Liouvillian: matrix-free (quantum/matrix_free.py) against the assembled
sparse sector matrix (liouville.sector_liouvillian), same process, one BLAS thread, median CPU time of a few
products, odd sector, and their agreement. The assembled matrix is built only where asked (``:a`` suffix), since
at M = 2 it holds ≈ 3 n_c² nonzeros per row (n_c = 6) and does not fit beyond small cutoffs.

    python benchmarks/bench_matrix_free.py [--cases 1:16:0:12:a,2:4:2:6:a,2:4:2:10,2:6:2:10] [--repeat 5]

A case is M:N_sp:seed:n_c[:a] (Ω = 0.5, Ω_μ = 1.5, 2, …, κ = 1, g0 = 1.2, random patterns of that seed).
"""

import argparse
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402

from opendicke import DickeModel  # noqa: E402
from opendicke.quantum import build  # noqa: E402
from opendicke.quantum.liouville import parity_basis, sector_liouvillian  # noqa: E402
from opendicke.quantum.matrix_free import sector_operator  # noqa: E402
from opendicke.quantum.polaron import polaron  # noqa: E402


def median_cpu(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.process_time()
        f()
        times.append(time.process_time() - t)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="1:16:0:12:a,2:4:2:6:a,2:4:2:10,2:6:2:10")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| M | N_sp | groups | n_c | sector entries | matrix-free CPU/product | assembled CPU/product | assembled nnz/row "
          "| max relative difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        parts = case.split(":")
        m, n, seed, fock = (int(x) for x in parts[:4])
        assemble = len(parts) > 4 and parts[4] == "a"
        model = DickeModel(omega=0.5, omega_modes=[1.5 + 0.5 * i for i in range(m)], kappa=1.0, g0=1.2,
                           n_spins=n, seed=seed)
        basis = parity_basis(polaron(build(model, 1, fock=fock)))
        op = sector_operator(basis, "odd")
        v = np.random.default_rng(0).standard_normal(op.shape[0]) + 0j
        mf = median_cpu(lambda: op @ v, args.repeat)
        row = [m, n, "+".join(str(int(b)) for b in basis.problem.block_sizes), fock, op.shape[0], f"{mf * 1e3:.1f} ms"]
        if assemble:
            L = sector_liouvillian(basis, "odd")
            sparse = median_cpu(lambda: L @ v, args.repeat)
            diff = float(np.abs(op @ v - L @ v).max() / np.abs(L @ v).max())
            row += [f"{sparse * 1e3:.1f} ms", f"{L.nnz / L.shape[0]:.0f}", f"{diff:.1e}"]
        else:
            row += ["not built", "", ""]
        print("| " + " | ".join(str(x) for x in row) + " |", flush=True)


if __name__ == "__main__":
    main()
