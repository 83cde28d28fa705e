"""Regenerate the figures and numbers of docs/memory.md (issue 5).

    .venv/bin/python docs/memory_figures.py [DATA_DIR]

Data go to DATA_DIR (default results/memory, reused when present, delete to recompute); figures to
docs/figures/memory_*.png; the measured numbers quoted in docs/memory.md are printed. About 20 minutes on
2 busy cores, one process.
"""

import sys
import time
from pathlib import Path

import numpy as np

from opendicke import paper_model
from opendicke import memory as mem
from opendicke.io import load_dataset, save_dataset
from opendicke.plotting_memory import plot_census, plot_crosstalk, plot_recognition_map, plot_selective_regime

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "results/memory")
FIGS = Path(__file__).resolve().parent / "figures"


def cached(name, compute):
    path = DATA / f"{name}.nc"
    if path.exists():
        return load_dataset(path)
    t0 = time.perf_counter()
    ds = compute()
    ds.attrs["compute_seconds"] = time.perf_counter() - t0
    save_dataset(ds, path)
    print(f"[{name}] computed in {ds.attrs['compute_seconds']:.1f} s", flush=True)
    return ds


def png(fig, name):
    fig.savefig(FIGS / f"memory_{name}.png", dpi=130, bbox_inches="tight")


def main():
    DATA.mkdir(parents=True, exist_ok=True)
    model = paper_model()

    # 1. thermodynamic-limit recognition map
    tl = cached("map_tl", lambda: mem.recognition_map(model, np.linspace(0.4, 2.0, 41), np.linspace(0, 0.5, 26)))
    away = np.abs(tl["g0"] - tl["boundary_theory"]) >= 0.01
    print("TL map: worst |overlap - formula| away from boundary:", float(np.abs(tl["deviation"].where(away)).max()))
    print("TL map: worst |boundary - g_c/sqrt(1-2p)|:", float(np.nanmax(np.abs(tl["boundary"] - tl["boundary_theory"]))),
          "over", int(np.isfinite(tl["boundary"]).sum()), "pairs")
    print("TL map: saddle points (subspace only):", int((tl["retrievable_on_subspace"] & ~tl["retrievable"]).sum()),
          "of", tl["retrievable"].size)
    png(plot_recognition_map(tl, title="thermodynamic limit (exact reduction), Fig. 3 model"), "map_tl")

    # 2. finite-N recognition map
    fin = cached("map_n1000", lambda: mem.recognition_map(paper_model(n_spins=1000, seed=0), np.linspace(0.5, 2.0, 16),
                                                          np.linspace(0, 0.4, 9), samples=4, draws=2))
    print("N=1000 map: mean success", float(fin["success_probability"].mean()))
    rec = fin["success_probability"] > 0.5
    print("N=1000 map: max |mean overlap - formula| where recognised:",
          float(np.abs(fin["deviation"].where(rec)).max()))
    for mu in (1, 2, 3, 4):
        s = fin["success_probability"].sel(pattern=mu, flip=0.0)
        first = s["g0"].values[np.argmax(s.values >= 0.5)] if (s.values >= 0.5).any() else np.nan
        print(f"N=1000 p=0: pattern {mu} success >= 1/2 from g0 = {first}", s.values.round(2).tolist())
    png(plot_recognition_map(fin, title="$N_{sp}=1000$, 4 pattern sets × 2 corruption draws"), "map_n1000")

    # 3. selective regime: fine TL grid and N = 10^4 success lines
    sel_tl = cached("selective_tl", lambda: mem.recognition_map(model, np.linspace(0.5, 1.6, 111), [0.0, 0.2],
                                                                refine_boundary=False))
    sel_fin = cached("selective_n10000", lambda: mem.recognition_map(paper_model(n_spins=10000, seed=0),
                                                                     np.linspace(0.5, 1.6, 23), [0.0, 0.2], samples=8))
    sel_fin.attrs["n_spins"] = 10000
    st = cached("stability_p0", lambda: mem.stability_threshold(model))
    st2 = cached("stability_p02", lambda: mem.stability_threshold(model, flip=0.2, tol=1e-4))
    print("g_stab numerical p=0:", st["robust_threshold"].values.round(5).tolist(), "closed form:",
          mem.robust_threshold(model, 0.0).round(5).tolist())
    print("g_stab numerical p=0.2:", st2["robust_threshold"].values.round(5).tolist(), "closed form:",
          mem.robust_threshold(model, 0.2).round(5).tolist())
    for p in (0.0, 0.2):
        for mu in (1, 2, 3, 4):
            s = sel_fin["success_probability"].sel(pattern=mu, flip=p)
            first = s["g0"].values[np.argmax(s.values >= 0.5)] if (s.values >= 0.5).any() else np.nan
            print(f"N=1e4 p={p}: pattern {mu} success >= 1/2 from g0 = {first:.3f}")
    png(plot_selective_regime(sel_tl, finite=sel_fin), "selective")

    # 4. attractor census (thermodynamic limit)
    g0c = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.4, 1.6])
    path = DATA / "census.nc"
    if path.exists():
        census = load_dataset(path)
        starts = mem.census_starts(model, 32, 32, seed=0)
        from opendicke.memory.starts import _perturbed

        run = [_perturbed(s, model, 1e-6, 0 + 7919 * (i + 1)) for i, s in enumerate(starts)]
    else:
        t0 = time.perf_counter()
        census, run = mem.attractor_census(model, g0c, n_random=32, n_mixtures=32, seed=0), None  # starts stored
        census.attrs["compute_seconds"] = time.perf_counter() - t0
        save_dataset(census, path)
        print(f"[census] computed in {census.attrs['compute_seconds']:.1f} s")
    examples = cached("census_examples", lambda: mem.census_examples(model, census, run, t_final=300))
    for kind in census["start_group"].values:
        print(f"census fractions ({kind}):")
        print(census["fraction"].sel(start_group=kind).to_pandas().round(3).to_string())
    para = census["outcome"] == "paramagnetic"
    print("paramagnetic and precessing:", float((para & census["precessing"]).sum()), "of", float(para.sum()))
    rec = census["outcome"] == "recognition"
    for g in census["g0"].values:
        e = census["ends_on"].sel(g0=g).values[rec.sel(g0=g).values]
        print(f"g0={g}: recognised patterns", dict(zip(*np.unique(e, return_counts=True))))
    png(plot_census(census, examples=examples), "census")

    # 5. crosstalk and load at finite N (M up to 20, N >= 10^4), and the finite-N robust thresholds
    ct = cached("crosstalk", lambda: mem.crosstalk([10000, 30000, 100000], [4, 10, 20], g0=[1.0], seeds=[0, 1]))
    s = ct.isel(g0=0)
    print(s[["overlap_dynamics", "overlap_centre", "overlap_static", "shift", "shift_static", "rho_deficit",
             "threshold_shift", "crosstalk_rms", "elapsed_s"]].mean("seed").to_dataframe().to_string())
    finite = {}
    for n in (1000, 10000, 100000, 1000000):
        finite[n] = cached(f"selectivity_n{n}", lambda n=n: mem.recognition_map(
            paper_model(n_spins=n, seed=0), np.linspace(0.6, 1.4, 17), [0.0], samples=6))
        for mu in (2, 3, 4):
            v = finite[n]["success_probability"].sel(pattern=mu, flip=0.0)
            first = v["g0"].values[np.argmax(v.values >= 0.5)] if (v.values >= 0.5).any() else np.nan
            print(f"N={n}: pattern {mu} success >= 1/2 from g0 = {first:.3f}")
    png(plot_crosstalk(ct, selectivity=finite), "crosstalk")


if __name__ == "__main__":
    main()
