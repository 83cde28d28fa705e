"""``opendicke lifetime``: exact steady state, Liouvillian gap and metastable retrieval of a finite model."""

import warnings
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from . import app
from .common import fail, model_command, plain, print_json


def _sizes(text: str) -> list[int]:
    """"8:40:9" (start:stop:count, integers) or "8,16,24"."""
    try:
        if ":" in text:
            a, b, n = text.split(":")
            values = np.linspace(float(a), float(b), int(n))
            if not np.allclose(values, np.round(values)):
                raise ValueError
            return [int(round(v)) for v in values]
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--vary n_spins=...: expected START:STOP:COUNT giving integers or a comma-separated list, got {text!r}") from None


def _record(ds) -> dict:
    eig = [[float(r), float(i)] for r, i in zip(ds["eigenvalue_real"].values, ds["eigenvalue_imag"].values)]
    return {
        "eigenvalues": eig,
        "gap": float(ds["gap"]),
        "lifetime": float(ds["lifetime"]),
        "fock": plain(ds["fock"].values),
        "residuals": plain(ds["eigenvalue_residual"].values),
        "metastable_overlaps": plain(ds["metastable_overlap"].values) if "metastable_overlap" in ds else [],
        "sectors": [str(x) for x in ds["eigenvalue_symmetry_sector"].values] if "eigenvalue_symmetry_sector" in ds else [],
    }


@app.command()
@model_command
def lifetime(
    model,
    fock: Annotated[Optional[int], typer.Option("--fock", help="Fock levels per mode; default: enlarged until the steady state changes by ≤ --tol and the gap by ≤ --gap-rtol.")] = None,
    eigenvalues: Annotated[int, typer.Option("--eigenvalues", help="Eigenvalues per symmetry sector (≥ 2).")] = 3,
    tol: Annotated[float, typer.Option("--tol", help="Target accuracy of the stationary occupations, second moments and overlap distribution.")] = 1e-6,
    gap_rtol: Annotated[float, typer.Option("--gap-rtol", help="Target relative accuracy of the gap in the Fock cutoff.")] = 1e-3,
    method: Annotated[str, typer.Option("--method", help="auto (sparse LU for small sectors, Arnoldi on L above or when the LU would not fit; preconditioned Davidson for the matrix-free M ≥ 2 polaron sectors) | shift-invert | arnoldi | propagator | davidson")] = "auto",
    basis: Annotated[str, typer.Option("--basis", help="auto (polaron from N_sp = 8 on, plain below) | plain (Dicke ⊗ Fock) | polaron (modes displaced by the stationary field of each spin configuration: the cutoff counts fluctuations, 10–12 at any N_sp).")] = "auto",
    vary: Annotated[Optional[str], typer.Option("--vary", help="n_spins=START:STOP:COUNT or n_spins=8,16,24: the lifetime-vs-N table.")] = None,
    max_memory: Annotated[float, typer.Option("--max-memory", help="Memory budget in GiB; larger problems fail before allocating.")] = 6.0,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the labelled result as NetCDF.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="With --vary: figure of the lifetime against N_sp.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {eigenvalues, gap, lifetime, fock, residuals, metastable_overlaps} (with --vary: n_spins and lists of those).")] = False,
):
    """Exact finite-N steady state, Liouvillian gap (lifetime = 1/gap) and extreme metastable states."""
    import xarray as xr

    from ..quantum.metastability import BASES, FockCutoffWarning, lifetime as compute

    if basis not in BASES:
        fail(f"--basis must be one of {', '.join(BASES)}, got {basis!r}")

    if vary is not None:
        name, _, values = vary.partition("=")
        if name.strip() != "n_spins" or not values:
            fail(f"--vary: only n_spins=... can be varied here, got {vary!r}")
        sizes = _sizes(values)
    else:
        if model.thermodynamic_limit:
            fail("the lifetime needs a finite number of spins: give --n-spins N (or --patterns, or --vary n_spins=...)")
        sizes = [model.n_spins]
    runs, notes = [], []
    for n in sizes:
        m = model if vary is None else model.replace(n_spins=n, patterns=None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FockCutoffWarning)
            try:
                ds = compute(m, fock="auto" if fock is None else fock, tol=tol, gap_rtol=gap_rtol, eigenvalues=eigenvalues,
                             method=method, max_memory=max_memory * 2**30, basis=basis)
            except MemoryError as exc:
                fail(str(exc))
        for w in caught:
            notes.append(f"N_sp = {n}: {w.message}")
            typer.echo(f"warning: N_sp = {n}: {w.message}", err=True)
        runs.append(ds)
    if out is not None:
        from ..io import save_dataset

        save_dataset(runs[0] if vary is None else xr.concat(
            [r.drop_dims(["overlap_value", "eigenvalue", "metastable"], errors="ignore") for r in runs],
            dim=xr.DataArray(sizes, dims="n_spins", name="n_spins")), out)
    if plot is not None:
        if vary is None:
            fail("--plot needs --vary n_spins=... (the figure is the lifetime against N_sp)")
        from ..plotting_lifetime import plot_lifetime

        plot_lifetime(sizes, [float(r["lifetime"]) for r in runs], [bool(r["gap_converged"]) for r in runs], plot,
                      title=f"$g_0 = {model.g0:g}$")
    if as_json:
        if vary is None:
            print_json(_record(runs[0]))
        else:
            recs = [_record(r) for r in runs]
            print_json({"n_spins": sizes, **{key: [r[key] for r in recs] for key in recs[0]},
                        "gap_converged": [bool(r["gap_converged"]) for r in runs]})
        return
    from .common import console as Console
    from .common import titled_table

    console = Console()
    if vary is None:
        ds = runs[0]
        table = titled_table(f"Liouvillian spectrum, N_sp = {model.n_spins}   ({model!r})")
        for name in ("", "Re λ", "Im λ", "sector", "residual"):
            table.add_column(name, justify="right")
        for i in range(ds.sizes["eigenvalue"]):
            table.add_row(str(i), f"{float(ds.eigenvalue_real[i]):+.6e}", f"{float(ds.eigenvalue_imag[i]):+.6e}",
                          str(ds.eigenvalue_symmetry_sector.values[i]), f"{float(ds.eigenvalue_residual[i]):.1e}")
        console.print(table)
        ms = ds["metastable_overlap"].values.tolist() if "metastable_overlap" in ds else []
        console.print(f"gap {float(ds.gap):.10e} ({ds.gap_symmetry_sector.values}, estimated error {float(ds.gap_error):.0e}), "
                      f"lifetime {float(ds.lifetime):.8g}, {ds.attrs['basis']} basis, {ds.attrs['method']}, Fock levels "
                      f"{ds.fock.values.tolist()}, stationary residual {float(ds.residual):.1e}, metastable overlaps {ms}")
        return
    table = titled_table(f"lifetime against N_sp   ({model!r})")
    for name in ("N_sp", "gap", "lifetime", "gap error", "basis", "method", "Fock", "converged", "metastable |ξ|",
                 "seconds"):
        table.add_column(name, justify="right")
    for n, ds in zip(sizes, runs):
        ms = np.max(np.abs(ds["metastable_overlap"].values)) if "metastable_overlap" in ds else float("nan")
        table.add_row(str(n), f"{float(ds.gap):.6e}", f"{float(ds.lifetime):.6g}", f"{float(ds.gap_error):.0e}",
                      ds.attrs["basis"], ds.attrs["method"], str(ds.fock.values.tolist()), str(bool(ds.gap_converged)),
                      f"{ms:.4f}", f"{ds.attrs['elapsed_seconds']:.1f}")
    console.print(table)
