"""Labelled results of the fluctuation solvers (one layout for the cumulant and the truncated Wigner methods).

Per spin, as everywhere in the package: α = ⟨a⟩/√N_sp, occupation = ⟨a†a⟩/N_sp (including the fluctuations),
overlaps ξ_μ = (1/N_sp) Σ_j G[μ,j] ⟨σ_z^j⟩. ``overlap_std`` is the spread of the operator ξ_μ in the quantum
state (√Var ξ_μ), not a statistical error; the truncated Wigner method adds ``*_error`` (standard errors of
its sample means). ``cost`` is the paper's E_N(t) (Eq. 9, paper normalisation, docs/physics-notes.md) against the mean-field
trajectory of the same groups.
"""

from __future__ import annotations

import numpy as np

from ..results import BatchLayout, register_kind

__all__ = ["cumulant_dataset", "twa_dataset", "FIGURE3_KIND"]

register_kind("fluctuations", variables=("overlap", "overlap_std", "occupation", "alpha", "cost", "overlap_meanfield",
              "occupation_meanfield"), dims=("time", "pattern", "group"), attrs=("method", "units"),
              description="fluctuations.cumulant / fluctuations.twa")
FIGURE3_KIND = register_kind("fluctuations_figure3", variables=("overlap", "overlap_std", "overlap_meanfield",
                             "overlap_theory"), dims=("n_spins", "g0", "pattern"), attrs=("method", "t_final"),
                             description="fluctuations.figure3.finite_n_figure3", single_model=False)

_LONG_NAMES = {
    "overlap": "pattern overlap xi_mu = (1/N_sp) sum_j G[mu,j] <sigma_z^j>",
    "overlap_std": "spread of the overlap operator in the quantum state, sqrt(Var xi_mu) (not a statistical error)",
    "occupation": "mode occupation per spin <a^dag a>/N_sp, fluctuations included",
    "alpha": "<a_mu>/sqrt(N_sp)",
    "alpha_std": "spread of Re a and Im a in the quantum state, per sqrt(N_sp)",
    "squeezing": "Wineland spin squeezing xi_R^2 = n_k min_perp Var(S_perp)/|<S>|^2 per group (1 for a coherent spin state)",
    "cost": "paper Eq. 9: E_N(t) against the mean-field trajectory, paper normalisation (N = N_sp/2^(M-1))",
    "overlap_meanfield": "mean-field overlap (paper Eq. 7) from the same start",
    "occupation_meanfield": "mean-field occupation per spin",
    "cost_linear": "E_N(t) of the leading-order (linear) fluctuations; N*cost_linear is lim N E_N as N -> infinity",
    "bloch": "group Bloch vectors <S_k>/n_k (gauged frame)",
}


def _finish(ds, *, method: str, elapsed: float, model) -> None:
    for name, text in _LONG_NAMES.items():
        if name in ds:
            ds[name].attrs["long_name"] = text
    ds.attrs.update({
        "method": method,
        "elapsed_seconds": float(elapsed),
        "n_spins_normalisation_N": model.n_spins / 2 ** (model.n_modes - 1),
    })


def cumulant_dataset(*, model, grouping, params, starts, stack_initial, times, obs, success, n_steps, elapsed, rtol, atol):
    layout = BatchLayout(model, grouping, params, starts, stack_initial)
    data = {
        "overlap": layout.var(obs["overlap"], ("pattern",), time_axis=True),
        "overlap_std": layout.var(obs["overlap_std"], ("pattern",), time_axis=True),
        "occupation": layout.var(obs["occupation"], ("pattern",), time_axis=True),
        "alpha": layout.var(obs["alpha"], ("pattern",), time_axis=True),
        "alpha_std": layout.var(obs["alpha_std"], ("pattern", "quadrature"), time_axis=True),
        "squeezing": layout.var(obs["squeezing"], ("group",), time_axis=True),
        "bloch": layout.var(obs["bloch"], ("group", "component"), time_axis=True),
        "cost": layout.var(obs["cost"], (), time_axis=True),
        "overlap_meanfield": layout.var(obs["overlap_linear"], ("pattern",), time_axis=True),
        "occupation_meanfield": layout.var(np.abs(obs["alpha_linear"]) ** 2, ("pattern",), time_axis=True),
        "overlap_std_linear": layout.var(obs["overlap_std_linear"], ("pattern",), time_axis=True),
        "squeezing_linear": layout.var(obs["squeezing_linear"], ("group",), time_axis=True),
        "cost_linear": layout.var(obs["cost_linear"], (), time_axis=True),
        "success": layout.var(success),
        "n_steps": layout.var(n_steps),
    }
    if "covariance" in obs:
        data["covariance"] = layout.var(obs["covariance"], ("var", "var2"), time_axis=True)
    ds = layout.dataset(data, kind="fluctuations", paper_units=False,
                        extra_coords={"time": ("time", times), "quadrature": ("quadrature", ["re", "im"])})
    ds.attrs.update({"rtol": rtol, "atol": atol, "all_succeeded": int(bool(np.all(success))),
                     "closure": "second-order cumulants (third cumulants of symmetrically ordered products set to zero)"})
    _finish(ds, method="cumulant", elapsed=elapsed, model=model)
    return ds


def twa_dataset(*, model, grouping, params, starts, stack_initial, times, stats, meanfield, samples, elapsed, options):
    layout = BatchLayout(model, grouping, params, starts, stack_initial)
    data = {}
    for name, trailing in (("overlap", ("pattern",)), ("occupation", ("pattern",)), ("alpha", ("pattern",)),
                           ("bloch", ("group", "component")), ("cost", ()), ("squeezing", ("group",))):
        data[name] = layout.var(stats[name], trailing, time_axis=True)
        if name + "_error" in stats:
            data[name + "_error"] = layout.var(stats[name + "_error"], trailing, time_axis=True)
    data["overlap_std"] = layout.var(stats["overlap_std"], ("pattern",), time_axis=True)
    data["overlap_meanfield"] = layout.var(meanfield["overlap"], ("pattern",), time_axis=True)
    data["occupation_meanfield"] = layout.var(meanfield["occupation"], ("pattern",), time_axis=True)
    data["n_samples"] = layout.var(np.full(params.size * len(starts), samples))
    ds = layout.dataset(data, kind="fluctuations", paper_units=False, extra_coords={"time": ("time", times)})
    ds.attrs.update(options)
    ds.attrs["error_bars"] = "plain Monte Carlo: standard error of the mean over independent samples"
    for name in ("overlap_error", "occupation_error", "cost_error"):
        if name in ds:
            ds[name].attrs["long_name"] = "statistical standard error of the sample mean"
    _finish(ds, method="twa", elapsed=elapsed, model=model)
    return ds
