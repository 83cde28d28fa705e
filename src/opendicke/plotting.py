"""Figures. Every function takes a labelled result, returns the matplotlib Figure and can save it.

Sized for a single journal column (3.4 in wide); patterns are numbered from 1 and coloured consistently
(pattern μ always has the same colour).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_evolution", "save_figure", "pattern_color", "COLUMN_WIDTH"]

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

    return matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, 8))[(mu - 1) % 8] if mu <= 8 else f"C{mu % 10}"


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
    """ξ_μ(t) and occupations n_μ(t) of one mean-field (or quantum) evolution.

    ``ds`` has dims (time, pattern), optionally a leading ``initial`` dim (one column of panels per
    initial state). ``theory`` maps an initial-state label to its Eq. (12) overlap and occupation, drawn
    as dashed lines.
    """
    plt = _plt()
    starts = list(ds["initial"].values) if "initial" in ds.dims else [None]
    ncols = len(starts)
    fig, axes = plt.subplots(2, ncols, figsize=(COLUMN_WIDTH * max(1, ncols / 2), 3.2), sharex=True, squeeze=False)
    t = ds["time"].values
    units = "paper" if "paper" in ds.attrs.get("units", "") else "per spin"
    for col, start in enumerate(starts):
        sel = ds if start is None else ds.sel(initial=start)
        ax_xi, ax_n = axes[0, col], axes[1, col]
        for mu in ds["pattern"].values:
            c = pattern_color(int(mu))
            ax_xi.plot(t, sel["overlap"].sel(pattern=mu).values, color=c, label=f"$\\mu={int(mu)}$")
            ax_n.plot(t, sel["occupation"].sel(pattern=mu).values, color=c)
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
