"""Goodness-of-fit tests: exact statistics against scipy, their rate of false alarms on
correct samplers, and their power against wrong densities (fixed seeds)."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

import ember.distributions as dist
from ember.distributions.testing.gof import (
    InvalidTest,
    auto_goodness_of_fit,
    density_goodness_of_fit,
    exp_goodness_of_fit,
    get_nearest_neighbor_distances,
    kolmogorov_sf,
    multinomial_goodness_of_fit,
    print_histogram,
    unif01_goodness_of_fit,
    vector_density_goodness_of_fit,
    volume_of_sphere,
)


def test_multinomial_is_pearsons_test():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    counts = np.array([95, 230, 280, 395])
    expected = scipy.stats.chisquare(counts, probs * counts.sum()).pvalue
    actual = multinomial_goodness_of_fit(torch.tensor(probs), torch.tensor(counts))
    assert actual == pytest.approx(expected, rel=1e-9)


def test_multinomial_truncated_adds_the_rest_as_one_bucket():
    probs = np.array([0.1, 0.2, 0.3])  # the other categories hold 0.4
    counts = np.array([95, 230, 280])
    total = 1000
    expected = scipy.stats.chisquare(
        np.append(counts, total - counts.sum()), np.append(probs, 0.4) * total
    ).pvalue
    actual = multinomial_goodness_of_fit(probs, counts, total_count=total)
    assert actual == pytest.approx(expected, rel=1e-9)


def test_multinomial_pools_small_buckets():
    probs = np.array([0.5, 0.49, 0.004, 0.003, 0.003])  # last three expect 4, 3, 3 of 1000
    counts = np.array([498, 492, 4, 3, 3])
    pooled = scipy.stats.chisquare([498, 492, 10], [500, 490, 10]).pvalue
    assert multinomial_goodness_of_fit(probs, counts) == pytest.approx(pooled, rel=1e-9)


def test_multinomial_edge_cases():
    assert multinomial_goodness_of_fit([1.0, 0.0], [10, 0]) == 1.0
    assert multinomial_goodness_of_fit([1.0, 0.0], [9, 1]) == 0.0
    assert multinomial_goodness_of_fit([0.5, 0.5, 0.0], [50, 49, 1]) == 0.0  # impossible draw
    with pytest.raises(InvalidTest, match="more samples"):
        multinomial_goodness_of_fit([0.5, 0.5], [3, 4])
    with pytest.raises(ValueError, match="same shape"):
        multinomial_goodness_of_fit([0.5, 0.5], [3, 4, 5])
    with pytest.raises(ValueError, match="sum to"):
        multinomial_goodness_of_fit([0.7, 0.7], [3, 4])
    with pytest.raises(ValueError, match="less than"):
        multinomial_goodness_of_fit([0.5, 0.5], [30, 40], total_count=10)


def test_multinomial_accepts_categorical_samples():
    torch.manual_seed(0)
    probs = torch.randn(20).softmax(-1)
    counts = torch.bincount(dist.Categorical(probs).sample((100000,)), minlength=20)
    assert multinomial_goodness_of_fit(probs, counts) > 1e-3
    wrong = (probs + 0.01).softmax(-1) * 0 + (probs * 0.9 + 0.1 / 20)
    assert multinomial_goodness_of_fit(wrong, counts) < 1e-6


def test_print_histogram(capsys):
    print_histogram([0.2, 0.8], [2, 8])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["0.800", "8"] and lines[1].count("#") == 60
    assert lines[2].count("#") == 15


def test_kolmogorov_sf_is_the_kolmogorov_distribution():
    for t in [0.2, 0.5, 0.8, 1.0, 1.36, 2.0, 3.0]:
        n = 1000
        d = t / (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n))
        assert kolmogorov_sf(d, n) == pytest.approx(scipy.stats.kstwobign.sf(t), abs=1e-9)
    # and Stephens' correction is close to the exact finite-n law
    assert kolmogorov_sf(0.04, 1000) == pytest.approx(scipy.stats.kstwo.sf(0.04, 1000), rel=0.02)


def test_nearest_neighbors_and_sphere_volume():
    torch.manual_seed(0)
    x = torch.randn(300, 3)
    d = torch.cdist(x, x) + torch.eye(300) * 1e9
    assert torch.allclose(get_nearest_neighbor_distances(x), d.min(-1).values.double(), atol=1e-5)
    refs = torch.randn(50, 3)
    assert torch.allclose(
        get_nearest_neighbor_distances(x, refs),
        torch.cdist(x, refs).min(-1).values.double(),
        atol=1e-5,
    )
    assert volume_of_sphere(1, 2.0) == pytest.approx(4.0)
    assert volume_of_sphere(2, 2.0) == pytest.approx(4 * math.pi)
    assert volume_of_sphere(3, 1.0) == pytest.approx(4 / 3 * math.pi)


def test_invalid_tests_and_bad_inputs():
    with pytest.raises(InvalidTest):
        unif01_goodness_of_fit(torch.rand(100))
    with pytest.raises(InvalidTest):
        density_goodness_of_fit(torch.randn(100), torch.ones(100))
    with pytest.raises(InvalidTest):
        vector_density_goodness_of_fit(torch.randn(1500, 2), torch.ones(1500))
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        unif01_goodness_of_fit(torch.rand(1000) + 0.5)
    with pytest.raises(ValueError, match="NaN"):
        density_goodness_of_fit(torch.randn(1000), torch.full((1000,), float("nan")))
    with pytest.raises(ValueError, match="one density per sample"):
        auto_goodness_of_fit(torch.randn(1000, 2), torch.ones(999))
    assert auto_goodness_of_fit(torch.zeros(10, 0), torch.ones(10)) == 1.0


UNIVARIATE = {
    "normal": dist.Normal(0.3, 2.0),
    "cauchy": dist.Cauchy(0.0, 1.0),
    "gamma<1": dist.Gamma(0.5, 2.0),
    "beta<1": dist.Beta(0.3, 0.6),
    "uniform": dist.Uniform(-1.0, 2.0),
    "lognormal": dist.LogNormal(0.0, 1.5),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(UNIVARIATE))
def test_univariate_false_alarm_rate(name):
    # 60 correct samplers: p-values below 0.05 should number about 3 (binomial SD 1.7)
    d = UNIVARIATE[name]
    torch.manual_seed(0)
    pvalues = []
    for _ in range(60):
        x = d.sample((2000,))
        pvalues.append(auto_goodness_of_fit(x, d.log_prob(x).exp()))
    pvalues = np.array(pvalues)
    assert (pvalues < 0.05).sum() <= 9, pvalues
    assert pvalues.min() > 1e-4, pvalues


@pytest.mark.parametrize(
    "true, wrong",
    [
        (dist.Normal(0.0, 1.0), dist.Normal(0.0, 1.1)),  # 10% too wide
        (dist.Normal(0.0, 1.0), dist.Normal(0.1, 1.0)),  # shifted by a tenth of a SD
        (dist.Gamma(2.0, 3.0), dist.Gamma(2.0, 2.7)),
        (dist.Beta(0.5, 0.5), dist.Beta(0.6, 0.6)),
    ],
    ids=["scale", "shift", "gamma-rate", "beta"],
)
def test_univariate_rejects_wrong_densities(true, wrong):
    torch.manual_seed(1)
    x = true.sample((20000,))
    assert auto_goodness_of_fit(x, true.log_prob(x).exp()) > 1e-3
    assert auto_goodness_of_fit(x, wrong.log_prob(x).exp()) < 1e-4


def test_exp_and_unif01_tests():
    torch.manual_seed(2)
    e = dist.Exponential(1.0).sample((20000,))
    assert exp_goodness_of_fit(e) > 1e-3
    assert exp_goodness_of_fit(1.1 * e) < 1e-4
    u = torch.rand(20000)
    assert unif01_goodness_of_fit(u) > 1e-3
    assert unif01_goodness_of_fit(u**1.1) < 1e-4


MULTIVARIATE = {
    "mvn": (dist.MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.5, 1.0]])), None),
    "dirichlet<1": (dist.Dirichlet(torch.tensor([3.2, 1.2, 0.4])), -1),  # singular at edges
    "dirichlet": (dist.Dirichlet(torch.tensor([2.4, 3.0, 6.0])), -1),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MULTIVARIATE))
def test_multivariate_false_alarm_rate(name):
    # 40 correct samplers: about 2 p-values below 0.05 (binomial SD 1.4); the
    # nearest-neighbour approximation allows a little more
    d, drop = MULTIVARIATE[name]
    torch.manual_seed(0)
    pvalues = []
    for _ in range(40):
        x = d.sample((20000,))
        p = d.log_prob(x).exp()
        pvalues.append(auto_goodness_of_fit(x if drop is None else x[:, :drop], p))
    pvalues = np.array(pvalues)
    assert (pvalues < 0.05).sum() <= 8, pvalues
    assert pvalues.min() > 1e-4, pvalues


@pytest.mark.parametrize(
    "wrong",
    [
        dist.MultivariateNormal(torch.zeros(2), 1.25 * torch.tensor([[1.0, 0.5], [0.5, 1.0]])),
        dist.MultivariateNormal(torch.tensor([0.15, 0.0]), torch.tensor([[1.0, 0.5], [0.5, 1.0]])),
        dist.MultivariateNormal(torch.zeros(2), torch.eye(2)),
    ],
    ids=["scale", "shift", "correlation"],
)
def test_multivariate_rejects_wrong_densities(wrong):
    true = MULTIVARIATE["mvn"][0]
    torch.manual_seed(3)
    x = true.sample((50000,))
    assert auto_goodness_of_fit(x, true.log_prob(x).exp()) > 1e-3
    assert auto_goodness_of_fit(x, wrong.log_prob(x).exp()) < 1e-4


def test_manifold_dimension():
    # points on the unit circle in R^2 with the uniform density 1 / (2 pi) on the circle
    torch.manual_seed(4)
    theta = torch.rand(20000) * 2 * math.pi
    x = torch.stack([theta.cos(), theta.sin()], -1)
    density = torch.full((20000,), 1 / (2 * math.pi))
    assert auto_goodness_of_fit(x, density, dim=1) > 1e-3
    assert auto_goodness_of_fit(x, 1.2 * density, dim=1) < 1e-4
