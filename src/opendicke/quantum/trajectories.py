"""Quantum-jump trajectories on compiled ket kernels (no QuTiP): the engine of ``method="trajectories"``.

Unravelling
-----------
Between jumps a trajectory follows the non-Hermitian Schrödinger equation dψ/dt = −i H_eff ψ with
H_eff = H − (i/2) Σ_m J_m†J_m, and its squared norm decays; at the first time the squared norm reaches a
uniform random number r the state jumps, ψ → J_m ψ with probability ∝ ‖J_m ψ‖², is renormalised, and a new r
is drawn (the waiting-time method of Dalibard, Castin and Mølmer). Expectation values at the output times are
taken on the normalised state; their mean over trajectories is the Lindblad master equation's.

Structure used
--------------
In the plain (Dicke ⊗ Fock) basis H is a real symmetric band matrix (diagonal, the large spins' tridiagonal
S_x and the bosons' bidiagonal a + a† at fixed strides) and every jump √κ_μ a_μ is one real diagonal at the
mode's stride, so D = ½ Σ J†J is diagonal (:func:`~.kernels.band_form`, the form of the master-equation
kernel). A ket is stored as two real arrays (real and imaginary part), so every loop below is a real,
vectorisable pass over contiguous memory; the observables are stored as bands too.

Propagator (chosen by measurement, docs/performance.md)
--------------------------------------------------------
−i H_eff = c − i R Z with c = −D_max/2 and Z = (H' − i(D − D_max/2))/R, where H' is H shifted by the centre
of its Gershgorin interval (a global phase) and R its half-width. The field of values of Z lies in
[−1, 1] × i[−δ, δ], δ = D_max/2R, and the Jacobi–Anger series exp(−iτR Z) = Σ_k (2 − δ_k0)(−i)^k J_k(τR) T_k(Z)
converges for every Z (entire), so one Chebyshev step ψ(τ) = e^{cτ} Σ_k a_k(τ) T_k(Z)ψ serves every τ in the
step: its vectors T_k(Z)ψ are kept, and the state at any τ (output times; the jump time, found by safeguarded
Newton on log‖ψ(τ)‖² with d log‖ψ‖²/dτ = −2⟨D⟩) costs one combination and no application. The series stops
when two consecutive terms are ≤ ``tol`` · τ · ‖ψ‖ (error per unit time); a step is aimed at 1.25 × the
expected jump time log(‖ψ‖²/r)/(2⟨D⟩/‖ψ‖²). Arnoldi steps with the same dense output (root finding in the
Krylov space) were measured 4.6× slower at N = 32 (the orthogonalisation and the small eigenproblems cost
more than the applications) and are not kept.

Every trajectory runs in one compiled call; trajectories are independent and reproducible: trajectory i
takes its uniform random numbers from ``SeedSequence(seed).spawn(ntraj)[i]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

from .kernels import band_form

__all__ = ["KetProblem", "ket_problem", "run_trajectory", "sample", "nojump_branch", "DEFAULT_TERMS"]

#: Most Chebyshev terms kept per step (a step that needs more is shortened); each holds 2·d·8 bytes.
DEFAULT_TERMS = 64


@dataclass(frozen=True)
class KetProblem:
    """Everything a compiled trajectory needs: the shifted band form of H, D = ½ Σ J†J, the jumps, and the
    observables (real diagonal ones as rows of ``diag_ops``; the others as complex bands ``obs_bands``
    (n, 2, d) at ``obs_offsets`` (element [i, i + o]), summed into observable ``obs_owner``)."""

    psi0: np.ndarray  # (2, d): real and imaginary part, normalised
    h0: np.ndarray  # (d,) diagonal of H − centre
    offsets: np.ndarray  # (nb,)
    bands: np.ndarray  # (nb, d)
    jump_offsets: np.ndarray  # (nj,)
    jumps: np.ndarray  # (nj, d)
    decay: np.ndarray  # (d,)
    diag_ops: np.ndarray  # (n_diag, d)
    obs_offsets: np.ndarray  # (nob,) int, may be negative
    obs_bands: np.ndarray  # (nob, 2, d)
    obs_owner: np.ndarray  # (nob,) index among the full observables
    names: tuple  # diagonal observables first, then the full ones
    n_full: int
    radius: float  # R: half-width of H's Gershgorin interval

    @property
    def dim(self) -> int:
        return self.psi0.shape[1]

    @property
    def rate_bound(self) -> float:
        """2 max(D): the jump rate 2⟨D⟩ never exceeds it."""
        return float(2.0 * np.max(self.decay, initial=0.0))


def ket_problem(hamiltonian: sp.spmatrix, jumps: list, psi0: np.ndarray, observables: dict) -> KetProblem:
    """The compiled form of a problem with a real symmetric band Hamiltonian and real single-offset jumps
    (ValueError otherwise, from :func:`~.kernels.band_form`); ``observables`` maps names to sparse operators."""
    band = band_form(hamiltonian, jumps)
    d = band.dim
    radius = np.zeros(d)
    for o, u in zip(band.offsets, band.bands):
        radius[: d - o] += np.abs(u[: d - o])
        radius[o:] += np.abs(u[: d - o])
    top, bottom = np.max(band.h0 + radius), np.min(band.h0 - radius)
    centre = 0.5 * (top + bottom)
    diag_names, diag_rows, full_names = [], [], []
    obs_offsets, obs_bands, obs_owner = [], [], []
    for name, op in observables.items():
        coo = sp.coo_matrix(op)
        if coo.nnz == 0 or (np.all(coo.row == coo.col) and np.all(np.imag(coo.data) == 0)):
            row = np.zeros(d)
            np.add.at(row, coo.row, np.real(coo.data))
            diag_names.append(name)
            diag_rows.append(row)
            continue
        owner = len(full_names)
        full_names.append(name)
        offs = coo.col - coo.row
        for o in np.unique(offs):
            sel = offs == o
            b = np.zeros(d, dtype=complex)
            np.add.at(b, coo.row[sel], coo.data[sel])  # b[i] = A[i, i + o]
            obs_offsets.append(int(o))
            obs_bands.append(np.stack([b.real, b.imag]))
            obs_owner.append(owner)
    psi = np.asarray(psi0, dtype=complex) / np.linalg.norm(psi0)
    return KetProblem(
        psi0=np.ascontiguousarray(np.stack([psi.real, psi.imag])),
        h0=np.ascontiguousarray(band.h0 - centre), offsets=band.offsets, bands=band.bands,
        jump_offsets=band.jump_offsets, jumps=band.jumps, decay=band.decay,
        diag_ops=np.ascontiguousarray(np.array(diag_rows).reshape(len(diag_rows), d)),
        obs_offsets=np.array(obs_offsets, dtype=np.int64),
        obs_bands=np.ascontiguousarray(np.array(obs_bands).reshape(len(obs_bands), 2, d)),
        obs_owner=np.array(obs_owner, dtype=np.int64),
        names=tuple(diag_names + full_names), n_full=len(full_names),
        radius=float(max(0.5 * (top - bottom), 1e-12)),
    )


# ----------------------------------------------------------------------------------------------- kernels
@nb.njit(cache=True, nogil=True)
def _bessel_j(x, out):
    """J_k(x), k = 0 … out.size − 1, x ≥ 0 (Miller's backward recurrence normalised by J_0 + 2 Σ J_2k = 1)."""
    K = out.size - 1
    out[:] = 0.0
    if x <= 0.0:
        out[0] = 1.0
        return
    start = int(max(K, x) + 30 + 4 * max(K, x) ** (1.0 / 3.0) + 10)
    start += start % 2
    nxt = 0.0
    cur = 1e-300
    norm = 0.0
    for k in range(start, 0, -1):
        prv = (2.0 * k / x) * cur - nxt
        nxt = cur
        cur = prv
        if k - 1 <= K:
            out[k - 1] = cur
        if (k - 1) % 2 == 0 and k - 1 > 0:
            norm += 2.0 * cur
        if abs(cur) > 1e250:
            cur *= 1e-250
            nxt *= 1e-250
            norm *= 1e-250
            for q in range(k - 1, K + 1):
                out[q] *= 1e-250
    norm += cur
    for q in range(K + 1):
        out[q] /= norm


@nb.njit(cache=True, nogil=True)
def _norm2(x):
    s = 0.0
    re = x[0]
    im = x[1]
    for i in range(re.size):
        s += re[i] * re[i] + im[i] * im[i]
    return s


@nb.njit(cache=True, nogil=True)
def _cheb_step(prev, cur, out, h0, shifted, offsets, bands, scale):
    """out = scale · Z cur − prev with R·Z = H' − i E (E = ``shifted`` = D − D_max/2); returns ‖out‖².
    (scale = 2/R: the recurrence; scale = 1/R with prev = 0: the first term.)"""
    d = h0.size
    x = cur[0]
    y = cur[1]
    ore = out[0]
    oim = out[1]
    pre = prev[0]
    pim = prev[1]
    for i in range(d):
        a = scale * h0[i]
        e = scale * shifted[i]
        ore[i] = a * x[i] + e * y[i] - pre[i]
        oim[i] = a * y[i] - e * x[i] - pim[i]
    for b in range(offsets.size):
        o = offsets[b]
        n = d - o
        u = bands[b]
        # upper band: out[i] += u[i] cur[i + o]; lower band: out[i + o] += u[i] cur[i] (plain-index slices vectorise)
        r0 = ore[:n]
        r1 = oim[:n]
        x1 = x[o:]
        y1 = y[o:]
        for i in range(n):
            c = scale * u[i]
            r0[i] += c * x1[i]
            r1[i] += c * y1[i]
        r0 = ore[o:]
        r1 = oim[o:]
        for i in range(n):
            c = scale * u[i]
            r0[i] += c * x[i]
            r1[i] += c * y[i]
    return _norm2(out)


@nb.njit(cache=True, nogil=True)
def _combine(V, K, J, tau, shift, phi, vnorm, small, radius):
    """phi = e^{cτ} Σ_{k<K} (2 − δ_k0)(−i)^k J_k T_k (J = J_k(τR), T_k = V[k]); the sum stops early once two
    consecutive terms beyond k = τR are ≤ ``small`` (a step's series also serves shorter τ, which need fewer)."""
    scale = math.exp(shift * tau)
    re = phi[0]
    im = phi[1]
    re[:] = 0.0
    im[:] = 0.0
    d = re.size
    for k in range(K):
        f = (1.0 if k == 0 else 2.0) * J[k] * scale
        if k > tau * radius + 1 and abs(f) * vnorm[k] <= small and 2.0 * abs(J[k - 1]) * scale * vnorm[k - 1] <= small:
            break
        if f == 0.0:
            continue
        x = V[k, 0]
        y = V[k, 1]
        r4 = k % 4  # (−i)^k = 1, −i, −1, i
        if r4 == 0:
            for i in range(d):
                re[i] += f * x[i]
                im[i] += f * y[i]
        elif r4 == 1:
            for i in range(d):
                re[i] += f * y[i]
                im[i] -= f * x[i]
        elif r4 == 2:
            for i in range(d):
                re[i] -= f * x[i]
                im[i] -= f * y[i]
        else:
            for i in range(d):
                re[i] -= f * y[i]
                im[i] += f * x[i]


@nb.njit(cache=True, nogil=True)
def _mean_decay(phi, decay):
    s = 0.0
    re = phi[0]
    im = phi[1]
    for i in range(decay.size):
        s += decay[i] * (re[i] * re[i] + im[i] * im[i])
    return s


@nb.njit(cache=True, nogil=True)
def _record(phi, norm2, diag_ops, obs_offsets, obs_bands, obs_owner, n_full, out):
    """Expectation values on phi/‖phi‖ (norm2 = ‖phi‖²) into ``out`` (n_diag + n_full,) complex."""
    re = phi[0]
    im = phi[1]
    d = re.size
    nd = diag_ops.shape[0]
    pop = np.empty(d)
    for i in range(d):
        pop[i] = re[i] * re[i] + im[i] * im[i]
    for k in range(nd):
        row = diag_ops[k]
        s = 0.0
        for i in range(d):
            s += row[i] * pop[i]
        out[k] = s / norm2
    for f in range(n_full):
        out[nd + f] = 0.0
    for b in range(obs_offsets.size):
        o = obs_offsets[b]
        br = obs_bands[b, 0]
        bi = obs_bands[b, 1]
        lo = max(0, -o)
        hi = min(d, d - o)
        sr = 0.0
        si = 0.0
        for i in range(lo, hi):
            j = i + o
            p = re[i] * re[j] + im[i] * im[j]  # Re conj(ψ_i) ψ_j
            q = re[i] * im[j] - im[i] * re[j]  # Im conj(ψ_i) ψ_j
            sr += br[i] * p - bi[i] * q
            si += br[i] * q + bi[i] * p
        out[nd + obs_owner[b]] += complex(sr, si) / norm2


@nb.njit(cache=True, nogil=True)
def _jump(psi, joffsets, jumps, weights, u, new):
    """new = J_m psi / ‖J_m psi‖ with m drawn ∝ ‖J_m psi‖² by the uniform u."""
    d = psi.shape[1]
    nj = joffsets.size
    total = 0.0
    for mj in range(nj):
        o = joffsets[mj]
        s = 0.0
        for i in range(d - o):
            a = jumps[mj, i]
            s += a * a * (psi[0, i + o] ** 2 + psi[1, i + o] ** 2)
        weights[mj] = s
        total += s
    target = u * total
    ch = nj - 1
    acc = 0.0
    for mj in range(nj):
        acc += weights[mj]
        if target < acc:
            ch = mj
            break
    o = joffsets[ch]
    norm = math.sqrt(weights[ch])
    new[:, :] = 0.0
    for i in range(d - o):
        w = jumps[ch, i] / norm
        new[0, i] = w * psi[0, i + o]
        new[1, i] = w * psi[1, i + o]


@nb.njit(cache=True, nogil=True)
def run_trajectory(psi0, times, uniforms, h0, decay, offsets, bands, joffsets, jumps, diag_ops, obs_offsets,
                   obs_bands, obs_owner, n_full, radius, kmax, tol, values, norms, stats):
    """One trajectory from ``psi0`` ((2, d), normalised) at ``times``: expectation values into ``values``
    (T, n_obs), the squared norm of the unnormalised state at every output time into ``norms`` (T,) (the
    no-jump probability while no jump has happened). The first entry of ``uniforms`` is the first threshold r;
    every jump then takes one number for the channel and one for the next threshold. With r = 0 the trajectory
    never jumps (the no-jump branch) and its state is renormalised every step, so p0 may underflow without
    spoiling the expectation values. ``stats`` (4,) gets applications, steps, jumps and shortened steps.

    Returns the time of the first jump (inf if none), or −1 if ``uniforms`` ran out (retry with more).
    """
    d = h0.size
    T = times.size
    nj = joffsets.size
    dmax = 0.0
    for i in range(d):
        dmax = max(dmax, decay[i])
    shift = -0.5 * dmax
    shifted = decay - 0.5 * dmax
    V = np.empty((kmax + 1, 2, d))
    vnorm = np.empty(kmax + 1)
    J = np.empty(kmax + 1)
    phi = np.empty((2, d))
    out = np.empty((2, d))
    zero = np.zeros((2, d))
    weights = np.empty(max(nj, 1))
    psi = psi0.copy()
    t = times[0]
    _record(psi, 1.0, diag_ops, obs_offsets, obs_bands, obs_owner, n_full, values[0])
    norms[0] = 1.0
    k = 1
    if uniforms.size < 1:
        return -1.0
    r = uniforms[0]
    used = 1
    first = np.inf
    lognorm = 0.0  # log of the squared norm divided out of psi (only with r = 0)
    # longest step: Rτ ≤ kmax/2 (room for the series' tail), and the cancellation e^{D_max τ/2} ≤ e^3
    h_max = min(0.5 * kmax / radius, 6.0 / max(dmax, 1e-300))
    while k < T:
        n0 = _norm2(psi)
        remaining = times[T - 1] - t
        h = min(h_max, remaining)
        if r > 0.0:
            rate = 2.0 * _mean_decay(psi, decay) / n0
            if rate > 0.0:
                h = min(h, max(1.25 * math.log(n0 / r) / rate, 1e-3 * h_max))
        # ---- the series: terms until two consecutive ones are small at τ = h
        V[0] = psi
        vnorm[0] = math.sqrt(n0)
        vnorm[1] = math.sqrt(_cheb_step(zero, psi, V[1], h0, shifted, offsets, bands, 1.0 / radius))
        stats[0] += 1
        K = 2
        while True:
            _bessel_j(h * radius, J[:K])
            target = tol * h * math.sqrt(n0) * math.exp(-shift * h)
            if K >= 3 and K - 1 > h * radius and 2.0 * abs(J[K - 1]) * vnorm[K - 1] <= target \
                    and 2.0 * abs(J[K - 2]) * vnorm[K - 2] <= target:
                break
            if K > kmax:  # not converged within kmax terms: shorten the step (the vectors stay valid)
                h *= 0.7
                stats[3] += 1
                continue
            vnorm[K] = math.sqrt(_cheb_step(V[K - 2], V[K - 1], V[K], h0, shifted, offsets, bands, 2.0 / radius))
            stats[0] += 1
            K += 1
        stats[1] += 1
        small = 1e-2 * tol * h * math.sqrt(n0)
        _combine(V, K, J, h, shift, phi, vnorm, 0.0, radius)
        n_end = _norm2(phi)
        jump = r > 0.0 and n_end <= r
        tau = h
        if jump:  # safeguarded Newton on f(τ) = log‖ψ(τ)‖² − log r in the bracket [lo, hi]
            lo, hi = 0.0, h
            flo = math.log(n0 / r)
            fhi = math.log(n_end / r)
            x = h * flo / (flo - fhi)  # first guess: log‖ψ‖² linear in τ
            for _ in range(60):
                _bessel_j(x * radius, J[:K])
                _combine(V, K, J, x, shift, phi, vnorm, small, radius)
                nx = _norm2(phi)
                fx = math.log(nx / r)
                if fx > 0.0:
                    lo = x
                else:
                    hi = x
                if abs(fx) <= 1e-14 or hi - lo <= 1e-14 * h:
                    break
                dfx = -2.0 * _mean_decay(phi, decay) / nx
                nxt = x - fx / dfx if dfx < 0.0 else 0.5 * (lo + hi)
                if not (lo < nxt < hi):
                    nxt = 0.5 * (lo + hi)
                x = nxt
            tau = x  # phi holds ψ(τ)
        # ---- outputs inside (t, t + τ]
        end = t + tau
        while k < T and (times[k] <= end or (not jump and tau == remaining)):
            _bessel_j((times[k] - t) * radius, J[:K])
            _combine(V, K, J, times[k] - t, shift, out, vnorm, small, radius)
            n2k = _norm2(out)
            _record(out, n2k, diag_ops, obs_offsets, obs_bands, obs_owner, n_full, values[k])
            norms[k] = n2k * math.exp(lognorm)
            k += 1
        t = end
        if jump:
            if used + 2 > uniforms.size:
                return -1.0
            if first == np.inf:
                first = t
            stats[2] += 1
            _jump(phi, joffsets, jumps, weights, uniforms[used], psi)
            r = uniforms[used + 1]
            used += 2
        elif r == 0.0:  # the no-jump branch: keep the state at unit norm, its squared norm in lognorm
            lognorm += math.log(n_end)
            psi[:, :] = phi
            psi /= math.sqrt(n_end)
        else:
            psi[:, :] = phi
    return first


# ----------------------------------------------------------------------------------------------- drivers
def _uniform_count(problem: KetProblem, span: float) -> int:
    """Random numbers drawn per trajectory up front: 2 per jump at three times the largest possible mean number
    of jumps, plus a margin (a trajectory that needs more is rerun with twice as many: same prefix, same path)."""
    return int(2 * (3.0 * problem.rate_bound * span + 20)) + 1


def _call(problem: KetProblem, times, uniforms, terms, tol, values, norms, stats):
    return run_trajectory(problem.psi0, times, uniforms, problem.h0, problem.decay, problem.offsets, problem.bands,
                          problem.jump_offsets, problem.jumps, problem.diag_ops, problem.obs_offsets,
                          problem.obs_bands, problem.obs_owner, problem.n_full, problem.radius, int(terms),
                          float(tol), values, norms, stats)


def _check(times, tol, terms):
    t = np.ascontiguousarray(times, dtype=float)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("times must be a strictly increasing list of finite times")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if isinstance(terms, bool) or int(terms) != terms or terms < 8:
        raise ValueError(f"terms must be an integer ≥ 8 (Chebyshev terms kept per step), got {terms!r}")
    return t


def sample(problem: KetProblem, times, ntraj: int, seed=None, *, tol: float = 1e-8, terms: int = DEFAULT_TERMS,
           progress=None, batches: int = 10, threads: int = 1):
    """``ntraj`` trajectories: (values {name: (ntraj, T) complex}, first jump times (ntraj,), statistics).

    Trajectory i draws its numbers from ``SeedSequence(seed).spawn(ntraj)[i]``: the same seed gives the same
    trajectories, whatever ``threads``. ``progress`` gets the fraction done after every batch (``batches`` per
    run). ``tol``: error per unit time of the no-jump propagation, relative to the norm. ``threads`` > 1 runs
    that many trajectories at once (the compiled trajectory releases the GIL).
    """
    t = _check(times, tol, terms)
    if isinstance(ntraj, bool) or int(ntraj) != ntraj or ntraj < 1:
        raise ValueError(f"ntraj must be a positive integer, got {ntraj!r}")
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    ntraj = int(ntraj)
    out = np.empty((ntraj, t.size, len(problem.names)), dtype=np.complex128)
    first = np.empty(ntraj)
    stats = np.zeros((ntraj, 4), dtype=np.int64)
    seeds = np.random.SeedSequence(seed).spawn(ntraj)
    count = _uniform_count(problem, float(t[-1] - t[0]))

    def one(i):
        size = count
        norms = np.empty(t.size)
        while True:
            uniforms = np.random.default_rng(seeds[i]).random(size)
            res = _call(problem, t, uniforms, terms, tol, out[i], norms, stats[i])
            if res != -1.0:
                break
            size *= 2
            stats[i] = 0
        first[i] = res

    batch = max(1, -(-ntraj // batches))
    pool = None
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(int(threads))
    try:
        for lo in range(0, ntraj, batch):
            block = range(lo, min(lo + batch, ntraj))
            if pool is None:
                for i in block:
                    one(i)
            else:
                list(pool.map(one, block))
            if progress is not None:
                progress(block.stop / ntraj)
    finally:
        if pool is not None:
            pool.shutdown()
    values = {name: out[:, :, j] for j, name in enumerate(problem.names)}
    total = stats.sum(axis=0)
    return values, first, {"applications": int(total[0]), "steps": int(total[1]), "jumps": int(total[2]),
                           "shortened_steps": int(total[3]), "terms": int(terms), "radius": problem.radius}


def nojump_branch(problem: KetProblem, times, *, tol: float = 1e-8, terms: int = DEFAULT_TERMS):
    """The deterministic no-jump branch: (p0 (T,), {name: (T,) expectation values on the normalised state})."""
    t = _check(times, tol, terms)
    values = np.empty((t.size, len(problem.names)), dtype=np.complex128)
    norms = np.empty(t.size)
    _call(problem, t, np.zeros(1), terms, tol, values, norms, np.zeros(4, dtype=np.int64))  # r = 0: never jumps
    return np.minimum(norms, 1.0), {name: values[:, j] for j, name in enumerate(problem.names)}
