"""Chebyshev propagator for a time-independent Lindblad generator, with run-time verified spectral bounds.

The expansion
-------------
Let the spectrum of the generator L lie in the ellipse E centred at −b on the real axis with semi-axes b
(real) and a > b (imaginary), so E spans [−2b, 0] × [−ia, ia]. With ρ_f = √(a² − b²) (the foci at −b ± iρ_f)
and L' = (L + b)/ρ_f, the Jacobi–Anger expansion gives, for every t ≥ 0,

    exp(tL) = e^{−tb} [J_0(tρ_f) + 2 Σ_{k≥1} J_k(tρ_f) M_k(L')],   M_{k+1} = 2L'M_k + M_{k−1},  M_0 = 1, M_1 = L',

with real coefficients and a real recurrence (M_k(z) = i^{−k} T_k(iz); the operator L is real on the real
representation of :mod:`.kernels`). On E, |M_k| ≤ R^k with R = (a + b)/ρ_f and Σ_k |J_k(x)| R^k ≈ e^{tb}:
the terms stay of order one (no cancellation) exactly when E holds the spectrum and touches 0 on the right.

One expansion serves every output time
--------------------------------------
Every output is a linear functional of ρ (expectation values), so only the *moments* m_k = F·M_k ρ0 are
kept (F: the observables as functionals of the real representation); the value at any t is
Σ_k c_k(t) m_k. One recurrence of length ≈ t_final·(a + b) gives all output times exactly, with no state
stored per output and no per-interval restart cost.

Error control
-------------
* Truncation: the recurrence runs until the terms |c_k(t_final)|·‖M_k ρ0‖ have been below ``tol``/1000
  for 8 consecutive k past the turning point k > t ρ_f (the Bessel tail falls super-exponentially there).
* Spectral bound, verified at run time: S(t) = Σ_k |c_k(t)|·‖M_k ρ0‖ (the sum of the absolute terms) is the
  cancellation factor of the sum, so the rounding error of every output is ≈ 1e-16·S. If the bound is
  wrong (an eigenvalue outside E, or strong non-normality), ‖M_k ρ0‖ outgrows R^k and S explodes; S >
  ``max_growth`` aborts the expansion, the ellipse is enlarged and the run restarts. The largest S is
  reported (``cancellation``) with the run. An earlier alarm: ‖M_k ρ0‖ > 10⁴·``max_growth``·R^k‖ρ0‖
  (the iterates outgrowing the ellipse's rate) aborts as well, before the Bessel weights let S see it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

import numba as nb

from .kernels import BandOperator, SplitLayout, _split_parallel, _split_serial, chebyshev_step, csr_matvec, transpose_into

__all__ = ["SpectralBound", "ChebyshevResult", "chebyshev_moments", "chebyshev_series", "CallbackStepper",
           "estimate_bound", "functionals"]


@dataclass(frozen=True)
class SpectralBound:
    """The ellipse centred at −b with real semi-axis b and imaginary semi-axis a (a > b)."""

    a: float
    b: float

    @property
    def focal(self) -> float:
        return math.sqrt(self.a * self.a - self.b * self.b)

    @property
    def growth(self) -> float:
        """R = (a + b)/ρ_f: the growth per step of the recurrence on the ellipse."""
        return (self.a + self.b) / self.focal

    def enlarged(self, factor: float = 1.1) -> SpectralBound:
        b = self.b * factor
        return SpectralBound(max(self.a * factor, 1.05 * b), b)


@dataclass(frozen=True)
class ChebyshevResult:
    """Values (n_functionals, n_times), the number of generator applications, restarts, the final bound, and
    the largest cancellation factor S over the outputs (rounding error ≈ 1e-16·S)."""

    values: np.ndarray
    applications: int
    restarts: int
    bound: SpectralBound
    cancellation: float
    truncation: float


def estimate_bound(op: BandOperator) -> SpectralBound:
    """A first spectral ellipse from the Hamiltonian's spread ΔE (imaginary extent of −i[H, ·]) and the
    largest decay rate of the dissipator (real extent); both enlarged by the factors measured on small
    problems (exact spectra, M = 1, N ≤ 6: max |Im λ| ≤ 1.03 ΔE, min Re λ ≥ −1.55 Σ_μ κ_μ (c_μ − 1));
    verified and enlarged at run time by :func:`chebyshev_moments`.

    Measured (M = 1, plain basis, t ≤ 10, scanning the ellipse with the run-time check): the smallest ellipse
    that keeps the cancellation factor O(1) has b ≈ 0.75–0.9 Σ κ (c − 1) and a ≈ 1.2 ΔE (N = 8, n_c = 25) to
    1.35 ΔE (N = 16, n_c = 30): the eigenvalues that need it are the weakly damped ones near the imaginary
    axis, where the ellipse is narrowest. A larger b is not safer: it narrows the ellipse there."""
    H = op.hamiltonian()
    d = op.dim
    if d <= 256:
        E = np.linalg.eigvalsh(H.toarray())
        spread = float(E[-1] - E[0])
    else:  # Lanczos for the two ends (≈ 5 ms at d = 510 where the dense eigvalsh takes 40 ms)
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(0).normal(size=d)  # fixed: the bound, hence the output, is reproducible
        hi = eigsh(H, k=1, which="LA", return_eigenvectors=False, tol=1e-8, v0=v0)[0]
        lo = eigsh(H, k=1, which="SA", return_eigenvectors=False, tol=1e-8, v0=v0)[0]
        spread = float(hi - lo)
    decay = float(2.0 * op.decay.max()) if op.decay.size else 0.0  # Σ κ n at the top levels
    b = max(0.8 * decay, 1e-3 * max(spread, 1.0))
    # the imaginary semi-axis needed grows slowly with the size (a/ΔE ≈ 1.2, 1.35, 1.43 at d = 198, 510, 1452):
    # a first ellipse that is too small costs a whole failed expansion before the restart
    a = max(_A_FACTOR * max(1.0, 1.0 + 0.27 * math.log10(d / 500.0)) * spread, 1.05 * b + 1e-6)
    return SpectralBound(a, b)


def functionals(observables: dict[str, sp.spmatrix], d: int) -> tuple[list[str], sp.csr_matrix]:
    """The observables as linear functionals of the real representation X = Re ρ + Im ρ:
    tr(Oρ) = Σ_ij F_ij X_ij with F_ij = ½(1 + i) O_ji + ½(1 − i) O_ij; one row per observable, columns i·d + j."""
    names = list(observables)
    rows, cols, vals = [], [], []
    for r, name in enumerate(names):
        O = sp.coo_matrix(observables[name])
        # ½(1 − i) O_ij at (i, j) and ½(1 + i) O_ij at (j, i)
        rows += [np.full(O.nnz, r), np.full(O.nnz, r)]
        cols += [O.row.astype(np.int64) * d + O.col, O.col.astype(np.int64) * d + O.row]
        vals += [0.5 * (1 - 1j) * O.data, 0.5 * (1 + 1j) * O.data]
    F = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(names), d * d))
    F.sum_duplicates()
    return names, F


def chebyshev_moments(
    op: BandOperator,
    X0: np.ndarray,
    F: sp.csr_matrix,
    times: np.ndarray,
    *,
    tol: float = 1e-8,
    bound: SpectralBound | None = None,
    max_growth: float = 1e4,
    max_restarts: int = 12,
    progress=None,
    layout: str = "split",
) -> ChebyshevResult:
    """⟨F, exp(t L) X0⟩ for every t in ``times`` (≥ 0) from one Chebyshev expansion (module docstring)."""
    t = np.asarray(times, dtype=float)
    if np.any(t < 0):
        raise ValueError("times must be ≥ 0 (relative to the initial state)")
    bound = estimate_bound(op) if bound is None else bound
    parallel = nb.get_num_threads() > 1
    if layout == "split":
        stepper = _SplitStepper(op, X0, F, parallel)
    elif layout == "full":
        h0, decay, offsets, bands, joff, jumps = op.h0, op.decay, op.offsets, op.bands, op.jump_offsets, op.jumps
        T = np.empty((op.dim, op.dim))
        dummy = np.empty((1, 1))

        def apply(cur, out, alpha, beta, pi):
            transpose_into(cur, T, parallel)
            return chebyshev_step(T, cur, out, out, dummy, h0, decay, offsets, bands, joff, jumps, alpha, beta, pi,
                                  0.0, False, parallel)

        stepper = CallbackStepper(X0, apply, *_real_imag(F))
    else:
        raise ValueError(f"layout must be 'split' or 'full', not {layout!r}")
    return chebyshev_series(stepper, t, bound, tol=tol, max_growth=max_growth, max_restarts=max_restarts,
                            progress=progress)


def chebyshev_series(stepper, times: np.ndarray, bound: SpectralBound, *, tol: float = 1e-8, max_growth: float = 1e4,
                     max_restarts: int = 12, progress=None) -> ChebyshevResult:
    """The generic driver: ⟨F, exp(t L) X0⟩ for every t ≥ 0 in ``times`` from one Chebyshev expansion (module
    docstring) of any real generator, given as a *stepper* that owns the state and the functionals F:
    ``stepper.norm0`` (‖X0‖), ``stepper.n_functionals``, ``stepper.start(m_re, m_im)`` (back to X0, its moments
    written to the two rows) and ``stepper.advance(k, nsteps, alpha, beta, m_re, m_im, norms, logs, scale_log,
    log_growth, log_norm_limit) → (steps done, scale_log, aborted)``: ``nsteps`` steps of M_{k+1} = αL'M_k +
    βM_k + M_{k−1} (halved coefficients and no M_{k−1} at k = 0), each followed by the moments of the new iterate,
    its norm, the rescaling by 1e-150 above 1e150 and the early growth check (:class:`CallbackStepper` does
    all of that around a single-step function). Restarts with a larger ellipse when the bound fails."""
    t = np.asarray(times, dtype=float)
    restarts = 0
    total_apps = 0
    while True:
        out = _series(stepper, t, tol, bound, max_growth, progress)
        total_apps += out[1]
        if out[0] is not None:
            values, _apps, cancel, trunc = out
            return ChebyshevResult(values=values, applications=total_apps, restarts=restarts, bound=bound,
                                   cancellation=cancel, truncation=trunc)
        restarts += 1
        if restarts > max_restarts:
            raise RuntimeError(f"Chebyshev propagator: no spectral bound found after {max_restarts} enlargements "
                               f"(last a = {bound.a:.4g}, b = {bound.b:.4g})")
        # a failure early in the expansion means the bound is far off: enlarge more
        expected = float(np.max(t)) * (bound.a + bound.b) + 1.0
        bound = bound.enlarged(1.1 if (out[1] > 0.5 * expected and expected > 64) else 1.5)  # a far-too-small ellipse fails early: grow it faster


def _real_imag(F) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    F_re = sp.csr_matrix(F.real)
    F_re.eliminate_zeros()
    F_im = sp.csr_matrix(F.imag)
    F_im.eliminate_zeros()
    return F_re, F_im


class CallbackStepper:
    """A :func:`chebyshev_series` stepper around one step function ``apply(cur, out, alpha, beta, pi) → ‖out‖²``
    that sets out = α L cur + β cur + π out (``out`` holds M_{k−1} on entry and may be read before it is written),
    and the observables as real functionals F_re, F_im (value = F_re·X + i F_im·X) of the flattened state."""

    def __init__(self, X0: np.ndarray, apply, F_re: sp.csr_matrix, F_im: sp.csr_matrix):
        self.X0 = np.asarray(X0, dtype=np.float64)
        self.apply = apply
        self.F_re = sp.csr_matrix(F_re)
        self.F_im = sp.csr_matrix(F_im)
        self.has_im = self.F_im.nnz > 0
        self.n_functionals = self.F_re.shape[0]
        self.norm0 = float(np.linalg.norm(self.X0))

    def _measure(self, v, into_re, into_im):  # real and imaginary parts as two real sparse products
        flat = v.reshape(-1)
        csr_matvec(self.F_re.indptr, self.F_re.indices, self.F_re.data, flat, into_re)
        if self.has_im:
            csr_matvec(self.F_im.indptr, self.F_im.indices, self.F_im.data, flat, into_im)

    def start(self, m_re, m_im):
        self.cur = np.array(self.X0, dtype=np.float64, order="C")  # M_k X0
        self.prev = np.zeros_like(self.cur)  # M_{k−1} X0, overwritten by M_{k+1} X0
        self._measure(self.cur, m_re, m_im)

    def advance(self, k, nsteps, alpha, beta, m_re, m_im, norms, logs, scale_log, log_growth, log_norm_limit):
        for step in range(nsteps):
            if k == 0:
                sq = self.apply(self.cur, self.prev, 0.5 * alpha, 0.5 * beta, 0.0)
            else:
                sq = self.apply(self.cur, self.prev, alpha, beta, 1.0)
            k += 1
            self.cur, self.prev = self.prev, self.cur
            nrm = math.sqrt(max(sq, 0.0))
            if nrm > 1e150:  # rescale both buffers (true values = stored · e^{scale_log})
                self.cur *= 1e-150
                self.prev *= 1e-150
                nrm *= 1e-150
                scale_log += 150.0 * math.log(10.0)
            self._measure(self.cur, m_re[k], m_im[k])
            norms[k] = nrm
            logs[k] = scale_log
            # early warning: on the ellipse ‖M_k X0‖ ≤ C R^k ‖X0‖; an eigenvalue outside makes it outgrow R^k
            # long before the cancellation factor S (weighted by the Bessel coefficients) shows it
            if math.log(max(nrm, 1e-300)) + scale_log - k * log_growth > log_norm_limit:
                return step + 1, scale_log, True
        return nsteps, scale_log, False


class _SplitStepper:
    """The plain basis's split layout: whole blocks of steps in compiled code (:func:`_split_block`)."""

    def __init__(self, op: BandOperator, X0: np.ndarray, F, parallel: bool):
        self.split = SplitLayout(op)
        self.X0 = np.asarray(X0, dtype=np.float64)
        self.norm0 = float(np.linalg.norm(self.X0))
        self.F_re, self.F_im = _real_imag(self.split.functional(F))
        self.has_im = self.F_im.nnz > 0
        self.n_functionals = F.shape[0]
        self.parallel = parallel

    def start(self, m_re, m_im):
        sp_ = self.split
        self.bufs = np.zeros((2,) + sp_.zeros().shape)  # bufs[ci] = M_k X0, bufs[1 − ci] = M_{k−1} X0
        self.bufs[0] = sp_.state(self.X0)
        self.ci = 0
        flat = self.bufs[0].reshape(-1)
        csr_matvec(self.F_re.indptr, self.F_re.indices, self.F_re.data, flat, m_re)
        if self.has_im:
            csr_matvec(self.F_im.indptr, self.F_im.indices, self.F_im.data, flat, m_im)

    def advance(self, k, nsteps, alpha, beta, m_re, m_im, norms, logs, scale_log, log_growth, log_norm_limit):
        s = self.split
        steps, self.ci, scale_log, bad = _split_block(
            self.bufs, self.ci, k, nsteps, s.h0, s.decay, s.offsets, s.bands, s.jump_offsets, s.jumps, s.pad, alpha,
            beta, self.parallel, self.F_re.indptr, self.F_re.indices, self.F_re.data, self.F_im.indptr,
            self.F_im.indices, self.F_im.data, self.has_im, m_re, m_im, norms, logs, scale_log, log_growth,
            log_norm_limit)
        return steps, scale_log, bad


