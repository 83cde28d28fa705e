"""ARPACK's Arnoldi against the preconditioned Davidson (quantum/matrix_free.py) on the matrix-free M = 2 polaron
parity sectors, same process, one BLAS thread: L products, CPU time (median of ``--repeat`` runs) and the agreement
of the slow eigenvalues, for Davidson's Ritz selections side by side.

    python benchmarks/bench_davidson.py [--spins 4] [--seed 2] [--g0 1.2] [--fock 6] [--k 4] [--sectors even,odd]
                                        [--variants nearest,LR,LR+J] [--repeat 3] [--skip-arnoldi]

Ω = 0.5, Ω_μ = (1.5, 2), κ = 1. All start from the same vector (all ones on the sector). Arnoldi (``which="LR"``,
run once) with 200 Krylov vectors, the library's choice for these sizes; Davidson with the library's defaults
(target σ = 0.05 for the preconditioner, spin flips kept exactly on the levels of ≤ 2 total quanta, search space
60) and the selection of each variant:

* ``nearest``: the k Ritz values nearest σ (the selection before this session);
* ``LR``: the k Ritz values with the largest real parts, as Arnoldi;
* ``+J``: the search space is kept closed under J (ρ ↦ ρ†, which commutes with L): every correction t is added
  with J t at no product, so a conjugate pair costs the corrections of one member.

"slow" = Arnoldi's eigenvalues with Re λ > −0.2 (``--skip-arnoldi``: the first variant's); the difference is the
largest distance of one of them to the nearest value Davidson lists (large: missed). Residuals ‖Lu − λu‖ of
Davidson's vectors are taken with the true L.
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
from opendicke.quantum.matrix_free import PolaronGenerator, sector_davidson, sector_operator  # noqa: E402
from opendicke.quantum.metastability import ARNOLDI_NCV_MATRIX_FREE, sector_eigenpairs  # noqa: E402
from opendicke.quantum.polaron import polaron  # noqa: E402


def fmt(z):
    return f"{z.real:.10f}" + (f" {'+' if z.imag >= 0 else '−'} {abs(z.imag):.6f}i" if abs(z.imag) > 1e-8 else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spins", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--g0", type=float, default=1.2)
    ap.add_argument("--fock", default="6")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--sectors", default="even,odd")
    ap.add_argument("--variants", default="nearest,LR,LR+J")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-arnoldi", action="store_true")
    args = ap.parse_args()
    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=args.g0, n_spins=args.spins, seed=args.seed)
    print(f"N_sp = {args.spins}, seed {args.seed}, g0 = {args.g0}, k = {args.k}; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| n_c | sector | entries | method | L products | CPU (median) | slow eigenvalues | max residual "
          "| slow difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fock in (int(x) for x in args.fock.split(",")):
        problem = polaron(build(model, 1, fock=fock))
        basis = parity_basis(problem)
        generator = PolaronGenerator(problem)
        for sector in args.sectors.split(","):
            op = sector_operator(basis, sector, generator)
            op.krylov_vectors = ARNOLDI_NCV_MATRIX_FREE
            v0 = np.ones(op.shape[0], dtype=complex)
            slow = None
            if not args.skip_arnoldi:
                cpu = time.process_time()
                ref = sector_eigenpairs(op, args.k, sector=sector, method="arnoldi", v0=v0)
                cpu = time.process_time() - cpu
                slow = ref.values[ref.values.real > -0.2]
                print(f"| {fock} | {sector} | {op.shape[0]} | Arnoldi | {op.products} | {cpu:.1f} s | "
                      f"{', '.join(fmt(z) for z in slow)} | {np.max(ref.residuals):.1e} | |", flush=True)
            for variant in args.variants.split(","):
                select = variant.split("+")[0]
                times = []
                for _ in range(args.repeat):
                    op = sector_operator(basis, sector, generator)
                    cpu = time.process_time()
                    values, vecs, _, products, _ = sector_davidson(op, args.k, v0=[v0], select=select,
                                                                   conjugate_pairs=variant.endswith("+J"))
                    times.append(time.process_time() - cpu)
                residuals = [np.linalg.norm(op @ vecs[:, j] - values[j] * vecs[:, j]) / np.linalg.norm(vecs[:, j])
                             for j in range(len(values))]
                if slow is None:
                    slow = values[values.real > -0.2]
                diff = max(np.min(np.abs(values - z)) for z in slow)
                listed = values[np.argsort(-values.real, kind="stable")]
                print(f"| {fock} | {sector} | {op.shape[0]} | Davidson {variant} | {products} | "
                      f"{np.median(times):.1f} s | {', '.join(fmt(z) for z in listed if z.real > -0.2)} | "
                      f"{max(residuals):.1e} | {diff:.1e} |", flush=True)
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
