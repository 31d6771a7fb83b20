import pytest
import torch

from ember.ops.welford import WelfordArrowheadCovariance, WelfordCovariance


@pytest.mark.parametrize("diagonal", [True, False])
def test_welford_matches_sample_covariance(diagonal):
    torch.manual_seed(0)
    x = torch.randn(50, 4, dtype=torch.float64) @ torch.randn(4, 4, dtype=torch.float64)
    w = WelfordCovariance(diagonal=diagonal)
    for row in x:
        w.update(row)
    expected = torch.cov(x.T)
    if diagonal:
        expected = expected.diag()
    assert torch.allclose(w.get_covariance(regularize=False), expected)
    n = 50
    shrunk = expected * n / (n + 5) + 1e-3 * 5 / (n + 5) * (
        torch.ones(4, dtype=torch.float64) if diagonal else torch.eye(4, dtype=torch.float64)
    )
    assert torch.allclose(w.get_covariance(regularize=True), shrunk)


def test_welford_reset_and_too_few_samples():
    w = WelfordCovariance()
    w.update(torch.ones(2))
    with pytest.raises(RuntimeError, match="at least 2 samples"):
        w.get_covariance()
    w.update(torch.zeros(2))
    w.reset()
    assert w.n_samples == 0


@pytest.mark.parametrize("head_size", [0, 2, 5])
@pytest.mark.parametrize("regularize", [False, True])
def test_arrowhead_matches_dense(head_size, regularize):
    torch.manual_seed(1)
    x = torch.randn(40, 5, dtype=torch.float64) @ torch.randn(5, 5, dtype=torch.float64)
    dense = WelfordCovariance(diagonal=False)
    arrow = WelfordArrowheadCovariance(head_size=head_size)
    for row in x:
        dense.update(row)
        arrow.update(row)
    full = dense.get_covariance(regularize=regularize)
    top, bottom = arrow.get_covariance(regularize=regularize)
    assert top.shape == (head_size, 5)
    assert torch.allclose(top, full[:head_size])
    assert torch.allclose(bottom, full.diag()[head_size:])
