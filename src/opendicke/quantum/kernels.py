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

__all__ = ["band_form", "BandOperator", "chebyshev_step", "transpose_into", "csr_matvec", "set_threads",
           "SplitLayout"]


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


# ---------------------------------------------------------------------------------------------------------------
# Split representation: ρ = A + iB, A real symmetric, B real antisymmetric; no transpose.
#
# With H and every J_m real, −i[H, A + iB] = [H, B] − i[H, A], and the dissipator D (real, linear) maps symmetric to
# symmetric and antisymmetric to antisymmetric ((J Y Jᵀ)ᵀ = J Yᵀ Jᵀ, {JᵀJ, Y}ᵀ = {JᵀJ, Yᵀ}), so
#
#     dA/dt = [H, B] + D(A)        (symmetric: [H, B]ᵀ = Bᵀ H − H Bᵀ = H B − B H)
#     dB/dt = −[H, A] + D(B)       (antisymmetric)
#
# Row i of either right-hand side needs only rows i and i ± o of A and B (H acts on rows from the left and inside a
# row from the right), so, unlike dX/dt = XᵀH − HXᵀ + D(X), there is no transpose. Only the upper triangles
# (j ≥ i) are computed: d²/2 elements of each, as many as the d² of X. The rows read elements (i + o, j) and
# (i, j − o) with j ≥ i, which lie up to o below the diagonal; after computing row i the kernel mirrors its first
# P elements into that band of the output (A[i + k, i] = A[i, i + k], B[i + k, i] = −B[i, i + k], k ≤ P), so every
# operand of every loop is a plain slice of a stored row. The arrays are (2, d, P + d + P), state[0] = A,
# state[1] = B, the data in columns [P, P + d) and zero margins of P ≥ every offset on both sides (the band edges
# read zeros there). Elements below the mirrored band are never read nor written.


class SplitLayout:
    """The split (A, B) layout of :class:`BandOperator` ``op``: padded operator arrays, conversions, and
    :meth:`step`, one three-term-recurrence step of the generator on split arrays."""

    def __init__(self, op: BandOperator):
        d = op.dim
        self.dim = d
        self.pad = P = max([1] + [int(o) for o in op.offsets] + [int(o) for o in op.jump_offsets])
        self.width = d + 2 * P

        def padded(rows):
            out = np.zeros((len(rows), self.width))
            for r, v in enumerate(rows):
                out[r, P: P + d] = v
            return out

        self.h0 = padded([op.h0])[0]
        self.decay = padded([op.decay])[0]
        # an even number of bands (the kernel takes two per pass): pad with a zero band at offset 1
        odd = len(op.offsets) % 2
        self.offsets = np.concatenate([op.offsets, np.ones(odd, dtype=np.int64)])
        self.bands = padded(list(op.bands) + [np.zeros(d)] * odd)
        # at least one jump (a zero one if there is none): the kernel fuses the first jump with the diagonal pass
        self.jump_offsets = op.jump_offsets if op.jump_offsets.size else np.zeros(1, dtype=np.int64)
        self.jumps = padded(list(op.jumps) if op.jump_offsets.size else [np.zeros(d)])

    def zeros(self) -> np.ndarray:
        return np.zeros((2, self.dim, self.width))

    def state(self, X: np.ndarray) -> np.ndarray:
        """The split array of the real representation X = A + B (A = sym X, B = antisym X)."""
        d, P = self.dim, self.pad
        out = self.zeros()
        A = out[0, :, P: P + d]
        B = out[1, :, P: P + d]
        A[...] = X  # in place, no d × d temporaries: A = (X + Xᵀ)/2, B = (X − Xᵀ)/2
        A += X.T
        A *= 0.5
        B[...] = X
        B -= X.T
        B *= 0.5
        return out

    def to_full(self, S: np.ndarray) -> np.ndarray:
        """X = A + B (d × d) from the upper triangles of a split array."""
        d, P = self.dim, self.pad
        A = np.triu(S[0, :, P: P + d])
        B = np.triu(S[1, :, P: P + d], 1)
        return A + A.T - np.diag(np.diag(A)) + B - B.T

    def functional(self, F: sp.spmatrix) -> sp.csr_matrix:
        """Functionals of the flattened full X (column i·d + j) re-indexed onto the flattened split array:
        X_ij = A_ij + B_ij for j > i, A_ii on the diagonal, A_ji − B_ji below (only upper elements are read)."""
        d, P, W = self.dim, self.pad, self.width
        F = sp.coo_matrix(F)
        i, j = F.col // d, F.col % d
        upper = j >= i
        lo, hi = np.where(upper, i, j), np.where(upper, j, i)
        a_cols = lo * W + P + hi
        off = i != j
        b_cols = d * W + a_cols
        b_vals = np.where(upper, F.data, -F.data)
        rows = np.concatenate([F.row, F.row[off]])
        cols = np.concatenate([a_cols, b_cols[off]])
        vals = np.concatenate([F.data, b_vals[off]])
        out = sp.csr_matrix((vals, (rows, cols)), shape=(F.shape[0], 2 * d * W))
        out.sum_duplicates()
        return out

    def step(self, S, Pm, out, alpha, beta, pi, parallel: bool | None = None) -> float:
        """out = α L(S) + β S + π Pm (Pm may be ``out``, not S); returns ‖out‖²_F of the full X."""
        if parallel is None:
            parallel = nb.get_num_threads() > 1
        fn = _split_parallel if parallel else _split_serial
        return fn(S, Pm, out, self.h0, self.decay, self.offsets, self.bands, self.jump_offsets, self.jumps,
                  float(alpha), float(beta), float(pi), self.pad)

    def apply(self, X: np.ndarray) -> np.ndarray:
        """L(X) on the full real representation, through the split kernel (for tests)."""
        S = self.state(np.ascontiguousarray(X, dtype=np.float64))
        out = self.zeros()
        self.step(S, out, out, 1.0, 0.0, 0.0)
        return self.to_full(out)


