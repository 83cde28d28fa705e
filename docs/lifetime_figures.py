"""Regenerate the lifetime table and figure of docs/lifetime.md (issue 13).

    .venv/bin/python docs/lifetime_figures.py [DATA_DIR] [--compute g0:N1,N2,...]

Records of other runs can sit beside them as lifetime_g0_<g0>[_<tag>].jsonl with at least {"N", "lifetime"}
(and "basis": "plain" for plain-basis values); they are drawn as extra series. Records (one JSON line per model: gap, lifetime, converged cutoff, residuals, metastable overlaps, wall and CPU
time) go to DATA_DIR/lifetime_g0_<g0>.jsonl (default results/lifetime, reused: delete to recompute); each
``--compute`` appends the missing sizes, computed with ``lifetime(..., basis="polaron", tol=1e-5,
gap_rtol=1e-3)``, each search starting two levels below the previous size's converged cutoff. The figure goes to
docs/figures/lifetime_vs_n.png; the table and the fitted law are printed. N_sp = 24 took about an hour of wall
time on 2 cores shared with other jobs (load 12-18): see docs/lifetime.md for the measured times.
"""

import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

FIGS = Path(__file__).resolve().parent / "figures"


def compute(g0: float, sizes: list[int], path: Path) -> None:
    from opendicke import DickeModel
    from opendicke.quantum.metastability import FockCutoffWarning, lifetime

    done = {r["N"]: r for r in read(path)}
    start = None
    for N in sizes:
        if N in done:
            start = max(6, done[N]["fock"] - 2)
            continue
        model = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=g0, n_spins=N, seed=0)
        t, c = time.time(), time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FockCutoffWarning)
            ds = lifetime(model, basis="polaron", tol=1e-5, gap_rtol=1e-3, eigenvalues=3, max_memory=7 * 2**30,
                          fock_start=start)
        rec = dict(N=N, g0=g0, gap=float(ds.gap), lifetime=float(ds.lifetime), fock=int(ds.fock[0]),
                   gap_change=float(ds.gap_change), fock_change=float(ds.fock_change),
                   converged=bool(ds.gap_converged), residuals=[float(x) for x in ds.eigenvalue_residual.values],
                   stat_residual=float(ds.residual), gap_error=float(ds.gap_error),
                   gap_condition=float(ds.gap_condition), gap_left_residual=float(ds.gap_left_residual),
                   eig=[[float(a), float(b)] for a, b in zip(ds.eigenvalue_real.values, ds.eigenvalue_imag.values)],
                   meta=[float(x) for x in ds.metastable_overlap.values.ravel()] if "metastable_overlap" in ds else [],
                   occupation=float(ds.occupation[0]), wall=time.time() - t, cpu=time.process_time() - c,
                   maxrss_MB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   warnings=[str(w.message) for w in caught], method=ds.attrs["method"], load=os.getloadavg()[0])
        start = max(6, rec["fock"] - 2)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"g0 = {g0}, N_sp = {N}: lifetime {rec['lifetime']:.6g}, cutoff {rec['fock']}, "
              f"{rec['wall']:.0f} s wall, {rec['cpu']:.0f} s CPU", flush=True)


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    recs = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            recs[r["N"]] = r
    return [recs[n] for n in sorted(recs)]


#: Lifetimes measured in earlier sessions (the tables of docs/lifetime.md), drawn when DATA has no records of that g0:
#: g0 = 0.8 in the plain basis, g0 = 1.2 in the polaron basis (tol 1e-5, gap_rtol 1e-3).
MEASURED = {
    0.8: ("plain", {4: 3.96, 6: 7.20, 8: 10.8, 10: 15.1, 12: 20.3, 14: 26.9, 16: 34.9}),
    1.2: ("polaron", {4: 126.05, 6: 349.70, 8: 1076.5, 10: 3368.3, 12: 9550.3}),
}

#: Finite-N Fig. 3 from the exact side: |ξ| of the extreme metastable states (plain basis, tol 1e-5, gap converged
#: to 1e-3), the table "Finite-N Fig. 3" of docs/lifetime.md (computed with ``lifetime(model, tol=1e-5)``; sizes
#: where the gap is not 10x below the next decay rate have no metastable states and are left out).
FIG3_TABLE = {
    4: {1.0: 0.9197, 1.2: 0.9510, 1.4: 0.9743},
    6: {0.9: 0.8823, 1.0: 0.9027, 1.2: 0.9504, 1.4: 0.9719},
    8: {0.9: 0.8593, 1.0: 0.8976, 1.2: 0.9481},
    12: {1.0: 0.8943, 1.2: 0.9475},  # polaron-basis table (this script's records)
    16: {1.0: 0.8953},
}


def fig3_points(data: Path) -> dict:
    """FIG3_TABLE plus the metastable |ξ| of every record in DATA (polaron basis) at sizes the table lacks."""
    table = {n: dict(row) for n, row in FIG3_TABLE.items()}
    for path in sorted(data.glob("lifetime_g0_*.jsonl")):
        for rec in read(path):
            if rec.get("meta") and rec.get("basis", "polaron") == "polaron":
                table.setdefault(rec["N"], {}).setdefault(rec["g0"], max(rec["meta"]))
    return {n: dict(sorted(table[n].items())) for n in sorted(table)}


