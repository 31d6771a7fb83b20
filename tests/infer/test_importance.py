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
