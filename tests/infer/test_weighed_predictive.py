"""WeighedPredictive weights against hand computation; MHResampler; TracePredictive."""

import math
import warnings

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import Importance, MHResampler, TracePredictive, WeighedPredictive
from ember.infer.predictive import WeighedPredictiveResults

DATA = torch.tensor([0.8, 1.6, 0.3])
GUIDE_LOC, GUIDE_SCALE = 0.4, 0.9


def model(data=None):
    z = ember.sample("z", dist.Normal(0.0, 1.0))
    with ember.plate("data", 3):
        return ember.sample("x", dist.Normal(z, 1.0), obs=data)


def conditioned(data=None):
    return poutine.condition(model, data={"x": DATA})(data)


def guide(data=None):
    ember.sample("z", dist.Normal(GUIDE_LOC, GUIDE_SCALE))


def log_evidence():
    # x ~ N(0, I + 1 1^T)
    cov = torch.eye(3) + torch.ones(3, 3)
    return dist.MultivariateNormal(torch.zeros(3), cov).log_prob(DATA).item()


@pytest.mark.parametrize("parallel", [False, True])
def test_weights_match_hand_computation(parallel):
    ember.set_rng_seed(0)
    n = 200 if not parallel else 2000
    predictive = WeighedPredictive(model, guide=guide, num_samples=n, parallel=parallel)
    out = predictive(model_guide=conditioned)
    assert isinstance(out, WeighedPredictiveResults)
    z = out.samples["z"].reshape(n)
    assert out.samples["x"].shape == (n, 3)
    guide_lp = dist.Normal(GUIDE_LOC, GUIDE_SCALE).log_prob(z)
    model_lp = dist.Normal(0.0, 1.0).log_prob(z) + dist.Normal(z[:, None], 1.0).log_prob(DATA).sum(
        -1
    )
    assert torch.allclose(out.guide_log_prob, guide_lp, atol=1e-4)
    assert torch.allclose(out.model_log_prob, model_lp, atol=1e-4)
    assert torch.allclose(out.log_weights, model_lp - guide_lp, atol=1e-4)
    # the returned x are drawn from the model given z, not the observed data
    assert not torch.allclose(out.samples["x"], DATA.expand(n, 3))
    if parallel:
        # the mean weight estimates the evidence (delta-method standard error)
        w = (out.log_weights - out.log_weights.max()).exp()
        se = (w.std() / w.mean()).item() / math.sqrt(n)
        assert abs(out.get_log_normalizer().item() - log_evidence()) < 4 * se
        norm = out.get_normalized_weights()
        assert torch.allclose(norm.sum(), torch.tensor(1.0))
        ess = out.get_ESS().item()
        assert ess == pytest.approx(1.0 / (norm**2).sum().item(), rel=1e-4)


def test_default_model_guide_scores_returned_samples():
    """Without model_guide the weights use the model itself, at the returned values."""
    ember.set_rng_seed(1)
    n = 500
    out = WeighedPredictive(model, guide=guide, num_samples=n, parallel=True)()
    z, x = out.samples["z"].reshape(n), out.samples["x"]
    model_lp = dist.Normal(0.0, 1.0).log_prob(z) + dist.Normal(z[:, None], 1.0).log_prob(x).sum(-1)
    assert torch.allclose(out.model_log_prob, model_lp, atol=1e-4)


def test_call_returns_tuple_and_clone():
    ember.set_rng_seed(2)
    predictive = WeighedPredictive(model, guide=guide, num_samples=5, return_sites=["x", "z"])
    out = predictive.call(model_guide=conditioned)
    assert isinstance(out.samples, tuple) and len(out.samples) == 2
    copy = out.clone()
    assert copy.log_weights is not out.log_weights
    assert torch.equal(copy.log_weights, out.log_weights)


def test_requires_guide():
    with pytest.raises(ValueError, match="guide is required"):
        WeighedPredictive(model, num_samples=3)()


def test_mh_resampler_reaches_posterior():
    ember.set_rng_seed(3)
    n = 4000
    predictive = WeighedPredictive(model, guide=guide, num_samples=n, parallel=True)
    resampler = MHResampler(predictive, stored_samples_slice=slice(-1, None))
    for _ in range(30):
        out = resampler(model_guide=conditioned)
    # posterior of z: precision 1 + 3, mean sum(x) / 4
    post_mean, post_var = DATA.sum().item() / 4, 1 / 4
    z = out.samples["z"].reshape(n)
    assert abs(z.mean().item() - post_mean) < 5 * math.sqrt(post_var / n) + 0.01
    assert abs(z.var().item() / post_var - 1) < 0.1
    assert resampler.get_total_transition_count() > 0
    assert resampler.get_stored_samples().log_weights.shape == (n,)
    with pytest.raises(ValueError, match="no samples were kept"):
        resampler.get_source_samples()


def test_mh_resampler_accepts_everything_with_exact_guide():
    ember.set_rng_seed(4)
    post_loc, post_scale = DATA.sum().item() / 4, 0.5

    def exact_guide(data=None):
        ember.sample("z", dist.Normal(post_loc, post_scale))

    predictive = WeighedPredictive(model, guide=exact_guide, num_samples=100, parallel=True)
    resampler = MHResampler(predictive)
    for _ in range(4):
        resampler(model_guide=conditioned)
    # equal weights: the acceptance probability is one at every step after the first
    assert int(resampler.get_min_sample_transition_count()) == 3


def test_trace_predictive_new_data_size():
    ember.set_rng_seed(5)

    def local_model(data):
        loc = ember.sample("loc", dist.Normal(0.0, 3.0))
        with ember.plate("data", len(data)):
            u = ember.sample("u", dist.Normal(loc, 0.1))
            return ember.sample("x", dist.Normal(u, 0.1), obs=data)

    data = torch.full((4,), 2.0)
    posterior = Importance(local_model, num_samples=200, vectorized=False).run(data)
    with pytest.warns(FutureWarning, match="TracePredictive"):
        predictive = TracePredictive(local_model, posterior, num_samples=20)
    predictive.run(torch.zeros(6))
    assert len(predictive.exec_traces) == 20
    for tr in predictive.exec_traces:
        assert tr.nodes["u"]["value"].shape == (6,)
        assert tr.nodes["x"]["value"].shape == (6,)
        loc = tr.nodes["loc"]["value"]
        # loc is one of the posterior's values; x is drawn anew around u
        assert any(torch.equal(loc, t.nodes["loc"]["value"]) for t in posterior.exec_traces)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with pytest.raises(TypeError, match="TracePosterior"):
            TracePredictive(local_model, object(), num_samples=2)
