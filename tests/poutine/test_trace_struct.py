"""Trace: site records, cached log-probs, node queries, shapes table, copy, dependency graph."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.poutine.trace_struct import Trace
from ember.poutine.util import prune_subsample_sites, site_is_subsample


def model():
    loc = ember.param("loc", torch.tensor(0.5))
    z = ember.sample("z", dist.Normal(loc, 1.0))
    k = ember.sample("k", dist.Bernoulli(0.3))
    with ember.plate("data", 4, subsample_size=2):
        ember.sample("y", dist.Normal(z, 2.0), obs=torch.tensor([0.0, 1.0]))
    return z, k


def test_node_queries():
    ember.clear_param_store()
    tr = poutine.trace(model).get_trace()
    assert tr.param_nodes == ["loc"]
    assert tr.stochastic_nodes == ["z", "k", "data"]
    assert tr.observation_nodes == ["y"]
    assert tr.reparameterized_nodes == ["z"]
    assert tr.nonreparam_stochastic_nodes == ["k", "data"]
    assert [n for n, _ in tr.iter_stochastic_nodes()] == ["z", "k"]
    assert site_is_subsample(tr.nodes["data"])
    pruned = prune_subsample_sites(tr)
    assert "data" not in pruned and "data" in tr


def test_compute_log_prob_caches_scaled_masked_values():
    ember.clear_param_store()
    tr = poutine.trace(model).get_trace()
    tr.compute_log_prob()
    z = tr.nodes["z"]["value"].item()
    k = tr.nodes["k"]["value"].item()
    y = tr.nodes["y"]
    assert y["log_prob"].shape == (2,)
    manual = [
        2.0 * (-0.5 * ((v - z) / 2.0) ** 2 - math.log(2.0) - 0.5 * math.log(2 * math.pi))
        for v in (0.0, 1.0)
    ]
    assert y["log_prob"].tolist() == pytest.approx(manual, rel=1e-5)
    assert y["unscaled_log_prob"].tolist() == pytest.approx([m / 2 for m in manual], rel=1e-5)
    assert y["log_prob_sum"].item() == pytest.approx(sum(manual), rel=1e-5)
    cached = tr.nodes["z"]["log_prob"]
    tr.compute_log_prob()
    assert tr.nodes["z"]["log_prob"] is cached
    lp_k = math.log(0.3 if k == 1 else 0.7)
    lp_z = -0.5 * (z - 0.5) ** 2 - 0.5 * math.log(2 * math.pi)
    assert tr.log_prob_sum().item() == pytest.approx(lp_z + lp_k + sum(manual), rel=1e-5)
    only_z = tr.log_prob_sum(lambda name, site: name == "z")
    assert only_z.item() == pytest.approx(lp_z, rel=1e-5)


def test_log_prob_sum_of_empty_trace_is_zero():
    assert Trace().log_prob_sum() == 0.0


def test_compute_score_parts():
    ember.clear_param_store()
    tr = poutine.trace(model).get_trace()
    tr.compute_score_parts()
    parts_z = tr.nodes["z"]["score_parts"]
    parts_k = tr.nodes["k"]["score_parts"]
    assert torch.equal(parts_z.entropy_term, tr.nodes["z"]["log_prob"])
    assert torch.equal(parts_k.score_function, tr.nodes["k"]["log_prob"])
    assert "log_prob_sum" in tr.nodes["y"]


def test_log_prob_error_names_the_site():
    def bad():
        ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))

    tr = poutine.trace(bad).get_trace()
    tr.nodes["x"]["fn"] = dist.Categorical(torch.ones(3) / 3, validate_args=True)
    tr.nodes["x"]["value"] = torch.tensor(7)
    with pytest.raises(ValueError, match="site 'x'"):
        tr.compute_log_prob()


def test_format_shapes_table():
    def m():
        with ember.plate("p", 3):
            ember.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))

    tr = poutine.trace(m).get_trace()
    tr.compute_log_prob()
    table = tr.format_shapes()
    lines = table.splitlines()
    assert lines[0] == "Trace Shapes:"
    row = [ln for ln in lines if ln.split()[0] == "x"][0].split()
    assert row == ["x", "sample", "(3,)", "(2,)", "(3,", "2)", "(3,)", "p(3)@-1"]


def test_copy_and_detach():
    ember.clear_param_store()
    tr = poutine.trace(model).get_trace()
    cp = tr.copy()
    assert list(cp.nodes) == list(tr.nodes) and cp.nodes["z"] is tr.nodes["z"]
    cp.remove_node("z")
    assert "z" in tr
    loc = tr.nodes["loc"]["value"]
    assert loc.requires_grad
    tr.detach_()
    assert not tr.nodes["loc"]["value"].requires_grad


def test_add_node_rules():
    tr = Trace()
    tr.add_node("p", type="param", value=1)
    tr.add_node("p", type="param", value=2)  # params may repeat
    with pytest.raises(ValueError, match="already in the trace as a param"):
        tr.add_node("p", type="sample", value=3)
    with pytest.raises(ValueError, match="graph_type"):
        Trace(graph_type="sparse")


def test_dense_graph_edges_respect_sequential_plates():
    def m():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        for i in ember.plate("seq", 2):
            ember.sample(f"b{i}", dist.Normal(a, 1.0))
        ember.sample("c", dist.Normal(a, 1.0))

    tr = poutine.trace(m, graph_type="dense").get_trace()
    assert ("a", "b0") in tr.edges and ("a", "b1") in tr.edges
    assert ("b0", "b1") not in tr.edges
    assert tr.successors("a") == {"b0", "b1", "c"}
    assert tr.predecessors("c") == {"a", "b0", "b1"}
    assert tr.in_degree("a") == 0
    order = tr.topological_sort()
    assert order.index("a") < order.index("b0") < order.index("c")
    assert tr.topological_sort(reverse=True) == order[::-1]
    tr.add_edge("c", "a")
    with pytest.raises(ValueError, match="cycle"):
        tr.topological_sort()
    tr.add_edge("a", "nope")  # an unknown endpoint is added as a bare node, as in Pyro
    assert tr.nodes["nope"] == {"name": "nope", "type": None}
    assert "nope" in tr.successors("a") and "nope" not in tr.stochastic_nodes
    flat = poutine.trace(m).get_trace()
    assert flat.edges == []


# ------------------------------------------------------------- graph building
TREE = [(1, 2), (1, 3), (3, 4), (3, 5), (4, 6), (4, 7)]


@pytest.mark.parametrize("order", [TREE, TREE[::-1], [TREE[i] for i in (3, 0, 5, 1, 4, 2)]])
def test_add_edge_builds_the_graph_from_unknown_nodes(order):
    tr = Trace()
    for u, v in order:
        tr.add_edge(u, v)
    assert set(tr.nodes) == set(range(1, 8))
    assert all(tr.nodes[n] == {"name": n, "type": None} for n in tr.nodes)
    assert tr.stochastic_nodes == [] and tr.param_nodes == [] and tr.log_prob_sum() == 0.0
    top = tr.topological_sort()
    rank = {n: i for i, n in enumerate(top)}
    assert sorted(top) == list(range(1, 8))
    assert all(rank[u] < rank[v] for u, v in TREE)
    assert sorted(tr.reachable(3)) == [3, 4, 5, 6, 7]
    assert sorted(tr.reachable(4)) == [4, 6, 7] and tr.reachable(2) == [2]
    post = tr.reachable(1)
    assert post[-1] == 1 and post.index(6) < post.index(4) < post.index(3)


def test_removing_sinks_keeps_the_rest_reachable():
    tr = Trace()
    for u, v in TREE:
        tr.add_edge(u, v)
    order = tr.topological_sort()
    while order:
        assert sorted(tr.reachable(1)) == sorted(order)
        tr.remove_node(order.pop())
    assert tr.nodes == {} and tr.edges == []


def test_a_site_added_after_its_edges_takes_the_bare_node_place():
    tr = Trace()
    tr.add_edge("a", "b")
    tr.add_node("b", type="sample", name="b", is_observed=False, value=1.0)
    assert tr.nodes["b"]["type"] == "sample" and tr.predecessors("b") == {"a"}
    assert tr.stochastic_nodes == ["b"]
    with pytest.raises(ValueError, match="Multiple sample sites"):
        tr.add_node("b", type="sample", name="b", is_observed=False, value=2.0)


def test_log_prob_sum_error_names_the_computation_and_site():
    def model():
        ember.sample("bad", dist.Beta(1.0, 1.0), obs=torch.tensor(2.0))

    tr = poutine.trace(model).get_trace()
    with pytest.raises(ValueError, match="Error while computing log_prob_sum at site 'bad'"):
        tr.log_prob_sum()
    with pytest.raises(ValueError, match="Error while computing log_prob at site 'bad'"):
        tr.compute_log_prob()


def test_subsample_sites_are_recognised_by_their_distribution():
    from ember.poutine.subsample_messenger import SubsampleIndices

    def model():
        with ember.plate("data", 10, subsample_size=3):
            ember.sample("x", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    assert isinstance(tr.nodes["data"]["fn"], SubsampleIndices)
    assert site_is_subsample(tr.nodes["data"]) and not site_is_subsample(tr.nodes["x"])
    # Pyro's class name, which code written for Pyro matches
    assert type(tr.nodes["data"]["fn"]).__name__ == "_Subsample"
    assert [n for n, _ in tr.iter_stochastic_nodes()] == ["x"]
    pruned = prune_subsample_sites(tr)
    assert "data" not in pruned and "data" in tr
