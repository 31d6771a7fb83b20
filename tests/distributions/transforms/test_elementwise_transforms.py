"""Elementwise and vector bijections (ELU, leaky ReLU, positive power, ordered,
simplex-to-ordered, normalize): values, inverses and log|det J| against autograd."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from ember.distributions import constraints
from ember.distributions import transforms as T

DT = torch.float64


def _logdet(f, x):
    return torch.linalg.slogdet(jacobian(f, x)).logabsdet


def _check_elementwise(t, x):
    y = t(x)
    assert t.codomain.check(y).all()
    ladj = t.log_abs_det_jacobian(x, y)
    assert ladj.shape == x.shape
    J = jacobian(t, x.reshape(-1)).diagonal()
    assert torch.allclose(ladj.reshape(-1), J.abs().log(), atol=1e-10)
    assert torch.allclose(t._inverse(y), x, atol=1e-10)
    return y


def test_elu():
    x = torch.tensor([[-3.0, -0.5], [0.0, 2.5]], dtype=DT)
    y = _check_elementwise(T.elu(), x)
    assert torch.allclose(
        y, torch.tensor([[math.exp(-3) - 1, math.exp(-0.5) - 1], [0, 2.5]], dtype=DT)
    )
    assert T.ELUTransform().codomain.check(torch.tensor(-1.0)).item() is False
    assert T.ELUTransform() == T.elu()


def test_leaky_relu():
    x = torch.tensor([[-3.0, -0.5, 0.7], [1.0, -20.0, 2.5]], dtype=DT)
    y = _check_elementwise(T.leaky_relu(), x)
    assert torch.allclose(y, torch.where(x > 0, x, 0.01 * x))
    assert torch.allclose(
        T.LeakyReLUTransform().log_abs_det_jacobian(x, y)[0, 0],
        torch.tensor(math.log(0.01), dtype=DT),
    )


@pytest.mark.parametrize("p", [0.3, 1.0, 3.0, 2])
def test_positive_power(p):
    x = torch.tensor([[-2.0, -0.3, 0.4], [1.5, 3.0, -7.0]], dtype=DT)
    t = T.PositivePowerTransform(p)
    y = _check_elementwise(t, x)
    assert torch.allclose(y, x.sign() * x.abs() ** p)
    assert t.with_cache(1)._cache_size == 1 and t.with_cache(1) == t


def test_positive_power_tensor_exponent_and_validation():
    t = T.PositivePowerTransform(torch.tensor([0.5, 2.0, 3.0], dtype=DT))
    x = torch.tensor([[-4.0], [9.0]], dtype=DT)
    y = t(x)
    assert y.shape == (2, 3) == t.forward_shape((2, 1))
    assert torch.allclose(y[1], torch.tensor([3.0, 81.0, 729.0], dtype=DT))
    assert torch.allclose(t.inv(y), x.expand(2, 3))
    with pytest.raises(ValueError, match="exponent > 0"):
        T.PositivePowerTransform(-1.0, validate_args=True)
    T.PositivePowerTransform(-1.0, validate_args=False)  # no check when asked not to
    zero = torch.zeros(1, dtype=DT)
    assert T.PositivePowerTransform(1.0).log_abs_det_jacobian(zero, zero).item() == 0.0
    assert T.PositivePowerTransform(2.0).log_abs_det_jacobian(zero, zero).item() == -math.inf


def test_ordered_transform():
    torch.manual_seed(0)
    t = T.OrderedTransform()
    x = torch.randn(3, 5, dtype=DT)
    y = t(x)
    assert constraints.ordered_vector.check(y).all()
    assert torch.allclose(t._inverse(y), x, atol=1e-12)
    ladj = t.log_abs_det_jacobian(x, y)
    assert ladj.shape == (3,)
    for i in range(3):
        assert torch.allclose(ladj[i], _logdet(t, x[i]))


def _simplex_chart(t, K):
    """The transform as a function of the first K - 1 simplex entries (the last one is
    one minus their sum): the chart on which log|det J| is measured."""

    def f(head):
        x = torch.cat([head, 1 - head.sum(-1, keepdim=True)], dim=-1)
        return t(x)

    return f


@pytest.mark.parametrize("anchor", [0.0, 1.7])
def test_simplex_to_ordered(anchor):
    torch.manual_seed(1)
    K = 4
    t = T.SimplexToOrderedTransform(anchor)
    x = torch.distributions.Dirichlet(torch.full((3, K), 5.0, dtype=DT)).sample()
    y = t(x)
    assert y.shape == (3, K - 1)
    assert constraints.ordered_vector.check(y).all()
    # the cutpoints reproduce the category probabilities under a logistic centred on anchor
    cdf = torch.sigmoid(y - anchor)
    probs = torch.cat([cdf[..., :1], cdf.diff(dim=-1), 1 - cdf[..., -1:]], dim=-1)
    assert torch.allclose(probs, x, atol=1e-12)
    assert torch.allclose(t._inverse(y), x, atol=1e-12)
    ladj = t.log_abs_det_jacobian(x, y)
    assert ladj.shape == (3,)
    for i in range(3):
        assert torch.allclose(ladj[i], _logdet(_simplex_chart(t, K), x[i, :-1]))


def test_simplex_to_ordered_batched_anchor_and_shapes():
    anchor = torch.tensor([0.0, -1.0], dtype=DT)
    t = T.SimplexToOrderedTransform(anchor)
    x = torch.tensor([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]], dtype=DT)
    y = t(x)
    assert torch.allclose(y[1], y[0] - 1)
    assert t.forward_shape((4, 3, 3)) == (4, 3, 2)
    assert t.inverse_shape((2,)) == (3,)
    assert not t.bijective  # K entries onto K - 1
    with pytest.raises(ValueError, match="K >= 2"):
        t(torch.ones(2, 1, dtype=DT))


@pytest.mark.parametrize("p", [1, 2, 3.5])
def test_normalize(p):
    torch.manual_seed(2)
    t = T.Normalize(p)
    x = torch.randn(4, 3, dtype=DT)
    x[0] = 0
    y = t(x)
    assert torch.allclose(y[0], torch.tensor([1.0, 0, 0], dtype=DT))
    assert torch.allclose(torch.linalg.vector_norm(y, ord=p, dim=-1), torch.ones(4, dtype=DT))
    assert torch.allclose(
        y[1:], x[1:] / torch.linalg.vector_norm(x[1:], ord=p, dim=-1, keepdim=True)
    )
    assert torch.allclose(t(t.inv(y)), y, atol=1e-15)  # a right inverse
    assert not t.bijective
    if p == 2:
        assert constraints.sphere.check(y).all()
    with pytest.raises(ValueError, match="p must be"):
        T.Normalize(-1)
