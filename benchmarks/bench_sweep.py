"""A sweep in-process vs on a 2-worker local Dask cluster (issue 6), in one process, same work, same chunks.

Work: stationary states (``steady_state``) of the paper's Fig. 3 model at finite N_sp = 200 with random
patterns, 4 patterns (starts) × 161 values of g0 in [0.4, 2] × 20 pattern seeds = 12 880 solves. Each seed is
a different model, so chunks are per seed: one vectorised call over all 161 g0 values and 4 starts (644 solves)
per task, 20 tasks.

* in-process: ``run_sweep(..., scheduler="in-process")``: the chunks one after the other in this process.
* cluster:    ``run_sweep(..., scheduler="local", workers=2)``: a LocalCluster of 2 single-threaded worker
  processes on 127.0.0.1, started and stopped inside the timed call (start-up included).

Printed: both wall times and the speed-up; the cluster start-up; CPU times (in-process; each worker and the
driver, which hosts the scheduler, receives the chunks and writes the files), whose difference is the
overhead independent of how busy the machine is; an estimate of the speed-up on an idle machine (in-process
CPU / (start-up + busiest worker's CPU)); and whether both results agree point for point (they should be
bit-identical: same chunk layout, same arithmetic). The machine's load average is printed too: on a shared
machine the wall times move with it, the CPU times much less.

Measured while building it: with Dask's default worker environment (MALLOC_TRIM_THRESHOLD_=65536) the same
chunk cost 25 % more CPU in a worker than in-process; ``opendicke.sweep`` starts its local workers without it
(and without the statistical profiler), which brings a worker within a few per cent of in-process.

Usage: python benchmarks/bench_sweep.py [--points 161] [--seeds 20] [--n-spins 200] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from opendicke.model import paper_model
from opendicke.states import PatternState
from opendicke.sweep import LOCAL, _client, plan_sweep, run_sweep


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=161, help="values of g0 in [0.4, 2]")
    parser.add_argument("--seeds", type=int, default=20, help="pattern seeds")
    parser.add_argument("--n-spins", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="directory for the two result files (default: temporary)")
    args = parser.parse_args()

    model = paper_model(n_spins=args.n_spins, seed=0)
    starts = [PatternState(nu) for nu in range(1, model.n_modes + 1)]
    vary = {"g0": np.linspace(0.4, 2.0, args.points), "seed": np.arange(args.seeds)}
    plan = plan_sweep(model, starts, vary=vary)
    print(f"work: {len(starts)} patterns × {args.points} g0 × {args.seeds} seeds = {plan.n_solves} steady states, "
          f"N_sp = {args.n_spins}; {len(plan.chunks)} chunks of {plan.chunks[0].size() * len(starts)} solves")
    print(f"machine: {os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out or Path(tmp)
        t0, c0 = time.perf_counter(), time.process_time()
        inproc = run_sweep(model, starts, vary=vary, scheduler="in-process", out=out_dir / "in_process.nc")
        t_in, cpu_in = time.perf_counter() - t0, time.process_time() - c0
        print(f"in-process: {t_in:8.1f} s wall, {cpu_in:.1f} s CPU   (load average now {os.getloadavg()[0]:.2f})", flush=True)

        t0 = time.perf_counter()
        with _client(LOCAL, args.workers) as (client, _):
            t_up = time.perf_counter() - t0
            before = client.run(time.process_time)
            t1, c1 = time.perf_counter(), time.process_time()
            cluster = run_sweep(model, starts, vary=vary, scheduler=client, out=out_dir / "cluster.nc")
            t_sweep, cpu_driver = time.perf_counter() - t1, time.process_time() - c1
            after = client.run(time.process_time)
        t_cl = time.perf_counter() - t0
        cpu_workers = {w: after[w] - before[w] for w in after}
        print(f"cluster:    {t_cl:8.1f} s wall (start-up {t_up:.1f} s, sweep {t_sweep:.1f} s); CPU: workers "
              + ", ".join(f"{c:.1f}" for c in cpu_workers.values()) + f" s, driver (scheduler, client, files) "
              f"{cpu_driver:.1f} s   (load average now {os.getloadavg()[0]:.2f})", flush=True)

    same, differing = True, []
    for name in inproc.data_vars:
        a, b = inproc[name].values, cluster[name].values
        equal = bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        same &= equal
        if not equal:
            bad = ~((a == b) | ((a != a) & (b != b))) if a.dtype.kind in "fc" else a != b
            worst = f", max |Δ| {np.nanmax(np.abs(a - b)):.1e}" if a.dtype.kind in "fc" else ""
            differing.append(f"{name} ({int(bad.sum())} of {a.size} values{worst})")
    cpu_cluster = sum(cpu_workers.values()) + cpu_driver
    critical = max(cpu_workers.values())
    classes = {str(k): int(v) for k, v in zip(*np.unique(inproc["classification"].values, return_counts=True))}
    print()
    print(f"| {'':52s} | {'value':>10s} |")
    print(f"| {'-' * 52} | {'-' * 10} |")
    rows = [
        ("in-process, wall (s)", f"{t_in:.1f}"),
        (f"local cluster, {args.workers} workers, wall, start-up included (s)", f"{t_cl:.1f}"),
        ("speed-up, wall", f"{t_in / t_cl:.2f}×"),
        ("cluster start-up (s)", f"{t_up:.1f}"),
        ("in-process CPU (s)", f"{cpu_in:.1f}"),
        ("cluster CPU: workers + driver (s)", f"{cpu_cluster:.1f}"),
        ("overhead, CPU: cluster − in-process (s)", f"{cpu_cluster - cpu_in:+.1f}"),
        ("busiest worker CPU (s)", f"{critical:.1f}"),
        ("speed-up on an idle machine, est.: in-process CPU /", ""),
        ("   (start-up + busiest worker CPU)", f"{cpu_in / (t_up + critical):.2f}×"),
        ("results identical point for point", "yes" if same else "NO"),
    ]
    for label, value in rows:
        print(f"| {label:52s} | {value:>10s} |")
    print(f"\nclassifications: {classes}")
    if differing:
        print("differing: " + "; ".join(differing))


if __name__ == "__main__":
    main()
