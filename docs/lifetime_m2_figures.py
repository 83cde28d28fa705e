"""Draw the M = 2 finite-N Fig. 3 of docs/lifetime.md (issue 13): the metastable overlaps against g0 on Eq. (12).

    .venv/bin/python docs/lifetime_m2_figures.py [DATA ...] [--compute N:g0,g0,...] [--seed S] [--fock NC]
        [--fock-start NC] [--out PNG]

Model: Ω = 0.5, Ω_μ = (1.5, 2) (the paper's Ω(μ + 2)), κ = 1, random patterns ``DickeModel(..., n_spins=N,
seed=S)`` (default seed 2: groups 2 + 2 at N_sp = 4, 3 + 3 at N_sp = 6).

DATA: JSON-lines files, or directories whose ``*.jsonl`` files are read (default ``results/lifetime_m2``); one record
per (N, seed, g0), a later record replacing an earlier one. This script writes (``--compute``) and reads records
with at least

    {"N", "seed", "g0", "fock": [..], "lifetime", "converged": bool,
     "overlap": [[ξ1, ξ2] per extreme metastable state], "min_eigenvalue": [per state]}

(empty lists where ``lifetime`` found no separated slow manifold), and also reads the lead's records of session 7
(``"slow3": {"overlap", "min_eigenvalue", ...}``: the three slowest modes forced; ``"slow1"`` when slow3 is missing
or failed), converted by :func:`normalise`.

``--compute N:g0,g0,...`` computes the (N, seed, g0) records that DATA lacks with the public API,
``lifetime(model, basis="polaron", tol=1e-4, gap_rtol=1e-3, eigenvalues=4, metastable=True, fock_start=...)``
(``--fock NC``: a fixed cutoff instead of the search, for quick checks), appending them to
``DATA/lifetime_m2_N<N>.jsonl`` (the first DATA, a directory). N_sp = 4 takes 10–25 min of CPU per g0 and N_sp = 6
hours (docs/lifetime.md).

Figure (``--out``, default docs/figures/lifetime_m2_fig3.png): left, |ξ_μ| of every extreme metastable state
against g0, one marker shape per N_sp, one colour per pattern μ (the pattern a state retrieves: its largest |ξ_μ|;
pattern 1 drawn DX = 0.01 left of its g0, pattern 2 DX right), on the Eq. (12) curves of both patterns (dotted: g_c); open markers where the cutoff search did not converge;
small pale markers where the slow modes were forced (separated by less than 10× from the rest: only the lead's
"slow3" records); states whose smallest eigenvalue is below ``INVALID`` (−0.05) are not density matrices and are
drawn as small grey crosses at the top (|ξ| capped at 1.08), not as retrieval points. Middle, the valid states'
|ξ_μ| minus Eq. (12) at their g0. Right, the lifetime 1/|Re λ₁| against g0 per N_sp (log scale). The records are
printed as a Markdown table.
"""

from __future__ import annotations

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
OMEGA, OMEGA_MODES, KAPPA = 0.5, (1.5, 2.0), 1.0
#: smallest eigenvalue below which an "extreme metastable state" is not drawn as a retrieval point
INVALID = -0.05
#: horizontal offset of pattern 1 (−) and pattern 2 (+) markers, so that equal overlaps stay visible
DX = 0.01


def separation(eigenvalues, n_slow: int = 3) -> float:
    """|Re λ| of the first fast mode over that of the n_slow-th slow one, among the listed nonzero eigenvalues
    (Davidson lists those nearest its real target, so a complex pair with a larger real part can be missing and
    the true separation smaller)."""
    rates = np.sort([abs(z[0]) for z in eigenvalues if abs(complex(*z)) > 1e-9])
    return float(rates[n_slow] / rates[n_slow - 1]) if len(rates) > n_slow else float("nan")


def normalise(rec: dict) -> dict:
    """A record in this script's format. The lead's session-7 records carry the metastable states in "slow3" (the
    three slowest modes forced, whatever their separation) or "slow1": those become "overlap" and
    "min_eigenvalue" (with "metastable_from"), and "forced" says whether the slow modes were separated by less
    than 10× from the rest (where ``lifetime`` itself reports no metastable states)."""
    out = dict(rec)
    out.setdefault("seed", None)
    if "overlap" in rec:
        out.setdefault("forced", False)
        return out
    eigs = [z for part in (rec.get("eigs") or {}).values() for z in part]
    for key in ("slow3", "slow1"):
        states = rec.get(key) or {}
        if "overlap" in states:
            n = 3 if key == "slow3" else 1
            out.update(overlap=states["overlap"], min_eigenvalue=states["min_eigenvalue"], metastable_from=key,
                       separation=separation(eigs, n) if eigs else float("nan"))
            out["forced"] = not out["separation"] >= 10
            break
    else:
        out.update(overlap=[], min_eigenvalue=[], forced=False)
    return out