@nb.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _split_row(i, A, B, PA, PB, OA, OB, hs, gs, us, offsets, jumps, joffsets, alpha, beta, pi, rA, rB, P):
    d = A.shape[0]
    n = d - i
    c = P + i  # column of the diagonal element
    e = P + d
    hi = hs[c]
    gi = gs[c]
    hh = hs[c:e]
    gg = gs[c:e]
    Ai = A[i, c:e]
    Bi = B[i, c:e]
    PAi = PA[i, c:e]
    PBi = PB[i, c:e]
    # diagonal parts of the commutator and the dissipator, the recurrence terms, and the first jump:
    # (J Y Jᵀ)_ij = w_i w_j Y[i + o, j + o]
    o = joffsets[0]
    ni = i + o
    cj = 0.0
    if ni < d:
        cj = alpha * jumps[0, c]
    else:
        ni = i  # any stored row: multiplied by cj = 0
    w = jumps[0, c:e]
    An = A[ni, c + o: e + o]
    Bn = B[ni, c + o: e + o]
    for k in range(n):
        dh = hi - hh[k]
        dg = beta - gi - gg[k]
        a = Ai[k]
        b = Bi[k]
        cw = cj * w[k]
        rA[k] = dh * b + dg * a + pi * PAi[k] + cw * An[k]
        rB[k] = dg * b - dh * a + pi * PBi[k] + cw * Bn[k]
    for m in range(1, joffsets.size):
        o = joffsets[m]
        if i + o < d:
            cj = alpha * jumps[m, c]
            if cj != 0.0:
                w = jumps[m, c:e]
                An = A[i + o, c + o: e + o]
                Bn = B[i + o, c + o: e + o]
                for k in range(n):
                    cw = cj * w[k]
                    rA[k] += cw * An[k]
                    rB[k] += cw * Bn[k]
    # bands, two per pass (SplitLayout pads them to an even count with a zero band):
    # (H Y)_ij = u_i Y[i + o, j] + u_{i−o} Y[i − o, j],  (Y H)_ij = Y[i, j − o] u_{j−o} + Y[i, j + o] u_j
    nbands = offsets.size
    oa = OA[i, c:e]
    ob = OB[i, c:e]
    sq = 0.0
    for b in range(0, nbands, 2):
        o = offsets[b]
        u = us[b]
        cn = u[c]  # 0 when i + o ≥ d
        ni = i + o
        if ni >= d:
            ni = i  # any stored row: multiplied by cn = 0
        ip = i - o
        cp = 0.0
        if ip >= 0:
            cp = u[c - o]
        else:
            ip = i
        Bn = B[ni, c:e]
        An = A[ni, c:e]
        Bp = B[ip, c:e]
        Ap = A[ip, c:e]
        ul = u[c - o: e - o]
        Bl = B[i, c - o: e - o]
        Al = A[i, c - o: e - o]
        ur = u[c:e]
        Br = B[i, c + o: e + o]
        Ar = A[i, c + o: e + o]
        o2 = offsets[b + 1]
        u2 = us[b + 1]
        cn2 = u2[c]
        ni2 = i + o2
        if ni2 >= d:
            ni2 = i
        ip2 = i - o2
        cp2 = 0.0
        if ip2 >= 0:
            cp2 = u2[c - o2]
        else:
            ip2 = i
        Bn2 = B[ni2, c:e]
        An2 = A[ni2, c:e]
        Bp2 = B[ip2, c:e]
        Ap2 = A[ip2, c:e]
        ul2 = u2[c - o2: e - o2]
        Bl2 = B[i, c - o2: e - o2]
        Al2 = A[i, c - o2: e - o2]
        ur2 = u2[c:e]
        Br2 = B[i, c + o2: e + o2]
        Ar2 = A[i, c + o2: e + o2]
        if b + 2 < nbands:
            for k in range(n):
                rA[k] += (cn * Bn[k] + cp * Bp[k] - ul[k] * Bl[k] - ur[k] * Br[k]
                          + cn2 * Bn2[k] + cp2 * Bp2[k] - ul2[k] * Bl2[k] - ur2[k] * Br2[k])
                rB[k] -= (cn * An[k] + cp * Ap[k] - ul[k] * Al[k] - ur[k] * Ar[k]
                          + cn2 * An2[k] + cp2 * Ap2[k] - ul2[k] * Al2[k] - ur2[k] * Ar2[k])
        else:  # the last pass writes the row and sums its squares
            for k in range(n):
                ra = rA[k] + (cn * Bn[k] + cp * Bp[k] - ul[k] * Bl[k] - ur[k] * Br[k]
                              + cn2 * Bn2[k] + cp2 * Bp2[k] - ul2[k] * Bl2[k] - ur2[k] * Br2[k])
                rb = rB[k] - (cn * An[k] + cp * Ap[k] - ul[k] * Al[k] - ur[k] * Ar[k]
                              + cn2 * An2[k] + cp2 * Ap2[k] - ul2[k] * Al2[k] - ur2[k] * Ar2[k])
                oa[k] = ra
                ob[k] = rb
                sq += ra * ra + rb * rb
    if nbands == 0:
        for k in range(n):
            oa[k] = rA[k]
            ob[k] = rB[k]
            sq += rA[k] * rA[k] + rB[k] * rB[k]
    # B is antisymmetric: its diagonal is exactly zero
    sq -= ob[0] * ob[0]
    ob[0] = 0.0
    # mirror the band next to the diagonal into the lower triangle, where the rows below read it
    for k in range(1, min(P + 1, n)):
        OA[i + k, c] = oa[k]
        OB[i + k, c] = -ob[k]
    # ‖X‖²_F = ‖A‖² + ‖B‖² (the cross term vanishes): off-diagonal elements count twice
    return 2.0 * sq - oa[0] * oa[0]


