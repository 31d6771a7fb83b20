"""The module-level samplers of spanning_tree, edge_mean and the tree counts, against
brute-force enumeration of every tree."""

from collections import Counter

import pytest
import torch

from ember.distributions import SpanningTree
from ember.distributions.spanning_tree import (
    NUM_SPANNING_TREES,
    enumerate_spanning_trees,
    find_best_tree,
    make_complete_graph,
    sample_tree,
    sample_tree_approx,
    sample_tree_mcmc,
)
from ember.distributions.testing.gof import multinomial_goodness_of_fit


def _edge_ranks(trees):
    return trees[..., 0] + trees[..., 1] * (trees[..., 1] - 1) // 2


@pytest.mark.parametrize("V", [2, 3, 4, 5, 6])
def test_tree_counts_and_enumeration(V):
    trees = enumerate_spanning_trees(V)
    assert len(trees) == NUM_SPANNING_TREES[V] == V ** (V - 2)
    assert len({tuple(t.reshape(-1).tolist()) for t in trees}) == len(trees)
    assert NUM_SPANNING_TREES[:4] == [1, 1, 1, 3]


@pytest.mark.parametrize("V", [2, 3, 4, 5])
def test_edge_mean_is_the_marginal_of_each_edge(V):
    torch.manual_seed(V)
    logits = torch.randn(V * (V - 1) // 2, dtype=torch.float64)
    d = SpanningTree(logits)
    trees = enumerate_spanning_trees(V)
    probs = d.log_prob(trees).exp()
    expected = torch.zeros_like(logits)
    for tree, p in zip(trees, probs):
        expected[_edge_ranks(tree)] += p
    actual = d.edge_mean
    assert actual.shape == (V, V)
    v1, v2 = make_complete_graph(V)
    assert torch.allclose(actual[v1, v2], expected, atol=1e-10)
    assert torch.allclose(actual, actual.T) and (actual.diagonal() == 0).all()
    assert actual.sum().item() == pytest.approx(2 * (V - 1))  # every tree has V-1 edges


@pytest.mark.parametrize("V", [2, 3, 4, 5])
def test_find_best_tree_is_the_argmax(V):
    torch.manual_seed(10 + V)
    logits = torch.randn(V * (V - 1) // 2)
    trees = enumerate_spanning_trees(V)
    best = trees[logits[_edge_ranks(trees)].sum(-1).argmax()]
    assert torch.equal(find_best_tree(logits), best)
    assert torch.equal(SpanningTree(logits).mode, best)


@pytest.mark.slow
@pytest.mark.parametrize("V", [3, 4])
def test_mcmc_chain_follows_the_distribution(V):
    # a long chain of sample_tree moves visits trees in proportion to their probability
    torch.manual_seed(20 + V)
    logits = torch.randn(V * (V - 1) // 2)
    trees = enumerate_spanning_trees(V)
    probs = SpanningTree(logits).log_prob(trees).exp()
    index = {tuple(t.reshape(-1).tolist()): i for i, t in enumerate(trees)}
    counts = Counter()
    edges = sample_tree(logits)
    for _ in range(200 * len(trees)):
        edges = sample_tree(logits, edges, mcmc_steps=3)  # thinned: nearly independent
        counts[index[tuple(edges.reshape(-1).tolist())]] += 1
    observed = torch.tensor([counts[i] for i in range(len(trees))])
    assert multinomial_goodness_of_fit(probs, observed) > 1e-4


def test_sampler_shapes_and_bad_input():
    logits = torch.zeros(10)  # V = 5
    tree = sample_tree_approx(logits)
    assert tree.shape == (4, 2) and (tree[:, 0] < tree[:, 1]).all()
    assert sample_tree_mcmc(logits, tree).shape == (4, 2)
    assert sample_tree(logits, mcmc_steps=0).shape == (4, 2)
    with pytest.raises(ValueError, match="spanning tree"):
        sample_tree_mcmc(logits, torch.tensor([[0, 1], [0, 1], [2, 3], [3, 4]]))
    with pytest.raises(ValueError, match="V\\*\\(V-1\\)//2"):
        sample_tree(torch.zeros(4))
    with pytest.raises(ValueError, match="backend"):
        find_best_tree(logits, backend="gpu")
    with pytest.raises(ValueError, match="mcmc_steps"):
        sample_tree(logits, mcmc_steps=-1)
