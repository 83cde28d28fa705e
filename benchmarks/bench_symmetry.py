"""M = 2 lifetime with parity sectors only against parity × the extra symmetries (liouville.symmetry_basis), same
process, one BLAS thread: sector sizes, Arnoldi products per sector, CPU and wall time per lifetime, the gaps and
their relative difference, peak RSS. Polaron basis, matrix-free operator (the ``auto`` choice at M = 2), fixed
cutoffs, random start vectors, 4 eigenvalues per sector.

    python benchmarks/bench_symmetry.py [--n-spins 4] [--seed 2] [--fock 6,8] [--g0 1.2]
    python benchmarks/bench_symmetry.py --products [--fock 6,8,10] [--repeat 5]

``--products``: CPU of one matrix-free product per sector (median of ``--repeat``), the full d × d product against
the symmetry-reduced one (rows of one spin configuration per orbit, SectorOperator.rows), for P and P × U2, and
the largest deviation between the two.

Model: Ω = 0.5, Ω_μ = (1.5, 2), κ = 1, random patterns of ``seed`` (N_sp = 4, seed 2: blocks 2 + 2, symmetry U2).
One line per run, flushed, so a long run can be followed.
"""

import argparse
import os
import resource
import time
import warnings

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402

from opendicke import DickeModel  # noqa: E402
from opendicke.quantum.liouville import parity_basis, symmetry_basis  # noqa: E402
from opendicke.quantum.matrix_free import PolaronGenerator, sector_operator  # noqa: E402
from opendicke.quantum.metastability import FockCutoffWarning, _problem, lifetime  # noqa: E402

from bench_matrix_free import median_cpu  # noqa: E402  (same directory: one CPU-median helper for both)




def products(model, focks, repeat):
    rng = np.random.default_rng(0)
    for fock in focks:
        problem = _problem(model, "polaron").with_fock(fock)
        gen = PolaronGenerator(problem)
        for basis in (parity_basis(problem), symmetry_basis(problem)):
            for sector in basis.sectors:
                op = sector_operator(basis, sector, gen)
                v = rng.standard_normal(op.shape[0]) + 1j * rng.standard_normal(op.shape[0])
                reduced = median_cpu(lambda: op @ v, repeat)
                y = op @ v
                rows, op.rows = op.rows, None
                full = median_cpu(lambda: op @ v, repeat)
                dev = float(np.abs(op @ v - y).max() / np.abs(y).max())
                op.rows = rows
                n_rows = "all" if rows is None else len(rows)
                print(f"n_c = {fock}, {sector}: {op.shape[0]} entries, spin rows {n_rows} of {problem.spin_dim}, "
                      f"full {1e3 * full:.1f} ms, reduced {1e3 * reduced:.1f} ms, ratio {full / reduced:.2f}, "
                      f"deviation {dev:.1e}, load {os.getloadavg()[0]:.1f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-spins", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--fock", default="6,8")
    ap.add_argument("--g0", type=float, default=1.2)
    ap.add_argument("--order", default="parity,auto", help="symmetry settings, in this order per cutoff")
    ap.add_argument("--products", action="store_true", help="time single products instead of lifetimes")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    model = DickeModel(omega=0.5, omega_modes=[1.5, 2.0], kappa=1.0, g0=args.g0, n_spins=args.n_spins, seed=args.seed)
    if args.products:
        products(model, [int(c) for c in args.fock.split(",")], args.repeat)
        return
    blocks = [int(n) for n in _problem(model, "polaron").block_sizes]
    print(f"M = 2, N_sp = {args.n_spins}, seed {args.seed}, blocks {blocks}, g0 = {args.g0}, load {os.getloadavg()}",
          flush=True)
    for fock in [int(c) for c in args.fock.split(",")]:
        gaps = {}
        for sym in args.order.split(","):
            cpu, wall = time.process_time(), time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FockCutoffWarning)
                ds = lifetime(model, fock=fock, eigenvalues=4, basis="polaron", symmetries=sym)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            gaps[sym] = float(ds.gap)
            rows = ", ".join(f"{s}: {n} entries {m} products {t:.0f} s" for s, n, m, t in
                             zip(ds.attrs["sectors"], ds.attrs["sector_sizes"], ds.attrs["sector_matvecs"],
                                 ds.attrs["sector_seconds"]))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            print(f"n_c = {fock}, symmetries {ds.attrs['symmetries']}: gap {gaps[sym]:.15e} "
                  f"({ds.gap_symmetry_sector.values}, error {float(ds.gap_error):.0e}), CPU {cpu:.1f} s, wall {wall:.1f} s, "
                  f"products {ds.attrs['matvecs']}, residual {float(ds.residual):.1e}, peak RSS {rss:.2f} GB, "
                  f"load {os.getloadavg()[0]:.1f}; {rows}", flush=True)
        if len(gaps) == 2:
            a, b = gaps.values()
            print(f"n_c = {fock}: relative gap difference {abs(a - b) / abs(a):.1e}", flush=True)


if __name__ == "__main__":
    main()