def plot_fig3(path: Path, points: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from opendicke.theory import critical_coupling, retrieval_overlap

    g = np.linspace(0.4, 1.5, 300)
    fig, ax = plt.subplots(figsize=(4.5, 3.4), constrained_layout=True)
    ax.plot(g, retrieval_overlap(g, 0.5, 1.5, 1.0), "k-", lw=1, label="Eq. (12)")
    for i, (n, row) in enumerate((points or FIG3_TABLE).items()):
        ax.plot(list(row), list(row.values()), "osd^v<>ph"[i % 9], color=f"C{i % 10}",
                label=f"metastable, $N_{{sp}} = {n}$")
    ax.axvline(float(critical_coupling(0.5, 1.5, 1.0)), color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("$g_0$")
    ax.set_ylabel(r"$|\xi|$")
    ax.set_title(r"$M = 1$, $\Omega = 0.5$, $\Omega_1 = 1.5$, $\kappa = 1$", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main():
    args = sys.argv[1:]
    data = Path(args[0]) if args and not args[0].startswith("--") else Path("results/lifetime")
    for i, a in enumerate(args):
        if a == "--compute":
            g0, sizes = args[i + 1].split(":")
            compute(float(g0), [int(n) for n in sizes.split(",")], data / f"lifetime_g0_{float(g0)}.jsonl")
    from opendicke.plotting_lifetime import fit_exponential, plot_lifetime

    main_recs = read(data / "lifetime_g0_1.0.jsonl")
    if not main_recs:
        sys.exit(f"no records in {data}: run with --compute 1.0:4,8,12,...")
    n = np.array([r["N"] for r in main_recs])
    tau = np.array([r["lifetime"] for r in main_recs])
    a, r = fit_exponential(n, tau, n_min=8)
    print("| g0 | N_sp | gap | lifetime | n_c | gap change | max residual | gap error (relative) | metastable ξ | "
          "method | CPU s | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for other in sorted(data.glob("lifetime_g0_*.jsonl")):
        for rec in read(other):
            if "gap" not in rec:  # a bare {"N", "lifetime"} record: drawn, not tabulated
                continue
            ms = max(rec["meta"]) if rec.get("meta") else float("nan")
            err = rec.get("gap_error", float("nan")) / rec["gap"]
            print(f"| {rec['g0']:g} | {rec['N']} | {rec['gap']:.6e} | {rec['lifetime']:.7g} | {rec['fock']} | "
                  f"{rec['gap_change']:.1e} | {max(rec['residuals']):.0e} | {err:.0e} | ±{ms:.4f} | "
                  f"{rec.get('method', '')} | {rec['cpu']:.0f} | {rec['maxrss_MB'] / 1024:.1f} |")
    print(f"fit N_sp >= 8: lifetime = {a:.4g} exp({r:.4f} N_sp); local rates "
          f"{np.round(np.diff(np.log(tau)) / np.diff(n), 4).tolist()} between {n.tolist()}")
    b = np.polyfit(np.log(n[n >= 8]), np.log(tau[n >= 8]), 1)[0]
    print(f"local power-law exponents d ln tau / d ln N: {np.round(np.diff(np.log(tau)) / np.diff(np.log(n)), 3).tolist()}"
          f" (one power law over N_sp >= 8: {b:.3f})")
    for n_min in (16, 24):
        if np.sum(n >= n_min) >= 2:
            a2, r2 = fit_exponential(n, tau, n_min=n_min)
            print(f"fit N_sp >= {n_min}: lifetime = {a2:.4g} exp({r2:.4f} N_sp)")
    series = {}
    for g0, (basis, table) in MEASURED.items():  # earlier sessions' values, completed by this DATA's records
        merged = dict(table)
        recs = read(data / f"lifetime_g0_{g0}.jsonl")
        merged.update({x["N"]: x["lifetime"] for x in recs})
        bases = {basis} | {x.get("basis", "polaron") for x in recs}
        series[f"$g_0 = {g0:g}$, {' + '.join(sorted(bases))} basis"] = (sorted(merged), [merged[k] for k in sorted(merged)])
    for other in sorted(data.glob("lifetime_g0_*.jsonl")):
        g0 = float(other.stem.split("_")[2])
        if other.name == "lifetime_g0_1.0.jsonl" or g0 in MEASURED:
            continue
        recs = read(other)
        basis = "plain" if any(x.get("basis") == "plain" for x in recs) else "polaron"
        series[f"$g_0 = {g0:g}$, {basis} basis"] = ([x["N"] for x in recs], [x["lifetime"] for x in recs])
    FIGS.mkdir(exist_ok=True)
    plot_lifetime(n, tau, [rec["converged"] for rec in main_recs], FIGS / "lifetime_vs_n.png",
                  title=r"$M = 1$, $\Omega = 0.5$, $\Omega_1 = 1.5$, $\kappa = 1$",
                  label=r"$g_0 = 1$, polaron basis (cutoff converged)",
                  fit=(a, r, 8), series=series)
    plot_fig3(FIGS / "lifetime_fig3.png", fig3_points(data))


if __name__ == "__main__":
    main()
