"""The public helpers of ember.distributions.util, against numpy and direct computation."""

import gc
import math
import weakref

import numpy as np
import pytest
import torch

import ember.distributions as dist
from ember.distributions.util import (
    broadcast_shape,
    copy_docs_from,
    deep_to,
    detach,
    enable_validation,
    eye_like,
    gather,
    is_identically_one,
    is_identically_zero,
    is_validation_enabled,
    logsumexp,
    scalar_like,
    scale_and_mask,
    sum_leftmost,
    sum_rightmost,
    validation_enabled,
    weakmethod,
)

INF = float("inf")


@pytest.mark.parametrize(
    "shapes",
    [((),), ((2, 1), (3,)), ((1, 2, 4, 1, 3), (6, 7, 1, 1, 5, 1)), ((), (3, 1), (2,), (4, 3, 1))],
)
def test_broadcast_shape_is_numpys(shapes):
    assert broadcast_shape(*shapes) == np.broadcast_shapes(*shapes)


def test_broadcast_shape_strict_and_errors():
    assert broadcast_shape((4,), (2, 3, 4), strict=True) == (2, 3, 4)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        broadcast_shape((1,), (2,), strict=True)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        broadcast_shape((3,), (4,))


@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -2, INF])
def test_sum_rightmost_and_leftmost_against_numpy(dim):
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    a = x.numpy()
    n = 3 if dim == INF else (dim if dim >= 0 else 3 + dim)
    right = a.sum(axis=tuple(range(3 - n, 3))) if n else a
    left = a.sum(axis=tuple(range(n))) if n else a
    assert np.allclose(sum_rightmost(x, dim).numpy(), right)
    assert np.allclose(sum_leftmost(x, dim).numpy(), left)
    assert sum_rightmost(2.5, dim) == 2.5 and sum_leftmost(2.5, dim) == 2.5


def test_logsumexp_is_stable_and_handles_all_minus_inf():
    x = torch.tensor([[1000.0, 1000.0], [-INF, -INF]])
    assert torch.allclose(logsumexp(x), torch.tensor([1000.0 + math.log(2), -INF]))
    assert logsumexp(x, dim=0, keepdim=True).shape == (1, 2)


def test_scalar_like_and_eye_like_take_dtype():
    proto = torch.zeros(3, dtype=torch.float64)
    s = scalar_like(proto, 1.5)
    assert s.shape == () and s.dtype == torch.float64 and s.item() == 1.5
    assert torch.equal(eye_like(proto, 2, 3), torch.eye(2, 3, dtype=torch.float64))


def test_gather_broadcasts_and_picks():
    value = torch.arange(12.0).reshape(3, 4)
    index = torch.tensor([[3], [0], [2]])
    assert torch.equal(gather(value, index, -1), torch.tensor([[3.0], [4.0], [10.0]]))
    # value broadcast along a new leading dim of the index
    index2 = torch.tensor([[[1]], [[2]]])  # (2, 1, 1)
    out = gather(value, index2, -1)
    assert out.shape == (2, 3, 1)
    assert torch.equal(out[1, :, 0], value[:, 2])


def test_identically_zero_one_and_scale_and_mask():
    assert is_identically_zero(0) and not is_identically_zero(torch.tensor(0.0))
    assert is_identically_one(1.0) and not is_identically_one(2)
    x = torch.tensor([1.0, float("nan"), 3.0])
    mask = torch.tensor([True, False, True])
    assert torch.equal(scale_and_mask(x, 2.0, mask), torch.tensor([2.0, 0.0, 6.0]))
    assert scale_and_mask(0, 2.0, mask) == 0


def test_validation_helpers_are_ember_util_ones():
    import ember.util

    assert enable_validation is ember.util.enable_validation
    assert validation_enabled is ember.util.validation_enabled
    with validation_enabled(False):
        assert not is_validation_enabled()
    assert is_validation_enabled()