def bessel_table(k_max: int, x: np.ndarray) -> np.ndarray:
    """J_k(x) for k = 0 … k_max (rows) and every x ≥ 0 (columns), by Miller's backward recurrence
    J_{k−1} = (2k/x) J_k − J_{k+1} normalised with J_0 + 2 Σ_{k≥1} J_{2k} = 1 (scipy's ``jv`` costs ~10 µs per
    value at the orders needed here, as much as the kernel)."""
    x = np.ascontiguousarray(x, dtype=float)
    k_max = int(k_max)
    out = np.zeros((k_max + 1, x.size))
    if x.size:
        start = int(max(k_max, float(x.max())) + 30 + 4 * np.cbrt(max(k_max, float(x.max()))) + 10)
        start += start % 2  # even, for the normalisation sum
        _miller(out, x, start)
    return out


@nb.njit(cache=True, nogil=True)
def _miller(out, x, start):
    k_max = out.shape[0] - 1
    for c in range(x.size):
        xc = x[c]
        if xc <= 0.0:
            out[0, c] = 1.0
            continue
        nxt = 0.0  # J_{k+1}
        cur = 1e-300  # J_k (arbitrary scale)
        norm = 0.0
        for k in range(start, 0, -1):
            prv = (2.0 * k / xc) * cur - nxt  # J_{k−1}
            nxt = cur
            cur = prv
            if k - 1 <= k_max:
                out[k - 1, c] = cur
            if (k - 1) % 2 == 0 and k - 1 > 0:
                norm += 2.0 * cur
            if abs(cur) > 1e250:  # rescale everything kept so far
                cur *= 1e-250
                nxt *= 1e-250
                norm *= 1e-250
                for r in range(k - 1, k_max + 1):
                    out[r, c] *= 1e-250
        norm += cur  # J_0
        for r in range(k_max + 1):
            out[r, c] /= norm


