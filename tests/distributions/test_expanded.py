"""ExpandedDistribution: new leading and grown interstitial batch dims."""

import pytest
import torch

import ember.distributions as dist
from ember.distributions import ExpandedDistribution


def test_shapes_and_log_prob():
    torch.manual_seed(0)
    base = dist.Normal(torch.randn(3, 1), torch.rand(3, 1) + 0.5)
    d = ExpandedDistribution(base, (2, 3, 4))
    x = d.sample((5,))
    assert x.shape == (5, 2, 3, 4)
    assert torch.allclose(d.log_prob(x), base.log_prob(x))
    assert d.log_prob(torch.zeros(3, 1)).shape == (2, 3, 4)


def test_interstitial_samples_are_independent_and_distributed_right():
    torch.manual_seed(1)
    loc = torch.tensor([[-5.0], [5.0]])
    d = ExpandedDistribution(dist.Normal(loc, 1.0), (2, 1000))
    x = d.sample()
    # each row keeps its own location ...
    assert (x[0].mean() + 5).abs() < 5 / 1000**0.5 and (x[1].mean() - 5).abs() < 5 / 1000**0.5
    # ... and the copies along the grown dim are distinct draws
    assert x[0].unique().numel() == 1000
    assert (x[0].std() - 1).abs() < 5 * (0.5 / 1000) ** 0.5


def test_rsample_gradients_flow():
    loc = torch.zeros(3, 1, requires_grad=True)
    d = ExpandedDistribution(dist.Normal(loc, 1.0), (2, 3, 4))
    d.rsample().sum().backward()
    assert torch.equal(loc.grad, torch.full((3, 1), 8.0))


def test_expand_of_expanded_and_expand_by():
    base = dist.Normal(torch.zeros(3, 1), 1.0)
    d = base.expand((3, 4))
    assert isinstance(d, dist.Normal)  # torch's own expand keeps the class
    e = ExpandedDistribution(base, (3, 4)).expand((2, 3, 4))
    assert isinstance(e, ExpandedDistribution) and e.base_dist is base
    assert e.expand((2, 3, 4)) is e
    assert e.expand_by((5,)).batch_shape == (5, 2, 3, 4)
    assert e.expand_by(()) is e


def test_bad_expansions_raise_with_shapes():
    base = dist.Normal(torch.zeros(3, 2), 1.0)
    with pytest.raises(ValueError, match=r"\(3, 2\) to \(3, 4\).*dim -1 has size 2"):
        ExpandedDistribution(base, (3, 4))
    with pytest.raises(ValueError, match="shorter"):
        ExpandedDistribution(base, (2,))


def test_enumerate_support_score_parts_entropy_moments():
    base = dist.Bernoulli(torch.tensor([0.2, 0.7]))
    d = ExpandedDistribution(base, (3, 2))
    assert d.has_enumerate_support and not d.has_rsample
    assert d.enumerate_support(expand=False).shape == (2, 1, 1)
    assert d.enumerate_support().shape == (2, 3, 2)
    parts = d.score_parts(torch.ones(3, 2))
    assert parts.score_function.shape == (3, 2) and parts.entropy_term == 0
    assert torch.allclose(d.entropy(), base.entropy().expand(3, 2))
    assert torch.equal(d.mean, base.mean.expand(3, 2))
    assert torch.equal(d.variance, base.variance.expand(3, 2))
    assert d.support is base.support


def test_event_dims_are_kept():
    base = dist.MultivariateNormal(torch.zeros(1, 3), torch.eye(3))
    d = ExpandedDistribution(base, (4, 2))
    assert d.event_shape == (3,)
    x = d.sample((5,))
    assert x.shape == (5, 4, 2, 3)
    assert torch.allclose(d.log_prob(x), base.log_prob(x))


def test_expanded_categorical_support_values_and_log_prob():
    torch.manual_seed(2)
    base = dist.Categorical(logits=torch.randn(3, 4))
    d = ExpandedDistribution(base, (2, 3))
    for expand in (False, True):
        values = d.enumerate_support(expand=expand)
        assert torch.equal(d.log_prob(values), d.log_prob(values.clone()))
        assert d.log_prob(values).shape == (4, 2, 3)


def test_has_rsample_can_be_forced_off():
    d = ExpandedDistribution(dist.Normal(torch.zeros(2), 1.0), (3, 2)).has_rsample_(False)
    assert not d.has_rsample
    loc = torch.zeros(2, requires_grad=True)
    m = dist.Normal(loc, 1.0).mask(torch.tensor([True, False])).has_rsample_(False)
    assert not m.has_rsample and not m().requires_grad
    assert m.score_parts(torch.zeros(2)).entropy_term == 0
