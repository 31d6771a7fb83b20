"""Resampler: the resampled values follow the new model (chi-square, moments)."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer.resampler import Resampler

# chi-square 0.999 quantile for 3 degrees of freedom
CHI2_999 = {3: 16.266}


def categorical(probs):
    def fn():
        ember.sample("k", dist.Categorical(probs))

    return fn


@pytest.mark.parametrize("stable", [False, True])
def test_categorical_chi_square(stable):
    ember.set_rng_seed(0)
    guide_probs = torch.tensor([0.25, 0.25, 0.25, 0.25])
    target = torch.tensor([0.1, 0.2, 0.3, 0.4])
    # the cache's own randomness inflates the statistic by about n / num_guide_samples
    cache = Resampler(categorical(guide_probs), num_guide_samples=20000)
    n = 2000
    k = cache.sample(categorical(target), n, stable=stable)["k"]
    assert k.shape == (n,)
    counts = torch.bincount(k, minlength=4).double()
    expected = target.double() * n
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < CHI2_999[3]


def test_normal_moments_with_simulator_and_plate():
    ember.set_rng_seed(1)

    def prior(loc, scale):
        def fn():
            with ember.plate("dims", 2, dim=-1):
                return ember.sample("z", dist.Normal(loc, scale))

        return fn

    def simulator():
        with ember.plate("dims", 2, dim=-1):
            z = ember.sample("z", dist.Normal(0.0, 3.0))
            ember.sample("x", dist.Normal(2.0 * z, 0.1))

    cache = Resampler(prior(0.0, 3.0), simulator, num_guide_samples=50000)
    assert cache.max_plate_nesting == 1
    n = 5000
    samples = cache.sample(prior(torch.tensor([1.0, -1.0]), 0.5), n, stable=False)
    z, x = samples["z"], samples["x"]
    assert z.shape == (n, 2) and x.shape == (n, 2)
    # the importance weights' effective sample size bounds the precision
    se_mean = 0.5 / math.sqrt(n)
    assert torch.allclose(z.mean(0), torch.tensor([1.0, -1.0]), atol=5 * se_mean + 0.02)
    assert torch.allclose(z.std(0), torch.tensor([0.5, 0.5]), rtol=0.1)
    # the simulator's values are carried along with the resampled latents
    assert torch.allclose(x, 2.0 * z, atol=0.5)


def test_stable_sampling_is_piecewise_constant():
    ember.set_rng_seed(2)

    def prior(loc):
        def fn():
            ember.sample("z", dist.Normal(loc, 1.0))

        return fn

    cache = Resampler(prior(0.0), num_guide_samples=1000)
    a = cache.sample(prior(0.5), 200)["z"]
    b = cache.sample(prior(0.5), 200)["z"]
    assert torch.equal(a, b)  # the same Gumbel noise: the same choice
    c = cache.sample(prior(0.5), 200, stable=False)["z"]
    assert not torch.equal(a, c)


def test_errors():
    with pytest.raises(ValueError, match="num_guide_samples"):
        Resampler(categorical(torch.ones(2) / 2), num_guide_samples=0)
    with pytest.raises(TypeError, match="guide must be callable"):
        Resampler(3, num_guide_samples=10)
