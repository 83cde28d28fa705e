"""Commands for the exact finite-N dynamics: ``quantum`` and ``convergence``."""

import warnings
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from . import app
from .common import (
    FlipOption,
    FlipSeedOption,
    MirrorOption,
    PatternOption,
    KeepChunksOption,
    Progress,
    ResumeOption,
    SchedulerOption,
    WorkersOption,
    fail,
    model_command,
    plain,
    print_json,
    run_chunked,
    start_states,
)


_UNITS = {"": 2**30, "gib": 2**30, "gb": 1e9, "mib": 2**20, "mb": 1e6, "kib": 2**10, "b": 1}


def _memory(text: Optional[str]) -> Optional[float]:
    """--memory: bytes from '2', '2GiB', '512MiB', '1.5GB' (a bare number is GiB)."""
    if text is None:
        return None
    import re

    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(f"--memory must be a size such as 2, 2GiB, 512MiB or 1.5GB (a bare number is GiB), got {text!r}")
    try:
        value = float(m.group(1)) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"--memory must be a size such as 2, 2GiB or 512MiB, got {text!r}") from None
    return value


def _fock(fock: Optional[str]):
    if fock is None:
        return "auto"
    try:
        values = [int(v) for v in fock.split(",")]
    except ValueError:
        raise ValueError(f"--fock must be a number of Fock levels (or one per mode, comma separated), got {fock!r}") from None
    return values[0] if len(values) == 1 else values


@app.command()
@model_command
def quantum(
    model,
    pattern: PatternOption = 1,
    flip: FlipOption = None,
    flip_seed: FlipSeedOption = 0,
    mirror: MirrorOption = False,
    t_final: Annotated[float, typer.Option("--t-final", help="Final time.")] = 10.0,
    times: Annotated[int, typer.Option("--times", help="Number of equally spaced output times.")] = 101,
    fock: Annotated[Optional[str], typer.Option("--fock", help="Fock levels per mode (one value or M; with --frame gaussian: total quanta kept); default: chosen automatically to meet --tol.")] = None,
    tol: Annotated[float, typer.Option("--tol", help="Target accuracy of overlaps and occupations.")] = 1e-6,
    method: Annotated[str, typer.Option("--method", help="auto (the master equation whenever it fits --memory, trajectories beyond) | chebyshev | mesolve | expm | trajectories (compiled quantum jumps) | mcsolve (QuTiP quantum jumps)")] = "auto",
    frame: Annotated[str, typer.Option("--frame", help="auto | plain | comoving (displaced and rotated with the mean-field solution, truncated in the fluctuations) | gaussian (co-moving and squeezed along the fluctuations; large N_sp)")] = "auto",
    max_dim: Annotated[Optional[int], typer.Option("--max-dim", help="Largest Hilbert-space dimension the cutoff search may use (default 1500 for the master equation).")] = None,
    ntraj: Annotated[int, typer.Option("--ntraj", help="Trajectories (trajectories, mcsolve).")] = 500,
    traj_seed: Annotated[Optional[int], typer.Option("--traj-seed", help="Seed of the trajectories' random numbers.")] = None,
    memory: Annotated[Optional[str], typer.Option("--memory", help="Memory budget of the master equation (e.g. 2, 2GiB, 512MiB; a bare number is GiB; default 2 GiB): beyond it --method auto takes trajectories, and a --fock that does not fit is refused before anything is built.")] = None,
    threads: Annotated[int, typer.Option("--threads", help="Threads of the compiled master-equation kernel.")] = 1,
    deviation_tol: Annotated[Optional[float], typer.Option("--deviation-tol", help="Frames (comoving, gaussian): the truncation search also requires the relative change of N(xi - xi_MF), N(n - n_MF) and N E_N between truncations to be below this (default 1e-2; 0: measured and reported only).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the labelled result as NetCDF.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a figure (exact vs mean field).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: t, overlaps, occupations, cost, method, fock, truncation_error.")] = False,
):
    """Exact finite-N quantum dynamics (master equation or trajectories) in the reduced basis."""
    from ..quantum import FockCutoffWarning, MethodWarning, QuantumOptions, solve

    if model.thermodynamic_limit:
        fail("the exact quantum dynamics needs a finite number of spins: give --n-spins N (or --patterns)")
    budget = _memory(memory)
    options = QuantumOptions(t_final=t_final, times=times, fock=_fock(fock), tol=tol, method=method, frame=frame,
                             max_dim=max_dim, ntraj=ntraj, seed=traj_seed, threads=threads,
                             **({} if deviation_tol is None else {"deviation_tol": deviation_tol or None}),
                             **({} if budget is None else {"memory": budget}))
    (start,) = start_states(model, pattern, flip, flip_seed, mirror)
    if model.spin_dissipation:  # individual spin rates: the permutation-invariant solver (issue 15)
        from .permutation import run

        return run(model, start, t_final=t_final, times=times, fock=_fock(fock), tol=tol, out=out, plot=plot, as_json=as_json)
    with warnings.catch_warnings():
        warnings.simplefilter("always", FockCutoffWarning)
        warnings.simplefilter("always", MethodWarning)
        warnings.showwarning = lambda message, *args, **kwargs: typer.echo(f"warning: {message}", err=True)
        with Progress("quantum dynamics", enabled=not as_json) as progress:
            ds = solve(model, start, options=options, progress=progress,
                       announce=lambda text: typer.echo(text, err=True))
    footer = lambda record: (  # noqa: E731
        f"method {record['method']}, frame {record['frame']}, dimension {record['dimension']}, "
        + (f"total quanta ≤ {record['fock'][0]}" if record["frame"] == "gaussian" else f"Fock levels {record['fock']}")
        + f", top-level population ≤ {record['truncation_error']:.1e}, {_tolerance_verdict(record, tol)}, "
        f"E_N(t_final) = {record['cost'][-1]:.4g}")
    report(ds, model, start, t_final=t_final, out=out, plot=plot, as_json=as_json, title="exact dynamics",
           footer=footer)


