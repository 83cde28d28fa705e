"""Figures for the associative-memory experiments (:mod:`opendicke.memory`).

Every function takes the labelled result, returns the matplotlib Figure and saves it when given a path
(a path without suffix is saved as PNG and PDF). Patterns are numbered from 1 and coloured as everywhere else.
"""

from __future__ import annotations

import numpy as np

from .plotting import COLUMN_WIDTH, _plt, pattern_color, save_figure

__all__ = ["plot_recognition_map", "plot_selective_regime", "plot_census", "plot_crosstalk", "plot_transient_map"]


def _edges(values):
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def plot_recognition_map(ds, path=None, *, title: str | None = None):
    """Heat maps over (g0, p), one panel per pattern, with the analytic boundaries drawn on top.

    Thermodynamic limit: colour = stationary |ξ_ν| where the pattern is ``retrievable`` (robust); grey where it
    is retrievable only on the start's invariant subspace (a saddle in the full space). Finite N_sp: colour =
    success probability over the samples. Lines: g_c/√(1 − 2p) (existence, dashed) and g_stab (robust, solid);
    crosses: the numerically refined existence boundary (TL).
    """
    plt = _plt()
    from matplotlib.colors import ListedColormap

    pats = ds["pattern"].values
    n = pats.size
    ncols = 2 if n > 1 else 1
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(COLUMN_WIDTH * (1.0 if ncols == 1 else 2.0) * 0.9, 2.0 * nrows + 0.4),
                             sharex=True, sharey=True, squeeze=False)
    g0, flips = ds["g0"].values, ds["flip"].values
    xe, ye = _edges(g0), _edges(flips)
    tl = "retrievable" in ds and "sample" not in ds.dims
    mesh = None
    for k, mu in enumerate(pats):
        ax = axes.flat[k]
        sel = ds.sel(pattern=mu)
        if tl:
            robust = sel["retrievable"].values
            sub_only = sel["retrievable_on_subspace"].values & ~robust
            ax.pcolormesh(xe, ye, np.where(sub_only, 1.0, np.nan), cmap=ListedColormap(["0.75"]), vmin=0, vmax=1,
                          shading="flat", rasterized=True)
            mesh = ax.pcolormesh(xe, ye, np.where(robust, sel["overlap"].values, np.nan), cmap="viridis", vmin=0, vmax=1,
                                 shading="flat", rasterized=True)
        else:
            mesh = ax.pcolormesh(xe, ye, sel["success_probability"].values, cmap="magma", vmin=0, vmax=1,
                                 shading="flat", rasterized=True)
            dev = np.abs(sel["deviation"].values)
            if np.isfinite(dev).any():
                ax.text(0.97, 0.04, f"recognised: $|\\langle|\\xi_\\nu|\\rangle - $formula$| \\leq {np.nanmax(dev):.2g}$",
                        transform=ax.transAxes, ha="right", va="bottom", fontsize=5.5,
                        bbox=dict(fc="w", ec="none", alpha=0.75, pad=1))
        dense = np.linspace(flips.min(), min(flips.max(), 0.499), 400)
        gc = float(sel["g_crit"])
        r = np.abs(1 - 2 * dense)
        ax.plot(gc / np.sqrt(r), dense, "--", color="w" if not tl else "k", lw=0.9)
        robust_factor = float(sel["robust_theory"].values[0] / sel["boundary_theory"].values[0]) \
            if np.isfinite(sel["robust_theory"].values[0]) else np.nan
        if np.isfinite(robust_factor) and robust_factor > 1 + 1e-9:
            ax.plot(gc * robust_factor / np.sqrt(r), dense, "-", color="C3", lw=0.9)
        if "boundary" in sel:
            ax.plot(sel["boundary"].values, flips, "x", color="k", ms=2.5, mew=0.6)
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        ax.text(0.97, 0.95, f"$\\nu = {int(mu)}$", transform=ax.transAxes, ha="right", va="top", color=pattern_color(int(mu)),
                fontsize=8, fontweight="bold", bbox=dict(fc="w", ec="none", alpha=0.7, pad=1))
        if k % ncols == 0:
            ax.set_ylabel("flipped fraction $p$")
        if k >= n - ncols:
            ax.set_xlabel("coupling $g_0$")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], ls="--", color="k", lw=0.9), Line2D([], [], color="C3", lw=0.9)]
    labels = ["$g_c/\\sqrt{1-2p}$ (existence)", "$g_{stab}$ (full-space stable)"]
    if tl:
        handles.append(Patch(fc="0.75"))
        labels.append("stable on subspace only")
    if "boundary" in ds:
        handles.append(Line2D([], [], ls="", marker="x", color="k", ms=3))
        labels.append("boundary, numerical")
    fig.legend(handles, labels, loc="lower center", ncol=4 if len(handles) > 3 else 3, frameon=False, fontsize=6.5)
    fig.tight_layout(rect=(0, 0.06, 0.88, 0.96 if title else 1.0))
    cax = fig.add_axes([0.9, 0.15, 0.02, 0.7])
    cb = fig.colorbar(mesh, cax=cax)
    if tl:
        cb.set_label("stationary $|\\xi_\\nu|$ (retrievable)")
    else:
        cb.set_label(f"success probability ({ds.sizes['sample']} samples)")
    if title:
        fig.suptitle(title, fontsize=8)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_selective_regime(ds, path=None, *, finite=None):
    """Which patterns can be held, vs g0: one row per (flip, pattern), hatched where the state is retrievable only on
    its subspace, solid where it is robust; thin ticks at the closed-form thresholds. ``ds`` is a thermodynamic-limit
    :func:`~opendicke.memory.recognition_map`. ``finite`` (optional) is a finite-N map whose success probability is
    drawn as a line in each row."""
    plt = _plt()
    pats, flips, g0 = ds["pattern"].values, ds["flip"].values, ds["g0"].values
    step = np.median(np.diff(g0)) if g0.size > 1 else 0.01
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 1.0 + 0.3 * pats.size * flips.size))
    y, ticks, labels = 0.0, [], []
    for j, p in enumerate(flips):
        for mu in pats[::-1]:
            sel = ds.sel(pattern=mu, flip=p)
            c = pattern_color(int(mu))
            for mask, style in ((sel["retrievable_on_subspace"].values & ~sel["retrievable"].values,
                                 dict(fc="none", ec=c, hatch="////", lw=0.0)),
                                (sel["retrievable"].values, dict(fc=c, ec="none"))):
                for g in g0[mask]:
                    ax.add_patch(plt.Rectangle((g - step / 2, y - 0.35), step, 0.7, **style))
            for value, ls in ((float(sel["boundary_theory"]), ":"), (float(sel["robust_theory"]), "-")):
                if np.isfinite(value):
                    ax.plot([value, value], [y - 0.45, y + 0.45], ls, color="k", lw=0.8)
            if finite is not None and p in finite["flip"].values:
                fs = finite.sel(pattern=mu, flip=p)
                ax.plot(fs["g0"].values, y - 0.35 + 0.7 * fs["success_probability"].values, color="k", lw=0.7,
                        marker=".", ms=2)
            ticks.append(y)
            labels.append(f"$\\nu={int(mu)}$" + (f", $p={p:g}$" if flips.size > 1 else ""))
            y += 1.0
        y += 0.5
    ax.set_yticks(ticks, labels)
    ax.set_xlim(g0[0] - step, g0[-1] + step)
    ax.set_ylim(-0.8, y - 0.7)
    ax.set_xlabel("coupling $g_0$")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(fc="0.4"), Patch(fc="none", ec="0.4", hatch="////"), Line2D([], [], ls=":", color="k"),
               Line2D([], [], color="k")]
    labels = ["robust (full space)", "subspace only", "$g_c/\\sqrt{1-2p}$", "$g_{stab}$"]
    if finite is not None:
        handles.append(Line2D([], [], color="k", marker=".", lw=0.7))
        n_sp = finite.attrs.get("n_spins", "?")
        labels.append(f"success prob., $N_{{sp}}={n_sp}$")
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False, fontsize=6)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


