"""Commands for associative-memory experiments: ``opendicke memory map | which | stability | census | crosstalk |
transient``.

Definitions (see :mod:`opendicke.memory`): in the thermodynamic limit a pattern is *retrievable* when its
(corrupted) start relaxes to a finite-overlap state that is stable on the start's invariant subspace and in
the full phase space; ``retrievable_on_subspace`` drops the second condition. At finite N_sp a sample
*recognises* the pattern when its dynamics, crosstalk included, ends with the largest overlap on it.
"""

import time
from pathlib import Path
from typing import Annotated, List, Optional

import numpy as np
import typer

from . import app
from .common import (
    KeepChunksOption,
    Progress,
    ResumeOption,
    SchedulerOption,
    WorkersOption,
    check_out,
    chunk_summary,
    model_command,
    plain,
    print_json,
    run_chunked,
)

memory_app = typer.Typer(
    name="memory",
    help="Associative memory: recognition maps over (g0, p), the pattern-selective regime, attractor census, "
         "crosstalk at finite N_sp, transient retrieval with individual spin dissipation.",
    no_args_is_help=True,
)
app.add_typer(memory_app, name="memory")


def _grid(vary: List[str]) -> np.ndarray:
    from ..grid import parse_vary

    grid = parse_vary(vary)
    other = [name for name in grid if name != "g0"]
    if other:
        raise ValueError(f"--vary {other[0]}: memory commands scan the coupling only (g0=START:STOP:COUNT)")
    if "g0" not in grid:
        raise ValueError("give --vary g0=START:STOP:COUNT")
    return grid["g0"]


def _flips(text: str) -> np.ndarray:
    from ..grid import parse_range

    _, values = parse_range(f"flip={text}")
    return values


def _patterns(text: str, M: int):
    if text == "all":
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--pattern must be 'all' or comma-separated pattern numbers 1..{M}, got {text!r}") from None


def _default_plot(out: Path, plot: Optional[Path], no_plot: bool) -> Optional[Path]:
    if no_plot:
        return None
    return plot if plot is not None else out.with_suffix(".png")


@memory_app.command("map")
@model_command
def map_command(
    model,
    vary: Annotated[List[str], typer.Option("--vary", help="The coupling grid, g0=START:STOP:COUNT (or g0=V1,V2,...).")],
    out: Annotated[Path, typer.Option("--out", help="NetCDF file for the labelled map; the figure goes beside it.")],
    flips: Annotated[str, typer.Option("--flips", help="Flipped fractions p, START:STOP:COUNT or V1,V2,...")] = "0:0.5:26",
    pattern: Annotated[str, typer.Option("--pattern", help="'all' or comma-separated pattern numbers to map.")] = "all",
    samples: Annotated[int, typer.Option("--samples", help="Pattern realisations (model seeds seed, seed+1, ...), finite N_sp only.")] = 1,
    draws: Annotated[int, typer.Option("--draws", help="Corruption draws per realisation, finite N_sp only.")] = 1,
    threshold: Annotated[float, typer.Option("--threshold", help="|ξ_ν| above this is a finite overlap.")] = 1e-3,
    t_max: Annotated[float, typer.Option("--t-max", help="Time budget per point.")] = 2000.0,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Figure path (default: OUT with .png).")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Skip the figure.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    chunk_size: Annotated[Optional[int], typer.Option("--chunk-size", help="Flipped fractions per task, each over the "
                                                      "whole g0 grid, every pattern and sample (default: about 1024 "
                                                      "solves per task).", rich_help_panel="Execution")] = None,
    resume: ResumeOption = False,
    keep_chunks: KeepChunksOption = False,
):
    """Recognition map over (g0, p) per pattern, with the analytic boundary g_c/√(1 − 2p) on the heat map.

    Runs as a sweep over the flipped fractions (chunks of p, each over the whole g0 grid): finished chunks land
    in OUT.parts/, --resume continues a killed run, --scheduler sends the chunks to Dask.
    """
    from ..memory import recognition_map_task
    from ..memory.recognition import _seeds

    g0 = _grid(vary)
    figure = _default_plot(out, plot, no_plot)
    check_out(figure, option="--plot")
    pats = _patterns(pattern, model.n_modes)
    pats = list(range(1, model.n_modes + 1)) if pats is None else pats
    _seeds(model, samples, draws, None)  # samples/draws and flips checked before any work (or chunk directory) starts
    flip_values = _flips(flips)
    if np.any(~np.isfinite(flip_values)) or np.any((flip_values < 0) | (flip_values > 1)):
        raise ValueError(f"flips must be fractions in [0, 1], got {flip_values.tolist()}")
    t0 = time.perf_counter()
    ds = run_chunked("recognition map", out=out, resume=resume, scheduler=scheduler, workers=workers,
                     chunk_size=chunk_size, keep_chunks=keep_chunks, progress=not as_json, model=model, initial=pats,
                     vary={"flip": flip_values}, solver=recognition_map_task,
                     arguments={"g0": g0, "samples": samples, "draws": draws, "threshold": threshold, "t_max": t_max})
    elapsed = time.perf_counter() - t0
    if figure is not None:
        from ..plotting_memory import plot_recognition_map

        size = "thermodynamic limit" if model.thermodynamic_limit else f"$N_{{sp}}={model.n_spins}$"
        plot_recognition_map(ds, figure, title=f"recognition map, {size}")
    summary = _map_summary(ds)
    summary.update({"elapsed_seconds": elapsed, "elapsed_s": elapsed, "out": str(out), "figure": None if figure is None else str(figure),
                    "chunks": int(ds.attrs["sweep_chunks"]), "chunks_reused": int(ds.attrs["sweep_chunks_reused"]),
                    "executor": str(ds.attrs["sweep_executor"])})
    if as_json:
        print_json(summary)
        return
    for line in summary["lines"]:
        typer.echo(line)
    typer.echo(f"{ds['g0'].size} × {ds['flip'].size} × {ds['pattern'].size} points in {elapsed:.1f} s; "
               f"{chunk_summary(ds)}; wrote {out}"
               + (f" and {figure}" if figure is not None else ""))


