"""Compiled kernels: the Lindblad generator acting on a real representation of ρ, using its band structure.

Real representation
-------------------
In the plain (Dicke ⊗ Fock) basis H and the jump operators are real matrices. Write ρ = A + iB (A real
symmetric, B real antisymmetric, since ρ is Hermitian) and X = A + B = Re ρ + Im ρ; then A = (X + Xᵀ)/2,
B = (X − Xᵀ)/2, and the Lindblad equation dρ/dt = −i[H, ρ] + Σ_m (J_m ρ J_mᵀ − ½{J_mᵀJ_m, ρ}) becomes the
*real* linear equation

    dX/dt = XᵀH − HXᵀ + Σ_m (J_m X J_mᵀ − ½{J_mᵀJ_m, X})

(the real part gives dA = [H, B] + D(A), the imaginary part dB = −[H, A] + D(B), and Xᵀ = A − B). One
real d × d array instead of a complex one: half the memory traffic, and Hermiticity exact by construction.

Band structure
--------------
Every operator of the reduced problem is (tri)diagonal in one tensor factor and diagonal in the others, so
on the flattened index it is a sum of a few diagonals at fixed offsets (the factor's stride): H = diag(h0)
+ Σ_b (U_b + U_bᵀ) with U_b[i, i + o_b] = u_b[i], and each jump J_m has one diagonal, J_m[i, i + o_m] = w_m[i]
(so J_mᵀJ_m is diagonal). :func:`band_form` extracts this from any real symmetric sparse H and single-offset
jumps, so the kernel serves every basis whose operators have this form.

The kernel (:func:`chebyshev_step`) evaluates one step of a three-term recurrence,
``out = α L(X) + β X + π P`` (P may be ``out`` itself: elementwise in-place), fused with an accumulation
``acc += θ out`` and the squared norm of ``out``, row by row with vectorisable inner loops over contiguous
memory. ``T = Xᵀ`` is formed first by a blocked transpose (:func:`transpose_into`).
"""

from __future__ import annotations

import numpy as np
import numba as nb
import scipy.sparse as sp

__all__ = ["band_form", "BandOperator", "chebyshev_step", "transpose_into", "csr_matvec", "set_threads"]


def set_threads(n: int | None) -> int:
    """Set numba's thread count (``None``: leave it); returns the count in use."""
    if n is not None:
        nb.set_num_threads(max(1, min(int(n), nb.config.NUMBA_NUM_THREADS)))
    return nb.get_num_threads()


