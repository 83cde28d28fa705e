"""Command-line interface: a thin typer app over the public API (``opendicke --help``).

Every command that computes with a model takes the model options (``--config``, ``--omega``,
``--omega-modes``, ``--kappa``, ``--g0``, ``--n-spins``, ``--seed``, ``--patterns``); without them the model
is the paper's Fig. 3 model, and a model file may give only some fields (the rest are the paper's).
Patterns are numbered from 1. ``--json`` prints exactly one JSON object on stdout.

One meaning of ``--out`` everywhere: the *file* a command writes its labelled result to (NetCDF), except
for the commands that write several files (``figure3``, ``demo``), where it is the *folder* that receives
them. Either way it is checked before any work starts.
"""


from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from .common import (
    FlipOption, FlipSeedOption, MemoryBudgetOption, MirrorOption, PatternOption, Progress, check_out, fail, model_command,
    plain, print_json, start_states,
)

app = typer.Typer(
    name="opendicke",
    help="Open multimode Dicke models as associative memories (Carollo & Lesanovsky, PRL 126, 230601 (2021)).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _theory_rows(model):
    """Per-pattern Eq. (12) numbers, or None where the analytic theory does not apply."""
    from ..theory import retrieval_state

    rows = []
    for mu in range(1, model.n_modes + 1):
        try:
            st = retrieval_state(model, mu)
            here = st.sel(pattern=mu)
            rows.append({"g_crit": float(st["g_crit"]), "overlap": abs(float(here["overlap"])),
                         "occupation": float(here["occupation"]), "note": ""})
        except ValueError as exc:
            rows.append({"g_crit": None, "overlap": None, "occupation": None, "note": str(exc)})
    return rows


@app.command()
@model_command
def evolve(
    model,
    pattern: PatternOption = 1,
    flip: FlipOption = None,
    flip_seed: FlipSeedOption = 0,
    mirror: MirrorOption = False,
    t_final: Annotated[float, typer.Option("--t-final", help="Final time (units of 1/κ when κ = 1).")] = 100.0,
    times: Annotated[int, typer.Option("--times", help="Number of equally spaced output times, start and end included.")] = 101,
    representation: Annotated[str, typer.Option("--representation", help="auto | groups (exact large-spin reduction) | "
                                                "spins (one equation per spin).")] = "auto",
    rtol: Annotated[float, typer.Option("--rtol", help="Relative tolerance per point.")] = 1e-10,
    atol: Annotated[float, typer.Option("--atol", help="Absolute tolerance per point.")] = 1e-12,
    paper_units: Annotated[bool, typer.Option("--paper-units", help="α and occupations in the paper's normalisation (N = N_sp/2^(M-1)).")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="NetCDF file for the labelled result.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a figure (PNG/PDF by suffix; no suffix: both).")] = None,
    memory_budget: MemoryBudgetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: t, overlaps, occupations (lists over patterns 1..M, then time).")] = False,
):
    """Mean-field time evolution (paper Eq. 7) from a pattern or a corrupted pattern."""
    from ..meanfield import evolve as mf_evolve

    check_out(out)
    check_out(plot, option="--plot")
    (start,) = start_states(model, pattern, flip, flip_seed, mirror)
    with Progress("evolving", enabled=not as_json) as progress:
        ds = mf_evolve(model, start, t_final=t_final, times=times, representation=representation, rtol=rtol, atol=atol,
                       paper_units=paper_units, memory_budget=memory_budget, progress=progress)
    if not bool(ds["success"]):
        typer.echo(f"warning: integration failed: {ds.attrs['message']}", err=True)
    if out is not None:
        from ..io import save_dataset

        save_dataset(ds, out)
    if plot is not None:
        from ..plotting import plot_evolution

        plot_evolution(ds, plot, title=f"{start.label()}, $g_0={model.g0:g}$")
    if as_json:
        print_json({
            "t": plain(ds["time"].values),
            "overlaps": plain(ds["overlap"].transpose("pattern", "time").values),
            "occupations": plain(ds["occupation"].transpose("pattern", "time").values),
            "patterns": plain(ds["pattern"].values),
            "length_drift": float(ds["length_drift"]),
            "representation": ds.attrs["representation"],
            "units": ds.attrs["units"],
        })
        return
    from .common import console as Console
    from .common import titled_table

    table = titled_table(f"{start.label()} → t = {t_final:g}   ({model!r}, {ds.attrs['representation']} representation)")
    table.add_column("pattern", justify="right")
    table.add_column("ξ_μ(0)", justify="right")
    table.add_column(f"ξ_μ({t_final:g})", justify="right")
    table.add_column(f"n_μ({t_final:g})", justify="right")
    for mu in ds["pattern"].values:
        xi = ds["overlap"].sel(pattern=mu)
        table.add_row(str(mu), f"{float(xi[0]):+.6f}", f"{float(xi[-1]):+.6f}", f"{float(ds['occupation'].sel(pattern=mu)[-1]):.6f}")
    console = Console()
    console.print(table)
    console.print(f"max drift of the conserved |m_k|: {float(ds['length_drift']):.1e}   steps: {int(ds['n_steps'])}")