def _map_summary(ds) -> dict:
    lines = []
    out = {}
    if "retrievable" in ds and "sample" not in ds.dims:
        away = np.abs(ds["g0"] - ds["boundary_theory"]) >= 0.01
        worst = float(np.abs(ds["deviation"].where(away)).max())
        out["worst_overlap_error"] = worst
        lines.append(f"worst | |ξ_ν| − √((1−2p)² − (g_c/g0)^4) | where |g0 − g_c/√(1−2p)| ≥ 0.01: {worst:.1e}")
        if "boundary" in ds:
            diff = np.abs(ds["boundary"] - ds["boundary_theory"]).values
            worst_b = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")
            out["worst_boundary_error"] = worst_b
            lines.append(f"numerical boundary vs g_c/√(1−2p): max |Δ| = {worst_b:.1e} over "
                         f"{int(np.isfinite(diff).sum())} (pattern, p) pairs")
        sub_only = int((ds["retrievable_on_subspace"] & ~ds["retrievable"]).sum())
        out["subspace_only_points"] = sub_only
        lines.append(f"{sub_only} grid points hold the pattern only on its invariant subspace (full-space saddles)")
    else:
        prob = ds["success_probability"]
        out["mean_success_probability"] = float(prob.mean())
        dev = ds["deviation"].where(ds["success_probability"] > 0.5)
        worst = float(np.abs(dev).max()) if np.isfinite(dev).any() else float("nan")
        out["worst_overlap_deviation"] = worst
        lines.append(f"{ds.sizes['sample']} samples; mean success probability {float(prob.mean()):.3f}; largest "
                     f"|mean |ξ_ν| − formula| where recognised: {worst:.2e}")
    out["lines"] = lines
    return out


