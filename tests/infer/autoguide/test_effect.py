"""Messenger guides (AutoNormalMessenger & co.): exact densities at the exact posterior,
parameter shapes with plates, subsampling and amortization, customization."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.distributions import constraints
from ember.infer import SVI, Trace_ELBO
from ember.infer.autoguide import (
    AutoHierarchicalNormalMessenger,
    AutoNormalMessenger,
    AutoRegressiveMessenger,
)
from ember.optim import ClippedAdam

MESSENGERS = [AutoNormalMessenger, AutoHierarchicalNormalMessenger, AutoRegressiveMessenger]
DATA = torch.tensor([0.4, -1.2, 2.0])


@pytest.fixture(autouse=True)
def fresh_store():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


def conjugate_model(data):
    loc = ember.sample("loc", dist.Normal(0.0, 1.0))
    with ember.plate("data", len(data)):
        ember.sample("obs", dist.Normal(loc, 1.0), obs=data)
    return loc


def log_evidence(data):
    n = len(data)
    cov = torch.eye(n) + torch.ones(n, n)
    return torch.distributions.MultivariateNormal(torch.zeros(n), cov).log_prob(data)


@pytest.mark.parametrize("guide_class", MESSENGERS)
def test_at_the_exact_posterior_the_elbo_is_the_evidence(guide_class):
    """Posterior N(sum x / (n + 1), 1 / (n + 1)): with the guide set to it, every draw
    gives log p(x, z) - log q(z) = log p(x)."""
    guide = guide_class(conjugate_model)
    guide(DATA)
    n = len(DATA)
    mean, sd = DATA.sum() / (n + 1), (n + 1) ** -0.5
    guide.locs.loc = mean
    guide.scales.loc = torch.tensor(sd)
    if guide_class is AutoHierarchicalNormalMessenger:
        guide.weights.loc = torch.tensor(1.0)  # the prior mean is 0: the weight is inert
    loss = Trace_ELBO(num_particles=50, vectorize_particles=True).loss(conjugate_model, guide, DATA)
    assert loss == pytest.approx(-log_evidence(DATA).item(), abs=1e-5)


@pytest.mark.parametrize("guide_class", MESSENGERS)
def test_guide_traces_pair_priors_and_posteriors(guide_class):
    guide = guide_class(conjugate_model)
    samples = guide(DATA)
    assert set(samples) == {"loc", "obs"}
    assert torch.equal(samples["obs"], DATA)
    model_trace, guide_trace = guide.get_traces()
    assert list(guide_trace.stochastic_nodes) == ["loc"]
    assert isinstance(model_trace.nodes["loc"]["fn"], dist.Normal)
    assert model_trace.nodes["obs"]["is_observed"]
    assert guide.upstream_value("loc") is samples["loc"]


def test_hierarchical_mean_follows_the_upstream_values():
    def model():
        mu = ember.sample("mu", dist.Normal(0.0, 10.0))
        ember.sample("x", dist.Normal(mu, 1.0))

    guide = AutoHierarchicalNormalMessenger(model, init_scale=1e-6)
    guide()
    guide.locs.x = torch.tensor(0.5)
    guide.weights.x = torch.tensor(2.0)
    values = guide()
    # x's mean is loc + weight * mu
    assert values["x"].item() == pytest.approx(0.5 + 2.0 * values["mu"].item(), abs=1e-4)
    median = guide.median()
    assert median["x"].item() == pytest.approx(0.5 + 2.0 * median["mu"].item(), abs=1e-5)


def test_regressive_posterior_is_an_affine_map_of_the_prior():
    def model():
        ember.sample("s", dist.LogNormal(1.0, 2.0))

    guide = AutoRegressiveMessenger(model)
    guide()
    guide.locs.s = torch.tensor(0.3)
    guide.scales.s = torch.tensor(0.5)
    trace = poutine.trace(guide).get_trace()
    s = trace.nodes["s"]["value"]
    # log s = 0.3 + 0.5 * z with z ~ N(1, 2): log s ~ N(0.8, 1), so s ~ LogNormal(0.8, 1)
    expected = dist.LogNormal(0.8, 1.0).log_prob(s)
    assert torch.allclose(trace.nodes["s"]["fn"].log_prob(s), expected, atol=1e-5)


def test_median_of_the_normal_messenger():
    def model():
        ember.sample("p", dist.Beta(2.0, 2.0))
        ember.sample("s", dist.LogNormal(0.0, 1.0).expand([2]).to_event(1))

    guide = AutoNormalMessenger(model)
    guide()
    guide.locs.p = torch.tensor(-1.0)
    guide.locs.s = torch.tensor([0.0, 1.0])
    median = guide.median()
    assert torch.allclose(median["p"], torch.sigmoid(torch.tensor(-1.0)))
    assert torch.allclose(median["s"], torch.tensor([1.0, math.e]))
    assert not median["p"].requires_grad


def subsampled_model(x, y=None, batch_size=None):
    with ember.plate("batch", len(x), subsample_size=batch_size):
        batch_x = ember.subsample(x, event_dim=0)
        batch_y = ember.subsample(y, event_dim=0) if y is not None else None
        sigma = ember.sample("sigma", dist.LogNormal(0.0, 1.0))
        return ember.sample("obs", dist.Normal(batch_x, sigma), obs=batch_y)


@pytest.mark.parametrize("guide_class", MESSENGERS)
def test_local_parameters_are_full_size_or_amortized(guide_class):
    x = torch.linspace(0.0, 1.0, 12)
    y = x + 0.1
    local = guide_class(subsampled_model)
    local(x, y, 5)
    assert local.locs.sigma.shape == (12,)
    svi = SVI(subsampled_model, local, ClippedAdam({"lr": 0.01}), Trace_ELBO())
    for _ in range(3):
        assert math.isfinite(svi.step(x, y, 5))
    # both guides name their parameters "locs.sigma": a second guide in the same store
    # with another shape is refused
    with pytest.raises(ValueError, match="'locs.sigma'.*shape"):
        guide_class(subsampled_model, amortized_plates=("batch",))(x, y, 5)
    ember.clear_param_store()
    amortized = guide_class(subsampled_model, amortized_plates=("batch",))
    amortized(x, y, 5)
    assert amortized.locs.sigma.shape == ()


def test_a_guide_built_inside_particle_plates_has_no_particle_dims():
    guide = AutoNormalMessenger(conjugate_model)
    with ember.plate("particles", 7, dim=-2):
        values = guide(DATA)
    assert values["loc"].shape == (7, 1)
    assert guide.locs.loc.shape == ()


def test_customized_site():
    class Custom(AutoNormalMessenger):
        def get_posterior(self, name, prior):
            if name == "loc":
                shift = ember.param("shift", torch.tensor(0.25))
                return dist.Normal(prior.loc + shift, 0.1)
            return super().get_posterior(name, prior)

    guide = Custom(conjugate_model)
    trace = poutine.trace(guide).get_trace(DATA)
    assert trace.nodes["shift"]["type"] == "param"
    assert torch.allclose(trace.nodes["loc"]["fn"].loc, torch.tensor(0.25))


@pytest.mark.slow
@pytest.mark.parametrize("guide_class", MESSENGERS)
def test_svi_recovers_the_conjugate_posterior(guide_class):
    ember.set_rng_seed(0)
    guide = guide_class(conjugate_model)
    steps = 800
    optim = ClippedAdam({"lr": 0.05, "lrd": 0.1 ** (1 / steps)})
    svi = SVI(conjugate_model, guide, optim, Trace_ELBO(num_particles=16, vectorize_particles=True))
    for _ in range(steps):
        svi.step(DATA)
    n = len(DATA)
    mean, sd = DATA.sum().item() / (n + 1), (n + 1) ** -0.5
    with torch.no_grad(), ember.plate("particles", 20000, dim=-2):
        draws = poutine.trace(guide).get_trace(DATA).nodes["loc"]["value"]
    # 20000 draws: the standard error of the mean is sd / 141
    assert draws.mean().item() == pytest.approx(mean, abs=0.05)
    assert draws.std().item() == pytest.approx(sd, rel=0.05)


def test_discrete_and_bad_init_scale_errors():
    def model():
        ember.sample("k", dist.Bernoulli(0.5))

    with pytest.raises(ValueError, match="discrete sample site 'k'"):
        AutoNormalMessenger(model)()
    with pytest.raises(ValueError, match="init_scale"):
        AutoNormalMessenger(model, init_scale=0.0)
    assert constraints.positive.check(torch.tensor(1.0))
