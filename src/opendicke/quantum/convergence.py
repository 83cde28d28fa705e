"""Finite-N exact dynamics against mean field in a fixed time window (the paper's Theorem made visible).

The exact state at finite N is metastable (docs/physics-notes.md): the theorem is a statement at finite t, so the
comparison is made on one fixed window [0, t_final] for every N. Two measures:

* D(N) = max_t max_μ |ξ_μ^N(t) − ξ_μ^MF(t)|, fitted as D ∝ N^slope on log-log axes;
* the paper's cost function E_N(t) (Eq. 9): N·E_N(t) collapsing onto one curve is the 1/N law.
  Here N = N_sp / 2^(M-1), the paper's normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from ..model import DickeModel
from .options import QuantumOptions

__all__ = ["convergence_study", "fit_power_law", "fit_deviation"]


def _dissipative_run(model: DickeModel, initial, opts: QuantumOptions):
    """One exact run with individual spin rates: the permutation-invariant solver, mean field alongside."""
    from dataclasses import fields

    from .permutation import solve as permutation_solve

    if opts.method not in ("auto", "chebyshev", "expm", "dop853"):
        raise ValueError(f"method: with individual spin rates the exact solver is the permutation-invariant one, "
                         f"which takes 'auto' (= 'chebyshev': its compiled kernel), 'chebyshev', 'expm' or "
                         f"'dop853', got {opts.method!r}")
    taken = {"fock", "tol", "method", "atol", "rtol", "max_dim", "t_final", "times", "cost"}
    default = QuantumOptions()
    changed = [f.name for f in fields(QuantumOptions)
               if f.name not in taken and getattr(opts, f.name) != getattr(default, f.name)]
    if changed:
        raise ValueError(f"option(s) {changed} are not taken by the permutation-invariant solver (individual spin "
                         f"rates); it takes fock, tol, method, atol, rtol, max_dim")
    kwargs = {"fock": None if isinstance(opts.fock, str) else opts.fock, "tol": opts.tol,
              "method": opts.method}
    kwargs.update({k: getattr(opts, k) for k in ("atol", "rtol", "max_dim") if getattr(opts, k) is not None})
    return permutation_solve(model, initial, t_final=opts.t_final, times=opts.times, compare_meanfield=True,
                             cost=opts.cost, **kwargs)


def fit_power_law(n: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of log d = slope · log n + c; returns (slope, prefactor)."""
    n, d = np.asarray(n, float), np.asarray(d, float)
    ok = (n > 0) & (d > 0) & np.isfinite(d)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    slope, c = np.polyfit(np.log(n[ok]), np.log(d[ok]), 1)
    return float(slope), float(np.exp(c))


def fit_deviation(n_spins, deviation, fit_from: int = 0) -> tuple[float, float]:
    """The power law D ∝ N_sp^slope fitted over the sizes N_sp ≥ ``fit_from`` only (small N_sp are
    pre-asymptotic: M = 1 gives −0.33 over N_sp = 4 … 16 and −0.87 over 1000 … 16000)."""
    n, d = np.asarray(n_spins, float), np.asarray(deviation, float)
    keep = n >= fit_from
    return fit_power_law(n[keep], d[keep])


