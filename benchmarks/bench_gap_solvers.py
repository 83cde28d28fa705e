"""Which eigen-solver scales for the gap: SuperLU shift-invert against Arnoldi on L (polaron basis, odd sector).

For each size, the odd parity sector of the polaron-basis Liouvillian (M = 1, Ω = 0.5, Ω_1 = 1.5, κ = 1) is
solved for its 3 rightmost eigenvalues by every method, each in its own child process (so that its peak RSS is
its own), one after the other (never two at once), one BLAS thread. Printed per method: CPU time, peak RSS, the
gap from the two-sided Rayleigh quotient and its relative difference from the first method's.

    python benchmarks/bench_gap_solvers.py [--sizes 8:12,12:12,16:12] [--methods shift-invert,arnoldi] [--g0 1]
"""

import argparse
import json
import os
import subprocess
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"


def child(n_spins: int, fock: int, method: str, g0: float) -> dict:
    import resource
    import time

    import numpy as np

    from opendicke import DickeModel
    from opendicke.quantum import build
    from opendicke.quantum.liouville import parity_basis, sector_liouvillian
    from opendicke.quantum.metastability import sector_eigenpairs, two_sided_eigenvalue
    from opendicke.quantum.polaron import polaron

    model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=g0, n_spins=n_spins, seed=0)
    L = sector_liouvillian(parity_basis(polaron(build(model, 1, fock=fock))), "odd")
    cpu = time.process_time()
    right = sector_eigenpairs(L, 3, method=method)
    cpu_right = time.process_time() - cpu
    left = sector_eigenpairs(L, 3, method=method, transpose=True, lu=right.lu, v0=np.conj(right.vectors[:, 0]))
    i = int(np.argmin(np.abs(left.values - right.values[0])))
    info = two_sided_eigenvalue(L, right.vectors[:, 0], left.vectors[:, i], right.values[1:])
    return {"N": n_spins, "fock": fock, "size": L.shape[0], "nnz": L.nnz, "method": method,
            "cpu_right": cpu_right, "cpu_both": time.process_time() - cpu,
            "peak_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "gap": -info["value"].real, "one_sided_gap": -info["one_sided"].real, "error": info["error"],
            "residual": info["right_residual"], "matvecs": right.matvecs, "factor_nnz": right.factor_nnz}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="8:12,12:12,16:12", help="N_sp:fock,...")
    parser.add_argument("--methods", default="shift-invert,arnoldi")
    parser.add_argument("--g0", type=float, default=1.0)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| N_sp | n_c | sector | method | CPU right (s) | CPU right + left (s) | peak RSS (MB) | gap (two-sided) "
          "| rel. diff. | one-sided rel. diff. | est. error |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for item in args.sizes.split(","):
        n, c = (int(x) for x in item.split(":"))
        ref = None
        for method in args.methods.split(","):
            out = subprocess.run([sys.executable, __file__, "--child", str(n), str(c), method, str(args.g0)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            ref = ref if ref is not None else r["gap"]
            print(f"| {n} | {c} | {r['size']} | {method} | {r['cpu_right']:.1f} | {r['cpu_both']:.1f} | "
                  f"{r['peak_MB']:.0f} | {r['gap']:.12e} | {abs(r['gap'] - ref) / ref:.1e} | "
                  f"{abs(r['one_sided_gap'] - ref) / ref:.1e} | {r['error'] / r['gap']:.0e} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
