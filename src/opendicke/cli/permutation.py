"""``opendicke quantum`` for models with individual spin rates: the permutation-invariant exact solver.

Called from :func:`opendicke.cli.quantum.quantum` when the model has a nonzero ``--gamma-down``,
``--gamma-up`` or ``--gamma-phi``; prints the same JSON keys where they exist (no cost function E_N yet).
"""

import warnings

import numpy as np
import typer

from .common import Progress, plain, print_json


def run(model, start, *, t_final, times, fock, tol, out, plot, as_json):
    from ..quantum.permutation import FockCutoffWarning, solve

    if fock not in (None, "auto"):
        fock_value = fock
    else:
        fock_value = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FockCutoffWarning)
        with Progress("quantum dynamics (permutation-invariant)", enabled=False):
            ds = solve(model, start, t_final=t_final, times=times, fock=fock_value, tol=tol)
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    if out is not None:
        from ..io import save_dataset

        save_dataset(ds, out)
    if plot is not None:
        from ..plotting import plot_evolution

        plot_evolution(ds, plot, title=f"exact with spin dissipation, $N_{{sp}}={model.n_spins}$, {start.label()}")
    record = {
        "t": plain(ds["time"].values),
        "overlaps": plain(ds["overlap"].transpose("pattern", "time").values),
        "occupations": plain(ds["occupation"].transpose("pattern", "time").values),
        "method": ds.attrs["method"],
        "fock": plain(ds["fock"].values),
        "truncation_error": float(np.max(ds["truncation"].values)),
        "fock_change": plain(ds["fock_change"].values),
        "fock_converged": bool(ds["fock_converged"]),
        "dimension": int(ds.attrs["dimension"]),
        "frame": ds.attrs["solver_frame"],
        "overlaps_meanfield": plain(ds["overlap_meanfield"].transpose("pattern", "time").values),
    }
    if as_json:
        print_json(record)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"exact dynamics with spin dissipation, {start.label()} → t = {t_final:g}   ({model!r})")
    for name in ("pattern", f"ξ_μ({t_final:g}) exact", "mean field", f"n_μ({t_final:g}) exact", "mean field"):
        table.add_column(name, justify="right")
    for j, mu in enumerate(ds["pattern"].values):
        table.add_row(str(mu), f"{record['overlaps'][j][-1]:+.6f}", f"{record['overlaps_meanfield'][j][-1]:+.6f}",
                      f"{record['occupations'][j][-1]:.6f}", f"{float(ds['occupation_meanfield'][-1, j]):.6f}")
    console = Console()
    console.print(table)
    change = "not measured" if record["fock_change"] is None else f"{record['fock_change']:.1e}"
    console.print(f"permutation-invariant Liouville space, dimension {record['dimension']}, Fock levels {record['fock']}, "
                  f"top-level population ≤ {record['truncation_error']:.1e}, change on enlarging: {change}")