def convergence_study(
    model: DickeModel,
    n_spins: Sequence[int],
    initial=1,
    *,
    t_final: float = 10.0,
    times: int = 101,
    seed: int | None = 0,
    fit_from: int = 0,
    options: QuantumOptions | None = None,
    progress: Callable[[float], None] | None = None,
):
    """Exact dynamics for each N_sp in ``n_spins`` (random patterns drawn with ``seed``) vs mean field.

    ``model`` supplies Ω, Ω_μ, κ and g0 (its own N_sp, if any, is replaced). Returns a Dataset with dims
    ``n_spins`` and ``time``: ``overlap``, ``overlap_meanfield``, ``cost``, ``scaled_cost`` (N·E_N),
    ``deviation`` (D(N)), the chosen Fock cutoffs, and attrs ``slope``/``prefactor`` of the power-law fit
    over the sizes N_sp ≥ ``fit_from`` (attr ``fit_from``; 0: all sizes). ``options``: the exact solver's
    settings (:class:`~opendicke.quantum.QuantumOptions`; its ``t_final``, ``times`` and ``cost`` are set here).

    With individual spin rates (γ↓, γ↑, γφ) the exact side is the permutation-invariant solver
    (:func:`opendicke.quantum.permutation.solve`, all total-spin sectors) and the mean field has the same Bloch
    damping; of ``options`` it takes ``fock``, ``tol``, ``method`` (``"auto"`` = ``"chebyshev"``, the compiled kernel;
    ``"expm"`` or ``"dop853"``: the sparse reference),
    ``atol``, ``rtol`` and ``max_dim`` (other settings changed from their defaults are an error); its ``cost``
    is E_N from the gauged group operators of all total-spin sectors.
    """
    import xarray as xr

    from . import solve

    if options is not None and not isinstance(options, QuantumOptions):
        raise TypeError(f"options must be a QuantumOptions, got {type(options).__name__}")
    opts = replace(options or QuantumOptions(), t_final=t_final, times=times, cost=True)  # validated here
    sizes = [int(n) for n in n_spins]
    if len(sizes) < 1 or any(n < 1 for n in sizes):
        raise ValueError(f"n_spins must be a list of positive integers, got {list(n_spins)}")
    runs = []
    for i, n in enumerate(sizes):
        finite = model.replace(n_spins=n, seed=seed, patterns=None)
        sub = None if progress is None else (lambda f, i=i: progress((i + f) / len(sizes)))
        if model.spin_dissipation:
            ds = _dissipative_run(finite, initial, opts)
            if sub is not None:
                sub(1.0)
        else:
            ds = solve(finite, initial, options=opts, progress=sub)
        runs.append(ds)
    M = model.n_modes
    paper_n = np.array(sizes, float) / 2 ** (M - 1)
    overlap = np.stack([r["overlap"].values for r in runs])
    overlap_mf = np.stack([r["overlap_meanfield"].values for r in runs])
    deviation = np.abs(overlap - overlap_mf).max(axis=(1, 2))
    cost = np.stack([r["cost"].values if "cost" in r else np.full(r.sizes["time"], np.nan) for r in runs])
    slope, prefactor = fit_deviation(sizes, deviation, fit_from)
    out = xr.Dataset(
        {
            "overlap": (("n_spins", "time", "pattern"), overlap),
            "overlap_meanfield": (("n_spins", "time", "pattern"), overlap_mf),
            "occupation": (("n_spins", "time", "pattern"), np.stack([r["occupation"].values for r in runs])),
            "occupation_meanfield": (("n_spins", "time", "pattern"), np.stack([r["occupation_meanfield"].values for r in runs])),
            "cost": (("n_spins", "time"), cost),
            "scaled_cost": (("n_spins", "time"), cost * paper_n[:, None]),
            "deviation": (("n_spins",), deviation),
            "fock": (("n_spins", "pattern"), np.stack([r["fock"].values for r in runs])),
            "fock_converged": (("n_spins",), np.array([int(r["fock_converged"]) for r in runs])),
            "truncation": (("n_spins", "pattern"), np.stack([r["truncation"].values for r in runs])),
            "elapsed_seconds": (("n_spins",), np.array([r.attrs["elapsed_seconds"] for r in runs])),
        },
        coords={"n_spins": sizes, "time": runs[0]["time"].values, "pattern": np.arange(1, M + 1),
                "paper_n": ("n_spins", paper_n)},
    )
    out.attrs.update({k: v for k, v in runs[0].attrs.items() if k in ("omega", "omega_modes", "kappa", "g0", "n_modes",
                                                                        "initial_state", "opendicke_version", "gamma_down",
                                                                        "gamma_up", "gamma_phi")})
    out.attrs.update({"kind": "quantum_convergence", "slope": slope, "prefactor": prefactor, "fit_from": int(fit_from),
                      "pattern_seed": -1 if seed is None else seed,
                      "methods": ",".join(r.attrs.get("method", "permutation") for r in runs)})
    out["deviation"].attrs["long_name"] = "max over the window and patterns of |xi_N(t) - xi_MF(t)|"
    out["scaled_cost"].attrs["long_name"] = "N * E_N(t), N = N_sp / 2^(M-1) (paper Eq. 9 normalisation)"
    return out
