"""permute with an event shape, conditioned autoregressive flows exposing their
ordering, and the transform cache when a subclass overrides ``parameters``."""

import pytest
import torch

import ember.distributions as dist
from ember.distributions import transforms as T


@pytest.mark.parametrize("dim, shape", [(-1, (5,)), (-2, (3, 4)), (-3, (2, 3, 4))])
def test_permute_takes_the_event_shape(dim, shape):
    t = T.permute(shape if dim < -1 else shape[-1], dim=dim)
    x = torch.randn((6,) + shape)
    y = t(x)
    assert y.shape == x.shape
    assert torch.equal(y.sort(dim).values, x.sort(dim).values)  # a permutation along dim
    assert torch.equal(t.inv(y), x)
    assert t.log_abs_det_jacobian(x, y).shape == (6,) + shape[: len(shape) + dim]
    with pytest.raises(ValueError, match="event shape"):
        T.permute((3, 4), dim=-1)
    with pytest.raises(ValueError, match="event shape"):
        T.permute(4, dim=-2)


def test_conditioned_autoregressive_flow_exposes_its_ordering():
    torch.manual_seed(0)
    cond = T.conditional_affine_autoregressive(4, 3)
    t = cond.condition(torch.rand(3))
    perm = t.arn.get_permutation()
    assert torch.equal(perm, t.arn.permutation)
    assert sorted(perm.tolist()) == [0, 1, 2, 3]
    # in the network's order, output k depends only on inputs before it: the Jacobian
    # is triangular, and its diagonal gives log|det J|
    x = torch.randn(4)
    jac = torch.autograd.functional.jacobian(t, x)  # jac[k, j] = dy_k / dx_j
    ordered = jac[perm][:, perm]
    assert torch.allclose(ordered.triu(1), torch.zeros(4, 4), atol=1e-6)
    ldj = t.log_abs_det_jacobian(x, t(x))
    assert ldj.item() == pytest.approx(ordered.diagonal().abs().log().sum().item(), abs=1e-5)


def test_cache_does_not_call_overridden_parameters():
    class Wrapped(dist.TransformModule):
        """A module wrapping a plain transform and reporting the wrapped one's parameters."""

        domain = dist.constraints.real
        codomain = dist.constraints.real
        bijective = True

        def __init__(self, inner):
            super().__init__(cache_size=1)
            self.inner = inner

        def _call(self, x):
            return self.inner(x)

        def _inverse(self, y):
            return self.inner.inv(y)

        def log_abs_det_jacobian(self, x, y):
            return self.inner.log_abs_det_jacobian(x, y)

        def parameters(self):
            return self.inner.parameters()  # the plain transform has none: AttributeError

    t = Wrapped(dist.transforms.ExpTransform())
    x = torch.randn(3)
    y = t(x)
    assert torch.allclose(y, x.exp())
    assert t(x) is y  # cached
    assert torch.allclose(t.inv(y), x)