def test_weakmethod_breaks_the_reference_cycle():
    class Holder:
        def __init__(self, state):
            self.state = state
            self.callback = self.method

        @weakmethod
        def method(self, *args, **kwargs):
            return self.state, args, kwargs

    h = Holder(7)
    assert h.callback(1, x=2) == (7, (1,), {"x": 2})
    assert h.method.__name__ == "method"
    callback = h.callback
    ref = weakref.ref(h)
    gc.disable()  # the object must go by reference counting alone
    try:
        del h
        assert ref() is None
    finally:
        gc.enable()
    with pytest.raises(AttributeError, match="garbage collected"):
        callback()


def test_weakmethod_refuses_other_assignments():
    class Holder:
        @weakmethod
        def method(self):
            return 1

    h = Holder()
    h.method = h.method  # its own weak binding: allowed
    with pytest.raises(AttributeError, match="weak method"):
        h.method = lambda: 2


def test_copy_docs_from():
    class Source:
        def f(self):
            """Docs of f."""

        @property
        def p(self):
            """Docs of p."""

        def g(self):
            """See elsewhere."""

    @copy_docs_from(Source)
    class Dest(Source):
        def f(self):
            return 1

        @property
        def p(self):
            return 2

        def g(self):
            return 3

        def h(self):
            """Own docs."""

    assert Dest.f.__doc__ == f"See :meth:`{Source.__module__}.Source.f`"
    assert Dest.p.__doc__ == f"See :meth:`{Source.__module__}.Source.p`"
    assert Dest.g.__doc__ == "See elsewhere."
    assert Dest.h.__doc__ == "Own docs."
    assert Dest().p == 2


@pytest.mark.parametrize("shape", [None, (), (4,), (3, 2)])
def test_detach_distributions(shape):
    loc = torch.tensor(0.5, requires_grad=True)
    scale = torch.tensor(2.0, requires_grad=True)
    a = torch.tensor(3.0, requires_grad=True)
    d = dist.TransformedDistribution(
        dist.Normal(loc, scale), [dist.transforms.AffineTransform(a, 1.0)]
    )
    if shape is not None:
        d = d.expand(shape)
    d2 = detach(d)
    assert type(d2) is type(d) and d2.batch_shape == d.batch_shape
    assert not d2.base_dist.loc.requires_grad and not d2.transforms[0].loc.requires_grad
    x = torch.tensor(1.0)
    assert torch.allclose(d2.log_prob(x), d.log_prob(x).detach())
    # tensor data are shared, not copied
    assert d2.base_dist.scale.data_ptr() == d.base_dist.scale.data_ptr()


def test_detach_non_leaf_and_shared_tensors():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    t = w * 3  # not a leaf: torch refuses to deepcopy it
    obj = {"a": t, "b": [t, (t, "text")], "n": 1}
    out = detach(obj)
    assert not out["a"].requires_grad
    assert out["b"][0] is out["a"] and out["b"][1][0] is out["a"]  # one tensor stays one
    assert out["b"][1][1] == "text" and out["n"] == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deep_to_structures_distributions_and_modules(dtype):
    loc = torch.tensor(0.0, requires_grad=True)
    d = dist.Normal(loc, 1.0).expand((3,))
    d2 = deep_to(d, dtype)
    assert d2.loc.dtype == dtype and d2.loc.requires_grad and d2.scale.dtype == dtype
    assert d2.sample().dtype == dtype

    data = [None, "s", 1.0, {False}, (torch.tensor(1), torch.tensor([2.0])), {"k": torch.ones(2)}]
    out = deep_to(data, dtype=torch.float64)
    assert out[:4] == data[:4]
    assert out[4][0].dtype == torch.float64 and out[5]["k"].dtype == torch.float64

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.zeros(2))
            self.register_buffer("b", torch.zeros(3))
            self.c = torch.randn(4)  # a plain tensor attribute: Module.to misses it
            self.d = dist.Normal(0.0, 1.0)

    m = deep_to(Holder(), dtype=dtype)
    assert {m.a.dtype, m.b.dtype, m.c.dtype, m.d.loc.dtype, m.d.scale.dtype} == {dtype}


def test_deep_to_without_arguments_copies():
    x = torch.ones(2)
    out = deep_to({"x": x})
    assert torch.equal(out["x"], x)
