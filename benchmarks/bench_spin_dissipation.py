"""Exact dynamics with individual spin dissipation: opendicke's permutation-invariant solver vs QuTiP PIQS.

Work: M = 1, one block (all-+1 pattern, every spin excited at t = 0), Ω = 0.5, Ω_1 = 1.5, κ = 1, g0 = 1,
γ↓ = 0.1, γφ = 0.1 (γ↑ = 0), t ∈ [0, 10], 51 outputs; ξ and the occupation per spin compared.

* PIQS (``qutip.piqs``, built here without package code): the spin Liouvillian of ``piqs.Dicke`` in the Dicke
  basis (all j sectors; PIQS rates: emission = γ↓, dephasing = 2γφ because its dephasing jump is σ_z/2 with
  rate γ_D/2 in its 2AρA† convention), tensored with the mode; H = 2Ω J_x + Ω_1 a†a + (2 g0/√N)(a + a†) J_z;
  ``qutip.mesolve`` on the superoperator at QuTiP's default tolerances (atol 1e-8, rtol 1e-6).
* ours: :func:`opendicke.quantum.permutation.propagate`: lab frame with the compiled kernel and the
  Chebyshev propagator (accurate to ~1e-10), and the displaced frame (compiled kernel, DOP853 at atol 1e-8,
  rtol 1e-6) at its own cutoff; ``--sparse`` also times the previous solver (sparse complex Liouvillian, DOP853).

PIQS and our lab frame at the same Fock cutoff, chosen by our cutoff search to change ξ and n by ≤ 1e-3 (the
search time is printed separately); the displaced frame at the cutoff its own search picks. Accuracy:
max |ours − PIQS| over the window (same truncation), max |displaced − lab| (different truncations, so this
is the truncation error at 1e-3). Wall and CPU time (the machine is shared; ratios use CPU time).
Run: ``python benchmarks/bench_spin_dissipation.py [--sizes 4,8,12,16] [--budget 600]``; ``--case two-blocks``
(M = 1, half the spins −1) and ``--case two-modes`` (M = 2, two blocks) time ours alone.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import qutip
from qutip import piqs
from threadpoolctl import threadpool_limits

from opendicke import DickeModel
from opendicke.quantum import permutation as pi

OMEGA, OMEGA_1, KAPPA, G0, GAMMA_DOWN, GAMMA_PHI, T_FINAL, TIMES = 0.5, 1.5, 1.0, 1.0, 0.1, 0.1, 10.0, 51


def model(n, case="one-block"):
    """one-block: all-+1 pattern; two-blocks: M = 1, half the spins −1 (the gauge split of a random pattern);
    two-modes: M = 2, patterns + + + … and + − + − … (two blocks)."""
    if case == "one-block":
        patterns = [[1] * n]
    elif case == "two-blocks":
        patterns = [[1] * (n - n // 2) + [-1] * (n // 2)]
    elif case == "two-modes":
        patterns = [[1] * n, [1 if j % 2 == 0 else -1 for j in range(n)]]
    else:
        raise ValueError(case)
    modes = [OMEGA_1, 2.0][: len(patterns)]
    return DickeModel(omega=OMEGA, omega_modes=modes, kappa=KAPPA, g0=G0, patterns=patterns,
                      gamma_down=GAMMA_DOWN, gamma_phi=GAMMA_PHI)


def run_piqs(n, fock, t):
    system = piqs.Dicke(N=n, emission=GAMMA_DOWN, dephasing=2 * GAMMA_PHI)
    nds = piqs.num_dicke_states(n)
    jx, jz = piqs.jspin(n, "x"), piqs.jspin(n, "z")
    a = qutip.destroy(fock)
    spin_eye, mode_eye = qutip.qeye(nds), qutip.qeye(fock)
    H = (2 * OMEGA * qutip.tensor(jx, mode_eye) + OMEGA_1 * qutip.tensor(spin_eye, a.dag() * a)
         + 2 * G0 / math.sqrt(n) * qutip.tensor(jz, a + a.dag()))
    spins = qutip.super_tensor(system.liouvillian(), qutip.to_super(mode_eye))
    L = spins + qutip.liouvillian(H, [math.sqrt(KAPPA) * qutip.tensor(spin_eye, a)])
    rho0 = qutip.tensor(piqs.excited(n), qutip.fock_dm(fock, 0))
    e_ops = [2 * qutip.tensor(jz, mode_eye) / n, qutip.tensor(spin_eye, a.dag() * a) / n]
    start = time.perf_counter()
    res = qutip.mesolve(L, rho0, t, e_ops=e_ops)
    seconds = time.perf_counter() - start
    return np.real(res.expect[0]), np.real(res.expect[1]), seconds, L.shape[0]


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="4,8,12,16,20,24,28,32,36,40")
    parser.add_argument("--budget", type=float, default=600.0, help="stop a side once one run exceeds this CPU time (s)")
    parser.add_argument("--piqs-budget", type=float, default=600.0)
    parser.add_argument("--no-piqs", action="store_true")
    parser.add_argument("--sparse", action="store_true", help="also time the sparse DOP853 path (previous solver)")
    parser.add_argument("--frames", default="lab,displaced")
    parser.add_argument("--reach", action="store_true",
                        help="ours alone: the cutoff search only, printing every run of it (fock, CPU s, change)")
    parser.add_argument("--case", default="one-block", choices=["one-block", "two-blocks", "two-modes"],
                        help="PIQS runs only for one-block (it has one ensemble and one mode)")
    parser.add_argument("--profile", default=None, metavar="N:FOCK,...",
                        help="per-application cost of the compiled kernel against the memory floor at these sizes")
    parser.add_argument("--threads", type=int, default=1, help="threads of the compiled kernel (search and profile)")
    parser.add_argument("--convergence", default=None, choices=["gamma_down", "gamma_phi", "gamma_up"],
                        help="D(N) = max_t |xi_N - xi_MF| for one block (all-+1 pattern) with this rate alone (0.1), "
                             "at --sizes, cutoff searched to --tol, t <= 10, 101 outputs; power-law slopes")
    parser.add_argument("--tol", type=float, default=1e-3)
    args = parser.parse_args()
    t = np.linspace(0, T_FINAL, TIMES)
    if args.profile:
        return profile(args)
    if args.convergence:
        return convergence(args)
    frames = args.frames.split(",")
    print(f"load average {os.getloadavg()}")
    if args.reach:
        return reach(args, t, frames)
    print("N_sp | frame | fock | dim | one run: wall s, CPU s | search: wall s, CPU s, change | "
          "PIQS: dim, wall s, CPU s | PIQS/ours (CPU) | max|ours-PIQS| | max|displaced-lab| | sparse DOP853 CPU s")
    piqs_alive = args.case == "one-block" and not args.no_piqs
    alive = {f: True for f in frames}
    for n in (int(v) for v in args.sizes.split(",")):
        lab = None
        for frame in frames:
            if not alive[frame]:
                continue
            with threadpool_limits(limits=1, user_api="blas"):
                ds, sw, sc = _timed(lambda: pi.solve(model(n, args.case), 1, times=t, tol=1e-3, frame=frame, atol=1e-8,
                                                     rtol=1e-6, compare_meanfield=False))
                fock = [int(v) for v in ds.fock.values]
                problem = pi.build(model(n, args.case), 1, fock=fock)
                run, w, c = _timed(lambda: pi.propagate(problem, t, frame=frame, atol=1e-8, rtol=1e-6))
            xi, occ = run.overlaps()[:, 0], run.occupations()[:, 0]
            line = (f"{n:4d} | {frame} | {fock} | {problem.dim:9d} | {w:7.1f}, {c:7.1f} | {sw:7.1f}, {sc:7.1f}, "
                    f"{float(ds.fock_change):.1e} |")
            if frame == "lab":
                lab = (xi, occ)
                if piqs_alive:
                    (pxi, pocc, _, pdim), pw, pc = _timed(lambda: run_piqs(n, fock[0], t))
                    err = max(np.max(np.abs(xi - pxi)), np.max(np.abs(occ - pocc)))
                    line += f" {pdim:9d}, {pw:7.1f}, {pc:7.1f} | {pc / c:6.1f} | {err:.1e} | |"
                    piqs_alive = pc < args.piqs_budget
                else:
                    line += " (not run) | | | |"
            else:
                err = "" if lab is None else f"{max(np.max(np.abs(xi - lab[0])), np.max(np.abs(occ - lab[1]))):.1e}"
                line += f" | | | {err} |"
            if args.sparse and frame == "lab":
                with threadpool_limits(limits=1, user_api="blas"):
                    _, _, sc2 = _timed(lambda: pi.propagate(problem, t, method="dop853", atol=1e-8, rtol=1e-6))
                line += f" {sc2:.1f}"
            print(line, flush=True)
            if c > args.budget:
                alive[frame] = False
        if not any(alive.values()):
            break
    print(f"load average {os.getloadavg()}")


def reach(args, t, frames):
    """The cutoff search alone (tol 1e-3); its last run is the answer, the one before it the change measured."""
    import json

    print("N_sp | frame | search: wall s, CPU s | runs: fock, CPU s, change")
    for n in (int(v) for v in args.sizes.split(",")):
        for frame in frames:
            with threadpool_limits(limits=1, user_api="blas"):
                ds, sw, sc = _timed(lambda: pi.solve(model(n, args.case), 1, times=t, tol=1e-3, frame=frame, atol=1e-8,
                                                     rtol=1e-6, compare_meanfield=False, threads=args.threads))
            runs = json.loads(ds.attrs["fock_history"])
            parts = []
            for r in runs:
                change = "" if r["change"] is None else f" change {r['change']:.1e}"
                parts.append(f"{r['fock']} {r['cpu_seconds']:.1f} s{change}")
            text = "; ".join(parts)
            print(f"{n:4d} | {frame} | {sw:.1f}, {sc:.1f} | {text}", flush=True)
    print(f"load average {os.getloadavg()}")


def convergence(args):
    """The convergence study with one spin rate, for one block (the CLI's `convergence` draws random patterns,
    two blocks at M = 1, out of reach beyond N_sp ≈ 16)."""
    import json
    import warnings

    from opendicke.quantum.convergence import fit_power_law

    print("N_sp | D | t of D | fock (runs) | change | CPU s (wall s)")
    sizes, devs = [], []
    for n in (int(v) for v in args.sizes.split(",")):
        m = DickeModel(omega=OMEGA, omega_modes=[OMEGA_1], kappa=KAPPA, g0=G0, patterns=[[1] * n],
                       **{args.convergence: 0.1})
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds, w, c = _timed(lambda: pi.solve(m, 1, t_final=T_FINAL, times=101, tol=args.tol, threads=args.threads))
        gap = np.max(np.abs(ds.overlap.values - ds.overlap_meanfield.values), axis=1)
        runs = [h["fock"] for h in json.loads(ds.attrs["fock_history"])]
        sizes.append(n)
        devs.append(float(gap.max()))
        print(f"{n:4d} | {gap.max():.5f} | {ds.time.values[np.argmax(gap)]:.1f} | {runs} | {float(ds.fock_change):.1e} | "
              f"{c:.1f} ({w:.1f})", flush=True)
    print(f"slope over all sizes: {fit_power_law(sizes, devs)[0]:.3f}")
    for k in range(len(sizes) - 1):
        local = math.log(devs[k + 1] / devs[k]) / math.log(sizes[k + 1] / sizes[k])
        print(f"local slope {sizes[k]}-{sizes[k + 1]}: {local:.3f}")
    print(f"load average {os.getloadavg()}")


def profile(args):
    """Where the time of one run goes: applications (from a run's Chebyshev statistics, or t·(a + b) of the
    first ellipse when ``--profile N:FOCK:estimate``) × CPU time per application (median of 5), against the memory
    floor: every application must read the state and the previous iterate and write the next one (3 × 8 bytes
    per entry) at the bandwidth measured here by the same streaming loop (out = 0.3 x + 0.7 q)."""
    import numba as nb

    from opendicke.quantum.permutation_fast import RealGenerator

    @nb.njit(cache=True, fastmath=True)
    def stream(x, q, out):
        acc = 0.0
        for f in range(x.size):
            v = 0.3 * x[f] + 0.7 * q[f]
            out[f] = v
            acc += v * v
        return acc

    print("N_sp | case | n_c | dimension | CPU ms per application (median of 5) | streaming floor ms (GB/s) | "
          "ratio | applications | run estimate CPU s")
    for item in args.profile.split(","):
        parts = item.split(":")
        n, fock = int(parts[0]), int(parts[1])
        problem = pi.build(model(n, args.case), 1, fock=fock)
        with threadpool_limits(limits=1, user_api="blas"):
            gen = RealGenerator.build(problem, args.threads)
            X = np.random.default_rng(0).normal(size=(gen.S, gen.C, gen.C))
            Q = np.random.default_rng(1).normal(size=X.shape)
            out = np.empty_like(X)
            coeffs = gen.coefficients()
            gen.apply(X, out, Q, coeffs, 0.7, 0.3, 1.0)
            per = []
            for _ in range(5):
                c = time.process_time()
                gen.apply(X, out, Q, coeffs, 0.7, 0.3, 1.0)
                per.append(time.process_time() - c)
            stream(X.ravel(), Q.ravel(), out.ravel())
            floor = []
            for _ in range(5):
                c = time.process_time()
                stream(X.ravel(), Q.ravel(), out.ravel())
                floor.append(time.process_time() - c)
            bound = gen.spectral_bound()
            apps = T_FINAL * (bound.a + bound.b)
        ms, fl = 1e3 * float(np.median(per)), 1e3 * float(np.median(floor))
        print(f"{n:4d} | {args.case} | {fock} | {gen.dim} | {ms:.1f} | {fl:.1f} ({3 * 8 * gen.dim / fl / 1e6:.0f}) | "
              f"{ms / fl:.1f} | ≈{apps:.0f} (t(a + b)) | ≈{apps * ms / 1e3:.0f}", flush=True)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
