"""Rejector: known targets reproduced by rejection, and the unbiased gradient correction."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

import ember.distributions as dist
from ember.distributions import Rejector


def _exponential_rejector(lam, c):
    """Exponential(lam) proposals accepted with prob exp(-c x): target Exponential(lam + c)."""
    log_scale = torch.log(lam) - torch.log(lam + c)  # log E[exp(-c x)] = log(lam / (lam + c))
    return Rejector(dist.Exponential(lam), lambda x: -c * x, log_scale)


def test_exponential_target_log_prob_and_samples():
    torch.manual_seed(0)
    lam, c = torch.tensor([1.0, 0.5, 4.0]), torch.tensor([2.0, 0.1, 1.0])
    d = _exponential_rejector(lam, c)
    assert d.batch_shape == (3,) and d.event_shape == () and d.has_rsample
    target = dist.Exponential(lam + c)
    x = torch.tensor([[0.1], [1.0], [3.0]])
    assert torch.allclose(d.log_prob(x), target.log_prob(x), atol=1e-6)
    n = 20000
    s = d.sample((n,))
    assert s.shape == (n, 3)
    mean = 1 / (lam + c)
    assert ((s.double().mean(0) - mean).abs() < 4.5 * mean / math.sqrt(n)).all()
    ks = scipy.stats.kstest(s[:, 0].numpy(), scipy.stats.expon(scale=1 / 3.0).cdf)
    assert ks.pvalue > 1e-4


def test_truncated_normal_target():
    torch.manual_seed(1)
    a = 0.5
    log_scale = math.log(scipy.stats.norm.sf(a))

    def log_accept(x):
        return torch.where(x > a, torch.zeros_like(x), torch.full_like(x, -float("inf")))

    d = Rejector(dist.Normal(torch.tensor(0.0), torch.tensor(1.0)), log_accept, log_scale)
    x = torch.tensor([0.6, 1.0, 2.5], dtype=torch.float32)
    expected = scipy.stats.truncnorm.logpdf(x.numpy(), a, np.inf)
    assert np.allclose(d.log_prob(x).numpy(), expected, atol=1e-5)
    assert d.log_prob(torch.tensor(0.2)).item() == -float("inf")
    n = 20000
    s = d.sample((n,)).double()
    assert (s > a).all()
    mean, var = scipy.stats.truncnorm.stats(a, np.inf, moments="mv")
    assert abs(s.mean().item() - mean) < 4.5 * math.sqrt(var / n)


def _surrogate_gradient(d, f, n, lam, correct):
    x = d.rsample((n,))
    parts = d.score_parts(x)
    fx = f(x)
    surrogate = fx
    if correct:
        surrogate = fx + fx.detach() * parts.score_function
    (g,) = torch.autograd.grad(surrogate.mean(), lam)
    return g.item(), x


def test_score_parts_give_unbiased_gradients():
    # E[x] = 1 / (lam + c) under the target, so d/dlam E[x] = -1 / (lam + c)^2.
    torch.manual_seed(2)
    lam = torch.tensor(1.5, requires_grad=True)
    c = torch.tensor(1.0)
    d = _exponential_rejector(lam, c)
    n = 40000
    truth = -1 / (1.5 + 1.0) ** 2
    # per-sample gradient terms, to get the standard error of the estimate
    x = d.rsample((n,))
    parts = d.score_parts(x)
    per_sample = []
    for i in range(0, n, 10000):
        xi, si = x[i : i + 10000], parts.score_function[i : i + 10000]
        jac = torch.autograd.grad((xi + xi.detach() * si).sum(), lam, retain_graph=True)[0]
        per_sample.append(jac)
    estimate = torch.stack(per_sample).sum().item() / n
    # pathwise term dx/dlam = -x / lam, score term x * (-c dx/dlam - dlogZ/dlam)
    xd = x.detach().double()
    terms = -xd / 1.5 + xd * (c.item() * xd / 1.5 - (1 / 1.5 - 1 / 2.5))
    se = terms.std().item() / math.sqrt(n)
    assert abs(terms.mean().item() - estimate) < 1e-4
    assert abs(estimate - truth) < 4.5 * se
    # Without the correction the pathwise estimate is biased: -1 / (lam (lam + c)).
    biased, _ = _surrogate_gradient(d, lambda x: x, n, lam, correct=False)
    assert abs(biased - truth) > 10 * se
    assert abs(biased - (-1 / (1.5 * 2.5))) < 4.5 * (xd / 1.5).std().item() / math.sqrt(n)


def test_score_parts_structure():
    lam = torch.tensor(2.0)
    d = _exponential_rejector(lam, torch.tensor(1.0))
    x = torch.tensor([0.5, 1.5])
    parts = d.score_parts(x)
    assert torch.allclose(parts.log_prob, d.log_prob(x))
    assert torch.allclose(parts.entropy_term, d.log_prob(x))
    assert torch.allclose(parts.score_function, -x - (torch.log(lam) - torch.log(lam + 1)))
    # a non-reparameterized proposal: the whole log-density is the score
    d = Rejector(dist.Poisson(torch.tensor(3.0)), lambda x: -x, torch.tensor(-1.0))
    assert not d.has_rsample
    parts = d.score_parts(torch.tensor(2.0))
    assert torch.allclose(parts.score_function, d.log_prob(torch.tensor(2.0)))
    assert parts.entropy_term == 0


def test_event_dims_and_bad_input():
    torch.manual_seed(4)
    base = dist.Normal(torch.zeros(2, 3), 1.0).to_event(1)
    # accept vectors whose first coordinate is positive: probability 1/2
    d = Rejector(base, lambda x: torch.where(x[..., 0] > 0, 0.0, -float("inf")), math.log(0.5))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    s = d.sample((50,))
    assert s.shape == (50, 2, 3) and (s[..., 0] > 0).all()
    assert d.log_prob(s).shape == (50, 2)
    with pytest.raises(TypeError, match="log_prob_accept"):
        Rejector(base, 0.5, 0.0)
    with pytest.raises(TypeError, match="propose"):
        Rejector(lambda: 1.0, lambda x: x, 0.0)