def _scaled(J: np.ndarray, log_factor) -> np.ndarray:
    """J·e^{log_factor} without overflow in the factor (computed as sign(J)·e^{log|J| + log_factor})."""
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        return np.sign(J) * np.exp(np.log(np.abs(J)) + log_factor)


_A_FACTOR = 1.3  # a/ΔE of the first ellipse up to d = 500
_BLOCK = 16  # steps whose coefficients and checks are evaluated together


@nb.njit(cache=True, nogil=True)
def _split_block(bufs, ci, k, nsteps, h0, decay, offsets, bands, joff, jumps, pad, alpha, beta, parallel, re_ptr,
                 re_idx, re_dat, im_ptr, im_idx, im_dat, has_im, m_re, m_im, norms, logs, scale_log, log_growth,
                 log_norm_limit):
    """``nsteps`` steps of the recurrence on split arrays (bufs[ci] = M_k X0, bufs[1 − ci] = M_{k−1} X0), each
    followed by the moments, the norm, the rescaling and the early growth check of :func:`_expand` (per-step
    Python costs ~15 µs, 15 % of a step at d = 200). Returns (steps done, ci, scale_log, aborted)."""
    for s in range(nsteps):
        cur = bufs[ci]
        prev = bufs[1 - ci]
        a = alpha
        b = beta
        p = 1.0
        if k == 0:
            a = 0.5 * alpha
            b = 0.5 * beta
            p = 0.0
        if parallel:
            sq = _split_parallel(cur, prev, prev, h0, decay, offsets, bands, joff, jumps, a, b, p, pad)
        else:
            sq = _split_serial(cur, prev, prev, h0, decay, offsets, bands, joff, jumps, a, b, p, pad)
        k += 1
        ci = 1 - ci
        nrm = math.sqrt(max(sq, 0.0))
        if nrm > 1e150:  # rescale both buffers (true values = stored · e^{scale_log})
            bufs *= 1e-150
            nrm *= 1e-150
            scale_log += 150.0 * math.log(10.0)
        flat = bufs[ci].reshape(-1)
        csr_matvec(re_ptr, re_idx, re_dat, flat, m_re[k])
        if has_im:
            csr_matvec(im_ptr, im_idx, im_dat, flat, m_im[k])
        norms[k] = nrm
        logs[k] = scale_log
        if math.log(max(nrm, 1e-300)) + scale_log - k * log_growth > log_norm_limit:
            return s + 1, ci, scale_log, True
    return nsteps, ci, scale_log, False


