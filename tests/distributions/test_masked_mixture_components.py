"""MaskedMixture scores each value with both components, so components stop checking values."""

import pytest
import scipy.stats
import torch

import ember.distributions as dist


@pytest.mark.parametrize("batch_shape", [(), (7,), (5, 3)])
def test_components_score_values_outside_their_support(batch_shape):
    c0 = dist.Normal(1.0, 2.0).expand_by(batch_shape)
    c1 = dist.Exponential(2.0).expand_by(batch_shape)
    mask = torch.arange(max(1, torch.Size(batch_shape).numel())).reshape(batch_shape) % 2 == 0
    d = dist.MaskedMixture(mask, c0, c1)
    x = torch.full((4,) + tuple(batch_shape), -0.5)  # outside the Exponential's support
    expected0 = torch.tensor(scipy.stats.norm(1.0, 2.0).logpdf(-0.5), dtype=x.dtype)
    expected1 = torch.tensor(2.0 * 0.5 + torch.log(torch.tensor(2.0)).item(), dtype=x.dtype)
    # both components score it (the Exponential's formula log(rate) - rate * x)
    assert torch.allclose(c1.log_prob(x), expected1.expand_as(x))
    lp = d.log_prob(x)
    assert torch.allclose(lp, torch.where(mask, expected1, expected0).expand_as(x))


def test_multivariate_components():
    mask = torch.tensor([True, False, True])
    c0 = dist.Normal(torch.zeros(3, 2), 1.0).to_event(1)
    c1 = dist.Uniform(torch.zeros(3, 2), 1.0).to_event(1)
    d = dist.MaskedMixture(mask, c0, c1)
    x = torch.full((3, 2), 1.5)  # outside the uniform's support
    lp = d.log_prob(x)
    assert lp[1].item() == pytest.approx(2 * scipy.stats.norm.logpdf(1.5), rel=1e-6)
    assert lp.shape == (3,)
