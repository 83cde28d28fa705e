"""The model on individual, ungauged spins ⊗ Fock modes, from QuTiP primitives only (no package code): the
brute-force reference of the exact solvers, the fluctuation solvers and the spin-dissipation solvers.

H = Ω Σ_j σ_x^j + Σ_μ Ω_μ a_μ†a_μ + (g0/√N) Σ_μj G[μ, j] (a_μ + a_μ†) σ_z^j, loss √κ_μ a_μ, and per spin
decay √γ↓ σ_-^j, pumping √γ↑ σ_+^j, dephasing √(γφ/2) σ_z^j (docs/conventions.md). QuTiP's basis(2, 0) is
σ_z = +1, and ``sigmam()`` = (σ_x − iσ_y)/2 lowers it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import qutip


@dataclass(frozen=True)
class Spins:
    """Per-spin Pauli operators (lists over j), mode operators (list over μ), H and the collapse operators."""

    sx: list
    sy: list
    sz: list
    sm: list
    a: list
    H: qutip.Qobj
    c_ops: list


def individual_spins(G, omega, omega_modes, kappa, g0, fock, rates=(0.0, 0.0, 0.0)) -> Spins:
    """Build the model for a pattern matrix ``G`` (M × N) with ``rates`` = (γ↓, γ↑, γφ); zero rates add no
    collapse operators."""
    G = np.atleast_2d(np.asarray(G, float))
    M, N = G.shape
    eye = [qutip.qeye(2)] * N + [qutip.qeye(fock)] * M

    def embed(op, where):
        ops = list(eye)
        ops[where] = op
        return qutip.tensor(ops)

    sx = [embed(qutip.sigmax(), j) for j in range(N)]
    sy = [embed(qutip.sigmay(), j) for j in range(N)]
    sz = [embed(qutip.sigmaz(), j) for j in range(N)]
    sm = [embed(qutip.sigmam(), j) for j in range(N)]
    a = [embed(qutip.destroy(fock), N + mu) for mu in range(M)]
    H = omega * sum(sx)
    for mu in range(M):
        H += omega_modes[mu] * a[mu].dag() * a[mu]
        H += (g0 / np.sqrt(N)) * (a[mu] + a[mu].dag()) * sum(G[mu, j] * sz[j] for j in range(N))
    c_ops = [np.sqrt(kappa[mu]) * a[mu] for mu in range(M)]
    gd, gu, gp = rates
    c_ops += [np.sqrt(gd) * s for s in sm if gd] + [np.sqrt(gu) * s.dag() for s in sm if gu]
    c_ops += [np.sqrt(gp / 2) * s for s in sz if gp]
    return Spins(sx, sy, sz, sm, a, H, c_ops)