_OUTCOME_COLORS = {"recognition": "C2", "mixture": "C1", "paramagnetic": "C0", "non-stationary": "C3", "undecided": "0.6"}


def plot_census(census, path=None, *, examples=None):
    """(top) Fractions of outcomes vs g0, stacked, one panel per kind of start; (bottom) one example trajectory
    ξ_μ(t) per outcome found (from :func:`~opendicke.memory.census_examples`)."""
    plt = _plt()
    kinds = [k for k in census["start_group"].values if k != "all"] or ["all"]
    n_ex = 0 if examples is None else examples.sizes["example"]
    ncols = max(len(kinds), 1)
    rows = 1 + (1 if n_ex else 0)
    fig = plt.figure(figsize=(2 * COLUMN_WIDTH, 2.2 * rows))
    grid = fig.add_gridspec(rows, max(ncols, n_ex))
    g0 = census["g0"].values
    for a, kind in enumerate(kinds):
        ax = fig.add_subplot(grid[0, a * max(ncols, n_ex) // ncols: (a + 1) * max(ncols, n_ex) // ncols])
        frac = census["fraction"].sel(start_group=kind)
        bottom = np.zeros(g0.size)
        for name in census["outcome_name"].values:
            v = frac.sel(outcome_name=name).values
            if g0.size > 1:
                ax.fill_between(g0, bottom, bottom + v, color=_OUTCOME_COLORS[str(name)], lw=0, label=str(name), step="mid")
            else:
                ax.bar(g0, v, bottom=bottom, color=_OUTCOME_COLORS[str(name)], label=str(name), width=0.05)
            bottom = bottom + v
        count = int((census["start_kind"].values == kind).sum()) if kind != "all" else census.sizes["start"]
        ax.set_title(f"{kind} starts ({count})", fontsize=7)
        ax.set_xlabel("coupling $g_0$")
        ax.set_ylim(0, 1)
        ax.set_xlim(g0.min(), g0.max())
        if a == 0:
            ax.set_ylabel("fraction of starts")
        if a == len(kinds) - 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6, frameon=False)
    if n_ex:
        t = examples["time"].values
        for e in range(n_ex):
            ax = fig.add_subplot(grid[1, e])
            for k, mu in enumerate(examples["pattern"].values):
                ax.plot(t, examples["overlap"].values[e, :, k], color=pattern_color(int(mu)), lw=0.8, label=f"$\\mu={int(mu)}$")
            ax.set_title(f"{examples['outcome'].values[e]}, $g_0={float(examples['g0'].values[e]):g}$", fontsize=7,
                         color=_OUTCOME_COLORS[str(examples['outcome'].values[e])])
            ax.set_xlabel("time $t$")
            ax.set_ylim(-1.02, 1.02)
            if e == 0:
                ax.set_ylabel("overlap $\\xi_\\mu(t)$")
                ax.legend(fontsize=5.5, ncol=2, frameon=False, loc="lower right")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_crosstalk(ds, path=None, *, selectivity=None):
    """(a) |shift of the recognised overlap| vs the load M/N_sp (window mean of the dynamics, filled; fully
    polarised fixed point, open; dashed: a load² guide fitted to the means); (b) |threshold shift| vs N_sp per M;
    (c, optional) the smallest g0 on the grid where the pattern start succeeds in at least half the samples, vs
    N_sp, from ``selectivity`` = {N_sp: finite-N recognition map at one flip} (error bar: one grid step)."""
    plt = _plt()
    panels = 3 if selectivity else 2
    fig, axes = plt.subplots(1, panels, figsize=(COLUMN_WIDTH * panels * 0.75, 2.5))
    Ms, Ns = ds["n_modes"].values, ds["n_spins"].values
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.85, Ms.size))
    ax = axes[0]
    gi = 0
    for a, M in enumerate(Ms):
        load = M / Ns
        dyn = np.abs(ds["shift"].isel(n_modes=a, g0=gi).values)  # (N, seed)
        sta = np.abs(ds["shift_static"].isel(n_modes=a, g0=gi).values)
        ax.loglog(np.repeat(load, dyn.shape[1]), dyn.ravel(), "o", color=colors[a], ms=3, label=f"$M={M}$")
        ax.loglog(np.repeat(load, sta.shape[1]), sta.ravel(), "o", color=colors[a], ms=3, fillstyle="none", mew=0.6)
    loads = (Ms[:, None] / Ns[None, :]).ravel()
    mean_shift = np.abs(ds["shift"].isel(g0=gi).mean("seed").values).ravel()
    good = np.isfinite(mean_shift) & (mean_shift > 0)
    if good.sum() >= 2:
        coef = np.exp(np.mean(np.log(mean_shift[good]) - 2 * np.log(loads[good])))
        grid = np.geomspace(loads.min(), loads.max(), 20)
        ax.loglog(grid, coef * grid**2, "--", color="0.5", lw=0.8, label=f"${coef:.0f}\\,(M/N_{{sp}})^2$")
    ax.set_xlabel("load $M/N_{sp}$")
    ax.set_ylabel("$|\\,|\\xi_1| - $Eq. (12)$\\,|$")
    ax.legend(fontsize=6, frameon=False)
    ax.set_title(f"(a) $g_0 = {float(ds['g0'].values[gi]):g}$; open: fully polarised", fontsize=7)
    ax = axes[1]
    for a, M in enumerate(Ms):
        sh = np.abs(ds["threshold_shift"].isel(n_modes=a).values)
        ax.loglog(np.repeat(Ns, sh.shape[1]), sh.ravel(), "s", color=colors[a], ms=3, label=f"$M={M}$")
        ax.loglog(Ns, np.nanmean(sh, axis=1), "-", color=colors[a], lw=0.8)
    ax.set_xlabel("number of spins $N_{sp}$")
    ax.set_ylabel("$|g_c(N_{sp}) - g_c|$, pattern 1")
    ax.set_title("(b) threshold shift", fontsize=7)
    if selectivity:
        ax = axes[2]
        sizes = np.array(sorted(selectivity))
        first = next(iter(selectivity.values())).isel(flip=0)
        for mu in first["pattern"].values:
            onset, step = [], []
            for n_sp in sizes:
                sel = selectivity[n_sp].isel(flip=0).sel(pattern=mu)
                g, prob = sel["g0"].values, sel["success_probability"].values
                ok = np.nonzero(prob >= 0.5)[0]
                onset.append(g[ok[0]] if ok.size else np.nan)
                step.append(np.median(np.diff(g)) if g.size > 1 else 0.0)
            c = pattern_color(int(mu))
            ax.errorbar(sizes, onset, yerr=[step, np.zeros(len(step))], fmt="o-", color=c, ms=3, lw=0.9, capsize=1.5,
                        label=f"$\\nu={int(mu)}$")
            ax.axhline(float(first["robust_theory"].sel(pattern=mu)), color=c, lw=0.7, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("number of spins $N_{sp}$")
        ax.set_ylabel("$g_0$ where success $\\geq 1/2$")
        ax.set_title("(c) from the pattern start; dashed: $g_{stab}$ (TL)", fontsize=7)
        ax.legend(fontsize=6, frameon=False, ncol=2)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig



def plot_transient_map(ds, path=None, *, title: str | None = None):
    """Transient retrieval over (g0, rate): one heat map of |ξ_ν(t_obs)| per pattern (white contour: retrieved at
    t_obs; dashed: the lossless g_c(ν)) and a last panel with the number of patterns retrieved at t_obs (the
    pattern-selective regime is where it lies strictly between 0 and M)."""
    plt = _plt()

    rate = str(ds.attrs["rate"])
    symbol = {"gamma_phi": r"$\gamma_\phi$", "gamma_down": r"$\gamma_\downarrow$", "gamma_up": r"$\gamma_\uparrow$"}[rate]
    pats = ds["pattern"].values
    g0, rates = ds["g0"].values, ds[rate].values
    n = pats.size + 1
    ncols = min(n, 3)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(COLUMN_WIDTH * 2.0, 1.9 * nrows + 0.5), sharex=True, sharey=True,
                             squeeze=False)
    gx, gy = _edges(g0), _edges(rates)
    for i, p in enumerate(pats):
        ax = axes.flat[i]
        values = ds["overlap"].sel(pattern=p).values.T  # (rate, g0)
        mesh = ax.pcolormesh(gx, gy, values, vmin=0.0, vmax=1.0, cmap="viridis", shading="flat")
        if 0 < ds["retrieved"].sel(pattern=p).values.sum() < ds["retrieved"].sel(pattern=p).size and g0.size > 1 \
                and rates.size > 1:
            ax.contour(g0, rates, ds["retrieved"].sel(pattern=p).values.T.astype(float), levels=[0.5], colors="white",
                       linewidths=0.9)
        gc = float(ds["g_crit_lossless"].sel(pattern=p))
        if np.isfinite(gc):
            ax.axvline(gc, color=pattern_color(int(p)), ls="--", lw=1.0)
        ax.set_title(rf"pattern {int(p)}: $|\xi_{{{int(p)}}}(t={ds.attrs['t_obs']:g})|$", fontsize=8)
    fig.colorbar(mesh, ax=axes.flat[: pats.size].tolist(), shrink=0.8, pad=0.02)
    ax = axes.flat[pats.size]
    counts = ds["n_retrieved"].values.T
    cmap = plt.get_cmap("magma", pats.size + 1)
    mesh2 = ax.pcolormesh(gx, gy, counts, vmin=-0.5, vmax=pats.size + 0.5, cmap=cmap, shading="flat")
    ax.set_title("patterns retrieved", fontsize=8)
    fig.colorbar(mesh2, ax=ax, ticks=np.arange(pats.size + 1), shrink=0.8, pad=0.02)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(r"$g_0$")
    for ax in axes[:, 0]:
        ax.set_ylabel(symbol)
    if title:
        fig.suptitle(title, fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig
