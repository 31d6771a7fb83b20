import pytest
import torch

from ember.ops.linalg import determinant_3d, eig_3d, inv3d, rinverse


def _spd(batch, n, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(batch + (n, n), generator=g, dtype=torch.float64)
    return A @ A.transpose(-1, -2) + torch.eye(n, dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("sym", [False, True])
def test_rinverse_matches_linalg_inv(n, sym):
    M = _spd((4, 2), n, n)
    if not sym:
        M = M + torch.randn(M.shape, generator=torch.Generator().manual_seed(9), dtype=M.dtype)
    expected = torch.linalg.inv(M)
    assert torch.allclose(rinverse(M, sym=sym), expected, atol=1e-10, rtol=1e-10)


def test_rinverse_2x2_closed_form():
    M = torch.tensor([[4.0, 7.0], [2.0, 6.0]], dtype=torch.float64)
    expected = torch.tensor([[0.6, -0.7], [-0.2, 0.4]], dtype=torch.float64)
    assert torch.allclose(rinverse(M), expected, atol=1e-14)


def test_rinverse_is_differentiable():
    M = _spd((), 3, 1).requires_grad_()
    # d/dM tr(M^{-1}) = -(M^{-2})^T
    rinverse(M).diagonal().sum().backward()
    Minv = torch.linalg.inv(M.detach())
    assert torch.allclose(M.grad, -(Minv @ Minv).T, atol=1e-10)


def test_determinant_3d():
    H = torch.randn(6, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(determinant_3d(H), torch.linalg.det(H), atol=1e-12)
    assert torch.allclose(inv3d(H), torch.linalg.inv(H), atol=1e-9)


def test_eig_3d_matches_eigvalsh():
    H = _spd((7,), 3, 3)
    lo, mid, hi = eig_3d(H)
    expected = torch.linalg.eigvalsh(H)
    assert torch.allclose(torch.stack([lo, mid, hi], -1), expected, atol=1e-10)


def test_eig_3d_repeated_eigenvalues():
    H = torch.diag(torch.tensor([2.0, 2.0, 5.0], dtype=torch.float64))
    lo, mid, hi = eig_3d(H)
    assert [float(lo), float(mid), float(hi)] == pytest.approx([2.0, 2.0, 5.0], abs=1e-6)


def test_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        rinverse(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="3x3"):
        eig_3d(torch.eye(2))
