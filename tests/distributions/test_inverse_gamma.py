"""InverseGamma against scipy.stats.invgamma, by quadrature and by sampling."""

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

import ember.distributions as dist
from ember.distributions import InverseGamma


def test_overrides_generated_wrapper():
    assert dist.InverseGamma is InverseGamma
    d = InverseGamma(torch.tensor(2.0), torch.tensor(3.0))
    assert isinstance(d.base_dist, dist.Gamma)
    assert isinstance(d, dist.TransformedDistribution)
    assert d.has_rsample and d.support is dist.constraints.positive


@pytest.mark.parametrize("a,b", [(3.0, 4.0), (0.7, 0.5), (12.0, 1.5)])
def test_log_prob_scipy_and_normalization(a, b):
    d = InverseGamma(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    y = torch.logspace(-2, 2, 50, dtype=torch.float64)
    expected = scipy.stats.invgamma.logpdf(y.numpy(), a, scale=b)
    assert np.allclose(d.log_prob(y).numpy(), expected, atol=1e-10)

    def density(t):
        return float(d.log_prob(torch.tensor(t, dtype=torch.float64)).exp())

    mode = b / (a + 1)
    total = sum(
        scipy.integrate.quad(density, lo, hi, limit=200)[0]
        for lo, hi in [(0, mode), (mode, 10 * mode), (10 * mode, np.inf)]
    )
    assert abs(total - 1) < 1e-6


def test_mean_variance_scipy_and_infinite():
    a = torch.tensor([0.5, 1.5, 3.0, 6.0], dtype=torch.float64)
    d = InverseGamma(a, torch.tensor(2.0, dtype=torch.float64))
    mean, var = d.mean, d.variance
    assert mean[0].item() == float("inf") and var[1].item() == float("inf")
    assert abs(mean[2].item() - scipy.stats.invgamma.mean(3.0, scale=2.0)) < 1e-12
    assert abs(var[3].item() - scipy.stats.invgamma.var(6.0, scale=2.0)) < 1e-12


def test_sampling_moments():
    torch.manual_seed(0)
    a, b = torch.tensor([6.0, 9.0]), torch.tensor([2.0, 0.5])
    d = InverseGamma(a, b)
    n = 40000
    x = d.sample((n,)).double()
    assert x.shape == (n, 2) and (x > 0).all()
    mean, var = d.mean.double(), d.variance.double()
    assert ((x.mean(0) - mean).abs() < 4.5 * (var / n).sqrt()).all()
    # variance of the sample variance from the exact 4th central moment (needs a > 4)
    ad, bd = a.double(), b.double()
    raw = [bd**k / torch.exp(torch.lgamma(ad) - torch.lgamma(ad - k)) for k in range(5)]
    m = mean
    m4 = raw[4] - 4 * m * raw[3] + 6 * m**2 * raw[2] - 3 * m**4
    assert ((x.var(0) - var).abs() < 4.5 * ((m4 - var**2) / n).sqrt()).all()


def test_reparameterized_gradient():
    # d/d rate E[Y] = 1 / (a - 1); the pathwise estimate must agree within its standard error.
    torch.manual_seed(1)
    rate = torch.tensor(2.0, requires_grad=True)
    d = InverseGamma(torch.tensor(5.0), rate)
    y = d.rsample((20000,))
    grads = y / rate  # Y = rate / X' with X' ~ Gamma(a, 1): dY/drate = Y / rate
    (g,) = torch.autograd.grad(y.mean(), rate)
    assert torch.allclose(g, grads.mean().detach(), rtol=1e-4)
    se = grads.detach().std() / 20000**0.5
    assert abs(g.item() - 0.25) < 4.5 * se.item()


def test_expand_and_bad_parameters():
    d = InverseGamma(torch.tensor([1.0, 2.0]), torch.tensor(1.0))
    e = d.expand((3, 2))
    assert isinstance(e, InverseGamma) and e.batch_shape == (3, 2)
    assert e.sample().shape == (3, 2)
    assert torch.allclose(e.log_prob(torch.tensor(0.5)), d.log_prob(torch.tensor(0.5)).expand(3, 2))
    with pytest.raises(ValueError, match="concentration"):
        InverseGamma(torch.tensor(-1.0), torch.tensor(1.0), validate_args=True)
    with pytest.raises(ValueError, match="rate"):
        InverseGamma(torch.tensor(1.0), torch.tensor(0.0), validate_args=True)
    with pytest.raises(ValueError):
        InverseGamma(torch.tensor(1.0), torch.tensor(1.0), validate_args=True).log_prob(
            torch.tensor(-1.0)
        )
