"""Connectome eigenmodes and mode growth rates of the linearised network."""

import numpy as np
import pytest

from cosim.analysis.modes import (connectome_modes, laplacian, linear_network_modes,
                                  network_jacobian)


def ring(n, w=1.0):
    m = np.zeros((n, n))
    i = np.arange(n)
    m[i, (i + 1) % n] = m[i, (i - 1) % n] = w
    return m


def test_ring_laplacian_eigenvalues_are_analytic():
    n = 12
    mu, vec = connectome_modes(ring(n), kind="laplacian")
    expected = np.sort(2 - 2 * np.cos(2 * np.pi * np.arange(n) / n))
    np.testing.assert_allclose(mu, expected, atol=1e-12)
    np.testing.assert_allclose(vec[:, 0], np.full(n, 1 / np.sqrt(n)) * np.sign(vec[0, 0]))
    np.testing.assert_allclose(vec.T @ vec, np.eye(n), atol=1e-12)
    lam, _ = connectome_modes(ring(n))
    np.testing.assert_allclose(lam, 2 - expected, atol=1e-12)   # W = 2I - L on a ring


def test_normalized_laplacian_spectrum_in_0_2():
    rng = np.random.default_rng(0)
    w = rng.random((8, 8))
    w = w + w.T
    np.fill_diagonal(w, 0)
    mu, _ = connectome_modes(w, kind="laplacian", normalized=True)
    assert mu[0] == pytest.approx(0.0, abs=1e-12) and mu[-1] <= 2.0
    np.testing.assert_allclose(laplacian(w).sum(axis=1), 0.0, atol=1e-12)


@pytest.mark.parametrize("diffusive", [False, True])
def test_mode_spectra_union_equals_network_jacobian_spectrum(diffusive):
    rng = np.random.default_rng(1)
    w = rng.random((7, 7))
    w = w + w.T
    np.fill_diagonal(w, 0)
    A = np.array([[-1.0, -2.0], [1.5, -0.5]])            # a stable focus
    B = np.array([[1.0, 0.0], [0.0, 0.0]])               # E of the others drives E
    modes = linear_network_modes(A, B, w, 0.3, diffusive=diffusive)
    full = np.linalg.eigvals(network_jacobian(A, B, w, 0.3, diffusive=diffusive))
    mine = np.sort_complex(modes.eigenvalues.ravel())
    np.testing.assert_allclose(mine, np.sort_complex(full), atol=1e-10)
    assert modes.stable == bool(np.all(full.real < 0))


def test_leading_mode_sets_the_stability_threshold():
    # One variable per node, dx/dt = -x + G Σ W x: unstable exactly when G λ_max > 1.
    w = ring(10, 0.5)
    lam_max = 1.0
    for G, stable in ((0.99 / lam_max, True), (1.01 / lam_max, False)):
        m = linear_network_modes(np.array([[-1.0]]), np.array([[1.0]]), w, G)
        assert m.stable is stable
        assert m.growth_rate[0] == pytest.approx(-1 + G * lam_max)
        np.testing.assert_allclose(np.abs(m.vectors[:, 0]), 1 / np.sqrt(10))


def test_linearised_wilson_cowan_network_from_cosim_model():
    """Node and coupling Jacobians of cosim's Wilson–Cowan (linear coupling on E) give mode
    spectra equal to the eigenvalues of the whole network's numerical Jacobian."""
    pytest.importorskip("cosim.models")
    from cosim.analysis.stability import fixed_points, input_jacobian, jacobian, node_rhs

    f = node_rhs("wilson_cowan")
    params = {"P_e": 0.5}
    x0 = fixed_points(f, params, bounds=[(0, 1), (0, 1)], n_starts=8)[0].x
    A = jacobian(f, x0, params)
    B = np.zeros((2, 2))
    B[:, 0] = input_jacobian(f, x0, params)[:, 0]          # c = G Σ W E_j
    rng = np.random.default_rng(3)
    w = rng.random((5, 5))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0)
    G = 0.05
    # network equilibrium with every node at x0 needs Σ_j W_ij E_j equal across i:
    # use a row-normalised W and shift P_e so the coupled node sits at x0
    w = w / w.sum(axis=1, keepdims=True)
    p_net = {"P_e": 0.5 - G * x0[0]}

    def net(X, _=None):
        X = X.reshape(5, 2)
        c = G * w @ X[:, 0]
        return np.concatenate([f(X[i], {**p_net, "coupling_input": c[i]}) for i in range(5)])

    X0 = np.tile(x0, 5)
    assert np.abs(net(X0)).max() < 1e-10
    full = np.linalg.eigvals(jacobian(net, X0))
    modes = linear_network_modes(A, B, w, G)
    np.testing.assert_allclose(np.sort_complex(modes.eigenvalues.ravel()), np.sort_complex(full),
                               atol=1e-7)
