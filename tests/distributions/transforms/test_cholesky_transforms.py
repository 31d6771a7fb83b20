"""Cholesky-type transforms and the biject_to / transform_to registrations onto ember's
constraints: log|det J| against autograd Jacobians on the free entries."""

import warnings

import pytest
import torch
from torch.autograd.functional import jacobian

from ember.distributions import biject_to, constraints, transform_to
from ember.distributions import transforms as T

DT = torch.float64


def _logdet(f, x):
    return torch.linalg.slogdet(jacobian(f, x)).logabsdet


def _random_spd(n, batch=()):
    A = torch.randn(batch + (n, n), dtype=DT)
    return A @ A.mT + n * torch.eye(n, dtype=DT)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_cholesky_transform_on_the_lower_triangle(n):
    torch.manual_seed(n)
    t = T.CholeskyTransform()
    x = _random_spd(n)
    y = t(x)
    assert torch.allclose(y, torch.linalg.cholesky(x))
    assert torch.allclose(t.inv(y), x)
    rows, cols = torch.tril_indices(n, n)

    def f(v):  # symmetric matrix from its lower triangle -> lower triangle of its factor
        m = torch.zeros(n, n, dtype=DT).index_put((rows, cols), v)
        m = m + m.T - torch.diag(m.diagonal())
        return t(m)[rows, cols]

    assert torch.allclose(t.log_abs_det_jacobian(x, y), _logdet(f, x[rows, cols]))


@pytest.mark.parametrize("n", [2, 3, 5])
def test_corr_matrix_cholesky_transform_on_the_strict_lower_triangle(n):
    torch.manual_seed(n)
    t = T.CorrMatrixCholeskyTransform()
    assert t.domain is constraints.corr_matrix
    L = T.CorrCholeskyTransform()(torch.randn(n * (n - 1) // 2, dtype=DT))
    x = t.inv(L)
    assert constraints.corr_matrix.check(x)
    assert torch.allclose(t(x), L)
    rows, cols = torch.tril_indices(n, n, offset=-1)

    def f(v):  # correlation matrix from its strict lower triangle -> that of its factor
        m = torch.zeros(n, n, dtype=DT).index_put((rows, cols), v)
        m = m + m.T + torch.eye(n, dtype=DT)
        return t(m)[rows, cols]

    assert torch.allclose(t.log_abs_det_jacobian(x, L), _logdet(f, x[rows, cols]))


def test_cholesky_transforms_batched():
    torch.manual_seed(0)
    x = _random_spd(3, (6, 5))
    for t in [T.CholeskyTransform(), T.CorrMatrixCholeskyTransform()]:
        y = t(x)
        assert y.shape == (6, 5, 3, 3)
        assert t.log_abs_det_jacobian(x, y).shape == (6, 5)
    with pytest.raises(ValueError, match=r"\(\.\.\., n, n\)"):
        T.CholeskyTransform()(torch.ones(2, 3))


def test_corr_l_cholesky_is_deprecated():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        t = T.CorrLCholeskyTransform()
    assert w and issubclass(w[0].category, FutureWarning)
    x = torch.randn(3, dtype=DT)
    assert torch.equal(t(x), T.CorrCholeskyTransform()(x))


def test_registrations():
    assert isinstance(biject_to(constraints.ordered_vector), T.OrderedTransform)
    assert isinstance(transform_to(constraints.sphere), T.Normalize)
    assert isinstance(biject_to(constraints.softplus_positive), T.SoftplusTransform)
    assert isinstance(
        transform_to(constraints.softplus_lower_cholesky), T.SoftplusLowerCholeskyTransform
    )
    assert isinstance(transform_to(constraints.unit_lower_cholesky), T.UnitLowerCholeskyTransform)
    parts = biject_to(constraints.corr_matrix).parts
    assert isinstance(parts[1].inv, T.CorrMatrixCholeskyTransform)


@pytest.mark.parametrize(
    "constraint, shape",
    [
        (constraints.positive_ordered_vector, (5,)),
        (constraints.ordered_vector, (5,)),
        (constraints.corr_matrix, (6,)),
        (constraints.positive_definite, (3, 3)),
        (constraints.sphere, (4,)),
    ],
)
@pytest.mark.parametrize("batch", [(), (3, 2)])
def test_transform_to_lands_in_the_constraint(constraint, shape, batch):
    torch.manual_seed(3)
    y = transform_to(constraint)(torch.randn(batch + shape, dtype=DT))
    ok = constraint.check(y)
    assert ok.shape == batch and ok.all()


def test_corr_matrix_bijection_round_trip_and_jacobian():
    torch.manual_seed(4)
    t = biject_to(constraints.corr_matrix)
    x = torch.randn(2, 6, dtype=DT)
    c = t(x)
    assert torch.allclose(t.inv(c), x)
    rows, cols = torch.tril_indices(4, 4, offset=-1)
    ladj = t.log_abs_det_jacobian(x, c)
    assert ladj.shape == (2,)
    assert torch.allclose(ladj[0], _logdet(lambda v: t(v)[rows, cols], x[0]))


def test_positive_definite_transform_matches_cholesky():
    x = torch.tensor([[0.5, 9.0], [0.3, -1.0]], dtype=DT)
    t = transform_to(constraints.positive_definite)
    L = torch.tensor([[0.5, 0.0], [0.3, -1.0]], dtype=DT)
    L[1, 1] = torch.tensor(-1.0, dtype=DT).exp()
    L[0, 0] = torch.tensor(0.5, dtype=DT).exp()
    assert torch.allclose(t(x), L @ L.T)
