"""SVGD: the exact update direction, the kernels' gradients, and a Gaussian target's moments."""

import math

import numpy as np
import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import SVGD, IMQSteinKernel, RBFSteinKernel
from ember.infer.svgd import median_bandwidth
from ember.optim import SGD, Adam


@pytest.mark.parametrize("kernel", [RBFSteinKernel(), IMQSteinKernel(alpha=0.7, beta=-0.3)])
def test_kernel_gradient_is_derivative_of_log_kernel(kernel):
    torch.manual_seed(0)
    x = torch.randn(6, 3, dtype=torch.float64)
    log_k, grad = kernel.log_kernel_and_grad(x)
    h = median_bandwidth((x[None] - x[:, None]) ** 2, kernel.bandwidth_factor)

    def log_k_direct(xn, xm):  # coordinate-wise log kernel of (x_n, x_m)
        d2 = (xn - xm) ** 2 / h
        if isinstance(kernel, RBFSteinKernel):
            return -d2
        return kernel.beta * torch.log(kernel.alpha + d2)

    for n in range(6):
        for m in range(6):
            xn = x[n].clone().requires_grad_()
            value = log_k_direct(xn, x[m])
            assert torch.allclose(log_k[n, m], value.detach())
            # d/dx_n of each coordinate factor (coordinates are separate)
            (g,) = torch.autograd.grad(value.sum(), xn)
            assert torch.allclose(grad[n, m], g)


def test_median_bandwidth_matches_numpy():
    torch.manual_seed(1)
    x = torch.randn(7, 2, dtype=torch.float64)  # 21 pairs: an odd count, a unique median
    norm_sq = (x[None] - x[:, None]) ** 2
    h = median_bandwidth(norm_sq, 2.0)
    i, j = np.triu_indices(7, 1)
    expected = 2.0 * np.median(norm_sq.numpy()[i, j], axis=0) / math.log(8)
    assert np.allclose(h.numpy(), expected)


def plated_model():
    with ember.plate("p", 2, dim=-1):
        ember.sample("a", dist.Normal(torch.tensor([0.5, -1.0], dtype=torch.float64), 0.8))
    ember.sample("b", dist.Gamma(torch.tensor(2.0, dtype=torch.float64), 3.0))


def log_density_unconstrained(a, log_b):
    """log p(a, exp(log_b)) + log_b: the model's density in the unconstrained space."""
    lp = torch.distributions.Normal(torch.tensor([0.5, -1.0], dtype=torch.float64), 0.8)
    lp_a = lp.log_prob(a).sum(-1)
    lp_b = torch.distributions.Gamma(torch.tensor(2.0, dtype=torch.float64), 3.0).log_prob(
        log_b.exp()
    )
    return lp_a + lp_b + log_b


@pytest.mark.parametrize("mode", ["univariate", "multivariate"])
@pytest.mark.parametrize("kernel_cls", [RBFSteinKernel, IMQSteinKernel])
def test_step_moves_particles_along_svgd_direction(kernel_cls, mode):
    # SGD with lr 1: the new particles are the old ones plus phi, computed here directly
    ember.clear_param_store()
    ember.set_rng_seed(3)
    n = 5
    kernel = kernel_cls()
    svgd = SVGD(plated_model, kernel, SGD({"lr": 1.0}), n, 1, mode=mode)
    svgd.step()  # initializes the particles (one step taken)
    before = svgd.get_named_particles()
    assert before["a"].shape == (n, 2) and before["b"].shape == (n, 1)
    # the parameter holds the unconstrained sites one after the other, each flattened
    latent = ember.param("svgd_particles").unconstrained().detach().clone()
    a = latent[: 2 * n].reshape(n, 2).requires_grad_()
    log_b = latent[2 * n :].requires_grad_()
    assert torch.allclose(before["a"], a) and torch.allclose(before["b"].reshape(n), log_b.exp())
    (ga, gb) = torch.autograd.grad(log_density_unconstrained(a, log_b).sum(), [a, log_b])
    x = torch.cat([a.detach(), log_b.detach()[:, None]], dim=-1)  # (n, 3)
    score = torch.cat([ga, gb[:, None]], dim=-1)
    log_k, k_grad = kernel.log_kernel_and_grad(x)
    if mode == "multivariate":
        k = log_k.sum(-1).exp()
        phi = (k @ score - torch.einsum("nm,nmd->nd", k, k_grad)) / n
    else:
        k = log_k.exp()
        phi = (torch.einsum("nmd,md->nd", k, score) - torch.einsum("nmd,nmd->nd", k, k_grad)) / n
    squared = svgd.step()
    latent = ember.param("svgd_particles").unconstrained().detach()
    after_a, after_log_b = latent[: 2 * n].reshape(n, 2), latent[2 * n :]
    assert torch.allclose(after_a, x[:, :2] + phi[:, :2], rtol=1e-9, atol=1e-12)
    assert torch.allclose(after_log_b, x[:, 2] + phi[:, 2], rtol=1e-9, atol=1e-12)
    assert squared["a"] == pytest.approx(phi[:, :2].pow(2).mean().item(), rel=1e-9)
    assert squared["b"] == pytest.approx(phi[:, 2].pow(2).mean().item(), rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["univariate", "multivariate"])