@memory_app.command("which")
@model_command
def which_command(
    model,
    flip: Annotated[float, typer.Option("--flip", help="Flip this fraction of every start.")] = 0.0,
    samples: Annotated[int, typer.Option("--samples", help="Pattern realisations (finite N_sp).")] = 1,
    draws: Annotated[int, typer.Option("--draws", help="Corruption draws per realisation (finite N_sp).")] = 1,
    perturbation: Annotated[float, typer.Option("--perturbation", help="Size of the symmetry-breaking kick of the "
                                                 "robustness check (thermodynamic limit; 0: none).")] = 1e-6,
    numerical: Annotated[bool, typer.Option("--numerical", help="Also find both thresholds numerically (slower).")] = False,
    t_max: Annotated[float, typer.Option("--t-max", help="Time budget per start.")] = 3000.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print {\"patterns\": [{pattern, g_crit, retrievable, overlap, ...}]}.")] = False,
):
    """Which patterns the model holds at its g0: the pattern-selective regime (retrievable from the dynamics)."""
    from ..memory import retrievable_patterns

    ds = retrievable_patterns(model, flip, samples=samples, draws=draws, perturbation=perturbation, t_max=t_max,
                              numerical_thresholds=numerical)
    rows = []
    for i, mu in enumerate(ds["pattern"].values):
        row = {
            "pattern": int(mu),
            "g_crit": plain(ds["g_crit"].values[i]),
            "retrievable": bool(ds["retrievable"].values[i]),
            "overlap": plain(ds["overlap"].values[i]),
            "threshold": plain(ds["boundary_theory"].values[i]),
            "robust_threshold": plain(ds["robust_theory"].values[i]),
            "retrievable_on_subspace": bool(ds["retrievable_on_subspace"].values[i]),
            "overlap_on_subspace": plain(ds["overlap_on_subspace"].values[i]),
            "overlap_theory": plain(ds["overlap_theory"].values[i]),
            "success_probability": plain(ds["success_probability"].values[i]),
            "ends_on": int(ds["ends_on"].values[i]),
        }
        if "perturbed_ends_on" in ds:
            row["perturbed_ends_on"] = int(ds["perturbed_ends_on"].values[i])
        if numerical:
            row["threshold_numerical"] = plain(ds["boundary"].values[i])
            row["robust_threshold_numerical"] = plain(ds["robust_threshold"].values[i])
        rows.append(row)
    if as_json:
        print_json({"patterns": rows, "g0": model.g0, "flip": flip, "n_spins": model.n_spins,
                    "definition": ds.attrs["definition"]})
        return
    from .common import console as Console
    from .common import titled_table

    size = "thermodynamic limit" if model.thermodynamic_limit else f"N_sp = {model.n_spins}, {int(ds['n_samples'])} samples"
    table = titled_table(f"patterns held at g0 = {model.g0:g}, flip {flip:g} ({size})")
    tl = model.thermodynamic_limit
    cols = ["ν", "g_c", "g_c/√(1−2p)", "g_stab", "retrievable", "|ξ_ν|"]
    cols += ["subspace", "|ξ_ν| subsp."] if tl else ["P"]
    if numerical:
        cols += ["boundary num.", "g_stab num."]
    for name in cols:
        table.add_column(name, justify="right")
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    for r in rows:
        cells = [str(r["pattern"]), fmt(r["g_crit"]), fmt(r["threshold"]), fmt(r["robust_threshold"]),
                 "[green]yes[/green]" if r["retrievable"] else "[red]no[/red]", fmt(r["overlap"])]
        if tl:
            cells += ["yes" if r["retrievable_on_subspace"] else "no", fmt(r["overlap_on_subspace"])]
        else:
            cells.append(f"{r['success_probability']:.2f}")
        if numerical:
            cells += [fmt(r["threshold_numerical"]), fmt(r["robust_threshold_numerical"])]
        table.add_row(*cells)
    console = Console()
    console.print(table)
    console.print(ds.attrs["definition"])


