"""Rejection-sampled and Gamma-normalized test distributions: densities against scipy,
sample moments and goodness of fit, and their gradient estimates against closed forms
(tolerances from the standard error)."""

import math

import pytest
import scipy.special
import scipy.stats
import torch

import ember.distributions as dist
from ember.distributions.testing.gof import auto_goodness_of_fit
from ember.distributions.testing.naive_dirichlet import NaiveBeta, NaiveDirichlet
from ember.distributions.testing.rejection_exponential import RejectionExponential
from ember.distributions.testing.rejection_gamma import (
    RejectionGamma,
    RejectionStandardGamma,
    ShapeAugmentedBeta,
    ShapeAugmentedDirichlet,
    ShapeAugmentedGamma,
)


def assert_mean_close(samples, expected, z=4.5):
    """The sample mean of ``samples`` (dim 0) is within ``z`` standard errors of ``expected``."""
    samples = samples.detach().double()
    se = samples.std(0) / samples.size(0) ** 0.5
    err = (samples.mean(0) - torch.as_tensor(expected, dtype=torch.float64)).abs()
    assert (err <= z * se + 1e-12).all(), (samples.mean(0), expected, se)


X = torch.tensor([0.05, 0.7, 1.5, 4.0])


@pytest.mark.parametrize("alpha", [1.0, 2.5, 7.0])
def test_rejection_standard_gamma(alpha):
    d = RejectionStandardGamma(torch.full((4,), alpha))
    assert d.batch_shape == (4,) and d.event_shape == () and d.has_rsample
    expected = scipy.stats.gamma(alpha).logpdf(X.numpy())
    assert torch.allclose(d.log_prob(X), torch.tensor(expected, dtype=X.dtype), atol=1e-5)
    torch.manual_seed(0)
    x = d.rsample((20000,))
    assert x.shape == (20000, 4) and (x > 0).all()
    assert_mean_close(x, alpha)
    assert_mean_close((x - alpha) ** 2, alpha)  # variance
    assert auto_goodness_of_fit(x[:, 0], d.log_prob(x)[:, 0].exp()) > 1e-3
    # exp(log_scale) is the probability that a proposal is accepted
    proposals = d.propose((200000,))
    accept = d.log_prob_accept(proposals).exp()[:, 0]
    assert_mean_close(accept, d.log_scale.exp()[0].item())
    assert torch.allclose(d.mean, d.concentration) and torch.allclose(d.variance, d.concentration)


