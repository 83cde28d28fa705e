"""Commands for stationary states: ``steady``, ``sweep`` and ``figure3`` (paper Fig. 3)."""

import time
from pathlib import Path
from typing import Annotated, List, Optional

import numpy as np
import typer

from . import app
from .common import (
    FlipOption,
    FlipSeedOption,
    MemoryBudgetOption,
    MirrorOption,
    PatternOption,
    ChunkSizeOption,
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
    start_states,
)


@app.command()
@model_command
def steady(
    model,
    pattern: PatternOption = 1,
    flip: FlipOption = None,
    flip_seed: FlipSeedOption = 0,
    mirror: MirrorOption = False,
    t_max: Annotated[float, typer.Option("--t-max", help="Time budget of the trajectory before giving up.")] = 2000.0,
    paper_units: Annotated[bool, typer.Option("--paper-units", help="Occupations in the paper's normalisation.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="NetCDF file for the labelled result (with its evidence).")] = None,
    memory_budget: MemoryBudgetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (lists over patterns 1..M).")] = False,
):
    """One stationary state of the mean-field dynamics, found, verified and classified."""
    from ..meanfield.steady import SteadyStateOptions, steady_state

    check_out(out)
    (start,) = start_states(model, str(pattern), flip, flip_seed, mirror)
    ds = steady_state(model, start, options=SteadyStateOptions(t_max=t_max), paper_units=paper_units,
                      memory_budget=memory_budget)
    if out is not None:
        from ..io import save_dataset

        save_dataset(ds, out)
    record = {
        "overlaps": plain(ds["overlap"].values),
        "occupations": plain(ds["occupation"].values),
        "converged": bool(ds["converged"]),
        "stable": bool(ds["stable"]),
        "stable_on_subspace": bool(ds["stable_on_subspace"]),
        "classification": str(ds["classification"].values),
        "residual": plain(ds["residual"].values),
        "message": str(ds["message"].values),
        "time_integrated": plain(ds["time_integrated"].values),
        "newton_iterations": plain(ds["newton_iterations"].values),
        "eigenvalues_real": plain(ds["eigenvalues"].values.real),
        "eigenvalues_imag": plain(ds["eigenvalues"].values.imag),
        "final_overlaps": plain(ds["final_overlap"].values),
        "full_space_stability": str(ds["full_space_stability"].values),
    }
    if as_json:
        print_json(record)
        return
    from .common import console as Console
    from .common import titled_table

    console = Console()
    table = titled_table(f"stationary state from {start.label()}   ({model!r})")
    for name in ("pattern", "ξ_μ", "n_μ", "ξ_μ at end of trajectory"):
        table.add_column(name, justify="right")
    for mu, xi, n, xf in zip(ds["pattern"].values, record["overlaps"], record["occupations"], record["final_overlaps"]):
        fmt = lambda v: "—" if v is None else f"{v:+.8f}"  # noqa: E731
        table.add_row(str(mu), fmt(xi), fmt(n), fmt(xf))
    console.print(table)
    console.print(f"classification: [bold]{record['classification']}[/bold] (full space: {record['full_space_stability']})   "
                  f"residual {record['residual'] if record['residual'] is None else format(record['residual'], '.1e')}   "
                  f"t integrated {record['time_integrated']:g}   Newton iterations {record['newton_iterations']}")
    if record["message"]:
        console.print(record["message"])


@app.command()
@model_command
def sweep(
    model,
    vary: Annotated[List[str], typer.Option("--vary", help="NAME=START:STOP:COUNT or NAME=V1,V2,... (repeatable); "
                                            "names: g0, omega, kappa, kappa_<n>, omega_mode_<n>, gamma_down, gamma_up, gamma_phi, and seed (pattern "
                                            "seeds: new random patterns per seed, needs --n-spins).")],
    pattern: Annotated[str, typer.Option("--pattern", help="'all' or a pattern number: the start(s).")] = "all",
    flip: Annotated[Optional[float], typer.Option("--flip", help="Flip this fraction of the spins in the start(s).")] = None,
    flip_seed: FlipSeedOption = 0,
    t_max: Annotated[float, typer.Option("--t-max", help="Time budget per point.")] = 2000.0,
    paper_units: Annotated[bool, typer.Option("--paper-units", help="Occupations in the paper's normalisation.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="NetCDF file for the labelled result; finished chunks "
                                                "land in OUT.parts/ as they finish.")] = None,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    chunk_size: ChunkSizeOption = None,
    resume: ResumeOption = False,
    keep_chunks: KeepChunksOption = False,
):
    """Stationary states over a grid of model parameters (one labelled dimension per --vary), in chunks."""
    from ..grid import parse_vary
    from ..meanfield.steady import SteadyStateOptions

    grid = parse_vary(vary)
    starts = start_states(model, pattern, flip, flip_seed, False)
    t0 = time.perf_counter()
    ds = run_chunked("sweeping", out=out, resume=resume, scheduler=scheduler, workers=workers, chunk_size=chunk_size,
                     keep_chunks=keep_chunks, model=model, initial=starts, vary=grid,
                     arguments={"paper_units": paper_units}, options=SteadyStateOptions(t_max=t_max))
    elapsed = time.perf_counter() - t0
    counts = verdict_counts(ds)
    typer.echo(f"{ds['classification'].size} points in {elapsed:.1f} s: "
               + ", ".join(f"{v} {k}" for k, v in counts.items())
               + f"; {chunk_summary(ds)}"
               + (f"; wrote {out}" if out else ""))


def verdict_counts(ds) -> dict:
    """How many points got each verdict; "stable" means stable in the full space, and a point stable only on its
    invariant subspace (a saddle in the full space) is counted under its own name."""
    cls = ds["classification"].values.astype(str)
    if "stable_on_subspace" in ds:
        saddle = ds["stable_on_subspace"].values & ~ds["stable"].values
        cls = np.where(saddle, "stable on subspace only (full-space saddle)", cls)
    return {str(k): int(v) for k, v in zip(*np.unique(cls, return_counts=True))}


@app.command()
@model_command(omit=("g0",))
def figure3(
    model,
    out: Annotated[Path, typer.Option("--out", help="Folder for figure3.png/.pdf/.nc/.csv (several files).")] = Path("results/figure3"),
    points: Annotated[int, typer.Option("--points", help="Number of g0 values.")] = 161,
    g0_min: Annotated[float, typer.Option("--g0-min", help="Smallest coupling g0 of the grid.")] = 0.5,
    g0_max: Annotated[float, typer.Option("--g0-max", help="Largest coupling g0 of the grid.")] = 2.0,
    paper_units: Annotated[bool, typer.Option("--paper-units", help="Occupations in the paper's normalisation.")] = False,
):
    """Reproduce paper Fig. 3: stationary overlaps (a) and occupations (b) vs g0, with Eq. (12) (default: M = 4 model)."""
    check_out(out, directory=True)
    _figure3(model, out, points, g0_min, g0_max, paper_units)


def _figure3(model, out: Path, points: int, g0_min: float, g0_max: float, paper_units: bool):
    from ..io import save_dataset
    from ..meanfield.steady import phase_diagram
    from ..model import paper_model
    from ..plotting import plot_phase_diagram

    if points < 2 or not g0_max > g0_min:
        raise ValueError("need --points ≥ 2 and --g0-max > --g0-min")
    M = model.n_modes
    with Progress("stationary states") as progress:
        ds = phase_diagram(model, np.linspace(g0_min, g0_max, points), paper_units=paper_units, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    save_dataset(ds, out / "figure3.nc")
    _write_csv(ds, out / "figure3.csv")
    plot_phase_diagram(ds, out / "figure3", paper_units=paper_units)
    g_c, g_c_num = ds["g_crit_theory"].values, ds["g_crit_numerical"].values
    worst, elapsed = ds.attrs["max_eq12_deviation"], ds.attrs["elapsed_seconds"]
    classes = {str(k): int(v) for k, v in zip(*np.unique(ds["classification"].values, return_counts=True))}

    from .common import console as Console
    from .common import titled_table

    name = "Fig. 3 model (M = 4, Ω = 0.5, Ω_μ = Ω(μ+2), κ = 1)" if model == paper_model(g0=model.g0) else repr(model)
    table = titled_table(f"{name}: critical couplings")
    for name in ("pattern", "g_c numerical", "g_c Eq. (12)", "difference"):
        table.add_column(name, justify="right")
    for nu in range(M):
        table.add_row(str(nu + 1), f"{g_c_num[nu]:.6f}", f"{g_c[nu]:.6f}", f"{g_c_num[nu] - g_c[nu]:+.1e}")
    console = Console()
    console.print(table)
    console.print(f"{points} × {M} stationary states in {elapsed:.1f} s ({', '.join(f'{v} {k}' for k, v in classes.items())}); "
                  f"worst | |ξ_ν| − Eq. (12) | = {worst:.1e} where |g0 − g_c| ≥ 0.01")
    console.print(f"wrote {out}/figure3.png, figure3.pdf, figure3.nc, figure3.csv")


def _write_csv(ds, path: Path):
    from ..io import atomic_path

    M, G = ds.sizes["pattern"], ds.sizes["g0"]
    own = lambda name: np.stack([ds[name].values[:, i, i] for i in range(M)], axis=1).ravel()  # noqa: E731
    columns = [np.repeat(ds["g0"].values, M), np.tile(np.arange(1, M + 1), G), np.abs(own("overlap")),
               own("occupation"), ds["classification"].values.ravel(), ds["overlap_theory"].values.ravel(),
               ds["occupation_theory"].values.ravel()]
    lines = ["g0,pattern,overlap,occupation,classification,overlap_theory,occupation_theory"]
    lines += [f"{g:.10g},{p},{x:.12g},{n:.12g},{c},{xt:.12g},{nt:.12g}" for g, p, x, n, c, xt, nt in zip(*columns)]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