def report(ds, model, start, *, t_final, out, plot, as_json, title, footer) -> None:
    """Write, plot and print an exact-dynamics result (every exact basis): ``--json`` record or a table and a
    one-line ``footer(record)`` about the truncation."""
    if out is not None:
        from ..io import save_dataset

        save_dataset(ds, out)
    if plot is not None:
        from ..plotting import plot_evolution

        plot_evolution(ds, plot, title=f"{title}, $N_{{sp}}={model.n_spins}$, {start.label()}")
    record = {
        "t": plain(ds["time"].values),
        "overlaps": plain(ds["overlap"].transpose("pattern", "time").values),
        "occupations": plain(ds["occupation"].transpose("pattern", "time").values),
        **({"cost": plain(ds["cost"].values)} if "cost" in ds else {}),
        "method": ds.attrs["method"],
        "fock": plain(ds["fock"].values),
        "truncation_error": float(np.max(ds["truncation"].values)),
        "fock_change": plain(ds["fock_change"].values),
        "fock_converged": bool(ds["fock_converged"]),
        "dimension": int(ds.attrs["dimension"]),
        "frame": ds.attrs.get("solver_frame", "plain"),
        "overlaps_meanfield": plain(ds["overlap_meanfield"].transpose("pattern", "time").values),
    }
    if "overlap_error" in ds:
        record["overlaps_error"] = plain(ds["overlap_error"].transpose("pattern", "time").values)
        record["occupations_error"] = plain(ds["occupation_error"].transpose("pattern", "time").values)
    if as_json:
        print_json(record)
        return
    from .common import console as Console
    from .common import titled_table

    table = titled_table(f"{title}, {start.label()} → t = {t_final:g}   ({model!r})")
    for name in ("pattern", f"ξ_μ({t_final:g}) exact", "mean field", f"n_μ({t_final:g}) exact", "mean field"):
        table.add_column(name, justify="right")
    for j, mu in enumerate(ds["pattern"].values):
        table.add_row(str(mu), f"{record['overlaps'][j][-1]:+.6f}", f"{record['overlaps_meanfield'][j][-1]:+.6f}",
                      f"{record['occupations'][j][-1]:.6f}", f"{float(ds['occupation_meanfield'][-1, j]):.6f}")
    console = Console()
    console.print(table)
    console.print(footer(record))


