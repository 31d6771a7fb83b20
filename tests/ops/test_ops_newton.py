import warnings

import pytest
import torch

from ember.ops.newton import newton_step, newton_step_1d, newton_step_2d, newton_step_3d


def _quadratic_problem(batch, dim, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(batch + (dim, dim), generator=g, dtype=torch.float64)
    H = A @ A.transpose(-1, -2) + torch.eye(dim, dtype=torch.float64)
    mu = torch.randn(batch + (dim,), generator=g, dtype=torch.float64)
    return H, mu


def _loss(x, H, mu):
    d = x - mu
    return 0.5 * (d.unsqueeze(-2) @ H @ d.unsqueeze(-1)).sum()


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_newton_step_lands_on_quadratic_optimum(dim, batch):
    H, mu = _quadratic_problem(batch, dim, dim)
    x = torch.randn(batch + (dim,), dtype=torch.float64, requires_grad=True)
    mode, cov = newton_step(_loss(x, H, mu), x)
    assert mode.shape == x.shape and cov.shape == batch + (dim, dim)
    assert torch.allclose(mode, mu, atol=1e-10)
    assert torch.allclose(cov, torch.linalg.inv(H), atol=1e-10)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_newton_result_differentiable_in_loss_params(dim):
    # the mode of 0.5 (x - mu)^T H (x - mu) is mu, so d mode / d mu = I
    H, mu = _quadratic_problem((), dim, 7)
    mu.requires_grad_()
    x = torch.zeros(dim, dtype=torch.float64, requires_grad=True)
    mode, _ = newton_step(_loss(x, H, mu), x)
    mode.sum().backward()
    assert torch.allclose(mu.grad, torch.ones(dim, dtype=torch.float64))


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_trust_radius_bounds_the_step(dim):
    H, mu = _quadratic_problem((5,), dim, 11)
    mu = mu * 100
    x = torch.zeros(5, dim, dtype=torch.float64, requires_grad=True)
    mode, _ = newton_step(_loss(x, H, mu), x, trust_radius=0.5)
    step = (mode - x.detach()).norm(dim=-1)
    bound = 0.5
    assert (step <= bound + 1e-9).all()
    assert (step > 0).all()
    # the step still decreases the loss
    assert _loss(mode, H, mu) < _loss(x.detach(), H, mu)


def test_trust_radius_is_inactive_for_small_steps():
    H, mu = _quadratic_problem((3,), 2, 5)
    x = (mu + 1e-3).clone().requires_grad_()
    mode, _ = newton_step(_loss(x, H, mu), x, trust_radius=100.0)
    assert torch.allclose(mode, mu, atol=1e-6)


def test_newton_iteration_converges_on_nonquadratic():
    # minimize sum(cosh(x - c)): the optimum is x = c
    c = torch.tensor([[0.3], [-1.2], [2.0]], dtype=torch.float64)
    x = torch.zeros(3, 1, dtype=torch.float64)
    for _ in range(20):
        x = x.detach().requires_grad_()
        x, _ = newton_step_1d(torch.cosh(x - c).sum(), x, trust_radius=1.0)
    assert torch.allclose(x, c, atol=1e-12)


def test_1d_negative_curvature_moves_downhill():
    x = torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True)
    mode, _ = newton_step_1d(-(x**2).sum(), x, trust_radius=0.25)
    assert float(mode.detach()) == pytest.approx(0.75)


def test_errors():
    x = torch.zeros(2, 4, requires_grad=True)
    with pytest.raises(NotImplementedError, match="1, 2 or 3"):
        newton_step((x**2).sum(), x)
    with pytest.raises(ValueError, match="at least one dimension"):
        newton_step(torch.tensor(0.0), torch.tensor(0.0))
    y = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match="scalar"):
        newton_step_2d((y**2).sum(-1), y)
    with pytest.raises(ValueError, match="rightmost size 3"):
        newton_step_3d((y**2).sum(), y)


def test_nan_gradient_warns():
    x = torch.tensor([[-1.0, 1.0]], requires_grad=True)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        newton_step_2d(torch.sqrt(x).sum(), x)
    assert any("nan" in str(m.message).lower() for m in w)
