"""Vectorized indexing against element-by-element loops."""

import itertools

import pytest
import torch

from ember.ops.indexing import Index, Vindex, index, vindex


def test_index_flattens_nested_tuples_and_merges_ellipses():
    x = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(index(x, (Ellipsis, (Ellipsis, 1))), x[..., 1])
    assert torch.equal(Index(x)[(0, (slice(None), 2))], x[0, :, 2])
    assert index(x, (Ellipsis, (Ellipsis, None))).shape == (2, 3, 4, 1)
    assert index(x, ()) is x
    assert torch.equal(index(x, 1), x[1])


def test_vindex_without_batched_indices_is_ordinary_indexing():
    x = torch.randn(3, 4, 5)
    assert torch.equal(vindex(x, (1, slice(None), 2)), x[1, :, 2])
    assert torch.equal(Vindex(x)[..., 2], x[..., 2])
    assert torch.equal(Vindex(x)[torch.tensor(1)], x[1])


def test_vindex_broadcasts_tensor_indices_and_keeps_colons_on_the_right():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5)  # no batch dims: event dims (3, 4, 5)
    i = torch.randint(0, 3, (2, 1))
    j = torch.randint(0, 5, (6,))
    y = Vindex(x)[i, :, j]
    assert y.shape == (2, 6, 4)
    for a, b in itertools.product(range(2), range(6)):
        assert torch.equal(y[a, b], x[i[a, 0], :, j[b]])


def test_vindex_with_ellipsis_broadcasts_with_the_batch_dims():
    torch.manual_seed(1)
    x = torch.randn(7, 3, 4, 5)  # batch (7,), event (3, 4, 5)
    i = torch.randint(0, 3, (2, 7))
    k = torch.randint(0, 5, (2, 1))
    y = Vindex(x)[..., i, :, k]
    assert y.shape == (2, 7, 4)
    for a, b in itertools.product(range(2), range(7)):
        assert torch.equal(y[a, b], x[b, i[a, b], :, k[a, 0]])


def test_vindex_mixture_selection_with_enumerated_values():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    z = torch.tensor([0, 1]).reshape(2, 1)  # an enumerated value along dim -2
    assert torch.equal(Vindex(probs)[z, :], probs.reshape(2, 1, 2))
    zz = torch.tensor([0, 1]).reshape(2, 1, 1)
    w = torch.tensor([1, 0])  # another site along dim -1
    picked = Vindex(probs)[zz, w]
    assert picked.shape == (2, 1, 2)
    for a, b in itertools.product(range(2), range(2)):
        assert picked[a, 0, b] == probs[a, w[b]]


def test_vindex_rejects_what_it_cannot_mean():
    x = torch.zeros(2, 3)
    with pytest.raises(NotImplementedError, match="only ':' slices"):
        vindex(x, (slice(0, 1), torch.tensor([0, 1])))
    with pytest.raises(NotImplementedError, match="first index"):
        vindex(x, (torch.tensor([0]), Ellipsis))
    with pytest.raises(IndexError, match="integers"):
        vindex(x, (torch.tensor([0.5]),))
    with pytest.raises(IndexError, match="3 indices"):
        vindex(x, (0, 0, 0))
