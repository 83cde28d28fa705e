"""Quantum-jump trajectories on compiled ket kernels (no QuTiP): the engine of ``method="trajectories"``.

Unravelling
-----------
Between jumps a trajectory follows the non-Hermitian Schrödinger equation dψ/dt = −i H_eff ψ with
H_eff = H − (i/2) Σ_m J_m†J_m, and its squared norm decays; at the first time the squared norm reaches a
uniform random number r the state jumps, ψ → J_m ψ with probability ∝ ‖J_m ψ‖², and is renormalised
(the standard waiting-time method, Dalibard–Castin–Mølmer). Expectation values at the output times are taken
on the normalised state. The ensemble average is the Lindblad master equation.

Structure used
--------------
In the plain (Dicke ⊗ Fock) basis H is a real symmetric band matrix (diagonal, the large spins' tridiagonal
S_x and the bosons' bidiagonal a + a† at fixed strides) and every jump √κ_μ a_μ is one real diagonal at the
mode's stride, so Σ J†J is diagonal (:func:`~.kernels.band_form`, the form the master-equation kernel
uses). The action −i H_eff ψ = −i H ψ − D ψ (D = ½ Σ J†J) is one pass over a few contiguous bands.
H is shifted by the centre of its spectrum (a global phase, invisible in norms and expectation values).

Propagator
----------
Arnoldi (Krylov) steps of the time-independent generator: from ψ with norm β, m Arnoldi vectors V and the
Hessenberg matrix H_m give ψ(τ) ≈ β V exp(τ H_m) e₁ for *every* τ in the step, with the a-posteriori error
estimate β h_{m+1,m} τ |e_mᵀ exp(τ H_m) e₁| (Saad 1992) held ≤ ``tol`` · β · τ (error per unit time). This
is a dense output for free: the squared norm of ψ(τ) is β² ‖exp(τ H_m) e₁‖² (V orthonormal), so the jump time
is found by root finding in the m-dimensional space (to ~1e-13 in τ), and the states at the output times cost
one m × d combination each. exp(τ H_m) e₁ is evaluated through the eigen-decomposition of H_m (O(m²) per τ),
or by a Taylor series with sub-steps where that decomposition is ill-conditioned. A smaller step re-uses the
same Krylov space (no new applications).

Everything per trajectory (steps, jumps, observables) runs in compiled code; trajectories are independent and
reproducible: each gets its own uniform random numbers from a spawned :class:`numpy.random.SeedSequence`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

from .kernels import band_form

__all__ = ["KetProblem", "ket_problem", "run_trajectory", "sample", "nojump_branch"]


@dataclass(frozen=True)
class KetProblem:
    """Everything a compiled trajectory needs: the shifted band form of H, the decay D = ½ Σ J†J, the jumps,
    and the observables (diagonal ones as rows of ``diag_ops``, the others stacked as one CSR matrix of
    ``n_full`` blocks of d rows)."""

    psi0: np.ndarray  # (d,) complex, normalised
    h0: np.ndarray  # (d,) diagonal of H − E0
    offsets: np.ndarray  # (nb,)
    bands: np.ndarray  # (nb, d)
    jump_offsets: np.ndarray  # (nj,)
    jumps: np.ndarray  # (nj, d)
    decay: np.ndarray  # (d,)
    diag_ops: np.ndarray  # (n_diag, d) real
    full_indptr: np.ndarray
    full_indices: np.ndarray
    full_data: np.ndarray  # complex
    names: tuple  # diagonal names first, then the full ones
    n_full: int
    rate_bound: float  # 2 max(D): the jump rate never exceeds it
    radius: float  # half-width of H's spectrum around the centre (Gershgorin)

    @property
    def dim(self) -> int:
        return self.psi0.size


def ket_problem(hamiltonian: sp.spmatrix, jumps: list, psi0: np.ndarray, observables: dict) -> KetProblem:
    """The compiled form of a problem with a real symmetric band Hamiltonian and real single-offset jumps
    (ValueError otherwise, from :func:`~.kernels.band_form`)."""
    band = band_form(hamiltonian, jumps)
    d = band.dim
    # centre of the spectrum (Gershgorin bounds): a global phase, which shortens the Krylov steps' work
    radius = np.abs(band.h0).copy() * 0
    for o, u in zip(band.offsets, band.bands):
        radius[: d - o] += np.abs(u[: d - o])
        radius[o:] += np.abs(u[: d - o])
    top, bottom = np.max(band.h0 + radius), np.min(band.h0 - radius)
    centre = 0.5 * (top + bottom)
    diag_names, diag_rows, full_names, full_blocks = [], [], [], []
    for name, op in observables.items():
        coo = sp.coo_matrix(op)
        if coo.nnz == 0 or (np.all(coo.row == coo.col) and np.all(np.imag(coo.data) == 0)):
            row = np.zeros(d)
            np.add.at(row, coo.row, np.real(coo.data))
            diag_names.append(name)
            diag_rows.append(row)
        else:
            full_names.append(name)
            full_blocks.append(sp.csr_matrix(op, dtype=complex))
    full = sp.vstack(full_blocks, format="csr") if full_blocks else sp.csr_matrix((0, d), dtype=complex)
    full.sort_indices()
    return KetProblem(
        psi0=np.ascontiguousarray(psi0, dtype=np.complex128) / np.linalg.norm(psi0),
        h0=band.h0 - centre, offsets=band.offsets, bands=band.bands, jump_offsets=band.jump_offsets,
        jumps=band.jumps, decay=band.decay,
        diag_ops=np.ascontiguousarray(np.array(diag_rows).reshape(len(diag_rows), d)),
        full_indptr=np.ascontiguousarray(full.indptr, dtype=np.int64),
        full_indices=np.ascontiguousarray(full.indices, dtype=np.int64),
        full_data=np.ascontiguousarray(full.data, dtype=np.complex128),
        names=tuple(diag_names + full_names), n_full=len(full_names),
        rate_bound=float(2.0 * np.max(band.decay, initial=0.0)), radius=float(max(0.5 * (top - bottom), 1e-12)),
    )


# ----------------------------------------------------------------------------------------------- kernels
@nb.njit(cache=True, nogil=True)
def _apply(psi, out, h0, decay, offsets, bands):
    """out = −i H_eff psi = −i H psi − D psi for H = diag(h0) + Σ_b (U_b + U_bᵀ)."""
    d = psi.size
    for i in range(d):
        out[i] = complex(-decay[i], -h0[i]) * psi[i]
    for b in range(offsets.size):
        o = offsets[b]
        u = bands[b]
        for i in range(d - o):
            c = complex(0.0, -u[i])
            out[i] += c * psi[i + o]
            out[i + o] += c * psi[i]


@nb.njit(cache=True, nogil=True)
def _expv_taylor(Hm, tau):
    """exp(τ H_m) e₁ by a Taylor series in sub-steps of norm ≤ ½ (robust; used when H_m's eigenvectors are
    ill-conditioned)."""
    m = Hm.shape[0]
    norm = 0.0
    for i in range(m):
        s = 0.0
        for j in range(m):
            s += abs(Hm[i, j])
        norm = max(norm, s)
    steps = max(1, int(math.ceil(2.0 * abs(tau) * norm)))
    dt = tau / steps
    y = np.zeros(m, dtype=np.complex128)
    y[0] = 1.0
    term = np.empty(m, dtype=np.complex128)
    nxt = np.empty(m, dtype=np.complex128)
    for _ in range(steps):
        term[:] = y
        acc = y.copy()
        for k in range(1, 40):
            for i in range(m):
                s = 0j
                for j in range(m):
                    s += Hm[i, j] * term[j]
                nxt[i] = s * (dt / k)
            term[:] = nxt
            acc += term
            if np.max(np.abs(term)) <= 1e-17 * np.max(np.abs(acc)):
                break
        y[:] = acc
    return y


@nb.njit(cache=True, nogil=True)
def _small(W, c, lam, Hm, use_eig, tau):
    """exp(τ H_m) e₁ = W (exp(τλ) ⊙ c) with c = W⁻¹ e₁ (or the Taylor fallback)."""
    if not use_eig:
        return _expv_taylor(Hm, tau)
    m = lam.size
    z = np.empty(m, dtype=np.complex128)
    for j in range(m):
        z[j] = np.exp(tau * lam[j]) * c[j]
    return W @ z


@nb.njit(cache=True, nogil=True)
def _record(phi, norm2, diag_ops, indptr, indices, data, n_full, out):
    """Expectation values on phi/‖phi‖ (norm2 = ‖phi‖²) into ``out`` (n_diag + n_full,)."""
    d = phi.size
    nd = diag_ops.shape[0]
    for k in range(nd):
        s = 0.0
        row = diag_ops[k]
        for i in range(d):
            s += row[i] * (phi[i].real * phi[i].real + phi[i].imag * phi[i].imag)
        out[k] = s / norm2
    for f in range(n_full):
        s = 0j
        base = f * d
        for r in range(d):
            acc = 0j
            for p in range(indptr[base + r], indptr[base + r + 1]):
                acc += data[p] * phi[indices[p]]
            s += np.conj(phi[r]) * acc
        out[nd + f] = s / norm2


@nb.njit(cache=True, nogil=True)
def run_trajectory(psi0, times, uniforms, h0, decay, offsets, bands, joffsets, jumps, diag_ops, indptr, indices,
                   data, n_full, m, tol, values, norms, stats):
    """One trajectory from ``psi0`` (normalised) at ``times``; expectation values into ``values`` (T, n_obs),
    the squared norm of the unnormalised state at every output time into ``norms`` (T,) (the no-jump
    probability when no jump happens). A jump happens when the squared norm reaches the next entry of
    ``uniforms`` (the first one is the first threshold; each jump then takes one number for the channel and
    one for the next threshold). ``stats`` (4,) gets applications, Krylov builds, jumps, failed step sizes.

    Returns the time of the first jump (inf if none), or −1 if ``uniforms`` ran out (the caller retries with
    more).
    """
    d = psi0.size
    T = times.size
    nj = joffsets.size
    psi = psi0.copy()
    V = np.empty((m + 1, d), dtype=np.complex128)
    Hm = np.zeros((m + 1, m), dtype=np.complex128)
    t = times[0]
    span = times[T - 1] - times[0]
    _record(psi, 1.0, diag_ops, indptr, indices, data, n_full, values[0])
    norms[0] = 1.0
    k = 1
    used = 0
    if uniforms.size < 1:
        return -1.0
    r = uniforms[0]
    used = 1
    first = np.inf
    h = -1.0
    weights = np.empty(max(nj, 1))
    while k < T:
        beta = math.sqrt(np.sum(psi.real**2 + psi.imag**2))
        # ---- Arnoldi (modified Gram-Schmidt)
        for i in range(d):
            V[0, i] = psi[i] / beta
        mm = m
        happy = False
        Hm[:, :] = 0.0
        for j in range(m):
            w = V[j + 1]
            _apply(V[j], w, h0, decay, offsets, bands)
            stats[0] += 1
            for i in range(j + 1):
                s = np.vdot(V[i], w)
                Hm[i, j] = s
                for q in range(d):
                    w[q] -= s * V[i, q]
            hn = math.sqrt(np.sum(w.real**2 + w.imag**2))
            Hm[j + 1, j] = hn
            if hn <= 1e-12 * abs(Hm[j, j]) + 1e-300:
                mm = j + 1
                happy = True
                break
            for q in range(d):
                w[q] /= hn
        stats[1] += 1
        Hs = np.ascontiguousarray(Hm[:mm, :mm])
        hnext = 0.0 if happy else Hm[mm, mm - 1].real
        lam, W = np.linalg.eig(Hs)
        use_eig = True
        c = np.zeros(mm, dtype=np.complex128)
        if mm > 1:
            Winv = np.linalg.inv(W)
            cond = np.sqrt(np.sum(np.abs(W) ** 2)) * np.sqrt(np.sum(np.abs(Winv) ** 2))
            if not np.isfinite(cond) or cond > 1e8:
                use_eig = False
                stats[4] += 1
            else:
                c[:] = Winv[:, 0]
        else:
            c[0] = 1.0
        # ---- step size: error per unit time ≤ tol (the Krylov space is reused for a smaller step)
        remaining = times[T - 1] - t
        if h <= 0.0:
            h = min(remaining, 1.0 / (np.max(np.abs(lam)) + 1e-300))
        h = min(h, remaining)
        while True:
            y = _small(W, c, lam, Hs, use_eig, h)
            err = 0.0 if happy else beta * hnext * h * abs(y[mm - 1])
            if err <= tol * beta * h or h <= 1e-14 * span:
                break
            stats[3] += 1
            h *= max(0.2, min(0.9, 0.9 * (tol * h * beta / err) ** (1.0 / mm)))
        n2 = beta * beta * np.sum(y.real**2 + y.imag**2)
        jump = n2 <= r
        tau = h
        if jump:  # root of log(β²‖y(τ)‖²) = log r on (0, h): Illinois (regula falsi) on a monotone function
            lo, hi = 0.0, h
            flo = math.log(beta * beta) - math.log(r)
            fhi = math.log(n2) - math.log(r)
            side = 0
            for _ in range(200):
                if hi - lo <= 1e-13 * max(h, 1e-300):
                    break
                mid = (lo * fhi - hi * flo) / (fhi - flo)
                if not (lo < mid < hi):
                    mid = 0.5 * (lo + hi)
                ym = _small(W, c, lam, Hs, use_eig, mid)
                fm = math.log(beta * beta * np.sum(ym.real**2 + ym.imag**2)) - math.log(r)
                if fm > 0.0:
                    lo, flo = mid, fm
                    if side == -1:
                        fhi *= 0.5
                    side = -1
                else:
                    hi, fhi = mid, fm
                    if side == 1:
                        flo *= 0.5
                    side = 1
                if abs(fm) <= 1e-15:
                    lo = hi = mid
                    break
            tau = hi
            y = _small(W, c, lam, Hs, use_eig, tau)
        # ---- outputs inside (t, t + τ]
        end = t + tau
        while k < T and (times[k] <= end or (not jump and tau == remaining)):
            yk = _small(W, c, lam, Hs, use_eig, times[k] - t)
            phi = beta * (yk @ V[:mm])
            n2k = np.sum(phi.real**2 + phi.imag**2)
            _record(phi, n2k, diag_ops, indptr, indices, data, n_full, values[k])
            norms[k] = n2k
            k += 1
        psi = beta * (y @ V[:mm])
        t = end
        # next step size from the last error (grow at most ×2)
        if not happy and err > 0.0:
            h = tau * min(2.0, max(0.5, 0.9 * (tol * tau * beta / err) ** (1.0 / mm)))
        else:
            h = 2.0 * tau
        if jump:
            if used + 2 > uniforms.size:
                return -1.0
            if first == np.inf:
                first = t
            stats[2] += 1
            total = 0.0
            for mj in range(nj):
                o = joffsets[mj]
                s = 0.0
                for i in range(d - o):
                    a = jumps[mj, i] * psi[i + o]
                    s += a.real * a.real + a.imag * a.imag
                weights[mj] = s
                total += s
            u = uniforms[used] * total
            used += 1
            ch = nj - 1
            acc = 0.0
            for mj in range(nj):
                acc += weights[mj]
                if u < acc:
                    ch = mj
                    break
            o = joffsets[ch]
            new = np.zeros(d, dtype=np.complex128)
            for i in range(d - o):
                new[i] = jumps[ch, i] * psi[i + o]
            psi = new / math.sqrt(weights[ch])
            r = uniforms[used]
            used += 1
    return first



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
def _cheb_step(prev, cur, out, h0, shifted, offsets, bands, inv_r, two):
    """out = two · Z cur − prev (two = 2: recurrence; two = 1 and prev = 0: the first term) with
    Z = (H' − i E)/R, E = D − D_max/2; returns ‖out‖²."""
    d = cur.size
    for i in range(d):
        out[i] = (two * inv_r) * complex(h0[i], -shifted[i]) * cur[i] - prev[i]
    for b in range(offsets.size):
        o = offsets[b]
        u = bands[b]
        for i in range(d - o):
            c = (two * inv_r) * u[i]
            out[i] += c * cur[i + o]
            out[i + o] += c * cur[i]
    s = 0.0
    for i in range(d):
        s += out[i].real * out[i].real + out[i].imag * out[i].imag
    return s


@nb.njit(cache=True, nogil=True)
def _combine(V, K, J, tau, shift, phi):
    """phi = e^{cτ} Σ_{k<K} (2 − δ_k0)(−i)^k J_k V_k (J = J_k(τR))."""
    d = phi.size
    scale = math.exp(shift * tau)
    phi[:] = 0.0
    for k in range(K):
        # (−i)^k: 1, −i, −1, i
        r4 = k % 4
        f = (1.0 if k == 0 else 2.0) * J[k] * scale
        if r4 == 0:
            a = complex(f, 0.0)
        elif r4 == 1:
            a = complex(0.0, -f)
        elif r4 == 2:
            a = complex(-f, 0.0)
        else:
            a = complex(0.0, f)
        if abs(f) == 0.0:
            continue
        vk = V[k]
        for i in range(d):
            phi[i] += a * vk[i]


@nb.njit(cache=True, nogil=True)
def _mean_decay(phi, decay):
    s = 0.0
    for i in range(phi.size):
        s += decay[i] * (phi[i].real * phi[i].real + phi[i].imag * phi[i].imag)
    return s


@nb.njit(cache=True, nogil=True)
def _jump(psi, joffsets, jumps, weights, u):
    """J_m psi / ‖J_m psi‖ with m drawn ∝ ‖J_m psi‖² by the uniform u."""
    d = psi.size
    nj = joffsets.size
    total = 0.0
    for mj in range(nj):
        o = joffsets[mj]
        s = 0.0
        for i in range(d - o):
            a = jumps[mj, i] * psi[i + o]
            s += a.real * a.real + a.imag * a.imag
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
    new = np.zeros(d, dtype=np.complex128)
    norm = math.sqrt(weights[ch])
    for i in range(d - o):
        new[i] = jumps[ch, i] * psi[i + o] / norm
    return new


@nb.njit(cache=True, nogil=True)
def run_trajectory_chebyshev(psi0, times, uniforms, h0, decay, offsets, bands, joffsets, jumps, diag_ops, indptr,
                             indices, data, n_full, radius, kmax, tol, values, norms, stats):
    """As :func:`run_trajectory`, with Chebyshev steps of the non-Hermitian generator instead of Arnoldi ones.

    −i H_eff = c − i R Z with c = −D_max/2, Z = (H' − i(D − D_max/2))/R, whose field of values lies in
    [−1, 1] × i[−δ, δ] (δ = D_max/2R); exp(−iτR Z) = Σ_k (2 − δ_k0)(−i)^k J_k(τR) T_k(Z) (Jacobi–Anger,
    entire in Z). The vectors T_k(Z)ψ of a step are kept (at most ``kmax``), so ψ(τ) at any τ inside the step
    (output times, the jump time by safeguarded Newton on log‖ψ‖² with d log‖ψ‖²/dτ = −2⟨D⟩) costs one
    combination, no application. The series stops when two consecutive terms are ≤ tol·τ·‖ψ‖ (error per unit
    time); the step is chosen near the expected jump time log(‖ψ‖²/r)/(2⟨D⟩) and shortened if kmax terms
    do not reach the tolerance."""
    d = psi0.size
    T = times.size
    nj = joffsets.size
    dmax = 0.0
    for i in range(d):
        dmax = max(dmax, decay[i])
    shift = -0.5 * dmax
    shifted = decay - 0.5 * dmax
    inv_r = 1.0 / radius
    V = np.empty((kmax + 1, d), dtype=np.complex128)
    vnorm = np.empty(kmax + 1)
    J = np.empty(kmax + 1)
    phi = np.empty(d, dtype=np.complex128)
    zero = np.zeros(d, dtype=np.complex128)
    weights = np.empty(max(nj, 1))
    psi = psi0.copy()
    t = times[0]
    span = times[T - 1] - times[0]
    _record(psi, 1.0, diag_ops, indptr, indices, data, n_full, values[0])
    norms[0] = 1.0
    k = 1
    if uniforms.size < 1:
        return -1.0
    r = uniforms[0]
    used = 1
    first = np.inf
    # longest step: R τ ≤ kmax/2 (room for the tail of the series), and cancellation e^{D_max τ/2} ≤ e^3
    h_max = min(0.5 * kmax / radius, 6.0 / max(dmax, 1e-300))
    while k < T:
        n0 = np.sum(psi.real**2 + psi.imag**2)
        remaining = times[T - 1] - t
        h = min(h_max, remaining)
        if r > 0.0:
            rate = 2.0 * _mean_decay(psi, decay) / n0
            if rate > 0.0:
                h = min(h, max(1.25 * math.log(n0 / r) / rate, 1e-3 * h_max))
        # ---- the series: terms until two consecutive ones are small at τ = h
        V[0, :] = psi
        vnorm[0] = math.sqrt(n0)
        vnorm[1] = math.sqrt(_cheb_step(zero, psi, V[1], h0, shifted, offsets, bands, inv_r, 1.0))
        stats[0] += 1
        K = 2
        while True:
            _bessel_j(h * radius, J[: K])
            target = tol * h * math.sqrt(n0) * math.exp(-shift * h)
            if K >= 3 and 2.0 * abs(J[K - 1]) * vnorm[K - 1] <= target and 2.0 * abs(J[K - 2]) * vnorm[K - 2] <= target \
                    and K - 1 > h * radius:
                break
            if K > kmax:  # not converged within kmax terms: shorten the step (the vectors stay valid)
                h *= 0.7
                stats[3] += 1
                continue
            vnorm[K] = math.sqrt(_cheb_step(V[K - 2], V[K - 1], V[K], h0, shifted, offsets, bands, inv_r, 2.0))
            stats[0] += 1
            K += 1
        stats[1] += 1
        # K terms are used (indices 0 … K − 1)
        _combine(V, K, J, h, shift, phi)
        n_end = np.sum(phi.real**2 + phi.imag**2)
        jump = n_end <= r
        tau = h
        if jump:  # safeguarded Newton on f(τ) = log‖ψ(τ)‖² − log r, bracket [lo, hi]
            lo, hi = 0.0, h
            flo = math.log(n0 / r)
            fhi = math.log(n_end / r)
            # first guess: linear interpolation of log‖ψ‖²
            x = h * flo / (flo - fhi)
            for _ in range(60):
                _bessel_j(x * radius, J[: K])
                _combine(V, K, J, x, shift, phi)
                nx = np.sum(phi.real**2 + phi.imag**2)
                fx = math.log(nx / r)
                if fx > 0.0:
                    lo, flo = x, fx
                else:
                    hi, fhi = x, fx
                dfx = -2.0 * _mean_decay(phi, decay) / nx
                if abs(fx) <= 1e-14 or hi - lo <= 1e-14 * h:
                    break
                nxt = x - fx / dfx if dfx < 0.0 else 0.5 * (lo + hi)
                if not (lo < nxt < hi):
                    nxt = 0.5 * (lo + hi)
                x = nxt
            tau = x
            # phi holds ψ(τ)
        # ---- outputs inside (t, t + τ]
        end = t + tau
        while k < T and (times[k] <= end or (not jump and tau == remaining)):
            _bessel_j((times[k] - t) * radius, J[: K])
            out = np.empty(d, dtype=np.complex128)
            _combine(V, K, J, times[k] - t, shift, out)
            n2k = np.sum(out.real**2 + out.imag**2)
            _record(out, n2k, diag_ops, indptr, indices, data, n_full, values[k])
            norms[k] = n2k
            k += 1
        psi[:] = phi
        t = end
        if jump:
            if used + 2 > uniforms.size:
                return -1.0
            if first == np.inf:
                first = t
            stats[2] += 1
            psi = _jump(psi, joffsets, jumps, weights, uniforms[used])
            r = uniforms[used + 1]
            used += 2
    return first


# ----------------------------------------------------------------------------------------------- drivers
def _uniform_count(problem: KetProblem, span: float) -> int:
    """Random numbers drawn per trajectory up front: 2 per jump at three times the largest possible mean number
    of jumps, plus a margin (a trajectory that needs more is rerun with twice as many: same prefix, same path)."""
    return int(2 * (3.0 * problem.rate_bound * span + 20)) + 1


PROPAGATORS = ("chebyshev", "krylov")
#: Krylov dimension / most Chebyshev terms kept per step
_DEFAULT_TERMS = {"chebyshev": 64, "krylov": 16}


def _call(problem: KetProblem, times, uniforms, m, tol, values, norms, stats, propagator="chebyshev"):
    if propagator == "chebyshev":
        return run_trajectory_chebyshev(
            problem.psi0, times, uniforms, problem.h0, problem.decay, problem.offsets, problem.bands,
            problem.jump_offsets, problem.jumps, problem.diag_ops, problem.full_indptr, problem.full_indices,
            problem.full_data, problem.n_full, problem.radius, m, tol, values, norms, stats)
    return run_trajectory(problem.psi0, times, uniforms, problem.h0, problem.decay, problem.offsets, problem.bands,
                          problem.jump_offsets, problem.jumps, problem.diag_ops, problem.full_indptr,
                          problem.full_indices, problem.full_data, problem.n_full, m, tol, values, norms, stats)


def sample(problem: KetProblem, times, ntraj: int, seed=None, *, tol: float = 1e-8, krylov: int | None = None,
           progress=None, batches: int = 10, propagator: str = "chebyshev"):
    """``ntraj`` trajectories: returns (values {name: (ntraj, T) complex}, first jump times (ntraj,), stats).

    Trajectory i draws its numbers from ``SeedSequence(seed).spawn(ntraj)[i]``: the same seed gives the same
    trajectories, whatever the batching. ``progress`` gets the fraction done after every batch.
    """
    if propagator not in PROPAGATORS:
        raise ValueError(f"propagator must be one of {PROPAGATORS}, got {propagator!r}")
    krylov = _DEFAULT_TERMS[propagator] if krylov is None else int(krylov)
    t = np.ascontiguousarray(times, dtype=float)
    n_obs = len(problem.names)
    out = np.empty((ntraj, t.size, n_obs), dtype=np.complex128)
    norms = np.empty(t.size)
    first = np.empty(ntraj)
    stats = np.zeros(5, dtype=np.int64)
    seeds = np.random.SeedSequence(seed).spawn(ntraj)
    count = _uniform_count(problem, float(t[-1] - t[0]))
    batch = max(1, -(-ntraj // batches))
    for i, s in enumerate(seeds):
        size = count
        while True:
            uniforms = np.random.default_rng(s).random(size)
            res = _call(problem, t, uniforms, krylov, tol, out[i], norms, stats, propagator)
            if res != -1.0:
                break
            size *= 2
        first[i] = res
        if progress is not None and ((i + 1) % batch == 0 or i + 1 == ntraj):
            progress((i + 1) / ntraj)
    values = {name: out[:, :, j] for j, name in enumerate(problem.names)}
    return values, first, {"applications": int(stats[0]), "krylov_builds": int(stats[1]), "jumps": int(stats[2]),
                           "rejected_steps": int(stats[3]), "taylor_fallbacks": int(stats[4]), "terms": int(krylov),
                           "propagator": propagator}


def nojump_branch(problem: KetProblem, times, *, tol: float = 1e-8, krylov: int | None = None,
                  propagator: str = "chebyshev"):
    """The deterministic no-jump branch: (p0 (T,), {name: (T,) expectation values on the normalised state})."""
    t = np.ascontiguousarray(times, dtype=float)
    values = np.empty((t.size, len(problem.names)), dtype=np.complex128)
    norms = np.empty(t.size)
    stats = np.zeros(5, dtype=np.int64)
    krylov = _DEFAULT_TERMS[propagator] if krylov is None else int(krylov)
    _call(problem, t, np.zeros(1), krylov, tol, values, norms, stats, propagator)  # threshold 0: never jumps
    return np.minimum(norms, 1.0), {name: values[:, j] for j, name in enumerate(problem.names)}