@nb.njit(cache=True, nogil=True)
def _block_terms(J, done, k, damp, logs, norms, k_min, threshold, quiet, S):
    """The terms |c_j(t)|·‖M_j X0‖ = w_j |J_j(tρ_f)| e^{−tb + log scale_j} ‖M_j X0‖ for j = done … k: the stopping
    rule (8 consecutive j > k_min whose largest term over t is below ``threshold``) and S(t) += the terms up to
    the stop. Returns (stop or −1, quiet)."""
    stop = -1
    for j in range(done, k + 1):
        w = 1.0 if j == 0 else 2.0
        tmax = 0.0
        for c in range(S.size):
            a = abs(J[j, c])
            term = w * math.exp(math.log(a) + damp[c] + logs[j]) * norms[j] if a > 0.0 else 0.0
            S[c] += term
            tmax = max(tmax, term)
        if j > k_min and tmax < threshold:
            quiet += 1
            if quiet >= 8:
                stop = j
                break
        else:
            quiet = 0
    return stop, quiet


def _series(stepper, t, tol, bound, max_growth, progress):
    """One expansion with ``bound``: (values, applications, cancellation, truncation), or (None, applications,
    None, None) when the bound fails."""
    rho_f = bound.focal
    b = bound.b
    x = t * rho_f
    x_max = float(x.max()) if x.size else 0.0
    damp = -t * b  # log of e^{−tb}
    nf = stepper.n_functionals
    norm0 = stepper.norm0
    threshold = tol * 1e-3
    k_table = int(x_max * bound.growth + 12 * np.cbrt(x_max + 1) + 64)
    J = bessel_table(k_table, x)
    # per-step records (grown on demand): moments (real, imaginary parts), norms and log scales of M_k X0
    cap = k_table + 2 * _BLOCK
    m_re = np.zeros((cap, nf))
    m_im = np.zeros((cap, nf))
    norms = np.zeros(cap)
    logs = np.zeros(cap)
    stepper.start(m_re[0], m_im[0])
    norms[0] = norm0
    scale_log = 0.0  # true M_k X0 = (stored) · e^{scale_log}
    S = np.zeros_like(t)  # Σ |c_k(t)| ‖M_k X0‖
    quiet = 0
    k = 0
    apps = 0
    alpha = 2.0 / rho_f
    beta = 2.0 * b / rho_f
    log_growth = math.log(bound.growth)
    log_norm_limit = math.log(max(norm0, 1e-300) * 1e4 * max_growth)
    done = 0  # records [0, done) have been added to S and checked for the stopping rule
    stop = None
    while stop is None:
        target = done + _BLOCK - 1  # the block ends at M_target
        if target >= cap:
            cap = 2 * cap + _BLOCK
            m_re = np.resize(m_re, (cap, nf))
            m_im = np.resize(m_im, (cap, nf))
            norms = np.resize(norms, cap)
            logs = np.resize(logs, cap)
        # M_{k+1} = 2 L' M_k + M_{k−1} with L' = (L + b)/ρ_f; M_1 = L' M_0
        steps, scale_log, bad = stepper.advance(k, target - k, alpha, beta, m_re, m_im, norms, logs, scale_log,
                                                log_growth, log_norm_limit)
        apps += steps
        k += steps
        if bad:
            return None, apps, None, None
        # the terms |c_k(t)|·‖M_k X0‖ of a block of steps at once (per-step NumPy calls cost ~10 % of a step)
        if k >= J.shape[0]:
            J = bessel_table(2 * J.shape[0], x)
        stop_at, quiet = _block_terms(J, done, k, damp, logs, norms, x_max + 4, threshold * norm0, quiet, S)
        if stop_at >= 0:
            stop = stop_at  # the series ends at M_stop, as if the loop had stopped there
        if not np.all(np.isfinite(S)) or S.max() > max_growth * max(norm0, 1e-300) * 10:
            return None, apps, None, None
        done = k + 1
        if progress is not None:
            progress(min(1.0, k / (x_max * bound.growth + 20)))
    n = stop + 1
    if n > J.shape[0]:
        J = bessel_table(n, x)
    m = m_re[:n] + 1j * m_im[:n]  # (n, n_functionals)
    lg = logs[:n]
    norms = norms[:n]
    w = np.full(n, 2.0)
    w[0] = 1.0
    C = w[:, None] * _scaled(J[:n], damp[None, :] + lg[:, None])  # (n, n_times)
    values = C.T @ m  # (n_times, n_functionals)
    trunc = float(np.max(np.abs(C[-8:]) * norms[-8:][:, None])) if n > 8 else 0.0
    return values.T, apps, float(S.max() / max(norm0, 1e-300)), trunc
