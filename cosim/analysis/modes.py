"""Eigenmodes of the connectome and growth rates of the linearised network's modes.

Linearise every node around the same equilibrium: node Jacobian ``A (d, d)`` and
coupling Jacobian ``B (d, d)`` (``B[i, j]`` = how node variable ``i`` responds to the
coupled input built from variable ``j`` of the other nodes).  With coupling strength
``G`` and connectome ``W (target, source)`` the network Jacobian is::

    J = I_N ⊗ A + G · W ⊗ B                   (linear coupling  Σ_j W_ij x_j)
    J = I_N ⊗ A − G · L ⊗ B,  L = D − W       (diffusive coupling Σ_j W_ij (x_j − x_i))

Each eigenvector ``u_k`` of ``W`` (or ``L``) with eigenvalue ``λ_k`` spans an invariant
subspace ``u_k ⊗ C^d`` on which ``J`` acts as ``A + G λ_k B`` (or ``A − G μ_k B``): the
network's spectrum is the union of these d×d spectra (the "collective modes" of seed 001;
Robinson et al. 2016 / Atasoy et al. 2016 for connectome harmonics).  A mode's growth rate
is the largest real part of its d×d block: the network equilibrium is stable when every
mode's growth rate is negative.  Conduction delays are neglected (zero-delay
linearisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def laplacian(weights: np.ndarray, normalized: bool = False) -> np.ndarray:
    """Graph Laplacian ``L = D − W`` (``D`` = diagonal of row sums, the in-strengths of
    ``W (target, source)``), or ``I − D^-1/2 W D^-1/2`` when ``normalized`` (isolated
    nodes get a zero row)."""
    w = np.asarray(weights, dtype=np.float64)
    deg = w.sum(axis=1)
    if not normalized:
        return np.diag(deg) - w
    with np.errstate(divide="ignore"):
        s = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
    return np.diag((deg > 0).astype(float)) - s[:, None] * w * s[None, :]


def connectome_modes(weights: np.ndarray, *, kind: str = "weights",
                     normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the connectome (``kind="weights"``) or of its Laplacian
    (``kind="laplacian"``).

    Returns ``(eigenvalues (N,), eigenvectors (N, N))`` with eigenvector ``k`` in column
    ``k``; sorted by decreasing real part for the weights (leading mode first) and by
    increasing real part for the Laplacian (smoothest harmonic first).  A symmetric
    matrix gives real eigenvalues and orthonormal eigenvectors.
    """
    if kind not in ("weights", "laplacian"):
        raise ValueError(f"kind must be 'weights' or 'laplacian', got {kind!r}")
    m = np.asarray(weights, dtype=np.float64)
    if kind == "laplacian":
        m = laplacian(m, normalized)
    if np.allclose(m, m.T, rtol=1e-12, atol=1e-14 * max(1.0, np.abs(m).max())):
        ev, vec = np.linalg.eigh(0.5 * (m + m.T))
    else:
        ev, vec = np.linalg.eig(m)
    order = np.argsort(-ev.real if kind == "weights" else ev.real, kind="stable")
    return ev[order], vec[:, order]


@dataclass
class ModeSpectrum:
    """Per connectome mode ``k``: ``coupling_eigenvalue`` (λ_k of W, or −μ_k of −L),
    ``eigenvalues (k, d)`` of its block ``A + G λ_k B``, ``growth_rate`` (largest real
    part, 1/time unit of A) and ``frequency`` (|Im| of that eigenvalue / 2π, cycles per
    time unit); ``vectors``: the connectome eigenvectors (columns)."""

    coupling_eigenvalue: np.ndarray
    eigenvalues: np.ndarray
    growth_rate: np.ndarray
    frequency: np.ndarray
    vectors: np.ndarray

    @property
    def stable(self) -> bool:
        return bool(np.all(self.growth_rate < 0))


def mode_growth_rates(node_jacobian: np.ndarray, coupling_jacobian: np.ndarray,
                      coupling_eigenvalues: np.ndarray, strength: float = 1.0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each coupling eigenvalue ``λ_k``: eigenvalues of ``A + G λ_k B``, the growth
    rate (largest real part) and the frequency of that eigenvalue (cycles per unit)."""
    A = np.asarray(node_jacobian, dtype=np.float64)
    B = np.asarray(coupling_jacobian, dtype=np.float64)
    lam = np.asarray(coupling_eigenvalues)
    evs = np.stack([np.linalg.eigvals(A + strength * l * B) for l in lam])
    lead = np.argmax(evs.real, axis=1)
    top = evs[np.arange(len(lam)), lead]
    return evs, top.real, np.abs(top.imag) / (2 * np.pi)


def linear_network_modes(node_jacobian: np.ndarray, coupling_jacobian: np.ndarray,
                         weights: np.ndarray, strength: float, *,
                         diffusive: bool = False) -> ModeSpectrum:
    """Modes of the linearised network (module doc): linear coupling through ``W``, or
    diffusive coupling through ``−L`` when ``diffusive``."""
    if diffusive:
        mu, vec = connectome_modes(weights, kind="laplacian")
        lam = -mu
    else:
        lam, vec = connectome_modes(weights, kind="weights")
    evs, rate, freq = mode_growth_rates(node_jacobian, coupling_jacobian, lam, strength)
    return ModeSpectrum(lam, evs, rate, freq, vec)


def network_jacobian(node_jacobian: np.ndarray, coupling_jacobian: np.ndarray,
                     weights: np.ndarray, strength: float, *, diffusive: bool = False
                     ) -> np.ndarray:
    """The full ``(N·d, N·d)`` Jacobian ``I ⊗ A + G W ⊗ B`` (or ``− G L ⊗ B``), node-major
    ordering (node ``i``'s variables at ``i·d … i·d + d − 1``)."""
    w = -laplacian(weights) if diffusive else np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    return np.kron(np.eye(n), node_jacobian) + strength * np.kron(w, coupling_jacobian)
