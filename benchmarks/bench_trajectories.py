"""Quantum-jump trajectories: opendicke's compiled engine (``method="trajectories"``) vs QuTiP ``mcsolve``.

Same problem (the package's reduced plain-basis operators; QuTiP gets them through ``to_qutip``), same output
times and observables (everything ``propagate`` records: overlaps, occupations, α, top and tail levels, spin
components and their squares), equal numbers of trajectories, in this process, one BLAS and one numba thread.

Equal accuracy of the per-trajectory integration: both sides integrate the deterministic no-jump branch
(H_eff = H − (i/2) Σ L†L, the evolution between jumps), compared with scipy's ``expm_multiply`` of the sparse
H_eff (exact to double precision) at the output times: max error of the no-jump probability p0(t) and of ξ on
the normalised no-jump state (where p0 ≥ 1e-8). QuTiP integrates it with ``sesolve`` at mcsolve's own integrator and tolerances
(Verner 7, atol 1e-8, rtol 1e-6: ``solve``'s defaults for tol = 1e-6); ours takes the loosest series tolerance
from a scan whose error is ≤ QuTiP's. (QuTiP also locates a jump only to ``norm_tol`` = 1e-4 relative in the
norm; ours to ~1e-14.)

Times: medians of ``--repeat`` runs for ours, ``--qutip-repeat`` for QuTiP, wall and CPU (``time.process_time``)
side by side, per trajectory; the load average is printed with them.

Run: ``python benchmarks/bench_trajectories.py`` (the three sizes below); ``--reach N1,N2,...`` runs ours
alone on M = 1 problems whose master equation does not fit the default 2 GiB budget (first cutoff of the
automatic search, ``--reach-ntraj`` trajectories) and reports the CPU time of each.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import qutip  # noqa: E402
from scipy.sparse.linalg import expm_multiply  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from opendicke import DickeModel  # noqa: E402
from opendicke.quantum import build  # noqa: E402
from opendicke.quantum import trajectories as engine  # noqa: E402
from opendicke.quantum.plain_basis import _initial_fock, master_equation_memory  # noqa: E402

TIMES = np.linspace(0.0, 10.0, 101)
QUTIP_OPTIONS = {"atol": 1e-8, "rtol": 1e-6}  # solve()'s defaults for tol = 1e-6 (mcsolve: Verner 7)
TOLS = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)


def problems():
    """name → (model, Fock cutoff, output times)."""
    m1 = lambda n: DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0,  # noqa: E731
                              patterns=np.ones((1, n), dtype=int))
    issue = DickeModel(omega=0.5, omega_modes=[2.5, 3.0], kappa=1.0, g0=1.2,
                        patterns=np.array([[1, 1, 1, -1], [1, -1, 1, 1]]))
    return {
        "M=1, N=32, fock 44": (m1(32), 44, TIMES),
        "M=1, N=64, fock 64": (m1(64), 64, TIMES),
        "M=2, N_sp=4, fock 12 (issue)": (issue, 12, np.linspace(0.0, 5.0, 51)),
    }


def load() -> str:
    return "{:.1f}".format(os.getloadavg()[0])


def clock(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def nojump_reference(problem, times):
    K = -1j * problem.hamiltonian
    for c in problem.collapse_operators:
        K = K - 0.5 * (c.getH() @ c)
    K = K.tocsc()
    psi = problem.initial_ket.copy()
    states = [psi]
    for t0, t1 in zip(times[:-1], times[1:]):
        psi = expm_multiply(K * (t1 - t0), psi)
        states.append(psi)
    return np.array(states)


#: ξ on the normalised no-jump state is compared where the branch still has weight p0 ≥ this (at N = 64, p0 falls
#: below 1e-30 by t = 10 and the normalised state of an underflowing branch is noise on both sides)
P0_FLOOR = 1e-8


def branch_errors(states, ref, xi):
    """max |Δp0| and max |Δξ| on the normalised no-jump state (where p0 ≥ P0_FLOOR)."""
    p = np.sum(np.abs(states) ** 2, axis=1)
    p_ref = np.sum(np.abs(ref) ** 2, axis=1)
    x = np.real(np.einsum("ti,i,ti->t", states.conj(), xi, states)) / p
    x_ref = np.real(np.einsum("ti,i,ti->t", ref.conj(), xi, ref)) / p_ref
    keep = p_ref >= P0_FLOOR
    return float(np.max(np.abs(p - p_ref))), float(np.max(np.abs(x - x_ref)[keep]))


def compare(name, model, fock, times, ntraj, repeat, qutip_repeat, seed=1):
    problem = build(model, 1, fock=fock)
    ops = problem.observables(True, 3)
    xi = np.real(problem.overlap_diagonal(0))
    ref = nojump_reference(problem, times)
    # --- QuTiP's per-trajectory accuracy: its integrator on the no-jump branch
    q = problem.to_qutip()
    heff = q.hamiltonian - 0.5j * sum(c.dag() * c for c in q.collapse_operators)
    res = qutip.sesolve(heff, q.psi0, times, options={"method": "vern7", "store_states": True,
                                                      "normalize_output": False, **QUTIP_OPTIONS})
    q_states = np.array([s.full().ravel() for s in res.states])
    q_err = branch_errors(q_states, ref, xi)
    kets = engine.ket_problem(problem.hamiltonian, problem.collapse_operators, problem.initial_ket, ops)
    p_ref = np.sum(np.abs(ref) ** 2, axis=1)
    x_ref = np.real(np.einsum("ti,i,ti->t", ref.conj(), xi, ref)) / p_ref
    chosen, o_err = TOLS[-1], None
    for tol in TOLS:
        p0, vals = engine.nojump_branch(kets, times, tol=tol)
        keep = p_ref >= P0_FLOOR
        o_err = (float(np.max(np.abs(p0 - p_ref))), float(np.max(np.abs(np.real(vals["overlap_1"]) - x_ref)[keep])))
        if o_err[0] <= q_err[0] and o_err[1] <= q_err[1]:
            chosen = tol
            break
    # --- trajectories
    e_ops = {n: qutip.Qobj(o, dims=q.hamiltonian.dims) for n, o in ops.items()}
    q_runs = []
    for _ in range(qutip_repeat):
        w, c, r = clock(lambda: qutip.mcsolve(
            q.hamiltonian, q.psi0, times, q.collapse_operators, e_ops=e_ops, ntraj=ntraj, seeds=seed,
            options={"progress_bar": False, "map": "serial", **QUTIP_OPTIONS}))
        q_runs.append((w, c))
        q_jumps = sum(len(ct) for ct in r.col_times) / ntraj
    engine.sample(kets, times[:3], 1, seed=0, tol=chosen)  # compile outside the timing
    o_runs = []
    for _ in range(repeat):
        w, c, (vals, first, stats) = clock(lambda: engine.sample(kets, times, ntraj, seed, tol=chosen))
        o_runs.append((w, c))
    q_wall, q_cpu = (statistics.median(x) for x in zip(*q_runs))
    o_wall, o_cpu = (statistics.median(x) for x in zip(*o_runs))
    print(f"| {name} | {problem.dim} | {ntraj} | {1e3 * q_cpu / ntraj:.1f} ms / {1e3 * q_wall / ntraj:.1f} ms "
          f"| {1e3 * o_cpu / ntraj:.1f} ms / {1e3 * o_wall / ntraj:.1f} ms | **{q_cpu / o_cpu:.1f}×** | "
          f"{q_wall / o_wall:.1f}× | {q_err[0]:.1e} / {q_err[1]:.1e} | {o_err[0]:.1e} / {o_err[1]:.1e} (tol {chosen:g}) "
          f"| {q_jumps:.0f} / {stats['jumps'] / ntraj:.0f} | {load()} |", flush=True)


def reach(sizes, ntraj, seed=1):
    from opendicke.meanfield import evolve

    print("| N | Fock | dimension | master equation (GiB) | trajectories | CPU | wall | CPU per trajectory | "
          "jumps per trajectory | applications per trajectory | max σ(ξ) | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, patterns=np.ones((1, n), dtype=int))
        mf = evolve(model, 1, times=TIMES, representation="groups")
        fock = int(_initial_fock(n * np.asarray(mf["occupation"].values).max(axis=0))[0])
        problem = build(model, 1, fock=fock)
        need = master_equation_memory("chebyshev", problem.dim, len(problem.dims)) / 2**30
        kets = engine.ket_problem(problem.hamiltonian, problem.collapse_operators, problem.initial_ket,
                                  problem.observables(True, 3))
        wall, cpu, (vals, first, stats) = clock(lambda: engine.sample(kets, TIMES, ntraj, seed, tol=1e-8))
        sigma = float(np.max(np.std(np.real(vals["overlap_1"]), axis=0)) / math.sqrt(ntraj))
        print(f"| {n} | {fock} | {problem.dim} | {need:.3g} | {ntraj} | {cpu:.1f} s | {wall:.1f} s | "
              f"{cpu / ntraj:.2f} s | {stats['jumps'] / ntraj:.0f} | {stats['applications'] / ntraj:.0f} | "
              f"{sigma:.3f} | {load()} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ntraj", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--qutip-repeat", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated indices of the problems to run (0-based)")
    parser.add_argument("--reach", default="", help="comma-separated N_sp for the reach table (ours alone)")
    parser.add_argument("--reach-ntraj", type=int, default=100)
    args = parser.parse_args()
    with threadpool_limits(1):
        if args.reach:
            reach([int(n) for n in args.reach.split(",")], args.reach_ntraj)
            return
        print(f"QuTiP {qutip.__version__}; per-trajectory times are CPU / wall; errors are no-jump p0 / ξ")
        print("| problem | dimension | ntraj | QuTiP mcsolve | ours | CPU ratio | wall ratio | QuTiP error | "
              "our error | jumps (QuTiP / ours) | load |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        items = list(problems().items())
        if args.only:
            items = [items[int(i)] for i in args.only.split(",")]
        for name, (model, fock, times) in items:
            compare(name, model, fock, times, args.ntraj, args.repeat, args.qutip_repeat)


if __name__ == "__main__":
    main()
