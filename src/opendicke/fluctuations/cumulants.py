r"""Second-order cumulants (Gaussian closure) of the group spins and the modes.

Variables
---------
The phase-space point of one parameter point is the mean-field state of
:mod:`opendicke.meanfield.equations`, u = [m_x (K), m_y (K), m_z (K), Re α (M), Im α (M)], read as *operators*:
m_{a,k} = S_{a,k}/n_k (Pauli, S = Σ_{j∈Γ_k} σ_a^j in the gauged frame) and α_μ = a_μ/√N_sp. In these variables the
Heisenberg equations of the Hamiltonian part are exactly the mean-field vector field F(u) (paper Eq. 7): every
nonlinear term is a product of a mode operator and a spin operator, which commute, so no ordering question arises.
Loss adds −κ/2 to the modes' drift and, for second moments, the diffusion of the vacuum.

Equations (derived in docs/fluctuations.md, checked against the exact d/dt at t = 0 in the tests)
-------------------------------------------------------------------------------------------
With Σ = N_sp · Cov_sym(u) (symmetrised covariances ⟨{u_i, u_j}⟩/2 − ⟨u_i⟩⟨u_j⟩, scaled to O(1)) and third
cumulants (of symmetrically ordered products) set to zero:

    ṁ = F(m) + (1/N_sp) · ½ ∂²F : Σ          (the 1/N feedback of the covariances into the means)
    Σ̇ = J(m) Σ + Σ J(m)ᵀ + D,   D = diag(0 for spins, κ_μ/4 for Re α_μ and Im α_μ)

where J = ∂F/∂u. The only second derivatives are ∂²ṁ_x,k/∂Re α_μ ∂m_y,k = −4 g0 f_{μk} and
∂²ṁ_y,k/∂Re α_μ ∂m_x,k = +4 g0 f_{μk}. The *linear* version (``feedback=False``) keeps m on the mean-field
trajectory and evolves Σ with J(m_MF): the leading order, N-independent, that gives lim N·E_N(t).

Individual spin dissipation (decay √γ↓ σ_-, pumping √γ↑ σ_+, dephasing √(γφ/2) σ_z on every spin;
docs/spin-dissipation.md) adds, exactly (the dissipators are linear in single-spin operators): the Bloch damping
to F (so to J: −Γ⊥ on m_x, m_y, −Γ∥ on m_z) and the diffusion of :meth:`CumulantRHS.spin_diffusion` to the
group blocks of Σ̇, (1/w_k)[2 diag(Γ⊥, Γ⊥, Γ∥) − c_k(ẑ m_kᵀ + m_k ẑᵀ)] with c_k = σ_k(γ↑ − γ↓).

Initial values for a product state: spin j with Bloch vector s_j has ⟨{σ_a, σ_b}/2⟩ = δ_ab (pure or mixed), so
Cov_sym(S_k) = Σ_{j∈Γ_k} (1 − s_j s_jᵀ) and Σ_{kk} = (N_sp/n_k²) Σ_{j∈Γ_k}(1 − s_j s_jᵀ); the commutator part of
⟨S_a S_b⟩ (i ε_abc ⟨S_c⟩) is not a separate variable: it is fixed by the means, and the symmetrised equations
never produce it. A coherent mode has Var(Re a) = Var(Im a) = 1/4, so Σ = 1/4 on each quadrature.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..grid import parameter_batch
from ..meanfield.equations import MeanFieldRHS, pack
from ..meanfield.evolution import output_times
from ..meanfield.integrator import integrate
from ..model import DickeModel
from ..reduction import Grouping, reduce
from ..states import InitialState, as_initial_state

__all__ = ["CumulantRHS", "initial_covariance", "cumulant", "memory_needed", "DEFAULT_MAX_MEMORY"]

#: Largest memory (bytes) :func:`cumulant` will plan for before refusing (the covariance grows as (3K + 2M)²).
from .options import DEFAULT_MAX_MEMORY, CumulantOptions  # noqa: E402
# Stage arrays of DOP853 and the temporaries of the right-hand side, per copy of the state.
_WORK_COPIES = 24
# Memory for stored outputs before the integration is split into output segments.
_SEGMENT_BYTES = 256 * 2**20


def state_size(n_groups: int, n_modes: int) -> int:
    n = 3 * n_groups + 2 * n_modes
    return n + n * n


def memory_needed(n_groups: int, n_modes: int, batch: int = 2) -> int:
    """Bytes the integration of ``batch`` cumulant systems needs (integrator stages and temporaries)."""
    return int(_WORK_COPIES * batch * state_size(n_groups, n_modes) * 8)


@dataclass(frozen=True, eq=False)
class CumulantRHS:
    """Right-hand side of the second-order cumulant equations, batched over B points.

    The state of one point is [m (n), Σ (n × n, row-major)] with n = 3K + 2M. ``inverse_n`` (B,) is 1/N_sp,
    or 0 for the linear (leading-order) version, where the means follow mean field exactly.
    """

    f: np.ndarray
    weights: np.ndarray
    omega: np.ndarray
    g0: np.ndarray
    omega_modes: np.ndarray
    kappa: np.ndarray
    inverse_n: np.ndarray
    gamma_down: np.ndarray | None = None  # (B,) individual spin rates (None: none)
    gamma_up: np.ndarray | None = None
    gamma_phi: np.ndarray | None = None
    group_gauge: np.ndarray | None = None  # (K,) gauge signs (needed when γ↓ ≠ γ↑)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("f", np.asarray(self.f, dtype=float))
        set_("weights", np.asarray(self.weights, dtype=float))
        set_("_mf", MeanFieldRHS(self.f, self.weights, self.omega, self.g0, self.omega_modes, self.kappa,
                                 self.gamma_down, self.gamma_up, self.gamma_phi, self.group_gauge))
        mf = self._mf
        set_("_dissipative", mf._dissipative)
        if mf._dissipative:  # (B, 1) rates and (B, K) σ_z source of the single-spin dissipators (gauged frame)
            set_("_transverse", mf._transverse[:, :, None])
            set_("_longitudinal", mf._longitudinal[:, :, None])
            set_("_source", mf._source)
        set_("_ft", self.f.T.copy())  # (K, M)
        set_("_wf", (self.f * self.weights).copy())  # (M, K)
        set_("_g0", np.asarray(self.g0, float)[:, None, None])
        set_("_two_omega", 2.0 * np.asarray(self.omega, float)[:, None, None])
        set_("_omega_modes", np.asarray(self.omega_modes, float)[:, :, None])
        set_("_half_kappa", 0.5 * np.asarray(self.kappa, float)[:, :, None])
        set_("_quarter_kappa", 0.25 * np.asarray(self.kappa, float))
        set_("_inverse_n", np.asarray(self.inverse_n, float)[:, None])

    @property
    def n_groups(self) -> int:
        return self.f.shape[1]

    @property
    def n_modes(self) -> int:
        return self.f.shape[0]

    @property
    def n_vars(self) -> int:
        return 3 * self.n_groups + 2 * self.n_modes

    def take(self, rows: np.ndarray) -> CumulantRHS:
        pick = lambda name: getattr(self._mf, name)[rows] if self._dissipative else None  # noqa: E731
        return CumulantRHS(self.f, self.weights, self.omega[rows], self.g0[rows], self.omega_modes[rows],
                           self.kappa[rows], self.inverse_n[rows], pick("gamma_down"), pick("gamma_up"),
                           pick("gamma_phi"), self.group_gauge)

    def jacobian_times(self, m: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """J(m) Σ for a batch: m (B, n), Σ (B, n, c) → (B, n, c), using the structure of J (no dense J)."""
        K, M = self.n_groups, self.n_modes
        X, Y, Z = slice(0, K), slice(K, 2 * K), slice(2 * K, 3 * K)
        R, I = slice(3 * K, 3 * K + M), slice(3 * K + M, 3 * K + 2 * M)
        g0 = self._g0
        mx, my = m[:, X, None], m[:, Y, None]
        h = 4.0 * g0 * (m[:, None, R] @ self.f).transpose(0, 2, 1)  # (B, K, 1): h_k = 4 g0 Σ_μ f_μk Re α_μ
        proj = self._ft @ sigma[:, R, :]  # (B, K, c): Σ_μ f_μk Σ[Re α_μ, :]
        out = np.empty_like(sigma)
        out[:, X] = -h * sigma[:, Y] - 4.0 * g0 * my * proj
        out[:, Y] = -self._two_omega * sigma[:, Z] + h * sigma[:, X] + 4.0 * g0 * mx * proj
        out[:, Z] = self._two_omega * sigma[:, Y]
        out[:, R] = self._omega_modes * sigma[:, I] - self._half_kappa * sigma[:, R]
        out[:, I] = -self._omega_modes * sigma[:, R] - self._half_kappa * sigma[:, I] - g0 * (self._wf @ sigma[:, Z])
        if self._dissipative:
            out[:, X] -= self._transverse * sigma[:, X]
            out[:, Y] -= self._transverse * sigma[:, Y]
            out[:, Z] -= self._longitudinal * sigma[:, Z]
        return out

    def spin_diffusion(self, m: np.ndarray) -> np.ndarray:
        """Diffusion of the single-spin dissipators in Σ̇, per group (B, K, 3, 3) (zero across groups and modes):

            D_k = (1/w_k) [2 diag(Γ⊥, Γ⊥, Γ∥) − c_k (ẑ m_kᵀ + m_k ẑᵀ)],   c_k = σ_k (γ↑ − γ↓).

        Exact (no closure: the dissipators are linear in single-spin operators, and the symmetrised square of one
        spin's Pauli operator is a constant); derived in docs/spin-dissipation.md.
        """
        K = self.n_groups
        B = m.shape[0]
        mk = np.stack([m[:, :K], m[:, K:2 * K], m[:, 2 * K:3 * K]], axis=-1)  # (B, K, 3)
        D = np.zeros((B, K, 3, 3))
        idx = np.arange(2)
        D[:, :, idx, idx] = 2.0 * self._transverse
        D[:, :, 2, 2] = 2.0 * self._longitudinal[:, :, 0]
        c = self._source[:, :, None]  # (B, K, 1)
        D[:, :, 2, :] -= c * mk
        D[:, :, :, 2] -= c * mk
        return D / self.weights[None, :, None, None]

    def feedback(self, sigma: np.ndarray) -> np.ndarray:
        """½ ∂²F : Σ for a batch (B, n): the covariance correction to the means (before the 1/N_sp factor)."""
        K, M = self.n_groups, self.n_modes
        X, Y, R = slice(0, K), slice(K, 2 * K), slice(3 * K, 3 * K + M)
        g0 = self._g0[:, :, 0]
        out = np.zeros(sigma.shape[:2])
        # Σ_μ f_μk Σ[Re α_μ, m_y,k]: rows of Re α, columns of the same group
        cov_ry = np.einsum("mk,bmk->bk", self.f, sigma[:, R, Y])
        cov_rx = np.einsum("mk,bmk->bk", self.f, sigma[:, R, X])
        out[:, X] = -4.0 * g0 * cov_ry
        out[:, Y] = 4.0 * g0 * cov_rx
        return out

    def split(self, y: np.ndarray):
        n = self.n_vars
        return y[:, :n], y[:, n:].reshape(y.shape[0], n, n)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        n, K = self.n_vars, self.n_groups
        m, sigma = self.split(y)
        dy = np.empty_like(y)
        dy[:, :n] = self._mf(m) + self._inverse_n * self.feedback(sigma)
        a = self.jacobian_times(m, sigma)
        ds = dy[:, n:].reshape(sigma.shape)
        np.add(a, a.transpose(0, 2, 1), out=ds)
        rows = np.arange(3 * K, n)
        ds[:, rows, rows] += np.concatenate([self._quarter_kappa, self._quarter_kappa], axis=1)
        if self._dissipative:
            D = self.spin_diffusion(m)
            k = np.arange(K)
            for a in range(3):
                for b in range(3):
                    ds[:, a * K + k, b * K + k] += D[:, :, a, b]
        return dy


def initial_covariance(model: DickeModel, grouping: Grouping, state: InitialState) -> np.ndarray:
    """Σ(0) = N_sp · Cov_sym(u) of a product state (n × n): spins Σ_kk = (N_sp/n_k²) Σ_{j∈Γ_k}(1 − s_j s_jᵀ) in the
    gauged frame, coherent modes 1/4 on each quadrature."""
    K, M = grouping.n_groups, model.n_modes
    n = 3 * K + 2 * M
    sigma = np.zeros((n, n))
    vectors = grouping.to_frame(state.spin_vectors(model))  # (N_sp, 3), gauged
    per_spin = np.eye(3)[None] - vectors[:, :, None] * vectors[:, None, :]
    blocks = np.zeros((K, 3, 3))
    np.add.at(blocks, grouping.group_of_spin, per_spin)
    sizes = grouping.sizes.astype(float)
    blocks *= (model.n_spins / sizes**2)[:, None, None]
    for a in range(3):
        for b in range(3):
            idx_a = a * K + np.arange(K)
            idx_b = b * K + np.arange(K)
            sigma[idx_a, idx_b] = blocks[:, a, b]
    modes = np.arange(3 * K, n)
    sigma[modes, modes] = 0.25
    return sigma


def _check_finite(model: DickeModel) -> None:
    if model.thermodynamic_limit:
        raise ValueError("n_spins: the fluctuation methods need a finite number of spins (give n_spins or patterns)")


def _starts(initial) -> tuple[list[InitialState], bool]:
    """The initial states as a list, and whether a list was given (then results get an ``initial`` dimension)."""
    many = isinstance(initial, (list, tuple))
    starts = [as_initial_state(s) for s in (initial if many else [initial])]
    if not starts:
        raise ValueError("initial: give at least one initial state")
    return starts, many


def check_memory(model: DickeModel, grouping: Grouping, batch: int, max_memory: float) -> int:
    need = memory_needed(grouping.n_groups, model.n_modes, batch)
    if need > max_memory:
        n = 3 * grouping.n_groups + 2 * model.n_modes
        raise ValueError(
            f"n_spins/omega_modes: M = {model.n_modes} at N_sp = {model.n_spins} gives K = {grouping.n_groups} groups, "
            f"{n} variables and a covariance of {n}² entries: the cumulant method would need {need / 2**30:.1f} GiB "
            f"for {batch} system(s), more than the limit of {max_memory / 2**30:.1f} GiB (max_memory); use the "
            f"truncated Wigner method (memory ∝ K), fewer spins or fewer modes")
    return need


def cumulant(
    model: DickeModel,
    initial: InitialState | int | Sequence[InitialState | int] = 1,
    *,
    t_final: float = 10.0,
    times: int | Sequence[float] = 101,
    vary: dict | None = None,
    options: CumulantOptions | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    keep_covariance: bool | None = None,
    max_memory: float | None = None,
    progress: Callable[[float], None] | None = None,
):
    """Second-order cumulant dynamics (means with 1/N feedback + covariances) of a finite model.

    Integrates, in one batch, the cumulant equations and their linear version (mean field plus leading-order
    covariances) for every varied parameter point and initial product state, with the package's batched DOP853.

    Parameters
    ----------
    model:
        A finite model (``n_spins`` or explicit patterns).
    initial:
        A pattern number (1-based), a :class:`~opendicke.states.PatternState`, a
        :class:`~opendicke.states.CorruptedPattern`, a :class:`~opendicke.states.BlochState` (any product state,
        mixed spins allowed; an ``alpha`` on the state is a coherent mode state), or a list of them (dimension
        ``initial``).
    t_final, times:
        Output times: a count on [0, t_final] or explicit increasing times.
    vary:
        Varied parameters as in :func:`opendicke.evolve` (one dimension each).
    options:
        The numerical settings, one :class:`~opendicke.fluctuations.CumulantOptions` (default: its defaults).
    rtol, atol, keep_covariance, max_memory:
        Shorthand for the fields of ``options`` (replace them when given): per-point tolerances of the
        integrator; also return Σ(t) (time, var, var2), memory ∝ T·(3K + 2M)²; refuse (ValueError naming the
        needed memory) above this many bytes.
    progress:
        Called with the fraction of the time window done.

    Returns
    -------
    xarray.Dataset
        ``kind = "fluctuations"``, ``method = "cumulant"``: see :func:`opendicke.fluctuations.results.fluctuation_dataset`.
    """
    from ..options import merge_options
    from .results import cumulant_dataset

    opts = merge_options(CumulantOptions, options, "options", dict(rtol=rtol, atol=atol, keep_covariance=keep_covariance,
                                                                   max_memory=max_memory))
    rtol, atol, keep_covariance, max_memory = opts.rtol, opts.atol, opts.keep_covariance, opts.max_memory
    _check_finite(model)
    starts, many = _starts(initial)
    t = output_times(t_final, times)
    params = parameter_batch(model, vary, spin_rates=True)
    grouping = reduce(params.grouping_model(model))  # split by gauge sign when some point has γ↓ ≠ γ↑
    P, S = params.size, len(starts)
    B = P * S
    check_memory(model, grouping, 2 * B, max_memory)
    start_clock = _time.perf_counter()

    means0 = np.stack([pack(s.group_vectors(model, grouping), s.initial_alpha(model)) for s in starts])  # (S, n)
    sigma0 = np.stack([initial_covariance(model, grouping, s) for s in starts])  # (S, n, n)
    n = means0.shape[1]
    y_start = np.concatenate([means0, sigma0.reshape(S, -1)], axis=1)
    y0 = np.broadcast_to(y_start, (P, S, y_start.shape[1])).reshape(B, -1)
    y0 = np.concatenate([y0, y0])  # first B: with feedback, last B: linear (mean field + leading covariances)
    rep = lambda a: np.tile(np.repeat(a, S, axis=0), (2,) + (1,) * (np.ndim(a) - 1))  # noqa: E731
    inverse_n = np.concatenate([np.full(B, 1.0 / model.n_spins), np.zeros(B)])
    rates = {k: rep(v) for k, v in params.rates.items()} if params.spin_dissipation else {}
    rhs = CumulantRHS(grouping.f, grouping.weights, rep(params.omega), rep(params.g0), rep(params.omega_modes),
                      rep(params.kappa), inverse_n, **rates, group_gauge=grouping.group_gauge)
    reduce_fn = lambda part: observables(part, B, grouping, model.n_spins, keep_covariance)  # noqa: E731
    obs, success, n_steps = _integrate_segments(rhs, y0, t, rtol, atol, progress, reduce_fn)
    elapsed = _time.perf_counter() - start_clock
    return cumulant_dataset(model=model, grouping=grouping, params=params, starts=starts, stack_initial=many, times=t,
                            obs=obs, success=success[:B] & success[B:], n_steps=n_steps[:B], elapsed=elapsed,
                            rtol=rtol, atol=atol)


def observables(ys: np.ndarray, B: int, grouping: Grouping, n_spins: int, keep_covariance: bool = False) -> dict:
    """Observables from cumulant states (T, 2B, n + n²): the first B rows with feedback, the last B linear.

    Returns arrays over (T, B, ...): ``bloch`` (K, 3), ``alpha`` (M), ``overlap``, ``overlap_std``, ``occupation``
    (M), ``alpha_std`` (M, 2: Re, Im; per spin), ``squeezing`` (K), ``cost``, the same from the linear version
    (``*_linear``; its means are mean field) and ``covariance`` when asked.
    """
    K, M = grouping.n_groups, grouping.n_modes
    n = 3 * K + 2 * M
    T = ys.shape[0]
    m = ys[..., :n]
    sigma = ys[..., n:].reshape(T, ys.shape[1], n, n)
    wf = grouping.weighted_f  # (K, M)
    N_sp = float(n_spins)
    N = N_sp / 2 ** (M - 1)
    out = {}
    for part, rows in (("", slice(0, B)), ("_linear", slice(B, 2 * B))):
        mm, ss = m[:, rows], sigma[:, rows]
        bloch = np.stack([mm[..., :K], mm[..., K:2 * K], mm[..., 2 * K:3 * K]], axis=-1)  # (T, B, K, 3)
        alpha = mm[..., 3 * K:3 * K + M] + 1j * mm[..., 3 * K + M:]
        zz = ss[..., 2 * K:3 * K, 2 * K:3 * K]
        var_xi = np.einsum("km,tbkl,lm->tbm", wf, zz, wf) / N_sp
        d = np.arange(3 * K, n)
        quad = ss[..., d, d]  # (T, B, 2M)
        var_re, var_im = quad[..., :M], quad[..., M:]
        occupation = np.abs(alpha) ** 2 + (var_re + var_im - 0.5) / N_sp
        # spin squeezing (Wineland): ξ_R² = n_k min_⊥ Var(S_⊥)/|⟨S⟩|² = w_k λ_min(P Σ_kk P)/|m_k|²
        idx = np.arange(K)[:, None] + K * np.arange(3)[None, :]  # (K, 3)
        block = ss[..., idx[:, :, None], idx[:, None, :]]  # (T, B, K, 3, 3)
        squeezing = spin_squeezing(bloch, block, grouping.weights)
        out["bloch" + part] = bloch
        out["alpha" + part] = alpha
        out["overlap" + part] = mm[..., 2 * K:3 * K] @ wf
        out["overlap_std" + part] = np.sqrt(np.maximum(var_xi, 0.0))
        out["occupation" + part] = occupation
        out["alpha_std" + part] = np.sqrt(np.maximum(np.stack([var_re, var_im], axis=-1), 0.0) / N_sp)
        out["squeezing" + part] = squeezing
        out["_spin_var" + part] = _spin_variance_sum(ss, K)
        out["_mode_var" + part] = (var_re + var_im).sum(axis=-1)
        if keep_covariance and part == "":
            out["covariance"] = ss
    # E_N (paper Eq. 9, docs/physics-notes.md): Σ_k,a ⟨(S_a/n_k − m_MF)²⟩ + Σ_μ ⟨A†A + AA†⟩, A = a/√N − α_MF,paper
    factor = 2 ** (M - 1)
    bloch_mf, alpha_mf = out["bloch_linear"], out["alpha_linear"]
    for part in ("", "_linear"):
        spins = out["_spin_var" + part] / N_sp + np.sum((out["bloch" + part] - bloch_mf) ** 2, axis=(-1, -2))
        modes = 2.0 * out["_mode_var" + part] / N + 2.0 * factor * np.sum(np.abs(out["alpha" + part] - alpha_mf) ** 2, axis=-1)
        out["cost" + part] = spins + modes
        del out["_spin_var" + part], out["_mode_var" + part]
    return out


def spin_squeezing(bloch: np.ndarray, block: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Wineland ξ_R² = n_k min_⊥ Var(S_⊥)/|⟨S⟩|² = w_k λ_min(P Σ_kk P)/|m_k|² from group means (..., K, 3) and the
    scaled covariance blocks Σ_kk = N_sp Cov(m_k) (..., K, 3, 3); 1 for a coherent spin state."""
    length = np.linalg.norm(bloch, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = bloch / length[..., None]
        proj = np.eye(3) - unit[..., :, None] * unit[..., None, :]
        eig = np.linalg.eigvalsh(proj @ block @ proj)  # ascending; one zero along the mean spin
        return weights * eig[..., 1] / length**2


def _spin_variance_sum(sigma: np.ndarray, K: int) -> np.ndarray:
    """Σ over groups and components of the diagonal spin entries of Σ (T, B, n, n) → (T, B)."""
    d = np.arange(3 * K)
    return sigma[..., d, d].sum(axis=-1)


def _integrate_segments(rhs, y0, t, rtol, atol, progress, reduce_fn):
    """Integrate over the output times in segments whose stored states take at most ~_SEGMENT_BYTES, reducing
    each segment to observables right away (the covariance of a large model is never stored over time).
    Returns the observables (arrays over all times), success and accepted steps per point."""
    B, size = y0.shape
    seg = max(1, int(_SEGMENT_BYTES // max(B * size * 8, 1)))
    success = np.ones(B, dtype=bool)
    n_steps = np.zeros(B, dtype=np.int64)
    pieces = [reduce_fn(y0[None])]
    y = y0
    i = 0
    while i < t.size - 1:
        j = min(i + seg, t.size - 1)
        span = (t[-1] - t[0])
        sub = None if progress is None else (lambda x, a=t[i], b=t[j]: progress((a - t[0] + x * (b - a)) / span))
        part, stats = integrate(rhs, y, t[i:j + 1], rtol=rtol, atol=atol, progress=sub)
        pieces.append(reduce_fn(part[1:]))
        y = part[-1]
        success &= stats.success
        n_steps += stats.n_steps
        if not np.all(np.isfinite(y)):
            y = np.where(np.isfinite(y), y, np.nan)
        i = j
    obs = {key: np.concatenate([p[key] for p in pieces], axis=0) for key in pieces[0]}
    return obs, success, n_steps


def _sweep_solves_per_point(model, initial, options) -> int:
    """For :func:`opendicke.sweep.run_sweep`: a cumulant system costs about (3K + 2M) mean-field solves (its
    covariance rows), twice (with and without feedback)."""
    starts = len(initial) if isinstance(initial, (list, tuple)) else 1
    K = reduce(model).n_groups if not model.thermodynamic_limit else 1
    return starts * 2 * (3 * K + 2 * model.n_modes)


cumulant.sweep_solves_per_point = _sweep_solves_per_point
cumulant.sweep_spin_rates = True  # run_sweep may pass individual spin rates (model or varied gamma_*)
