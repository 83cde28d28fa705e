"""``opendicke quantum`` for models with individual spin rates: the permutation-invariant exact solver.

Called from :func:`opendicke.cli.quantum.quantum` when the model has a nonzero ``--gamma-down``,
``--gamma-up`` or ``--gamma-phi``; prints the same JSON keys where they exist (no cost function E_N yet).
"""

import warnings

import typer

from .common import Progress


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
    from .quantum import report

    def footer(record):
        change = "not measured" if record["fock_change"] is None else f"{record['fock_change']:.1e}"
        return (f"permutation-invariant Liouville space, dimension {record['dimension']}, Fock levels {record['fock']}, "
                f"top-level population ≤ {record['truncation_error']:.1e}, change on enlarging: {change}")

    report(ds, model, start, t_final=t_final, out=out, plot=plot, as_json=as_json,
           title="exact dynamics with spin dissipation", footer=footer)