def _tolerance_verdict(record: dict, tol: float) -> str:
    """Whether --tol was met, in words: the measured change on enlarging the truncation, or why none was measured."""
    change = record["fock_change"]
    if change is None or change != change:  # a given cutoff: no second run to compare with
        met = f"top level below tol/10 = {tol / 10:g}" if record["fock_converged"] else f"NOT shown to meet --tol {tol:g}"
        return f"change on enlarging not measured (given cutoff; {met})"
    verdict = "meets" if record["fock_converged"] else "does NOT meet"
    return f"change on enlarging {change:.2e}: {verdict} --tol {tol:g}"


@app.command()
@model_command(omit=("n_spins", "patterns", "seed"))
def convergence(
    model,
    n_spins: Annotated[str, typer.Option("--n-spins", help="Comma-separated numbers of spins, e.g. 8,16,32.")] = "4,8,16",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random patterns drawn at every N_sp.")] = 0,
    pattern: Annotated[int, typer.Option("--pattern", help="Start from pattern NU.")] = 1,
    t_final: Annotated[float, typer.Option("--t-final", help="End of the fixed time window.")] = 10.0,
    times: Annotated[int, typer.Option("--times", help="Number of equally spaced output times.")] = 101,
    tol: Annotated[float, typer.Option("--tol", help="Target accuracy of overlaps and occupations at every N_sp.")] = 1e-6,
    method: Annotated[str, typer.Option("--method", help="auto | chebyshev | mesolve | expm | trajectories | mcsolve")] = "auto",
    fit_from: Annotated[int, typer.Option("--fit-from", help="Fit the power law over N_sp ≥ this only (small N_sp are pre-asymptotic); default all.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Directory for convergence.nc/.png/.pdf.")] = Path("results/convergence"),
    as_json: Annotated[bool, typer.Option("--json", help="Print n_spins, deviation, slope.")] = False,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    chunk_size: Annotated[Optional[int], typer.Option("--chunk-size", help="Numbers of spins per task (default: one "
                                                      "task per N_sp).", rich_help_panel="Execution")] = None,
    resume: ResumeOption = False,
    keep_chunks: KeepChunksOption = False,
):
    """Finite-N exact dynamics vs mean field in a fixed window: max_t |ξ_N − ξ_MF| vs N, and N·E_N(t).

    One task per N_sp (a sweep): finished sizes land in OUT/convergence.nc.parts/, --resume continues a killed
    run, --scheduler sends the tasks to Dask; the power law is fitted over all sizes at the end.
    """
    from ..plotting import plot_convergence
    from ..quantum import QuantumOptions
    from ..sweep import convergence_task

    try:
        sizes = [int(v) for v in n_spins.split(",") if v.strip()]
    except ValueError:
        fail(f"--n-spins must be comma-separated integers, got {n_spins!r}")
    if not sizes or any(n < 1 for n in sizes) or len(set(sizes)) != len(sizes):
        fail(f"--n-spins must be distinct positive integers, got {n_spins!r}")
    out.mkdir(parents=True, exist_ok=True)
    ds = run_chunked("convergence study", out=out / "convergence.nc", resume=resume, scheduler=scheduler,
                     workers=workers, chunk_size=chunk_size, keep_chunks=keep_chunks, progress=not as_json, model=model,
                     initial=pattern, vary={"n_spins": sizes}, solver=convergence_task,
                     arguments={"t_final": t_final, "times": times, "seed": seed, "fit_from": fit_from},
                     options=QuantumOptions(tol=tol, method=method))
    plot_convergence(ds, out / "convergence")
    if as_json:
        print_json({"n_spins": sizes, "deviation": plain(ds["deviation"].values), "slope": float(ds.attrs["slope"]),
                    "fock": plain(ds["fock"].values)})
        return
    for n, d, sec in zip(sizes, ds["deviation"].values, ds["elapsed_seconds"].values):
        typer.echo(f"N_sp = {n:5d}: max_t |ξ_N − ξ_MF| = {d:.4f}   ({sec:.1f} s)")
    over = f" over N_sp ≥ {fit_from}" if fit_from else ""
    typer.echo(f"fitted slope{over}: {ds.attrs['slope']:.3f}   wrote {out}/convergence.nc, .png, .pdf")
