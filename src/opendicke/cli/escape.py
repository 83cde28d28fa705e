"""``opendicke escape``: the semiclassical (WKB) exponent of the lifetime of a retrieved pattern, M = 1."""

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import Progress, check_out, fail, model_command, plain, print_json


def _sizes(text: str) -> list[int]:
    """"100,1000,1e6": positive whole numbers (scientific notation allowed)."""
    sizes = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--n-spins: expected comma-separated whole numbers ≥ 1, got {text!r}") from None
        if not math.isfinite(value) or value < 1 or value != round(value):
            raise ValueError(f"--n-spins: expected comma-separated whole numbers ≥ 1, got {item!r}")
        sizes.append(int(round(value)))
    if not sizes:
        raise ValueError("--n-spins: expected at least one size")
    return sizes


def _anchors(items) -> list[tuple[int, float]]:
    pairs = []
    for item in items or []:
        n, sep, tau = item.partition("=")
        try:
            if not sep:
                raise ValueError
            pair = (int(n), float(tau))
        except ValueError:
            raise ValueError(f"--anchor: expected N_SP=LIFETIME (an exact lifetime, e.g. 16=2611.5), got {item!r}") from None
        pairs.append(pair)
    return pairs


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--durations: expected comma-separated numbers, got {text!r}") from None


