"""Delta: shapes, log_prob, reparameterized sampling, enumeration and KL rules."""

import pytest
import torch

import ember.distributions as dist
from ember.distributions import Delta, kl_divergence


def test_shapes_and_log_prob():
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    d = Delta(v, log_density=torch.tensor([0.5, -1.0, 2.0]), event_dim=1)
    assert d.batch_shape == (3,) and d.event_shape == (2,)
    assert d.sample((4,)).shape == (4, 3, 2)
    x = v.clone()
    x[1, 0] = 0.0  # second event differs in one coordinate
    lp = d.log_prob(x)
    assert lp[0].item() == 0.5 and lp[2].item() == 2.0
    assert lp[1].item() == -float("inf")
    # sample dims broadcast in log_prob
    assert d.log_prob(v.expand(5, 3, 2)).shape == (5, 3)


def test_scalar_event_dim_zero():
    d = Delta(torch.tensor([1.0, 2.0]))
    assert d.batch_shape == (2,) and d.event_shape == ()
    assert torch.equal(d.log_prob(torch.tensor([1.0, 0.0])), torch.tensor([0.0, -float("inf")]))
    assert torch.equal(d.mean, torch.tensor([1.0, 2.0]))
    assert torch.equal(d.variance, torch.zeros(2))


def test_rsample_is_differentiable_in_v():
    v = torch.tensor([1.0, 2.0], requires_grad=True)
    d = Delta(v)
    assert d.has_rsample
    x = d((3,))  # __call__ uses rsample
    (x * torch.tensor([1.0, 10.0])).sum().backward()
    assert torch.equal(v.grad, torch.tensor([3.0, 30.0]))


def test_log_density_number_and_broadcast():
    d = Delta(torch.zeros(2, 3), log_density=1.5, event_dim=1)
    assert torch.equal(d.log_prob(torch.zeros(2, 3)), torch.full((2,), 1.5))
    d = Delta(torch.zeros(2, 3), log_density=torch.tensor(0.25), event_dim=1)
    assert d.log_density.shape == (2,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="event_dim"):
        Delta(torch.zeros(3), event_dim=2)
    with pytest.raises(ValueError, match="event_dim"):
        Delta(torch.zeros(3), event_dim=-1)
    with pytest.raises(ValueError, match="log_density"):
        Delta(torch.zeros(2, 3), log_density=torch.zeros(3), event_dim=1)
    with pytest.raises(ValueError, match="v"):
        Delta(torch.tensor([float("nan")]), validate_args=True)


def test_expand_and_enumerate_support():
    d = Delta(torch.tensor([[1.0, 2.0]]), log_density=torch.tensor([0.5]), event_dim=1)
    e = d.expand((4, 1))
    assert isinstance(e, Delta)
    assert e.batch_shape == (4, 1) and e.event_shape == (2,)
    assert torch.equal(e.log_prob(torch.tensor([1.0, 2.0])), torch.full((4, 1), 0.5))
    support = d.enumerate_support()
    assert support.shape == (1, 1, 2)
    assert torch.equal(d.log_prob(support[0]), torch.tensor([0.5]))


def test_infer_shapes():
    assert Delta.infer_shapes(v=(4, 3), event_dim=1) == ((4,), (3,))
    assert Delta.infer_shapes(v=(4, 3), log_density=(5, 1, 4), event_dim=1) == ((5, 1, 4), (3,))


def test_kl_delta_normal_closed_form():
    v = torch.tensor([0.3, -1.2])
    q = dist.Normal(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]))
    kl = kl_divergence(Delta(v), q)
    expected = (
        0.5 * ((v - q.loc) / q.scale) ** 2
        + q.scale.log()
        + 0.5 * torch.log(torch.tensor(2 * torch.pi))
    )
    assert torch.allclose(kl, expected)
    # log_density is the point mass's own log-density: KL = log_density - log q(v)
    kl_ld = kl_divergence(Delta(v, log_density=torch.tensor([1.0, 2.0])), q)
    assert torch.allclose(kl_ld, expected + torch.tensor([1.0, 2.0]))


def test_kl_delta_delta():
    p = Delta(torch.tensor([1.0, 2.0]), log_density=torch.tensor([0.5, 0.5]))
    q = Delta(torch.tensor([1.0, 3.0]), log_density=torch.tensor([0.25, 0.0]))
    kl = kl_divergence(p, q)
    assert kl[0].item() == 0.25 and kl[1].item() == float("inf")


def test_kl_independent_and_event_dims():
    v = torch.randn(2, 3)
    q = dist.Normal(torch.zeros(2, 3), 1.0)
    kl = kl_divergence(Delta(v).to_event(1), q.to_event(1))
    assert torch.allclose(kl, -q.log_prob(v).sum(-1))
    kl = kl_divergence(Delta(v, event_dim=1), q.to_event(1))
    assert torch.allclose(kl, -q.log_prob(v).sum(-1))
    with pytest.raises(ValueError, match="event shapes"):
        kl_divergence(Delta(v, event_dim=1), q)


def test_kl_masked_and_expanded():
    v = torch.tensor([0.5, 1.0, 1.5])
    q = dist.Normal(0.0, 1.0)
    mask = torch.tensor([True, False, True])
    kl = kl_divergence(Delta(v), q.expand((3,)).mask(mask))
    expected = torch.where(mask, -q.log_prob(v), torch.zeros(3))
    assert torch.allclose(kl, expected)
    assert torch.equal(kl_divergence(Delta(v), q.expand((3,)).mask(False)), torch.zeros(3))
    expanded = dist.ExpandedDistribution(dist.Normal(torch.zeros(1), 1.0), (3,))
    kl = kl_divergence(Delta(v), expanded)
    assert torch.allclose(kl, -q.log_prob(v))


def test_kl_independent_delta_against_mvn():
    torch.manual_seed(0)
    v = torch.randn(4, 3)
    cov = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    q = dist.MultivariateNormal(torch.tensor([0.5, -1.0, 0.0]), cov)
    # oracle: KL(delta_v || q) = log_density - log q(v), written out with the density formula
    prec = torch.linalg.inv(cov)
    diff = v - q.loc
    log_q = -0.5 * (diff @ prec * diff).sum(-1) - 0.5 * torch.logdet(2 * torch.pi * cov)
    log_density = torch.tensor([0.0, 0.5, 1.0, -2.0])
    p = Delta(v, log_density=log_density.unsqueeze(-1).expand(4, 3) / 3).to_event(1)
    assert torch.allclose(kl_divergence(p, q), log_density - log_q, atol=1e-5)
    with pytest.raises(ValueError, match="event shapes differ"):
        kl_divergence(Delta(torch.randn(2)).to_event(1), q)