@memory_app.command("stability")
@model_command
def stability_command(
    model,
    flip: Annotated[float, typer.Option("--flip", help="Flipped fraction of the starts.")] = 0.0,
    tol: Annotated[float, typer.Option("--tol", help="Width of the final brackets.")] = 1e-4,
    as_json: Annotated[bool, typer.Option("--json", help="Print lists over patterns 1..M.")] = False,
):
    """Existence threshold and full-space stability threshold g_stab per pattern, numerically and in closed form."""
    from ..memory import recognition_boundary, robust_threshold, stability_threshold

    ds = stability_threshold(model, flip=flip, tol=tol)
    try:
        robust = robust_threshold(model, flip)
        from ..memory import critical_couplings

        boundary = recognition_boundary(critical_couplings(model), flip)
    except ValueError:
        robust = boundary = np.full(model.n_modes, np.nan)
    record = {
        "pattern": plain(ds["pattern"].values),
        "boundary": plain(ds["boundary"].values), "boundary_theory": plain(boundary),
        "robust_threshold": plain(ds["robust_threshold"].values), "robust_theory": plain(robust),
        "message": [str(m) for m in ds["message"].values], "flip": flip,
    }
    if as_json:
        print_json(record)
        return
    from .common import console as Console
    from .common import titled_table

    table = titled_table(f"thresholds, flip {flip:g}   ({model!r})")
    for name in ("pattern", "g_c/√(1−2p) num.", "formula", "g_stab num.", "formula", "note"):
        table.add_column(name, justify="right")
    fmt = lambda v: "—" if v is None else f"{v:.6f}"  # noqa: E731
    for i in range(len(record["pattern"])):
        table.add_row(str(record["pattern"][i]), fmt(record["boundary"][i]), fmt(record["boundary_theory"][i]),
                      fmt(record["robust_threshold"][i]), fmt(record["robust_theory"][i]), record["message"][i])
    Console().print(table)


@memory_app.command("census")
@model_command
def census_command(
    model,
    vary: Annotated[List[str], typer.Option("--vary", help="Couplings, g0=START:STOP:COUNT or g0=V1,V2,...")],
    random: Annotated[int, typer.Option("--random", help="Number of random starts.")] = 32,
    mixtures: Annotated[int, typer.Option("--mixtures", help="Number of random mixtures of 2-3 patterns.")] = 32,
    census_seed: Annotated[int, typer.Option("--census-seed", help="Seed of the starts and their perturbations.")] = 0,
    perturbation: Annotated[float, typer.Option("--perturbation", help="Random rotation of every start (0: none).")] = 1e-6,
    t_max: Annotated[float, typer.Option("--t-max", help="Time budget per start.")] = 3000.0,
    out: Annotated[Optional[Path], typer.Option("--out", help="NetCDF file for the census.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Figure: fractions vs g0 and one example of each outcome.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fractions: {g0, outcomes, fraction[kind][g0][outcome]}.")] = False,
):
    """Attractor census: fractions of recognition / mixture / paramagnetic / non-stationary outcomes."""
    from ..memory import attractor_census, census_examples

    g0 = _grid(vary)
    check_out(out)
    check_out(plot, option="--plot")
    t0 = time.perf_counter()
    with Progress("census", enabled=not as_json) as progress:
        ds = attractor_census(model, g0, n_random=random, n_mixtures=mixtures, seed=census_seed, perturbation=perturbation,
                                   t_max=t_max, progress=progress)
    elapsed = time.perf_counter() - t0
    if out is not None:
        from ..io import save_dataset

        save_dataset(ds, out)
    if plot is not None:
        from ..plotting_memory import plot_census

        plot_census(ds, plot, examples=census_examples(model, ds))
    record = {
        "g0": plain(ds["g0"].values),
        "outcomes": [str(o) for o in ds["outcome_name"].values],
        "kinds": [str(k) for k in ds["start_group"].values],  # JSON keys kept (contract)
        "fraction": {str(k): plain(ds["fraction"].sel(start_group=k).values) for k in ds["start_group"].values},
        "precessing_paramagnetic": plain(((ds["outcome"] == "paramagnetic") & ds["precessing"]).mean("start").values),
        "elapsed_seconds": elapsed,
        "elapsed_s": elapsed,  # alias of the first contract
    }
    if as_json:
        print_json(record)
        return
    from .common import console as Console
    from .common import titled_table

    table = titled_table(f"attractor census, {ds.sizes['start']} starts ({model!r})")
    table.add_column("g0", justify="right")
    for name in record["outcomes"]:
        table.add_column(name, justify="right")
    table.add_column("paramagnetic & precessing", justify="right")
    for i, g in enumerate(record["g0"]):
        row = [f"{g:g}"] + [f"{v:.2f}" for v in record["fraction"]["all"][i]] + [f"{record['precessing_paramagnetic'][i]:.2f}"]
        table.add_row(*row)
    Console().print(table)
    typer.echo(f"{ds['outcome'].size} solves in {elapsed:.1f} s" + (f"; wrote {out}" if out else "")
               + (f", {plot}" if plot else ""))