@app.command()
@model_command(omit=("n_spins", "seed", "patterns"))
def escape(
    model,
    n_spins: Annotated[str, typer.Option("--n-spins", help="Sizes N_sp at which to extrapolate the lifetime, comma separated (1e6 allowed).")] = "100,1000,1000000",
    anchor: Annotated[Optional[list[str]], typer.Option("--anchor", help="An exact lifetime N_SP=TAU (e.g. from `opendicke lifetime`) that fixes the prefactor A of τ ≈ A N^b e^{N S*}; repeat it: two or more also fit b. Without it only the exponent is computed (A = 1).")] = None,
    durations: Annotated[Optional[str], typer.Option("--durations", help="Path durations T at which the action is reported, comma separated and increasing (default: T*, T* + 1/γ, T* + 2/γ, with T* where the continuation ended and γ the slowest relaxation rate); the last one is the value.")] = None,
    start_coupling: Annotated[Optional[float], typer.Option("--start-coupling", help="Coupling at which the instanton is first found, then continued in g0 (default: min(g0, 1.55 g_c)).")] = None,
    segments_per_time: Annotated[float, typer.Option("--segments-per-time", help="Shooting segments per unit time (10 RK4 steps each).")] = 2.0,
    mam_steps_per_time: Annotated[float, typer.Option("--mam-steps-per-time", help="Control steps per unit time of the Gaussian minimum-action method.")] = 20.0,
    newton_tol: Annotated[float, typer.Option("--newton-tol", help="Max-norm of the shooting residual.")] = 1e-8,
    out: Annotated[Optional[Path], typer.Option("--out", help="NetCDF file for the labelled result (actions over T, the instanton).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Figure: the actions against T and the instanton (PNG/PDF by suffix; no suffix: both).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: action, action_gaussian, action_first_order, durations, per-T actions, start corrections, n_spins, log10_lifetime, prefactor, power, anchors.")] = False,
):
    """WKB exponent S* of the lifetime τ ≍ e^{N_sp S*} of a retrieved pattern (M = 1), its truncated-Wigner
    value, and lifetimes extrapolated to large N_sp (docs/semiclassical-lifetime.md)."""
    from ..fluctuations.escape import EscapeOptions, escape_action, extrapolate_lifetime

    if model.n_modes != 1:
        fail(f"escape computes the M = 1 model only: give one mode, e.g. --omega-modes 1.5 (got M = {model.n_modes})")
    check_out(out)
    check_out(plot, option="--plot")
    sizes = _sizes(n_spins)
    pairs = _anchors(anchor)
    options = EscapeOptions(durations=None if durations is None else _floats(durations), start_coupling=start_coupling,
                            segments_per_time=segments_per_time, mam_steps_per_time=mam_steps_per_time,
                            newton_tol=newton_tol)
    with Progress("escape action", enabled=not as_json) as progress:
        ds = escape_action(model, options, progress=progress)
    S = float(ds.attrs["action_quantum_limit"])
    SG = float(ds.attrs["action_gaussian_limit"])
    first = SG + float(ds.attrs["first_order_correction"])
    first = first if math.isfinite(first) else None
    extrapolation = extrapolate_lifetime(S, sizes, pairs) if math.isfinite(S) else None
    if not math.isfinite(S):
        reached = ds.attrs.get("coupling_reached", model.g0)
        where = "" if reached == model.g0 else f"; the continuation in g0 stopped at g0 = {reached:.6g}"
        typer.echo("warning: S* not obtained, no lifetimes (eps_reached = "
                   f"{plain(ds['eps_reached'].values)}{where}; try another --start-coupling)", err=True)
    if out is not None:
        from ..io import save_dataset

        save_dataset(ds, out)
    if plot is not None:
        from ..plotting_lifetime import plot_escape

        plot_escape(ds, plot)
    T = plain(ds["duration"].values)
    record = {
        "action": S if math.isfinite(S) else None,
        "action_gaussian": SG if math.isfinite(SG) else None,
        "action_first_order": first,
        "durations": T,
        "action_by_duration": plain(ds["action_quantum"].values),
        "action_gaussian_by_duration": plain(ds["action_gaussian"].values),
        "eps_reached": plain(ds["eps_reached"].values),
        "start_correction": plain(ds["start_correction"].values),
        "start_coupling": float(ds.attrs["start_coupling"]),
        "slowest_relaxation_rate": float(ds.attrs["slowest_relaxation_rate"]),
        "g_crit": float(ds.attrs["g_c"]),
        "n_spins": sizes,
        "log10_lifetime": list(extrapolation.log10_lifetime) if extrapolation else None,
        "prefactor": extrapolation.prefactor if extrapolation else None,
        "power": extrapolation.power if extrapolation else None,
        "anchors": [list(p) for p in pairs],
        "elapsed_seconds": float(ds.attrs["elapsed_seconds"]),
    }
    if as_json:
        print_json(record)
        return
    from .common import console as Console
    from .common import titled_table

    console = Console()
    table = titled_table(f"escape action against the path duration T   ({model!r})")
    for name in ("T", "S_G (truncated Wigner)", "S* (full WKB)", "start correction", "ε reached"):
        table.add_column(name, justify="right")
    for t, sg, sq, sc, er in zip(T, record["action_gaussian_by_duration"], record["action_by_duration"],
                                 record["start_correction"], record["eps_reached"]):
        table.add_row(f"{t:.1f}", f"{sg:.6f}" if sg is not None else "–", f"{sq:.6f}" if sq is not None else "–",
                      f"{sc:.1e}" if sc is not None else "–", f"{er:g}")
    console.print(table)
    console.print(f"S* = {S:.6f}, S_G = {SG:.6f}, S_G + first order = {first if first is not None else float('nan'):.6f} (at the longest T); slowest "
                  f"relaxation rate γ = {record['slowest_relaxation_rate']:.6g}, g_c = {record['g_crit']:.6g}, "
                  f"continued from g0 = {record['start_coupling']:g}, {record['elapsed_seconds']:.1f} s")
    if extrapolation is None:
        return
    if extrapolation.prefactor is None:
        head = "τ ≈ e^{N_sp S*}: the prefactor is not computed (give --anchor N_SP=TAU to fit it to exact lifetimes)"
    elif extrapolation.power == 0.0 and len(pairs) == 1:
        head = (f"τ ≈ A e^{{N_sp S*}} with A = {extrapolation.prefactor:.4g} fitted to the exact lifetime at "
                f"N_sp = {pairs[0][0]}")
    else:
        head = (f"τ ≈ A N_sp^b e^{{N_sp S*}} with A = {extrapolation.prefactor:.4g}, b = {extrapolation.power:.3f} "
                f"fitted to the exact lifetimes at N_sp = {', '.join(str(n) for n, _ in pairs)} (residuals in ln τ: "
                f"{', '.join(f'{r:+.3f}' for r in extrapolation.residuals)})")
    table = titled_table(head)
    for name in ("N_sp", "log10 τ (1/κ)", "τ (1/κ)"):
        table.add_column(name, justify="right")
    for n, lg in zip(sizes, extrapolation.log10_lifetime):
        table.add_row(str(n), f"{lg:.4f}", f"{10 ** lg:.4g}" if lg < 300 else "–")
    console.print(table)
