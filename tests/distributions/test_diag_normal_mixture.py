"""MixtureOfDiagNormals: density against scipy, normalization, moments, pathwise gradients."""

import math

import numpy as np
import pytest
import torch
from _pathwise import batched_gradient_estimates, z_scores
from scipy import stats

import ember.distributions as dist
from ember.distributions import MixtureOfDiagNormals


def _params(K, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    locs = torch.randn(K, D, generator=g, dtype=torch.float64)
    scale = 0.5 + torch.rand(K, D, generator=g, dtype=torch.float64)
    logits = torch.randn(K, generator=g, dtype=torch.float64)
    return locs, scale, logits


def _scipy_density(z, locs, scale, logits):
    pi = torch.softmax(logits, -1).numpy()
    total = 0.0
    for k in range(locs.size(0)):
        cov = np.diag(scale[k].numpy() ** 2)
        total = total + pi[k] * stats.multivariate_normal(locs[k].numpy(), cov).pdf(z.numpy())
    return total


@pytest.mark.parametrize("K,D", [(1, 2), (3, 2), (2, 3), (4, 5)])
def test_log_prob_matches_scipy(K, D):
    locs, scale, logits = _params(K, D)
    d = MixtureOfDiagNormals(locs, scale, logits)
    z = torch.randn(7, D, dtype=torch.float64) * 2
    expected = np.log(_scipy_density(z, locs, scale, logits))
    assert np.allclose(d.log_prob(z).numpy(), expected, rtol=1e-10, atol=1e-10)
    assert d.log_prob(z.reshape(7, 1, D)).shape == (7, 1)


def test_integrates_to_one_in_2d():
    locs, scale, logits = _params(3, 2, seed=1)
    d = MixtureOfDiagNormals(locs, scale, logits)
    grid = torch.linspace(-12, 12, 601, dtype=torch.float64)
    x, y = torch.meshgrid(grid, grid, indexing="ij")
    density = d.log_prob(torch.stack([x, y], -1)).exp()
    h = (grid[1] - grid[0]).item()
    assert abs(density.sum().item() * h * h - 1.0) < 1e-6


def test_sample_moments_match_mean_and_variance():
    torch.manual_seed(0)
    locs, scale, logits = _params(3, 3, seed=2)
    d = MixtureOfDiagNormals(locs, scale, logits)
    z = d.sample((40000,))
    assert z.shape == (40000, 3) and not z.requires_grad
    se_mean = (d.variance / z.size(0)).sqrt()
    assert ((z.mean(0) - d.mean).abs() < 4.5 * se_mean).all()
    # standard error of the sample variance from the sample fourth central moment
    centered = z - z.mean(0)
    se_var = ((centered.pow(4).mean(0) - centered.var(0).pow(2)) / z.size(0)).sqrt()
    assert ((centered.var(0) - d.variance).abs() < 4.5 * se_var).all()


@pytest.mark.parametrize("D", [2, 3, 4])
def test_pathwise_gradient_of_quadratic_matches_analytic(D):
    torch.manual_seed(D)
    K = 3
    locs, scale, logits = (t.clone().requires_grad_() for t in _params(K, D, seed=D))
    A = torch.randn(D, D, dtype=torch.float64)
    A = A @ A.t() / D + 0.3 * torch.eye(D, dtype=torch.float64)
    b = torch.randn(D, dtype=torch.float64)

    def cost(z):
        return torch.einsum("...i,ij,...j->...", z, A, z) + z @ b

    pi = logits.softmax(-1)
    per_component = (
        (scale**2 * A.diagonal()).sum(-1) + torch.einsum("ki,ij,kj->k", locs, A, locs) + locs @ b
    )
    exact = torch.autograd.grad((pi * per_component).sum(), [locs, scale, logits])

    estimates = batched_gradient_estimates(
        lambda: MixtureOfDiagNormals(locs, scale, logits),
        cost,
        [locs, scale, logits],
        batch_size=1000,  # rare components make per-sample gradients heavy-tailed
    )
    z, se, exact_flat = z_scores(estimates, exact)
    assert z.abs().max() < 4.5, z
    # the test has power: the logits gradient is resolved to many standard errors
    assert (exact_flat[-K:].abs() / se[-K:]).max() > 10


def test_logits_gradient_is_shift_invariant_and_sample_is_reparameterized():
    torch.manual_seed(0)
    locs, scale, logits = (t.clone().requires_grad_() for t in _params(3, 2))
    z = MixtureOfDiagNormals(locs, scale, logits).rsample((500,))
    assert z.requires_grad
    (grad_logits,) = torch.autograd.grad(z.pow(3).sum(), [logits])
    assert abs(grad_logits.sum().item()) < 1e-8 * grad_logits.abs().sum().item()


def test_float32_and_expand():
    d = MixtureOfDiagNormals(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2))
    assert d.rsample((4,)).dtype == torch.float32
    e = d.expand((5,))
    assert e.batch_shape == (5,) and e.event_shape == (3,)
    assert e.sample((2,)).shape == (2, 5, 3)
    assert torch.allclose(
        e.log_prob(torch.zeros(5, 3)), torch.full((5,), -1.5 * math.log(2 * math.pi))
    )


def test_exported_and_has_rsample():
    assert dist.MixtureOfDiagNormals is MixtureOfDiagNormals
    assert MixtureOfDiagNormals.has_rsample
    assert set(MixtureOfDiagNormals.arg_constraints) == {"locs", "coord_scale", "component_logits"}
    shapes = MixtureOfDiagNormals.infer_shapes(
        locs=(3, 4), coord_scale=(3, 4), component_logits=(3,)
    )
    assert shapes == ((), (4,))


@pytest.mark.parametrize(
    "locs,scale,logits,name",
    [
        (torch.zeros(2, 1), torch.ones(2, 1), torch.zeros(2), "D >= 2"),
        (torch.zeros(2, 3), torch.ones(3, 3), torch.zeros(2), "coord_scale"),
        (torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(3), "component_logits"),
        (torch.zeros(3), torch.ones(2, 3), torch.zeros(2), "locs"),
        (torch.zeros(2, 3), -torch.ones(2, 3), torch.zeros(2), "coord_scale"),
    ],
)
def test_bad_parameters_raise(locs, scale, logits, name):
    with pytest.raises(ValueError, match=name):
        MixtureOfDiagNormals(locs, scale, logits, validate_args=True)
