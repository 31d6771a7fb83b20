"""EnergyDistance and TraceTailAdaptive_ELBO against exact values."""

import math
import warnings

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import SVI, EnergyDistance, TraceTailAdaptive_ELBO
from ember.optim import Adam

X0 = 0.7


def normal_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def exact_energy(m):
    """X ~ N(m, 1): E|X - x0| - 1/2 E|X - X'| (X - X' ~ N(0, 2), E|X - X'| = 2 / sqrt(pi))."""
    d = m - X0
    e_abs = math.sqrt(2.0 / math.pi) * math.exp(-0.5 * d * d) + d * (1.0 - 2.0 * normal_cdf(-d))
    return e_abs - 1.0 / math.sqrt(math.pi)


def model():
    loc = ember.sample("loc", dist.Normal(0.0, 10.0))
    ember.sample("x", dist.Normal(loc, 1.0), obs=torch.tensor(X0))


def make_guide(m):
    def guide():
        ember.sample("loc", dist.Delta(m))

    return guide


@pytest.mark.parametrize("prior_scale", [0.0, 0.5])
def test_energy_distance_value_and_gradient(prior_scale):
    ember.set_rng_seed(0)
    m = torch.tensor(0.2, requires_grad=True)
    loss_fn = EnergyDistance(num_particles=400, prior_scale=prior_scale)
    values, grads = [], []
    for _ in range(40):
        m.grad = None
        loss = loss_fn(model, make_guide(m))
        loss.backward()
        values.append(loss.item())
        grads.append(m.grad.item())
    values, grads = torch.tensor(values), torch.tensor(grads)
    prior = -prior_scale * dist.Normal(0.0, 10.0).log_prob(torch.tensor(0.2)).item()
    expected = exact_energy(0.2) + prior
    # d/dm E|X - x0| = 2 Phi(m - x0) - 1; d/dm of the prior term: prior_scale * m / 100
    expected_grad = 2.0 * normal_cdf(0.2 - X0) - 1.0 + prior_scale * 0.2 / 100.0
    se = values.std().item() / math.sqrt(len(values))
    assert abs(values.mean().item() - expected) < 4 * se, (values.mean(), expected, se)
    se = grads.std().item() / math.sqrt(len(grads))
    assert abs(grads.mean().item() - expected_grad) < 4 * se, (grads.mean(), expected_grad, se)


def test_energy_distance_fits_the_data_in_svi():
    # with a point guide the energy distance is minimized at the data (median = x0)
    ember.clear_param_store()
    ember.set_rng_seed(1)

    def guide():
        ember.sample("loc", dist.Delta(ember.param("m_fit", torch.tensor(-1.0))))

    svi = SVI(model, guide, Adam({"lr": 0.05}), EnergyDistance(num_particles=64))
    for _ in range(400):
        svi.step()
    assert abs(ember.param("m_fit").item() - X0) < 0.1


def test_energy_distance_arguments_and_requirements():
    with pytest.raises(ValueError, match="beta"):
        EnergyDistance(beta=2.0)
    with pytest.raises(ValueError, match="prior_scale"):
        EnergyDistance(prior_scale=-1.0)
    with pytest.raises(ValueError, match="num_particles >= 2"):
        EnergyDistance(num_particles=1)
    with pytest.raises(NotImplementedError, match="differentiable estimate"):
        EnergyDistance().loss(model, make_guide(torch.tensor(0.0)))
    with pytest.raises(ValueError, match="Found no observations"):
        no_data = lambda: ember.sample("loc", dist.Normal(0.0, 1.0))  # noqa: E731
        EnergyDistance()(no_data, make_guide(torch.tensor(0.0)))

    def nonreparam_guide():
        ember.sample("loc", dist.Normal(0.0, 1.0).has_rsample_(False))

    with pytest.raises(ValueError, match="fully reparametrized guides"):
        EnergyDistance()(model, nonreparam_guide)

    def bernoulli_model():
        p = ember.sample("loc", dist.Beta(2.0, 2.0))
        ember.sample("x", dist.Bernoulli(p), obs=torch.tensor(1.0))

    def beta_guide():
        ember.sample("loc", dist.Beta(3.0, 2.0))

    with pytest.raises(ValueError, match="reparametrized likelihoods"):
        EnergyDistance()(bernoulli_model, beta_guide)


# ------------------------------------------------------------ tail-adaptive
def test_tail_adaptive_surrogate_weights_exact():
    # one step with K particles: the gradient is -sum_k w_k d/dloc (log p - log q)(z_k),
    # w_k proportional to rank_k ** beta
    ember.clear_param_store()
    ember.set_rng_seed(2)
    k, beta = 6, -1.0
    drawn = {}

    def tail_model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    def tail_guide():
        loc = ember.param("loc_tail", torch.tensor(0.4))
        drawn["z"] = ember.sample("z", dist.Normal(loc, 1.5))

    elbo = TraceTailAdaptive_ELBO(
        num_particles=k, vectorize_particles=True, tail_adaptive_beta=beta
    )
    returned = elbo.loss_and_grads(tail_model, tail_guide)
    with torch.no_grad():
        z = drawn["z"]
        log_ratio = dist.Normal(0.0, 1.0).log_prob(z) - dist.Normal(0.4, 1.5).log_prob(z)
        ranks = torch.empty(k)
        ranks[log_ratio.argsort()] = torch.arange(1.0, k + 1)
        w = ranks**beta / (ranks**beta).sum()
        # z = loc + 1.5 eps: d/dloc log N(z; 0, 1) = -z; log q(z) does not change
        expected = -(w * -z).sum()
    assert returned == pytest.approx(-log_ratio.mean().item(), abs=1e-5)
    torch.testing.assert_close(ember.param("loc_tail").grad, expected, rtol=1e-5, atol=1e-6)


def test_tail_adaptive_requirements():
    def tail_model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    def rep_guide():
        ember.sample("z", dist.Normal(0.0, 2.0))

    def nonrep_guide():
        ember.sample("z", dist.Normal(0.0, 2.0).has_rsample_(False))

    elbo = TraceTailAdaptive_ELBO(num_particles=2, vectorize_particles=False)
    with pytest.raises(NotImplementedError, match="vectorize_particles=True"):
        elbo.loss_and_grads(tail_model, rep_guide)
    elbo = TraceTailAdaptive_ELBO(num_particles=2, vectorize_particles=True)
    with pytest.raises(NotImplementedError, match="fully reparameterized"):
        elbo.loss_and_grads(tail_model, nonrep_guide)
    with pytest.raises(NotImplementedError, match="computes gradients only"):
        elbo.loss(tail_model, rep_guide)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        TraceTailAdaptive_ELBO(num_particles=1, vectorize_particles=True).loss_and_grads(
            tail_model, rep_guide
        )
    assert any("num_particles=1" in str(x.message) for x in w)