def test_particles_match_gaussian_target_moments(mode):
    ember.clear_param_store()
    ember.set_rng_seed(0)
    mean = torch.tensor([1.0, -2.0])
    cov = torch.tensor([[1.0, 0.6], [0.6, 2.0]])
    if mode == "univariate":
        cov = torch.diag(cov.diagonal())  # coordinate-wise kernels target independent coordinates

    def model():
        ember.sample("z", dist.MultivariateNormal(mean, cov))

    n = 200
    kernel = RBFSteinKernel()
    svgd = SVGD(model, kernel, Adam({"lr": 0.05}), n, 0, mode=mode)
    for step in range(600):
        kernel.bandwidth_factor = 1.0 + 4.0 * step / 600
        svgd.step()
    z = svgd.get_named_particles()["z"]
    assert z.shape == (n, 2)
    sd = cov.diagonal().sqrt()
    # within three standard errors of n independent draws
    assert ((z.mean(0) - mean).abs() < 3 * sd / n**0.5).all()
    emp_cov = torch.cov(z.T)
    var_se = cov.diagonal() * (2 / n) ** 0.5
    assert ((emp_cov.diagonal() - cov.diagonal()).abs() < 3 * var_se).all()
    if mode == "multivariate":
        cov_se = ((cov[0, 0] * cov[1, 1] + cov[0, 1] ** 2) / n) ** 0.5
        assert abs(emp_cov[0, 1] - cov[0, 1]) < 3 * cov_se


def test_named_particles_keep_plate_layout():
    ember.clear_param_store()

    def model():
        with ember.plate("rates", 3):
            ember.sample("r", dist.Gamma(2.0, 1.0))
        ember.sample("v", dist.Dirichlet(torch.ones(4)))

    svgd = SVGD(model, RBFSteinKernel(), Adam({"lr": 0.01}), 6, 1)
    svgd.step()
    particles = svgd.get_named_particles()
    assert particles["r"].shape == (6, 3) and (particles["r"] > 0).all()
    assert particles["v"].shape == (6, 1, 4)
    assert torch.allclose(particles["v"].sum(-1), torch.ones(6, 1))


def test_bad_arguments():
    def model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    adam = Adam({"lr": 0.1})
    with pytest.raises(TypeError, match="SteinKernel"):
        SVGD(model, lambda x: x, adam, 10, 0)
    with pytest.raises(TypeError, match="optim"):
        SVGD(model, RBFSteinKernel(), torch.optim.Adam, 10, 0)
    with pytest.raises(ValueError, match="two particles"):
        SVGD(model, RBFSteinKernel(), adam, 1, 0)
    with pytest.raises(ValueError, match="mode"):
        SVGD(model, RBFSteinKernel(), adam, 10, 0, mode="bivariate")
    with pytest.raises(ValueError, match="max_plate_nesting"):
        SVGD(model, RBFSteinKernel(), adam, 10, -1)
    with pytest.raises(ValueError, match="bandwidth_factor"):
        RBFSteinKernel(bandwidth_factor=0.0)
    with pytest.raises(ValueError, match="beta"):
        IMQSteinKernel(beta=0.5)
