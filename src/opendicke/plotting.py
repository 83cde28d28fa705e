"""Figures. Every function takes a labelled result, returns the matplotlib Figure and can save it.

Sized for a single journal column (3.4 in wide); patterns are numbered from 1 and coloured consistently
(pattern μ always has the same colour).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_evolution", "plot_phase_diagram", "plot_convergence", "save_figure", "pattern_color", "COLUMN_WIDTH"]

COLUMN_WIDTH = 3.4  # inches, one column of Phys. Rev. Lett.


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
                         "ytick.labelsize": 7, "lines.linewidth": 1.2, "savefig.dpi": 200})
    return plt


def pattern_color(mu: int):
    """Colour of pattern μ (1-based), the same in every figure."""
    import matplotlib

    return matplotlib.colormaps["tab10"]((mu - 1) % 10)


def save_figure(fig, path: str | Path) -> list[Path]:
    """Save as the given file; a path without suffix is saved as both PNG and PDF. Writes are atomic."""
    from .io import atomic_path

    path = Path(path)
    targets = [path] if path.suffix else [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for target in targets:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", bbox_inches="tight")
    return targets


def plot_evolution(ds, path=None, *, theory: dict | None = None, title: str | None = None):
    """ξ_μ(t) and occupations n_μ(t) of one mean-field (or quantum) evolution; an exact run's mean-field
    reference (``overlap_meanfield``) is drawn dotted.

    ``ds`` has dims (time, pattern), optionally a leading ``initial`` dim (one column of panels per
    initial state). ``theory`` maps an initial-state label to its Eq. (12) overlap and occupation, drawn
    as dashed lines.
    """
    plt = _plt()
    starts = list(ds["initial"].values) if "initial" in ds.dims else [None]
    ncols = len(starts)
    fig, axes = plt.subplots(2, ncols, figsize=(COLUMN_WIDTH * max(1, ncols / 2), 3.2), sharex=True, squeeze=False)
    t = ds["time"].values
    from .results import UNITS_PAPER

    units = "paper" if ds.attrs.get("units") == UNITS_PAPER else "per spin"
    for col, start in enumerate(starts):
        sel = ds if start is None else ds.sel(initial=start)
        ax_xi, ax_n = axes[0, col], axes[1, col]
        for mu in ds["pattern"].values:
            c = pattern_color(int(mu))
            ax_xi.plot(t, sel["overlap"].sel(pattern=mu).values, color=c, label=f"$\\mu={int(mu)}$")
            ax_n.plot(t, sel["occupation"].sel(pattern=mu).values, color=c)
            if "overlap_meanfield" in sel:  # an exact run carries its mean-field reference
                mf_label = "mean field" if mu == ds["pattern"].values[0] else None
                ax_xi.plot(t, sel["overlap_meanfield"].sel(pattern=mu).values, color=c, ls=":", lw=1, label=mf_label)
                ax_n.plot(t, sel["occupation_meanfield"].sel(pattern=mu).values, color=c, ls=":", lw=1)
        if theory and start in theory:
            th = theory[start]
            ax_xi.axhline(th["overlap"], color="k", ls="--", lw=0.8, label="Eq. (12)")
            ax_n.axhline(th["occupation"], color="k", ls="--", lw=0.8)
        ax_xi.set_title(start if start is not None else (title or ""), fontsize=7)
        ax_n.set_xlabel("time $t$ (units of $1/\\kappa$)")
        if col == 0:
            ax_xi.set_ylabel("overlap $\\xi_\\mu(t)$")
            ax_n.set_ylabel("$\\langle a_\\mu^\\dagger a_\\mu\\rangle/N_{sp}$" if units == "per spin" else "$|\\alpha_\\mu|^2$ (paper units)")
        ax_xi.set_ylim(-1.05, 1.05)
    axes[0, 0].legend(loc="lower right", ncol=2, frameon=False)
    if title and ncols > 1:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


_MARKERS = {"stable": dict(fillstyle="full"), "marginal": dict(fillstyle="none"), "unstable": dict(fillstyle="none")}


def plot_phase_diagram(ds, path=None, *, theory=None, paper_units: bool = False):
    """Paper Fig. 3: stationary |ξ_ν| (a) and occupation n_ν (b) vs g0, each pattern started from itself.

    ``ds`` is a steady-state result with dims (g0, initial, pattern) where initial state i is pattern i+1.
    Markers are the numerics (filled: stable against every perturbation; open: stable only on the start's
    invariant subspace, i.e. ``full_space_stability`` is not "stable"; ×: not stationary or not converged,
    at the trajectory's final overlap); lines are Eq. (12)
    from ``theory`` = {"g0": grid, "overlap": (pattern, g0), "occupation": (pattern, g0)}, by default from the
    Eq. (12) values a :func:`~opendicke.meanfield.steady.phase_diagram` result carries (``overlap_eq12`` on its dense
    grid, else ``overlap_theory`` at the computed couplings).
    """
    plt = _plt()
    if theory is None:
        for grid, x, n in (("g0_eq12", "overlap_eq12", "occupation_eq12"), ("g0", "overlap_theory", "occupation_theory")):
            if x in ds and n in ds:
                theory = {"g0": ds[grid].values, "overlap": ds[x].transpose("initial", grid).values,
                          "occupation": ds[n].transpose("initial", grid).values}
                break
    fig, (ax_a, ax_b) = plt.subplots(2, 1, figsize=(COLUMN_WIDTH, 4.4), sharex=True)
    g0 = ds["g0"].values
    patterns = ds["pattern"].values
    for i, mu in enumerate(patterns):
        c = pattern_color(int(mu))
        sel = ds.isel(initial=i).sel(pattern=mu)
        xi = np.abs(sel["overlap"].values)
        occ = sel["occupation"].values
        cls = sel["classification"].values.astype(object)
        if "full_space_stability" in sel:
            robust = sel["full_space_stability"].values == "stable"
            cls = np.where((cls == "stable") & ~robust, "unstable", cls)
        if theory is not None:
            ax_a.plot(theory["g0"], theory["overlap"][i], color=c, lw=1.0, zorder=1)
            ax_b.plot(theory["g0"], theory["occupation"][i], color=c, lw=1.0, zorder=1)
        for kind, style in _MARKERS.items():
            pick = cls == kind
            if pick.any():
                label = f"$\\nu={int(mu)}$" if kind == "stable" else None
                for ax, y in ((ax_a, xi), (ax_b, occ)):
                    ax.plot(g0[pick], y[pick], "o", ms=2.6, mew=0.6, color=c, label=label if ax is ax_a else None,
                            zorder=2, **style)
        bad = ~np.isin(cls, list(_MARKERS))
        if bad.any():
            ax_a.plot(g0[bad], np.abs(sel["final_overlap"].values[bad]), "x", ms=3, color=c, zorder=3)
    ax_a.set_ylabel("stationary overlap $|\\xi_\\nu|$")
    ax_b.set_ylabel("$\\langle a_\\nu^\\dagger a_\\nu\\rangle/N$ (paper units)" if paper_units else
                    "$\\langle a_\\nu^\\dagger a_\\nu\\rangle/N_{sp}$")
    ax_b.set_xlabel("coupling $g_0$ (units of $\\kappa$)")
    ax_a.set_ylim(-0.03, 1.03)
    ax_a.text(0.02, 0.95, "(a)", transform=ax_a.transAxes, va="top")
    ax_b.text(0.02, 0.95, "(b)", transform=ax_b.transAxes, va="top")
    handles, labels = ax_a.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], color="k", lw=1.0), Line2D([], [], ls="", marker="o", color="k", fillstyle="none", ms=3)]
    labels += ["Eq. (12)", "unstable in full space"]
    # panel (b) is empty above the threshold region; in (a) the legend would cover the pattern-4 branch
    ax_b.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.04, 0.94), frameon=False, ncol=1, fontsize=6.5)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_convergence(ds, path=None):
    """(a) max_t |ξ_N − ξ_MF| vs N on log-log axes with the fitted power law; (b) N·E_N(t) for every N."""
    plt = _plt()
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.4))
    n = ds["n_spins"].values
    d = ds["deviation"].values
    ax_a.loglog(n, d, "o", color="k", ms=4)
    slope, pre = ds.attrs.get("slope", np.nan), ds.attrs.get("prefactor", np.nan)
    if np.isfinite(slope):
        fitted = n[n >= ds.attrs.get("fit_from", 0)]
        grid = np.geomspace(fitted.min(), fitted.max(), 50)
        label = f"fit $\\propto N_{{sp}}^{{{slope:.2f}}}$"
        if fitted.size < n.size:
            label += f" ($N_{{sp}} \\geq {fitted.min()}$)"
        ax_a.loglog(grid, pre * grid**slope, "--", color="C3", lw=1, label=label)
        ax_a.legend(frameon=False)
    from matplotlib.ticker import NullFormatter

    ax_a.set_xticks(n, [str(v) for v in n], rotation=45 if n.size > 4 else 0)  # label the sizes computed
    ax_a.xaxis.set_minor_formatter(NullFormatter())
    ax_a.set_xlabel("number of spins $N_{sp}$")
    ax_a.set_ylabel("$\\max_t |\\xi^N(t) - \\xi^{MF}(t)|$")
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, n.size))
    for i, size in enumerate(n):
        ax_b.plot(ds["time"].values, ds["scaled_cost"].isel(n_spins=i).values, color=colors[i], label=f"$N_{{sp}}={size}$")
    ax_b.set_xlabel("time $t$ (units of $1/\\kappa$)")
    ax_b.set_ylabel("$N\\,\\mathcal{E}_N(t)$ (Eq. 9)")
    ax_b.legend(frameon=False, fontsize=6)
    ax_a.text(0.03, 0.05, "(a)", transform=ax_a.transAxes)
    ax_b.text(0.97, 0.05, "(b)", transform=ax_b.transAxes, ha="right")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_result(ds, path=None) -> tuple[object, list[str]]:
    """Re-plot any result from its Dataset (e.g. read back from NetCDF), chosen by its ``kind`` attribute.

    Returns ``(figure, notes)``; ``notes`` say what was chosen where the result has more dimensions than the
    figure shows (the first value of each extra dimension is drawn). Raises ValueError for a kind without a
    figure.
    """
    from .plotting_memory import plot_census, plot_crosstalk, plot_recognition_map

    kind = ds.attrs.get("kind", "")
    notes: list[str] = []

    def first_of(data, keep):
        extra = [d for d in data.dims if d not in keep]
        for d in extra:
            label = data[d].values[0] if d in data.coords else 0
            notes.append(f"{d} has {data.sizes[d]} values: drawing {d} = {label}")
        return data.isel({d: 0 for d in extra})

    if kind == "meanfield_steady_state" and "g0" in ds.dims and "initial" in ds.dims:
        ds = first_of(ds, {"g0", "initial", "pattern", "group", "component", "eigenvalue"})
        from .results import UNITS_PAPER

        return plot_phase_diagram(ds, path, paper_units=ds.attrs.get("units") == UNITS_PAPER), notes
    if kind == "recognition_map":
        return plot_recognition_map(ds, path), notes
    if kind == "attractor_census":
        return plot_census(ds, path), notes
    if kind == "crosstalk":
        return plot_crosstalk(ds, path), notes
    if kind == "quantum_convergence":
        return plot_convergence(ds, path), notes
    if "time" in ds.dims and "overlap" in ds and "occupation" in ds:  # mean-field or exact evolution
        keep = {"time", "pattern", "initial", "group", "component", "n_spins"}
        return plot_evolution(first_of(ds, keep), path), notes
    raise ValueError(f"no figure for results of kind {kind!r}; figures exist for evolutions, steady-state sweeps over g0 "
                     f"and initial, recognition maps, censuses, crosstalk and quantum convergence studies")
