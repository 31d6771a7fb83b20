"""Count and ordinal families: normalization by enumeration, closed forms, sample
frequencies, shapes and validation."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

import ember.distributions as dist
from ember.distributions.testing.gof import multinomial_goodness_of_fit

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def test_ordered_logistic_probs_closed_form_and_samples():
    cut = t([-1.0, 0.5, 2.0])
    pred = t([0.3, -0.7])
    d = dist.OrderedLogistic(pred, cut)
    assert d.batch_shape == (2,) and d.event_shape == ()
    for b in range(2):
        cdf = [1 / (1 + math.exp(-(c - float(pred[b])))) for c in cut.tolist()] + [1.0]
        expected = np.diff([0.0] + cdf)
        np.testing.assert_allclose(d.probs[b].numpy(), expected, rtol=1e-12)
        lp = d.log_prob(torch.arange(4.0, dtype=D).unsqueeze(-1).expand(4, 2))[:, b]
        np.testing.assert_allclose(lp.exp().numpy(), expected, rtol=1e-12)
    torch.manual_seed(0)
    x = d.sample((20000,))
    for b in range(2):
        counts = torch.bincount(x[:, b].long(), minlength=4).double()
        assert multinomial_goodness_of_fit(d.probs[b], counts) > 1e-3
    e = d.expand((3, 2))
    assert type(e) is dist.OrderedLogistic and e.batch_shape == (3, 2)
    assert e.cutpoints.shape == (3, 2, 3) and e.predictor.shape == (3, 2)
    assert torch.equal(e.probs[1], d.probs)


def test_ordered_logistic_validation():
    with pytest.raises(ValueError, match="cutpoints"):
        dist.OrderedLogistic(t([0.0]), t([1.0, 0.0]), validate_args=True)
    with pytest.raises(TypeError):
        dist.OrderedLogistic(0.0, t([0.0, 1.0]))


@pytest.mark.parametrize("n", [0.0, 3.0, 7.0])
def test_extended_binomial_matches_binomial_inside_and_is_zero_outside(n):
    p = 0.3
    d = dist.ExtendedBinomial(t(n), probs=t(p))
    k = torch.arange(-2.0, n + 3, dtype=D)
    lp = d.log_prob(k)
    inside = (k >= 0) & (k <= n)
    ref = scipy.stats.binom(n, p).logpmf(k[inside].numpy())
    np.testing.assert_allclose(lp[inside].numpy(), ref, rtol=1e-10)
    assert (lp[~inside] == -math.inf).all()
    assert float(lp.exp().sum()) == pytest.approx(1.0)


def test_extended_binomial_negative_count_has_no_mass():
    d = dist.ExtendedBinomial(t([-2.0, 2.0]), probs=t(0.5))
    lp = d.log_prob(t([[0.0, 0.0], [1.0, 1.0]]))
    assert (lp[:, 0] == -math.inf).all()
    assert torch.allclose(lp[:, 1].exp(), t([0.25, 0.5]))


@pytest.mark.parametrize("n", [0.0, 4.0, 9.0])
def test_extended_beta_binomial_matches_scipy(n):
    a, b = 2.0, 5.0
    d = dist.ExtendedBetaBinomial(t(a), t(b), total_count=t(n))
    k = torch.arange(-2.0, n + 3, dtype=D)
    lp = d.log_prob(k)
    inside = (k >= 0) & (k <= n)
    ref = scipy.stats.betabinom(n, a, b).logpmf(k[inside].numpy())
    np.testing.assert_allclose(lp[inside].numpy(), ref, rtol=1e-10)
    assert (lp[~inside] == -math.inf).all()
    torch.manual_seed(0)
    x = d.sample((20000,))
    counts = torch.bincount(x.long(), minlength=int(n) + 1).double()
    assert multinomial_goodness_of_fit(lp[inside].exp(), counts) > 1e-3


def test_extended_families_accept_integer_support_values():
    d = dist.ExtendedBinomial(t(3.0), probs=t(0.5), validate_args=True)
    assert d.log_prob(t(-5.0)) == -math.inf
    with pytest.raises(ValueError):
        d.log_prob(t(0.5))
    with pytest.raises(ValueError):
        dist.ExtendedBinomial(t(2.5), probs=t(0.5), validate_args=True)


def lnnb_by_quadrature(total_count, logits, sigma, k):
    """The LNNB pmf at k by adaptive quadrature over the logit noise."""
    import scipy.integrate

    def integrand(e):
        lg = logits + sigma * e
        p = 1 / (1 + math.exp(-lg))
        return scipy.stats.norm.pdf(e) * scipy.stats.nbinom(total_count, 1 - p).pmf(k)

    return scipy.integrate.quad(integrand, -12, 12, limit=200)[0]


def test_log_normal_negative_binomial_against_quadrature_and_moments():
    r, logits, sigma = 4.0, -0.7, 0.4
    d = dist.LogNormalNegativeBinomial(t(r), t(logits), t(sigma), num_quad_points=16)
    k = torch.arange(0.0, 400.0, dtype=D)
    p = d.log_prob(k).exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-9)
    for kk in (0, 1, 3, 10):
        assert float(p[kk]) == pytest.approx(lnnb_by_quadrature(r, logits, sigma, kk), rel=1e-6)
    mean = float((p * k).sum())
    var = float((p * (k - mean) ** 2).sum())
    assert float(d.mean) == pytest.approx(mean, rel=1e-6)
    assert float(d.variance) == pytest.approx(var, rel=1e-5)


def test_log_normal_negative_binomial_samples_and_shapes():
    torch.manual_seed(0)
    d = dist.LogNormalNegativeBinomial(t(3.0), t([-0.5, 0.2]), t([0.3, 0.1]))
    n = 40000
    x = d.sample((n,))
    assert x.shape == (n, 2)
    z = (x.mean(0) - d.mean) / (d.variance / n).sqrt()
    assert (z.abs() < 4).all()
    for b in range(2):
        k = torch.arange(0.0, 13.0, dtype=D)
        probs = d.log_prob(k.unsqueeze(-1).expand(13, 2))[:, b].exp()
        counts = torch.bincount(x[:, b].long().clamp(max=13), minlength=14)[:13].double()
        probs = probs / probs.sum()
        assert multinomial_goodness_of_fit(probs, counts) > 1e-3
    e = d.expand((4, 2))
    assert e.batch_shape == (4, 2) and e.log_prob(torch.ones(4, 2, dtype=D)).shape == (4, 2)
    with pytest.raises(ValueError, match="num_quad_points"):
        dist.LogNormalNegativeBinomial(t(3.0), t(0.0), t(0.1), num_quad_points=0)


@pytest.mark.parametrize("use_logits", [False, True])
def test_zero_inflated_poisson_closed_form(use_logits):
    rate, gate = 2.5, 0.3
    kw = {"gate_logits": t(math.log(gate / (1 - gate)))} if use_logits else {"gate": t(gate)}
    d = dist.ZeroInflatedPoisson(t(rate), **kw)
    k = torch.arange(0.0, 60.0, dtype=D)
    ref = (1 - gate) * scipy.stats.poisson(rate).pmf(k.numpy())
    ref[0] += gate
    np.testing.assert_allclose(d.log_prob(k).exp().numpy(), ref, rtol=1e-10)
    mean = float((k * d.log_prob(k).exp()).sum())
    var = float(((k - mean) ** 2 * d.log_prob(k).exp()).sum())
    assert float(d.mean) == pytest.approx(mean)
    assert float(d.variance) == pytest.approx(var)


def test_zero_inflated_negative_binomial_samples_and_shapes():
    torch.manual_seed(1)
    d = dist.ZeroInflatedNegativeBinomial(t(3.0), logits=t(0.2), gate=t([0.1, 0.6]))
    assert d.batch_shape == (2,)
    n = 20000
    x = d.sample((n,))
    for b in range(2):
        k = torch.arange(0.0, 15.0, dtype=D)
        probs = d.log_prob(k.unsqueeze(-1).expand(15, 2))[:, b].exp()
        counts = torch.bincount(x[:, b].long().clamp(max=15), minlength=16)[:15].double()
        assert multinomial_goodness_of_fit(probs / probs.sum(), counts) > 1e-3
    e = d.expand((3, 2))
    assert type(e) is dist.ZeroInflatedNegativeBinomial and e.batch_shape == (3, 2)
    assert torch.allclose(e.log_prob(torch.zeros(3, 2, dtype=D))[0], d.log_prob(t([0.0, 0.0])))
    assert e.to_event(1).log_prob(torch.zeros(3, 2, dtype=D)).shape == (3,)
    m = d.mask(torch.tensor([False, True]))
    assert m.log_prob(t([1.0, 1.0]))[0] == 0


def test_zero_inflated_generic_base_and_validation():
    base = dist.Geometric(probs=t(0.4))
    d = dist.ZeroInflatedDistribution(base, gate=t(0.2))
    k = torch.arange(0.0, 80.0, dtype=D)
    assert float(d.log_prob(k).exp().sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="gate"):
        dist.ZeroInflatedDistribution(base)
    with pytest.raises(ValueError, match="gate"):
        dist.ZeroInflatedDistribution(base, gate=t(0.2), gate_logits=t(0.0))
    with pytest.raises(ValueError):
        dist.ZeroInflatedPoisson(t(1.0), gate=t(1.5), validate_args=True)
