import pytest
import torch

from ember.ops import packed

D2S = {-1: "a", -2: "b", -3: "c"}
S2D = {v: k for k, v in D2S.items()}


def _p(x):
    return packed.pack(x, D2S)


def test_pack_unpack_roundtrip_and_dims():
    x = torch.randn(3, 1, 2)
    p = _p(x)
    assert p.shape == (3, 2) and p._pyro_dims == "ca"
    assert torch.equal(packed.unpack(p, S2D), x)
    # a permuted packed tensor unpacks to the same thing
    q = p.permute(1, 0)
    q._pyro_dims = "ac"
    assert torch.equal(packed.unpack(q, S2D), x)
    # numbers pass through
    assert packed.pack(2.5, D2S) == 2.5 and packed.unpack(2.5, S2D) == 2.5
    s = packed.unpack(_p(torch.tensor(1.0)), S2D)
    assert s.shape == () and not hasattr(s, "_pyro_dims")


def test_pack_errors():
    with pytest.raises(ValueError, match="Invalid tensor shape"):
        packed.pack(torch.zeros(2, 1, 1, 1), D2S)
    with pytest.raises(ValueError, match="already-packed"):
        packed.pack(_p(torch.zeros(2)), D2S)


def test_broadcast_all_matches_torch():
    xs = [torch.randn(2), torch.randn(3, 1), torch.randn(4, 1, 1)]
    outs = packed.broadcast_all(*map(_p, xs))
    expected = torch.broadcast_tensors(*xs)
    for o, e in zip(outs, expected):
        assert o._pyro_dims == "abc"
        assert torch.equal(packed.unpack(o, S2D), e)
    outs = packed.broadcast_all(*map(_p, xs), dims="cba")
    assert outs[0].shape == (4, 3, 2)
    with pytest.raises(ValueError, match="dims"):
        packed.broadcast_all(_p(xs[0]), dims="ab")


def test_mul_neg_exp():
    x, y = torch.randn(2), torch.randn(3, 1)
    m = packed.mul(_p(x), _p(y))
    assert torch.allclose(packed.unpack(m, S2D), x * y)
    assert packed.mul(_p(x), 2.0)._pyro_dims == "a"
    assert torch.equal(packed.unpack(packed.mul(3.0, _p(x)), S2D), 3.0 * x)
    assert packed.mul(2.0, 3.0) == 6.0
    assert torch.equal(packed.unpack(packed.neg(_p(y)), S2D), -y)
    assert torch.equal(packed.unpack(packed.exp(_p(y)), S2D), y.exp())
    assert packed.exp(0.0) == 1.0 and packed.neg(2.0) == -2.0


def test_gather():
    v = torch.randn(3, 4)  # packed dims "ba"
    idx = torch.tensor([[0], [3], [1]])  # one index per row, dims "b"
    out = packed.gather(_p(v), _p(idx), "a")
    assert out._pyro_dims == "b"
    assert torch.equal(out, v.gather(-1, idx).squeeze(-1))
    with pytest.raises(ValueError, match="not among"):
        packed.gather(_p(v), _p(idx), "c")


def test_scale_and_mask():
    t = _p(torch.tensor([1.0, 2.0, 3.0]))
    mask = _p(torch.tensor([[True], [False]]))  # dims "b"
    assert packed.scale_and_mask(t) is t
    assert torch.equal(packed.scale_and_mask(t, 2.0), torch.tensor([2.0, 4.0, 6.0]))
    assert torch.equal(packed.scale_and_mask(t, mask=False), torch.zeros(3))
    out = packed.scale_and_mask(t, torch.tensor(0.5), mask)
    assert out._pyro_dims == "ab"
    assert torch.equal(out, torch.tensor([[0.5, 0.0], [1.0, 0.0], [1.5, 0.0]]))
    with pytest.raises(NotImplementedError, match="non-scalar"):
        packed.scale_and_mask(t, torch.ones(3))


def test_rename_equation():
    x = _p(torch.ones(3, 2))
    y = _p(torch.ones(4, 1, 1))
    assert packed.rename_equation("xy,z->x", x, y) == "ba,c->b"
    with pytest.raises(ValueError, match="inputs"):
        packed.rename_equation("xy->x", x, y)
