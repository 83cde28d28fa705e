"""Exact finite-N dynamics: opendicke's Chebyshev propagator vs QuTiP ``mesolve``, at equal accuracy.

Work: M = 1, Ω = 0.5, Ω_1 = 1.5, κ = 1, g0 = 1, pattern 1, t ∈ [0, 10], 101 outputs, N_sp = 8, 16, 32.
Both sides run in this process with one BLAS thread and one numba thread. Accuracy: the max error over the
window of ξ and of the occupation per spin against one shared tight reference (the plain basis at a cutoff
8 levels above the largest scanned, Chebyshev series to 1e-12), which is itself checked against QuTiP at
tight tolerances on the same cutoff as the chosen runs (printed). Each side takes the smallest cutoff of the
scan that meets the target (1e-5); QuTiP at its default tolerances (Adams, atol 1e-8, rtol 1e-6) and ours at
the series tolerance ``solve`` uses for tol = 1e-6 (1e-8). Times are medians of ``--repeat`` runs, wall and
CPU (``time.process_time``) side by side; the load average is printed with them.

Run: ``python benchmarks/bench_quantum.py`` (N = 8 and 16, a few minutes on 2 idle cores);
``--sizes 8,16,32`` adds N = 32 (QuTiP takes several minutes there).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
import qutip
from threadpoolctl import threadpool_limits

from opendicke import DickeModel
from opendicke.quantum import build, propagate

OMEGA, OMEGA_1, KAPPA, G0 = 0.5, 1.5, 1.0, 1.0
TIMES = np.linspace(0.0, 10.0, 101)
TARGET = 1e-5
SCANS = {8: [18, 20, 22, 25], 16: [26, 28, 30, 32], 32: [38, 41, 44, 47]}


def naive(n_sp: int, n_c: int, options: dict):
    """QuTiP mesolve on the collective spin ⊗ Fock, built from qutip.jmat/destroy only."""
    j = n_sp / 2
    Jx, Jz = qutip.jmat(j, "x"), qutip.jmat(j, "z")
    a = qutip.tensor(qutip.qeye(int(2 * j + 1)), qutip.destroy(n_c))
    Sx = qutip.tensor(2 * Jx, qutip.qeye(n_c))
    Sz = qutip.tensor(2 * Jz, qutip.qeye(n_c))
    H = OMEGA * Sx + OMEGA_1 * a.dag() * a + G0 / math.sqrt(n_sp) * (a + a.dag()) * Sz
    psi0 = qutip.tensor(qutip.basis(int(2 * j + 1), 0), qutip.basis(n_c, 0))  # all spins up (gauged pattern 1)
    wall, cpu = time.perf_counter(), time.process_time()
    res = qutip.mesolve(H, psi0, TIMES, [math.sqrt(KAPPA) * a], e_ops=[Sz / n_sp, a.dag() * a / n_sp],
                        options={"progress_bar": False, "nsteps": 10**7, **options})
    return time.perf_counter() - wall, time.process_time() - cpu, np.real(res.expect[0]), np.real(res.expect[1])


def model(n_sp: int):
    return DickeModel(omega=OMEGA, omega_modes=[OMEGA_1], kappa=KAPPA, g0=G0, patterns=np.ones((1, n_sp), dtype=int))


def ours(n_sp: int, n_c: int, series_tol: float = 1e-8, threads: int = 1):
    problem = build(model(n_sp), 1, fock=n_c)
    wall, cpu = time.perf_counter(), time.process_time()
    run = propagate(problem, TIMES, method="chebyshev", atol=series_tol, tail=0, threads=threads)
    return (time.perf_counter() - wall, time.process_time() - cpu, np.real(run.values["overlap_1"]),
            np.real(run.values["occupation_1"]), run.stats)


def error(xi, occ, ref):
    return float(max(np.abs(xi - ref[0]).max(), np.abs(occ - ref[1]).max()))


def first_passing(label, fn, cutoffs, ref, log):
    for c in cutoffs:
        out = fn(c)
        err = error(out[2], out[3], ref)
        log(f"  {label:6s} n_c = {c:3d}: {out[0]:7.2f} s wall, {out[1]:7.2f} s CPU, error {err:.2e}")
        if err <= TARGET:
            return c, err, out
    return None, None, None


def median_times(fn, repeat, first=None):
    runs = ([first] if first is not None else []) + [fn() for _ in range(repeat - (first is not None))]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,16", help="comma-separated N_sp (8, 16, 32)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timed setting (median)")
    parser.add_argument("--qutip-repeat", type=int, default=None,
                        help="QuTiP runs per size (median; the passing scan run counts as one; default repeat // 2)")
    parser.add_argument("--threads", type=int, default=1, help="also time ours with this many numba threads")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the check against QuTiP DOP853 at atol 1e-11 (minutes at N = 32)")
    parser.add_argument("--quick", action="store_true",
                        help="skip the cutoff scans: time the cutoffs the full scan chose (N = 8: 22, 16: 30, 32: 44)")
    args = parser.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731
    from opendicke.quantum.kernels import set_threads

    set_threads(1)
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for n_sp in [int(v) for v in args.sizes.split(",")]:
            scan = SCANS[n_sp] if not args.quick else [{8: 22, 16: 30, 32: 44}[n_sp]]
            log(f"N_sp = {n_sp}: t in [0, 10], {TIMES.size} outputs; target {TARGET:g} in xi and occupation "
                f"(load {os.getloadavg()[0]:.1f})")
            ref_c = SCANS[n_sp][-1] + 8
            _, _, xi_r, occ_r, st = ours(n_sp, ref_c, 1e-12)
            ref = (xi_r, occ_r)
            log(f"  reference: Chebyshev at n_c = {ref_c}, series 1e-12 ({st['applications']} applications)")
            c_q, e_q, q_first = first_passing("qutip", lambda c: naive(n_sp, c, {}), scan, ref, log)
            c_o, e_o, _ = first_passing("ours", lambda c: ours(n_sp, c), scan, ref, log)
            if c_q is None or c_o is None:
                log("  a side did not meet the target on the scan")
                continue
            q_repeat = max(1, args.repeat // 2) if args.qutip_repeat is None else max(1, args.qutip_repeat)
            q_wall, q_cpu, q_run = median_times(lambda: naive(n_sp, c_q, {}), q_repeat, q_first)
            o_wall, o_cpu, o_run = median_times(lambda: ours(n_sp, c_o), args.repeat)
            t_wall = t_cpu = math.nan
            if args.threads > 1:
                t_wall, t_cpu, t_run = median_times(lambda: ours(n_sp, c_o, threads=args.threads), args.repeat)
                log(f"  ours with {args.threads} threads: {t_wall:.3f} s wall, {t_cpu:.3f} s CPU, same answer to "
                    f"{error(t_run[2], t_run[3], (o_run[2], o_run[3])):.1e}")
            if not args.no_check:  # the reference checked on the chosen cutoff against QuTiP at tight tolerances
                tight = naive(n_sp, c_o, {"atol": 1e-11, "rtol": 1e-10, "method": "dop853"})
                same = error(tight[2], tight[3], (o_run[2], o_run[3]))
                log(f"  check: ours vs QuTiP (DOP853, atol 1e-11) at n_c = {c_o}: {same:.1e}")
            rows.append((n_sp, c_q, q_wall, q_cpu, e_q, c_o, o_wall, o_cpu, e_o, o_run[4]["applications"],
                         t_wall, os.getloadavg()[0]))
    log("")
    log(f"{'N_sp':>5s} {'QuTiP n_c':>9s} {'wall':>7s} {'CPU':>7s} {'error':>8s} | {'ours n_c':>8s} {'wall':>6s} "
        f"{'CPU':>6s} {'error':>8s} {'apps':>5s} | {'wall x':>6s} {'CPU x':>6s} {'wall x, threads':>15s} {'load':>5s}")
    for n_sp, c_q, qw, qc, eq, c_o, ow, oc, eo, apps, tw, load in rows:
        log(f"{n_sp:5d} {c_q:9d} {qw:7.2f} {qc:7.2f} {eq:8.1e} | {c_o:8d} {ow:6.3f} {oc:6.3f} {eo:8.1e} {apps:5d} | "
            f"{qw / ow:6.1f} {qc / oc:6.1f} {qw / tw:15.1f} {load:5.1f}")


if __name__ == "__main__":
    main()