def read(paths: list[Path]) -> list[dict]:
    """Records of every JSON-lines file (or directory of them), one per (N, seed, g0), sorted."""
    recs = {}
    for p in paths:
        files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p] if p.exists() else []
        for f in files:
            for line in f.read_text().splitlines():
                if line.strip():
                    r = normalise(json.loads(line))
                    recs[(r["N"], r.get("seed"), float(r["g0"]))] = r
    return [recs[k] for k in sorted(recs, key=lambda k: (k[0], str(k[1]), k[2]))]


def compute(n_spins: int, g0s: list[float], seed: int, data: Path, done: list[dict], fock=None,
            fock_start: int | None = 6) -> list[dict]:
    """Compute the (n_spins, seed, g0) records that ``done`` lacks; append each to data/lifetime_m2_N<N>.jsonl."""
    from opendicke import DickeModel
    from opendicke.quantum.metastability import lifetime

    have = {(r["N"], r.get("seed"), float(r["g0"])) for r in done}
    path = data / f"lifetime_m2_N{n_spins}.jsonl"
    new = []
    for g0 in g0s:
        if (n_spins, seed, float(g0)) in have:
            continue
        model = DickeModel(omega=OMEGA, omega_modes=list(OMEGA_MODES), kappa=KAPPA, g0=g0, n_spins=n_spins, seed=seed)
        t, c = time.time(), time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if fock is None:
                ds = lifetime(model, basis="polaron", tol=1e-4, gap_rtol=1e-3, eigenvalues=4, metastable=True,
                              fock_start=fock_start)
            else:
                ds = lifetime(model, basis="polaron", tol=1e-4, gap_rtol=1e-3, eigenvalues=4, metastable=True,
                              fock=fock)
        has_states = "metastable_overlap" in ds
        rec = {"N": n_spins, "seed": seed, "g0": float(g0), "fock": [int(x) for x in ds.fock.values],
               "gap": float(ds.gap), "lifetime": float(ds.lifetime), "converged": bool(ds.gap_converged),
               "gap_change": float(ds.gap_change), "fock_change": float(ds.fock_change),
               "n_slow": int(ds.n_slow),
               "overlap": ds.metastable_overlap.values.tolist() if has_states else [],
               "min_eigenvalue": ds.metastable_min_eigenvalue.values.tolist() if has_states else [],
               "eigenvalues": [[float(a), float(b)] for a, b in zip(ds.eigenvalue_real.values, ds.eigenvalue_imag.values)],
               "sectors": [str(s) for s in ds.eigenvalue_symmetry_sector.values],
               "residuals": [float(x) for x in ds.eigenvalue_residual.values], "residual": float(ds.residual),
               "occupation": [float(x) for x in ds.occupation.values], "method": ds.attrs["method"],
               "symmetries": ds.attrs["symmetries"], "slowest_mode_check": ds.attrs.get("slowest_mode_check", ""),
               "warnings": [str(w.message) for w in caught], "wall": time.time() - t, "cpu": time.process_time() - c,
               "maxrss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "load": os.getloadavg()[0]}
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"N_sp = {n_spins}, seed {seed}, g0 = {g0}: lifetime {rec['lifetime']:.6g}, cutoff {rec['fock']}, "
              f"{len(rec['overlap'])} metastable states, {rec['cpu']:.0f} s CPU", flush=True)
        new.append(rec)
    return new


def states(rec: dict):
    """(pattern μ = 1, 2, |ξ_μ|, valid) of each extreme metastable state of a record; μ = its largest |ξ|."""
    for xi, low in zip(rec.get("overlap", []), rec.get("min_eigenvalue", [])):
        mu = int(np.argmax(np.abs(xi)))
        yield mu + 1, abs(xi[mu]), low >= INVALID


def _num(x: float) -> str:
    return f"{x:+.5f}" if abs(x) < 10 else f"{x:+.3g}"


