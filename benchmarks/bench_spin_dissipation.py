"""Exact dynamics with individual spin dissipation: opendicke's permutation-invariant solver vs QuTiP PIQS.

Work: M = 1, one block (all-+1 pattern, every spin excited at t = 0), Ω = 0.5, Ω_1 = 1.5, κ = 1, g0 = 1,
γ↓ = 0.1, γφ = 0.1 (γ↑ = 0), t ∈ [0, 10], 51 outputs; ξ and the occupation per spin compared.

* PIQS (``qutip.piqs``, built here without package code): the spin Liouvillian of ``piqs.Dicke`` in the Dicke
  basis (all j sectors; PIQS rates: emission = γ↓, dephasing = 2γφ because its dephasing jump is σ_z/2 with
  rate γ_D/2 in its 2AρA† convention), tensored with the mode; H = 2Ω J_x + Ω_1 a†a + (2 g0/√N)(a + a†) J_z;
  ``qutip.mesolve`` on the superoperator at QuTiP's default tolerances (atol 1e-8, rtol 1e-6).
* ours: :func:`opendicke.quantum.permutation.propagate`, DOP853 at atol 1e-8, rtol 1e-6.

Both at the same Fock cutoff, chosen by our cutoff search to change ξ and n by ≤ 1e-3 (the search time is
printed separately). Accuracy: max |ours − PIQS| over the window (both carry the same truncation).
Run: ``python benchmarks/bench_spin_dissipation.py [--sizes 4,8,12,16] [--budget 600]``; ``--case two-blocks``
(M = 1, half the spins −1) and ``--case two-modes`` (M = 2, four blocks) time ours alone.
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
    two-modes: M = 2, patterns + + + … and + − + − … (four blocks)."""
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="4,8,12,16,20,24,28,32,36,40")
    parser.add_argument("--budget", type=float, default=600.0, help="stop a side once one run exceeds this (s)")
    parser.add_argument("--piqs-budget", type=float, default=600.0)
    parser.add_argument("--case", default="one-block", choices=["one-block", "two-blocks", "two-modes"],
                        help="PIQS runs only for one-block (it has one ensemble and one mode)")
    args = parser.parse_args()
    t = np.linspace(0, T_FINAL, TIMES)
    print(f"load average {os.getloadavg()}")
    print("N_sp | fock | ours: dim, s | PIQS: dim, s | ratio | max|ours-PIQS| (xi, n) | search s, change")
    piqs_alive = args.case == "one-block"
    for n in (int(v) for v in args.sizes.split(",")):
        with threadpool_limits(limits=1, user_api="blas"):
            start = time.perf_counter()
            ds = pi.solve(model(n, args.case), 1, times=t, tol=1e-3, method="dop853", atol=1e-8, rtol=1e-6, compare_meanfield=False)
            search = time.perf_counter() - start
            fock = [int(v) for v in ds.fock.values]
            problem = pi.build(model(n, args.case), 1, fock=fock)
            start = time.perf_counter()
            run = pi.propagate(problem, t, method="dop853", atol=1e-8, rtol=1e-6)
            ours = time.perf_counter() - start
            xi, occ = run.overlaps()[:, 0], run.occupations()[:, 0]
            line = f"{n:4d} | {fock} | {problem.dim:9d}, {ours:7.1f} |"
            if piqs_alive:
                pxi, pocc, psec, pdim = run_piqs(n, fock[0], t)
                err = max(np.max(np.abs(xi - pxi)), np.max(np.abs(occ - pocc)))
                line += f" {pdim:9d}, {psec:7.1f} | {psec / ours:6.1f} | {err:.1e}"
                piqs_alive = psec < args.piqs_budget
            else:
                line += " (not run) | |"
            line += f" | {search:.1f}, {float(ds.fock_change):.1e}"
            print(line, flush=True)
        if ours > args.budget:
            break
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
