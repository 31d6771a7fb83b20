"""SpanningTree with batched edge_logits: every batch member is the unbatched distribution
of its logits (density normalized by enumeration, edge marginals, mode, sample
frequencies), and shapes under expand/to_event/mask."""

import io
import math
import pickle

import pytest
import torch

import ember.distributions as dist
from ember.distributions.spanning_tree import make_complete_graph

D = torch.float64


def batched_logits(batch=(2, 3), V=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch + (V * (V - 1) // 2,), generator=g, dtype=D)


def test_log_prob_matches_unbatched_and_is_normalized():
    logits = batched_logits()
    d = dist.SpanningTree(logits)
    assert d.batch_shape == (2, 3) and d.event_shape == (3, 2)
    assert dist.SpanningTree.infer_shapes(edge_logits=(2, 3, 6)) == ((2, 3), (3, 2))
    trees = d.enumerate_support()
    assert trees.shape == (16, 2, 3, 3, 2)
    assert d.enumerate_support(expand=False).shape == (16, 1, 1, 3, 2)
    lp = d.log_prob(trees)
    assert lp.shape == (16, 2, 3)
    assert torch.allclose(lp.logsumexp(0), torch.zeros(2, 3, dtype=D), atol=1e-12)
    for i in range(2):
        for j in range(3):
            single = dist.SpanningTree(logits[i, j])
            assert torch.allclose(lp[:, i, j], single.log_prob(trees[:, i, j]))
    # one tree scored under every batch member broadcasts
    assert d.log_prob(trees[0, 0, 0]).shape == (2, 3)


def test_edge_mean_and_mode_per_member():
    logits = batched_logits((3,))
    d = dist.SpanningTree(logits)
    mean = d.edge_mean
    assert mean.shape == (3, 4, 4)
    trees = d.enumerate_support(expand=False)
    probs = d.log_prob(trees).exp()  # (16, 3)
    v1, v2 = make_complete_graph(4)
    for j in range(3):
        expected = torch.zeros(4, 4, dtype=D)
        for tree, p in zip(trees[:, 0], probs[:, j]):
            expected[tree[:, 0], tree[:, 1]] += p
        expected = expected + expected.T
        assert torch.allclose(mean[j], expected, atol=1e-12)
        best = trees[probs[:, j].argmax(), 0]
        assert torch.equal(d.mode[j], best)
    assert torch.allclose(mean[..., v1, v2].sum(-1), torch.full((3,), 3.0, dtype=D))


def test_sample_frequencies_per_member():
    logits = batched_logits((2,), V=4, seed=1) * 1.5
    d = dist.SpanningTree(logits, {"mcmc_steps": 8})
    torch.manual_seed(0)
    n = 8000
    x = d.sample((n,))
    assert x.shape == (n, 2, 3, 2)
    trees = d.enumerate_support(expand=False)[:, 0]  # (16, 3, 2)
    probs = d.log_prob(trees.unsqueeze(1)).exp()  # (16, 2)
    for j in range(2):
        hits = (x[:, j].unsqueeze(1) == trees).all(-1).all(-1).double().mean(0)
        se = (probs[:, j] * (1 - probs[:, j]) / n).sqrt()
        assert ((hits - probs[:, j]).abs() < 4.5 * se + 1e-12).all()


def test_gradient_of_log_partition_is_edge_marginal():
    logits = batched_logits((2,)).requires_grad_()
    d = dist.SpanningTree(logits)
    (grad,) = torch.autograd.grad(d.log_partition_function.sum(), [logits])
    v1, v2 = make_complete_graph(4)
    assert torch.allclose(grad, d.edge_mean.detach()[..., v1, v2], atol=1e-10)


def test_shapes_expand_to_event_mask_and_pickle():
    d = dist.SpanningTree(batched_logits((3,)))
    e = d.expand((2, 3))
    assert type(e) is dist.SpanningTree and e.batch_shape == (2, 3)
    x = e.sample((4,))
    assert x.shape == (4, 2, 3, 3, 2)
    assert torch.allclose(e.log_prob(x), d.log_prob(x))
    assert e.to_event(1).log_prob(x).shape == (4, 2)
    assert (e.mask(torch.tensor([True, False, True])).log_prob(x)[..., 1] == 0).all()
    buf = io.BytesIO()
    torch.save(d, buf, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    assert torch.equal(back.log_prob(x), d.log_prob(x))
    assert math.isfinite(float(back.log_partition_function.sum()))


def test_bad_batched_trees_rejected():
    d = dist.SpanningTree(batched_logits((2,)), validate_args=True)
    bad = torch.tensor([[[0, 1], [0, 2], [1, 2]], [[0, 1], [0, 2], [0, 3]]])
    with pytest.raises(ValueError, match="spanning tree|cycle|sorted"):
        d.log_prob(bad)
