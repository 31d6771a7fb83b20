"""SpanningTree: edge ordering, enumeration, normalization, sampler against the exact law."""

import itertools
import math

import pytest
import torch
from scipy import stats

import ember.distributions as dist
from ember.distributions import SpanningTree
from ember.distributions.spanning_tree import make_complete_graph


def _rank(edges):
    return edges[..., 0] + edges[..., 1] * (edges[..., 1] - 1) // 2


def _brute_force_trees(V):
    """Every (V-1)-subset of edges that connects all vertices, by union-find."""
    v1, v2 = make_complete_graph(V)
    trees = []
    for subset in itertools.combinations(range(V * (V - 1) // 2), V - 1):
        parent = list(range(V))

        def find(u, parent=parent):
            while parent[u] != u:
                u = parent[u]
            return u

        ok = True
        for k in subset:
            a, b = find(int(v1[k])), find(int(v2[k]))
            if a == b:
                ok = False
                break
            parent[a] = b
        if ok:
            trees.append(subset)
    return trees


def test_edge_order_and_pairing_function():
    v1, v2 = make_complete_graph(5)
    expected = [(a, b) for b in range(5) for a in range(b)]
    assert list(zip(v1.tolist(), v2.tolist())) == expected
    assert (v1 + v2 * (v2 - 1) // 2).tolist() == list(range(10))
    matrix = torch.arange(25.0).reshape(5, 5)
    assert matrix[v1, v2].tolist() == [5.0 * a + b for a, b in expected]


@pytest.mark.parametrize("V", [2, 3, 4, 5, 6])
def test_enumerate_support_lists_every_tree_once(V):
    d = SpanningTree(torch.zeros(V * (V - 1) // 2))
    support = d.enumerate_support()
    assert support.shape == (V ** (V - 2), V - 1, 2) and support.dtype == torch.long
    d.validate_edges(support)
    as_sets = {tuple(_rank(t).tolist()) for t in support}
    assert len(as_sets) == V ** (V - 2)
    if V <= 5:
        assert as_sets == set(_brute_force_trees(V))


@pytest.mark.parametrize("V", [2, 3, 4, 5])
def test_log_prob_normalizes_over_the_support(V):
    torch.manual_seed(V)
    logits = torch.randn(V * (V - 1) // 2, dtype=torch.float64) * 2
    d = SpanningTree(logits)
    support = d.enumerate_support()
    log_p = d.log_prob(support)
    assert abs(torch.logsumexp(log_p, 0).item()) < 1e-10
    # against the brute-force partition function
    scores = logits[_rank(support)].sum(-1)
    assert torch.allclose(log_p, scores - torch.logsumexp(scores, 0))


def test_log_partition_gradient_gives_edge_marginals():
    torch.manual_seed(0)
    V = 5
    logits = torch.randn(10, dtype=torch.float64, requires_grad=True)
    d = SpanningTree(logits)
    (grad,) = torch.autograd.grad(d.log_partition_function, [logits])
    support = d.enumerate_support()
    p = d.log_prob(support).exp().detach()
    marginals = torch.zeros(10, dtype=torch.float64)
    for tree, prob in zip(support, p):
        marginals[_rank(tree)] += prob
    assert torch.allclose(grad, marginals)
    assert abs(marginals.sum().item() - (V - 1)) < 1e-10


def test_mode_is_the_most_probable_tree():
    torch.manual_seed(3)
    d = SpanningTree(torch.randn(10))
    support = d.enumerate_support()
    best = support[d.log_prob(support).argmax()]
    assert torch.equal(d.mode, best)


def _chi_square_p_value(d, samples):
    support = d.enumerate_support()
    index = {tuple(_rank(t).tolist()): i for i, t in enumerate(support)}
    counts = torch.zeros(len(support), dtype=torch.float64)
    for key, n in zip(*torch.unique(_rank(samples), dim=0, return_counts=True)):
        counts[index[tuple(key.tolist())]] += n
    p = d.log_prob(support).double().exp()
    expected = samples.size(0) * p / p.sum()
    return stats.chisquare(counts.numpy(), expected.numpy()).pvalue


@pytest.mark.slow
@pytest.mark.parametrize("V,mcmc_steps", [(4, 5), (5, 5)])
def test_sampler_matches_exact_distribution(V, mcmc_steps):
    torch.manual_seed(0)
    d = SpanningTree(torch.randn(V * (V - 1) // 2), {"mcmc_steps": mcmc_steps})
    samples = d.sample((20000,))
    assert samples.shape == (20000, V - 1, 2)
    d.validate_edges(samples)
    assert _chi_square_p_value(d, samples) > 1e-3


@pytest.mark.slow
def test_sampler_from_given_initial_edges_converges():
    torch.manual_seed(1)
    logits = torch.randn(6)  # V = 4
    start = SpanningTree(logits).enumerate_support()[0]
    d = SpanningTree(logits, {"initial_edges": start, "mcmc_steps": 5})
    assert _chi_square_p_value(d, d.sample((20000,))) > 1e-3
    # with no MCMC steps every chain stays where it started
    frozen = SpanningTree(logits, {"initial_edges": start, "mcmc_steps": 0}).sample((3,))
    assert (frozen == start).all()


def test_initializer_alone_is_only_approximate():
    # the cheap initializer is biased; MCMC is what makes the sampler exact
    torch.manual_seed(0)
    d = SpanningTree(torch.randn(6), {"mcmc_steps": 0})
    assert _chi_square_p_value(d, d.sample((20000,))) < 1e-6


def test_single_sample_shape_and_default_options():
    d = dist.SpanningTree(torch.zeros(10))
    tree = d.sample()
    assert tree.shape == (4, 2)
    d.validate_edges(tree)
    assert d.sample((2, 3)).shape == (2, 3, 4, 2)
    assert d.log_prob(tree).shape == ()
    assert math.isclose(d.log_prob(tree).exp().item(), 1 / 125, rel_tol=1e-5)
    assert d.has_enumerate_support and not d.has_rsample
    assert d.event_shape == (4, 2) and d.batch_shape == ()
    assert SpanningTree.infer_shapes(edge_logits=(10,)) == ((), (4, 2))


@pytest.mark.parametrize(
    "edges,match",
    [
        (torch.tensor([[0, 1], [1, 2]]), r"shape \(\.\.\., 3, 2\)"),
        (torch.tensor([[1, 0], [0, 2], [0, 3]]), "v1 < v2"),
        (torch.tensor([[0, 2], [0, 1], [0, 3]]), "sorted colexicographically"),
        (torch.tensor([[0, 1], [0, 1], [0, 3]]), "distinct"),
        (torch.tensor([[0, 1], [0, 2], [1, 2]]), "spanning tree"),
        (torch.tensor([[0, 1], [0, 2], [0, 7]]), "outside"),
        (torch.tensor([[0.0, 1], [0, 2], [0, 3]]), "integer"),
    ],
)
def test_validate_edges_rejects_malformed_trees(edges, match):
    d = SpanningTree(torch.zeros(6))
    with pytest.raises(ValueError, match=match):
        d.validate_edges(edges)
    with pytest.raises(ValueError, match=match):
        d.log_prob(edges)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="edge_logits"):
        SpanningTree(torch.zeros(5))
    with pytest.raises(ValueError, match="edge_logits"):
        SpanningTree(torch.zeros(2, 4))  # a batch of 4 logits: not V*(V-1)//2 for any V
    with pytest.raises(ValueError, match="mcmc_steps"):
        SpanningTree(torch.zeros(3), {"mcmc_steps": -1})
    with pytest.raises(ValueError, match="sampler_options"):
        SpanningTree(torch.zeros(3), {"steps": 2})
    with pytest.raises(ValueError, match="backend"):
        SpanningTree(torch.zeros(3), {"backend": "fortran"})
    with pytest.raises(ValueError, match="V <= 6"):
        SpanningTree(torch.zeros(21)).enumerate_support()
    with pytest.raises(ValueError, match="edge_logits"):
        SpanningTree(torch.tensor([0.0, float("nan"), 0.0]), validate_args=True)