class BandOperator:
    """H = diag(h0) + Σ_b (U_b + U_bᵀ) and jumps J_m = diagonal at offset o_m, as dense band arrays.

    ``offsets`` (nb,), ``bands`` (nb, d) with bands[b, i] = H[i, i + offsets[b]] (0 where i + o ≥ d),
    ``jump_offsets`` (nj,), ``jumps`` (nj, d) with jumps[m, i] = J_m[i, i + o_m], ``decay`` (d,) the
    diagonal of ½ Σ_m J_mᵀJ_m.
    """

    def __init__(self, h0, offsets, bands, jump_offsets, jumps):
        self.h0 = np.ascontiguousarray(h0, dtype=np.float64)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self.bands = np.ascontiguousarray(bands, dtype=np.float64).reshape(len(self.offsets), -1)
        self.jump_offsets = np.ascontiguousarray(jump_offsets, dtype=np.int64)
        self.jumps = np.ascontiguousarray(jumps, dtype=np.float64).reshape(len(self.jump_offsets), -1)
        d = self.h0.size
        decay = np.zeros(d)
        for o, w in zip(self.jump_offsets, self.jumps):
            # (JᵀJ)_{kk} = Σ_i J_ik² with k = i + o
            decay[o:] += w[: d - o] ** 2
        self.decay = 0.5 * decay

    @property
    def dim(self) -> int:
        return self.h0.size

    def hamiltonian(self) -> sp.csr_matrix:
        """H back as a sparse matrix (for checks)."""
        d = self.dim
        H = sp.diags(self.h0, 0, shape=(d, d), format="csr")
        for o, u in zip(self.offsets, self.bands):
            U = sp.diags(u[: d - o], int(o), shape=(d, d), format="csr")
            H = H + U + U.T
        return H.tocsr()

    def apply(self, X: np.ndarray) -> np.ndarray:
        """L(X) (one application, allocating; for tests and spectral estimates)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        T = np.empty_like(X)
        transpose_into(X, T)
        out = np.empty_like(X)
        acc = np.empty((1, 1))
        chebyshev_step(T, X, X, out, acc, self.h0, self.decay, self.offsets, self.bands, self.jump_offsets,
                       self.jumps, 1.0, 0.0, 0.0, 0.0, False)
        return out


def band_form(hamiltonian: sp.spmatrix, jumps: list[sp.spmatrix], tol: float = 0.0) -> BandOperator:
    """The band form of a real symmetric H and real single-offset jump operators (ValueError otherwise)."""
    H = sp.coo_matrix(hamiltonian)
    d = H.shape[0]
    if np.any(np.abs(np.imag(H.data)) > tol):
        raise ValueError("band_form needs a real Hamiltonian")
    data = np.real(H.data)
    diag = H.row == H.col
    h0 = np.zeros(d)
    np.add.at(h0, H.row[diag], data[diag])
    upper = H.col > H.row
    offs = (H.col - H.row)[upper]
    offsets = np.unique(offs)
    bands = np.zeros((offsets.size, d))
    for b, o in enumerate(offsets):
        sel = offs == o
        np.add.at(bands[b], H.row[upper][sel], data[upper][sel])
    # symmetry check: the lower triangle must mirror the upper one
    lower = H.col < H.row
    check = np.zeros((offsets.size, d))
    loffs = (H.row - H.col)[lower]
    for b, o in enumerate(offsets):
        sel = loffs == o
        np.add.at(check[b], H.col[lower][sel], data[lower][sel])
    if np.any(~np.isin(loffs, offsets)) or not np.allclose(check, bands, rtol=1e-12, atol=1e-14):
        raise ValueError("band_form needs a symmetric Hamiltonian")
    j_offsets, j_vals = [], []
    for J in jumps:
        Jc = sp.coo_matrix(J)
        if np.any(np.abs(np.imag(Jc.data)) > tol):
            raise ValueError("band_form needs real jump operators")
        o = np.unique(Jc.col - Jc.row)
        if o.size > 1 or (o.size == 1 and o[0] < 0):
            raise ValueError("band_form needs jump operators with one diagonal at an offset ≥ 0")
        w = np.zeros(d)
        np.add.at(w, Jc.row, np.real(Jc.data))
        j_offsets.append(int(o[0]) if o.size else 0)
        j_vals.append(w)
    return BandOperator(h0, offsets, bands, np.array(j_offsets, dtype=np.int64),
                        np.array(j_vals).reshape(len(j_vals), d))


def _make_transpose(parallel: bool):
    loop = nb.prange if parallel else range

    def transpose(X, T):
        d = X.shape[0]
        blk = 32
        for bi in loop((d + blk - 1) // blk):
            i0 = bi * blk
            i1 = min(i0 + blk, d)
            for j0 in range(0, d, blk):
                j1 = min(j0 + blk, d)
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        T[j, i] = X[i, j]

    return nb.njit(cache=True, nogil=True, parallel=parallel)(transpose)


_transpose_serial = _make_transpose(False)
_transpose_parallel = _make_transpose(True)


def transpose_into(X: np.ndarray, T: np.ndarray, parallel: bool | None = None) -> None:
    """T = Xᵀ (blocked; threaded when ``parallel``, by default when numba runs more than one thread)."""
    if parallel is None:
        parallel = nb.get_num_threads() > 1
    (_transpose_parallel if parallel else _transpose_serial)(X, T)


@nb.njit(cache=True, nogil=True)
def csr_matvec(indptr, indices, data, x, out):
    """out = A x for a real CSR matrix (the observables as functionals; scipy's call overhead is ~0.1 ms)."""
    for r in range(indptr.size - 1):
        s = 0.0
        for k in range(indptr[r], indptr[r + 1]):
            s += data[k] * x[indices[k]]
        out[r] = s


def _make_step(parallel: bool):
    loop = nb.prange if parallel else range

    def step(T, X, P, out, acc, h0, decay, offsets, bands, joffsets, jumps, alpha, beta, pi, theta, accumulate):
        d = X.shape[0]
        nbands = offsets.size
        njumps = joffsets.size
        total = 0.0
        hs = alpha * h0
        gs = alpha * decay
        us = alpha * bands
        for i in loop(d):
            r = np.empty(d)  # a fresh row buffer: no aliasing with the inputs, so the loops vectorise
            Ti = T[i]
            Xi = X[i]
            Pi = P[i]
            hi = hs[i]
            gi = gs[i]
            # diagonal part of the commutator, dissipative decay, and the recurrence terms. Every loop below runs
            # over slices with a plain index (an offset index j ± o defeats LLVM's vectoriser in numba)
            for j in range(r.size):
                r[j] = (hs[j] - hi) * Ti[j] + (beta - gi - gs[j]) * Xi[j] + pi * Pi[j]
            for b in range(nbands):
                o = offsets[b]
                u = us[b]
                if o < d:
                    # (T H)_ij = Σ_k T_ik H_kj: k = j − o (value u[j − o]) and k = j + o (value u[j])
                    rr = r[o:]
                    uu = u[: d - o]
                    tt = Ti[: d - o]
                    for j in range(rr.size):
                        rr[j] += uu[j] * tt[j]
                    rr = r[: d - o]
                    tt = Ti[o:]
                    for j in range(rr.size):
                        rr[j] += uu[j] * tt[j]
                # −(H T)_ij = −Σ_k H_ik T_kj: k = i + o (value u[i]) and k = i − o (value u[i − o])
                if i + o < d:
                    c = u[i]
                    Tn = T[i + o]
                    for j in range(r.size):
                        r[j] -= c * Tn[j]
                if i >= o:
                    c = u[i - o]
                    Tp = T[i - o]
                    for j in range(r.size):
                        r[j] -= c * Tp[j]
            # jumps: (J X Jᵀ)_ij = w[i] w[j] X[i + o, j + o]
            for m in range(njumps):
                o = joffsets[m]
                if i + o < d:
                    w = jumps[m]
                    c = alpha * w[i]
                    if c != 0.0:
                        rr = r[: d - o]
                        ww = w[: d - o]
                        xx = X[i + o][o:]
                        for j in range(rr.size):
                            rr[j] += c * ww[j] * xx[j]
            s = 0.0
            oi = out[i]
            for j in range(r.size):
                s += r[j] * r[j]
                oi[j] = r[j]
            if accumulate:
                a = acc[i]
                for j in range(r.size):
                    a[j] += theta * r[j]
            total += s
        return total

    return nb.njit(cache=True, nogil=True, parallel=parallel, fastmath=True)(step)


_step_serial = _make_step(False)
_step_parallel = _make_step(True)


def chebyshev_step(T, X, P, out, acc, h0, decay, offsets, bands, joffsets, jumps, alpha, beta, pi, theta,
                   accumulate, parallel: bool | None = None) -> float:
    """out = α L(X) + β X + π P (P may be ``out``), then acc += θ out if ``accumulate``; returns ‖out‖_F².
    ``T`` must hold Xᵀ. Threaded over rows when ``parallel`` (default: when numba runs more than one thread)."""
    if parallel is None:
        parallel = nb.get_num_threads() > 1
    fn = _step_parallel if parallel else _step_serial
    return fn(T, X, P, out, acc, h0, decay, offsets, bands, joffsets, jumps, float(alpha), float(beta), float(pi),
              float(theta), bool(accumulate))
