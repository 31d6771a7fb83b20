"""ember's extra constraints and the transforms registered onto them."""

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import constraints as torch_constraints

from ember.distributions import biject_to, constraints, transform_to

DT = torch.float64


def test_reexports_torch_constraints():
    for name in torch_constraints.__all__:
        assert getattr(constraints, name) is getattr(torch_constraints, name)
    assert constraints.corr_cholesky_constraint is torch_constraints.corr_cholesky
    assert constraints.positive_definite is torch_constraints.positive_definite
    for name in constraints.__all__:
        assert hasattr(constraints, name)


@pytest.mark.parametrize(
    "constraint, good, bad, event_dim",
    [
        (constraints.integer, [-3.0, 0.0, 7.0], [0.5, -1.2], 0),
        (constraints.sphere, [[0.6, 0.8], [1.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]], 1),
        (constraints.ordered_vector, [[-1.0, 0.0, 2.0]], [[0.0, 0.0, 1.0], [2.0, 1.0, 3.0]], 1),
        (constraints.positive_ordered_vector, [[0.1, 0.2]], [[-0.1, 0.2], [0.3, 0.2]], 1),
        (constraints.softplus_positive, [0.1, 3.0], [0.0, -1.0], 0),
        (
            constraints.softplus_lower_cholesky,
            [[[1.0, 0.0], [-2.0, 0.5]]],
            [[[1.0, 0.1], [0.0, 1.0]], [[-1.0, 0.0], [0.0, 1.0]]],
            2,
        ),
        (
            constraints.unit_lower_cholesky,
            [[[1.0, 0.0], [3.0, 1.0]]],
            [[[2.0, 0.0], [3.0, 1.0]], [[1.0, 1.0], [0.0, 1.0]]],
            2,
        ),
        (
            constraints.corr_matrix,
            [[[1.0, 0.3], [0.3, 1.0]]],
            [[[1.0, 1.2], [1.2, 1.0]], [[2.0, 0.0], [0.0, 1.0]], [[1.0, 0.3], [0.2, 1.0]]],
            2,
        ),
    ],
)
def test_check(constraint, good, bad, event_dim):
    assert constraint.event_dim == event_dim
    assert constraint.check(torch.tensor(good)).all()
    assert not constraint.check(torch.tensor(bad)).any()


def test_integer_is_discrete_and_others_not():
    assert constraints.integer.is_discrete
    assert not constraints.ordered_vector.is_discrete
    assert not constraints.sphere.is_discrete


def test_ordered_vector_check_needs_a_dim():
    with pytest.raises(ValueError, match="at least one dim"):
        constraints.ordered_vector.check(torch.tensor(1.0))


def _round_trip(constraint, x):
    for registry in (biject_to, transform_to):
        t = registry(constraint)
        y = t(x)
        assert constraint.check(y).all()
        assert torch.allclose(t.inv(y), x, atol=1e-8)
    return biject_to(constraint)


def _logdet(f, x):
    return torch.linalg.slogdet(jacobian(f, x)).logabsdet


@pytest.mark.parametrize(
    "constraint", [constraints.ordered_vector, constraints.positive_ordered_vector]
)
def test_ordered_transforms(constraint):
    torch.manual_seed(0)
    x = torch.randn(4, dtype=DT)
    t = _round_trip(constraint, x)
    assert torch.allclose(t.log_abs_det_jacobian(x, t(x)), _logdet(t, x))
    batch = torch.randn(3, 4, dtype=DT)
    assert t.log_abs_det_jacobian(batch, t(batch)).shape == (3,)


def test_softplus_positive_transform():
    torch.manual_seed(1)
    x = torch.randn(5, dtype=DT)
    t = _round_trip(constraints.softplus_positive, x)
    assert torch.allclose(t(x), torch.nn.functional.softplus(x))


def _tril_free(n, strict):
    rows, cols = torch.tril_indices(n, n, offset=-1 if strict else 0)
    return rows, cols


def test_softplus_lower_cholesky_transform():
    torch.manual_seed(2)
    n = 3
    x = torch.randn(n, n, dtype=DT).tril()
    t = _round_trip(constraints.softplus_lower_cholesky, x)
    rows, cols = _tril_free(n, strict=False)

    def f(v):
        m = torch.zeros(n, n, dtype=DT).index_put((rows, cols), v)
        return t(m)[rows, cols]

    assert torch.allclose(t.log_abs_det_jacobian(x, t(x)), _logdet(f, x[rows, cols]))


def test_unit_lower_cholesky_transform():
    torch.manual_seed(3)
    x = torch.randn(2, 3, 3, dtype=DT).tril(-1)
    t = _round_trip(constraints.unit_lower_cholesky, x)
    assert torch.equal(t(x).diagonal(dim1=-2, dim2=-1), torch.ones(2, 3, dtype=DT))
    assert torch.equal(t.log_abs_det_jacobian(x, t(x)), torch.zeros(2, dtype=DT))


def test_corr_matrix_transform():
    torch.manual_seed(4)
    n = 4
    x = torch.randn(n * (n - 1) // 2, dtype=DT)
    t = biject_to(constraints.corr_matrix)
    c = t(x)
    assert constraints.corr_matrix.check(c)
    assert torch.allclose(t.inv(c), x, atol=1e-8)
    # the L -> L L^T part, measured on the strictly lower entries of both
    rows, cols = _tril_free(n, strict=True)
    cholesky_part = t.parts[1]
    L = t.parts[0](x)

    def f(v):
        strict = torch.zeros(n, n, dtype=DT).index_put((rows, cols), v)
        diag = (1 - strict.pow(2).sum(-1)).sqrt()
        return cholesky_part(strict + torch.diag(diag))[rows, cols]

    expected = _logdet(f, L[rows, cols])
    assert torch.allclose(cholesky_part.log_abs_det_jacobian(L, c), expected)