def test_rejection_standard_gamma_refuses_small_concentration():
    with pytest.raises(ValueError, match="concentration >= 1"):
        RejectionStandardGamma(torch.tensor([0.5, 2.0]))


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_rejection_standard_gamma_gradient_is_unbiased(alpha):
    # d/dalpha E[log x] = trigamma(alpha); the pathwise part alone is biased, the
    # acceptance score corrects it
    a = torch.full((100000,), alpha, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    d = RejectionStandardGamma(a)
    x = d.rsample()
    cost = x.log()
    score = d.score_parts(x).score_function
    (grad,) = torch.autograd.grad((cost + cost.detach() * score).sum(), [a])
    assert_mean_close(grad.unsqueeze(-1), scipy.special.polygamma(1, alpha))


@pytest.mark.parametrize("alpha, beta", [(1.0, 0.5), (2.5, 3.0)])
def test_rejection_gamma(alpha, beta):
    d = RejectionGamma(torch.tensor([alpha]), torch.tensor([beta]))
    expected = scipy.stats.gamma(alpha, scale=1 / beta).logpdf(X.numpy())
    assert torch.allclose(
        d.log_prob(X.unsqueeze(-1)).squeeze(-1), torch.tensor(expected, dtype=X.dtype), atol=1e-5
    )
    big = d.expand((3, 1))
    assert type(big) is RejectionGamma and big.batch_shape == (3, 1)
    # gradients of E[x] = alpha / beta: 1 / beta and -alpha / beta**2
    n = 100000
    a = torch.full((n,), alpha, dtype=torch.float64, requires_grad=True)
    b = torch.full((n,), beta, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(2)
    d = RejectionGamma(a, b)
    x = d.rsample()
    score = d.score_parts(x).score_function
    ga, gb = torch.autograd.grad((x + x.detach() * score).sum(), [a, b])
    assert_mean_close(ga.unsqueeze(-1), 1 / beta)
    assert_mean_close(gb.unsqueeze(-1), -alpha / beta**2)


@pytest.mark.parametrize("alpha", [0.2, 0.7, 2.0])
def test_shape_augmented_gamma(alpha):
    beta = 1.5
    d = ShapeAugmentedGamma(torch.tensor(alpha), torch.tensor(beta))
    expected = scipy.stats.gamma(alpha, scale=1 / beta).logpdf(X.numpy())
    assert torch.allclose(d.log_prob(X), torch.tensor(expected, dtype=X.dtype), atol=1e-4)
    torch.manual_seed(3)
    x = d.rsample((20000,))
    assert_mean_close(x, alpha / beta)
    assert auto_goodness_of_fit(x, d.log_prob(x).exp()) > 1e-3
    # gradients of E[x] = alpha / beta
    n = 100000
    a = torch.full((n,), alpha, dtype=torch.float64, requires_grad=True)
    b = torch.full((n,), beta, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(4)
    d = ShapeAugmentedGamma(a, b)
    x = d.rsample()
    score = d.score_parts(x).score_function
    ga, gb = torch.autograd.grad((x + x.detach() * score).sum(), [a, b])
    assert_mean_close(ga.unsqueeze(-1), 1 / beta)
    assert_mean_close(gb.unsqueeze(-1), -alpha / beta**2)


def test_shape_augmented_gamma_bad_input_and_expand():
    with pytest.raises(ValueError, match="increase boost"):
        ShapeAugmentedGamma(torch.tensor(0.5), torch.tensor(1.0), boost=0)
    d = ShapeAugmentedGamma(torch.tensor([0.5]), torch.tensor([1.0]), boost=2)
    big = d.expand_by((5,))
    assert type(big) is ShapeAugmentedGamma and big.batch_shape == (5, 1)
    x = big.rsample()
    assert big.score_parts(x).log_prob.shape == (5, 1)
    with pytest.raises(ValueError, match="last rsample"):
        big.score_parts(x.clone())


@pytest.mark.parametrize("cls", [NaiveBeta, ShapeAugmentedBeta])
@pytest.mark.parametrize("alpha, beta", [(0.5, 0.5), (1.0, 4.0), (4.0, 1.0)])
def test_gamma_normalized_beta(cls, alpha, beta):
    d = cls(torch.tensor(alpha), torch.tensor(beta))
    assert d.has_rsample
    x = torch.tensor([0.05, 0.3, 0.9])
    expected = scipy.stats.beta(alpha, beta).logpdf(x.numpy())
    assert torch.allclose(d.log_prob(x), torch.tensor(expected, dtype=x.dtype), atol=1e-4)
    torch.manual_seed(5)
    s = d.rsample((20000,))
    assert_mean_close(s, alpha / (alpha + beta))
    assert auto_goodness_of_fit(s, d.log_prob(s).exp()) > 1e-3
    big = d.expand((2, 3))
    assert type(big) is cls and big.rsample().shape == (2, 3)
    # d/dalpha E[x] = beta / (alpha + beta)**2, pathwise through the Gamma draws: exact
    # for NaiveBeta; ShapeAugmentedBeta leaves out the rejection score (documented bias,
    # about 1% here)
    n = 100000
    a = torch.full((n,), alpha, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(6)
    z = cls(a, torch.full((n,), beta, dtype=torch.float64)).rsample()
    (grad,) = torch.autograd.grad(z.sum(), [a])
    expected = beta / (alpha + beta) ** 2
    if cls is NaiveBeta:
        assert_mean_close(grad.unsqueeze(-1), expected)
    else:
        se = grad.std().item() / n**0.5
        assert abs(grad.mean().item() - expected) < 0.03 * expected + 4.5 * se


@pytest.mark.parametrize("cls", [NaiveDirichlet, ShapeAugmentedDirichlet])
def test_gamma_normalized_dirichlet(cls):
    c = torch.tensor([3.2, 1.2, 0.4])
    d = cls(c)
    x = torch.tensor([0.2, 0.45, 0.35])
    expected = scipy.stats.dirichlet(c.numpy()).logpdf(x.numpy())
    assert d.log_prob(x).item() == pytest.approx(expected, abs=1e-4)
    torch.manual_seed(7)
    s = d.rsample((20000,))
    assert torch.allclose(s.sum(-1), torch.ones(20000), atol=1e-5)
    assert_mean_close(s, c / c.sum())
    assert auto_goodness_of_fit(s[:, :-1], d.log_prob(s).exp()) > 1e-3
    big = d.expand((4,))
    assert type(big) is cls and big.rsample().shape == (4, 3)


@pytest.mark.parametrize("rate, factor", [(0.5, 0.25), (2.0, 0.5), (1.0, 1.0)])
def test_rejection_exponential(rate, factor):
    d = RejectionExponential(torch.tensor([rate]), torch.tensor([factor]))
    expected = scipy.stats.expon(scale=1 / rate).logpdf(X.numpy())
    assert torch.allclose(
        d.log_prob(X.unsqueeze(-1)).squeeze(-1), torch.tensor(expected, dtype=X.dtype), atol=1e-5
    )
    assert d.log_scale.exp().item() == pytest.approx(factor)
    torch.manual_seed(8)
    x = d.rsample((20000,))
    assert_mean_close(x, 1 / rate)
    assert auto_goodness_of_fit(x[:, 0], d.log_prob(x)[:, 0].exp()) > 1e-3
    assert type(d.expand((3, 1))) is RejectionExponential
    # d/drate E[x] = -1 / rate**2
    n = 100000
    r = torch.full((n,), rate, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(9)
    d = RejectionExponential(r, torch.full((n,), factor, dtype=torch.float64))
    x = d.rsample()
    score = d.score_parts(x).score_function
    (grad,) = torch.autograd.grad((x + x.detach() * score).sum(), [r])
    assert_mean_close(grad.unsqueeze(-1), -1 / rate**2)


def test_rejection_exponential_bad_factor():
    with pytest.raises(ValueError, match="factor must lie in"):
        RejectionExponential(torch.tensor(1.0), torch.tensor(1.5))


def test_rejector_with_a_sampler_function():
    # a Rejector given a plain sampler function: Exponential(2) from Exponential(1)
    # proposals accepted with probability exp(-x)
    def propose(sample_shape=()):
        return torch.distributions.Exponential(torch.ones(3)).rsample(sample_shape)

    class Exp2(dist.Rejector):
        def __init__(self):
            super().__init__(propose, lambda x: -x, math.log(0.5), batch_shape=(3,), event_shape=())

        def log_prob(self, x):
            return math.log(2.0) - 2 * x

    d = Exp2()
    assert d.has_rsample and d.batch_shape == (3,)
    torch.manual_seed(10)
    x = d.sample((20000,))
    assert_mean_close(x, 0.5)
    parts = d.score_parts(x[:2])
    assert torch.allclose(parts.score_function, -x[:2] - math.log(0.5))
    assert torch.allclose(parts.log_prob, math.log(2.0) - 2 * x[:2])