@app.command()
@model_command
def theory(
    model,
    paper_units: Annotated[bool, typer.Option("--paper-units", help="Occupations in the paper's normalisation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print {g_crit, overlaps, occupations} (lists over patterns "
                                          "1..M; overlap and occupation are the same lists under their old names).")] = False,
):
    """Analytic retrieval solution (Eq. 12): g_crit, overlap and occupation per pattern at the model's g0."""
    from ..results import paper_factor

    rows = _theory_rows(model)
    factor = paper_factor(model.n_modes) if paper_units else 1.0
    for r in rows:
        if r["occupation"] is not None:
            r["occupation"] *= factor
    if as_json:
        print_json({
            "g_crit": [r["g_crit"] for r in rows],
            "overlaps": [r["overlap"] for r in rows],
            "occupations": [r["occupation"] for r in rows],
            "overlap": [r["overlap"] for r in rows],  # alias kept for scripts written against the first contract
            "occupation": [r["occupation"] for r in rows],
            "g0": model.g0,
            "notes": [r["note"] for r in rows],
        })
        return
    from .common import console as Console
    from .common import titled_table

    table = titled_table(f"Eq. (12) at g0 = {model.g0:g}   ({model!r})")
    for name in ("pattern", "g_crit", "|ξ_ν|", "n_ν" + (" (paper units)" if paper_units else " (per spin)")):
        table.add_column(name, justify="right")
    for mu, r in enumerate(rows, start=1):
        if r["g_crit"] is None:
            table.add_row(str(mu), "—", "—", r["note"])
        else:
            table.add_row(str(mu), f"{r['g_crit']:.6f}", f"{r['overlap']:.6f}", f"{r['occupation']:.6f}")
    Console().print(table)


@app.command()
@model_command
def demo(
    model,
    out: Annotated[Path, typer.Option("--out", help="Folder for the figures and data (several files).")] = Path("results/demo"),
):
    """Retrieval dynamics from every pattern, below and above the thresholds (g0 = 0.75 and 1.2; default: Fig. 3 model)."""
    from ..io import save_dataset
    from ..meanfield import evolve as mf_evolve
    from ..model import paper_model
    from ..plotting import plot_evolution

    check_out(out, directory=True)
    for g0 in (0.75, 1.2):
        m = model.replace(g0=g0)
        rows = _theory_rows(m)
        with Progress(f"g0 = {g0}") as progress:
            ds = mf_evolve(m, list(range(1, m.n_modes + 1)), t_final=200.0, times=801, progress=progress)
        theory = {label: rows[i] for i, label in enumerate(ds["initial"].values)}
        stem = out / f"retrieval_g0_{g0:g}".replace(".", "p")
        save_dataset(ds.drop_vars("bloch"), stem.with_suffix(".nc"))
        name = "Fig. 3 model" if m == paper_model(g0=g0) else f"M = {m.n_modes}"
        plot_evolution(ds, stem, theory=theory, title=f"{name}, $g_0 = {g0:g}$")
        final = np.abs(ds["overlap"].isel(time=-1))
        typer.echo(f"g0 = {g0}: |ξ_ν(t=200)| from pattern ν = "
                   + ", ".join(f"{float(final.isel(initial=i, pattern=i)):.4f}" for i in range(m.n_modes))
                   + "   Eq. (12): " + ", ".join("—" if r["overlap"] is None else f"{r['overlap']:.4f}" for r in rows))
    typer.echo(f"wrote {out}/retrieval_g0_*.png|pdf|nc")


@app.command()
def plot(
    path: Annotated[Path, typer.Argument(help="A result written by --out (NetCDF).", exists=True, dir_okay=False)],
    out: Annotated[Optional[Path], typer.Option("--out", help="Figure file (PNG/PDF by suffix; no suffix: both). "
                                                "Default: PATH with .png.")] = None,
):
    """Re-plot a result from its NetCDF file (evolutions, Fig. 3 sweeps, recognition maps, censuses, crosstalk)."""
    from ..io import load_dataset
    from ..plotting import plot_result

    figure = out if out is not None else path.with_suffix(".png")
    check_out(figure, option="--out")
    try:
        ds = load_dataset(path)
    except (OSError, ValueError) as exc:
        fail(f"{path}: not a result file ({exc})")
    try:
        _, notes = plot_result(ds, figure)
    except ValueError as exc:
        fail(str(exc))
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {figure}")


from . import quantum, stationary  # noqa: E402,F401  (register their commands)
from . import fluctuations  # noqa: E402,F401  (the "fluctuations" command)
from . import memory  # noqa: E402,F401  (the "memory" sub-app)
from . import lifetime  # noqa: E402,F401  (the "lifetime" command)
from . import escape  # noqa: E402,F401  (the "escape" command)


def main():  # console-script entry point
    app()
