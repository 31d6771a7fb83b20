import pytest
import torch

from ember.ops.packed import pack
from ember.ops.rings import LinearRing, LogRing

D2S = {-1: "i", -2: "j", -3: "a"}


def _terms():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 3, generator=g, dtype=torch.float64) + 0.1  # dims a, i
    y = torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.1  # dims j, i
    return x, y


@pytest.mark.parametrize("ring_cls", [LinearRing, LogRing])
def test_sumproduct_product_inv(ring_cls):
    log = ring_cls is LogRing
    x, y = _terms()
    to = (lambda t: t.log()) if log else (lambda t: t)
    back = (lambda t: t.exp()) if log else (lambda t: t)
    ring = ring_cls(dim_to_size={"a": 4, "b": 5})
    px, py = pack(to(x), D2S), pack(to(y), D2S)
    # sum over i of x[a, i] * y[j, i] -> dims "aj"
    out = ring.sumproduct([px, py], {"i"})
    assert out._pyro_dims == "aj"
    expected = torch.einsum("ai,ji->aj", x[:, 0, :], y)
    assert torch.allclose(back(out), expected, atol=1e-12)
    # plate product over a
    prod = ring.product(px, frozenset("a"))
    assert prod._pyro_dims == "i"
    assert torch.allclose(back(prod), x[:, 0, :].prod(0), atol=1e-12)
    # inverse
    inv = ring.inv(px)
    assert torch.allclose(back(inv) * x[:, 0, :], torch.ones(4, 3, dtype=torch.float64))
    # broadcast over a missing plate dim
    b = ring.broadcast(py, frozenset("b"))
    assert b._pyro_dims == "bji" and b.shape == (5, 2, 3)
    with pytest.raises(ValueError, match="dim_to_size"):
        ring.broadcast(py, frozenset("z"))


@pytest.mark.parametrize("ring_cls", [LinearRing, LogRing])
def test_global_local_reconstructs_term(ring_cls):
    log = ring_cls is LogRing
    x, _ = _terms()
    ring = ring_cls()
    px = pack(x.log() if log else x, D2S)
    glob, local = ring.global_local(px, {"i"}, frozenset("a"))
    total = x[:, 0, :].sum(-1)
    assert torch.allclose(glob.exp() if log else glob, total.prod(), atol=1e-12)
    loc = local.exp() if log else local
    assert torch.allclose(loc, x[:, 0, :] / total[:, None], atol=1e-12)
    # cached: the same objects come back
    assert ring.global_local(px, {"i"}, frozenset("a"))[0] is glob
