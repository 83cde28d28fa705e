"""Figures of the fluctuation solvers (matplotlib, Agg backend)."""

from __future__ import annotations


import numpy as np

from .plotting import _plt, pattern_color, save_figure

__all__ = ["plot_finite_n_figure3", "plot_retrieval_spread"]


def plot_finite_n_figure3(ds, path=None):
    """|ξ_ν| at the fixed late time vs g0 per N_sp (markers with the quantum spread as bars) over Eq. (12)."""
    plt = _plt()
    M = ds.sizes["pattern"]
    sizes = ds["n_spins"].values
    fig, axes = plt.subplots(1, M, figsize=(3.2 * M, 3.2), sharey=True, constrained_layout=True)
    axes = np.atleast_1d(axes)
    markers = "osD^v"
    g0 = ds["g0"].values
    for nu in range(M):
        ax = axes[nu]
        ax.plot(*_eq12_curve(ds, nu), "k-", lw=1.2, label="Eq. (12)")
        for i, n in enumerate(sizes):
            y = ds["overlap"].values[i, :, nu]
            err = ds["overlap_std"].values[i, :, nu]
            ax.errorbar(g0 + 0.004 * (i - len(sizes) / 2), y, yerr=err, fmt=markers[i % len(markers)], ms=3.5, lw=0.8,
                        color=pattern_color(nu + 1), alpha=0.4 + 0.6 * (i + 1) / len(sizes), label=f"$N_{{sp}}={n}$")
        ax.plot(g0, ds["overlap_meanfield"].values[-1, :, nu], ":", color="gray", lw=1, label=f"mean field ($N_{{sp}}={sizes[-1]}$)")
        ax.set_title(f"from pattern {nu + 1}")
        ax.set_xlabel("$g_0$")
    axes[0].set_ylabel(f"$|\\xi_\\nu(t={ds.attrs['t_final']:g})|$ (bars: quantum spread)")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"finite-N Fig. 3 ({ds.attrs['method']})", fontsize=10)
    return save_figure(fig, path) if path is not None else fig


def _eq12_curve(ds, nu: int):
    """Eq. (12) for pattern ν on a fine g0 grid (closed form, thermodynamic limit; 0 below g_c)."""
    from .theory import retrieval_overlap

    g0 = ds["g0"].values
    fine = np.linspace(g0.min(), g0.max(), 400)
    omega, mode, kappa = ds.attrs["omega"], np.atleast_1d(ds.attrs["omega_modes"])[nu], np.atleast_1d(ds.attrs["kappa"])[nu]
    try:
        return fine, retrieval_overlap(fine, omega, mode, kappa)
    except ValueError:  # Eq. (12) does not apply (e.g. κ = 0): the coarse stored values (NaN)
        return g0, ds["overlap_theory"].values[:, nu]


def plot_retrieval_spread(datasets: dict, path=None, *, title: str | None = None):
    """ξ_ν(t) ± its quantum spread from each pattern start, one curve per N_sp ({N_sp: Dataset with ``initial``})."""
    plt = _plt()
    first = next(iter(datasets.values()))
    M = first.sizes["pattern"]
    fig, axes = plt.subplots(1, M, figsize=(3.2 * M, 3.0), sharey=True, constrained_layout=True)
    axes = np.atleast_1d(axes)
    for nu in range(M):
        ax = axes[nu]
        for i, (n, ds) in enumerate(datasets.items()):
            pick = ds.isel(initial=nu, pattern=nu)
            t = ds["time"].values
            y, s = pick["overlap"].values, pick["overlap_std"].values
            line, = ax.plot(t, y, lw=1.0, label=f"$N_{{sp}}={n}$")
            ax.fill_between(t, y - s, y + s, color=line.get_color(), alpha=0.2, lw=0)
            ax.plot(t, pick["overlap_meanfield"].values, ":", color=line.get_color(), lw=1,
                    label="mean field (same patterns)" if i == len(datasets) - 1 else None)
        ax.set_title(f"from pattern {nu + 1}")
        ax.set_xlabel("$t$")
    axes[0].set_ylabel(r"$\xi_\nu(t)$ ± quantum spread")
    axes[-1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path) if path is not None else fig
