"""The usage examples of the TorchDistributionMixin and wrapper docs, run with
``import ember as pyro`` and ``import ember.distributions as dist``.

Each test is the example as written, followed by checks of what it claims.
"""

import math

import pytest
import torch
from torch.distributions import constraints

import ember as pyro
import ember.distributions as dist
from ember.distributions.torch_distribution import (
    ExpandedDistribution,
    MaskedDistribution,
    TorchDistribution,
    TorchDistributionMixin,
)


def test_imports():
    from ember.distributions import (  # noqa: F401
        Bernoulli,
        Beta,
        Binomial,
        Categorical,
        Cauchy,
        Chi2,
        ContinuousBernoulli,
        Dirichlet,
        Exponential,
        FisherSnedecor,
        Gamma,
        Geometric,
        Gumbel,
        HalfCauchy,
        HalfNormal,
        Independent,
        Kumaraswamy,
        Laplace,
        LKJCholesky,
        LogisticNormal,
        LogNormal,
        LowRankMultivariateNormal,
        MixtureSameFamily,
        Multinomial,
        MultivariateNormal,
        NegativeBinomial,
        Normal,
        OneHotCategorical,
        Pareto,
        Poisson,
        RelaxedBernoulli,
        RelaxedOneHotCategorical,
        StudentT,
        TransformedDistribution,
        Uniform,
        VonMises,
        Weibull,
        Wishart,
    )

    assert issubclass(Normal, TorchDistributionMixin)
    assert issubclass(TorchDistribution, torch.distributions.Distribution)
    assert issubclass(MaskedDistribution, TorchDistribution)
    assert issubclass(ExpandedDistribution, TorchDistribution)


def test_creating_a_new_distribution():
    class MyDistribution(TorchDistribution):
        arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
        support = constraints.real
        has_rsample = True

        def __init__(self, loc, scale, validate_args=None):
            self.loc, self.scale = torch.broadcast_tensors(loc, scale)
            super().__init__(self.loc.shape, validate_args=validate_args)

        def rsample(self, sample_shape=torch.Size()):  # noqa: B008 (as in the docs)
            shape = self._extended_shape(sample_shape)
            eps = torch.randn(shape, device=self.loc.device)
            return self.loc + self.scale * eps

        def log_prob(self, value):
            return -((value - self.loc) / self.scale).pow(2) / 2 - self.scale.log()

    d = MyDistribution(torch.zeros(3), torch.ones(3))
    x = d()
    assert x.shape == (3,)
    assert d.to_event(1).log_prob(x).shape == ()
    e = d.expand((2, 3))
    assert isinstance(e, ExpandedDistribution) and e.sample().shape == (2, 3)
    assert d.mask(torch.tensor([True, False, True])).log_prob(x)[1] == 0
    with pytest.raises(ValueError, match="scale"):
        MyDistribution(torch.zeros(3), -torch.ones(3), validate_args=True)


def test_to_event_for_multivariate_modeling(capsys):
    # Independent Normal over 5 dimensions
    d = dist.Normal(torch.zeros(5), torch.ones(5)).to_event(1)
    print(d.batch_shape)  # torch.Size([])
    print(d.event_shape)  # torch.Size([5])

    x = d.sample()
    print(d.log_prob(x).shape)  # torch.Size([])
    assert capsys.readouterr().out.split("\n")[:3] == [
        "torch.Size([])",
        "torch.Size([5])",
        "torch.Size([])",
    ]


@pytest.mark.skipif(not hasattr(pyro, "plate"), reason="ember.plate (the runtime) not built yet")
def test_masking_observations():
    data = torch.randn(100)
    mask = torch.rand(100) > 0.3  # 70% observed

    with pyro.plate("data", 100):
        pyro.sample("obs", dist.Normal(0.0, 1.0).mask(mask), obs=data)

    # traced, the masked site contributes only the observed points' log-density
    from ember import poutine

    def model():
        with pyro.plate("data", 100):
            pyro.sample("obs", dist.Normal(0.0, 1.0).mask(mask), obs=data)

    tr = poutine.trace(model).get_trace()
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(data)[mask].sum()
    assert torch.allclose(tr.log_prob_sum(), expected)


