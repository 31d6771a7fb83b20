"""Importance sampling and EmpiricalMarginal against the Normal-Normal posterior."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import EmpiricalMarginal, Importance

DATA = torch.tensor([0.9, 1.4, 0.3, 1.8, 1.1])
POST_VAR = 1.0 / (1.0 + len(DATA))
POST_MEAN = DATA.sum().item() * POST_VAR
LOG_EVIDENCE = (
    dist.MultivariateNormal(
        torch.zeros(len(DATA)), torch.eye(len(DATA)) + torch.ones(len(DATA), len(DATA))
    )
    .log_prob(DATA)
    .item()
)


def model():
    mu = ember.sample("mu", dist.Normal(0.0, 1.0))
    with ember.plate("data", len(DATA)):
        ember.sample("x", dist.Normal(mu, 1.0), obs=DATA)
    return mu


def guide():
    ember.sample("mu", dist.Normal(POST_MEAN + 0.2, 0.6))


def _check_mean(posterior):
    marginal = EmpiricalMarginal(posterior, "mu")
    ess = posterior.get_ESS().item()
    se = math.sqrt(POST_VAR / ess)
    assert marginal.mean.item() == pytest.approx(POST_MEAN, abs=4 * se)
    var = marginal.variance.item()
    assert var == pytest.approx(POST_VAR, rel=0.25)


@pytest.mark.parametrize("vectorized", [None, False])
@pytest.mark.parametrize("use_guide", [False, True])
def test_posterior_mean(vectorized, use_guide):
    ember.set_rng_seed(0)
    n = 3000 if vectorized is None else 800
    posterior = Importance(
        model, guide if use_guide else None, num_samples=n, vectorized=vectorized
    ).run()
    assert len(posterior.log_weights) == n
    _check_mean(posterior)


def test_log_normalizer_estimates_evidence():
    ember.set_rng_seed(1)
    posterior = Importance(model, guide, num_samples=4000).run()
    log_w = torch.stack(posterior.log_weights)
    w = (log_w - log_w.max()).exp()
    se_log = (w.std() / w.mean()).item() / math.sqrt(len(w))  # delta method
    assert posterior.get_log_normalizer().item() == pytest.approx(LOG_EVIDENCE, abs=4 * se_log)


def test_weights_and_ess():
    ember.set_rng_seed(2)
    posterior = Importance(model, None, num_samples=500).run()
    w = posterior.get_normalized_weights()
    assert w.shape == (500,)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-5)
    ess = posterior.get_ESS().item()
    assert ess == pytest.approx(1.0 / (w**2).sum().item(), rel=1e-4)
    assert 1.0 <= ess <= 500.0
    log_w = posterior.get_normalized_weights(log_scale=True)
    assert torch.allclose(log_w.exp(), w)


def test_vectorized_traces_split_and_return_values():
    ember.set_rng_seed(3)
    posterior = Importance(model, guide, num_samples=6).run()
    traces = posterior.exec_traces
    assert len(traces) == 6
    assert traces[0].nodes["mu"]["value"].shape == ()
    # return values come from replaying the model on each sample's latents
    ret = EmpiricalMarginal(posterior)
    mus = torch.stack([t.nodes["mu"]["value"] for t in traces])
    assert torch.allclose(ret._samples, mus)


def test_fallback_to_sequential_for_control_flow():
    ember.set_rng_seed(4)

    def branchy():
        z = ember.sample("z", dist.Normal(0.0, 1.0))
        if z > 0:  # Python control flow on a sampled value
            ember.sample("x", dist.Normal(1.0, 1.0), obs=torch.tensor(1.0))
        else:
            ember.sample("x", dist.Normal(-1.0, 1.0), obs=torch.tensor(1.0))

    posterior = Importance(branchy, num_samples=300).run()
    assert len(posterior.exec_traces) == 300
    with pytest.raises(ValueError, match="vectorized"):
        Importance(branchy, num_samples=10, vectorized=True).run()


def test_multiple_sites_and_bad_input():
    ember.set_rng_seed(5)

    def two():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("b", dist.Normal(a, 1.0))

    posterior = Importance(two, num_samples=50).run()
    m = EmpiricalMarginal(posterior, ["a", "b"])
    assert m.event_shape == (2,)
    with pytest.raises(ValueError, match="num_samples"):
        Importance(two, num_samples=0)
    with pytest.raises(TypeError, match="TracePosterior"):
        EmpiricalMarginal(object(), "a")


# ------------------------------------------------- other conjugate posteriors
def _check_weighted_moments(posterior, site, mean, sd):
    marginal = EmpiricalMarginal(posterior, site)
    ess = posterior.get_ESS().item()
    assert ess > 100
    assert marginal.mean.item() == pytest.approx(mean, abs=4 * sd / math.sqrt(ess))
    assert marginal.variance.sqrt().item() == pytest.approx(sd, rel=0.15)


@pytest.mark.parametrize("use_guide", [False, True])
def test_beta_bernoulli_posterior_mean(use_guide):
    ember.set_rng_seed(6)
    data = torch.tensor([1.0] * 9 + [0.0] * 5)
    a_post, b_post = 2.0 + 9, 2.0 + 5
    mean = a_post / (a_post + b_post)
    sd = math.sqrt(a_post * b_post / ((a_post + b_post) ** 2 * (a_post + b_post + 1)))

    def model():
        p = ember.sample("p", dist.Beta(2.0, 2.0))
        with ember.plate("data", len(data)):
            ember.sample("x", dist.Bernoulli(p), obs=data)

    def guide():
        ember.sample("p", dist.Beta(8.0, 5.0))

    posterior = Importance(model, guide if use_guide else None, num_samples=3000).run()
    _check_weighted_moments(posterior, "p", mean, sd)


@pytest.mark.parametrize("use_guide", [False, True])
def test_gamma_poisson_posterior_mean(use_guide):
    ember.set_rng_seed(7)
    data = torch.tensor([3.0, 2.0, 4.0, 1.0, 5.0, 3.0])
    a_post, b_post = 2.0 + data.sum().item(), 1.0 + len(data)
    mean, sd = a_post / b_post, math.sqrt(a_post) / b_post

    def model():
        rate = ember.sample("rate", dist.Gamma(2.0, 1.0))
        with ember.plate("data", len(data)):
            ember.sample("x", dist.Poisson(rate), obs=data)

    def guide():
        ember.sample("rate", dist.Gamma(12.0, 4.0))

    posterior = Importance(model, guide if use_guide else None, num_samples=3000).run()
    _check_weighted_moments(posterior, "rate", mean, sd)


def test_vectorized_run_that_mixes_samples_falls_back():
    # z.sum() runs vectorized without error but sums over the samples too; the
    # replay check catches it, so the default falls back to one-at-a-time draws
    ember.set_rng_seed(8)

    def model():
        z = ember.sample("z", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        ember.sample("x", dist.Normal(z.sum(), 1.0), obs=torch.tensor(3.0))

    posterior = Importance(model, num_samples=1500).run()
    # exact: Cov(z_i, x) = 1 and Var(x) = 3 + 1, so E[z_i | x = 3] = 3 / 4
    marginal = EmpiricalMarginal(posterior, "z")
    se = math.sqrt(0.75 / posterior.get_ESS().item())
    assert (marginal.mean - 0.75).abs().max().item() < 4 * se
    with pytest.raises(ValueError, match="mixes the samples"):
        Importance(model, num_samples=10, vectorized=True).run()


# ------------------------------------------------------------------- WAIC
def _waic_by_hand(ll, log_w):
    """WAIC from a (samples, points) log-likelihood table, written out in float64."""
    ll = ll.double()
    w = torch.softmax(log_w.double(), 0)
    lppd = torch.log((w[:, None] * ll.exp()).sum(0))
    mean = (w[:, None] * ll).sum(0)
    var = (w[:, None] * (ll - mean) ** 2).sum(0) / (1 - (w**2).sum())
    return -2 * (lppd - var), var


def test_information_criterion_exact_on_search():
    from ember.infer import Search

    ys = torch.tensor([0.3, 1.7, 1.1, 2.4])
    prior = torch.tensor([0.2, 0.5, 0.3])

    def model():
        k = ember.sample("k", dist.Categorical(prior))
        with ember.plate("data", len(ys)):
            ember.sample("y", dist.Normal(k.float(), 1.0), obs=ys)

    posterior = Search(model).run()
    ic = posterior.information_criterion(pointwise=True)
    ks = torch.arange(3.0)
    ll = dist.Normal(ks[:, None], 1.0).log_prob(ys)  # (3 values of k, 4 points)
    log_w = prior.log() + ll.sum(1)
    waic, p_waic = _waic_by_hand(ll, log_w)
    order = [int(t.nodes["k"]["value"]) for t in posterior.exec_traces]
    assert sorted(order) == [0, 1, 2]
    torch.testing.assert_close(ic["waic"].double(), waic, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ic["p_waic"].double(), p_waic, rtol=1e-5, atol=1e-5)
    total = posterior.information_criterion()
    assert total["waic"].item() == pytest.approx(waic.sum().item(), rel=1e-5)


def test_information_criterion_vectorized_matches_traces():
    ember.set_rng_seed(9)
    posterior = Importance(model, guide, num_samples=200).run()
    batched = posterior.information_criterion(pointwise=True)  # from the batch
    ll = torch.stack(
        [t.nodes["x"]["fn"].log_prob(t.nodes["x"]["value"]) for t in posterior.exec_traces]
    )
    waic, p_waic = _waic_by_hand(ll, torch.stack(posterior.log_weights))
    assert batched["waic"].shape == (len(DATA),)
    torch.testing.assert_close(batched["waic"].double(), waic, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(batched["p_waic"].double(), p_waic, rtol=1e-4, atol=1e-4)
    split = posterior.information_criterion(pointwise=True)  # from the split traces
    torch.testing.assert_close(split["waic"], batched["waic"])


def test_information_criterion_needs_one_observed_site():
    def two_obs():
        mu = ember.sample("mu", dist.Normal(0.0, 1.0))
        ember.sample("a", dist.Normal(mu, 1.0), obs=torch.tensor(0.0))
        ember.sample("b", dist.Normal(mu, 1.0), obs=torch.tensor(1.0))

    posterior = Importance(two_obs, num_samples=5).run()
    with pytest.raises(ValueError, match="exactly one observed site"):
        posterior.information_criterion()
    with pytest.raises(ValueError, match="run"):
        Importance(two_obs, num_samples=5).information_criterion()
