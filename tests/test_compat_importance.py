"""Integration: ``Importance``, ``Search`` and ``EmpiricalMarginal`` on models
with exact posteriors (Normal-Normal conjugacy, brute-force enumeration)."""

import itertools
import math

import pytest
import torch

import ember as pyro
import ember.distributions as dist
from ember.infer import EmpiricalMarginal, Importance, Search

OBS = torch.tensor([1.2, 0.4, 2.0, 1.5])
PRIOR_LOC, PRIOR_SD, NOISE_SD = 0.0, 2.0, 1.0


def normal_model(data):
    mu = pyro.sample("mu", dist.Normal(PRIOR_LOC, PRIOR_SD))
    with pyro.plate("data", len(data)):
        pyro.sample("x", dist.Normal(mu, NOISE_SD), obs=data)
    return mu


def exact_posterior(data):
    precision = 1 / PRIOR_SD**2 + len(data) / NOISE_SD**2
    mean = (PRIOR_LOC / PRIOR_SD**2 + data.sum().item() / NOISE_SD**2) / precision
    return mean, math.sqrt(1 / precision)


def test_importance_with_prior_proposal():
    pyro.set_rng_seed(0)
    num = 2000
    posterior = Importance(normal_model, guide=None, num_samples=num).run(OBS)
    marginal = EmpiricalMarginal(posterior, sites="mu")
    post_mean, post_sd = exact_posterior(OBS)
    ess = posterior.get_ESS().item()
    assert 50 < ess < num
    se = post_sd / math.sqrt(ess)
    assert abs(marginal.mean.item() - post_mean) < 5 * se
    assert abs(marginal.variance.sqrt().item() - post_sd) < 0.15 * post_sd
    # the weights are importance weights log p(x, mu) - log q(mu)
    assert len(posterior.log_weights) == num
    # the normalising constant estimate matches the exact evidence
    cov = NOISE_SD**2 * torch.eye(len(OBS)) + PRIOR_SD**2 * torch.ones(len(OBS), len(OBS))
    evidence = torch.distributions.MultivariateNormal(torch.zeros(len(OBS)), cov).log_prob(OBS)
    log_z = torch.logsumexp(torch.stack(list(posterior.log_weights)), 0) - math.log(num)
    assert abs(log_z.item() - evidence.item()) < 0.1


def test_importance_with_guide_and_return_marginal():
    post_mean, post_sd = exact_posterior(OBS)

    def guide(data):
        pyro.sample("mu", dist.Normal(post_mean + 0.2, 1.5 * post_sd))

    pyro.set_rng_seed(1)
    posterior = Importance(normal_model, guide=guide, num_samples=1000).run(OBS)
    ess = posterior.get_ESS().item()
    assert ess > 300
    se = post_sd / math.sqrt(ess)
    mu_marg = EmpiricalMarginal(posterior, sites="mu")
    # the _RETURN value is the default marginal
    ret_marg = EmpiricalMarginal(posterior)
    assert mu_marg.mean.item() == pytest.approx(ret_marg.mean.item(), abs=1e-5)
    assert abs(mu_marg.mean.item() - post_mean) < 5 * se
    # sampling from the marginal reproduces the weighted mean
    draws = mu_marg.sample(torch.Size([4000]))
    assert draws.shape == (4000,)
    assert abs(draws.mean().item() - mu_marg.mean.item()) < 5 * post_sd / math.sqrt(4000)


def test_empirical_marginal_over_several_sites():
    def model():
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        b = pyro.sample("b", dist.Normal(a, 1.0))
        return a + b

    pyro.set_rng_seed(2)
    posterior = Importance(model, num_samples=200).run()
    joint = EmpiricalMarginal(posterior, sites=["a", "b"])
    draws = joint.sample()
    assert draws.shape == (2,)
    # all weights are equal under prior proposal with no observations
    assert posterior.get_ESS().item() == pytest.approx(200, rel=1e-4)


# --------------------------------------------------------------------------
# Search on a discrete program
# --------------------------------------------------------------------------

P_RAIN, P_SPRINKLER = 0.3, 0.45


def grass_model():
    rain = pyro.sample("rain", dist.Bernoulli(P_RAIN))
    sprinkler = pyro.sample("sprinkler", dist.Bernoulli(P_SPRINKLER))
    p_wet = 0.05 + 0.8 * rain + 0.1 * sprinkler
    pyro.sample("wet", dist.Bernoulli(p_wet), obs=torch.tensor(1.0))
    return rain


def brute_force_rain_posterior():
    num = den = 0.0
    for r, s in itertools.product([0, 1], repeat=2):
        p = (P_RAIN if r else 1 - P_RAIN) * (P_SPRINKLER if s else 1 - P_SPRINKLER)
        p *= 0.05 + 0.8 * r + 0.1 * s
        den += p
        num += p * r
    return num / den, den


def test_search_enumerates_every_execution():
    posterior = Search(grass_model).run()
    assert len(posterior.exec_traces) == 4
    values = {
        (tr.nodes["rain"]["value"].item(), tr.nodes["sprinkler"]["value"].item())
        for tr in posterior.exec_traces
    }
    assert values == {(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)}
    exact, evidence = brute_force_rain_posterior()
    marginal = EmpiricalMarginal(posterior, sites="rain")
    assert marginal.mean.item() == pytest.approx(exact, rel=1e-5)
    # the weights are the exact joint probabilities
    total = torch.logsumexp(torch.stack(list(posterior.log_weights)), 0)
    assert total.exp().item() == pytest.approx(evidence, rel=1e-5)
    # the default (_RETURN) marginal is the rain posterior too
    assert EmpiricalMarginal(posterior).mean.item() == pytest.approx(exact, rel=1e-5)


def test_search_over_categorical():
    def model():
        k = pyro.sample("k", dist.Categorical(torch.tensor([0.2, 0.5, 0.3])))
        pyro.sample("y", dist.Normal(k.float(), 1.0), obs=torch.tensor(2.0))
        return k

    posterior = Search(model).run()
    marginal = EmpiricalMarginal(posterior, sites="k")
    prior = torch.tensor([0.2, 0.5, 0.3])
    lik = dist.Normal(torch.arange(3.0), 1.0).log_prob(torch.tensor(2.0)).exp()
    post = prior * lik / (prior * lik).sum()
    # as in Pyro, the mean of integer samples is undefined
    with pytest.raises(ValueError):
        _ = marginal.mean
    for k in range(3):
        assert marginal.log_prob(torch.tensor(k)).exp().item() == pytest.approx(
            post[k].item(), rel=1e-4
        )