@nb.njit(cache=True, nogil=True, fastmath=True)
def _split_serial(S, Pm, out, h0, decay, offsets, bands, joffsets, jumps, alpha, beta, pi, P):
    d = S.shape[1]
    hs = alpha * h0
    gs = alpha * decay
    us = alpha * bands
    rA = np.empty(d)
    rB = np.empty(d)
    total = 0.0
    for i in range(d):
        total += _split_row(i, S[0], S[1], Pm[0], Pm[1], out[0], out[1], hs, gs, us, offsets, jumps, joffsets,
                            alpha, beta, pi, rA, rB, P)
    return total


@nb.njit(cache=True, nogil=True, fastmath=True, parallel=True)
def _split_parallel(S, Pm, out, h0, decay, offsets, bands, joffsets, jumps, alpha, beta, pi, P):
    d = S.shape[1]
    hs = alpha * h0
    gs = alpha * decay
    us = alpha * bands
    total = 0.0
    # rows in pairs (p, d − 1 − p): equal work per pair, so the threads share the triangle evenly
    for pp in nb.prange((d + 1) // 2):
        p = np.int64(pp)  # prange's index is unsigned: i ± o would be typed float
        rA = np.empty(d)
        rB = np.empty(d)
        t = _split_row(p, S[0], S[1], Pm[0], Pm[1], out[0], out[1], hs, gs, us, offsets, jumps, joffsets,
                       alpha, beta, pi, rA, rB, P)
        q = d - 1 - p
        if q != p:
            t += _split_row(q, S[0], S[1], Pm[0], Pm[1], out[0], out[1], hs, gs, us, offsets, jumps, joffsets,
                            alpha, beta, pi, rA, rB, P)
        total += t
    return total