def test_callable_interface(capsys):
    d = dist.Normal(0.0, 1.0)
    # Calling the distribution samples with reparameterization
    x = d(torch.Size([10]))
    print(x.shape)  # torch.Size([10])
    print(x.requires_grad)  # True (reparameterized)
    assert x.shape == (10,)
    # a reparameterized draw is differentiable in the parameters
    loc = torch.tensor(0.0, requires_grad=True)
    assert dist.Normal(loc, 1.0)(torch.Size([10])).requires_grad
    # a non-reparameterized distribution falls back to sample
    assert not dist.Bernoulli(torch.tensor(0.5, requires_grad=True))((3,)).requires_grad


def test_basic_distribution_usage():
    # Normal distribution with Pyro features
    normal = dist.Normal(torch.tensor(0.0), torch.tensor(1.0))
    x = normal()  # calls rsample (reparameterized)

    # Convert to event dimensions
    mvn_like = dist.Normal(torch.zeros(3), torch.ones(3)).to_event(1)
    print(mvn_like.batch_shape, mvn_like.event_shape)  # torch.Size([]) torch.Size([3])
    assert x.shape == ()
    assert (mvn_like.batch_shape, mvn_like.event_shape) == (torch.Size([]), torch.Size([3]))


def test_conjugate_bayesian_update():
    # Beta-Bernoulli conjugate update
    prior = dist.Beta(2.0, 5.0)
    likelihood = dist.Beta(10.0, 3.0)  # pseudo-observations
    posterior, log_norm = prior.conjugate_update(likelihood)
    assert isinstance(posterior, dist.Beta)
    assert torch.allclose(posterior.concentration1, torch.tensor(11.0))
    assert torch.allclose(posterior.concentration0, torch.tensor(7.0))
    x = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(
        prior.log_prob(x) + likelihood.log_prob(x), posterior.log_prob(x) + log_norm, atol=1e-5
    )


def test_efficient_binomial_for_large_populations():
    torch.manual_seed(0)
    old = dist.Binomial.approx_sample_thresh
    try:
        # Use Poisson approximation for large total_count
        dist.Binomial.approx_sample_thresh = 1e6
        binomial = dist.Binomial(total_count=1e8, probs=0.001)
        samples = binomial.sample(torch.Size([1000]))
    finally:
        dist.Binomial.approx_sample_thresh = old
    assert samples.shape == (1000,)
    mean, var = 1e5, 1e5 * 0.999
    assert abs(samples.mean().item() - mean) < 5 * math.sqrt(var / 1000)


def test_sparse_poisson_log_prob():
    # Efficient log_prob for sparse count data
    poisson = dist.Poisson(rate=torch.tensor(0.01), is_sparse=True)
    counts = torch.zeros(1000)
    counts[42] = 3.0
    log_p = poisson.log_prob(counts)
    expected = torch.full((1000,), -0.01)
    expected[42] = 3 * math.log(0.01) - 0.01 - math.log(6)
    assert torch.allclose(log_p, expected)


def test_abstract_distribution_example():
    param = torch.tensor(0.3)
    d = dist.Bernoulli(param)
    x = d()  # Draws a random sample.
    p = d.log_prob(x)  # Evaluates log probability of x.
    assert torch.allclose(p, torch.where(x == 1, param.log(), (1 - param).log()))


def test_to_event_docstring_example():
    d1 = dist.Normal(torch.zeros(2, 3, 4, 5), 1.0).to_event(2)
    assert [d1.batch_shape, d1.event_shape] == [torch.Size([2, 3]), torch.Size([4, 5])]
    d2 = d1.to_event(1)
    assert [d2.batch_shape, d2.event_shape] == [torch.Size([2]), torch.Size([3, 4, 5])]
    d3 = d1.to_event(2)
    assert [d3.batch_shape, d3.event_shape] == [torch.Size([]), torch.Size([2, 3, 4, 5])]


def test_shape_docs_example():
    d = dist.Dirichlet(torch.ones(2, 3))
    for sample_shape in [(), (4,), (5, 6)]:
        x = d.sample(sample_shape)
        assert x.shape == d.shape(sample_shape)
        log_p = d.log_prob(x)
        assert log_p.shape == sample_shape + d.batch_shape
