"""Provenance tensors: propagation through torch operations and containers."""

import pytest
import torch

from ember.ops.provenance import (
    ProvenanceTensor,
    detach_provenance,
    get_provenance,
    track_provenance,
)


def P(x, *names):
    return ProvenanceTensor(x, frozenset(names))


def test_empty_provenance_returns_plain_tensor():
    x = torch.ones(2)
    assert ProvenanceTensor(x, frozenset()) is x
    assert get_provenance(x) == frozenset()


def test_operations_union_provenance():
    a = P(torch.tensor([1.0, 2.0]), "a")
    b = P(torch.tensor(3.0), "b")
    c = torch.tensor(4.0)
    assert get_provenance(a + c) == {"a"}
    assert get_provenance(torch.stack([a.sum(), b, c])) == {"a", "b"}
    assert get_provenance(a.detach().exp()) == {"a"}  # not lost by detach
    with torch.no_grad():
        assert get_provenance(a * 2) == {"a"}
    i = P(torch.tensor(1), "i")  # an integer index
    assert get_provenance(a[i]) == {"a", "i"}
    assert get_provenance(torch.where(b > 0, a, c)) == {"a", "b"}
    # results carry exact values
    torch.testing.assert_close(detach_provenance(a * b + c), torch.tensor([7.0, 10.0]))
    assert type(detach_provenance(a * b)) is torch.Tensor


def test_detach_returns_same_object():
    x = torch.randn(3)
    y = P(x, "x")
    assert detach_provenance(y) is x
    assert detach_provenance(track_provenance(y, frozenset({"z"}))) is x


@pytest.mark.parametrize(
    "make",
    [
        lambda t: t,
        lambda t: [t, torch.zeros(1)],
        lambda t: (t, 3),
        lambda t: {"k": t, "l": [torch.ones(2)]},
        lambda t: {t},
        lambda t: frozenset([t]),
    ],
)
def test_containers(make):
    x = make(P(torch.tensor([1, 2]), "old"))
    tracked = track_provenance(x, frozenset({"new"}))
    assert type(tracked) is type(x)
    assert get_provenance(tracked) == {"old", "new"}
    assert get_provenance(detach_provenance(tracked)) == frozenset()


def test_bad_input():
    with pytest.raises(TypeError, match="use track_provenance"):
        ProvenanceTensor(P(torch.ones(1), "a"), frozenset({"b"}))
    with pytest.raises(TypeError, match="wraps a torch.Tensor"):
        ProvenanceTensor([1.0], frozenset({"b"}))
