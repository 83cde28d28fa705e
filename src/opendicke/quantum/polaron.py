"""The reduced problem in a conditional-displacement (polaron) basis, for stationary states and spectra.

In the plain basis |m⟩ ⊗ |n⟩ (spin configuration m of the blocks, Fock states n of the modes) the retrieved
state of N_sp spins holds n ≈ N_sp n_ν photons, so the Fock cutoff, and with it the Liouville space, grows ∝ N_sp.
Most of those photons are the classical field that follows S_z adiabatically. The polaron basis displaces every
mode by the field the spin configuration m would sustain in the stationary cavity equation:

    |m, n⟩_P = |m⟩ ⊗ Π_μ D(β_μ(m)) |n_μ⟩,   n_μ < fock[μ],

and only the fluctuations around that field are truncated. The basis is orthonormal (D is unitary and the |m⟩
are orthogonal). β from the stationary cavity equation (docs/conventions.md, per configuration: α̇ = 0 with a fixed spin
configuration, x_μ(m) = Σ_r f[μ, r] s_r = N_sp ξ_μ(m) the eigenvalue of Σ_j G[μ, j] σ_z^j):

    0 = −(iΩ_μ + κ_μ/2) β_μ − i (g0/√N_sp) x_μ(m)   ⇒   β_μ(m) = c_μ x_μ(m),   c_μ = −(g0/√N_sp) / (Ω_μ − iκ_μ/2),

complex whenever κ_μ > 0. Equivalently, the displacement removes the terms linear in b_μ from the Hamiltonian
*together with* the coherent part of the loss (D[b + β] = D[b] − i[(i/2)(β* b − β b†), ·]).

Matrix elements, exact (not truncated products of truncated operators), with b_μ the truncated annihilator:

* a_μ = δ_{mm'} (b_μ + β_μ(m)): diagonal in m, shifted; so is the loss √κ_μ a_μ;
* Ω_μ a_μ†a_μ + (g0/√N_sp)(a_μ + a_μ†) x_μ = δ_{mm'} [Ω_μ (b† + β*)(b + β) + (g0/√N_sp) x_μ(m)(b + b† + 2 Re β)];
* the spin flips: ⟨m, n|S_{x,r}|m', n'⟩_P = (S_{x,r})_{mm'} Π_μ e^{i Im(β_μ(m)* β_μ(m'))} ⟨n_μ|D(β_μ(m') − β_μ(m))|n'_μ⟩,
  where β_μ(m)* β_μ(m') = |c_μ|² x_μ(m) x_μ(m') is real, so the phase is 1, and β_μ(m') − β_μ(m) = ∓2 c_μ f[μ, r]
  for s'_r = s_r ∓ 2: the same two displacement matrices for every m, given in closed form by Laguerre
  polynomials (:func:`displacement_matrix`).

Parity. P = (flip of every block) ⊗ (−1)^{a†a} maps x_μ → −x_μ, and (−1)^{b†b} D(β) = D(−β) (−1)^{b†b}, so
P|m, n⟩_P = |m̄⟩ ⊗ D(β(m̄)) (−1)^{Σn}|n⟩ = (−1)^{Σn} |m̄, n⟩_P (m̄ the flipped configuration, β(m̄) = −β(m)):
P is the same real signed permutation as in the plain basis,
and :func:`.liouville.parity_basis` applies unchanged. H and a are complex in this basis, so the sector
Liouvillians are complex (:func:`.liouville.sector_liouvillian` picks the representation).

The Hilbert-space truncation is a Galerkin projection onto span{|m, n⟩_P, n < fock}, exactly as the plain Fock
cutoff is one onto span{|m, n⟩, n < fock}; both converge to the same untruncated model as the cutoff grows
(tested against the plain basis and QuTiP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from scipy.special import eval_genlaguerre, gammaln

from .problem import QuantumProblem, _large_spin

__all__ = ["PolaronProblem", "polaron", "displacement_matrix", "polaron_shift"]


def displacement_matrix(levels: int, gamma: complex) -> np.ndarray:
    """⟨n|D(γ)|n'⟩ for n, n' < ``levels``, the exact elements of the untruncated displacement operator.

    n ≥ n': √(n'!/n!) γ^{n−n'} e^{−|γ|²/2} L_{n'}^{(n−n')}(|γ|²); n < n': √(n!/n'!) (−γ*)^{n'−n} e^{−|γ|²/2} L_n^{(n'−n)}(|γ|²).
    """
    x = abs(gamma) ** 2
    out = np.zeros((levels, levels), dtype=complex)
    pref = math.exp(-0.5 * x)
    for n in range(levels):
        for k in range(levels):
            if n >= k:
                d = n - k
                lag = eval_genlaguerre(k, d, x)
                mag = math.exp(0.5 * (gammaln(k + 1) - gammaln(n + 1)))
                out[n, k] = mag * gamma**d * pref * lag
            else:
                d = k - n
                lag = eval_genlaguerre(n, d, x)
                mag = math.exp(0.5 * (gammaln(n + 1) - gammaln(k + 1)))
                out[n, k] = mag * (-np.conj(gamma)) ** d * pref * lag
    return out


def polaron_shift(model) -> np.ndarray:
    """c_μ = −(g0/√N_sp)/(Ω_μ − iκ_μ/2): the stationary field of mode μ per unit of x_μ = Σ_j G[μ, j] σ_z^j."""
    g = model.g0 / math.sqrt(model.n_spins)
    return np.array([-g / (w - 0.5j * k) for w, k in zip(model.omega_modes, model.kappa)], dtype=complex)


def _kron_all(ops):
    out = ops[0]
    for op in ops[1:]:
        out = sp.kron(out, op, format="csr")
    return sp.csr_matrix(out)


@dataclass(frozen=True, eq=False)
class PolaronProblem:
    """A :class:`.QuantumProblem` in the polaron basis (see the module docstring); same factor dimensions
    (blocks ⊗ modes), same spin part, Fock levels counting the fluctuations around the displaced field.

    Operators are complex CSR matrices in the polaron basis. ``shift``: c_μ (β_μ(m) = c_μ x_μ(m)).
    """

    base: QuantumProblem
    shift: np.ndarray

    # ---------------------------------------------------------------- what the solvers read from a problem
    model = property(lambda self: self.base.model)
    grouping = property(lambda self: self.base.grouping)
    block_group = property(lambda self: self.base.block_group)
    block_sizes = property(lambda self: self.base.block_sizes)
    block_f = property(lambda self: self.base.block_f)
    fock = property(lambda self: self.base.fock)
    dims = property(lambda self: self.base.dims)
    dim = property(lambda self: self.base.dim)
    n_spins = property(lambda self: self.base.n_spins)
    n_modes = property(lambda self: self.base.n_modes)
    n_blocks = property(lambda self: self.base.n_blocks)
    n_groups = property(lambda self: self.base.n_groups)
    basis_name = "polaron"

    def with_fock(self, fock) -> PolaronProblem:
        return PolaronProblem(self.base.with_fock(fock), self.shift)

    def sz_diagonal(self, block: int) -> np.ndarray:
        return self.base.sz_diagonal(block)

    def overlap_diagonal(self, mu: int) -> np.ndarray:
        return self.base.overlap_diagonal(mu)

    def top_level_diagonal(self, mu: int, below: int = 0) -> np.ndarray:
        """Projector on the top *polaron* level of mode μ (the truncation indicator of this basis)."""
        return self.base.top_level_diagonal(mu, below)

    # ---------------------------------------------------------------- pieces
    @property
    def spin_dim(self) -> int:
        return int(np.prod([int(n) + 1 for n in self.block_sizes], dtype=np.int64))

    @property
    def mode_dim(self) -> int:
        return int(np.prod(self.fock, dtype=np.int64))

    @cached_property
    def field_values(self) -> np.ndarray:
        """x_μ(m) = Σ_r f[μ, r] s_r for every spin configuration m, shape (M, spin_dim)."""
        x = np.zeros((self.n_modes, self.spin_dim))
        f = self.block_f
        sizes = [int(n) + 1 for n in self.block_sizes]
        for r, n in enumerate(self.block_sizes):
            s = int(n) - 2.0 * np.arange(int(n) + 1)
            left = int(np.prod(sizes[:r], dtype=np.int64))
            right = int(np.prod(sizes[r + 1:], dtype=np.int64))
            vals = np.repeat(np.tile(s, left), right)
            x += f[:, r][:, None] * vals[None, :]
        return x

    @cached_property
    def displacements(self) -> np.ndarray:
        """β_μ(m), shape (M, spin_dim)."""
        return self.shift[:, None] * self.field_values

    def _mode_op(self, mu: int, op) -> sp.csr_matrix:
        """An operator on mode μ, identity on the other modes (mode space only)."""
        ops = [sp.identity(int(c), format="csr", dtype=complex) for c in self.fock]
        ops[mu] = sp.csr_matrix(op, dtype=complex)
        return _kron_all(ops)

    def _b(self, mu: int) -> sp.csr_matrix:
        c = int(self.fock[mu])
        return sp.diags(np.sqrt(np.arange(1, c, dtype=float)), 1, shape=(c, c), format="csr", dtype=complex)

    def _spin_diag(self, values: np.ndarray) -> sp.csr_matrix:
        return sp.diags(np.asarray(values, dtype=complex), 0, format="csr")

    def _full(self, spin_op, mode_op) -> sp.csr_matrix:
        return sp.kron(spin_op, mode_op, format="csr")

    @cached_property
    def _eye_spin(self):
        return sp.identity(self.spin_dim, format="csr", dtype=complex)

    @cached_property
    def _eye_modes(self):
        return sp.identity(self.mode_dim, format="csr", dtype=complex)

    def destroy(self, mu: int) -> sp.csr_matrix:
        """a_μ = b_μ + β_μ(m) in the polaron basis."""
        b = self._mode_op(mu, self._b(mu))
        return (self._full(self._eye_spin, b) + self._full(self._spin_diag(self.displacements[mu]), self._eye_modes)).tocsr()

    def occupation_operator(self, mu: int) -> sp.csr_matrix:
        """a_μ†a_μ / N_sp in the polaron basis."""
        a = self.destroy(mu)
        return (a.getH() @ a).tocsr() / self.n_spins

    def block_spin_x(self, block: int) -> sp.csr_matrix:
        """S_{x,r} in the polaron basis: spin flips times the displacement of the field they change."""
        sizes = [int(n) + 1 for n in self.block_sizes]
        parts = _large_spin(int(self.block_sizes[block]))
        sx = parts["x"]
        up = sp.triu(sx, 1, format="csr")   # rows with s_r larger by 2: β changes by −2 c f
        down = sp.tril(sx, -1, format="csr")
        f = self.block_f[:, block]
        d_up = _kron_all([sp.csr_matrix(displacement_matrix(int(c), -2 * self.shift[mu] * f[mu]))
                          for mu, c in enumerate(self.fock)])
        d_down = _kron_all([sp.csr_matrix(displacement_matrix(int(c), 2 * self.shift[mu] * f[mu]))
                            for mu, c in enumerate(self.fock)])
        left = sp.identity(int(np.prod(sizes[:block], dtype=np.int64)), format="csr", dtype=complex)
        right = sp.identity(int(np.prod(sizes[block + 1:], dtype=np.int64)), format="csr", dtype=complex)
        spin_up = sp.kron(sp.kron(left, up), right, format="csr")
        spin_down = sp.kron(sp.kron(left, down), right, format="csr")
        return (self._full(spin_up, d_up) + self._full(spin_down, d_down)).tocsr()

    def group_spin(self, component: str, group: int) -> sp.csr_matrix:
        if component != "x":
            raise ValueError("the polaron basis provides S_x of a group (S_z is diagonal: sz_diagonal)")
        out = sp.csr_matrix((self.dim, self.dim), dtype=complex)
        for r in np.flatnonzero(self.block_group == group):
            out = out + self.block_spin_x(int(r))
        return out.tocsr()

    # ---------------------------------------------------------------- generator
    @cached_property
    def hamiltonian(self) -> sp.csr_matrix:
        m = self.model
        g = m.g0 / math.sqrt(self.n_spins)
        H = sp.csr_matrix((self.dim, self.dim), dtype=complex)
        for r in range(self.n_blocks):
            H = H + m.omega * self.block_spin_x(r)
        for mu in range(self.n_modes):
            w = float(m.omega_modes[mu])
            beta = self.displacements[mu]
            x = self.field_values[mu]
            b = self._mode_op(mu, self._b(mu))
            n = self._mode_op(mu, sp.diags(np.arange(int(self.fock[mu]), dtype=float)))
            H = H + w * self._full(self._eye_spin, n)
            H = H + self._full(self._spin_diag(w * np.conj(beta) + g * x), b)
            H = H + self._full(self._spin_diag(w * beta + g * x), b.getH())
            H = H + self._full(self._spin_diag(w * np.abs(beta) ** 2 + 2 * g * x * beta.real), self._eye_modes)
        H = H.tocsr()
        H.sum_duplicates()
        H.data[np.abs(H.data) < 1e-300] = 0
        H.eliminate_zeros()
        return H

    @cached_property
    def collapse_operators(self) -> list[sp.csr_matrix]:
        return [math.sqrt(k) * self.destroy(mu) for mu, k in enumerate(self.model.kappa) if k > 0]

    def describe(self) -> str:
        return self.base.describe() + " (polaron basis)"


def polaron(problem: QuantumProblem) -> PolaronProblem:
    """``problem`` in the polaron basis (same blocks and cutoffs, the cutoffs now counting fluctuations)."""
    return PolaronProblem(problem, polaron_shift(problem.model))
