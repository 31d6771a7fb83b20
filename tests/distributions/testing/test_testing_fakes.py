"""The fakes behave like their parents, with the one capability hidden."""

import pytest
import torch

import ember
import ember.distributions as dist
from ember.distributions.testing import fakes

CASES = [
    (fakes.NonreparameterizedBeta, dist.Beta, (torch.tensor([0.5, 2.0]), torch.tensor(3.0))),
    (fakes.NonreparameterizedDirichlet, dist.Dirichlet, (torch.tensor([[0.5, 1.0, 2.0]]),)),
    (fakes.NonreparameterizedGamma, dist.Gamma, (torch.tensor([0.5, 2.0]), torch.tensor(3.0))),
    (fakes.NonreparameterizedNormal, dist.Normal, (torch.tensor([0.5, -2.0]), torch.tensor(3.0))),
]


@pytest.mark.parametrize("fake, parent, args", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_nonreparameterized_fakes(fake, parent, args):
    d, p = fake(*args), parent(*args)
    assert isinstance(d, parent) and not d.has_rsample and p.has_rsample
    assert d.batch_shape == p.batch_shape and d.event_shape == p.event_shape
    torch.manual_seed(0)
    x = p.sample((5,))
    assert torch.equal(d.log_prob(x), p.log_prob(x))
    assert torch.allclose(d.mean, p.mean) and torch.allclose(d.variance, p.variance)
    torch.manual_seed(1)
    a = d.sample((3,))
    torch.manual_seed(1)
    b = p.sample((3,))
    assert torch.equal(a, b)  # the same sampler
    big = d.expand((4,) + d.batch_shape)
    assert type(big) is fake and not big.has_rsample
    assert big.batch_shape == (4,) + p.batch_shape
    assert not d.to_event(1).has_rsample


def test_nonreparameterized_normal_gives_score_function_gradients():
    # d/dloc E_q[x^2] = 2 loc: the score-function estimate is unbiased (tolerance from its SE)
    loc = torch.tensor(0.7, requires_grad=True)
    torch.manual_seed(0)
    q = fakes.NonreparameterizedNormal(loc, 1.0)
    x = q.sample((200000,))
    assert not x.requires_grad
    parts = q.score_parts(x)
    surrogate = (x**2 * parts.score_function).mean()
    (grad,) = torch.autograd.grad(surrogate, [loc])
    per_sample = (x**2 * (x - loc.detach())).std() / 200000**0.5
    assert abs(grad.item() - 1.4) < 4 * per_sample.item()


def test_nonenumerable_fakes():
    probs = torch.tensor([0.2, 0.3, 0.5])
    d = fakes.NonenumerableCategorical(probs)
    assert not d.has_enumerate_support and dist.Categorical(probs).has_enumerate_support
    x = torch.tensor([0, 2])
    assert torch.equal(d.log_prob(x), dist.Categorical(probs).log_prob(x))
    b = fakes.NonenumerableBernoulli(torch.tensor(0.3)).expand((2,))
    assert type(b) is fakes.NonenumerableBernoulli and not b.has_enumerate_support

    @ember.infer.config_enumerate
    def model():
        ember.sample("z", fakes.NonenumerableCategorical(probs))

    trace = ember.poutine.trace(ember.poutine.enum(model, first_available_dim=-1)).get_trace()
    assert trace.nodes["z"]["value"].shape == ()  # sampled, not enumerated
