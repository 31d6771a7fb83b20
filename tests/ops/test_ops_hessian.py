import torch

from ember.ops.hessian import hessian


def _f(a, b):
    return (a**3).sum() * b[0] + torch.sin(a[0] * b[1]) + (a @ a) * (b @ b)


def test_hessian_matches_autograd_functional():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    H = hessian(_f(a, b), [a, b])
    blocks = torch.autograd.functional.hessian(_f, (a.detach(), b.detach()))
    expected = torch.cat([torch.cat([blocks[i][j] for j in range(2)], 1) for i in range(2)], 0)
    assert H.shape == (5, 5)
    assert torch.allclose(H, expected, atol=1e-12)


def test_hessian_of_quadratic_form_is_symmetric_part():
    A = torch.tensor([[1.0, 2.0], [0.0, 3.0]], dtype=torch.float64)
    x = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    H = hessian(x @ A @ x, x)
    assert torch.equal(H, A + A.T)


def test_hessian_with_matrix_param_and_linear_part():
    x = torch.ones(2, 2, requires_grad=True)
    y = torch.ones(1, requires_grad=True)
    # y enters linearly: its rows/cols of the Hessian are zero
    H = hessian((x**2).sum() + 3 * y.sum(), [x, y])
    expected = torch.zeros(5, 5)
    expected[:4, :4] = 2 * torch.eye(4)
    assert torch.equal(H, expected)
