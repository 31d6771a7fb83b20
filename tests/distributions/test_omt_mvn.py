"""OMTMultivariateNormal: same law as MultivariateNormal, unbiased OMT gradients."""

import numpy as np
import pytest
import torch
from _pathwise import batched_gradient_estimates, z_scores
from scipy import stats

import ember.distributions as dist
from ember.distributions import OMTMultivariateNormal
from ember.distributions.omt_mvn import _solve_lyapunov


def _params(D, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(batch + (D,), generator=g, dtype=torch.float64)
    L = torch.randn(batch + (D, D), generator=g, dtype=torch.float64).tril(-1)
    L = L + torch.diag_embed(0.5 + torch.rand(batch + (D,), generator=g, dtype=torch.float64))
    return loc, L


def test_log_prob_matches_scipy_and_samples_match_moments():
    torch.manual_seed(0)
    loc, L = _params(3)
    d = OMTMultivariateNormal(loc, L)
    cov = (L @ L.t()).numpy()
    z = d.sample((20000,))
    expected = stats.multivariate_normal(loc.numpy(), cov).logpdf(z[:5].numpy())
    assert np.allclose(d.log_prob(z[:5]).numpy(), expected)
    se = (torch.diagonal(L @ L.t()) / z.size(0)).sqrt()
    assert ((z.mean(0) - loc).abs() < 4.5 * se).all()
    assert torch.allclose(torch.cov(z.t()), L @ L.t(), atol=0.1)


def test_lyapunov_solver():
    _, L = _params(4, seed=3)
    cov = L @ L.t()
    S = torch.randn(4, 4, dtype=torch.float64)
    S = S + S.t()
    B = _solve_lyapunov(cov, S)
    assert torch.allclose(B @ cov + cov @ B, S)


@pytest.mark.parametrize("D", [2, 3, 5])
def test_omt_gradient_of_quadratic_matches_analytic(D):
    torch.manual_seed(D)
    loc, L = (t.clone().requires_grad_() for t in _params(D, seed=D))
    A = torch.randn(D, D, dtype=torch.float64)
    A = A @ A.t() / D
    b = torch.randn(D, dtype=torch.float64)

    def cost(z):
        return torch.einsum("...i,ij,...j->...", z, A, z) + z @ b

    exact_value = (A * (L @ L.t())).sum() + loc @ A @ loc + b @ loc
    exact_loc, exact_L = torch.autograd.grad(exact_value, [loc, L])
    # scale_tril is lower triangular: its upper triangle gets exactly zero gradient
    exact = (exact_loc, exact_L.tril())
    estimates = batched_gradient_estimates(lambda: OMTMultivariateNormal(loc, L), cost, [loc, L])
    z, se, exact_flat = z_scores(estimates, exact)
    upper = torch.cat(
        [torch.zeros(D, dtype=torch.bool), torch.ones(D, D).triu(1).bool().reshape(-1)]
    )
    assert (estimates[:, upper] == 0).all()
    assert z[~upper].abs().max() < 4.5, z


def test_single_sample_gradient_follows_the_omt_field():
    # per sample, d cost / dL = 2 B L with B Sigma + Sigma B = sym(g x^T) (scipy's solver)
    from scipy.linalg import solve_continuous_lyapunov

    torch.manual_seed(0)
    loc, L = _params(3, seed=4)
    L.requires_grad_()
    z = OMTMultivariateNormal(loc, L).rsample()
    (grad,) = torch.autograd.grad(z.pow(3).sum(), [L])
    g = (3 * z.pow(2)).detach().numpy()
    x = (z - loc).detach().numpy()
    cov = (L @ L.t()).detach().numpy()
    S = 0.5 * (np.outer(g, x) + np.outer(x, g))
    B = solve_continuous_lyapunov(cov, S)
    assert np.allclose(grad.numpy(), np.tril(2 * B @ L.detach().numpy()))
    # and it differs from the plain reparameterization gradient g eps^T
    eps = np.linalg.solve(L.detach().numpy(), x)
    assert not np.allclose(grad.numpy(), np.outer(g, eps))


def test_batched_parameters_and_expand():
    torch.manual_seed(1)
    loc, L = (t.clone().requires_grad_() for t in _params(2, seed=1, batch=(3,)))
    d = OMTMultivariateNormal(loc, L)
    assert d.batch_shape == (3,) and d.event_shape == (2,)
    z = d.rsample((5,))
    assert z.shape == (5, 3, 2)
    z.pow(2).sum().backward()
    assert loc.grad.shape == (3, 2) and L.grad.shape == (3, 2, 2)
    # a shared scale_tril receives the gradient summed over the batch
    shared = torch.eye(2, requires_grad=True)
    OMTMultivariateNormal(torch.zeros(4, 2), shared).rsample((6,)).sum().backward()
    assert shared.grad.shape == (2, 2)
    e = d.expand((2, 3))
    assert isinstance(e, OMTMultivariateNormal) and e.sample().shape == (2, 3, 2)


def test_export_and_constraints():
    assert dist.OMTMultivariateNormal is OMTMultivariateNormal
    assert set(OMTMultivariateNormal.arg_constraints) == {"loc", "scale_tril"}
    assert OMTMultivariateNormal.has_rsample
    assert OMTMultivariateNormal.infer_shapes(loc=(4,), scale_tril=(2, 4, 4)) == ((2,), (4,))


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="scale_tril"):
        OMTMultivariateNormal(torch.zeros(3), torch.eye(2))
    with pytest.raises(ValueError, match="loc"):
        OMTMultivariateNormal(torch.tensor(0.0), torch.eye(2))
    with pytest.raises(ValueError, match="scale_tril"):
        OMTMultivariateNormal(torch.zeros(2), torch.ones(2, 2), validate_args=True)
