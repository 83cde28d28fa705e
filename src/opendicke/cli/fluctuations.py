"""The ``fluctuations`` command: finite-N quantum fluctuations by second-order cumulants or truncated Wigner."""

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from . import app
from .common import FlipOption, FlipSeedOption, MirrorOption, Progress, model_command, plain, print_json, start_states


def _sizes(text: Optional[str], figure3: bool) -> list[int]:
    if text is None:
        raise ValueError("--n-spins is required: the fluctuation methods need a finite number of spins "
                         "(e.g. --n-spins 1000; with --figure3 a list such as 100,1000,10000)")
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--n-spins must be a positive integer{' or a comma-separated list' if figure3 else ''}, got {text!r}") from None
    if not sizes or any(n < 1 for n in sizes):
        raise ValueError(f"--n-spins must be positive integers, got {text!r}")
    if len(sizes) > 1 and not figure3:
        raise ValueError(f"--n-spins takes one number of spins here (a list only with --figure3), got {text!r}")
    return sizes


@app.command()
@model_command(omit=("n_spins", "seed"))
def fluctuations(
    model,
    n_spins: Annotated[Optional[str], typer.Option("--n-spins", help="Number of spins N_sp (random patterns drawn with --seed); with --figure3 a comma-separated list.", rich_help_panel="Model")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the random patterns and of the TWA samples (one seed makes the whole run reproducible).", rich_help_panel="Model")] = None,
    pattern: Annotated[int, typer.Option("--pattern", help="Start from pattern NU (1..M).")] = 1,
    flip: FlipOption = None,
    flip_seed: FlipSeedOption = 0,
    mirror: MirrorOption = False,
    method: Annotated[str, typer.Option("--method", help="cumulant (second-order cumulants with the 1/N feedback) | twa (truncated Wigner, statistical error bars)")] = "cumulant",
    t_final: Annotated[Optional[float], typer.Option("--t-final", help="Final time (default 10; with --figure3 the fixed late time, default 100).")] = None,
    times: Annotated[int, typer.Option("--times", help="Number of equally spaced output times, start and end included.")] = 101,
    samples: Annotated[int, typer.Option("--samples", help="TWA phase-space samples (≥ 2).")] = 1000,
    dt: Annotated[float, typer.Option("--dt", help="TWA: largest step of the stochastic integrator.")] = 0.01,
    spin_sampling: Annotated[str, typer.Option("--spin-sampling", help="TWA: discrete | gaussian initial spin sampling.")] = "discrete",
    figure3: Annotated[bool, typer.Option("--figure3", help="Finite-N paper Fig. 3: |ξ_ν| at --t-final vs g0 from every pattern, for each --n-spins, over Eq. (12).")] = False,
    points: Annotated[int, typer.Option("--points", help="--figure3: number of g0 values.")] = 25,
    g0_min: Annotated[float, typer.Option("--g0-min", help="--figure3: smallest g0.")] = 0.5,
    g0_max: Annotated[float, typer.Option("--g0-max", help="--figure3: largest g0.")] = 2.0,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the labelled result as NetCDF (with --figure3: a directory).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: t, overlaps, occupations, overlaps_std, cost, method (TWA adds overlaps_error).")] = False,
):
    """Finite-N quantum fluctuations: second-order cumulants or the truncated Wigner method (any M, any N_sp)."""
    from ..fluctuations import METHODS, TWAOptions, evolve
    from ..fluctuations.cumulants import DEFAULT_MAX_MEMORY, memory_needed
    from ..reduction import reduce

    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if samples < 2:
        raise ValueError(f"--samples must be ≥ 2 (error bars need at least two samples), got {samples}")
    if model.patterns is not None and n_spins is None and not figure3:
        sizes = [model.n_spins]  # explicit patterns (--patterns or --config) fix N_sp
    else:
        sizes = _sizes(n_spins, figure3)
    if figure3:
        t_final = 100.0 if t_final is None else t_final
        return _figure3(model, sizes, seed, method, t_final, samples, dt, spin_sampling, points, g0_min, g0_max,
                        out, as_json)
    if model.patterns is None:
        model = model.replace(n_spins=sizes[0], seed=seed)
    elif model.n_spins != sizes[0]:
        raise ValueError(f"--n-spins {sizes[0]} disagrees with the patterns given ({model.n_spins} spins)")
    if method == "cumulant":
        grouping = reduce(model)
        need = memory_needed(grouping.n_groups, model.n_modes)
        if need > DEFAULT_MAX_MEMORY:
            raise ValueError(
                f"--n-spins/--omega-modes: M = {model.n_modes} at N_sp = {model.n_spins} gives {grouping.n_groups} groups; "
                f"the cumulant covariance would need {need / 2**30:.1f} GiB (limit {DEFAULT_MAX_MEMORY / 2**30:.0f} GiB): "
                f"use --method twa (memory ∝ groups), or fewer spins or modes")
    t_final = 10.0 if t_final is None else t_final
    (start,) = start_states(model, pattern, flip, flip_seed, mirror)
    options = TWAOptions(samples=samples, seed=seed, dt=dt, spin_sampling=spin_sampling) if method == "twa" else None
    with Progress(f"{method} dynamics", enabled=not as_json) as progress:
        ds = evolve(model, start, method=method, t_final=t_final, times=times, options=options, progress=progress)
    if out is not None:
        from ..io import save_dataset

        save_dataset(ds, out)
    record = {
        "t": plain(ds["time"].values),
        "overlaps": plain(ds["overlap"].transpose("pattern", "time").values),
        "occupations": plain(ds["occupation"].transpose("pattern", "time").values),
        "overlaps_std": plain(ds["overlap_std"].transpose("pattern", "time").values),
        "cost": plain(ds["cost"].values),
        "method": method,
    }
    if method == "twa":
        record["overlaps_error"] = plain(ds["overlap_error"].transpose("pattern", "time").values)
    if as_json:
        print_json(record)
        return
    from .common import console as Console
    from .common import titled_table

    table = titled_table(f"{method}, {start.label()} → t = {t_final:g}   ({model!r})")
    for name in ("pattern", f"ξ_μ({t_final:g})", "spread √Var ξ", "mean field", f"n_μ({t_final:g})", "mean field"):
        table.add_column(name, justify="right")
    for j, mu in enumerate(ds["pattern"].values):
        xi = f"{record['overlaps'][j][-1]:+.6f}"
        if method == "twa":
            xi += f" ± {record['overlaps_error'][j][-1]:.1e}"
        table.add_row(str(mu), xi, f"{record['overlaps_std'][j][-1]:.2e}", f"{float(ds['overlap_meanfield'][-1, j]):+.6f}",
                      f"{record['occupations'][j][-1]:.6f}", f"{float(ds['occupation_meanfield'][-1, j]):.6f}")
    console = Console()
    console.print(table)
    console.print(f"E_N(t_final) = {record['cost'][-1]:.4g}   ({ds.attrs['elapsed_seconds']:.1f} s)")


def _figure3(model, sizes, seed, method, t_final, samples, dt, spin_sampling, points, g0_min, g0_max, out, as_json):
    from ..fluctuations.figure3 import finite_n_figure3
    from ..plotting_fluctuations import plot_finite_n_figure3

    if points < 2 or not g0_max > g0_min:
        raise ValueError("--points must be ≥ 2 and --g0-max > --g0-min")
    g0 = np.linspace(g0_min, g0_max, points)
    with Progress("finite-N Fig. 3", enabled=not as_json) as progress:
        ds = finite_n_figure3(model, sizes, g0, t_final=t_final, method=method, samples=samples, seed=seed, dt=dt,
                              spin_sampling=spin_sampling, progress=progress)
    out = out or Path("results/fluctuations_figure3")
    out.mkdir(parents=True, exist_ok=True)
    from ..io import save_dataset

    save_dataset(ds, out / "figure3_finite_n.nc")
    written = plot_finite_n_figure3(ds, out / "figure3_finite_n")
    if as_json:
        print_json({"g0": plain(g0), "n_spins": sizes, "t": float(t_final), "method": method,
                    "overlaps": plain(ds["overlap"].values), "overlaps_std": plain(ds["overlap_std"].values),
                    "overlaps_meanfield": plain(ds["overlap_meanfield"].values)})
        return
    typer.echo(f"wrote {', '.join(str(p) for p in written)} and {out / 'figure3_finite_n.nc'} "
               f"({ds.attrs['elapsed_seconds']:.0f} s)")
