"""Arrowhead factorisations against dense linear algebra."""

import pytest
import torch

from ember.ops.arrowhead import SymmArrowhead, sqrt, triu_gram, triu_inverse, triu_matvecmul


def dense_symm(x):
    h = x.top.shape[0]
    n = x.top.shape[1]
    m = torch.zeros(n, n, dtype=x.top.dtype)
    m[:h] = x.top
    m[:, :h] = x.top.T
    m[h:, h:] = torch.diag(x.bottom_diag)
    return m


def dense_triu(u):
    h = u.top.shape[0]
    n = h + u.bottom_diag.shape[0]
    m = torch.zeros(n, n, dtype=u.bottom_diag.dtype)
    m[:h] = u.top
    m[h:, h:] = torch.diag(u.bottom_diag)
    return m


@pytest.mark.parametrize("h", [0, 1, 3, 6])
def test_arrowhead_ops_match_dense(h):
    n = 6
    a = torch.randn(n, n, dtype=torch.double)
    cov = a @ a.T + n * torch.eye(n, dtype=torch.double)
    x = SymmArrowhead(cov[:h], cov.diag()[h:])
    full = dense_symm(x)
    u = sqrt(x)
    U = dense_triu(u)
    torch.testing.assert_close(U, U.triu())
    torch.testing.assert_close(U @ U.T, full)
    v = triu_inverse(u)
    V = dense_triu(v)
    torch.testing.assert_close(V, torch.linalg.inv(U))
    y = torch.randn(n, dtype=torch.double)
    torch.testing.assert_close(triu_matvecmul(v, y), V @ y)
    torch.testing.assert_close(triu_matvecmul(v, y, transpose=True), V.T @ y)
    gram = triu_gram(v)
    if h == 0:
        torch.testing.assert_close(gram, full.diag().reciprocal())
    else:
        torch.testing.assert_close(gram, torch.linalg.inv(full))


def test_bad_arrowheads():
    with pytest.raises(ValueError, match="bottom_diag of shape"):
        sqrt(SymmArrowhead(torch.eye(2, 4), torch.ones(3)))
    with pytest.raises(ValueError, match="not positive definite"):
        sqrt(SymmArrowhead(torch.tensor([[1.0, 2.0]]), torch.tensor([1.0])))
    u = sqrt(SymmArrowhead(torch.tensor([[2.0, 0.5]]), torch.tensor([1.0])))
    with pytest.raises(ValueError, match="size 2"):
        triu_matvecmul(u, torch.ones(3))
