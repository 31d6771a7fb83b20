"""Model inspection against dependency graphs derived by hand."""

import shutil
import sys

import pytest
import torch

import ember
import ember.distributions as dist
from ember.demo import eight_schools, gmm_iris
from ember.distributions import constraints
from ember.infer.inspect import (
    deep_merge,
    generate_graph_specification,
    get_dependencies,
    get_model_relations,
    render_model,
)

_ = set()


def test_dependencies_through_discrete_index_and_detach():
    # a -> k (categorical) ; table, k -> y (via table[k]); z gets y.detach() ; obs o of z
    def model():
        probs = ember.sample("probs", dist.Dirichlet(torch.ones(3)))
        k = ember.sample("k", dist.Categorical(probs))
        table = ember.sample("table", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        y = ember.sample("y", dist.Normal(table[k], 1.0))
        z = ember.sample("z", dist.Normal(y.detach() * 2, 1.0))
        ember.sample("o", dist.Normal(z, 1.0), obs=torch.tensor(0.5))

    deps = get_dependencies(model)
    assert deps["prior_dependencies"] == {
        "probs": {"probs": _},
        "k": {"k": _, "probs": _},
        "table": {"table": _},
        "y": {"y": _, "k": _, "table": _},
        "z": {"z": _, "y": _},
        "o": {"o": _, "z": _},
    }
    # posterior: children plus co-parents (moralization), later sites first
    assert deps["posterior_dependencies"] == {
        "probs": {"probs": _, "k": _},
        "k": {"k": _, "y": _, "table": _},
        "table": {"table": _, "y": _},
        "y": {"y": _, "z": _},
        "z": {"z": _, "o": _},
    }


def test_dependencies_plate_coupling():
    # x_i iid in plate p, observed through their sum: all x_i coupled along p;
    # w outside the plate and x_i are co-parents of each obs z_i, not coupled along p.
    def model(data):
        w = ember.sample("w", dist.Normal(0.0, 1.0))
        with ember.plate("p", len(data)):
            x = ember.sample("x", dist.Normal(0.0, 1.0))
            ember.sample("z", dist.Normal(w + x, 1.0), obs=data)
        ember.sample("s", dist.Normal(x.sum(), 1.0), obs=data.sum())

    deps = get_dependencies(model, (torch.zeros(4),))
    assert deps["prior_dependencies"] == {
        "w": {"w": _},
        "x": {"x": _},
        "z": {"z": _, "w": _, "x": _},
        "s": {"s": _, "x": _},
    }
    assert deps["posterior_dependencies"] == {
        "w": {"w": _, "x": _, "z": _},
        "x": {"x": {"p"}, "z": _, "s": _},
    }


def test_dependencies_leave_outer_state_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)

    def model():
        ember.sample("a", dist.Normal(0.0, 1.0))

    with torch.enable_grad():
        get_dependencies(model)
    torch.testing.assert_close(torch.rand(3), expected)  # the rng stream is untouched


def test_model_relations_with_params_and_deterministic():
    def model(data):
        loc = ember.param("loc", torch.tensor(0.0))
        scale = ember.param("scale", torch.tensor(1.0), constraint=constraints.positive)
        m = ember.sample("m", dist.Normal(loc, scale))
        d = ember.deterministic("d", m * 2)
        with ember.plate("N", len(data)):
            ember.sample("x", dist.Normal(d, 1.0), obs=data)

    ember.clear_param_store()
    data = torch.zeros(3)
    rel = get_model_relations(model, (data,))
    assert rel == {
        "sample_sample": {"m": [], "d": ["m"], "x": ["m"]},
        "sample_param": {"m": ["loc", "scale"], "d": [], "x": []},
        "sample_dist": {"m": "Normal", "d": "Deterministic", "x": "Normal"},
        "param_constraint": {"loc": str(constraints.real), "scale": str(constraints.positive)},
        "plate_sample": {"N": ["x"]},
        "observed": ["d", "x"],
    }
    rel = get_model_relations(model, (data,), include_deterministic=True)
    assert rel["sample_sample"] == {"m": [], "d": ["m"], "x": ["d"]}
    ember.clear_param_store()


def test_model_relations_of_demo_mixture():
    ember.clear_param_store()
    x = torch.randn(6, 4)
    rel = get_model_relations(gmm_iris.model, (x,))
    ember.clear_param_store()
    assert rel["sample_sample"] == {"assignment": [], "x": ["assignment"]}
    assert rel["sample_param"] == {"assignment": ["weights"], "x": ["locs", "scale_tril"]}
    assert rel["sample_dist"] == {"assignment": "Categorical", "x": "MultivariateNormal"}
    assert rel["param_constraint"]["weights"] == str(constraints.simplex)
    assert rel["plate_sample"] == {"flowers": ["assignment", "x"]}
    assert rel["observed"] == ["x"]


def test_graph_specification_nested_plates():
    def model():
        with ember.plate("outer", 2, dim=-2):
            a = ember.sample("a", dist.Normal(0.0, 1.0))
            with ember.plate("inner", 3, dim=-1):
                ember.sample("b", dist.Normal(a, 1.0), obs=torch.zeros(2, 3))
        ember.sample("c", dist.Normal(a.sum(), 1.0))

    spec = generate_graph_specification(get_model_relations(model))
    assert spec["plate_groups"] == {"outer": ["a", "b"], "inner": ["b"], None: ["c"]}
    assert spec["plate_data"] == {"inner": {"parent": "outer"}, "outer": {"parent": None}}
    assert spec["edge_list"] == [("a", "b"), ("a", "c")]
    assert spec["node_data"]["b"] == {"is_observed": True, "distribution": "Normal"}


def test_deep_merge():
    merged = deep_merge([{"a": True, "n": {"o": False}}, {"a": True, "n": {"o": True}, "z": 1}])
    assert merged == {"a": True, "n": {"o": None}, "z": 1}


def test_bad_arguments():
    with pytest.raises(TypeError, match="model_args must be a tuple"):
        get_dependencies(lambda x: x, [1])


def _have_graphviz():
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def test_render_model_without_graphviz_hints(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes `import graphviz` fail
    with pytest.raises(ImportError, match=r"pip install ember\[graphviz\]"):
        render_model(eight_schools.model, (torch.ones(8), torch.zeros(8)))


@pytest.mark.skipif(not _have_graphviz(), reason="needs the graphviz package and its 'dot' program")
def test_render_model_writes_image(tmp_path):
    path = tmp_path / "eight_schools.png"
    graph = ember.render_model(
        eight_schools.model,
        (torch.ones(8), torch.zeros(8)),
        filename=str(path),
        render_distributions=True,
    )
    assert path.exists() and path.stat().st_size > 0
    src = graph.source
    assert "cluster_schools" in src and "tau ~ HalfCauchy" in src
    assert "theta_tilde -> y" in src and "mu -> y" in src

    ember.clear_param_store()
    path = tmp_path / "gmm.svg"
    graph = ember.render_model(
        gmm_iris.model, (torch.randn(6, 4),), filename=str(path), render_params=True
    )
    ember.clear_param_store()
    assert path.read_text().lstrip().startswith("<?xml")
    assert "weights -> assignment" in graph.source and "locs -> x" in graph.source
