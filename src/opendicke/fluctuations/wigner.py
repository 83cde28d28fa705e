r"""Truncated Wigner approximation (TWA) for the open multimode Dicke model.

Phase space: the same variables as the mean-field equations, u = [m_x, m_y, m_z (per group, S_k/n_k), Re α, Im α
(per spin, α = a/√N_sp)], sampled from the initial Wigner function and moved by the mean-field drift (paper
Eq. 7, :class:`~opendicke.meanfield.equations.MeanFieldRHS`) plus the loss noise of every mode. In unnormalised
mode variables the Wigner equation of κ D[a] is dα = −(κ/2) α dt + √(κ/4) (dW₁ + i dW₂) with ⟨|α|²⟩_W = ⟨a†a⟩ + ½
(vacuum: Var Re α = Var Im α = 1/4); per spin the noise on Re α and Im α is √(κ/(4 N_sp)) dW each.
Expectation values are sample means of symmetrically ordered (Weyl) symbols: ⟨a†a⟩ = ⟨|α|²⟩_W − ½.

Spin sampling (``spin_sampling``):

``"discrete"`` (DTWA, default)
    Each spin j with Bloch vector s_j (length r_j ≤ 1, direction u_j, perpendicular unit vectors e₁, e₂) is
    s = σ_∥ u + σ₁ e₁ + σ₂ e₂ with independent σ = ±1, P(σ_∥ = 1) = (1 + r_j)/2, P(σ₁,₂ = 1) = ½: the discrete
    Wigner function of Schachenmayer, Pikovski & Rey (PRX 5, 011022 (2015)). The group vector is the sum over its
    spins, drawn class by class (spins of a group with the same s_j) from binomials, so the cost is per group.
``"gaussian"``
    The group vector is Gaussian with the exact first and symmetrised second moments, mean Σ s_j and covariance
    Σ_j (1 − s_j s_jᵀ).

Both reproduce every first and second moment of the initial product state; the discrete one also its higher
moments. The choice of default is measured against the exact solver (docs/fluctuations.md).

Individual spin dissipation (γ↓, γ↑, γφ): the drift gets the Bloch damping and the group vectors a multiplicative
(Itô) noise whose diffusion reproduces the exact second-moment equations of the single-spin dissipators
(:func:`spin_noise`; the same terms as in the second-order cumulants). Derived here by moment matching, not the
Schwinger-boson scheme of Huber, Kirton & Rabl (SciPost Phys. 10, 045 (2021)). Its increments are taken where
the mode noise is (Euler–Maruyama for that part: weak order 1 there).

Integrator: Strang splitting of the drift and the (additive) noise: half a noise increment, one classical RK4
step of the drift, half a noise increment. For additive noise this has weak order 2 and strong order 1 (checked on
the damped harmonic oscillator in the tests and the docs); the drift alone is 4th order. Fixed steps ≤ ``dt``
that land exactly on the output times.

Error bars are plain Monte Carlo: the standard error of the mean over independent samples (no stratification).
Samples run in chunks (memory bounded). Each (parameter point, initial state, chunk) draws from its own stream,
``SeedSequence(seed, spawn_key=(chunk, *bits of the point's parameters, start index))``: a given (seed, samples,
chunk_size) reproduces the result bit for bit, and a point gets the same numbers whichever other points share the
call, so :func:`opendicke.sweep.run_sweep` reproduces a single call over the whole grid exactly.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from ..grid import parameter_batch
from ..meanfield.equations import MeanFieldRHS, pack, unpack
from ..meanfield.evolution import output_times
from ..meanfield.integrator import integrate
from ..model import DickeModel
from ..reduction import Grouping, reduce
from ..states import InitialState, as_initial_state
from .cumulants import _check_finite, _starts, spin_squeezing

__all__ = ["twa", "sample_spins", "strang_step", "spin_noise", "SPIN_SAMPLINGS", "DEFAULT_DT"]

#: Default largest time step (units of 1/κ); see docs/fluctuations.md for the measured step-size error.
from .options import DEFAULT_DT, SPIN_SAMPLINGS, TWAOptions  # noqa: E402,F401
_CHUNK_BYTES = 64 * 2**20


def _frames(vectors: np.ndarray):
    """Unit direction, length and two perpendicular unit vectors of each Bloch vector (C, 3)."""
    length = np.linalg.norm(vectors, axis=1)
    u = np.where(length[:, None] > 0, vectors / np.where(length > 0, length, 1.0)[:, None], np.array([0.0, 0.0, 1.0]))
    helper = np.where(np.abs(u[:, 2:3]) < 0.9, np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]))
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(u, e1)
    return u, length, e1, e2


class _SpinSampler:
    """Draws group spin vectors S_k/n_k of a product state (gauged frame)."""

    def __init__(self, model: DickeModel, grouping: Grouping, state: InitialState, method: str):
        vectors = grouping.to_frame(state.spin_vectors(model))
        self.K = grouping.n_groups
        self.sizes = grouping.sizes.astype(float)
        self.method = method
        if method == "discrete":
            keys = np.concatenate([grouping.group_of_spin[:, None].astype(float), np.round(vectors, 12)], axis=1)
            classes, counts = np.unique(keys, axis=0, return_counts=True)
            self.cls_group = classes[:, 0].astype(np.int64)
            self.cls_count = counts
            self.u, self.r, self.e1, self.e2 = _frames(classes[:, 1:])
            # classes come sorted by group (first key column) and every group has one: sum them with reduceat
            self.first_class = np.searchsorted(self.cls_group, np.arange(self.K))
        elif method == "gaussian":
            per_spin = np.eye(3)[None] - vectors[:, :, None] * vectors[:, None, :]
            cov = np.zeros((self.K, 3, 3))
            np.add.at(cov, grouping.group_of_spin, per_spin)
            mean = np.zeros((self.K, 3))
            np.add.at(mean, grouping.group_of_spin, vectors)
            w, v = np.linalg.eigh(cov)
            self.mean = mean
            self.root = v * np.sqrt(np.maximum(w, 0.0))[:, None, :]  # cov = root rootᵀ
        else:
            raise ValueError(f"spin_sampling must be one of {SPIN_SAMPLINGS}, got {method!r}")

    def __call__(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """(count, K, 3) samples of S_k/n_k."""
        if self.method == "discrete":
            c = self.cls_count
            along = 2.0 * rng.binomial(c, (1.0 + self.r) / 2.0, size=(count, c.size)) - c
            one = 2.0 * rng.binomial(c, 0.5, size=(count, c.size)) - c
            two = 2.0 * rng.binomial(c, 0.5, size=(count, c.size)) - c
            per_class = along[..., None] * self.u + one[..., None] * self.e1 + two[..., None] * self.e2  # (count, C, 3)
            total = np.add.reduceat(per_class, self.first_class, axis=1)
        else:
            z = rng.standard_normal((count, self.K, 3))
            total = self.mean + np.einsum("kab,skb->ska", self.root, z)
        return total / self.sizes[:, None]


def sample_spins(model: DickeModel, state: InitialState, count: int, *, method: str = "discrete", seed=None) -> np.ndarray:
    """``count`` phase-space samples (count, K, 3) of the group vectors S_k/n_k of a product state."""
    return _SpinSampler(model, reduce(model), as_initial_state(state), method)(np.random.default_rng(seed), count)


def _rk4(rhs, y, h):
    k1 = rhs(y)
    k2 = rhs(y + (0.5 * h) * k1)
    k3 = rhs(y + (0.5 * h) * k2)
    k4 = rhs(y + h * k3)
    return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def strang_step(rhs, y, h, noise_scale, draw, first: bool, last: bool, kick=None):
    """One Strang-split step: noise for h/2 (the previous step's closing half merged with this step's opening half
    into one increment of h), RK4 drift over h, and the closing half noise on the last step of an output interval.

    The noise acts on the last ``noise_scale.shape[1]`` components (the mode quadratures); ``noise_scale``
    (rows, q) is the standard deviation per unit √time, ``draw()`` returns standard normals of that shape.
    ``kick(y, tau)`` (optional) adds a state-dependent noise increment over ``tau`` at the same places (the spin
    noise of individual spin dissipation, Itô: evaluated before the increment).
    """
    q = noise_scale.shape[1]
    if first:
        if kick is not None:
            kick(y, 0.5 * h)
        y[:, -q:] += noise_scale * math.sqrt(0.5 * h) * draw()
    y = _rk4(rhs, y, h)
    tau = 0.5 * h if last else h
    if kick is not None:
        kick(y, tau)
    y[:, -q:] += noise_scale * math.sqrt(tau) * draw()
    return y


def spin_noise(rhs: MeanFieldRHS, sizes: np.ndarray, y: np.ndarray, tau: float, z: np.ndarray) -> None:
    """Add, in place, the noise increment of the single-spin dissipators to the group vectors m_k = S_k/n_k.

    Itô diffusion (derived in docs/spin-dissipation.md; the exact second-moment equations of the dissipators):
    D_k = (1/n_k)[2 diag(Γ⊥, Γ⊥, Γ∥) − c_k(ẑ m_kᵀ + m_k ẑᵀ)], c_k = σ_k(γ↑ − γ↓), factored as
    n_x = √(2Γ⊥) z₁, n_y = √(2Γ⊥) z₂, n_z = −c_k(m_x z₁ + m_y z₂)/√(2Γ⊥) + √(max(0, Schur)) z₃ with
    Schur = 2Γ∥ − 2c_k m_z − c_k²(m_x² + m_y²)/(2Γ⊥). The Schur complement is ≥ 0 inside the Bloch ball
    (|m_k| ≤ 1); samples outside it (phase-space points of small groups) are clipped to 0 there, which biases the
    variance of m_z slightly (docs/spin-dissipation.md). ``z`` (rows, K, 3) are standard normals.
    """
    K = rhs.n_groups
    tr = rhs._transverse  # (rows, 1), > 0 whenever some rate is
    lo = rhs._longitudinal
    c = rhs._source  # (rows, K)
    mx, my, mz = y[:, :K].copy(), y[:, K:2 * K].copy(), y[:, 2 * K:3 * K].copy()  # Itô: the state before the kick
    root_t = np.sqrt(2.0 * tr)
    schur = np.maximum(2.0 * lo - 2.0 * c * mz - c * c * (mx * mx + my * my) / (2.0 * tr), 0.0)
    scale = np.sqrt(tau / np.asarray(sizes, dtype=float))[None, :]
    z1, z2, z3 = z[..., 0], z[..., 1], z[..., 2]
    y[:, :K] += scale * root_t * z1
    y[:, K:2 * K] += scale * root_t * z2
    y[:, 2 * K:3 * K] += scale * (-c * (mx * z1 + my * z2) / root_t + np.sqrt(schur) * z3)


def _point_keys(params, n_starts: int) -> list[tuple[int, ...]]:
    """A spawn key per (parameter point, start) from the parameter values themselves, so that a point's random
    numbers do not depend on which other points share the call (a sweep's chunks reproduce one big call)."""
    keys = []
    for p in range(params.size):
        values = np.concatenate([[params.omega[p], params.g0[p]], params.omega_modes[p], params.kappa[p]])
        words = tuple(int(w) for w in np.ascontiguousarray(values, dtype="<f8").view("<u4"))
        keys.extend(words + (s,) for s in range(n_starts))
    return keys


class _Accumulator:
    """Sums over samples of shifted values (shift = mean field) and their squares, per output time and point."""

    def __init__(self):
        self.sums = {}
        self.squares = {}
        self.count = 0

    def mean_and_var(self, name):
        mean = self.sums[name] / self.count
        var = np.maximum(self.squares[name] / self.count - mean**2, 0.0) * self.count / max(self.count - 1, 1)
        return mean, var


def twa(
    model: DickeModel,
    initial: InitialState | int | Sequence[InitialState | int] = 1,
    *,
    t_final: float = 10.0,
    times: int | Sequence[float] = 101,
    vary: dict | None = None,
    options: TWAOptions | None = None,
    samples: int | None = None,
    seed: int | None = None,
    dt: float | None = None,
    spin_sampling: str | None = None,
    chunk_size: int | None = None,
    keep_bloch: bool | None = None,
    progress: Callable[[float], None] | None = None,
):
    """Truncated Wigner dynamics of a finite model, batched over samples, parameter points and initial states.

    Parameters
    ----------
    model, initial, t_final, times, vary:
        As in :func:`opendicke.fluctuations.cumulant` (product initial states; a list adds ``initial``).
    options:
        The numerical settings, one :class:`~opendicke.fluctuations.TWAOptions` (default: its defaults); the
        keywords below are shorthand for its fields (they replace them when given).
    samples:
        Phase-space samples (≥ 2) per parameter point and initial state.
    seed:
        Seed of all random numbers (initial samples and noise); same seed, samples and chunk size give the same
        numbers.
    dt:
        Largest time step of the stochastic integrator (weak order 2).
    spin_sampling:
        ``"discrete"`` (DTWA) or ``"gaussian"``: see the module docstring.
    chunk_size:
        Samples integrated at once (default: as many as fit in ~64 MB of state).
    keep_bloch:
        Store group Bloch vectors and squeezing (memory ∝ T·K; default: when T·K·points ≤ 10⁷).
    progress:
        Called with the fraction of the work done.

    Returns
    -------
    xarray.Dataset
        ``overlap``, ``occupation``, ``alpha``, ``cost`` with ``*_error`` (standard errors of the sample means),
        ``overlap_std`` (the quantum spread of ξ_μ), mean-field references, ``bloch``/``squeezing`` when kept.
    """
    from .results import twa_dataset

    from ..options import merge_options

    opts = merge_options(TWAOptions, options, "options", dict(samples=samples, seed=seed, dt=dt, spin_sampling=spin_sampling,
                                                             chunk_size=chunk_size, keep_bloch=keep_bloch))
    samples, seed, dt, spin_sampling = opts.samples, opts.seed, opts.dt, opts.spin_sampling
    chunk_size, keep_bloch = opts.chunk_size, opts.keep_bloch
    _check_finite(model)
    starts, many = _starts(initial)
    t = output_times(t_final, times)
    params = parameter_batch(model, vary, spin_rates=True)
    grouping = reduce(params.grouping_model(model))  # split by gauge sign when some point has γ↓ ≠ γ↑
    dissipative = params.spin_dissipation
    K, M = grouping.n_groups, model.n_modes
    P, S = params.size, len(starts)
    n = 3 * K + 2 * M
    T = t.size
    if keep_bloch is None:
        keep_bloch = T * K * P * S <= 10**7
    clock = _time.perf_counter()

    with threadpool_limits(limits=1, user_api="blas"):
        # mean-field reference (the shift of the accumulators and the E_N reference)
        y_mf = np.stack([pack(s.group_vectors(model, grouping), s.initial_alpha(model)) for s in starts])
        y_mf = np.broadcast_to(y_mf, (P, S, n)).reshape(P * S, n)
        rep = lambda a: np.repeat(a, S, axis=0)  # noqa: E731
        rates = lambda r: {k: r(v) for k, v in params.rates.items()} if dissipative else {}  # noqa: E731
        mf_rhs = MeanFieldRHS(grouping.f, grouping.weights, rep(params.omega), rep(params.g0), rep(params.omega_modes),
                              rep(params.kappa), **rates(rep), group_gauge=grouping.group_gauge)
        ys_mf, _ = integrate(mf_rhs, y_mf, t, rtol=1e-10, atol=1e-12)
        bloch_mf, alpha_mf = unpack(ys_mf, K)  # (T, PS, K, 3), (T, PS, M)
        xi_mf = bloch_mf[..., 2] @ grouping.weighted_f

        if chunk_size is None:
            chunk_size = max(2, min(samples, _CHUNK_BYTES // (P * S * n * 8 * 8)))
        chunk_size = int(max(1, min(chunk_size, samples)))
        n_chunks = math.ceil(samples / chunk_size)
        entropy = np.random.SeedSequence(seed).entropy
        keys = _point_keys(params, S)  # (P·S) keys, start fastest
        samplers = [_SpinSampler(model, grouping, s, spin_sampling) for s in starts]
        alpha0 = np.stack([s.initial_alpha(model) for s in starts])  # (S, M)
        N_sp = float(model.n_spins)
        factor = 2.0 ** (M - 1)
        acc = _Accumulator()
        work_done, work_total = 0.0, float(samples)

        for c in range(n_chunks):
            cs = min(chunk_size, samples - c * chunk_size)
            rngs = [np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(c,) + key)) for key in keys]
            rows = P * S * cs  # row = (point, start, sample), sample fastest
            spins = np.empty((P * S, cs, K, 3))
            alpha = np.empty((P * S, cs, M), dtype=complex)
            for b, rng in enumerate(rngs):
                spins[b] = samplers[b % S](rng, cs)
                vac = rng.standard_normal((cs, M)) + 1j * rng.standard_normal((cs, M))
                alpha[b] = alpha0[b % S] + vac / (2.0 * math.sqrt(N_sp))
            y = pack(spins.reshape(rows, K, 3), alpha.reshape(rows, M))
            rrep = lambda a: np.repeat(a, S * cs, axis=0)  # noqa: E731
            rhs = MeanFieldRHS(grouping.f, grouping.weights, rrep(params.omega), rrep(params.g0), rrep(params.omega_modes),
                               rrep(params.kappa), **rates(rrep), group_gauge=grouping.group_gauge)
            q = np.sqrt(rrep(params.kappa) / (4.0 * N_sp))  # (rows, M): on Re α and on Im α
            noise = np.concatenate([q, q], axis=1)
            draw = lambda: np.concatenate([r.standard_normal((cs, 2 * M)) for r in rngs])  # noqa: E731
            kick = None
            if dissipative:  # the spin noise of the single-spin dissipators, from each point's own stream
                kick = lambda y_, tau, rhs=rhs, cs=cs, rngs=rngs: spin_noise(  # noqa: E731
                    rhs, grouping.sizes, y_, tau, np.concatenate([r.standard_normal((cs, K, 3)) for r in rngs]))
            acc.count += cs
            _record(acc, y, 0, P * S, cs, K, M, grouping, bloch_mf, alpha_mf, xi_mf, factor, keep_bloch, T)
            for i in range(T - 1):
                span = t[i + 1] - t[i]
                steps = max(1, math.ceil(span / dt - 1e-9))
                h = span / steps
                for s_ in range(steps):
                    y = strang_step(rhs, y, h, noise, draw, first=(s_ == 0), last=(s_ == steps - 1), kick=kick)
                _record(acc, y, i + 1, P * S, cs, K, M, grouping, bloch_mf, alpha_mf, xi_mf, factor, keep_bloch, T)
                if progress is not None and (i % 5 == 0 or i == T - 2):
                    progress((work_done + cs * (i + 1) / (T - 1)) / work_total)
            work_done += cs

        stats = _statistics(acc, grouping, N_sp, bloch_mf, alpha_mf, xi_mf, keep_bloch, samples)
    meanfield = {"overlap": xi_mf, "occupation": np.abs(alpha_mf) ** 2}
    options = {"samples": samples, "seed": -1 if seed is None else int(seed), "dt": float(dt),
               "spin_sampling": spin_sampling, "chunk_size": int(chunk_size)}
    return twa_dataset(model=model, grouping=grouping, params=params, starts=starts, stack_initial=many, times=t,
                       stats=stats, meanfield=meanfield, samples=samples, elapsed=_time.perf_counter() - clock,
                       options=options)


def _record(acc, y, ti, PS, cs, K, M, grouping, bloch_mf, alpha_mf, xi_mf, factor, keep_bloch, T):
    """Add the samples' observables at output time index ti (shifted by mean field) to the accumulators."""
    bloch, alpha = unpack(y, K)
    bloch = bloch.reshape(PS, cs, K, 3)
    alpha = alpha.reshape(PS, cs, M)
    db = bloch - bloch_mf[ti][:, None]
    da = alpha - alpha_mf[ti][:, None]
    xi = bloch[..., 2] @ grouping.weighted_f - xi_mf[ti][:, None]
    cost = np.sum(db**2, axis=(-1, -2)) + 2.0 * factor * np.sum(np.abs(da) ** 2, axis=-1)
    parts = {"xi": xi, "re": da.real, "im": da.imag, "n": np.abs(alpha) ** 2, "cost": cost}
    if keep_bloch:
        parts["m"] = db
    for name, values in parts.items():
        if ti == 0 and name not in acc.sums:
            shape = (T,) + values.shape[:1] + values.shape[2:]
            acc.sums[name] = np.zeros(shape)
            acc.squares[name] = np.zeros(shape)
        acc.sums[name][ti] += values.sum(axis=1)
        acc.squares[name][ti] += (values**2).sum(axis=1)
    if keep_bloch:
        outer = np.einsum("pska,pskb->pkab", db, db)
        if "mm" not in acc.sums:
            acc.sums["mm"] = np.zeros((T, PS, K, 3, 3))
        acc.sums["mm"][ti] += outer


def _statistics(acc, grouping, N_sp, bloch_mf, alpha_mf, xi_mf, keep_bloch, samples):
    S = float(samples)
    out = {}
    xi, var_xi = acc.mean_and_var("xi")
    out["overlap"] = xi_mf + xi
    out["overlap_std"] = np.sqrt(var_xi)
    out["overlap_error"] = np.sqrt(var_xi / S)
    occ, var_occ = acc.mean_and_var("n")
    out["occupation"] = occ - 0.5 / N_sp
    out["occupation_error"] = np.sqrt(var_occ / S)
    re, _ = acc.mean_and_var("re")
    im, _ = acc.mean_and_var("im")
    out["alpha"] = alpha_mf + re + 1j * im
    cost, var_cost = acc.mean_and_var("cost")
    out["cost"] = cost
    out["cost_error"] = np.sqrt(var_cost / S)
    if keep_bloch:
        dm, _ = acc.mean_and_var("m")
        bloch = bloch_mf + dm
        out["bloch"] = bloch
        second = acc.sums["mm"] / S
        cov = (second - dm[..., :, None] * dm[..., None, :]) * S / (S - 1)  # (T, PS, K, 3, 3)
        out["squeezing"] = spin_squeezing(bloch, N_sp * cov, grouping.weights)
    else:
        T, PS = xi.shape[:2]
        out["bloch"] = np.full((T, PS, grouping.n_groups, 3), np.nan)
        out["squeezing"] = np.full((T, PS, grouping.n_groups), np.nan)
    return out


def _sweep_solves_per_point(model, initial, options) -> int:
    """For :func:`opendicke.sweep.run_sweep`: a TWA point costs about one mean-field solve per sample and start."""
    starts = len(initial) if isinstance(initial, (list, tuple)) else 1
    return starts * int(options.get("samples", 1000))


twa.sweep_solves_per_point = _sweep_solves_per_point
twa.sweep_spin_rates = True  # run_sweep may pass individual spin rates (model or varied gamma_*)
