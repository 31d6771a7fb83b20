import math

import pytest
import torch

from ember.ops.ssm_gp import MaternKernel


def matern(nu, r, rho, sigma):
    """Closed-form Matérn covariance at lag r."""
    if nu == 0.5:
        return sigma**2 * math.exp(-r / rho)
    if nu == 1.5:
        a = math.sqrt(3) * r / rho
        return sigma**2 * (1 + a) * math.exp(-a)
    a = math.sqrt(5) * r / rho
    return sigma**2 * (1 + a + a * a / 3) * math.exp(-a)


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
def test_state_space_reproduces_matern_covariance(nu):
    torch.set_default_dtype(torch.float64)
    try:
        rho = torch.tensor([0.7, 1.9])
        sigma = torch.tensor([1.3, 0.4])
        mk = MaternKernel(nu, 2, length_scale_init=rho, kernel_scale_init=sigma)
        P = mk.stationary_covariance().detach()
        for dt in [0.0, 0.1, 0.5, 2.0]:
            A = mk.transition_matrix(dt).detach()
            # Cov(z_0, z_dt) = P A (states multiply A from the right)
            cross = (P @ A).detach()
            for i in range(2):
                expected = matern(nu, dt, float(rho[i]), float(sigma[i]))
                assert float(cross[i, 0, 0]) == pytest.approx(expected, rel=1e-10, abs=1e-12)
            # stationarity: A^T P A + Q = P
            Q = mk.process_covariance(A).detach()
            assert torch.allclose(A.transpose(-1, -2) @ P @ A + Q, P, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def test_stationary_covariance_derivative_variances():
    # Var f' = -k''(0) and Var f'' = k''''(0) for the Matérn-5/2 kernel:
    # with lam^2 = 5 / rho^2, Var f' = sigma^2 lam^2 / 3, Var f'' = sigma^2 lam^4
    mk = MaternKernel(2.5, 1, torch.tensor([2.0]), torch.tensor([3.0]))
    P = mk.stationary_covariance()[0].detach()
    lam2 = 5 / 4
    assert float(P[1, 1]) == pytest.approx(9 * lam2 / 3, rel=1e-6)
    assert float(P[2, 2]) == pytest.approx(9 * lam2**2, rel=1e-6)
    assert float(P[0, 2]) == pytest.approx(-9 * lam2 / 3, rel=1e-6)


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
def test_forward_backward_identity_and_psd(nu):
    mk = MaternKernel(nu, 3, length_scale_init=torch.tensor([0.5, 1.0, 2.0]))
    eye = torch.eye(mk.state_dim).expand(3, -1, -1)
    A = mk.transition_matrix(0.3)
    assert torch.allclose(A @ mk.transition_matrix(-0.3), eye, atol=1e-5)
    assert torch.allclose(mk.transition_matrix(torch.tensor([1e-9])), eye, atol=1e-6)
    torch.linalg.cholesky(mk.stationary_covariance())
    torch.linalg.cholesky(mk.process_covariance(A))


def test_parameters_are_learnable_and_positive():
    mk = MaternKernel(1.5, 2)
    names = sorted(n for n, _ in mk.named_parameters())
    assert names == ["kernel_scale_unconstrained", "length_scale_unconstrained"]
    assert torch.allclose(mk.length_scale, torch.ones(2))
    mk.transition_matrix(0.5).sum().backward()
    assert mk.length_scale_unconstrained.grad.abs().sum() > 0
    mk.length_scale = torch.tensor([3.0, 4.0])
    assert torch.allclose(mk.length_scale, torch.tensor([3.0, 4.0]))


def test_errors():
    with pytest.raises(NotImplementedError, match="nu"):
        MaternKernel(nu=1.0)
    with pytest.raises(ValueError, match="shape"):
        MaternKernel(1.5, 2, length_scale_init=torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        MaternKernel(1.5, 1, kernel_scale_init=torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="trailing shape"):
        MaternKernel(1.5, 1).process_covariance(torch.eye(3))
