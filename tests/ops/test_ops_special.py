import math

import numpy as np
import pytest
import scipy.special as sp
import torch

from ember.ops.special import (
    get_quad_rule,
    log_beta,
    log_binomial,
    log_I1,
    safe_log,
    sparse_multinomial_likelihood,
)


def test_safe_log_value_and_finite_grad():
    x = torch.tensor([0.0, 0.5, 2.0], requires_grad=True)
    y = safe_log(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.5, 2.0]).log())
    y.sum().backward()
    eps = torch.finfo(torch.float32).eps
    assert torch.allclose(x.grad, torch.tensor([1 / eps, 2.0, 0.5]))


@pytest.mark.parametrize("tol", [0.0, 0.01, 0.02, 0.05, 0.1, 0.5])
def test_log_beta_against_scipy(tol):
    x = torch.tensor([0.01, 0.1, 0.5, 1.0, 3.0, 10.0, 100.0], dtype=torch.float64)
    xx, yy = torch.meshgrid(x, x, indexing="ij")
    expected = torch.from_numpy(sp.betaln(xx.numpy(), yy.numpy()))
    actual = log_beta(xx, yy, tol=tol)
    bound = 1e-12 if tol < 0.02 else tol
    assert (actual - expected).abs().max() < bound


@pytest.mark.parametrize("tol", [0.0, 0.05, 0.2])
def test_log_binomial_against_scipy(tol):
    n = torch.tensor([0.0, 1.0, 5.0, 10.0, 50.0, 1000.0], dtype=torch.float64)
    k = torch.floor(n * 0.3)
    expected = torch.from_numpy(np.log(sp.comb(n.numpy(), k.numpy())))
    actual = log_binomial(n, k, tol=tol)
    bound = 1e-9 if tol < 0.02 else tol
    assert (actual - expected).abs().max() < bound


def test_log_beta_rejects_negative_tol():
    with pytest.raises(ValueError, match="tol"):
        log_beta(torch.tensor(1.0), torch.tensor(1.0), tol=-1.0)


@pytest.mark.parametrize("shape", [(), (4,), (2, 3)])
def test_log_I1_against_scipy(shape):
    value = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    value = value * 20 + 0.05
    out = log_I1(4, value)
    expected_shape = (5,) + (shape if shape else (1,))
    assert out.shape == expected_shape
    for v in range(5):
        ref = np.log(sp.iv(v, value.reshape(expected_shape[1:]).numpy()))
        assert np.allclose(out[v].numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("num_quad", [1, 4, 16])
def test_quad_rule_normal_moments(num_quad):
    pts, logw = get_quad_rule(num_quad, torch.zeros((), dtype=torch.float64))
    w = logw.exp()
    assert pts.dtype == torch.float64 and pts.shape == (num_quad,)
    # E[Z^(2m)] = (2m-1)!!, exact for 2m < 2 * num_quad
    for m in range(num_quad):
        expected = float(np.prod(np.arange(2 * m - 1, 0, -2))) if m else 1.0
        assert float((w * pts ** (2 * m)).sum()) == pytest.approx(expected, rel=1e-9)
    # scaled to N(0, 4^2): variance 16
    assert float((w * (4 * pts) ** 2).sum()) == pytest.approx(16.0 if num_quad > 1 else 0.0)


def test_quad_rule_dtype_follows_prototype():
    pts, logw = get_quad_rule(3, torch.zeros(2, dtype=torch.float32))
    assert pts.dtype == logw.dtype == torch.float32


def test_sparse_multinomial_matches_dense():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, generator=g, dtype=torch.float64)
    value = torch.tensor([3.0, 0.0, 2.0, 0.0, 0.0, 5.0], dtype=torch.float64)
    norm = logits - logits.logsumexp(-1)
    nnz = value.nonzero(as_tuple=True)
    actual = sparse_multinomial_likelihood(value.sum(-1), norm[nnz], value[nnz])
    expected = torch.distributions.Multinomial(10, logits=logits).log_prob(value)
    assert float(actual) == pytest.approx(float(expected), abs=1e-12)
    # closed form
    p = norm.exp()
    closed = math.log(
        math.factorial(10) / (math.factorial(3) * math.factorial(2) * math.factorial(5))
    )
    closed += 3 * math.log(p[0]) + 2 * math.log(p[2]) + 5 * math.log(p[5])
    assert float(actual) == pytest.approx(closed, abs=1e-12)
    # a second call hits the per-tensor cache and agrees
    again = sparse_multinomial_likelihood(value.sum(-1), norm[nnz], value[nnz])
    assert float(again) == pytest.approx(float(actual), abs=1e-12)