def table(recs: list[dict]) -> str:
    lines = ["| N_sp | seed | g0 | n_c | lifetime | converged | separation | metastable states: ξ (smallest eigenvalue) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in recs:
        st = "; ".join(f"({_num(x[0])}, {_num(x[1])}) ({low:.3g}{'' if low >= INVALID else ', invalid'})"
                       for x, low in zip(r.get("overlap", []), r.get("min_eigenvalue", []))) or "–"
        sep = r.get("separation", separation(r["eigenvalues"]) if r.get("eigenvalues") else float("nan"))
        lines.append(f"| {r['N']} | {r.get('seed', '')} | {r['g0']:g} | {r['fock']} | {r['lifetime']:.6g} | "
                     f"{'yes' if r['converged'] else 'no'} | {sep:.3g}×{' (forced)' if r.get('forced') else ''} | {st} |")
    return "\n".join(lines)


def plot(recs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from opendicke.theory import critical_coupling, retrieval_overlap

    sizes = sorted({r["N"] for r in recs})
    marker = {n: "osd^v<>ph"[i % 9] for i, n in enumerate(sizes)}
    g_all = [r["g0"] for r in recs] or [1.0]
    g = np.linspace(0.5, max(2.1, max(g_all) + 0.1), 400)
    fig, (ax, axd, ax2) = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    shift = {1: -DX, 2: DX}
    for mu, w in enumerate(OMEGA_MODES):
        ax.plot(g, retrieval_overlap(g, OMEGA, w, KAPPA), "-", color=f"C{mu}", lw=1,
                label=rf"Eq. (12), pattern {mu + 1} ($\Omega_{mu + 1} = {w:g}$)")
        ax.axvline(float(critical_coupling(OMEGA, w, KAPPA)), color=f"C{mu}", lw=0.8, ls=":")
    invalid_label = f"not a state (smallest eigenvalue < {INVALID:g})"
    for n in sizes:
        for mu in (1, 2):
            for converged, forced in ((True, False), (False, False), (True, True), (False, True)):
                pts = [(r["g0"], xi) for r in recs if r["N"] == n and bool(r["converged"]) == converged
                       and bool(r.get("forced")) == forced for m, xi, ok in states(r) if ok and m == mu]
                if pts:
                    x, y = (np.array(v) for v in zip(*pts))
                    label = (f"$N_{{sp}} = {n}$, pattern {mu}" + ("" if converged else ", cutoff not converged")
                             + (", slow modes < 10× apart" if forced else ""))
                    style = {"color": f"C{mu - 1}", "mfc": None if converged else "none", "ms": 4 if forced else 6,
                             "alpha": 0.45 if forced else 1, "ls": "none"}
                    ax.plot(x + shift[mu], y, marker[n], label=label, **style)
                    eq12 = retrieval_overlap(x, OMEGA, OMEGA_MODES[mu - 1], KAPPA)
                    axd.plot(x + shift[mu], y - eq12, marker[n], label=label, **style)
        bad = [(r["g0"], xi) for r in recs if r["N"] == n for _, xi, ok in states(r) if not ok]
        if bad:
            x, y = zip(*bad)
            ax.plot(x, np.minimum(y, 1.08), "x", color="0.6", ms=4, ls="none", label=invalid_label)
            invalid_label = None
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("$g_0$")
    ax.set_ylabel(r"metastable $|\xi_\mu|$")
    ax.set_title(r"$M = 2$, $\Omega = 0.5$, $\Omega_\mu = (1.5, 2)$, $\kappa = 1$", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    axd.axhline(0, color="k", lw=0.8)
    axd.set_xlabel("$g_0$")
    axd.set_ylabel(r"metastable $|\xi_\mu|$ − Eq. (12)")
    axd.set_title("distance from the mean-field retrieval (states only)", fontsize=9)
    if axd.get_legend_handles_labels()[0]:
        axd.legend(fontsize=6)
    for n in sizes:
        rs = [r for r in recs if r["N"] == n]
        x = np.array([r["g0"] for r in rs])
        y = np.array([r["lifetime"] for r in rs])
        ok = np.array([bool(r["converged"]) for r in rs])
        ax2.semilogy(x, y, ":", color="0.5", lw=0.8)
        if np.any(ok):
            ax2.semilogy(x[ok], y[ok], marker[n], color="k", ls="none", label=f"$N_{{sp}} = {n}$")
        if np.any(~ok):
            ax2.semilogy(x[~ok], y[~ok], marker[n], color="k", mfc="none", ls="none",
                         label=f"$N_{{sp}} = {n}$ (cutoff not converged)")
    ax2.set_xlabel("$g_0$")
    ax2.set_ylabel(r"lifetime $1/|\mathrm{Re}\,\lambda_1|$ ($1/\kappa$)")
    ax2.legend(fontsize=7, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def parse(argv: list[str]) -> dict:
    opts = {"data": [], "compute": [], "seed": 2, "fock": None, "fock_start": 6, "out": FIGS / "lifetime_m2_fig3.png"}
    it = iter(argv)
    for a in it:
        if a == "--compute":
            n, g0s = next(it).split(":")
            opts["compute"].append((int(n), [float(x) for x in g0s.split(",")]))
        elif a == "--seed":
            opts["seed"] = int(next(it))
        elif a == "--fock":
            opts["fock"] = int(next(it))
        elif a == "--fock-start":
            opts["fock_start"] = int(next(it))
        elif a == "--out":
            opts["out"] = Path(next(it))
        elif a.startswith("--"):
            sys.exit(f"unknown option {a}; usage: see the docstring of {__file__}")
        else:
            opts["data"].append(Path(a))
    opts["data"] = opts["data"] or [Path("results/lifetime_m2")]
    return opts


def main(argv: list[str] | None = None) -> list[dict]:
    opts = parse(sys.argv[1:] if argv is None else argv)
    recs = read(opts["data"])
    if opts["compute"]:
        out_dir = opts["data"][0]
        if out_dir.suffix == ".jsonl":
            sys.exit("--compute writes into a directory: give one as the first DATA")
        for n, g0s in opts["compute"]:
            compute(n, g0s, opts["seed"], out_dir, recs, fock=opts["fock"], fock_start=opts["fock_start"])
        recs = read(opts["data"])
    if not recs:
        sys.exit(f"no records in {[str(p) for p in opts['data']]}: run with --compute N:g0,g0,...")
    print(table(recs))
    plot(recs, opts["out"])
    print(f"figure: {opts['out']}")
    return recs


if __name__ == "__main__":
    main()
