"""FC, FCD and FC agreement against analytic results for coupled noisy linear nodes."""

import numpy as np
import pytest

from cosim.analysis.fc import (fc_agreement, fcd_ks_distance, fcd_matrix, fcd_values,
                               functional_connectivity, matrix_correlation, sliding_window_fc)
from cosim.analysis.hemodynamics import balloon_windkessel


def two_ou_nodes(coupling, n=200_000, dt=0.01, seed=0):
    """Two identical Ornstein–Uhlenbeck nodes, dx_i = (-x_i + c (x_j - x_i)) dt + dW_i,
    integrated exactly in the sum/difference modes.  Stationary correlation: c / (1 + c)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 2))
    x = np.zeros(2)
    rates = np.array([1.0, 1.0 + 2 * coupling])              # sum and difference modes
    decay = np.exp(-rates * dt)
    sd = np.sqrt(2 * (1 - decay ** 2) / (2 * rates))         # each mode gets noise variance 2
    m = np.array([x[0] + x[1], x[0] - x[1]])
    for k in range(n):
        m = decay * m + sd * rng.standard_normal(2)
        out[k] = 0.5 * (m[0] + m[1]), 0.5 * (m[0] - m[1])
    return out


@pytest.mark.parametrize("c", [0.0, 1.0, 50.0])
def test_fc_of_two_noisy_nodes_matches_theory(c):
    ts = two_ou_nodes(c, n=100_000, dt=0.05)
    fc = functional_connectivity(ts)
    # ~5000 correlation times -> standard error ≈ 0.02 at c = 0
    assert fc[0, 1] == pytest.approx(c / (1 + c), abs=0.05)
    assert fc[0, 0] == fc[1, 1] == 1.0 and fc[0, 1] == fc[1, 0]


def test_fc_on_bold_uncoupled_near_zero_coupled_near_one():
    # Through the hemodynamic filter (the quantity an FC study compares to fMRI).
    for c, lo, hi in ((0.0, -0.15, 0.15), (50.0, 0.97, 1.0)):
        ts = two_ou_nodes(c, n=60_000, dt=0.01, seed=3)       # 600 s at 10 ms (time unit s)
        bold = balloon_windkessel(0.5 + 0.2 * ts, 10.0)[2000:][::50]  # 0.5-s TR, 20 s dropped
        r = functional_connectivity(bold)[0, 1]
        assert lo <= r <= hi


def test_fc_equals_numpy_corrcoef_and_constant_region_is_nan():
    rng = np.random.default_rng(0)
    ts = rng.standard_normal((500, 4))
    ts[:, 1] += ts[:, 0]
    np.testing.assert_allclose(functional_connectivity(ts), np.corrcoef(ts.T), atol=1e-12)
    ts[:, 3] = 2.0
    fc = functional_connectivity(ts)
    assert np.isnan(fc[3]).all() and np.isnan(fc[:, 3]).all() and fc[0, 0] == 1.0


def test_fcd_symmetric_unit_diagonal_and_window_count():
    rng = np.random.default_rng(2)
    ts = rng.standard_normal((1000, 6)) + np.sin(np.arange(1000) / 50.0)[:, None]
    fcd, starts = fcd_matrix(ts, window=100, step=20)
    assert fcd.shape == (46, 46) and starts[-1] == 900
    np.testing.assert_array_equal(fcd, fcd.T)
    np.testing.assert_array_equal(np.diag(fcd), 1.0)
    assert np.all(np.abs(fcd) <= 1.0)
    # FCD[a, b] is the correlation of the windowed FCs' upper triangles
    fcs, _ = sliding_window_fc(ts, 100, 20)
    iu = np.triu_indices(6, 1)
    assert fcd[3, 17] == pytest.approx(np.corrcoef(fcs[3][iu], fcs[17][iu])[0, 1], abs=1e-12)
    assert fcd_values(fcd, min_lag=5).size == (46 - 5) * (46 - 4) // 2


def test_fcd_distinguishes_switching_from_stationary_dynamics():
    # Two blocks with different correlation structure: FC upper triangles (+, -, -) and
    # (-, +, -) correlate at exactly -0.5 (noise lowers |r| a little); windows in the same
    # block at ~1.  A stationary series has FCD near 1 everywhere.
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2000, 1))
    b = rng.standard_normal((2000, 1))
    block1 = np.hstack([a, a, -a]) + 0.3 * rng.standard_normal((2000, 3))
    block2 = np.hstack([b, -b, b]) + 0.3 * rng.standard_normal((2000, 3))
    fcd, _ = fcd_matrix(np.vstack([block1, block2]), window=200, step=200)
    assert fcd[0, 15] == pytest.approx(-0.5, abs=0.05) and fcd[0, 5] > 0.95
    stationary, _ = fcd_matrix(np.vstack([block1, block1]), window=200, step=200)
    assert fcd_ks_distance(fcd, stationary) > 0.3


def test_fc_agreement_is_upper_triangle_correlation():
    rng = np.random.default_rng(5)
    a = np.corrcoef(rng.standard_normal((6, 50)))
    b = np.corrcoef(rng.standard_normal((6, 50)))
    iu = np.triu_indices(6, 1)
    assert fc_agreement(a, b) == pytest.approx(np.corrcoef(a[iu], b[iu])[0, 1], abs=1e-12)
    assert fc_agreement(a, a) == pytest.approx(1.0)
    assert matrix_correlation(a, 2 * a + 0.1) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fc_agreement(a, b[:5, :5])
