"""Predictive: prior/posterior predictive samples, sequential and parallel."""

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import Predictive


def model(n=4):
    mu = ember.sample("mu", dist.Normal(0.0, 1.0))
    with ember.plate("data", n):
        ember.sample("x", dist.Normal(mu, 0.01))
    return mu


def guide(n=4):
    ember.sample("mu", dist.Normal(5.0, 0.01))


@pytest.mark.parametrize("parallel", [False, True])
def test_posterior_samples_fix_latents(parallel):
    ember.set_rng_seed(0)
    mus = torch.tensor([1.0, -2.0, 3.0])
    out = Predictive(model, {"mu": mus}, parallel=parallel)()
    assert set(out) == {"x"}
    assert out["x"].shape == (3, 4)
    assert torch.allclose(out["x"].mean(-1), mus, atol=0.05)


@pytest.mark.parametrize("parallel", [False, True])
def test_guide_and_return_sites(parallel):
    ember.set_rng_seed(1)
    pred = Predictive(
        model, guide=guide, num_samples=5, return_sites=["mu", "x"], parallel=parallel
    )
    out = pred(n=3)
    assert out["mu"].shape == (5, 1) and out["x"].shape == (5, 3)
    assert torch.allclose(out["mu"], torch.full((5, 1), 5.0), atol=0.1)
    assert torch.allclose(out["x"], out["mu"].expand(5, 3), atol=0.1)


def test_prior_predictive_all_sites():
    ember.set_rng_seed(2)
    out = Predictive(model, num_samples=2000, return_sites=None, parallel=True)()
    assert set(out) == {"mu", "x"}
    assert out["mu"].mean().item() == pytest.approx(0.0, abs=4 / 2000**0.5)
    assert out["mu"].std().item() == pytest.approx(1.0, rel=0.1)


def test_bad_input():
    with pytest.raises(ValueError, match="num_samples"):
        Predictive(model)
    with pytest.raises(ValueError, match="not both"):
        Predictive(model, {"mu": torch.zeros(2)}, guide=guide)
    with pytest.raises(ValueError, match="disagree"):
        Predictive(model, {"mu": torch.zeros(2), "x": torch.zeros(3, 4)})
    with pytest.raises(ValueError, match="not sites"):
        Predictive(model, num_samples=2, return_sites=["nope"])()


@pytest.mark.parametrize("parallel", [False, True])
def test_sites_without_a_sampler_take_their_values_from_the_guide(parallel):
    # an ImproperUniform site cannot be drawn: the structure run must not draw it
    from ember.distributions import constraints

    def model():
        with ember.plate("p", 3):
            x = ember.sample("x", dist.ImproperUniform(constraints.positive, (3,), ()))
            ember.sample("y", dist.Normal(x, 1.0))

    def guide():
        with ember.plate("p", 3):
            ember.sample("x", dist.LogNormal(torch.zeros(3), 0.1))

    ember.set_rng_seed(0)
    out = Predictive(model, guide=guide, num_samples=200, parallel=parallel)()
    assert out["x"].shape == (200, 3) and (out["x"] > 0).all()
    # y | x ~ Normal(x, 1): the mean of y - x is 0 within 4 standard errors
    diff = out["y"] - out["x"]
    assert diff.mean().abs() < 4 / (600**0.5)
