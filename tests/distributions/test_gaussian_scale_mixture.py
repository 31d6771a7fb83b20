"""GaussianScaleMixture: density against scipy, normalization, moments, pathwise gradients."""

import numpy as np
import pytest
import torch
from _pathwise import batched_gradient_estimates, z_scores
from scipy import stats

import ember.distributions as dist
from ember.distributions import GaussianScaleMixture


def _params(K, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    coord_scale = 0.5 + torch.rand(D, generator=g, dtype=torch.float64)
    logits = torch.randn(K, generator=g, dtype=torch.float64)
    component_scale = 0.3 + 2 * torch.rand(K, generator=g, dtype=torch.float64)
    return coord_scale, logits, component_scale


@pytest.mark.parametrize("K,D", [(1, 2), (3, 2), (2, 3), (4, 5)])
def test_log_prob_matches_scipy(K, D):
    coord_scale, logits, component_scale = _params(K, D)
    d = GaussianScaleMixture(coord_scale, logits, component_scale)
    z = torch.randn(6, D, dtype=torch.float64) * 2
    pi = torch.softmax(logits, -1).numpy()
    expected = sum(
        pi[k]
        * stats.multivariate_normal(
            np.zeros(D), np.diag((component_scale[k] * coord_scale).numpy() ** 2)
        ).pdf(z.numpy())
        for k in range(K)
    )
    assert np.allclose(d.log_prob(z).numpy(), np.log(expected), rtol=1e-10, atol=1e-10)


def test_integrates_to_one_in_2d():
    coord_scale, logits, component_scale = _params(3, 2, seed=1)
    d = GaussianScaleMixture(coord_scale, logits, component_scale)
    grid = torch.linspace(-15, 15, 801, dtype=torch.float64)
    x, y = torch.meshgrid(grid, grid, indexing="ij")
    density = d.log_prob(torch.stack([x, y], -1)).exp()
    h = (grid[1] - grid[0]).item()
    assert abs(density.sum().item() * h * h - 1.0) < 1e-6


def test_sample_moments_match_mean_and_variance():
    torch.manual_seed(0)
    d = GaussianScaleMixture(*_params(3, 3, seed=2))
    z = d.sample((40000,))
    assert torch.equal(d.mean, torch.zeros(3, dtype=torch.float64))
    assert ((z.mean(0) - d.mean).abs() < 4.5 * (d.variance / z.size(0)).sqrt()).all()
    se_var = ((z.pow(4).mean(0) - z.pow(2).mean(0).pow(2)) / z.size(0)).sqrt()
    assert ((z.pow(2).mean(0) - d.variance).abs() < 4.5 * se_var).all()


@pytest.mark.parametrize("D", [2, 3])
def test_pathwise_gradient_of_quadratic_matches_analytic(D):
    torch.manual_seed(10 + D)
    K = 3
    coord_scale, logits, component_scale = (t.clone().requires_grad_() for t in _params(K, D, D))
    A = torch.randn(D, D, dtype=torch.float64)
    A = A @ A.t() / D + 0.3 * torch.eye(D, dtype=torch.float64)
    b = torch.randn(D, dtype=torch.float64)

    def cost(z):
        return torch.einsum("...i,ij,...j->...", z, A, z) + z @ b

    params = [coord_scale, logits, component_scale]
    pi = logits.softmax(-1)
    # E[z^T A z] = sum_k pi_k s_k^2 sum_i A_ii c_i^2; the linear term has mean zero
    exact_value = (pi * component_scale**2).sum() * (A.diagonal() * coord_scale**2).sum()
    exact = torch.autograd.grad(exact_value, params)

    estimates = batched_gradient_estimates(
        lambda: GaussianScaleMixture(coord_scale, logits, component_scale),
        cost,
        params,
        batch_size=1000,
    )
    z, se, exact_flat = z_scores(estimates, exact)
    assert z.abs().max() < 4.5, z
    assert (exact_flat[D : D + K].abs() / se[D : D + K]).max() > 10


def test_seed_style_usage_and_export():
    assert dist.GaussianScaleMixture is GaussianScaleMixture
    shapes = GaussianScaleMixture.infer_shapes(
        coord_scale=(4,), component_logits=(3,), component_scale=(3,)
    )
    assert shapes == ((), (4,))
    coord_scale = torch.ones(4, requires_grad=True)
    logits = torch.zeros(3, requires_grad=True)
    component_scale = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    d = GaussianScaleMixture(coord_scale, logits, component_scale)
    z = d.rsample((10,))
    assert z.shape == (10, 4) and d.event_shape == (4,) and d.batch_shape == ()
    z.pow(2).sum().backward()
    assert all(p.grad is not None for p in (coord_scale, logits, component_scale))
    assert d.expand((2,)).sample((3,)).shape == (3, 2, 4)


@pytest.mark.parametrize(
    "coord_scale,logits,component_scale,name",
    [
        (torch.ones(1), torch.zeros(2), torch.ones(2), "D >= 2"),
        (torch.ones(3), torch.zeros(2), torch.ones(3), "component_scale"),
        (torch.ones(2, 3), torch.zeros(3, 2), torch.ones(2), "coord_scale"),
        (torch.ones(3), torch.zeros(2), -torch.ones(2), "component_scale"),
        (-torch.ones(3), torch.zeros(2), torch.ones(2), "coord_scale"),
    ],
)
def test_bad_parameters_raise(coord_scale, logits, component_scale, name):
    with pytest.raises(ValueError, match=name):
        GaussianScaleMixture(coord_scale, logits, component_scale, validate_args=True)
