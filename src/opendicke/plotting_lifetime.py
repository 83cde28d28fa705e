"""Figures of the exact finite-N lifetime (``opendicke lifetime --vary n_spins=... --plot``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .plotting import save_figure


def fit_exponential(n_spins, lifetimes, n_min: int = 8) -> tuple[float, float]:
    """(A, r) of τ ≈ A e^{r N_sp}: least squares on ln τ over N_sp ≥ ``n_min``."""
    n = np.asarray(n_spins, dtype=float)
    tau = np.asarray(lifetimes, dtype=float)
    sel = n >= n_min
    r, ln_a = np.polyfit(n[sel], np.log(tau[sel]), 1)
    return float(np.exp(ln_a)), float(r)


def plot_lifetime(n_spins, lifetimes, converged, path, title: str = "", fit: tuple | None = None,
                  series: dict | None = None, label: str = "gap converged in the Fock cutoff") -> list[Path]:
    """Lifetime 1/|Re λ₁| against N_sp on a log scale; open markers where the Fock cutoff did not converge the gap.
    ``fit`` = (A, r, n_min): draw A e^{r N} from n_min on. ``series``: further {label: (n_spins, lifetimes)} drawn
    as lines with markers (e.g. other g0). ``path`` with a suffix writes that file; without one, PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = np.asarray(n_spins, dtype=float)
    tau = np.asarray(lifetimes, dtype=float)
    ok = np.asarray(converged, dtype=bool)
    fig, ax = plt.subplots(figsize=(4.5, 3.4), constrained_layout=True)
    ax.semilogy(n, tau, "-", color="C0", lw=1)
    ax.semilogy(n[ok], tau[ok], "o", color="C0", label=label)
    if np.any(~ok):
        ax.semilogy(n[~ok], tau[~ok], "o", mfc="none", color="C3", label="not converged")
    if fit is not None:
        a, r, n_min = fit
        x = np.linspace(n_min, n.max(), 50)
        ax.semilogy(x, a * np.exp(r * x), "--", color="k", lw=1,
                    label=rf"$\tau \approx {a:.3g}\,e^{{{r:.3f} N_{{sp}}}}$ ($N_{{sp}} \geq {n_min:g}$)")
    for i, (name, (ns, ts)) in enumerate((series or {}).items()):
        ax.semilogy(ns, ts, "sx^v"[i % 4] + ":", color=f"C{i + 1}", ms=5, lw=1, label=name)
    ax.set_xlabel("$N_{sp}$")
    ax.set_ylabel(r"lifetime $1/|\mathrm{Re}\,\lambda_1|$ ($1/\kappa$)")
    ax.set_title(title)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * (hi / lo) ** 0.6)  # headroom above the data for the legend
    ax.legend(fontsize=7, loc="upper left")
    paths = save_figure(fig, path)
    plt.close(fig)
    return paths


def plot_escape(ds, path) -> list[Path]:
    """The escape action (``opendicke escape --plot``): left, S_G and S* against the path duration T with their
    T → ∞ limits; right, the full WKB instanton (Bloch components and |α|) against time, when it was obtained."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.5, 3.3), constrained_layout=True)
    T = ds["duration"].values
    for name, label, color, limit in (("action_quantum", "$S^*$ (full WKB)", "C0", "action_quantum_limit"),
                                      ("action_gaussian", "$S_G$ (truncated Wigner)", "C1", "action_gaussian_limit")):
        ax.plot(T, ds[name].values, "o-", color=color, label=label)
        value = float(ds.attrs[limit])
        if np.isfinite(value):
            ax.axhline(value, color=color, ls=":", lw=1)
    ax.set_xlabel("path duration $T$ ($1/\\kappa$)")
    ax.set_ylabel(r"action per spin ($\tau \asymp e^{N_{sp} S}$)")
    ax.legend(fontsize=7)
    if "instanton_bloch" in ds:
        t = ds["time"].values
        for i, c in enumerate("xyz"):
            ax2.plot(t, ds["instanton_bloch"].values[i], lw=0.8, label=f"$s_{c}$")
        ax2.plot(t, np.hypot(ds["instanton_alpha_re"].values, ds["instanton_alpha_im"].values), "k", lw=0.8,
                 label=r"$|\alpha|$")
        ax2.set_xlabel("time along the instanton ($1/\\kappa$)")
        ax2.legend(fontsize=7, ncol=4)
    else:
        ax2.text(0.5, 0.5, "full WKB instanton not obtained", ha="center", va="center", transform=ax2.transAxes)
    fig.suptitle(f"escape from retrieval, $g_0 = {float(ds.attrs.get('g0', np.nan)):g}$", fontsize=9)
    paths = save_figure(fig, path)
    plt.close(fig)
    return paths