def _ints(name: str, text: str) -> list[int]:
    try:
        return [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers, got {text!r}") from None


@memory_app.command("crosstalk")
@model_command(omit=("omega_modes", "g0", "n_spins", "seed", "patterns"))
def crosstalk_command(
    model,
    n_spins: Annotated[str, typer.Option("--n-spins", help="Numbers of spins, comma separated (1e4 allowed).")] = "10000,30000",
    n_modes: Annotated[str, typer.Option("--n-modes", help="Numbers of patterns M, comma separated.")] = "4,10,20",
    seeds: Annotated[int, typer.Option("--seeds", help="Pattern realisations per (M, N_sp).")] = 2,
    g0: Annotated[float, typer.Option("--g0", help="Coupling of the recognised-overlap measurement.")] = 1.0,
    pattern: Annotated[int, typer.Option("--pattern", help="Start pattern.")] = 1,
    t_final: Annotated[float, typer.Option("--t-final", help="Length of the trajectories.")] = 300.0,
    out: Annotated[Optional[Path], typer.Option("--out", help="NetCDF file for the labelled result.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Figure path.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON lists over (M, N_sp, seed).")] = False,
):
    """Crosstalk and load at finite N_sp: recognised overlap and threshold vs N_sp, M/N_sp.

    The models are the family Ω_μ = Ω(μ + 2) for every M, with Ω and κ from --config/--omega/--kappa
    (default: the paper's Ω = 0.5, κ = 1; κ must be one value for all modes).
    """
    from ..memory import crosstalk
    from ..model import DickeModel

    check_out(out)
    check_out(plot, option="--plot")
    kappa = np.unique(model.kappa)
    if kappa.size != 1:
        raise ValueError(f"crosstalk varies M: give one loss rate κ for all modes, got {model.kappa.tolist()}")
    omega, kappa = model.omega, float(kappa[0])

    def family(n_modes, n_spins, seed):
        return DickeModel(omega=omega, omega_modes=omega * (np.arange(1, n_modes + 1) + 2.0), kappa=kappa, g0=g0,
                          n_spins=n_spins, seed=seed)

    Ns, Ms = _ints("--n-spins", n_spins), _ints("--n-modes", n_modes)
    with Progress("crosstalk", enabled=not as_json) as progress:
        ds = crosstalk(Ns, Ms, g0=g0, pattern=pattern, seeds=range(seeds), t_final=t_final, model_factory=family,
                       progress=progress)
    if out is not None:
        from ..io import save_dataset

        save_dataset(ds, out)
    if plot is not None:
        from ..plotting_memory import plot_crosstalk

        plot_crosstalk(ds, plot)
    sel = ds.isel(g0=0)
    record = {name: plain(sel[name].values) for name in ("overlap_dynamics", "overlap_centre", "overlap_static", "overlap_tl",
                                                         "shift", "threshold", "threshold_tl", "threshold_shift",
                                                         "crosstalk_rms", "elapsed_seconds")}
    record["elapsed_s"] = record["elapsed_seconds"]  # alias of the first contract
    record.update({"n_modes": Ms, "n_spins": Ns, "seeds": seeds, "g0": g0, "pattern": pattern})
    if as_json:
        print_json(record)
        return
    from .common import console as Console
    from .common import titled_table

    table = titled_table(f"crosstalk: pattern {pattern} at g0 = {g0:g} (mean over {seeds} seeds)")
    for name in ("M", "N_sp", "M/N_sp", "|ξ| dynamics", "shift vs Eq. 12", "shift fully polarised", "g_c(N) − g_c",
                 "crosstalk rms", "time (s)"):
        table.add_column(name, justify="right")
    for a, M in enumerate(Ms):
        for b, N in enumerate(Ns):
            s = sel.isel(n_modes=a, n_spins=b)
            table.add_row(str(M), str(N), f"{M / N:.1e}", f"{float(s['overlap_dynamics'].mean()):.6f}",
                          f"{float(s['shift'].mean()):+.2e}", f"{float(s['shift_static'].mean()):+.2e}",
                          f"{float(s['threshold_shift'].mean()):+.2e}", f"{float(s['crosstalk_rms'].mean()):.2e}",
                          f"{float(s['elapsed_seconds'].sum()):.1f}")
    Console().print(table)


@memory_app.command("transient")
@model_command
def transient_command(
    model,
    vary: Annotated[List[str], typer.Option("--vary", help="The grid: g0=START:STOP:COUNT and one spin rate, e.g. "
                                            "gamma_phi=0:0.04:17 (or gamma_down / gamma_up).")],
    out: Annotated[Optional[Path], typer.Option("--out", help="NetCDF file for the labelled map.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Figure path (PNG and PDF without a suffix).")] = None,
    pattern: Annotated[str, typer.Option("--pattern", help="'all' or comma-separated pattern numbers.")] = "all",
    t_obs: Annotated[float, typer.Option("--t-obs", help="Observation time of the retrieval.")] = 50.0,
    t_final: Annotated[float, typer.Option("--t-final", help="End of the trajectories (retention times are "
                                           "censored there).")] = 200.0,
    times: Annotated[int, typer.Option("--times", help="Output times on [0, t_final].")] = 401,
    threshold: Annotated[float, typer.Option("--threshold", help="|ξ_ν| at or above this counts as retrieved.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the map as JSON lists.")] = False,
):
    """Transient retrieval with individual spin dissipation over (g0, rate): |ξ_ν(t_obs)| and retention time.

    With decay, pumping or dephasing balanced patterns have no stationary retrieval state (docs/spin-dissipation.md):
    this maps how long, and from which couplings on, each pattern is held.
    """
    from ..grid import SPIN_RATES, parse_vary
    from ..memory import transient_retrieval_map

    check_out(out)
    check_out(plot, option="--plot")
    grid = parse_vary(vary)
    names = [n for n in grid if n in SPIN_RATES]
    if set(grid) - {"g0", *SPIN_RATES} or "g0" not in grid or len(names) != 1:
        raise ValueError(f"--vary: give g0=... and exactly one of {', '.join(SPIN_RATES)}, got {', '.join(grid)}")
    pats = _patterns(pattern, model.n_modes)
    with Progress("transient map", enabled=not as_json) as progress:
        ds = transient_retrieval_map(model, grid["g0"], grid[names[0]], rate=names[0], patterns=pats, t_obs=t_obs,
                                     t_final=t_final, times=times, threshold=threshold, progress=progress)
    if out is not None:
        from ..io import save_dataset

        save_dataset(ds, out)
    if plot is not None:
        from ..plotting_memory import plot_transient_map

        plot_transient_map(ds, plot)
    if as_json:
        print_json({"pattern": plain(ds["pattern"].values), "g0": plain(ds["g0"].values),
                    names[0]: plain(ds[names[0]].values), "overlap": plain(ds["overlap"].values),
                    "retention_time": plain(ds["retention_time"].values),
                    "n_retrieved": plain(ds["n_retrieved"].values), "elapsed_seconds": ds.attrs["elapsed_seconds"]})
        return
    rate_values = ds[names[0]].values
    for p in ds["pattern"].values:
        for r, value in enumerate(rate_values):
            ok = ds["retrieved"].sel(pattern=p).values[:, r]
            first = f"{ds['g0'].values[ok][0]:.4g}" if ok.any() else "—"
            typer.echo(f"pattern {int(p)}, {names[0]} = {value:g}: retrieved at t = {t_obs:g} from g0 = {first}")
    typer.echo(f"{ds['g0'].size} × {rate_values.size} × {ds['pattern'].size} trajectories in "
               f"{ds.attrs['elapsed_seconds']:.1f} s" + (f"; wrote {out}" if out else ""))
